use std::collections::BTreeMap;
use std::path::PathBuf;

use stress_cache_metadata::{
    EventKind, Figures, InvariantResult, Phase, ProcessRun, RECORD_SCHEMA_VERSION, ScenarioRecord,
    TimelineEvent,
};

use super::*;
use crate::benchmarks::BenchmarkRow;

fn process(index: usize, role: &str, pid: u32, start: u64, wall_ms: f64, class: &str) -> ProcessRun {
    ProcessRun {
        index,
        role: role.into(),
        pid,
        exit_code: (class == "ok").then_some(0),
        signal: (class == "crashed").then_some(9),
        class: class.into(),
        wall_ms,
        peak_rss_kb: None,
        phases: vec![
            Phase { name: "lock_wait".into(), start_unix_ms: start, end_unix_ms: start + 10 },
            Phase { name: "download".into(), start_unix_ms: start + 10, end_unix_ms: start + 40 },
        ],
        stderr_tail: String::new(),
        started_unix_ms: Some(start),
    }
}

fn record(scenario: &str, invariants: Vec<InvariantResult>, processes: usize) -> ScenarioRecord {
    let start = 1_700_000_000_000;
    ScenarioRecord {
        schema_version: RECORD_SCHEMA_VERSION,
        scenario: scenario.into(),
        tier: "pr".into(),
        seed: 1,
        mutant: None,
        target: "beaker".into(),
        processes,
        started_unix_ms: start,
        outcomes: BTreeMap::new(),
        invariants,
        figures: Figures {
            processes_per_sec: 10.0,
            latency_p50_ms: 50.0,
            latency_p95_ms: 80.0,
            ..Figures::default()
        },
        process_runs: (0..processes)
            .map(|i| {
                let class = if i == 1 { "crashed" } else { "ok" };
                process(i, "writer", 1000 + i as u32, start, 50.0 + i as f64, class)
            })
            .collect(),
        kept_dir: None,
        setup_errors: vec![],
        not_applicable: None,
        mutant_active: None,
        findings: vec![],
        events: vec![
            TimelineEvent {
                unix_ms: start + 20,
                kind: EventKind::GateRelease,
                pid: None,
                detail: "gate g".into(),
            },
            TimelineEvent {
                unix_ms: start + 30,
                kind: EventKind::Sigkill,
                pid: Some(1001),
                detail: "crash".into(),
            },
        ],
        crash_states: None,
        plan: None,
        soak: None,
        scale: None,
    }
}

fn inputs(records: Vec<ScenarioRecord>) -> Inputs {
    let records = records
        .into_iter()
        .enumerate()
        .map(|(i, r)| (PathBuf::from(format!("/run/repeat-1/records/{i}.json")), r));
    Inputs { records: records.collect(), ..Inputs::default() }
}

fn violated_run() -> Inputs {
    inputs(vec![
        record(
            "same_model_shared_cache",
            vec![
                InvariantResult::checked("single_final_artifact", vec![]),
                InvariantResult::checked(
                    "writer_holds_exclusive_lock",
                    vec!["pid 1003 wrote small.onnx.partial <holding no lock>".into()],
                ),
                InvariantResult::skipped("published_durably", "the target does not promise durability"),
            ],
            4,
        ),
        record("crash_at_publish", vec![InvariantResult::checked("single_final_artifact", vec![])], 2),
    ])
}

#[test]
fn a_violated_cell_carries_its_evidence_and_a_skipped_one_is_never_held() {
    let inputs = violated_run();
    let agg = crate::aggregate::from_inputs(&inputs);
    let page = page("t", &agg, &Extras { inputs: Some(&inputs), ..Extras::default() });
    assert_eq!(page.verdict, "FAIL");
    let row = page.matrix.rows.iter().find(|r| r.scenario == "same_model_shared_cache").expect("row");
    let cell = |name: &str| {
        let column = page.matrix.invariants.iter().position(|i| i == name).expect("column");
        &row.cells[column]
    };
    assert_eq!(cell("writer_holds_exclusive_lock").status, "violated");
    assert_eq!(
        cell("writer_holds_exclusive_lock").detail,
        "pid 1003 wrote small.onnx.partial <holding no lock>"
    );
    assert_eq!(cell("published_durably").status, "skipped");
    assert_eq!(cell("published_durably").detail, "the target does not promise durability");
    assert_eq!(cell("single_final_artifact").status, "held");
    // The other scenario never reported these invariants: absent, not held.
    let other = page.matrix.rows.iter().find(|r| r.scenario == "crash_at_publish").expect("row");
    assert_eq!(other.cells.iter().filter(|c| c.status == "absent").count(), 2);
}

