//! What the page shows, as plain serialisable data for the template: every decision about content
//! (which cell is violated, which delta is worse, which records get a timeline) is made here, in Rust,
//! where it is tested; the template only lays it out.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::Serialize;
use stress_cache_metadata::{EventKind, ScenarioOutcome, ScenarioRecord, Status};

use super::Extras;
use super::charts;
use super::figures::{BenchmarkView, ChartView, HistogramView, benchmarks, histograms, trend};
use crate::aggregate::Aggregate;
use crate::kills::CellStatus;
use crate::mutants::{self, Matrix};
use crate::report::summary_line;

/// Above this many records (a `mutants` run holds one tier per mutant), only the records that failed or
/// errored get a timeline: a page with hundreds of timelines is not read.
pub const MAX_TIMELINES: usize = 120;

/// The page.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The run directory's name.
    pub title: String,
    /// `PASS`, `FAIL`, `ERROR`, `INTERRUPTED`.
    pub verdict: &'static str,
    /// The summary line (starts with the verdict).
    pub summary: String,
    /// The self-check line, and the runs that did not complete.
    pub notes: Vec<String>,
    /// Scenarios × invariants.
    pub matrix: MatrixView,
    /// Every violated invariant of every record, with all its evidence.
    pub violations: Vec<ViolationView>,
    /// Scenario runs whose setup failed.
    pub setup_errors: Vec<SetupErrorView>,
    /// Scenarios that do not apply, and why.
    pub not_applicable: Vec<(String, String)>,
    /// One per scenario run that gets a timeline.
    pub runs: Vec<RunView>,
    /// Why some records have no timeline, if some do not.
    pub timelines_note: Option<String>,
    /// Phases and markers the timelines use, with their colours.
    pub legend: Vec<LegendEntry>,
    /// Latency histograms, one per scenario (and mutant).
    pub histograms: Vec<HistogramView>,
    /// Benchmarks, with deltas when a baseline was given.
    pub benchmarks: Vec<BenchmarkView>,
    /// Whether `--baseline` was given.
    pub has_baseline: bool,
    /// Per-test stability.
    pub flakes: Vec<FlakeView>,
    /// The mutant × scenario matrix of a `mutants` run.
    pub mutants: Option<MutantsView>,
    /// The soak figures of the run's soak records (nightly), window by window.
    pub soak: Vec<super::soak::SoakView>,
    /// Nightly trend, one chart per scenario.
    pub trend: Vec<ChartView>,
    /// The nightly runs the trend covers, oldest first.
    pub trend_runs: Vec<String>,
    /// Minimal runs `shrink` saved beside records of this run, each next to its original.
    pub shrunk: Vec<super::shrunk::ShrunkView>,
}

/// The invariant matrix.
#[derive(Debug, Serialize)]
pub struct MatrixView {
    /// Invariant names (columns), in check order of first appearance.
    pub invariants: Vec<String>,
    /// One row per scenario (and mutant).
    pub rows: Vec<MatrixRow>,
}

/// A row of the matrix.
#[derive(Debug, Serialize)]
pub struct MatrixRow {
    /// Scenario.
    pub scenario: String,
    /// Mutant, if any.
    pub mutant: Option<String>,
    /// One per column.
    pub cells: Vec<MatrixCell>,
}

/// A cell of the matrix.
#[derive(Debug, Serialize)]
pub struct MatrixCell {
    /// `held`, `violated`, `skipped` (never checked in any run), `absent` (not reported).
    pub status: &'static str,
    /// What the cell shows.
    pub text: String,
    /// Evidence of a violation, the reason of a skip (the tooltip).
    pub detail: String,
}

/// A violated invariant in one record.
#[derive(Debug, Serialize)]
pub struct ViolationView {
    /// Scenario (and mutant).
    pub scenario: String,
    /// Invariant.
    pub invariant: String,
    /// Every evidence line.
    pub evidence: Vec<String>,
    /// The record file.
    pub record: String,
}

