//! The compact terminal output of a run, in the manner of nextest and cargo-deny: what went wrong
//! first (every violation with its evidence, setup errors, unstable tests, regressions), then one line
//! per scenario, then the summary. The full tables are `report.txt` and `--verbose`.
//!
//! Invariant: a red run's evidence is printed before anything that went right.

use comfy_table::presets::NOTHING;
use comfy_table::{Attribute, Cell, CellAlignment, Color, ContentArrangement, Table};

use crate::aggregate::Aggregate;
use crate::flakes::Verdict;

/// Columns the layout is made for when stdout is not a terminal (comfy-table measures a terminal).
const WIDTH: u16 = 80;

/// Renders the compact output of `agg`.
pub fn render_compact(agg: &Aggregate, color: bool) -> String {
    let mut out = String::new();
    // A checker that failed its own tests voids every verdict below: that comes first.
    if agg.self_check_failed()
        && let Some(check) = &agg.self_check
    {
        out.push_str(&format!("{}\n\n", check.line()));
    }
    for line in agg.interrupted.iter().chain(&agg.aborted) {
        out.push_str(&format!("{line}\n"));
    }
    let evidence = evidence_lines(agg);
    for line in &evidence {
        out.push_str(&paint(line, color));
        out.push('\n');
    }
    if !evidence.is_empty() || !agg.interrupted.is_empty() || !agg.aborted.is_empty() {
        out.push('\n');
    }
    out.push_str(&scenario_table(agg, color));
    out.push('\n');
    if let Some(check) = agg.self_check.as_ref().filter(|_| !agg.self_check_failed()) {
        out.push_str(&format!("{}\n", check.line()));
    }
    // One line, never wrapped: scripts and people grep for it.
    out.push_str(&paint(&crate::report::summary_line(agg), color && !agg.outcome().is_ok()));
    out.push('\n');
    out
}

/// Everything that keeps the run from passing, one item per violation, setup error, unstable test
/// and regression, each with its evidence on the next lines (indented).
fn evidence_lines(agg: &Aggregate) -> Vec<String> {
    let mut lines = Vec::new();
    for row in agg.invariants.iter().filter(|r| r.violated > 0) {
        let runs = row.held + row.violated;
        let mutant = row.mutant.as_deref().map(|m| format!(", mutant {m}")).unwrap_or_default();
        lines.push(format!(
            "VIOLATED {} in {} ({} of {runs} runs{mutant})",
            row.invariant, row.scenario, row.violated
        ));
        if let Some(evidence) = &row.evidence {
            lines.extend(wrap(evidence, usize::from(WIDTH) - 4).into_iter().take(6).map(|l| format!("    {l}")));
        }
    }
    for row in &agg.setup_errors {
        lines.push(format!("SETUP ERROR in {} (no verdict; record {})", row.scenario, row.record));
        for error in &row.setup_errors {
            lines.extend(wrap(error, usize::from(WIDTH) - 4).into_iter().take(4).map(|l| format!("    {l}")));
        }
    }
    for row in agg.unstable_tests() {
        let word = if row.verdict == Verdict::Flaky { "FLAKY" } else { "BROKEN" };
        lines.push(format!(
            "{word} {}: {} passed, {} failed, {} passed only on retry (output in the run's junit.xml)",
            row.test, row.passed, row.failed, row.flaky_on_retry
        ));
    }
    for r in &agg.regressions {
        lines.push(format!(
            "REGRESSED {} {}: {:.1} → {:.1} ({:+.0}%)",
            r.scenario, r.metric, r.baseline, r.current, r.change_pct
        ));
    }
    lines
}

fn scenario_table(agg: &Aggregate, color: bool) -> String {
    if agg.scenarios.is_empty() {
        return "(no scenario records)\n".to_string();
    }
    let mut table = Table::new();
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.load_preset(NOTHING).set_content_arrangement(ContentArrangement::Dynamic);
    if table.width().is_none() {
        table.set_width(WIDTH);
    }
    let with_mutant = agg.scenarios.iter().any(|l| l.mutant.is_some());
    let mut header = vec!["", "scenario"];
    if with_mutant {
        header.push("mutant");
    }
    header.extend(["runs", "held", "violated", "skipped", "slowest process"]);
    table.set_header(header.into_iter().map(|h| Cell::new(h).add_attribute(Attribute::Dim)));
    for line in &agg.scenarios {
        let mark = Cell::new(line.mark());
        let mark = match line.mark() {
            "✗" if color => mark.fg(Color::Red).add_attribute(Attribute::Bold),
            "✓" if color => mark.fg(Color::Green),
            _ => mark,
        };
        let mut runs = line.runs.to_string();
        if line.errors > 0 {
            runs.push_str(&format!(" ({} setup err)", line.errors));
        }
        if line.not_applicable > 0 {
            runs.push_str(&format!(" ({} n/a)", line.not_applicable));
        }
        let mut cells = vec![mark, Cell::new(&line.scenario)];
        if with_mutant {
            cells.push(Cell::new(line.mutant.as_deref().unwrap_or("-")));
        }
        let violated = Cell::new(line.violated).set_alignment(CellAlignment::Right);
        let violated =
            if color && line.violated > 0 { violated.fg(Color::Red).add_attribute(Attribute::Bold) } else { violated };
        let slowest = match &line.slowest {
            Some((ms, role)) => format!("{:.1} s {role}", ms / 1000.0),
            None => "-".to_string(),
        };
        cells.extend([
            Cell::new(runs).set_alignment(CellAlignment::Right),
            Cell::new(line.held).set_alignment(CellAlignment::Right),
            violated,
            Cell::new(line.skipped).set_alignment(CellAlignment::Right),
            Cell::new(slowest),
        ]);
        table.add_row(cells);
    }
    let mut text = table.to_string();
    text.push('\n');
    text
}

/// Red and bold on a colour terminal.
fn paint(line: &str, color: bool) -> String {
    if color && !line.starts_with(' ') { format!("\x1b[1;31m{line}\x1b[0m") } else { line.to_string() }
}

/// Greedy word wrap at `width` columns (a word longer than a line gets a line of its own).
fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for word in text.split_whitespace() {
        if !current.is_empty() && current.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut current));
        }
        if !current.is_empty() {
            current.push(' ');
        }
        current.push_str(word);
    }
    if !current.is_empty() {
        lines.push(current);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrapped_lines_fit_the_width_and_keep_every_word() {
        let text = "a violated invariant's evidence names files, hashes and pids that a maintainer reads";
        let lines = wrap(text, 30);
        assert!(lines.iter().all(|l| l.chars().count() <= 30), "{lines:?}");
        assert_eq!(lines.join(" "), text);
    }
}
