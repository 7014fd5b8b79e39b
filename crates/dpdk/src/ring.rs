use std::ffi::CString;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::ptr::NonNull;
use std::sync::atomic::{fence, AtomicBool, Ordering};
use std::sync::Arc;

use crate::eal::Eal;
use crate::error::{DpdkError, Result};
use crate::mbuf::Mbuf;

/// `RING_F_SC_DEQ` from rte_ring.h (a macro bindgen skips).
const RING_F_SC_DEQ: u32 = 0x0002;

pub(crate) struct RingInner {
    raw: NonNull<dpdk_sys::rte_ring>,
    /// Set while the consumer sleeps (between `doze` and `wake`, which
    /// [`crate::RxWait`] calls around its wait): producers then ring
    /// `doorbell`.
    sleeping: AtomicBool,
    /// An eventfd (non-blocking) the consumer's sleep polls: a ring has no
    /// descriptor of its own to wake on.
    doorbell: OwnedFd,
}

// SAFETY: the ring is created multi-producer / single-consumer; the types
// below hand out any number of producers and exactly one consumer.
unsafe impl Send for RingInner {}
// SAFETY: as above; shared access only enqueues (MP-safe) or dequeues
// through the one consumer.
unsafe impl Sync for RingInner {}

impl RingInner {
    /// Before sleeping on the doorbell: marks the consumer asleep, so that
    /// producers ring it. False, and not marked, when something is queued
    /// already (then do not sleep).
    pub(crate) fn doze(&self) -> bool {
        // The mark before the look at the ring (see `Ring`).
        self.sleeping.store(true, Ordering::SeqCst);
        // SAFETY: valid ring; reads its head and tail only.
        if unsafe { dpdk_sys::rte_ring_empty(self.raw.as_ptr()) } == 0 {
            self.sleeping.store(false, Ordering::Relaxed);
            return false;
        }
        true
    }

    /// After sleeping: unmarks the consumer and silences the doorbell.
    pub(crate) fn wake(&self) {
        self.sleeping.store(false, Ordering::Relaxed);
        let mut count: u64 = 0;
        // SAFETY: reads at most 8 bytes into `count`; the eventfd is
        // non-blocking, so an unrung one fails with EAGAIN at once.
        unsafe {
            libc::read(
                self.doorbell.as_raw_fd(),
                &mut count as *mut u64 as *mut libc::c_void,
                8,
            )
        };
    }
}

impl Drop for RingInner {
    fn drop(&mut self) {
        // Free what is still queued, then the ring.
        let mut p: *mut std::os::raw::c_void = std::ptr::null_mut();
        // SAFETY: no producer or consumer remains (the last Arc is going);
        // every queued pointer is an owned mbuf.
        unsafe {
            while dpdk_sys::rte_ring_sc_dequeue(self.raw.as_ptr(), &mut p) == 0 {
                dpdk_sys::rte_pktmbuf_free(p as *mut dpdk_sys::rte_mbuf);
            }
            dpdk_sys::rte_ring_free(self.raw.as_ptr());
        }
    }
}

/// A lock-free ring of mbufs (`rte_ring`), for handing packets from one
/// worker to another: any number of [`RingProducer`]s, one [`RingConsumer`].
///
/// The consumer may sleep until something is enqueued: its
/// [`crate::RxWait`] marks it asleep and polls the ring's doorbell, an
/// eventfd; a producer, after enqueueing a batch, rings the
/// doorbell if the consumer is marked asleep ([`RingProducer::ring_doorbell`]).
/// A full fence on each side (the consumer's mark then its look at the ring,
/// the producer's enqueue then its look at the mark) means at least one of
/// them sees the other: no wake-up is lost.
pub struct Ring;

/// The most entries a ring holds (DPDK's RTE_RING_SZ_MASK).
const MAX_RING: u32 = 0x7fff_ffff;

