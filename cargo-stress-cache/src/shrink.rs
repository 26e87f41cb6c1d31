//! `cargo stress-cache shrink RECORD.json [--invariant NAME]`: reduces a failing record's plan while the
//! same invariant is still violated (see [`Goal`]), each candidate replayed 3 times (all 3 must violate
//! it). Order: fewer
//! processes (the plan's process cap, smallest first), then fewer faults (the fault cap). Failpoints,
//! models and fixture sizes are fixed by the scenario itself, which says so. The minimal plan is saved
//! next to the record as `<record>.shrunk.json` and printed as a `replay` command and a scenario test.

use std::path::{Path, PathBuf};

use stress_cache_metadata::{RunPlan, ScenarioRecord};

use crate::cargo::Cargo;
use crate::cli::{GlobalOpts, TargetOpts};
use crate::errors::{Error, Result};
use crate::interrupt::Interrupt;
use crate::replay::{Replayer, read};
use crate::{emit, stderr_line};

/// Replays of each candidate; every one must violate the same invariants.
pub const REPLAYS_PER_CANDIDATE: u32 = 3;

/// Process caps tried, smallest first.
const PROCESS_CAPS: [usize; 7] = [1, 2, 3, 4, 6, 8, 12];

/// The processes a process cap scales: every fleet but the recovery and reference runs.
pub fn scaled_processes(plan: &RunPlan) -> usize {
    plan.processes.iter().filter(|p| p.fleet != "recovery" && p.fleet != "reference").count()
}

/// Process caps worth trying for `plan`, smallest first.
pub fn process_candidates(plan: &RunPlan) -> Vec<usize> {
    let now = plan.process_cap.map_or(scaled_processes(plan), |c| c.min(scaled_processes(plan)));
    PROCESS_CAPS.into_iter().filter(|&c| c < now).collect()
}

/// Fault caps worth trying for `plan` (fewer than the most faults a route served), smallest first.
pub fn fault_candidates(plan: &RunPlan) -> Vec<usize> {
    let most = plan.routes.iter().map(|r| r.faults.len()).max().unwrap_or(0);
    let now = plan.fault_cap.map_or(most, |c| c.min(most));
    (0..now.min(3)).collect()
}

/// `shrink RECORD`.
pub fn shrink(
    cargo: Cargo,
    global: &GlobalOpts,
    target: &TargetOpts,
    record_path: &Path,
    invariants: &[String],
    interrupt: &Interrupt,
) -> Result<()> {
    let (record, plan) = read(record_path)?;
    let mut goal =
        Goal::of(&record, invariants).map_err(|e| Error::Usage(format!("{}: {e}", record_path.display())))?;
    let replayer = Replayer::new(cargo, global, target, &plan, "shrink", interrupt)?;
    stderr_line(&format!("stress-cache: shrinking {} while {goal}", plan.scenario));
    stderr_line(&format!("stress-cache: from {}", plan.summary()));
    let mut best = (plan.clone(), record.clone());
    let caps = process_candidates(&best.0);
    let with_cap = |plan: &RunPlan, cap| RunPlan { process_cap: Some(cap), ..plan.clone() };
    smallest_cap_kept(
        &replayer,
        &mut best,
        &mut goal,
        caps,
        "process cap",
        with_cap,
        RunPlan::process_count,
    )?;
    let caps = fault_candidates(&best.0);
    let with_cap = |plan: &RunPlan, cap| RunPlan { fault_cap: Some(cap), ..plan.clone() };
    smallest_cap_kept(&replayer, &mut best, &mut goal, caps, "fault cap", with_cap, RunPlan::fault_count)?;
    stderr_line("stress-cache: failpoints, models and fixture sizes are fixed by the scenario: not reduced");
    let saved = saved_path(record_path);
    let text = serde_json::to_string_pretty(&best.1).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&saved, text).map_err(|source| Error::io("cannot write", &saved, source))?;
    let html = timelines_page(replayer.dir(), &record, &best.1)?;
    emit(&report(&plan, &best.0, &saved, &goal.invariants));
    stderr_line(&format!("stress-cache: the original and the minimal run's timelines: {}", html.display()));
    Ok(())
}

/// One shrinking step: the first of `caps` (smallest first) whose candidate — the best plan so far
/// with that cap (`with_cap`), named `<what> <cap>` — keeps violating `goal` and ran with less of what
/// `count` counts becomes the best plan (and its goal the kept one).
fn smallest_cap_kept(
    replayer: &Replayer<'_>,
    best: &mut (RunPlan, ScenarioRecord),
    goal: &mut Goal,
    caps: Vec<usize>,
    what: &str,
    with_cap: impl Fn(&RunPlan, usize) -> RunPlan,
    count: impl Fn(&RunPlan) -> usize,
) -> Result<()> {
    for cap in caps {
        let candidate = with_cap(&best.0, cap);
        if let Some((ran, replayed, kept)) = attempt(replayer, &candidate, goal, &format!("{what} {cap}"))?
            && count(&ran) < count(&best.0)
        {
            *best = (ran, replayed);
            *goal = kept;
            break;
        }
    }
    Ok(())
}

