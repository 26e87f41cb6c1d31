//! End-to-end tests of the `cargo-stress-cache` binary: bad invocations exit 2 with one clear line,
//! and `report` turns hand-written records and JUnit files into the three tables.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result};
use stress_cache_metadata::{Figures, InvariantResult, RECORD_SCHEMA_VERSION, ScenarioRecord, suite_env};

const BIN: &str = env!("CARGO_BIN_EXE_cargo-stress-cache");

fn workspace_manifest() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join("Cargo.toml")
}

/// `cargo-stress-cache stress-cache <args>`, as cargo runs it, with no `STRESS_*` knob inherited from
/// whoever runs these tests.
fn stress_cache(args: &[&str]) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("stress-cache").args(args);
    for name in suite_env::ALL {
        cmd.env_remove(name);
    }
    cmd
}

fn run(mut cmd: impl std::borrow::BorrowMut<Command>) -> Result<(i32, String, String)> {
    let Output { status, stdout, stderr } =
        cmd.borrow_mut().output().context("running cargo-stress-cache")?;
    Ok((status.code().unwrap_or(-1), String::from_utf8(stdout)?, String::from_utf8(stderr)?))
}

/// Exit 2, and stderr is one `error:` line (optionally followed by one `help:` line), no panic.
fn assert_setup_error(code: i32, stderr: &str, needle: &str) {
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

/// A throwaway workspace: package `victim` with the given `[package.metadata.stress-cache]` and
/// `[features]`, plus an empty `stress-tests` member.
fn scratch_workspace(metadata: &str, features: &str) -> Result<tempfile::TempDir> {
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
const MUTANTS: &str = r#"[package.metadata.stress-cache.mutants]
names = ["no-lock"]
active-marker = "seeded bug `{mutant}` is active"
killed-by = { no-lock = ["fake_scenario"] }
"#;

const GOOD_METADATA: &str = r#"[package.metadata.stress-cache]
binary = "victim"
args = ["--url", "{url}", "--cache", "{cache_dir}"]
[package.metadata.stress-cache.files]
final = "*.bin"
partial = "*.part"
[package.metadata.stress-cache.features]
failpoints = "failpoints"
"#;

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
    for (var, value, needle) in [
        ("STRESS_PROCESSES", "abc", "STRESS_PROCESSES=\"abc\" is not a positive integer"),
        ("STRESS_PROCESSES", "0", "STRESS_PROCESSES=\"0\" is not a positive integer"),
        ("STRESS_TIER", "weekly", "STRESS_TIER=\"weekly\" is not `pr` or `nightly`"),
        ("STRESS_SEED", "0x5eedz", "STRESS_SEED=\"0x5eedz\" is not a u64"),
        ("STRESS_MUTANT", "bogus", "unknown mutant `bogus` from STRESS_MUTANT (declared: no-lock)"),
        ("STRESS_RESULTS_DIR", a_file, "is not a directory"),
        ("STRESS_KEEP_DIR", a_file, "is not a directory"),
    ] {
        let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest]).env(var, value))?;
        assert_setup_error(code, &stderr, needle);
        // The mutants matrix reads the same knobs (STRESS_MUTANT as its --only).
        let (code, _, stderr) = run(stress_cache(&["mutants", "--manifest-path", manifest]).env(var, value))?;
        assert_setup_error(code, &stderr, needle);
    }
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest, "--processes", "0"]))?;
    assert_setup_error(code, &stderr, "invalid value '0' for '--processes <N>': expected a positive integer");
    assert!(!ws.path().join("target").exists(), "something was built");
    Ok(())
}

// ---- report over hand-written run directories ----

fn record(scenario: &str, violated: &[&str], pps: f64, p95: f64) -> ScenarioRecord {
    let invariants = ["no_partial_content", "single_download", "all_processes_ok"]
        .iter()
        .map(|name| {
            let evidence =
                if violated.contains(name) { vec![format!("{name} broke: evidence line")] } else { vec![] };
            InvariantResult::checked(name, evidence)
        })
        .chain([InvariantResult::skipped("published_durably", "the target does not promise durability")])
        .collect();
    ScenarioRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        scenario: scenario.to_string(),
        tier: "pr".into(),
        seed: 0x5eed,
        mutant: None,
        target: "beaker".into(),
        processes: 16,
        started_unix_ms: 1_700_000_000_000,
        outcomes: BTreeMap::from([("ok".to_string(), 16)]),
        invariants,
        figures: Figures {
            wall_ms: 1000.0,
            processes_per_sec: pps,
            latency_p50_ms: 100.0,
            latency_p95_ms: p95,
            lock_wait_p50_ms: Some(5.0),
            bytes_served: 300_000,
            complete_bodies_per_model: BTreeMap::from([("small".to_string(), 1)]),
            cache_hit_ratio: Some(0.9375),
            mb_per_sec: 0.3,
        },
        process_runs: vec![],
        kept_dir: None,
        setup_errors: vec![],
        not_applicable: None,
        mutant_active: None,
    }
}

