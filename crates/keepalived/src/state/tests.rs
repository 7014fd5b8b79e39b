//! The engine against a made-up clock and made-up check results.

use super::*;
use crate::config::{self, Config};
use rvs_ipvs::ServiceKey;

fn config_of(text: &str) -> Config {
    let l = config::load_text(text);
    let errors: Vec<String> = l.diags.errors().map(|d| d.to_string()).collect();
    assert!(errors.is_empty(), "{errors:?}");
    l.config
}

/// A virtual server on 10.0.0.1:80 (DR, rr) with two TCP-checked servers
/// and whatever `extra` adds to the virtual server and each real server.
fn two_servers(vs_extra: &str, rs_extra: &str) -> String {
    format!(
        "virtual_server 10.0.0.1 80 {{
  delay_loop 10
  lb_algo rr
  lb_kind DR
  protocol TCP
  {vs_extra}
  real_server 10.0.0.11 80 {{
    weight 2
    {rs_extra}
    TCP_CHECK {{
      connect_timeout 1
      retry 2
      delay_before_retry 1
      warmup 0
    }}
  }}
  real_server 10.0.0.12 80 {{
    weight 1
    {rs_extra}
    TCP_CHECK {{
      connect_timeout 1
      retry 2
      delay_before_retry 1
      warmup 0
    }}
  }}
}}
"
    )
}

struct Sim {
    e: Engine,
    t0: Instant,
    now: Instant,
    logs: Vec<String>,
    scripts: Vec<String>,
}

impl Sim {
    fn new(text: &str) -> Sim {
        let cfg = config_of(text);
        let t0 = Instant::now();
        let mut e = Engine::new(&cfg, fastrand::Rng::with_seed(7), t0);
        e.start(t0);
        let mut s = Sim {
            e,
            t0,
            now: t0,
            logs: Vec::new(),
            scripts: Vec::new(),
        };
        s.drain();
        s
    }

    fn drain(&mut self) {
        for a in self.e.take_actions() {
            match a {
                Action::Log(l) => self.logs.push(l),
                Action::Run(s) => self.scripts.push(s.to_string()),
            }
        }
    }

    /// Advances the clock to `secs` after start, answering every check
    /// that falls due on the way with `answer(real server address)`.
    fn run_until(&mut self, secs: f64, answer: &dyn Fn(&str) -> Outcome) {
        let end = self.t0 + Duration::from_secs_f64(secs);
        while let Some(next) = self.e.next_due() {
            if next > end {
                break;
            }
            self.now = next.max(self.now);
            for job in self.e.due(self.now) {
                let addr = job
                    .checker
                    .conn
                    .map(|c| c.dst.ip().to_string())
                    .unwrap_or_default();
                let o = answer(&addr);
                self.e.on_result(job.r, o, self.now, SystemTime::now());
            }
            self.drain();
        }
        self.now = end;
    }

    fn weight(&self, addr: &str) -> Option<u32> {
        let key = ServiceKey {
            protocol: rvs_ipvs::Protocol::Tcp,
            addr: "10.0.0.1".parse().unwrap(),
            port: 80,
        };
        self.e
            .table()
            .dest(
                key,
                DestKey {
                    addr: addr.parse().unwrap(),
                    port: 80,
                },
            )
            .map(|d| d.weight)
    }

    fn has_log(&self, l: &str) -> bool {
        self.logs.iter().any(|x| x == l)
    }
}

fn all_up(_: &str) -> Outcome {
    Outcome::Up(None)
}

fn down_11(a: &str) -> Outcome {
    if a == "10.0.0.11" {
        Outcome::Down("Connection refused".into())
    } else {
        Outcome::Up(None)
    }
}

