//! `<stem>.beaker.toml`: what one `cutout` run did (schema in `docs/CONTRACTS.md`), written atomically
//! through [`crate::fsio::write_atomic`]. The stress suite reads it to check which model bytes each
//! process actually loaded and what the caches did.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::error::{BeakerError, Result};
use crate::fsio;

/// The whole file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunMetadata {
    /// The model that was loaded.
    pub model: ModelInfo,
    /// What the download cache did.
    pub download_cache: DownloadCacheInfo,
    /// What the compiled-model cache did.
    pub compiled_cache: CompiledCacheInfo,
    /// Phases in order: resolve, lock_wait, download, compile, load, inference, write_output (absent
    /// phases are omitted).
    pub phases: Vec<Phase>,
}

/// `[model]`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    /// Model URL.
    pub url: String,
    /// Hex SHA-256 of the model bytes actually loaded.
    pub sha256: String,
    /// Final path in the download cache.
    pub path: String,
    /// Size of the model in bytes.
    pub size_bytes: u64,
}

/// `[download_cache]`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadCacheInfo {
    /// The model was already cached (or another process published it while this one waited).
    pub hit: bool,
    /// Body bytes this process received (all attempts).
    pub bytes_downloaded: u64,
    /// Download attempts this process made (0 on a hit).
    pub attempts: u32,
    /// Milliseconds spent waiting for cache locks.
    pub lock_wait_ms: u64,
}

/// `[compiled_cache]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompiledCacheInfo {
    /// The compiled entry existed.
    pub hit: bool,
    /// The compiled entry's directory.
    pub path: String,
}

/// One `[[phases]]` entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    /// Phase name.
    pub name: String,
    /// Start, ms since the Unix epoch.
    pub start_unix_ms: u64,
    /// End, ms since the Unix epoch.
    pub end_unix_ms: u64,
}

impl Phase {
    /// A phase from `start_unix_ms` until now.
    pub fn since(name: &str, start_unix_ms: u64) -> Phase {
        Phase { name: name.to_string(), start_unix_ms, end_unix_ms: fsio::unix_ms_now().max(start_unix_ms) }
    }

    /// Runs `f` and records it as phase `name`.
    pub fn measure<T>(name: &str, phases: &mut Vec<Phase>, f: impl FnOnce() -> T) -> T {
        let start = fsio::unix_ms_now();
        let out = f();
        phases.push(Phase::since(name, start));
        out
    }
}

impl RunMetadata {
    /// The TOML text.
    pub fn to_toml(&self) -> Result<String> {
        toml::to_string(self).map_err(|e| BeakerError::Usage(format!("cannot serialise run metadata: {e}")))
    }

    /// Writes the file atomically (temp file in the same directory, fsync, rename, fsync dir).
    pub fn write(&self, path: &Path) -> Result<()> {
        fsio::write_atomic(path, self.to_toml()?.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schema_matches_the_contract() {
        let meta = RunMetadata {
            model: ModelInfo {
                url: "http://h/m.onnx".into(),
                sha256: "ab".into(),
                path: "/c/m".into(),
                size_bytes: 3,
            },
            download_cache: DownloadCacheInfo {
                hit: true,
                bytes_downloaded: 0,
                attempts: 0,
                lock_wait_ms: 1,
            },
            compiled_cache: CompiledCacheInfo { hit: false, path: "/x".into() },
            phases: vec![
                Phase { name: "resolve".into(), start_unix_ms: 1, end_unix_ms: 2 },
                Phase { name: "load".into(), start_unix_ms: 2, end_unix_ms: 5 },
            ],
        };
        let text = meta.to_toml().unwrap();
        let value: toml::Value = toml::from_str(&text).unwrap();
        assert_eq!(value["model"]["sha256"].as_str(), Some("ab"));
        assert_eq!(value["download_cache"]["hit"].as_bool(), Some(true));
        assert_eq!(value["download_cache"]["lock_wait_ms"].as_integer(), Some(1));
        assert_eq!(value["compiled_cache"]["hit"].as_bool(), Some(false));
        assert_eq!(value["phases"][1]["name"].as_str(), Some("load"));
        assert_eq!(toml::from_str::<RunMetadata>(&text).unwrap(), meta);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.beaker.toml");
        meta.write(&path).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), text);
    }
}
