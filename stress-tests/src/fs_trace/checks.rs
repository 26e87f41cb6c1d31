//! Cache-safety properties checked on a merged [`FsTrace`].
//!
//! Every property is about *patterns* that are unsafe whatever the timing turned out to be, and every
//! cross-process violation requires definite overlap by timestamps (the other process's call entered
//! after the interval began and returned before it ended), so a report is never an artefact of clock
//! resolution. Evidence lines name the pid, the op, the path and the times.
//!
//! A "process" is one trace file (the `process` index of its events: all its threads and children);
//! it lives until its last event when the trace shows it exiting, else until the end of the trace.
//! Only successful calls count, except that a lock call (even a failed or still-blocked one) shows
//! that a process uses a lock file.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use super::{FsEvent, FsOp, FsTrace, LockMode};
use stress_cache_metadata::FilePattern;

/// The roles of the paths in one cache directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheRoles {
    /// The cache directory; a path belongs to the first `CacheRoles` whose `dir` is its prefix (the
    /// canonical form of `dir` is tried too, as strace reports resolved paths).
    pub dir: PathBuf,
    /// Published artifacts (relative to `dir`).
    pub final_: Vec<FilePattern>,
    /// Temp files (or temp directories) written before a publish.
    pub partial: Vec<FilePattern>,
    /// Lock files.
    pub lock: Vec<FilePattern>,
    /// Sidecars and metadata (`ignore`): no role, whatever the other patterns say.
    pub ignore: Vec<FilePattern>,
    /// The lock is held by the lock file's existence (created with `O_EXCL`, removed to release)
    /// rather than by `flock`/`fcntl`.
    pub lock_kind_exists: bool,
    /// Compiled cache: a final is a directory, published by renaming a complete temp directory.
    pub entries_are_dirs: bool,
}

/// The evidence per property: an empty list means the property held.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceVerdicts {
    /// A final appears only by rename of a complete file, and is never written in place.
    pub final_published_atomically: Vec<String>,
    /// No process removes, replaces or truncates a temp file another live process is writing.
    pub live_temp_files_left_alone: Vec<String>,
    /// A lock file in use is never removed or replaced, and no two processes hold exclusive locks on
    /// two different files of the same lock name at the same time.
    pub lock_files_stable: Vec<String>,
    /// Each publish fsyncs the temp after its last write and the final's directory after the rename.
    pub published_durably: Vec<String>,
    /// Publishes and removals of finals happen under an exclusive lock of the same cache; None when
    /// no cache declares lock files.
    pub writer_holds_exclusive_lock: Option<Vec<String>>,
    /// Number of events checked.
    pub events: usize,
}

impl TraceVerdicts {
    /// Whether every property held.
    pub fn all_held(&self) -> bool {
        self.final_published_atomically.is_empty()
            && self.live_temp_files_left_alone.is_empty()
            && self.lock_files_stable.is_empty()
            && self.published_durably.is_empty()
            && self.writer_holds_exclusive_lock.as_ref().is_none_or(Vec::is_empty)
    }
}

/// Evidence lines kept per property (then "... and N more").
const MAX_EVIDENCE: usize = 20;

/// Checks every property on `trace` for the caches described by `roles`.
pub fn check(trace: &FsTrace, roles: &[CacheRoles]) -> TraceVerdicts {
    let ctx = Ctx::new(trace, roles);
    let holds = ctx.exclusive_holds();
    let any_lock_patterns = roles.iter().any(|r| !r.lock.is_empty());
    TraceVerdicts {
        final_published_atomically: cap(ctx.final_published_atomically()),
        live_temp_files_left_alone: cap(ctx.live_temp_files_left_alone()),
        lock_files_stable: cap(ctx.lock_files_stable(&holds)),
        published_durably: cap(ctx.published_durably()),
        writer_holds_exclusive_lock: any_lock_patterns.then(|| cap(ctx.writer_holds_exclusive_lock(&holds))),
        // Only operations on the caches are observations of the cache: a trace that never touched one
        // observed nothing, and its invariants are then skipped, not held.
        events: ctx.events.iter().filter(|e| e.op.paths().iter().any(|p| ctx.classify(p).is_some())).count(),
    }
}

fn cap(mut lines: Vec<String>) -> Vec<String> {
    if lines.len() > MAX_EVIDENCE {
        let more = lines.len() - MAX_EVIDENCE;
        lines.truncate(MAX_EVIDENCE);
        lines.push(format!("... and {more} more"));
    }
    lines
}

