//! The compiled-model cache: the analogue of ONNX Runtime's CoreML cache. On first use a model is
//! "compiled" (ONNX → tract's decluttered typed model, written as an NNEF directory); later runs load
//! the NNEF entry and skip ONNX parsing and analysis.
//!
//! Layout (inside the compiled dir, see `docs/CONTRACTS.md`):
//! - entry: directory `<model sha256 first 16>-<compiler key>`, where the compiler key is the first 8
//!   hex of sha256(`"tract-nnef <tract version>"`): a tract upgrade gets fresh entries. It holds the
//!   NNEF files and, written last, [`MANIFEST_FILE`].
//! - build dir: `.<entry>.<pid>-<nonce>.tmp/`, renamed whole into place (a directory rename is atomic:
//!   an entry is either absent or complete).
//! - lock: `<entry>.lock` (persists, like the download cache's lock files).
//!
//! Protocol, the same discipline as the download cache:
//! - hit: shared lock → the entry exists → load it (NNEF → optimised plan) → unlock;
//! - miss, or an entry that fails to load: exclusive lock → look again (another process may have
//!   published, or already repaired, the entry) → a broken entry is renamed to a `.tmp` name and
//!   removed → stale build dirs of this key are removed (their owners are dead: we hold the lock) →
//!   build in a fresh build dir → manifest last → fsync every file and directory → failpoint
//!   `compiled.before_rename` → rename → fsync the compiled dir → load → unlock.
//!
//! Every load checks the entry's files against the SHA-256s its manifest lists (format 2): tract
//! loads a weight file with a flipped byte without complaint, and would run the wrong model from a
//! "hit". A missing, extra or changed file makes the entry broken (rebuilt; `cache verify` reports it).
//!
//! Seeded bugs (feature `mutants`): `compiled-direct-dir`, the entry is filled in place, so a crash at
//! `compiled.before_rename` leaves a half-built entry under the final name; `compiled-files-unchecked`,
//! the files are not checked against the manifest on load (a corrupted weight file is run).

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tract_onnx::WithOnnx;
use tract_onnx::prelude::{Framework, TractError, TractResult, TypedModel};

use crate::error::{BeakerError, Result};
use crate::failpoints;
use crate::fsio;
use crate::lock::{self, LockGuard};
use crate::model::{LoadedModel, ModelPlan, one_line};
use crate::run_metadata::Phase;

/// The tract version that writes and reads the entries (kept equal to `Cargo.lock` by a unit test;
/// tract-nnef exposes no version constant).
pub const TRACT_VERSION: &str = "0.23.9";
/// The manifest written last into every entry; an entry without a valid one is broken.
pub const MANIFEST_FILE: &str = "beaker-compiled.toml";
/// Suffix of build (and doomed) directories.
pub const TMP_SUFFIX: &str = ".tmp";
/// Version of the manifest format (2: with the files' SHA-256s; a format-1 entry is rebuilt).
const MANIFEST_FORMAT: u32 = 2;

/// `beaker-compiled.toml`: what the entry is, checked on every load.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Manifest format version.
    pub format: u32,
    /// Full hex SHA-256 of the ONNX bytes the entry was compiled from.
    pub model_sha256: String,
    /// `tract-nnef <version>`.
    pub compiler: String,
    /// First 8 hex of sha256(`compiler`).
    pub compiler_key: String,
    /// The model's side `S`.
    pub side: usize,
    /// When the entry was built (ms since the Unix epoch).
    pub created_unix_ms: u64,
    /// Every other file of the entry (path relative to it, `/`-separated) → its SHA-256.
    #[serde(default)]
    pub files: BTreeMap<String, String>,
}

/// What [`load_or_compile`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledOutcome {
    /// The entry existed (built earlier, or by another process while this one waited for the lock):
    /// this process did not compile.
    pub hit: bool,
    /// The entry's directory.
    pub path: PathBuf,
    /// The `compile` phase (ONNX parse + NNEF write), only when this process compiled.
    pub compile: Option<Phase>,
    /// The `load` phase (NNEF entry → optimised, runnable plan).
    pub load: Phase,
}

/// A model loaded from the compiled cache, ready to run.
pub type CompiledModel = ModelPlan;

/// `tract-nnef <version>`: the compiler identity.
pub fn compiler() -> String {
    format!("tract-nnef {TRACT_VERSION}")
}

