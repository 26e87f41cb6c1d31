//! `cargo stress-cache check-spec`: one clean run of the target, observed, so a new user sees which
//! files each pattern of the spec matched and which matched none — before any scenario reads a sidecar
//! as a model or a model as a lock. Two processes share a cold cache while the download is parked
//! mid-body (so temp and lock files exist to be seen), then a warm run; the cache is listed at each
//! of those three moments and every file is given the roles the spec's patterns claim for it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use stress_cache_metadata::{FileRoles, Moment, SeenFile, SpecCheckReport};

use crate::invariants::OutcomeClass;
use crate::scenario::ScenarioError;
use crate::scenarios::setup::SmallModel;
use crate::scenarios::{ScenarioOptions, overlap, setup};
use crate::server::Gate;
use crate::snapshot::walk;
use crate::target::Target;

/// Bound on waiting for the second process to queue behind the parked download.
const OVERLAP_TIMEOUT: Duration = Duration::from_secs(15);

/// Runs the target as described in the module docs and reports every file its cache held.
pub fn observe(target: &Target) -> Result<SpecCheckReport, ScenarioError> {
    let mut s = setup::scenario_on("spec_check", &ScenarioOptions::default(), target.clone())?;
    let gate = Gate::named("spec-check");
    let SmallModel { server: _server, model, url, .. } = SmallModel::gated(s.target(), &gate)?;
    let cache = s.cache_dir("shared");
    let roles = FileRoles::from_validated(&s.target().spec.files);
    let codes = s.target().spec.exit_codes.clone();
    let plans: Vec<_> = (0..2).map(|i| s.writer(i, &model, &url, &cache)).collect();
    let warm = s.writer(2, &model, &url, &cache).role("warm");
    let mut seen: BTreeMap<String, SeenFile> = BTreeMap::new();
    let mut problems = Vec::new();

    let mut run = s.launch(plans)?;
    let overlap =
        overlap::hold_until_overlap_then(&run, &gate, std::slice::from_ref(&cache), OVERLAP_TIMEOUT, || {
            list(&cache, &roles, Moment::DuringDownload, &mut seen)
        });
    if overlap.by_deadline {
        problems.push(format!("the download could not be observed in progress: {}", overlap.describe()));
    }
    run.wait();
    list(&cache, &roles, Moment::AfterColdRun, &mut seen);
    let recovery = run.recover(warm).to_vec();
    list(&cache, &roles, Moment::AfterWarmRun, &mut seen);
    for o in run.outcomes().iter().chain(&recovery) {
        if OutcomeClass::of(o, &codes) != OutcomeClass::Ok {
            problems.push(format!("a clean run of the target failed: {}", o.describe()));
        }
    }
    Ok(SpecCheckReport {
        target: target.spec.display_name().to_string(),
        files: seen.into_values().collect(),
        problems,
    })
}

/// Adds every regular file and symlink under `cache` to `seen`, with its roles and `moment`.
fn list(cache: &Path, roles: &FileRoles, moment: Moment, seen: &mut BTreeMap<String, SeenFile>) {
    for entry in walk(cache).into_iter().filter(|e| e.is_file || e.is_symlink) {
        let path = entry.relative.display().to_string();
        let file = seen.entry(path.clone()).or_insert_with(|| SeenFile {
            path,
            moments: Default::default(),
            roles: roles.roles_of(&entry.relative),
            is_dir: false,
        });
        file.moments.insert(moment);
    }
}
