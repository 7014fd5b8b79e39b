//! The Prometheus text exposition of a [`Status`].
//!
//! Why this file is long (about 610 lines): the exposition is about 390
//! lines; the rest is its tests.
//!
//! The IPVS figures carry node_exporter's ipvs collector names, help texts
//! and labels, so dashboards made for it work unchanged:
//! `node_ipvs_*_total` are the totals of /proc/net/ip_vs_stats and
//! `node_ipvs_backend_*` the real servers of /proc/net/ip_vs. What only rvs
//! knows is under `rvs_`.

use std::fmt::Write as _;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use rvs_control_proto::proto::{ServiceView, Status};
use rvs_ipvs::stats::Stats;

type Labels = Vec<(&'static str, String)>;

/// node_exporter's backend labels, in its order.
fn backend_labels(s: &ServiceView, addr: std::net::IpAddr, port: u16) -> Labels {
    key_backend_labels(&s.spec.key, addr, port)
}

fn key_backend_labels(k: &rvs_ipvs::ServiceKey, addr: std::net::IpAddr, port: u16) -> Labels {
    vec![
        ("local_address", k.addr.to_string()),
        ("local_port", k.port.to_string()),
        ("remote_address", addr.to_string()),
        ("remote_port", port.to_string()),
        ("proto", k.protocol.name().to_string()),
        // Firewall-mark services are not supported yet; node_exporter
        // leaves the label empty for address services.
        ("local_mark", String::new()),
    ]
}

fn service_labels(s: &ServiceView) -> Labels {
    let k = s.spec.key;
    vec![
        ("local_address", k.addr.to_string()),
        ("local_port", k.port.to_string()),
        ("proto", k.protocol.name().to_string()),
        ("local_mark", String::new()),
    ]
}

/// One metric family: a name, its help and type, and its samples.
fn family<M: EncodeMetric>(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    kind: MetricType,
    samples: impl IntoIterator<Item = (Labels, M)>,
) -> std::fmt::Result {
    let mut m = enc.encode_descriptor(name, help, None, kind)?;
    for (labels, v) in samples {
        if labels.is_empty() {
            v.encode(m.encode_family(&Labels::new())?)?;
        } else {
            v.encode(m.encode_family(&labels)?)?;
        }
    }
    Ok(())
}

fn counters(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, u64)>,
) -> std::fmt::Result {
    family(
        enc,
        name,
        help,
        MetricType::Counter,
        samples.into_iter().map(|(l, v)| (l, ConstCounter::new(v))),
    )
}

fn gauges(
    enc: &mut DescriptorEncoder,
    name: &str,
    help: &str,
    samples: impl IntoIterator<Item = (Labels, i64)>,
) -> std::fmt::Result {
    family(
        enc,
        name,
        help,
        MetricType::Gauge,
        samples.into_iter().map(|(l, v)| (l, ConstGauge::new(v))),
    )
}

/// One of the traffic counters: metric name suffix, what it counts, and
/// where it is in [`Stats`].
type Traffic = (&'static str, &'static str, fn(&Stats) -> u64);

/// The five traffic counters of `struct ip_vs_stats`.
const TRAFFIC: [Traffic; 5] = [
    ("connections", "connections made", |s| s.conns),
    ("incoming_packets", "incoming packets", |s| s.inpkts),
    ("outgoing_packets", "outgoing packets", |s| s.outpkts),
    ("incoming_bytes", "incoming bytes", |s| s.inbytes),
    ("outgoing_bytes", "outgoing bytes", |s| s.outbytes),
];

