//! `cargo stress-cache replay RECORD.json [--times N]`: runs the record's plan again against the current
//! target build — the one scenario, through nextest (no retry), with the plan in `STRESS_REPLAY_PLAN` so
//! the suite takes its seed, tier, mutant and caps — and compares every attempt with the record.
//!
//! A plan that no longer fits the target (a failpoint or mutant no longer declared, other fixture bytes,
//! no such scenario test) stops before anything runs, with exit 2.

use std::path::{Path, PathBuf};

use stress_cache_metadata::{RunPlan, ScenarioRecord, SuiteEnv, Tier};

use crate::build::Flavor;
use crate::cargo::Cargo;
use crate::cli::{GlobalOpts, TargetOpts, TierOpts};
use crate::compare::{self, Comparison};
use crate::errors::{Error, Result};
use crate::interrupt::Interrupt;
use crate::knobs::{Knobs, env_knobs};
use crate::nextest::{self, Listed, Selection};
use crate::plan_check::{self, PlanMismatch};
use crate::rundir;
use crate::{PreparedRun, Setup, emit, stderr_line};
use stress_cache_metadata::report::RunVerdict;

/// A record and its plan, read from `path`.
pub fn read(path: &Path) -> Result<(ScenarioRecord, RunPlan)> {
    let record = crate::inputs::read_record(path)?;
    let plan = plan_check::plan_of(&record, path)?;
    Ok((record, plan))
}

/// The target built and prepared once, replaying plans of one scenario into one run directory.
pub struct Replayer<'a> {
    setup: Setup,
    prepared: PreparedRun,
    global: &'a GlobalOpts,
    interrupt: &'a Interrupt,
    trace: Option<bool>,
    attempts: std::cell::Cell<u32>,
}

impl<'a> Replayer<'a> {
    /// Reads the workspace, checks `plan` against the target, builds it (with mutants when the plan
    /// has one) and creates the run directory `label-…`.
    pub fn new(
        cargo: Cargo,
        global: &'a GlobalOpts,
        target: &TargetOpts,
        plan: &RunPlan,
        label: &str,
        interrupt: &'a Interrupt,
    ) -> Result<Self> {
        let setup = crate::setup(cargo, global, target)?;
        crate::stop_if_interrupted(interrupt, "reading the workspace")?;
        plan_check::check_declared(plan, &setup.target.spec)?;
        let tier = TierOpts {
            tier: Tier::from_name(&plan.tier),
            filtersets: Vec::new(),
            partition: None,
            run_dir: None,
            seed: Some(plan.seed),
            processes: plan.process_cap,
            // Prune nothing: the record being replayed may live in any older run dir (`clean` prunes).
            keep: usize::MAX,
        };
        let knobs = Knobs::resolve(&tier, None, env_knobs()?);
        let flavor = if plan.mutant.is_some() { Flavor::WithMutants } else { Flavor::Failpoints };
        let built = crate::build::target_executable(&setup.cargo, &setup.target, flavor, interrupt)?;
        crate::stop_if_interrupted(interrupt, "building the target")?;
        let prepared = PreparedRun::create(&setup, &tier, &knobs, label, built)?;
        let plan_copy = prepared.dir.join("replayed-plan.json");
        let text = serde_json::to_string_pretty(plan).map_err(|e| Error::Usage(e.to_string()))?;
        std::fs::write(&plan_copy, text).map_err(|source| Error::io("cannot write", &plan_copy, source))?;
        let fixtures = stress_cache_metadata::FixtureSet::read(&prepared.fixtures)
            .map_err(|e| Error::Usage(format!("cannot read the prepared fixtures: {e}")))?;
        plan_check::check_fixtures(plan, &fixtures)?;
        let replayer = Replayer {
            setup,
            prepared,
            global,
            interrupt,
            trace: knobs.trace,
            attempts: std::cell::Cell::new(0),
        };
        replayer.require_test(&plan.scenario, Tier::from_name(&plan.tier).unwrap_or(Tier::Pr))?;
        Ok(replayer)
    }

    /// The run directory.
    pub fn dir(&self) -> &Path {
        &self.prepared.dir
    }

    /// The size in bytes of each prepared model fixture, by id (the ones that cannot be read are left
    /// out).
    pub fn fixture_sizes(&self) -> std::collections::BTreeMap<String, u64> {
        let Ok(set) = stress_cache_metadata::FixtureSet::read(&self.prepared.fixtures) else {
            return Default::default();
        };
        set.models
            .iter()
            .filter_map(|m| Some((m.id.clone(), std::fs::metadata(&m.path).ok()?.len())))
            .collect()
    }

    fn selection(&self, scenario: &str) -> Selection {
        Selection {
            filtersets: vec![plan_check::test_filter(scenario)],
            partition: None,
            output: nextest::Output::of(self.global.quiet, self.global.verbose),
            retries: Some(0),
        }
    }

    /// The plan's scenario test must be in its tier's profile (a nightly part is not in the PR one).
    fn require_test(&self, scenario: &str, tier: Tier) -> Result<()> {
        let listed = nextest::list(
            &self.setup.cargo,
            tier.nextest_profile(),
            &self.selection(scenario),
            Some(self.interrupt),
        )?;
        match listed {
            Listed::Scenarios(s) if !s.scenarios.is_empty() => Ok(()),
            Listed::Scenarios(_) => Err(PlanMismatch::NoScenario {
                scenario: scenario.to_string(),
                test: plan_check::test_name(scenario),
            }
            .into()),
            Listed::Stopped(_) => crate::stop_if_interrupted(self.interrupt, "listing the scenario"),
        }
    }

