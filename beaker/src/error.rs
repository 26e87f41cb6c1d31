//! One error type for beaker, each variant carrying the context a user needs (path, URL, key), mapped
//! to the documented exit codes in one place ([`BeakerError::exit_code`]).

use std::path::PathBuf;

/// Exit code: usage or configuration error.
pub const EXIT_USAGE: i32 = 2;
/// Exit code: network failure (after retries).
pub const EXIT_NETWORK: i32 = 3;
/// Exit code: integrity failure (checksum mismatch, invalid model, bad cache entry).
pub const EXIT_INTEGRITY: i32 = 4;
/// Exit code: local I/O failure (disk full, permissions).
pub const EXIT_IO: i32 = 5;

/// Everything that can go wrong in beaker, classified by what the user must do about it.
#[derive(Debug, thiserror::Error)]
pub enum BeakerError {
    /// Bad command line or input file the user named.
    #[error("{0}")]
    Usage(String),
    /// A configuration value (environment variable) is malformed.
    #[error("invalid {var}={value:?}: {reason}")]
    Config {
        /// Variable name.
        var: &'static str,
        /// Its value.
        value: String,
        /// Why it is rejected.
        reason: String,
    },
    /// Could not talk to the model server (after all attempts).
    #[error("download of {url} failed after {attempts} attempt(s): {cause}")]
    Network {
        /// Model URL.
        url: String,
        /// Attempts made.
        attempts: u32,
        /// The last failure, in one line.
        cause: String,
    },
    /// The downloaded bytes do not hash to the expected SHA-256.
    #[error("checksum mismatch for {url}: expected sha256 {expected}, got {actual}")]
    ChecksumMismatch {
        /// Model URL.
        url: String,
        /// Expected hex digest.
        expected: String,
        /// Actual hex digest.
        actual: String,
    },
    /// A model file does not load or does not meet the model contract.
    #[error("invalid model {path}: {reason}")]
    InvalidModel {
        /// The model file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// `cache verify` found bad entries.
    #[error("cache verify found {bad} bad entr{plural} in {dir}", plural = if *bad == 1 { "y" } else { "ies" })]
    VerifyFailed {
        /// Cache directory.
        dir: PathBuf,
        /// Number of bad entries.
        bad: usize,
    },
    /// Local file-system failure.
    #[error("{op} {path}: {source}")]
    Io {
        /// What beaker was doing (`create`, `rename`, `lock`, ...).
        op: &'static str,
        /// The path involved.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

impl BeakerError {
    /// The documented exit code of this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            BeakerError::Usage(_) | BeakerError::Config { .. } => EXIT_USAGE,
            BeakerError::Network { .. } => EXIT_NETWORK,
            BeakerError::ChecksumMismatch { .. }
            | BeakerError::InvalidModel { .. }
            | BeakerError::VerifyFailed { .. } => EXIT_INTEGRITY,
            BeakerError::Io { .. } => EXIT_IO,
        }
    }

    /// Shorthand for an [`BeakerError::Io`] with context.
    pub fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        BeakerError::Io { op, path: path.into(), source }
    }
}

/// beaker's result type.
pub type Result<T, E = BeakerError> = std::result::Result<T, E>;