/// First 8 hex of sha256([`compiler`]).
pub fn compiler_key() -> String {
    hex::encode(Sha256::digest(compiler().as_bytes()))[..8].to_string()
}

/// The entry directory name for a model: `<sha256 first 16>-<compiler key>`.
pub fn entry_name(model_sha256: &str) -> String {
    format!("{}-{}", &model_sha256[..16.min(model_sha256.len())], compiler_key())
}

/// Loads the compiled entry of the model whose ONNX bytes hash to `model_sha256`, compiling it first
/// when it is missing or broken.
///
/// `compile` produces the parsed ONNX model; it is called only on a miss (a hit never parses ONNX).
/// Its error is returned as is, so a caller can tell "the ONNX bytes are bad" (e.g. quarantine them)
/// from a cache failure. Holds the entry's shared lock while loading and its exclusive lock while
/// building (see the module docs). A model tract cannot write as NNEF is served from memory without
/// an entry (`hit: false`, `path` then does not exist).
pub fn load_or_compile(
    dir: &Path,
    model_sha256: &str,
    compile: impl FnOnce() -> Result<LoadedModel>,
) -> Result<(CompiledModel, CompiledOutcome)> {
    fsio::create_dir_all(dir)?;
    let entry = dir.join(entry_name(model_sha256));
    let lock_path = lock::lock_path(&entry);

    // Hit: under a shared lock nobody can be renaming or removing the entry.
    {
        let (_shared, _) = LockGuard::shared(&lock_path)?;
        if entry.exists() {
            match load_hit(&entry, model_sha256) {
                Ok(hit) => return Ok(hit),
                Err(e) => log::warn!("compiled entry {} is broken, rebuilding: {e}", entry.display()),
            }
        }
    }

    let (_exclusive, _) = LockGuard::exclusive(&lock_path)?;
    if entry.exists() {
        // Look again: another process may have published (or repaired) it while we waited.
        match load_hit(&entry, model_sha256) {
            Ok(hit) => return Ok(hit),
            Err(e) => {
                log::warn!("removing broken compiled entry {}: {e}", entry.display());
                remove_entry(&entry)?;
            }
        }
    }
    remove_stale_builds(&entry)?;

    let compile_start = fsio::unix_ms_now();
    let model = compile()?;
    match build(&entry, model_sha256, &model) {
        Ok(()) => {}
        Err(e @ BeakerError::InvalidModel { .. }) => {
            // The model meets the contract but tract cannot express it in NNEF: the contract says it
            // must still work, so serve it uncached (no entry is published).
            log::warn!("model cannot be compiled to NNEF, running it uncached: {e}");
            let compile_phase = Phase::since("compile", compile_start);
            let load_start = fsio::unix_ms_now();
            let plan = model.into_plan()?;
            let load = Phase::since("load", load_start);
            let outcome = CompiledOutcome { hit: false, path: entry, compile: Some(compile_phase), load };
            return Ok((plan, outcome));
        }
        Err(e) => return Err(e),
    }
    let compile_phase = Phase::since("compile", compile_start);

    let load_start = fsio::unix_ms_now();
    let plan = match load_entry(&entry, model_sha256) {
        Ok(plan) => plan,
        Err(e) => {
            // The entry we just wrote does not load back: do not leave it for others, and still
            // serve this run from the in-memory model.
            log::warn!("fresh compiled entry {} does not load, removed: {e}", entry.display());
            remove_entry(&entry)?;
            model.into_plan()?
        }
    };
    let load = Phase::since("load", load_start);
    Ok((plan, CompiledOutcome { hit: false, path: entry, compile: Some(compile_phase), load }))
}

/// Loads an entry: manifest check, NNEF → typed model → contract → optimised plan.
/// Loads the published `entry` as a hit, with the time the load took.
fn load_hit(entry: &Path, model_sha256: &str) -> Result<(CompiledModel, CompiledOutcome)> {
    let start = fsio::unix_ms_now();
    let plan = load_entry(entry, model_sha256)?;
    let load = Phase::since("load", start);
    Ok((plan, CompiledOutcome { hit: true, path: entry.to_path_buf(), compile: None, load }))
}

