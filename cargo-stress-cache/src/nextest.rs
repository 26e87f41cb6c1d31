//! Driving cargo-nextest: the availability check, one run of a tier's profile with the suite's
//! environment (and whether nextest cancelled it), and the scenario list. Which tests are scenarios is
//! the stress profiles' `default-filter` in `.config/nextest.toml`; user filtersets narrow it.

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};

use nextest_metadata::{BinaryListSummary, NextestExitCode, TestListSummary};
use stress_cache_metadata::SuiteEnv;

use crate::built_suite::BuiltSuite;
use crate::cargo::{Cargo, display_command};
use crate::errors::{Error, Result, one_line};
use crate::interrupt::{Cause, Interrupt, Waited, signal_name};
use crate::junit::{self, Observation, Outcome};
use crate::workspace::SUITE_PACKAGE;

/// Fails with [`Error::NextestMissing`] unless `cargo nextest --version` works.
pub fn check_available(cargo: &Cargo) -> Result<()> {
    let mut cmd = Command::new(cargo.program());
    cmd.args(["nextest", "--version"]).stdin(Stdio::null());
    let shown = display_command(&cmd);
    let output = cmd.output().map_err(|source| Error::Spawn { command: shown, source })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("`cargo nextest` failed");
    Err(Error::NextestMissing { detail: one_line(first.trim_start_matches("error:").trim()) })
}

/// `cargo nextest run -p stress-tests --profile <profile> --no-tests fail` with the suite environment
/// `env`: the command of the runs whose tests the profile's `default-filter` selects (self-check,
/// check-spec). With `built`, the binaries an earlier listing built run, and cargo is not called.
pub fn profile_command(
    cargo: &Cargo,
    profile: &str,
    env: &SuiteEnv,
    output: Output,
    built: Option<&BuiltSuite>,
) -> Command {
    let mut cmd = run_command(cargo, profile, built);
    cmd.args(["--no-tests", "fail"]);
    output.apply(&mut cmd, built.is_none());
    env.apply(&mut cmd);
    cmd
}

/// `cargo nextest run --profile <profile>` of the suite: of the binaries `built` names, else of
/// `--package stress-tests` (which cargo builds first).
fn run_command(cargo: &Cargo, profile: &str, built: Option<&BuiltSuite>) -> Command {
    match built {
        Some(built) => built.run_command(cargo, profile),
        None => cargo.command(&["nextest", "run", "--package", SUITE_PACKAGE, "--profile", profile]),
    }
}

/// How much of nextest's own output a run shows on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Output {
    /// nextest's progress bar (on a terminal) and its summary line, no line per test: the CLI prints
    /// one line per scenario and every violation's evidence from the records, which say more.
    #[default]
    Compact,
    /// As compact, and cargo's build output of the suite hidden too (`-q`).
    Quiet,
    /// The profile's own status levels and test output (`-v`).
    Verbose,
}

impl Output {
    /// From `-q` / `-v`.
    pub fn of(quiet: bool, verbose: u8) -> Self {
        match (quiet, verbose) {
            (true, _) => Output::Quiet,
            (false, 0) => Output::Compact,
            (false, _) => Output::Verbose,
        }
    }

    /// `building`: nextest runs cargo first (its output can be quietened; with reused binaries
    /// there is none, and nextest refuses the flag).
    fn apply(self, cmd: &mut Command, building: bool) {
        // Once the suite is built, cargo's "Finished" line of every later nextest call says nothing.
        if building
            && (self == Output::Quiet || (self == Output::Compact && SUITE_BUILT.load(Ordering::Relaxed)))
        {
            cmd.arg("--cargo-quiet");
        }
        if self != Output::Verbose {
            // Failure output stays in the JUnit report (`store-failure-output`); the records hold the
            // evidence the CLI prints.
            cmd.args(["--status-level", "none", "--final-status-level", "none"]);
            cmd.args(["--failure-output", "never", "--success-output", "never"]);
        }
    }
}

/// Set once a nextest call of this process got past building the suite.
static SUITE_BUILT: AtomicBool = AtomicBool::new(false);

/// Records that nextest exited with `code`: any code but a build failure means the suite was built.
fn note_built(code: Option<i32>) {
    if code.is_some_and(|c| c != NextestExitCode::BUILD_FAILED) {
        SUITE_BUILT.store(true, Ordering::Relaxed);
    }
}

/// The nightly tests that are their own repeats (the soak's 10,000 runs, the scale pool's 3 minutes):
/// a tier run with `--repeat N` runs them in its first repeat only, so repeats stay within the night's
/// budget; every other test still runs N times for the flakes table. By test name (only binary
/// `nightly` has `soak::`/`scale::` tests): nextest refuses a `binary()` that matches no binary.
pub const FIRST_REPEAT_ONLY: &str = "kind(test) & test(/^(soak|scale)::/)";

