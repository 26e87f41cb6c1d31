//! The overlaps after a gate's release, forced by events like the gate itself: the moment right after a
//! process **synced a cache file another process is still writing**, and the moment right after it
//! **released a cache lock another process waits for**. Whatever a target does next (rename, unlink,
//! fsync the dir) happens while the others have had their go — every run, not when the scheduler says.
//!
//! How: every armed process runs under its tracer with `SIGSTOP` injected after each `close`, `fsync`
//! and `fdatasync` ([`INJECT`]; the tracer cannot inject a signal with `--seccomp-bpf`, so these run
//! without it); `/proc/locks`, read every round, says which cache locks each process held. A thread
//! watches the fleet. A process stopped there is resumed at once unless
//! - it synced a file another live process has open for writing: it is *held* until every such writer
//!   has synced it too (is held) or closed it, then resumed, one such process at a time in the order
//!   they were held, each once the one before is quiet;
//! - it let go of a lock file others are blocked on (held before, not any more): it is held until the
//!   lock's next holder is quiet (or nobody waits any more).
//!
//! *Quiet* is the gate's condition: held, stopped, blocked on a cache lock (`/proc/locks`), asleep
//! waiting for input, or gone. Every hold and its release go into the run's plan in order
//! ([`stress_cache_metadata::PlannedHold`]), so a replay says when it held otherwise. The wait is
//! bounded: a hold not released by its condition within [`HOLD_TIMEOUT`] is released and marked so.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stress_cache_metadata::{FilePattern, PlannedHold};

use crate::orchestrator::{blocked_waiting_for_input, current_syscall, proc_state};
use crate::proc_locks::{self, FileId};

/// The tracer's injection that stops a process right after each `close` and sync call.
/// Not `flock` itself: a signal injected into a blocking `flock` interrupts the wait, and the restarted
/// call would be stopped again and again (nor can the injection pick the unlock among a process's
/// calls: a reader's shared lock comes first, a writer's exclusive one after it). The `close` after an
/// unlock is where the release shows (`/proc/locks` tells: a hold needs a lock let go). `;` separates
/// the tracer's `inject` expressions.
pub const INJECT: &str = "close,fsync,fdatasync:signal=SIGSTOP";

/// The calls [`INJECT`] stops a process after, as `/proc/<pid>/syscall` numbers them.
const INJECTED_AFTER: [i64; 3] = [libc::SYS_close, libc::SYS_fsync, libc::SYS_fdatasync];

/// How long one hold may last before it is released anyway (well inside a fleet's watchdog).
pub const HOLD_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a process is held.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Why {
    /// Synced `file` while others had it open for writing.
    Synced(FileId),
    /// Released the lock on `file` while others were blocked on it.
    Released(FileId),
}

/// One held process.
#[derive(Debug, Clone)]
struct Held {
    pid: u32,
    why: Why,
    since: Instant,
    /// For a released lock: the first process seen holding it after this one let go.
    next: Option<u32>,
}

/// The watcher thread of a fleet's holds.
pub struct Holds {
    stop: Arc<AtomicBool>,
    pids: Arc<Mutex<Vec<u32>>>,
    thread: Option<JoinHandle<Vec<(u32, PlannedHold)>>>,
}

impl Holds {
    /// Starts watching `pids` (the processes armed with [`INJECT`]); `locks` is the lock pattern of the
    /// `caches`.
    pub fn start(pids: Vec<u32>, caches: Vec<PathBuf>, locks: Option<FilePattern>) -> Holds {
        let stop = Arc::new(AtomicBool::new(false));
        let pids = Arc::new(Mutex::new(pids));
        let (flag, watched) = (stop.clone(), pids.clone());
        let thread = std::thread::Builder::new()
            .name("holds".into())
            .spawn(move || Watcher { pids: watched, caches, locks, ..Watcher::default() }.run(&flag))
            .ok();
        Holds { stop, pids, thread }
    }