/// What a path is in its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Role {
    Final,
    Partial,
    Lock,
    /// Inside the published directory entry (compiled caches).
    InEntry,
    /// Inside a temp directory (compiled caches).
    InTemp,
    Other,
}

/// An interval during which a process held an exclusive lock on `path`.
#[derive(Debug, Clone)]
struct Hold<'a> {
    process: usize,
    pid: u32,
    role: usize,
    path: &'a Path,
    start: f64,
    end: f64,
    /// The event (open or lock call) that started it.
    since: &'a FsEvent,
}

struct Ctx<'a> {
    events: Vec<&'a FsEvent>,
    roles: &'a [CacheRoles],
    /// Per role: `dir` and, if different, its canonical form.
    dirs: Vec<Vec<PathBuf>>,
    /// Per process: its last event if the trace shows it exiting, else the end of the trace.
    ends: HashMap<usize, f64>,
    /// Indices into `events` of the events naming each path, in entry order.
    by_path: HashMap<&'a Path, Vec<usize>>,
}

impl<'a> Ctx<'a> {
    fn new(trace: &'a FsTrace, roles: &'a [CacheRoles]) -> Self {
        let mut events: Vec<&FsEvent> = trace.events.iter().collect();
        events.sort_by(|a, b| a.entry.total_cmp(&b.entry));
        // A process ends with its last event if the trace shows it exiting (the leader's exit line is
        // its last; taking the last event rather than the last exit line keeps a cut trace, where only
        // some threads' exits made it, from ending the process too early); else at the trace's end.
        let trace_end = events.iter().map(|e| e.exit).fold(f64::MIN, f64::max);
        let mut last: HashMap<usize, (f64, bool)> = HashMap::new();
        for e in &events {
            let (end, exited) = last.entry(e.process).or_insert((e.exit, false));
            *end = end.max(e.exit);
            *exited |= e.op == FsOp::Exit;
        }
        let ends = last
            .into_iter()
            .map(|(process, (end, exited))| (process, if exited { end } else { trace_end }))
            .collect();
        let mut by_path: HashMap<&Path, Vec<usize>> = HashMap::new();
        for (i, e) in events.iter().enumerate() {
            for path in e.op.paths() {
                by_path.entry(path).or_default().push(i);
            }
        }
        let dirs = roles
            .iter()
            .map(|r| {
                let mut dirs = vec![r.dir.clone()];
                dirs.extend(std::fs::canonicalize(&r.dir).ok().filter(|c| *c != r.dir));
                dirs
            })
            .collect();
        Ctx { events, roles, dirs, ends, by_path }
    }

    /// The cache (index into `roles`) and role of a path.
    fn classify(&self, path: &Path) -> Option<(usize, Role)> {
        let (index, rel) =
            self.dirs.iter().enumerate().find_map(|(i, dirs)| {
                dirs.iter().find_map(|d| path.strip_prefix(d).ok().map(|rel| (i, rel)))
            })?;
        let roles = &self.roles[index];
        let any = |patterns: &[FilePattern], p: &Path| patterns.iter().any(|m| m.matches(p));
        let role = if rel.as_os_str().is_empty() || any(&roles.ignore, rel) {
            Role::Other
        } else if any(&roles.partial, rel) {
            Role::Partial
        } else if any(&roles.lock, rel) {
            Role::Lock
        } else if any(&roles.final_, rel) {
            Role::Final
        } else if let (true, Some(first)) = (roles.entries_are_dirs, rel.components().next()) {
            let first = Path::new(first.as_os_str());
            if any(&roles.partial, first) {
                Role::InTemp
            } else if any(&roles.final_, first) {
                Role::InEntry
            } else {
                Role::Other
            }
        } else {
            Role::Other
        };
        Some((index, role))
    }

    fn role(&self, path: &Path) -> Role {
        self.classify(path).map_or(Role::Other, |(_, role)| role)
    }

    fn end_of(&self, process: usize) -> f64 {
        self.ends.get(&process).copied().unwrap_or(f64::MAX)
    }

    /// The events naming `path`, in entry order.
    fn on(&self, path: &Path) -> impl Iterator<Item = &'a FsEvent> + '_ {
        self.by_path.get(path).into_iter().flatten().map(|&i| self.events[i])
    }