impl Selection {
    /// This selection without the [`FIRST_REPEAT_ONLY`] tests (each filterset narrowed; none given:
    /// the profile's default filter narrowed).
    pub fn without_first_repeat_only(&self) -> Selection {
        let not = format!("not ({FIRST_REPEAT_ONLY})");
        let filtersets = match self.filtersets.as_slice() {
            [] => vec![not],
            given => given.iter().map(|f| format!("({f}) & {not}")).collect(),
        };
        Selection { filtersets, ..self.clone() }
    }
}

/// Selection and display options of a nextest run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `-E` filtersets.
    pub filtersets: Vec<String>,
    /// `--partition`.
    pub partition: Option<String>,
    /// How much nextest shows.
    pub output: Output,
    /// `--retries N` instead of the profile's (a replay counts every attempt once).
    pub retries: Option<u32>,
}

/// How one nextest run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// nextest's exit code: 0 (all passed) or 100 (some test failed, or the run was cancelled); other
    /// codes are errors unless the run was stopped. `None` when nextest was killed by a signal.
    pub exit_code: Option<i32>,
    /// The JUnit report nextest wrote, if it wrote one.
    pub junit: Option<PathBuf>,
    /// Why the run stopped before its end, if it did.
    pub stopped: Option<Cause>,
}

/// Where nextest writes a profile's JUnit file (`[profile.<name>.junit] path = "junit.xml"` in
/// `.config/nextest.toml`): the store dir is `<target dir>/nextest`.
pub fn junit_candidates(workspace_root: &Path, target_dir: &Path, profile: &str) -> Vec<PathBuf> {
    let mut candidates = vec![target_dir.join("nextest").join(profile).join("junit.xml")];
    let default = workspace_root.join("target").join("nextest").join(profile).join("junit.xml");
    if !candidates.contains(&default) {
        candidates.push(default);
    }
    candidates
}

/// `cargo nextest run -p stress-tests --profile <tier profile>` with the suite environment (of the
/// binaries `built` names, when given), and the JUnit paths it may write (stale ones removed).
pub fn tier_command(
    cargo: &Cargo,
    workspace_root: &Path,
    target_dir: &Path,
    env: &SuiteEnv,
    selection: &Selection,
    built: Option<&BuiltSuite>,
) -> Result<(Command, Vec<PathBuf>)> {
    let profile = env.tier_or_default().nextest_profile();
    let junit_paths = junit_candidates(workspace_root, target_dir, profile);
    remove_stale(&junit_paths)?;
    let mut cmd = run_command(cargo, profile, built);
    for expr in &selection.filtersets {
        cmd.arg("-E").arg(expr);
    }
    if let Some(partition) = &selection.partition {
        cmd.arg("--partition").arg(partition);
    }
    if let Some(retries) = selection.retries {
        cmd.arg("--retries").arg(retries.to_string());
    }
    selection.output.apply(&mut cmd, built.is_none());
    env.apply(&mut cmd);
    Ok((cmd, junit_paths))
}

/// Runs a tier's nextest once, to its end ([`tier_command`], then [`tier_outcome`]).
pub fn run_tier(
    cargo: &Cargo,
    workspace_root: &Path,
    target_dir: &Path,
    env: &SuiteEnv,
    selection: &Selection,
    interrupt: &Interrupt,
    selected: Option<usize>,
) -> Result<RunOutcome> {
    let (mut cmd, junit_paths) = tier_command(cargo, workspace_root, target_dir, env, selection, None)?;
    let (shown, waited) = run_interruptibly(&mut cmd, interrupt, "nextest")?;
    tier_outcome(shown, &waited, junit_paths, selected)
}

/// How a tier's nextest run ended. `selected` is the number of scenario tests the run should execute,
/// when known: fewer in the JUnit report means nextest cancelled the run.
pub fn tier_outcome(
    shown: String,
    waited: &Waited,
    junit_paths: Vec<PathBuf>,
    selected: Option<usize>,
) -> Result<RunOutcome> {
    let junit = junit_paths.into_iter().find(|p| p.is_file());
    let exit_code = waited.status.code();
    if let Some(signal) = waited.signal {
        return Ok(RunOutcome {
            exit_code,
            junit,
            stopped: Some(Cause::Signal { signal: signal_name(signal) }),
        });
    }
    let Some(code) = exit_code else {
        let signal = signal_name(waited.status.signal().unwrap_or(0));
        return Ok(RunOutcome { exit_code, junit, stopped: Some(Cause::NextestKilled { signal }) });
    };
    if code != NextestExitCode::OK && code != NextestExitCode::TEST_RUN_FAILED {
        return Err(Error::Nextest { command: shown, code, meaning: exit_meaning(code) });
    }
    let cancelled = code == NextestExitCode::TEST_RUN_FAILED
        && match &junit {
            Some(path) => was_cancelled(&junit::read(path)?, selected),
            None => false,
        };
    Ok(RunOutcome { exit_code, junit, stopped: cancelled.then_some(Cause::NextestCancelled) })
}

