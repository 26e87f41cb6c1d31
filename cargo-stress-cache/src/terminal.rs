//! The compact terminal output of a run, in the manner of nextest and cargo-deny: what went wrong
//! first (every violation with its evidence, setup errors, unstable tests, regressions), then a line
//! per scenario that did not pass and one for all that did, then the summary. The full tables, with a
//! line for every scenario, are `report.txt` and `--verbose`.
//!
//! Invariant: a red run's evidence is printed before anything that went right.

use crate::aggregate::Aggregate;
use crate::flakes::TestStability;
use crate::overview::ScenarioLine;

/// Columns the layout is made for.
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
    for line in agg.interrupted.iter().chain(&agg.aborted).chain(&agg.harness_leaks) {
        out.push_str(&format!("{line}\n"));
    }
    let evidence = evidence_lines(agg);
    for line in &evidence {
        out.push_str(&paint(line, color));
        out.push('\n');
    }
    if !evidence.is_empty()
        || !agg.interrupted.is_empty()
        || !agg.aborted.is_empty()
        || !agg.harness_leaks.is_empty()
    {
        out.push('\n');
    }
    out.push_str(&scenario_lines(agg, color));
    out.push('\n');
    if let Some(check) = agg.self_check.as_ref().filter(|_| !agg.self_check_failed()) {
        out.push_str(&format!("{}\n", check.line()));
    }
    // One line, never wrapped: scripts and people grep for it.
    out.push_str(&paint(&crate::report::summary_line(agg), color && crate::aggregate::outcome(agg).is_err()));
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
            lines.extend(
                wrap(evidence, usize::from(WIDTH) - 4).into_iter().take(6).map(|l| format!("    {l}")),
            );
        }
    }
    for row in &agg.setup_errors {
        lines.push(format!("SETUP ERROR in {} (no verdict; record {})", row.scenario, row.record));
        for error in &row.setup_errors {
            lines.extend(wrap(error, usize::from(WIDTH) - 4).into_iter().take(4).map(|l| format!("    {l}")));
        }
    }
    for row in agg.unstable_tests() {
        let word = if row.verdict == TestStability::Flaky { "FLAKY" } else { "BROKEN" };
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

/// Scenarios that did not pass get a line each (✗ failed or could not set up, - not applicable);
/// those that passed share one line of totals, as cargo-deny prints only what is wrong: a suite of 50
/// scenarios would otherwise fill the screen with green. Every scenario's own line is in `report.txt`
/// (and `-v`).
fn scenario_lines(agg: &Aggregate, color: bool) -> String {
    if agg.scenarios.is_empty() {
        return "(no scenario records)\n".to_string();
    }
    let mut out = String::new();
    let passed: Vec<&ScenarioLine> = agg.scenarios.iter().filter(|l| l.mark() == "✓").collect();
    if !passed.is_empty() {
        let sum = |f: fn(&ScenarioLine) -> usize| passed.iter().map(|l| f(l)).sum::<usize>();
        let slowest = passed
            .iter()
            .filter_map(|l| l.slowest.as_ref().map(|(ms, role)| (*ms, role, &l.scenario)))
            .max_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(ms, role, scenario)| {
                format!("; slowest process {:.1} s ({role}, {scenario})", ms / 1000.0)
            })
            .unwrap_or_default();
        let mark = if color { "\x1b[32m✓\x1b[0m" } else { "✓" };
        out.push_str(&format!(
            "{mark} {} scenarios passed in {} runs: {} invariant checks held, {} skipped (not observed){slowest}\n",
            passed.len(),
            sum(|l| l.runs),
            sum(|l| l.held),
            sum(|l| l.skipped),
        ));
    }
    for line in agg.scenarios.iter().filter(|l| l.mark() != "✓") {
        let mut text = describe(line);
        let reason =
            agg.not_applicable.iter().find(|n| n.scenario == line.scenario && n.mutant == line.mutant);
        if let Some(reason) = reason.filter(|_| line.passed + line.failed + line.errors == 0) {
            // Nothing was checked: the reason is all there is to say.
            text = format!("- {}: not applicable: {}", line.scenario, reason.reason);
        }
        out.push_str(&paint(&text, color && line.mark() == "✗"));
        out.push('\n');
    }
    out
}

/// One scenario's line: mark, name (and mutant), runs by outcome, invariant counts, slowest process.
pub fn describe(line: &ScenarioLine) -> String {
    let mutant = line.mutant.as_deref().map(|m| format!(" [mutant {m}]")).unwrap_or_default();
    let mut runs = Vec::new();
    for (n, word) in [
        (line.passed, "passed"),
        (line.failed, "failed"),
        (line.errors, "setup error"),
        (line.not_applicable, "not applicable"),
    ] {
        if n > 0 {
            runs.push(format!("{n} {word}"));
        }
    }
    let slowest = match &line.slowest {
        Some((ms, role)) => format!("; slowest {:.1} s {role}", ms / 1000.0),
        None => String::new(),
    };
    format!(
        "{} {}{mutant}: {} runs ({}); {} held, {} violated, {} skipped{slowest}",
        line.mark(),
        line.scenario,
        line.runs,
        runs.join(", "),
        line.held,
        line.violated,
        line.skipped
    )
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
