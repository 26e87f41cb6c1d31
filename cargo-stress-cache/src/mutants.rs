//! The bug-catching proof of the suite: run the tier once against a clean build and once per seeded
//! mutant, and show which scenarios' invariants killed each mutant.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{ContentArrangement, Table};
use serde::{Deserialize, Serialize};

use crate::cli::Format;
use crate::errors::{EXIT_FAILED, EXIT_INTERRUPTED, EXIT_OK, Result};
use crate::run::TierRun;
use crate::rundir;

/// The mutant × scenario matrix; saved as `mutants.json`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Matrix {
    /// Whether the clean build passed (no violation, no unstable test).
    pub clean_passed: bool,
    /// Violations of the clean run (`scenario: invariant`), expected empty.
    pub clean_violations: Vec<String>,
    /// Every scenario seen.
    pub scenarios: Vec<String>,
    /// One row per mutant.
    pub mutants: Vec<MutantRow>,
    /// Why the matrix is partial, if it is: no mutant after the interrupted run was started.
    #[serde(default)]
    pub interrupted: Option<String>,
}

/// One mutant's results.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct MutantRow {
    /// Mutant name.
    pub mutant: String,
    /// Whether some invariant was violated.
    pub killed: bool,
    /// Scenario → invariants violated there.
    pub killed_by: BTreeMap<String, Vec<String>>,
    /// Tests that failed (a failure without a violated invariant does not count as a kill).
    pub failed_tests: usize,
}

impl Matrix {
    /// 130 when interrupted; 0 when the clean build passed and every mutant was killed; else 1.
    pub fn exit_code(&self) -> i32 {
        if self.interrupted.is_some() {
            EXIT_INTERRUPTED
        } else if self.clean_passed && self.mutants.iter().all(|m| m.killed) {
            EXIT_OK
        } else {
            EXIT_FAILED
        }
    }

    /// Renders the matrix.
    pub fn render(&self, format: Format) -> String {
        if format == Format::Json {
            let mut text = serde_json::to_string_pretty(self).unwrap_or_else(|_| "{}".to_string());
            text.push('\n');
            return text;
        }
        let markdown = format == Format::Markdown;
        let mut table = Table::new();
        table.load_preset(if markdown { ASCII_MARKDOWN } else { UTF8_FULL_CONDENSED });
        if !markdown {
            table.set_content_arrangement(ContentArrangement::Dynamic);
        }
        let mut header = vec!["mutant".to_string(), "verdict".to_string()];
        header.extend(self.scenarios.iter().cloned());
        table.set_header(header);
        let clean_verdict = if self.clean_passed { "clean: PASS" } else { "clean: FAIL" };
        let mut clean = vec!["(none)".to_string(), clean_verdict.to_string()];
        clean.extend(self.scenarios.iter().map(|s| {
            let v: Vec<&str> =
                self.clean_violations.iter().filter_map(|x| x.strip_prefix(&format!("{s}: "))).collect();
            if v.is_empty() { "held".to_string() } else { v.join(", ") }
        }));
        table.add_row(clean);
        for row in &self.mutants {
            let verdict = if row.killed { "killed" } else { "SURVIVED" };
            let mut cells = vec![row.mutant.clone(), verdict.to_string()];
            cells.extend(self.scenarios.iter().map(|s| match row.killed_by.get(s) {
                Some(invs) => invs.join(", "),
                None => "-".to_string(),
            }));
            table.add_row(cells);
        }
        let killed = self.mutants.iter().filter(|m| m.killed).count();
        let mut out = String::new();
        if markdown {
            out.push_str("## cargo stress-cache mutants\n\n");
        }
        let verdict = match self.exit_code() {
            EXIT_OK => "PASS",
            EXIT_INTERRUPTED => "INTERRUPTED",
            _ => "FAIL",
        };
        out.push_str(&format!(
            "{verdict}: {killed}/{} mutants killed; clean build {}\n",
            self.mutants.len(),
            if self.clean_passed { "passed" } else { "FAILED" }
        ));
        if let Some(interrupted) = &self.interrupted {
            out.push_str(&format!("{interrupted}\n"));
        }
        out.push('\n');
        out.push_str(&table.to_string());
        out.push('\n');
        out
    }
}

