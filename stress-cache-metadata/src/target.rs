//! The target declaration: everything the stress suite needs to drive a program's model cache without
//! reading its code. It is written as `[package.metadata.stress-cache]` in the target's `Cargo.toml`, or
//! as a standalone TOML file (`cargo stress-cache --spec FILE`) that adds `command`.
//!
//! Placeholders in `args`, `gc-args`, `verify-args`, `fixtures.args` and `server.path`:
//! `{url}`, `{sha256}`, `{cache_dir}`, `{compiled_dir}`, `{output_dir}`, `{input}`, `{input_stem}`,
//! `{file_name}` (model file name), `{model}` (model identity, e.g. `small`), `{max_bytes}`, `{out_dir}`.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::patterns::{FileRoles, PatternList};

/// Error reading or validating a target declaration.
#[derive(Debug, thiserror::Error)]
pub enum SpecError {
    /// The spec file could not be read.
    #[error("cannot read target spec {path}: {source}")]
    Read {
        /// The file.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML did not match the schema.
    #[error("malformed target spec {origin}: {message}")]
    Malformed {
        /// Where the declaration came from (file or `package.metadata.stress-cache` of a package).
        origin: String,
        /// What is wrong, as the parser said it.
        message: String,
    },
    /// The declaration parsed but is inconsistent.
    #[error("invalid target spec {origin}: {message}")]
    Invalid {
        /// Where the declaration came from.
        origin: String,
        /// What is wrong.
        message: String,
    },
}

/// `[package.metadata.stress-cache]`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct TargetSpec {
    /// Human name of the target (defaults to the binary name).
    #[serde(default)]
    pub name: Option<String>,
    /// Cargo binary target to build (Cargo targets only).
    #[serde(default)]
    pub binary: Option<String>,
    /// The program to run, for targets outside a Cargo workspace (`--spec`): a path or a name on PATH.
    #[serde(default)]
    pub command: Option<String>,
    /// Arguments of one process that exercises the cache end to end (placeholders allowed).
    pub args: Vec<String>,
    /// Arguments of the target's garbage collector, if it has one (placeholders allowed, e.g. `{max_bytes}`).
    #[serde(default)]
    pub gc_args: Option<Vec<String>>,
    /// Arguments of the target's cache check, if it has one: it exits with `exit-codes.integrity` when an
    /// entry of the cache is damaged and `ok` when every entry is good (the state-recovery scenarios run it
    /// on the damaged cache before the next run repairs it).
    #[serde(default)]
    pub verify_args: Option<Vec<String>>,
    /// Environment variable names through which inputs are given instead of args.
    #[serde(default)]
    pub env: EnvNames,
    /// Fixed extra environment for every process (e.g. short timeouts for tests).
    #[serde(default)]
    pub extra_env: BTreeMap<String, String>,
    /// What the model server must look like to this target.
    #[serde(default)]
    pub server: ServerLayout,
    /// File patterns inside the cache directories.
    pub files: FilePatterns,
    /// The compiled-model cache, if the target has one.
    #[serde(default)]
    pub compiled: Option<CompiledCache>,
    /// Features the target has.
    #[serde(default)]
    pub features: Features,
    /// How the target reports failures through its exit code.
    #[serde(default)]
    pub exit_codes: ExitCodes,
    /// The per-run metadata file, if the target writes one.
    #[serde(default)]
    pub metadata_file: Option<MetadataFile>,
    /// The target prints the path of the model it resolved as the last line of its stdout; the suite
    /// checks, as each process exits, that the path exists, is complete and is a final artifact (or a
    /// symlink to one).
    #[serde(default)]
    pub prints_path: bool,
    /// Failpoints the target declares (with feature `features.failpoints`).
    #[serde(default)]
    pub failpoints: Option<Failpoints>,
    /// Seeded bugs the target declares (with feature `features.mutants`).
    #[serde(default)]
    pub mutants: Option<Mutants>,
    /// How to produce model fixtures and inputs; absent → the suite serves deterministic byte blobs.
    #[serde(default)]
    pub fixtures: Option<Fixtures>,
}

