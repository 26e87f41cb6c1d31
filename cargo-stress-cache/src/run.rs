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

/// Everything a tier run needs besides its run directory.
pub struct TierRun<'a> {
    /// Cargo.
    pub cargo: &'a Cargo,
    /// Workspace root (for the JUnit location).
    pub workspace_root: &'a Path,
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
    /// The number of scenarios selected, once listed: the same for every run of an invocation (the
    /// mutants matrix runs the tier once per mutant).
    pub selected: OnceCell<usize>,
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

impl TierRun<'_> {
    /// Runs the tier `repeat` times into `run_dir/repeat-<n>/` (after the checker's self-check, with
    /// `self_check`) and aggregates what they wrote. `label` prefixes the progress lines (e.g.
    /// `mutant no-lock`).
    pub fn run(
        &self,
        run_dir: &Path,
        repeat: u32,
        mutant: Option<&str>,
        label: &str,
        self_check: bool,
    ) -> Result<TierOutcome> {
        let started = Instant::now();
        let mut info = RunInfo {
            tier: self.tier.as_str().to_string(),
            mutant: mutant.map(str::to_string),
            repeat,
            partition: self.selection.partition.clone(),
            filtersets: self.selection.filtersets.clone(),
            state: RunState::Running,
            interruption: None,
            error: None,
            self_check: None,
        };
        rundir::write_info(run_dir, &info)?;
        let mut leaks = stress_cache_metadata::LeakCounts::default();
        let result =
            self.stages(run_dir, repeat, mutant, label, self_check, &mut info.self_check, &mut leaks);
        match &result {
            Ok(None) => info.state = RunState::Finished,
            Ok(Some(interruption)) => {
                info.state = RunState::Interrupted;
                info.interruption = Some(interruption.clone());
            }
            Err(e) => {
                info.state = RunState::Aborted;
                info.error = Some(e.to_string());
            }
        }
        let written = rundir::write_info(run_dir, &info);
        // The run's own error matters more than failing to record it.
        let interruption = result?;
        written?;
        log::debug!("{label}: {repeat} repeats in {:.0?}", started.elapsed());
        let inputs = inputs::collect(&[run_dir.to_path_buf()])?;
        let aggregate = Aggregate::from_inputs(&inputs);
        Ok(TierOutcome { inputs, aggregate, interruption, leaks })
    }

    /// The self-check (with `self_check`, its result into `checked`), the scenario count and the
    /// repeats (what the cleaner removed after each nextest run into `leaks`); `Some` when they stopped
    /// early.
    #[allow(clippy::too_many_arguments)]
    fn stages(
        &self,
        run_dir: &Path,
        repeat: u32,
        mutant: Option<&str>,
        label: &str,
        self_check: bool,
        checked: &mut Option<SelfCheck>,
        leaks: &mut stress_cache_metadata::LeakCounts,
    ) -> Result<Option<Interruption>> {
        let stopped = |cause, during: &str, records, scenarios, repeats_complete| Interruption {
            cause,
            during: during.to_string(),
            records,
            scenarios,
            repeats_complete,
            repeats: repeat,
        };
        if self_check {
            match self.self_check(run_dir, label, leaks)? {
                selfcheck::Ran::Done(check) => *checked = Some(check),
                selfcheck::Ran::Stopped(cause) => {
                    return Ok(Some(stopped(cause, "the self-check", 0, None, 0)));
                }
            }
        }
        // Counted first: the interruption line says how much of the run completed, and a JUnit report
        // with fewer tests shows that nextest cancelled the run.
        let selected = match self.selected.get() {
            Some(&n) => n,
            None => {
                match nextest::list(
                    self.cargo,
                    self.tier.nextest_profile(),
                    &self.selection,
                    Some(self.interrupt),
                )? {
                    Listed::Scenarios(scenarios) => {
                        log::debug!("{label}: {} scenario tests selected", scenarios.len());
                        *self.selected.get_or_init(|| scenarios.len())
                    }
                    Listed::Stopped(cause) => {
                        return Ok(Some(stopped(cause, "listing the scenarios", 0, None, 0)));
                    }
                }
            }
        };
        // Later repeats of a nightly run leave out the tests that are their own repeats (soak, scale):
        // counted too, or their shorter JUnit report would read as a cancelled run.
        let later = self.selection.without_first_repeat_only();
        let later_selected = if self.tier == Tier::Nightly && repeat > 1 {
            match nextest::list(self.cargo, self.tier.nextest_profile(), &later, Some(self.interrupt))? {
                Listed::Scenarios(scenarios) => scenarios.len(),
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
                target_bin: Some(self.target_bin.to_path_buf()),
                target_spec: Some(self.target_spec.to_path_buf()),
                fixtures: Some(self.fixtures.to_path_buf()),
                tier: Some(self.tier),
                results_dir: Some(records_dir.clone()),
                keep_dir: Some(self.keep_dir_of(run_dir, n)),
                mutant: mutant.map(str::to_string),
                seed: self.seed,
                processes: self.processes,
                trace: self.trace,
                tmp_dir: Some(tmp_dir.clone()),
                spec_check_out: None,
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
            let outcome = nextest::run_tier(
                self.cargo,
                self.workspace_root,
                self.target_dir,
                &env,
                selection,
                self.interrupt,
                Some(count),
            );
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
            if let Some(cause) = outcome.stopped {
                let during = format!("repeat {n}/{repeat}");
                return Ok(Some(stopped(cause, &during, records, Some(selected), n - 1)));
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

    /// Runs the checker's self-check into `run_dir/self-check/` and says how it went.
    fn self_check(
        &self,
        run_dir: &Path,
        label: &str,
        leaks: &mut stress_cache_metadata::LeakCounts,
    ) -> Result<selfcheck::Ran> {
        let dir = rundir::subdir(run_dir, "self-check")?;
        let tmp_dir = tmpdir::create(&dir)?;
        let env = SuiteEnv {
            target_bin: Some(self.target_bin.to_path_buf()),
            target_spec: Some(self.target_spec.to_path_buf()),
            fixtures: Some(self.fixtures.to_path_buf()),
            tier: Some(self.tier),
            // Not `records`: whatever the checker's tests write is not a scenario record of this run.
            results_dir: Some(rundir::subdir(&dir, "results")?),
            keep_dir: Some(dir.join("kept")),
            mutant: None,
            seed: self.seed,
            processes: self.processes,
            // The checker's own cases prove the trace invariants can fail: they always trace, whatever
            // the scenarios do (STRESS_TRACE=off only makes the scenarios' trace invariants skipped).
            trace: Some(true),
            tmp_dir: Some(tmp_dir.clone()),
            spec_check_out: None,
        };
        log::info!("{label}: self-check (nextest profile {}) ...", selfcheck::PROFILE);
        let ran = selfcheck::run(
            self.cargo,
            self.workspace_root,
            self.target_dir,
            &env,
            &dir,
            self.selection.output,
            self.interrupt,
        );
        let check_label = format!("{label}: self-check");
        leaks.add(crate::leaks::from_cleaned(&clean_tmp(&tmp_dir, &check_label), &check_label));
        let ran = ran?;
        if let selfcheck::Ran::Done(check) = &ran {
            if check.ok() {
                log::info!("{label}: {}", check.line());
            } else {
                log::error!("{label}: {}", check.line());
            }
        }
        Ok(ran)
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
