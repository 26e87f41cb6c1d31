//! The run directory of one invocation, prepared before anything runs: claimed, the target binary
//! stored, the spec and the fixtures written, old run dirs pruned.

use std::path::PathBuf;

use crate::clean::report_pruned;
use crate::cli::{GlobalOpts, TierOpts};
use crate::errors::Result;
use crate::interrupt::Interrupt;
use crate::knobs::Knobs;
use crate::run::TierRun;
use crate::workspace::{Target, TargetSource};
use crate::{Setup, retention, rundir, selection};

/// The run directory of one invocation, claimed by this process, with the stored target, the spec
/// and the fixtures the suite reads.
pub(crate) struct PreparedRun {
    pub(crate) dir: PathBuf,
    pub(crate) target_bin: PathBuf,
    pub(crate) spec: PathBuf,
    pub(crate) fixtures: PathBuf,
    /// Held until the run ends: a `clean` or another run's pruning must not remove this directory.
    _claim: retention::RunDirClaim,
}

impl PreparedRun {
    pub(crate) fn create(
        setup: &Setup,
        tier: &TierOpts,
        knobs: &Knobs,
        label: &str,
        built: PathBuf,
    ) -> Result<Self> {
        let root = knobs.results_dir.clone().unwrap_or_else(|| setup.target_dir.join("stress-cache"));
        let dir = rundir::create(&root, label, tier.run_dir.as_deref())?;
        let claim = retention::claim(&dir)?;
        let target_bin = store_if_built(&setup.target, &root, &dir, built)?;
        let spec = rundir::write_spec(&dir, &setup.target.spec, &target_bin)?;
        // Once here, so that no test process produces fixtures (or runs cargo) again.
        let fixtures_root = setup.target_dir.join("stress-cache").join("fixtures");
        let (fixtures, _) =
            stress_cache_runner::fixtures::prepare(&target_bin, &setup.target.spec, &fixtures_root)?;
        report_pruned(&retention::prune(&root, tier.keep.max(1))?, tier.keep.max(1));
        Ok(PreparedRun { dir, target_bin, spec, fixtures, _claim: claim })
    }

    pub(crate) fn tier_run<'a>(
        &'a self,
        setup: &'a Setup,
        global: &GlobalOpts,
        tier: &TierOpts,
        knobs: &Knobs,
        interrupt: &'a Interrupt,
    ) -> TierRun<'a> {
        TierRun {
            cargo: &setup.cargo,
            workspace: &setup.workspace,
            target_dir: &setup.target_dir,
            target_bin: &self.target_bin,
            target_spec: &self.spec,
            fixtures: &self.fixtures,
            tier: knobs.tier,
            selection: selection(global, tier),
            seed: knobs.seed,
            processes: knobs.processes,
            trace: knobs.trace,
            run_root: &self.dir,
            keep_dir: knobs.keep_dir.clone(),
            interrupt,
            listed: std::cell::OnceCell::new(),
        }
    }
}

/// A binary cargo built is stored by content and named by the run (see
/// [`retention::store_executable`]); a `--spec` program is run where it is installed, next to whatever
/// it needs.
fn store_if_built(
    target: &Target,
    root: &std::path::Path,
    run_dir: &std::path::Path,
    executable: PathBuf,
) -> Result<PathBuf> {
    match target.source {
        TargetSource::Package { .. } => Ok(retention::store_executable(root, run_dir, &executable)?),
        TargetSource::SpecFile { .. } => Ok(executable),
    }
}