fn junit(cases: &[(&str, &str)]) -> String {
    let mut xml = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<testsuites name=\"nextest-run\" tests=\"1\" failures=\"0\" errors=\"0\">\n<testsuite name=\"stress-tests::scenarios\" tests=\"1\" errors=\"0\" failures=\"0\">\n",
    );
    for (name, body) in cases {
        xml.push_str(&format!(
            "<testcase name=\"{name}\" classname=\"stress-tests::scenarios\" time=\"1.0\">{body}</testcase>\n"
        ));
    }
    xml.push_str("</testsuite>\n</testsuites>\n");
    xml
}

const FLAKY: &str = r#"<flakyFailure message="test failed" type="test failure">first attempt</flakyFailure>"#;

/// Writes `repeat-<n>/records/<scenario>.json` and `repeat-<n>/junit.xml`.
fn write_repeat(run_dir: &Path, n: usize, records: &[ScenarioRecord], cases: &[(&str, &str)]) -> Result<()> {
    let dir = run_dir.join(format!("repeat-{n}"));
    std::fs::create_dir_all(dir.join("records"))?;
    for (i, r) in records.iter().enumerate() {
        std::fs::write(
            dir.join("records").join(format!("{}-{i}.json", r.scenario)),
            serde_json::to_string(r)?,
        )?;
    }
    std::fs::write(dir.join("junit.xml"), junit(cases))?;
    Ok(())
}

#[test]
fn report_prints_three_tables_and_exits_1_on_violation_and_flake() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("pr-run");
    write_repeat(
        &run_dir,
        1,
        &[record("first_download", &[], 40.0, 200.0), record("crash_before_rename", &[], 20.0, 400.0)],
        &[("first_download", ""), ("crash_before_rename", "")],
    )?;
    write_repeat(
        &run_dir,
        2,
        &[
            record("first_download", &[], 50.0, 220.0),
            record("crash_before_rename", &["no_partial_content"], 22.0, 380.0),
        ],
        &[("first_download", ""), ("crash_before_rename", FLAKY)],
    )?;
    let (code, stdout, stderr) = run(stress_cache(&["report", run_dir.to_str().context("utf8")?]))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    for needle in
        ["Invariants", "Benchmarks", "Flakes", "no_partial_content", "1 VIOLATED", "FLAKY", "stable"]
    {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // Benchmarks are medians over the two runs: (40+50)/2 = 45.0 processes/s.
    assert!(stdout.contains("45.0"), "{stdout}");
    assert!(stdout.contains("small=1"), "{stdout}");
    assert!(stderr.contains("crash_before_rename: no_partial_content"), "{stderr}");
    Ok(())
}

#[test]
fn report_of_a_clean_run_exits_0_and_json_is_a_usable_baseline() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("clean");
    for n in 1..=3 {
        write_repeat(&run_dir, n, &[record("warm_hits", &[], 100.0, 50.0)], &[("warm_hits", "")])?;
    }
    let (code, stdout, _) =
        run(stress_cache(&["report", run_dir.to_str().context("utf8")?, "--format", "json"]))?;
    assert_eq!(code, 0, "{stdout}");
    let value: serde_json::Value = serde_json::from_str(&stdout)?;
    assert_eq!(value["flakes"][0]["verdict"], "stable");
    assert_eq!(value["flakes"][0]["passed"], 3);
    assert_eq!(value["benchmarks"][0]["runs"], 3);

    // A slower run against that baseline: p95 latency 50 → 80 ms (+60%) is flagged; exit stays 0
    // unless --fail-on-regression.
    let baseline = tmp.path().join("baseline.json");
    std::fs::write(&baseline, &stdout)?;
    let slow_dir = tmp.path().join("slow");
    write_repeat(&slow_dir, 1, &[record("warm_hits", &[], 95.0, 80.0)], &[("warm_hits", "")])?;
    let slow = slow_dir.to_str().context("utf8")?;
    let base = baseline.to_str().context("utf8")?;
    let (code, stdout, _) = run(stress_cache(&["report", slow, "--baseline", base]))?;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("Regressions against the baseline"), "{stdout}");
    assert!(stdout.contains("latency_p95_ms"), "{stdout}");
    assert!(stdout.contains("80 REGRESSED"), "{stdout}");
    assert!(!stdout.contains("processes_per_sec"), "-5% throughput is within 20%: {stdout}");
    let (code, _, _) = run(stress_cache(&["report", slow, "--baseline", base, "--fail-on-regression"]))?;
    assert_eq!(code, 1);
    let (code, stdout, _) = run(stress_cache(&["report", slow, "--baseline", base, "--threshold", "70"]))?;
    assert_eq!(code, 0);
    assert!(!stdout.contains("REGRESSED"), "{stdout}");
    Ok(())
}

