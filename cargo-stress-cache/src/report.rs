//! Rendering an [`Aggregate`] as terminal tables, markdown (for CI job summaries) or JSON.

use comfy_table::presets::{ASCII_MARKDOWN, UTF8_FULL_CONDENSED};
use comfy_table::{Attribute, Cell, Color, ContentArrangement, Table};

use crate::aggregate::Aggregate;
use crate::cli::Format;
use crate::flakes::TestStability;
use stress_cache_metadata::report::RunVerdict;

/// Renders the aggregate in `format`, without colours (files, pipes).
pub fn render(aggregate: &Aggregate, format: Format) -> String {
    render_with(aggregate, format, false)
}

/// Renders the aggregate in `format`; `color` highlights violations, flakes and regressions in
/// terminal tables (never in markdown or JSON).
pub fn render_with(aggregate: &Aggregate, format: Format, color: bool) -> String {
    match format {
        Format::Json => {
            // The verdict is derived, not stored; machines get it next to what it was derived from.
            #[derive(serde::Serialize)]
            struct WithVerdict<'a> {
                verdict: RunVerdict,
                #[serde(flatten)]
                aggregate: &'a Aggregate,
            }
            let with_verdict = WithVerdict { verdict: aggregate.verdict(), aggregate };
            // Serialising plain data cannot fail; an empty object keeps the output valid JSON regardless.
            let mut text = serde_json::to_string_pretty(&with_verdict).unwrap_or_else(|_| "{}".to_string());
            text.push('\n');
            text
        }
        Format::Table => render_tables(aggregate, false, color),
        Format::Markdown => render_tables(aggregate, true, false),
    }
}

fn new_table(markdown: bool, color: bool, header: Vec<&str>) -> Table {
    let mut table = Table::new();
    // Styling is decided by the caller (`--color`), not by comfy-table's own tty probe.
    if color {
        table.enforce_styling();
    } else {
        table.force_no_tty();
    }
    table.load_preset(if markdown { ASCII_MARKDOWN } else { UTF8_FULL_CONDENSED });
    if !markdown {
        table.set_content_arrangement(ContentArrangement::Dynamic);
    }
    table.set_header(header);
    table
}

fn heading(out: &mut String, markdown: bool, title: &str) {
    if markdown {
        out.push_str(&format!("### {title}\n\n"));
    } else {
        out.push_str(&format!("{title}\n"));
    }
}

/// The header of a table whose rows each name a scenario: `scenario`, then `mutant` only `with_mutant`
/// (some row ran with a seeded bug), then `rest`.
fn scenario_header<'a>(with_mutant: bool, rest: &[&'a str]) -> Vec<&'a str> {
    let mut header = vec!["scenario"];
    if with_mutant {
        header.push("mutant");
    }
    header.extend(rest);
    header
}

/// The first cells of a row under [`scenario_header`]: `scenario`, then the mutant (`-`: none) only
/// `with_mutant`.
fn scenario_cells(scenario: Cell, mutant: Option<&str>, with_mutant: bool) -> Vec<Cell> {
    let mut cells = vec![scenario];
    if with_mutant {
        cells.push(Cell::new(mutant.unwrap_or("-")));
    }
    cells
}

