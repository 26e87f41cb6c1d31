//! A replay's record against the recorded one: whether it reproduced (the same invariants violated
//! again; for a passing record, a pass again) and, in plain words, what differed — outcome, invariants,
//! processes, faults, gate releases, holds, kills.

use std::collections::BTreeSet;

use stress_cache_metadata::{RunPlan, ScenarioOutcome, ScenarioRecord};

/// One replay compared with the recorded run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Comparison {
    /// The recorded outcome came back: every invariant the record violated is violated again (or, for
    /// a record that passed, the replay passed).
    pub reproduced: bool,
    /// The replay's outcome.
    pub outcome: ScenarioOutcome,
    /// What differs, one plain line each (empty: nothing the records show).
    pub differences: Vec<String>,
}

/// Whether `replay` violates every invariant `target` names (`target` empty: whether it passed).
pub fn violates_all(replay: &ScenarioRecord, target: &[String]) -> bool {
    if target.is_empty() {
        return replay.outcome() == ScenarioOutcome::Passed;
    }
    let violated: BTreeSet<&str> = replay.violated().into_iter().collect();
    replay.setup_errors.is_empty() && target.iter().all(|t| violated.contains(t.as_str()))
}

/// Compares `replay` with `original`.
pub fn compare(original: &ScenarioRecord, replay: &ScenarioRecord) -> Comparison {
    let target: Vec<String> = original.violated().into_iter().map(str::to_string).collect();
    let mut differences = Vec::new();
    let (was, now) = (original.outcome(), replay.outcome());
    if was != now {
        differences.push(format!("outcome: {} recorded, {} this time", was.as_str(), now.as_str()));
    }
    let before: BTreeSet<&str> = original.violated().into_iter().collect();
    let after: BTreeSet<&str> = replay.violated().into_iter().collect();
    let gone: Vec<&str> = before.difference(&after).copied().collect();
    let new: Vec<&str> = after.difference(&before).copied().collect();
    if !gone.is_empty() {
        differences.push(format!("no longer violated: {}", gone.join(", ")));
    }
    if !new.is_empty() {
        differences.push(format!("newly violated: {}", new.join(", ")));
    }
    differences.extend(replay.setup_errors.iter().map(|e| format!("setup error this time: {e}")));
    if original.outcomes != replay.outcomes {
        differences.push(format!(
            "process outcomes: {} recorded, {} this time",
            classes(original),
            classes(replay)
        ));
    }
    if original.mutant_active != replay.mutant_active {
        differences.push(format!(
            "seeded bug confirmed active: {:?} recorded, {:?} this time",
            original.mutant_active, replay.mutant_active
        ));
    }
    if let (Some(a), Some(b)) = (&original.plan, &replay.plan) {
        differences.extend(plan_differences(a, b));
    }
    Comparison { reproduced: violates_all(replay, &target), outcome: now, differences }
}

fn classes(record: &ScenarioRecord) -> String {
    let parts: Vec<String> = record.outcomes.iter().map(|(c, n)| format!("{n} {c}")).collect();
    if parts.is_empty() { "none".into() } else { parts.join(", ") }
}

/// What the replay did differently from the recorded plan.
pub fn plan_differences(a: &RunPlan, b: &RunPlan) -> Vec<String> {
    let mut out = Vec::new();
    if a.roles() != b.roles() {
        out.push(format!("processes: {} recorded, {} this time", roles(a), roles(b)));
    }
    if a.failpoints() != b.failpoints() {
        out.push(format!("failpoints: {:?} recorded, {:?} this time", a.failpoints(), b.failpoints()));
    }
    for route in &a.routes {
        let now = b.routes.iter().find(|r| r.path == route.path);
        let (n0, n1) = (route.faults.len(), now.map_or(0, |r| r.faults.len()));
        if n0 != n1 {
            out.push(format!("route {}: {n0} faults served recorded, {n1} this time", route.path));
        } else if now.is_some_and(|r| r.faults != route.faults) {
            out.push(format!("route {}: the faults were served in another order this time", route.path));
        }
    }
    if a.gate_releases.len() != b.gate_releases.len() {
        out.push(format!(
            "gate releases: {} recorded, {} this time",
            a.gate_releases.len(),
            b.gate_releases.len()
        ));
    }
    for (g0, g1) in a.gate_releases.iter().zip(&b.gate_releases) {
        if (g0.parked, g0.processes) != (g1.parked, g1.processes) {
            out.push(format!(
                "gate {} was released after {} of {} processes were parked this time (recorded: {} of {})",
                g1.gate, g1.parked, g1.processes, g0.parked, g0.processes
            ));
        }
    }
    let kinds = |p: &RunPlan| p.holds.iter().map(|h| h.kind.clone()).collect::<Vec<_>>();
    if kinds(a) != kinds(b) {
        out.push(format!("holds: [{}] recorded, [{}] this time", kinds(a).join(", "), kinds(b).join(", ")));
    }
    for (i, (h0, h1)) in a.holds.iter().zip(&b.holds).enumerate() {
        if h0.released != h1.released {
            out.push(format!(
                "hold {} ({}) was released because {} this time (recorded: {})",
                i + 1,
                h1.kind,
                h1.released,
                h0.released
            ));
        }
    }
    let triggers = |p: &RunPlan| p.kills.iter().map(|k| k.trigger.clone()).collect::<Vec<_>>();
    if triggers(a) != triggers(b) {
        out.push(format!(
            "external kills: {} recorded ({}), {} this time ({})",
            a.kills.len(),
            triggers(a).join("; "),
            b.kills.len(),
            triggers(b).join("; ")
        ));
    }
    out
}

