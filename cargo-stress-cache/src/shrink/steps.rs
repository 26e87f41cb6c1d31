//! The reductions, in the order: processes (the process cap, then role by role), faults,
//! failpoints, models, fixtures. Each step returns one line: what it reduced, or why it could not.
//!
//! A role is reduced to one process, never to none — the scenario needs each of its roles to stage its
//! case (the gc and a reader, the armed process and its reference) — except the [`OPTIONAL_ROLES`]: the
//! clean recovery runs after the case check what it left, and are not part of it. Fixtures are the
//! target's own models: "smaller" means serving its smallest fixture where the scenario used a larger
//! one, never cutting a model's bytes (a cut model is no model).

use std::collections::BTreeMap;

use stress_cache_metadata::{OPTIONAL_ROLES, RunPlan};

use super::Shrinker;
use crate::errors::Result;

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

/// `(role, cap)` worth trying for `plan`, most processes first: an optional role to none, any other
/// role with more than one process to one.
pub fn role_candidates(plan: &RunPlan) -> Vec<(String, usize)> {
    let mut roles: Vec<(String, usize)> = plan.roles().into_iter().collect();
    roles.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    roles
        .into_iter()
        .filter_map(|(role, n)| {
            let floor = if OPTIONAL_ROLES.contains(&role.as_str()) { 0 } else { 1 };
            (n > floor).then_some((role, floor))
        })
        .collect()
}

/// Fault caps worth trying for `plan` (fewer than the most faults a route served), smallest first.
pub fn fault_candidates(plan: &RunPlan) -> Vec<usize> {
    let most = plan.routes.iter().map(|r| r.faults.len()).max().unwrap_or(0);
    let now = plan.fault_cap.map_or(most, |c| c.min(most));
    (0..now.min(3)).collect()
}

/// Runs every step in order; one line per dimension.
pub(super) fn run_all(s: &mut Shrinker<'_>) -> Result<Vec<String>> {
    Ok(vec![processes(s)?, faults(s)?, failpoints(s)?, models(s)?, fixtures(s)?])
}

fn processes(s: &mut Shrinker<'_>) -> Result<String> {
    let before = s.plan.process_count();
    let mut misses = Vec::new();
    let caps = process_candidates(&s.plan);
    for cap in &caps {
        let candidate = RunPlan { process_cap: Some(*cap), ..s.plan.clone() };
        match s.try_candidate(&candidate, &format!("process cap {cap}"), |a, b| {
            a.process_count() < b.process_count()
        })? {
            None => break,
            Some(why) => misses.push(why),
        }
    }
    if caps.is_empty() {
        misses.push(format!("the scenario scales {} process(es): no smaller cap", scaled_processes(&s.plan)));
    }
    let roles = role_candidates(&s.plan);
    for (role, cap) in &roles {
        let mut candidate = s.plan.clone();
        candidate.role_caps.insert(role.clone(), *cap);
        let label = format!("{role} processes at most {cap}");
        let role_count = |p: &RunPlan| p.roles().get(role).copied().unwrap_or(0);
        if let Some(why) = s.try_candidate(&candidate, &label, |a, b| {
            a.process_count() < b.process_count() && role_count(a) < role_count(b)
        })? {
            misses.push(why);
        }
    }
    let kept: Vec<String> = s
        .plan
        .roles()
        .iter()
        .filter(|(r, n)| **n == 1 && !OPTIONAL_ROLES.contains(&r.as_str()))
        .map(|(r, _)| r.clone())
        .collect();
    if !kept.is_empty() {
        misses.push(format!("one {} each: the scenario needs every role it stages", kept.join(", one ")));
    }
    Ok(line("processes", before, s.plan.process_count(), &misses))
}

fn faults(s: &mut Shrinker<'_>) -> Result<String> {
    let before = s.plan.fault_count();
    let mut misses = Vec::new();
    let caps = fault_candidates(&s.plan);
    if before == 0 {
        misses.push("the run served no fault".into());
    }
    for cap in caps {
        let candidate = RunPlan { fault_cap: Some(cap), ..s.plan.clone() };
        match s.try_candidate(&candidate, &format!("fault cap {cap}"), |a, b| {
            a.fault_count() < b.fault_count()
        })? {
            None => break,
            Some(why) => misses.push(why),
        }
    }
    Ok(line("faults", before, s.plan.fault_count(), &misses))
}

