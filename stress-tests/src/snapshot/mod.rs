//! What a cache directory holds, judged by content: because the harness knows the exact bytes it served,
//! every file is a complete copy of a model, a strict prefix of one, a corrupted copy, or unrelated —
//! whatever the target's layout. Lock files are probed (held or not); compiled entries are compared with a
//! reference entry produced by a clean run.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stress_cache_metadata::{FilePatterns, FileRoles, LockKind, Role, SymlinkPolicy};

use crate::target::{ModelFixture, sha256_hex};

mod compiled;

pub use compiled::{CompiledEntry, CompiledReference, CompiledSnapshot, ReferenceFile};

/// Maximum directory depth and entry count a walk visits (bounds every walk).
const MAX_DEPTH: usize = 16;
const MAX_ENTRIES: usize = 200_000;

/// One entry found by [`walk`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WalkEntry {
    /// Path relative to the walked dir.
    pub relative: PathBuf,
    /// Full path.
    pub path: PathBuf,
    /// Regular file.
    pub is_file: bool,
    /// Directory.
    pub is_dir: bool,
    /// Symbolic link (not followed by the walk).
    pub is_symlink: bool,
    /// Size in bytes.
    pub len: u64,
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub inode: u64,
}

/// Every entry under `dir`, recursively, without following symlinks (bounded depth and count; vanished
/// entries are skipped — the walk may race with running processes).
pub fn walk(dir: &Path) -> Vec<WalkEntry> {
    let mut out = Vec::new();
    let mut stack = vec![(dir.to_path_buf(), 0usize)];
    while let Some((current, depth)) = stack.pop() {
        let Ok(read) = fs::read_dir(&current) else { continue };
        for entry in read.flatten() {
            if out.len() >= MAX_ENTRIES {
                return out;
            }
            let path = entry.path();
            let Ok(meta) = fs::symlink_metadata(&path) else { continue };
            let relative = path.strip_prefix(dir).unwrap_or(&path).to_path_buf();
            if meta.is_dir() && depth + 1 < MAX_DEPTH {
                stack.push((path.clone(), depth + 1));
            }
            out.push(WalkEntry {
                relative,
                path,
                is_file: meta.is_file(),
                is_dir: meta.is_dir(),
                is_symlink: meta.file_type().is_symlink(),
                len: meta.len(),
                dev: meta.dev(),
                inode: meta.ino(),
            });
        }
    }
    out.sort_by(|a, b| a.relative.cmp(&b.relative));
    out
}

/// What a file's bytes are, relative to the served models.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// Exactly the model's bytes.
    Complete(String),
    /// A strict, non-empty prefix of the model's bytes, with its length.
    Prefix(String, u64),
    /// No bytes at all (an empty lock or sidecar file is not a "prefix" of a model).
    Empty,
    /// Exactly the corrupted body the server's corrupt fault sends for the model: what was served,
    /// wrong, and kept (a target without a checksum cannot tell it from the model).
    ServedCorrupt(String),
    /// Exactly the HTML page the server sent with `200` in place of a model
    /// ([`crate::server::Fault::ErrorPageWith200`]): served, kept, and no model at all.
    ServedErrorPage,
    /// Same length as the model but different bytes, or (64 B or more) at least half of its bytes equal to
    /// the model's at the same offsets (truncated-and-flipped, or extended).
    Corrupted(String),
    /// Nothing like any model.
    Unrelated,
}

impl Content {
    /// Short label for evidence: `complete(small)`, `prefix(small, 1024 B)`, `corrupted(large)`, `unrelated`.
    pub fn label(&self) -> String {
        match self {
            Content::Complete(m) => format!("complete({m})"),
            Content::Prefix(m, n) => format!("prefix({m}, {n} B)"),
            Content::Corrupted(m) => format!("corrupted({m})"),
            Content::ServedCorrupt(m) => format!("served-corrupt({m})"),
            Content::ServedErrorPage => "served-error-page(html)".to_string(),
            Content::Empty => "empty".to_string(),
            Content::Unrelated => "unrelated".to_string(),
        }
    }

    /// The model this content is (a copy, prefix or corruption of), if any.
    pub fn model(&self) -> Option<&str> {
        match self {
            Content::Complete(m)
            | Content::Prefix(m, _)
            | Content::Corrupted(m)
            | Content::ServedCorrupt(m) => Some(m),
            Content::Empty | Content::Unrelated | Content::ServedErrorPage => None,
        }
    }

    /// What the server served, wrong, and a target could keep only because it had no way to tell: a
    /// corrupted body (without a checksum), or an HTML page served with 200 (without a checksum and
    /// without loading the model).
    pub fn undetectable_without(&self, checksum: bool, loads_model: bool) -> bool {
        match self {
            Content::ServedCorrupt(_) => !checksum,
            Content::ServedErrorPage => !checksum && !loads_model,
            _ => false,
        }
    }

