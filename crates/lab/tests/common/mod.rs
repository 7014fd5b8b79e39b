#![allow(dead_code)] // each test binary uses a different part
//! Shared set-up of the end-to-end tests: each test builds its own lab under
//! a unique prefix, so a failed test leaves nothing behind for the next.

use std::path::PathBuf;

use rvs_lab::{Lab, RvsdOptions};

/// A lab with RS1/RS2 serving HTTP on port 80 and rvsd running, no services.
pub fn lab(name: &str) -> Lab {
    // Short prefixes: namespace names show up in `ip netns`, keep them tidy.
    let prefix = format!("rvt{}", name);
    let dir = std::env::temp_dir().join(format!("rvs-lab-{prefix}"));
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
