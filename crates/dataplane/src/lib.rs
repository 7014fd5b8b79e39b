//! The dataplane: what a worker does with each packet.
//!
//! [`Worker::handle`] is the whole per-packet logic over a plain `&mut [u8]`
//! frame, so it is tested without DPDK; [`run::run_worker`] is the poll loop
//! that feeds it bursts from DPDK queues and sends what it returns.

#![forbid(unsafe_code)]

pub mod buf;
pub mod counters;
pub mod neighbour;
pub mod run;
pub mod worker;

pub use buf::PacketBuf;
pub use counters::{Counters, DropReason};
pub use neighbour::{LearnPolicy, NeighbourConfig, NeighbourTable};
pub use rvs_ipvs::ConnRow;
pub use worker::{
    toeplitz, ConnListing, FlowSharding, PortInfo, Route, SyncMaster, SyncSink, Verdict, VipArp,
    Worker, WorkerConfig, WorkerMsg, WorkerShared, MICROSOFT_RSS_KEY,
};
