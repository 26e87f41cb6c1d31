//! A tier run: the suite run `repeat` times through nextest, each repeat into its own directory, then
//! aggregated. Repeats are our own loop rather than nextest's `--stress-count` because every repeat
//! needs its own `STRESS_RESULTS_DIR`, its own JUnit report for the flakes table and its own
//! `STRESS_TMP_DIR`, emptied after it.
//!
//! `run.json` says where the run is: `running` from the start, then `finished`, `interrupted` (a
//! signal, or nextest cancelling the run: no further repeat starts) or `aborted` (an error).

use std::cell::OnceCell;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::aggregate::Aggregate;
use crate::built_suite::BuiltSuite;
use crate::cargo::Cargo;
use crate::cli::Tier;
use crate::errors::{Error, Result};
use crate::inputs::{self, Inputs};
use crate::interrupt::{Cause, Interrupt, Interruption, signal_name};
use stress_cache_metadata::SuiteEnv;

use crate::nextest::{self, Listed, Selection};
use crate::rundir::{self, RunInfo, RunState};
use crate::selfcheck::{self, SelfCheck};
use crate::tmpdir;
use crate::workspace::Workspace;

/// Everything a tier run needs besides its run directory.
pub struct TierRun<'a> {
    /// Cargo.
    pub cargo: &'a Cargo,
    /// The workspace (its root locates the JUnit reports; its metadata goes to the reused build).
    pub workspace: &'a Workspace,
    /// Target dir.
    pub target_dir: &'a Path,
    /// The executable under test.
    pub target_bin: &'a Path,
    /// The written declaration.
    pub target_spec: &'a Path,
    /// The fixtures prepared for the executable (`fixtures.json`).
    pub fixtures: &'a Path,
    /// Tier.
    pub tier: Tier,
    /// Filtersets, partition, quietness.
    pub selection: Selection,
    /// `STRESS_SEED`.
    pub seed: Option<u64>,
    /// `STRESS_PROCESSES`.
    pub processes: Option<usize>,
    /// `STRESS_TRACE` for the suite (`None`: its default).
    pub trace: Option<bool>,
    /// The invocation's run directory (a mutants run has one tier run per subdirectory of it).
    pub run_root: &'a Path,
    /// `$STRESS_KEEP_DIR` of the user: kept temp dirs then go to
    /// `<it>/<run-id>[/<subdirectory>]/repeat-<n>` instead of `<run dir>/repeat-<n>/kept`.
    pub keep_dir: Option<PathBuf>,
    /// The invocation's signal handling.
    pub interrupt: &'a Interrupt,
    /// The suite, once listed: the same for every run of an invocation (the mutants matrix runs the
    /// tier once per mutant).
    pub listed: OnceCell<Listing>,
}

/// The suite as an invocation's listing found it.
#[derive(Debug)]
pub struct Listing {
    /// The number of scenarios selected.
    pub selected: usize,
    /// The binaries every nextest run of the invocation executes.
    pub built: BuiltSuite,
}

/// What a tier run produced.
#[derive(Debug)]
pub struct TierOutcome {
    /// Everything read back from the run directory.
    pub inputs: Inputs,
    /// Its tables and verdict.
    pub aggregate: Aggregate,
    /// Why it stopped early, if it did.
    pub interruption: Option<Interruption>,
    /// What the temp-dir cleaner had to remove after each nextest run: leaked by the suite.
    pub leaks: stress_cache_metadata::LeakCounts,
}

/// What one [`TierRun::run`] is asked to do.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// Where its `repeat-<n>/` dirs and `run.json` go.
    pub run_dir: &'a Path,
    /// How many times the tier runs.
    pub repeat: u32,
    /// The seeded bug every process runs with.
    pub mutant: Option<&'a str>,
    /// Prefix of the progress lines (e.g. `mutant no-lock`).
    pub label: &'a str,
    /// Whether the checker's self-check runs beside the first repeat.
    pub self_check: bool,
}