#[test]
fn starts_with_every_server_in_the_table() {
    let s = Sim::new(&two_servers("", ""));
    assert_eq!(s.weight("10.0.0.11"), Some(2));
    assert_eq!(s.weight("10.0.0.12"), Some(1));
    assert!(s.has_log(
        "Activating healthchecker for service [10.0.0.11]:tcp:80 for VS [10.0.0.1]:tcp:80"
    ));
    // keepalived weighs quorum before adding the servers, so it "gains" it.
    assert!(
        s.has_log("Gained quorum 1+0=1 <= 3 for VS [10.0.0.1]:tcp:80"),
        "{:?}",
        s.logs
    );
    let t = s.e.table();
    let svc = t.services.values().next().unwrap();
    assert_eq!(svc.spec.scheduler, "rr");
    // The order keepalived adds them in (the kernel lists newest first).
    let mut seqs: Vec<(String, u64)> = svc
        .dests
        .values()
        .map(|d| (d.spec.addr.to_string(), d.seq))
        .collect();
    seqs.sort_by_key(|x| x.1);
    assert_eq!(seqs[0].0, "10.0.0.11");
}

#[test]
fn first_failure_removes_at_once_later_ones_after_retries() {
    let mut s = Sim::new(&two_servers("", ""));
    // The first check is due after the bootstrap delay (warmup 0).
    s.run_until(1.0, &down_11);
    assert_eq!(s.weight("10.0.0.11"), None, "{:?}", s.logs);
    assert!(
        s.has_log("TCP_CHECK on service [10.0.0.11]:tcp:80 failed."),
        "{:?}",
        s.logs
    );
    assert!(s.has_log("Removing service [10.0.0.11]:tcp:80 from VS [10.0.0.1]:tcp:80"));
    // Back: one success re-adds it.
    s.run_until(11.0, &all_up);
    assert_eq!(s.weight("10.0.0.11"), Some(2));
    assert!(s.has_log("TCP connection to [10.0.0.11]:tcp:80 success."));
    assert!(s.has_log("Adding service [10.0.0.11]:tcp:80 to VS [10.0.0.1]:tcp:80"));
    // Now up: a failure at 21 s retries at 22 and 23 (retry 2, delay 1)
    // and removes it at 23.
    s.run_until(22.5, &down_11);
    assert_eq!(s.weight("10.0.0.11"), Some(2), "still up during retries");
    s.run_until(23.0, &down_11);
    assert_eq!(s.weight("10.0.0.11"), None);
    assert!(s.has_log("TCP_CHECK on service [10.0.0.11]:tcp:80 failed after 2 retries."));
    let st = s.e.status(1, "k.conf", SystemTime::now());
    let rs = &st.virtual_servers[0].real_servers[0];
    assert_eq!((rs.up, rs.weight, rs.flaps), (false, None, 3));
    assert_eq!(
        rs.last_error.as_deref(),
        Some("TCP_CHECK: Connection refused")
    );
}

#[test]
fn inhibit_on_failure_sets_weight_zero() {
    let mut s = Sim::new(&two_servers("inhibit_on_failure", ""));
    s.run_until(1.0, &down_11);
    assert_eq!(s.weight("10.0.0.11"), Some(0));
    assert!(
        s.has_log("Disabling service [10.0.0.11]:tcp:80 of VS [10.0.0.1]:tcp:80"),
        "{:?}",
        s.logs
    );
    s.run_until(11.0, &all_up);
    assert_eq!(s.weight("10.0.0.11"), Some(2));
    assert!(s.has_log("Enabling service [10.0.0.11]:tcp:80 of VS [10.0.0.1]:tcp:80"));
}

#[test]
fn alpha_waits_for_a_first_success() {
    let mut s = Sim::new(&two_servers("alpha", ""));
    assert_eq!(s.weight("10.0.0.11"), None);
    assert_eq!(s.weight("10.0.0.12"), None);
    s.run_until(1.0, &down_11);
    assert_eq!(s.weight("10.0.0.11"), None);
    assert_eq!(s.weight("10.0.0.12"), Some(1));
}

#[test]
fn alpha_with_inhibit_starts_at_weight_zero() {
    let s = Sim::new(&two_servers("alpha\ninhibit_on_failure", ""));
    assert_eq!(s.weight("10.0.0.11"), Some(0));
    assert_eq!(s.weight("10.0.0.12"), Some(0));
}

