#![allow(dead_code)] // each test binary uses a different part
//! Shared set-up of the end-to-end tests: each test builds its own lab under
//! a unique prefix, so a failed test leaves nothing behind for the next.

use std::path::PathBuf;

use rvs_ipvs::{Command, DestSpec, Director, FwdMethod, Protocol, ServiceKey, ServiceSpec};
use rvs_lab::{Lab, RvsdOptions, RS1, VIP};

/// A lab with RS1/RS2 serving HTTP on port 80 and rvsd running, no services.
pub fn lab(name: &str) -> Lab {
    // Short prefixes: namespace names show up in `ip netns`, keep them tidy.
    let prefix = format!("{}{}", rvs_lab::test_prefix(), name);
    let dir = rvs_lab::test_dir(&prefix);
    let mut lab = Lab::create(&prefix, &dir).expect("building the lab");
    lab.serve_http("rs1", 80, "RS1").unwrap();
    lab.serve_http("rs2", 80, "RS2").unwrap();
    lab.start_rvsd(&RvsdOptions {
        worker_lcores: vec![1],
        idle_empty_polls: 256,
        socket: PathBuf::from(&dir).join("rvsd.sock"),
    })
    .unwrap();
    lab
}

pub fn vip(port: u16) -> String {
    format!("{}:{port}", rvs_lab::VIP)
}

/// A replica of the service the tests configure with rvsadm (TCP VIP:80,
/// `scheduler`, DR servers added in the order given): what rvs's scheduler
/// module decides is the expected behaviour.
pub fn replica(scheduler: &str, adds: &[(&str, u32)]) -> (Director, ServiceKey) {
    let mut d = Director::new();
    let key = ServiceKey {
        protocol: Protocol::Tcp,
        addr: VIP.parse().unwrap(),
        port: 80,
    };
    d.apply(&Command::AddService(ServiceSpec {
        key,
        scheduler: scheduler.into(),
        sched_flags: 0,
        persistent: None,
        netmask: rvs_ipvs::PersistMask::V4(std::net::Ipv4Addr::BROADCAST),
        one_packet: false,
    }))
    .unwrap();
    for (a, w) in adds {
        d.apply(&Command::AddDest(
            key,
            DestSpec {
                addr: a.parse().unwrap(),
                port: 80,
                fwd: FwdMethod::Route,
                weight: *w,
                u_threshold: 0,
                l_threshold: 0,
            },
        ))
        .unwrap();
    }
    (d, key)
}

/// "RS1" or "RS2", as the lab's servers answer.
pub fn name_of(addr: &str) -> &'static str {
    if addr == RS1 {
        "RS1"
    } else {
        "RS2"
    }
}

pub fn which(bin: &str) -> Option<String> {
    std::env::var_os("PATH").and_then(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join(bin))
            .find(|f| f.is_file())
            .map(|f| f.display().to_string())
    })
}

/// The value of `name` on the first `<tag ...>` of the document.
pub fn attr<'a>(dom: &'a str, tag: &str, name: &str) -> Option<&'a str> {
    let start = dom.find(&format!("<{tag}"))?;
    let open = &dom[start..start + dom[start..].find('>')?];
    let at = open.find(&format!("{name}=\""))? + name.len() + 2;
    Some(&open[at..at + open[at..].find('"')?])
}

/// The `<tr ...>...</tr>` carrying `marker` in its opening tag.
pub fn element<'a>(dom: &'a str, marker: &str) -> Option<&'a str> {
    let at = dom.find(marker)?;
    let start = dom[..at].rfind("<tr")?;
    let end = at + dom[at..].find("</tr>")?;
    Some(&dom[start..end])
}

/// The text of the `<td class="{class}">` in a row.
pub fn cell<'a>(row: &'a str, class: &str) -> &'a str {
    let open = format!("<td class=\"{class}\">");
    let at = row
        .find(&open)
        .unwrap_or_else(|| panic!("no {class} cell in {row}"))
        + open.len();
    &row[at..at + row[at..].find("</td>").unwrap()]
}

/// A counter of `rvsadm --counters`, summed over the workers.
pub fn counter(lab: &Lab, name: &str) -> u64 {
    counter_per_worker(lab, name).iter().sum()
}

/// A counter of `rvsadm --counters`, one value per worker, in their order.
pub fn counter_per_worker(lab: &Lab, name: &str) -> Vec<u64> {
    let c = lab.rvsadm_ok("--counters").unwrap();
    c.lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            (f.next() == Some(name)).then(|| f.next()?.parse::<u64>().ok())?
        })
        .collect()
}
