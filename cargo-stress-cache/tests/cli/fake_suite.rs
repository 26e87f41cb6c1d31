//! Tier runs, repeats, mutant runs, the self-check and the mutants matrix end to end: the real CLI,
//! cargo and nextest against a workspace whose `stress-tests` is a small fake suite.

use std::path::Path;

use anyhow::{Context, Result};
use stress_cache_metadata::suite_env;

use crate::{GOOD_METADATA, MUTANTS, assert_setup_error, run, scratch_workspace, stress_cache};

/// A scenario test of a fake suite: checks the environment contract, writes a record, and fails
/// like a scenario would (a violated invariant under a mutant; once, then passes, with FAKE_FLAKY).
/// With FAKE_BLOCK it leaves what a scenario stopped mid-way leaves (its temp dir under
/// STRESS_TMP_DIR with a tmpfs mounted in it where mounting is allowed, a running child process),
/// writes its record and then blocks until it is stopped.
/// `@NAME@` stands for the `suite_env` constant `NAME` (filled in by [`fake_scenario_source`]): the
/// fake suite reads the contract's names from the one place they are defined, like the real suite.
const FAKE_SCENARIO: &str = r##"
use std::path::Path;

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} is not set"))
}

#[test]
fn fake_scenario() {
    let results = env("@RESULTS_DIR@");
    let bin = env("@TARGET_BIN@");
    assert!(Path::new(&bin).is_file(), "@TARGET_BIN@ {bin} is not a file");
    let spec = std::fs::read_to_string(env("@TARGET_SPEC@")).expect("spec file");
    assert!(spec.contains(&format!("command = \"{bin}\"")), "spec names the binary: {spec}");
    let tier = env("@TIER@");
    assert!(std::env::var("@KEEP_DIR@").is_ok());
    let mutant = std::env::var("@MUTANT@").ok();
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
    let seed: u64 = std::env::var("@SEED@").map(|s| s.parse().expect("decimal seed")).unwrap_or(1);
    let processes: usize = std::env::var("@PROCESSES@").map(|s| s.parse().expect("count")).unwrap_or(4);
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
    let tmp = env("@TMP_DIR@");
    assert!(Path::new(&tmp).is_dir(), "@TMP_DIR@ {tmp} is not a directory");
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

/// [`FAKE_SCENARIO`] with every `@NAME@` replaced by the variable name `suite_env` defines.
fn fake_scenario_source() -> String {
    let names = [
        ("TARGET_BIN", suite_env::TARGET_BIN),
        ("TARGET_SPEC", suite_env::TARGET_SPEC),
        ("TIER", suite_env::TIER),
        ("PROCESSES", suite_env::PROCESSES),
        ("SEED", suite_env::SEED),
        ("MUTANT", suite_env::MUTANT),
        ("RESULTS_DIR", suite_env::RESULTS_DIR),
        ("KEEP_DIR", suite_env::KEEP_DIR),
        ("TMP_DIR", suite_env::TMP_DIR),
    ];
    let mut source = FAKE_SCENARIO.to_string();
    for (token, name) in names {
        source = source.replace(&format!("@{token}@"), name);
    }
    assert!(!source.contains('@'), "an unfilled token in the fake scenario");
    source
}

/// A workspace with a `victim` binary (features failpoints, mutants), a fake `stress-tests` suite and
/// this repository's `.config/nextest.toml` (so the real stress profiles are exercised).
pub fn fake_suite_workspace() -> Result<tempfile::TempDir> {
    let ws = scratch_workspace(
        &format!("{GOOD_METADATA}mutants = \"mutants\"\n{MUTANTS}"),
        "failpoints = []\nmutants = []",
    )?;
    let tests = ws.path().join("stress-tests").join("tests");
    std::fs::create_dir_all(&tests)?;
    std::fs::write(tests.join("fake.rs"), fake_scenario_source())?;
    // The real suite's self-checks, which a tier leaves out (and which must exist for its filterset).
    for self_check in ["mutants_are_killed", "core_smoke", "tiny_cache_faults", "spec_check"] {
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
    .env(suite_env::TIER, "nightly")
    .env(suite_env::SEED, "0x10")
    .env(suite_env::PROCESSES, "3"))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stdout.contains("PASS: 2 scenario runs (2 passed"), "{stdout}");
    assert!(stdout.contains("2 nextest runs"), "{stdout}");
    // Green: one line for what passed, the summary last; the per-scenario table is in report.txt.
    assert!(stdout.starts_with("✓ 1 scenarios passed in 2 runs: 4 invariant checks held"), "{stdout}");
    assert!(stdout.trim_end().lines().last().is_some_and(|l| l.starts_with("PASS: ")), "{stdout}");
    assert!(std::fs::read_to_string(run_dir.join("report.txt"))?.contains("fake_scenario"));
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
        "report.html",
        "repeat-1/stress-cache.junit.xml",
        "repeat-2/stress-cache.junit.xml",
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
        .env(suite_env::MUTANT, "no-lock")
        .env(suite_env::RESULTS_DIR, &results))?;
    assert_eq!(code, 1, "stdout: {stdout}\nstderr: {stderr}");
    assert!(stderr.contains("violated invariants: fake_scenario: single_download"), "{stderr}");
    // Red: the evidence comes first.
    assert!(
        stdout.starts_with(
            "VIOLATED single_download in fake_scenario (2 of 2 runs, mutant no-lock)\n    two bodies served\n"
        ),
        "{stdout}"
    );
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
    let html = std::fs::read_to_string(matrix_dir.join("report.html"))?;
    assert!(
        html.contains("Mutants × scenarios") && html.contains("verdict-PASS"),
        "the matrix decides the page"
    );
    assert!(matrix_dir.join("mutant-no-lock/repeat-1/stress-cache.junit.xml").is_file());

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

    // Retention: five runs into the default store; each stores the one binary once.
    let store = ws.path().join("target").join("stress-cache");
    for _ in 0..2 {
        let (code, stdout, stderr) = run(stress_cache(&["--manifest-path", manifest, "-q"]))?;
        assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    }
    assert_retention(&store, &ws.path().join("runs"), 5)?;
    // A run keeps the newest N (itself included); `clean --keep N` the same, and their binaries.
    let (code, stdout, stderr) = run(stress_cache(&["--manifest-path", manifest, "-q", "--keep", "4"]))?;
    assert_eq!(code, 0, "stdout: {stdout}\nstderr: {stderr}");
    assert_retention(&store, &ws.path().join("runs"), 4)?;
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest, "clean", "--keep", "3"]))?;
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("removed 1 run dirs and "), "{stderr}");
    assert_retention(&store, &ws.path().join("runs"), 3)?;
    let (code, _, stderr) = run(stress_cache(&["--manifest-path", manifest, "clean"]))?;
    assert_eq!(code, 0, "{stderr}");
    assert_retention(&store, &ws.path().join("runs"), 0)?;
    Ok(())
}