#[test]
fn sorry_server_replaces_the_pool_below_quorum() {
    let mut s = Sim::new(&two_servers(
        "quorum 2\nhysteresis 0\nsorry_server 10.0.0.99 80\nquorum_up /bin/qup\nquorum_down \"/bin/qdown arg\"",
        "",
    ));
    assert_eq!(s.weight("10.0.0.99"), None);
    assert!(
        s.scripts.contains(&"/bin/qup".to_string()),
        "{:?}",
        s.scripts
    );
    // rs1 (weight 2) down: live weight 1 < quorum 2.
    s.run_until(1.0, &down_11);
    assert!(
        s.has_log("Lost quorum 2-0=2 > 1 for VS [10.0.0.1]:tcp:80"),
        "{:?}",
        s.logs
    );
    assert!(s.has_log("Adding sorry server [10.0.0.99]:tcp:80 to VS [10.0.0.1]:tcp:80"));
    assert!(s.has_log("Removing alive servers from the pool for VS [10.0.0.1]:tcp:80"));
    assert_eq!(s.weight("10.0.0.99"), Some(1));
    assert_eq!(
        s.weight("10.0.0.12"),
        None,
        "the pool makes way for the sorry server"
    );
    assert_eq!(s.scripts.last().map(String::as_str), Some("/bin/qdown arg"));
    s.run_until(11.0, &all_up);
    assert!(s.has_log("Gained quorum 2+0=2 <= 3 for VS [10.0.0.1]:tcp:80"));
    assert!(s.has_log("Removing sorry server [10.0.0.99]:tcp:80 from VS [10.0.0.1]:tcp:80"));
    assert_eq!(s.weight("10.0.0.99"), None);
    assert_eq!(
        (s.weight("10.0.0.11"), s.weight("10.0.0.12")),
        (Some(2), Some(1))
    );
    let st = s.e.status(1, "k", SystemTime::now());
    assert!(st.virtual_servers[0].quorum_up);
    assert!(!st.virtual_servers[0].sorry_server.as_ref().unwrap().active);
}

#[test]
fn sorry_server_inhibit_keeps_it_at_weight_zero() {
    let mut s = Sim::new(&two_servers(
        "quorum 3\nsorry_server 10.0.0.99 80\nsorry_server_inhibit",
        "",
    ));
    assert_eq!(s.weight("10.0.0.99"), Some(0));
    s.run_until(1.0, &down_11);
    assert!(
        s.has_log("Enabling sorry server [10.0.0.99]:tcp:80 to VS [10.0.0.1]:tcp:80"),
        "{:?}",
        s.logs
    );
    assert_eq!(s.weight("10.0.0.99"), Some(1));
    s.run_until(11.0, &all_up);
    assert!(s.has_log("Disabling sorry server [10.0.0.99]:tcp:80 from VS [10.0.0.1]:tcp:80"));
    assert_eq!(s.weight("10.0.0.99"), Some(0));
}

#[test]
fn hysteresis_delays_regaining_quorum() {
    // quorum 2, hysteresis 1: lost below 1, regained at 3.
    let text = two_servers("quorum 2\nhysteresis 1\nsorry_server 10.0.0.99 80", "");
    let mut s = Sim::new(&text);
    s.run_until(1.0, &down_11);
    // Live weight 1 is not below 2-1=1: still up.
    assert!(
        !s.logs.iter().any(|l| l.starts_with("Lost quorum")),
        "{:?}",
        s.logs
    );
    assert_eq!(s.weight("10.0.0.99"), None);
    let both_down = |_: &str| Outcome::Down("Connection refused".into());
    // rs2 is up: its failure at 11 s is retried at 12 and 13 s.
    s.run_until(12.5, &both_down);
    assert!(
        !s.logs.iter().any(|l| l.starts_with("Lost quorum")),
        "{:?}",
        s.logs
    );
    s.run_until(13.0, &both_down);
    assert!(
        s.has_log("Lost quorum 2-1=1 > 0 for VS [10.0.0.1]:tcp:80"),
        "{:?}",
        s.logs
    );
    // rs2 back alone: 1 < 2+1, no quorum yet.
    let only_12 = |a: &str| {
        if a == "10.0.0.12" {
            Outcome::Up(None)
        } else {
            Outcome::Down("x".into())
        }
    };
    s.run_until(23.0, &only_12);
    assert_eq!(
        s.weight("10.0.0.12"),
        None,
        "the sorry server holds the pool"
    );
    let gained = |s: &Sim| {
        s.logs
            .iter()
            .filter(|l| l.starts_with("Gained quorum 2+1=3 <= 3"))
            .count()
    };
    assert_eq!(gained(&s), 1, "only the one at start-up");
    assert_eq!(s.weight("10.0.0.99"), Some(1));
    s.run_until(31.0, &all_up);
    assert_eq!(
        (
            s.weight("10.0.0.11"),
            s.weight("10.0.0.12"),
            s.weight("10.0.0.99")
        ),
        (Some(2), Some(1), None)
    );
    assert_eq!(gained(&s), 2, "{:?}", s.logs);
}

