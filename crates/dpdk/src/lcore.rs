use std::os::raw::{c_int, c_void};

use crate::error::{check, Result};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Job> leaked by launch_on, taken back once.
    let job: Box<Job> = unsafe { Box::from_raw(arg as *mut Job) };
    job()
}

/// A job running on a worker lcore; `wait` joins it.
pub struct LcoreHandle {
    lcore: u32,
}

impl LcoreHandle {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the job and returns its exit code.
    pub fn wait(self) -> i32 {
        wait_lcore(self.lcore)
    }
}

/// Runs `f` on worker lcore `lcore` (which must be idle).
pub fn launch_on<F>(lcore: u32, f: F) -> Result<LcoreHandle>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let job: Box<Job> = Box::new(Box::new(f));
    let arg = Box::into_raw(job) as *mut c_void;
    // SAFETY: trampoline takes the box back exactly once when it runs.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc < 0 {
        // SAFETY: the launch failed, so the job never ran; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Job) });
    }
    check("rte_eal_remote_launch", rc)?;
    Ok(LcoreHandle { lcore })
}

/// Waits for the job on `lcore` to finish; returns its exit code.
pub fn wait_lcore(lcore: u32) -> i32 {
    // SAFETY: waiting on an lcore id is always valid after EAL init.
    unsafe { dpdk_sys::rte_eal_wait_lcore(lcore) }
}

/// The lcore the caller runs on (u32::MAX for non-EAL threads).
pub fn current_lcore() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::rte_lcore_id() }
}

/// Timestamp-counter frequency, for turning cycles into time.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query after EAL init.
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}
