//! End-to-end tests of the `cargo-stress-cache` binary, one module per concern: bad invocations
//! (`usage`), `report` over hand-written run directories (`report`), `report.html` of real runs in
//! headless Chromium (`browser`), the CI workflow under actionlint (`workflow`), tier runs and the mutants matrix
//! against a fake suite (`fake_suite`), and interrupted runs (`interrupt`). This file holds what they
//! share: running the binary, and throwaway workspaces.

mod browser;
mod fake_suite;
mod interrupt;
mod replay;
mod report;
mod snapshots;
mod usage;
mod workflow;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use stress_cache_metadata::suite_env;

const BIN: &str = env!("CARGO_BIN_EXE_cargo-stress-cache");

/// This repository's workspace manifest.
pub fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml")
}

/// `cargo-stress-cache stress-cache <args>`, as cargo runs it, with no `STRESS_*` knob inherited from
/// whoever runs these tests, and no inherited `CARGO_TARGET_DIR`: each scratch workspace builds into
/// its own `target/`, since tests running at once would otherwise share nextest's JUnit file
/// (`<target dir>/nextest/<profile>/junit.xml`), which each run removes before it starts.
pub fn stress_cache(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("stress-cache").args(args).env_remove("CARGO_TARGET_DIR");
    for name in suite_env::ALL {
        cmd.env_remove(name);
    }
    cmd
}

/// Runs `cmd` to the end: its exit code (-1 when killed by a signal), stdout and stderr.
pub fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Result<(i32, String, String)> {
    let Output { status, stdout, stderr } =
        cmd.borrow_mut().output().context("running cargo-stress-cache")?;
    Ok((status.code().unwrap_or(-1), String::from_utf8(stdout)?, String::from_utf8(stderr)?))
}

/// Exit 2, and stderr is one `error:` line (optionally followed by one `help:` line), no panic.
pub fn assert_setup_error(code: i32, stderr: &str, needle: &str) {
    assert_eq!(code, 2, "stderr: {stderr}");
    let lines: Vec<&str> = stderr.lines().collect();
    assert!(!lines.is_empty() && lines.len() <= 2, "expected one error line (+help), got: {stderr}");
    assert!(lines[0].starts_with("error: "), "{stderr}");
    assert!(lines[0].contains(needle), "expected {needle:?} in {stderr}");
    if let Some(help) = lines.get(1) {
        assert!(help.starts_with("help: "), "{stderr}");
    }
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A throwaway workspace: package `victim` with the given `[package.metadata.stress-cache]` and
/// `[features]`, plus an empty `stress-tests` member.
pub fn scratch_workspace(metadata: &str, features: &str) -> Result<tempfile::TempDir> {
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    std::fs::write(
        root.join("Cargo.toml"),
        "[workspace]\nresolver = \"3\"\nmembers = [\"victim\", \"stress-tests\"]\n",
    )?;
    for (name, extra) in
        [("victim", format!("[features]\n{features}\n\n{metadata}\n")), ("stress-tests", String::new())]
    {
        let dir = root.join(name);
        std::fs::create_dir_all(dir.join("src"))?;
        std::fs::write(
            dir.join("Cargo.toml"),
            format!("[package]\nname = \"{name}\"\nversion = \"0.1.0\"\nedition = \"2024\"\n\n{extra}"),
        )?;
        std::fs::write(dir.join("src").join("main.rs"), "fn main() {}\n")?;
    }
    Ok(tmp)
}

/// The fake target's one seeded bug, its marker and the scenario expected to kill it.
pub const MUTANTS: &str = r#"[package.metadata.stress-cache.mutants]
names = ["no-lock"]
active-marker = "seeded bug `{mutant}` is active"
killed-by = { no-lock = ["fake_scenario"] }
"#;

pub const GOOD_METADATA: &str = r#"[package.metadata.stress-cache]
binary = "victim"
args = ["--url", "{url}", "--cache", "{cache_dir}"]
[package.metadata.stress-cache.files]
final = "*.bin"
partial = "*.part"
[package.metadata.stress-cache.features]
failpoints = "failpoints"
"#;
