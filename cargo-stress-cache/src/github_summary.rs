//! `--github-summary`: the markdown tables appended to the file GitHub Actions names in
//! `$GITHUB_STEP_SUMMARY`, written by the CLI itself (a workflow step that `cat`s a file into it breaks
//! silently when the file moves).

use std::io::Write;
use std::path::PathBuf;

use crate::errors::{Error, Result};

/// The variable GitHub Actions sets to the job summary file.
pub const VAR: &str = "GITHUB_STEP_SUMMARY";

/// The summary file, or a usage error when `$GITHUB_STEP_SUMMARY` is not set (checked before a run
/// starts, so a misconfigured workflow fails in a second, not after the tier).
pub fn target() -> Result<PathBuf> {
    std::env::var_os(VAR).filter(|v| !v.is_empty()).map(PathBuf::from).ok_or_else(|| {
        Error::Usage(format!(
            "--github-summary needs ${VAR} (set by GitHub Actions in every step); it is not set"
        ))
    })
}

/// Appends `markdown` (and a blank line) to the summary file.
pub fn append(markdown: &str) -> Result<PathBuf> {
    let path = target()?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .map_err(|source| Error::io("cannot open the job summary", &path, source))?;
    file.write_all(markdown.as_bytes())
        .and_then(|()| file.write_all(b"\n"))
        .map_err(|source| Error::io("cannot write the job summary", &path, source))?;
    Ok(path)
}
