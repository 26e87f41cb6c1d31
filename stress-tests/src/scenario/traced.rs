//! Fleets run under the file-system tracer: every process of a scenario is wrapped in strace, its trace
//! file kept by process index, and the trace invariants checked over all of them on the cache roles
//! the target declares. A missing tracer is a setup error, never a silent skip.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::{Scenario, ScenarioError};
use crate::invariants::TraceObservation;
use crate::orchestrator::{Fleet, FleetProcess, ProcessOutcome};
use crate::target::ProcessPlan;

/// How long a detached tracer may take to write its last lines after its process was reaped.
const TRACE_FLUSH_DEADLINE: Duration = Duration::from_secs(5);

/// A fleet whose processes run under the file-system tracer, and their trace files (by fleet index).
pub struct TracedFleet {
    /// The fleet.
    pub fleet: Fleet,
    /// Trace file of each process (empty when tracing is off).
    pub traces: Vec<PathBuf>,
    /// Index of its first process in the scenario's plan.
    pub(super) plan_offset: usize,
}

impl Scenario {
    /// Starts `plans` as one fleet released together, each process under the file-system tracer (its
    /// trace file is kept for the scenario's trace invariants).
    pub fn start_fleet(&mut self, plans: &[ProcessPlan], label: &str) -> Result<TracedFleet, ScenarioError> {
        self.start_fleet_with_deadline(plans, label, self.deadline)
    }

    /// [`Scenario::start_fleet`] with its own watchdog deadline.
    pub fn start_fleet_with_deadline(
        &mut self,
        plans: &[ProcessPlan],
        label: &str,
        deadline: Duration,
    ) -> Result<TracedFleet, ScenarioError> {
        self.fleets += 1;
        let dir = self.root.path().join(format!("{label}-{}", self.fleets));
        std::fs::create_dir_all(&dir).map_err(|source| ScenarioError::Io {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        let strace = self.strace()?;
        let plan_offset = self.recorder.fleet(label, plans);
        let mut traces = Vec::new();
        let processes = plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let _ = std::fs::create_dir_all(&p.output_dir);
                let command = self.target.command_for(p);
                let cwd = command
                    .get_current_dir()
                    .map(Path::to_path_buf)
                    .or_else(|| std::env::current_dir().ok())
                    .unwrap_or_default();
                let command = match &strace {
                    Some(strace) => {
                        let file = dir.join(format!("trace-{i}.strace"));
                        let wrapped =
                            crate::fs_trace::wrap(&command, strace, &file, p.trace_inject.as_deref());
                        traces.push(file);
                        wrapped
                    }
                    None => command,
                };
                let mut process = FleetProcess::new(&p.role, command);
                process.nofile_limit = p.nofile_limit;
                process.no_dac_override = p.no_dac_override;
                if self.target.spec.prints_path {
                    process.observe_printed_path = Some(cwd.clone());
                }
                process
            })
            .collect();
        let fleet = Fleet::start(&dir, processes, deadline)?;
        Ok(TracedFleet { fleet, traces, plan_offset })
    }

    /// The tracer, unless `STRESS_TRACE=off`. A missing tracer is a setup error, never a silent skip.
    fn strace(&self) -> Result<Option<PathBuf>, ScenarioError> {
        if !self.tier.trace {
            return Ok(None);
        }
        crate::fs_trace::strace_path().map(Some).map_err(|e| ScenarioError::Trace(e.to_string()))
    }

