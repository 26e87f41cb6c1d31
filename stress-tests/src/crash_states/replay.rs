//! The file system a power loss leaves, replayed from a clean run's operations: every inode keeps its
//! contents twice (what the page cache holds, and what was last fsynced), every directory its entries
//! twice (as the process sees them, and as of the directory's last fsync). A crash state is a view of
//! this model at one point, under one [`Loss`].
//!
//! The semantics are the strict POSIX ones ALICE and LazyFS use: `fsync(file)` makes that file's data
//! durable (not its name); `fsync(dir)` makes that directory's entries durable (creates, renames,
//! unlinks in it). Nothing is durable otherwise. Real file systems often persist more (ext4's
//! `data=ordered`, rename-over heuristics), so a state here may be stricter than a given machine, never
//! looser: a target that survives these states survives them all.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Component, Path, PathBuf};

use super::{Op, StateEntry};
use crate::fs_trace::FsOp;

/// What a power loss at a point throws away.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Loss {
    /// Nothing: the page cache survived (what a SIGKILL at that point leaves).
    Nothing,
    /// File data not fsynced is lost; directory operations are kept (a journaled file system that
    /// committed the metadata, e.g. the rename, but not the delayed data blocks).
    UnsyncedData,
    /// Everything not fsynced is lost: file data, and directory entries of directories not fsynced
    /// since (a create or rename whose directory was not fsynced never happened).
    AllUnsynced,
}

impl Loss {
    /// Every loss explored at each point.
    pub const ALL: [Loss; 3] = [Loss::Nothing, Loss::UnsyncedData, Loss::AllUnsynced];

    /// Short description for evidence.
    pub fn describe(self) -> &'static str {
        match self {
            Loss::Nothing => "page cache kept (as a SIGKILL leaves it)",
            Loss::UnsyncedData => "unsynced file data lost, directory operations kept",
            Loss::AllUnsynced => "unsynced file data and unsynced directory entries lost",
        }
    }
}

#[derive(Debug, Clone)]
enum Kind {
    File,
    Dir,
    Symlink(PathBuf),
}

#[derive(Debug, Clone)]
struct Inode {
    kind: Kind,
    data: Vec<u8>,
    durable_data: Vec<u8>,
    entries: BTreeMap<OsString, usize>,
    durable_entries: BTreeMap<OsString, usize>,
}

impl Inode {
    fn new(kind: Kind) -> Self {
        Inode {
            kind,
            data: Vec::new(),
            durable_data: Vec::new(),
            entries: BTreeMap::new(),
            durable_entries: BTreeMap::new(),
        }
    }
}

/// The replayed file system. Roots are inodes `0..roots` (directories that existed, empty and
/// durable, before the run); a path is `<root index>/<relative path>`.
#[derive(Debug, Clone)]
pub struct Replay {
    inodes: Vec<Inode>,
    roots: usize,
    /// Write position per path (reset by an open), for writes without an explicit offset.
    position: BTreeMap<PathBuf, u64>,
}

/// Where a write's bytes come from: the bytes the inode holds at the end of the clean run (by inode
/// number of this replay), else a fallback (the served model: a temp file deleted before the end was a
/// download of it).
pub struct References<'a> {
    /// Final contents of inodes that still had a name at the end of the clean run.
    pub by_inode: BTreeMap<usize, Vec<u8>>,
    /// Contents of everything else.
    pub fallback: &'a [u8],
}

impl Replay {
    /// A file system of `roots` empty root directories.
    pub fn new(roots: usize) -> Self {
        Replay {
            inodes: (0..roots).map(|_| Inode::new(Kind::Dir)).collect(),
            roots,
            position: BTreeMap::new(),
        }
    }

    /// The parent inode and the last component of `path`, resolving through the visible entries.
    fn parent_of(&self, path: &Path) -> Option<(usize, OsString)> {
        let mut comps = path.components();
        let root: usize = match comps.next()? {
            Component::Normal(r) => r.to_str()?.parse().ok().filter(|r| *r < self.roots)?,
            _ => return None,
        };
        let rest: Vec<OsString> = comps
            .filter_map(|c| match c {
                Component::Normal(n) => Some(n.to_os_string()),
                _ => None,
            })
            .collect();
        let (last, dirs) = rest.split_last()?;
        let mut at = root;
        for d in dirs {
            at = *self.inodes[at].entries.get(d)?;
        }
        Some((at, last.clone()))
    }

    fn lookup(&self, path: &Path) -> Option<usize> {
        match self.parent_of(path) {
            Some((dir, name)) => self.inodes[dir].entries.get(&name).copied(),
            None => path.to_str().and_then(|r| r.parse().ok()).filter(|r| *r < self.roots),
        }
    }

    fn create(&mut self, path: &Path, kind: Kind) -> Option<usize> {
        let (dir, name) = self.parent_of(path)?;
        let id = self.inodes.len();
        self.inodes.push(Inode::new(kind));
        self.inodes[dir].entries.insert(name, id);
        Some(id)
    }