fn load_entry(entry: &Path, model_sha256: &str) -> Result<ModelPlan> {
    let invalid = |reason: String| BeakerError::InvalidModel { path: entry.to_path_buf(), reason };
    let manifest_path = entry.join(MANIFEST_FILE);
    let text = fs::read_to_string(&manifest_path).map_err(|e| BeakerError::io("read", &manifest_path, e))?;
    let manifest: Manifest = toml::from_str(&text)
        .map_err(|e| invalid(format!("bad manifest: {}", one_line_str(&e.to_string()))))?;
    if manifest.format != MANIFEST_FORMAT
        || manifest.model_sha256 != model_sha256
        || manifest.compiler_key != compiler_key()
    {
        return Err(invalid(format!(
            "manifest is for model {} compiled by {}, expected {model_sha256} by {}",
            manifest.model_sha256,
            manifest.compiler,
            compiler()
        )));
    }
    let unchecked: bool = crate::mutant_or!(CompiledFilesUnchecked => true, else false);
    if !unchecked && let Some(problem) = files_problem(entry, &manifest)? {
        return Err(invalid(problem));
    }
    let typed: TypedModel = nnef_reader().model_for_path(entry).map_err(|e| invalid(one_line(&e)))?;
    let plan = ModelPlan::from_typed(entry, typed)?;
    if plan.side() != manifest.side {
        return Err(invalid(format!("side {} but the manifest says {}", plan.side(), manifest.side)));
    }
    Ok(plan)
}

/// What is wrong with `entry` without loading it (for `cache verify`): no readable manifest, another
/// format, or files that differ from the manifest's list. `None` when it checks out.
pub fn check_entry(entry: &Path) -> Result<Option<String>> {
    let manifest_path = entry.join(MANIFEST_FILE);
    let text = match fs::read_to_string(&manifest_path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Some("no manifest".into())),
        Err(e) => return Ok(Some(format!("manifest unreadable: {e}"))),
    };
    let manifest: Manifest = match toml::from_str(&text) {
        Ok(m) => m,
        Err(e) => return Ok(Some(format!("bad manifest: {}", one_line_str(&e.to_string())))),
    };
    if manifest.format != MANIFEST_FORMAT {
        return Ok(Some(format!("manifest format {} (expected {MANIFEST_FORMAT})", manifest.format)));
    }
    files_problem(entry, &manifest)
}

/// The difference between the files of `entry` and the manifest's list, if any.
fn files_problem(entry: &Path, manifest: &Manifest) -> Result<Option<String>> {
    let actual = hash_files(entry)?;
    if actual == manifest.files {
        return Ok(None);
    }
    let missing: Vec<&str> =
        manifest.files.keys().filter(|f| !actual.contains_key(*f)).map(String::as_str).collect();
    let extra: Vec<&str> =
        actual.keys().filter(|f| !manifest.files.contains_key(*f)).map(String::as_str).collect();
    let changed: Vec<&str> = actual
        .iter()
        .filter(|(f, sha)| manifest.files.get(*f).is_some_and(|m| m != *sha))
        .map(|(f, _)| f.as_str())
        .collect();
    Ok(Some(format!(
        "files differ from the manifest: missing {missing:?}, extra {extra:?}, changed {changed:?}"
    )))
}

/// SHA-256 of every file under `dir` but the manifest, by `/`-separated relative path. Bounded: entries
/// are a handful of files in a few directory levels.
fn hash_files(dir: &Path) -> Result<BTreeMap<String, String>> {
    let mut out = BTreeMap::new();
    let hash = |path: &Path| -> Result<()> {
        let relative = path.strip_prefix(dir).unwrap_or(path);
        let name =
            relative.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
        if name != MANIFEST_FILE {
            out.insert(name, fsio::sha256_file(path)?.0);
        }
        Ok(())
    };
    walk_tree(dir, hash, |_| Ok(()))?;
    Ok(out)
}

/// Walks the tree under `root` depth-first: `file` on every non-directory as its directory is listed,
/// then `listed` on that directory. Bounded: entries are a handful of files in a few directory levels.
fn walk_tree(
    root: &Path,
    mut file: impl FnMut(&Path) -> Result<()>,
    mut listed: impl FnMut(&Path) -> Result<()>,
) -> Result<()> {
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for item in fs::read_dir(&dir).map_err(|e| BeakerError::io("list", &dir, e))? {
            let path = item.map_err(|e| BeakerError::io("list", &dir, e))?.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                file(&path)?;
            }
        }
        listed(&dir)?;
    }
    Ok(())
}

/// The NNEF framework that writes entries (tract core ops + the ONNX extensions).
fn nnef() -> tract_nnef::framework::Nnef {
    tract_nnef::nnef().with_onnx()
}

