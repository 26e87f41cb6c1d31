//! The one error type of `cargo stress-cache`, and every exit code: those of the verdicts and those of
//! the errors, in one place.
//!
//! Every failure that is not a verdict about the target ("an invariant was violated", "a test is
//! flaky") is a usage or setup problem: it maps to exit code 2 here, and `main` prints it as a single
//! `error: <cause>` line, optionally followed by one `help:` line.

use std::path::PathBuf;

use stress_cache_metadata::SpecError;
use stress_cache_metadata::suite_env::BadValue;

use crate::verdict::RunVerdict;

/// Exit code when every invariant held and every test was stable.
pub const EXIT_OK: i32 = 0;
/// Exit code when an invariant was violated, a scenario's setup failed, a test was flaky or broken, or
/// a mutant was not killed where expected.
pub const EXIT_FAILED: i32 = 1;
/// Exit code of a usage or setup error ([`Error`]).
pub const EXIT_SETUP: i32 = 2;
/// Exit code of an interrupted run (128 + SIGINT, as shells report a Ctrl-C), whichever signal or
/// cancellation stopped it.
pub const EXIT_INTERRUPTED: i32 = 130;

/// The exit code of a run's verdict.
pub fn verdict_exit_code(verdict: RunVerdict) -> i32 {
    match verdict {
        RunVerdict::Pass => EXIT_OK,
        RunVerdict::Fail | RunVerdict::Error => EXIT_FAILED,
        RunVerdict::Interrupted => EXIT_INTERRUPTED,
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can stop `cargo stress-cache` before it reaches a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The command line could not be parsed or is inconsistent.
    #[error("{0}")]
    Usage(String),
    /// `cargo nextest --version` failed: cargo-nextest is not installed (or not runnable).
    #[error("cargo-nextest is not available: {detail}")]
    NextestMissing {
        /// What cargo said.
        detail: String,
    },
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
    /// `check-spec`: a clean run of the target shows the spec's patterns do not fit its cache.
    #[error("spec {spec} does not fit the target's cache: {first}{more}")]
    SpecDoesNotFit {
        /// The spec file.
        spec: PathBuf,
        /// The first fault.
        first: String,
        /// ` (and N more)` or empty.
        more: String,
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
    /// A `STRESS_*` knob in the environment has a value the suite would not accept.
    #[error(transparent)]
    BadKnob(#[from] BadValue),
    /// `--mutant`, `--only` or `STRESS_MUTANT` names a mutant the target does not declare.
    #[error("unknown mutant `{name}` from {origin} (declared: {known})")]
    UnknownMutant {
        /// The name given.
        name: String,
        /// Where it was given: the flag or the variable.
        origin: &'static str,
        /// The declared names.
        known: String,
    },
    /// The suite package (`stress-tests`) is not in the workspace.
    #[error("the stress suite package `{name}` is not a member of the workspace")]
    NoSuite {
        /// The package name.
        name: String,
    },
    /// `--spec` names a command that cannot be found.
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
        /// Its exit status.
        status: String,
    },
    /// The build succeeded but produced no executable for the binary target.
    #[error("`cargo build` reported no executable for binary `{binary}` of package `{package}`")]
    NoExecutable {
        /// The package.
        package: String,
        /// The binary target.
        binary: String,
    },
    /// cargo-nextest ended with an exit code that is not a test verdict (build failure, bad filterset, ...).
    #[error("`{command}` failed with exit code {code} ({meaning})")]
    Nextest {
        /// The command line.
        command: String,
        /// Its exit code.
        code: i32,
        /// What nextest's exit code means.
        meaning: &'static str,
    },
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
    /// A file had the wrong content (record JSON, JUnit XML, baseline report, nextest list JSON).
    #[error("cannot parse {what} {path}: {message}")]
    Parse {
        /// The kind of file.
        what: &'static str,
        /// The path (or the command whose output it was).
        path: PathBuf,
        /// The parser's message, on one line.
        message: String,
    },
    /// The signal handlers could not be installed.
    #[error("cannot install the SIGINT/SIGTERM handlers: {0}")]
    Signals(std::io::Error),
    /// A signal stopped the CLI before a run directory existed (while reading the workspace or
    /// building the target): there is nothing to report.
    #[error("INTERRUPTED by {signal} while {during} (no run was started)")]
    Interrupted {
        /// The signal's name.
        signal: String,
        /// The stage.
        during: &'static str,
    },
    /// A report for people (`report.html`, `stress-cache.junit.xml`) could not be produced.
    #[error("cannot render {what}: {message}")]
    Render {
        /// Which report.
        what: &'static str,
        /// The cause, on one line.
        message: String,
    },
    /// `report` found nothing to aggregate.
    #[error("no scenario records or JUnit reports found under {dirs}")]
    NoResults {
        /// The directories searched.
        dirs: String,
    },
}

impl Error {
    /// The process exit code for this error: 130 for an interruption, else a usage or setup error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Interrupted { .. } => EXIT_INTERRUPTED,
            _ => EXIT_SETUP,
        }
    }

    /// A one-line hint printed after the error, when there is a useful one.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::NextestMissing { .. } => {
                Some("install it with `cargo install cargo-nextest --locked`".into())
            }
            Error::UnknownPackage { .. } => Some(
                "pass a package that declares `[package.metadata.stress-cache]`, or `--spec FILE`".into(),
            ),
            Error::NoTarget { .. } => Some(
                "declare `[package.metadata.stress-cache]` in the target's Cargo.toml, set \
                 `[workspace.metadata.stress-cache] target = \"<package>\"`, or pass `--package`/`--spec`"
                    .into(),
            ),
            Error::SpecDoesNotFit { .. } => Some(
                "the table above lists every file and the roles its patterns gave it; use `!pattern` in a role \
                 to take files out, and `ignore = [...]` for sidecars"
                    .into(),
            ),
            Error::MissingFeature { .. } => Some(
                "add the feature to the package's [features] and name it in `features.failpoints`".into(),
            ),
            _ => None,
        }
    }

    /// Shorthand for [`Error::Io`].
    pub fn io(action: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Error::Io { action, path: path.into(), source }
    }
}

/// Collapses a multi-line message into one line (cargo and parsers like to wrap).
pub fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
