//! `cargo stress-cache report` over hand-written run directories: the tables, the verdicts and their
//! exit codes.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use stress_cache_metadata::{Figures, InvariantResult, RECORD_SCHEMA_VERSION, ScenarioRecord};

use crate::{assert_setup_error, run, stress_cache};

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
        ..ScenarioRecord::default()
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

#[test]
fn report_html_writes_the_page_into_the_run_dir_and_github_summary_appends_the_markdown() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let run_dir = tmp.path().join("pr-run");
    write_repeat(
        &run_dir,
        1,
        &[
            record("first_download", &[], 40.0, 200.0),
            record("crash_before_rename", &["no_partial_content"], 20.0, 400.0),
        ],
        &[("first_download", ""), ("crash_before_rename", "")],
    )?;
    let summary = tmp.path().join("step-summary.md");
    std::fs::write(&summary, "earlier step\n")?;
    let (code, _, stderr) = run(stress_cache(&["report", "--html", "--github-summary"])
        .arg(&run_dir)
        .env("GITHUB_STEP_SUMMARY", &summary))?;
    assert_eq!(code, 1, "{stderr}");
    let html = std::fs::read_to_string(run_dir.join("report.html")).context("report.html written")?;
    assert!(
        html.contains("verdict-FAIL") && html.contains("no_partial_content broke: evidence line"),
        "{html}"
    );
    let markdown = std::fs::read_to_string(&summary)?;
    assert!(markdown.starts_with("earlier step\n"), "appended, not overwritten: {markdown}");
    assert!(markdown.contains("## cargo stress-cache") && markdown.contains("FAIL:"), "{markdown}");

    // Without the variable, the flag is a usage error before anything runs.
    let (code, _, stderr) =
        run(stress_cache(&["report", "--github-summary"]).arg(&run_dir).env_remove("GITHUB_STEP_SUMMARY"))?;
    assert_setup_error(code, &stderr, "GITHUB_STEP_SUMMARY");
    Ok(())
}
