//! `rvsd --run-for SECONDS`: the measuring side of `cargo xtask bench`.
//! Samples the workers' counters every 50 ms, stops the daemon when the time
//! is up, and summarises rates and burst-time percentiles as JSON.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rvs_dataplane::WorkerShared;

/// The workers' counters at one moment, summed over workers.
#[derive(Clone, Copy, Default)]
pub struct Sample {
    /// Seconds since sampling began.
    pub t: f64,
    /// Packets received from the ports' queues (handed-over ones are not
    /// received again).
    pub rx: u64,
    /// Packets the ports' transmit queues took, less the sync daemon's
    /// messages (the director's own frames, not forwarded traffic).
    pub tx: u64,
    pub new_conns: u64,
    /// Packets dropped, for any reason.
    pub drops: u64,
    /// Packets handed to the worker that owns their connection.
    pub redirected: u64,
}

fn take(t: f64, shareds: &[Arc<WorkerShared>]) -> Sample {
    let sum = |f: &dyn Fn(&WorkerShared) -> u64| shareds.iter().map(|s| f(s)).sum();
    Sample {
        t,
        rx: sum(&|s| s.counters.rx_packets.get()),
        tx: sum(&|s| {
            let c = &s.counters;
            c.tx_packets.get().saturating_sub(c.sync_messages.get())
        }),
        new_conns: sum(&|s| s.counters.new_connections.get()),
        drops: sum(&|s| {
            s.counters
                .snapshot()
                .iter()
                .filter(|(k, _)| k.starts_with("drop_"))
                .map(|(_, v)| v)
                .sum()
        }),
        redirected: sum(&|s| s.counters.redirected.get()),
    }
}

pub fn sample(secs: f64, shareds: &[Arc<WorkerShared>], stop: &AtomicBool) -> Vec<Sample> {
    let start = Instant::now();
    let mut v = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let t = start.elapsed().as_secs_f64();
        v.push(take(t, shareds));
        if t >= secs {
            stop.store(true, Ordering::Relaxed);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    v
}

/// `warm_up`: seconds not measured (`--warm-up`).
pub fn summary(samples: &[Sample], shareds: &[Arc<WorkerShared>], warm_up: Option<f64>) -> String {
    let last = samples.last().copied().unwrap_or_default();
    // Unless told, the first third (at most two seconds) warms caches and
    // fills the table (a replayed capture opens its connections on the
    // first pass).
    let warm = warm_up.unwrap_or((last.t / 3.0).min(2.0));
    let first = samples
        .iter()
        .find(|s| s.t >= warm)
        .copied()
        .unwrap_or_default();
    let dt = (last.t - first.t).max(1e-9);
    let rate = |f: fn(&Sample) -> u64| f(&last).saturating_sub(f(&first)) as f64 / dt;
    let rx_pps = rate(|s| s.rx);
    let new_peak = samples
        .windows(2)
        .map(|w| (w[1].new_conns - w[0].new_conns) as f64 / (w[1].t - w[0].t).max(1e-9))
        .fold(0.0, f64::max);
    let per_worker: Vec<u64> = shareds
        .iter()
        .map(|s| s.counters.rx_packets.get())
        .collect();
    // Every drop reason that counted, over the whole run, for the reader
    // of a failed check.
    let mut drop_reasons = serde_json::Map::new();
    for s in shareds {
        for (k, v) in s.counters.snapshot() {
            if k.starts_with("drop_") && v > 0 {
                let e = drop_reasons.entry(k).or_insert(0u64.into());
                *e = (e.as_u64().unwrap_or(0) + v).into();
            }
        }
    }
    let rx_window = last.rx.saturating_sub(first.rx);
    let mut summary = serde_json::json!({
        "seconds": last.t,
        "warmup_seconds": first.t,
        "rx_pps": rx_pps,
        "fwd_pps": rate(|s| s.tx),
        "drop_pps": rate(|s| s.drops),
        // Of the packets received in the window, the share handed to
        // another worker.
        "handed_over": if rx_window > 0 {
            last.redirected.saturating_sub(first.redirected) as f64 / rx_window as f64
        } else {
            0.0
        },
        "new_conns_per_s": rate(|s| s.new_conns),
        "new_conns_peak_per_s": new_peak,
        "new_conns_total": last.new_conns,
        "per_worker_rx": per_worker,
        "drops": last.drops,
        "drop_reasons": drop_reasons,
        // Connections offered to the sync daemon (the sync-cost pair).
        "sync_offered": shareds.iter().map(|s| s.counters.sync_offered.get()).sum::<u64>(),
    });
    if let Some(o) = summary.as_object_mut() {
        o.extend(burst_times(shareds));
    }
    summary.to_string()
}

/// The workers' burst times together: how many, percentiles and a CDF
/// (quantile, ns) for the plot.
#[cfg(feature = "burst-histogram")]
fn burst_times(shareds: &[Arc<WorkerShared>]) -> serde_json::Map<String, serde_json::Value> {
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
    let at = |q: f64| all.as_ref().map_or(0, |h| h.value_at_quantile(q));
    let cdf: Vec<(f64, u64)> = [
        0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 0.995, 0.999, 0.9999,
    ]
    .iter()
    .map(|&q| (q, at(q)))
    .collect();
    let v = serde_json::json!({
        "bursts": all.as_ref().map_or(0, |h| h.len()),
        "burst_ns_p50": at(0.5) as f64,
        "burst_ns_p90": at(0.9) as f64,
        "burst_ns_p99": at(0.99) as f64,
        "burst_ns_p999": at(0.999) as f64,
        "burst_ns_cdf": cdf,
    });
    match v {
        serde_json::Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// Built without the `burst-histogram` feature: no burst times (a
/// production build's workers keep only the fixed buckets, which
/// `/metrics` exports).
#[cfg(not(feature = "burst-histogram"))]
fn burst_times(_: &[Arc<WorkerShared>]) -> serde_json::Map<String, serde_json::Value> {
    serde_json::Map::new()
}
