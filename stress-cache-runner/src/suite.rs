//! The target as a suite process gets it: handed over by the CLI in the environment (no cargo at all),
//! or — when a test binary runs without the CLI (`cargo nextest run -p stress-tests`) — found, built
//! and given fixtures here, by the same rules as the CLI's.

use std::fs;
use std::path::{Path, PathBuf};

use stress_cache_metadata::{FixtureSet, SuiteEnv, TargetSpec};

use crate::build::{self, Flavor, PlainWait};
use crate::cargo::{Cargo, CargoColor};
use crate::fixtures;
use crate::lock::DirLock;
use crate::workspace::{TargetSource, Workspace};
use crate::{Result, RunnerError};

/// A target ready to stress.
#[derive(Debug, Clone)]
pub struct PreparedTarget {
    /// Its declaration.
    pub spec: TargetSpec,
    /// The executable.
    pub bin: PathBuf,
    /// Its fixtures.
    pub fixtures: FixtureSet,
    /// `<target dir>/stress-cache`: where the suite puts what the environment does not place.
    pub stress_dir: PathBuf,
}

/// The target of this suite process: the one the CLI handed over in `env` when it set the spec, the
/// executable and the fixtures; else the one the workspace at `manifest` declares (or `env`'s spec
/// file names), built with its failpoints and mutants features once per nextest run.
pub fn prepare(env: &SuiteEnv, manifest: &Path) -> Result<PreparedTarget> {
    if let (Some(spec), Some(bin), Some(fixtures)) = (&env.target_spec, &env.target_bin, &env.fixtures) {
        return handed_over(spec, bin, fixtures);
    }
    let cargo = Cargo::from_env(Some(manifest.to_path_buf()), None, CargoColor::Never, true);
    let workspace = Workspace::load(&cargo)?;
    let stress_dir = workspace.target_dir().join("stress-cache");
    let target = workspace.resolve_target(None, env.target_spec.as_deref())?;
    let bin = match (&env.target_bin, &target.source) {
        (Some(bin), _) => bin.clone(),
        (None, TargetSource::SpecFile { .. }) => {
            build::target_executable(&cargo, &target, Flavor::Failpoints, &PlainWait)?
        }
        (None, TargetSource::Package { name, .. }) => {
            let flavor =
                if target.spec.features.mutants.is_some() { Flavor::WithMutants } else { Flavor::Failpoints };
            build_once_per_run(&cargo, &target, name, flavor, &stress_dir.join("suite-bin"))?
        }
    };
    let (_, fixtures) = fixtures::prepare(&bin, &target.spec, &stress_dir.join("fixtures"))?;
    Ok(PreparedTarget { spec: target.spec, bin, fixtures, stress_dir })
}

/// The target's declaration only, without building it (what a test harness needs to list one test per
/// declared failpoint or seeded bug): the spec the CLI handed over, else the one the workspace at
/// `manifest` declares.
pub fn declared_spec(env: &SuiteEnv, manifest: &Path) -> Result<TargetSpec> {
    if let Some(spec) = &env.target_spec {
        return Ok(TargetSpec::from_spec_file(spec)?);
    }
    let cargo = Cargo::from_env(Some(manifest.to_path_buf()), None, CargoColor::Never, true);
    Ok(Workspace::load(&cargo)?.resolve_target(None, None)?.spec)
}

/// What the CLI prepared: read, never rebuilt.
fn handed_over(spec: &Path, bin: &Path, fixtures: &Path) -> Result<PreparedTarget> {
    let spec = TargetSpec::from_spec_file(spec)?;
    let set = FixtureSet::read(fixtures)?;
    // `<stress-cache>/fixtures/<name>-<id>/fixtures.json`, as `fixtures::prepare` lays it out.
    let stress_dir = fixtures.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(std::env::temp_dir);
    Ok(PreparedTarget { spec, bin: bin.to_path_buf(), fixtures: set, stress_dir })
}

/// Within one nextest run (one process per test) the first process builds and the others reuse its
/// copy (`<bin_dir>/<binary>-<flavor>`, stamped with `NEXTEST_RUN_ID`); the copy is replaced by rename,
/// so a running test never sees a half-copied executable.
fn build_once_per_run(
    cargo: &Cargo,
    target: &crate::workspace::Target,
    package: &str,
    flavor: Flavor,
    bin_dir: &Path,
) -> Result<PathBuf> {
    let binary = target.spec.binary.clone().unwrap_or_else(|| package.to_string());
    let dest = bin_dir.join(format!("{binary}-{}", flavor.as_str()));
    let _lock = DirLock::acquire(&bin_dir.join(".build.lock"))?;
    let run_id = std::env::var("NEXTEST_RUN_ID").ok().filter(|v| !v.is_empty());
    let stamp = bin_dir.join(format!(".{binary}-{}.run", flavor.as_str()));
    if let Some(run_id) = &run_id
        && dest.exists()
        && fs::read_to_string(&stamp).ok().as_deref() == Some(run_id.as_str())
    {
        return Ok(dest);
    }
    let built = build::target_executable(cargo, target, flavor, &PlainWait)?;
    let staging = bin_dir.join(format!(".{binary}-{}.{}.copying", flavor.as_str(), std::process::id()));
    fs::copy(&built, &staging)
        .map_err(|e| RunnerError::io("cannot copy the target executable", &staging, e))?;
    fs::rename(&staging, &dest)
        .map_err(|e| RunnerError::io("cannot rename the target executable", &dest, e))?;
    if let Some(run_id) = &run_id {
        fs::write(&stamp, run_id).map_err(|e| RunnerError::io("cannot write", &stamp, e))?;
    }
    Ok(dest)
}