/// What `rvsadm --counters` names, and what it means, for the help text;
/// counters not listed here are exported with a generic one.
fn worker_counter_help(name: &str) -> &'static str {
    match name {
        "rx_packets" => "Packets the worker received from its queues.",
        "tx_packets" => "Packets the worker's transmit bursts took.",
        "forwarded" => "Packets forwarded.",
        "new_connections" => "Connections the worker scheduled.",
        "conns_expired" => "Connections that timed out.",
        "redirected" => "Packets handed over the ring to the worker owning their connection.",
        "redirected_in" => "Packets received over the ring from other workers.",
        "idle_sleeps" => "Naps of the idle back-off.",
        "idle_woken" => "Naps of the idle back-off that a received frame ended early.",
        "to_kernel" => "Frames handed to the director's kernel interface (the exception path).",
        "from_kernel" => "Frames the director's kernel sent out of its port (the exception path).",
        "half_open_reclaimed" => {
            "Half-open connections that gave their place in a full table to a new one."
        }
        "entries_dropped" => "Connections the SYN-flood defence's drop_entry removed.",
        _ => "A dataplane event count of the worker (see rvsadm --counters).",
    }
}

#[derive(Debug)]
struct StatusCollector(Status);

impl Collector for StatusCollector {
    fn encode(&self, mut enc: DescriptorEncoder) -> std::fmt::Result {
        let st = &self.0;
        let t = &st.totals.stats;
        // node_exporter: the totals of /proc/net/ip_vs_stats.
        let totals = [
            (
                "node_ipvs_connections",
                "The total number of connections made.",
                t.conns,
            ),
            (
                "node_ipvs_incoming_packets",
                "The total number of incoming packets.",
                t.inpkts,
            ),
            (
                "node_ipvs_outgoing_packets",
                "The total number of outgoing packets.",
                t.outpkts,
            ),
            (
                "node_ipvs_incoming_bytes",
                "The total amount of incoming data.",
                t.inbytes,
            ),
            (
                "node_ipvs_outgoing_bytes",
                "The total amount of outgoing data.",
                t.outbytes,
            ),
        ];
        for (name, help, v) in totals {
            counters(&mut enc, name, help, [(Labels::new(), v)])?;
        }
        // node_exporter: the real servers of /proc/net/ip_vs.
        let services = &st.listing.services;
        let backends = || {
            services.iter().flat_map(|s| {
                s.dests
                    .iter()
                    .map(move |d| (backend_labels(s, d.spec.addr, d.spec.port), d))
            })
        };
        gauges(
            &mut enc,
            "node_ipvs_backend_connections_active",
            "The current active connections by local and remote address.",
            backends().map(|(l, d)| (l, d.active as i64)),
        )?;
        gauges(
            &mut enc,
            "node_ipvs_backend_connections_inactive",
            "The current inactive connections by local and remote address.",
            backends().map(|(l, d)| (l, d.inactive as i64)),
        )?;
        gauges(
            &mut enc,
            "node_ipvs_backend_weight",
            "The current backend weight by local and remote address.",
            backends().map(|(l, d)| (l, d.spec.weight as i64)),
        )?;
        // rvs-keepalived's verdict per real server, with the labels above:
        // also for servers it took out of the table (down), which the
        // gauges above no longer show.
        if let Some(h) = &st.health {
            gauges(
                &mut enc,
                "rvs_backend_up",
                "Whether rvs-keepalived's checks hold the real server up (1) or down (0).",
                h.virtual_servers.iter().flat_map(|vs| {
                    vs.services.iter().flat_map(move |k| {
                        vs.real_servers
                            .iter()
                            .map(move |r| (key_backend_labels(k, r.addr, r.port), i64::from(r.up)))
                    })
                }),
            )?;
        }

        // The kernel keeps these per service and per real server too
        // (`ipvsadm -L --stats`); node_exporter does not export them.
        for (suffix, what, get) in TRAFFIC {
            counters(
                &mut enc,
                &format!("rvs_ipvs_service_{suffix}"),
                &format!("The number of {what} by virtual service (ipvsadm -L --stats)."),
                services.iter().map(|s| (service_labels(s), get(&s.stats))),
            )?;
            counters(
                &mut enc,
                &format!("rvs_ipvs_backend_{suffix}"),
                &format!("The number of {what} by real server (ipvsadm -L --stats)."),
                backends().map(|(l, d)| (l, get(&d.stats))),
            )?;
        }
        self.encode_workers(&mut enc)?;
        self.encode_ports(&mut enc)
    }
}

