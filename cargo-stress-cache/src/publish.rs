//! The reports for people and CI systems, written after the tables: `report.html` (every run dir),
//! `stress-cache.junit.xml` (next to each repeat's nextest JUnit), and with `--github-summary` the
//! markdown tables in the job summary. Called from the run, `report` and `mutants` commands with one
//! line each.

use std::path::{Path, PathBuf};

use crate::aggregate::Aggregate;
use crate::cli::{Format, GlobalOpts};
use crate::errors::Result;
use crate::mutants::Matrix;
use crate::{github_summary, html_report, inputs, junit_invariants, report};

/// After a tier run: `report.html` and `stress-cache.junit.xml` in `run_dir`, and the job summary.
pub fn after_run(run_dir: &Path, agg: &Aggregate, global: &GlobalOpts) -> Result<()> {
    let baseline = global.baseline.as_deref().map(crate::aggregate::read).transpose()?;
    junit_invariants::write_all(&inputs::collect(&[run_dir.to_path_buf()])?)?;
    let html = html_report::write_for_run(run_dir, agg, baseline.as_ref())?;
    log::info!("report for people: {}", html.display());
    summary(&report::render(agg, Format::Markdown), global)
}

/// After `report DIR...`: with `--html`, `report.html` into the one DIR given (several DIRs: into the
/// current directory, as the merged report belongs to none of them); the job summary.
pub fn after_report(dirs: &[PathBuf], agg: &Aggregate, global: &GlobalOpts, html: bool) -> Result<()> {
    if html {
        let baseline = global.baseline.as_deref().map(crate::aggregate::read).transpose()?;
        let path = match dirs {
            [dir] => html_report::write_for_run(dir, agg, baseline.as_ref())?,
            _ => {
                let inputs = inputs::collect(dirs)?;
                let extras = html_report::Extras {
                    inputs: Some(&inputs),
                    baseline: baseline.as_ref(),
                    ..html_report::Extras::default()
                };
                let names: Vec<String> = dirs.iter().map(|d| d.display().to_string()).collect();
                let page = html_report::render(&names.join(" + "), agg, &extras)?;
                let path = PathBuf::from(html_report::FILE_NAME);
                crate::rundir::write(&path, &page)?;
                path
            }
        };
        log::info!("report for people: {}", path.display());
    }
    summary(&report::render(agg, Format::Markdown), global)
}

/// After `mutants`: the matrix in `report.html`, JUnit next to every run's records, the job summary.
pub fn after_mutants(run_dir: &Path, matrix: &Matrix, global: &GlobalOpts) -> Result<()> {
    let inputs = inputs::collect(&[run_dir.to_path_buf()])?;
    junit_invariants::write_all(&inputs)?;
    let agg = crate::aggregate::from_inputs(&inputs);
    let html = html_report::write_for_run(run_dir, &agg, None)?;
    log::info!("report for people: {}", html.display());
    summary(&matrix.render(Format::Markdown), global)
}

fn summary(markdown: &str, global: &GlobalOpts) -> Result<()> {
    if global.github_summary {
        let path = github_summary::append(markdown)?;
        log::info!("job summary written to {}", path.display());
    }
    Ok(())
}
