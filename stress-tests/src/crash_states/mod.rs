//! Power-loss crash states built from a clean run's file-system trace, in the manner of ALICE
//! (Pillai et al., OSDI 2014, "All File Systems Are Not Created Equal"): for every point of the run's
//! cache operations, the states a power loss there can leave — the page cache kept (a SIGKILL), unsynced
//! file data lost, unsynced data and directory entries lost — each built in a fresh directory, so the
//! target can be run on it (recovery) and the invariants checked.
//!
//! Why this and not a lazy FUSE file system (LazyFS): the trace every target process already runs under
//! records each create, write (with its length and offset), fsync, rename and unlink, so the states
//! follow from one clean run without a FUSE dependency, a mount, or a second kernel path for every
//! test; and every state is explored, not only those where a fleet happened to be killed. The cost: the
//! written bytes are not in the trace, so each file is rebuilt from the bytes it holds at the end of the
//! clean run (a deleted temp file from the served model, which is what it was being filled with).
//!
//! Flow: [`ops_from_trace`] projects the trace onto the cache roots, [`explore`] replays it
//! ([`replay::Replay`]) and collects the distinct states at every point (runs of writes to one file are
//! sampled at their first, middle and last write), [`CrashState::materialize`] builds one on disk.

pub mod replay;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

pub use replay::{Loss, References, Replay};

use crate::fs_trace::{FsOp, FsTrace};

/// A state-changing operation on the cache: the trace's own [`FsOp`] with its paths as
/// `<root index>/<relative path>`, and the byte figures the replay needs to rebuild contents. (One
/// vocabulary of operations: the trace's. Locks, closes and exits change no state and are never
/// projected into an `Op`.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Op {
    /// What was done, on projected paths.
    pub fs: FsOp,
    /// Bytes a write wrote, or the length a truncate set (0 for every other op).
    pub len: u64,
    /// The explicit offset of a positional write; `None` writes at the open file's position.
    pub offset: Option<u64>,
}

impl Op {
    /// An op that carries no byte figures (open, fsync, rename, unlink, ...).
    pub fn new(fs: FsOp) -> Self {
        Op { fs, len: 0, offset: None }
    }

    /// An open: with `create` it creates a missing file, with `trunc` it empties it.
    pub fn open(path: PathBuf, create: bool, trunc: bool) -> Self {
        Op::new(FsOp::Open { path, create, trunc, excl: false, write: true })
    }

    /// `len` bytes written to `path` at `offset` (or at the open file's position).
    pub fn write(path: PathBuf, offset: Option<u64>, len: u64) -> Self {
        Op { fs: FsOp::Write { path }, len, offset }
    }

    /// A write (the unit runs of writes are collapsed and sampled by).
    pub fn is_write(&self) -> bool {
        matches!(self.fs, FsOp::Write { .. })
    }
}

/// A cache directory the trace is projected onto, with the label evidence uses for it.
#[derive(Debug, Clone)]
pub struct Root {
    /// The directory of the clean run.
    pub dir: PathBuf,
    /// Label (`cache`, `compiled`).
    pub label: String,
}

/// `path` as `<root index>/<relative>` if it is under one of `roots` (or is one).
fn project(path: &Path, roots: &[Root]) -> Option<PathBuf> {
    roots
        .iter()
        .enumerate()
        .find_map(|(i, r)| path.strip_prefix(&r.dir).ok().map(|rel| PathBuf::from(i.to_string()).join(rel)))
}

