//! Scripted packets: frames written byte by byte and put on a host's link,
//! and a watch on the far side for what the director made of them.
//!
//! This is how the TCP state machine is driven exactly: the hosts that would
//! answer for real (the phantom client, silent real servers) own no address,
//! so their kernels stay quiet and every packet the director sees is one the
//! scenario wrote.

use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use pnet_datalink::{Channel, DataLinkReceiver, DataLinkSender};
use rvs_packet::ethernet::{EtherType, EthernetFrame, MacAddr, HEADER_LEN};
use rvs_packet::ipv4::{self, Ipv4Packet};

use crate::netns::Netns;
use crate::scenario::Proto;

/// A host's link, opened for raw frames.
pub struct Tap {
    pub host: String,
    pub mac: MacAddr,
    tx: Box<dyn DataLinkSender>,
    rx: Box<dyn DataLinkReceiver>,
}

pub fn parse_mac(s: &str) -> Result<MacAddr> {
    let b: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16))
        .collect::<Result<_, _>>()
        .with_context(|| format!("bad MAC {s:?}"))?;
    Ok(MacAddr(
        b.try_into().map_err(|_| anyhow::anyhow!("bad MAC {s:?}"))?,
    ))
}

impl Tap {
    pub fn open(ns: &Netns, host: &str, iface: &str) -> Result<Tap> {
        ns.run(|| {
            let i = pnet_datalink::interfaces()
                .into_iter()
                .find(|i| i.name == iface)
                .with_context(|| format!("no {iface} in {}", ns.name))?;
            let mac = MacAddr(i.mac.context("interface without MAC")?.octets());
            let cfg = pnet_datalink::Config {
                read_timeout: Some(Duration::from_millis(50)),
                ..Default::default()
            };
            match pnet_datalink::channel(&i, cfg)? {
                Channel::Ethernet(tx, rx) => Ok(Tap {
                    host: host.to_string(),
                    mac,
                    tx,
                    rx,
                }),
                _ => bail!("not an Ethernet channel"),
            }
        })
    }

    pub fn send(&mut self, frame: &[u8]) -> Result<()> {
        match self.tx.send_to(frame, None) {
            Some(r) => Ok(r?),
            None => bail!("frame not sent"),
        }
    }

    /// Forgets frames that arrived before now.
    pub fn drain(&mut self) {
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until && self.rx.next().is_ok() {}
    }

    /// The next frame within `until` that `want` accepts.
    pub fn wait_for<T>(
        &mut self,
        until: Instant,
        mut want: impl FnMut(&[u8]) -> Option<T>,
    ) -> Option<T> {
        while Instant::now() < until {
            if let Ok(f) = self.rx.next() {
                if let Some(t) = want(f) {
                    return Some(t);
                }
            }
        }
        None
    }
}

/// A scripted TCP or UDP packet, addresses resolved.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub proto: Proto,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: u8,
    pub seq: u32,
    pub ack: u32,
    pub payload: usize,
}

pub mod tcp_flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    /// Letters in the order the transcript prints them.
    pub const LETTERS: [(char, u8); 6] = [
        ('S', SYN),
        ('F', FIN),
        ('R', RST),
        ('P', PSH),
        ('A', ACK),
        ('U', URG),
    ];
}

pub fn flags_from_letters(s: &str) -> u8 {
    s.chars()
        .filter_map(|c| tcp_flags::LETTERS.iter().find(|(l, _)| *l == c))
        .fold(0, |a, (_, b)| a | b)
}

pub fn flags_to_letters(f: u8) -> String {
    tcp_flags::LETTERS
        .iter()
        .filter(|(_, b)| f & b != 0)
        .map(|(l, _)| *l)
        .collect()
}

impl Scripted {
    /// The Ethernet frame, checksums filled in.
    pub fn frame(&self, src_mac: MacAddr, dst_mac: MacAddr, ident: u16) -> Vec<u8> {
        let l4_len = match self.proto {
            Proto::Tcp => 20,
            Proto::Udp => 8,
        } + self.payload;
        let total = 20 + l4_len;
        let mut f = vec![0u8; HEADER_LEN + total];
        {
            let mut eth = EthernetFrame::new_unchecked(&mut f[..]);
            eth.set_dst(dst_mac);
            eth.set_src(src_mac);
            eth.set_ethertype(EtherType::Ipv4);
        }
        let proto = match self.proto {
            Proto::Tcp => ipv4::protocol::TCP,
            Proto::Udp => ipv4::protocol::UDP,
        };
        Ipv4Packet::emit(
            &mut f[HEADER_LEN..],
            *self.src.ip(),
            *self.dst.ip(),
            proto,
            total as u16,
            64,
            ident,
            true,
        )
        .expect("room for the header");
        let l4 = &mut f[HEADER_LEN + 20..];
        l4[0..2].copy_from_slice(&self.src.port().to_be_bytes());
        l4[2..4].copy_from_slice(&self.dst.port().to_be_bytes());
        for (i, b) in l4.iter_mut().skip(l4_len - self.payload).enumerate() {
            *b = b'a' + (i % 26) as u8;
        }
        match self.proto {
            Proto::Tcp => {
                l4[4..8].copy_from_slice(&self.seq.to_be_bytes());
                l4[8..12].copy_from_slice(&self.ack.to_be_bytes());
                l4[12] = 5 << 4;
                l4[13] = self.flags;
                l4[14..16].copy_from_slice(&64240u16.to_be_bytes());
                let mut t = rvs_packet::TcpSegment::new_checked(&mut l4[..]).expect("built above");
                t.fill_checksum_v4(*self.src.ip(), *self.dst.ip());
            }
            Proto::Udp => {
                l4[4..6].copy_from_slice(&(l4_len as u16).to_be_bytes());
                let mut u = rvs_packet::UdpDatagram::new_checked(&mut l4[..]).expect("built above");
                u.fill_checksum_v4(*self.src.ip(), *self.dst.ip());
            }
        }
        f
    }
}

/// What a watched frame was: the IPv4/L4 addresses and TCP flags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub src_mac: MacAddr,
    pub proto: u8,
    pub src: SocketAddrV4,
    pub dst: SocketAddrV4,
    pub flags: u8,
}

pub fn parse_seen(f: &[u8]) -> Option<Seen> {
    let eth = EthernetFrame::new_checked(f).ok()?;
    if eth.ethertype() != EtherType::Ipv4 {
        return None;
    }
    let ip = Ipv4Packet::new_checked(eth.payload()).ok()?;
    let l4 = ip.payload();
    if l4.len() < 8 {
        return None;
    }
    let port = |at: usize| u16::from_be_bytes([l4[at], l4[at + 1]]);
    let flags = if ip.protocol() == ipv4::protocol::TCP && l4.len() >= 14 {
        l4[13]
    } else {
        0
    };
    Some(Seen {
        src_mac: eth.src(),
        proto: ip.protocol(),
        src: SocketAddrV4::new(ip.src(), port(0)),
        dst: SocketAddrV4::new(ip.dst(), port(2)),
        flags,
    })
}

pub fn ip_proto(p: Proto) -> u8 {
    match p {
        Proto::Tcp => ipv4::protocol::TCP,
        Proto::Udp => ipv4::protocol::UDP,
    }
}