    /// A prefix or a corrupted copy: content that must never survive or be read.
    pub fn is_partial_or_corrupt(&self) -> bool {
        matches!(self, Content::Prefix(..) | Content::Corrupted(_) | Content::ServedCorrupt(_))
    }
}

/// SHA-256 of [`crate::server::ERROR_PAGE_HTML`], hashed once.
static ERROR_PAGE_SHA256: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| sha256_hex(crate::server::ERROR_PAGE_HTML));

/// The contents the harness knows exactly, by SHA-256 (and length, when known): a model, the error page
/// served with 200, or a model's corrupted body as the server sent it. `None` for anything else.
pub fn known_by_hash(
    sha: &str,
    len: Option<u64>,
    models: &BTreeMap<String, ModelFixture>,
) -> Option<Content> {
    let len_fits = |n: usize| len.is_none_or(|l| l == n as u64);
    if let Some(m) = models.values().find(|m| m.sha256 == sha && len_fits(m.bytes.len())) {
        return Some(Content::Complete(m.id.clone()));
    }
    if *ERROR_PAGE_SHA256 == sha && len_fits(crate::server::ERROR_PAGE_HTML.len()) {
        return Some(Content::ServedErrorPage);
    }
    models
        .values()
        .find(|m| m.served_corrupt_sha256 == sha && len_fits(m.bytes.len()))
        .map(|m| Content::ServedCorrupt(m.id.clone()))
}

/// Classifies `bytes` against the models (exact match, then strict prefix, then corrupted, else unrelated).
pub fn classify(bytes: &[u8], models: &BTreeMap<String, ModelFixture>) -> Content {
    if bytes.is_empty() {
        return Content::Empty;
    }
    // The common case, a complete copy, by comparing bytes: the reader probe classifies every final it
    // sees every few milliseconds while writers run, and hashing megabytes each time was the probe's
    // whole cost. Hashing is left for the lengths a known wrong body can have.
    if let Some(m) = models.values().find(|m| m.bytes.as_slice() == bytes) {
        return Content::Complete(m.id.clone());
    }
    let known_len = bytes.len() == crate::server::ERROR_PAGE_HTML.len()
        || models.values().any(|m| m.bytes.len() == bytes.len());
    if known_len && let Some(known) = known_by_hash(&sha256_hex(bytes), Some(bytes.len() as u64), models) {
        return known;
    }
    if let Some(m) = models.values().find(|m| bytes.len() < m.bytes.len() && m.bytes.starts_with(bytes)) {
        return Content::Prefix(m.id.clone(), bytes.len() as u64);
    }
    // Corrupted: the best same-offset match ratio; same length counts whatever the ratio.
    let mut best: Option<(f64, &ModelFixture)> = None;
    for m in models.values() {
        let overlap = bytes.len().min(m.bytes.len());
        if overlap == 0 {
            continue;
        }
        let equal = bytes.iter().zip(&m.bytes).filter(|(a, b)| a == b).count();
        let ratio = equal as f64 / bytes.len() as f64;
        let same_len = bytes.len() == m.bytes.len();
        if (same_len || (ratio >= 0.5 && bytes.len() >= 64)) && best.is_none_or(|(r, _)| ratio > r) {
            best = Some((ratio, m));
        }
    }
    match best {
        Some((_, m)) => Content::Corrupted(m.id.clone()),
        None => Content::Unrelated,
    }
}

/// One non-lock file of a cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileEntry {
    /// Relative to the cache dir.
    pub relative: PathBuf,
    /// Full path.
    pub path: PathBuf,
    /// Size.
    pub len: u64,
    /// SHA-256 of the bytes read.
    pub sha256: String,
    /// Classification.
    pub content: Content,
    /// Matches the final pattern.
    pub is_final: bool,
    /// Matches the partial pattern.
    pub is_partial: bool,
    /// Where the symlink points, when the entry is one (its content is what it resolves to).
    pub link_target: Option<PathBuf>,
}

impl FileEntry {
    /// `path: label, N B, sha256 <first 16>`.
    pub fn evidence(&self) -> String {
        format!(
            "{}: {}, {} B, sha256 {}",
            self.path.display(),
            self.content.label(),
            self.len,
            &self.sha256[..16]
        )
    }
}

/// A lock file and whether some process holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockEntry {
    /// Relative to the cache dir.
    pub relative: PathBuf,
    /// Full path.
    pub path: PathBuf,
    /// Held now (flock: a non-blocking probe would block; exists-kind: the file exists).
    pub held: bool,
}