/// The successful state-changing operations of `trace` under `roots`, in order. A rename into the
/// cache from outside it is a create followed by a whole-file write; a rename out of it an unlink.
pub fn ops_from_trace(trace: &FsTrace, roots: &[Root]) -> Vec<Op> {
    let roots: Vec<Root> = roots
        .iter()
        .map(|r| Root { dir: std::fs::canonicalize(&r.dir).unwrap_or_else(|_| r.dir.clone()), ..r.clone() })
        .collect();
    let p = |path: &Path| project(path, &roots);
    let mut ops = Vec::new();
    for e in trace.events.iter().filter(|e| e.ok && !e.deleted) {
        let op = match &e.op {
            FsOp::Open { path, create, trunc, excl, write } => p(path).map(|path| {
                Op::new(FsOp::Open { path, create: *create, trunc: *trunc, excl: *excl, write: *write })
            }),
            FsOp::Write { path } => p(path).map(|path| Op::write(path, e.offset, e.bytes.unwrap_or(0))),
            FsOp::Truncate { path } => p(path).map(|path| Op {
                fs: FsOp::Truncate { path },
                len: e.bytes.unwrap_or(0),
                offset: None,
            }),
            FsOp::Fsync { path } => p(path).map(|path| Op::new(FsOp::Fsync { path })),
            FsOp::Rename { from, to } => match (p(from), p(to)) {
                (Some(from), Some(to)) => Some(Op::new(FsOp::Rename { from, to })),
                (None, Some(to)) => {
                    ops.push(Op::open(to.clone(), true, true));
                    let len = std::fs::metadata(to_disk(&to, &roots)).map(|m| m.len()).unwrap_or(0);
                    Some(Op::write(to, Some(0), len))
                }
                (Some(from), None) => Some(Op::new(FsOp::Unlink { path: from })),
                (None, None) => None,
            },
            FsOp::Unlink { path } => p(path).map(|path| Op::new(FsOp::Unlink { path })),
            FsOp::Rmdir { path } => p(path).map(|path| Op::new(FsOp::Rmdir { path })),
            FsOp::Mkdir { path } => p(path).map(|path| Op::new(FsOp::Mkdir { path })),
            FsOp::Link { from, to } => p(from).zip(p(to)).map(|(from, to)| Op::new(FsOp::Link { from, to })),
            FsOp::Symlink { target, link } => {
                p(link).map(|link| Op::new(FsOp::Symlink { target: target.clone(), link }))
            }
            FsOp::Lock { .. } | FsOp::Close { .. } | FsOp::Exit => None,
        };
        ops.extend(op);
    }
    ops
}

/// `<root index>/<relative>` back to a path under `roots`.
fn to_disk(path: &Path, roots: &[Root]) -> PathBuf {
    let mut comps = path.components();
    let root = comps.next().and_then(|c| c.as_os_str().to_str()?.parse::<usize>().ok()).unwrap_or(0);
    roots.get(root).map(|r| r.dir.join(comps.as_path())).unwrap_or_else(|| path.to_path_buf())
}

/// One entry of a crash state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StateEntry {
    /// A directory.
    Dir,
    /// A regular file and its bytes.
    File(Vec<u8>),
    /// A symbolic link and its target.
    Symlink(PathBuf),
}

/// A distinct crash state: what is on disk, and the first point and loss that produced it.
#[derive(Debug, Clone)]
pub struct CrashState {
    /// Operations applied before the power loss (a prefix of the run's ops).
    pub after_ops: usize,
    /// What the loss threw away.
    pub loss: Loss,
    /// Every entry (`<root index>/<relative>`), parents before children.
    pub entries: Vec<(PathBuf, StateEntry)>,
    /// How many other (point, loss) pairs produced the very same state.
    pub duplicates: usize,
}

impl CrashState {
    fn fingerprint(entries: &[(PathBuf, StateEntry)]) -> [u8; 32] {
        let mut h = Sha256::new();
        for (path, entry) in entries {
            h.update(path.as_os_str().as_encoded_bytes());
            match entry {
                StateEntry::Dir => h.update(b"\0d"),
                StateEntry::File(bytes) => {
                    h.update(b"\0f");
                    h.update((bytes.len() as u64).to_le_bytes());
                    h.update(bytes);
                }
                StateEntry::Symlink(t) => {
                    h.update(b"\0l");
                    h.update(t.as_os_str().as_encoded_bytes());
                }
            }
        }
        h.finalize().into()
    }

