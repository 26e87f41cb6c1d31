//! How a run ends for its user: the reports written, the tables on stdout, the findings and notes on
//! stderr (even with `-q`), the artifacts path, and the verdict as the result.

use std::io::Write;

use crate::aggregate::Aggregate;
use crate::cli::{self, GlobalOpts};
use crate::errors::Result;
use crate::{publish, report, terminal};

/// Writes the reports, prints the tables to stdout and the verdict and artifacts path to stderr.
pub(crate) fn finish(agg: &Aggregate, run_dir: &std::path::Path, global: &GlobalOpts) -> Result<()> {
    report::write_all(run_dir, agg)?;
    publish::after_run(run_dir, agg, global)?;
    emit(&render_stdout(agg, global));
    log_findings(agg);
    if !agg.kept_dirs.is_empty() {
        log::warn!("temp dirs of failed scenarios kept in: {}", agg.kept_dirs.join(", "));
    }
    print_notes(agg);
    // The path is the one line every user needs, even with -q.
    stderr_line(&format!("stress-cache: artifacts in {}", run_dir.display()));
    // The summary line is the last line: printed by `main_with_args` when the verdict is not a pass.
    let outcome = crate::aggregate::outcome(agg);
    if outcome.is_ok() {
        log::info!("{}", report::summary_line(agg));
    }
    outcome
}

/// What stdout shows of a run: the compact overview on a terminal format, the full tables with
/// `--verbose` (and always in `report.txt`), or the requested machine format.
pub(crate) fn render_stdout(agg: &Aggregate, global: &GlobalOpts) -> String {
    let color = stdout_color(global.color);
    if global.format == cli::Format::Table && global.verbose == 0 {
        terminal::render_compact(agg, color)
    } else {
        report::render_with(agg, global.format, color)
    }
}

/// On stderr even with -q: a failed self-check (first: it voids every verdict), then the runs that did
/// not complete (every table is partial).
pub(crate) fn print_notes(agg: &Aggregate) {
    if let Some(check) = agg.self_check.as_ref().filter(|_| agg.self_check_failed()) {
        stderr_line(&format!("stress-cache: {}", check.line()));
    }
    for line in agg.interrupted.iter().chain(&agg.aborted).chain(&agg.harness_leaks) {
        stderr_line(&format!("stress-cache: {line}"));
    }
}

/// One stderr line per kind of finding, so a log alone says why a run did not pass.
pub(crate) fn log_findings(agg: &Aggregate) {
    let violated = agg.violated_names();
    if !violated.is_empty() {
        log::warn!("violated invariants: {}", violated.join("; "));
    }
    if !agg.setup_errors.is_empty() {
        let errors: Vec<String> = agg
            .setup_errors
            .iter()
            .map(|e| format!("{} ({})", e.scenario, e.setup_errors.join("; ")))
            .collect();
        log::warn!("scenario setup errors: {}", errors.join("; "));
    }
    let unstable: Vec<String> =
        agg.unstable_tests().iter().map(|f| format!("{} ({})", f.test, f.verdict.as_str())).collect();
    if !unstable.is_empty() {
        log::warn!("unstable tests: {}", unstable.join("; "));
    }
}

/// Writes one line to stderr. A closed stderr (`... | tee log`, whose tee a Ctrl-C ended too) must not
/// turn the end of a run into a panic — its clean-up and exit code matter more than the line.
pub(crate) fn stderr_line(line: &str) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}

/// Writes to stdout; a closed pipe (`| head`) is not an error worth reporting.
pub(crate) fn emit(text: &str) {
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes()).and_then(|()| out.flush());
}

/// Whether tables on stdout get colours.
pub(crate) fn stdout_color(choice: cli::Color) -> bool {
    use std::io::IsTerminal;
    match choice {
        cli::Color::Always => true,
        cli::Color::Never => false,
        cli::Color::Auto => std::io::stdout().is_terminal() && std::env::var_os("NO_COLOR").is_none(),
    }
}
