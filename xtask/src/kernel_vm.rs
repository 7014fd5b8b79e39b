//! `cargo xtask kernel-vm build | run | test`: a Debian 12 VM with real
//! kernel IPVS, used as the oracle rvs is compared against.
//!
//! - `build` makes (or reuses) the image: `oracle/vm/image.sh` into
//!   `target/kernel-vm/image-<hash>/`, where the hash covers the recipe and
//!   the kernel package it picks, so a new recipe or a new Debian kernel
//!   builds a new image.
//! - `run CMD` boots it, runs CMD in the checkout (shared read-only over 9p
//!   at the same path), prints its output and returns its exit code.
//! - `test [FILTER]` runs the differential scenarios (oracle/scenarios/),
//!   one boot per group (sub-folder), and compares the kernel's transcript
//!   of each with rvs's.
//!
//! Acceleration: KVM when a probe boot shows it works, else TCG (this
//! platform's /dev/kvm cannot boot a normal guest).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use sha2::{Digest, Sha256};

use rvs_oracle::compare::{compare, load_deliberate};
use rvs_oracle::transcript::Transcript;
use rvs_oracle::{result_path, scenario_name};

/// What the guest gets.
const MEMORY_MB: u32 = 2048;
/// Longest one boot may take before it is killed.
const BOOT_LIMIT: Duration = Duration::from_secs(20 * 60);

pub struct KernelVm {
    root: PathBuf,
    dir: PathBuf,
}

pub struct Image {
    pub dir: PathBuf,
}

/// How a job ended.
pub struct JobResult {
    pub code: i32,
    pub dir: PathBuf,
}

impl KernelVm {
    pub fn new(root: &Path) -> KernelVm {
        KernelVm {
            root: root.to_path_buf(),
            dir: root.join("target/kernel-vm"),
        }
    }

    /// Installs the VM's host packages (qemu, debootstrap, ...).
    pub fn setup(&self) -> Result<()> {
        crate::sh(
            Command::new("bash")
                .arg("dpdk-build/setup.sh")
                .arg("--kernel-vm"),
        )
    }

    fn kernel_package() -> Result<String> {
        let out = Command::new("apt-cache")
            .args(["depends", "linux-image-amd64"])
            .output()
            .context("apt-cache depends linux-image-amd64")?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .find_map(|l| l.trim().strip_prefix("Depends: linux-image-"))
            .map(|v| v.trim().to_string())
            .context("no linux-image-* package for linux-image-amd64 (apt-get update?)")
    }