/// Environment variable names. A `None` input must then be passed through `args` placeholders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct EnvNames {
    /// Model URL.
    pub url: Option<String>,
    /// Expected SHA-256 (hex); an empty value must mean "not given".
    pub sha256: Option<String>,
    /// Download cache directory.
    pub cache_dir: Option<String>,
    /// Compiled cache directory.
    pub compiled_dir: Option<String>,
    /// Failpoint configuration (fail crate syntax).
    pub failpoints: Option<String>,
    /// Seeded bug selector.
    pub mutant: Option<String>,
}

/// Where and how the fixture server serves a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ServerLayout {
    /// URL path of a model; placeholders `{model}` and `{file_name}`.
    #[serde(default = "default_server_path")]
    pub path: String,
    /// Extra response headers the client expects.
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

fn default_server_path() -> String {
    "/models/{model}/{file_name}".to_string()
}

impl Default for ServerLayout {
    fn default() -> Self {
        Self { path: default_server_path(), headers: BTreeMap::new() }
    }
}

/// The roles of the files in a cache directory, as globset patterns relative to it (one pattern or a
/// list; `!pattern` excludes; see [`crate::patterns`]). `ignore` wins over every role; the other roles
/// must not overlap.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FilePatterns {
    /// Published model files.
    #[serde(rename = "final")]
    pub final_: PatternList,
    /// In-progress downloads.
    pub partial: PatternList,
    /// Lock files (may persist; only their *held* state matters).
    #[serde(default)]
    pub lock: Option<PatternList>,
    /// How locks are taken: `flock` (probe with a non-blocking flock) or `exists` (held while the file exists).
    #[serde(default)]
    pub lock_kind: LockKind,
    /// Files the target moves aside on purpose (e.g. quarantined bad models); never counted as cache content.
    #[serde(default)]
    pub quarantine: Option<PatternList>,
    /// Sidecars and metadata that are not model content (`*.meta`, `*.json`, `refs/*`): never read,
    /// never classified, never a role.
    #[serde(default)]
    pub ignore: PatternList,
    /// What a symlink under a final name means.
    #[serde(default)]
    pub symlinks: SymlinkPolicy,
}

/// Symlinks in a cache directory.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum SymlinkPolicy {
    /// A symlink under a final name publishes what it points to (`snapshots/*/*` → `blobs/*`): it is
    /// judged by the content it resolves to, and a dangling one is an incomplete final.
    #[default]
    Follow,
    /// Symlinks are not cache content and are skipped.
    Ignore,
}

/// How a target's lock files work.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum LockKind {
    /// `flock(2)`/`File::lock`: held while some process holds the kernel lock.
    #[default]
    Flock,
    /// Held while the file exists (O_EXCL lock files).
    Exists,
}

/// The compiled-model cache.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct CompiledCache {
    /// Pattern of a published entry (a directory or a file) inside the compiled dir.
    pub entry: String,
    /// Pattern of an entry under construction.
    pub partial: String,
    /// Lock files.
    #[serde(default)]
    pub lock: Option<String>,
}

/// What the target can do.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Features {
    /// The target accepts an expected checksum.
    #[serde(default)]
    pub checksum: bool,
    /// Cargo feature that compiles the failpoints in (Cargo targets), or `true`-ish name for others.
    #[serde(default)]
    pub failpoints: Option<String>,
    /// Cargo feature that compiles the seeded bugs in.
    #[serde(default)]
    pub mutants: Option<String>,
    /// The target validates a model by loading it (so served bytes must be real fixtures).
    #[serde(default)]
    pub loads_model: bool,
    /// The target retries a failed download (a refused or reset connection, a body cut short, a 429 or
    /// 503) within one run. `false`: the recovery scenarios accept a clean failure with the network
    /// class instead of a success, and still check that the failure left nothing behind.
    #[serde(default = "yes")]
    pub retries: bool,
    /// The target promises durability: published bytes are fsynced before the rename that publishes them,
    /// and the directory after it. `false` reports `published_durably` as skipped, not violated.
    #[serde(default = "yes")]
    pub durable: bool,
    /// Build the target with its default Cargo features. `false` builds it with
    /// `--no-default-features` (plus the failpoints and mutants features), for a target whose defaults
    /// (TLS, say) no loopback scenario uses and a cold first run would otherwise compile.
    #[serde(default = "yes")]
    pub default_features: bool,
}

