//! `report.html` of a real run, opened in a real browser (Debian's headless Chromium): a screenshot is
//! taken, and the page's DOM is checked: every scenario run has a timeline with one row per process of
//! its record, and a violated invariant is visible in the matrix with its evidence.
//!
//! The run directories under `tests/fixtures/` are real runs, copied as they were (records, JUnit,
//! run.json): `pr-run` from `cargo stress-cache --tier pr -E <a few scenarios>` and `no-lock-run` from
//! `cargo stress-cache --tier pr --mutant no-lock -E 'test(same_model_shared_cache)'` (see
//! `tests/fixtures/README.md`). The DOM is queried by Chromium itself: the test appends a script to a
//! copy of the page that writes what `querySelectorAll` found into a `<pre>`, and reads it from
//! `--dump-dom`. The report itself has no script.
//!
//! Without Chromium the test says so on stderr and passes only outside CI; with `CI` set (as `.ci/run`
//! has it, which installs Chromium) a missing browser fails.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use stress_cache_metadata::{ScenarioRecord, Status};

use crate::{run, stress_cache};

/// The browser, if installed: `$CHROMIUM`, else `chromium` on PATH.
fn chromium() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("CHROMIUM").filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| ["chromium", "chromium-browser"].map(|name| dir.join(name)))
        .find(|p| p.is_file())
}

/// Flags for a headless Chromium on a machine with no network: no background connections, a fresh
/// profile.
fn headless(chromium: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(chromium);
    cmd.args([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--hide-scrollbars",
    ])
    .arg(format!("--user-data-dir={}", profile.display()));
    cmd
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests").join("fixtures")
}

fn copy_tree(from: &Path, to: &Path) -> Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let dest = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_tree(&entry.path(), &dest)?;
        } else {
            std::fs::copy(entry.path(), &dest)?;
        }
    }
    Ok(())
}

/// The records of the run in `dir` started with `mutant` (records of other mutants are the suite's own
/// seeded-bug self-checks, which the report leaves out).
fn records_under(dir: &Path, mutant: Option<&str>, out: &mut Vec<ScenarioRecord>) -> Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            records_under(&path, mutant, out)?;
        } else if path.extension().is_some_and(|e| e == "json")
            && path.parent().and_then(Path::file_name).is_some_and(|n| n == "records")
        {
            let record: ScenarioRecord = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
            if record.mutant.as_deref() == mutant {
                out.push(record);
            }
        }
    }
    Ok(())
}