#[test]
fn notify_scripts_run_on_transitions() {
    let mut s = Sim::new(&two_servers(
        "",
        "notify_up \"/bin/up x\"\nnotify_down /bin/down",
    ));
    assert!(s.scripts.is_empty(), "{:?}", s.scripts);
    s.run_until(1.0, &down_11);
    assert_eq!(s.scripts, ["/bin/down"]);
    s.run_until(11.0, &all_up);
    assert_eq!(s.scripts, ["/bin/down", "/bin/up x"]);
}

#[test]
fn misc_dynamic_sets_the_weight_from_the_exit_code() {
    let text = "virtual_server 10.0.0.1 80 {
  delay_loop 5
  lb_algo wrr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.11 80 {
    weight 1
    MISC_CHECK {
      misc_path \"/bin/check 10.0.0.11\"
      misc_dynamic
      warmup 0
    }
  }
}
";
    let mut s = Sim::new(text);
    assert_eq!(s.weight("10.0.0.11"), Some(1));
    s.run_until(1.0, &|_| Outcome::Exit(12));
    assert_eq!(s.weight("10.0.0.11"), Some(10));
    assert!(s.has_log("Changing weight from 1 to 10 for active service [10.0.0.11]:tcp:80 of VS [10.0.0.1]:tcp:80"), "{:?}", s.logs);
    s.run_until(6.0, &|_| Outcome::Exit(0));
    assert_eq!(s.weight("10.0.0.11"), Some(1));
    s.run_until(11.0, &|_| Outcome::Exit(1));
    assert_eq!(s.weight("10.0.0.11"), None);
    assert!(
        s.has_log("Misc check for [[10.0.0.11]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/check] failed with retry disabled (exited with status 1)."),
        "{:?}",
        s.logs
    );
    s.run_until(16.0, &|_| Outcome::Exit(5));
    assert_eq!(s.weight("10.0.0.11"), Some(3));
    assert!(s.has_log(
        "Misc check for [[10.0.0.11]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/check] succeeded."
    ));
    s.run_until(21.0, &|_| Outcome::TimedOut);
    assert_eq!(s.weight("10.0.0.11"), None);
    assert!(s.has_log("Misc check for [[10.0.0.11]:tcp:80 VS [10.0.0.1]:tcp:80] by [/bin/check] timed out with retry disabled."));
}

#[test]
fn stale_results_are_ignored_after_reload() {
    let text = two_servers("", "");
    let mut s = Sim::new(&text);
    s.now = s.t0 + Duration::from_secs(1);
    let jobs = s.e.due(s.now);
    assert_eq!(jobs.len(), 2);
    s.e.reload(&config_of(&text), s.now);
    s.e.on_result(
        jobs[0].r,
        Outcome::Down("x".into()),
        s.now,
        SystemTime::now(),
    );
    assert_eq!(s.weight("10.0.0.11"), Some(2));
    // The checker that was running is checked again soon.
    assert!(s.e.next_due().unwrap() <= s.now + BOOTSTRAP_DELAY);
}

