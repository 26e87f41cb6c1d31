//! A run's artifact directory, `<target dir>/stress-cache/<run-id>/`:
//!
//! ```text
//! <run-id>/
//!   .in-use.lock             held by the CLI writing the run (retention leaves the dir alone)
//!   target.sha256            the stored binary the run stressed (`../bin/<sha256>/<name>`)
//!   run.json                 what the run was started with, and its state (RunInfo)
//!   self-check/              the checker's self-check: junit.xml (and its own results/tmp dirs)
//!   repeat-<n>/tmp/          scenario temp dirs (STRESS_TMP_DIR), removed after each nextest run
//!   target-spec.toml         the resolved declaration (STRESS_TARGET_SPEC)
//!   repeat-<n>/records/      scenario records (STRESS_RESULTS_DIR)
//!   repeat-<n>/kept/         temp dirs of failed scenarios (STRESS_KEEP_DIR)
//!   repeat-<n>/junit.xml     nextest's JUnit report of that repeat
//!   report.txt report.md report.json
//! ```
//! A mutants run has `clean/` and `mutant-<name>/` run dirs inside, plus `mutants.json`/`mutants.md`.

use std::path::Path;

use serde::{Deserialize, Serialize};
pub use stress_cache_runner::rundir::{create, subdir, utc_timestamp, write, write_json, write_spec};

use crate::errors::{Error, Result, one_line};
use crate::interrupt::Interruption;
use crate::selfcheck::SelfCheck;

/// Name of the [`RunInfo`] file at the top of every run directory.
pub const RUN_INFO: &str = "run.json";

/// `run.json`: what the run was started with and where it is (written when it starts, rewritten when
/// it ends).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct RunInfo {
    /// Tier (`pr`, `nightly`).
    pub tier: String,
    /// The seeded bug every process ran with (`--mutant`, or one row of the mutants matrix).
    pub mutant: Option<String>,
    /// Repeats.
    pub repeat: u32,
    /// `--partition`, if any.
    pub partition: Option<String>,
    /// `-E` filtersets given.
    pub filtersets: Vec<String>,
    /// Where the run is: `running` from its start until it `finished`, was `interrupted` or
    /// `aborted` on an error. A `running` state read later means the CLI died mid-run.
    pub state: RunState,
    /// What stopped an interrupted run, and what had completed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interruption: Option<Interruption>,
    /// The error that aborted the run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// The checker's self-check, run before the scenarios (absent for mutant runs, which share their
    /// clean run's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub self_check: Option<SelfCheck>,
}

/// [`RunInfo::state`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunState {
    /// Started, not ended (or the CLI died before it could say).
    Running,
    /// Every repeat ran to the end.
    Finished,
    /// Stopped early by a signal or by nextest cancelling it.
    Interrupted,
    /// Stopped by an error (the CLI exited 2).
    Aborted,
}

/// Reads a `run.json`.
pub fn read_info(path: &Path) -> Result<RunInfo> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io("cannot read", path, source))?;
    serde_json::from_str(&text).map_err(|e| Error::Parse {
        what: "run info",
        path: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })
}

/// Writes `<dir>/run.json`.
pub fn write_info(dir: &Path, info: &RunInfo) -> Result<()> {
    // Serialising plain data cannot fail; an empty object would then fail loudly when read back.
    let text = serde_json::to_string_pretty(info).unwrap_or_else(|_| "{}".to_string());
    Ok(write(&dir.join(RUN_INFO), &text)?)
}

/// Runs `body` with `<run_dir>/run.json` saying where it is: `info` (`running`) while it runs, then what
/// `ended` makes of its result, or `aborted` with the error. A failure to write `run.json` is returned
/// only when `body` succeeded: the run's own error matters more than failing to record it.
pub fn tracked<T>(
    run_dir: &Path,
    mut info: RunInfo,
    body: impl FnOnce(&mut RunInfo) -> Result<T>,
    ended: impl FnOnce(&T, &mut RunInfo),
) -> Result<T> {
    write_info(run_dir, &info)?;
    let result = body(&mut info);
    match &result {
        Ok(value) => ended(value, &mut info),
        Err(e) => {
            info.state = RunState::Aborted;
            info.error = Some(e.to_string());
        }
    }
    let written = write_info(run_dir, &info);
    let value = result?;
    written?;
    Ok(value)
}

/// Fails unless `dir` (a `--run-dir`) is absent or empty; checked before building so a mistake costs
/// nothing.
pub fn check_usable(dir: Option<&Path>) -> Result<()> {
    if let Some(dir) = dir
        && let Ok(mut entries) = std::fs::read_dir(dir)
        && entries.next().is_some()
    {
        return Err(Error::Usage(format!(
            "run directory {} is not empty; choose another --run-dir",
            dir.display()
        )));
    }
    Ok(())
}