fn render_tables(agg: &Aggregate, markdown: bool, color: bool) -> String {
    let mut out = String::new();
    if markdown {
        out.push_str("## cargo stress-cache\n\n");
    }
    // A checker that failed its own tests makes everything below worthless: that comes first.
    let self_check = agg.self_check.as_ref().map(|c| c.line());
    if agg.self_check_failed() {
        out.push_str(&format!("{}\n\n", self_check.clone().unwrap_or_default()));
    }
    out.push_str(&summary_line(agg));
    out.push('\n');
    if let Some(line) = self_check.filter(|_| !agg.self_check_failed()) {
        out.push_str(&format!("{}{line}\n", if markdown { "\n" } else { "" }));
    }
    // What did not complete comes first: every table below is partial.
    for line in agg.interrupted.iter().chain(&agg.aborted).chain(&agg.harness_leaks) {
        out.push_str(&format!("{}{line}\n", if markdown { "- " } else { "" }));
    }
    out.push('\n');

    heading(&mut out, markdown, "Scenarios");
    let mut table = new_table(
        markdown,
        color,
        vec![
            "",
            "scenario",
            "mutant",
            "runs",
            "passed",
            "failed",
            "setup errors",
            "n/a",
            "held",
            "violated",
            "skipped",
            "slowest process",
        ],
    );
    for line in &agg.scenarios {
        let slowest = match &line.slowest {
            Some((ms, role)) => format!("{:.1} s {role}", ms / 1000.0),
            None => "-".to_string(),
        };
        table.add_row(vec![
            alarm(Cell::new(line.mark()), line.mark() == "✗", Color::Red),
            Cell::new(&line.scenario),
            Cell::new(line.mutant.as_deref().unwrap_or("-")),
            Cell::new(line.runs),
            Cell::new(line.passed),
            alarm(Cell::new(line.failed), line.failed > 0, Color::Red),
            alarm(Cell::new(line.errors), line.errors > 0, Color::Red),
            Cell::new(line.not_applicable),
            Cell::new(line.held),
            alarm(Cell::new(line.violated), line.violated > 0, Color::Red),
            Cell::new(line.skipped),
            Cell::new(slowest),
        ]);
    }
    push_table(&mut out, table, agg.scenarios.is_empty(), "no scenario records");

    heading(&mut out, markdown, "Invariants");
    let with_mutant = agg.invariants.iter().any(|r| r.mutant.is_some());
    let header = scenario_header(with_mutant, &["invariant", "held", "violated", "skipped", "evidence"]);
    let mut table = new_table(markdown, color, header);
    for row in &agg.invariants {
        let mut cells = scenario_cells(Cell::new(&row.scenario), row.mutant.as_deref(), with_mutant);
        let verdict = if row.violated > 0 { format!("{} VIOLATED", row.violated) } else { "0".to_string() };
        // A violation's evidence matters most; an invariant never checked says why.
        let note = match (&row.evidence, &row.skip_reason) {
            (Some(evidence), _) => evidence.clone(),
            (None, Some(reason)) if row.held == 0 => format!("not checked: {reason}"),
            _ => String::new(),
        };
        cells.extend([
            Cell::new(&row.invariant),
            Cell::new(row.held),
            alarm(Cell::new(verdict), row.violated > 0, Color::Red),
            Cell::new(row.skipped),
            Cell::new(escape(&truncate(&note, 80), markdown)),
        ]);
        table.add_row(cells);
    }
    push_table(&mut out, table, agg.invariants.is_empty(), "no scenario run passed or failed");

    heading(&mut out, markdown, "Setup errors (no verdict: the scenario could not set up what it checks)");
    let with_mutant = agg.setup_errors.iter().any(|r| r.mutant.is_some());
    let header =
        scenario_header(with_mutant, &["setup errors", "violations reported (not counted)", "record"]);
    let mut table = new_table(markdown, color, header);
    for row in &agg.setup_errors {
        let scenario = alarm(Cell::new(&row.scenario), true, Color::Red);
        let mut cells = scenario_cells(scenario, row.mutant.as_deref(), with_mutant);
        let uncounted =
            if row.violated_uncounted.is_empty() { "-".into() } else { row.violated_uncounted.join(", ") };
        cells.extend([
            Cell::new(escape(&truncate(&row.setup_errors.join("; "), 160), markdown)),
            Cell::new(uncounted),
            Cell::new(escape(&row.record, markdown)),
        ]);
        table.add_row(cells);
    }
    push_table(&mut out, table, agg.setup_errors.is_empty(), "none");

    if !agg.not_applicable.is_empty() {
        heading(&mut out, markdown, "Not applicable (checked nothing: neither a pass nor a failure)");
        let mut table = new_table(markdown, color, vec!["scenario", "mutant", "runs", "reason"]);
        for row in &agg.not_applicable {
            table.add_row(vec![
                Cell::new(&row.scenario),
                Cell::new(row.mutant.as_deref().unwrap_or("-")),
                Cell::new(row.runs),
                Cell::new(escape(&row.reason, markdown)),
            ]);
        }
        push_table(&mut out, table, false, "");
    }

    if !agg.findings.is_empty() {
        heading(
            &mut out,
            markdown,
            "Findings (not failures: what the target cannot do by design, and what it costs)",
        );
        let mut table = new_table(markdown, color, vec!["scenario", "mutant", "finding", "runs", "evidence"]);
        for row in &agg.findings {
            table.add_row(vec![
                Cell::new(&row.scenario),
                Cell::new(row.mutant.as_deref().unwrap_or("-")),
                alarm(Cell::new(&row.finding), true, Color::Yellow),
                Cell::new(row.runs),
                Cell::new(escape(&truncate(&row.evidence, 160), markdown)),
            ]);
        }
        push_table(&mut out, table, false, "");
    }

    heading(&mut out, markdown, "Benchmarks (medians over clean runs)");
    let mut table = new_table(
        markdown,
        color,
        vec!["scenario", "runs", "processes/s", "p50 ms", "p95 ms", "hit ratio", "bodies per model", "MB/s"],
    );
    for row in &agg.benchmarks {
        let regressed: Vec<&str> = agg
            .regressions
            .iter()
            .filter(|r| r.scenario == row.scenario)
            .map(|r| r.metric.as_str())
            .collect();
        let mark = |metric: &str, value: String| {
            if regressed.contains(&metric) {
                alarm(Cell::new(format!("{value} REGRESSED")), true, Color::Yellow)
            } else {
                Cell::new(value)
            }
        };
        let bodies =
            row.bodies_per_model.iter().map(|(m, n)| format!("{m}={n}")).collect::<Vec<_>>().join(" ");
        table.add_row(vec![
            Cell::new(&row.scenario),
            Cell::new(row.runs),
            mark("processes_per_sec", format!("{:.1}", row.processes_per_sec)),
            mark("latency_p50_ms", format!("{:.0}", row.latency_p50_ms)),
            mark("latency_p95_ms", format!("{:.0}", row.latency_p95_ms)),
            Cell::new(row.cache_hit_ratio.map(|r| format!("{r:.2}")).unwrap_or_else(|| "-".into())),
            Cell::new(if bodies.is_empty() { "-".to_string() } else { bodies }),
            mark("mb_per_sec", format!("{:.2}", row.mb_per_sec)),
        ]);
    }
    push_table(&mut out, table, agg.benchmarks.is_empty(), "no clean scenario runs");

    if !agg.regressions.is_empty() {
        heading(&mut out, markdown, "Regressions against the baseline");
        let mut table =
            new_table(markdown, color, vec!["scenario", "metric", "baseline", "current", "change"]);
        for r in &agg.regressions {
            table.add_row(vec![
                Cell::new(&r.scenario),
                Cell::new(&r.metric),
                Cell::new(format!("{:.1}", r.baseline)),
                Cell::new(format!("{:.1}", r.current)),
                Cell::new(format!("{:+.0}%", r.change_pct)),
            ]);
        }
        push_table(&mut out, table, false, "");
    }

    heading(&mut out, markdown, "Flakes");
    let mut table = new_table(markdown, color, vec!["test", "passed", "flaky on retry", "failed", "verdict"]);
    for row in &agg.flakes {
        let verdict = match row.verdict {
            TestStability::Stable => "stable".to_string(),
            other => other.as_str().to_uppercase(),
        };
        table.add_row(vec![
            Cell::new(&row.test),
            Cell::new(row.passed),
            Cell::new(row.flaky_on_retry),
            Cell::new(row.failed),
            alarm(
                Cell::new(verdict),
                row.verdict != TestStability::Stable,
                if row.verdict == TestStability::Broken { Color::Red } else { Color::Yellow },
            ),
        ]);
    }
    push_table(&mut out, table, agg.flakes.is_empty(), "no JUnit reports");
    out
}