#[test]
fn report_markdown_merges_partitions() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let part1 = tmp.path().join("machine-a");
    let part2 = tmp.path().join("machine-b");
    write_repeat(&part1, 1, &[record("first_download", &[], 40.0, 200.0)], &[("first_download", "")])?;
    write_repeat(&part2, 1, &[record("gc_vs_reader", &[], 30.0, 300.0)], &[("gc_vs_reader", "")])?;
    let (code, stdout, _) = run(stress_cache(&[
        "report",
        part1.to_str().context("utf8")?,
        part2.to_str().context("utf8")?,
        "--format",
        "markdown",
    ]))?;
    assert_eq!(code, 0, "{stdout}");
    assert!(stdout.contains("### Invariants"), "{stdout}");
    assert!(stdout.contains("### Benchmarks"), "{stdout}");
    assert!(stdout.contains("### Flakes"), "{stdout}");
    assert!(stdout.contains("| scenario"), "{stdout}");
    assert!(stdout.contains("first_download") && stdout.contains("gc_vs_reader"), "{stdout}");
    assert!(stdout.contains("PASS: 2 scenario runs (2 passed, 0 failed"), "{stdout}");
    assert!(stdout.contains("2 nextest runs"), "{stdout}");
    Ok(())
}

#[test]
fn report_lists_setup_errors_and_not_applicable_scenarios_and_an_error_exits_1() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("pr-run");
    let mut broken = record("crash_at_cache.after_lock_then_recovers", &[], 10.0, 100.0);
    broken.setup_errors = vec!["failpoint cache.after_lock was never reached".into()];
    let mut na = record("compiled_cache_concurrency", &[], 0.0, 0.0);
    na.invariants.clear();
    na.not_applicable = Some("the target declares no compiled cache".into());
    write_repeat(
        &run_dir,
        1,
        &[record("first_download", &[], 40.0, 200.0), broken, na],
        &[
            ("first_download", ""),
            ("crash_at_cache.after_lock_then_recovers", ""),
            ("compiled_cache_concurrency", ""),
        ],
    )?;
    let dir = run_dir.to_str().context("utf8")?;
    let (code, stdout, stderr) = run(stress_cache(&["report", dir]))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with("ERROR: 3 scenario runs (1 passed, 0 failed, 1 setup errors, 1 not applicable)"),
        "{stdout}"
    );
    for needle in [
        "Setup errors",
        "failpoint cache.after_lock was never reached",
        "Not applicable",
        "the target declares no compiled cache",
        // Skipped is its own column: never counted as held.
        "not checked: the target does not promise durability",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    // Neither the error run nor the not-applicable one adds a row to the invariants table.
    let invariant_rows = stdout.lines().filter(|l| l.contains("no_partial_content")).count();
    assert_eq!(invariant_rows, 1, "{stdout}");
    let (_, json, _) = run(stress_cache(&["report", dir, "--format", "json"]))?;
    let value: serde_json::Value = serde_json::from_str(&json)?;
    assert_eq!(value["verdict"], "error");
    assert_eq!(value["setup_errors"][0]["scenario"], "crash_at_cache.after_lock_then_recovers");
    assert_eq!(value["not_applicable"][0]["runs"], 1);
    assert_eq!(value["invariants"][3]["invariant"], "published_durably");
    assert_eq!(value["invariants"][3]["skipped"], 1);
    assert_eq!(value["invariants"][3]["held"], 0);
    Ok(())
}

/// `report` on a run that was interrupted says so with 130 — also when its output goes nowhere: with
/// `cargo stress-cache ... | tee log`, a Ctrl-C ends `tee` too, and the CLI's last lines then hit a
/// closed pipe, which must not turn into a panic (and an abort) instead of the verdict's exit code.
#[test]
fn report_of_an_interrupted_run_exits_130_even_with_its_output_closed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("pr-run");
    write_repeat(&run_dir, 1, &[record("first_download", &[], 40.0, 200.0)], &[("first_download", "")])?;
    let info = r#"{"tier":"pr","mutant":null,"repeat":2,"partition":null,"filtersets":[],"state":"interrupted",
        "interruption":{"cause":{"kind":"signal","signal":"SIGINT"},"during":"repeat 2/2","records":0,
        "scenarios":1,"repeats_complete":1,"repeats":2}}"#;
    std::fs::write(run_dir.join("run.json"), info)?;
    let dir = run_dir.to_str().context("utf8")?;
    let (code, stdout, stderr) = run(stress_cache(&["report", dir]))?;
    assert_eq!(code, 130, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("INTERRUPTED: 1 scenario runs"), "{stdout}");
    let line = "INTERRUPTED by SIGINT during repeat 2/2: 0 of 1 scenario records, 1 of 2 repeats complete";
    assert!(stdout.contains(line) && stderr.contains(line), "{stdout}\n{stderr}");

    let mut closed = stress_cache(&["report", dir]);
    closed.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = closed.spawn()?;
    drop((child.stdout.take(), child.stderr.take()));
    assert_eq!(child.wait()?.code(), Some(130));

    // A run whose CLI died without a word (run.json still `running`) is no pass either.
    std::fs::write(run_dir.join("run.json"), info.replace("\"interrupted\"", "\"running\""))?;
    let (code, stdout, _) = run(stress_cache(&["report", dir]))?;
    assert_eq!(code, 130, "{stdout}");
    assert!(stdout.contains("the run never ended"), "{stdout}");
    Ok(())
}

