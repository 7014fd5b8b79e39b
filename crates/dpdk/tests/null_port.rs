//! The wrappers against a real EAL: a `net_null` port on ordinary pages.
//! One test function, because the EAL starts once per process.

use std::sync::Arc;

use dpdk::{Eal, EalConfig, LcoreExit, Mempool, Port, PortConfig, Ring};

/// Removes the EAL's runtime folder (`/var/run/dpdk/rvs<pid>`) when the
/// test ends, passed or failed: the EAL never does, and each run of the
/// suite left one.
struct RemoveRuntimeDir(&'static Eal);

impl Drop for RemoveRuntimeDir {
    fn drop(&mut self) {
        self.0.remove_own_runtime_dir();
    }
}

#[test]
fn eal_pool_port_ring_and_lcore() {
    let cfg = EalConfig {
        lcores: vec![0, 1],
        vdevs: vec!["net_null0".into()],
        no_pci: true,
        no_huge: true,
        memory_mb: Some(128),
        ..EalConfig::default()
    };
    let eal: &'static Eal = Eal::init(&cfg.to_args("dpdk-test")).expect("EAL init");
    let _cleanup = RemoveRuntimeDir(eal);
    assert!(
        Eal::init(&cfg.to_args("again")).is_err(),
        "one EAL per process"
    );
    assert_eq!(eal.port_count(), 1);

    // Sizes are checked before DPDK sees them.
    let e = Mempool::new(eal, "too_big", 1023, 32, 65500).err().unwrap();
    assert!(e.to_string().contains("exceeds 65535"), "{e}");
    let e = Mempool::new(eal, "big_cache", 100, 90, 2048).err().unwrap();
    assert!(e.to_string().contains("cache of 90"), "{e}");
    assert!(Mempool::new(eal, "empty", 0, 0, 2048).is_err());
    assert!(Ring::create(eal, "huge_ring", u32::MAX).is_err());

    let pool = Arc::new(Mempool::new(eal, "test_pool", 1023, 32, 2048).unwrap());
    let before = pool.available();
    {
        let mut m = pool.alloc().unwrap();
        assert!(m.is_empty());
        m.append(60).unwrap().copy_from_slice(&[0xab; 60]);
        assert_eq!(m.len(), 60);
        assert_eq!(m.data()[59], 0xab);
        m.prepend(4).unwrap().copy_from_slice(&[1, 2, 3, 4]);
        assert_eq!(&m.data()[..5], &[1, 2, 3, 4, 0xab]);
        m.truncate(10);
        assert_eq!(m.len(), 10);
        assert!(pool.available() < before);
    }
    // Dropping the Mbuf gave the buffer back (the per-lcore cache counts).
    assert_eq!(pool.available(), before);
    assert!(pool.is_full());

    // A pool dropped while one of its buffers is out stays allocated, so
    // the buffer can still be used and freed afterwards.
    let early = Mempool::new(eal, "early_pool", 63, 0, 2048).unwrap();
    let mut out = early.alloc().unwrap();
    drop(early);
    out.append(8).unwrap().copy_from_slice(&[9; 8]);
    assert_eq!(out.data(), &[9; 8]);
    drop(out);

    let id = Port::id_by_name(eal, "net_null0").unwrap();
    assert!(Port::id_by_name(eal, "net_nothere0").is_err());
    let mut port = Port::start(eal, id, &PortConfig::default(), pool.clone()).unwrap();
    let e = Port::start(eal, id, &PortConfig::default(), pool.clone())
        .err()
        .expect("a port is started once");
    assert!(e.to_string().contains("already started"), "{e}");
    let mut rx = port.take_rx_queues();
    let mut tx = port.take_tx_queues();
    assert_eq!((rx.len(), tx.len()), (1, 1));
    assert!(
        port.take_rx_queues().is_empty(),
        "queues are handed out once"
    );
    // net_null receives bursts of empty-ish packets and swallows what it sends.
    let mut burst = Vec::new();
    let n = rx[0].rx_burst(&mut burst);
    assert!(n > 0 && n <= dpdk::MAX_BURST);
    assert_eq!(burst.len(), n);
    let sent = tx[0].tx_burst(&mut burst);
    assert_eq!(sent, n);
    assert!(burst.is_empty());
    assert!(port.stats().opackets >= n as u64);

    let (producer, mut consumer) = Ring::create(eal, "test_ring", 64).unwrap();
    let other = producer.clone();
    producer.enqueue(pool.alloc().unwrap()).unwrap();
    let m = pool.alloc().unwrap();
    std::thread::spawn(move || other.enqueue(m).unwrap())
        .join()
        .unwrap();
    let mut out = Vec::new();
    assert_eq!(consumer.dequeue_burst(&mut out), 2);
    // The doorbell: a consumer waiting on its empty ring (marked asleep) is
    // woken by a producer's enqueue and ring from another thread; one with
    // something queued does not sleep; an unrung wait runs out.
    let (bell, mut inbox) = Ring::create(eal, "bell_ring", 64).unwrap();
    let mut wait = dpdk::RxWait::new(&[], Some(&inbox));
    let m = pool.alloc().unwrap();
    let started = std::time::Instant::now();
    let ringer = std::thread::spawn(move || {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !bell.consumer_asleep() && std::time::Instant::now() < deadline {
            std::thread::yield_now();
        }
        let asleep = bell.consumer_asleep();
        bell.enqueue(m).unwrap();
        bell.ring_doorbell();
        (bell, asleep)
    });
    assert!(wait.wait(std::time::Duration::from_secs(5)), "rung");
    assert!(started.elapsed() < std::time::Duration::from_secs(2));
    let (bell, asleep) = ringer.join().unwrap();
    assert!(
        asleep,
        "the enqueue came while the consumer was marked asleep"
    );
    assert!(!bell.consumer_asleep(), "unmarked after the wait");
    let started = std::time::Instant::now();
    assert!(
        wait.wait(std::time::Duration::from_secs(5)),
        "a frame is queued"
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(1),
        "no sleep"
    );
    let mut rung = Vec::new();
    assert_eq!(inbox.dequeue_burst(&mut rung), 1);
    bell.ring_doorbell(); // awake: no ring
    assert!(!wait.wait(std::time::Duration::from_millis(20)), "unrung");
    drop((rung, wait, bell, inbox));
    // A ring dropped with packets in it frees them.
    let (p2, c2) = Ring::create(eal, "test_ring2", 8).unwrap();
    p2.enqueue(out.pop().unwrap()).unwrap();
    drop((p2, c2));
    drop(out);
    // A job on the worker lcore, joined with its exit code.
    let h = dpdk::launch_on(eal, 1, || {
        assert_eq!(dpdk::current_lcore(), 1);
        7
    })
    .unwrap();
    assert_eq!(h.wait(), LcoreExit::Returned(7));
    // A job that panics ends there (the process goes on), and says why; the
    // lcore takes the next job.
    let h = dpdk::launch_on(eal, 1, || panic!("worker fell over")).unwrap();
    assert_eq!(h.wait(), LcoreExit::Panicked("worker fell over".into()));
    let h = dpdk::launch_on(eal, 1, || -> i32 {
        let n = 3;
        panic!("with {n} words")
    })
    .unwrap();
    assert_eq!(h.wait(), LcoreExit::Panicked("with 3 words".into()));
    assert_eq!(
        dpdk::launch_on(eal, 1, || 0).unwrap().wait(),
        LcoreExit::Returned(0)
    );
    assert!(dpdk::tsc_hz() > 0);
    drop(rx);
    drop(tx);
    drop(port);
    // Every buffer is back: the pool can go for real, and the port id can
    // be started again.
    assert!(pool.is_full());
    drop(pool);
}