/// Walks the DOM in the browser and leaves the result, as JSON, in `<pre id="dom-check">`.
const DOM_CHECK: &str = r#"<script>
const out = { timelines: [], violated: [] };
for (const f of document.querySelectorAll('figure.timeline')) {
  const rows = [...f.querySelectorAll('svg text')].map(t => t.textContent.trim()).filter(t => /^#\d+ .+ pid \d+$/.test(t));
  const box = f.querySelector('svg').getBoundingClientRect();
  out.timelines.push({ scenario: f.dataset.scenario, declared: Number(f.dataset.processes), rows: rows.length,
                       width: box.width, height: box.height });
}
for (const td of document.querySelectorAll('#invariant-matrix td.violated')) {
  const style = getComputedStyle(td), box = td.getBoundingClientRect();
  out.violated.push({ scenario: td.parentElement.dataset.scenario, invariant: td.dataset.invariant, text: td.textContent,
                      title: td.title, background: style.backgroundColor,
                      visible: box.width > 0 && box.height > 0 && style.visibility === 'visible' && style.display !== 'none' });
}
const pre = document.createElement('pre');
pre.id = 'dom-check';
pre.textContent = JSON.stringify(out);
document.body.appendChild(pre);
</script>"#;

#[derive(serde::Deserialize, Debug)]
struct DomCheck {
    timelines: Vec<Timeline>,
    violated: Vec<ViolatedCell>,
}

#[derive(serde::Deserialize, Debug)]
struct Timeline {
    scenario: String,
    declared: usize,
    rows: usize,
    width: f64,
    height: f64,
}

#[derive(serde::Deserialize, Debug)]
struct ViolatedCell {
    scenario: String,
    invariant: String,
    text: String,
    title: String,
    background: String,
    visible: bool,
}

fn dom_check(chromium: &Path, page: &Path, work: &Path) -> Result<DomCheck> {
    let html = std::fs::read_to_string(page)?;
    let probe = work.join("report-dom-check.html");
    std::fs::write(&probe, html.replace("</body>", &format!("{DOM_CHECK}</body>")))?;
    let output = headless(chromium, &work.join("profile-dom"))
        .arg("--dump-dom")
        .arg(format!("file://{}", probe.display()))
        .output()
        .context("running chromium --dump-dom")?;
    let dom = String::from_utf8_lossy(&output.stdout);
    let Some(start) = dom.find("<pre id=\"dom-check\">") else {
        bail!(
            "no DOM check result in chromium's dump (exit {:?}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
    };
    let json = &dom[start + "<pre id=\"dom-check\">".len()..];
    let json = &json[..json.find("</pre>").context("unterminated <pre>")?];
    let json = json.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&");
    serde_json::from_str(&json).with_context(|| format!("DOM check result: {json}"))
}

#[test]
fn report_html_of_a_real_run_shows_every_process_on_a_timeline_and_the_violation_in_a_browser() -> Result<()>
{
    let Some(chromium) = chromium() else {
        if std::env::var_os("CI").is_some() {
            bail!(
                "chromium is not installed, and CI must run this test (.ci/run installs it: apt-get install chromium)"
            );
        }
        eprintln!(
            "SKIPPED report_html_..._in_a_browser: no chromium on PATH (install Debian's `chromium`; .ci/run does); \
             nothing was checked"
        );
        return Ok(());
    };
    // Kept under the target dir, so the screenshot can be looked at after the test.
    let work = Path::new(env!("CARGO_TARGET_TMPDIR")).join("browser-report");
    let _ = std::fs::remove_dir_all(&work);
    let (clean, mutant) = (work.join("pr-run"), work.join("no-lock-run"));
    copy_tree(&fixtures().join("pr-run"), &clean)?;
    copy_tree(&fixtures().join("no-lock-run"), &mutant)?;

    // The clean run's own report, and the merged one with the violation.
    let (code, _, stderr) = run(stress_cache(&["report", "--html"]).arg(&clean))?;
    assert_eq!(code, 0, "the clean fixture run passed: {stderr}");
    let (code, _, stderr) =
        run(stress_cache(&["report", "--html"]).arg(&clean).arg(&mutant).current_dir(&work))?;
    assert_eq!(code, 1, "the no-lock run violates an invariant: {stderr}");

    let mut records = Vec::new();
    records_under(&clean, None, &mut records)?;
    records_under(&mutant, Some("no-lock"), &mut records)?;
    let applicable: Vec<&ScenarioRecord> = records.iter().filter(|r| r.not_applicable.is_none()).collect();
    assert!(applicable.len() >= 3, "the fixtures hold real records: {}", records.len());

    for (page, expected) in [
        (clean.join("report.html"), applicable.iter().filter(|r| r.mutant.is_none()).count()),
        (work.join("report.html"), applicable.len()),
    ] {
        let checked = dom_check(&chromium, &page, &work)?;
        // Each record's timeline: one labelled row per process run of the record.
        let mut want: Vec<(String, usize)> = applicable
            .iter()
            .filter(|r| expected == applicable.len() || r.mutant.is_none())
            .map(|r| (r.scenario.clone(), r.process_runs.len()))
            .collect();
        let mut got: Vec<(String, usize)> =
            checked.timelines.iter().map(|t| (t.scenario.clone(), t.rows)).collect();
        want.sort();
        got.sort();
        assert_eq!(got, want, "{}: timelines (scenario, rows) against the records", page.display());
        for t in &checked.timelines {
            assert_eq!(t.rows, t.declared, "{t:?}");
            assert!(
                t.rows > 0 && t.width > 100.0 && t.height > 20.0 * t.rows as f64,
                "drawn, not empty: {t:?}"
            );
        }
    }

    // The violation: visible, red, with its evidence as the cell's title.
    let merged = dom_check(&chromium, &work.join("report.html"), &work)?;
    let violated_in_records: Vec<(String, String)> = records
        .iter()
        .filter(|r| r.setup_errors.is_empty())
        .flat_map(|r| {
            r.invariants
                .iter()
                .filter(|i| i.status == Status::Violated)
                .map(|i| (r.scenario.clone(), i.name.to_string()))
        })
        .collect();
    assert!(!violated_in_records.is_empty(), "the no-lock fixture holds a violation");
    for (scenario, invariant) in &violated_in_records {
        let cell = merged
            .violated
            .iter()
            .find(|c| &c.scenario == scenario && &c.invariant == invariant)
            .with_context(|| {
                format!("{scenario}: {invariant} not shown violated in {:?}", merged.violated)
            })?;
        assert!(cell.visible, "{cell:?}");
        assert!(cell.text.contains('✗'), "{cell:?}");
        assert!(!cell.title.is_empty(), "the evidence is the cell's tooltip: {cell:?}");
        assert_eq!(cell.background, "rgb(247, 198, 198)", "violated cells are red: {cell:?}");
    }

    // The screenshot, into the run dir of the merged report.
    let screenshot = work.join("report.png");
    let status = headless(&chromium, &work.join("profile-shot"))
        .arg(format!("--screenshot={}", screenshot.display()))
        .arg("--window-size=1400,2400")
        .arg(format!("file://{}", work.join("report.html").display()))
        .output()
        .context("running chromium --screenshot")?;
    let png = std::fs::read(&screenshot).with_context(|| {
        format!("no screenshot from chromium: {}", String::from_utf8_lossy(&status.stderr))
    })?;
    assert!(png.starts_with(b"\x89PNG") && png.len() > 10_000, "a real picture ({} bytes)", png.len());
    eprintln!("screenshot: {}", screenshot.display());
    Ok(())
}