#[test]
fn report_rejects_unknown_record_schema_and_empty_dirs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(&empty)?;
    let (code, _, stderr) = run(stress_cache(&["report", empty.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "no scenario records or JUnit reports found");

    let bad = tmp.path().join("bad");
    std::fs::create_dir_all(bad.join("records"))?;
    std::fs::write(bad.join("records").join("x.json"), r#"{"schema_version": 99, "scenario": "x"}"#)?;
    let (code, _, stderr) = run(stress_cache(&["report", bad.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "schema version 99 is not supported");
    assert!(stderr.contains("reads version 2"), "{stderr}");
    Ok(())
}

// ---- tier runs end to end against a fake suite ----

/// A scenario test of a fake suite: checks the environment contract, writes a record, and fails
/// like a scenario would (a violated invariant under a mutant; once, then passes, with FAKE_FLAKY).
/// With FAKE_BLOCK it leaves what a scenario stopped mid-way leaves (its temp dir under
/// STRESS_TMP_DIR with a tmpfs mounted in it where mounting is allowed, a running child process),
/// writes its record and then blocks until it is stopped.
const FAKE_SCENARIO: &str = r##"
use std::path::Path;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

#[test]
fn fake_scenario() {
    let results = env("STRESS_RESULTS_DIR");
    let bin = env("STRESS_TARGET_BIN");
    assert!(Path::new(&bin).is_file(), "STRESS_TARGET_BIN {bin} is not a file");
    let spec = std::fs::read_to_string(env("STRESS_TARGET_SPEC")).expect("spec file");
    assert!(spec.contains(&format!("command = \"{bin}\"")), "spec names the binary: {spec}");
    let tier = env("STRESS_TIER");
    assert!(std::env::var("STRESS_KEEP_DIR").is_ok());
    let mutant = std::env::var("STRESS_MUTANT").ok();
    let held = mutant.is_none();
    let mutant_json = mutant.as_ref().map(|m| format!("\"{m}\"")).unwrap_or_else(|| "null".into());
    // The fake target "prints" its active marker whenever a mutant is asked for.
    // With FAKE_INACTIVE it behaves like a build without the mutants feature: no marker, no bug.
    let active = match (mutant.is_some(), std::env::var("FAKE_INACTIVE").is_ok()) {
        (false, _) => "null",
        (true, false) => "true",
        (true, true) => "false",
    };
    let (status, evidence) = if held { ("held", "") } else { ("violated", "\"two bodies served\"") };
    let seed: u64 = std::env::var("STRESS_SEED").map(|s| s.parse().expect("decimal seed")).unwrap_or(1);
    let processes: usize = std::env::var("STRESS_PROCESSES").map(|s| s.parse().expect("count")).unwrap_or(4);
    let record = format!(
        r#"{{"schema_version":2,"scenario":"fake_scenario","tier":"{tier}","seed":{seed},"mutant":{mutant_json},
        "target":"victim","processes":{processes},"started_unix_ms":0,"outcomes":{{"ok":4}},"mutant_active":{active},
        "invariants":[{{"name":"single_download","status":"{status}","evidence":[{evidence}]}},
        {{"name":"no_partial_content","status":"held"}},
        {{"name":"published_durably","status":"skipped","reason":"not traced"}}],
        "figures":{{"wall_ms":100.0,"processes_per_sec":40.0,"latency_p50_ms":10.0,"latency_p95_ms":20.0,
        "lock_wait_p50_ms":null,"bytes_served":0,"complete_bodies_per_model":{{"small":1}},"cache_hit_ratio":0.75,"mb_per_sec":0.0}},
        "process_runs":[]}}"#
    );
    let tmp = env("STRESS_TMP_DIR");
    assert!(Path::new(&tmp).is_dir(), "STRESS_TMP_DIR {tmp} is not a directory");
    let blocker = std::env::var("FAKE_BLOCK").is_ok().then(|| {
        let dir = Path::new(&tmp).join(format!("fake_scenario-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("cache")).expect("scenario dir");
        std::fs::write(dir.join("cache").join("model.onnx.partial"), b"half").expect("partial");
        let mnt = dir.join("tmpfs");
        std::fs::create_dir_all(&mnt).expect("mount point");
        let _ = std::process::Command::new("mount").args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"]).arg(&mnt).status();
        std::process::Command::new("sleep").arg("600").spawn().expect("sleep")
    });
    std::fs::create_dir_all(&results).expect("results dir");
    let n = std::fs::read_dir(&results).map(|d| d.count()).unwrap_or(0);
    let staged = Path::new(&results).join(format!(".fake_scenario-{n}.staged"));
    std::fs::write(&staged, record).expect("record");
    std::fs::rename(&staged, Path::new(&results).join(format!("fake_scenario-{n}.json"))).expect("record");
    if let Some(mut child) = blocker {
        let _ = child.wait();
        panic!("the blocking child exited: nothing stopped the run");
    }
    assert!(held, "invariant single_download violated");
    if std::env::var("FAKE_FLAKY").is_ok() {
        let marker = Path::new(&results).join("flaked-once");
        if !marker.exists() {
            std::fs::write(&marker, "").expect("marker");
            panic!("first attempt fails");
        }
    }
}
"##;

/// The fake checker's own tests, which the `stress-selfcheck` profile runs before the scenarios: a
/// unit test of the suite library and `tests/self_check.rs`, which fails with FAKE_SELFCHECK_FAIL.
const CHECKER_LIB: &str = "#[cfg(test)]\nmod tests {\n    #[test]\n    fn checker_unit() {}\n}\n";
const CHECKER_SELF_CHECK: &str = "#[test]\nfn checker_catches_a_planted_violation() {\n    \
    assert!(std::env::var(\"FAKE_SELFCHECK_FAIL\").is_err(), \"the checker missed a planted violation\");\n}\n";

/// A suite self-check: it must never run in a tier (it would fail the tier if it did).
const SELF_CHECK: &str =
    "#[test]\nfn self_check_is_not_a_scenario() {\n    panic!(\"a tier ran a self-check\");\n}\n";

/// A workspace with a `victim` binary (features failpoints, mutants), a fake `stress-tests` suite and
/// this repository's `.config/nextest.toml` (so the real stress profiles are exercised).
fn fake_suite_workspace() -> Result<tempfile::TempDir> {
    let ws = scratch_workspace(
        &format!("{GOOD_METADATA}mutants = \"mutants\"\n{MUTANTS}"),
        "failpoints = []\nmutants = []",
    )?;
    let tests = ws.path().join("stress-tests").join("tests");
    std::fs::create_dir_all(&tests)?;
    std::fs::write(tests.join("fake.rs"), FAKE_SCENARIO)?;
    // The real suite's self-checks, which a tier leaves out (and which must exist for its filterset).
    for self_check in ["server", "mutants_are_killed", "core_smoke"] {
        std::fs::write(tests.join(format!("{self_check}.rs")), SELF_CHECK)?;
    }
    std::fs::write(tests.join("self_check.rs"), CHECKER_SELF_CHECK)?;
    std::fs::write(ws.path().join("stress-tests").join("src").join("lib.rs"), CHECKER_LIB)?;
    std::fs::create_dir_all(ws.path().join(".config"))?;
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".config").join("nextest.toml");
    std::fs::copy(config, ws.path().join(".config").join("nextest.toml"))?;
    Ok(ws)
}

#[test]
fn tier_run_repeats_mutant_and_mutants_matrix_against_a_fake_suite() -> Result<()> {
    let ws = fake_suite_workspace()?;
    let manifest = ws.path().join("Cargo.toml");
    let manifest = manifest.to_str().context("utf8")?;
    let run_dir = ws.path().join("runs").join("clean");

    // Clean run, two repeats, a custom target dir, size knobs from the environment: exit 0, the
    // tables, artifacts where documented.
    let other_target = ws.path().join("other-target");
    let (code, stdout, stderr) = run(stress_cache(&[
        "--manifest-path",
        manifest,
        "--target-dir",
        other_target.to_str().context("utf8")?,
        "--repeat",
        "2",
        "--run-dir",
        run_dir.to_str().context("utf8")?,
        "-q",
    ])
    .env("STRESS_TIER", "nightly")
    .env("STRESS_SEED", "0x10")
    .env("STRESS_PROCESSES", "3"))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("PASS: 2 scenario runs (2 passed"), "{stdout}");
    assert!(stdout.contains("2 nextest runs"), "{stdout}");
    assert!(stdout.contains("stress-tests::fake fake_scenario"), "{stdout}");
    assert!(stdout.contains("\nself-check: 2 checker tests passed\n"), "{stdout}");
    assert!(!stdout.contains("self_check"), "a tier ran the checker's tests as scenarios: {stdout}");
    for file in [
        "run.json",
        "target-spec.toml",
        "report.txt",
        "report.md",
        "report.json",
        "repeat-1/junit.xml",
        "repeat-2/junit.xml",
    ] {
        assert!(run_dir.join(file).is_file(), "missing {file}");
    }
    assert!(stderr.contains(&format!("artifacts in {}", run_dir.display())), "{stderr}");
    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json"))?)?;
    assert_eq!(info["tier"], "nightly");
    let record =
        std::fs::read_dir(run_dir.join("repeat-1").join("records"))?.next().context("a record")??;
    let record: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(record.path())?)?;
    assert_eq!(
        (record["tier"].as_str(), record["seed"].as_u64(), record["processes"].as_u64()),
        (Some("nightly"), Some(16), Some(3))
    );
    let (code, _, stderr) =
        run(stress_cache(&["--manifest-path", manifest, "--run-dir", run_dir.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "is not empty; choose another --run-dir");

    // A mutant run chosen by STRESS_MUTANT, its run dir under STRESS_RESULTS_DIR: exit 1, naming the
    // violated invariant.
    let results = ws.path().join("results");
    let (code, stdout, stderr) = run(stress_cache(&["--manifest-path", manifest, "-q"])
        .env("STRESS_MUTANT", "no-lock")
        .env("STRESS_RESULTS_DIR", &results))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("violated invariants: fake_scenario: single_download"), "{stderr}");
    assert!(stderr.contains(&format!("artifacts in {}/pr-mutant-no-lock-", results.display())), "{stderr}");

    // The checker fails its own test: the scenarios still run and pass, but the verdict is ERROR,
    // exit 1, and the output says so first; `report` on the run dir agrees.
    let broken_checker = ws.path().join("runs").join("broken-checker");
    let (code, stdout, stderr) = run(stress_cache(&[
        "--manifest-path",
        manifest,
        "-q",
        "--run-dir",
        broken_checker.to_str().context("utf8")?,
    ])
    .env("FAKE_SELFCHECK_FAIL", "1"))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(
        stdout.starts_with(
            "self-check FAILED: 1 of 2 checker tests failed (stress-tests::self_check checker_catches_a_planted_violation)"
        ),
        "{stdout}"
    );
    assert!(stdout.contains("\nERROR: 1 scenario runs (1 passed"), "{stdout}");
    assert!(stderr.contains("stress-cache: self-check FAILED"), "{stderr}");
    let (code, stdout, _) = run(stress_cache(&["report", broken_checker.to_str().context("utf8")?]))?;
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.starts_with("self-check FAILED"), "{stdout}");

    // Fails once, passes on retry: flaky, exit 1.
    let (code, stdout, stderr) =
        run(stress_cache(&["--manifest-path", manifest, "-q"]).env("FAKE_FLAKY", "1"))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("FLAKY"), "{stdout}");

    // The matrix: the clean build passes, the one mutant is killed where expected — in both attempts,
    // since mutant runs keep the profile's retry.
    let matrix_dir = ws.path().join("runs").join("matrix");
    let matrix_arg = matrix_dir.to_str().context("utf8")?;
    let (code, stdout, stderr) =
        run(stress_cache(&["mutants", "--manifest-path", manifest, "-q", "--run-dir", matrix_arg]))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("PASS: 1/1 mutants killed where expected"), "{stdout}");
    assert!(stdout.contains("single_download"), "{stdout}");
    let matrix: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(matrix_dir.join("mutants.json"))?)?;
    assert_eq!(matrix["clean"], "pass", "{matrix}");
    assert_eq!(matrix["mutants"][0]["class"], "killed-where-expected", "{matrix}");
    let cell = &matrix["mutants"][0]["cells"]["fake_scenario"];
    assert_eq!(
        (cell["attempts"].as_u64(), cell["killing_attempts"].as_u64()),
        (Some(2), Some(2)),
        "{matrix}"
    );
    assert_eq!(cell["invariants"], serde_json::json!(["single_download"]), "{matrix}");
    let info: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(matrix_dir.join("run.json"))?)?;
    assert_eq!(info["state"], "finished");

    // The same violation without the mutant's marker (a binary without the mutants feature): not run,
    // exit 1, whatever failed.
    let (code, stdout, stderr) =
        run(stress_cache(&["mutants", "--manifest-path", manifest, "-q"]).env("FAKE_INACTIVE", "1"))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("FAIL: 0/1 mutants killed where expected"), "{stdout}");
    assert!(stdout.contains("1 not run"), "{stdout}");
    assert!(stdout.contains("not active"), "{stdout}");

    // --spec: a program outside the workspace, found on PATH, not built.
    let spec = ws.path().join("other.toml");
    std::fs::write(
        &spec,
        "command = \"sh\"\nargs = [\"-c\", \"true\", \"{url}\", \"{cache_dir}\"]\n[files]\nfinal = \"*\"\npartial = \"*.p\"\n",
    )?;
    let (code, stdout, stderr) =
        run(stress_cache(&["--manifest-path", manifest, "--spec", spec.to_str().context("utf8")?, "-q"]))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("PASS: 1 scenario runs"), "{stdout}");
    Ok(())
}

