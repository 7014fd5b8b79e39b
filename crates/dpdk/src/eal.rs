use std::ffi::CString;
use std::os::raw::c_char;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::error::{DpdkError, Result};

static EAL_UP: AtomicBool = AtomicBool::new(false);

/// How to start the EAL. Turned into the usual EAL argument vector.
#[derive(Debug, Clone, Default)]
pub struct EalConfig {
    /// lcores to run on; the first is the main lcore.
    pub lcores: Vec<u32>,
    /// Virtual devices, e.g. `net_af_packet0,iface=veth0`.
    pub vdevs: Vec<String>,
    /// PCI devices to allow; empty with `no_pci` means none.
    pub pci_allow: Vec<String>,
    pub no_pci: bool,
    /// Run on ordinary 4 KiB pages instead of hugepages.
    pub no_huge: bool,
    /// Memory to reserve up front, in MiB (used with `no_huge`).
    pub memory_mb: Option<u32>,
    /// Extra arguments passed through untouched.
    pub extra: Vec<String>,
}

impl EalConfig {
    pub fn to_args(&self, prog: &str) -> Vec<String> {
        let mut a = vec![prog.to_string()];
        if !self.lcores.is_empty() {
            let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
            if self.lcores.iter().all(|&l| (l as usize) < cpus) {
                let l: Vec<String> = self.lcores.iter().map(|c| c.to_string()).collect();
                a.push("-l".into());
                a.push(l.join(","));
            } else {
                // More lcores than CPUs (two workers on a 2-core test box):
                // lcore l runs on CPU l mod CPUs, so the extra ones share
                // CPUs round robin (with back-off on, they take turns).
                let l: Vec<String> = self
                    .lcores
                    .iter()
                    .map(|&l| format!("{l}@{}", l as usize % cpus))
                    .collect();
                a.push(format!("--lcores={}", l.join(",")));
            }
        }
        // No shared files under /var/run/dpdk, so that several instances
        // (tests, a benchmark beside a daemon) can coexist. --no-huge implies
        // legacy memory, which --in-memory refuses.
        if self.no_huge {
            a.push("--no-huge".into());
            a.push("--no-shconf".into());
            a.push(format!("--file-prefix={}", own_file_prefix()));
        } else {
            a.push("--in-memory".into());
        }
        // With hugepages the EAL grows its memory on demand; without, it
        // needs the amount up front.
        if let (true, Some(m)) = (self.no_huge, self.memory_mb) {
            a.push("-m".into());
            a.push(m.to_string());
        }
        if self.no_pci {
            a.push("--no-pci".into());
        }
        for p in &self.pci_allow {
            a.push("-a".into());
            a.push(p.clone());
        }
        for v in &self.vdevs {
            a.push(format!("--vdev={v}"));
        }
        a.extend(self.extra.iter().cloned());
        a
    }
}

/// The file prefix [`EalConfig::to_args`] gives a `no_huge` process: its
/// own, so that its runtime folder is its own too.
fn own_file_prefix() -> String {
    format!("rvs{}", std::process::id())
}

/// The initialised Environment Abstraction Layer: proof that `rte_eal_init`
/// succeeded, which every DPDK object asks for when it is made.
///
/// There is one per process and it lives for the process: [`Eal::init`]
/// hands out a `&'static Eal`, which nothing can drop. So no mempool, port,
/// ring or lcore job can outlive it, whatever order its owners drop things
/// in. (`rte_eal_cleanup` is never called: its only effects on the way out
/// are releasing memory and files the process's exit releases anyway, and
/// calling it with any DPDK object still alive would be undefined.)
///
/// An `Eal` cannot be made any other way:
///
/// ```compile_fail
/// let eal = dpdk::Eal { _private: () };
/// ```
///
/// and DPDK objects cannot be made without one:
///
/// ```compile_fail
/// let pool = dpdk::Mempool::new("pool", 1023, 32, 2048);
/// ```
pub struct Eal {
    _private: (),
}

/// The one `Eal`, handed out by the first successful [`Eal::init`].
pub(crate) static THE_EAL: Eal = Eal { _private: () };

impl Eal {
    /// Starts the EAL with `args` (as [`EalConfig::to_args`] makes them).
    /// Only the first call in a process can succeed.
    pub fn init(args: &[String]) -> Result<&'static Eal> {
        if EAL_UP.swap(true, Ordering::SeqCst) {
            return Err(DpdkError::Invalid("the EAL is already initialised".into()));
        }
        let cargs: Vec<CString> = args
            .iter()
            .map(|s| CString::new(s.as_str()))
            .collect::<std::result::Result<_, _>>()
            .map_err(|_| {
                EAL_UP.store(false, Ordering::SeqCst);
                DpdkError::Invalid("EAL argument contains a NUL byte".into())
            })?;
        // rte_eal_init may permute argv, so hand it a scratch array.
        let mut argv: Vec<*mut c_char> = cargs.iter().map(|c| c.as_ptr() as *mut c_char).collect();
        argv.push(std::ptr::null_mut());
        let Ok(argc) = i32::try_from(args.len()) else {
            EAL_UP.store(false, Ordering::SeqCst);
            return Err(DpdkError::Invalid("too many EAL arguments".into()));
        };
        // SAFETY: argv is a NULL-terminated array of valid C strings that
        // outlive the call; DPDK keeps no pointer into them after it returns
        // except into `cargs`, which we leak below for that reason.
        let rc = unsafe { dpdk_sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if rc < 0 {
            // DPDK itself says whether a second try may work (it allows one
            // after some failures, and answers EALREADY after others).
            EAL_UP.store(false, Ordering::SeqCst);
            return Err(DpdkError::last("rte_eal_init"));
        }
        std::mem::forget(cargs);
        Ok(&THE_EAL)
    }

    /// Removes the EAL's runtime folder (`/var/run/dpdk/PREFIX` for root)
    /// when PREFIX is this process's own (`rvs<pid>`, see
    /// [`EalConfig::to_args`]): the EAL makes it at start and never removes
    /// it, so every run would leave one behind. A shared prefix (`rte`, or
    /// one given in the extra arguments) is left alone. Call on the way
    /// out, once nothing uses DPDK any more.
    pub fn remove_own_runtime_dir(&self) {
        // SAFETY: a plain query after a successful init (we are the proof);
        // it returns the EAL's own NUL-terminated string, or NULL, which
        // lives as long as the process.
        let dir = unsafe {
            let p = dpdk_sys::rte_eal_get_runtime_dir();
            if p.is_null() {
                return;
            }
            std::ffi::CStr::from_ptr(p).to_string_lossy().into_owned()
        };
        let dir = std::path::PathBuf::from(dir);
        if dir.file_name().and_then(|n| n.to_str()) == Some(own_file_prefix().as_str()) {
            let _ = std::fs::remove_dir_all(&dir);
        }
    }

    /// Number of ethdev ports the EAL probed.
    pub fn port_count(&self) -> u16 {
        // SAFETY: plain query after a successful init (we are the proof).
        unsafe { dpdk_sys::rte_eth_dev_count_avail() }
    }
}