/// The NNEF framework that reads entries: [`nnef`] without its parsed copy of the NNEF stdlib
/// (`Nnef::stdlib`), which only writing consults. tract's default framework parses the 18 KB stdlib
/// twice, once for that field and once more inside its `tract_nnef` registry, and the graph itself is
/// under 2 KB: without the first parse a warm hit took 19.0 ms of CPU instead of 23.1 (2026-12-03).
/// Should a later tract read through the field, every load fails and every run rebuilds, which
/// `tests/integration/cutout.rs` catches (a second run must be a hit).
fn nnef_reader() -> tract_nnef::framework::Nnef {
    use tract_nnef::resource::{
        DatLoader, GraphNnefLoader, GraphQuantLoader, ResourceLoader, TypedModelLoader,
    };
    tract_nnef::framework::Nnef {
        stdlib: Vec::new(),
        registries: vec![tract_nnef::ops::tract_nnef(), tract_nnef::ops::tract_core()],
        resource_loaders: vec![
            GraphNnefLoader.into_boxed(),
            DatLoader.into_boxed(),
            GraphQuantLoader.into_boxed(),
            TypedModelLoader::new(false).into_boxed(),
        ],
        allow_extended_identifier_syntax: false,
        extern_all_constants: false,
    }
    .with_onnx()
}

/// Builds the entry for `model` under the exclusive lock (see the module docs).
fn build(entry: &Path, model_sha256: &str, model: &LoadedModel) -> Result<()> {
    #[cfg(feature = "mutants")]
    if crate::mutants::active() == Some(crate::mutants::Mutant::CompiledDirectDir) {
        return build_in_place(entry, model_sha256, model);
    }
    let dir = parent_of(entry);
    let tmp = build_dir(entry);
    let mut guard = RemoveOnDrop(Some(tmp.clone()));
    write_contents(&tmp, model_sha256, model)?;
    fsync_tree(&tmp)?;
    failpoints::check(failpoints::COMPILED_BEFORE_RENAME, "rename", &tmp)?;
    fs::rename(&tmp, entry).map_err(|e| BeakerError::io("rename", &tmp, e))?;
    guard.0 = None;
    fsio::fsync_dir(dir)?;
    log::info!("compiled {} ", entry.display());
    Ok(())
}

/// Seeded bug `compiled-direct-dir`: writes the entry in place, visible under its final name while
/// half-built (and left so by a crash or an error).
#[cfg(feature = "mutants")]
fn build_in_place(entry: &Path, model_sha256: &str, model: &LoadedModel) -> Result<()> {
    nnef().write_to_dir(model.typed(), entry).map_err(|e| write_error(entry, e))?;
    failpoints::check(failpoints::COMPILED_BEFORE_RENAME, "rename", entry)?;
    write_manifest(entry, model_sha256, model)?;
    fsio::fsync_dir(parent_of(entry))
}

/// Writes the NNEF files, then the manifest (last: its presence marks a complete entry).
fn write_contents(tmp: &Path, model_sha256: &str, model: &LoadedModel) -> Result<()> {
    write_nnef(tmp, model.typed()).map_err(|e| write_error(tmp, e))?;
    write_manifest(tmp, model_sha256, model)
}

/// tract's `write_to_dir`, with buffered writes: tract dumps `graph.nnef` token by token straight into
/// the file (about a thousand `write` calls for the small fixture, seen in the stress suite's file-system
/// trace). Quantized models, rare here, go through tract's own writer. Like it, this refuses to write
/// into an existing directory.
fn write_nnef(dir: &Path, model: &TypedModel) -> TractResult<()> {
    use std::io::{BufWriter, Write};
    let nnef = nnef();
    let proto = tract_nnef::ser::to_proto_model(&nnef, model)?;
    if proto.quantization.is_some() {
        return nnef.write_to_dir(model, dir);
    }
    fs::create_dir(dir)?;
    let mut graph = BufWriter::new(File::create(dir.join("graph.nnef"))?);
    tract_nnef::ast::dump::Dumper::new(&nnef, &mut graph).document(&proto.doc)?;
    graph.flush()?;
    for (label, tensor) in &proto.tensors {
        tract_nnef::framework::ensure_label_is_relative_path(&label.0)?;
        let file = dir.join(format!("{}.dat", label.0.trim_start_matches('/')));
        if let Some(parent) = file.parent() {
            fs::create_dir_all(parent)?;
        }
        let mut out = BufWriter::new(File::create(&file)?);
        tract_nnef::tensors::write_tensor(&mut out, tensor)?;
        out.flush()?;
    }
    Ok(())
}

