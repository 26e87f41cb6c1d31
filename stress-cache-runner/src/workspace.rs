//! The workspace as `cargo metadata` describes it: the target package and its declaration, the suite
//! package, the target directory.

use std::path::{Path, PathBuf};

use cargo_metadata::{Metadata, MetadataCommand, Package};
use stress_cache_metadata::TargetSpec;

use crate::cargo::Cargo;
use crate::{Result, RunnerError as Error, one_line};

/// Name of the package holding the stress scenarios.
pub const SUITE_PACKAGE: &str = "stress-tests";

/// The workspace.
#[derive(Debug)]
pub struct Workspace {
    metadata: Metadata,
}

/// Where the target comes from.
#[derive(Debug, Clone)]
pub enum TargetSource {
    /// A workspace package, built by cargo.
    Package {
        /// Package name.
        name: String,
        /// Cargo features the package defines.
        features: Vec<String>,
    },
    /// A `--spec` file naming an installed command.
    SpecFile {
        /// The file.
        path: PathBuf,
    },
}

/// The target to stress and its declaration.
#[derive(Debug, Clone)]
pub struct Target {
    /// The declaration.
    pub spec: TargetSpec,
    /// Where it comes from.
    pub source: TargetSource,
}

impl Workspace {
    /// Runs `cargo metadata --no-deps` (no dependency resolution: fast and offline).
    pub fn load(cargo: &Cargo) -> Result<Self> {
        let mut cmd = MetadataCommand::new();
        cmd.cargo_path(cargo.program()).no_deps();
        if let Some(path) = cargo.manifest_path() {
            cmd.manifest_path(path);
        }
        let metadata = cmd.exec().map_err(|e| Error::Metadata { message: metadata_cause(&e) })?;
        Ok(Self { metadata })
    }

    /// The workspace root.
    pub fn root(&self) -> &Path {
        self.metadata.workspace_root.as_std_path()
    }

    /// The workspace's target directory.
    pub fn target_dir(&self) -> &Path {
        self.metadata.target_directory.as_std_path()
    }

    /// Writes the metadata to `path` as `cargo metadata --format-version 1 --no-deps` prints it (what
    /// nextest's `--cargo-metadata` reads instead of running cargo again).
    pub fn write_metadata(&self, path: &Path) -> Result<()> {
        crate::rundir::write_json(path, "cargo metadata", &self.metadata)
    }

    fn member(&self, name: &str) -> Option<&Package> {
        self.metadata.workspace_packages().into_iter().find(|p| p.name.as_str() == name)
    }

    fn member_names(&self) -> String {
        let names: Vec<&str> = self.metadata.workspace_packages().iter().map(|p| p.name.as_str()).collect();
        names.join(", ")
    }

    /// Checks the suite package is a member.
    pub fn require_suite(&self) -> Result<()> {
        match self.member(SUITE_PACKAGE) {
            Some(_) => Ok(()),
            None => Err(Error::NoSuite { name: SUITE_PACKAGE.to_string() }),
        }
    }

    /// Resolves the target: `--spec`, else `--package`, else `[workspace.metadata.stress-cache] target`,
    /// else the one member declaring `[package.metadata.stress-cache]`.
    pub fn resolve_target(&self, package: Option<&str>, spec: Option<&Path>) -> Result<Target> {
        if let Some(path) = spec {
            let spec = TargetSpec::from_spec_file(path)?;
            return Ok(Target { spec, source: TargetSource::SpecFile { path: path.to_path_buf() } });
        }
        let chosen = match package {
            Some(name) => self.member(name).ok_or_else(|| Error::UnknownPackage {
                name: name.to_string(),
                members: self.member_names(),
            })?,
            None => self.default_target()?,
        };
        let origin = format!("`[package.metadata.stress-cache]` of package `{}`", chosen.name);
        let value = chosen.metadata.get("stress-cache").ok_or_else(|| Error::NoTarget {
            reason: format!("package `{}` has no `[package.metadata.stress-cache]`", chosen.name),
        })?;
        let spec = TargetSpec::from_package_metadata(&origin, value)?;
        let features = chosen.features.keys().cloned().collect();
        Ok(Target { spec, source: TargetSource::Package { name: chosen.name.to_string(), features } })
    }

    fn default_target(&self) -> Result<&Package> {
        let configured = self.metadata.workspace_metadata.get("stress-cache").and_then(|v| v.get("target"));
        if let Some(value) = configured {
            let name = value.as_str().ok_or_else(|| Error::NoTarget {
                reason: "`[workspace.metadata.stress-cache] target` must be a package name string".into(),
            })?;
            return self.member(name).ok_or_else(|| Error::UnknownPackage {
                name: name.to_string(),
                members: self.member_names(),
            });
        }
        let declaring: Vec<&Package> = self
            .metadata
            .workspace_packages()
            .into_iter()
            .filter(|p| p.metadata.get("stress-cache").is_some())
            .collect();
        match declaring.as_slice() {
            [one] => Ok(one),
            [] => Err(Error::NoTarget {
                reason: "no workspace package declares `[package.metadata.stress-cache]`".into(),
            }),
            many => Err(Error::NoTarget {
                reason: format!(
                    "several packages declare `[package.metadata.stress-cache]` ({}); choose one with --package",
                    many.iter().map(|p| p.name.as_str()).collect::<Vec<_>>().join(", ")
                ),
            }),
        }
    }
}

/// The one line of `cargo metadata`'s stderr that says what is wrong.
fn metadata_cause(error: &cargo_metadata::Error) -> String {
    match error {
        cargo_metadata::Error::CargoMetadata { stderr } => {
            let lines: Vec<&str> = stderr.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
            let first = lines.iter().position(|l| l.starts_with("error:")).unwrap_or(0);
            // cargo's cause often sits on the lines after `error:` ("Caused by: ..."), keep them short.
            let text = lines.get(first..).map(|l| l.join(" ")).unwrap_or_default();
            let text = text.trim_start_matches("error:").trim();
            let mut text = one_line(text);
            if text.len() > 300 {
                text.truncate(300);
                text.push_str("...");
            }
            text
        }
        other => one_line(&other.to_string()),
    }
}