    /// The first successful op of `process` on `path` entered at or after `from` that ends its use
    /// of the path (`ends` decides), as that op's entry time; else the process's end.
    fn release(&self, process: usize, path: &Path, from: f64, ends: impl Fn(&FsOp) -> bool) -> f64 {
        self.on(path)
            .find(|e| e.process == process && e.ok && e.entry >= from && ends(&e.op))
            .map_or(self.end_of(process), |e| e.entry)
    }

    fn final_published_atomically(&self) -> Vec<String> {
        let why = "(a final must appear only by rename of a complete file)";
        let mut out = Vec::new();
        for e in self.events.iter().filter(|e| e.ok) {
            let (what, path) = match &e.op {
                FsOp::Open { path, create, trunc, .. } if *create || *trunc => {
                    let flags = match (create, trunc) {
                        (true, true) => "O_CREAT|O_TRUNC",
                        (true, false) => "O_CREAT",
                        _ => "O_TRUNC",
                    };
                    (format!("opened {{}} with {flags}"), path)
                }
                FsOp::Write { path } => ("wrote to {}".to_string(), path),
                FsOp::Truncate { path } => ("truncated {}".to_string(), path),
                FsOp::Mkdir { path } if self.role(path) == Role::Final => {
                    ("created {} by mkdir".to_string(), path)
                }
                _ => continue,
            };
            let role = self.role(path);
            let name = match role {
                Role::Final => format!("final {}", path.display()),
                Role::InEntry => format!("{} inside a final entry", path.display()),
                _ => continue,
            };
            let deleted = if e.deleted { " (already unlinked)" } else { "" };
            out.push(format!("pid {} {}{deleted} at {:.6} {why}", e.pid, what.replace("{}", &name), e.entry));
        }
        out
    }

    fn live_temp_files_left_alone(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut reported = BTreeSet::new();
        for open in self.events.iter().filter(|e| e.ok) {
            let FsOp::Open { path: temp, write: true, .. } = &open.op else { continue };
            if !matches!(self.role(temp), Role::Partial | Role::InTemp) {
                continue;
            }
            let a = open.process;
            let (start, end) = (open.exit, self.release(a, temp, open.exit, |op| releases_name(op, temp)));
            for (i, b) in self.on(temp).enumerate() {
                let touches = match &b.op {
                    FsOp::Unlink { .. } => "unlinked",
                    FsOp::Rename { from, .. } if from == temp => "renamed away",
                    FsOp::Rename { .. } => "renamed another file onto",
                    FsOp::Open { trunc: true, .. } => "truncated (O_TRUNC)",
                    _ => continue,
                };
                if b.process != a && b.ok && b.entry > start && b.exit < end && reported.insert((temp, i)) {
                    out.push(format!(
                        "pid {} {touches} live temp {} at {:.6} while pid {} was writing it \
                         (opened at {:.6}, live until {:.6}) (a temp belongs to its writer until it \
                         closes, renames or exits)",
                        b.pid,
                        temp.display(),
                        b.entry,
                        open.pid,
                        start,
                        end
                    ));
                }
            }
        }
        out
    }

    fn published_durably(&self) -> Vec<String> {
        let mut out = Vec::new();
        for rename in self.events.iter().filter(|e| e.ok) {
            let FsOp::Rename { from: temp, to: fin } = &rename.op else { continue };
            let Some((index, Role::Final)) = self.classify(fin) else { continue };
            if self.role(temp) == Role::Final {
                continue; // a final moved, not a publish
            }
            let files: Vec<&Path> = if self.roles[index].entries_are_dirs {
                let mut inside: Vec<&Path> = self
                    .by_path
                    .keys()
                    .copied()
                    .filter(|p| p.starts_with(temp) && *p != temp.as_path())
                    .collect();
                inside.sort();
                inside
            } else {
                vec![temp]
            };
            for file in files {
                let last_write = self
                    .on(file)
                    .filter(|w| w.ok && w.entry < rename.entry)
                    .filter(|w| matches!(w.op, FsOp::Write { .. } | FsOp::Truncate { .. }))
                    .map(|w| w.exit)
                    .fold(None, |acc: Option<f64>, t| Some(acc.map_or(t, |a| a.max(t))));
                let Some(last_write) = last_write else { continue };
                let synced = self.on(file).any(|s| {
                    s.ok && matches!(s.op, FsOp::Fsync { .. })
                        && s.entry >= last_write
                        && s.exit <= rename.entry
                });
                if !synced {
                    out.push(format!(
                        "pid {} renamed {} to final {} at {:.6} without an fsync of {} after its last \
                         write at {last_write:.6} (a crash can publish an empty or torn file)",
                        rename.pid,
                        temp.display(),
                        fin.display(),
                        rename.entry,
                        file.display()
                    ));
                }
            }
            let Some(parent) = fin.parent() else { continue };
            // A process killed after its rename had no chance to sync the directory: that is the crash
            // this property guards against, not a breach of it.
            let killed =
                self.events.iter().any(|e| e.process == rename.process && e.op == FsOp::Exit && !e.ok);
            if killed {
                continue;
            }
            let end = self.end_of(rename.process);
            let dir_synced = self.on(parent).any(|s| {
                s.process == rename.process
                    && s.ok
                    && matches!(s.op, FsOp::Fsync { .. })
                    && s.entry >= rename.exit
                    && s.entry <= end
            });
            if !dir_synced {
                out.push(format!(
                    "pid {} renamed {} to final {} at {:.6} but did not fsync the directory {} before \
                     exiting at {end:.6} (a crash can lose the rename)",
                    rename.pid,
                    temp.display(),
                    fin.display(),
                    rename.entry,
                    parent.display()
                ));
            }
        }
        out
    }

