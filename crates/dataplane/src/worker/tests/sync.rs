//! The worker's part of connection sync: when a master offers a
//! connection, and what a backup makes of one.

use super::*;
use crate::worker::sync::REFRESH_S;

use rvs_packet::tcp::flags::{ACK, FIN, SYN};

/// The group and port the tests' master sends to.
const GROUP: std::net::Ipv4Addr = std::net::Ipv4Addr::new(224, 0, 0, 81);
const SYNC_PORT: u16 = 8848;

/// Reads what a worker's master sent on port 0 (the message being filled
/// sent first): each frame checked as the kernel's backup would take it
/// (multicast to the group from the port, UDP checksum valid), then its
/// entries, in order.
struct Master {
    got: std::collections::VecDeque<rvs_sync::SyncConn>,
}

impl Master {
    fn read(&mut self, w: &mut Worker, now_ms: u64) {
        w.housekeeping(now_ms);
        w.flush_sync();
        for (port, f) in std::mem::take(&mut w.generated) {
            assert_eq!(port, 0);
            let eth = EthernetFrame::new_checked(&f[..]).unwrap();
            assert_eq!(eth.dst(), MacAddr([0x01, 0x00, 0x5e, 0, 0, 81]));
            assert_eq!(eth.src(), DIRECTOR_MAC);
            let ip = Ipv4Packet::new_validated(eth.payload()).unwrap();
            assert_eq!(ip.src(), Ipv4Addr::new(192, 168, 1, 213));
            assert_eq!((ip.dst(), ip.ttl(), ip.dont_frag()), (GROUP, 1, true));
            let u = rvs_packet::udp::UdpDatagram::new_checked(ip.payload()).unwrap();
            assert_eq!(u.dst_port(), SYNC_PORT);
            assert!(u.verify_checksum_v4(ip.src(), GROUP));
            let d = rvs_sync::decode(u.payload(), 0).expect("a message the kernel reads");
            assert_eq!(d.syncid, 5);
            assert!(d.skipped.is_empty() && d.dropped.is_none(), "{d:?}");
            self.got.extend(d.conns);
        }
    }

    fn take(&mut self, w: &mut Worker, now_ms: u64) -> Option<rvs_sync::SyncConn> {
        self.read(w, now_ms);
        self.got.pop_front()
    }

    fn count(&mut self, w: &mut Worker, now_ms: u64) -> usize {
        self.read(w, now_ms);
        let n = self.got.len();
        self.got.clear();
        n
    }
}

fn start_master(w: &mut Worker) -> Master {
    let m = crate::worker::SyncMaster {
        syncid: 5,
        maxlen: 1472,
        sink: crate::worker::SyncSink::Port {
            port: 0,
            group: GROUP,
            udp_port: SYNC_PORT,
            ttl: 1,
        },
    };
    w.apply(&WorkerMsg::SyncMaster(Some(m)), 0);
    Master {
        got: Default::default(),
    }
}

fn master() -> (Worker, Master) {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let m = start_master(&mut w);
    (w, m)
}

/// Entries wait in the message being filled: a full one is sent at once,
/// one that is not after `FLUSH_MS`; a master on a non-port interface
/// hands its messages to the daemon's thread.
#[test]
fn messages_are_sent_when_full_or_old() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    let (tx, rx) = crossbeam_channel::bounded(8);
    let m = crate::worker::SyncMaster {
        syncid: 1,
        // The header and two IPv4 entries.
        maxlen: 8 + 2 * 36,
        sink: crate::worker::SyncSink::Kernel(tx),
    };
    w.apply(&WorkerMsg::SyncMaster(Some(m)), 0);
    for cport in [40000, 40001, 40002] {
        for f in [SYN, ACK, ACK] {
            w.handle(0, &mut tcp(cport, f), 1000);
        }
    }
    w.housekeeping(1000);
    let full: Vec<Vec<u8>> = rx.try_iter().collect();
    assert_eq!(
        full.len(),
        1,
        "the third entry did not fit: the first two sent"
    );
    assert_eq!(rvs_sync::decode(&full[0], 0).unwrap().conns.len(), 2);
    w.housekeeping(1000 + crate::worker::sync::FLUSH_MS - 1);
    assert!(rx.try_recv().is_err(), "the third waits");
    w.housekeeping(1000 + crate::worker::sync::FLUSH_MS);
    let old = rx.try_recv().expect("sent when old enough");
    assert_eq!(rvs_sync::decode(&old, 0).unwrap().conns[0].cport, 40002);
    assert_eq!(w.shared.counters.sync_messages.get(), 2);
    assert_eq!(w.shared.counters.sync_offered.get(), 3);
    assert!(w.generated.is_empty(), "nothing framed for a port");
}

