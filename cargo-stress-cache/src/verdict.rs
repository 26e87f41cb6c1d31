//! The verdict of a run as a whole (the first word of the summary line); its exit code is decided in
//! [`crate::errors::verdict_exit_code`], with the other exit codes.

use serde::{Deserialize, Serialize};

/// What a run proved, from strongest claim to weakest evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunVerdict {
    /// Every check that ran held, every test was stable, and the run was complete.
    Pass,
    /// An invariant was violated or a test was flaky or broken (or, if asked, a benchmark regressed).
    Fail,
    /// The run could not produce the evidence it needed: a scenario's setup failed, the checker's
    /// self-check failed, or the run stopped on an error.
    Error,
    /// The run was stopped before it completed (a signal, or nextest cancelling it): what ran is shown,
    /// but a partial run proves nothing about what did not.
    Interrupted,
}

impl RunVerdict {
    /// The word the summary line starts with.
    pub fn as_str(self) -> &'static str {
        match self {
            RunVerdict::Pass => "PASS",
            RunVerdict::Fail => "FAIL",
            RunVerdict::Error => "ERROR",
            RunVerdict::Interrupted => "INTERRUPTED",
        }
    }
}