#[test]
fn reload_keeps_state_and_applies_differences() {
    let mut s = Sim::new(&two_servers("", ""));
    s.run_until(1.0, &down_11);
    assert_eq!(s.weight("10.0.0.11"), None);
    let before = s.e.table().clone();
    // Same configuration: nothing changes, the down server stays out.
    s.e.reload(&config_of(&two_servers("", "")), s.now);
    s.drain();
    assert_eq!(*s.e.table(), before);
    // rs2's weight changes, rs1 goes, rs3 comes.
    let text = "virtual_server 10.0.0.1 80 {
  delay_loop 10
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.12 80 {
    weight 5
    TCP_CHECK {
      connect_timeout 1
      retry 2
      delay_before_retry 1
      warmup 0
    }
  }
  real_server 10.0.0.13 80 {
    TCP_CHECK {
      warmup 0
    }
  }
}
";
    s.e.reload(&config_of(text), s.now);
    s.drain();
    assert_eq!(s.weight("10.0.0.11"), None);
    assert_eq!(s.weight("10.0.0.12"), Some(5));
    assert_eq!(s.weight("10.0.0.13"), Some(1));
    assert!(
        s.has_log("service [10.0.0.11]:tcp:80 no longer exist"),
        "{:?}",
        s.logs
    );
    assert!(s.has_log(
        "Changing weight from 1 to 5 for active service [10.0.0.12]:tcp:80 of VS [10.0.0.1]:tcp:80"
    ));
    let st = s.e.status(1, "k", SystemTime::now());
    assert_eq!(st.virtual_servers[0].real_servers.len(), 2);
    // A different scheduler is an edit of the service, not a new one.
    s.e.reload(
        &config_of(&text.replace("lb_algo rr", "lb_algo wlc")),
        s.now,
    );
    let svc = s.e.table().services.values().next().unwrap();
    assert_eq!(svc.spec.scheduler, "wlc");
    assert_eq!(svc.dests.len(), 2);
    // A virtual server that goes takes its services with it.
    s.e.reload(
        &config_of(&text.replace("10.0.0.1 80", "10.0.0.2 80")),
        s.now,
    );
    s.drain();
    assert!(s.has_log("Removing Virtual Server [10.0.0.1]:tcp:80"));
    let keys: Vec<String> =
        s.e.table()
            .services
            .values()
            .map(|x| x.spec.key.to_string())
            .collect();
    assert_eq!(keys, ["TCP 10.0.0.2:80"]);
}

#[test]
fn stop_clears_and_omega_notifies() {
    let mut s = Sim::new(&two_servers(
        "omega\nquorum_down /bin/qdown",
        "notify_down /bin/down",
    ));
    s.e.stop();
    s.drain();
    assert!(s.e.table().services.is_empty());
    assert!(s.has_log("Shutting down service [10.0.0.11]:tcp:80 from VS [10.0.0.1]:tcp:80"));
    assert_eq!(s.scripts, ["/bin/down", "/bin/down", "/bin/qdown"]);
    // Without omega, stopping runs no scripts.
    let mut s = Sim::new(&two_servers(
        "quorum_down /bin/qdown",
        "notify_down /bin/down",
    ));
    s.e.stop();
    s.drain();
    assert!(s.scripts.is_empty(), "{:?}", s.scripts);
}

#[test]
fn group_services_share_one_checker_per_server() {
    let text = "virtual_server_group G {
  10.0.0.1 80
  10.0.0.2-3 8080
}
virtual_server group G {
  delay_loop 10
  lb_algo rr
  lb_kind DR
  protocol TCP
  real_server 10.0.0.11 80 {
    TCP_CHECK {
      warmup 0
    }
  }
}
";
    let cfg = config::load_str_for_tests(text);
    let t0 = Instant::now();
    let mut e = Engine::new(&cfg, fastrand::Rng::with_seed(1), t0);
    e.start(t0);
    let keys: Vec<String> = e
        .table()
        .services
        .values()
        .map(|x| x.spec.key.to_string())
        .collect();
    assert_eq!(
        keys,
        ["TCP 10.0.0.1:80", "TCP 10.0.0.2:8080", "TCP 10.0.0.3:8080"]
    );
    // DR: each service's dest takes that service's port.
    let ports: Vec<u16> = e
        .table()
        .services
        .values()
        .map(|x| x.dests.values().next().unwrap().spec.port)
        .collect();
    assert_eq!(ports, [80, 8080, 8080]);
    let jobs = e.due(t0 + BOOTSTRAP_DELAY);
    assert_eq!(jobs.len(), 1);
    e.on_result(
        jobs[0].r,
        Outcome::Down("x".into()),
        t0 + BOOTSTRAP_DELAY,
        SystemTime::now(),
    );
    assert!(e.table().services.values().all(|s| s.dests.is_empty()));
    let logs = e.take_actions();
    assert!(
        logs.contains(&Action::Log(
            "Removing service [10.0.0.11]:tcp:80 from VS [G]:0".into()
        )),
        "{logs:?}"
    );
}
