//! The per-run metadata file a target may write (`spec.metadata_file`): the model it actually loaded,
//! cache hit flags, lock wait and phase timestamps, read through the declared dotted key paths.

use std::path::{Path, PathBuf};

use stress_cache_metadata::{MetadataFile, Phase};

/// Error reading a metadata file.
#[derive(Debug, thiserror::Error)]
pub enum MetadataError {
    /// Missing or unreadable.
    #[error("cannot read metadata file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Not valid TOML/JSON.
    #[error("metadata file {path} is not valid {format}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// Declared format.
        format: String,
        /// Parser message.
        message: String,
    },
}

/// The facts of one run's metadata file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RunMetadata {
    /// SHA-256 of the model the process loaded.
    pub sha256: Option<String>,
    /// Download-cache hit.
    pub download_hit: Option<bool>,
    /// Lock wait (ms).
    pub lock_wait_ms: Option<f64>,
    /// Bytes downloaded.
    pub bytes_downloaded: Option<u64>,
    /// Download attempts.
    pub attempts: Option<u64>,
    /// Compiled-cache hit.
    pub compiled_hit: Option<bool>,
    /// Phases in order.
    pub phases: Vec<Phase>,
}

/// Looks up a dotted key path (`a.b.c`) in a JSON value.
pub fn lookup<'a>(value: &'a serde_json::Value, key: &str) -> Option<&'a serde_json::Value> {
    key.split('.').try_fold(value, |v, k| v.get(k))
}

impl RunMetadata {
    /// Reads `path` as declared by `decl`.
    pub fn read(decl: &MetadataFile, path: &Path) -> Result<Self, MetadataError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| MetadataError::Read { path: path.to_path_buf(), source })?;
        let parse_err = |message: String| MetadataError::Parse {
            path: path.to_path_buf(),
            format: decl.format.clone(),
            message,
        };
        let value: serde_json::Value = if decl.format.eq_ignore_ascii_case("json") {
            serde_json::from_str(&text).map_err(|e| parse_err(e.to_string()))?
        } else {
            let t: toml::Value = toml::from_str(&text).map_err(|e| parse_err(e.to_string()))?;
            serde_json::to_value(t).map_err(|e| parse_err(e.to_string()))?
        };
        Ok(Self::from_value(decl, &value))
    }

    /// Extracts the declared keys from a parsed document.
    pub fn from_value(decl: &MetadataFile, value: &serde_json::Value) -> Self {
        let get = |key: &Option<String>| key.as_deref().and_then(|k| lookup(value, k));
        let phases = get(&decl.phases)
            .and_then(|p| p.as_array())
            .map(|items| {
                items
                    .iter()
                    .filter_map(|p| {
                        Some(Phase {
                            name: p.get("name")?.as_str()?.to_string(),
                            start_unix_ms: p.get("start_unix_ms")?.as_u64()?,
                            end_unix_ms: p.get("end_unix_ms")?.as_u64()?,
                        })
                    })
                    .collect()
            })
            .unwrap_or_default();
        RunMetadata {
            sha256: lookup(value, &decl.sha256).and_then(|v| v.as_str()).map(str::to_string),
            download_hit: get(&decl.download_hit).and_then(|v| v.as_bool()),
            lock_wait_ms: get(&decl.lock_wait_ms).and_then(|v| v.as_f64()),
            bytes_downloaded: get(&decl.bytes_downloaded).and_then(|v| v.as_u64()),
            attempts: get(&decl.attempts).and_then(|v| v.as_u64()),
            compiled_hit: get(&decl.compiled_hit).and_then(|v| v.as_bool()),
            phases,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decl() -> MetadataFile {
        toml::from_str(
            r#"
            path = "{output_dir}/{input_stem}.beaker.toml"
            sha256 = "model.sha256"
            download-hit = "download_cache.hit"
            lock-wait-ms = "download_cache.lock_wait_ms"
            phases = "phases"
        "#,
        )
        .unwrap()
    }

    #[test]
    fn reads_declared_keys_from_toml() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bird.beaker.toml");
        std::fs::write(
            &path,
            "[model]\nsha256 = \"abc\"\n[download_cache]\nhit = true\nlock_wait_ms = 12\n\
             [[phases]]\nname = \"download\"\nstart_unix_ms = 1\nend_unix_ms = 5\n",
        )
        .unwrap();
        let m = RunMetadata::read(&decl(), &path).unwrap();
        assert_eq!(m.sha256.as_deref(), Some("abc"));
        assert_eq!(m.download_hit, Some(true));
        assert_eq!(m.lock_wait_ms, Some(12.0));
        assert_eq!(m.phases.len(), 1);
        assert!(RunMetadata::read(&decl(), &dir.path().join("missing")).is_err());
    }
}
