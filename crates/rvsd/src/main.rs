//! rvsd: the director daemon.
//!
//! Start-up: read the config, start the EAL (falling back to --no-huge when
//! no hugepages are to be had), bring the ports up with one queue pair per
//! worker, launch one poll loop per worker lcore, start the metrics endpoint
//! (if configured) from the main lcore, then serve the control socket on
//! the main lcore until SIGINT or SIGTERM.
//!
//! The rules file and the configuration are read (and checked) before the
//! EAL starts, applied once the workers run, and read again on SIGHUP
//! (see reload.rs).
//!
//! Why this file is long (about 530 lines): `run`, about 430 of them, is
//! start-up and shut-down in the order they happen (EAL, pool, ports and
//! their kernel interfaces, workers and their rings, sync, metrics, the
//! control thread, teardown), each step using what the ones before made;
//! the parts that stand alone have their own files (config, kernel,
//! reload, notify, bench).

#![forbid(unsafe_code)]

mod bench;
mod config;
mod kernel;
mod notify;
mod reload;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Parser;
use dpdk::{Eal, EalConfig, Mempool, Port, PortConfig};
use rvs_control::proto::{PortStatus, Request, Response};
use rvs_control::server::{self, ControlServer, WorkerLink};
use rvs_dataplane::run::{run_worker, Handover, IdleBackoff, KernelQueues, Pools, PortQueues};
use rvs_dataplane::{
    FlowSharding, NeighbourConfig, NeighbourTable, PortInfo, Worker, WorkerConfig, WorkerShared,
};
use rvs_ipvs::persist::Templates;
use rvs_packet::MacAddr;
use rvsd_cli::Args;

use config::Hugepages;

/// Buffers for the frames a worker makes (ARP, ICMP errors, sync
/// messages, fragments): a few poll loops' worth, freed as they are sent.
const GENERATED_MBUFS_PER_WORKER: u32 = 4096;

fn main() {
    let args = Args::parse();
    if let Some(path) = args.config_to_check() {
        std::process::exit(check_config(&path));
    }
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info"))
        .format_timestamp_millis()
        .init();
    if let Err(e) = run(args) {
        log::error!("{e:#}");
        eprintln!("rvsd: {e:#}");
        std::process::exit(1);
    }
}

/// `--check-config`: reads the configuration and its rules file as a reload
/// would and says what they hold, or what is wrong (file and line).
fn check_config(path: &Path) -> i32 {
    match reload::plan(path, None) {
        Ok((_, plan)) => {
            println!("{}: ok", path.display());
            for s in &plan.sources[1..] {
                println!("{s}");
            }
            0
        }
        Err(e) => {
            eprintln!("rvsd: {e}");
            1
        }
    }
}

/// Whether hugepages are reserved, free, mounted and ours to use (rvsd may
/// run as a user that cannot write the mount).
fn hugepages_available() -> bool {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let free = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("HugePages_Free:"))
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    let mounts = std::fs::read_to_string("/proc/mounts").unwrap_or_default();
    let writable = mounts
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("hugetlbfs"))
        .filter_map(|l| l.split_whitespace().nth(1))
        .any(|dir| {
            // Creating a file on hugetlbfs takes no page; mapping it would.
            let probe = Path::new(dir).join(format!(".rvsd-probe-{}", std::process::id()));
            let ok = std::fs::File::create(&probe).is_ok();
            let _ = std::fs::remove_file(&probe);
            ok
        });
    free > 0 && writable
}

