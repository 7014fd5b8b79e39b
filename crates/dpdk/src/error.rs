use std::ffi::CStr;

/// A DPDK call failed; `code` is DPDK's errno (positive).
#[derive(Debug, thiserror::Error)]
pub enum DpdkError {
    #[error("{call} failed: {msg} (errno {code})")]
    Call {
        call: &'static str,
        code: i32,
        msg: String,
    },
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T> = std::result::Result<T, DpdkError>;

impl DpdkError {
    /// Builds the error from an errno value (either sign) DPDK returned or set.
    pub(crate) fn from_errno(call: &'static str, code: i32) -> Self {
        let code = code.abs();
        // SAFETY: rte_strerror returns a pointer to a static or thread-local
        // NUL-terminated string that stays valid until the next call.
        let msg = unsafe { CStr::from_ptr(dpdk_sys::rte_strerror(code)) }
            .to_string_lossy()
            .into_owned();
        DpdkError::Call { call, code, msg }
    }

    /// Builds the error from the calling thread's `rte_errno`.
    pub(crate) fn last(call: &'static str) -> Self {
        // SAFETY: reads a thread-local integer; always valid.
        let code = unsafe { dpdk_sys::rvs_rte_errno() };
        Self::from_errno(call, code)
    }
}

/// Maps DPDK's "negative errno on failure" convention to a Result.
pub(crate) fn check(call: &'static str, rc: i32) -> Result<i32> {
    if rc < 0 {
        Err(DpdkError::from_errno(call, rc))
    } else {
        Ok(rc)
    }
}