    /// Builds the state under `dirs` (one fresh, empty directory per root, in root order).
    pub fn materialize(&self, dirs: &[PathBuf]) -> std::io::Result<()> {
        for dir in dirs {
            std::fs::create_dir_all(dir)?;
        }
        for (path, entry) in &self.entries {
            let disk = to_disk(
                path,
                &dirs.iter().map(|d| Root { dir: d.clone(), label: String::new() }).collect::<Vec<_>>(),
            );
            match entry {
                StateEntry::Dir => std::fs::create_dir_all(&disk)?,
                StateEntry::File(bytes) => std::fs::write(&disk, bytes)?,
                StateEntry::Symlink(t) => std::os::unix::fs::symlink(t, &disk)?,
            }
        }
        Ok(())
    }

    /// One line per entry: `cache/x.onnx (118 B)`, for evidence.
    pub fn describe_entries(&self, roots: &[Root]) -> String {
        let lines: Vec<String> = self
            .entries
            .iter()
            .map(|(p, e)| {
                let name = label_path(p, roots);
                match e {
                    StateEntry::Dir => format!("{name}/"),
                    StateEntry::File(b) => format!("{name} ({} B)", b.len()),
                    StateEntry::Symlink(t) => format!("{name} -> {}", t.display()),
                }
            })
            .collect();
        if lines.is_empty() { "(empty)".into() } else { lines.join(", ") }
    }
}

/// `<root index>/<rel>` as `<root label>/<rel>`.
pub fn label_path(path: &Path, roots: &[Root]) -> String {
    let mut comps = path.components();
    let root = comps.next().and_then(|c| c.as_os_str().to_str()?.parse::<usize>().ok());
    let label = root.and_then(|r| roots.get(r)).map_or("?", |r| r.label.as_str());
    let rest = comps.as_path();
    if rest.as_os_str().is_empty() { label.to_string() } else { format!("{label}/{}", rest.display()) }
}

/// `ops` as a readable, numbered sequence (`#1 open O_CREAT cache/x.lock`, ...), a run of writes to one
/// file collapsed into one item (`#5-272 write cache/x.partial (268 calls, 2115220 B)`).
pub fn describe_ops(ops: &[Op], roots: &[Root]) -> Vec<String> {
    let l = |p: &PathBuf| label_path(p, roots);
    let mut items: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ops.len() {
        let item = match &ops[i].fs {
            FsOp::Write { path } => {
                let (start, mut bytes) = (i, 0u64);
                while let Some(Op { fs: FsOp::Write { path: q }, len, .. }) = ops.get(i) {
                    if q != path {
                        break;
                    }
                    bytes += len;
                    i += 1;
                }
                let n = i - start;
                let number = if n == 1 { format!("#{i}") } else { format!("#{}-{i}", start + 1) };
                items.push(format!("{number} write {} ({n} call(s), {bytes} B)", l(path)));
                continue;
            }
            FsOp::Open { path, create, trunc, .. } => {
                let flags = match (create, trunc) {
                    (true, true) => " O_CREAT|O_TRUNC",
                    (true, false) => " O_CREAT",
                    (false, true) => " O_TRUNC",
                    _ => "",
                };
                format!("open{flags} {}", l(path))
            }
            FsOp::Truncate { path } => format!("truncate {} to {}", l(path), ops[i].len),
            FsOp::Fsync { path } => format!("fsync {}", l(path)),
            FsOp::Rename { from, to } => format!("rename {} -> {}", l(from), l(to)),
            FsOp::Unlink { path } => format!("unlink {}", l(path)),
            FsOp::Rmdir { path } => format!("rmdir {}", l(path)),
            FsOp::Mkdir { path } => format!("mkdir {}", l(path)),
            FsOp::Link { from, to } => format!("link {} -> {}", l(from), l(to)),
            FsOp::Symlink { target, link } => format!("symlink {} -> {}", l(link), target.display()),
            // Never projected into an `Op` (they change no state).
            FsOp::Lock { path, .. } | FsOp::Close { path } => format!("(no state change) {}", l(path)),
            FsOp::Exit => "(exit)".to_string(),
        };
        i += 1;
        items.push(format!("#{i} {item}"));
    }
    items
}