    /// Watches `more` processes too (a fleet started after the first, e.g. the waiters of a holder).
    pub fn watch(&self, more: &[u32]) {
        if let Ok(mut pids) = self.pids.lock() {
            pids.extend_from_slice(more);
        }
    }

    /// Stops watching (after the fleet was reaped) and returns every hold in release order, with the
    /// pid it held.
    pub fn finish(mut self) -> Vec<(u32, PlannedHold)> {
        self.stop.store(true, Ordering::SeqCst);
        self.thread.take().and_then(|t| t.join().ok()).unwrap_or_default()
    }
}

impl Drop for Holds {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

#[derive(Default)]
struct Watcher {
    pids: Arc<Mutex<Vec<u32>>>,
    caches: Vec<PathBuf>,
    locks: Option<FilePattern>,
    /// Stops already handled, by pid: the process's context-switch count when it was seen stopped (a
    /// stopped process does not switch, so a new count is a new stop).
    handled: BTreeMap<u32, u64>,
    /// Cache lock files each process was seen holding since its last stop.
    had: BTreeMap<u32, BTreeSet<FileId>>,
    /// Processes seen blocked on each cache lock file in the previous round (an unlock wakes every
    /// waiter: for a moment none shows as blocked, nor yet as holding).
    waited: BTreeMap<FileId, BTreeSet<u32>>,
    /// Every process ever seen blocked on each cache lock file. The previous round alone is not
    /// enough: an unlock wakes every waiter, and a target that looks under a shared lock first and
    /// then asks for the exclusive one is, for a moment, neither blocked nor holding — still about to
    /// race for the lock the holder just let go.
    ever_waited: BTreeMap<FileId, BTreeSet<u32>>,
    /// Held processes, in the order they were held.
    held: VecDeque<Held>,
    /// The process last resumed from a sync hold (the next one waits until it is quiet).
    resumed_sync: Option<u32>,
    log: Vec<(u32, PlannedHold)>,
}

impl Watcher {
    fn run(mut self, stop: &AtomicBool) -> Vec<(u32, PlannedHold)> {
        // Bounded: the fleet's watchdog ends every process long before this many 1 ms rounds.
        for _ in 0..600_000 {
            let pids = self.pids.lock().map(|p| p.clone()).unwrap_or_default();
            let alive: Vec<u32> = pids.into_iter().filter(|p| alive(*p)).collect();
            if stop.load(Ordering::SeqCst) || alive.is_empty() {
                break;
            }
            self.round(&alive);
            std::thread::sleep(Duration::from_millis(1)); // a poll interval: /proc signals nothing
        }
        // Nothing stays stopped behind the harness's back.
        for h in std::mem::take(&mut self.held) {
            self.release(h, "the fleet ended");
        }
        self.log
    }

