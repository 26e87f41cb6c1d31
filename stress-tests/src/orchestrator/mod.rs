//! Starting a fleet of target processes at the same instant, watching them, and reaping every one.
//!
//! Each child is forked by `std::process::Command` on its own thread, put in its own process group,
//! and blocks in `pre_exec` (async-signal-safe `write`/`read` only): it reports `(index, pid)` on a ready
//! pipe, then reads one byte from a shared start pipe. When every child is parked, the parent writes all
//! the start bytes at once and the fleet execs together. Each thread then reaps its child with `wait4`
//! (exit code or signal, peak RSS, wall time from release). A watchdog SIGKILLs the process group of any
//! process still running at the fleet deadline and marks it hung. Dropping the fleet (also on panic)
//! kills and reaps whatever is left: no child or zombie outlives it; and each child has
//! `PR_SET_PDEATHSIG=SIGKILL`, so none outlives a test process that is itself killed.

use std::collections::BTreeSet;
use std::fs::File;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::printed_path::PrintedPath;
use crate::proc_locks::{self, FileId};
use stress_cache_metadata::{EventKind, FilePattern, TimelineEvent};

mod child;
mod process_state;
mod start_line;

use child::{kill_group, run_one, watchdog};
pub use process_state::{blocked_waiting_for_input, current_syscall, is_job_stopped, proc_state};

/// First pause of [`Fleet::wait_until`] between two looks.
const MIN_POLL_PAUSE: Duration = Duration::from_micros(250);
/// Longest pause of [`Fleet::wait_until`] between two looks.
const MAX_POLL_PAUSE: Duration = Duration::from_millis(4);

/// Error starting a fleet.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// A file or pipe operation failed.
    #[error("{action} {path}: {source}")]
    Io {
        /// What was being done.
        action: &'static str,
        /// Path (or pipe name).
        path: String,
        /// The error.
        source: std::io::Error,
    },
    /// Not every child reached the start line in time.
    #[error("only {ready} of {total} processes reached the start line within {waited:?}")]
    NotReady {
        /// Children parked.
        ready: usize,
        /// Children wanted.
        total: usize,
        /// How long the parent waited.
        waited: Duration,
    },
}

/// One process to start: a role name and its command (stdio is replaced by files in the fleet dir).
#[derive(Debug)]
pub struct FleetProcess {
    /// Role (`writer`, `reader`, `gc`, ...).
    pub role: String,
    /// The command.
    pub command: Command,
    /// Read the path it prints on stdout the moment it exits 0 ([`PrintedPath`]), in this directory
    /// (its working directory, for a relative path).
    pub observe_printed_path: Option<PathBuf>,
    /// `RLIMIT_NOFILE` (soft and hard) set in the child before it execs: a real descriptor limit, which
    /// the tracer and then the program inherit.
    pub nofile_limit: Option<u64>,
    /// Drop the capabilities that let root ignore file permission bits (see [`drop_dac_override`]).
    pub no_dac_override: bool,
}

impl FleetProcess {
    /// A process with a role.
    pub fn new(role: &str, command: Command) -> Self {
        FleetProcess {
            role: role.to_string(),
            command,
            observe_printed_path: None,
            nofile_limit: None,
            no_dac_override: false,
        }
    }
}