/// `<run dir>/compared/report.html`: the recorded run's timeline and the minimal run's, one above the
/// other (their records under `compared/1-original/` and `compared/2-shrunk/`).
fn timelines_page(run_dir: &Path, original: &ScenarioRecord, shrunk: &ScenarioRecord) -> Result<PathBuf> {
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

/// What must stay violated while shrinking: the `--invariant`s asked for (all of them, pinned), or by
/// default any of the record's violated invariants — the same one(s) in every replay of a candidate,
/// and from then on only those.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Goal {
    /// The invariants.
    pub invariants: Vec<String>,
    /// Whether every one of them must stay violated (else at least one).
    pub pinned: bool,
}

impl Goal {
    /// The goal for `record`: `asked` (each must be violated in it), else all it violated.
    pub fn of(record: &ScenarioRecord, asked: &[String]) -> std::result::Result<Self, String> {
        let violated = record.violated();
        if violated.is_empty() {
            return Err("the record violated no invariant: there is nothing to shrink".into());
        }
        if let Some(missing) = asked.iter().find(|a| !violated.contains(&a.as_str())) {
            return Err(format!("`{missing}` was not violated in it (violated: {})", violated.join(", ")));
        }
        Ok(match asked {
            [] => Goal { invariants: violated.iter().map(|v| v.to_string()).collect(), pinned: false },
            _ => Goal { invariants: asked.to_vec(), pinned: true },
        })
    }

    /// The goal narrowed to what `replayed` still violates of it, or `None` when it misses the goal.
    pub fn kept(&self, replayed: &ScenarioRecord) -> Option<Goal> {
        if !replayed.setup_errors.is_empty() {
            return None;
        }
        let violated = replayed.violated();
        let kept: Vec<String> =
            self.invariants.iter().filter(|i| violated.contains(&i.as_str())).cloned().collect();
        let met = if self.pinned { kept.len() == self.invariants.len() } else { !kept.is_empty() };
        met.then_some(Goal { invariants: kept, pinned: self.pinned })
    }
}

impl std::fmt::Display for Goal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let which = if self.pinned || self.invariants.len() == 1 { "" } else { "one of " };
        write!(f, "{which}{} stays violated", self.invariants.join(", "))
    }
}

/// Replays `candidate` up to [`REPLAYS_PER_CANDIDATE`] times; when every replay met `goal`, the plan
/// it ran, its last record and the goal narrowed to what all of them violated.
fn attempt(
    replayer: &Replayer<'_>,
    candidate: &RunPlan,
    goal: &Goal,
    label: &str,
) -> Result<Option<(RunPlan, ScenarioRecord, Goal)>> {
    let mut kept = goal.clone();
    let mut last = None;
    for n in 1..=REPLAYS_PER_CANDIDATE {
        let replayed = replayer.run(candidate)?;
        match kept.kept(&replayed) {
            Some(narrowed) => kept = narrowed,
            None => {
                stderr_line(&format!(
                    "stress-cache: {label}: replay {n}/{REPLAYS_PER_CANDIDATE} missed it ({}: {})",
                    replayed.outcome().as_str(),
                    replayed.violated().join(", ")
                ));
                return Ok(None);
            }
        }
        last = Some(replayed);
    }
    let record = last.expect("at least one replay");
    let ran = record.plan.clone().unwrap_or_else(|| candidate.clone());
    let ran = RunPlan { process_cap: candidate.process_cap, fault_cap: candidate.fault_cap, ..ran };
    stderr_line(&format!(
        "stress-cache: {label}: {REPLAYS_PER_CANDIDATE}/{REPLAYS_PER_CANDIDATE} still violate {}: {}",
        kept.invariants.join(", "),
        ran.summary()
    ));
    Ok(Some((ran, record, kept)))
}

/// `<dir>/<stem>.shrunk.json` next to the record.
pub fn saved_path(record: &Path) -> PathBuf {
    let stem =
        record.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "record".into());
    let path = record.with_file_name(format!("{stem}.shrunk.json"));
    std::path::absolute(&path).unwrap_or(path)
}

