//! Network namespaces, entered per thread.
//!
//! `setns` moves only the calling thread, and a socket belongs to the
//! namespace it was created in for its whole life. So the runner creates a
//! namespace's sockets (and spawns its commands) from a short-lived thread
//! that entered it, and uses them from anywhere: no `ip netns exec` process
//! per action, which under TCG costs a fifth of a second each.

use std::fs::File;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};
use nix::sched::{setns, CloneFlags};

#[derive(Debug, Clone)]
pub struct Netns {
    pub name: String,
}

impl Netns {
    pub fn new(name: &str) -> Netns {
        Netns {
            name: name.to_string(),
        }
    }

    fn path(&self) -> PathBuf {
        PathBuf::from("/run/netns").join(&self.name)
    }

    /// Runs `f` on a thread inside this namespace and returns its result.
    pub fn run<T: Send>(&self, f: impl FnOnce() -> Result<T> + Send) -> Result<T> {
        let fd = File::open(self.path()).with_context(|| format!("opening netns {}", self.name))?;
        std::thread::scope(|s| {
            s.spawn(|| {
                setns(&fd, CloneFlags::CLONE_NEWNET)
                    .with_context(|| format!("entering netns {}", self.name))?;
                f()
            })
            .join()
            .unwrap_or_else(|_| bail!("a thread in netns {} panicked", self.name))
        })
    }

    /// Writes a sysctl (`net.ipv4.ip_forward`) of this namespace.
    pub fn sysctl(&self, key: &str, value: &str) -> Result<()> {
        let path = PathBuf::from("/proc/sys").join(key.replace('.', "/"));
        self.run(|| {
            std::fs::write(&path, value)
                .with_context(|| format!("sysctl {key}={value} in {}", self.name))
        })
    }

    /// Runs a program inside the namespace and collects its output.
    pub fn output(
        &self,
        program: &str,
        args: &[String],
        envs: &[(String, String)],
    ) -> Result<Output> {
        self.output_with_stdin(program, args, envs, None)
    }

    /// [`Netns::output`], feeding `stdin` to the program.
    pub fn output_with_stdin(
        &self,
        program: &str,
        args: &[String],
        envs: &[(String, String)],
        stdin: Option<&str>,
    ) -> Result<Output> {
        use std::io::Write;
        self.run(|| {
            let mut child = Command::new(program)
                .args(args)
                .envs(envs.iter().map(|(k, v)| (k, v)))
                .stdin(if stdin.is_some() {
                    Stdio::piped()
                } else {
                    Stdio::null()
                })
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .with_context(|| format!("running {program} in {}", self.name))?;
            if let Some(text) = stdin {
                // A program that exits without reading all of it is fine.
                let _ = child
                    .stdin
                    .take()
                    .expect("piped")
                    .write_all(text.as_bytes());
            }
            Ok(child.wait_with_output()?)
        })
    }

    /// Runs `ip -batch -` with these lines inside the namespace.
    pub fn ip_batch(&self, lines: &[String]) -> Result<()> {
        ip_batch(Some(self), lines)
    }
}

/// `ip [-n NS] -batch -`: many link and address changes for one process.
pub fn ip_batch(ns: Option<&Netns>, lines: &[String]) -> Result<()> {
    use std::io::Write;
    let mut cmd = Command::new("ip");
    if let Some(ns) = ns {
        cmd.args(["-n", &ns.name]);
    }
    let mut child = cmd
        .args(["-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .context("running ip -batch")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(lines.join("\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!(
            "ip -batch failed: {}\n{}",
            String::from_utf8_lossy(&out.stderr).trim(),
            lines.join("\n")
        );
    }
    Ok(())
}