/// Whether the lock at `path` is held, probing with a fresh handle (never blocks).
pub fn probe_lock(path: &Path, kind: LockKind) -> bool {
    match kind {
        LockKind::Exists => path.exists(),
        LockKind::Flock => match OpenOptions::new().read(true).open(path) {
            Ok(file) => match file.try_lock() {
                Ok(()) => {
                    let _ = file.unlock();
                    false
                }
                Err(fs::TryLockError::WouldBlock) => true,
                Err(fs::TryLockError::Error(_)) => false,
            },
            Err(_) => false,
        },
    }
}

/// The content of a download cache at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheSnapshot {
    /// The cache dir.
    pub dir: PathBuf,
    /// Every regular file that is not a lock or quarantined.
    pub files: Vec<FileEntry>,
    /// Lock files.
    pub locks: Vec<LockEntry>,
    /// Files the target moved aside on purpose (quarantine), classified too: they are not cache content,
    /// but a quarantined file that is not a complete model was once published under a final name.
    pub quarantined: Vec<FileEntry>,
    /// Files the spec's `ignore` list covers (sidecars, metadata): listed, never read.
    pub ignored: Vec<PathBuf>,
    /// Files that vanished or could not be read during the walk, and dangling symlinks.
    pub unreadable: Vec<String>,
}

impl CacheSnapshot {
    /// Walks `dir` and classifies everything (see the module docs). A missing dir is an empty snapshot.
    /// Files are sorted into roles by the spec's patterns ([`FileRoles`]): ignored sidecars are only
    /// listed, locks are probed and never read, everything else is read and classified. A symlink is
    /// judged by what it resolves to (`symlinks = "follow"`); a dangling one is unreadable.
    pub fn take(dir: &Path, patterns: &FilePatterns, models: &BTreeMap<String, ModelFixture>) -> Self {
        let roles = FileRoles::from_validated(patterns);
        let mut snapshot = CacheSnapshot {
            dir: dir.to_path_buf(),
            files: Vec::new(),
            locks: Vec::new(),
            quarantined: Vec::new(),
            ignored: Vec::new(),
            unreadable: Vec::new(),
        };
        let follow = patterns.symlinks == SymlinkPolicy::Follow;
        for entry in walk(dir).into_iter().filter(|e| e.is_file || (e.is_symlink && follow)) {
            let role = roles.role_of(&entry.relative);
            match role {
                Some(Role::Ignored) => {
                    snapshot.ignored.push(entry.relative);
                    continue;
                }
                Some(Role::Lock) => {
                    let held = probe_lock(&entry.path, patterns.lock_kind);
                    snapshot.locks.push(LockEntry { relative: entry.relative, path: entry.path, held });
                    continue;
                }
                _ => {}
            }
            let link_target = entry.is_symlink.then(|| fs::read_link(&entry.path).ok()).flatten();
            match fs::read(&entry.path) {
                Ok(bytes) => (if role == Some(Role::Quarantine) {
                    &mut snapshot.quarantined
                } else {
                    &mut snapshot.files
                })
                .push(FileEntry {
                    is_final: role == Some(Role::Final),
                    is_partial: role == Some(Role::Partial),
                    len: bytes.len() as u64,
                    sha256: sha256_hex(&bytes),
                    content: classify(&bytes, models),
                    relative: entry.relative,
                    path: entry.path,
                    link_target,
                }),
                Err(e) if entry.is_symlink => snapshot.unreadable.push(format!(
                    "{}: dangling symlink to {}: {e}",
                    entry.path.display(),
                    link_target.map(|t| t.display().to_string()).unwrap_or_default()
                )),
                Err(e) => snapshot.unreadable.push(format!("{}: {e}", entry.path.display())),
            }
        }
        snapshot
    }

    /// Files holding a complete copy of `model` (final or not).
    pub fn complete_copies(&self, model: &str) -> Vec<&FileEntry> {
        self.files.iter().filter(|f| f.content == Content::Complete(model.to_string())).collect()
    }

    /// Files matching the final pattern.
    pub fn finals(&self) -> Vec<&FileEntry> {
        self.files.iter().filter(|f| f.is_final).collect()
    }

    /// Files matching the partial pattern.
    pub fn partials(&self) -> Vec<&FileEntry> {
        self.files.iter().filter(|f| f.is_partial).collect()
    }

    /// Prefixes and corrupted copies.
    pub fn partial_or_corrupt(&self) -> Vec<&FileEntry> {
        self.files.iter().filter(|f| f.content.is_partial_or_corrupt()).collect()
    }

    /// Quarantined files, classified.
    pub fn quarantined(&self) -> &[FileEntry] {
        &self.quarantined
    }

    /// Locks held now.
    pub fn held_locks(&self) -> Vec<&LockEntry> {
        self.locks.iter().filter(|l| l.held).collect()
    }
}

#[cfg(test)]
mod tests;
