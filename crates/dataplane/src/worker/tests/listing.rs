//! `-Lc` on a worker: the table walked a bounded slice per poll loop, the
//! rows sent in chunks without ever blocking the worker.

use super::*;
use crate::worker::{ConnListing, LIST_CHUNK, LIST_SLOTS_PER_LOOP};

/// The walkthrough's worker with `n` connections, from distinct client
/// ports and addresses.
fn with_conns(n: usize) -> Worker {
    let mut w = walkthrough(Protocol::Tcp, 80);
    w.conns = ConnTable::new(n, Timeouts::default());
    for i in 0..n {
        let client = [10, (i >> 16) as u8, (i >> 8) as u8, i as u8];
        let mut f = syn_from(client, 1024 + (i % 50_000) as u16, 80);
        assert_eq!(w.handle(0, &mut f, 1), Verdict::Tx(0));
    }
    assert_eq!(w.conns.len(), n);
    w
}

#[test]
fn listing_goes_a_slice_per_loop_and_waits_for_a_slow_reader() {
    let n = 3 * LIST_SLOTS_PER_LOOP + 100;
    let mut w = with_conns(n);
    // Room for one chunk at a time: the reader is slow.
    let (tx, rx) = crossbeam_channel::bounded(1);
    w.apply(
        &WorkerMsg::ListConns(ConnListing {
            rows: tx,
            limit: usize::MAX,
        }),
        1,
    );
    let mut rows = Vec::new();
    let mut loops = 0;
    while w.is_listing() {
        w.list_some(1000);
        loops += 1;
        // The reader takes at most one chunk per loop.
        if let Ok(chunk) = rx.try_recv() {
            assert!(!chunk.is_empty() && chunk.len() <= LIST_CHUNK);
            rows.extend(chunk);
        }
        assert!(loops < 10 * n, "the listing ends");
    }
    rows.extend(rx.try_iter().flatten());
    assert!(rx.recv().is_err(), "the worker let go: the listing is over");
    assert_eq!(rows.len(), n, "every connection once");
    let mut keys: Vec<_> = rows.iter().map(|r| (r.caddr, r.cport)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), n);
    assert!(rows.iter().all(|r| r.state == "SYN_RECV" && r.vport == 80));
    assert!(loops >= n / LIST_SLOTS_PER_LOOP, "{loops} loops");
}

#[test]
fn listing_stops_at_its_limit_and_when_the_reader_goes() {
    let mut w = with_conns(5000);
    let (tx, rx) = crossbeam_channel::unbounded();
    w.apply(
        &WorkerMsg::ListConns(ConnListing {
            rows: tx,
            limit: 1500,
        }),
        1,
    );
    while w.is_listing() {
        w.list_some(1000);
    }
    assert_eq!(rx.iter().flatten().count(), 1500);

    let (tx, rx) = crossbeam_channel::bounded(1);
    w.apply(
        &WorkerMsg::ListConns(ConnListing {
            rows: tx,
            limit: usize::MAX,
        }),
        1,
    );
    w.list_some(1000);
    drop(rx);
    w.list_some(1000);
    w.list_some(1000);
    assert!(!w.is_listing(), "a listing nobody reads is dropped");
}

/// What one poll loop's slice of a listing costs at a million connections
/// (the old `-Lc` built every row in one loop). Run it in release:
/// `cargo test --release -p rvs-dataplane --lib list_slice_cost -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run it in release"]
fn list_slice_cost() {
    let n = 1_000_000;
    let mut w = with_conns(n);
    let (tx, rx) = crossbeam_channel::unbounded();
    let t = std::time::Instant::now();
    w.apply(
        &WorkerMsg::ListConns(ConnListing {
            rows: tx.clone(),
            limit: usize::MAX,
        }),
        1,
    );
    let mut slices = Vec::new();
    while w.is_listing() {
        let s = std::time::Instant::now();
        w.list_some(1000);
        slices.push(s.elapsed());
    }
    let total = t.elapsed();
    let loops = slices.len();
    slices.sort();
    let (median, p99, worst) = (
        slices[loops / 2],
        slices[loops * 99 / 100],
        slices[loops - 1],
    );
    assert_eq!(rx.try_iter().flatten().count(), n);
    // The whole table in one go, as before.
    let s = std::time::Instant::now();
    let all: Vec<ConnRow> = w.conns.iter().map(|c| conn_row(&c, 1000)).collect();
    let one_go = s.elapsed();
    assert_eq!(all.len(), n);
    drop(tx);
    eprintln!(
        "1M connections: {loops} slices of {LIST_SLOTS_PER_LOOP} slots: median {median:?}, \
         p99 {p99:?}, worst {worst:?}, all {total:?}; the whole table in one loop (as before): \
         {one_go:?}"
    );
}
