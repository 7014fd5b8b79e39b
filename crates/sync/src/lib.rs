//! IPVS connection synchronisation, version 1, on the wire: the messages
//! the kernel's sync daemon multicasts (net/netfilter/ipvs/ip_vs_sync.c),
//! so that rvs directors and kernel directors can be master and backup for
//! each other.
//!
//! Why this file is long (about 570 lines): one wire format, its constants,
//! encoder and decoder side by side, so that each field is written and read
//! in one place; the tests are in `tests.rs`.
//!
//! Only the format lives here ([`Encoder`], [`decode`]); no sockets, no
//! connection table. The layouts, written down once as byte ranges:
//!
//! ```text
//! message header (8 bytes)
//!   0 reserved (0: a version 0 receiver drops the message)  1 syncid
//!   2..4 size of the whole message, big-endian             4 connection count
//!   5 version (1)                                           6..8 spare (0)
//! connection (36 bytes for IPv4, 72 for IPv6, then options)
//!   0 type (bit 0: IPv6)  1 protocol  2..4 version << 12 | size (with options)
//!   4..8 flags  8..10 state  10..12 cport  12..14 vport  14..16 dport
//!   16..20 fwmark  20..24 timeout in seconds
//!   24.. caddr, vaddr, daddr (4 or 16 bytes each)
//! option: type, length (not 0), data
//!   1 sequence data (24 bytes: in and out, each init_seq, delta,
//!     previous_delta); 2 persistence engine data; 3 persistence engine
//!     name; an unknown type with bit 6 set is skipped, without it the
//!     connection is refused
//! ```
//!
//! Every multi-byte field is big-endian. A connection after the first
//! starts 4-byte aligned: the encoder puts zero padding before it (not
//! after the last one), and the message size counts the padding.
//!
//! [`decode`] follows the kernel's receiver (`ip_vs_process_message`):
//! errors in a message's framing drop the rest of the message (the
//! connections before stay decoded, as the kernel has applied them by
//! then); errors in one connection's content (an unknown protocol or
//! state, a persistence engine rvs lacks, an unknown mandatory option)
//! skip that connection alone.

#![forbid(unsafe_code)]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

pub mod frame;

/// The kernel's default multicast group and port (`IP_VS_SYNC_GROUP`,
/// `IP_VS_SYNC_PORT`).
pub const SYNC_GROUP: Ipv4Addr = Ipv4Addr::new(224, 0, 0, 81);
pub const SYNC_PORT: u16 = 8848;
/// `SYNC_PROTO_VER`.
pub const VERSION: u8 = 1;
pub const HEADER_LEN: usize = 8;
pub const CONN_V4_LEN: usize = 36;
pub const CONN_V6_LEN: usize = 72;
/// `sizeof(struct ip_vs_sync_conn_options)`.
pub const SEQ_OPTION_LEN: usize = 24;
/// `IP_VS_PEDATA_MAXLEN`, `IP_VS_PENAME_MAXLEN`.
pub const PE_DATA_MAX: usize = 255;
pub const PE_NAME_MAX: usize = 16;
/// The count is one byte.
pub const MAX_CONNS: usize = 255;
/// An entry's size has 12 bits (`SVER_MASK`).
const SIZE_MASK: u16 = 0x0fff;
const TYPE_INET6: u8 = 1;

/// Option types (`IPVS_OPT_*`) and the "may be ignored" bit.
pub mod option {
    pub const SEQ_DATA: u8 = 1;
    pub const PE_DATA: u8 = 2;
    pub const PE_NAME: u8 = 3;
    pub const F_PARAM: u8 = 1 << 6;
}

/// `IP_VS_CONN_F_*`, the bits of a connection's flags on the wire.
pub mod flags {
    pub const FWD_MASK: u32 = 0x0007;
    pub const MASQ: u32 = 0x0000;
    pub const LOCALNODE: u32 = 0x0001;
    pub const TUNNEL: u32 = 0x0002;
    pub const DROUTE: u32 = 0x0003;
    pub const BYPASS: u32 = 0x0004;
    pub const SYNC: u32 = 0x0020;
    pub const HASHED: u32 = 0x0040;
    pub const NOOUTPUT: u32 = 0x0080;
    pub const INACTIVE: u32 = 0x0100;
    pub const OUT_SEQ: u32 = 0x0200;
    pub const IN_SEQ: u32 = 0x0400;
    pub const SEQ_MASK: u32 = 0x0600;
    pub const NO_CPORT: u32 = 0x0800;
    pub const TEMPLATE: u32 = 0x1000;
    pub const ONE_PACKET: u32 = 0x2000;
    /// What a backup keeps of the flags it receives.
    pub const BACKUP_MASK: u32 = FWD_MASK | NOOUTPUT | INACTIVE | SEQ_MASK | NO_CPORT | TEMPLATE;
}