fn push_table(out: &mut String, table: Table, empty: bool, empty_note: &str) {
    if empty {
        out.push_str(&format!("({empty_note})\n\n"));
    } else {
        out.push_str(&table.to_string());
        out.push_str("\n\n");
    }
}

/// One sentence saying whether the run passed, starting with the verdict.
pub fn summary_line(agg: &Aggregate) -> String {
    let unstable = agg.unstable_tests();
    let flaky = unstable.iter().filter(|f| f.verdict == TestStability::Flaky).count();
    let broken = unstable.len() - flaky;
    let o = &agg.outcomes;
    let mut line = format!(
        "{}: {} scenario runs ({} passed, {} failed, {} setup errors, {} not applicable), {} nextest runs; \
         {} invariant violations; {} tests stable, {flaky} flaky, {broken} broken; {} benchmark regressions",
        agg.verdict().as_str(),
        agg.records,
        o.passed,
        o.failed,
        o.error,
        o.not_applicable,
        agg.junit_reports,
        agg.violations(),
        agg.flakes.len() - unstable.len(),
        agg.regressions.len()
    );
    if agg.self_check_records > 0 {
        line.push_str(&format!(
            " ({} records of the suite's own seeded-bug self-checks left out; their tests' pass/fail counts)",
            agg.self_check_records
        ));
    }
    line
}

/// Cuts `s` to at most `max` bytes (on a character boundary), marking the cut.
fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_string();
    }
    let cut = (0..=max).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
    format!("{}...", &s[..cut])
}

/// Colours a cell that needs attention (only shown when the table's styling is on).
fn alarm(cell: Cell, on: bool, color: Color) -> Cell {
    if on { cell.fg(color).add_attribute(Attribute::Bold) } else { cell }
}

/// Pipes inside markdown cells would split the cell.
fn escape(s: &str, markdown: bool) -> String {
    if markdown { s.replace('|', "\\|") } else { s.to_string() }
}

/// Writes `report.txt`, `report.md` and `report.json` into a run directory.
pub fn write_all(dir: &std::path::Path, agg: &Aggregate) -> crate::errors::Result<()> {
    crate::rundir::write(&dir.join("report.txt"), &render(agg, Format::Table))?;
    crate::rundir::write(&dir.join("report.md"), &render(agg, Format::Markdown))?;
    Ok(crate::rundir::write(&dir.join("report.json"), &render(agg, Format::Json))?)
}
