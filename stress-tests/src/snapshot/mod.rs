//! What a cache directory holds, judged by content: because the harness knows the exact bytes it served,
//! every file is a complete copy of a model, a strict prefix of one, a corrupted copy, or unrelated —
//! whatever the target's layout. Lock files are probed (held or not); compiled entries are compared with a
//! reference entry produced by a clean run.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stress_cache_metadata::FilePattern;
use stress_cache_metadata::{CompiledCache, FilePatterns, FileRoles, LockKind, Role, SymlinkPolicy};

use crate::target::{ModelFixture, sha256_hex};

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
    if let Some(known) = known_by_hash(&sha256_hex(bytes), Some(bytes.len() as u64), models) {
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::blob_models;

    fn patterns() -> FilePatterns {
        FilePatterns {
            final_: "*.bin".into(),
            partial: "*.partial".into(),
            lock: Some("*.lock".into()),
            lock_kind: LockKind::Flock,
            quarantine: Some("quarantine/*".into()),
            ignore: stress_cache_metadata::PatternList::Many(vec!["*.meta".into()]),
            symlinks: SymlinkPolicy::Follow,
        }
    }

    #[test]
    fn classifies_complete_prefix_corrupted_unrelated() {
        let models = blob_models();
        let alpha = &models["alpha"].bytes;
        assert_eq!(classify(alpha, &models), Content::Complete("alpha".into()));
        assert_eq!(classify(&alpha[..1000], &models), Content::Prefix("alpha".into(), 1000));
        assert_eq!(classify(&[], &models), Content::Empty);
        let mut flipped = alpha.clone();
        flipped[500] ^= 0xff;
        assert_eq!(classify(&flipped, &models), Content::Corrupted("alpha".into()));
        assert_eq!(classify(&crate::server::corrupt(alpha), &models), Content::ServedCorrupt("alpha".into()));
        let mut longer = alpha.clone();
        longer.extend_from_slice(b"trailing");
        assert_eq!(classify(&longer, &models), Content::Corrupted("alpha".into()));
        let mut truncated_flipped = alpha[..alpha.len() / 2].to_vec();
        truncated_flipped[0] ^= 1;
        assert_eq!(classify(&truncated_flipped, &models), Content::Corrupted("alpha".into()));
        assert_eq!(classify(b"hello, not a model", &models), Content::Unrelated);
    }

    #[test]
    fn snapshot_sorts_files_locks_and_quarantine() {
        let models = blob_models();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("alpha-1.bin"), &models["alpha"].bytes).unwrap();
        fs::write(d.join("beta-1.bin.77-1.partial"), &models["beta"].bytes[..10]).unwrap();
        fs::write(d.join("alpha-1.bin.lock"), b"").unwrap();
        fs::create_dir(d.join("quarantine")).unwrap();
        fs::write(d.join("quarantine/alpha-1.bin.1700"), b"junk").unwrap();
        let s = CacheSnapshot::take(d, &patterns(), &models);
        assert_eq!(s.files.len(), 2);
        assert_eq!(s.complete_copies("alpha").len(), 1);
        assert!(s.finals()[0].relative == Path::new("alpha-1.bin"));
        assert_eq!(s.partials()[0].content, Content::Prefix("beta".into(), 10));
        assert_eq!(s.locks.len(), 1);
        assert!(!s.locks[0].held);
        assert_eq!(s.quarantined.len(), 1);
    }

    #[test]
    fn sidecars_are_listed_not_read_and_a_symlinked_final_is_judged_by_its_target() {
        let models = blob_models();
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        fs::write(d.join("alpha-1.bin.meta"), b"{}").unwrap();
        fs::create_dir(d.join("blobs")).unwrap();
        fs::write(d.join("blobs/aa"), &models["alpha"].bytes).unwrap();
        std::os::unix::fs::symlink("blobs/aa", d.join("alpha-2.bin")).unwrap();
        std::os::unix::fs::symlink("blobs/missing", d.join("beta-2.bin")).unwrap();
        let s = CacheSnapshot::take(d, &patterns(), &models);
        assert_eq!(s.ignored, vec![PathBuf::from("alpha-1.bin.meta")]);
        let finals = s.finals();
        assert_eq!(finals.len(), 1, "{finals:?}");
        assert_eq!(finals[0].content, Content::Complete("alpha".into()));
        assert_eq!(finals[0].link_target.as_deref(), Some(Path::new("blobs/aa")));
        assert!(s.unreadable.iter().any(|u| u.contains("dangling symlink")), "{:?}", s.unreadable);
    }

    #[test]
    fn lock_probe_sees_a_holder_in_another_process() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("m.lock");
        fs::write(&lock, b"").unwrap();
        assert!(!probe_lock(&lock, LockKind::Flock));
        // flock(1) holds the lock while its child (cat) waits on stdin; closing stdin ends it.
        let mut holder = std::process::Command::new("flock")
            .arg(&lock)
            .arg("cat")
            .stdin(std::process::Stdio::piped())
            .spawn()
            .expect("flock(1)");
        let me = std::process::id();
        let files = crate::proc_locks::lock_file_ids(dir.path(), &FilePattern::new("*.lock"));
        let mut held = false;
        for _ in 0..20_000 {
            let lines = crate::proc_locks::read_proc_locks().unwrap();
            if !crate::proc_locks::holding(&lines, &[holder.id()], &files).is_empty() {
                held = true;
                break;
            }
            std::thread::yield_now();
        }
        assert!(held, "holder never took the lock ({me})");
        assert!(probe_lock(&lock, LockKind::Flock));
        drop(holder.stdin.take());
        holder.wait().unwrap();
        assert!(!probe_lock(&lock, LockKind::Flock));
        assert!(probe_lock(&lock, LockKind::Exists));
    }

    #[test]
    fn compiled_entries_against_a_reference() {
        let patterns =
            CompiledCache { entry: "*-*".into(), partial: ".*.tmp".into(), lock: Some("*.lock".into()) };
        let make = |root: &Path, stamp: &str, graph: &[u8]| {
            let e = root.join("abc-123");
            fs::create_dir_all(&e).unwrap();
            fs::write(e.join("graph.nnef"), graph).unwrap();
            fs::write(e.join("manifest.toml"), format!("created = {stamp}")).unwrap();
            fs::write(root.join("abc-123.lock"), b"").unwrap();
        };
        let (r1, r2, run) =
            (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        make(r1.path(), "1700000000001", b"graph bytes");
        make(r2.path(), "1700000000002", b"graph bytes");
        let reference = CompiledReference::from_snapshots(&[
            CompiledSnapshot::take(r1.path(), &patterns, LockKind::Flock),
            CompiledSnapshot::take(r2.path(), &patterns, LockKind::Flock),
        ]);
        assert_eq!(
            reference.entries["abc-123"]["manifest.toml"].sha256, None,
            "volatile file compared by length"
        );
        make(run.path(), "1700000000003", b"graph bytes");
        fs::create_dir(run.path().join(".abc-123.9-1.tmp")).unwrap();
        let s = CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock);
        assert_eq!(s.entries.len(), 1);
        assert_eq!(s.partials.len(), 1);
        assert_eq!(s.locks.len(), 1);
        assert!(reference.is_complete(&s.entries[0]));
        fs::write(run.path().join("abc-123/graph.nnef"), b"graph byt").unwrap();
        assert!(
            !reference
                .is_complete(&CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock).entries[0])
        );
        fs::remove_file(run.path().join("abc-123/graph.nnef")).unwrap();
        assert!(
            !reference
                .is_complete(&CompiledSnapshot::take(run.path(), &patterns, LockKind::Flock).entries[0])
        );
    }
}
