use std::ffi::CString;
use std::ptr::NonNull;

use crate::error::{DpdkError, Result};
use crate::mbuf::Mbuf;

/// `RING_F_SC_DEQ` from rte_ring.h (a macro bindgen skips).
const RING_F_SC_DEQ: u32 = 0x0002;

/// A lock-free multi-producer / single-consumer ring of mbufs (`rte_ring`),
/// for handing packets from one worker to another.
pub struct Ring {
    raw: NonNull<dpdk_sys::rte_ring>,
}

// SAFETY: created multi-producer; the single consumer is enforced by callers
// holding `&mut` through dequeue.
unsafe impl Send for Ring {}
// SAFETY: enqueue is multi-producer safe.
unsafe impl Sync for Ring {}

impl Ring {
    pub fn new(name: &str, size: u32) -> Result<Ring> {
        let c = CString::new(name).map_err(|_| DpdkError::Invalid("ring name".into()))?;
        // SAFETY: valid C string; SC flag: one consumer.
        let raw = unsafe {
            dpdk_sys::rte_ring_create(
                c.as_ptr(),
                size.next_power_of_two(),
                dpdk_sys::rte_socket_id() as i32,
                RING_F_SC_DEQ,
            )
        };
        NonNull::new(raw)
            .map(|raw| Ring { raw })
            .ok_or_else(|| DpdkError::last("rte_ring_create"))
    }

    /// Enqueues the mbuf, or gives it back when the ring is full.
    pub fn enqueue(&self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        let p = m.into_raw();
        // SAFETY: valid ring; on success the ring owns the pointer.
        let rc = unsafe { dpdk_sys::rte_ring_mp_enqueue(self.raw.as_ptr(), p as *mut _) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Mbuf::from_nonnull(NonNull::new(p).expect("non-null mbuf")))
        }
    }

    /// Dequeues up to 32 mbufs into `out`.
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        out.reserve(crate::MAX_BURST);
        let spare = out.spare_capacity_mut();
        let want = spare.len().min(crate::MAX_BURST) as u32;
        // SAFETY: the ring only ever holds owned mbuf pointers, which become
        // ours; the single consumer holds &mut self.
        unsafe {
            let n = dpdk_sys::rte_ring_sc_dequeue_burst(
                self.raw.as_ptr(),
                spare.as_mut_ptr() as *mut *mut std::os::raw::c_void,
                want,
                std::ptr::null_mut(),
            ) as usize;
            out.set_len(out.len() + n);
            n
        }
    }
}

impl Drop for Ring {
    fn drop(&mut self) {
        let mut v = Vec::new();
        while self.dequeue_burst(&mut v) > 0 {
            v.clear();
        }
        // SAFETY: no producer or consumer remains (we are being dropped).
        unsafe { dpdk_sys::rte_ring_free(self.raw.as_ptr()) }
    }
}
