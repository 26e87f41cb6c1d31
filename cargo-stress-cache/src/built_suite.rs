//! The suite as its listing built it. `cargo nextest list` builds the suite once per invocation; every
//! `nextest run` after it (a tier's repeats, the self-check beside the first, each mutant's tier) runs
//! those same binaries, read from two files the listing left (nextest's reuse-build
//! `--binaries-metadata` and `--cargo-metadata`), instead of running cargo again. Two such runs start
//! together, and each one's cargo build check and `cargo metadata` only waited on the other's
//! package-cache lock: measured, 0.53 s of the warm PR tier before its first test, against 0.05 s.
//!
//! Invariant: the runs execute exactly the binaries the listing counted: the count that tells a
//! cancelled run from a complete one is of the binaries that ran.

use std::path::{Path, PathBuf};
use std::process::Command;

use nextest_metadata::BinaryListSummary;

use crate::cargo::Cargo;
use crate::errors::Result;
use crate::workspace::Workspace;

/// The subdirectory of a run dir that holds the files ([`BuiltSuite::write`]).
pub const DIR: &str = "nextest";

/// The files a `nextest run` reads the built suite from.
#[derive(Debug, Clone)]
pub struct BuiltSuite {
    binaries_metadata: PathBuf,
    cargo_metadata: PathBuf,
}

impl BuiltSuite {
    /// Writes `dir/binaries-metadata.json` (the listed `binaries`) and `dir/cargo-metadata.json` (the
    /// `workspace`, whose root holds `.config/nextest.toml`).
    pub fn write(dir: &Path, binaries: &BinaryListSummary, workspace: &Workspace) -> Result<BuiltSuite> {
        let binaries_metadata = dir.join("binaries-metadata.json");
        crate::rundir::write_json(&binaries_metadata, "nextest binaries metadata", binaries)?;
        let cargo_metadata = dir.join("cargo-metadata.json");
        workspace.write_metadata(&cargo_metadata)?;
        Ok(BuiltSuite { binaries_metadata, cargo_metadata })
    }

    /// `cargo nextest run --profile <profile>` of these binaries (no `--package`, `--target-dir` or
    /// `--manifest-path`: nextest refuses build options beside the files that name them).
    pub fn run_command(&self, cargo: &Cargo, profile: &str) -> Command {
        let mut cmd = cargo.command_on_built(&["nextest", "run", "--profile", profile]);
        cmd.arg("--binaries-metadata").arg(&self.binaries_metadata);
        cmd.arg("--cargo-metadata").arg(&self.cargo_metadata);
        cmd
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cargo::CargoColor;

    fn this_workspace() -> (Cargo, Workspace) {
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        let cargo = Cargo::from_env(Some(manifest), None, CargoColor::Never, true);
        let workspace = Workspace::load(&cargo).expect("cargo metadata of this workspace");
        (cargo, workspace)
    }

    fn binaries(target_dir: &str) -> BinaryListSummary {
        let text = format!(
            r#"{{"rust-build-meta":{{"target-directory":"{target_dir}","base-output-directories":["debug"],
            "non-test-binaries":{{}},"linked-paths":[]}},"rust-binaries":{{"stress-tests::scenarios":{{
            "binary-id":"stress-tests::scenarios","binary-name":"scenarios","package-id":"p","kind":"test",
            "binary-path":"{target_dir}/debug/deps/scenarios-0","build-platform":"target"}}}}}}"#
        );
        serde_json::from_str::<BinaryListSummary>(&text).expect("a binaries-only list")
    }

    #[test]
    fn the_written_files_read_back_as_the_listed_binaries_and_this_workspace() {
        let (_, workspace) = this_workspace();
        let dir = tempfile::tempdir().unwrap();
        let listed = binaries("/t");
        let built = BuiltSuite::write(dir.path(), &listed, &workspace).unwrap();
        let read = std::fs::read_to_string(&built.binaries_metadata).unwrap();
        assert_eq!(serde_json::from_str::<BinaryListSummary>(&read).unwrap(), listed);
        let read = std::fs::read_to_string(&built.cargo_metadata).unwrap();
        let metadata: serde_json::Value = serde_json::from_str(&read).unwrap();
        assert_eq!(metadata["workspace_root"].as_str().map(Path::new), Some(workspace.root()));
        let packages = metadata["packages"].as_array().unwrap();
        assert!(packages.iter().any(|p| p["name"] == "stress-tests"), "{packages:?}");
    }

    #[test]
    fn a_run_of_the_built_suite_passes_no_build_option_nextest_would_refuse() {
        let (cargo, workspace) = this_workspace();
        let mut cargo = cargo;
        cargo.set_target_dir(workspace.target_dir().to_path_buf());
        let dir = tempfile::tempdir().unwrap();
        let built = BuiltSuite::write(dir.path(), &binaries("/t"), &workspace).unwrap();
        let cmd = built.run_command(&cargo, "stress-pr");
        let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
        for refused in ["--package", "--target-dir", "--manifest-path", "--cargo-quiet"] {
            assert!(!args.iter().any(|a| a == refused), "{refused} in {args:?}");
        }
        let after = |flag: &str| args.iter().position(|a| a == flag).map(|i| args[i + 1].clone());
        assert_eq!(after("--binaries-metadata"), Some(built.binaries_metadata.display().to_string()));
        assert_eq!(after("--cargo-metadata"), Some(built.cargo_metadata.display().to_string()));
        assert_eq!(after("--profile").as_deref(), Some("stress-pr"));
    }
}
