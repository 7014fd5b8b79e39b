//! Telling systemd (Type=notify) where rvsd stands: READY=1 once the ports
//! are up, the rules are loaded and the control socket listens;
//! RELOADING=1 then READY=1 around a reload; STOPPING=1 on the way out.
//! Without $NOTIFY_SOCKET (not started by systemd) these do nothing.

use sd_notify::NotifyState;

fn send(states: &[NotifyState]) {
    if let Err(e) = sd_notify::notify(false, states) {
        log::warn!("telling systemd ({states:?}): {e}");
    }
}

pub fn ready(status: &str) {
    send(&[NotifyState::Ready, NotifyState::Status(status)]);
}

pub fn reloading() {
    // systemd 253 and later want the time with RELOADING=1.
    match NotifyState::monotonic_usec_now() {
        Ok(now) => send(&[NotifyState::Reloading, now]),
        Err(_) => send(&[NotifyState::Reloading]),
    }
}

pub fn stopping() {
    send(&[NotifyState::Stopping]);
}