    fn round(&mut self, alive: &[u32]) {
        let lines = proc_locks::read_proc_locks().unwrap_or_default();
        let lock_files = self.lock_files();
        for &pid in alive {
            let holding = held_by(&lines, pid, &lock_files);
            self.had.entry(pid).or_default().extend(holding);
        }
        let (stops, again): (Vec<(u32, i64, i64, u64)>, Vec<_>) = alive
            .iter()
            .filter(|pid| !self.held.iter().any(|h| h.pid == **pid))
            .filter_map(|&pid| injected_stop(pid).map(|(nr, fd, switches)| (pid, nr, fd, switches)))
            .partition(|(pid, _, _, switches)| self.handled.get(pid) != Some(switches));
        // Still in a stop already resumed: the SIGCONT came while the tracer was still delivering the
        // injected SIGSTOP, which then stopped the process anyway. Not resumed again, it would hang
        // until the watchdog; a SIGCONT to a process that did resume changes nothing.
        for (pid, ..) in again {
            resume(pid);
        }
        // Read again once the stops are seen: a stopped process changes no lock, but one that unlocked
        // while this round began would still show as holding in the first reading.
        let lines = if stops.is_empty() { lines } else { proc_locks::read_proc_locks().unwrap_or(lines) };
        for (pid, nr, fd, switches) in stops {
            self.handled.insert(pid, switches);
            let holding = held_by(&lines, pid, &lock_files);
            let had = std::mem::replace(self.had.entry(pid).or_default(), holding.clone());
            let let_go: BTreeSet<FileId> = had.difference(&holding).copied().collect();
            match self.why(pid, nr, fd, alive, &lines, &let_go) {
                Some(why) => self.held.push_back(Held { pid, why, since: Instant::now(), next: None }),
                None => resume(pid),
            }
        }
        let waited_before = std::mem::take(&mut self.waited);
        self.waited = lock_files
            .iter()
            .map(|f| (*f, proc_locks::blocked_on(&lines, alive, &BTreeSet::from([*f]))))
            .collect();
        for (file, pids) in &self.waited {
            self.ever_waited.entry(*file).or_default().extend(pids);
        }
        let quiet: BTreeSet<u32> =
            alive.iter().copied().filter(|p| self.quiet(*p, &lines, &lock_files)).collect();
        let held: BTreeSet<u32> = self.held.iter().map(|h| h.pid).collect();
        let mut still = VecDeque::new();
        while let Some(mut h) = self.held.pop_front() {
            let done = match &h.why {
                Why::Synced(file) => {
                    let first = !still.iter().any(|o: &Held| matches!(o.why, Why::Synced(_)));
                    // Not merely quiet: a download streaming in is asleep between chunks. Every other
                    // writer must have synced (held) or let go of the file, so their writes come
                    // after this process's sync and before its next step.
                    let others_done =
                        writers_of(*file, alive).iter().all(|w| *w == h.pid || held.contains(w));
                    let previous_quiet =
                        self.resumed_sync.is_none_or(|p| quiet.contains(&p) || !alive.contains(&p));
                    (first && others_done && previous_quiet)
                        .then_some("every other writer of the file had synced or closed it")
                }
                Why::Released(file) => {
                    let files = BTreeSet::from([*file]);
                    let waiting = proc_locks::blocked_on(&lines, alive, &files);
                    let holders = proc_locks::holding(&lines, alive, &files);
                    let waited = waited_before.get(file).is_some_and(|w| !w.is_empty());
                    // The next *exclusive* holder: a target that looks under a shared lock first lets
                    // it go again before it asks for the exclusive one, and what it decides is decided
                    // under that one.
                    if h.next.is_none() {
                        h.next = proc_locks::holding_exclusively(&lines, alive, &files)
                            .into_iter()
                            .find(|p| *p != h.pid);
                    }
                    // A waiter that took and gave back the lock between two looks: it is quiet, and
                    // neither waits nor holds any more.
                    let went = waited_before.get(file).is_some_and(|w| {
                        w.iter().any(|p| {
                            *p != h.pid && !waiting.contains(p) && !holders.contains(p) && quiet.contains(p)
                        })
                    });
                    if h.next.is_none() && went {
                        h.next = waited_before.get(file).and_then(|w| {
                            w.iter().copied().find(|p| !waiting.contains(p) && !holders.contains(p))
                        });
                    }
                    match h.next {
                        // The next holder has had its go: it is quiet, or it already let go again
                        // (what it did under the lock came before this process's next step).
                        Some(n) if quiet.contains(&n) || !holders.contains(&n) => {
                            Some("the lock's next holder was quiet or had let go")
                        }
                        Some(_) => None,
                        // Nobody holds it yet: released once every other process that ever waited
                        // for it is quiet or gone (not merely unblocked for a moment by the unlock).
                        None if waiting.is_empty() && !waited && {
                            let others = self.ever_waited.get(file).into_iter().flatten();
                            others.filter(|p| **p != h.pid && alive.contains(p)).all(|p| quiet.contains(p))
                        } =>
                        {
                            Some("nobody waited for the lock any more")
                        }
                        None => None,
                    }
                }
            };
            match done {
                Some(reason) => {
                    if matches!(h.why, Why::Synced(_)) {
                        self.resumed_sync = Some(h.pid);
                    }
                    self.release(h, reason);
                }
                None if h.since.elapsed() >= HOLD_TIMEOUT => self.release(h, "deadline"),
                None => still.push_back(h),
            }
        }
        self.held = still;
    }