#[test]
fn every_record_gets_a_timeline_with_one_labelled_row_per_process_and_its_markers() {
    let inputs = violated_run();
    let agg = crate::aggregate::from_inputs(&inputs);
    let html = render("t", &agg, &Extras { inputs: Some(&inputs), ..Extras::default() }).expect("renders");
    let figures: Vec<&str> = html.split("<figure class=\"timeline\"").skip(1).collect();
    assert_eq!(figures.len(), 2, "one timeline per record");
    for (figure, processes) in figures.iter().zip([2, 4]) {
        let figure = figure.split("</figure>").next().unwrap_or_default();
        assert!(figure.contains(&format!("data-processes=\"{processes}\"")), "{figure}");
        for row in 0..processes {
            let label = format!("#{row} writer pid {}", 1000 + row);
            assert!(figure.contains(&label), "row {label} missing from the SVG");
        }
        assert!(figure.contains("<svg"), "drawn as SVG");
        assert!(figure.contains("crashed"), "the crashed process's exit class is written on its row");
    }
    assert!(
        html.contains("server: gate released") && html.contains("harness: sigkill"),
        "legend names the markers"
    );
}

#[test]
fn evidence_is_escaped_and_the_page_needs_no_network_or_script() {
    let inputs = violated_run();
    let agg = crate::aggregate::from_inputs(&inputs);
    let html = render("t", &agg, &Extras { inputs: Some(&inputs), ..Extras::default() }).expect("renders");
    assert!(html.contains("&lt;holding no lock&gt;"), "evidence shown as text");
    assert!(!html.contains("<holding no lock>"));
    assert!(!html.contains("<script"), "no script");
    for reference in ["src=\"http", "href=\"http", "url(http", "@import"] {
        assert!(!html.contains(reference), "no external resource ({reference})");
    }
}

fn bench(scenario: &str, pps: f64, p95: f64) -> BenchmarkRow {
    BenchmarkRow {
        scenario: scenario.into(),
        runs: 1,
        processes_per_sec: pps,
        latency_p50_ms: 50.0,
        latency_p95_ms: p95,
        cache_hit_ratio: None,
        bodies_per_model: BTreeMap::new(),
        mb_per_sec: 0.0,
    }
}

#[test]
fn benchmark_deltas_say_better_worse_or_regressed_by_the_metrics_direction() {
    let baseline = Aggregate { benchmarks: vec![bench("s", 100.0, 100.0)], ..Aggregate::default() };
    let mut agg = Aggregate { benchmarks: vec![bench("s", 110.0, 150.0)], ..Aggregate::default() };
    crate::aggregate::compare_with(&mut agg, &baseline, 20.0, false);
    let page = page("t", &agg, &Extras { baseline: Some(&baseline), ..Extras::default() });
    let figures = &page.benchmarks[0].figures;
    assert_eq!((figures[0].delta.as_deref(), figures[0].trend), (Some("+10%"), "better"), "more processes/s");
    assert_eq!((figures[1].delta.as_deref(), figures[1].trend), (Some("+0%"), "same"));
    assert_eq!(
        (figures[2].delta.as_deref(), figures[2].trend),
        (Some("+50%"), "regressed"),
        "p95 beyond 20%"
    );
    let without = page_without_baseline(&agg);
    assert!(without.benchmarks[0].figures.iter().all(|f| f.delta.is_none()));
}

fn page_without_baseline(agg: &Aggregate) -> Page {
    page("t", agg, &Extras::default())
}

#[test]
fn the_nightly_trend_reads_earlier_finished_nightly_runs_beside_the_run() {
    let parent = tempfile::tempdir().expect("tempdir");
    let write_run = |name: &str, tier: &str, state: &str, pps: f64| {
        let dir = parent.path().join(name);
        std::fs::create_dir_all(&dir).unwrap();
        let info = serde_json::json!({
            "tier": tier, "mutant": null, "repeat": 1, "partition": null, "filtersets": [], "state": state
        });
        std::fs::write(dir.join("run.json"), info.to_string()).unwrap();
        let agg = Aggregate { benchmarks: vec![bench("warm_hits", pps, 10.0)], ..Aggregate::default() };
        std::fs::write(dir.join("report.json"), serde_json::to_string(&agg).unwrap()).unwrap();
        dir
    };
    write_run("nightly-20260101T000000Z", "nightly", "finished", 10.0);
    write_run("nightly-20260102T000000Z", "nightly", "interrupted", 99.0);
    write_run("pr-20260102T000000Z", "pr", "finished", 99.0);
    write_run("nightly-20260103T000000Z", "nightly", "finished", 12.0);
    let this = write_run("nightly-20260104T000000Z", "nightly", "running", 14.0);
    let agg = Aggregate { benchmarks: vec![bench("warm_hits", 14.0, 10.0)], ..Aggregate::default() };
    let history = nightly_history(&this, &agg);
    let names: Vec<&str> = history.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["nightly-20260101T000000Z", "nightly-20260103T000000Z", "nightly-20260104T000000Z"]);
    let page = page("t", &agg, &Extras { nightly: history, ..Extras::default() });
    assert_eq!(page.trend.len(), 1);
    assert!(page.trend[0].svg.markup.as_deref().is_some_and(|s| s.contains("<svg")));
}