/// IP protocol numbers of the connections rvs forwards, and how many
/// states each has in the kernel (`IP_VS_TCP_S_LAST`, `IP_VS_UDP_S_LAST`).
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
const TCP_STATES: u16 = 11;
const UDP_STATES: u16 = 1;

/// `struct ip_vs_seq`, host order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Seq {
    pub init_seq: u32,
    pub delta: u32,
    pub previous_delta: u32,
}

/// One synchronised connection (or persistence template: `flags::TEMPLATE`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncConn {
    pub protocol: u8,
    pub flags: u32,
    pub state: u16,
    /// All three of one family.
    pub caddr: IpAddr,
    pub vaddr: IpAddr,
    pub daddr: IpAddr,
    pub cport: u16,
    pub vport: u16,
    pub dport: u16,
    pub fwmark: u32,
    pub timeout_s: u32,
    /// Sequence adjustment (in, out): sent when `flags & SEQ_MASK`.
    pub seq: Option<(Seq, Seq)>,
    /// Persistence engine data and the engine's name (the SIP engine's
    /// Call-ID); a name is sent only with data.
    pub pe_data: Vec<u8>,
    pub pe_name: Vec<u8>,
}

impl SyncConn {
    fn v6(&self) -> bool {
        self.caddr.is_ipv6()
    }

    /// The entry's length with its options (`ver_size`'s size).
    fn wire_len(&self) -> usize {
        let mut len = if self.v6() { CONN_V6_LEN } else { CONN_V4_LEN };
        if self.seq.is_some() {
            len += 2 + SEQ_OPTION_LEN;
        }
        if !self.pe_data.is_empty() {
            len += 2 + self.pe_data.len();
            if !self.pe_name.is_empty() {
                len += 2 + self.pe_name.len();
            }
        }
        len
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EncodeError {
    #[error("a connection's addresses mix IPv4 and IPv6 ({0}, {1}, {2})")]
    MixedFamilies(IpAddr, IpAddr, IpAddr),
    #[error("persistence engine data of {0} bytes (at most 255)")]
    PeDataTooLong(usize),
    #[error("persistence engine name of {0} bytes (at most 16)")]
    PeNameTooLong(usize),
    #[error("a persistence engine name without data (the kernel sends the name only with data)")]
    PeNameWithoutData,
    #[error("sequence data given but the flags have neither IN_SEQ nor OUT_SEQ, or the reverse")]
    SeqMismatch,
    #[error("a message limit of {0} bytes cannot hold one connection of {1}: raise --sync-maxlen")]
    MaxlenTooSmall(usize, usize),
}

/// Fills messages as the kernel's master does: connections in the order
/// given, each 4-byte aligned, a new message when the next one would pass
/// `maxlen` bytes or the count would pass 255.
#[derive(Debug)]
pub struct Encoder {
    syncid: u8,
    maxlen: usize,
    /// Bytes kept free before each message, for the caller's headers.
    head: usize,
    buf: Vec<u8>,
}

impl Encoder {
    /// `maxlen`: the largest message, in bytes (the kernel's
    /// `send_mesg_maxlen`, from `--sync-maxlen` and the interface's MTU).
    pub fn new(syncid: u8, maxlen: usize) -> Encoder {
        Self::with_headroom(syncid, maxlen, 0)
    }

    /// An encoder whose messages come with `head` zero bytes before them,
    /// where the caller writes its frame's headers: a master that frames
    /// its messages itself then copies none of them.
    pub fn with_headroom(syncid: u8, maxlen: usize, head: usize) -> Encoder {
        Encoder {
            syncid,
            maxlen: maxlen.min(u16::MAX as usize),
            head,
            buf: Vec::new(),
        }
    }

    fn start(&mut self) {
        self.buf.clear();
        // Filled to about maxlen: no growing on the way.
        self.buf.reserve(self.head + self.maxlen);
        self.buf.resize(self.head, 0);
        self.buf
            .extend_from_slice(&[0, self.syncid, 0, HEADER_LEN as u8, 0, VERSION, 0, 0]);
    }

    /// The message's length so far (0: none started).
    fn len(&self) -> usize {
        self.buf.len().saturating_sub(self.head)
    }

    fn count(&self) -> usize {
        self.buf.get(self.head + 4).copied().unwrap_or(0) as usize
    }

    /// Adds a connection; returns the message it completed, if it did not
    /// fit in the current one. Which connections to send is the caller's
    /// choice (the kernel sends none with `ONE_PACKET`, and templates only
    /// every `sync_period` packets).
    pub fn push(&mut self, c: &SyncConn) -> Result<Option<Vec<u8>>, EncodeError> {
        check(c)?;
        let len = c.wire_len();
        if HEADER_LEN + len > self.maxlen {
            return Err(EncodeError::MaxlenTooSmall(self.maxlen, len));
        }
        let mut done = None;
        if !self.buf.is_empty() {
            let pad = (4 - self.len() % 4) % 4;
            if self.len() + pad + len > self.maxlen || self.count() == MAX_CONNS {
                done = self.finish();
            }
        }
        if self.buf.is_empty() {
            self.start();
        }
        let aligned = self.head + self.len().next_multiple_of(4);
        self.buf.resize(aligned, 0);
        emit(c, len, &mut self.buf);
        let h = self.head;
        self.buf[h + 4] += 1;
        let size = self.len() as u16;
        self.buf[h + 2..h + 4].copy_from_slice(&size.to_be_bytes());
        Ok(done)
    }

    /// The message being filled, if it holds a connection (the kernel sends
    /// a buffer when it is full or old enough), after its headroom.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        if self.count() == 0 {
            return None;
        }
        Some(std::mem::take(&mut self.buf))
    }
}

