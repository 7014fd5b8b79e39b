use std::ptr::NonNull;

/// One single-segment packet buffer. Owns its mbuf: dropping it returns the
/// buffer to its pool. `repr(transparent)` so a `[Mbuf]` is exactly DPDK's
/// `rte_mbuf *[]` and bursts move without copying.
#[repr(transparent)]
pub struct Mbuf {
    raw: NonNull<dpdk_sys::rte_mbuf>,
}

// SAFETY: an mbuf is owned by exactly one Mbuf value at a time; moving it
// between threads is how DPDK pipelines hand packets over.
unsafe impl Send for Mbuf {}

impl Mbuf {
    pub(crate) fn from_nonnull(raw: NonNull<dpdk_sys::rte_mbuf>) -> Mbuf {
        Mbuf { raw }
    }

    /// Gives up ownership, e.g. to hand the buffer to a DPDK tx call.
    pub(crate) fn into_raw(self) -> *mut dpdk_sys::rte_mbuf {
        let p = self.raw.as_ptr();
        std::mem::forget(self);
        p
    }

    fn m(&self) -> &dpdk_sys::rte_mbuf {
        // SAFETY: we own a valid mbuf for our whole lifetime.
        unsafe { self.raw.as_ref() }
    }

    /// Bytes of packet data in this (first) segment.
    pub fn len(&self) -> usize {
        self.m().data_len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether the packet spans more than one segment; rvs handles single
    /// segments only and drops the rest.
    pub fn is_chained(&self) -> bool {
        self.m().nb_segs > 1
    }

    /// The port the packet arrived on.
    pub fn port(&self) -> u16 {
        self.m().port
    }

    /// Marks the packet as arrived on `port` (a frame the worker built
    /// from one that did, for another worker).
    pub fn set_port(&mut self, port: u16) {
        // SAFETY: we own this mbuf exclusively (&mut self); `port` is a
        // plain field of its header.
        unsafe { self.raw.as_mut().port = port };
    }

    pub fn data(&self) -> &[u8] {
        let m = self.m();
        // SAFETY: buf_addr + data_off .. + data_len lies inside the buffer
        // DPDK allocated for this mbuf, which we own.
        unsafe {
            std::slice::from_raw_parts(
                (m.buf_addr as *const u8).add(m.data_off as usize),
                m.data_len as usize,
            )
        }
    }

    pub fn data_mut(&mut self) -> &mut [u8] {
        let (addr, off, len) = {
            let m = self.m();
            (
                m.buf_addr as *mut u8,
                m.data_off as usize,
                m.data_len as usize,
            )
        };
        // SAFETY: as in data(); &mut self guarantees exclusive access.
        unsafe { std::slice::from_raw_parts_mut(addr.add(off), len) }
    }

    /// Grows the packet by `n` bytes at the tail and returns them, or None if
    /// the buffer has no room.
    pub fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: valid single-segment mbuf we own.
        let p = unsafe { dpdk_sys::rte_pktmbuf_append(self.raw.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK returned n writable bytes inside the buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n) })
    }

    /// Grows the packet by `n` bytes at the head (for encapsulation) and
    /// returns the new front, or None without headroom.
    pub fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let n16 = u16::try_from(n).ok()?;
        // SAFETY: valid single-segment mbuf we own.
        let p = unsafe { dpdk_sys::rte_pktmbuf_prepend(self.raw.as_ptr(), n16) };
        if p.is_null() {
            return None;
        }
        // SAFETY: DPDK returned n writable bytes at the new data start.
        Some(unsafe { std::slice::from_raw_parts_mut(p as *mut u8, n) })
    }

    /// Removes `n` bytes from the front (decapsulation); false if the packet
    /// is shorter.
    pub fn adj(&mut self, n: usize) -> bool {
        let Ok(n16) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid single-segment mbuf we own; DPDK checks the length.
        !unsafe { dpdk_sys::rte_pktmbuf_adj(self.raw.as_ptr(), n16) }.is_null()
    }

    /// Shrinks the packet to `len` bytes (no-op if already shorter).
    pub fn truncate(&mut self, len: usize) {
        let cur = self.len();
        if len < cur {
            // SAFETY: trims within the single segment we own.
            unsafe {
                dpdk_sys::rte_pktmbuf_trim(self.raw.as_ptr(), (cur - len) as u16);
            }
        }
    }
}

impl std::fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Mbuf")
            .field("len", &self.len())
            .field("port", &self.port())
            .finish()
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf; it is freed exactly once.
        unsafe { dpdk_sys::rte_pktmbuf_free(self.raw.as_ptr()) }
    }
}