fn roles(plan: &RunPlan) -> String {
    plan.roles().iter().map(|(r, n)| format!("{n} {r}")).collect::<Vec<_>>().join(", ")
}

/// A minimal record for tests.
#[cfg(test)]
pub(crate) mod tests_support {
    use stress_cache_metadata::ScenarioRecord;

    /// A passing record of scenario `s` with 16 `ok` processes and no invariant.
    pub fn record() -> ScenarioRecord {
        serde_json::from_value(serde_json::json!({
            "schema_version": 2, "scenario": "s", "tier": "pr", "seed": 1, "mutant": null, "target": "t",
            "processes": 16, "started_unix_ms": 0, "outcomes": {"ok": 16}, "invariants": [],
            "figures": { "wall_ms": 1.0, "processes_per_sec": 1.0, "latency_p50_ms": 1.0, "latency_p95_ms": 1.0,
                         "lock_wait_p50_ms": null, "bytes_served": 0, "complete_bodies_per_model": {},
                         "cache_hit_ratio": null, "mb_per_sec": 0.0 },
            "process_runs": []
        }))
        .expect("a record")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stress_cache_metadata::{GateRelease, InvariantResult};

    fn record(violated: &[&str], parked: u64) -> ScenarioRecord {
        let mut r = tests_support::record();
        r.invariants = ["a", "b"]
            .iter()
            .map(|n| {
                InvariantResult::checked(n, if violated.contains(n) { vec!["x".into()] } else { vec![] })
            })
            .collect();
        r.plan = Some(RunPlan {
            gate_releases: vec![GateRelease { gate: "mid".into(), parked, processes: 16 }],
            ..RunPlan::default()
        });
        r
    }

    #[test]
    fn same_invariants_violated_again_is_a_reproduction() {
        let c = compare(&record(&["a"], 16), &record(&["a", "b"], 16));
        assert!(c.reproduced);
        assert_eq!(c.differences, ["newly violated: b"]);
    }

    #[test]
    fn changed_outcome_says_how_the_gate_release_differed() {
        let c = compare(&record(&["a"], 16), &record(&[], 15));
        assert!(!c.reproduced);
        assert!(c.differences.contains(&"outcome: failed recorded, passed this time".to_string()));
        assert!(
            c.differences.contains(
                &"gate mid was released after 15 of 16 processes were parked this time (recorded: 16 of 16)"
                    .to_string()
            ),
            "{:?}",
            c.differences
        );
    }

    #[test]
    fn a_hold_released_otherwise_is_a_difference() {
        let hold = |released: &str| stress_cache_metadata::PlannedHold {
            kind: "after-unlock".into(),
            released: released.into(),
            ..Default::default()
        };
        let a = RunPlan { holds: vec![hold("the lock's next holder was quiet")], ..RunPlan::default() };
        let b = RunPlan { holds: vec![hold("deadline")], ..RunPlan::default() };
        assert_eq!(
            plan_differences(&a, &b),
            [
                "hold 1 (after-unlock) was released because deadline this time (recorded: the lock's next holder was quiet)"
            ]
        );
        assert_eq!(
            plan_differences(&a, &RunPlan::default()),
            ["holds: [after-unlock] recorded, [] this time"]
        );
    }

    #[test]
    fn passing_record_reproduces_only_as_a_pass() {
        assert!(compare(&record(&[], 16), &record(&[], 16)).reproduced);
        assert!(!compare(&record(&[], 16), &record(&["b"], 16)).reproduced);
    }
}