#[test]
fn a_master_offers_a_connection_at_the_kernels_moments() {
    let (mut w, mut m) = master();
    assert_eq!(w.handle(0, &mut tcp(40000, SYN), 1000), Verdict::Tx(0));
    assert_eq!(w.handle(0, &mut tcp(40000, ACK), 1000), Verdict::Tx(0));
    assert!(
        m.take(&mut w, 1000).is_none(),
        "not before the third packet"
    );
    // The third client packet of an ESTABLISHED connection.
    assert_eq!(w.handle(0, &mut tcp(40000, ACK), 1000), Verdict::Tx(0));
    let c = m.take(&mut w, 1000).expect("sent at the third packet");
    assert_eq!(c.protocol, rvs_sync::TCP);
    assert_eq!(c.state, TcpState::Established as u16);
    assert_eq!(c.flags & !rvs_sync::flags::SYNC, rvs_sync::flags::DROUTE);
    assert_eq!((c.cport, c.vport, c.dport), (40000, 80, 80));
    assert_eq!(c.caddr, "192.168.1.50".parse::<IpAddr>().unwrap());
    assert_eq!(c.daddr, RS2.parse::<IpAddr>().unwrap(), "rr's first pick");
    assert_eq!(c.timeout_s, 900, "the ESTABLISHED timeout");
    // With its timer where it was, nothing more; FIN changes the state:
    // sent.
    assert_eq!(w.handle(0, &mut tcp(40000, ACK), 1000), Verdict::Tx(0));
    assert!(m.take(&mut w, 1000).is_none());
    assert_eq!(
        w.handle(0, &mut tcp(40000, FIN | ACK), 1001),
        Verdict::Tx(0)
    );
    let fin = m.take(&mut w, 1001).expect("sent on FIN_WAIT");
    assert_eq!(fin.state, TcpState::FinWait as u16);
    assert_eq!(w.shared.counters.sync_offered.get(), 2);
}

#[test]
fn an_established_connection_is_sent_again_every_few_seconds_of_traffic() {
    let (mut w, mut m) = master();
    let mut now = 1000;
    for f in [SYN, ACK, ACK, ACK] {
        w.handle(0, &mut tcp(40001, f), now);
    }
    assert_eq!(m.count(&mut w, now), 1);
    // A packet every 100 ms for 10 s: sent again once every REFRESH_S.
    let mut sent = 0;
    for _ in 0..100 {
        now += 100;
        w.handle(0, &mut tcp(40001, ACK), now);
        sent += m.count(&mut w, now);
    }
    assert_eq!(sent, 10 / REFRESH_S as usize);
    // Stopped: nothing more offered.
    w.apply(&WorkerMsg::SyncMaster(None), now);
    for _ in 0..30 {
        now += 100;
        w.handle(0, &mut tcp(40001, ACK), now);
    }
    assert_eq!(m.count(&mut w, now), 0);
}

fn synced(state: TcpState, cport: u16, daddr: &str) -> rvs_sync::SyncConn {
    rvs_sync::SyncConn {
        protocol: rvs_sync::TCP,
        flags: rvs_sync::flags::DROUTE | rvs_sync::flags::SYNC,
        state: state as u16,
        caddr: "192.168.1.50".parse().unwrap(),
        vaddr: "192.168.1.10".parse().unwrap(),
        daddr: daddr.parse().unwrap(),
        cport,
        vport: 80,
        dport: 80,
        fwmark: 0,
        timeout_s: 900,
        seq: None,
        pe_data: Vec::new(),
        pe_name: Vec::new(),
    }
}

