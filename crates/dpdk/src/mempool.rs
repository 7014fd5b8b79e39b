use std::ffi::CString;
use std::ptr::NonNull;

use crate::eal::Eal;
use crate::error::{DpdkError, Result};
use crate::mbuf::Mbuf;

/// A pool of packet buffers (`rte_pktmbuf_pool_create`).
///
/// Dropping it frees the pool only when every buffer is back in it: an
/// [`Mbuf`] still out (in a ring, a queue, another thread's hands) would
/// otherwise point into freed memory. A pool dropped with buffers out is
/// left allocated (and logged), so that order of drops cannot go wrong.
pub struct Mempool {
    raw: NonNull<dpdk_sys::rte_mempool>,
}

// SAFETY: DPDK mempools are multi-producer/multi-consumer safe by design.
unsafe impl Send for Mempool {}
// SAFETY: as above; every operation on the pool is thread-safe.
unsafe impl Sync for Mempool {}

/// The most buffers a pool's per-lcore cache holds (RTE_MEMPOOL_CACHE_MAX_SIZE).
const MAX_CACHE: u32 = dpdk_sys::RTE_MEMPOOL_CACHE_MAX_SIZE;

impl Mempool {
    /// `count` buffers of `data_room` bytes each (plus DPDK's headroom),
    /// with a per-lcore cache of `cache` buffers. The sizes are checked
    /// here, so that a bad configuration gets a message that says which
    /// number is wrong rather than DPDK's EINVAL (or, for a data room near
    /// 64 KiB, a buffer size that wrapped around).
    pub fn new(_eal: &Eal, name: &str, count: u32, cache: u32, data_room: u16) -> Result<Mempool> {
        let cname = CString::new(name).map_err(|_| DpdkError::Invalid("pool name".into()))?;
        let headroom = dpdk_sys::RTE_PKTMBUF_HEADROOM as u16;
        let room = data_room.checked_add(headroom).ok_or_else(|| {
            DpdkError::Invalid(format!(
                "an mbuf's data room of {data_room} bytes plus DPDK's {headroom}-byte headroom \
                 exceeds 65535"
            ))
        })?;
        if count == 0 {
            return Err(DpdkError::Invalid("a pool needs at least one mbuf".into()));
        }
        // rte_mempool_create_empty's rule: cache * 1.5 <= count.
        if cache > MAX_CACHE || u64::from(cache) * 3 > u64::from(count) * 2 {
            return Err(DpdkError::Invalid(format!(
                "a per-lcore cache of {cache} mbufs needs at most {MAX_CACHE} and at most two \
                 thirds of the pool ({count} mbufs)"
            )));
        }
        // SAFETY: valid C string; the EAL is initialised (we hold an Eal).
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

    /// Buffers currently available in the pool (the per-lcore caches
    /// included).
    pub fn available(&self) -> u32 {
        // SAFETY: read-only query on a valid pool.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.raw.as_ptr()) }
    }

    /// Whether every buffer is back in the pool.
    pub fn is_full(&self) -> bool {
        // SAFETY: read-only query on a valid pool.
        unsafe { dpdk_sys::rte_mempool_full(self.raw.as_ptr()) != 0 }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        if !self.is_full() {
            log::warn!(
                "a packet buffer pool is dropped with buffers still out; it stays allocated \
                 until the process ends"
            );
            return;
        }
        // SAFETY: every mbuf of the pool is back in it (checked just above,
        // and nothing can take one out: we are being dropped, so no one
        // else holds the pool), so no Mbuf points into its memory.
        unsafe { dpdk_sys::rte_mempool_free(self.raw.as_ptr()) }
    }
}