impl TierRun<'_> {
    /// The `run.json` of a run of this tier with `mutant`, `repeat` times, just started.
    pub fn running_info(&self, mutant: Option<&str>, repeat: u32) -> RunInfo {
        RunInfo {
            tier: self.tier.as_str().to_string(),
            mutant: mutant.map(str::to_string),
            repeat,
            partition: self.selection.partition.clone(),
            filtersets: self.selection.filtersets.clone(),
            state: RunState::Running,
            interruption: None,
            error: None,
            self_check: None,
        }
    }

    /// Runs the tier `repeat` times into `run_dir/repeat-<n>/` (after the checker's self-check, with
    /// `self_check`) and aggregates what they wrote.
    pub fn run(&self, request: Request<'_>) -> Result<TierOutcome> {
        let Request { run_dir, repeat, mutant, label, .. } = request;
        let started = Instant::now();
        let mut leaks = stress_cache_metadata::LeakCounts::default();
        let interruption = rundir::tracked(
            run_dir,
            self.running_info(mutant, repeat),
            |info| self.stages(request, &mut info.self_check, &mut leaks),
            |interruption, info| match interruption {
                None => info.state = RunState::Finished,
                Some(interruption) => {
                    info.state = RunState::Interrupted;
                    info.interruption = Some(interruption.clone());
                }
            },
        )?;
        log::debug!("{label}: {repeat} repeats in {:.0?}", started.elapsed());
        let inputs = inputs::collect(&[run_dir.to_path_buf()])?;
        let aggregate = crate::aggregate::from_inputs(&inputs);
        Ok(TierOutcome { inputs, aggregate, interruption, leaks })
    }

    /// The self-check (with `self_check`, its result into `checked`), the scenario count and the
    /// repeats (what the cleaner removed after each nextest run into `leaks`); `Some` when they stopped
    /// early.
    fn stages(
        &self,
        request: Request<'_>,
        checked: &mut Option<SelfCheck>,
        leaks: &mut stress_cache_metadata::LeakCounts,
    ) -> Result<Option<Interruption>> {
        let Request { run_dir, repeat, mutant, label, self_check } = request;
        let stopped = |cause, during: &str, records, scenarios, repeats_complete| Interruption {
            cause,
            during: during.to_string(),
            records,
            scenarios,
            repeats_complete,
            repeats: repeat,
        };
        // Listed first: the listing builds the suite once, and every nextest run after it executes
        // those binaries (`BuiltSuite`); the count lets the interruption line say how much of the run
        // completed, and a JUnit report with fewer tests shows that nextest cancelled the run.
        let listing = match self.listed.get() {
            Some(listing) => listing,
            None => {
                match nextest::list(
                    self.cargo,
                    self.tier.nextest_profile(),
                    &self.selection,
                    Some(self.interrupt),
                )? {
                    Listed::Scenarios(suite) => {
                        log::debug!("{label}: {} scenario tests selected", suite.scenarios.len());
                        let dir = rundir::subdir(self.run_root, crate::built_suite::DIR)?;
                        let built = BuiltSuite::write(&dir, &suite.binaries, self.workspace)?;
                        self.listed.get_or_init(|| Listing { selected: suite.scenarios.len(), built })
                    }
                    Listed::Stopped(cause) => {
                        return Ok(Some(stopped(cause, "listing the scenarios", 0, None, 0)));
                    }
                }
            }
        };
        let selected = listing.selected;
        // The checker's self-check runs beside the first repeat: it voids the verdict whenever it
        // fails, so it needs to end before the verdict, not before the scenarios start.
        let mut pending_check =
            if self_check { Some(self.self_check_command(run_dir, label, &listing.built)?) } else { None };
        // Later repeats of a nightly run leave out the tests that are their own repeats (soak, scale):
        // counted too, or their shorter JUnit report would read as a cancelled run.
        let later = self.selection.without_first_repeat_only();
        let later_selected = if self.tier == Tier::Nightly && repeat > 1 {
            match nextest::list(self.cargo, self.tier.nextest_profile(), &later, Some(self.interrupt))? {
                Listed::Scenarios(suite) => suite.scenarios.len(),
                Listed::Stopped(cause) => {
                    return Ok(Some(stopped(cause, "listing the scenarios", 0, None, 0)));
                }
            }
        } else {
            selected
        };
        let progress = crate::progress::Progress::start("repeat", u64::from(repeat));
        for n in 1..=repeat {
            progress.item((n - 1) as usize, format!("repeat {n} of {repeat}"));
            if let Some(signal) = self.interrupt.requested() {
                let cause = Cause::Signal { signal: signal_name(signal) };
                let during = format!("repeat {n}/{repeat} (not started)");
                return Ok(Some(stopped(cause, &during, 0, Some(selected), n - 1)));
            }
            let dir = rundir::subdir(run_dir, &format!("repeat-{n}"))?;
            let records_dir = rundir::subdir(&dir, "records")?;
            let tmp_dir = tmpdir::create(&dir)?;
            let env = SuiteEnv {
                mutant: mutant.map(str::to_string),
                ..self.suite_env(records_dir.clone(), self.keep_dir_of(run_dir, n), tmp_dir.clone())
            };
            log::info!(
                "{label}: repeat {n}/{repeat}: running tier {} (nextest profile {}) ...",
                self.tier.as_str(),
                self.tier.nextest_profile()
            );
            let one = Instant::now();
            let later_repeat = n > 1 && self.tier == Tier::Nightly;
            let (selection, count) =
                if later_repeat { (&later, later_selected) } else { (&self.selection, selected) };
            let (mut cmd, junit_paths) = nextest::tier_command(
                self.cargo,
                self.workspace.root(),
                self.target_dir,
                &env,
                selection,
                Some(&listing.built),
            )?;
            let (outcome, check) = match pending_check.take() {
                None => {
                    let outcome = nextest::run_interruptibly(&mut cmd, self.interrupt, "nextest").and_then(
                        |(shown, waited)| nextest::tier_outcome(shown, &waited, junit_paths, Some(count)),
                    );
                    (outcome, None)
                }
                Some(check) => {
                    let (outcome, ran) = self.beside_self_check(cmd, junit_paths, check, count, label, leaks);
                    (outcome, Some(ran))
                }
            };
            // Whatever happened (even an error), the scenarios' leftovers go.
            let repeat_label = format!("{label}: repeat {n}/{repeat}");
            leaks.add(crate::leaks::from_cleaned(&clean_tmp(&tmp_dir, &repeat_label), &repeat_label));
            let outcome = outcome?;
            match &outcome.junit {
                Some(junit) => {
                    let dest = dir.join("junit.xml");
                    std::fs::copy(junit, &dest)
                        .map_err(|source| Error::io("cannot copy JUnit report to", dest, source))?;
                }
                None => log::warn!(
                    "nextest wrote no JUnit report (is `[profile.{}.junit]` set?)",
                    self.tier.nextest_profile()
                ),
            }
            let records = count_records(&records_dir);
            // A self-check that ended counts even when the repeat was stopped; one that was stopped
            // itself is reported after the repeat's own ending (a signal stops both, and the repeat
            // says how far it got).
            let check_stopped = match check.transpose()? {
                Some(selfcheck::Ran::Done(check)) => {
                    *checked = Some(check);
                    None
                }
                Some(selfcheck::Ran::Stopped(cause)) => Some(cause),
                None => None,
            };
            if let Some(cause) = outcome.stopped {
                let during = format!("repeat {n}/{repeat}");
                return Ok(Some(stopped(cause, &during, records, Some(selected), n - 1)));
            }
            if let Some(cause) = check_stopped {
                return Ok(Some(stopped(cause, "the self-check", records, Some(selected), n - 1)));
            }
            log::info!(
                "{label}: repeat {n}/{repeat} finished in {:.0?}: {records} scenario records, nextest {}",
                one.elapsed(),
                if outcome.exit_code == Some(0) { "passed" } else { "reported failures" }
            );
            if records == 0 {
                log::warn!("the suite wrote no records into {}", records_dir.display());
            }
        }
        Ok(None)
    }

    /// The suite's environment for one nextest run of this tier (no mutant), writing its records into
    /// `results_dir`, failed scenarios' dirs into `keep_dir` and its temp dirs into `tmp_dir`.
    fn suite_env(&self, results_dir: PathBuf, keep_dir: PathBuf, tmp_dir: PathBuf) -> SuiteEnv {
        SuiteEnv {
            target_bin: Some(self.target_bin.to_path_buf()),
            target_spec: Some(self.target_spec.to_path_buf()),
            fixtures: Some(self.fixtures.to_path_buf()),
            tier: Some(self.tier),
            results_dir: Some(results_dir),
            keep_dir: Some(keep_dir),
            mutant: None,
            seed: self.seed,
            processes: self.processes,
            trace: self.trace,
            tmp_dir: Some(tmp_dir),
            spec_check_out: None,
            replay_plan: None,
        }
    }

    /// The checker's self-check, to run into `run_dir/self-check/`.
    fn self_check_command(&self, run_dir: &Path, label: &str, built: &BuiltSuite) -> Result<PendingCheck> {
        let dir = rundir::subdir(run_dir, "self-check")?;
        let tmp_dir = tmpdir::create(&dir)?;
        // Not `records`: whatever the checker's tests write is not a scenario record of this run.
        let results_dir = rundir::subdir(&dir, "results")?;
        let env = SuiteEnv {
            // The checker's own cases prove the trace invariants can fail: they always trace, whatever
            // the scenarios do (STRESS_TRACE=off only makes the scenarios' trace invariants skipped).
            trace: Some(true),
            ..self.suite_env(results_dir, dir.join("kept"), tmp_dir.clone())
        };
        log::info!(
            "{label}: self-check (nextest profile {}) beside the first repeat ...",
            selfcheck::PROFILE
        );
        let (cmd, junit_paths) = selfcheck::command(
            self.cargo,
            self.workspace.root(),
            self.target_dir,
            &env,
            self.selection.output,
            Some(built),
        )?;
        Ok(PendingCheck { cmd, junit_paths, dir, tmp_dir })
    }

    /// Runs the tier's nextest `cmd` and the self-check at once, waits for both, and judges each.
    fn beside_self_check(
        &self,
        mut cmd: std::process::Command,
        junit_paths: Vec<PathBuf>,
        mut check: PendingCheck,
        selected: usize,
        label: &str,
        leaks: &mut stress_cache_metadata::LeakCounts,
    ) -> (Result<nextest::RunOutcome>, Result<selfcheck::Ran>) {
        let ran = (|| {
            let mut checker = nextest::spawn(&mut check.cmd)?;
            let mut tier = match nextest::spawn(&mut cmd) {
                Ok(tier) => tier,
                Err(e) => {
                    // No half-started pair: the checker is stopped and reaped before the error returns.
                    let _ = checker.child.kill();
                    let _ = checker.finish(Err(std::io::Error::other("not waited")));
                    return Err(e);
                }
            };
            let waited = self
                .interrupt
                .wait_all([(&mut checker.child, "nextest (self-check)"), (&mut tier.child, "nextest")]);
            let (checker_waited, tier_waited) = match waited {
                Ok([checker, tier]) => (Ok(checker), Ok(tier)),
                Err(e) => (Err(std::io::Error::new(e.kind(), e.to_string())), Err(e)),
            };
            Ok((checker.finish(checker_waited), tier.finish(tier_waited)))
        })();
        let check_label = format!("{label}: self-check");
        leaks.add(crate::leaks::from_cleaned(&clean_tmp(&check.tmp_dir, &check_label), &check_label));
        let (checker, tier) = match ran {
            Ok(pair) => pair,
            // The run's error is reported; the self-check, never run, says so and passes nothing.
            Err(e) => {
                let not_run = SelfCheck { problem: Some(format!("not run: {e}")), ..SelfCheck::default() };
                return (Err(e), Ok(selfcheck::Ran::Done(not_run)));
            }
        };
        let outcome = tier
            .and_then(|(shown, waited)| nextest::tier_outcome(shown, &waited, junit_paths, Some(selected)));
        let judged = checker
            .and_then(|(shown, waited)| selfcheck::judge(shown, &waited, check.junit_paths, &check.dir));
        if let Ok(selfcheck::Ran::Done(check)) = &judged {
            if check.ok() {
                log::info!("{label}: {}", check.line());
            } else {
                log::error!("{label}: {}", check.line());
            }
        }
        (outcome, judged)
    }

    /// Where repeat `n` of the run in `run_dir` keeps the temp dirs of failed scenarios.
    pub fn keep_dir_of(&self, run_dir: &Path, n: u32) -> PathBuf {
        let repeat = format!("repeat-{n}");
        let Some(base) = &self.keep_dir else { return run_dir.join(repeat).join("kept") };
        let run_id = self.run_root.file_name().unwrap_or_default();
        let sub = run_dir.strip_prefix(self.run_root).unwrap_or(Path::new(""));
        base.join(run_id).join(sub).join(repeat)
    }
}