fn failpoints(s: &mut Shrinker<'_>) -> Result<String> {
    let names = s.plan.failpoints();
    let before = names.len();
    let mut misses = Vec::new();
    if names.is_empty() {
        misses.push("the plan arms no failpoint".into());
    }
    for name in names {
        let mut candidate = s.plan.clone();
        candidate.disarmed_failpoints.insert(name.clone());
        let label = format!("without failpoint {name}");
        if let Some(why) =
            s.try_candidate(&candidate, &label, |a, b| a.failpoints().len() < b.failpoints().len())?
        {
            misses.push(format!("{name} is needed — {why}"));
        }
    }
    Ok(line("failpoints", before, s.plan.failpoints().len(), &misses))
}

fn models(s: &mut Shrinker<'_>) -> Result<String> {
    let before = s.plan.models().len();
    let mut misses = Vec::new();
    if before <= 1 {
        let only: Vec<String> = s.plan.models().into_iter().collect();
        misses.push(format!("the plan requests one model ({})", only.join("")));
    } else {
        let candidate = RunPlan { model_cap: Some(1), ..s.plan.clone() };
        if let Some(why) =
            s.try_candidate(&candidate, "one model", |a, b| a.models().len() < b.models().len())?
        {
            misses.push(format!("every model is needed — {why}"));
        }
    }
    Ok(line("models", before, s.plan.models().len(), &misses))
}

fn fixtures(s: &mut Shrinker<'_>) -> Result<String> {
    let sizes = s.replayer.fixture_sizes();
    let bytes = |p: &RunPlan| p.models().iter().map(|m| sizes.get(m).copied().unwrap_or(0)).sum::<u64>();
    let before = bytes(&s.plan);
    let mut misses = Vec::new();
    match smallest(&sizes) {
        None => misses.push("the target's fixture sizes could not be read".into()),
        Some((id, size)) if s.plan.models().iter().all(|m| *m == id) => misses.push(format!(
            "already the smallest fixture the target declares ({id}, {size} B); fixtures are the \
             target's own models, never cut"
        )),
        Some(_) if s.plan.model_cap.is_some() => {
            misses.push("the models step already serves only the smallest fixture".into())
        }
        Some((id, _)) => {
            let candidate = RunPlan { model_cap: Some(1), ..s.plan.clone() };
            let label = format!("only the smallest fixture ({id})");
            if let Some(why) = s.try_candidate(&candidate, &label, |a, b| bytes(a) < bytes(b))? {
                misses.push(format!("the larger fixture is needed — {why}"));
            }
        }
    }
    let after = bytes(&s.plan);
    Ok(line("fixture bytes", before as usize, after as usize, &misses))
}

/// The smallest fixture, `(id, bytes)`.
fn smallest(sizes: &BTreeMap<String, u64>) -> Option<(String, u64)> {
    sizes.iter().min_by_key(|(id, n)| (**n, (*id).clone())).map(|(id, n)| (id.clone(), *n))
}

/// `name: before → after`, or `name: n, not reduced: why`; what could not be reduced further follows.
fn line(name: &str, before: usize, after: usize, misses: &[String]) -> String {
    let head = if after < before {
        format!("{name}: {before} → {after}")
    } else {
        format!("{name}: {before}, not reduced")
    };
    if misses.is_empty() { head } else { format!("{head} ({})", misses.join("; ")) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use stress_cache_metadata::{PlannedProcess, PlannedRoute};

    fn plan(writers: usize, faults: usize) -> RunPlan {
        let mut processes: Vec<PlannedProcess> = (0..writers)
            .map(|_| PlannedProcess { fleet: "fleet".into(), role: "writer".into(), ..Default::default() })
            .collect();
        processes.push(PlannedProcess {
            fleet: "recovery".into(),
            role: "recovery".into(),
            ..Default::default()
        });
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
    fn roles_go_down_to_one_and_only_the_recovery_to_none() {
        assert_eq!(role_candidates(&plan(3, 0)), [("writer".to_string(), 1), ("recovery".to_string(), 0)]);
        assert_eq!(role_candidates(&plan(1, 0)), [("recovery".to_string(), 0)]);
    }

    #[test]
    fn fault_candidates_start_at_none_and_stay_below_what_was_served() {
        assert_eq!(fault_candidates(&plan(2, 16)), [0, 1, 2]);
        assert_eq!(fault_candidates(&plan(2, 1)), [0]);
        assert!(fault_candidates(&plan(2, 0)).is_empty());
    }

    #[test]
    fn a_dimension_not_reduced_says_why() {
        assert_eq!(
            line("faults", 0, 0, &["the run served no fault".into()]),
            "faults: 0, not reduced (the run served no fault)"
        );
        assert_eq!(line("processes", 5, 3, &[]), "processes: 5 → 3");
    }
}
