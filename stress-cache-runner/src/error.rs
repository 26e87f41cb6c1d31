//! Everything that can stop the runner before a target is ready to stress.

use std::path::PathBuf;

use stress_cache_metadata::{FixtureSetError, SpecError};

/// Why a target could not be found, built or prepared.
#[derive(Debug, thiserror::Error)]
pub enum RunnerError {
    /// A program could not be started.
    #[error("cannot run `{command}`: {source}")]
    Spawn {
        /// The command line.
        command: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// `cargo metadata` failed.
    #[error("cargo metadata failed: {message}")]
    Metadata {
        /// The cause, on one line.
        message: String,
    },
    /// `--package` names no workspace package.
    #[error("package `{name}` is not a member of the workspace (members: {members})")]
    UnknownPackage {
        /// The name given.
        name: String,
        /// The workspace members, comma-separated.
        members: String,
    },
    /// No target could be chosen from the workspace.
    #[error("no target to stress: {reason}")]
    NoTarget {
        /// Why.
        reason: String,
    },
    /// The target declaration is unreadable, malformed or inconsistent.
    #[error(transparent)]
    Spec(#[from] SpecError),
    /// The target does not declare or define the Cargo feature a run needs.
    #[error("target package `{package}` {problem}")]
    MissingFeature {
        /// The package.
        package: String,
        /// What is missing, e.g. "has no feature `failpoints`".
        problem: String,
    },
    /// The suite package is not in the workspace.
    #[error("the stress suite package `{name}` is not a member of the workspace")]
    NoSuite {
        /// The package name.
        name: String,
    },
    /// A spec's `command` cannot be found.
    #[error("target command `{command}` from {spec} was not found")]
    CommandNotFound {
        /// The command.
        command: String,
        /// The spec file.
        spec: PathBuf,
    },
    /// `cargo build` failed.
    #[error("building the target failed: `{command}` exited with {status}")]
    Build {
        /// The command line.
        command: String,
        /// Its exit status, and the end of its output when it was captured.
        status: String,
    },
    /// A signal stopped the build.
    #[error("building the target was interrupted by signal {signal}")]
    BuildInterrupted {
        /// The signal number.
        signal: i32,
    },
    /// The build succeeded but produced no executable for the binary target.
    #[error("`cargo build` reported no executable for binary `{binary}` of package `{package}`")]
    NoExecutable {
        /// The package.
        package: String,
        /// The binary target.
        binary: String,
    },
    /// The target's fixture command failed.
    #[error("the fixture command `{command}` failed: {message}")]
    Fixtures {
        /// The command line.
        command: String,
        /// Its status and the end of its stderr.
        message: String,
    },
    /// A fixture set could not be read back.
    #[error(transparent)]
    FixtureSet(#[from] FixtureSetError),
    /// The suite environment has a value the suite would not accept.
    #[error(transparent)]
    BadEnv(#[from] stress_cache_metadata::suite_env::BadValue),
    /// Reading or writing a file or directory failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done ("cannot read", "cannot create", ...).
        action: &'static str,
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A file could not be serialised.
    #[error("cannot write {what} {path}: {message}")]
    Serialize {
        /// The kind of file.
        what: &'static str,
        /// The path.
        path: PathBuf,
        /// The serialiser's message, on one line.
        message: String,
    },
}

impl RunnerError {
    /// Shorthand for [`RunnerError::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        RunnerError::Io { action, path: path.into(), source }
    }
}

/// Collapses a multi-line message into one line (cargo and parsers like to wrap).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