fn write_manifest(dir: &Path, model_sha256: &str, model: &LoadedModel) -> Result<()> {
    let manifest = Manifest {
        format: MANIFEST_FORMAT,
        model_sha256: model_sha256.to_string(),
        compiler: compiler(),
        compiler_key: compiler_key(),
        side: model.side(),
        created_unix_ms: fsio::unix_ms_now(),
        // Written last, over the files already written: the list says what a complete entry holds.
        files: hash_files(dir)?,
    };
    let text = toml::to_string(&manifest).map_err(|e| BeakerError::InvalidModel {
        path: dir.to_path_buf(),
        reason: format!("cannot serialise the manifest: {e}"),
    })?;
    let path = dir.join(MANIFEST_FILE);
    fs::write(&path, text).map_err(|e| BeakerError::io("write", &path, e))
}

/// A tract write failure: an I/O error in the chain is local I/O (exit 5, e.g. disk full); anything
/// else means the model cannot be expressed in NNEF (exit 4).
fn write_error(path: &Path, e: TractError) -> BeakerError {
    let reason = one_line(&e);
    match e.chain().find_map(|c| c.downcast_ref::<std::io::Error>()) {
        Some(io) => BeakerError::io("write compiled entry", path, std::io::Error::new(io.kind(), reason)),
        None => BeakerError::InvalidModel {
            path: path.to_path_buf(),
            reason: format!("cannot compile: {reason}"),
        },
    }
}

/// `.<entry>.<pid>-<nonce>.tmp` next to the entry.
fn build_dir(entry: &Path) -> PathBuf {
    let name = entry.file_name().unwrap_or_default().to_string_lossy();
    entry.with_file_name(format!(".{name}.{}{TMP_SUFFIX}", fsio::unique_suffix()))
}

/// Removes a broken entry under the exclusive lock: renamed to a build-dir name first (atomic), so a
/// crash during the recursive removal leaves a stale build dir, never a half-deleted entry.
fn remove_entry(entry: &Path) -> Result<()> {
    let doomed = build_dir(entry);
    fs::rename(entry, &doomed).map_err(|e| BeakerError::io("rename", entry, e))?;
    fsio::fsync_dir(parent_of(entry))?;
    // Whatever squats on the entry name goes, even a plain file.
    let removed = if doomed.is_dir() { fs::remove_dir_all(&doomed) } else { fs::remove_file(&doomed) };
    removed.map_err(|e| BeakerError::io("remove", &doomed, e))
}

/// Removes the build dirs of this entry left by dead processes. Call only under the exclusive lock.
fn remove_stale_builds(entry: &Path) -> Result<usize> {
    let dir = parent_of(entry);
    let prefix = format!(".{}.", entry.file_name().unwrap_or_default().to_string_lossy());
    let mut removed = 0;
    for item in fs::read_dir(dir).map_err(|e| BeakerError::io("list", dir, e))? {
        let item = item.map_err(|e| BeakerError::io("list", dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        if name.starts_with(&prefix) && name.ends_with(TMP_SUFFIX) {
            log::warn!("removing stale compiled build dir {name}");
            let path = item.path();
            let result = if path.is_dir() { fs::remove_dir_all(&path) } else { fs::remove_file(&path) };
            match result {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BeakerError::io("remove stale build dir", path, e)),
            }
        }
    }
    if removed > 0 {
        fsio::fsync_dir(dir)?;
    }
    Ok(removed)
}

/// fsyncs every file and directory under `root` (and `root` itself), so the renamed entry is durable.
fn fsync_tree(root: &Path) -> Result<()> {
    let fsync_file = |path: &Path| -> Result<()> {
        File::open(path).and_then(|f| f.sync_all()).map_err(|e| BeakerError::io("fsync", path, e))
    };
    walk_tree(root, fsync_file, fsio::fsync_dir)
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

fn one_line_str(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Removes a build dir when a build fails with an error (not on a crash: that is what the stale
/// cleanup is for).
struct RemoveOnDrop(Option<PathBuf>);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        if let Some(path) = self.0.take()
            && let Err(e) = fs::remove_dir_all(&path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            log::warn!("cannot remove {}: {e}", path.display());
        }
    }
}

#[cfg(test)]
mod tests;
