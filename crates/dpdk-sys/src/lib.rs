//! Raw bindings to DPDK 22.11, generated at build time. Nothing here is safe
//! to call directly; the `dpdk` crate wraps what rvs uses.
#![allow(non_upper_case_globals, non_camel_case_types, non_snake_case)]
#![allow(clippy::all)]
#![allow(unsafe_op_in_unsafe_fn)]

include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
