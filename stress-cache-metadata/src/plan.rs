//! The plan of one scenario run: everything it did to the target, recorded in its
//! [`ScenarioRecord::plan`](crate::ScenarioRecord::plan) so that `cargo stress-cache replay` can run the
//! same scenario again with the same seed, processes, mutant and faults, and say what differs.
//!
//! The *knobs* ([`RunPlan::scenario`], [`RunPlan::seed`], [`RunPlan::tier`], [`RunPlan::mutant`],
//! [`RunPlan::process_cap`], [`RunPlan::fault_cap`]) are what a replay is driven by (a scenario is a
//! deterministic function of them: the harness draws no randomness of its own). The rest is what the run
//! did with them — processes, fault schedule, gate releases, kills, fixtures — checked against the replay.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

/// Version of [`RunPlan`]; readers reject another.
pub const PLAN_SCHEMA_VERSION: u32 = 1;

/// One scenario run as a plan (see the module docs).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RunPlan {
    /// [`PLAN_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The scenario's record name (what `stress_tests::scenarios::by_name` runs).
    pub scenario: String,
    /// The seed of the run.
    pub seed: u64,
    /// `pr` or `nightly`.
    pub tier: String,
    /// The seeded bug every target process ran with.
    pub mutant: Option<String>,
    /// Cap on the processes per scenario (`STRESS_PROCESSES`; a shrunk plan lowers it).
    #[serde(default)]
    pub process_cap: Option<usize>,
    /// Cap on the scheduled faults per route (a shrunk plan lowers it; `None`: as the scenario plans).
    #[serde(default)]
    pub fault_cap: Option<usize>,
    /// Caps on the processes of a role in the scenario's main fleets and its recovery run (a shrunk
    /// plan sets them; a role absent: as the scenario plans). Only [`OPTIONAL_ROLES`] may go to 0.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub role_caps: BTreeMap<String, usize>,
    /// Failpoints left unarmed (a shrunk plan's: their configurations are dropped from every process).
    #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
    pub disarmed_failpoints: BTreeSet<String>,
    /// The scenario picks its models among the `model_cap` smallest fixtures only (a shrunk plan's:
    /// 1 serves one model, the smallest, wherever the scenario would use another).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_cap: Option<usize>,
    /// Every target process started, fleet by fleet, in start order.
    pub processes: Vec<PlannedProcess>,
    /// The server's routes and the faults each served, in order.
    #[serde(default)]
    pub routes: Vec<PlannedRoute>,
    /// Gate releases, in order.
    #[serde(default)]
    pub gate_releases: Vec<GateRelease>,
    /// Processes the harness held right after a sync or an unlock (the overlaps after a gate's release),
    /// in the order it released them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<PlannedHold>,
    /// Processes the harness killed from outside, in order.
    #[serde(default)]
    pub kills: Vec<PlannedKill>,
    /// The model fixtures: id → SHA-256.
    #[serde(default)]
    pub fixtures: BTreeMap<String, String>,
}

/// Roles a shrunk plan may drop entirely: the clean run(s) after the case, which check what it left
/// but are not part of the case itself.
pub const OPTIONAL_ROLES: [&str; 1] = ["recovery"];

/// One target process of a plan.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedProcess {
    /// Its fleet's label (`fleet`, `joiners-1`, `recovery`, `reference`, ...).
    pub fleet: String,
    /// Role (`writer`, `reader`, `gc`, `recovery`, ...).
    pub role: String,
    /// The model requested.
    pub model: String,
    /// Failpoint configuration (`name=action;...`).
    #[serde(default)]
    pub failpoints: Option<String>,
    /// Seeded bug.
    #[serde(default)]
    pub mutant: Option<String>,
    /// Extra environment the harness gave it (beyond the target's declared variables).
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    /// OS pid in the recorded run (to name kills); not part of what a replay must match.
    #[serde(default)]
    pub pid: Option<u32>,
}

/// A route of the model server and what it served.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedRoute {
    /// Path.
    pub path: String,
    /// Model identity served.
    #[serde(default)]
    pub model: Option<String>,
    /// Every fault served (anything but a clean response), in request order.
    #[serde(default)]
    pub faults: Vec<String>,
}

/// A gate release.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct GateRelease {
    /// The gate's name.
    pub gate: String,
    /// Responses parked at it when it was released.
    pub parked: u64,
    /// Processes of the run at that moment.
    pub processes: usize,
}

/// A process the harness held right after a sync or an unlock, and what released it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedHold {
    /// `after-sync` (it synced a file others were still writing) or `after-unlock` (it released a lock
    /// others were blocked on).
    pub kind: String,
    /// Index into [`RunPlan::processes`], when the pid is known.
    pub process: Option<usize>,
    /// What released it (the condition that held, or the deadline).
    pub released: String,
    /// How long it was held (ms); not part of what a replay must match.
    #[serde(default)]
    pub held_ms: u64,
}

