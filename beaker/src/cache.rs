//! The download cache: a crash-safe, multi-process cache of ONNX models.
//!
//! Interface: (for `cutout.rs` — what cutout must call)
//! 1. `let mut model = cache::resolve_for_reading(&cfg)?;` — returns a [`ResolvedModel`] that holds a
//!    *shared* lock on the entry, so `beaker cache gc` cannot delete the file while you read it.
//! 2. `let bytes = model.read_bytes()?;` — reads the model under that lock (hash these bytes for
//!    `[model] sha256` in `.beaker.toml`; [`fsio::sha256_hex`] does it).
//! 3. If the bytes fail to load (`model::load_model_bytes` → `InvalidModel`), call
//!    `model = cache::quarantine_and_refetch(&cfg, model, &reason)?;` once, then read again; a second
//!    failure is reported as is (exit 4).
//! 4. `model.release()` (or drop it) once the bytes are loaded; keep `model.phases`
//!    (resolve, lock_wait, download) and [`ResolvedModel::download_cache_info`] for `.beaker.toml`
//!    ([`crate::run_metadata`]).
//!
//! Layout (see `docs/CONTRACTS.md`): final `<stem>-<sha256[..16]>.onnx` (checksum given) or
//! `<stem>-url<sha256(url)[..16]>.onnx` (not given); lock `<final>.lock` (persists); partials
//! `<final>.<pid>-<nonce>.partial`; `quarantine/<final>.<unix ms>`.
//!
//! Protocol. Warm hit: shared lock → the final exists as a regular file → touch its mtime (LRU for gc) → return while
//! holding the shared lock. **A hit is not re-hashed** (documented decision: finals are immutable,
//! content-addressed and only ever published verified; re-hashing a 2 MB–170 MB model on every run
//! would cost more than loading it; `beaker cache verify` re-hashes everything, and `cutout` hashes the
//! bytes it loads anyway). Miss: exclusive lock → look again (a process that waited becomes a hit:
//! N concurrent processes, one download) → the lock file is still the one locked (else start over) →
//! move aside a non-file squatting on the final name → remove stale partials of this key → download into a unique
//! partial (Content-Length checked) → fsync → verify SHA-256, or without a checksum validate by
//! loading the model → rename → fsync dir → unlock → take the shared lock as a reader.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::config::Config;
use crate::error::{BeakerError, Result};
use crate::failpoints;
use crate::fetch;
use crate::fsio::{self, Partial};
use crate::lock::{self, LockGuard};
use crate::run_metadata::{DownloadCacheInfo, Phase};

/// Extension of final files.
pub const FINAL_EXTENSION: &str = "onnx";
/// Bound on "published, then evicted by gc before we could take the shared lock" rounds.
const MAX_ROUNDS: u32 = 4;

/// A model resolved in the download cache, ready to be read.
///
/// While it holds its reader guard (from [`resolve_for_reading`] until [`ResolvedModel::release`] or
/// drop), the process holds a shared lock on `<final>.lock`: gc and quarantine (exclusive lock) wait
/// or skip the entry, so the file cannot disappear under the reader.
#[derive(Debug)]
pub struct ResolvedModel {
    /// Final path of the model in the download cache.
    pub path: PathBuf,
    /// The URL it came from.
    pub url: String,
    /// The configured SHA-256 (lower-case hex), if any. Not re-checked on a hit.
    pub sha256_expected: Option<String>,
    /// The model was already cached, or another process published it while this one waited.
    pub hit: bool,
    /// Body bytes this process downloaded (all attempts; 0 on a hit).
    pub bytes_downloaded: u64,
    /// Download attempts this process made (0 on a hit).
    pub attempts: u32,
    /// Time spent waiting for the entry's locks, in ms.
    pub lock_wait_ms: u64,
    /// Phases so far, in order: `resolve`, `lock_wait`, `download` (only when downloaded).
    pub phases: Vec<Phase>,
    identity: (u64, u64),
    guard: Option<LockGuard>,
}

impl ResolvedModel {
    /// Reads the model file. Call it before [`ResolvedModel::release`]: the shared lock keeps gc from
    /// deleting the file meanwhile.
    pub fn read_bytes(&self) -> Result<Vec<u8>> {
        if self.guard.is_none() {
            log::warn!("reading {} without holding its shared lock", self.path.display());
        }
        fsio::read(&self.path)
    }

    /// Whether the shared (reader) lock is still held.
    pub fn holds_read_lock(&self) -> bool {
        self.guard.is_some()
    }

    /// Releases the shared lock (after the bytes are loaded). Idempotent.
    pub fn release(&mut self) {
        self.guard = None;
    }

    /// The `[download_cache]` section of `.beaker.toml`.
    pub fn download_cache_info(&self) -> DownloadCacheInfo {
        DownloadCacheInfo {
            hit: self.hit,
            bytes_downloaded: self.bytes_downloaded,
            attempts: self.attempts,
            lock_wait_ms: self.lock_wait_ms,
        }
    }
}