#[test]
fn report_leaves_the_suites_own_mutant_self_checks_out_of_the_verdict() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("pr-run");
    // A clean run (run.json: no mutant) in which a self-check test ran a scenario against a seeded
    // bug and saw it killed: that record's violation is expected.
    let mut self_check = record("same_model_downloads_once", &["single_download"], 10.0, 100.0);
    self_check.mutant = Some("no-lock".into());
    write_repeat(
        &run_dir,
        1,
        &[record("same_model_downloads_once", &[], 10.0, 100.0), self_check],
        &[("same_model_downloads_once", ""), ("mutants_are_killed", "")],
    )?;
    let info =
        r#"{"tier":"pr","mutant":null,"repeat":1,"partition":null,"filtersets":[],"state":"finished"}"#;
    std::fs::write(run_dir.join("run.json"), info)?;
    let dir = run_dir.to_str().context("utf8")?;
    let (code, stdout, stderr) = run(stress_cache(&["report", dir]))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("1 records of the suite's own seeded-bug self-checks left out"), "{stdout}");
    assert!(!stdout.contains("VIOLATED"), "{stdout}");

    // Without run.json every record counts.
    std::fs::remove_file(run_dir.join("run.json"))?;
    let (code, stdout, _) = run(stress_cache(&["report", dir]))?;
    assert_eq!(code, 1, "{stdout}");
    Ok(())
}

