//! `control_proto`: request lines as rvsd's control socket reads them, each
//! deserialised as a `Request` and answered by a `ControlServer` (the
//! production one, without DPDK: its workers are stand-ins).
//!
//! Input: the first byte picks the server: without workers, or with one
//! stand-in worker (a real `Worker` that replays every message the server
//! broadcasts, once the answer is in: the server is told it applied them,
//! so it never waits). Then request lines (JSON, one per line, as
//! `rvsadm` sends them).
//!
//! Checked, besides "no panic": a line that is not a request is an error
//! the client can read; every answer serialises (the socket writes it
//! with `expect`) and the client reads it back (`Response` from the same
//! JSON); the stand-in worker replays every change the server accepted;
//! the server's replica and the worker's hold the same services.

use std::net::Ipv4Addr;
use std::sync::atomic::Ordering;
use std::sync::Arc;

use rvs_control::proto::{Request, Response};
use rvs_control::server::{ControlServer, ReloadPlan, Reloader, WorkerLink};
use rvs_dataplane::worker::PortInfo;
use rvs_dataplane::{NeighbourTable, Worker, WorkerConfig, WorkerShared};
use rvs_ipvs::persist::Templates;
use rvs_ipvs::tcp_state::Timeouts;
use rvs_packet::MacAddr;

/// Longest request line: the socket's own bound.
const MAX_LINE: usize = 4 << 20;

/// A reload that reads a fixed rules text (as rvsd's reads its file).
struct FixedRules(&'static str);

impl Reloader for FixedRules {
    fn prepare(&mut self) -> Result<ReloadPlan, String> {
        let rules = rvsadm::rules::parse_file(self.0).map_err(|e| e.to_string())?;
        let numbered: Vec<_> = rules
            .into_iter()
            .map(|r| (r.line, r.text, r.command))
            .collect();
        let desired = rvs_control::server::DesiredTable::from_rules("fuzz-rules", &numbered)?;
        Ok(ReloadPlan {
            sources: vec!["fuzz-rules".into()],
            rules: Some(desired),
            timeouts: Timeouts::default(),
            ..ReloadPlan::default()
        })
    }
}

const RELOAD_RULES: &str = "\
-A -t 10.0.0.1:80 -s wrr -p 60
-a -t 10.0.0.1:80 -r 10.0.1.2:80 -m -w 3
-a -t 10.0.0.1:80 -r 10.0.1.3:8080 -m
-A -u [2001:db8::1]:53 -s sh -b sh-port
-a -u [2001:db8::1]:53 -r [2001:db8:1::2]:53 -g
";

fn stand_in_worker() -> Worker {
    Worker::new(
        WorkerConfig {
            id: 0,
            workers: 1,
            sharding: rvs_dataplane::FlowSharding::with_seed(0),
            ports: vec![PortInfo {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                addr: Ipv4Addr::new(10, 0, 1, 1),
                prefix_len: 16,
                mtu: 1500,
                addr6: Some(("2001:db8:1::1".parse().unwrap(), 64)),
                kernel: false,
                vip_arp: rvs_dataplane::VipArp::Always,
            }],
            routes: vec![],
            conn_capacity: 64,
            timeouts: Timeouts::default(),
            arp_retry_ms: 1000,
            expire_budget: 64,
            sloppy_tcp: false,
            count_stats: true,
            defense: Default::default(),
        },
        Arc::new(NeighbourTable::new(300_000)),
        Arc::new(Templates::new()),
        Arc::new(WorkerShared::default()),
    )
}

pub fn run(data: &[u8]) {
    let Some((&setup, data)) = data.split_first() else {
        return;
    };
    let with_worker = setup & 1 != 0;
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut worker = with_worker.then(stand_in_worker);
    let links = match &worker {
        Some(w) => {
            // Told it applied everything: the server never waits (the
            // stand-in replays after each answer).
            w.shared().applied.store(u64::MAX, Ordering::Release);
            vec![WorkerLink::new(tx, w.shared().clone(), 1)]
        }
        None => vec![],
    };
    let mut server = ControlServer::new(links, 4096, Arc::new(Templates::new()))
        .with_local_networks(&[(Ipv4Addr::new(10, 0, 1, 1), 16)])
        .with_reloader(
            Box::new(FixedRules(RELOAD_RULES)),
            Arc::new(std::sync::atomic::AtomicBool::new(false)),
        );
    for line in data.split(|&b| b == b'\n') {
        // The socket reads a line of UTF-8 or gives up on the client.
        let Ok(line) = std::str::from_utf8(&line[..line.len().min(MAX_LINE)]) else {
            continue;
        };
        let response = match serde_json::from_str::<Request>(line) {
            // With a stand-in worker, -Lc would wait for rows the worker
            // sends only after the answer: served without one instead.
            Ok(Request::ListConns { .. }) if with_worker => continue,
            Ok(req) => server.handle(req),
            Err(e) => Response::Error(format!("malformed request: {e}")),
        };
        let out = serde_json::to_string(&response).expect("responses serialise");
        let back: Response = serde_json::from_str(&out)
            .unwrap_or_else(|e| panic!("the client cannot read {out}: {e}"));
        assert_eq!(
            serde_json::to_string(&back).unwrap(),
            out,
            "the client reads what the server wrote"
        );
        if let Some(w) = worker.as_mut() {
            for msg in rx.try_iter() {
                w.apply(&msg, 1000);
            }
            let names = |d: &rvs_ipvs::Director| -> Vec<_> {
                d.services()
                    .map(|s| {
                        (
                            s.spec.clone(),
                            s.dests.iter().map(|d| d.spec).collect::<Vec<_>>(),
                        )
                    })
                    .collect()
            };
            assert_eq!(
                names(server.director()),
                names(w.director()),
                "the worker's replica is the server's"
            );
        }
    }
}
