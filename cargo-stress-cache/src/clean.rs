//! `clean [--keep N]` and the log lines of every pruning of the results root.

use crate::cargo::Cargo;
use crate::cli::GlobalOpts;
use crate::conclusion::stderr_line;
use crate::errors::{Error, Result};
use crate::knobs::env_knobs;
use crate::retention;
use crate::workspace::Workspace;

/// One log line per kind of thing pruning did or could not do.
pub(crate) fn report_pruned(pruned: &retention::Pruned, keep: usize) {
    if !pruned.removed.is_empty() {
        log::info!(
            "removed {} old run dirs and {} unused target binaries (keeping the newest {keep}; `--keep N`)",
            pruned.removed.len(),
            pruned.binaries_removed.len()
        );
    }
    for dir in &pruned.in_use {
        log::info!("kept old run dir {}: another process is writing it", dir.display());
    }
    for dir in &pruned.mounted {
        log::warn!("kept old run dir {}: something is mounted beneath it", dir.display());
    }
    for (dir, cause) in &pruned.failed {
        log::warn!("cannot remove old run dir {}: {cause}", dir.display());
    }
}

/// `clean [--keep N]`: prunes the store root and says what it did on one line.
pub(crate) fn clean(cargo: Cargo, global: &GlobalOpts, keep: usize) -> Result<()> {
    let workspace = Workspace::load(&cargo)?;
    let target_dir = match &global.target_dir {
        Some(dir) => std::path::absolute(dir).map_err(|source| Error::io("cannot resolve", dir, source))?,
        None => workspace.target_dir().to_path_buf(),
    };
    let root = env_knobs()?.results_dir.unwrap_or_else(|| target_dir.join("stress-cache"));
    let pruned = retention::prune(&root, keep)?;
    report_pruned(&pruned, keep);
    let left = pruned.kept.len() + pruned.in_use.len() + pruned.mounted.len() + pruned.failed.len();
    stderr_line(&format!(
        "stress-cache: removed {} run dirs and {} target binaries from {}; {left} run dirs left",
        pruned.removed.len(),
        pruned.binaries_removed.len(),
        root.display()
    ));
    Ok(())
}
