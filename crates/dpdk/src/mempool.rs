use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe by design.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation on the pool is thread-safe.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// `count` buffers of `data_room` bytes each (plus headroom), with a
    /// per-lcore cache of `cache` buffers.
    pub fn new(name: &str, count: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::Invalid("pool name".into()))?;
        let room = data_room + dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
        // SAFETY: valid C string; the EAL is initialised (callers hold an Eal).
        let raw = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(
                cname.as_ptr(),
                count,
                cache,
                0,
                room,
                dpdk_sys::rte_socket_id() as i32,
            )
        };
        NonNull::new(raw)
            .map(|raw| Mempool { raw })
            .ok_or_else(|| DpdkError::last("rte_pktmbuf_pool_create"))
    }

    pub(crate) fn as_ptr(&self) -> *mut dpdk_sys::rte_mempool {
        self.raw.as_ptr()
    }

    /// A fresh, empty mbuf, or None when the pool is exhausted.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool pointer is valid for our lifetime.
        let m = unsafe { dpdk_sys::rte_pktmbuf_alloc(self.raw.as_ptr()) };
        NonNull::new(m).map(Mbuf::from_nonnull)
    }

    /// Buffers currently available in the pool.
    pub fn available(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // SAFETY: all mbufs of the pool must have been returned; owners drop
        // ports and queues (which hold the pool) first.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