/// How a final file name encodes its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FinalKey {
    /// `<stem>-<16 hex>.onnx`: the first 16 hex digits of the content's SHA-256.
    Sha256Prefix(String),
    /// `<stem>-url<16 hex>.onnx`: the first 16 hex digits of the URL's SHA-256 (no checksum given).
    UrlHashPrefix(String),
}

/// Parses a final file name; `None` for anything that is not a final name.
pub fn parse_final_name(name: &str) -> Option<FinalKey> {
    let base = name.strip_suffix(&format!(".{FINAL_EXTENSION}"))?;
    let (_stem, key) = base.rsplit_once('-')?;
    let is_hex16 =
        |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    match key.strip_prefix("url") {
        Some(h) if is_hex16(h) => Some(FinalKey::UrlHashPrefix(h.to_string())),
        _ if is_hex16(key) => Some(FinalKey::Sha256Prefix(key.to_string())),
        _ => None,
    }
}

/// The last path segment of `url` (no query or fragment), restricted to `[A-Za-z0-9._-]`.
pub fn url_file_name(url: &str) -> String {
    let no_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = no_scheme.split(['?', '#']).next().unwrap_or("");
    let path = path.split_once('/').map_or("", |(_, p)| p);
    let last = path.rsplit('/').next().unwrap_or("");
    last.chars().map(|c| if c.is_ascii_alphanumeric() || "._-".contains(c) { c } else { '_' }).collect()
}

/// The final file name of `url` with the optional expected SHA-256 (see the module docs).
pub fn final_name(url: &str, sha256: Option<&str>) -> String {
    let file = url_file_name(url);
    let stem = match file.rsplit_once('.') {
        Some((stem, _)) if !stem.is_empty() => stem.to_string(),
        _ if file.is_empty() => "model".to_string(),
        _ => file.clone(),
    };
    let name = match sha256 {
        Some(sha) => format!("{stem}-{}.{FINAL_EXTENSION}", &sha[..16.min(sha.len())]),
        None => format!("{stem}-url{}.{FINAL_EXTENSION}", &fsio::sha256_hex(url.as_bytes())[..16]),
    };
    crate::mutant_or!(NameWithoutHash => if file.is_empty() { format!("model.{FINAL_EXTENSION}") } else { file },
        else name)
}

/// The final path of the configured model.
pub fn final_path(cfg: &Config) -> PathBuf {
    cfg.cache_dir.join(final_name(&cfg.model_url, cfg.model_sha256.as_deref()))
}

/// Resolves the configured model for reading: a hit, or a download published under the exclusive
/// lock. Returns holding the shared lock (see [`ResolvedModel`]). Failpoint `cache.after_resolve` is
/// evaluated with the lock held and the path known.
pub fn resolve_for_reading(cfg: &Config) -> Result<ResolvedModel> {
    let start = fsio::unix_ms_now();
    fsio::create_dir_all(&cfg.cache_dir)?;
    let final_path = final_path(cfg);
    let lock_path = lock::lock_path(&final_path);
    let unlocked_cleanup: bool = crate::mutant_or!(CleanPartialsUnlocked => true, else false);
    if unlocked_cleanup {
        // The seeded bug: "clean up stale downloads at startup", before taking any lock.
        fsio::remove_stale_partials(&final_path)?;
    }
    let mut progress = Progress::default();
    for _round in 0..MAX_ROUNDS {
        let wait_start = fsio::unix_ms_now();
        let (shared, waited) = LockGuard::shared(&lock_path)?;
        progress.lock_wait += waited;
        if progress.lock_phase.is_none() {
            progress.lock_phase = Some(Phase::since("lock_wait", wait_start));
        }
        if let Some(identity) = identity(&final_path)? {
            fsio::touch(&final_path);
            failpoints::check(failpoints::CACHE_AFTER_RESOLVE, "open", &final_path)?;
            let mut phases = vec![Phase::since("resolve", start)];
            phases.extend(progress.lock_phase.take());
            phases.extend(progress.download_phase.take());
            return Ok(ResolvedModel {
                path: final_path,
                url: cfg.model_url.clone(),
                sha256_expected: cfg.model_sha256.clone(),
                hit: !progress.downloaded,
                bytes_downloaded: progress.bytes,
                attempts: progress.attempts,
                lock_wait_ms: progress.lock_wait.as_millis() as u64,
                phases,
                identity,
                guard: Some(shared),
            });
        }
        drop(shared);
        publish(cfg, &final_path, &lock_path, &mut progress)?;
    }
    Err(BeakerError::io(
        "resolve",
        &final_path,
        std::io::Error::new(
            std::io::ErrorKind::NotFound,
            format!(
                "the model was removed right after being published, {MAX_ROUNDS} times (gc too aggressive?)"
            ),
        ),
    ))
}