    fn unlink(&mut self, path: &Path) -> Option<usize> {
        let (dir, name) = self.parent_of(path)?;
        self.inodes[dir].entries.remove(&name)
    }

    /// Applies one operation (an op on a path the model cannot resolve is ignored: the trace saw it
    /// succeed, so the path was outside what the model tracks).
    pub fn apply(&mut self, op: &Op, refs: &References<'_>) {
        match &op.fs {
            FsOp::Open { path, create, trunc, .. } => {
                let id = match self.lookup(path) {
                    Some(id) => Some(id),
                    None if *create => self.create(path, Kind::File),
                    None => None,
                };
                if let Some(id) = id
                    && *trunc
                {
                    self.inodes[id].data.clear();
                }
                self.position.insert(path.clone(), 0);
            }
            FsOp::Write { path } => {
                let (offset, len) = (op.offset, op.len);
                let Some(id) = self.lookup(path) else { return };
                let at = offset.unwrap_or_else(|| self.position.get(path).copied().unwrap_or(0));
                let end = at + len;
                let source = refs.by_inode.get(&id).map_or(refs.fallback, Vec::as_slice);
                let data = &mut self.inodes[id].data;
                if (data.len() as u64) < end {
                    data.resize(end as usize, 0);
                }
                for i in at..end {
                    data[i as usize] = source.get(i as usize).copied().unwrap_or(0);
                }
                if offset.is_none() {
                    self.position.insert(path.clone(), end);
                }
            }
            FsOp::Truncate { path } => {
                if let Some(id) = self.lookup(path) {
                    self.inodes[id].data.resize(op.len as usize, 0);
                }
            }
            FsOp::Fsync { path } => {
                if let Some(id) = self.lookup(path) {
                    let inode = &mut self.inodes[id];
                    inode.durable_data = inode.data.clone();
                    inode.durable_entries = inode.entries.clone();
                }
            }
            FsOp::Rename { from, to } => {
                if let Some(id) = self.unlink(from)
                    && let Some((dir, name)) = self.parent_of(to)
                {
                    self.inodes[dir].entries.insert(name, id);
                    if let Some(p) = self.position.remove(from) {
                        self.position.insert(to.clone(), p);
                    }
                }
            }
            FsOp::Unlink { path } | FsOp::Rmdir { path } => {
                self.unlink(path);
            }
            FsOp::Mkdir { path } => {
                self.create(path, Kind::Dir);
            }
            FsOp::Link { from, to } => {
                if let (Some(id), Some((dir, name))) = (self.lookup(from), self.parent_of(to)) {
                    self.inodes[dir].entries.insert(name, id);
                }
            }
            FsOp::Symlink { target, link } => {
                self.create(link, Kind::Symlink(target.clone()));
            }
            // Change no state (and are never projected into an `Op`).
            FsOp::Lock { .. } | FsOp::Close { .. } | FsOp::Exit => {}
        }
    }

    /// Every file inode still named at this point, with its path: the inodes whose contents the clean
    /// run left on disk (read them at the end of the run as [`References::by_inode`]).
    pub fn named_files(&self) -> Vec<(usize, PathBuf)> {
        let mut out = Vec::new();
        for root in 0..self.roots {
            self.walk(root, &PathBuf::from(root.to_string()), false, &mut |id, path| {
                if matches!(self.inodes[id].kind, Kind::File) {
                    out.push((id, path.to_path_buf()));
                }
            });
        }
        out
    }

    fn walk(&self, dir: usize, at: &Path, durable: bool, visit: &mut dyn FnMut(usize, &Path)) {
        let inode = &self.inodes[dir];
        let entries = if durable { &inode.durable_entries } else { &inode.entries };
        for (name, &id) in entries {
            let path = at.join(name);
            visit(id, &path);
            if matches!(self.inodes[id].kind, Kind::Dir) {
                self.walk(id, &path, durable, visit);
            }
        }
    }

    /// What survives a power loss now, under `loss`: every entry by path (`<root>/<relative>`).
    pub fn state(&self, loss: Loss) -> Vec<(PathBuf, StateEntry)> {
        let mut out = Vec::new();
        let durable_names = loss == Loss::AllUnsynced;
        for root in 0..self.roots {
            self.walk(root, &PathBuf::from(root.to_string()), durable_names, &mut |id, path| {
                let inode = &self.inodes[id];
                let entry = match &inode.kind {
                    Kind::Dir => StateEntry::Dir,
                    Kind::Symlink(t) => StateEntry::Symlink(t.clone()),
                    Kind::File if loss == Loss::Nothing => StateEntry::File(inode.data.clone()),
                    Kind::File => StateEntry::File(inode.durable_data.clone()),
                };
                out.push((path.to_path_buf(), entry));
            });
        }
        out
    }
}
