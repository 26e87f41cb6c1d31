//! The fixtures the runner prepared for one target build (`fixtures.json`, named by
//! `STRESS_FIXTURES`): the model files the server serves and the input every process reads. The runner
//! writes it once per run; every test process of the suite reads it instead of producing fixtures again.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Schema version of [`FixtureSet`].
pub const FIXTURES_SCHEMA_VERSION: u32 = 1;

/// One model the server will serve.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureModel {
    /// Model identity (`small`, `large`, ...).
    pub id: String,
    /// File name (the `{file_name}` placeholder).
    pub file_name: String,
    /// Where its bytes are.
    pub path: PathBuf,
    /// Lower-case hex SHA-256 of those bytes, as prepared (the reader checks it).
    pub sha256: String,
}

/// Every fixture of one target build.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FixtureSet {
    /// [`FIXTURES_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// The models, by id order.
    pub models: Vec<FixtureModel>,
    /// The input file (`{input}`).
    pub input: PathBuf,
}

/// A fixture set could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FixtureSetError {
    /// Reading the file failed.
    #[error("cannot read fixtures {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The file is not a fixture set of this schema.
    #[error("fixtures {path} are not valid: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
}

impl FixtureSet {
    /// Reads `path`.
    pub fn read(path: &Path) -> Result<FixtureSet, FixtureSetError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| FixtureSetError::Read { path: path.to_path_buf(), source })?;
        let set: FixtureSet = serde_json::from_str(&text)
            .map_err(|e| FixtureSetError::Parse { path: path.to_path_buf(), message: e.to_string() })?;
        if set.schema_version != FIXTURES_SCHEMA_VERSION {
            return Err(FixtureSetError::Parse {
                path: path.to_path_buf(),
                message: format!(
                    "schema version {} (this build reads {FIXTURES_SCHEMA_VERSION})",
                    set.schema_version
                ),
            });
        }
        Ok(set)
    }
}
