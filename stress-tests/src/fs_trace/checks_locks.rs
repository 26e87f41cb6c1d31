//! `lock_files_stable`: a lock file is only a lock while every contender opens the *same* file. If
//! one process unlinks or replaces the lock file while another uses it, the next contender creates a
//! fresh file and locks that one: both "hold the lock" at once. Checked two ways: the removal itself
//! (while the file is definitely in use), and its consequence (two exclusive holds on different
//! generations of the file at overlapping times).

use std::path::Path;

use super::{Ctx, FsEvent, FsOp, Hold, LockMode, Role};

impl<'a> Ctx<'a> {
    pub(super) fn lock_files_stable(&self, holds: &[Hold<'a>]) -> Vec<String> {
        let mut out = self.lock_removed_while_in_use();
        out.extend(self.holds_on_two_generations(holds));
        out
    }

    /// A lock path L is in use by A from A's open of L until A closes it (or unlinks/renames it
    /// itself) or exits, if A makes a lock call on L meanwhile (a blocked wait counts); for
    /// `lock_kind_exists` caches, from A's `O_EXCL` create until A removes it or exits. The first
    /// removal or replacement of L by another process inside that interval is a violation.
    fn lock_removed_while_in_use(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut reported = Vec::new();
        for open in self.events.iter().filter(|e| e.ok) {
            let FsOp::Open { path: lock, excl, create, .. } = &open.op else { continue };
            let Some((index, Role::Lock)) = self.classify(lock) else { continue };
            let (a, start) = (open.process, open.exit);
            let exists_kind = self.roles[index].lock_kind_exists;
            if exists_kind && !(*excl && *create) {
                continue; // a contender reading the lock file does not hold it
            }
            let end = self.release(a, lock, start, |op| match op {
                FsOp::Close { .. } => !exists_kind,
                op => changes_generation(op),
            });
            let locked = exists_kind
                || self.on(lock).any(|l| {
                    l.process == a
                        && matches!(l.op, FsOp::Lock { mode: LockMode::Exclusive | LockMode::Shared, .. })
                        && l.entry >= start
                        && l.entry <= end
                });
            if !locked {
                continue;
            }
            let first_change = self
                .on(lock)
                .find(|b| b.process != a && b.ok && b.entry > start && changes_generation(&b.op));
            let Some(b) = first_change.filter(|b| b.exit < end) else { continue };
            if reported.contains(&(b as *const FsEvent)) {
                continue;
            }
            reported.push(b as *const FsEvent);
            out.push(format!(
                "pid {} {} lock file {} at {:.6} while pid {} was using it (opened at {:.6}, in use until \
                 {:.6}) (the next contender locks a new file: two holders)",
                b.pid,
                describe_change(&b.op, lock),
                lock.display(),
                b.entry,
                open.pid,
                start,
                end
            ));
        }
        out
    }

    /// Two processes holding exclusive locks at overlapping times on different generations of the
    /// same lock path (a generation starts at each unlink or rename of the path).
    fn holds_on_two_generations(&self, holds: &[Hold<'a>]) -> Vec<String> {
        let mut with_generation: Vec<(&Hold, usize)> =
            holds.iter().filter_map(|h| self.generation_of(h).map(|g| (h, g))).collect();
        with_generation.sort_by(|a, b| a.0.start.total_cmp(&b.0.start));
        let mut out = Vec::new();
        for (i, (a, ga)) in with_generation.iter().enumerate() {
            for (b, gb) in with_generation[i + 1..].iter().take_while(|(b, _)| b.start < a.end) {
                if a.path == b.path && a.process != b.process && ga != gb && a.start < b.end {
                    out.push(format!(
                        "pid {} (from {:.6} to {:.6}) and pid {} (from {:.6} to {:.6}) held exclusive \
                         locks on two different files named {} at the same time (it was removed or \
                         replaced in between: mutual exclusion lost)",
                        a.pid,
                        a.start,
                        a.end,
                        b.pid,
                        b.start,
                        b.end,
                        a.path.display()
                    ));
                }
            }
        }
        out
    }

    /// The generation of the file a hold is on: that of the open it came from (the `O_EXCL` create,
    /// or the holder's latest open of the path before the lock call), counted as the removals and
    /// replacements of the path that definitely completed before the open began. None when one
    /// overlaps the open (ambiguous) or the open is not in the trace.
    fn generation_of(&self, hold: &Hold) -> Option<usize> {
        let open = match hold.since.op {
            FsOp::Open { .. } => hold.since,
            _ => self
                .on(hold.path)
                .filter(|o| {
                    o.process == hold.process
                        && o.ok
                        && matches!(o.op, FsOp::Open { .. })
                        && o.exit <= hold.since.entry
                })
                .last()?,
        };
        let changes = || self.on(hold.path).filter(|c| c.ok && changes_generation(&c.op));
        if changes().any(|c| c.entry <= open.exit && c.exit >= open.entry) {
            return None;
        }
        Some(changes().filter(|c| c.exit < open.entry).count())
    }
}

/// Unlinks and renames (from or onto the path: the events come from the path's own index).
fn changes_generation(op: &FsOp) -> bool {
    matches!(op, FsOp::Unlink { .. } | FsOp::Rename { .. })
}

fn describe_change(op: &FsOp, lock: &Path) -> &'static str {
    match op {
        FsOp::Rename { from, .. } if from == lock => "renamed away",
        FsOp::Rename { .. } => "renamed another file onto",
        _ => "unlinked",
    }
}
