//! Bad invocations: every one exits 2 with one `error:` line (maybe a `help:` line), before anything
//! is built.

use std::path::PathBuf;

use anyhow::{Context, Result};

use crate::{
    GOOD_METADATA, MUTANTS, assert_setup_error, run, scratch_workspace, stress_cache, workspace_manifest,
};

#[test]
fn unknown_package_exits_2_with_one_line() -> Result<()> {
    let manifest = workspace_manifest();
    let (code, _, stderr) =
        run(stress_cache(&["--manifest-path", manifest.to_str().context("utf8")?, "-p", "no-such-pkg"]))?;
    assert_setup_error(code, &stderr, "package `no-such-pkg` is not a member of the workspace");
    Ok(())
}

#[test]
fn missing_spec_file_exits_2_with_one_line() -> Result<()> {
    let manifest = workspace_manifest();
    let (code, _, stderr) = run(stress_cache(&[
        "--manifest-path",
        manifest.to_str().context("utf8")?,
        "--spec",
        "/nonexistent/target.toml",
    ]))?;
    assert_setup_error(code, &stderr, "cannot read target spec /nonexistent/target.toml");
    Ok(())
}

#[test]
fn global_options_may_precede_the_subcommand_but_tier_options_may_not() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let (code, _, stderr) =
        run(stress_cache(&["-q", "--format", "json", "report", tmp.path().to_str().context("utf8")?]))?;
    // Parsed fine; fails only because the directory holds no results.
    assert_setup_error(code, &stderr, "no scenario records or JUnit reports found");
    let (code, _, stderr) =
        run(stress_cache(&["--repeat", "3", "report", tmp.path().to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "--repeat belongs to a tier run");
    Ok(())
}

#[test]
fn unknown_flag_exits_2_with_one_line() -> Result<()> {
    let (code, _, stderr) = run(stress_cache(&["--no-such-flag"]))?;
    assert_setup_error(code, &stderr, "unexpected argument '--no-such-flag'");
    Ok(())
}

/// Missing nextest, simulated honestly: PATH holds only a directory with `cargo` and `rustc` (links
/// to the real toolchain), and CARGO_HOME is empty, so cargo finds no `cargo-nextest` anywhere and
/// answers `cargo nextest` exactly as on a machine without it.
#[test]
fn missing_nextest_exits_2_with_install_hint() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let bin = tmp.path().join("bin");
    let home = tmp.path().join("cargo-home");
    std::fs::create_dir_all(&bin)?;
    std::fs::create_dir_all(&home)?;
    let real_cargo = PathBuf::from(std::env::var("CARGO").context("cargo sets CARGO for tests")?);
    let real_cargo = real_cargo.canonicalize().unwrap_or(real_cargo);
    std::os::unix::fs::symlink(&real_cargo, bin.join("cargo"))?;
    if let Some(rustc) = real_cargo.parent().map(|d| d.join("rustc")).filter(|p| p.exists()) {
        std::os::unix::fs::symlink(rustc, bin.join("rustc"))?;
    }
    let (code, _, stderr) = run(stress_cache(&["--tier", "pr"])
        .env("PATH", &bin)
        .env("CARGO", bin.join("cargo"))
        .env("CARGO_HOME", &home)
        .env_remove("RUSTUP_TOOLCHAIN"))?;
    assert_setup_error(code, &stderr, "cargo-nextest is not available");
    assert!(stderr.contains("cargo install cargo-nextest --locked"), "{stderr}");
    Ok(())
}

#[test]
fn malformed_metadata_exits_2_with_one_line() -> Result<()> {
    // `args` must be a list of strings.
    let ws = scratch_workspace(
        "[package.metadata.stress-cache]\nbinary = \"victim\"\nargs = \"--url {url}\"\n[package.metadata.stress-cache.files]\nfinal = \"*\"\npartial = \"*.p\"\n",
        "",
    )?;
    let manifest = ws.path().join("Cargo.toml");
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest.to_str().context("utf8")?]))?;
    assert_setup_error(
        code,
        &stderr,
        "malformed target spec `[package.metadata.stress-cache]` of package `victim`",
    );
    Ok(())
}

#[test]
fn unknown_key_in_metadata_exits_2() -> Result<()> {
    let ws = scratch_workspace(&format!("{GOOD_METADATA}frobnicate = true\n"), "failpoints = []")?;
    let manifest = ws.path().join("Cargo.toml");
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "malformed target spec");
    assert!(stderr.contains("frobnicate"), "{stderr}");
    Ok(())
}

#[test]
fn target_without_its_failpoints_feature_exits_2() -> Result<()> {
    // Declares `features.failpoints = "failpoints"` but the package defines no such Cargo feature.
    let ws = scratch_workspace(GOOD_METADATA, "")?;
    let manifest = ws.path().join("Cargo.toml");
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "target package `victim` has no feature `failpoints`");
    Ok(())
}

#[test]
fn unknown_mutant_exits_2() -> Result<()> {
    let ws = scratch_workspace(&format!("{GOOD_METADATA}{MUTANTS}"), "failpoints = []")?;
    let manifest = ws.path().join("Cargo.toml");
    let (code, _, stderr) =
        run(stress_cache(&["--manifest-path", manifest.to_str().context("utf8")?, "--mutant", "bogus"]))?;
    assert_setup_error(code, &stderr, "unknown mutant `bogus` from --mutant (declared: no-lock)");
    Ok(())
}

/// Each bad `STRESS_*` value is one line and exit 2, and nothing was built: the scratch workspace's
/// target directory does not even exist afterwards.
#[test]
fn bad_stress_knobs_exit_2_before_anything_is_built() -> Result<()> {
    let ws = scratch_workspace(&format!("{GOOD_METADATA}{MUTANTS}"), "failpoints = []")?;
    let manifest = ws.path().join("Cargo.toml");
    let manifest = manifest.to_str().context("utf8")?;
    let a_file = ws.path().join("Cargo.toml");
    let a_file = a_file.to_str().context("utf8")?;
    use stress_cache_metadata::suite_env::{KEEP_DIR, MUTANT, PROCESSES, RESULTS_DIR, SEED, TIER};
    for (var, value, needle) in [
        (PROCESSES, "abc", format!("{PROCESSES}=\"abc\" is not a positive integer")),
        (PROCESSES, "0", format!("{PROCESSES}=\"0\" is not a positive integer")),
        (TIER, "weekly", format!("{TIER}=\"weekly\" is not `pr` or `nightly`")),
        (SEED, "0x5eedz", format!("{SEED}=\"0x5eedz\" is not a u64")),
        (MUTANT, "bogus", format!("unknown mutant `bogus` from {MUTANT} (declared: no-lock)")),
        (RESULTS_DIR, a_file, "is not a directory".to_string()),
        (KEEP_DIR, a_file, "is not a directory".to_string()),
    ] {
        let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest]).env(var, value))?;
        assert_setup_error(code, &stderr, &needle);
        // The mutants matrix reads the same knobs (STRESS_MUTANT as its --only).
        let (code, _, stderr) = run(stress_cache(&["mutants", "--manifest-path", manifest]).env(var, value))?;
        assert_setup_error(code, &stderr, &needle);
    }
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest, "--processes", "0"]))?;
    assert_setup_error(code, &stderr, "invalid value '0' for '--processes <N>': expected a positive integer");
    assert!(!ws.path().join("target").exists(), "something was built");
    Ok(())
}