/// Runs the clean tier and one tier per mutant into `run_dir/clean` and `run_dir/mutant-<name>`,
/// writes `mutants.json` and `mutants.md`, and returns the matrix.
pub fn run(tier_run: &TierRun<'_>, run_dir: &Path, mutants: &[String], keep_dirs: bool) -> Result<Matrix> {
    let clean_dir = rundir::subdir(run_dir, "clean")?;
    let clean_outcome = tier_run.run(&clean_dir, 1, None, "clean build", true)?;
    let clean = clean_outcome.aggregate;
    crate::report::write_all(&clean_dir, &clean)?;
    let mut interrupted = clean_outcome.interruption.map(|i| format!("clean build: {i}"));
    let mut rows = Vec::new();
    let mut scenarios: BTreeSet<String> = clean.invariants.iter().map(|r| r.scenario.clone()).collect();
    for (i, name) in mutants.iter().enumerate() {
        if interrupted.is_some() {
            break;
        }
        let dir = rundir::subdir(run_dir, &format!("mutant-{name}"))?;
        let label = format!("mutant {}/{} `{name}`", i + 1, mutants.len());
        let outcome = tier_run.run(&dir, 1, Some(name), &label, false)?;
        let agg = outcome.aggregate;
        crate::report::write_all(&dir, &agg)?;
        if let Some(interruption) = outcome.interruption {
            // A partial mutant run proves nothing either way: it gets no row.
            interrupted = Some(format!("{label}: {interruption}"));
            break;
        }
        if !keep_dirs {
            remove_kept_dir(&tier_run.keep_dir_of(&dir, 1));
        }
        let mut killed_by: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for inv in agg.invariants.iter().filter(|r| r.violated > 0) {
            killed_by.entry(inv.scenario.clone()).or_default().push(inv.invariant.clone());
        }
        scenarios.extend(agg.invariants.iter().map(|r| r.scenario.clone()));
        let row = MutantRow {
            mutant: name.clone(),
            killed: !killed_by.is_empty(),
            killed_by,
            failed_tests: agg.unstable_tests().len(),
        };
        log::info!(
            "{label}: {}",
            if row.killed {
                format!("killed in {} scenario(s)", row.killed_by.len())
            } else {
                "SURVIVED (no invariant violated)".to_string()
            }
        );
        rows.push(row);
    }
    let matrix = Matrix {
        clean_passed: clean.exit_code() == EXIT_OK,
        clean_violations: clean.violated_names(),
        scenarios: scenarios.into_iter().collect(),
        mutants: rows,
        interrupted,
    };
    rundir::write(&run_dir.join("mutants.json"), &matrix.render(Format::Json))?;
    rundir::write(&run_dir.join("mutants.md"), &matrix.render(Format::Markdown))?;
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

    fn matrix(clean_passed: bool, killed: &[bool]) -> Matrix {
        Matrix {
            clean_passed,
            clean_violations: vec![],
            scenarios: vec!["first_download".into(), "gc_vs_reader".into()],
            mutants: killed
                .iter()
                .enumerate()
                .map(|(i, &k)| MutantRow {
                    mutant: format!("m{i}"),
                    killed: k,
                    killed_by: if k {
                        BTreeMap::from([(
                            "gc_vs_reader".to_string(),
                            vec!["reader_never_loses_model".to_string()],
                        )])
                    } else {
                        BTreeMap::new()
                    },
                    failed_tests: usize::from(k),
                })
                .collect(),
            interrupted: None,
        }
    }

    #[test]
    fn exit_0_only_when_clean_passes_and_every_mutant_is_killed() {
        assert_eq!(matrix(true, &[true, true]).exit_code(), EXIT_OK);
        assert_eq!(matrix(true, &[true, false]).exit_code(), EXIT_FAILED);
        assert_eq!(matrix(false, &[true, true]).exit_code(), EXIT_FAILED);
    }

    #[test]
    fn markdown_matrix_names_killing_invariants_and_survivors() {
        let text = matrix(true, &[true, false]).render(Format::Markdown);
        assert!(text.contains("FAIL: 1/2 mutants killed"), "{text}");
        assert!(text.contains("| m0 ") && text.contains("reader_never_loses_model"), "{text}");
        assert!(text.contains("SURVIVED"), "{text}");
        assert!(text.contains("| mutant | verdict     | first_download | gc_vs_reader "), "{text}");
    }
}
