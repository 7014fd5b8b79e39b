use std::ffi::CString;

use crate::eal::Eal;
use crate::error::{check, DpdkError, Result};
use crate::port::Port;

/// Creates a virtual device after the EAL started (`rte_vdev_init`), for
/// devices whose arguments are known only then (a tap carrying a port's
/// MAC); returns the id of the ethdev port it made. The device goes away
/// when its port is closed ([`Port`]'s drop).
pub fn create_vdev(eal: &Eal, name: &str, args: &str) -> Result<u16> {
    let cname = CString::new(name).map_err(|_| DpdkError::Invalid("vdev name".into()))?;
    let cargs = CString::new(args).map_err(|_| DpdkError::Invalid("vdev arguments".into()))?;
    // SAFETY: two valid C strings; DPDK copies what it keeps.
    check("rte_vdev_init", unsafe {
        dpdk_sys::rte_vdev_init(cname.as_ptr(), cargs.as_ptr())
    })?;
    Port::id_by_name(eal, name)
}