/// The points worth a crash: before any op, and after each op, except inside a run of writes to one
/// file, where only the first, middle and last write are points (the states between differ only in how
/// long the same temp file is).
pub fn crash_points(ops: &[Op]) -> Vec<usize> {
    let write_path = |i: usize| match ops.get(i).map(|op| &op.fs) {
        Some(FsOp::Write { path }) => Some(path),
        _ => None,
    };
    let mut points = vec![0];
    let mut i = 0;
    while i < ops.len() {
        match write_path(i) {
            Some(path) => {
                let start = i;
                while write_path(i) == Some(path) {
                    i += 1;
                }
                // Writes start..i: points after the first, the middle and the last of them.
                let mut run = vec![start + 1, start + (i - start).div_ceil(2), i];
                run.dedup();
                points.extend(run);
            }
            None => {
                i += 1;
                points.push(i);
            }
        }
    }
    points.dedup();
    points
}

/// What [`explore`] found.
#[derive(Debug, Clone, Default)]
pub struct Exploration {
    /// Cache operations of the clean run.
    pub ops: Vec<Op>,
    /// Crash points considered.
    pub points: usize,
    /// (point, loss) pairs considered.
    pub candidates: usize,
    /// Distinct states, at most the bound given.
    pub states: Vec<CrashState>,
    /// Distinct states beyond the bound, not explored (reported, never silently dropped).
    pub over_bound: usize,
}

/// Replays `ops` and collects the distinct crash states (deduplicated by content), at most `bound` of
/// them (the rest are counted in [`Exploration::over_bound`]). `roots` are read now for the contents
/// the clean run left; `fallback` fills files deleted before its end.
pub fn explore(ops: Vec<Op>, roots: &[Root], fallback: &[u8], bound: usize) -> Exploration {
    // First pass: which inode ends up under which name, so the second pass writes the right bytes.
    let empty = References { by_inode: BTreeMap::new(), fallback };
    let mut first = Replay::new(roots.len());
    for op in &ops {
        first.apply(op, &empty);
    }
    let by_inode = first
        .named_files()
        .into_iter()
        .filter_map(|(id, path)| std::fs::read(to_disk(&path, roots)).ok().map(|b| (id, b)))
        .collect();
    let refs = References { by_inode, fallback };

    let points = crash_points(&ops);
    let mut replay = Replay::new(roots.len());
    let mut applied = 0;
    let mut seen: BTreeMap<[u8; 32], usize> = BTreeMap::new();
    let mut all: Vec<CrashState> = Vec::new();
    let mut candidates = 0;
    for &point in &points {
        while applied < point {
            replay.apply(&ops[applied], &refs);
            applied += 1;
        }
        for loss in Loss::ALL {
            candidates += 1;
            let entries = replay.state(loss);
            let fp = CrashState::fingerprint(&entries);
            match seen.get(&fp) {
                Some(&i) => all[i].duplicates += 1,
                None => {
                    seen.insert(fp, all.len());
                    all.push(CrashState { after_ops: point, loss, entries, duplicates: 0 });
                }
            }
        }
    }
    let over_bound = all.len().saturating_sub(bound);
    let states = if over_bound == 0 {
        all
    } else {
        // Evenly spread over the run rather than only its beginning.
        let n = all.len();
        (0..bound).map(|k| all[k * n / bound].clone()).collect()
    };
    Exploration { ops, points: points.len(), candidates, states, over_bound }
}

#[cfg(test)]
mod tests;