/// `store` holds `runs` run dirs (named `<label>-<timestamp>`) and exactly the stored binaries they
/// and the `--run-dir`s under `elsewhere` name in `target.sha256` (a `--spec` run names none: its
/// program is run where it is installed).
fn assert_retention(store: &Path, elsewhere: &Path, runs: usize) -> Result<()> {
    let run_dirs: Vec<_> = std::fs::read_dir(store)?
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().contains("Z") && e.path().join("run.json").is_file())
        .collect();
    assert_eq!(run_dirs.len(), runs, "run dirs in {}", store.display());
    let mut named = std::collections::BTreeSet::new();
    for dir in run_dirs {
        let Ok(sha) = std::fs::read_to_string(dir.path().join("target.sha256")) else { continue };
        assert!(store.join("bin").join(sha.trim()).join("victim").is_file(), "{}", dir.path().display());
        named.insert(sha.trim().to_string());
    }
    for dir in std::fs::read_dir(elsewhere)?.flatten() {
        if let Ok(sha) = std::fs::read_to_string(dir.path().join("target.sha256")) {
            named.insert(sha.trim().to_string());
        }
    }
    let stored: std::collections::BTreeSet<String> = std::fs::read_dir(store.join("bin"))
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(stored, named, "stored binaries in {}", store.display());
    Ok(())
}
