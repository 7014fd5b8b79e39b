//! Safe wrappers over the parts of DPDK that rvs uses.
//!
//! This is the only crate that calls DPDK through raw pointers. Every other
//! crate sees owned [`Mbuf`]s, byte slices, and per-queue handles whose types
//! make the DPDK threading rules (one thread per queue) hold at compile time.

mod eal;
mod error;
mod lcore;
mod mbuf;
mod mempool;
mod port;
mod ring;

pub use eal::{Eal, EalConfig};
pub use error::{DpdkError, Result};
pub use lcore::{current_lcore, launch_on, tsc_hz, wait_lcore, LcoreHandle};
pub use mbuf::Mbuf;
pub use mempool::Mempool;
pub use port::{MacAddr, Port, PortConfig, PortStats, RxQueue, TxQueue};
pub use ring::{Ring, RingConsumer, RingProducer};

/// The most packets one rx or tx burst moves.
pub const MAX_BURST: usize = 32;
