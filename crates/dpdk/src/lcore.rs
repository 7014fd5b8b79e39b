use std::os::raw::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Arc, Mutex};

use crate::eal::Eal;
use crate::error::{check, Result};

type Job = Box<dyn FnOnce() -> i32 + Send + 'static>;

/// What the trampoline takes back: the job and where to leave a panic's
/// message.
struct Launch {
    job: Job,
    panicked: Arc<Mutex<Option<String>>>,
}

/// The exit code of a job that panicked (the message is in its handle).
const PANICKED: c_int = -1;

extern "C" fn trampoline(arg: *mut c_void) -> c_int {
    // SAFETY: `arg` is the Box<Launch> leaked by launch_on, taken back once.
    let launch: Box<Launch> = unsafe { Box::from_raw(arg as *mut Launch) };
    let Launch { job, panicked } = *launch;
    // A panic must not unwind into DPDK's C frames (that aborts the whole
    // process): it ends the job here, and its message waits in the handle.
    match catch_unwind(AssertUnwindSafe(job)) {
        Ok(rc) => rc,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a panic without a message".to_string());
            *panicked.lock().unwrap_or_else(|e| e.into_inner()) = Some(msg);
            PANICKED
        }
    }
}

/// How a job on a worker lcore ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LcoreExit {
    /// It returned this code.
    Returned(i32),
    /// It panicked, with this message (the panic hook printed it and where
    /// too).
    Panicked(String),
}

/// A job running on a worker lcore; `wait` joins it.
pub struct LcoreHandle {
    lcore: u32,
    panicked: Arc<Mutex<Option<String>>>,
}

impl LcoreHandle {
    pub fn lcore(&self) -> u32 {
        self.lcore
    }

    /// Waits for the job and says how it ended.
    pub fn wait(self) -> LcoreExit {
        // SAFETY: waiting on an lcore we launched a job on, after EAL init.
        let rc = unsafe { dpdk_sys::rte_eal_wait_lcore(self.lcore) };
        match self
            .panicked
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
        {
            Some(msg) => LcoreExit::Panicked(msg),
            None => LcoreExit::Returned(rc),
        }
    }
}

/// Runs `f` on worker lcore `lcore` (which must be idle). A panic in `f`
/// ends the job (not the process); [`LcoreHandle::wait`] reports it.
pub fn launch_on<F>(_eal: &Eal, lcore: u32, f: F) -> Result<LcoreHandle>
where
    F: FnOnce() -> i32 + Send + 'static,
{
    let panicked = Arc::new(Mutex::new(None));
    let launch = Box::new(Launch {
        job: Box::new(f),
        panicked: panicked.clone(),
    });
    let arg = Box::into_raw(launch) as *mut c_void;
    // SAFETY: trampoline takes the box back exactly once when it runs.
    let rc = unsafe { dpdk_sys::rte_eal_remote_launch(Some(trampoline), arg, lcore) };
    if rc < 0 {
        // SAFETY: the launch failed, so the job never ran; reclaim it.
        drop(unsafe { Box::from_raw(arg as *mut Launch) });
    }
    check("rte_eal_remote_launch", rc)?;
    Ok(LcoreHandle { lcore, panicked })
}

/// The lcore the caller runs on (u32::MAX for non-EAL threads).
pub fn current_lcore() -> u32 {
    // SAFETY: reads a thread-local.
    unsafe { dpdk_sys::rte_lcore_id() }
}

/// Timestamp-counter frequency, for turning cycles into time.
pub fn tsc_hz() -> u64 {
    // SAFETY: plain query (0 before the EAL measured it).
    unsafe { dpdk_sys::rte_get_tsc_hz() }
}