/// Whether a run nextest ended with "test run failed" was in fact cancelled: nextest reports a
/// cancelled run with that exit code too, but leaves the tests it stopped or never started out of its
/// JUnit report — so fewer tests than selected, or no failed test at all, means it was cancelled.
pub fn was_cancelled(observations: &[Observation], selected: Option<usize>) -> bool {
    let no_failure = !observations.iter().any(|o| o.outcome == Outcome::Failed);
    let missing = selected.is_some_and(|n| observations.len() < n);
    no_failure || missing
}

/// A JUnit file left by an earlier run must never be mistaken for this run's.
pub fn remove_stale(paths: &[PathBuf]) -> Result<()> {
    for path in paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::io("cannot remove stale JUnit report", path, source)),
        }
    }
    Ok(())
}

/// A nextest (or cargo) child started by [`spawn`], to be waited for through the invocation's
/// [`Interrupt`] and then [`Started::finish`]ed.
pub struct Started {
    /// The command line, for messages.
    pub shown: String,
    /// The child.
    pub child: std::process::Child,
    forward: Option<std::thread::JoinHandle<()>>,
}

/// Starts `cmd` with stdin closed. Under an overall progress bar nextest draws none of its own and its
/// lines are forwarded above ours; otherwise its output goes straight to stderr.
pub fn spawn(cmd: &mut Command) -> Result<Started> {
    let under_bar = crate::progress::active();
    if under_bar {
        cmd.args(["--show-progress", "none"]);
    }
    let stderr = if under_bar { Stdio::piped() } else { Stdio::inherit() };
    cmd.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(stderr);
    let shown = display_command(cmd);
    log::debug!("running {shown}");
    let mut child = cmd.spawn().map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    let forward = child.stderr.take().map(|err| {
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(err).lines().map_while(std::io::Result::ok) {
                crate::progress::println(&line);
            }
        })
    });
    Ok(Started { shown, child, forward })
}

impl Started {
    /// After the child was waited for: the forwarded output is drained (the pipe ends with the child
    /// and whatever it left holding stderr), and the exit noted.
    pub fn finish(self, waited: std::io::Result<Waited>) -> Result<(String, Waited)> {
        if let Some(forward) = self.forward {
            let _ = forward.join();
        }
        let waited = waited.map_err(|source| Error::Spawn { command: self.shown.clone(), source })?;
        note_built(waited.status.code());
        Ok((self.shown, waited))
    }
}

/// Runs `cmd` to its end through `interrupt` (see [`spawn`]).
pub fn run_interruptibly(cmd: &mut Command, interrupt: &Interrupt, what: &str) -> Result<(String, Waited)> {
    let mut started = spawn(cmd)?;
    let waited = interrupt.wait(&mut started.child, what);
    started.finish(waited)
}

/// What nextest's exit `code` means, for error messages.
pub fn exit_meaning(code: i32) -> &'static str {
    match code {
        NextestExitCode::BUILD_FAILED => "the suite failed to build",
        NextestExitCode::CARGO_METADATA_FAILED => "cargo metadata failed",
        NextestExitCode::NO_TESTS_RUN => "no tests matched",
        NextestExitCode::TEST_LIST_CREATION_FAILED => "listing the tests failed",
        NextestExitCode::SETUP_ERROR => "setup error, e.g. bad .config/nextest.toml or unknown profile",
        NextestExitCode::INVALID_FILTERSET => "invalid filterset",
        NextestExitCode::REQUIRED_VERSION_NOT_MET => "cargo-nextest is too old",
        NextestExitCode::INCOMPLETE_RUN => "replay of an incomplete run",
        _ => "see nextest's output above",
    }
}

/// One scenario of the suite.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Scenario {
    /// Test binary (e.g. `stress-tests::crash`).
    pub binary: String,
    /// Test name (the scenario name).
    pub name: String,
}