    /// Waits for a traced fleet, then for its tracers to finish writing; remembers the trace files.
    pub fn reap(&mut self, fleet: &mut TracedFleet) -> Vec<ProcessOutcome> {
        let outcomes = fleet.fleet.wait();
        self.events.extend(fleet.fleet.events());
        self.recorder.reaped(fleet.plan_offset, &outcomes);
        for (file, outcome) in fleet.traces.iter().zip(&outcomes) {
            // The tracer is a detached grandchild: it may still be writing the last lines. A hung
            // process's whole group (tracer included) was killed by the watchdog: nothing more comes.
            if !outcome.hung {
                crate::fs_trace::wait_complete(file, outcome.pid, TRACE_FLUSH_DEADLINE);
            } else {
                // The watchdog killed the whole group, tracer included, so the trace has no exit line:
                // write the one the tracer would have, stamped now (the process is reaped, so dead), or
                // the trace checks would take it for alive until the end of the scenario.
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_secs_f64())
                    .unwrap_or_default();
                // A leading newline ends whatever line the killed tracer left half-written.
                let line = format!("\n{} {now:.6} +++ killed by SIGKILL +++\n", outcome.pid);
                let appended = std::fs::OpenOptions::new()
                    .append(true)
                    .open(file)
                    .and_then(|mut f| std::io::Write::write_all(&mut f, line.as_bytes()));
                if let Err(e) = appended {
                    log::warn!("cannot mark {} dead in {}: {e}", outcome.pid, file.display());
                }
            }
        }
        let index = self.traces.len();
        self.traces.extend(fleet.traces.drain(..).enumerate().map(|(i, f)| (index + i, f)));
        outcomes
    }

    /// The trace files of every process reaped so far, by process index (e.g. to rebuild crash states
    /// from a clean run's operations).
    pub fn trace_files(&self) -> &[(usize, PathBuf)] {
        &self.traces
    }

    /// The verdicts of the trace invariants over every traced process of the scenario so far, on
    /// `caches` and `compiled` (`Ok(None)` when tracing is off).
    pub fn trace_observation(
        &self,
        caches: &[PathBuf],
        compiled: &[PathBuf],
    ) -> Result<Option<TraceObservation>, String> {
        if self.traces.is_empty() {
            return Ok(None);
        }
        let mut parsed = Vec::new();
        for (process, file) in &self.traces {
            match crate::fs_trace::read_trace(file, *process) {
                Ok(p) => parsed.push(p),
                Err(e) => return Err(format!("the file-system trace could not be read: {e}")),
            }
        }
        let trace = crate::fs_trace::FsTrace::merge(parsed);
        let roles = trace_roles(&self.target.spec, caches, compiled);
        Ok(Some(crate::fs_trace::check(&trace, &roles)))
    }
}

/// The roles of the files in `caches` and `compiled` for the trace checks, from the target's patterns.
fn trace_roles(
    spec: &stress_cache_metadata::TargetSpec,
    caches: &[PathBuf],
    compiled: &[PathBuf],
) -> Vec<crate::fs_trace::CacheRoles> {
    use stress_cache_metadata::{FilePattern, FileRoles};
    let files = &spec.files;
    let compiled_roles = FileRoles::from_validated(files);
    let mut roles: Vec<crate::fs_trace::CacheRoles> = caches
        .iter()
        .map(|dir| crate::fs_trace::CacheRoles {
            dir: dir.clone(),
            final_: vec![compiled_roles.final_.clone()],
            partial: vec![compiled_roles.partial.clone()],
            lock: compiled_roles.lock.iter().cloned().collect(),
            ignore: compiled_roles.ignore.iter().cloned().collect(),
            lock_kind_exists: files.lock_kind == stress_cache_metadata::LockKind::Exists,
            entries_are_dirs: false,
        })
        .collect();
    if let Some(c) = &spec.compiled {
        roles.extend(compiled.iter().map(|dir| crate::fs_trace::CacheRoles {
            dir: dir.clone(),
            final_: vec![FilePattern::new(&c.entry)],
            partial: vec![FilePattern::new(&c.partial)],
            lock: c.lock.iter().map(|l| FilePattern::new(l)).collect(),
            ignore: Vec::new(),
            lock_kind_exists: files.lock_kind == stress_cache_metadata::LockKind::Exists,
            entries_are_dirs: true,
        }));
    }
    roles
}
