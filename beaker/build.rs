//! Unoptimised builds of the `beaker` executable (the ones tests and `cargo stress-cache` run) link
//! position-dependent (`-no-pie`). A PIE of this size carries ~120,000 relative relocations that the
//! loader applies at every start, dirtying ~430 pages of pointers: measured on a warm cache hit, 1,402
//! page faults and 26.4 ms of CPU as PIE against 973 faults and 23.1 ms as `-no-pie` (median of 80
//! alternating runs). A stress tier starts hundreds of them. Release builds keep PIE (and ASLR).

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let linux = std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux");
    let unoptimised = std::env::var("OPT_LEVEL").as_deref() == Ok("0");
    if linux && unoptimised {
        println!("cargo::rustc-link-arg-bin=beaker=-no-pie");
    }
}