    /// Why the stop of `pid` after syscall `nr` on `fd` is a hold, if it is one.
    /// Why the stop of `pid` after syscall `nr` on `fd` is a hold, if it is one; `let_go` are the cache
    /// lock files it held before this stop and no longer holds.
    fn why(
        &self,
        pid: u32,
        nr: i64,
        fd: i64,
        alive: &[u32],
        lines: &[proc_locks::LockLine],
        let_go: &BTreeSet<FileId>,
    ) -> Option<Why> {
        if nr == libc::SYS_close {
            let others: Vec<u32> = alive.iter().copied().filter(|p| *p != pid).collect();
            let wanted = let_go.iter().find(|f| {
                let files = BTreeSet::from([**f]);
                !proc_locks::blocked_on(lines, &others, &files).is_empty()
                    || !proc_locks::holding(lines, &others, &files).is_empty()
                    || self.ever_waited.get(f).is_some_and(|w| w.iter().any(|p| others.contains(p)))
            });
            return wanted.map(|f| Why::Released(*f));
        }
        let path = std::fs::read_link(format!("/proc/{pid}/fd/{fd}")).ok()?;
        let rel = self.caches.iter().find_map(|c| path.strip_prefix(c).ok())?;
        let file = FileId::of(&PathBuf::from(format!("/proc/{pid}/fd/{fd}"))).ok()?;
        let is_lock = self.locks.as_ref().is_some_and(|l| l.matches(rel));
        let shared = writers_of(file, alive).iter().any(|w| *w != pid);
        (!is_lock && shared).then_some(Why::Synced(file))
    }

    /// The lock files of the caches now.
    fn lock_files(&self) -> BTreeSet<FileId> {
        match &self.locks {
            Some(p) => self.caches.iter().flat_map(|c| proc_locks::lock_file_ids(c, p)).collect(),
            None => BTreeSet::new(),
        }
    }

    fn quiet(&self, pid: u32, lines: &[proc_locks::LockLine], lock_files: &BTreeSet<FileId>) -> bool {
        if self.held.iter().any(|h| h.pid == pid) || !alive(pid) {
            return true;
        }
        // At one of the tracer's injected stops (a job-control stop like any other to the kernel): it
        // is between two steps and about to go on, not done with its turn. A process that took the
        // lock and stopped after a `close` before it looked for the final is exactly the one whose
        // next step decides the race.
        if injected_stop(pid).is_some() {
            return false;
        }
        if crate::orchestrator::is_job_stopped(pid) || blocked_waiting_for_input(pid) {
            return true;
        }
        !proc_locks::blocked_on(lines, &[pid], lock_files).is_empty()
    }

