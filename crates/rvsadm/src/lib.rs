//! rvsadm's library half: ipvsadm's command-line syntax ([`parse`]), the
//! name lookups it does ([`names`]) and what a line of a rules file is
//! ([`rules`]). rvsd reads its rules file (`[control] rules`) with this very
//! parser, so a file that `rvsadm -R` takes, rvsd takes, with the same
//! messages. No DPDK here: rvsadm builds without it.

#![forbid(unsafe_code)]

pub mod names;
pub mod parse;
pub mod rules;
