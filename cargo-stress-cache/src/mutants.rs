//! The bug-catching proof of the suite: run the tier once against a clean build and once per seeded
//! mutant, and show, per mutant × scenario, which invariants killed it ([`crate::kills`] says what
//! counts as a kill). The mutant runs keep nextest's retry from the tier's profile: a kill that does
//! not reproduce is a flaky kill, not a kill.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{ContentArrangement, Table};
use serde::{Deserialize, Serialize};
use stress_cache_metadata::ScenarioRecord;

use crate::cli::Format;
use crate::errors::{Error, Result};
use crate::kills::{self, CellStatus, MutantClass, MutantRow};
use crate::run::{Request, TierRun};
use crate::rundir::{self, RunState};
use stress_cache_metadata::report::RunVerdict;

/// The mutant × scenario matrix; saved as `mutants.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Matrix {
    /// The clean run's verdict (its self-check included).
    pub clean: RunVerdict,
    /// The clean run's violations (`scenario: invariant`), expected none.
    pub clean_violations: Vec<String>,
    /// Scenarios of the clean run whose setup failed, expected none.
    pub clean_setup_errors: Vec<String>,
    /// Every scenario of the clean run, with the invariants it held.
    pub clean_held: BTreeMap<String, BTreeSet<String>>,
    /// One row per mutant that ran to the end.
    pub mutants: Vec<MutantRow>,
    /// Why the matrix is partial, if it is: no mutant after the interrupted run was started.
    #[serde(default)]
    pub interrupted: Option<String>,
    /// Mutants not run here because every scenario declared to kill them belongs to another tier (none
    /// ran in the clean run), with those scenarios: e.g. a nightly-only killer in a PR-tier matrix. Their
    /// kill is shown where their killer runs (`tests/mutants_are_killed.rs`, the nightly tier).
    #[serde(default)]
    pub out_of_tier: BTreeMap<String, Vec<String>>,
}

impl Matrix {
    /// Whether the clean build passed: no violation, no setup error, a passing self-check, stable.
    pub fn clean_passed(&self) -> bool {
        self.clean == RunVerdict::Pass
    }

    /// The matrix as the invocation's result: interrupted; a pass when the clean build passed and
    /// every mutant was killed where expected; else not killed.
    pub fn outcome(&self) -> Result<()> {
        match self.verdict_word() {
            "PASS" => Ok(()),
            "INTERRUPTED" => Err(Error::RunInterrupted { summary: self.summary_line() }),
            _ => Err(Error::MutantsNotKilled { summary: self.summary_line() }),
        }
    }