#[test]
fn a_backup_follows_the_masters_choice_not_its_scheduler() {
    let mut w = walkthrough(Protocol::Tcp, 80);
    // rr here would pick RS2 first; the master chose RS1.
    w.apply(
        &WorkerMsg::Synced(synced(TcpState::Established, 41000, RS1)),
        1000,
    );
    assert_eq!(w.shared.counters.synced_created.get(), 1);
    let shared = w
        .director
        .service(&vip_key(Protocol::Tcp, 80))
        .unwrap()
        .dests
        .iter()
        .find(|d| d.spec.addr == RS1.parse::<IpAddr>().unwrap())
        .unwrap()
        .shared
        .clone();
    assert_eq!(
        shared
            .activeconns
            .load(std::sync::atomic::Ordering::Relaxed),
        1,
        "counted active on its server"
    );
    // A mid-flow packet (no SYN) goes to RS1, nothing scheduled.
    assert_eq!(w.handle(0, &mut tcp(41000, ACK), 1100), Verdict::Tx(0));
    assert_eq!(w.handle(0, &mut tcp(41000, ACK), 1100), Verdict::Tx(0));
    let mut f = tcp(41000, ACK);
    w.handle(0, &mut f, 1200);
    assert_eq!(dst_mac(&f), RS1_MAC);
    assert_eq!(w.shared.counters.new_connections.get(), 0);
    // An update moves its state (and its server's counts).
    w.apply(
        &WorkerMsg::Synced(synced(TcpState::TimeWait, 41000, RS1)),
        1300,
    );
    assert_eq!(w.shared.counters.synced_updated.get(), 1);
    assert_eq!(
        shared
            .activeconns
            .load(std::sync::atomic::Ordering::Relaxed),
        0
    );
    // Unknown servers and services are skipped, counted.
    w.apply(
        &WorkerMsg::Synced(synced(TcpState::Established, 41001, "192.168.1.99")),
        1300,
    );
    let mut other = synced(TcpState::Established, 41002, RS1);
    other.vport = 443;
    w.apply(&WorkerMsg::Synced(other), 1300);
    assert_eq!(w.shared.counters.synced_skipped.get(), 2);
    assert_eq!(w.conns.len(), 1);
}

/// A persistent service: the master sends the connection's template with
/// it; on the backup, the template sends the client network's next
/// connection to the master's server, not to its own scheduler's pick.
#[test]
fn persistence_templates_go_with_their_connections() {
    let spec = ServiceSpec {
        persistent: Some(360),
        netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::new(255, 255, 255, 0)),
        ..rr_spec(Protocol::Tcp, 80)
    };
    let mut w = with_service(spec.clone());
    let mut m = start_master(&mut w);
    // Three packets of a connection from 192.168.1.50 (rr: RS2 first).
    for f in [SYN, ACK, ACK] {
        let mut p = tcp(40000, f);
        assert_eq!(w.handle(0, &mut p, 1000), Verdict::Tx(0));
        assert_eq!(dst_mac(&p), RS2_MAC);
    }
    m.read(&mut w, 1000);
    let sent: Vec<rvs_sync::SyncConn> = m.got.drain(..).collect();
    assert_eq!(sent.len(), 2, "the connection and its template: {sent:?}");
    let t = &sent[1];
    assert_eq!(
        t.flags & rvs_sync::flags::TEMPLATE,
        rvs_sync::flags::TEMPLATE
    );
    assert_eq!(
        t.caddr,
        "192.168.1.0".parse::<IpAddr>().unwrap(),
        "the client's /24"
    );
    assert_eq!((t.cport, t.vport, t.dport), (0, 80, 80));
    assert_eq!(t.daddr, RS2.parse::<IpAddr>().unwrap());
    assert_eq!(t.timeout_s, 360);
    // The backup: rr would pick RS2 first; the master's template says RS1
    // (as if it had picked RS1). Another client of the /24 goes to RS1.
    let mut b = with_service(spec);
    let mut tpl = t.clone();
    tpl.daddr = RS1.parse().unwrap();
    tpl.flags &= !rvs_sync::flags::SYNC;
    b.apply(&WorkerMsg::Synced(tpl), 2000);
    assert_eq!(b.shared.counters.synced_created.get(), 1);
    let mut p = syn_from([192, 168, 1, 77], 41000, 80);
    assert_eq!(b.handle(0, &mut p, 2100), Verdict::Tx(0));
    assert_eq!(dst_mac(&p), RS1_MAC, "through the synced template");
    // Sent again: renewed, not made twice.
    b.apply(&WorkerMsg::Synced(t.clone()), 2200);
    assert_eq!(b.shared.counters.synced_updated.get(), 1);
    assert_eq!(b.templates.len(), 1);
}
