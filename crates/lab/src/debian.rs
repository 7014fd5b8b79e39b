//! A Debian 12 root to install the .deb into, without touching this
//! machine: debootstrap'ed once into a cache keyed by its recipe, copied for
//! each run, entered with chroot in a private mount namespace (so the
//! /proc, /sys and /dev mounts it needs vanish with the command, even when
//! a test dies).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use anyhow::{bail, Context, Result};

/// What the cached root is made of; a change makes a new one.
fn recipe(mirror: &str) -> String {
    // minbase plus systemd (systemd-analyze verifies the unit,
    // systemd-sysusers makes the package's user, as on a real install) and
    // man-db (the unit's Documentation= pages must open).
    format!("debootstrap --variant=minbase --include={INCLUDE} bookworm {mirror}; apt-get update")
}

const INCLUDE: &str = "systemd,init-system-helpers,man-db";

/// FNV-1a: a stable short name for a recipe.
fn key(s: &str) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}

fn mirror() -> String {
    std::env::var("DEBIAN_MIRROR").unwrap_or_else(|_| "http://deb.debian.org/debian".into())
}

/// The cached bookworm root under `cache` (made on first use, about two
/// minutes with a mirror nearby). Needs root and debootstrap.
pub fn bookworm_base(cache: &Path) -> Result<PathBuf> {
    let mirror = mirror();
    let recipe = recipe(&mirror);
    let dir = cache.join(format!("bookworm-{}", key(&recipe)));
    if dir.join(".complete").exists() {
        return Ok(dir);
    }
    if Command::new("debootstrap")
        .arg("--version")
        .output()
        .is_err()
    {
        bail!("debootstrap is missing: apt-get install debootstrap (dpdk-build/setup.sh does)");
    }
    // Roots of older recipes are of no more use.
    if let Ok(entries) = fs::read_dir(cache) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with("bookworm-") && e.path() != dir {
                let _ = fs::remove_dir_all(e.path());
            }
        }
    }
    let partial = cache.join(format!("bookworm-{}.partial", key(&recipe)));
    let _ = fs::remove_dir_all(&partial);
    fs::create_dir_all(cache)?;
    eprintln!("debian: {recipe} into {} (once; cached)", dir.display());
    let log = cache.join("debootstrap.log");
    let out = Command::new("debootstrap")
        .args([
            "--variant=minbase",
            &format!("--include={INCLUDE}"),
            "bookworm",
        ])
        .arg(&partial)
        .arg(&mirror)
        .stdin(Stdio::null())
        .output()
        .context("running debootstrap")?;
    fs::write(
        &log,
        [out.stdout.as_slice(), out.stderr.as_slice()].concat(),
    )?;
    if !out.status.success() {
        bail!("debootstrap failed; see {}", log.display());
    }
    // Name resolution for apt inside.
    let _ = fs::copy("/etc/resolv.conf", partial.join("etc/resolv.conf"));
    let base = Root {
        dir: partial.clone(),
        remove: false,
    };
    base.ok("apt-get update -qq")?;
    fs::rename(&partial, &dir)?;
    fs::write(dir.join(".complete"), recipe)?;
    Ok(dir)
}

/// A root of its own, copied from the cached base; removed on drop.
pub struct Root {
    pub dir: PathBuf,
    remove: bool,
}

impl Root {
    /// A fresh copy of `base` at `dir` (replacing what was there).
    pub fn copy_of(base: &Path, dir: &Path) -> Result<Root> {
        let _ = fs::remove_dir_all(dir);
        let st = Command::new("cp")
            .arg("-a")
            .arg(base)
            .arg(dir)
            .status()
            .context("copying the Debian root")?;
        if !st.success() {
            bail!("cp -a {} {} failed", base.display(), dir.display());
        }
        Ok(Root {
            dir: dir.to_path_buf(),
            remove: true,
        })
    }

    /// A path inside the root.
    pub fn path(&self, p: &str) -> PathBuf {
        self.dir.join(p.trim_start_matches('/'))
    }

    /// The shell line that enters the root in a private mount namespace
    /// with /proc, /sys and /dev, plus `binds` (host dir, dir inside), and
    /// runs `cmd` there with sh (exec'ed: the last process is `cmd`'s).
    pub fn enter_line(&self, binds: &[(&Path, &str)], cmd: &str) -> Vec<String> {
        let r = self.dir.display().to_string();
        let mut script = format!(
            "set -e; R={r}; mount --rbind /proc $R/proc; mount --rbind /sys $R/sys; \
mount --rbind /dev $R/dev; "
        );
        for (host, inside) in binds {
            script.push_str(&format!(
                "mkdir -p $R{inside}; mount --bind {} $R{inside}; ",
                host.display()
            ));
        }
        script.push_str("exec chroot $R /bin/sh -c \"$1\"");
        vec![
            "unshare".into(),
            "--mount".into(),
            "--propagation".into(),
            "private".into(),
            "sh".into(),
            "-c".into(),
            script,
            "enter".into(),
            cmd.into(),
        ]
    }

    /// Runs `cmd` (a shell line) inside.
    pub fn run(&self, cmd: &str) -> Result<Output> {
        self.run_with(&[], cmd)
    }

    pub fn run_with(&self, binds: &[(&Path, &str)], cmd: &str) -> Result<Output> {
        let line = self.enter_line(binds, cmd);
        Command::new(&line[0])
            .args(&line[1..])
            .env("DEBIAN_FRONTEND", "noninteractive")
            .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
            .stdin(Stdio::null())
            .output()
            .with_context(|| format!("running {cmd:?} in {}", self.dir.display()))
    }

    /// Runs `cmd` inside; its stdout, or an error with its output.
    pub fn ok(&self, cmd: &str) -> Result<String> {
        let out = self.run(cmd)?;
        if !out.status.success() {
            bail!(
                "{cmd:?} in {} failed ({}):\n{}{}",
                self.dir.display(),
                out.status,
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Root {
    fn drop(&mut self) {
        if self.remove {
            // Nothing is mounted in it outside the commands' own
            // namespaces, so a plain removal is safe.
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recipe_key_is_stable_and_follows_the_recipe() {
        assert_eq!(key(""), "cbf29ce484222325");
        assert_eq!(key("a"), "af63dc4c8601ec8c");
        assert_ne!(key(&recipe("http://a/")), key(&recipe("http://b/")));
    }
}