    /// `INTERRUPTED`; `PASS` when the clean build passed and every mutant was killed where expected;
    /// else `FAIL`.
    pub fn verdict_word(&self) -> &'static str {
        let all_killed = self.mutants.iter().all(|m| m.class == MutantClass::KilledWhereExpected);
        match (&self.interrupted, self.clean_passed() && all_killed) {
            (Some(_), _) => "INTERRUPTED",
            (None, true) => "PASS",
            (None, false) => "FAIL",
        }
    }

    /// The first line: the verdict and the count of each class.
    pub fn summary_line(&self) -> String {
        let verdict = self.verdict_word();
        let count = |class: MutantClass| self.mutants.iter().filter(|m| m.class == class).count();
        format!(
            "{verdict}: {}/{} mutants killed where expected ({} killed elsewhere only, {} flaky-kill, {} survived, \
             {} not run){}; clean build {}",
            count(MutantClass::KilledWhereExpected),
            self.mutants.len(),
            count(MutantClass::KilledElsewhereOnly),
            count(MutantClass::FlakyKill),
            count(MutantClass::Survived),
            count(MutantClass::NotRun),
            if self.out_of_tier.is_empty() {
                String::new()
            } else {
                format!(
                    "; {} left to the tier of their killers ({})",
                    self.out_of_tier.len(),
                    self.out_of_tier.keys().cloned().collect::<Vec<_>>().join(", ")
                )
            },
            if self.clean_passed() { "passed".to_string() } else { self.clean.as_str().to_string() }
        )
    }

    /// The scenario columns: every scenario where some mutant was killed, flakily killed, not active
    /// or broken, or that some mutant expects to be killed by. (The others held against every mutant
    /// and would only widen the table.)
    pub fn columns(&self) -> Vec<String> {
        let mut columns: BTreeSet<String> = BTreeSet::new();
        for row in &self.mutants {
            columns.extend(row.expected.iter().cloned());
            columns.extend(
                row.cells.iter().filter(|(_, c)| c.status != CellStatus::Survived).map(|(s, _)| s.clone()),
            );
        }
        columns.into_iter().collect()
    }

    /// Renders the matrix.
    pub fn render(&self, format: Format) -> String {
        if format == Format::Json {
            let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
            text.push('\n');
            return text;
        }
        let markdown = format == Format::Markdown;
        let columns = self.columns();
        let mut table = Table::new();
        table.load_preset(if markdown { ASCII_MARKDOWN } else { UTF8_FULL_CONDENSED });
        if !markdown {
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
        let mut header = vec!["mutant".to_string(), "class".to_string(), "expected in".to_string()];
        header.extend(columns.iter().cloned());
        table.set_header(header);
        let mut clean = vec!["(clean build)".to_string(), self.clean.as_str().to_string(), "-".to_string()];
        clean.extend(columns.iter().map(|s| self.clean_cell(s)));
        table.add_row(clean);
        for row in &self.mutants {
            let mut cells = vec![row.mutant.clone(), row.class.as_str().to_string(), row.expected.join(", ")];
            cells.extend(columns.iter().map(|s| cell_text(row, s)));
            table.add_row(cells);
        }
        let escape = |s: String| if markdown { s.replace('|', "\\|") } else { s };
        let mut out = String::new();
        if markdown {
            out.push_str("## cargo stress-cache mutants\n\n");
        }
        out.push_str(&escape(self.summary_line()));
        out.push('\n');
        if let Some(interrupted) = &self.interrupted {
            out.push_str(&format!("{interrupted}\n"));
        }
        out.push('\n');
        out.push_str(&table.to_string());
        out.push_str(
            "\n\ncells: the invariants that killed the mutant there (violated in every attempt, held in the \
             clean run); `flaky k/n`: killed in k of n attempts; `not active`: no process printed the \
             mutant's marker; `setup error`: no verdict; `-`: survived (or not run) there\n",
        );
        out
    }

    /// The text of the clean build's cell of `scenario`.
    pub fn clean_cell(&self, scenario: &str) -> String {
        let violated: Vec<&str> = self
            .clean_violations
            .iter()
            .filter_map(|v| v.strip_prefix(scenario).and_then(|rest| rest.strip_prefix(": ")))
            .collect();
        if !violated.is_empty() {
            format!("VIOLATED {}", violated.join(", "))
        } else if self.clean_setup_errors.iter().any(|s| s == scenario) {
            "setup error".to_string()
        } else if self.clean_held.contains_key(scenario) {
            "held".to_string()
        } else {
            "no record".to_string()
        }
    }
}

/// The text of one mutant × scenario cell.
pub fn cell_text(row: &MutantRow, scenario: &str) -> String {
    let Some(cell) = row.cells.get(scenario) else {
        return if row.expected.iter().any(|e| e == scenario) { "no record".into() } else { "-".into() };
    };
    match cell.status {
        CellStatus::Killed => cell.invariants.join(", "),
        CellStatus::FlakyKill => {
            format!("flaky {}/{}: {}", cell.killing_attempts, cell.attempts, cell.invariants.join(", "))
        }
        CellStatus::NotActive => "not active".into(),
        CellStatus::Error => "setup error".into(),
        CellStatus::Survived if cell.expected => "survived".into(),
        CellStatus::Survived => "-".into(),
    }
}

/// The rows of a mutants matrix to run.
#[derive(Debug, Clone, Copy)]
pub struct MatrixPlan<'a> {
    /// The mutants, one tier run each.
    pub mutants: &'a [String],
    /// The target's declaration of where each mutant must be killed.
    pub killed_by: &'a BTreeMap<String, Vec<String>>,
    /// Whether a mutant run's kept temp dirs stay (else they are removed: those failures were its point).
    pub keep_dirs: bool,
}