fn check(c: &SyncConn) -> Result<(), EncodeError> {
    let v6 = c.v6();
    if c.vaddr.is_ipv6() != v6 || c.daddr.is_ipv6() != v6 {
        return Err(EncodeError::MixedFamilies(c.caddr, c.vaddr, c.daddr));
    }
    if c.pe_data.len() > PE_DATA_MAX {
        return Err(EncodeError::PeDataTooLong(c.pe_data.len()));
    }
    if c.pe_name.len() > PE_NAME_MAX {
        return Err(EncodeError::PeNameTooLong(c.pe_name.len()));
    }
    if c.pe_data.is_empty() && !c.pe_name.is_empty() {
        return Err(EncodeError::PeNameWithoutData);
    }
    if c.seq.is_some() != (c.flags & flags::SEQ_MASK != 0) {
        return Err(EncodeError::SeqMismatch);
    }
    Ok(())
}

fn seq_bytes(s: &Seq, out: &mut Vec<u8>) {
    for v in [s.init_seq, s.delta, s.previous_delta] {
        out.extend_from_slice(&v.to_be_bytes());
    }
}

fn emit(c: &SyncConn, len: usize, out: &mut Vec<u8>) {
    // The fixed part in one array and one copy: masters write an entry
    // per connection they sync, on the workers' fast path.
    fn fixed<const N: usize>(c: &SyncConn, len: usize) -> [u8; N] {
        let mut e = [0u8; N];
        e[0] = if N == CONN_V6_LEN { TYPE_INET6 } else { 0 };
        e[1] = c.protocol;
        // Entry version 0 in the top four bits.
        e[2..4].copy_from_slice(&((len as u16) & SIZE_MASK).to_be_bytes());
        e[4..8].copy_from_slice(&(c.flags & !flags::HASHED).to_be_bytes());
        e[8..10].copy_from_slice(&c.state.to_be_bytes());
        e[10..12].copy_from_slice(&c.cport.to_be_bytes());
        e[12..14].copy_from_slice(&c.vport.to_be_bytes());
        e[14..16].copy_from_slice(&c.dport.to_be_bytes());
        e[16..20].copy_from_slice(&c.fwmark.to_be_bytes());
        e[20..24].copy_from_slice(&c.timeout_s.to_be_bytes());
        let alen = (N - 24) / 3;
        for (i, a) in [c.caddr, c.vaddr, c.daddr].into_iter().enumerate() {
            let at = 24 + alen * i;
            // `check` made sure all three are of one family.
            match a {
                IpAddr::V4(a) if alen == 4 => e[at..at + 4].copy_from_slice(&a.octets()),
                IpAddr::V6(a) if alen == 16 => e[at..at + 16].copy_from_slice(&a.octets()),
                _ => {}
            }
        }
        e
    }
    if c.v6() {
        out.extend_from_slice(&fixed::<CONN_V6_LEN>(c, len));
    } else {
        out.extend_from_slice(&fixed::<CONN_V4_LEN>(c, len));
    }
    if let Some((i, o)) = &c.seq {
        out.extend_from_slice(&[option::SEQ_DATA, SEQ_OPTION_LEN as u8]);
        seq_bytes(i, out);
        seq_bytes(o, out);
    }
    if !c.pe_data.is_empty() {
        out.extend_from_slice(&[option::PE_DATA, c.pe_data.len() as u8]);
        out.extend_from_slice(&c.pe_data);
        if !c.pe_name.is_empty() {
            out.extend_from_slice(&[option::PE_NAME, c.pe_name.len() as u8]);
            out.extend_from_slice(&c.pe_name);
        }
    }
}

