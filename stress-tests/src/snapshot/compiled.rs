//! The compiled cache at one moment, and what its complete entries look like: a reference taken from
//! clean runs, against which an entry is complete (same files, stable ones by hash) or not.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

use stress_cache_metadata::{CompiledCache, FilePattern, LockKind};

use super::{LockEntry, WalkEntry, probe_lock, walk};
use crate::target::sha256_hex;

/// One file of a compiled entry in a reference: its length, and its hash when it is stable across runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReferenceFile {
    /// Length in bytes.
    pub len: u64,
    /// SHA-256, `None` when it differed between reference runs (e.g. a timestamp): compared by length.
    pub sha256: Option<String>,
}

/// What complete compiled entries look like: from one or more clean single runs in separate caches.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompiledReference {
    /// Entry name → files (relative to the entry) → expected content.
    pub entries: BTreeMap<String, BTreeMap<String, ReferenceFile>>,
}

impl CompiledReference {
    /// Builds a reference from snapshots of clean runs. Files whose hash differs between the runs are
    /// compared by length only.
    pub fn from_snapshots(snapshots: &[CompiledSnapshot]) -> Self {
        let mut reference = CompiledReference::default();
        for snapshot in snapshots {
            for entry in &snapshot.entries {
                let name = entry.relative.display().to_string();
                match reference.entries.get_mut(&name) {
                    None => {
                        let files = entry
                            .files
                            .iter()
                            .map(|(f, (len, sha))| {
                                (f.clone(), ReferenceFile { len: *len, sha256: Some(sha.clone()) })
                            })
                            .collect();
                        reference.entries.insert(name, files);
                    }
                    Some(files) => {
                        for (f, (_, sha)) in &entry.files {
                            if let Some(r) = files.get_mut(f)
                                && r.sha256.as_deref() != Some(sha.as_str())
                            {
                                r.sha256 = None;
                            }
                        }
                    }
                }
            }
        }
        reference
    }

    /// Whether `entry` matches some reference entry: same file set, stable files by hash, others by length.
    pub fn is_complete(&self, entry: &CompiledEntry) -> bool {
        self.entries.values().any(|files| {
            files.len() == entry.files.len()
                && files.iter().all(|(name, r)| {
                    entry.files.get(name).is_some_and(|(len, sha)| {
                        *len == r.len && r.sha256.as_ref().is_none_or(|expected| expected == sha)
                    })
                })
        })
    }
}

/// A published compiled entry (a directory or a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledEntry {
    /// Relative to the compiled dir.
    pub relative: PathBuf,
    /// Full path.
    pub path: PathBuf,
    /// Files (relative to the entry; `""` when the entry is a file) → (length, sha256).
    pub files: BTreeMap<String, (u64, String)>,
}

/// The content of a compiled cache at one moment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledSnapshot {
    /// The compiled dir.
    pub dir: PathBuf,
    /// Published entries.
    pub entries: Vec<CompiledEntry>,
    /// Entries under construction (matching the partial pattern).
    pub partials: Vec<PathBuf>,
    /// Lock files.
    pub locks: Vec<LockEntry>,
}

impl CompiledSnapshot {
    /// Snapshots the top level of a compiled dir (lock, then partial, then entry pattern decide).
    pub fn take(dir: &Path, patterns: &CompiledCache, lock_kind: LockKind) -> Self {
        let entry_p = FilePattern::new(&patterns.entry);
        let partial_p = FilePattern::new(&patterns.partial);
        let lock_p = patterns.lock.as_deref().map(FilePattern::new);
        let mut snapshot = CompiledSnapshot {
            dir: dir.to_path_buf(),
            entries: Vec::new(),
            partials: Vec::new(),
            locks: Vec::new(),
        };
        let top: Vec<WalkEntry> =
            walk(dir).into_iter().filter(|e| e.relative.components().count() == 1).collect();
        for e in top {
            if e.is_file && lock_p.as_ref().is_some_and(|p| p.matches(&e.relative)) {
                let held = probe_lock(&e.path, lock_kind);
                snapshot.locks.push(LockEntry { relative: e.relative, path: e.path, held });
            } else if partial_p.matches(&e.relative) {
                snapshot.partials.push(e.path);
            } else if entry_p.matches(&e.relative) {
                let mut files = BTreeMap::new();
                if e.is_dir {
                    for f in walk(&e.path).into_iter().filter(|f| f.is_file) {
                        if let Ok(bytes) = fs::read(&f.path) {
                            files.insert(
                                f.relative.display().to_string(),
                                (bytes.len() as u64, sha256_hex(&bytes)),
                            );
                        }
                    }
                } else if let Ok(bytes) = fs::read(&e.path) {
                    files.insert(String::new(), (bytes.len() as u64, sha256_hex(&bytes)));
                }
                snapshot.entries.push(CompiledEntry { relative: e.relative, path: e.path, files });
            }
        }
        snapshot
    }
}
