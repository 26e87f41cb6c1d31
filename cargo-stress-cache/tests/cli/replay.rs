//! `replay` and `shrink` of records whose plan cannot be run: exit 2 with one `error:` line, before any
//! build and never as a verdict.

use anyhow::{Context, Result};

use crate::fake_suite::fake_suite_workspace;
use crate::{assert_setup_error, run, stress_cache};

/// A fake-suite record; with `failpoints`, a plan arming them.
fn record(failpoints: Option<&str>) -> String {
    let plan = match failpoints {
        Some(f) => format!(
            r#","plan":{{"schema_version":1,"scenario":"fake_scenario","seed":1,"tier":"pr","mutant":null,
            "processes":[{{"fleet":"fleet","role":"writer","model":"small","failpoints":"{f}"}}]}}"#
        ),
        None => String::new(),
    };
    format!(
        r#"{{"schema_version":2,"scenario":"fake_scenario","tier":"pr","seed":1,"mutant":null,"target":"victim",
        "processes":1,"started_unix_ms":0,"outcomes":{{"ok":1}},
        "invariants":[{{"name":"single_download","status":"violated","evidence":["two bodies served"]}}],
        "figures":{{"wall_ms":1.0,"processes_per_sec":1.0,"latency_p50_ms":1.0,"latency_p95_ms":1.0,
        "lock_wait_p50_ms":null,"bytes_served":0,"complete_bodies_per_model":{{}},"cache_hit_ratio":null,"mb_per_sec":0.0}},
        "process_runs":[]{plan}}}"#
    )
}

#[test]
fn replaying_a_plan_whose_failpoint_the_target_no_longer_declares_is_a_setup_error() -> Result<()> {
    let ws = fake_suite_workspace()?;
    let manifest = ws.path().join("Cargo.toml");
    let path = ws.path().join("record.json");
    std::fs::write(&path, record(Some("cache.after_lock=return(crash)")))?;
    for command in ["replay", "shrink"] {
        let (code, stdout, stderr) = run(stress_cache(&[
            "--manifest-path",
            manifest.to_str().context("utf8")?,
            command,
            path.to_str().context("utf8")?,
        ]))?;
        assert_setup_error(
            code,
            &stderr,
            "failpoint `cache.after_lock`, which target victim no longer declares",
        );
        assert!(stdout.is_empty(), "no verdict, no table: {stdout}");
        assert!(!ws.path().join("target").join("stress-cache").exists(), "nothing was built or run");
    }
    Ok(())
}

#[test]
fn replaying_a_record_without_a_plan_is_a_setup_error() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("record.json");
    std::fs::write(&path, record(None))?;
    let (code, _, stderr) = run(stress_cache(&["replay", path.to_str().context("utf8")?]))?;
    assert_setup_error(code, &stderr, "has no plan");
    Ok(())
}