/// Why a message, or the rest of one, was dropped (the kernel's
/// "Dropping buffer" cases).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum MessageError {
    #[error("sync message of {0} bytes: shorter than its header")]
    TooShort(usize),
    #[error("sync message of {0} bytes says it has {1}")]
    BadSize(usize, u16),
    #[error("sync message for syncid {0}, not ours")]
    OtherSyncId(u8),
    #[error("a version 0 sync message (the master has sync_version 0): rvs speaks version 1 only")]
    Version0,
    #[error("connection {0} runs past the end of the message")]
    PastTheEnd(usize),
    #[error("connection {0} has entry version {1}, not 0")]
    EntryVersion(usize, u16),
    #[error("connection {0} has an unknown type {1:#x}")]
    BadType(usize, u8),
    #[error("connection {0} is shorter than its addresses")]
    EntryTooShort(usize),
    #[error("connection {0}: option header or length beyond the entry, or length 0")]
    BadOptionLength(usize),
    #[error("connection {0}: sequence option malformed or repeated")]
    BadSeqOption(usize),
    #[error("connection {0}: persistence engine data too long or repeated")]
    BadPeData(usize),
    #[error("connection {0}: persistence engine name too long or repeated")]
    BadPeName(usize),
}

/// Why one connection was skipped; the message goes on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// An option type without `F_PARAM` that the receiver does not know.
    UnknownMandatoryOption(u8),
    /// A protocol rvs does not forward (the kernel also knows SCTP, AH,
    /// ESP when built with them).
    Protocol(u8),
    /// A state beyond the protocol's last.
    State(u8, u16),
    /// Persistence engine data: rvs has no persistence engines (the
    /// kernel's SIP engine), or the data came without a name.
    PersistenceEngine(Vec<u8>),
}

/// What a message held.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Decoded {
    pub syncid: u8,
    /// The connections to create or update, in order: flags masked to
    /// `BACKUP_MASK` with `SYNC` added, as the kernel keeps them; a
    /// template's state is 0.
    pub conns: Vec<SyncConn>,
    /// Connections skipped, by their index in the message.
    pub skipped: Vec<(usize, Skip)>,
    /// Set when the rest of the message was dropped.
    pub dropped: Option<MessageError>,
}

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Decodes a datagram. `backup_syncid` 0 takes every syncid, as the
/// kernel's backup does; a message that is not for us at all is an `Err`.
pub fn decode(buf: &[u8], backup_syncid: u8) -> Result<Decoded, MessageError> {
    if buf.len() < 4 {
        return Err(MessageError::TooShort(buf.len()));
    }
    let size = be16(buf, 2);
    if size as usize != buf.len() {
        return Err(MessageError::BadSize(buf.len(), size));
    }
    let syncid = buf[1];
    if backup_syncid != 0 && syncid != backup_syncid {
        return Err(MessageError::OtherSyncId(syncid));
    }
    if buf.len() < HEADER_LEN || buf[0] != 0 || buf[5] != VERSION || be16(buf, 6) != 0 {
        return Err(MessageError::Version0);
    }
    let mut out = Decoded {
        syncid,
        ..Decoded::default()
    };
    let mut next = HEADER_LEN;
    for i in 0..buf[4] as usize {
        let p = next;
        if p + CONN_V4_LEN > buf.len() {
            out.dropped = Some(MessageError::PastTheEnd(i));
            break;
        }
        let ver_size = be16(buf, p + 2);
        let size = (ver_size & SIZE_MASK) as usize;
        if p + size > buf.len() {
            out.dropped = Some(MessageError::PastTheEnd(i));
            break;
        }
        if ver_size >> 12 != 0 {
            out.dropped = Some(MessageError::EntryVersion(i, ver_size >> 12));
            break;
        }
        match conn(&buf[p..p + size], i) {
            Err(e) => {
                out.dropped = Some(e);
                break;
            }
            Ok(Ok(c)) => out.conns.push(c),
            Ok(Err(skip)) => out.skipped.push((i, skip)),
        }
        next = p + ((size + 3) & !3);
    }
    Ok(out)
}

