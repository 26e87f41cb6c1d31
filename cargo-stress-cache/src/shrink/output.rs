//! What a shrink leaves: before → after with a line per dimension, the one-line `replay` command, a
//! ready-to-paste scenario test, the two timelines in the shrink's own dir and in the report of the
//! run dir the record came from.

use std::path::{Path, PathBuf};

use stress_cache_metadata::{RunPlan, ScenarioRecord};

use crate::errors::{Error, Result};

/// `<dir>/<stem>.shrunk.json` next to the record.
pub fn saved_path(record: &Path) -> PathBuf {
    let stem =
        record.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "record".into());
    let path = record.with_file_name(format!("{stem}{}", crate::inputs::SHRUNK_SUFFIX));
    std::path::absolute(&path).unwrap_or(path)
}

/// Before → after, a line per dimension, the one-line replay command and a ready-to-paste scenario test.
pub fn report(before: &RunPlan, after: &RunPlan, saved: &Path, goal: &[String], lines: &[String]) -> String {
    let mut out = String::new();
    out.push_str(&format!("shrunk {} (still violated: {})\n", after.scenario, goal.join(", ")));
    out.push_str(&format!(
        "  processes: {} → {}   faults: {} → {}\n",
        before.process_count(),
        after.process_count(),
        before.fault_count(),
        after.fault_count()
    ));
    out.push_str(&format!("  before: {}\n  after:  {}\n", before.summary(), after.summary()));
    for line in lines {
        out.push_str(&format!("  - {line}\n"));
    }
    out.push_str(&format!("\ncargo stress-cache replay {}\n\n", saved.display()));
    out.push_str(&scenario_test(after, goal));
    out
}

/// A scenario test running `plan`'s scenario with its mutant and process cap: with a seeded bug it
/// checks the suite still catches it; without one it is the regression test (it fails until the bug is
/// fixed). The reductions `ScenarioOptions` cannot express are noted (replay the saved plan for them).
pub fn scenario_test(plan: &RunPlan, goal: &[String]) -> String {
    let name = crate::plan_check::test_name(&plan.scenario);
    let mutant = match &plan.mutant {
        Some(m) => format!("Some({m:?}.to_string())"),
        None => "None".to_string(),
    };
    let cap = match plan.process_cap {
        Some(c) => format!("Some({c})"),
        None => "None".to_string(),
    };
    let mut notes = Vec::new();
    if let Some(c) = plan.fault_cap {
        notes.push(format!("faults capped at {c} per route"));
    }
    for (role, c) in &plan.role_caps {
        notes.push(format!("{role} processes capped at {c}"));
    }
    if !plan.disarmed_failpoints.is_empty() {
        let names: Vec<&str> = plan.disarmed_failpoints.iter().map(String::as_str).collect();
        notes.push(format!("failpoints {} disarmed", names.join(", ")));
    }
    if let Some(c) = plan.model_cap {
        notes.push(format!("models capped at the {c} smallest"));
    }
    let note = if notes.is_empty() {
        String::new()
    } else {
        format!("\n    // The shrunk plan also ran with {} (replay it for that).\n", notes.join(", "))
    };
    let (fn_name, check) = match &plan.mutant {
        Some(m) => (
            format!("{name}_catches_{}_with_few_processes", m.replace('-', "_")),
            format!(
                "    for invariant in {goal:?} {{\n        assert!(record.violated().contains(&invariant), \"{{invariant}} held: {{:?}}\", record.violated());\n    }}\n"
            ),
        ),
        None => {
            (format!("{name}_holds_with_few_processes"), "    scenarios::assert_held(&record);\n".to_string())
        }
    };
    format!(
        "// stress-tests/tests/<file>.rs — shrunk from a failing run ({}).\nuse stress_tests::scenarios::{{self, ScenarioOptions}};\n\n#[test]\nfn {fn_name}() {{\n    let opts = ScenarioOptions {{ mutant: {mutant}, process_cap: {cap}, ..ScenarioOptions::default() }};{note}\n    let record = scenarios::run({:?}, &opts);\n{check}}}\n",
        plan.summary(),
        plan.scenario
    )
}

/// `<run dir>/compared/report.html`: the recorded run's timeline and the minimal run's (their records
/// under `compared/1-original/` and `compared/2-shrunk/`).
pub fn timelines_page(run_dir: &Path, original: &ScenarioRecord, shrunk: &ScenarioRecord) -> Result<PathBuf> {
    let dir = crate::rundir::subdir(run_dir, "compared")?;
    for (name, record) in [("1-original", original), ("2-shrunk", shrunk)] {
        let records = crate::rundir::subdir(&crate::rundir::subdir(&dir, name)?, "records")?;
        let text = serde_json::to_string_pretty(record).map_err(|e| Error::Usage(e.to_string()))?;
        crate::rundir::write(&records.join(format!("{}.json", record.scenario)), &text)?;
    }
    let inputs = crate::inputs::collect(std::slice::from_ref(&dir))?;
    let agg = crate::aggregate::from_inputs(&inputs);
    let extras =
        crate::html_report::Extras { inputs: Some(&inputs), ..crate::html_report::Extras::default() };
    let page = crate::html_report::render(&format!("shrink of {}", original.scenario), &agg, &extras)?;
    let path = dir.join(crate::html_report::FILE_NAME);
    crate::rundir::write(&path, &page)?;
    Ok(path)
}

/// Rewrites the `report.html` of the run dir `record` came from, if it has one, so that it shows the
/// shrunk run (saved beside the record) next to the original. The page keeps the run's own verdict
/// (its `report.json`); a run dir without a report is left alone.
pub fn refresh_source_report(record: &Path) -> Result<Option<PathBuf>> {
    let record = std::path::absolute(record).unwrap_or_else(|_| record.to_path_buf());
    let Some(run_dir) = record
        .ancestors()
        .skip(1)
        .take(4)
        .find(|d| d.join(crate::html_report::FILE_NAME).is_file() && d.join("report.json").is_file())
    else {
        return Ok(None);
    };
    let agg = crate::aggregate::read(&run_dir.join("report.json"))?;
    crate::html_report::write_for_run(run_dir, &agg, None).map(Some)
}

#[cfg(test)]
mod tests {
    use super::*;
    use stress_cache_metadata::PlannedProcess;

    #[test]
    fn scenario_test_names_the_scenario_mutant_cap_and_the_other_reductions() {
        let plan = RunPlan {
            scenario: "crash_at_cache.after_lock_then_recovers".into(),
            mutant: Some("no-lock".into()),
            process_cap: Some(2),
            role_caps: [("recovery".to_string(), 0)].into(),
            processes: vec![PlannedProcess::default()],
            ..Default::default()
        };
        let text = scenario_test(&plan, &["no_partial_content".into()]);
        assert!(
            text.contains("fn crash_at_cache_after_lock_then_recovers_catches_no_lock_with_few_processes()")
        );
        assert!(text.contains("process_cap: Some(2)"), "{text}");
        assert!(text.contains("recovery processes capped at 0"), "{text}");
        assert!(
            text.contains("scenarios::run(\"crash_at_cache.after_lock_then_recovers\", &opts)"),
            "{text}"
        );
    }

    #[test]
    fn the_shrunk_record_is_saved_beside_the_original() {
        let saved = saved_path(Path::new("/r/records/x.json"));
        assert_eq!(saved, Path::new("/r/records/x.shrunk.json"));
    }
}