fn yes() -> bool {
    true
}

impl Default for Features {
    fn default() -> Self {
        Features {
            checksum: false,
            failpoints: None,
            mutants: None,
            loads_model: false,
            durable: true,
            retries: true,
            default_features: true,
        }
    }
}

/// Exit codes by failure class.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ExitCodes {
    /// Success.
    #[serde(default)]
    pub ok: i32,
    /// Usage or configuration error.
    #[serde(default)]
    pub usage: Option<i32>,
    /// Network failure.
    #[serde(default)]
    pub network: Option<i32>,
    /// Integrity failure (checksum, invalid model).
    #[serde(default)]
    pub integrity: Option<i32>,
    /// Local I/O failure.
    #[serde(default)]
    pub io: Option<i32>,
}

/// The per-run metadata file and where its facts live (dotted TOML/JSON key paths).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct MetadataFile {
    /// Path of the file (placeholders `{output_dir}`, `{input_stem}`).
    pub path: String,
    /// `toml` or `json`.
    #[serde(default = "default_format")]
    pub format: String,
    /// Key of the SHA-256 of the model the process actually loaded.
    pub sha256: String,
    /// Key of the download-cache hit flag.
    #[serde(default)]
    pub download_hit: Option<String>,
    /// Key of the lock wait in ms.
    #[serde(default)]
    pub lock_wait_ms: Option<String>,
    /// Key of the bytes downloaded.
    #[serde(default)]
    pub bytes_downloaded: Option<String>,
    /// Key of the download attempts.
    #[serde(default)]
    pub attempts: Option<String>,
    /// Key of the compiled-cache hit flag.
    #[serde(default)]
    pub compiled_hit: Option<String>,
    /// Key of the phase list (`[{name, start_unix_ms, end_unix_ms}]`).
    #[serde(default)]
    pub phases: Option<String>,
}

fn default_format() -> String {
    "toml".to_string()
}

/// Declared failpoints and the actions the target understands.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Failpoints {
    /// Failpoint names.
    pub names: Vec<String>,
    /// Action that kills the process on the spot (as kill -9).
    pub crash_action: String,
    /// Action that injects an I/O error.
    #[serde(default)]
    pub io_action: Option<String>,
    /// Action that stops the process (SIGSTOP) so the harness can hold it at that point.
    #[serde(default)]
    pub pause_action: Option<String>,
    /// Failpoints on the reader path (hit after the path is resolved), for gc-vs-reader scenarios.
    #[serde(default)]
    pub reader: Option<String>,
    /// Failpoints on the gc path, right before a delete.
    #[serde(default)]
    pub gc: Option<String>,
}

/// Declared seeded bugs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Mutants {
    /// Mutant names.
    pub names: Vec<String>,
    /// A line the target prints on stderr when a seeded bug is active, with `{mutant}` for its name. A
    /// mutant counts as run (and so can count as killed) only where a process printed it: a build without
    /// the mutants feature, or a name the target ignores, is "not run", never "killed".
    pub active_marker: String,
    /// For each mutant, the scenarios expected to kill it (record names). A kill elsewhere only is shown
    /// as such, not as "killed where expected".
    #[serde(default)]
    pub killed_by: BTreeMap<String, Vec<String>>,
    /// For each mutant, the invariants it must violate in its first `killed-by` scenario (and which
    /// must hold on the clean run of it): the suite's own proof that each seeded bug is caught for the
    /// right reason, one generated test per declared mutant.
    #[serde(default)]
    pub trips: BTreeMap<String, Vec<String>>,
}

impl Mutants {
    /// The marker line for `mutant`.
    pub fn marker_for(&self, mutant: &str) -> String {
        self.active_marker.replace("{mutant}", mutant)
    }
}

/// How to produce fixtures.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct Fixtures {
    /// Arguments to the target binary that write fixtures into `{out_dir}`.
    pub args: Vec<String>,
    /// Model files it writes, by identity (`small = "small.onnx"`); at least two.
    pub models: BTreeMap<String, String>,
    /// Input files it writes (`{input}` takes the first).
    #[serde(default)]
    pub inputs: Vec<String>,
}

