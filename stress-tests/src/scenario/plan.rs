//! What a scenario run did, as its [`RunPlan`]: every process started (fleet, role, model, failpoints,
//! mutant, extra env, pid), every route's faults in order, every gate release with how many responses
//! were parked out of how many processes, every external kill with its trigger, and the fixtures.

use stress_cache_metadata::{
    EventKind, GateRelease, PLAN_SCHEMA_VERSION, PlannedHold, PlannedKill, PlannedProcess, PlannedRoute,
    RunPlan, TimelineEvent,
};

use crate::orchestrator::ProcessOutcome;
use crate::server::{Fault, RouteHandle};
use crate::target::{ProcessPlan, Target};
use crate::tier::TierConfig;

/// Collects a run's plan while it runs (see the module docs).
#[derive(Debug, Default)]
pub struct PlanRecorder {
    processes: Vec<PlannedProcess>,
    routes: Vec<PlannedRoute>,
    gate_releases: Vec<GateRelease>,
    /// Holds in release order, with the pid held (mapped to a process index once pids are known).
    holds: Vec<(u32, PlannedHold)>,
}

impl PlanRecorder {
    /// Records a fleet labelled `label` about to start; returns the index of its first process.
    pub fn fleet(&mut self, label: &str, plans: &[ProcessPlan]) -> usize {
        let offset = self.processes.len();
        self.processes.extend(plans.iter().map(|p| PlannedProcess {
            fleet: label.to_string(),
            role: p.role.clone(),
            model: p.model.clone(),
            failpoints: p.failpoints.clone(),
            mutant: p.mutant.clone(),
            env: p.env.clone(),
            pid: None,
        }));
        offset
    }

    /// Records the pids of the fleet whose first process is at `offset`.
    pub fn reaped(&mut self, offset: usize, outcomes: &[ProcessOutcome]) {
        for o in outcomes {
            if let Some(p) = self.processes.get_mut(offset + o.index) {
                p.pid = (o.pid != 0).then_some(o.pid);
            }
        }
    }

    /// Records the faults `routes` served, in request order (clean responses left out); a route seen
    /// again replaces its earlier entry.
    pub fn routes(&mut self, routes: &[&RouteHandle]) {
        for route in routes {
            let faults = route
                .served_faults()
                .into_iter()
                .filter(|f| *f != Fault::Ok)
                .map(|f| f.to_string())
                .collect();
            let planned = PlannedRoute {
                path: route.path().to_string(),
                model: route.model_id().map(str::to_string),
                faults,
            };
            match self.routes.iter_mut().find(|r| r.path == planned.path) {
                Some(r) => *r = planned,
                None => self.routes.push(planned),
            }
        }
    }

    /// Records a gate release: `parked` responses held out of `processes` processes.
    pub fn gate_released(&mut self, gate: &str, parked: u64, processes: usize) {
        self.gate_releases.push(GateRelease { gate: gate.to_string(), parked, processes });
    }

    /// Records the holds of a fleet (see [`crate::scenarios::holds`]), in release order.
    pub fn held(&mut self, holds: Vec<(u32, PlannedHold)>) {
        self.holds.extend(holds);
    }

    /// The plan: the knobs of `tier` for `scenario`, what was recorded, kills from `events`, fixtures.
    pub fn plan(
        &self,
        scenario: &str,
        tier: &TierConfig,
        target: &Target,
        events: &[TimelineEvent],
    ) -> RunPlan {
        let kills = events
            .iter()
            .filter(|e| e.kind == EventKind::Sigkill)
            .map(|e| PlannedKill {
                process: e.pid.and_then(|pid| self.processes.iter().position(|p| p.pid == Some(pid))),
                trigger: e.detail.clone(),
            })
            .collect();
        let mut plan = RunPlan {
            schema_version: PLAN_SCHEMA_VERSION,
            scenario: scenario.to_string(),
            seed: tier.seed,
            tier: tier.tier.as_str().to_string(),
            mutant: tier.mutant.clone(),
            process_cap: tier.process_cap,
            fault_cap: crate::replay::fault_cap(),
            processes: self.processes.clone(),
            routes: self.routes.clone(),
            gate_releases: self.gate_releases.clone(),
            holds: self
                .holds
                .iter()
                .map(|(pid, h)| PlannedHold {
                    process: self.processes.iter().position(|p| p.pid == Some(*pid)),
                    ..h.clone()
                })
                .collect(),
            kills,
            fixtures: target.models.iter().map(|(id, m)| (id.clone(), m.sha256.clone())).collect(),
            ..RunPlan::default()
        };
        crate::replay::carry_reductions(&mut plan);
        plan
    }
}