/// A scenario run whose setup failed.
#[derive(Debug, Serialize)]
pub struct SetupErrorView {
    /// Scenario (and mutant).
    pub scenario: String,
    /// Its setup errors.
    pub errors: Vec<String>,
}

/// One scenario run's timeline.
#[derive(Debug, Serialize)]
pub struct RunView {
    /// Anchor id.
    pub id: String,
    /// Scenario name.
    pub scenario: String,
    /// Mutant, if any.
    pub mutant: Option<String>,
    /// Where the record is (repeat dir), to tell repeats apart.
    pub record: String,
    /// `passed`, `failed`, `error`, `not-applicable`.
    pub outcome: &'static str,
    /// Rows of the timeline (processes, recovery and earlier phases included).
    pub processes: usize,
    /// Events on the timeline by kind, e.g. `2 sigkill, 1 gate-release`.
    pub events: String,
    /// The SVG (or the error that stopped it from being drawn).
    pub svg: Svg,
}

/// A picture, or why there is none.
#[derive(Debug, Serialize)]
pub struct Svg {
    /// The SVG document.
    pub markup: Option<String>,
    /// The drawing error.
    pub error: Option<String>,
}

impl From<Result<String, charts::ChartError>> for Svg {
    fn from(drawn: Result<String, charts::ChartError>) -> Self {
        match drawn {
            Ok(svg) => Svg { markup: Some(svg), error: None },
            Err(e) => Svg { markup: None, error: Some(e.to_string()) },
        }
    }
}

/// A legend entry.
#[derive(Debug, Serialize)]
pub struct LegendEntry {
    /// What it stands for.
    pub label: String,
    /// CSS colour.
    pub color: String,
    /// `bar`, `marker` or `line`.
    pub shape: &'static str,
}

/// A flakes row.
#[derive(Debug, Serialize)]
pub struct FlakeView {
    /// Test.
    pub test: String,
    /// Passed first time.
    pub passed: usize,
    /// Passed on retry.
    pub flaky_on_retry: usize,
    /// Failed.
    pub failed: usize,
    /// `stable`, `flaky`, `broken`.
    pub verdict: &'static str,
}

/// The mutant × scenario matrix.
#[derive(Debug, Serialize)]
pub struct MutantsView {
    /// Its summary line.
    pub summary: String,
    /// Scenario columns.
    pub columns: Vec<String>,
    /// The clean build's row.
    pub clean: Vec<String>,
    /// One per mutant.
    pub rows: Vec<MutantRowView>,
}

