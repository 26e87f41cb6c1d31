//! beaker's configuration, read from the environment once per process (see `docs/CONTRACTS.md`,
//! "Environment"). Every variable name is a `pub const` here so that the stress declaration in
//! `beaker/Cargo.toml` can be checked against the code (`tests/integration/stress_declaration.rs`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{BeakerError, Result};

/// Download cache directory.
pub const ENV_CACHE_DIR: &str = "ONNX_MODEL_CACHE_DIR";
/// Compiled-model cache directory.
pub const ENV_COMPILED_DIR: &str = "BEAKER_COMPILED_CACHE_DIR";
/// Model URL.
pub const ENV_MODEL_URL: &str = "BEAKER_CUTOUT_MODEL_URL";
/// Expected SHA-256 of the model (hex); empty means "not given".
pub const ENV_MODEL_SHA256: &str = "BEAKER_CUTOUT_MODEL_SHA256";
/// Connect timeout in milliseconds.
pub const ENV_CONNECT_TIMEOUT_MS: &str = "BEAKER_CONNECT_TIMEOUT_MS";
/// Per-read timeout in milliseconds.
pub const ENV_READ_TIMEOUT_MS: &str = "BEAKER_READ_TIMEOUT_MS";
/// Download attempts (1 + retries).
pub const ENV_MAX_ATTEMPTS: &str = "BEAKER_MAX_ATTEMPTS";
/// Retry backoff base in milliseconds (doubles per attempt).
pub const ENV_RETRY_BASE_MS: &str = "BEAKER_RETRY_BASE_MS";
/// Seeded bug selector (feature `mutants`).
pub const ENV_MUTANT: &str = "BEAKER_MUTANT";
/// Failpoint configuration in `fail` crate syntax (feature `failpoints`).
pub const ENV_FAILPOINTS: &str = "FAILPOINTS";
/// Log filter (`env_logger`).
pub const ENV_LOG: &str = "RUST_LOG";

/// Every environment variable beaker reads.
pub const ALL_ENV_VARS: &[&str] = &[
    ENV_CACHE_DIR,
    ENV_COMPILED_DIR,
    ENV_MODEL_URL,
    ENV_MODEL_SHA256,
    ENV_CONNECT_TIMEOUT_MS,
    ENV_READ_TIMEOUT_MS,
    ENV_MAX_ATTEMPTS,
    ENV_RETRY_BASE_MS,
    ENV_MUTANT,
    ENV_FAILPOINTS,
    ENV_LOG,
];

/// The built-in model: IS-Net general-use background removal (input `[1,3,1024,1024]`, output
/// `[1,1,1024,1024]`), as published by the rembg project.
pub const DEFAULT_MODEL_URL: &str =
    "https://github.com/danielgatis/rembg/releases/download/v0.0.0/isnet-general-use.onnx";
/// Expected SHA-256 of [`DEFAULT_MODEL_URL`]. `None` until pinned from a verified download: without it
/// the model is validated by loading it (model contract) before it is published in the cache.
pub const DEFAULT_MODEL_SHA256: Option<&str> = None;

/// Default connect timeout.
pub const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 10_000;
/// Default per-read timeout.
pub const DEFAULT_READ_TIMEOUT_MS: u64 = 30_000;
/// Default number of download attempts.
pub const DEFAULT_MAX_ATTEMPTS: u32 = 4;
/// Default backoff base.
pub const DEFAULT_RETRY_BASE_MS: u64 = 250;
/// Upper bound of any single backoff wait (also caps `Retry-After`).
pub const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// Upper bound accepted for `BEAKER_MAX_ATTEMPTS` (every loop is bounded).
pub const MAX_ATTEMPTS_LIMIT: u32 = 100;

/// The resolved configuration of one beaker process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// Download cache directory.
    pub cache_dir: PathBuf,
    /// Compiled-model cache directory.
    pub compiled_dir: PathBuf,
    /// Model URL (`http://` or `https://`).
    pub model_url: String,
    /// Expected SHA-256 of the model, lower-case hex, if given.
    pub model_sha256: Option<String>,
    /// TCP connect timeout.
    pub connect_timeout: Duration,
    /// Timeout of each read from the socket.
    pub read_timeout: Duration,
    /// Download attempts (1 + retries), at least 1.
    pub max_attempts: u32,
    /// Backoff before the second attempt; doubles per attempt, capped at [`MAX_BACKOFF`].
    pub retry_base: Duration,
}

impl Config {
    /// Reads the configuration from the process environment.
    pub fn from_env() -> Result<Config> {
        Config::from_lookup(|name| std::env::var_os(name).map(|v| v.to_string_lossy().into_owned()))
    }

