//! `rvsd --run-for SECONDS`: the measuring side of `cargo xtask bench`.
//! Samples the workers' counters every 50 ms, stops the daemon when the time
//! is up, and summarises rates and burst-time percentiles as JSON.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_dataplane::WorkerShared;

/// (seconds since start, packets received, new connections), summed over
/// workers.
pub type Sample = (f64, u64, u64);

pub fn sample(secs: f64, shareds: &[Arc<WorkerShared>], stop: &AtomicBool) -> Vec<Sample> {
    let start = Instant::now();
    let mut v = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = start.elapsed().as_secs_f64();
        let rx = shareds.iter().map(|s| s.counters.rx_packets.get()).sum();
        let nc = shareds
            .iter()
            .map(|s| s.counters.new_connections.get())
            .sum();
        v.push((t, rx, nc));
        if t >= secs {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    v
}

pub fn summary(samples: &[Sample], shareds: &[Arc<WorkerShared>]) -> String {
    let last = samples.last().copied().unwrap_or_default();
    // The first third (at most two seconds) warms caches and fills the
    // table (a replayed capture opens its connections on the first pass).
    let warm = (last.0 / 3.0).min(2.0);
    let first = samples
        .iter()
        .find(|s| s.0 >= warm)
        .copied()
        .unwrap_or_default();
    let dt = (last.0 - first.0).max(1e-9);
    let rx_pps = (last.1 - first.1) as f64 / dt;
    let new_per_s = (last.2 - first.2) as f64 / dt;
    let new_peak = samples
        .windows(2)
        .map(|w| (w[1].2 - w[0].2) as f64 / (w[1].0 - w[0].0).max(1e-9))
        .fold(0.0, f64::max);
    let mut all: Option<hdrhistogram::Histogram<u64>> = None;
    for s in shareds {
        if let Some(h) = s.burst_ns.lock().ok().and_then(|g| g.clone()) {
            match &mut all {
                Some(a) => {
                    let _ = a.add(&h);
                }
                None => all = Some(h),
            }
        }
    }
    let pct = |q: f64| all.as_ref().map_or(0.0, |h| h.value_at_quantile(q) as f64);
    let per_worker: Vec<u64> = shareds
        .iter()
        .map(|s| s.counters.rx_packets.get())
        .collect();
    let drops: u64 = shareds
        .iter()
        .flat_map(|s| s.counters.snapshot())
        .filter(|(k, _)| k.starts_with("drop_"))
        .map(|(_, v)| v)
        .sum();
    serde_json::json!({
        "seconds": last.0,
        "rx_pps": rx_pps,
        "new_conns_per_s": new_per_s,
        "new_conns_peak_per_s": new_peak,
        "new_conns_total": last.2,
        "bursts": all.as_ref().map_or(0, |h| h.len()),
        "burst_ns_p50": pct(0.5),
        "burst_ns_p90": pct(0.9),
        "burst_ns_p99": pct(0.99),
        "burst_ns_p999": pct(0.999),
        "per_worker_rx": per_worker,
        "drops": drops,
    })
    .to_string()
}
