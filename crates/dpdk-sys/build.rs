//! Generates bindings for the system's DPDK (pkg-config `libdpdk`) and
//! compiles extern wrappers for its static-inline fast-path functions.

use std::env;
use std::path::PathBuf;

fn main() {
    println!("cargo:rerun-if-changed=wrapper.h");
    println!("cargo:rerun-if-changed=build.rs");

    let lib = pkg_config::Config::new()
        .atleast_version("22.11")
        .probe("libdpdk")
        .unwrap_or_else(|e| {
            panic!(
                "DPDK 22.11 not found through pkg-config `libdpdk` ({e}). \
                 Run dpdk-build/setup.sh (or apt-get install libdpdk-dev) first."
            )
        });

    let out = PathBuf::from(env::var("OUT_DIR").unwrap());
    let wrappers = out.join("static_wrappers");

    let mut clang_args: Vec<String> = lib
        .include_paths
        .iter()
        .map(|p| format!("-I{}", p.display()))
        .collect();
    // rte_config.h must come first, as pkg-config's cflags say.
    clang_args.push("-include".into());
    clang_args.push("rte_config.h".into());
    // Match the ISA DPDK was built for so inline SIMD paths compile.
    clang_args.push("-march=corei7".into());

    let bindings = bindgen::Builder::default()
        .header("wrapper.h")
        .clang_args(&clang_args)
        .allowlist_function("rte_.*")
        .allowlist_function("rvs_.*")
        .allowlist_type("rte_.*")
        .allowlist_var("RTE_.*")
        .allowlist_var("rte_.*")
        .allowlist_var("per_lcore__.*")
        .opaque_type("rte_arp_ipv4")
        .opaque_type("rte_gtp_psc_generic_hdr")
        .opaque_type("rte_l2tpv2_combined_msg_hdr")
        .opaque_type("rte_flow_item_gtp.*")
        .blocklist_function("rte_.*_vlog")
        .blocklist_function("rte_vlog")
        .derive_debug(false)
        .derive_default(true)
        .layout_tests(false)
        .generate_comments(false)
        .wrap_static_fns(true)
        .wrap_static_fns_path(&wrappers)
        .generate()
        .expect("bindgen failed on the DPDK headers");
    bindings
        .write_to_file(out.join("bindings.rs"))
        .expect("writing bindings.rs");

    let mut build = cc::Build::new();
    build
        .file(wrappers.with_extension("c"))
        .include(env::current_dir().unwrap())
        .flag("-include")
        .flag("rte_config.h")
        .flag("-march=corei7")
        .flag("-O3")
        .flag("-Wno-deprecated-declarations")
        .warnings(false);
    for p in &lib.include_paths {
        build.include(p);
    }
    // The generated file includes wrapper.h by path.
    build.compile("dpdk_static_wrappers");

    // Link the PMDs we use by name so their constructors run even though no
    // symbol of theirs is referenced (shared build: EAL loads the rest from
    // its plugin directory).
    for l in &lib.libs {
        println!("cargo:rustc-link-lib={l}");
    }
    // rte_vdev_init (devices made after start-up, such as the exception
    // path's taps) lives in the vdev bus driver, which pkg-config's common
    // libraries leave out.
    println!("cargo:rustc-link-lib=rte_bus_vdev");
}