#[test]
fn a_mutants_page_shows_the_matrix_and_takes_its_verdict_from_it() {
    use std::collections::BTreeSet;

    use crate::kills::{Cell, CellStatus, MutantClass, MutantRow};
    use stress_cache_metadata::report::RunVerdict;

    let cell = |status, invariants: &[&str]| Cell {
        status,
        invariants: invariants.iter().map(|i| i.to_string()).collect(),
        attempts: 2,
        killing_attempts: 2,
        expected: true,
    };
    let matrix = Matrix {
        clean: RunVerdict::Pass,
        clean_violations: vec![],
        clean_setup_errors: vec![],
        clean_held: BTreeMap::from([(
            "same_model".to_string(),
            BTreeSet::from(["single_download".to_string()]),
        )]),
        mutants: vec![
            MutantRow {
                mutant: "no-lock".into(),
                class: MutantClass::KilledWhereExpected,
                expected: vec!["same_model".into()],
                cells: BTreeMap::from([(
                    "same_model".to_string(),
                    cell(CellStatus::Killed, &["single_download"]),
                )]),
            },
            MutantRow {
                mutant: "no-fsync".into(),
                class: MutantClass::Survived,
                expected: vec!["same_model".into()],
                cells: BTreeMap::from([("same_model".to_string(), cell(CellStatus::Survived, &[]))]),
            },
        ],
        interrupted: None,
        out_of_tier: BTreeMap::new(),
    };
    // The mutant runs' own violations would make the aggregate FAIL; the matrix decides.
    let inputs = violated_run();
    let agg = crate::aggregate::from_inputs(&inputs);
    let page =
        page("m", &agg, &Extras { inputs: Some(&inputs), mutants: Some(&matrix), ..Extras::default() });
    assert_eq!(page.verdict, "FAIL", "a survived mutant fails the matrix");
    let view = page.mutants.expect("matrix shown");
    assert_eq!(view.columns, ["same_model"]);
    assert_eq!(view.clean, ["held"]);
    let cells: Vec<(&str, &str, &str)> =
        view.rows.iter().map(|r| (r.mutant.as_str(), r.cells[0].0.as_str(), r.cells[0].1)).collect();
    assert_eq!(cells, [("no-lock", "single_download", "killed"), ("no-fsync", "survived", "survived")]);
}

#[test]
fn a_soak_record_shows_each_windows_p50_p95_and_cv_and_marks_a_cv_above_the_bound() {
    use stress_cache_metadata::{LatencyStats, SoakFigures, SoakWindow};
    let window = |index: usize, p50: f64, cv: f64| SoakWindow {
        index,
        runs: 20,
        timed: LatencyStats {
            n: 9,
            p50_ms: p50,
            p95_ms: p50 * 1.5,
            p99_ms: p50 * 2.0,
            cv,
            ..LatencyStats::default()
        },
        ..SoakWindow::default()
    };
    let mut soak = record("soak_ten_thousand_runs", vec![], 1);
    soak.soak = Some(SoakFigures {
        runs: 40,
        window: 20,
        windows: vec![window(0, 44.5, 0.04), window(1, 50.8, 0.25)],
        ..SoakFigures::default()
    });
    let inputs = inputs(vec![soak, record("plain", vec![], 1)]);
    let page = page("t", &Aggregate::default(), &Extras { inputs: Some(&inputs), ..Extras::default() });
    assert_eq!(page.soak.len(), 1, "only the record with soak figures");
    let rows = &page.soak[0].windows;
    assert_eq!(
        (rows[0].p50_ms.as_str(), rows[0].p95_ms.as_str(), rows[0].cv_pct.as_str()),
        ("44.5", "66.8", "4.0")
    );
    assert_eq!((rows[0].cv_above_bound, rows[1].cv_above_bound), (false, true));
    assert!(page.soak[0].totals.starts_with("40 runs, 0 failed"), "{}", page.soak[0].totals);
    let html =
        render("t", &Aggregate::default(), &Extras { inputs: Some(&inputs), ..Extras::default() }).unwrap();
    assert!(html.contains(r#"id="soak""#) && html.contains("50.8") && html.contains("(above bound)"));
}

#[test]
fn a_shrunk_record_is_drawn_next_to_its_original_and_stays_out_of_the_verdict() {
    let mut inputs = violated_run();
    let mut shrunk = inputs.records[0].1.clone();
    shrunk.process_runs.truncate(2);
    shrunk.plan = Some(stress_cache_metadata::RunPlan { process_cap: Some(2), ..Default::default() });
    let original = inputs.records[0].0.clone();
    inputs.shrunk.push((original.with_file_name("0.shrunk.json"), shrunk));
    let agg = crate::aggregate::from_inputs(&inputs);
    let page = page("t", &agg, &Extras { inputs: Some(&inputs), ..Extras::default() });
    assert_eq!(page.runs.len(), 2, "the shrunk run is not one of the run's own timelines");
    let [view] = page.shrunk.as_slice() else { panic!("one shrunk view: {:?}", page.shrunk) };
    let labels: Vec<&str> = view.sides.iter().map(|s| s.label).collect();
    assert_eq!(labels, ["original", "shrunk"]);
    assert!(view.sides.iter().all(|s| s.svg.markup.is_some()));
    let html = render("t", &agg, &Extras { inputs: Some(&inputs), ..Extras::default() }).expect("renders");
    assert!(html.contains("id=\"shrunk\"") && html.contains("class=\"side-by-side\""));
}