/// In a forked child before exec: removes `CAP_DAC_OVERRIDE`, `CAP_DAC_READ_SEARCH` and `CAP_FOWNER` from
/// the bounding set, so that after exec (root's capabilities are recomputed from it) file permission bits
/// bind the program even when the harness runs as root: a `chmod 0555` cache dir is then really
/// unwritable to it. Without root there is nothing to drop. Async-signal-safe (`prctl` only).
pub fn drop_dac_override() -> std::io::Result<()> {
    // SAFETY: getuid and prctl are plain syscalls with integer arguments.
    unsafe {
        if libc::geteuid() != 0 {
            return Ok(());
        }
        // CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER (linux/capability.h; libc has no constants).
        for cap in [1 as libc::c_ulong, 2, 3] {
            if libc::prctl(libc::PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// How one process ended.
#[derive(Debug, Clone, PartialEq)]
pub struct ProcessOutcome {
    /// Index in the fleet.
    pub index: usize,
    /// Role.
    pub role: String,
    /// OS pid (0 if it was never forked).
    pub pid: u32,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Terminating signal, if it was killed.
    pub signal: Option<i32>,
    /// Killed by the watchdog at the deadline.
    pub hung: bool,
    /// From the common release to exit.
    pub wall: Duration,
    /// The common release (unix ms), where `wall` starts: a process's bar on the report's timeline.
    pub started_unix_ms: u64,
    /// Peak RSS in kB (`ru_maxrss`).
    pub peak_rss_kb: Option<u64>,
    /// File holding its stdout.
    pub stdout_path: PathBuf,
    /// File holding its stderr.
    pub stderr_path: PathBuf,
    /// The command never ran (fork/exec failure).
    pub spawn_error: Option<String>,
    /// The path it printed and what was there when it exited (targets with `prints-path`).
    pub printed_path: Option<PrintedPath>,
}

impl ProcessOutcome {
    /// Its stdout (lossy UTF-8; empty if unreadable).
    pub fn stdout(&self) -> String {
        std::fs::read(&self.stdout_path).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default()
    }

    /// Its stderr (lossy UTF-8; empty if unreadable), plus the spawn error if any.
    pub fn stderr(&self) -> String {
        let mut text = std::fs::read(&self.stderr_path)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default();
        if let Some(e) = &self.spawn_error {
            text.push_str(&format!("\n[harness] spawn failed: {e}"));
        }
        text
    }

    /// The last `max` characters of stderr.
    pub fn stderr_tail(&self, max: usize) -> String {
        let text = self.stderr();
        let mut start = text.len().saturating_sub(max);
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }

    /// Short description: `pid 123 (writer #4): exit 3` / `signal 9` / `hung`.
    pub fn describe(&self) -> String {
        let how = if self.hung {
            "hung (killed by the watchdog)".to_string()
        } else if let Some(code) = self.exit_code {
            format!("exit {code}")
        } else if let Some(sig) = self.signal {
            format!("signal {sig}")
        } else if let Some(e) = &self.spawn_error {
            format!("spawn failed: {e}")
        } else {
            "unknown".to_string()
        };
        format!("pid {} ({} #{}): {how}", self.pid, self.role, self.index)
    }
}

struct State {
    outcomes: Vec<Option<ProcessOutcome>>,
    pids: Vec<u32>,
    hung: BTreeSet<usize>,
    released_at: Option<Instant>,
    stop_watchdog: bool,
    /// What the harness did to the processes, and the stops it saw, for the report's timeline.
    events: Vec<TimelineEvent>,
}

impl State {
    fn event(&mut self, kind: EventKind, pid: u32, detail: &str) {
        self.events.push(TimelineEvent {
            unix_ms: unix_ms_now(),
            kind,
            pid: Some(pid),
            detail: detail.into(),
        });
    }
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A set of processes started together. See the module docs.
pub struct Fleet {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
    watchdog: Option<JoinHandle<()>>,
    start_write: Option<OwnedFd>,
    roles: Vec<String>,
    released_unix_ms: u64,
    deadline: Duration,
    dir: PathBuf,
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

impl Fleet {
    /// Pids of every forked process, by fleet index (0 = never forked).
    pub fn pids(&self) -> Vec<u32> {
        self.shared.lock().pids.clone()
    }

    /// Roles, by fleet index.
    pub fn roles(&self) -> &[String] {
        &self.roles
    }

    /// The fleet's directory (stdout/stderr files).
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Wall-clock time of the release (unix ms).
    pub fn released_unix_ms(&self) -> u64 {
        self.released_unix_ms
    }

    /// The watchdog deadline (from release).
    pub fn deadline(&self) -> Duration {
        self.deadline
    }

    /// Pids of processes not yet reaped.
    pub fn alive(&self) -> Vec<u32> {
        let state = self.shared.lock();
        state
            .pids
            .iter()
            .zip(&state.outcomes)
            .filter(|(p, o)| **p != 0 && o.is_none())
            .map(|(p, _)| *p)
            .collect()
    }

    /// Whether every process has been reaped.
    pub fn all_finished(&self) -> bool {
        self.shared.lock().outcomes.iter().all(Option::is_some)
    }

    /// Whether `pid` is stopped (state `T` in `/proc/<pid>/stat`), e.g. parked by a `pause` failpoint.
    /// The first time a stop is seen (since the last resume) it goes on the timeline.
    pub fn is_stopped(&self, pid: u32) -> bool {
        let stopped = is_job_stopped(pid);
        if stopped {
            let mut state = self.shared.lock();
            let last =
                state.events.iter().rev().find(|e| {
                    e.pid == Some(pid) && matches!(e.kind, EventKind::Sigstop | EventKind::Sigcont)
                });
            if last.is_none_or(|e| e.kind != EventKind::Sigstop) {
                state.event(EventKind::Sigstop, pid, "seen stopped");
            }
        }
        stopped
    }

    /// What happened to the processes so far (stops seen, SIGCONT and SIGKILL sent), in order.
    pub fn events(&self) -> Vec<TimelineEvent> {
        self.shared.lock().events.clone()
    }

    /// Resumes a stopped process (SIGCONT).
    pub fn resume(&self, pid: u32) -> std::io::Result<()> {
        if !self.shared.lock().pids.contains(&pid) {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!("pid {pid} is not in this fleet"),
            ));
        }
        // SAFETY: signalling our own child.
        if unsafe { libc::kill(pid as libc::pid_t, libc::SIGCONT) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
        self.shared.lock().event(EventKind::Sigcont, pid, "resumed");
        Ok(())
    }

    /// Kills one process now (SIGKILL), as a crash would; it is then reaped as killed by signal 9. Only
    /// the process: its tracer, in the same group, must live to write the trace's last lines (the rest
    /// of the group goes when the fleet is dropped).
    pub fn kill(&self, pid: u32) {
        let mut state = self.shared.lock();
        if let Some(i) = state.pids.iter().position(|p| *p == pid)
            && state.outcomes[i].is_none()
        {
            // SAFETY: a plain syscall on our own child, not yet reaped (so its pid is not reused).
            unsafe {
                libc::kill(pid as libc::pid_t, libc::SIGKILL);
            }
            state.event(EventKind::Sigkill, pid, "injected crash");
        }
    }

    /// Waits until `predicate(self)` holds or `timeout` passes (or everything exited and it still does not
    /// hold). Wakes on every process exit; otherwise re-checks after a pause that grows from 0.25 ms to
    /// [`MAX_POLL_PAUSE`] while nothing changes, and starts short again after a wake. The states waited
    /// for (parked at a gate, blocked on a lock, stopped) last until the harness ends them, so a later
    /// look still sees them; polling /proc every millisecond from three scenarios at once cost about
    /// 1 s of the tier's 21.5 s of CPU. Bounded in time and iterations. Returns whether the predicate held.
    pub fn wait_until(&self, mut predicate: impl FnMut(&Fleet) -> bool, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        let mut pause = MIN_POLL_PAUSE;
        for _ in 0..1_000_000 {
            if predicate(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end || self.all_finished() {
                return predicate(self);
            }
            let state = self.shared.lock();
            let step = (end - now).min(pause);
            let woken = self.shared.changed.wait_timeout(state, step).is_ok_and(|(_, t)| !t.timed_out());
            pause = if woken { MIN_POLL_PAUSE } else { (pause * 2).min(MAX_POLL_PAUSE) };
        }
        predicate(self)
    }

    /// Pids of live fleet processes blocked waiting for a lock on a file under `dir` matching `pattern`
    /// (from `/proc/locks`).
    pub fn lock_waiters(&self, dir: &Path, pattern: &FilePattern) -> BTreeSet<u32> {
        let files = proc_locks::lock_file_ids(dir, pattern);
        self.blocked_on_flock(&self.alive(), &files)
    }

    /// Of `pids`, those blocked on a lock of one of `files` (`->` lines of `/proc/locks`).
    pub fn blocked_on_flock(&self, pids: &[u32], files: &BTreeSet<FileId>) -> BTreeSet<u32> {
        proc_locks::read_proc_locks()
            .map(|lines| proc_locks::blocked_on(&lines, pids, files))
            .unwrap_or_default()
    }

    /// Pids of live processes that are stopped (e.g. at a `pause` failpoint).
    pub fn stopped(&self) -> Vec<u32> {
        self.alive().into_iter().filter(|pid| self.is_stopped(*pid)).collect()
    }

    /// Whether the fleet has settled: every live process is either blocked on a lock of a file under
    /// `lock_dir` matching `lock_pattern`, stopped, or one of the `parked_elsewhere` processes the caller
    /// accounts for (e.g. `gate.parked()` of a server gate). Use with [`Fleet::wait_until`] before releasing
    /// a gate, so overlap is established by events.
    pub fn settled(&self, lock_dir: &Path, lock_pattern: &FilePattern, parked_elsewhere: usize) -> bool {
        let alive = self.alive();
        let blocked = self.lock_waiters(lock_dir, lock_pattern);
        let stopped = alive.iter().filter(|pid| !blocked.contains(pid) && self.is_stopped(**pid)).count();
        alive.len() <= blocked.len() + stopped + parked_elsewhere
    }

    /// Waits for every process to end (the watchdog bounds this), and returns the outcomes by index.
    pub fn wait(&mut self) -> Vec<ProcessOutcome> {
        let limit = Instant::now() + self.deadline + Duration::from_secs(30);
        {
            let mut state = self.shared.lock();
            for _ in 0..1_000_000 {
                if state.outcomes.iter().all(Option::is_some) {
                    break;
                }
                let now = Instant::now();
                if now >= limit {
                    break;
                }
                state =
                    self.shared.changed.wait_timeout(state, limit - now).unwrap_or_else(|p| p.into_inner()).0;
            }
        }
        self.shutdown();
        let state = self.shared.lock();
        let released = self.released_unix_ms;
        state
            .outcomes
            .iter()
            .flatten()
            .cloned()
            .map(|o| ProcessOutcome { started_unix_ms: released, ..o })
            .collect()
    }

    /// Kills whatever still runs and joins every thread (each reaps its child).
    fn shutdown(&mut self) {
        // Children still at the start line see EOF once the start pipe's write end is gone.
        self.start_write.take();
        {
            let mut state = self.shared.lock();
            for (pid, outcome) in state.pids.iter().zip(&state.outcomes) {
                if outcome.is_none() {
                    kill_group(*pid);
                }
            }
            state.stop_watchdog = true;
        }
        self.shared.changed.notify_all();
        for handle in self.threads.drain(..) {
            let _ = handle.join();
        }
        if let Some(handle) = self.watchdog.take() {
            let _ = handle.join();
        }
    }
}

impl Drop for Fleet {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests;
