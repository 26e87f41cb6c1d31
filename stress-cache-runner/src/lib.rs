//! The runner under `cargo stress-cache`, in the manner of `nextest-runner` under `cargo-nextest`: the
//! one place that knows how a target is found, built, given fixtures and a run directory, and handed to
//! the suite. The CLI, `xtask`, the suite's tests (when no CLI prepared the target) and beaker's own
//! process tests all call it; nothing else runs `cargo metadata` or `cargo build` for a target.
//!
//! - [`workspace`]: `cargo metadata`, the target package and its declaration (`--package`, `--spec`,
//!   `[workspace.metadata.stress-cache] target`, or the one member that declares itself).
//! - [`build`]: `cargo build` with the declared failpoints (and mutants) features.
//! - [`fixtures`]: the model files and input the target's declaration asks for, once per build.
//! - [`rundir`]: the run directory and the declaration handed to the suite.
//! - [`retention`]: the pinned target executables (once per content) and pruning of old run dirs.
//! - [`lock`]: the flock-based locks that keep concurrent runs off each other's files.
//! - [`suite`]: the whole preparation for a suite process started without the CLI.

pub mod build;
pub mod cargo;
mod error;
pub mod fixtures;
pub mod lock;
pub mod retention;
pub mod rundir;
pub mod suite;
pub mod workspace;

pub use error::{RunnerError, one_line};

/// Result alias of this crate.
pub type Result<T, E = RunnerError> = std::result::Result<T, E>;