    /// Runs `plan` once (a new `attempt-<n>/` of the run directory) and returns the scenario's record.
    pub fn run(&self, plan: &RunPlan) -> Result<ScenarioRecord> {
        let n = self.attempts.get() + 1;
        self.attempts.set(n);
        let dir = rundir::subdir(&self.prepared.dir, &format!("attempt-{n}"))?;
        let records = rundir::subdir(&dir, "records")?;
        let plan_path = dir.join("plan.json");
        let text = serde_json::to_string_pretty(plan).map_err(|e| Error::Usage(e.to_string()))?;
        std::fs::write(&plan_path, text).map_err(|source| Error::io("cannot write", &plan_path, source))?;
        let tmp_dir = crate::tmpdir::create(&dir)?;
        let env = SuiteEnv {
            target_bin: Some(self.prepared.target_bin.clone()),
            target_spec: Some(self.prepared.spec.clone()),
            fixtures: Some(self.prepared.fixtures.clone()),
            tier: Tier::from_name(&plan.tier),
            processes: plan.process_cap,
            seed: Some(plan.seed),
            mutant: plan.mutant.clone(),
            results_dir: Some(records.clone()),
            keep_dir: Some(dir.join("kept")),
            tmp_dir: Some(tmp_dir.clone()),
            trace: self.trace,
            spec_check_out: None,
            replay_plan: Some(plan_path),
        };
        let outcome = nextest::run_tier(
            &self.setup.cargo,
            self.setup.workspace.root(),
            &self.setup.target_dir,
            &env,
            &self.selection(&plan.scenario),
            self.interrupt,
            Some(1),
        );
        crate::run::clean_tmp(&tmp_dir, &format!("replay attempt {n}"));
        let outcome = outcome?;
        if let Some(junit) = &outcome.junit {
            let dest = dir.join("junit.xml");
            std::fs::copy(junit, &dest).map_err(|source| Error::io("cannot copy", &dest, source))?;
        }
        if outcome.stopped.is_some() {
            crate::stop_if_interrupted(self.interrupt, "replaying")?;
        }
        newest_record(&records, &plan.scenario)
    }
}

/// The record of `scenario` a replay wrote into `dir`.
fn newest_record(dir: &Path, scenario: &str) -> Result<ScenarioRecord> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|source| Error::io("cannot read", dir, source))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    found.sort();
    for path in found.iter().rev() {
        let record = crate::inputs::read_record(path)?;
        if record.scenario == scenario {
            return Ok(record);
        }
    }
    Err(Error::NoReplayRecord { scenario: scenario.to_string(), dir: dir.to_path_buf() })
}

/// `replay RECORD --times N`: prints the scenario's tables and one line per attempt (what differed),
/// then the reproduction rate. Exit 1 when some attempt failed (the recorded violation again, or
/// another), 0 when every attempt passed.
pub fn replay(
    cargo: Cargo,
    global: &GlobalOpts,
    target: &TargetOpts,
    record_path: &Path,
    times: u32,
    interrupt: &Interrupt,
) -> Result<()> {
    let (record, plan) = read(record_path)?;
    let replayer = Replayer::new(cargo, global, target, &plan, "replay", interrupt)?;
    stderr_line(&format!("stress-cache: replaying {} ({})", plan.scenario, plan.summary()));
    let mut comparisons: Vec<Comparison> = Vec::new();
    let mut per_invariant: Vec<(&str, u32)> = record.violated().into_iter().map(|v| (v, 0)).collect();
    for n in 1..=times {
        let replayed = replayer.run(&plan)?;
        let c = compare::compare(&record, &replayed);
        stderr_line(&attempt_line(n, times, &c, &record));
        let violated = replayed.violated();
        for (name, count) in &mut per_invariant {
            *count += u32::from(violated.contains(name));
        }
        comparisons.push(c);
    }
    let inputs = crate::inputs::collect(&[replayer.dir().to_path_buf()])?;
    let agg = crate::aggregate::from_inputs(&inputs);
    crate::report::write_all(replayer.dir(), &agg)?;
    emit(&crate::conclusion::render_stdout(&agg, global));
    let reproduced = comparisons.iter().filter(|c| c.reproduced).count();
    let target = if record.violated().is_empty() {
        "a pass".to_string()
    } else {
        format!("violated {}", record.violated().join(", "))
    };
    let each: Vec<String> = per_invariant.iter().map(|(name, n)| format!("{name} {n}/{times}")).collect();
    let each = if each.len() > 1 { format!(" (each: {})", each.join(", ")) } else { String::new() };
    let summary = format!(
        "{}: recorded {target}; reproduced in {reproduced} of {times} replays ({:.0} %){each}",
        plan.scenario,
        100.0 * reproduced as f64 / f64::from(times)
    );
    stderr_line(&format!("stress-cache: artifacts in {}", replayer.dir().display()));
    if comparisons.iter().any(|c| c.outcome != stress_cache_metadata::ScenarioOutcome::Passed) {
        let verdict =
            if comparisons.iter().any(|c| c.outcome == stress_cache_metadata::ScenarioOutcome::Failed) {
                RunVerdict::Fail
            } else {
                RunVerdict::Error
            };
        return Err(Error::RunFailed { verdict, summary });
    }
    stderr_line(&format!("stress-cache: {summary}"));
    Ok(())
}

fn attempt_line(n: u32, times: u32, c: &Comparison, record: &ScenarioRecord) -> String {
    let what = if c.reproduced {
        if record.violated().is_empty() {
            "passed again".to_string()
        } else {
            "the same violation again".to_string()
        }
    } else {
        format!("did NOT reproduce ({})", c.outcome.as_str())
    };
    let mut line = format!("stress-cache: replay {n}/{times}: {what}");
    if !c.differences.is_empty() {
        line.push_str(&format!("; differs: {}", c.differences.join("; ")));
    }
    line
}