// ---- interruption, end to end ----

/// The processes still alive (not zombies) in session `sid`: pid and command name.
fn live_processes_in_session(sid: i32) -> Vec<(i32, String)> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Some(pid) = entry.file_name().to_str().and_then(|n| n.parse::<i32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else { continue };
        // `pid (comm) state ppid pgrp session ...`; comm may hold spaces and parentheses.
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let fields: Vec<&str> = stat[close + 1..].split_whitespace().collect();
        let (state, pgrp, session) = (fields.first(), fields.get(2), fields.get(3));
        let in_session = session.and_then(|s| s.parse::<i32>().ok()) == Some(sid)
            || pgrp.and_then(|s| s.parse::<i32>().ok()) == Some(sid);
        if in_session && state != Some(&"Z") {
            found.push((pid, stat[open + 1..close].to_string()));
        }
    }
    found
}

/// Mount points under `dir` in this process's mount namespace.
fn mounts_under(dir: &Path) -> Vec<PathBuf> {
    let text = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
    text.lines()
        .filter_map(|l| l.split(' ').nth(4))
        .map(|p| PathBuf::from(p.replace("\\040", " ")))
        .filter(|p| p.starts_with(&dir))
        .collect()
}

/// Polls `ready` until it holds or `deadline` passes (the events waited for are files and process
/// exits, which offer nothing to block on).
fn wait_for(what: &str, deadline: std::time::Duration, mut ready: impl FnMut() -> bool) -> Result<()> {
    let until = std::time::Instant::now() + deadline;
    while !ready() {
        anyhow::ensure!(std::time::Instant::now() < until, "timed out after {deadline:?} waiting for {what}");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    Ok(())
}

/// A session of its own for the CLI, so every process it starts (nextest's tests run in process groups
/// of their own) can be found afterwards, and a terminal's Ctrl-C can be imitated by signalling its
/// process group.
fn in_own_session(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| if libc::setsid() == -1 { Err(std::io::Error::last_os_error()) } else { Ok(()) });
    }
}

