//! `report.html`: one self-contained page per run directory (no script, no network: styles inline,
//! pictures inline SVG) for people to look at: the verdict, the invariant matrix (scenarios ×
//! invariants; violated cells carry their evidence), a timeline per scenario run (one row per process:
//! its phases, stops, signals and exit class, with the gate releases and faults of the server on the
//! same axis), latency histograms, benchmarks with their change against `--baseline`, flakes, the
//! mutant × scenario matrix of a `mutants` run, for nightly runs the soak windows (p50/p95/CV) and the
//! trend over earlier nightly runs, and for a record `shrink` reduced, the shrunk run's timeline next to
//! the original's ([`shrunk`]).
//!
//! The page is a minijinja template (`report.html.j2`, autoescaped); the pictures are drawn by plotters
//! ([`charts`]). Nothing here builds HTML or SVG by hand.

pub mod charts;
mod figures;
mod shrunk;
mod soak;
mod view;

use std::path::{Path, PathBuf};

use crate::aggregate::Aggregate;
use crate::errors::{Error, Result, one_line};
use crate::inputs::{self, Inputs};
use crate::mutants::Matrix;
use crate::rundir;

pub use view::{Page, page};

/// Name of the page in a run directory.
pub const FILE_NAME: &str = "report.html";

/// The template, compiled into the binary so the report needs no file next to it.
const TEMPLATE: &str = include_str!("report.html.j2");

/// How many earlier nightly runs the trend looks back on.
const TREND_RUNS: usize = 20;

/// Everything besides the aggregate a page can show.
#[derive(Default)]
pub struct Extras<'a> {
    /// The records, JUnit and run infos the aggregate was made of.
    pub inputs: Option<&'a Inputs>,
    /// `--baseline`: the benchmarks' changes are shown against it.
    pub baseline: Option<&'a Aggregate>,
    /// A `mutants` run's matrix.
    pub mutants: Option<&'a Matrix>,
    /// Nightly runs, oldest first, this one last: `(run dir name, its aggregate)`.
    pub nightly: Vec<(String, Aggregate)>,
}

/// Renders the page.
pub fn render(title: &str, agg: &Aggregate, extras: &Extras<'_>) -> Result<String> {
    let page = page(title, agg, extras);
    let mut env = minijinja::Environment::new();
    // The `.html` name turns on HTML autoescaping: evidence and stderr are shown as text, never markup.
    env.add_template("report.html", TEMPLATE).map_err(render_error)?;
    let template = env.get_template("report.html").map_err(render_error)?;
    template.render(minijinja::context! { page => page }).map_err(render_error)
}

fn render_error(e: minijinja::Error) -> Error {
    Error::Render { what: "report.html", message: one_line(&format!("{e:#}")) }
}

/// Writes `<run dir>/report.html` for a tier run or a `mutants` run: reads the run's records back,
/// its `mutants.json` if there is one, and for a nightly run the earlier nightly runs beside it.
pub fn write_for_run(run_dir: &Path, agg: &Aggregate, baseline: Option<&Aggregate>) -> Result<PathBuf> {
    let inputs = inputs::collect(&[run_dir.to_path_buf()])?;
    let mutants = read_matrix(run_dir)?;
    let nightly = if is_nightly(run_dir) { nightly_history(run_dir, agg) } else { Vec::new() };
    let extras = Extras { inputs: Some(&inputs), baseline, mutants: mutants.as_ref(), nightly };
    let title = run_dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let html = render(&title, agg, &extras)?;
    let path = run_dir.join(FILE_NAME);
    rundir::write(&path, &html)?;
    Ok(path)
}

/// `mutants.json` of a `mutants` run directory, if there is one.
fn read_matrix(run_dir: &Path) -> Result<Option<Matrix>> {
    let path = run_dir.join("mutants.json");
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|source| Error::io("cannot read", &path, source))?;
    serde_json::from_str(&text).map(Some).map_err(|e| Error::Parse {
        what: "mutants matrix",
        path,
        message: one_line(&e.to_string()),
    })
}

/// Whether the run in `run_dir` is a clean nightly tier run (its `run.json`).
fn is_nightly(run_dir: &Path) -> bool {
    rundir::read_info(&run_dir.join(rundir::RUN_INFO))
        .is_ok_and(|info| info.tier == "nightly" && info.mutant.is_none())
}

/// The nightly tier runs finished before this one that left a `report.json` (oldest first, by path:
/// run dirs are named `<label>-<UTC timestamp>`, `cargo xtask nightly` puts its tier run in
/// `nightly-<date>/tier`), the last [`TREND_RUNS`], with this run last. They are looked for one and two
/// levels below the `stress-cache` directory the run is in (else the run's parent).
fn nightly_history(run_dir: &Path, agg: &Aggregate) -> Vec<(String, Aggregate)> {
    let Some(parent) = run_dir.parent() else { return Vec::new() };
    let base = run_dir
        .ancestors()
        .skip(1)
        .find(|a| a.file_name().is_some_and(|n| n == "stress-cache"))
        .unwrap_or(parent);
    let subdirs = |dir: &Path| -> Vec<PathBuf> {
        std::fs::read_dir(dir)
            .map(|entries| entries.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect())
            .unwrap_or_default()
    };
    let mut dirs: Vec<PathBuf> = subdirs(base)
        .into_iter()
        .flat_map(|d| {
            let below = subdirs(&d);
            std::iter::once(d).chain(below)
        })
        .collect();
    dirs.retain(|d| d != run_dir);
    dirs.sort();
    let name_of = |d: &Path| d.strip_prefix(base).unwrap_or(d).display().to_string();
    let mut history: Vec<(String, Aggregate)> = dirs
        .iter()
        .filter(|d| is_nightly(d))
        .filter(|d| {
            rundir::read_info(&d.join(rundir::RUN_INFO)).is_ok_and(|i| i.state == rundir::RunState::Finished)
        })
        .filter_map(|d| Some((name_of(d), crate::aggregate::read(&d.join("report.json")).ok()?)))
        .collect();
    let skip = history.len().saturating_sub(TREND_RUNS - 1);
    history.drain(..skip);
    history.push((name_of(run_dir), agg.clone()));
    history
}

#[cfg(test)]
mod tests;