/// `beaker cache fetch`: makes sure the model is cached and returns its final path (no lock held).
pub fn fetch(cfg: &Config) -> Result<ResolvedModel> {
    let mut model = resolve_for_reading(cfg)?;
    model.release();
    Ok(model)
}

/// Moves a final file that failed to load (`reason`) to `quarantine/` and fetches the model again.
/// Under the exclusive lock it quarantines the file only if it is still the very file `bad` resolved
/// (same inode), so concurrent processes that saw the same bad file quarantine it once and download
/// once. Returns the new resolution, holding the shared lock; counters include both resolutions.
pub fn quarantine_and_refetch(cfg: &Config, bad: ResolvedModel, reason: &str) -> Result<ResolvedModel> {
    let ResolvedModel {
        path,
        identity: bad_identity,
        hit,
        bytes_downloaded,
        attempts,
        lock_wait_ms,
        guard,
        ..
    } = bad;
    drop(guard);
    let lock_path = lock::lock_path(&path);
    let (exclusive, waited) = LockGuard::exclusive(&lock_path)?;
    if identity(&path)? == Some(bad_identity) {
        let target = fsio::quarantine(&path)?;
        log::warn!("{} fails to load ({reason}); quarantined as {}", path.display(), target.display());
    } else {
        log::info!("{} was already replaced by another process", path.display());
    }
    drop(exclusive);
    let mut again = resolve_for_reading(cfg)?;
    again.hit = hit && again.hit;
    again.bytes_downloaded += bytes_downloaded;
    again.attempts += attempts;
    again.lock_wait_ms += lock_wait_ms + waited.as_millis() as u64;
    Ok(again)
}

/// What this process has done so far while resolving.
#[derive(Default)]
struct Progress {
    lock_wait: Duration,
    lock_phase: Option<Phase>,
    download_phase: Option<Phase>,
    downloaded: bool,
    bytes: u64,
    attempts: u32,
}

/// `(dev, inode)` of the model file under a final name, `None` if there is none. Only a regular file
/// is a model: anything else there (a directory someone made, a device) is no hit, and the writer that
/// next holds the exclusive lock moves it aside ([`move_aside_non_file`]).
fn identity(path: &Path) -> Result<Option<(u64, u64)>> {
    let any_kind: bool = crate::mutant_or!(FinalKindUnchecked => true, else false);
    match std::fs::metadata(path) {
        Ok(m) if m.is_file() || any_kind => Ok(Some((m.dev(), m.ino()))),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(BeakerError::io("stat", path, e)),
    }
}

/// Under the exclusive lock: quarantines whatever squats on the final name without being a regular file
/// (else every later run would fail on it, and the publishing rename onto a directory fails too).
fn move_aside_non_file(final_path: &Path) -> Result<()> {
    match std::fs::symlink_metadata(final_path) {
        Ok(m) if !m.is_file() && !m.is_symlink() => {
            let target = fsio::quarantine(final_path)?;
            log::warn!(
                "{} is not a regular file ({:?}); moved aside as {}",
                final_path.display(),
                m.file_type(),
                target.display()
            );
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BeakerError::io("stat", final_path, e)),
    }
}

/// The holder's check before it removes or publishes anything: its lock file still names the inode it
/// locked. `false` (logged): the lock file was deleted or replaced while held, so another process may
/// hold the entry now; the caller starts over instead of acting next to it.
fn still_holds(guard: Option<&LockGuard>, moment: &str) -> bool {
    match guard {
        Some(g) if !g.is_current() => {
            log::warn!(
                "lock file {} was removed or replaced while held; not {moment}, starting over",
                g.path().display()
            );
            false
        }
        _ => true,
    }
}

