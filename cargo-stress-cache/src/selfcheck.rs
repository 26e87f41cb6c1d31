//! The checker checks itself first: before the scenarios of a tier run (and before the clean run of
//! `mutants`), the suite's own checker tests run under the `stress-selfcheck` nextest profile
//! (`.config/nextest.toml`). Invariants judged by a broken checker are worth nothing, so a failed
//! self-check makes the run's verdict `error` whatever the scenarios say.

use std::os::unix::process::ExitStatusExt;
use std::path::Path;

use nextest_metadata::NextestExitCode;
pub use stress_cache_metadata::report::SelfCheck;

use crate::built_suite::BuiltSuite;
use crate::cargo::Cargo;
use crate::errors::{Error, Result};
use crate::interrupt::{Cause, signal_name};
use crate::junit::{self, Outcome};
use stress_cache_metadata::SuiteEnv;

use crate::nextest;

/// The nextest profile of the checker's tests.
pub const PROFILE: &str = "stress-selfcheck";

/// How the self-check ended.
#[derive(Debug)]
pub enum Ran {
    /// It ran to the end.
    Done(SelfCheck),
    /// A signal stopped it.
    Stopped(Cause),
}

/// `cargo nextest run -p stress-tests --profile stress-selfcheck` with the suite environment `env`, and
/// the JUnit paths it may write (stale ones removed). It draws no progress bar: it runs beside the
/// tier's first nextest run, whose bar is the one shown.
pub fn command(
    cargo: &Cargo,
    workspace_root: &Path,
    target_dir: &Path,
    env: &SuiteEnv,
    output: nextest::Output,
    built: Option<&BuiltSuite>,
) -> Result<(std::process::Command, Vec<std::path::PathBuf>)> {
    let junit_paths = nextest::junit_candidates(workspace_root, target_dir, PROFILE);
    nextest::remove_stale(&junit_paths)?;
    let mut cmd = nextest::profile_command(cargo, PROFILE, env, output, built);
    cmd.args(["--show-progress", "none"]);
    Ok((cmd, junit_paths))
}

/// What the self-check's nextest run says, its JUnit report copied to `dir/junit.xml`.
pub fn judge(
    shown: String,
    waited: &crate::interrupt::Waited,
    junit_paths: Vec<std::path::PathBuf>,
    dir: &Path,
) -> Result<Ran> {
    if let Some(signal) = waited.signal {
        return Ok(Ran::Stopped(Cause::Signal { signal: signal_name(signal) }));
    }
    let Some(code) = waited.status.code() else {
        let signal = signal_name(waited.status.signal().unwrap_or(0));
        return Ok(Ran::Stopped(Cause::NextestKilled { signal }));
    };
    if code == NextestExitCode::NO_TESTS_RUN {
        return Ok(Ran::Done(SelfCheck {
            problem: Some(format!("no checker test matched the `{PROFILE}` profile's default-filter")),
            ..SelfCheck::default()
        }));
    }
    if code != NextestExitCode::OK && code != NextestExitCode::TEST_RUN_FAILED {
        return Err(Error::Nextest { command: shown, code, meaning: nextest::exit_meaning(code) });
    }
    let Some(report) = junit_paths.into_iter().find(|p| p.is_file()) else {
        return Ok(Ran::Done(SelfCheck {
            problem: Some(format!("nextest wrote no JUnit report (is `[profile.{PROFILE}.junit]` set?)")),
            ..SelfCheck::default()
        }));
    };
    let dest = dir.join("junit.xml");
    std::fs::copy(&report, &dest).map_err(|source| Error::io("cannot copy JUnit report to", dest, source))?;
    let observations = junit::read(&report)?;
    let mut check = SelfCheck::default();
    for obs in observations {
        match obs.outcome {
            Outcome::Passed | Outcome::FlakyOnRetry => check.passed += 1,
            Outcome::Failed => check.failed.push(obs.test),
        }
    }
    if code == NextestExitCode::TEST_RUN_FAILED && check.failed.is_empty() {
        check.problem = Some("nextest reported a failure its JUnit report does not show".to_string());
    }
    Ok(Ran::Done(check))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_self_check_is_trusted_only_when_tests_ran_and_none_failed() {
        let passed = SelfCheck { passed: 41, ..SelfCheck::default() };
        assert!(passed.ok());
        assert_eq!(passed.line(), "self-check: 41 checker tests passed");
        assert!(!SelfCheck::default().ok(), "no test ran: nothing was checked");
        let failed =
            SelfCheck { passed: 40, failed: vec!["stress-tests invariants::tests::x".into()], problem: None };
        assert!(!failed.ok());
        assert!(
            failed
                .line()
                .starts_with("self-check FAILED: 1 of 41 checker tests failed (stress-tests invariants"),
            "{}",
            failed.line()
        );
    }

    #[test]
    fn merged_self_checks_fail_if_any_failed() {
        let mut merged = SelfCheck { passed: 20, ..SelfCheck::default() };
        merged.merge(&SelfCheck { passed: 20, failed: vec!["t".into()], problem: None });
        assert_eq!((merged.passed, merged.failed.len(), merged.ok()), (40, 1, false));
    }
}
