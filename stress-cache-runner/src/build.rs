//! Produces the target executable: `cargo build` with the failpoints (and, for mutant runs, the
//! mutants) feature, the path read from cargo's JSON messages; or the `command` of a `--spec` file.

use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};

use cargo_metadata::Message;

use crate::cargo::{Cargo, display_command};
use crate::workspace::{Target, TargetSource};
use crate::{Result, RunnerError as Error};

/// How the runner waits for a child it started (the build): the CLI waits so that SIGINT/SIGTERM are
/// forwarded and bounded; a test process simply waits.
pub trait WaitChild {
    /// Waits for `child` (described as `what` in logs) and returns its status, with the signal that
    /// asked this process to stop meanwhile, if any.
    fn wait_child(&self, child: &mut Child, what: &str) -> std::io::Result<(ExitStatus, Option<i32>)>;
}

/// [`WaitChild`] without signal handling: `Child::wait`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PlainWait;

impl WaitChild for PlainWait {
    fn wait_child(&self, child: &mut Child, _what: &str) -> std::io::Result<(ExitStatus, Option<i32>)> {
        child.wait().map(|status| (status, None))
    }
}

/// Which seeded-bug support the binary needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// Failpoints only: a plain tier run.
    Failpoints,
    /// Failpoints and mutants: `--mutant` runs and the mutants matrix.
    WithMutants,
}

impl Flavor {
    /// A short name for paths and logs (`failpoints`, `failpoints+mutants`).
    pub fn as_str(self) -> &'static str {
        match self {
            Flavor::Failpoints => "failpoints",
            Flavor::WithMutants => "failpoints+mutants",
        }
    }
}

/// Returns the executable to stress, building it when the target is a workspace package.
pub fn target_executable(
    cargo: &Cargo,
    target: &Target,
    flavor: Flavor,
    waiter: &dyn WaitChild,
) -> Result<PathBuf> {
    match &target.source {
        TargetSource::SpecFile { path } => {
            let command = target.spec.command.as_deref().unwrap_or_default();
            resolve_command(command, path)
        }
        TargetSource::Package { name, features } => {
            let binary = target.spec.binary.clone().ok_or_else(|| Error::MissingFeature {
                package: name.clone(),
                problem: "declares no `binary` in `[package.metadata.stress-cache]`".into(),
            })?;
            let wanted = required_features(name, features, target, flavor)?;
            build(cargo, name, &binary, &wanted, target.spec.features.default_features, waiter)
        }
    }
}

/// The Cargo features to build with, checked against those the package defines.
fn required_features(
    package: &str,
    defined: &[String],
    target: &Target,
    flavor: Flavor,
) -> Result<Vec<String>> {
    let declared = &target.spec.features;
    let mut wanted = Vec::new();
    let failpoints = declared.failpoints.clone().ok_or_else(|| Error::MissingFeature {
        package: package.to_string(),
        problem:
            "declares no failpoints feature (`features.failpoints` in `[package.metadata.stress-cache]`)"
                .into(),
    })?;
    wanted.push(failpoints);
    if flavor == Flavor::WithMutants {
        let mutants = declared.mutants.clone().ok_or_else(|| Error::MissingFeature {
            package: package.to_string(),
            problem: "declares no mutants feature (`features.mutants`)".into(),
        })?;
        wanted.push(mutants);
    }
    for feature in &wanted {
        if !defined.iter().any(|f| f == feature) {
            return Err(Error::MissingFeature {
                package: package.to_string(),
                problem: format!(
                    "has no feature `{feature}` (named in `[package.metadata.stress-cache.features]`)"
                ),
            });
        }
    }
    Ok(wanted)
}

fn build(
    cargo: &Cargo,
    package: &str,
    binary: &str,
    features: &[String],
    default_features: bool,
    waiter: &dyn WaitChild,
) -> Result<PathBuf> {
    let features = features.join(",");
    let mut cmd = cargo.command(&[
        "build",
        "--package",
        package,
        "--bin",
        binary,
        "--features",
        &features,
        "--message-format=json-render-diagnostics",
    ]);
    if !default_features {
        cmd.arg("--no-default-features");
    }
    if cargo.quiet() {
        cmd.arg("--quiet");
    }
    let shown = display_command(&cmd);
    log::info!("building {package} with features {features}");
    log::debug!("running {shown}");
    // stdout carries the JSON messages; stderr (rendered diagnostics, progress) goes to the user.
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let mut child = cmd.spawn().map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    let stdout = child.stdout.take();
    // The messages are read on a thread of their own so that waiting (and a signal) is not blocked
    // behind a pipe.
    let (waited, executable) = std::thread::scope(|scope| {
        let reader = scope.spawn(move || stdout.and_then(|out| executable_in(out, binary)));
        let waited = waiter.wait_child(&mut child, "cargo build");
        (waited, reader.join().ok().flatten())
    });
    let (status, signal) = waited.map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    if let Some(signal) = signal {
        return Err(Error::BuildInterrupted { signal });
    }
    if !status.success() {
        return Err(Error::Build { command: shown, status: status.to_string() });
    }
    executable.ok_or_else(|| Error::NoExecutable { package: package.to_string(), binary: binary.to_string() })
}

/// The executable of bin target `binary` among cargo's JSON messages.
fn executable_in(stdout: impl std::io::Read, binary: &str) -> Option<PathBuf> {
    let mut executable = None;
    for message in Message::parse_stream(BufReader::new(stdout)) {
        let Ok(Message::CompilerArtifact(artifact)) = message else { continue };
        let is_bin = artifact.target.kind.iter().any(|k| matches!(k, cargo_metadata::TargetKind::Bin));
        if is_bin && artifact.target.name == binary {
            executable = artifact.executable.map(|p| p.into_std_path_buf());
        }
    }
    executable
}

/// A `--spec` command: a path (relative to the spec file's directory, then the current one) or a name on PATH.
fn resolve_command(command: &str, spec: &Path) -> Result<PathBuf> {
    let not_found = || Error::CommandNotFound { command: command.to_string(), spec: spec.to_path_buf() };
    if command.contains('/') {
        let path = Path::new(command);
        let candidates = if path.is_absolute() {
            vec![path.to_path_buf()]
        } else {
            let spec_dir = spec.parent().unwrap_or(Path::new("."));
            vec![spec_dir.join(path), path.to_path_buf()]
        };
        let found = candidates.into_iter().find(|p| p.is_file()).ok_or_else(not_found)?;
        return std::path::absolute(&found).map_err(|source| Error::io("cannot resolve", found, source));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path).map(|dir| dir.join(command)).find(|p| p.is_file()).ok_or_else(not_found)
}
