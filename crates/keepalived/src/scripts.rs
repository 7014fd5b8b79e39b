//! Running keepalived's scripts: MISC_CHECK programs (waited for, within
//! `misc_timeout`) and notify/quorum scripts (not waited for). Each runs in
//! its own process group, as keepalived runs them, so that a script that
//! has to be killed takes its children with it.

use std::io;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use nix::sys::signal::{killpg, Signal};
use nix::unistd::{Group, Pid, User};
use wait_timeout::ChildExt;

use crate::config::Script;

/// How a waited-for script ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    Exit(i32),
    Signal(i32),
    /// Ran past its time and was killed (TERM, then KILL after 2 s).
    TimedOut,
}

/// How long a notify script may run before it is killed.
pub const NOTIFY_LIMIT: Duration = Duration::from_secs(60);

fn command(s: &Script) -> io::Result<Command> {
    let Some((prog, args)) = s.args.split_first() else {
        return Err(io::Error::new(io::ErrorKind::InvalidInput, "empty script"));
    };
    let mut c = Command::new(prog);
    c.args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .process_group(0);
    if let Some((user, group)) = &s.user {
        let u = User::from_name(user)
            .map_err(io::Error::from)?
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, format!("no user {user}")))?;
        let gid = match group {
            Some(g) => {
                Group::from_name(g)
                    .map_err(io::Error::from)?
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, format!("no group {g}"))
                    })?
                    .gid
            }
            None => u.gid,
        };
        c.uid(u.uid.as_raw()).gid(gid.as_raw());
    }
    Ok(c)
}

fn kill_group(child: &Child, sig: Signal) {
    // The child leads its own group (process_group(0)).
    let _ = killpg(Pid::from_raw(child.id() as i32), sig);
}

/// Waits for `child` up to `limit`; past it, TERM then KILL to its group.
fn wait(mut child: Child, limit: Duration) -> io::Result<Ended> {
    if let Some(st) = child.wait_timeout(limit)? {
        return Ok(match st.code() {
            Some(c) => Ended::Exit(c),
            None => Ended::Signal(st.signal().unwrap_or(0)),
        });
    }
    kill_group(&child, Signal::SIGTERM);
    if child.wait_timeout(Duration::from_secs(2))?.is_none() {
        kill_group(&child, Signal::SIGKILL);
        child.wait()?;
    }
    // Whatever else is left of its group goes too.
    kill_group(&child, Signal::SIGKILL);
    Ok(Ended::TimedOut)
}

/// Runs `s` and waits for it, at most `limit`.
pub fn run_and_wait(s: &Script, limit: Duration) -> io::Result<Ended> {
    let child = command(s)?.spawn()?;
    wait(child, limit)
}

/// Starts `s` and returns; a thread reaps it (and kills it after
/// [`NOTIFY_LIMIT`]).
pub fn run_detached(s: &Script) -> io::Result<()> {
    let child = command(s)?.spawn()?;
    let name = s.args[0].clone();
    std::thread::Builder::new()
        .name("notify-script".into())
        .spawn(move || {
            if let Ok(Ended::TimedOut) = wait(child, NOTIFY_LIMIT) {
                log::info!(
                    "Script {name} ran longer than {}s and was killed",
                    NOTIFY_LIMIT.as_secs()
                );
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn sh(cmd: &str) -> Script {
        Script {
            args: vec!["/bin/sh".into(), "-c".into(), cmd.into()],
            user: None,
        }
    }

    #[test]
    fn exit_codes_signals_and_timeouts() {
        assert_eq!(
            run_and_wait(&sh("exit 7"), Duration::from_secs(5)).unwrap(),
            Ended::Exit(7)
        );
        assert_eq!(
            run_and_wait(&sh("kill -9 $$"), Duration::from_secs(5)).unwrap(),
            Ended::Signal(9)
        );
        let t = Instant::now();
        // The sleep is a child of the shell: the group kill ends both.
        assert_eq!(
            run_and_wait(&sh("sleep 30; exit 0"), Duration::from_millis(200)).unwrap(),
            Ended::TimedOut
        );
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(run_and_wait(
            &Script {
                args: vec!["/nonexistent/script".into()],
                user: None
            },
            Duration::from_secs(1)
        )
        .is_err());
    }

    #[test]
    fn runs_as_the_configured_user() {
        let out = std::env::temp_dir().join(format!("rvs-ka-user-{}", fastrand::u64(..)));
        let s = Script {
            args: vec![
                "/bin/sh".into(),
                "-c".into(),
                format!("id -u > {}", out.display()),
            ],
            user: Some(("nobody".into(), None)),
        };
        // /tmp is world-writable, so nobody can write there.
        assert_eq!(
            run_and_wait(&s, Duration::from_secs(5)).unwrap(),
            Ended::Exit(0)
        );
        let uid = std::fs::read_to_string(&out).unwrap();
        let nobody = User::from_name("nobody").unwrap().unwrap().uid.as_raw();
        assert_eq!(uid.trim(), nobody.to_string());
        let _ = std::fs::remove_file(out);
    }
}