impl TargetSpec {
    /// Parses a standalone spec file (`--spec FILE`): the same schema, where `command` is required.
    pub fn from_spec_file(path: &Path) -> Result<Self, SpecError> {
        let text = std::fs::read_to_string(path)
            .map_err(|source| SpecError::Read { path: path.display().to_string(), source })?;
        let origin = path.display().to_string();
        let spec: TargetSpec = toml::from_str(&text).map_err(|e| SpecError::Malformed {
            origin: origin.clone(),
            message: one_line(&e.to_string()),
        })?;
        if spec.command.is_none() {
            return Err(SpecError::Invalid {
                origin,
                message: "`command` is required in a spec file".into(),
            });
        }
        spec.validate(&origin)?;
        Ok(spec)
    }

    /// Parses `[package.metadata.stress-cache]` given as a JSON value (as `cargo metadata` reports it).
    pub fn from_package_metadata(origin: &str, value: &serde_json::Value) -> Result<Self, SpecError> {
        let spec: TargetSpec = serde_json::from_value(value.clone()).map_err(|e| SpecError::Malformed {
            origin: origin.to_string(),
            message: one_line(&e.to_string()),
        })?;
        spec.validate(origin)?;
        Ok(spec)
    }

    /// Checks what the schema cannot: cross-field consistency.
    pub fn validate(&self, origin: &str) -> Result<(), SpecError> {
        let invalid = |message: String| Err(SpecError::Invalid { origin: origin.to_string(), message });
        if self.binary.is_none() && self.command.is_none() {
            return invalid("one of `binary` (Cargo target) or `command` is required".into());
        }
        if self.args.is_empty() {
            return invalid("`args` must not be empty".into());
        }
        let all_args = self.args.join(" ");
        if self.env.url.is_none() && !all_args.contains("{url}") {
            return invalid(
                "the model URL must be given through `env.url` or an `{url}` placeholder in `args`".into(),
            );
        }
        if self.env.cache_dir.is_none() && !all_args.contains("{cache_dir}") {
            return invalid(
                "the cache dir must be given through `env.cache-dir` or `{cache_dir}` in `args`".into(),
            );
        }
        if self.features.checksum && self.env.sha256.is_none() && !all_args.contains("{sha256}") {
            return invalid("`features.checksum` needs `env.sha256` or `{sha256}` in `args`".into());
        }
        if let Some(fixtures) = &self.fixtures
            && fixtures.models.len() < 2
        {
            return invalid("`fixtures.models` needs at least two models".into());
        }
        if let Some(m) = &self.mutants {
            if !m.active_marker.contains("{mutant}") {
                return invalid("`mutants.active-marker` must contain `{mutant}`".into());
            }
            if let Some(unknown) = m.killed_by.keys().find(|k| !m.names.contains(k)) {
                return invalid(format!("`mutants.killed-by` names undeclared mutant `{unknown}`"));
            }
        }
        FileRoles::compile(&self.files, origin)?;
        if let Some(c) = &self.compiled {
            for (key, pattern) in
                [("entry", Some(&c.entry)), ("partial", Some(&c.partial)), ("lock", c.lock.as_ref())]
            {
                if let Some(p) = pattern
                    && let Err(message) =
                        crate::patterns::FilePattern::compile(&PatternList::from(p.as_str()))
                {
                    return invalid(format!("compiled.{key}: {message}"));
                }
            }
        }
        Ok(())
    }

    /// The display name of the target.
    pub fn display_name(&self) -> &str {
        self.name.as_deref().or(self.binary.as_deref()).or(self.command.as_deref()).unwrap_or("target")
    }

    /// Declared failpoint names (empty when the target has none).
    pub fn failpoint_names(&self) -> &[String] {
        self.failpoints.as_ref().map(|f| f.names.as_slice()).unwrap_or(&[])
    }

    /// Declared mutant names (empty when the target has none).
    pub fn mutant_names(&self) -> &[String] {
        self.mutants.as_ref().map(|m| m.names.as_slice()).unwrap_or(&[])
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}
