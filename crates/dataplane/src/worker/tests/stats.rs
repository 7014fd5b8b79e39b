//! Traffic counters: which packets count where (the kernel's
//! `ip_vs_in_stats`, `ip_vs_out_stats` and `ip_vs_conn_stats`).

use super::*;
use rvs_ipvs::stats::Stats;

use super::forwarding::{
    client_syn, frame, icmp_error, tcp_l4, two_port_worker, CLIENT_IP, DIRECTOR2_MAC, RS_IP,
    SERVER_MAC, VIP_IP,
};

/// The counters of the dest at `addr` in the service `key`, summed over
/// the workers' lanes.
fn dest_stats(w: &Worker, key: &ServiceKey, addr: &str) -> Stats {
    let svc = w.director().service(key).unwrap();
    let d = svc
        .dests
        .iter()
        .find(|d| d.spec.addr.to_string() == addr)
        .unwrap();
    d.shared.stats.sum()
}

fn ip_len(f: &[u8]) -> u64 {
    Ipv4Packet::new_checked(&f[14..]).unwrap().total_len() as u64
}

#[test]
fn dr_counts_connections_and_client_packets_per_dest() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let key = vip_key(Protocol::Tcp, 80);
    let mut sent = [Stats::default(), Stats::default()];
    // Two connections, rr: RS2 then RS1; each SYN, ACK, FIN-ACK.
    for (i, cport) in [40001u16, 40002].into_iter().enumerate() {
        for flags in [SYN, ACK, FIN_ACK] {
            let mut f = tcp(cport, flags);
            let len = ip_len(&f);
            assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
            sent[i].inpkts += 1;
            sent[i].inbytes += len;
        }
        sent[i].conns = 1;
    }
    assert_eq!(dest_stats(&w, &key, RS2), sent[0]);
    assert_eq!(dest_stats(&w, &key, RS1), sent[1]);
    // A packet of no connection is dropped and counted nowhere.
    let mut stray = tcp(40003, ACK);
    assert!(matches!(w.handle(0, &mut stray, 1), Verdict::Drop(_)));
    assert_eq!(dest_stats(&w, &key, RS2), sent[0]);
    assert_eq!(dest_stats(&w, &key, RS1), sent[1]);
}

#[test]
fn nat_counts_replies_as_outgoing() {
    let mut w = two_port_worker(FwdMethod::Masq, 8080);
    let key = vip_key(Protocol::Tcp, 80);
    let mut syn = client_syn(b"");
    let mut want = Stats {
        conns: 1,
        inpkts: 1,
        inbytes: ip_len(&syn),
        ..Stats::default()
    };
    assert_eq!(w.handle(0, &mut syn, 1), Verdict::Tx(1));
    let mut reply = frame(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(8080, 40000, SYN | ACK, b"hello"),
        64,
        true,
    );
    want.outpkts = 1;
    want.outbytes = ip_len(&reply);
    assert_eq!(w.handle(1, &mut reply, 2), Verdict::Tx(0));
    assert_eq!(dest_stats(&w, &key, "172.16.0.2"), want);
    // An ICMP error from the server about the connection passes the
    // director too: outgoing. One from the client side: incoming.
    let mut inbound = client_syn(b"");
    w.handle(0, &mut inbound, 3);
    want.inpkts += 1;
    want.inbytes += ip_len(&inbound);
    let mut err = icmp_error(
        (SERVER_MAC, DIRECTOR2_MAC),
        RS_IP,
        CLIENT_IP,
        &inbound[14..],
    );
    let err_len = ip_len(&err);
    assert_eq!(w.handle(1, &mut err, 4), Verdict::Tx(0));
    want.outpkts += 1;
    want.outbytes += err_len;
    assert_eq!(dest_stats(&w, &key, "172.16.0.2"), want);
    let synack = frame(
        (DIRECTOR_MAC, CLIENT_MAC),
        VIP_IP,
        CLIENT_IP,
        ipv4::protocol::TCP,
        &tcp_l4(80, 40000, SYN | ACK, b""),
        63,
        true,
    );
    let mut err = icmp_error((CLIENT_MAC, DIRECTOR_MAC), CLIENT_IP, VIP_IP, &synack[14..]);
    let err_len = ip_len(&err);
    assert_eq!(w.handle(0, &mut err, 5), Verdict::Tx(1));
    want.inpkts += 1;
    want.inbytes += err_len;
    assert_eq!(dest_stats(&w, &key, "172.16.0.2"), want);
}

#[test]
fn one_packet_flows_count_a_connection_each() {
    let mut w = with_service(ServiceSpec {
        one_packet: true,
        ..rr_spec(Protocol::Udp, 53)
    });
    let key = vip_key(Protocol::Udp, 53);
    let len = ip_len(&fixtures::UDP_DNS);
    for t in 0..4 {
        let mut f = fixtures::UDP_DNS.to_vec();
        assert_eq!(w.handle(0, &mut f, t), Verdict::Tx(0));
    }
    for rs in [RS1, RS2] {
        let s = dest_stats(&w, &key, rs);
        assert_eq!((s.conns, s.inpkts, s.inbytes), (2, 2, 2 * len), "{rs}");
    }
}

#[test]
fn counting_off_counts_nothing_and_forwards_the_same() {
    let mut on = walkthrough(Protocol::Tcp, 80);
    let mut off = worker();
    off.cfg.count_stats = false;
    off.conns.set_stats_lane(None);
    let mut control = Director::new();
    let key = vip_key(Protocol::Tcp, 80);
    for c in [
        Command::AddService(rr_spec(Protocol::Tcp, 80)),
        Command::AddDest(key, dest(RS1)),
        Command::AddDest(key, dest(RS2)),
    ] {
        off.apply(&WorkerMsg::Change(control.apply(&c).unwrap()), 0);
    }
    off.neigh = on.neigh.clone();
    off.neigh_reader = off.neigh.reader();
    for flags in [SYN, ACK, ACK] {
        let (mut a, mut b) = (tcp(40001, flags), tcp(40001, flags));
        assert_eq!(on.handle(0, &mut a, 1), off.handle(0, &mut b, 1));
        assert_eq!(a, b);
    }
    assert_eq!(dest_stats(&on, &key, RS2).inpkts, 3);
    assert_eq!(dest_stats(&off, &key, RS2), Stats::default());
    assert_eq!(dest_stats(&off, &key, RS1), Stats::default());
}
