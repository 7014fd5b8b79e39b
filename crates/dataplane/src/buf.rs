//! What the per-packet logic needs from a packet buffer: its bytes, and
//! room to grow or shrink at the front for encapsulation. An mbuf is one in
//! production; a `Vec<u8>` is one in tests.

use dpdk::Mbuf;

pub trait PacketBuf {
    fn data(&self) -> &[u8];
    fn data_mut(&mut self) -> &mut [u8];
    /// Adds `n` bytes at the front (their content is unspecified); false
    /// when there is no headroom.
    fn prepend(&mut self, n: usize) -> bool;
    /// Removes `n` bytes from the front; false when shorter.
    fn adj(&mut self, n: usize) -> bool;
    /// Shrinks to `len` bytes.
    fn truncate(&mut self, len: usize);
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        Mbuf::data(self)
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        Mbuf::data_mut(self)
    }

    fn prepend(&mut self, n: usize) -> bool {
        Mbuf::prepend(self, n).is_some()
    }

    fn adj(&mut self, n: usize) -> bool {
        Mbuf::adj(self, n)
    }

    fn truncate(&mut self, len: usize) {
        Mbuf::truncate(self, len)
    }
}

impl PacketBuf for Vec<u8> {
    fn data(&self) -> &[u8] {
        self
    }

    fn data_mut(&mut self) -> &mut [u8] {
        self
    }

    fn prepend(&mut self, n: usize) -> bool {
        self.splice(0..0, std::iter::repeat_n(0u8, n));
        true
    }

    fn adj(&mut self, n: usize) -> bool {
        if n > self.len() {
            return false;
        }
        self.drain(..n);
        true
    }

    fn truncate(&mut self, len: usize) {
        Vec::truncate(self, len)
    }
}