/// A mutant's row.
#[derive(Debug, Serialize)]
pub struct MutantRowView {
    /// Mutant.
    pub mutant: String,
    /// Its class.
    pub class: &'static str,
    /// Expected killers.
    pub expected: String,
    /// `(text, css class)` per column.
    pub cells: Vec<(String, &'static str)>,
}

/// Builds the page from the aggregate and the extras.
pub fn page(title: &str, agg: &Aggregate, extras: &Extras<'_>) -> Page {
    let mut notes: Vec<String> = agg.self_check.iter().map(|c| c.line()).collect();
    notes.extend(agg.interrupted.iter().chain(&agg.aborted).cloned());
    let records: Vec<(&Path, &ScenarioRecord)> =
        extras.inputs.map(|i| i.records.iter().map(|(p, r)| (p.as_path(), r)).collect()).unwrap_or_default();
    let (runs, timelines_note) = run_views(&records);
    // A mutants run's verdict is its matrix's: the mutants' violations are what it wants to see.
    let (verdict, summary) = match extras.mutants {
        Some(m) => (m.verdict_word(), m.summary_line()),
        None => (agg.verdict().as_str(), summary_line(agg)),
    };
    Page {
        title: title.to_string(),
        verdict,
        summary,
        notes,
        matrix: matrix(agg),
        violations: violations(&records),
        setup_errors: agg
            .setup_errors
            .iter()
            .map(|e| SetupErrorView {
                scenario: with_mutant(&e.scenario, &e.mutant),
                errors: e.setup_errors.clone(),
            })
            .collect(),
        not_applicable: agg
            .not_applicable
            .iter()
            .map(|n| (with_mutant(&n.scenario, &n.mutant), n.reason.clone()))
            .collect(),
        legend: legend(&records),
        runs,
        timelines_note,
        histograms: histograms(&records),
        benchmarks: benchmarks(agg, extras.baseline),
        has_baseline: extras.baseline.is_some(),
        flakes: agg
            .flakes
            .iter()
            .map(|f| FlakeView {
                test: f.test.clone(),
                passed: f.passed,
                flaky_on_retry: f.flaky_on_retry,
                failed: f.failed,
                verdict: f.verdict.as_str(),
            })
            .collect(),
        mutants: extras.mutants.map(mutants_view),
        soak: super::soak::soak_views(&records),
        trend: trend(&extras.nightly),
        trend_runs: extras.nightly.iter().map(|(name, _)| name.clone()).collect(),
        shrunk: super::shrunk::views(extras.inputs),
    }
}

pub(super) fn with_mutant(scenario: &str, mutant: &Option<String>) -> String {
    match mutant {
        Some(m) => format!("{scenario} [mutant {m}]"),
        None => scenario.to_string(),
    }
}

/// The matrix from the aggregate's invariant rows (only runs that passed or failed count there).
fn matrix(agg: &Aggregate) -> MatrixView {
    let mut invariants: Vec<String> = Vec::new();
    for row in &agg.invariants {
        if !invariants.contains(&row.invariant) {
            invariants.push(row.invariant.clone());
        }
    }
    let mut rows: Vec<MatrixRow> = Vec::new();
    for row in &agg.invariants {
        let index = match rows.iter().position(|r| r.scenario == row.scenario && r.mutant == row.mutant) {
            Some(i) => i,
            None => {
                rows.push(MatrixRow {
                    scenario: row.scenario.clone(),
                    mutant: row.mutant.clone(),
                    cells: invariants
                        .iter()
                        .map(|_| MatrixCell { status: "absent", text: String::new(), detail: String::new() })
                        .collect(),
                });
                rows.len() - 1
            }
        };
        let column = invariants.iter().position(|i| *i == row.invariant).unwrap_or(0);
        let runs = row.held + row.violated + row.skipped;
        rows[index].cells[column] = if row.violated > 0 {
            MatrixCell {
                status: "violated",
                text: format!("✗ {}/{runs}", row.violated),
                detail: row.evidence.clone().unwrap_or_default(),
            }
        } else if row.held > 0 {
            let skipped = if row.skipped > 0 { format!(" ({} skipped)", row.skipped) } else { String::new() };
            MatrixCell { status: "held", text: format!("✓ {}{skipped}", row.held), detail: String::new() }
        } else {
            MatrixCell {
                status: "skipped",
                text: "skipped".into(),
                detail: row.skip_reason.clone().unwrap_or_default(),
            }
        };
    }
    MatrixView { invariants, rows }
}

fn violations(records: &[(&Path, &ScenarioRecord)]) -> Vec<ViolationView> {
    records
        .iter()
        .filter(|(_, r)| r.outcome() == ScenarioOutcome::Failed)
        .flat_map(|(path, r)| {
            r.invariants.iter().filter(|i| i.status == Status::Violated).map(move |i| ViolationView {
                scenario: with_mutant(&r.scenario, &r.mutant),
                invariant: i.name.to_string(),
                evidence: i.evidence.clone(),
                record: path.display().to_string(),
            })
        })
        .collect()
}

/// A timeline per record (only failed and errored ones beyond [`MAX_TIMELINES`] records).
fn run_views(records: &[(&Path, &ScenarioRecord)]) -> (Vec<RunView>, Option<String>) {
    let too_many = records.len() > MAX_TIMELINES;
    let mut sorted: Vec<&(&Path, &ScenarioRecord)> = records
        .iter()
        .filter(|(_, r)| r.not_applicable.is_none())
        .filter(|(_, r)| !too_many || matches!(r.outcome(), ScenarioOutcome::Failed | ScenarioOutcome::Error))
        .collect();
    sorted.sort_by(|a, b| (&a.1.mutant, &a.1.scenario, a.0).cmp(&(&b.1.mutant, &b.1.scenario, b.0)));
    let note = too_many.then(|| {
        format!(
            "{} records: timelines are shown only for the {} scenario runs that failed or had a setup error",
            records.len(),
            sorted.len()
        )
    });
    let views = sorted
        .into_iter()
        .enumerate()
        .map(|(i, (path, r))| {
            let mut kinds: BTreeMap<&str, usize> = BTreeMap::new();
            for e in &r.events {
                *kinds.entry(e.kind.as_str()).or_default() += 1;
            }
            RunView {
                id: format!("run-{i}"),
                scenario: r.scenario.clone(),
                mutant: r.mutant.clone(),
                record: short_record_path(path),
                outcome: r.outcome().as_str(),
                processes: r.process_runs.len(),
                events: kinds.iter().map(|(k, n)| format!("{n} {k}")).collect::<Vec<_>>().join(", "),
                svg: charts::timeline(r).into(),
            }
        })
        .collect();
    (views, note)
}

/// `repeat-1/records/x.json` rather than the absolute path.
fn short_record_path(path: &Path) -> String {
    let parts: Vec<String> = path.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    let keep = parts.len().saturating_sub(4);
    parts[keep..].join("/")
}

fn legend(records: &[(&Path, &ScenarioRecord)]) -> Vec<LegendEntry> {
    let css = |c: plotters::style::RGBColor| format!("#{:02x}{:02x}{:02x}", c.0, c.1, c.2);
    let phases: BTreeSet<&str> = records
        .iter()
        .flat_map(|(_, r)| r.process_runs.iter().flat_map(|p| p.phases.iter().map(|ph| ph.name.as_str())))
        .collect();
    let classes: BTreeSet<&str> =
        records.iter().flat_map(|(_, r)| r.process_runs.iter().map(|p| p.class.as_str())).collect();
    let events: BTreeSet<EventKind> =
        records.iter().flat_map(|(_, r)| r.events.iter().map(|e| e.kind)).collect();
    let mut entries: Vec<LegendEntry> = phases
        .into_iter()
        .map(|p| LegendEntry {
            label: format!("phase {p}"),
            color: css(charts::phase_color(p)),
            shape: "bar",
        })
        .collect();
    entries.extend(classes.into_iter().map(|c| LegendEntry {
        label: format!("exit: {c}"),
        color: css(charts::class_color(c)),
        shape: "marker",
    }));
    entries.extend(events.into_iter().map(|k| LegendEntry {
        label: match k {
            EventKind::GateRelease => "server: gate released".to_string(),
            EventKind::Fault => "server: fault served".to_string(),
            other => format!("harness: {}", other.as_str()),
        },
        color: css(charts::event_color(k)),
        shape: if matches!(k, EventKind::GateRelease | EventKind::Fault) { "line" } else { "marker" },
    }));
    entries
}

fn mutants_view(matrix: &Matrix) -> MutantsView {
    let columns = matrix.columns();
    MutantsView {
        summary: matrix.summary_line(),
        clean: columns.iter().map(|s| matrix.clean_cell(s)).collect(),
        rows: matrix
            .mutants
            .iter()
            .map(|row| MutantRowView {
                mutant: row.mutant.clone(),
                class: row.class.as_str(),
                expected: row.expected.join(", "),
                cells: columns
                    .iter()
                    .map(|s| {
                        let class = match row.cells.get(s).map(|c| c.status) {
                            Some(CellStatus::Killed) => "killed",
                            Some(CellStatus::FlakyKill) => "flaky",
                            Some(CellStatus::NotActive) => "not-active",
                            Some(CellStatus::Error) => "error",
                            Some(CellStatus::Survived) | None => "survived",
                        };
                        (mutants::cell_text(row, s), class)
                    })
                    .collect(),
            })
            .collect(),
        columns,
    }
}