    fn release(&mut self, h: Held, reason: &str) {
        let kind = match h.why {
            Why::Synced(_) => "after-sync",
            Why::Released(_) => "after-unlock",
        };
        let held_ms = h.since.elapsed().as_millis() as u64;
        resume(h.pid);
        let hold = PlannedHold { kind: kind.into(), process: None, released: reason.into(), held_ms };
        self.log.push((h.pid, hold));
    }
}

/// `(syscall, first argument, context switches)` when `pid` is stopped by the injected signal right
/// after one of the [`INJECT`] calls: tracing stop inside that call, parked in the kernel's stop.
fn injected_stop(pid: u32) -> Option<(i64, i64, u64)> {
    if !matches!(proc_state(pid)?, 't' | 'T') {
        return None;
    }
    let syscall = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    let mut fields = syscall.split_whitespace();
    let nr: i64 = fields.next()?.parse().ok()?;
    if !INJECTED_AFTER.contains(&nr) {
        return None;
    }
    let fd = i64::from_str_radix(fields.next()?.trim_start_matches("0x"), 16).ok()?;
    Some((nr, fd, context_switches(pid)?))
}

/// Whether `pid` of `fleet` is in a job-control stop that is not one of the tracer's injected stops
/// ([`INJECT`]): stopped by a `pause` failpoint's own `SIGSTOP`, or by the harness. A scenario that
/// parks a process at a failpoint while holds are armed waits for this: taking an injected stop for
/// the failpoint, it would resume the process before it gets there, and the process would then stay
/// stopped at the failpoint until the watchdog. Checked on both sides of the stop: a process resumed
/// from an injected stop in between is not taken for one stopped at its failpoint: a stopped process
/// neither changes its syscall nor switches, so the same reading on both sides is the same stop.
pub fn stopped_outside_injection(fleet: &crate::orchestrator::Fleet, pid: u32) -> bool {
    let Some(before) = stop_point(pid) else { return false };
    let stopped = fleet.is_stopped(pid);
    stopped && !INJECTED_AFTER.contains(&before.0) && stop_point(pid) == Some(before)
}

/// `(syscall, context switches)` of `pid`; `None` while it runs (its syscall file says `running`).
fn stop_point(pid: u32) -> Option<(i64, u64)> {
    Some((current_syscall(pid)?, context_switches(pid)?))
}

/// Voluntary and involuntary context switches of `pid` so far.
fn context_switches(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some(
        status
            .lines()
            .filter(|l| l.contains("ctxt_switches"))
            .filter_map(|l| l.split_whitespace().last()?.parse::<u64>().ok())
            .sum(),
    )
}

/// The ones of `files` `pid` holds a lock on (not waits for).
fn held_by(lines: &[proc_locks::LockLine], pid: u32, files: &BTreeSet<FileId>) -> BTreeSet<FileId> {
    lines
        .iter()
        .filter(|l| !l.blocked && l.pid == i64::from(pid) && files.contains(&l.file()))
        .map(|l| l.file())
        .collect()
}

/// Of `pids`, those with `file` open for writing.
fn writers_of(file: FileId, pids: &[u32]) -> Vec<u32> {
    let mut out = Vec::new();
    for &pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten().take(4096) {
            if FileId::of(&fd.path()).ok() != Some(file) {
                continue;
            }
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()));
            let writable = info.ok().and_then(|t| {
                let flags = t.lines().find_map(|l| l.strip_prefix("flags:"))?.trim().to_string();
                u32::from_str_radix(&flags, 8).ok()
            });
            if writable.is_some_and(|f| f & 0b11 != 0) {
                out.push(pid);
                break;
            }
        }
    }
    out
}

fn alive(pid: u32) -> bool {
    proc_state(pid).is_some_and(|s| s != 'Z' && s != 'X')
}

fn resume(pid: u32) {
    // SAFETY: SIGCONT to a fleet child not yet reaped (its pid is not reused while the fleet holds it).
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGCONT);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_process_holds_the_locks_it_has_not_the_ones_it_waits_for() {
        let text = "1: FLOCK  ADVISORY  WRITE 10 fe:01:5 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 11 fe:01:5 0 EOF\n\
                    2: FLOCK  ADVISORY  READ  11 fe:01:6 0 EOF\n\
                    3: FLOCK  ADVISORY  WRITE 10 fe:01:7 0 EOF\n";
        let lines = proc_locks::parse_proc_locks(text);
        let file = |inode| FileId { major: 0xfe, minor: 1, inode };
        let cache: BTreeSet<FileId> = [file(5), file(6)].into();
        assert_eq!(held_by(&lines, 10, &cache), BTreeSet::from([file(5)]), "inode 7 is not a cache lock");
        assert_eq!(held_by(&lines, 11, &cache), BTreeSet::from([file(6)]), "waiting on 5 is not holding it");
        assert!(held_by(&lines, 12, &cache).is_empty());
    }

    #[test]
    fn only_a_tracing_stop_inside_an_injected_call_is_an_injected_stop() {
        // This test process is running, not stopped in close/fsync.
        assert_eq!(injected_stop(std::process::id()), None);
        assert!(INJECT.contains("signal=SIGSTOP") && !INJECT.contains("flock"));
    }
}