/// Runs the clean tier (after the checker's self-check) and one tier per mutant into `run_dir/clean`
/// and `run_dir/mutant-<name>`, writes `mutants.json` and `mutants.md`, and returns the matrix.
/// `plan` says which mutants, where each must be killed and whether their kept dirs stay.
pub fn run(tier_run: &TierRun<'_>, run_dir: &Path, plan: &MatrixPlan<'_>) -> Result<Matrix> {
    // The whole matrix's state, so that `report` on this directory knows it was cut short even between
    // two mutant runs (each of which has its own run.json).
    let matrix = rundir::tracked(
        run_dir,
        tier_run.running_info(None, 1),
        |_| run_all(tier_run, run_dir, plan),
        |matrix, info| {
            info.state = if matrix.interrupted.is_some() { RunState::Interrupted } else { RunState::Finished }
        },
    )?;
    rundir::write(&run_dir.join("mutants.json"), &matrix.render(Format::Json))?;
    rundir::write(&run_dir.join("mutants.md"), &matrix.render(Format::Markdown))?;
    Ok(matrix)
}

fn run_all(tier_run: &TierRun<'_>, run_dir: &Path, plan: &MatrixPlan<'_>) -> Result<Matrix> {
    let MatrixPlan { mutants, killed_by, keep_dirs } = *plan;
    let clean_dir = rundir::subdir(run_dir, "clean")?;
    let clean = tier_run.run(Request {
        run_dir: &clean_dir,
        repeat: 1,
        mutant: None,
        label: "clean build",
        self_check: true,
    })?;
    crate::report::write_all(&clean_dir, &clean.aggregate)?;
    let clean_records: Vec<&ScenarioRecord> = clean.inputs.records.iter().map(|(_, r)| r).collect();
    let mut matrix = Matrix {
        clean: clean.aggregate.verdict(),
        clean_violations: clean.aggregate.violated_names(),
        clean_setup_errors: clean.aggregate.setup_errors.iter().map(|e| e.scenario.clone()).collect(),
        clean_held: kills::clean_held(&clean_records),
        mutants: Vec::new(),
        interrupted: clean.interruption.map(|i| format!("clean build: {i}")),
        out_of_tier: BTreeMap::new(),
    };
    if !matrix.clean_passed() && matrix.interrupted.is_none() {
        log::warn!("clean build: {} — kills are attributed only where it held", matrix.clean.as_str());
    }
    let progress = crate::progress::Progress::start("mutants", mutants.len() as u64);
    for (i, name) in mutants.iter().enumerate() {
        if matrix.interrupted.is_some() {
            break;
        }
        let expected = killed_by.get(name).cloned().unwrap_or_default();
        if !expected.is_empty() && expected.iter().all(|s| !matrix.clean_held.contains_key(s)) {
            // A tier run that cannot contain its killer would only report a survivor that is not one.
            log::info!("mutant `{name}`: its killers {expected:?} are not in this tier; not run here");
            matrix.out_of_tier.insert(name.clone(), expected);
            continue;
        }
        let killed = matrix.mutants.iter().filter(|m| !m.kills().is_empty()).count();
        progress.item(i, format!("`{name}` · {killed}/{i} killed so far"));
        let dir = rundir::subdir(run_dir, &format!("mutant-{name}"))?;
        let label = format!("mutant {}/{} `{name}`", i + 1, mutants.len());
        let outcome = tier_run.run(Request {
            run_dir: &dir,
            repeat: 1,
            mutant: Some(name),
            label: &label,
            self_check: false,
        })?;
        crate::report::write_all(&dir, &outcome.aggregate)?;
        if !keep_dirs {
            remove_kept_dir(&tier_run.keep_dir_of(&dir, 1));
        }
        if let Some(interruption) = outcome.interruption {
            // A partial mutant run proves nothing either way: it gets no row.
            matrix.interrupted = Some(format!("{label}: {interruption}"));
            break;
        }
        let records: Vec<&ScenarioRecord> = outcome.inputs.records.iter().map(|(_, r)| r).collect();
        let row = kills::classify(name, &expected, &matrix.clean_held, &records);
        let kills: Vec<String> =
            row.kills().iter().map(|(s, invs)| format!("{s}: {}", invs.join(", "))).collect();
        log::info!(
            "{label}: {}{}",
            row.class.as_str(),
            if kills.is_empty() { String::new() } else { format!(" ({})", kills.join("; ")) }
        );
        matrix.mutants.push(row);
    }
    Ok(matrix)
}