    fn writer_holds_exclusive_lock(&self, holds: &[Hold]) -> Vec<String> {
        let mut out = Vec::new();
        for e in self.events.iter().filter(|e| e.ok) {
            let (index, what) = match &e.op {
                FsOp::Rename { from, to } => match (self.classify(from), self.classify(to)) {
                    (Some((i, Role::Final)), _) => {
                        (i, format!("moved final {} away to {}", from.display(), to.display()))
                    }
                    (_, Some((i, Role::Final))) => {
                        (i, format!("published {} as final {}", from.display(), to.display()))
                    }
                    _ => continue,
                },
                FsOp::Unlink { path } | FsOp::Rmdir { path } => match self.classify(path) {
                    Some((i, Role::Final)) => (i, format!("removed final {}", path.display())),
                    _ => continue,
                },
                _ => continue,
            };
            if self.roles[index].lock.is_empty() {
                continue;
            }
            let held = holds
                .iter()
                .any(|h| h.process == e.process && h.role == index && h.start <= e.entry && e.exit <= h.end);
            if !held {
                out.push(format!(
                    "pid {} {what} at {:.6} without holding an exclusive lock on a lock file of {} \
                     (publishes and removals must be serialised by the cache lock)",
                    e.pid,
                    e.entry,
                    self.roles[index].dir.display()
                ));
            }
        }
        out
    }

    /// Every exclusive hold on a lock path: a successful exclusive lock call until the same process
    /// unlocks, downgrades or closes the path, or exits; for `lock_kind_exists` caches, a successful
    /// `O_EXCL` create until the creator unlinks (or renames away) the lock file, or exits.
    fn exclusive_holds(&self) -> Vec<Hold<'a>> {
        let mut holds = Vec::new();
        for &e in &self.events {
            if !e.ok {
                continue;
            }
            let (path, exists_kind) = match &e.op {
                FsOp::Lock { path, mode: LockMode::Exclusive, .. } => (path, false),
                FsOp::Open { path, excl: true, create: true, .. } => (path, true),
                _ => continue,
            };
            let Some((role, Role::Lock)) = self.classify(path) else { continue };
            if self.roles[role].lock_kind_exists != exists_kind {
                continue;
            }
            let end = if exists_kind {
                self.release(e.process, path, e.exit, |op| releases_name(op, path) && !is_close(op))
            } else {
                self.release(e.process, path, e.exit, |op| match op {
                    FsOp::Lock { mode, .. } => *mode != LockMode::Exclusive,
                    op => is_close(op),
                })
            };
            holds.push(Hold { process: e.process, pid: e.pid, role, path, start: e.exit, end, since: e });
        }
        holds
    }
}

fn is_close(op: &FsOp) -> bool {
    matches!(op, FsOp::Close { .. })
}

/// Ops by which a process lets go of a file it opened by name: closing it, or giving the name up.
fn releases_name(op: &FsOp, path: &Path) -> bool {
    match op {
        FsOp::Close { .. } | FsOp::Unlink { .. } => true,
        FsOp::Rename { from, .. } => from == path,
        _ => false,
    }
}

#[path = "checks_locks.rs"]
mod locks;