impl StatusCollector {
    fn encode_workers(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let workers = &self.0.workers;
        let label = |w: usize| vec![("worker", w.to_string())];
        let names: Vec<&str> = workers
            .first()
            .map(|w| w.counters.iter().map(|(k, _)| k.as_str()).collect())
            .unwrap_or_default();
        let value = |w: &rvs_control_proto::proto::WorkerStatus, name: &str| {
            w.counters
                .iter()
                .find(|(k, _)| k == name)
                .map_or(0, |(_, v)| *v)
        };
        for name in names.iter().filter(|n| !n.starts_with("drop_")) {
            if *name == "connections" {
                continue;
            }
            counters(
                enc,
                &format!("rvs_worker_{name}"),
                worker_counter_help(name),
                workers.iter().map(|w| (label(w.worker), value(w, name))),
            )?;
        }
        counters(
            enc,
            "rvs_drops",
            "Packets dropped, by worker and reason (see rvsadm --counters).",
            workers.iter().flat_map(|w| {
                w.counters.iter().filter_map(move |(k, v)| {
                    let reason = k.strip_prefix("drop_")?;
                    Some((
                        vec![
                            ("worker", w.worker.to_string()),
                            ("reason", reason.to_string()),
                        ],
                        *v,
                    ))
                })
            }),
        )?;
        gauges(
            enc,
            "rvs_conn_table_entries",
            "Connections in the worker's table.",
            workers
                .iter()
                .map(|w| (label(w.worker), value(w, "connections") as i64)),
        )?;
        gauges(
            enc,
            "rvs_conn_table_capacity",
            "Connections the worker's table holds at most.",
            workers
                .iter()
                .map(|w| (label(w.worker), w.conn_capacity as i64)),
        )?;
        let mut m = enc.encode_descriptor(
            "rvs_burst_duration_seconds",
            "How long the passes of the worker's poll loop that moved packets took.",
            None,
            MetricType::Histogram,
        )?;
        for w in workers {
            histogram(&mut m, &label(w.worker), &w.bursts)?;
        }
        Ok(())
    }

    fn encode_ports(&self, enc: &mut DescriptorEncoder) -> std::fmt::Result {
        let ports = &self.0.ports;
        let label = |p: &rvs_control_proto::proto::PortStatus| vec![("port", p.name.clone())];
        type Get = fn(&rvs_control_proto::proto::PortStatus) -> u64;
        let list: [(&str, &str, Get); 8] = [
            (
                "rvs_port_rx_packets",
                "Packets the port received (rte_eth_stats ipackets).",
                |p| p.ipackets,
            ),
            (
                "rvs_port_tx_packets",
                "Packets the port sent (opackets).",
                |p| p.opackets,
            ),
            (
                "rvs_port_rx_bytes",
                "Bytes the port received (ibytes).",
                |p| p.ibytes,
            ),
            ("rvs_port_tx_bytes", "Bytes the port sent (obytes).", |p| {
                p.obytes
            }),
            (
                "rvs_port_rx_missed",
                "Packets the device dropped with no receive buffer free: a full ring (imissed).",
                |p| p.imissed,
            ),
            (
                "rvs_port_rx_errors",
                "Erroneous received packets (ierrors).",
                |p| p.ierrors,
            ),
            (
                "rvs_port_tx_errors",
                "Failed transmissions (oerrors).",
                |p| p.oerrors,
            ),
            (
                "rvs_port_rx_nombuf",
                "Receive failures for want of an mbuf (rx_nombuf).",
                |p| p.rx_nombuf,
            ),
        ];
        for (name, help, get) in list {
            counters(enc, name, help, ports.iter().map(|p| (label(p), get(p))))?;
        }
        Ok(())
    }
}

fn histogram(
    m: &mut MetricEncoder,
    labels: &Labels,
    h: &rvs_control_proto::proto::Histogram,
) -> std::fmt::Result {
    let buckets: Vec<(f64, u64)> = h
        .bounds_ns
        .iter()
        .zip(&h.counts)
        .map(|(b, c)| (*b as f64 / 1e9, *c))
        .collect();
    let count = h.counts.iter().sum();
    m.encode_family(labels)?.encode_histogram::<Labels>(
        h.sum_ns as f64 / 1e9,
        count,
        &buckets,
        None,
    )
}

