//! Byte-level fixtures, written by hand from the kernel's struct layouts
//! (ip_vs_sync.c: `struct ip_vs_sync_mesg`, `ip_vs_sync_v4`,
//! `ip_vs_sync_v6`, `ip_vs_sync_conn_options`), field by field.

use super::*;
use proptest::prelude::*;

fn v4(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A DR connection in SYN_RECV: client 192.168.2.50:40000 to VIP
/// 10.99.0.10:80, real server 192.168.1.221:80, 60 s left.
pub(crate) fn syn_recv() -> SyncConn {
    SyncConn {
        protocol: TCP,
        flags: flags::DROUTE | flags::INACTIVE,
        state: 3,
        caddr: v4("192.168.2.50"),
        vaddr: v4("10.99.0.10"),
        daddr: v4("192.168.1.221"),
        cport: 40000,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout_s: 60,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    }
}

#[rustfmt::skip]
const ONE_V4: [u8; 44] = [
    // header: reserved, syncid 5, size 44, 1 connection, version 1, spare
    0x00, 0x05, 0x00, 0x2c, 0x01, 0x01, 0x00, 0x00,
    // type v4, TCP, ver_size 36
    0x00, 0x06, 0x00, 0x24,
    // flags DROUTE | INACTIVE
    0x00, 0x00, 0x01, 0x03,
    // state 3 (SYN_RECV), cport 40000
    0x00, 0x03, 0x9c, 0x40,
    // vport 80, dport 80
    0x00, 0x50, 0x00, 0x50,
    // fwmark 0
    0x00, 0x00, 0x00, 0x00,
    // timeout 60 s
    0x00, 0x00, 0x00, 0x3c,
    // caddr 192.168.2.50, vaddr 10.99.0.10, daddr 192.168.1.221
    0xc0, 0xa8, 0x02, 0x32,
    0x0a, 0x63, 0x00, 0x0a,
    0xc0, 0xa8, 0x01, 0xdd,
];

/// Two entries: a NAT connection with sequence data (36 + 26 = 62 bytes,
/// so two bytes of padding follow), then an IPv6 persistence template.
#[rustfmt::skip]
const SEQ_THEN_V6_TEMPLATE: [u8; 8 + 62 + 2 + 72] = [
    0x00, 0x07, 0x00, 0x90, 0x02, 0x01, 0x00, 0x00, // size 144, 2 connections
    0x00, 0x06, 0x00, 0x3e, // v4, TCP, size 62
    0x00, 0x00, 0x06, 0x00, // flags MASQ | IN_SEQ | OUT_SEQ
    0x00, 0x01, 0x04, 0xd2, // ESTABLISHED, cport 1234
    0x00, 0x15, 0x00, 0x15, // vport 21, dport 21
    0x00, 0x00, 0x00, 0x00, // fwmark
    0x00, 0x00, 0x03, 0x84, // 900 s
    0x0a, 0x00, 0x00, 0x01, // caddr 10.0.0.1
    0x0a, 0x00, 0x00, 0x0a, // vaddr 10.0.0.10
    0xc0, 0xa8, 0x01, 0x02, // daddr 192.168.1.2
    0x01, 0x18,             // option SEQ_DATA, 24 bytes
    0x11, 0x11, 0x11, 0x11, 0x00, 0x00, 0x00, 0x05, 0x00, 0x00, 0x00, 0x02, // in
    0x22, 0x22, 0x22, 0x22, 0xff, 0xff, 0xff, 0xfb, 0x00, 0x00, 0x00, 0x00, // out
    0x00, 0x00,             // padding to 4 bytes
    0x01, 0x11, 0x00, 0x48, // v6, UDP, size 72
    0x00, 0x00, 0x10, 0x03, // flags TEMPLATE | DROUTE
    0x00, 0x00, 0x00, 0x00, // state 0, cport 0
    0x00, 0x35, 0x00, 0x35, // vport 53, dport 53
    0x00, 0x00, 0x00, 0x07, // fwmark 7
    0x00, 0x00, 0x01, 0x2c, // 300 s
    0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01, // caddr fd00::1
    0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10, // vaddr fd00::10
    0xfd, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x20, // daddr fd00::20
];

fn seq_conn() -> SyncConn {
    SyncConn {
        protocol: TCP,
        flags: flags::MASQ | flags::SEQ_MASK,
        state: 1,
        caddr: v4("10.0.0.1"),
        vaddr: v4("10.0.0.10"),
        daddr: v4("192.168.1.2"),
        cport: 1234,
        vport: 21,
        dport: 21,
        fwmark: 0,
        timeout_s: 900,
        seq: Some((
            Seq {
                init_seq: 0x1111_1111,
                delta: 5,
                previous_delta: 2,
            },
            Seq {
                init_seq: 0x2222_2222,
                delta: (-5i32) as u32,
                previous_delta: 0,
            },
        )),
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    }
}

fn v6_template() -> SyncConn {
    SyncConn {
        protocol: UDP,
        flags: flags::TEMPLATE | flags::DROUTE,
        state: 0,
        caddr: "fd00::1".parse().unwrap(),
        vaddr: "fd00::10".parse().unwrap(),
        daddr: "fd00::20".parse().unwrap(),
        cport: 0,
        vport: 53,
        dport: 53,
        fwmark: 7,
        timeout_s: 300,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    }
}

/// What a backup keeps: the flags masked, SYNC added.
fn received(mut c: SyncConn) -> SyncConn {
    c.flags = c.flags & flags::BACKUP_MASK | flags::SYNC;
    c
}

fn encode_all(syncid: u8, maxlen: usize, conns: &[SyncConn]) -> Vec<Vec<u8>> {
    let mut e = Encoder::new(syncid, maxlen);
    let mut out: Vec<Vec<u8>> = conns.iter().filter_map(|c| e.push(c).unwrap()).collect();
    out.extend(e.finish());
    out
}

#[test]
fn encodes_one_ipv4_connection_byte_for_byte() {
    assert_eq!(encode_all(5, 1500, &[syn_recv()]), vec![ONE_V4.to_vec()]);
}

/// Headroom changes nothing in the messages but where they start, even
/// with padding and a split into several.
#[test]
fn messages_after_headroom_are_the_same_messages() {
    let conns = [
        seq_conn(),
        v6_template(),
        syn_recv(),
        seq_conn(),
        syn_recv(),
    ];
    let plain = encode_all(7, 120, &conns);
    let mut e = Encoder::with_headroom(7, 120, 42);
    let mut framed: Vec<Vec<u8>> = conns.iter().filter_map(|c| e.push(c).unwrap()).collect();
    framed.extend(e.finish());
    assert!(plain.len() > 1, "split: {plain:?}");
    assert_eq!(framed.len(), plain.len());
    for (f, p) in framed.iter().zip(&plain) {
        assert_eq!(&f[..42], &[0u8; 42][..]);
        assert_eq!(&f[42..], &p[..]);
    }
}

#[test]
fn decodes_one_ipv4_connection() {
    let d = decode(&ONE_V4, 0).unwrap();
    assert_eq!(d.syncid, 5);
    assert_eq!(d.conns, vec![received(syn_recv())]);
    assert!(d.skipped.is_empty());
    assert_eq!(d.dropped, None);
}

#[test]
fn encodes_options_padding_and_ipv6_byte_for_byte() {
    let m = encode_all(7, 1500, &[seq_conn(), v6_template()]);
    assert_eq!(m, vec![SEQ_THEN_V6_TEMPLATE.to_vec()]);
}

#[test]
fn decodes_options_padding_and_ipv6() {
    let d = decode(&SEQ_THEN_V6_TEMPLATE, 7).unwrap();
    assert_eq!(d.conns, vec![received(seq_conn()), received(v6_template())]);
    assert_eq!(d.dropped, None);
}

#[test]
fn the_hashed_flag_is_not_sent_and_the_backup_masks_the_rest() {
    let mut c = syn_recv();
    c.flags |= flags::HASHED | flags::ONE_PACKET | flags::SYNC;
    let m = encode_all(5, 1500, &[c.clone()]);
    assert_eq!(&m[0][12..16], &[0x00, 0x00, 0x21, 0x23]);
    let d = decode(&m[0], 5).unwrap();
    assert_eq!(
        d.conns[0].flags,
        flags::DROUTE | flags::INACTIVE | flags::SYNC
    );
}

#[test]
fn syncid_zero_takes_all_another_syncid_is_not_ours() {
    assert!(decode(&ONE_V4, 0).is_ok());
    assert!(decode(&ONE_V4, 5).is_ok());
    assert_eq!(decode(&ONE_V4, 6), Err(MessageError::OtherSyncId(5)));
}

#[test]
fn framing_errors_drop_the_message() {
    assert_eq!(decode(&ONE_V4[..3], 0), Err(MessageError::TooShort(3)));
    assert_eq!(decode(&ONE_V4[..40], 0), Err(MessageError::BadSize(40, 44)));
    // A version 0 header: nr_conns in the first byte.
    let mut v0 = ONE_V4;
    v0[0] = 1;
    assert_eq!(decode(&v0, 0), Err(MessageError::Version0));
    let mut spare = ONE_V4;
    spare[7] = 1;
    assert_eq!(decode(&spare, 0), Err(MessageError::Version0));
}

#[test]
fn entry_errors_drop_the_rest_but_keep_what_came_before() {
    let mut two = encode_all(5, 1500, &[syn_recv(), syn_recv()]).remove(0);
    assert_eq!(two.len(), 8 + 36 + 36);
    // The second entry claims 40 bytes: past the end.
    let mut past = two.clone();
    past[8 + 36 + 3] = 40;
    let d = decode(&past, 0).unwrap();
    assert_eq!(d.conns.len(), 1);
    assert_eq!(d.dropped, Some(MessageError::PastTheEnd(1)));
    // Entry version 1.
    let mut ver = two.clone();
    ver[8 + 36 + 2] = 0x10;
    assert_eq!(
        decode(&ver, 0).unwrap().dropped,
        Some(MessageError::EntryVersion(1, 1))
    );
    // An unknown type.
    let mut ty = two.clone();
    ty[8 + 36] = 2;
    assert_eq!(
        decode(&ty, 0).unwrap().dropped,
        Some(MessageError::BadType(1, 2))
    );
    // A count larger than what is there.
    two[4] = 3;
    let d = decode(&two, 0).unwrap();
    assert_eq!(d.conns.len(), 2);
    assert_eq!(d.dropped, Some(MessageError::PastTheEnd(2)));
}

/// Appends an option to the one-connection message, fixing both sizes.
fn with_option(opt: &[u8]) -> Vec<u8> {
    let mut m = ONE_V4.to_vec();
    m.extend_from_slice(opt);
    let entry = (36 + opt.len()) as u16;
    m[10..12].copy_from_slice(&entry.to_be_bytes());
    let total = m.len() as u16;
    m[2..4].copy_from_slice(&total.to_be_bytes());
    m
}

#[test]
fn options_as_the_kernel_reads_them() {
    // Optional unknown option (bit 6): ignored.
    let d = decode(&with_option(&[0x45, 0x02, 0xaa, 0xbb]), 0).unwrap();
    assert_eq!(d.conns, vec![received(syn_recv())]);
    // Mandatory unknown option: this connection skipped, no drop.
    let d = decode(&with_option(&[0x05, 0x02, 0xaa, 0xbb]), 0).unwrap();
    assert!(d.conns.is_empty());
    assert_eq!(d.skipped, vec![(0, Skip::UnknownMandatoryOption(5))]);
    assert_eq!(d.dropped, None);
    // Length 0, or past the entry: dropped.
    for bad in [&[0x45, 0x00][..], &[0x45, 0x05, 0xaa][..], &[0x45][..]] {
        assert_eq!(
            decode(&with_option(bad), 0).unwrap().dropped,
            Some(MessageError::BadOptionLength(0)),
            "{bad:?}"
        );
    }
    // Sequence data of the wrong length, or twice.
    assert_eq!(
        decode(&with_option(&[0x01, 0x02, 0, 0]), 0)
            .unwrap()
            .dropped,
        Some(MessageError::BadSeqOption(0))
    );
    let mut twice = vec![0x01, 24];
    twice.extend([0u8; 24]);
    twice.extend_from_slice(&twice.clone());
    assert_eq!(
        decode(&with_option(&twice), 0).unwrap().dropped,
        Some(MessageError::BadSeqOption(0))
    );
    // Persistence engine data: rvs has no engine, the connection is
    // skipped; a name longer than 16 drops the message.
    let d = decode(
        &with_option(&[0x02, 0x03, b'a', b'b', b'c', 0x03, 0x03, b's', b'i', b'p']),
        0,
    )
    .unwrap();
    assert_eq!(
        d.skipped,
        vec![(0, Skip::PersistenceEngine(b"abc".to_vec()))]
    );
    let mut long = vec![0x03, 17];
    long.extend([b'x'; 17]);
    assert_eq!(
        decode(&with_option(&long), 0).unwrap().dropped,
        Some(MessageError::BadPeName(0))
    );
}

#[test]
fn unknown_protocols_and_states_skip_one_connection() {
    let mut m = encode_all(5, 1500, &[syn_recv(), syn_recv()]).remove(0);
    m[9] = 132; // SCTP: rvs does not forward it
    m[8 + 36 + 8 + 1] = 11; // TCP state 11: past IP_VS_TCP_S_LAST
    let d = decode(&m, 0).unwrap();
    assert_eq!(
        d.skipped,
        vec![(0, Skip::Protocol(132)), (1, Skip::State(TCP, 11))]
    );
    // UDP has one state; a template's state is forced to 0.
    let mut u = syn_recv();
    u.protocol = UDP;
    u.state = 1;
    let d = decode(&encode_all(5, 1500, &[u.clone()])[0], 0).unwrap();
    assert_eq!(d.skipped, vec![(0, Skip::State(UDP, 1))]);
    u.flags |= flags::TEMPLATE;
    u.protocol = 99;
    let d = decode(&encode_all(5, 1500, &[u])[0], 0).unwrap();
    assert_eq!(d.conns[0].state, 0);
}

#[test]
fn messages_split_at_maxlen_and_at_255_connections() {
    // 8 + 36 + 36 = 80 fits in 80; the third starts a new message.
    let m = encode_all(1, 80, &[syn_recv(), syn_recv(), syn_recv()]);
    assert_eq!(m.iter().map(Vec::len).collect::<Vec<_>>(), vec![80, 44]);
    assert_eq!((m[0][4], m[1][4]), (2, 1));
    let many = vec![syn_recv(); 300];
    let m = encode_all(1, 65_000, &many);
    assert_eq!((m[0][4], m[1][4]), (255, 45));
    assert_eq!(
        Encoder::new(1, 40).push(&syn_recv()),
        Err(EncodeError::MaxlenTooSmall(40, 36))
    );
}

#[test]
fn encoder_refuses_what_the_kernel_would_not_send() {
    let mut e = Encoder::new(1, 1500);
    let mut c = syn_recv();
    c.daddr = "fd00::1".parse().unwrap();
    assert!(matches!(e.push(&c), Err(EncodeError::MixedFamilies(..))));
    let mut c = syn_recv();
    c.flags |= flags::IN_SEQ;
    assert_eq!(e.push(&c), Err(EncodeError::SeqMismatch));
    let mut c = syn_recv();
    c.pe_name = b"sip".to_vec();
    assert_eq!(e.push(&c), Err(EncodeError::PeNameWithoutData));
    assert_eq!(e.finish(), None, "nothing was added");
}

fn arb_conn() -> impl Strategy<Value = SyncConn> {
    (
        any::<bool>(),
        prop_oneof![Just(TCP), Just(UDP)],
        0u32..4,
        any::<bool>(),
        any::<[u8; 48]>(),
        any::<(u16, u16, u16, u32, u32)>(),
        proptest::option::of(any::<[u32; 6]>()),
    )
        .prop_map(
            |(v6, protocol, fwd, template, a, (cp, vp, dp, mark, t), seq)| {
                let addr = |i: usize| -> IpAddr {
                    if v6 {
                        let mut o = [0u8; 16];
                        o.copy_from_slice(&a[i * 16..i * 16 + 16]);
                        IpAddr::V6(Ipv6Addr::from(o))
                    } else {
                        IpAddr::V4(Ipv4Addr::new(a[i], a[i + 3], a[i + 6], a[i + 9]))
                    }
                };
                let mut flags = fwd;
                if template {
                    flags |= flags::TEMPLATE;
                }
                if seq.is_some() {
                    flags |= flags::SEQ_MASK;
                }
                SyncConn {
                    protocol,
                    flags,
                    state: if template || protocol == UDP {
                        0
                    } else {
                        (t % 11) as u16
                    },
                    caddr: addr(0),
                    vaddr: addr(1),
                    daddr: addr(2),
                    cport: cp,
                    vport: vp,
                    dport: dp,
                    fwmark: mark,
                    timeout_s: t,
                    seq: seq.map(|s| {
                        (
                            Seq {
                                init_seq: s[0],
                                delta: s[1],
                                previous_delta: s[2],
                            },
                            Seq {
                                init_seq: s[3],
                                delta: s[4],
                                previous_delta: s[5],
                            },
                        )
                    }),
                    pe_data: Vec::new(),
                    pe_name: Vec::new(),
                }
            },
        )
}

proptest! {
    /// Whatever the master sends, the backup reads back (flags as a backup
    /// keeps them), in order, over however many messages it took.
    #[test]
    fn what_is_encoded_decodes(conns in proptest::collection::vec(arb_conn(), 0..40), maxlen in 150usize..1500) {
        let msgs = encode_all(3, maxlen, &conns);
        let mut back = Vec::new();
        for m in &msgs {
            prop_assert!(m.len() <= maxlen);
            let d = decode(m, 3).unwrap();
            prop_assert_eq!(d.dropped, None);
            prop_assert!(d.skipped.is_empty());
            back.extend(d.conns);
        }
        let want: Vec<SyncConn> = conns.into_iter().map(received).collect();
        prop_assert_eq!(back, want);
    }

    /// Any bytes at all: an error or a result, never a panic.
    #[test]
    fn arbitrary_bytes_never_panic(mut bytes in proptest::collection::vec(any::<u8>(), 0..400), fix_size in any::<bool>()) {
        if fix_size && bytes.len() >= 8 {
            let n = bytes.len() as u16;
            bytes[2..4].copy_from_slice(&n.to_be_bytes());
            bytes[0] = 0;
            bytes[5] = 1;
            bytes[6] = 0;
            bytes[7] = 0;
        }
        let _ = decode(&bytes, 0);
    }
}