/// Starts a tier run of the fake suite whose scenario blocks, waits for its record (the run is then
/// mid-scenario, with a temp dir, a tmpfs and a child process to clean up), stops it with `stop`, and
/// checks what an interrupted run must leave: exit 130, INTERRUPTED said, `run.json` marked, the temp
/// dir unmounted and removed, no process of the run alive, and `report` repeating the verdict.
fn interrupt_a_running_tier(ws: &Path, manifest: &str, label: &str, stop: impl FnOnce(i32)) -> Result<()> {
    let run_dir = ws.join("runs").join(label);
    let (out, err) = (ws.join(format!("{label}.out")), ws.join(format!("{label}.err")));
    let mut cmd =
        stress_cache(&["--manifest-path", manifest, "--run-dir", run_dir.to_str().context("utf8")?]);
    cmd.env("FAKE_BLOCK", "1").stdout(std::fs::File::create(&out)?).stderr(std::fs::File::create(&err)?);
    in_own_session(&mut cmd);
    let mut cli = cmd.spawn()?;
    let sid = i32::try_from(cli.id())?;
    let records = run_dir.join("repeat-1").join("records");
    let started = wait_for("the first scenario record", std::time::Duration::from_secs(300), || {
        std::fs::read_dir(&records)
            .map(|d| d.flatten().any(|e| e.path().extension().is_some_and(|x| x == "json")))
            .unwrap_or(false)
            || cli.try_wait().ok().flatten().is_some()
    });
    if started.is_err() || cli.try_wait()?.is_some() {
        // SAFETY: kill(2) on our own child's session.
        unsafe { libc::kill(-sid, libc::SIGKILL) };
        anyhow::bail!(
            "the run did not reach its scenario ({started:?}): {}\n{}",
            std::fs::read_to_string(&out)?,
            std::fs::read_to_string(&err)?
        );
    }
    // Something to clean up: the scenario's temp dir (and, where mounting is allowed, its tmpfs).
    let tmp = run_dir.join("repeat-1").join("tmp");
    assert_eq!(std::fs::read_dir(&tmp)?.count(), 1, "the scenario's temp dir is there");
    let mounted = !mounts_under(&tmp).is_empty();

    stop(sid);
    let mut status = None;
    let exited = wait_for("the CLI to exit", std::time::Duration::from_secs(120), || {
        status = cli.try_wait().ok().flatten();
        status.is_some()
    });
    if exited.is_err() {
        // SAFETY: kill(2) on our own child's session.
        unsafe { libc::kill(-sid, libc::SIGKILL) };
    }
    exited?;
    let (stdout, stderr) = (std::fs::read_to_string(&out)?, std::fs::read_to_string(&err)?);
    assert_eq!(status.and_then(|s| s.code()), Some(130), "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.starts_with("INTERRUPTED: "), "{stdout}");
    assert!(stdout.contains("\nself-check: 2 checker tests passed\n"), "{stdout}");
    assert!(stderr.contains("stress-cache: INTERRUPTED by "), "{stderr}");
    assert!(
        stderr.contains("during repeat 1/1: 1 of 1 scenario records, 0 of 1 repeats complete"),
        "{stderr}"
    );

    let info: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(run_dir.join("run.json"))?)?;
    assert_eq!(info["state"], "interrupted", "{info}");
    assert_eq!(info["interruption"]["during"], "repeat 1/1", "{info}");

    assert!(mounts_under(&run_dir).is_empty(), "left mounted: {:?}", mounts_under(&run_dir));
    let left: Vec<PathBuf> = std::fs::read_dir(&run_dir)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("repeat-"))
        .flat_map(|e| std::fs::read_dir(e.path().join("tmp")).into_iter().flatten().flatten())
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left in repeat-*/tmp: {left:?}");
    assert!(stderr.contains("cleaned ") && stderr.contains("removed fake_scenario-"), "{stderr}");
    if mounted {
        assert!(stderr.contains("unmounted fake_scenario-"), "{stderr}");
    }

    // nextest stops its tests (the blocking one and its child) before it exits; the kernel may take a
    // moment to finish a process that was sent its signal.
    let alive = wait_for("the run's processes to end", std::time::Duration::from_secs(30), || {
        live_processes_in_session(sid).is_empty()
    });
    assert!(alive.is_ok(), "still alive in the run's session: {:?}", live_processes_in_session(sid));

    let (code, stdout, _) = run(stress_cache(&["report", run_dir.to_str().context("utf8")?]))?;
    assert_eq!(code, 130, "{stdout}");
    assert!(stdout.starts_with("INTERRUPTED: ") && stdout.contains("INTERRUPTED by "), "{stdout}");
    Ok(())
}