    /// Reads the configuration through `lookup` (the environment, or a map in tests).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Config> {
        let non_empty = |name: &str| lookup(name).filter(|v| !v.trim().is_empty());
        let cache_dir = match non_empty(ENV_CACHE_DIR) {
            Some(dir) => PathBuf::from(dir),
            None => dirs::cache_dir()
                .ok_or_else(|| BeakerError::Config {
                    var: ENV_CACHE_DIR,
                    value: String::new(),
                    reason: "no platform cache directory; set it explicitly".into(),
                })?
                .join("beaker")
                .join("models"),
        };
        let compiled_dir = match non_empty(ENV_COMPILED_DIR) {
            Some(dir) => PathBuf::from(dir),
            None => default_compiled_dir(&cache_dir),
        };
        let model_url = match non_empty(ENV_MODEL_URL) {
            Some(url) => url.trim().to_string(),
            None => DEFAULT_MODEL_URL.to_string(),
        };
        if !(model_url.starts_with("http://") || model_url.starts_with("https://")) {
            return Err(BeakerError::Config {
                var: ENV_MODEL_URL,
                value: model_url,
                reason: "must be an http:// or https:// URL".into(),
            });
        }
        let model_sha256 = match lookup(ENV_MODEL_SHA256) {
            Some(v) if !v.trim().is_empty() => Some(parse_sha256(&v)?),
            Some(_) => None,
            None if model_url == DEFAULT_MODEL_URL => DEFAULT_MODEL_SHA256.map(str::to_string),
            None => None,
        };
        let connect_ms = parse_u64(&lookup, ENV_CONNECT_TIMEOUT_MS, DEFAULT_CONNECT_TIMEOUT_MS, 1)?;
        let read_ms = parse_u64(&lookup, ENV_READ_TIMEOUT_MS, DEFAULT_READ_TIMEOUT_MS, 1)?;
        let attempts = parse_u64(&lookup, ENV_MAX_ATTEMPTS, u64::from(DEFAULT_MAX_ATTEMPTS), 1)?;
        if attempts > u64::from(MAX_ATTEMPTS_LIMIT) {
            return Err(BeakerError::Config {
                var: ENV_MAX_ATTEMPTS,
                value: attempts.to_string(),
                reason: format!("at most {MAX_ATTEMPTS_LIMIT}"),
            });
        }
        let base_ms = parse_u64(&lookup, ENV_RETRY_BASE_MS, DEFAULT_RETRY_BASE_MS, 0)?;
        Ok(Config {
            cache_dir,
            compiled_dir,
            model_url,
            model_sha256,
            connect_timeout: Duration::from_millis(connect_ms),
            read_timeout: Duration::from_millis(read_ms),
            max_attempts: attempts as u32,
            retry_base: Duration::from_millis(base_ms),
        })
    }
}

/// `<download cache>/../compiled`, or `<download cache>/compiled` when the cache dir has no parent.
pub fn default_compiled_dir(cache_dir: &Path) -> PathBuf {
    match cache_dir.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent.join("compiled"),
        _ => cache_dir.join("compiled"),
    }
}

/// Validates a hex SHA-256 (64 hex digits, any case) and returns it in lower case.
pub fn parse_sha256(value: &str) -> Result<String> {
    let v = value.trim().to_ascii_lowercase();
    if v.len() == 64 && v.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(v)
    } else {
        Err(BeakerError::Config {
            var: ENV_MODEL_SHA256,
            value: value.to_string(),
            reason: "expected 64 hex digits (or empty for none)".into(),
        })
    }
}

fn parse_u64(
    lookup: &impl Fn(&str) -> Option<String>,
    var: &'static str,
    default: u64,
    min: u64,
) -> Result<u64> {
    let Some(raw) = lookup(var).filter(|v| !v.trim().is_empty()) else {
        return Ok(default);
    };
    match raw.trim().parse::<u64>() {
        Ok(v) if v >= min => Ok(v),
        Ok(_) => Err(BeakerError::Config { var, value: raw, reason: format!("must be at least {min}") }),
        Err(e) => Err(BeakerError::Config { var, value: raw, reason: e.to_string() }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn cfg(pairs: &[(&str, &str)]) -> Result<Config> {
        let map: HashMap<String, String> =
            pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        Config::from_lookup(|k| map.get(k).cloned())
    }

    #[test]
    fn defaults_and_overrides() {
        let c = cfg(&[(ENV_CACHE_DIR, "/c/models"), (ENV_MODEL_URL, "http://127.0.0.1:1/m/a.onnx")]).unwrap();
        assert_eq!(c.compiled_dir, PathBuf::from("/c/compiled"));
        assert_eq!(c.model_sha256, None);
        assert_eq!(c.max_attempts, DEFAULT_MAX_ATTEMPTS);
        assert_eq!(c.read_timeout, Duration::from_millis(DEFAULT_READ_TIMEOUT_MS));
        let sha = "AB".repeat(32);
        let c = cfg(&[
            (ENV_CACHE_DIR, "/c/models"),
            (ENV_COMPILED_DIR, "/x"),
            (ENV_MODEL_URL, "http://h/a.onnx"),
            (ENV_MODEL_SHA256, &sha),
            (ENV_MAX_ATTEMPTS, "1"),
            (ENV_RETRY_BASE_MS, "0"),
        ])
        .unwrap();
        assert_eq!(c.compiled_dir, PathBuf::from("/x"));
        assert_eq!(c.model_sha256.as_deref(), Some("ab".repeat(32).as_str()));
        assert_eq!(c.max_attempts, 1);
        assert_eq!(c.retry_base, Duration::ZERO);
    }

    #[test]
    fn empty_sha_means_none_and_bad_values_are_config_errors() {
        let c = cfg(&[(ENV_CACHE_DIR, "/c"), (ENV_MODEL_URL, "http://h/a.onnx"), (ENV_MODEL_SHA256, "")])
            .unwrap();
        assert_eq!(c.model_sha256, None);
        for (var, value) in [
            (ENV_MODEL_SHA256, "xyz"),
            (ENV_MAX_ATTEMPTS, "0"),
            (ENV_MAX_ATTEMPTS, "1000"),
            (ENV_READ_TIMEOUT_MS, "-1"),
            (ENV_CONNECT_TIMEOUT_MS, "0"),
            (ENV_MODEL_URL, "ftp://h/a.onnx"),
        ] {
            let mut pairs = vec![(ENV_CACHE_DIR, "/c"), (ENV_MODEL_URL, "http://h/a.onnx")];
            pairs.push((var, value));
            let err = cfg(&pairs).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE, "{var}={value}: {err}");
        }
    }
}
