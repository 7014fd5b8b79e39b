//! The kernel's defence against floods of new connections
//! (`ip_vs_ctl.c`: `update_defense_level`, run once a second by
//! `defense_work_handler`): three strategies, each with the kernel's four
//! modes, switched on when "available memory" falls below `amemthresh`.
//!
//! rvs has no memory to run out of: each worker's connection table is
//! preallocated. What runs out is its slots, so "available memory" is the
//! worker's free connection slots and `amemthresh` is counted in slots
//! (the kernel's default, 1024 pages, becomes 1024 free slots). Each worker
//! decides for its own table, once a second, as the kernel does for the
//! machine.
//!
//! - `drop_entry`: drop entries at random ([`crate::conn::ConnTable::random_dropentry`]).
//! - `drop_packet`: drop one new connection's first packet in `rate`, where
//!   `rate = amemthresh / (amemthresh - free)` (so every one when the table
//!   is full), or `am_droprate` in mode 3.
//! - `secure_tcp`: step TCP connections with the kernel's `tcp_states_dos`
//!   ([`crate::tcp_state::StateTables::Secure`]).
//!
//! Modes, as the kernel's sysctls: 0 never; 1 automatic, off now; 2
//! automatic, on now (mode 1 becomes 2 when the table is short of free
//! slots and 2 goes back to 1 when it is not); 3 always on.

use serde::{Deserialize, Serialize};

/// The settings, as the kernel's sysctls (`/proc/sys/net/ipv4/vs/`) and
/// what rvs adds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DefenseConfig {
    /// Free connection slots below which the automatic modes switch on.
    pub amemthresh: u32,
    /// `drop_packet` mode 3's rate: one new connection in this many.
    pub am_droprate: u32,
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub secure_tcp: u8,
    /// rvs: how long half-open TCP connections (SYN_RECV, SYNACK) live
    /// while `secure_tcp` is on, in seconds; 0 keeps the usual timeouts
    /// (the kernel's behaviour).
    pub secure_tcp_syn_timeout_s: u32,
    /// rvs: when the table is full, a new connection takes the place of
    /// a half-open one (SYN_RECV or SYNACK, nothing from the real server
    /// seen; under a flood, the oldest) instead of being dropped.
    pub reclaim_half_open: bool,
}

impl Default for DefenseConfig {
    fn default() -> Self {
        DefenseConfig {
            amemthresh: 1024,
            am_droprate: 10,
            drop_entry: 0,
            drop_packet: 0,
            secure_tcp: 0,
            secure_tcp_syn_timeout_s: 10,
            reclaim_half_open: true,
        }
    }
}

/// What is wrong with a [`DefenseConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DefenseConfigError {
    #[error("{0} must be 0, 1, 2 or 3 (never, automatic, automatic and on now, always), not {1}")]
    Mode(&'static str, u8),
    #[error("am_droprate must be at least 1 (one new connection in that many is dropped)")]
    DropRate,
}

impl DefenseConfigError {
    /// The setting at fault.
    pub fn field(&self) -> &'static str {
        match self {
            DefenseConfigError::Mode(name, _) => name,
            DefenseConfigError::DropRate => "am_droprate",
        }
    }
}

impl DefenseConfig {
    pub fn validate(&self) -> Result<(), DefenseConfigError> {
        for (name, v) in [
            ("drop_entry", self.drop_entry),
            ("drop_packet", self.drop_packet),
            ("secure_tcp", self.secure_tcp),
        ] {
            if v > 3 {
                return Err(DefenseConfigError::Mode(name, v));
            }
        }
        if self.am_droprate == 0 {
            return Err(DefenseConfigError::DropRate);
        }
        Ok(())
    }
}

/// What the defence decided at its last update, as `rvsadm --defense`
/// shows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DefenseLevel {
    /// The modes now (an automatic 1 may have become 2).
    pub drop_entry: u8,
    pub drop_packet: u8,
    pub secure_tcp: u8,
    /// Whether entries are being dropped at random.
    pub dropping_entries: bool,
    /// One new connection in this many is dropped; 0: none.
    pub drop_rate: u32,
    /// Whether the `secure_tcp` tables are in use.
    pub secure: bool,
    /// The free slots the decision was made on.
    pub free_slots: u64,
}

/// One worker's defence: the modes, moved as the kernel moves its sysctls,
/// and the drop counter of `drop_packet`.
#[derive(Debug, Clone)]
pub struct Defense {
    cfg: DefenseConfig,
    level: DefenseLevel,
    drop_counter: u32,
}

impl Defense {
    pub fn new(cfg: DefenseConfig) -> Defense {
        Defense {
            level: DefenseLevel {
                drop_entry: cfg.drop_entry,
                drop_packet: cfg.drop_packet,
                secure_tcp: cfg.secure_tcp,
                ..DefenseLevel::default()
            },
            cfg,
            drop_counter: 0,
        }
    }

    pub fn config(&self) -> &DefenseConfig {
        &self.cfg
    }

    pub fn level(&self) -> DefenseLevel {
        self.level
    }