/// `cargo nextest list -p stress-tests --profile <profile> --message-format json`, read with
/// nextest-metadata: the scenarios the profile's `default-filter` (`.config/nextest.toml`), the user's
/// filtersets and the partition select. With `interrupt`, a signal stops the listing.
pub fn list(
    cargo: &Cargo,
    profile: &str,
    selection: &Selection,
    interrupt: Option<&Interrupt>,
) -> Result<Listed> {
    let mut cmd = cargo.command(&[
        "nextest",
        "list",
        "--package",
        SUITE_PACKAGE,
        "--profile",
        profile,
        "--message-format",
        "json",
    ]);
    for expr in &selection.filtersets {
        cmd.arg("-E").arg(expr);
    }
    if let Some(partition) = &selection.partition {
        cmd.arg("--partition").arg(partition);
    }
    if selection.output == Output::Quiet
        || (selection.output == Output::Compact && SUITE_BUILT.load(Ordering::Relaxed))
    {
        cmd.arg("--cargo-quiet");
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let shown = display_command(&cmd);
    log::debug!("running {shown}");
    let mut child = cmd.spawn().map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    let mut stdout = child.stdout.take();
    // Read while waiting: a full pipe would block nextest forever.
    let (status, signal, text) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || {
            let mut text = String::new();
            if let Some(out) = stdout.as_mut() {
                let _ = out.read_to_string(&mut text);
            }
            text
        });
        let waited = match interrupt {
            Some(interrupt) => interrupt.wait(&mut child, "nextest list").map(|w| (w.status, w.signal)),
            None => child.wait().map(|status| (status, None)),
        };
        let text = reader.join().unwrap_or_default();
        waited.map(|(status, signal)| (status, signal, text))
    })
    .map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    if let Some(signal) = signal {
        return Ok(Listed::Stopped(Cause::Signal { signal: signal_name(signal) }));
    }
    if !status.success() {
        let code = status.code().unwrap_or(-1);
        return Err(Error::Nextest { command: shown, code, meaning: exit_meaning(code) });
    }
    // Listing built the suite: the nextest calls after it (two at once, the self-check beside the
    // first repeat) need not print cargo's lines, nor wait on each other's package-cache lock aloud.
    note_built(status.code());
    let summary = TestListSummary::parse_json(&text).map_err(|e| Error::Parse {
        what: "nextest test list",
        path: PathBuf::from(shown),
        message: one_line(&e.to_string()),
    })?;
    let mut scenarios = Vec::new();
    for (binary_id, suite) in &summary.rust_suites {
        for (name, case) in &suite.test_cases {
            if case.filter_match.is_match() {
                scenarios.push(Scenario { binary: binary_id.to_string(), name: name.to_string() });
            }
        }
    }
    // Every binary of the suite package, those the profile's filter skips included (the self-check's).
    let binaries = BinaryListSummary {
        rust_binaries: summary.rust_suites.into_iter().map(|(id, suite)| (id, suite.binary)).collect(),
        rust_build_meta: summary.rust_build_meta,
    };
    Ok(Listed::Scenarios(Box::new(Suite { scenarios, binaries })))
}

/// What [`list`] found.
#[derive(Debug)]
pub enum Listed {
    /// The suite as listed.
    Scenarios(Box<Suite>),
    /// A signal stopped the listing.
    Stopped(Cause),
}

/// The suite as [`list`] found it, built.
#[derive(Debug)]
pub struct Suite {
    /// The selected scenarios.
    pub scenarios: Vec<Scenario>,
    /// Every test binary of the suite package, as `nextest list --list-type binaries-only` prints
    /// them (for [`BuiltSuite`]).
    pub binaries: BinaryListSummary,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn obs(outcomes: &[Outcome]) -> Vec<Observation> {
        outcomes
            .iter()
            .enumerate()
            .map(|(i, &outcome)| Observation { test: format!("t{i}"), outcome, time_s: None })
            .collect()
    }

    #[test]
    fn later_repeats_leave_out_the_first_repeat_only_tests_and_keep_user_filters() {
        let none = Selection::default().without_first_repeat_only();
        assert_eq!(none.filtersets, vec![format!("not ({FIRST_REPEAT_ONLY})")]);
        let given = Selection { filtersets: vec!["binary(nightly)".into()], ..Selection::default() };
        assert_eq!(
            given.without_first_repeat_only().filtersets,
            vec![format!("(binary(nightly)) & not ({FIRST_REPEAT_ONLY})")]
        );
    }

    #[test]
    fn a_failed_run_with_every_test_reported_and_a_failure_was_not_cancelled() {
        assert!(!was_cancelled(&obs(&[Outcome::Passed, Outcome::Failed]), Some(2)));
        assert!(!was_cancelled(&obs(&[Outcome::Failed]), None));
    }

    #[test]
    fn a_failed_run_missing_tests_or_without_any_failure_was_cancelled() {
        // Observed with nextest 0.9.143: SIGTERM to nextest alone exits 100, and the JUnit report
        // holds only the tests that finished before it (the stopped one is left out).
        assert!(was_cancelled(&obs(&[Outcome::Passed]), None));
        assert!(was_cancelled(&obs(&[Outcome::Passed, Outcome::Failed]), Some(4)));
    }
}