/// One entry (`ip_vs_proc_sync_conn`): Err drops the rest of the message,
/// Ok(Err) skips this connection.
fn conn(e: &[u8], i: usize) -> Result<Result<SyncConn, Skip>, MessageError> {
    let v6 = match e.first() {
        Some(t) if t & TYPE_INET6 != 0 => true,
        Some(0) => false,
        Some(&t) => return Err(MessageError::BadType(i, t)),
        None => return Err(MessageError::EntryTooShort(i)),
    };
    let fixed = if v6 { CONN_V6_LEN } else { CONN_V4_LEN };
    if e.len() < fixed {
        return Err(MessageError::EntryTooShort(i));
    }
    let mut seq = None;
    let (mut pe_data, mut pe_name): (Option<&[u8]>, Option<&[u8]>) = (None, None);
    let mut unknown_mandatory = None;
    let mut p = fixed;
    while p < e.len() {
        if p + 2 > e.len() {
            return Err(MessageError::BadOptionLength(i));
        }
        let (ptype, plen) = (e[p], e[p + 1] as usize);
        p += 2;
        if plen == 0 || p + plen > e.len() {
            return Err(MessageError::BadOptionLength(i));
        }
        let data = &e[p..p + plen];
        match ptype & !option::F_PARAM {
            option::SEQ_DATA => {
                if plen != SEQ_OPTION_LEN || seq.is_some() {
                    return Err(MessageError::BadSeqOption(i));
                }
                let s = |at| Seq {
                    init_seq: be32(data, at),
                    delta: be32(data, at + 4),
                    previous_delta: be32(data, at + 8),
                };
                seq = Some((s(0), s(12)));
            }
            option::PE_DATA => {
                if plen > PE_DATA_MAX || pe_data.is_some() {
                    return Err(MessageError::BadPeData(i));
                }
                pe_data = Some(data);
            }
            option::PE_NAME => {
                if plen > PE_NAME_MAX || pe_name.is_some() {
                    return Err(MessageError::BadPeName(i));
                }
                pe_name = Some(data);
            }
            other if ptype & option::F_PARAM == 0 => {
                // The kernel stops at the first one; so does this.
                unknown_mandatory = Some(other);
                break;
            }
            _ => {}
        }
        p += plen;
    }
    if let Some(t) = unknown_mandatory {
        return Ok(Err(Skip::UnknownMandatoryOption(t)));
    }
    let protocol = e[1];
    let flags = be32(e, 4) & flags::BACKUP_MASK | flags::SYNC;
    let mut state = be16(e, 8);
    if flags & flags::TEMPLATE == 0 {
        let states = match protocol {
            TCP => TCP_STATES,
            UDP => UDP_STATES,
            p => return Ok(Err(Skip::Protocol(p))),
        };
        if state >= states {
            return Ok(Err(Skip::State(protocol, state)));
        }
    } else {
        // The protocol of a template does not matter for its state.
        state = 0;
    }
    if let Some(d) = pe_data {
        // With a name the kernel looks the engine up; rvs has none.
        let _ = pe_name;
        return Ok(Err(Skip::PersistenceEngine(d.to_vec())));
    }
    let addr = |at: usize| -> IpAddr {
        if v6 {
            let mut o = [0u8; 16];
            o.copy_from_slice(&e[at..at + 16]);
            IpAddr::V6(Ipv6Addr::from(o))
        } else {
            IpAddr::V4(Ipv4Addr::new(e[at], e[at + 1], e[at + 2], e[at + 3]))
        }
    };
    let w = if v6 { 16 } else { 4 };
    Ok(Ok(SyncConn {
        protocol,
        flags,
        state,
        cport: be16(e, 10),
        vport: be16(e, 12),
        dport: be16(e, 14),
        fwmark: be32(e, 16),
        timeout_s: be32(e, 20),
        caddr: addr(24),
        vaddr: addr(24 + w),
        daddr: addr(24 + 2 * w),
        seq,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    }))
}

#[cfg(test)]
mod tests;
