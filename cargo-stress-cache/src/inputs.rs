//! Reading run directories: the scenario records (`records/*.json`), nextest's JUnit reports
//! (`junit*.xml`) and each run's `run.json`, whatever the nesting (a tier run, a mutants run, several
//! partitions' directories given to `report`).

use std::path::{Path, PathBuf};

use stress_cache_metadata::{RECORD_SCHEMA_VERSION, ScenarioRecord};

use crate::errors::{Error, Result, one_line};
use crate::junit::{self, Observation};
use crate::rundir::{self, RunInfo};

/// How deep [`collect`] descends below a given directory (run dir → repeat → records → scenario files).
const MAX_DEPTH: usize = 8;

/// Directories of a run dir that hold no results: the target's files of kept or leftover scenario
/// temp dirs (which may contain anything, `junit.xml` included), the pinned binary, the self-check's,
/// the suite's reused build.
const NOT_RESULTS: [&str; 5] = ["kept", "tmp", "bin", "self-check", crate::built_suite::DIR];

/// How `shrink` names the minimal run's record it saves beside the original (`<stem>.shrunk.json`): not
/// a result of the run, so kept apart ([`Inputs::shrunk`]).
pub const SHRUNK_SUFFIX: &str = ".shrunk.json";

/// Everything read from run directories.
#[derive(Debug, Default)]
pub struct Inputs {
    /// Scenario records with their files.
    pub records: Vec<(PathBuf, ScenarioRecord)>,
    /// JUnit reports, one per nextest run.
    pub junit: Vec<(PathBuf, Vec<Observation>)>,
    /// Records whose seeded bug is not the one their run was started with: the suite's own
    /// mutant self-checks (a test that runs scenarios against seeded bugs and passes when they are
    /// killed). Their violations are expected, so they are counted but kept out of the verdict.
    pub self_checks: usize,
    /// Every `run.json` found, with its file.
    pub runs: Vec<(PathBuf, RunInfo)>,
    /// Minimal runs `shrink` saved beside a record of the run ([`SHRUNK_SUFFIX`]), with their files.
    pub shrunk: Vec<(PathBuf, ScenarioRecord)>,
}

impl Inputs {
    /// Whether nothing at all was found.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty() && self.junit.is_empty() && self.runs.is_empty()
    }
}

/// Which records belong to the run: `None` = unknown (no `run.json`), all of them.
type Scope = Option<Option<String>>;

/// Reads every record (`*.json` below a `records` directory), JUnit report (`junit*.xml`) and
/// `run.json` under `dirs`.
pub fn collect(dirs: &[PathBuf]) -> Result<Inputs> {
    let mut inputs = Inputs::default();
    for dir in dirs {
        if !dir.is_dir() {
            return Err(Error::io(
                "cannot read run directory",
                dir,
                std::io::Error::new(std::io::ErrorKind::NotFound, "not a directory"),
            ));
        }
        walk(dir, 0, false, &None, &mut inputs)?;
    }
    // Directory order is arbitrary; a stable order keeps reports reproducible.
    inputs.records.sort_by(|a, b| a.0.cmp(&b.0));
    inputs.junit.sort_by(|a, b| a.0.cmp(&b.0));
    inputs.runs.sort_by(|a, b| a.0.cmp(&b.0));
    inputs.shrunk.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(inputs)
}

fn walk(dir: &Path, depth: usize, in_records: bool, scope: &Scope, inputs: &mut Inputs) -> Result<()> {
    let info_path = dir.join(rundir::RUN_INFO);
    let own_scope;
    let scope = if info_path.is_file() {
        let info = rundir::read_info(&info_path)?;
        own_scope = Some(info.mutant.clone());
        inputs.runs.push((info_path, info));
        &own_scope
    } else {
        scope
    };
    let entries = std::fs::read_dir(dir).map_err(|source| Error::io("cannot read directory", dir, source))?;
    for entry in entries {
        let entry = entry.map_err(|source| Error::io("cannot read directory", dir, source))?;
        let path = entry.path();
        let file_type = entry.file_type().map_err(|source| Error::io("cannot stat", &path, source))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if file_type.is_dir() {
            if depth < MAX_DEPTH && !NOT_RESULTS.contains(&name.as_str()) {
                walk(&path, depth + 1, in_records || name == "records", scope, inputs)?;
            }
        } else if file_type.is_file() {
            if in_records && name.ends_with(SHRUNK_SUFFIX) {
                inputs.shrunk.push((path.clone(), read_record(&path)?));
            } else if in_records && name.ends_with(".json") {
                let record = read_record(&path)?;
                match scope {
                    Some(expected) if *expected != record.mutant => inputs.self_checks += 1,
                    _ => inputs.records.push((path.clone(), record)),
                }
            } else if name.starts_with("junit") && name.ends_with(".xml") {
                inputs.junit.push((path.clone(), junit::read(&path)?));
            }
        }
    }
    Ok(())
}

/// Reads one scenario record, rejecting any schema version but [`RECORD_SCHEMA_VERSION`]: an older
/// record says `held: true` where the current schema distinguishes "held" from "not observed".
pub fn read_record(path: &Path) -> Result<ScenarioRecord> {
    let text = std::fs::read_to_string(path).map_err(|source| Error::io("cannot read", path, source))?;
    let parse_error =
        |message: String| Error::Parse { what: "scenario record", path: path.to_path_buf(), message };
    let value: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| parse_error(one_line(&e.to_string())))?;
    match value.get("schema_version").and_then(|v| v.as_u64()) {
        Some(v) if v == u64::from(RECORD_SCHEMA_VERSION) => {}
        Some(v) => {
            return Err(parse_error(format!(
                "schema version {v} is not supported (this cargo-stress-cache reads version \
                 {RECORD_SCHEMA_VERSION}; re-run the suite with a matching version)"
            )));
        }
        None => return Err(parse_error("no schema_version: not a scenario record".to_string())),
    }
    serde_json::from_value(value).map_err(|e| parse_error(one_line(&e.to_string())))
}
