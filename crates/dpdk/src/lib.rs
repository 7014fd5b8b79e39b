//! Safe wrappers over the parts of DPDK that rvs uses.
//!
//! This is the only crate that calls DPDK through raw pointers. Every other
//! crate sees owned [`Mbuf`]s, byte slices, and per-queue handles whose types
//! make the DPDK threading rules (one thread per queue) hold at compile time.
//!
//! Lifetimes: [`Eal::init`] hands out the process's one `&'static Eal`, and
//! every DPDK object is made with it, so none can exist before the EAL or
//! outlive it. A [`Mempool`] is freed only once all its buffers are back; a
//! port is started once ([`Port::start`]); a panic in a job on a worker
//! lcore ends that job, not the process ([`LcoreHandle::wait`] reports it).

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;
mod vdev;
mod wait;

pub use eal::{Eal, EalConfig};
pub use error::{DpdkError, Result};
pub use lcore::{current_lcore, launch_on, tsc_hz, LcoreExit, LcoreHandle};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{
    reta_queue, stats_of as port_stats, MacAddr, Port, PortConfig, PortStats, RssMode, RxQueue,
    TxQueue, RETA_PERIOD, RSS_KEY_LEN,
};
pub use ring::{Ring, RingConsumer, RingProducer};
pub use vdev::create_vdev;
pub use wait::RxWait;

/// The most packets one rx or tx burst moves.
pub const MAX_BURST: usize = 32;

/// Asks the CPU to bring the cache line holding `p` into every cache level
/// (DPDK's `rte_prefetch0`), so that a later read does not wait on memory.
/// Any address will do: a prefetch is a hint and never faults.
#[inline(always)]
pub fn prefetch(p: *const u8) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: PREFETCHT0 reads nothing architecturally and cannot fault on
    // any address; SSE is part of the x86_64 baseline.
    unsafe {
        std::arch::x86_64::_mm_prefetch::<{ std::arch::x86_64::_MM_HINT_T0 }>(p as *const i8)
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}
