//! What many connections share (real servers, persistence templates),
//! interned once and referred to by a 32-bit handle.

use std::net::IpAddr;
use std::sync::Arc;

use rustc_hash::FxHashMap;

use crate::dest::DestShared;
use crate::stats::DestStats;
use crate::types::FwdMethod;

/// Interned things many connections point at, by 32-bit handle, with a
/// reference count; a handle is reused once nothing refers to it. `I` is
/// what tells two items apart: everything a connection reads from the item.
#[derive(Debug)]
pub(super) struct Registry<T, I> {
    pub(super) items: Vec<Option<(T, u32)>>,
    free: Vec<u32>,
    pub(super) by_id: FxHashMap<I, u32>,
}

impl<T, I> Default for Registry<T, I> {
    fn default() -> Self {
        Registry {
            items: Vec::new(),
            free: Vec::new(),
            by_id: FxHashMap::default(),
        }
    }
}

impl<T, I: std::hash::Hash + Eq> Registry<T, I> {
    /// The handle of the item identified by `id`, made with `make` when new;
    /// counts one more reference.
    pub(super) fn acquire(&mut self, id: I, make: impl FnOnce() -> T) -> u32 {
        if let Some(&h) = self.by_id.get(&id) {
            if let Some((_, n)) = &mut self.items[h as usize] {
                *n += 1;
            }
            return h;
        }
        let item = Some((make(), 1));
        let h = match self.free.pop() {
            Some(h) => {
                self.items[h as usize] = item;
                h
            }
            None => {
                self.items.push(item);
                (self.items.len() - 1) as u32
            }
        };
        self.by_id.insert(id, h);
        h
    }

    pub(super) fn get(&self, h: u32) -> &T {
        &self.items[h as usize]
            .as_ref()
            .expect("live registry handle")
            .0
    }

    pub(super) fn release(&mut self, h: u32, id: impl FnOnce(&T) -> I) {
        let slot = &mut self.items[h as usize];
        if let Some((t, n)) = slot {
            *n -= 1;
            if *n == 0 {
                self.by_id.remove(&id(t));
                *slot = None;
                self.free.push(h);
            }
        }
    }
}

/// A real server as its connections refer to it.
#[derive(Debug)]
pub(super) struct DestRef {
    pub(super) addr: IpAddr,
    pub(super) fwd: FwdMethod,
    pub(super) shared: Arc<DestShared>,
    /// `shared.stats`, held here too so that counting a packet reads this
    /// entry (which the packet's target needs anyway) and its lane, and not
    /// the line of `shared` that other workers write.
    pub(super) stats: DestStats,
}

/// What tells two dest entries apart: the dest (its shared part's
/// address) and the whole forwarding method, tunnel parameters included.
/// `-e` keeps the `DestShared` and may change the method or the tunnel:
/// connections made before keep their entry, later ones get a new one.
pub(super) type DestId = (usize, FwdMethod);

pub(super) fn dest_id(shared: &Arc<DestShared>, fwd: FwdMethod) -> DestId {
    (Arc::as_ptr(shared) as usize, fwd)
}