impl Ring {
    /// A ring for at least `size` mbufs (rounded up to a power of two).
    pub fn create(_eal: &Eal, name: &str, size: u32) -> Result<(RingProducer, RingConsumer)> {
        let c = CString::new(name).map_err(|_| DpdkError::Invalid("ring name".into()))?;
        let count = size
            .checked_next_power_of_two()
            .filter(|&n| n <= MAX_RING)
            .ok_or_else(|| {
                DpdkError::Invalid(format!("a ring of {size} entries is larger than DPDK's"))
            })?;
        // SAFETY: valid C string; SC flag: one consumer.
        let raw = unsafe {
            dpdk_sys::rte_ring_create(
                c.as_ptr(),
                count,
                dpdk_sys::rte_socket_id() as i32,
                RING_F_SC_DEQ,
            )
        };
        let raw = NonNull::new(raw).ok_or_else(|| DpdkError::last("rte_ring_create"))?;
        // SAFETY: a plain eventfd(2) call; the result is checked.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            let err = std::io::Error::last_os_error();
            // SAFETY: the ring just made, empty, shared with no one.
            unsafe { dpdk_sys::rte_ring_free(raw.as_ptr()) };
            return Err(DpdkError::Invalid(format!(
                "eventfd for ring {name}: {err}"
            )));
        }
        // SAFETY: a new descriptor that nothing else owns.
        let doorbell = unsafe { OwnedFd::from_raw_fd(fd) };
        let inner = Arc::new(RingInner {
            raw,
            sleeping: AtomicBool::new(false),
            doorbell,
        });
        Ok((
            RingProducer {
                inner: inner.clone(),
            },
            RingConsumer { inner },
        ))
    }
}

/// The enqueueing side; clone it for every producer thread.
#[derive(Clone)]
pub struct RingProducer {
    inner: Arc<RingInner>,
}

impl RingProducer {
    /// Enqueues the mbuf, or gives it back when the ring is full.
    pub fn enqueue(&self, m: Mbuf) -> std::result::Result<(), Mbuf> {
        let p = m.into_raw();
        // SAFETY: valid ring, multi-producer safe; on success the ring owns
        // the pointer.
        let rc = unsafe { dpdk_sys::rte_ring_mp_enqueue(self.inner.raw.as_ptr(), p as *mut _) };
        if rc == 0 {
            Ok(())
        } else {
            Err(Mbuf::from_nonnull(NonNull::new(p).expect("non-null mbuf")))
        }
    }

    /// Whether the consumer is marked asleep, so that an enqueue now must
    /// ring the doorbell (what a test waits for before ringing).
    pub fn consumer_asleep(&self) -> bool {
        self.inner.sleeping.load(Ordering::SeqCst)
    }

    /// After a batch of enqueues: wakes the consumer if it sleeps. Once per
    /// batch rather than per mbuf, as it costs a full fence.
    pub fn ring_doorbell(&self) {
        // The enqueue's tail store before the look at the mark (see `Ring`).
        fence(Ordering::SeqCst);
        if self.inner.sleeping.load(Ordering::Relaxed) {
            let one: u64 = 1;
            // SAFETY: writes the 8 bytes of `one` to the ring's eventfd,
            // which lives as long as `inner`. A full counter (never: the
            // consumer reads it after each sleep) fails with EAGAIN, and
            // the consumer is awake anyway.
            unsafe {
                libc::write(
                    self.inner.doorbell.as_raw_fd(),
                    &one as *const u64 as *const libc::c_void,
                    8,
                )
            };
        }
    }
}

/// The dequeueing side: exactly one, not Clone.
pub struct RingConsumer {
    inner: Arc<RingInner>,
}

impl RingConsumer {
    /// Dequeues up to 32 mbufs into `out`.
    pub fn dequeue_burst(&mut self, out: &mut Vec<Mbuf>) -> usize {
        out.reserve(crate::MAX_BURST);
        let spare = out.spare_capacity_mut();
        let want = spare.len().min(crate::MAX_BURST) as u32;
        // SAFETY: the ring only ever holds owned mbuf pointers, which become
        // ours; this is the only consumer (&mut self, not Clone).
        unsafe {
            let n = dpdk_sys::rte_ring_sc_dequeue_burst(
                self.inner.raw.as_ptr(),
                spare.as_mut_ptr() as *mut *mut std::os::raw::c_void,
                want,
                std::ptr::null_mut(),
            ) as usize;
            out.set_len(out.len() + n);
            n
        }
    }

    /// The ring, for [`crate::RxWait`] to poll its doorbell and keep it open.
    pub(crate) fn doorbell(&self) -> (RawFd, Arc<RingInner>) {
        (self.inner.doorbell.as_raw_fd(), self.inner.clone())
    }
}