/// The exposition, in Prometheus's text format (version 0.0.4, which
/// node_exporter serves too).
pub fn encode(status: Status) -> String {
    let mut reg = Registry::default();
    reg.register_collector(Box::new(StatusCollector(status)));
    let mut out = String::new();
    if let Err(e) = prometheus_client::encoding::prometheus_text::encode(&mut out, &reg) {
        // Formatting into a String fails only on a bug in an encoder.
        let _ = writeln!(out, "# encoding failed: {e}");
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use rvs_control_proto::proto::{
        DestView, Histogram, Listing, PortStatus, Totals, WorkerStatus,
    };
    use rvs_ipvs::stats::Rates;
    use rvs_ipvs::{DestSpec, FwdMethod, Protocol, ServiceKey, ServiceSpec};

    pub(crate) fn status() -> Status {
        let key = ServiceKey {
            protocol: Protocol::Tcp,
            addr: "192.168.1.10".parse().unwrap(),
            port: 80,
        };
        let dest = |a: &str, w, active, inactive, conns| DestView {
            spec: DestSpec {
                addr: a.parse().unwrap(),
                port: 80,
                fwd: FwdMethod::Route,
                weight: w,
                u_threshold: 0,
                l_threshold: 0,
            },
            active,
            inactive,
            persistent: 0,
            stats: Stats {
                conns,
                inpkts: 5 * conns,
                outpkts: 0,
                inbytes: 300 * conns,
                outbytes: 0,
            },
            rates: Rates::default(),
        };
        Status {
            listing: Listing {
                conn_table_size: 2048,
                services: vec![rvs_control_proto::proto::ServiceView {
                    spec: ServiceSpec {
                        key,
                        scheduler: "wrr".into(),
                        sched_flags: 0,
                        persistent: None,
                        netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
                        one_packet: false,
                    },
                    dests: vec![
                        dest("192.168.1.193", 1, 0, 2, 2),
                        dest("192.168.1.220", 3, 1, 5, 6),
                    ],
                    stats: Stats {
                        conns: 8,
                        inpkts: 40,
                        outpkts: 0,
                        inbytes: 2400,
                        outbytes: 0,
                    },
                    rates: Rates::default(),
                }],
            },
            totals: Totals {
                stats: Stats {
                    conns: 9,
                    inpkts: 44,
                    outpkts: 1,
                    inbytes: 2600,
                    outbytes: 60,
                },
                rates: Rates::default(),
                workers: vec![Stats::default()],
            },
            workers: vec![WorkerStatus {
                worker: 0,
                lcore: 1,
                counters: vec![
                    ("rx_packets".into(), 50),
                    ("connections".into(), 8),
                    ("redirected".into(), 0),
                    ("drop_no_service".into(), 3),
                    ("drop_bad_ip_checksum".into(), 0),
                ],
                conn_capacity: 1024,
                bursts: Histogram {
                    bounds_ns: vec![1_000, 10_000],
                    counts: vec![4, 2, 1],
                    sum_ns: 30_000,
                },
            }],
            ports: vec![PortStatus {
                name: "lan".into(),
                ipackets: 51,
                imissed: 7,
                ..PortStatus::default()
            }],
            health: None,
        }
    }

    /// rvs-keepalived's view of the fixture's service: 192.168.1.220 up,
    /// 192.168.1.193 down (and out of its table).
    pub(crate) fn health() -> rvs_control_proto::health::HealthStatus {
        use rvs_control_proto::health::{HealthStatus, RsHealth, VsHealth};
        let rs = |a: &str, up| RsHealth {
            name: format!("[{a}]:tcp:80"),
            addr: a.parse().unwrap(),
            port: 80,
            up,
            weight: up.then_some(3),
            configured_weight: 3,
            flaps: u64::from(!up),
            since_ms: None,
            last_check_ms: Some(1),
            last_error: (!up).then(|| "TCP_CHECK: connection refused".into()),
            checkers: vec![],
        };
        HealthStatus {
            pid: 1,
            config: "/etc/keepalived/keepalived.conf".into(),
            updated_ms: 1,
            virtual_servers: vec![VsHealth {
                name: "[192.168.1.10]:tcp:80".into(),
                services: vec![status().listing.services[0].spec.key],
                quorum_up: true,
                quorum: 1,
                hysteresis: 0,
                live_weight: 3,
                sorry_server: None,
                real_servers: vec![rs("192.168.1.220", true), rs("192.168.1.193", false)],
            }],
        }
    }

    #[test]
    fn health_gauges_per_real_server() {
        let text = encode(status());
        assert!(
            !text.contains("rvs_backend_up"),
            "no rvs-keepalived, no gauges"
        );
        let text = encode(Status {
            health: Some(health()),
            ..status()
        });
        for line in [
            "# TYPE rvs_backend_up gauge",
            "rvs_backend_up{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.220\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 1",
            "rvs_backend_up{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.193\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 0",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn node_exporter_names_labels_and_help() {
        let text = encode(status());
        for line in [
            "# HELP node_ipvs_connections_total The total number of connections made.",
            "# TYPE node_ipvs_connections_total counter",
            "node_ipvs_connections_total 9",
            "node_ipvs_incoming_packets_total 44",
            "node_ipvs_outgoing_packets_total 1",
            "node_ipvs_incoming_bytes_total 2600",
            "node_ipvs_outgoing_bytes_total 60",
            "# TYPE node_ipvs_backend_connections_active gauge",
            "node_ipvs_backend_connections_active{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.220\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 1",
            "node_ipvs_backend_connections_inactive{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.193\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 2",
            "node_ipvs_backend_weight{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.220\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 3",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
    }

    #[test]
    fn rvs_metrics_per_service_worker_and_port() {
        let text = encode(status());
        for line in [
            "rvs_ipvs_service_connections_total{local_address=\"192.168.1.10\",local_port=\"80\",proto=\"TCP\",local_mark=\"\"} 8",
            "rvs_ipvs_backend_incoming_packets_total{local_address=\"192.168.1.10\",local_port=\"80\",remote_address=\"192.168.1.220\",remote_port=\"80\",proto=\"TCP\",local_mark=\"\"} 30",
            "rvs_worker_rx_packets_total{worker=\"0\"} 50",
            "rvs_worker_redirected_total{worker=\"0\"} 0",
            "rvs_drops_total{worker=\"0\",reason=\"no_service\"} 3",
            "rvs_drops_total{worker=\"0\",reason=\"bad_ip_checksum\"} 0",
            "rvs_conn_table_entries{worker=\"0\"} 8",
            "rvs_conn_table_capacity{worker=\"0\"} 1024",
            "rvs_port_rx_missed_total{port=\"lan\"} 7",
            "rvs_port_rx_packets_total{port=\"lan\"} 51",
            "# TYPE rvs_burst_duration_seconds histogram",
            "rvs_burst_duration_seconds_bucket{worker=\"0\",le=\"1e-06\"} 4",
            "rvs_burst_duration_seconds_bucket{worker=\"0\",le=\"1e-05\"} 6",
            "rvs_burst_duration_seconds_bucket{worker=\"0\",le=\"+Inf\"} 7",
            "rvs_burst_duration_seconds_count{worker=\"0\"} 7",
            "rvs_burst_duration_seconds_sum{worker=\"0\"} 0.00003",
        ] {
            assert!(text.lines().any(|l| l == line), "missing {line:?} in\n{text}");
        }
        // The live table size is a gauge, not a worker counter.
        assert!(!text.contains("rvs_worker_connections_total"));
    }

    #[test]
    fn every_sample_line_parses_as_prometheus_text() {
        // name{labels} value: a crude check that nothing is malformed.
        for l in encode(status()).lines().filter(|l| !l.starts_with('#')) {
            let (series, value) = l.rsplit_once(' ').unwrap();
            assert!(
                value.parse::<f64>().is_ok() || value == "+Inf",
                "bad value in {l}"
            );
            let name = series.split('{').next().unwrap();
            assert!(
                name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'),
                "bad name in {l}"
            );
        }
    }
}