/// The miss path: exclusive lock → look again → clean stale partials → download → fsync → verify →
/// rename → fsync dir → unlock.
fn publish(cfg: &Config, final_path: &Path, lock_path: &Path, progress: &mut Progress) -> Result<()> {
    let wait_start = fsio::unix_ms_now();
    let mut take_lock = || -> Result<Option<LockGuard>> {
        let (guard, waited) = LockGuard::exclusive(lock_path)?;
        progress.lock_wait += waited;
        progress.lock_phase = Some(Phase::since("lock_wait", wait_start));
        Ok(Some(guard))
    };
    let guard: Option<LockGuard> =
        crate::mutant_or!(NoLock => None, else crate::mutant_or!(SharedTmpName => None, else take_lock()?));
    failpoints::check(failpoints::CACHE_AFTER_LOCK, "lock", lock_path)?;
    if identity(final_path)?.is_some() {
        log::info!("{} was published by another process while this one waited", final_path.display());
        return Ok(());
    }
    failpoints::check(failpoints::CACHE_STALE_CLEANUP, "remove stale partials", final_path)?;
    if !still_holds(guard.as_ref(), "cleaning up") {
        return Ok(());
    }
    move_aside_non_file(final_path)?;
    let stale = fsio::remove_stale_partials(final_path)?;
    if stale > 0 {
        log::warn!("removed {stale} stale partial download(s) of {}", final_path.display());
    }

    let download_start = fsio::unix_ms_now();
    let mut open = || -> Result<Partial> {
        let partial = crate::mutant_or!(SharedTmpName =>
            Partial::create_truncate(fsio::with_suffix(final_path, fsio::PARTIAL_SUFFIX))?,
            else crate::mutant_or!(DirectWrite => Partial::create_truncate(final_path.to_path_buf())?,
                else Partial::create_new(fsio::unique_partial_path(final_path))?));
        #[cfg(feature = "mutants")]
        let partial = {
            let mut partial = partial;
            crate::mutant_or!(LeavePartial => partial.keep_on_drop(), else ());
            partial
        };
        Ok(partial)
    };
    let (mut partial, stats) = fetch::download(cfg, &cfg.model_url, &mut open)?;
    progress.downloaded = true;
    progress.bytes += stats.bytes_received;
    progress.attempts += stats.attempts;
    partial.sync()?;
    let actual_sha = partial.sha256_hex();
    let verify_first: bool = crate::mutant_or!(VerifyAfterRename => false, else true);
    if verify_first {
        verify(cfg, &actual_sha, partial.path(), final_path)?;
    }
    failpoints::check(failpoints::CACHE_BEFORE_RENAME, "rename", partial.path())?;
    let guard = crate::mutant_or!(UnlockBeforeRename => { drop(guard); None::<LockGuard> }, else guard);
    if !still_holds(guard.as_ref(), "publishing") {
        // The partial removes itself on drop; the next round finds the other holder's final or downloads.
        return Ok(());
    }
    partial.persist(final_path)?;
    // Right after the rename, whatever comes next: a crash here must find only verified bytes under
    // the final name (the verify-after-rename mutant is what this point exposes).
    failpoints::check(failpoints::CACHE_AFTER_RENAME, "rename", final_path)?;
    if !verify_first && let Err(e) = verify(cfg, &actual_sha, final_path, final_path) {
        fsio::remove_durable(final_path)?;
        return Err(e);
    }
    progress.download_phase = Some(Phase::since("download", download_start));
    log::info!("published {} ({} bytes)", final_path.display(), stats.bytes_received);
    drop(guard);
    Ok(())
}

/// Verifies downloaded bytes: against the expected SHA-256 when given, else by loading the model from
/// `file` (validated under the name `final_path` in messages).
fn verify(cfg: &Config, actual_sha: &str, file: &Path, final_path: &Path) -> Result<()> {
    match &cfg.model_sha256 {
        Some(expected) => {
            let skip: bool = crate::mutant_or!(SkipVerify => true, else false);
            if !skip && expected != actual_sha {
                return Err(BeakerError::ChecksumMismatch {
                    url: cfg.model_url.clone(),
                    expected: expected.clone(),
                    actual: actual_sha.to_string(),
                });
            }
            Ok(())
        }
        None => {
            crate::mutant_or!(SkipUnverifiedValidation => Ok(()), else validate_model_file(file, final_path))
        }
    }
}

/// Loads the model in `file` with tract (model contract); `InvalidModel` (exit 4) if it does not load.
pub fn validate_model_file(file: &Path, name: &Path) -> Result<()> {
    let bytes = fsio::read(file)?;
    crate::model::load_model_bytes(name, &bytes).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn final_names_are_content_addressed() {
        let sha = "0123456789abcdef".repeat(4);
        let url = "http://127.0.0.1:8080/models/small/small.onnx?x=1#y";
        assert_eq!(url_file_name(url), "small.onnx");
        let with_sha = final_name(url, Some(&sha));
        assert_eq!(with_sha, "small-0123456789abcdef.onnx");
        assert_eq!(parse_final_name(&with_sha), Some(FinalKey::Sha256Prefix("0123456789abcdef".into())));
        let by_url = final_name(url, None);
        assert!(by_url.starts_with("small-url") && by_url.ends_with(".onnx"), "{by_url}");
        assert!(matches!(parse_final_name(&by_url), Some(FinalKey::UrlHashPrefix(_))));
        assert_ne!(by_url, final_name("http://127.0.0.1:8080/models/large/small.onnx", None));
        assert_eq!(final_name("http://h/", None).split('-').next(), Some("model"));
        assert_eq!(parse_final_name("small.onnx"), None);
        assert_eq!(parse_final_name("small-0123.onnx"), None);
        assert_eq!(parse_final_name("small-0123456789abcdef.onnx.lock"), None);
    }
}