fn run(args: Args) -> Result<()> {
    // SIGHUP asks for a reload; caught from the start, so that an early one
    // does not end the process.
    let reload_signal = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGHUP, reload_signal.clone())
        .context("installing the SIGHUP handler")?;
    // Everything is read and checked before any device is touched.
    let (mut cfg, plan) = reload::plan(&args.config, None).map_err(anyhow::Error::msg)?;
    let started_with = cfg.clone();
    if let Some(s) = args.socket {
        cfg.control.socket = s;
    }
    let metrics_listen = cfg.metrics.parsed_listen().map_err(anyhow::Error::msg)?;
    let nworkers = cfg.workers.lcores.len();

    let no_huge = match cfg.dpdk.hugepages {
        Hugepages::Off => true,
        Hugepages::Required => {
            if !hugepages_available() {
                bail!("dpdk.hugepages = \"required\" but no free hugepages are mounted where rvsd may write (see dpdk-build/setup.sh)");
            }
            false
        }
        Hugepages::Auto => {
            let none = !hugepages_available();
            if none {
                log::warn!("no free hugepages are mounted where rvsd may write: running with --no-huge (slower; reserve some with dpdk-build/setup.sh)");
            }
            none
        }
    };
    let mut lcores = vec![cfg.dpdk.main_lcore];
    lcores.extend(&cfg.workers.lcores);
    let eal_cfg = EalConfig {
        lcores,
        vdevs: cfg
            .ports
            .iter()
            .filter(|p| p.is_vdev())
            .map(|p| p.vdev_arg(nworkers))
            .collect(),
        pci_allow: cfg
            .ports
            .iter()
            .filter(|p| !p.is_vdev())
            .map(|p| p.device.clone())
            .collect(),
        no_pci: cfg.ports.iter().all(|p| p.is_vdev()),
        no_huge,
        memory_mb: Some(cfg.dpdk.memory_mb),
        extra: cfg.dpdk.extra_eal_args.clone(),
    };
    let eal_args = eal_cfg.to_args("rvsd");
    log::info!("EAL arguments: {}", eal_args.join(" "));
    let eal = Eal::init(&eal_args).context("starting the DPDK EAL")?;

    let pool = Arc::new(
        Mempool::new(
            eal,
            "rvs_pool",
            cfg.dpdk.mbufs,
            256,
            cfg.dpdk.mbuf_data_room,
        )
        .context("creating the packet buffer pool (raise dpdk.memory_mb?)")?,
    );
    // Frames the workers make (see `Pools`): room for the largest MTU.
    let largest_frame = cfg
        .ports
        .iter()
        .map(|p| p.mtu as u32 + 18)
        .max()
        .unwrap_or(1518);
    let generated_pool = Arc::new(
        Mempool::new(
            eal,
            "rvs_gen_pool",
            GENERATED_MBUFS_PER_WORKER * cfg.workers.lcores.len().max(1) as u32,
            64,
            u16::try_from(largest_frame.max(u32::from(cfg.dpdk.mbuf_data_room)))
                .unwrap_or(u16::MAX),
        )
        .context("creating the pool for frames the workers make (raise dpdk.memory_mb?)")?,
    );

    // The worker that owns a client endpoint's connections; the ports
    // hash with its key, so that they deliver a client's packets there.
    let sharding = match cfg.workers.flow_seed {
        Some(seed) => FlowSharding::with_seed(seed),
        None => FlowSharding::random().context("drawing the key of the flow hash")?,
    };
    // Ports, each with one rx and one tx queue per worker, and its kernel
    // interface (the exception path) with as many.
    let mut ports = Vec::new();
    let mut kernel_ports: Vec<Option<Port>> = Vec::new();
    let mut infos = Vec::new();
    for (i, p) in cfg.ports.iter().enumerate() {
        let id =
            Port::id_by_name(eal, p.dpdk_name()).with_context(|| format!("port {:?}", p.name))?;
        let pc = PortConfig {
            rx_queues: nworkers as u16,
            tx_queues: nworkers as u16,
            rss_key: Some(sharding.rss_key()),
            ..PortConfig::default()
        };
        let port = Port::start(eal, id, &pc, pool.clone())
            .with_context(|| format!("starting port {:?} ({})", p.name, p.device))?;
        if nworkers > 1 {
            log::info!("port {:?}: receive-side scaling {}", p.name, port.rss());
        }
        let (addr, prefix_len) = p.parsed_address().map_err(anyhow::Error::msg)?;
        log::info!(
            "port {:?}: dpdk port {} mac {} address {}/{}",
            p.name,
            id,
            port.mac(),
            addr,
            prefix_len
        );
        let addr6 = p.parsed_address6().map_err(anyhow::Error::msg)?;
        let kernel = match p.kernel_interface_name().map_err(anyhow::Error::msg)? {
            Some(name) => Some(kernel::start(
                eal,
                &kernel::KernelInterface {
                    port_index: i,
                    port_name: &p.name,
                    name: &name,
                    mac: port.mac(),
                    addr: (addr, prefix_len),
                    addr6,
                    mtu: p.mtu,
                },
                nworkers,
                pool.clone(),
            )?),
            None => None,
        };
        infos.push(PortInfo {
            mac: port.mac(),
            addr,
            prefix_len,
            mtu: p.mtu,
            addr6,
            kernel: kernel.is_some(),
            vip_arp: p.vip_arp.into(),
        });
        ports.push(port);
        kernel_ports.push(kernel);
    }
    let mut rxqs: Vec<_> = ports
        .iter_mut()
        .map(|p| p.take_rx_queues().into_iter())
        .collect();
    let mut txqs: Vec<_> = ports
        .iter_mut()
        .map(|p| p.take_tx_queues().into_iter())
        .collect();
    let mut kernel_qs: Vec<Option<_>> = kernel_ports
        .iter_mut()
        .map(|k| {
            k.as_mut()
                .map(|k| k.take_rx_queues().into_iter().zip(k.take_tx_queues()))
        })
        .collect();

    let stop = Arc::new(AtomicBool::new(false));
    for sig in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        signal_hook::flag::register(sig, stop.clone()).context("installing signal handlers")?;
    }
    let routes = cfg.parsed_routes().map_err(anyhow::Error::msg)?;
    let neigh = Arc::new(NeighbourTable::with_config(NeighbourConfig {
        policy: cfg.neighbours.learn.into(),
        capacity: cfg.neighbours.max_entries,
        // An answer may take the kernel's three tries to come.
        answer_window_ms: cfg.neighbours.arp_retry_ms.max(1).saturating_mul(3),
        ..NeighbourConfig::new(cfg.neighbours.expiry_s * 1000)
    }));
    let templates = Arc::new(Templates::new());
    let timeouts = cfg.timeouts();
    for n in &cfg.neighbours.statics {
        neigh.add_static(
            n.address,
            MacAddr(n.parsed_mac().map_err(anyhow::Error::msg)?),
        );
    }
    let idle = IdleBackoff {
        empty_polls: cfg.workers.idle_empty_polls,
        sleep: Duration::from_micros(cfg.workers.idle_sleep_us),
        max_sleep: Duration::from_micros(cfg.workers.idle_sleep_max_us),
        #[cfg(feature = "burst-histogram")]
        record_bursts: args.run_for.is_some(),
        panic_after: None,
    };
    // A test hook, debug builds only: the first worker panics this many
    // milliseconds after it starts (crates/lab/tests/control.rs).
    let test_panic = std::env::var("RVSD_TEST_WORKER_PANIC_MS")
        .ok()
        .filter(|_| cfg!(debug_assertions))
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis);

    // One hand-over ring per worker, for packets whose connection another
    // worker owns (see ARCHITECTURE.md).
    let mut inboxes = Vec::new();
    let mut peers = Vec::new();
    for i in (0..nworkers).filter(|_| nworkers > 1) {
        let (p, c) = dpdk::Ring::create(eal, &format!("rvs_handover{i}"), 4096)
            .context("creating the hand-over rings")?;
        peers.push(p);
        inboxes.push(Some(c));
    }
    let mut links = Vec::new();
    let mut handles = Vec::new();
    for (i, &lcore) in cfg.workers.lcores.iter().enumerate() {
        let shared = Arc::new(WorkerShared::default());
        let (tx, rx) = crossbeam_channel::unbounded();
        links.push(WorkerLink::new(tx, shared.clone(), lcore));
        let worker = Worker::new(
            WorkerConfig {
                id: i,
                workers: nworkers,
                sharding: sharding.clone(),
                ports: infos.clone(),
                routes: routes.clone(),
                conn_capacity: cfg.connections.capacity_per_worker,
                timeouts,
                arp_retry_ms: cfg.neighbours.arp_retry_ms,
                expire_budget: 64,
                sloppy_tcp: cfg.connections.sloppy_tcp,
                count_stats: cfg.stats.enabled,
                defense: cfg.defense,
            },
            neigh.clone(),
            templates.clone(),
            shared,
        );
        let queues: Vec<PortQueues> = rxqs
            .iter_mut()
            .zip(txqs.iter_mut())
            .zip(kernel_qs.iter_mut())
            .map(|((r, t), k)| PortQueues {
                rx: r.next().expect("one rx queue per worker"),
                tx: t.next().expect("one tx queue per worker"),
                kernel: k.as_mut().map(|k| {
                    let (rx, tx) = k.next().expect("one kernel queue pair per worker");
                    KernelQueues { rx, tx }
                }),
            })
            .collect();
        let pools = Pools {
            rx: pool.clone(),
            generated: generated_pool.clone(),
        };
        let stop = stop.clone();
        let handover = (nworkers > 1).then(|| Handover {
            inbox: inboxes[i].take().expect("one inbox per worker"),
            peers: peers.clone(),
        });
        let idle = IdleBackoff {
            panic_after: test_panic.filter(|_| i == 0),
            ..idle
        };
        let h = dpdk::launch_on(eal, lcore, move || {
            run_worker(worker, queues, handover, rx, pools, stop, idle)
        })
        .with_context(|| format!("launching the worker on lcore {lcore}"))?;
        log::info!("worker {i} running on lcore {lcore}");
        handles.push(h);
    }

    let capacity = (cfg.connections.capacity_per_worker * nworkers) as u64;
    let shareds: Vec<Arc<WorkerShared>> = links.iter().map(|l| l.shared.clone()).collect();
    let sampler = args.run_for.map(|secs| {
        std::thread::spawn({
            let (stop, shareds) = (stop.clone(), shareds.clone());
            move || bench::sample(secs, &shareds, &stop)
        })
    });
    // The ports' own counters, read on the control thread for the metrics.
    let port_ids: Vec<(String, u16)> = cfg
        .ports
        .iter()
        .zip(&ports)
        .map(|(p, port)| (p.name.clone(), port.id()))
        .collect();
    let (inbox_tx, inbox) = crossbeam_channel::unbounded();
    let nets: Vec<(std::net::Ipv4Addr, u8)> =
        infos.iter().map(|p| (p.addr, p.prefix_len)).collect();
    // The sync daemon on a port: the workers send a master's messages
    // there; a backup's socket is on its kernel interface (the exception
    // path), or on the interface af_packet reads.
    let sync_interfaces = cfg
        .ports
        .iter()
        .enumerate()
        .map(|(port, p)| {
            let kernel = p.kernel_interface_name().ok().flatten();
            let device = p.device_interface().map(str::to_string);
            let mut names = vec![p.name.clone()];
            names.extend(kernel.iter().chain(device.iter()).cloned());
            rvs_control::sync::SyncInterface {
                names,
                port,
                kernel_ifname: kernel.or(device),
                mtu: p.mtu as u32,
            }
        })
        .collect();
    let mut control = ControlServer::new(links, capacity, templates)
        .with_sync(rvs_control::sync::SyncDaemons::new(
            sync_interfaces,
            sharding,
        ))
        .with_timeouts(timeouts)
        .with_defense(cfg.defense)
        .with_local_networks(&nets)
        .with_ports(Box::new(move || {
            port_ids
                .iter()
                .map(|(name, id)| {
                    let s = dpdk::port_stats(eal, *id);
                    PortStatus {
                        name: name.clone(),
                        ipackets: s.ipackets,
                        opackets: s.opackets,
                        ibytes: s.ibytes,
                        obytes: s.obytes,
                        imissed: s.imissed,
                        ierrors: s.ierrors,
                        oerrors: s.oerrors,
                        rx_nombuf: s.rx_nombuf,
                    }
                })
                .collect()
        }))
        .with_inbox(inbox)
        .with_health_file(cfg.control.keepalived_status.clone());
    // Started from this thread, the main lcore's: the HTTP threads inherit
    // its CPU affinity, so they never run on a worker's core.
    let metrics = match metrics_listen {
        Some(addr) => {
            let source: rvs_metrics::StatusSource = std::sync::Arc::new(move || {
                let (tx, rx) = crossbeam_channel::bounded(1);
                inbox_tx
                    .send((Request::Status, tx))
                    .map_err(|_| "rvsd is stopping".to_string())?;
                match rx.recv_timeout(Duration::from_secs(5)) {
                    Ok(Response::Status(s)) => Ok(*s),
                    Ok(other) => Err(format!(
                        "unexpected answer from the control thread: {other:?}"
                    )),
                    Err(_) => Err("the control thread did not answer within 5 s".to_string()),
                }
            });
            let m = rvs_metrics::MetricsServer::start(addr, source)?;
            log::info!(
                "metrics on http://{}/metrics, status page on http://{}/",
                m.addr(),
                m.addr()
            );
            Some(m)
        }
        None => None,
    };
    let socket =
        server::bind(&cfg.control.socket, cfg.control.group.as_deref()).with_context(|| {
            format!(
                "binding the control socket {}",
                cfg.control.socket.display()
            )
        })?;
    // The rules file goes in as a reload from an empty table would.
    control = control.with_reloader(
        Box::new(reload::FileReloader {
            config_path: args.config.clone(),
            running: started_with,
        }),
        reload_signal,
    );
    let loaded = control
        .apply_plan(plan)
        .map_err(anyhow::Error::msg)
        .context("loading the rules")?;
    for line in loaded.render().lines() {
        log::info!("start: {line}");
    }
    log::info!(
        "rvsd ready: control socket {}",
        cfg.control.socket.display()
    );
    let services = control.director().len();
    notify::ready(&format!(
        "serving {services} service{} on {}",
        if services == 1 { "" } else { "s" },
        cfg.control.socket.display()
    ));
    let served = control.serve(&socket, &stop);
    notify::stopping();

    stop.store(true, Ordering::Relaxed);
    // The control thread is done: dropping it fails whatever the metrics
    // thread still waits for, so that it stops at once.
    drop(control);
    drop(metrics);
    let mut panicked = Vec::new();
    for h in handles {
        let lcore = h.lcore();
        match h.wait() {
            dpdk::LcoreExit::Returned(_) => {}
            dpdk::LcoreExit::Panicked(msg) => {
                log::error!("the worker on lcore {lcore} panicked: {msg}");
                panicked.push(format!("the worker on lcore {lcore} panicked: {msg}"));
            }
        }
    }
    if let Some(s) = sampler {
        let samples = s.join().expect("sampler thread");
        println!("{}", bench::summary(&samples, &shareds, args.warm_up));
    }
    // The socket file goes (if it is still ours).
    drop(socket);
    // The EAL lives for the process; the pool is freed once its buffers
    // are back (the rings and ports hold some until they go).
    drop(peers);
    drop(inboxes);
    // Closing a kernel interface's port removes the interface, and with it
    // its addresses and routes: rvsd leaves nothing behind.
    drop(kernel_ports);
    drop(ports);
    drop(pool);
    eal.remove_own_runtime_dir();
    if let Some(first) = panicked.first() {
        bail!("{first}; rvsd stopped");
    }
    log::info!("rvsd stopped");
    served.context("serving the control socket")
}