/// Removes a mutant run's kept temp dirs: those failures were the point of the run.
fn remove_kept_dir(kept: &Path) {
    if kept.is_dir()
        && let Err(e) = std::fs::remove_dir_all(kept)
    {
        log::warn!("cannot remove {}: {e}", kept.display());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, exit_code_of};
    use crate::kills::Cell;

    fn row(mutant: &str, class: MutantClass, cells: &[(&str, CellStatus, &[&str])]) -> MutantRow {
        MutantRow {
            mutant: mutant.to_string(),
            class,
            expected: vec!["same_model".to_string()],
            cells: cells
                .iter()
                .map(|(s, status, invs)| {
                    let cell = Cell {
                        status: *status,
                        invariants: invs.iter().map(|i| i.to_string()).collect(),
                        attempts: 2,
                        killing_attempts: if *status == CellStatus::FlakyKill { 1 } else { 2 },
                        expected: *s == "same_model",
                    };
                    (s.to_string(), cell)
                })
                .collect(),
        }
    }

    fn matrix(clean: RunVerdict, rows: Vec<MutantRow>) -> Matrix {
        Matrix {
            clean,
            clean_violations: vec![],
            clean_setup_errors: vec![],
            clean_held: BTreeMap::from([
                ("same_model".to_string(), BTreeSet::from(["single_download".to_string()])),
                ("gc_vs_reader".to_string(), BTreeSet::new()),
            ]),
            mutants: rows,
            interrupted: None,
            out_of_tier: BTreeMap::new(),
        }
    }

    fn killed(mutant: &str) -> MutantRow {
        row(
            mutant,
            MutantClass::KilledWhereExpected,
            &[("same_model", CellStatus::Killed, &["single_download"])],
        )
    }

    #[test]
    fn exit_0_only_when_the_clean_build_passed_and_every_mutant_was_killed_where_expected() {
        assert_eq!(
            exit_code_of(&matrix(RunVerdict::Pass, vec![killed("a"), killed("b")]).outcome()),
            EXIT_OK
        );
        assert_eq!(exit_code_of(&matrix(RunVerdict::Error, vec![killed("a")]).outcome()), EXIT_FAILED);
        assert_eq!(exit_code_of(&matrix(RunVerdict::Fail, vec![killed("a")]).outcome()), EXIT_FAILED);
        for class in [
            MutantClass::KilledElsewhereOnly,
            MutantClass::FlakyKill,
            MutantClass::Survived,
            MutantClass::NotRun,
        ] {
            let other = row("b", class, &[]);
            assert_eq!(
                exit_code_of(&matrix(RunVerdict::Pass, vec![killed("a"), other]).outcome()),
                EXIT_FAILED,
                "{class:?}"
            );
        }
        let mut interrupted = matrix(RunVerdict::Pass, vec![killed("a")]);
        interrupted.interrupted = Some("mutant 2/2 `b`: INTERRUPTED by SIGINT".into());
        assert_eq!(exit_code_of(&interrupted.outcome()), EXIT_INTERRUPTED);
    }

    #[test]
    fn the_matrix_shows_per_mutant_and_scenario_which_invariants_killed_it() {
        let m = matrix(
            RunVerdict::Pass,
            vec![
                killed("no-lock"),
                row(
                    "skip-verify",
                    MutantClass::FlakyKill,
                    &[
                        ("same_model", CellStatus::FlakyKill, &["single_download"]),
                        ("warm_hits", CellStatus::Survived, &[]),
                    ],
                ),
                row(
                    "gc-ignores-readers",
                    MutantClass::NotRun,
                    &[("gc_vs_reader", CellStatus::NotActive, &[])],
                ),
            ],
        );
        let text = m.render(Format::Markdown);
        assert!(
            text.contains("FAIL: 1/3 mutants killed where expected (0 killed elsewhere only, 1 flaky-kill, 0 survived, 1 not run); clean build passed"),
            "{text}"
        );
        let line =
            |mutant: &str| text.lines().find(|l| l.starts_with(&format!("| {mutant} "))).unwrap_or_default();
        assert!(
            line("no-lock").contains("killed where expected") && line("no-lock").contains("single_download"),
            "{text}"
        );
        assert!(line("skip-verify").contains("flaky 1/2: single_download"), "{text}");
        assert!(
            line("gc-ignores-readers").contains("not run")
                && line("gc-ignores-readers").contains("not active"),
            "{text}"
        );
        assert!(!text.contains("warm_hits"), "a scenario where every mutant survived is no column: {text}");
        let json: serde_json::Value = serde_json::from_str(&m.render(Format::Json)).unwrap();
        assert_eq!(json["mutants"][1]["class"], "flaky-kill");
        assert_eq!(json["mutants"][0]["cells"]["same_model"]["invariants"][0], "single_download");
    }
}
