//! The scenarios as library functions, so the scenario tests and the mutant tests run the very same
//! code: each is `pub fn <name>(opts: &ScenarioOptions) -> Result<ScenarioRecord, ScenarioError>`, runs
//! its fleet, checks every invariant, writes its record and returns it **without asserting**;
//! [`assert_held`] turns a record into a test verdict.

use std::path::{Path, PathBuf};

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
/// disk always equals the returned record. If the verdicts turn a passing record into a failing one, the
/// scenario's temp dir `dir` is copied next to the record (`$STRESS_KEEP_DIR` or `<results>/kept/`) for
/// debugging, as the runner does for its own failures.
pub fn amend(
    mut record: ScenarioRecord,
    path: Option<&Path>,
    dir: &Path,
    extra: Vec<InvariantResult>,
) -> ScenarioRecord {
    if extra.is_empty() {
        return record;
    }
    let passed_before = record.passed();
    for r in extra {
        match record.invariants.iter_mut().find(|i| i.name == r.name) {
            Some(existing) => {
                existing.held &= r.held;
                existing.evidence.extend(r.evidence);
            }
            None => record.invariants.push(r),
        }
    }
    if passed_before && !record.passed() && record.kept_dir.is_none() {
        let results = path.and_then(Path::parent).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
        record.kept_dir = keep_copy(dir, &record.scenario, &results).map(|p| p.display().to_string());
    }
    if let Some(path) = path {
        rewrite(&record, path);
    }
    record
}

/// Copies `dir` to `$STRESS_KEEP_DIR` (or `<results>/kept/`) as `<scenario>-<unix ms>-<pid>`.
fn keep_copy(dir: &Path, scenario: &str, results: &Path) -> Option<PathBuf> {
    let base = std::env::var_os("STRESS_KEEP_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| results.join("kept"));
    let dest = base.join(format!("{scenario}-{}-{}", crate::orchestrator::unix_ms_now(), std::process::id()));
    std::fs::create_dir_all(&dest).ok()?;
    for entry in crate::snapshot::walk(dir) {
        let to = dest.join(&entry.relative);
        if entry.is_dir {
            let _ = std::fs::create_dir_all(&to);
        } else if entry.is_file {
            if let Some(parent) = to.parent() {
                let _ = std::fs::create_dir_all(parent);
            }
            let _ = std::fs::copy(&entry.path, &to);
        }
    }
    Some(dest)
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
