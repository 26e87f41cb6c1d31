//! The end of a scenario run: **check** every invariant once (held, violated or skipped), add the
//! setup errors the outcomes show and whether the seeded bug was active, then **write** the record once,
//! keeping the run's directory when it failed. Nothing rewrites a record afterwards.

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

use super::{ScenarioRun, keep_dir};
use crate::invariants::{self, Expectations, Observations, OutcomeClass};
use crate::orchestrator::ProcessOutcome;
use crate::record::{self, RecordInput};

impl ScenarioRun<'_> {
    /// Setup errors visible in the outcomes: a process that could not start, or that the target refused
    /// to run (its usage class) although usage was not what the scenario asked for.
    fn setup_errors_in_outcomes(&self) -> Vec<String> {
        let codes = &self.scenario.target.spec.exit_codes;
        let mut errors = Vec::new();
        let all = self
            .outcomes
            .iter()
            .map(|o| (o, self.expectations.processes.get(o.index)))
            .chain(
                self.recovery
                    .iter()
                    .flat_map(|r| r.outcomes.iter().map(|o| (o, r.expectations.get(o.index)))),
            )
            .chain(
                self.phases
                    .iter()
                    .flat_map(|p| p.outcomes.iter().map(|o| (o, p.expectations.processes.get(o.index)))),
            );
        for (o, e) in all {
            if let Some(err) = &o.spawn_error {
                errors.push(format!("{} could not start: {err}", o.role));
            } else if OutcomeClass::of(o, codes) == OutcomeClass::Usage
                && !e.is_some_and(|e| e.allowed.contains(&OutcomeClass::Usage))
            {
                errors.push(format!(
                    "the target rejected its configuration (usage error): {}: {}",
                    o.describe(),
                    o.stderr_tail(300).trim().replace('\n', " | ")
                ));
            }
        }
        errors
    }

    /// Whether some process printed the target's active-mutant marker (`None` without a mutant).
    fn mutant_active(&self) -> Option<bool> {
        let mutant = self.scenario.tier.mutant.as_deref()?;
        let marker = self.scenario.target.spec.mutants.as_ref().map(|m| m.marker_for(mutant))?;
        let all = self
            .outcomes
            .iter()
            .chain(self.recovery.iter().flat_map(|r| &r.outcomes))
            .chain(self.phases.iter().flat_map(|p| &p.outcomes));
        let active = all.into_iter().any(|o| o.stderr().contains(&marker));
        Some(active)
    }

    /// Checks every invariant once over everything observed, merges the earlier phases and the
    /// scenario-specific verdicts, and writes the record once. A failed or errored run's temp dir is kept
    /// (moved to `$STRESS_KEEP_DIR` or `<results>/kept/`).
    pub fn evaluate(mut self) -> ScenarioRecord {
        self.snapshot_after_fleet();
        let after_recovery = self.recovery.is_some().then(|| self.snapshots());
        let trace = self.scenario.trace_observation(&self.cache_dirs(), &self.compiled_dirs());
        let (trace, trace_error) = match trace {
            Ok(t) => (t, None),
            Err(e) => (None, Some(e)),
        };
        let target = &self.scenario.target;
        let (caches, compiled) = self.after_fleet.as_ref().expect("snapshotted");
        let obs = Observations {
            target,
            expectations: &self.expectations,
            outcomes: &self.outcomes,
            caches,
            compiled,
            after_recovery: after_recovery.as_ref().map(|(c, d)| (c.as_slice(), d.as_slice())),
            compiled_reference: self.compiled_reference.as_ref(),
            readers: self.reader_report.as_ref(),
            served: self.served.as_ref(),
            recovery: self.recovery.as_ref(),
            trace: trace.as_ref(),
            live_locks: Some(&self.live_locks),
        };
        let mut results = invariants::check(&obs);
        let findings = invariants::findings(&obs);
        let mutant_active = self.mutant_active();
        let mut setup_errors = std::mem::take(&mut self.setup_errors);
        setup_errors.extend(trace_error);
        setup_errors.extend(self.setup_errors_in_outcomes());
        let mut phase_runs = Vec::new();
        for phase in std::mem::take(&mut self.phases) {
            merge_all(&mut results, phase.results, Some(&phase.label));
            phase_runs.push((phase.label, phase.outcomes, phase.expectations));
        }
        merge_all(&mut results, std::mem::take(&mut self.verdicts), None);
        let failed = results.iter().any(InvariantResult::is_violated) || !setup_errors.is_empty();
        self.write(results, setup_errors, failed, phase_runs, mutant_active, findings)
    }

    /// [`ScenarioRun::evaluate`], then panics listing every violated invariant (or setup error) with its
    /// evidence.
    pub fn finish(self) -> ScenarioRecord {
        let record = self.evaluate();
        crate::scenarios::assert_held(&record);
        record
    }
}