    /// The once-a-second update (`update_defense_level`), on the table's
    /// free slots. Returns the new `secure_tcp` state when it changed (the
    /// caller switches the table's state tables).
    pub fn update(&mut self, free_slots: usize) -> Option<bool> {
        let thresh = self.cfg.amemthresh as u64;
        let free = free_slots as u64;
        let short = free < thresh;
        let l = &mut self.level;
        l.free_slots = free;

        // An automatic mode follows the table: 1 → 2 when short, 2 → 1 when
        // not. Returns whether the strategy is on.
        let follow = |mode: &mut u8| -> bool {
            match *mode {
                1 | 2 => {
                    *mode = if short { 2 } else { 1 };
                    short
                }
                3 => true,
                _ => false,
            }
        };

        l.dropping_entries = follow(&mut l.drop_entry);

        let rate_now = || (thresh / (thresh - free).max(1)).clamp(1, u32::MAX as u64) as u32;
        l.drop_rate = match l.drop_packet {
            1 | 2 if short => {
                l.drop_packet = 2;
                rate_now()
            }
            1 | 2 => {
                l.drop_packet = 1;
                0
            }
            3 => self.cfg.am_droprate,
            _ => 0,
        };
        // The kernel restarts the countdown at each update in the automatic
        // modes; mode 3 counts on.
        if l.drop_packet == 2 {
            self.drop_counter = l.drop_rate;
        }

        let was = l.secure;
        l.secure = follow(&mut l.secure_tcp);
        (l.secure != was).then_some(l.secure)
    }

    /// Whether to drop this new connection's first packet
    /// (`ip_vs_todrop`): one in `drop_rate`.
    #[inline]
    pub fn drop_new(&mut self) -> bool {
        if self.level.drop_rate == 0 {
            return false;
        }
        self.drop_counter = self.drop_counter.saturating_sub(1);
        if self.drop_counter > 0 {
            return false;
        }
        self.drop_counter = self.level.drop_rate;
        true
    }

    /// Whether entries are to be dropped at random now.
    pub fn dropping_entries(&self) -> bool {
        self.level.dropping_entries
    }

    /// Whether the `secure_tcp` tables are in use.
    pub fn secure(&self) -> bool {
        self.level.secure
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(drop_entry: u8, drop_packet: u8, secure_tcp: u8) -> DefenseConfig {
        DefenseConfig {
            amemthresh: 100,
            drop_entry,
            drop_packet,
            secure_tcp,
            ..DefenseConfig::default()
        }
    }

    #[test]
    fn automatic_modes_move_between_1_and_2_with_the_free_slots() {
        let mut d = Defense::new(cfg(1, 1, 1));
        assert_eq!(d.update(1000), None);
        assert_eq!(
            (
                d.level().drop_entry,
                d.level().drop_packet,
                d.level().secure_tcp
            ),
            (1, 1, 1)
        );
        assert!(!d.dropping_entries() && !d.secure() && d.level().drop_rate == 0);
        // Short of free slots: every automatic mode becomes 2 and is on.
        assert_eq!(d.update(50), Some(true));
        let l = d.level();
        assert_eq!((l.drop_entry, l.drop_packet, l.secure_tcp), (2, 2, 2));
        assert!(l.dropping_entries && l.secure);
        // amemthresh / (amemthresh - free) = 100 / 50.
        assert_eq!(l.drop_rate, 2);
        assert_eq!(d.update(50), None, "no change, nothing to switch");
        // Enough again: back to 1, off.
        assert_eq!(d.update(100), Some(false));
        let l = d.level();
        assert_eq!((l.drop_entry, l.drop_packet, l.secure_tcp), (1, 1, 1));
        assert!(!l.dropping_entries && !l.secure && l.drop_rate == 0);
    }

    #[test]
    fn modes_0_and_3_ignore_the_table() {
        let mut never = Defense::new(cfg(0, 0, 0));
        assert_eq!(never.update(0), None);
        assert!(!never.dropping_entries() && !never.secure());
        assert!(!(0..100).any(|_| never.drop_new()));

        let mut always = Defense::new(cfg(3, 3, 3));
        assert_eq!(always.update(1_000_000), Some(true));
        assert!(always.dropping_entries() && always.secure());
        assert_eq!(always.level().drop_rate, 10, "am_droprate");
        let dropped = (0..1000).filter(|_| always.drop_new()).count();
        assert_eq!(dropped, 100, "one in am_droprate");
    }

    #[test]
    fn drop_rate_grows_as_the_table_fills() {
        let mut d = Defense::new(cfg(0, 1, 0));
        for (free, rate) in [(99, 100), (90, 10), (50, 2), (1, 1), (0, 1)] {
            d.update(free);
            assert_eq!(d.level().drop_rate, rate, "{free} free");
            let dropped = (0..rate * 10).filter(|_| d.drop_new()).count();
            assert_eq!(dropped, 10, "one in {rate} at {free} free");
        }
    }

    #[test]
    fn validation_names_the_setting() {
        let e = cfg(4, 0, 0).validate().unwrap_err();
        assert!(e.to_string().contains("drop_entry"), "{e}");
        let e = DefenseConfig {
            am_droprate: 0,
            ..DefenseConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(e.to_string().contains("am_droprate"), "{e}");
        DefenseConfig::default().validate().unwrap();
    }
}
