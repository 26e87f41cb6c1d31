//! What `cargo stress-cache check-spec` learns from a clean run of the target: every file its cache held
//! at three moments, and the roles the spec's patterns gave each. The suite writes it (to
//! `STRESS_SPEC_CHECK_OUT`), the CLI reads and prints it.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

use crate::patterns::Role;

/// When a file was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Moment {
    /// While one download was parked mid-body and another process waited for it.
    DuringDownload,
    /// After that cold fleet exited.
    AfterColdRun,
    /// After a second (warm) run.
    AfterWarmRun,
}

impl Moment {
    /// Label for tables.
    pub fn as_str(self) -> &'static str {
        match self {
            Moment::DuringDownload => "during download",
            Moment::AfterColdRun => "after cold run",
            Moment::AfterWarmRun => "after warm run",
        }
    }
}

/// One file (relative to the cache dir) and the roles that claim it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SeenFile {
    /// Path relative to the cache dir.
    pub path: String,
    /// Every moment it was seen.
    pub moments: BTreeSet<Moment>,
    /// Roles whose patterns match it (`ignore` alone when it is ignored).
    pub roles: Vec<Role>,
    /// A directory (compiled entries and quarantine dirs are listed as such).
    #[serde(default)]
    pub is_dir: bool,
}

/// The spec check's result.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpecCheckReport {
    /// The spec's name for the target.
    pub target: String,
    /// Every regular file (and symlink) seen, by path.
    pub files: Vec<SeenFile>,
    /// Problems that are not about one file (e.g. the run failed, no final was ever published).
    pub problems: Vec<String>,
}

impl SpecCheckReport {
    /// Files two content roles claim: the spec is ambiguous.
    pub fn overlaps(&self) -> Vec<&SeenFile> {
        self.files.iter().filter(|f| f.roles.len() > 1).collect()
    }

    /// Files no role claims: the spec does not describe them (add them to a role or to `ignore`).
    pub fn unmatched(&self) -> Vec<&SeenFile> {
        self.files.iter().filter(|f| f.roles.is_empty()).collect()
    }

    /// Every reason the spec does not fit, one line each; empty when it fits.
    pub fn faults(&self) -> Vec<String> {
        let mut out = self.problems.clone();
        for f in self.overlaps() {
            let roles: Vec<&str> = f.roles.iter().map(|r| r.key()).collect();
            out.push(format!("`{}` matches {} patterns: {}", f.path, roles.len(), roles.join(" and ")));
        }
        for f in self.unmatched() {
            out.push(format!("`{}` matches no pattern (give it a role, or list it in `ignore`)", f.path));
        }
        if !self.files.iter().any(|f| f.roles == [Role::Final]) && self.problems.is_empty() {
            out.push("no file matched `final`: the published model was not recognised".to_string());
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str, roles: &[Role]) -> SeenFile {
        SeenFile {
            path: path.into(),
            moments: BTreeSet::from([Moment::AfterColdRun]),
            roles: roles.to_vec(),
            is_dir: false,
        }
    }

    #[test]
    fn overlaps_unmatched_files_and_a_missing_final_are_faults() {
        let fits = SpecCheckReport {
            target: "t".into(),
            files: vec![
                file("a.bin", &[Role::Final]),
                file("a.lock", &[Role::Lock]),
                file("a.meta", &[Role::Ignored]),
            ],
            problems: vec![],
        };
        assert!(fits.faults().is_empty(), "{:?}", fits.faults());
        let bad = SpecCheckReport {
            target: "t".into(),
            files: vec![file("a.lock", &[Role::Final, Role::Lock]), file("a.json", &[])],
            problems: vec![],
        };
        let faults = bad.faults();
        assert_eq!(faults.len(), 3, "{faults:?}");
        assert!(faults[0].contains("final and lock"), "{faults:?}");
        assert!(faults[1].contains("matches no pattern"), "{faults:?}");
        assert!(faults[2].contains("no file matched `final`"), "{faults:?}");
    }
}