    /// The image, built if this recipe and kernel have none yet.
    pub fn image(&self) -> Result<Image> {
        let mut h = Sha256::new();
        let vm = self.root.join("oracle/vm");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&vm)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        files.sort();
        for f in &files {
            h.update(f.file_name().unwrap_or_default().as_encoded_bytes());
            h.update(std::fs::read(f)?);
        }
        let kernel = Self::kernel_package()?;
        h.update(kernel.as_bytes());
        let hash = format!("{:x}", h.finalize());
        let dir = self.dir.join(format!("image-{}", &hash[..12]));
        if dir.join("root.ext4").exists() && dir.join("vmlinuz").exists() {
            return Ok(Image { dir });
        }
        std::fs::create_dir_all(&self.dir)?;
        // Older images go: they are big.
        for e in std::fs::read_dir(&self.dir)?.flatten() {
            if e.file_name().to_string_lossy().starts_with("image-") {
                let _ = std::fs::remove_dir_all(e.path());
            }
        }
        println!(
            "kernel-vm: building the image (kernel {kernel}) in {}",
            dir.display()
        );
        let started = Instant::now();
        let tmp = self.dir.join(format!("building-{}", &hash[..12]));
        let _ = std::fs::remove_dir_all(&tmp);
        crate::sh(Command::new("bash").arg(vm.join("image.sh")).arg(&tmp))?;
        std::fs::rename(&tmp, &dir)?;
        println!(
            "kernel-vm: image built in {:.0} s",
            started.elapsed().as_secs_f64()
        );
        Ok(Image { dir })
    }

    /// KVM if a probe boot shows it can run this guest, else TCG. The answer
    /// is kept in target/kernel-vm/accel.
    fn accel(&self, image: &Image) -> Result<&'static str> {
        let cache = self.dir.join("accel");
        if let Ok(s) = std::fs::read_to_string(&cache) {
            return Ok(if s.trim() == "kvm" { "kvm" } else { "tcg" });
        }
        let mut kvm = false;
        if Path::new("/dev/kvm").exists() {
            let started = Instant::now();
            let r = self.boot(
                image,
                "kvm",
                "echo kvm-works",
                Duration::from_secs(20),
                false,
            );
            kvm = matches!(&r, Ok(j) if j.code == 0
                && std::fs::read_to_string(j.dir.join("output")).unwrap_or_default().contains("kvm-works"));
            println!(
                "kernel-vm: KVM probe {} after {:.1} s",
                if kvm { "booted" } else { "failed (using TCG)" },
                started.elapsed().as_secs_f64()
            );
        }
        let a = if kvm { "kvm" } else { "tcg" };
        std::fs::write(&cache, a)?;
        Ok(a)
    }

    /// Boots the image and runs `script` (bash, in the checkout). Its output
    /// is in `<job>/output`; lines are echoed as they come when `echo`.
    pub fn run(
        &self,
        image: &Image,
        script: &str,
        limit: Duration,
        echo: bool,
    ) -> Result<JobResult> {
        let accel = self.accel(image)?;
        self.boot(image, accel, script, limit, echo)
    }

    fn boot(
        &self,
        image: &Image,
        accel: &str,
        script: &str,
        limit: Duration,
        echo: bool,
    ) -> Result<JobResult> {
        let jobs = self.dir.join("jobs");
        std::fs::create_dir_all(&jobs)?;
        let job = jobs.join(format!("{}-{}", std::process::id(), unique()));
        std::fs::create_dir_all(&job)?;
        std::fs::write(job.join("run.sh"), script)?;
        let cpus = std::thread::available_parallelism().map_or(2, |n| n.get());
        let (accel_arg, cpu) = match accel {
            "kvm" => ("kvm".to_string(), "host"),
            _ => ("tcg,thread=multi".to_string(), "max"),
        };
        let root = self.root.display().to_string();
        let mut child = Command::new("qemu-system-x86_64")
            .args(["-accel", &accel_arg, "-cpu", cpu])
            .args(["-m", &MEMORY_MB.to_string(), "-smp", &cpus.to_string()])
            .args(["-nographic", "-no-reboot", "-nic", "none"])
            .arg("-kernel")
            .arg(image.dir.join("vmlinuz"))
            .arg("-initrd")
            .arg(image.dir.join("initrd.gz"))
            .args([
                "-append",
                &format!("console=ttyS0 quiet panic=-1 rvs.repo={root}"),
            ])
            .arg("-drive")
            .arg(format!(
                "file={},if=virtio,format=raw,snapshot=on",
                image.dir.join("root.ext4").display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={},mount_tag=job,security_model=none",
                job.display()
            ))
            .arg("-virtfs")
            .arg(format!(
                "local,path={root},mount_tag=repo,security_model=none,readonly=on"
            ))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("starting qemu-system-x86_64 (cargo xtask kernel-vm build installs it)")?;
        let stdout = child.stdout.take().expect("piped");
        let started = Instant::now();
        let (tx, rx) = std::sync::mpsc::channel::<String>();
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(|l| l.ok()) {
                let _ = tx.send(line);
            }
        });
        let mut console = Vec::new();
        let mut timed_out = false;
        loop {
            match rx.recv_timeout(Duration::from_millis(200)) {
                Ok(line) => {
                    let line = line.replace('\r', "");
                    // The guest's job writes its lines to the console too;
                    // kernel messages start with a timestamp.
                    if echo
                        && !line.starts_with('[')
                        && !line.contains("\u{1b}")
                        && !line.trim().is_empty()
                    {
                        println!("  {line}");
                    }
                    console.push(line);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            }
            if started.elapsed() > limit {
                timed_out = true;
                let _ = child.kill();
            }
        }
        let _ = reader.join();
        let status = child.wait()?;
        std::fs::write(job.join("console"), console.join("\n"))?;
        if timed_out {
            bail!(
                "the VM did not finish within {limit:?} (console in {})",
                job.join("console").display()
            );
        }
        let code = match std::fs::read_to_string(job.join("rc")) {
            Ok(s) => s.trim().parse().unwrap_or(-1),
            Err(_) => {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    use std::io::Read;
                    let _ = e.read_to_string(&mut err);
                }
                bail!(
                    "the VM stopped ({status}) without running the job: {}\n{}",
                    err.trim(),
                    console[console.len().saturating_sub(20)..].join("\n")
                );
            }
        };
        Ok(JobResult { code, dir: job })
    }
}