/// A process killed from outside, and why.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct PlannedKill {
    /// Index into [`RunPlan::processes`], when the pid is known.
    pub process: Option<usize>,
    /// What triggered it (the phase observed, or the watchdog).
    pub trigger: String,
}

impl RunPlan {
    /// Every failpoint name the plan arms, over all processes.
    pub fn failpoints(&self) -> BTreeSet<String> {
        self.processes.iter().flat_map(|p| failpoint_names(p.failpoints.as_deref().unwrap_or(""))).collect()
    }

    /// Faults served over all routes.
    pub fn fault_count(&self) -> usize {
        self.routes.iter().map(|r| r.faults.len()).sum()
    }

    /// Target processes started (every fleet).
    pub fn process_count(&self) -> usize {
        self.processes.len()
    }

    /// Processes per role, e.g. `{"writer": 16, "recovery": 1}`.
    pub fn roles(&self) -> BTreeMap<String, usize> {
        let mut roles = BTreeMap::new();
        for p in &self.processes {
            *roles.entry(p.role.clone()).or_default() += 1;
        }
        roles
    }

    /// Models requested.
    pub fn models(&self) -> BTreeSet<String> {
        self.processes.iter().map(|p| p.model.clone()).collect()
    }

    /// The cap on the processes of `role`, if the plan sets one.
    pub fn role_cap(&self, role: &str) -> Option<usize> {
        self.role_caps.get(role).copied()
    }

    /// The failpoint configuration `config` without the parts naming a disarmed failpoint (`None` when
    /// nothing is left).
    pub fn armed(&self, config: &str) -> Option<String> {
        let kept: Vec<&str> = config
            .split(';')
            .filter(|part| {
                let name = part.split('=').next().unwrap_or("").trim();
                !name.is_empty() && !self.disarmed_failpoints.contains(name)
            })
            .collect();
        (!kept.is_empty()).then(|| kept.join(";"))
    }

    /// One line: processes by role, faults, failpoints, gate releases, holds, kills.
    pub fn summary(&self) -> String {
        let roles: Vec<String> = self.roles().iter().map(|(r, n)| format!("{n} {r}")).collect();
        let failpoints: Vec<String> = self.failpoints().into_iter().collect();
        format!(
            "{} processes ({}), {} faults, failpoints [{}], {} gate releases, {} holds, {} kills",
            self.process_count(),
            roles.join(", "),
            self.fault_count(),
            failpoints.join(", "),
            self.gate_releases.len(),
            self.holds.len(),
            self.kills.len()
        )
    }
}

/// The failpoint names of a configuration `name=action;name=action`.
pub fn failpoint_names(config: &str) -> Vec<String> {
    config
        .split(';')
        .filter_map(|part| part.split('=').next())
        .map(str::trim)
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failpoints_are_the_names_of_every_armed_configuration() {
        let plan = RunPlan {
            processes: vec![
                PlannedProcess { failpoints: Some("a.b=return(crash);c=pause".into()), ..Default::default() },
                PlannedProcess { failpoints: Some("a.b=return(io)".into()), ..Default::default() },
                PlannedProcess::default(),
            ],
            ..Default::default()
        };
        assert_eq!(plan.failpoints().into_iter().collect::<Vec<_>>(), ["a.b", "c"]);
    }

    #[test]
    fn disarmed_failpoints_are_dropped_from_a_configuration() {
        let plan = RunPlan { disarmed_failpoints: ["a.b".to_string()].into(), ..Default::default() };
        assert_eq!(plan.armed("a.b=return(crash);c=pause").as_deref(), Some("c=pause"));
        assert_eq!(plan.armed("a.b=return(crash)"), None);
        assert_eq!(RunPlan::default().armed("a.b=x").as_deref(), Some("a.b=x"));
    }

    #[test]
    fn plan_round_trips_and_reads_without_optional_parts() {
        let plan = RunPlan {
            schema_version: PLAN_SCHEMA_VERSION,
            scenario: "s".into(),
            seed: 7,
            tier: "pr".into(),
            routes: vec![PlannedRoute { path: "/m".into(), model: None, faults: vec!["Reset".into()] }],
            ..Default::default()
        };
        let text = serde_json::to_string(&plan).unwrap();
        assert_eq!(serde_json::from_str::<RunPlan>(&text).unwrap(), plan);
        let minimal =
            r#"{"schema_version":1,"scenario":"s","seed":1,"tier":"pr","mutant":null,"processes":[]}"#;
        let read: RunPlan = serde_json::from_str(minimal).unwrap();
        assert_eq!(read.fault_count(), 0);
    }
}
