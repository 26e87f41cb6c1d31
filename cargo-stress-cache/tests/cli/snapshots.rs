//! The report's text forms, snapshot-tested with insta over real runs (`tests/fixtures/`): the compact
//! terminal output, the full tables of `report.txt` and the markdown job summary. A change to any of
//! them shows up as a reviewable diff (`cargo insta review`), not as a silently different screen.

use std::path::Path;

use anyhow::Result;
use cargo_stress_cache::aggregate;
use cargo_stress_cache::cli::Format;
use cargo_stress_cache::{inputs, report, terminal};
use stress_cache_metadata::report::Aggregate;

fn aggregate_of(fixture: &str) -> Result<Aggregate> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures").join(fixture);
    let mut agg = aggregate::from_inputs(&inputs::collect(&[dir])?);
    // Where the checkout lives is not part of the report's form.
    agg.kept_dirs.clear();
    Ok(agg)
}

/// Record paths name the checkout; the snapshot keeps the part inside the fixture.
fn portable(text: String) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures");
    text.replace(&format!("{}/", root.display()), "")
}

#[test]
fn a_green_run_prints_one_line_for_what_passed_and_the_verdict_last() -> Result<()> {
    let agg = aggregate_of("pr-run")?;
    insta::assert_snapshot!("green_compact", portable(terminal::render_compact(&agg, false)));
    Ok(())
}

#[test]
fn a_red_run_prints_every_violation_with_its_evidence_first() -> Result<()> {
    let agg = aggregate_of("no-lock-run")?;
    let text = portable(terminal::render_compact(&agg, false));
    assert!(text.starts_with("VIOLATED "), "{text}");
    insta::assert_snapshot!("red_compact", text);
    Ok(())
}

#[test]
fn the_full_tables_and_the_markdown_summary_keep_their_form() -> Result<()> {
    let agg = aggregate_of("no-lock-run")?;
    insta::assert_snapshot!("red_tables", portable(report::render(&agg, Format::Table)));
    insta::assert_snapshot!("red_markdown", portable(report::render(&agg, Format::Markdown)));
    Ok(())
}