/// Merges `more` into `results` by name (violated wins; evidence labelled); unknown names are appended.
pub fn merge_all(results: &mut Vec<InvariantResult>, more: Vec<InvariantResult>, label: Option<&str>) {
    for r in more {
        match results.iter_mut().find(|x| x.name == r.name) {
            Some(existing) => existing.merge(r, label),
            None => {
                let mut r = r;
                if let Some(l) = label {
                    r.evidence = r.evidence.into_iter().map(|e| format!("[{l}] {e}")).collect();
                }
                results.push(r);
            }
        }
    }
}

impl ScenarioRun<'_> {
    /// Writes the record once (see the module doc), keeping the scenario's directory when it failed.
    fn write(
        mut self,
        mut results: Vec<InvariantResult>,
        setup_errors: Vec<String>,
        failed: bool,
        phase_runs: Vec<(String, Vec<ProcessOutcome>, Expectations)>,
        mutant_active: Option<bool>,
        findings: Vec<stress_cache_metadata::Finding>,
    ) -> ScenarioRecord {
        let target = &self.scenario.target;
        let results_dir = record::results_dir(target);
        let root = self.scenario.root.path().to_path_buf();
        let kept = if failed { keep_dir(&root, &self.scenario.name, &results_dir) } else { None };
        let mut setup_errors = setup_errors;
        if let Some(kept) = &kept {
            // Evidence names files where they are now.
            let (from, to) = (root.display().to_string(), kept.display().to_string());
            for e in results.iter_mut().flat_map(|r| r.evidence.iter_mut()).chain(setup_errors.iter_mut()) {
                *e = e.replace(&from, &to);
            }
        }
        let input = |expectations, outcomes| RecordInput {
            scenario: &self.scenario.name,
            tier: &self.scenario.tier,
            target,
            expectations,
            outcomes,
            invariants: &results,
            served: self.served.as_ref(),
            started_unix_ms: self.started_unix_ms,
            wall: self.wall,
            kept_dir: kept.as_deref(),
        };
        // Figures are the fleet's; earlier phases count as processes of the scenario (outcomes, runs);
        // the recovery run is listed in the process runs only.
        let mut record = record::build_record(&input(&self.expectations, &self.outcomes));
        for (label, phase_outcomes, phase_expectations) in &phase_runs {
            let phase = record::build_record(&input(phase_expectations, phase_outcomes));
            for (class, n) in phase.outcomes {
                *record.outcomes.entry(class).or_default() += n;
            }
            record.processes += phase.processes;
            record.process_runs.extend(phase.process_runs.into_iter().map(|mut r| {
                r.role = format!("{label}: {}", r.role);
                r
            }));
        }
        if let Some(r) = &self.recovery {
            let expectations = Expectations { processes: r.expectations.clone(), ..Expectations::default() };
            let recovery = record::build_record(&input(&expectations, &r.outcomes));
            record.process_runs.extend(recovery.process_runs);
        }
        record.setup_errors = setup_errors;
        record.mutant_active = mutant_active;
        record.findings = findings;
        record.crash_states = self.crash_states;
        let long_run = std::mem::take(&mut self.long_run);
        record.findings.extend(long_run.findings);
        for (class, n) in long_run.outcomes {
            *record.outcomes.entry(class).or_default() += n;
            record.processes += n;
        }
        record.soak = long_run.soak;
        record.scale = long_run.scale;
        let mut events = std::mem::take(&mut self.scenario.events);
        events.sort_by_key(|e| e.unix_ms);
        record.plan =
            Some(self.scenario.recorder.plan(&self.scenario.name, &self.scenario.tier, target, &events));
        record.events = events;
        if let Err(e) = record::write_record(&record, &results_dir) {
            log::warn!("{e}");
        }
        record
    }
}
