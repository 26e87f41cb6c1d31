//! A tier run: the suite run `repeat` times through nextest, each repeat into its own directory, then
//! aggregated. Repeats are our own loop rather than nextest's `--stress-count` because every repeat
//! needs its own `STRESS_RESULTS_DIR` and its own JUnit report for the flakes table.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::aggregate::Aggregate;
use crate::cargo::Cargo;
use crate::cli::Tier;
use crate::errors::{Error, Result};
use crate::inputs;
use crate::nextest::{self, Selection, SuiteEnv};
use crate::rundir::{self, RunInfo};

/// Everything a tier run needs besides its run directory.
#[derive(Debug, Clone)]
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
    /// Tier.
    pub tier: Tier,
    /// Filtersets, partition, quietness.
    pub selection: Selection,
    /// `STRESS_SEED`.
    pub seed: Option<u64>,
    /// `STRESS_PROCESSES`.
    pub processes: Option<usize>,
    /// The invocation's run directory (a mutants run has one tier run per subdirectory of it).
    pub run_root: &'a Path,
    /// `$STRESS_KEEP_DIR` of the user: kept temp dirs then go to
    /// `<it>/<run-id>[/<subdirectory>]/repeat-<n>` instead of `<run dir>/repeat-<n>/kept`.
    pub keep_dir: Option<PathBuf>,
}

impl TierRun<'_> {
    /// Runs the tier `repeat` times into `run_dir/repeat-<n>/` and aggregates what they wrote.
    /// `label` prefixes the progress lines (e.g. `mutant no-lock`).
    pub fn run(&self, run_dir: &Path, repeat: u32, mutant: Option<&str>, label: &str) -> Result<Aggregate> {
        let started = Instant::now();
        let info = RunInfo {
            tier: self.tier.as_str().to_string(),
            mutant: mutant.map(str::to_string),
            repeat,
            partition: self.selection.partition.clone(),
            filtersets: self.selection.filtersets.clone(),
        };
        rundir::write_info(run_dir, &info)?;
        for n in 1..=repeat {
            let dir = rundir::subdir(run_dir, &format!("repeat-{n}"))?;
            let env = SuiteEnv {
                target_bin: self.target_bin.to_path_buf(),
                target_spec: self.target_spec.to_path_buf(),
                tier: self.tier,
                results_dir: rundir::subdir(&dir, "records")?,
                keep_dir: self.keep_dir_of(run_dir, n),
                mutant: mutant.map(str::to_string),
                seed: self.seed,
                processes: self.processes,
            };
            log::info!(
                "{label}: repeat {n}/{repeat}: running tier {} (nextest profile {}) ...",
                self.tier.as_str(),
                self.tier.profile()
            );
            let one = Instant::now();
            let outcome =
                nextest::run_tier(self.cargo, self.workspace_root, self.target_dir, &env, &self.selection)?;
            match &outcome.junit {
                Some(junit) => {
                    let dest = dir.join("junit.xml");
                    std::fs::copy(junit, &dest)
                        .map_err(|source| Error::io("cannot copy JUnit report to", dest, source))?;
                }
                None => log::warn!(
                    "nextest wrote no JUnit report (is `[profile.{}.junit]` set?)",
                    self.tier.profile()
                ),
            }
            let records = count_records(&env.results_dir);
            log::info!(
                "{label}: repeat {n}/{repeat} finished in {:.0?}: {records} scenario records, nextest {}",
                one.elapsed(),
                if outcome.exit_code == 0 { "passed" } else { "reported failures" }
            );
            if records == 0 {
                log::warn!("the suite wrote no records into {}", env.results_dir.display());
            }
        }
        log::debug!("{label}: {repeat} repeats in {:.0?}", started.elapsed());
        let inputs = inputs::collect(&[run_dir.to_path_buf()])?;
        Ok(Aggregate::from_inputs(&inputs))
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

fn count_records(dir: &Path) -> usize {
    // Only for the progress line; a read error here shows up properly when aggregating.
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