fn unique() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// The scenario files under oracle/scenarios, grouped by sub-folder, those
/// whose name contains one of `filters` (all when none).
pub fn scenario_groups(root: &Path, filters: &[String]) -> Result<Vec<(String, Vec<PathBuf>)>> {
    let base = root.join("oracle/scenarios");
    let mut groups = Vec::new();
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(&base)
        .with_context(|| format!("reading {}", base.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.is_dir())
        .collect();
    dirs.sort();
    for d in dirs {
        let mut files: Vec<PathBuf> = std::fs::read_dir(&d)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .filter(|p| {
                let n = scenario_name(&base, p);
                filters.is_empty() || filters.iter().any(|f| n.contains(f.as_str()))
            })
            .collect();
        files.sort();
        if !files.is_empty() {
            let g = d
                .file_name()
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            groups.push((g, files));
        }
    }
    Ok(groups)
}

/// `cargo xtask kernel-vm test`: every scenario against kernel IPVS and
/// rvsd; one line per scenario and a total; fails on an unexplained
/// difference.
pub fn test(root: &Path, filters: &[String]) -> Result<()> {
    let vm = KernelVm::new(root);
    vm.setup()?;
    crate::sh(crate::cargo().args([
        "build",
        "-p",
        "rvsd",
        "-p",
        "rvsadm",
        "-p",
        "rvs-keepalived",
        "-p",
        "rvs-oracle",
    ]))?;
    let image = vm.image()?;
    let base = root.join("oracle/scenarios");
    let rules = load_deliberate(&root.join("oracle/deliberate.toml"))?;
    // Every scenario parses before a VM boots.
    let groups = scenario_groups(root, filters)?;
    if groups.is_empty() {
        bail!("no scenario matches {filters:?}");
    }
    for (_, files) in &groups {
        for f in files {
            let sc = rvs_oracle::scenario::Scenario::load(f)?;
            for (i, step) in sc.steps.iter().enumerate() {
                if let Some(n) = &step.explained_by {
                    if !rules.iter().any(|r| r.step_name() == Some(n.as_str())) {
                        bail!(
                            "{} step {}: explained_by = {n:?} names no difference in oracle/deliberate.toml",
                            f.display(),
                            i + 1
                        );
                    }
                }
            }
        }
    }
    let started = Instant::now();
    let (mut agreed, mut differ, mut explained, mut total) = (0, 0, 0, 0);
    let mut failures = Vec::new();
    for (group, files) in &groups {
        let rel: Vec<String> = files
            .iter()
            .map(|f| f.strip_prefix(root).unwrap_or(f).display().to_string())
            .collect();
        // The binaries run from the guest's tmpfs: exec over 9p reads the
        // whole (debug) binary from the host every time, four times slower.
        let script = format!(
            "set -o pipefail\nmkdir -p /job/results /tmp/rvs-bin\n\
             cp target/debug/rvsd target/debug/rvsadm target/debug/rvs-keepalived \
             target/debug/rvs-oracle /tmp/rvs-bin/\n\
             /tmp/rvs-bin/rvs-oracle run --bin-dir /tmp/rvs-bin --out /job/results {} 2>&1\n",
            rel.join(" ")
        );
        let boot = Instant::now();
        println!("kernel-vm: group {group} ({} scenarios)", files.len());
        let job = vm.run(&image, &script, BOOT_LIMIT, true)?;
        println!(
            "kernel-vm: group {group} took {:.0} s",
            boot.elapsed().as_secs_f64()
        );
        let results = job.dir.join("results");
        for f in files {
            total += 1;
            let name = scenario_name(&base, f);
            let read = |d: &str| {
                std::fs::read_to_string(result_path(&results, &name, d))
                    .ok()
                    .map(|s| Transcript::parse(&s))
            };
            let (Some(kt), Some(rt)) = (read("kernel"), read("rvs")) else {
                differ += 1;
                println!("  DIFFERS {name}: no transcript (the run did not get to it; see the output above)");
                failures.push(name);
                continue;
            };
            let o = compare(&kt, &rt, &rules);
            explained += o.explained_count();
            let notes = if o.explained.is_empty() {
                String::new()
            } else {
                let e: Vec<String> = o
                    .explained
                    .iter()
                    .map(|(w, n)| format!("{w} ×{n}"))
                    .collect();
                format!(" (explained: {})", e.join("; "))
            };
            if o.agrees() {
                agreed += 1;
                println!("  ok      {name}: {} lines agree{notes}", o.lines);
            } else {
                differ += 1;
                println!("  DIFFERS {name}{notes}");
                for l in &o.diff {
                    println!("    {l}");
                }
                failures.push(name);
            }
        }
    }
    // Connection sync with the kernel, both ways (not a lockstep
    // scenario: both ends run at once).
    if filters.is_empty() || filters.iter().any(|f| "sync-interop".contains(f.as_str())) {
        let script = "mkdir -p /tmp/rvs-bin
cp target/debug/rvs-oracle /tmp/rvs-bin/
                      /tmp/rvs-bin/rvs-oracle sync-interop 2>&1
";
        let boot = Instant::now();
        let job = vm.run(&image, script, BOOT_LIMIT, true);
        let out = job
            .as_ref()
            .map(|j| std::fs::read_to_string(j.dir.join("output")).unwrap_or_default())
            .unwrap_or_default();
        let mut seen = std::collections::HashSet::new();
        for l in out.lines().filter(|l| l.contains("sync-interop")) {
            if seen.insert(l) {
                println!("  {l}");
            }
        }
        total += 1;
        let code = job.as_ref().map(|j| j.code).unwrap_or(-1);
        if code == 0 && out.matches(": ok (").count() == 2 {
            agreed += 1;
            println!(
                "  ok      sync-interop: sync messages both ways with kernel IPVS ({:.0} s)",
                boot.elapsed().as_secs_f64()
            );
        } else {
            differ += 1;
            let why = match job {
                Ok(j) => format!("exit {}; output in {}", j.code, j.dir.display()),
                Err(e) => e.to_string(),
            };
            println!("  DIFFERS sync-interop: {why}");
            failures.push("sync-interop".into());
        }
    }
    println!(
        "kernel-vm test: {total} scenarios, {agreed} agree, {differ} differ, {explained} explained differences, {:.0} s",
        started.elapsed().as_secs_f64()
    );
    if differ > 0 {
        bail!(
            "scenarios that differ from kernel IPVS: {}",
            failures.join(" ")
        );
    }
    Ok(())
}