/// Why not the built-in target: at this commit the `stress-tests` suite does not compile against
/// record v2 (it is being ported separately), and a real beaker tier also needs minutes of build on
/// two cores. This runs the real CLI, cargo and nextest against the fake suite above, whose scenario
/// leaves what a real one leaves when stopped mid-way; every assertion can fail.
#[test]
fn an_interrupted_tier_run_exits_130_marks_the_run_and_leaves_nothing_behind() -> Result<()> {
    let ws = fake_suite_workspace()?;
    let manifest = ws.path().join("Cargo.toml");
    let manifest = manifest.to_str().context("utf8")?;
    let result = (|| {
        // A terminal's Ctrl-C: SIGINT to the whole foreground process group, nextest included.
        interrupt_a_running_tier(ws.path(), manifest, "ctrl-c", |pgid| {
            // SAFETY: kill(2) on our own child's process group.
            unsafe { libc::kill(-pgid, libc::SIGINT) };
        })?;
        // `kill PID`: SIGTERM to the CLI alone, which must forward it.
        interrupt_a_running_tier(ws.path(), manifest, "kill", |pid| {
            // SAFETY: kill(2) on our own child.
            unsafe { libc::kill(pid, libc::SIGTERM) };
        })
    })();
    // Whatever happened, no tmpfs may outlive the test (it would keep the workspace from being removed).
    for point in mounts_under(ws.path()).into_iter().rev() {
        let _ = Command::new("umount").arg("-l").arg(&point).status();
    }
    result
}
