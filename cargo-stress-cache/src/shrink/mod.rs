//! `cargo stress-cache shrink RECORD.json [--invariant NAME]`: reduces a failing record's plan while the
//! same invariant is still violated (see [`Goal`]), each candidate replayed 3 times (all 3 must violate
//! it). The order ([`steps`]): fewer processes (the process cap, then role by role), fewer
//! faults, fewer failpoints, fewer models, smaller fixtures; a dimension that cannot be reduced says why.
//! The minimal run's record is saved next to the original as `<record>.shrunk.json` and printed as a
//! `replay` command and a scenario test ([`output`]); the run dir's `report.html`, if it has one, shows
//! the two timelines side by side.

mod output;
mod steps;

use std::path::Path;

use stress_cache_metadata::{RunPlan, ScenarioRecord};

use crate::cargo::Cargo;
use crate::cli::{GlobalOpts, TargetOpts};
use crate::errors::{Error, Result};
use crate::interrupt::Interrupt;
use crate::replay::{Replayer, read};
use crate::{emit, stderr_line};

pub use output::{report, saved_path, scenario_test};
pub use steps::{fault_candidates, process_candidates, role_candidates, scaled_processes};

/// Replays of each candidate; every one must violate the same invariants.
pub const REPLAYS_PER_CANDIDATE: u32 = 3;

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
    let goal =
        Goal::of(&record, invariants).map_err(|e| Error::Usage(format!("{}: {e}", record_path.display())))?;
    let replayer = Replayer::new(cargo, global, target, &plan, "shrink", interrupt)?;
    stderr_line(&format!("stress-cache: shrinking {} while {goal}", plan.scenario));
    stderr_line(&format!("stress-cache: from {}", plan.summary()));
    let mut shrinker = Shrinker { replayer: &replayer, plan: plan.clone(), record: record.clone(), goal };
    let lines = steps::run_all(&mut shrinker)?;
    let Shrinker { plan: best, record: best_record, goal, .. } = shrinker;
    let saved = saved_path(record_path);
    let text = serde_json::to_string_pretty(&best_record).map_err(|e| Error::Usage(e.to_string()))?;
    std::fs::write(&saved, text).map_err(|source| Error::io("cannot write", &saved, source))?;
    let html = output::timelines_page(replayer.dir(), &record, &best_record)?;
    emit(&report(&plan, &best, &saved, &goal.invariants, &lines));
    stderr_line(&format!("stress-cache: the original and the minimal run's timelines: {}", html.display()));
    if let Some(page) = output::refresh_source_report(record_path)? {
        stderr_line(&format!("stress-cache: {} shows them side by side", page.display()));
    }
    Ok(())
}

/// The best plan so far, the record of its last replay, and the goal narrowed so far.
pub(crate) struct Shrinker<'a> {
    replayer: &'a Replayer<'a>,
    plan: RunPlan,
    record: ScenarioRecord,
    goal: Goal,
}

impl Shrinker<'_> {
    /// Replays `candidate` up to [`REPLAYS_PER_CANDIDATE`] times. When every replay met the goal and
    /// `smaller(ran, best)` holds, the plan it ran becomes the best and `Ok(None)` is returned; else
    /// `Ok(Some(why))`, why it was not kept.
    fn try_candidate(
        &mut self,
        candidate: &RunPlan,
        label: &str,
        smaller: impl Fn(&RunPlan, &RunPlan) -> bool,
    ) -> Result<Option<String>> {
        let mut kept = self.goal.clone();
        let mut last = None;
        for n in 1..=REPLAYS_PER_CANDIDATE {
            let replayed = self.replayer.run(candidate)?;
            match kept.kept(&replayed) {
                Some(narrowed) => kept = narrowed,
                None => {
                    let violated = replayed.violated();
                    let why = format!(
                        "{label}: replay {n}/{REPLAYS_PER_CANDIDATE} {} ({})",
                        replayed.outcome().as_str(),
                        if violated.is_empty() {
                            replayed
                                .setup_errors
                                .first()
                                .cloned()
                                .unwrap_or_else(|| "nothing violated".into())
                        } else {
                            format!("violated {}", violated.join(", "))
                        }
                    );
                    stderr_line(&format!("stress-cache: {why}"));
                    return Ok(Some(why));
                }
            }
            last = Some(replayed);
        }
        let record = last.expect("at least one replay");
        let ran = ran_plan(&record, candidate);
        if !smaller(&ran, &self.plan) {
            let why = format!("{label}: still violated, but it ran no less ({})", ran.summary());
            stderr_line(&format!("stress-cache: {why}"));
            return Ok(Some(why));
        }
        stderr_line(&format!(
            "stress-cache: {label}: {REPLAYS_PER_CANDIDATE}/{REPLAYS_PER_CANDIDATE} still violate {}: {}",
            kept.invariants.join(", "),
            ran.summary()
        ));
        self.plan = ran;
        self.record = record;
        self.goal = kept;
        Ok(None)
    }
}

/// What a replay of `candidate` ran: its record's plan, with the candidate's knobs (the record carries
/// them too; the candidate's are what the next candidate starts from).
fn ran_plan(record: &ScenarioRecord, candidate: &RunPlan) -> RunPlan {
    let ran = record.plan.clone().unwrap_or_else(|| candidate.clone());
    RunPlan {
        process_cap: candidate.process_cap,
        fault_cap: candidate.fault_cap,
        role_caps: candidate.role_caps.clone(),
        disarmed_failpoints: candidate.disarmed_failpoints.clone(),
        model_cap: candidate.model_cap,
        ..ran
    }
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

#[cfg(test)]
mod tests {
    use super::*;

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
    fn the_plan_a_candidate_ran_keeps_every_reduction_of_the_candidate() {
        let candidate = RunPlan {
            process_cap: Some(1),
            fault_cap: Some(0),
            role_caps: [("recovery".to_string(), 0)].into(),
            disarmed_failpoints: ["a".to_string()].into(),
            model_cap: Some(1),
            ..RunPlan::default()
        };
        let mut record = violating(&["a"]);
        record.plan = Some(RunPlan { seed: 9, ..RunPlan::default() });
        let ran = ran_plan(&record, &candidate);
        assert_eq!(ran.seed, 9);
        assert_eq!(RunPlan { seed: 0, ..ran }, candidate);
    }
}