/// Before → after, the one-line replay command and a ready-to-paste scenario test.
pub fn report(before: &RunPlan, after: &RunPlan, saved: &Path, goal: &[String]) -> String {
    let mut out = String::new();
    out.push_str(&format!("shrunk {} (still violated: {})\n", after.scenario, goal.join(", ")));
    out.push_str(&format!(
        "  processes: {} → {}   faults: {} → {}\n",
        before.process_count(),
        after.process_count(),
        before.fault_count(),
        after.fault_count()
    ));
    out.push_str(&format!("  before: {}\n  after:  {}\n\n", before.summary(), after.summary()));
    out.push_str(&format!("cargo stress-cache replay {}\n\n", saved.display()));
    out.push_str(&scenario_test(after, goal));
    out
}

/// A scenario test running `plan`'s scenario with its mutant and process cap: with a seeded bug it
/// checks the suite still catches it; without one it is the regression test (it fails until the bug is
/// fixed).
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
    let fault_note = match plan.fault_cap {
        Some(c) => {
            format!("\n    // The shrunk plan also capped faults at {c} per route (replay it for that).\n")
        }
        None => String::new(),
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
        "// stress-tests/tests/<file>.rs — shrunk from a failing run ({}).\nuse stress_tests::scenarios::{{self, ScenarioOptions}};\n\n#[test]\nfn {fn_name}() {{\n    let opts = ScenarioOptions {{ mutant: {mutant}, process_cap: {cap}, ..ScenarioOptions::default() }};{fault_note}\n    let record = scenarios::run({:?}, &opts);\n{check}}}\n",
        plan.summary(),
        plan.scenario
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use stress_cache_metadata::{PlannedProcess, PlannedRoute};

    fn plan(writers: usize, faults: usize) -> RunPlan {
        let mut processes: Vec<PlannedProcess> =
            (0..writers).map(|_| PlannedProcess { fleet: "fleet".into(), ..Default::default() }).collect();
        processes.push(PlannedProcess { fleet: "recovery".into(), ..Default::default() });
        RunPlan {
            scenario: "crash_at_cache.after_lock_then_recovers".into(),
            mutant: Some("no-lock".into()),
            processes,
            routes: vec![PlannedRoute { faults: vec!["reset".into(); faults], ..Default::default() }],
            ..Default::default()
        }
    }

    #[test]
    fn process_candidates_are_smaller_caps_smallest_first() {
        assert_eq!(process_candidates(&plan(16, 0)), [1, 2, 3, 4, 6, 8, 12]);
        assert_eq!(process_candidates(&plan(3, 0)), [1, 2]);
        assert!(process_candidates(&plan(1, 0)).is_empty());
        assert_eq!(process_candidates(&RunPlan { process_cap: Some(2), ..plan(16, 0) }), [1]);
    }

    #[test]
    fn fault_candidates_start_at_none_and_stay_below_what_was_served() {
        assert_eq!(fault_candidates(&plan(2, 16)), [0, 1, 2]);
        assert_eq!(fault_candidates(&plan(2, 1)), [0]);
        assert!(fault_candidates(&plan(2, 0)).is_empty());
    }

    fn violating(names: &[&str]) -> ScenarioRecord {
        let mut r = crate::compare::tests_support::record();
        r.invariants = ["a", "b", "c"]
            .iter()
            .map(|n| {
                let evidence = if names.contains(n) { vec!["x".to_string()] } else { Vec::new() };
                stress_cache_metadata::InvariantResult::checked(n, evidence)
            })
            .collect();
        r
    }

    #[test]
    fn default_goal_keeps_any_recorded_violation_and_narrows_to_it() {
        let goal = Goal::of(&violating(&["a", "b"]), &[]).unwrap();
        let kept = goal.kept(&violating(&["b", "c"])).expect("b is still violated");
        assert_eq!(kept.invariants, ["b"]);
        assert_eq!(kept.kept(&violating(&["a"])), None);
    }

    #[test]
    fn pinned_goal_needs_every_asked_invariant() {
        let goal = Goal::of(&violating(&["a", "b"]), &["a".into(), "b".into()]).unwrap();
        assert!(goal.kept(&violating(&["a", "b", "c"])).is_some());
        assert_eq!(goal.kept(&violating(&["a"])), None);
        assert!(Goal::of(&violating(&["a"]), &["c".into()]).is_err());
    }

    #[test]
    fn scenario_test_names_the_scenario_mutant_and_cap() {
        let text =
            scenario_test(&RunPlan { process_cap: Some(2), ..plan(2, 0) }, &["no_partial_content".into()]);
        assert!(
            text.contains("fn crash_at_cache_after_lock_then_recovers_catches_no_lock_with_few_processes()")
        );
        assert!(text.contains("process_cap: Some(2)"), "{text}");
        assert!(
            text.contains("scenarios::run(\"crash_at_cache.after_lock_then_recovers\", &opts)"),
            "{text}"
        );
    }
}
