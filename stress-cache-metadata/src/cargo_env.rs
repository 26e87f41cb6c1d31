//! Hygiene for nested `cargo` invocations (the suite and the CLI both build the target themselves).

use std::process::Command;

/// Removes the per-package variables cargo sets for a running test, bench or `cargo run` binary
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `OUT_DIR`, ...) from `cmd`.
///
/// Why: build scripts such as ring's fingerprint some of them; leaking the outer package's values into a
/// nested `cargo build` makes cargo rebuild those dependencies in the shared target directory every time
/// the outer package changes — minutes per alternation on two cores.
pub fn scrub_package_env(cmd: &mut Command) {
    const PREFIXES: [&str; 6] =
        ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_", "CARGO_CFG_"];
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if PREFIXES.iter().any(|p| name.starts_with(p)) || name == "CARGO_TARGET_TMPDIR" || name == "OUT_DIR"
        {
            cmd.env_remove(&var);
        }
    }
}
