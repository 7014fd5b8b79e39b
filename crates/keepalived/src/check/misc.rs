//! MISC_CHECK: run `misc_path` and judge by its exit status (0 up, 1 down,
//! 2-255 up with weight status - 2 under `misc_dynamic`), killing it after
//! `misc_timeout` (the virtual server's `delay_loop` when unset).

use crate::config::MiscCheck;
use crate::scripts::{self, Ended};
use crate::state::Outcome;

pub fn check(m: &MiscCheck) -> Outcome {
    match scripts::run_and_wait(&m.script, m.timeout) {
        Ok(Ended::Exit(c)) => Outcome::Exit(c),
        Ok(Ended::Signal(s)) => Outcome::Signal(s),
        Ok(Ended::TimedOut) => Outcome::TimedOut,
        Err(e) => Outcome::Down(format!(
            "cannot run {}: {e}",
            m.script.args.first().map(String::as_str).unwrap_or("")
        )),
    }
}
