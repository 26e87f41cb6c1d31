//! The scenarios as library functions, so the scenario tests and the mutant tests run the very same
//! code: each is `pub fn <name>(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError>`, runs
//! its fleet, checks every invariant, writes its record and returns it **without asserting**;
//! [`assert_held`] turns a record into a test verdict.

use std::path::Path;

use stress_cache_metadata::{InvariantResult, ScenarioRecord};

pub mod cache_dir;
pub mod contention;
pub mod network;
pub mod overlap;
pub mod setup;
pub mod tmpfs;

/// How a scenario runs beyond the tier: the seeded bug every target process runs with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ScenarioOptions {
    /// Seeded bug (`BEAKER_MUTANT`-style name declared by the target), `None` for the real program.
    pub mutant: Option<String>,
}

impl ScenarioOptions {
    /// Options from the environment: `STRESS_MUTANT` (empty or unset → no mutant).
    pub fn from_env() -> Self {
        let mutant =
            std::env::var("STRESS_MUTANT").ok().map(|v| v.trim().to_string()).filter(|v| !v.is_empty());
        ScenarioOptions { mutant }
    }

    /// Options running every process with the seeded bug `name`.
    pub fn with_mutant(name: &str) -> Self {
        ScenarioOptions { mutant: Some(name.to_string()) }
    }
}

/// Panics with every violated invariant of `record` and its evidence (and where the record and the kept
/// temp dir are); returns quietly when every invariant held.
pub fn assert_held(record: &ScenarioRecord) {
    if record.passed() {
        return;
    }
    let mut results = record.invariants.clone();
    if let Some(kept) = &record.kept_dir {
        results.push(InvariantResult {
            name: "(kept dir)".into(),
            held: false,
            evidence: vec![kept.clone()],
        });
    }
    let label = match &record.mutant {
        Some(m) => format!("{} (mutant {m})", record.scenario),
        None => record.scenario.clone(),
    };
    crate::invariants::assert_all_held(&label, &results);
}

/// Adds scenario-specific verdicts to a record the runner already wrote: a result named like an existing
/// invariant is merged into it (held only if both held; evidence appended), others are appended. When
/// anything changed the record file at `path` is rewritten atomically (temp file + rename), so the JSON on
/// disk always equals the returned record.
pub fn amend(mut record: ScenarioRecord, path: Option<&Path>, extra: Vec<InvariantResult>) -> ScenarioRecord {
    if extra.is_empty() {
        return record;
    }
    for r in extra {
        match record.invariants.iter_mut().find(|i| i.name == r.name) {
            Some(existing) => {
                existing.held &= r.held;
                existing.evidence.extend(r.evidence);
            }
            None => record.invariants.push(r),
        }
    }
    if let Some(path) = path {
        rewrite(&record, path);
    }
    record
}

fn rewrite(record: &ScenarioRecord, path: &Path) {
    let Some(dir) = path.parent() else { return };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{name}.amend.tmp"));
    let written = serde_json::to_vec_pretty(record)
        .map_err(std::io::Error::other)
        .and_then(|json| {
            use std::io::Write;
            let mut file = std::fs::File::create(&tmp)?;
            file.write_all(&json)?;
            file.sync_all()
        })
        .and_then(|()| std::fs::rename(&tmp, path));
    if let Err(e) = written {
        log::warn!("cannot rewrite scenario record {}: {e}", path.display());
        let _ = std::fs::remove_file(&tmp);
    }
}
pub mod compiled;
pub mod crash;
pub mod gc;
pub mod locks;
pub mod phases;