/// The self-check's nextest command, not started yet, and where it writes.
struct PendingCheck {
    cmd: std::process::Command,
    junit_paths: Vec<PathBuf>,
    dir: PathBuf,
    tmp_dir: PathBuf,
}

/// Empties a nextest run's `STRESS_TMP_DIR`, logs what it removed (a warning for what it could not)
/// and returns it.
pub fn clean_tmp(tmp: &Path, label: &str) -> tmpdir::Cleaned {
    let cleaned = tmpdir::clean(tmp);
    match cleaned.summary(tmp) {
        Some(line) if cleaned.left.is_empty() => log::info!("{label}: cleaned {line}"),
        Some(line) => log::warn!("{label}: cleaned {line}"),
        None => log::debug!("{label}: {} was empty", tmp.display()),
    }
    cleaned
}

fn count_records(dir: &Path) -> usize {
    // Only for progress and interruption lines; a read error here shows up properly when aggregating.
    fn walk(dir: &Path, depth: usize) -> usize {
        let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
        entries
            .flatten()
            .map(|e| {
                let path = e.path();
                if path.is_dir() && depth < 4 {
                    walk(&path, depth + 1)
                } else {
                    usize::from(path.extension().is_some_and(|x| x == "json"))
                }
            })
            .sum()
    }
    walk(dir, 0)
}
