//! The one error type of `cargo stress-cache`, and every exit code: those of the verdicts and those of
//! the errors, in one place.
//!
//! Every failure that is not a verdict about the target ("an invariant was violated", "a test is
//! flaky") is a usage or setup problem: it maps to exit code 2 here, and `main` prints it as a single
//! `error: <cause>` line, optionally followed by one `help:` line.

use std::path::PathBuf;

use stress_cache_metadata::exit_code;
use stress_cache_metadata::suite_env::BadValue;
use stress_cache_runner::RunnerError;
pub use stress_cache_runner::one_line;

use stress_cache_metadata::report::RunVerdict;

/// Exit code when every invariant held and every test was stable.
pub const EXIT_OK: i32 = exit_code::OK;
/// Exit code when an invariant was violated, a scenario's setup failed, a test was flaky or broken, or
/// a mutant was not killed where expected.
pub const EXIT_FAILED: i32 = exit_code::FAILED;
/// Exit code of a usage or setup error ([`Error`]).
pub const EXIT_SETUP: i32 = exit_code::SETUP;
/// Exit code of an interrupted run (128 + SIGINT, as shells report a Ctrl-C), whichever signal or
/// cancellation stopped it.
pub const EXIT_INTERRUPTED: i32 = exit_code::INTERRUPTED;

/// The exit code of a whole invocation: the only place a result becomes a number.
pub fn exit_code_of(result: &Result<()>) -> i32 {
    match result {
        Ok(()) => EXIT_OK,
        Err(e) => e.exit_code(),
    }
}

/// A run's verdict as a result: a pass is `Ok`, every other verdict the error that carries it (with
/// `summary`, the run's summary line).
pub fn verdict_result(verdict: RunVerdict, summary: String) -> Result<()> {
    match verdict {
        RunVerdict::Pass => Ok(()),
        RunVerdict::Fail | RunVerdict::Error => Err(Error::RunFailed { verdict, summary }),
        RunVerdict::Interrupted => Err(Error::RunInterrupted { summary }),
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that ends `cargo stress-cache` without a pass: first the verdicts that are not a pass
/// (as nextest's `TestRunFailed`), then everything that stopped it before a verdict.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The run reached a verdict and it is FAIL (a violation, a flaky or broken test, a regression
    /// asked to fail) or ERROR (a setup error, a failed self-check): exit 1.
    #[error("{summary}")]
    RunFailed {
        /// FAIL or ERROR.
        verdict: RunVerdict,
        /// The run's summary line.
        summary: String,
    },
    /// The mutants matrix did not show the clean run passing and every seeded bug killed where
    /// declared: exit 1.
    #[error("{summary}")]
    MutantsNotKilled {
        /// The matrix's summary line.
        summary: String,
    },
    /// A run that had started was stopped before it completed (a signal, or nextest cancelling it):
    /// what ran is reported, and the exit code is 130.
    #[error("{summary}")]
    RunInterrupted {
        /// The partial run's summary line.
        summary: String,
    },
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
    /// The runner could not find, build or prepare the target.
    #[error(transparent)]
    Runner(RunnerError),
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
    /// `replay`/`shrink`: the record's plan cannot be run against this target (exit 2, never a verdict).
    #[error(transparent)]
    Plan(#[from] crate::plan_check::PlanMismatch),
    /// `replay`/`shrink`: the replayed scenario wrote no record (its test could not even set it up).
    #[error("the replay of {scenario} wrote no record into {dir}")]
    NoReplayRecord {
        /// The scenario.
        scenario: String,
        /// The records directory.
        dir: PathBuf,
    },
    /// `report` found nothing to aggregate.
    #[error("no scenario records or JUnit reports found under {dirs}")]
    NoResults {
        /// The directories searched.
        dirs: String,
    },
}

impl Error {
    /// The process exit code for this error: 1 for a verdict that is not a pass, 130 for an
    /// interruption, else 2 (usage or setup error).
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::RunFailed { .. } | Error::MutantsNotKilled { .. } => EXIT_FAILED,
            Error::RunInterrupted { .. } | Error::Interrupted { .. } => EXIT_INTERRUPTED,
            _ => EXIT_SETUP,
        }
    }

    /// Whether this is a verdict about the target (or its interruption) rather than a usage or setup
    /// error: printed as the run's last line, without `error:`.
    pub fn is_verdict(&self) -> bool {
        matches!(
            self,
            Error::RunFailed { .. }
                | Error::MutantsNotKilled { .. }
                | Error::RunInterrupted { .. }
                | Error::Interrupted { .. }
        )
    }

    /// A one-line hint printed after the error, when there is a useful one.
    pub fn help(&self) -> Option<String> {
        match self {
            Error::NextestMissing { .. } => {
                Some("install it with `cargo install cargo-nextest --locked`".into())
            }
            Error::Runner(RunnerError::UnknownPackage { .. }) => Some(
                "pass a package that declares `[package.metadata.stress-cache]`, or `--spec FILE`".into(),
            ),
            Error::Runner(RunnerError::NoTarget { .. }) => Some(
                "declare `[package.metadata.stress-cache]` in the target's Cargo.toml, set \
                 `[workspace.metadata.stress-cache] target = \"<package>\"`, or pass `--package`/`--spec`"
                    .into(),
            ),
            Error::SpecDoesNotFit { .. } => Some(
                "the table above lists every file and the roles its patterns gave it; use `!pattern` in a role \
                 to take files out, and `ignore = [...]` for sidecars"
                    .into(),
            ),
            Error::Runner(RunnerError::MissingFeature { .. }) => Some(
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

impl From<RunnerError> for Error {
    fn from(e: RunnerError) -> Self {
        match e {
            // A signal during the build is the run's interruption, not a setup error.
            RunnerError::BuildInterrupted { signal } => Error::Interrupted {
                signal: crate::interrupt::signal_name(signal),
                during: "building the target",
            },
            other => Error::Runner(other),
        }
    }
}

impl From<stress_cache_metadata::SpecError> for Error {
    fn from(e: stress_cache_metadata::SpecError) -> Self {
        Error::Runner(RunnerError::Spec(e))
    }
}
