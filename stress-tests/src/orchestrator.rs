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

fn pipe() -> Result<(OwnedFd, OwnedFd), FleetError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(FleetError::Io {
            action: "pipe2",
            path: "start pipe".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    // SAFETY: plain syscalls; the pid is our own child (not yet reaped, so not reused).
    unsafe {
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

/// Milliseconds since the Unix epoch, now.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// The child side of the start line. Runs between fork and exec: only async-signal-safe calls, no allocation.
fn park_at_start_line(index: u32, start_r: i32, start_w: i32, ready_w: i32) -> std::io::Result<()> {
    // SAFETY: raw syscalls on descriptors inherited from the parent; buffers are on the stack.
    unsafe {
        libc::close(start_w);
        // Die with the harness: the forking thread is the one that reaps this child, so it lives exactly as
        // long as the child is ours; if the whole test process dies (even by SIGKILL), so does the child.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        let pid = libc::getpid() as u32;
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&index.to_le_bytes());
        msg[4..].copy_from_slice(&pid.to_le_bytes());
        if libc::write(ready_w, msg.as_ptr().cast(), msg.len()) != msg.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(ready_w);
        let mut byte = 0u8;
        for _ in 0..10_000 {
            let n = libc::read(start_r, (&raw mut byte).cast(), 1);
            if n == 1 {
                libc::close(start_r);
                return Ok(());
            }
            if n == 0 {
                // The harness went away without releasing us.
                return Err(std::io::Error::from_raw_os_error(libc::ECANCELED));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::EINTR))
    }
}

fn reap(pid: u32) -> (Option<i32>, Option<i32>, Option<u64>) {
    for _ in 0..10_000 {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on our own child.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if rc == pid as libc::pid_t {
            let rss = Some(usage.ru_maxrss.max(0) as u64);
            if libc::WIFEXITED(status) {
                return (Some(libc::WEXITSTATUS(status)), None, rss);
            }
            if libc::WIFSIGNALED(status) {
                return (None, Some(libc::WTERMSIG(status)), rss);
            }
            continue;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    (None, None, None)
}

impl Fleet {
    /// Forks every process, waits until all are parked at the start line, releases them together and
    /// returns. stdout/stderr go to `<dir>/<index>-<role>.stdout|.stderr`. The watchdog SIGKILLs the
    /// process group of anything still running `deadline` after the release and marks it hung.
    pub fn start(dir: &Path, processes: Vec<FleetProcess>, deadline: Duration) -> Result<Fleet, FleetError> {
        std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        let n = processes.len();
        let (start_r, start_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outcomes: vec![None; n],
                pids: vec![0; n],
                hung: BTreeSet::new(),
                released_at: None,
                stop_watchdog: false,
                events: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let mut fleet = Fleet {
            shared: shared.clone(),
            threads: Vec::with_capacity(n),
            watchdog: None,
            start_write: Some(start_w),
            roles: processes.iter().map(|p| p.role.clone()).collect(),
            released_unix_ms: 0,
            deadline,
            dir: dir.to_path_buf(),
        };
        let raw_start_w = fleet.start_write.as_ref().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        let (raw_start_r, raw_ready_w) = (start_r.as_raw_fd(), ready_w.as_raw_fd());
        for (index, process) in processes.into_iter().enumerate() {
            let FleetProcess { role, mut command, observe_printed_path, nofile_limit, no_dac_override } =
                process;
            let stdout_path = dir.join(format!("{index}-{role}.stdout"));
            let stderr_path = dir.join(format!("{index}-{role}.stderr"));
            let open = |path: &Path| {
                File::create(path).map_err(|source| FleetError::Io {
                    action: "create",
                    path: path.display().to_string(),
                    source,
                })
            };
            command.stdout(Stdio::from(open(&stdout_path)?)).stderr(Stdio::from(open(&stderr_path)?));
            command.process_group(0);
            let idx = index as u32;
            // SAFETY: the closure only performs async-signal-safe syscalls on inherited descriptors.
            unsafe {
                command.pre_exec(move || {
                    if let Some(n) = nofile_limit {
                        // Lowered after fork, before exec: the parked child's inherited pipe descriptors
                        // stay usable (a limit only refuses new descriptors).
                        let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if no_dac_override {
                        drop_dac_override()?;
                    }
                    park_at_start_line(idx, raw_start_r, raw_start_w, raw_ready_w)
                });
            }
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("fleet-{index}"))
                .spawn(move || {
                    run_one(shared, index, role, command, (stdout_path, stderr_path), observe_printed_path)
                })
                .map_err(|source| FleetError::Io {
                    action: "spawn thread for",
                    path: format!("process {index}"),
                    source,
                })?;
            fleet.threads.push(handle);
        }

        // Collect (index, pid) from every parked child.
        let setup_deadline = Instant::now() + Duration::from_secs(60);
        let mut ready = 0usize;
        let mut buf = Vec::with_capacity(n * 8);
        for _ in 0..100_000 {
            let spawn_failures = fleet.shared.lock().outcomes.iter().filter(|o| o.is_some()).count();
            if ready + spawn_failures >= n || Instant::now() >= setup_deadline {
                break;
            }
            let mut pfd = libc::pollfd { fd: ready_r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 20) };
            if rc <= 0 {
                continue;
            }
            let mut chunk = [0u8; 512];
            // SAFETY: reading into a stack buffer from our pipe.
            let got = unsafe { libc::read(ready_r.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if got > 0 {
                buf.extend_from_slice(&chunk[..got as usize]);
                let mut state = fleet.shared.lock();
                while buf.len() >= 8 {
                    let msg: Vec<u8> = buf.drain(..8).collect();
                    let index = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
                    let pid = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
                    if index < n {
                        state.pids[index] = pid;
                        ready += 1;
                    }
                }
            }
        }
        drop(ready_w);
        drop(ready_r);
        drop(start_r);
        let spawn_failures = fleet.shared.lock().outcomes.iter().filter(|o| o.is_some()).count();
        if ready + spawn_failures < n {
            return Err(FleetError::NotReady { ready, total: n, waited: Duration::from_secs(60) });
        }

        // Release everyone at once.
        fleet.released_unix_ms = unix_ms_now();
        fleet.shared.lock().released_at = Some(Instant::now());
        if let Some(start_w) = fleet.start_write.take() {
            let bytes = vec![b'g'; n];
            let mut written = 0;
            for _ in 0..10_000 {
                if written >= n {
                    break;
                }
                // SAFETY: writing from a live buffer to our pipe.
                let rc = unsafe {
                    libc::write(start_w.as_raw_fd(), bytes[written..].as_ptr().cast(), n - written)
                };
                if rc > 0 {
                    written += rc as usize;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
        }
        let watchdog_shared = fleet.shared.clone();
        fleet.watchdog = Some(
            std::thread::Builder::new()
                .name("fleet-watchdog".into())
                .spawn(move || watchdog(watchdog_shared, deadline))
                .map_err(|source| FleetError::Io {
                    action: "spawn thread for",
                    path: "watchdog".into(),
                    source,
                })?,
        );
        Ok(fleet)
    }

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
    /// hold). Wakes on every process exit and otherwise re-checks every millisecond (cheap /proc reads);
    /// bounded in time and iterations. Returns whether the predicate held.
    pub fn wait_until(&self, mut predicate: impl FnMut(&Fleet) -> bool, timeout: Duration) -> bool {
        let end = Instant::now() + timeout;
        for _ in 0..1_000_000 {
            if predicate(self) {
                return true;
            }
            let now = Instant::now();
            if now >= end || self.all_finished() {
                return predicate(self);
            }
            let state = self.shared.lock();
            let step = (end - now).min(Duration::from_millis(1));
            drop(self.shared.changed.wait_timeout(state, step));
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

fn run_one(
    shared: Arc<Shared>,
    index: usize,
    role: String,
    mut command: Command,
    (stdout_path, stderr_path): (PathBuf, PathBuf),
    observe_printed_path: Option<PathBuf>,
) {
    let spawned = command.spawn();
    let mut outcome = ProcessOutcome {
        index,
        role,
        pid: 0,
        exit_code: None,
        signal: None,
        hung: false,
        wall: Duration::ZERO,
        started_unix_ms: 0,
        peak_rss_kb: None,
        stdout_path,
        stderr_path,
        spawn_error: None,
        printed_path: None,
    };
    match spawned {
        Ok(child) => {
            let pid = child.id();
            drop(child);
            outcome.pid = pid;
            let (code, signal, rss) = reap(pid);
            outcome.exit_code = code;
            outcome.signal = signal;
            outcome.peak_rss_kb = rss;
            // At once, before the outcome is published: what the path held when the process said so.
            if let (Some(cwd), Some(0)) = (&observe_printed_path, code) {
                outcome.printed_path = Some(PrintedPath::observe(&outcome.stdout_path, cwd));
            }
        }
        Err(e) => {
            outcome.spawn_error = Some(e.to_string());
        }
    }
    let mut state = shared.lock();
    if outcome.pid == 0 {
        outcome.pid = state.pids[index];
    }
    outcome.wall = state.released_at.map(|t| t.elapsed()).unwrap_or_default();
    outcome.hung = state.hung.contains(&index);
    state.outcomes[index] = Some(outcome);
    drop(state);
    shared.changed.notify_all();
}

fn watchdog(shared: Arc<Shared>, deadline: Duration) {
    let end = Instant::now() + deadline;
    let mut state = shared.lock();
    for _ in 0..1_000_000 {
        if state.stop_watchdog || state.outcomes.iter().all(Option::is_some) {
            return;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        state = shared.changed.wait_timeout(state, end - now).unwrap_or_else(|p| p.into_inner()).0;
    }
    if state.stop_watchdog {
        return;
    }
    let unfinished: Vec<(usize, u32)> = state
        .outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_none())
        .map(|(i, _)| (i, state.pids[i]))
        .collect();
    for (index, pid) in unfinished {
        state.hung.insert(index);
        state.event(EventKind::Sigkill, pid, "watchdog: still running at the deadline");
        log::warn!(
            "watchdog: pid {pid} (#{index}) still running after {deadline:?}; killing its process group"
        );
        kill_group(pid);
    }
}

/// Whether `pid` is stopped by a stop signal (job-control stop). Under the file-system tracer a process
/// shows state `t` both in such a stop and, for microseconds, at every traced syscall; the tracer traces
/// no `kill`/`tkill`/`tgkill`, so a `t` stop inside one of those (a process that raised SIGSTOP on
/// itself, as a pause failpoint does) or outside any syscall (stopped from outside) is the job-control
/// stop, and a `t` inside any other syscall is the tracer at work.
pub fn is_job_stopped(pid: u32) -> bool {
    match proc_state(pid) {
        Some('T') => true,
        Some('t') => {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else { return false };
            match text.split_whitespace().next() {
                Some("-1") => true,
                Some(nr) => nr
                    .parse::<i64>()
                    .is_ok_and(|nr| nr == libc::SYS_kill || nr == libc::SYS_tkill || nr == libc::SYS_tgkill),
                None => false,
            }
        }
        _ => false,
    }
}

/// Whether every thread of `pid` is asleep waiting for input: in `read`/`recv*` or a readiness wait
/// (`poll`, `select`, `epoll_wait`), or on a futex (a thread waiting for another one that does). A process
/// whose download is parked at a server gate ends up here once it has handled every byte it was sent —
/// whether it streams to disk or buffers in memory — so this is the event "it can make no more progress",
/// without guessing how long that takes.
pub fn blocked_waiting_for_input(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let waits = [
        libc::SYS_read,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_futex,
    ];
    let mut any = false;
    for task in tasks.flatten().take(1024) {
        let path = task.path();
        let state = std::fs::read_to_string(path.join("stat")).ok().and_then(|stat| {
            let after = stat.rfind(')').map(|i| stat[i + 1..].to_string())?;
            after.split_whitespace().next()?.chars().next()
        });
        if state != Some('S') {
            return false;
        }
        let nr = std::fs::read_to_string(path.join("syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<i64>().ok()));
        if !nr.is_some_and(|nr| waits.contains(&nr)) {
            return false;
        }
        any = true;
    }
    any
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `t`, `Z`, ...).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sh(script: &str) -> FleetProcess {
        let mut c = Command::new("sh");
        c.arg("-c").arg(script);
        FleetProcess::new("sh", c)
    }

    fn exists(pid: u32) -> bool {
        // SAFETY: signal 0 only probes.
        unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
    }

    #[test]
    fn records_exit_codes_signals_output_and_rss() {
        let dir = tempfile::tempdir().unwrap();
        let mut fleet = Fleet::start(
            dir.path(),
            vec![sh("echo out; echo err >&2; exit 3"), sh("kill -9 $$"), sh("exit 0")],
            Duration::from_secs(20),
        )
        .unwrap();
        let outcomes = fleet.wait();
        assert_eq!(outcomes.len(), 3);
        assert_eq!(outcomes[0].exit_code, Some(3));
        assert_eq!(outcomes[0].stdout().trim(), "out");
        assert_eq!(outcomes[0].stderr().trim(), "err");
        assert_eq!(outcomes[1].signal, Some(9));
        assert_eq!(outcomes[1].exit_code, None);
        assert_eq!(outcomes[2].exit_code, Some(0));
        assert!(outcomes.iter().all(|o| !o.hung && o.peak_rss_kb.unwrap_or(0) > 0 && o.pid != 0));
    }

    /// All processes are released together: each records the time it started; the spread is far below
    /// the time it takes to fork them one by one.
    #[test]
    fn processes_start_at_the_same_instant() {
        let dir = tempfile::tempdir().unwrap();
        let n = 12;
        let processes = (0..n).map(|_| sh("date +%s%N")).collect();
        let mut fleet = Fleet::start(dir.path(), processes, Duration::from_secs(20)).unwrap();
        let released_ns = u128::from(fleet.released_unix_ms()) * 1_000_000;
        let outcomes = fleet.wait();
        let starts: Vec<u128> = outcomes.iter().map(|o| o.stdout().trim().parse().unwrap()).collect();
        assert!(starts.iter().all(|s| *s + 5_000_000 >= released_ns), "nobody ran before the release");
        let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
        assert!(spread < 1_500_000_000, "start spread {spread} ns");
    }

    #[test]
    fn watchdog_kills_the_whole_group_of_a_hung_process() {
        let dir = tempfile::tempdir().unwrap();
        // The shell starts a grandchild in the same group and both block forever on a pipe nobody writes.
        let mut fleet = Fleet::start(
            dir.path(),
            vec![sh("sleep 1000 & echo $!; wait"), sh("exit 0")],
            Duration::from_millis(800),
        )
        .unwrap();
        let grandchild = fleet.wait_until(
            |f| !f.dir().join("0-sh.stdout").metadata().map(|m| m.len() == 0).unwrap_or(true),
            Duration::from_secs(10),
        );
        assert!(grandchild);
        let outcomes = fleet.wait();
        assert!(outcomes[0].hung, "{:?}", outcomes[0]);
        assert!(!outcomes[1].hung);
        let gpid: u32 = outcomes[0].stdout().trim().parse().unwrap();
        // SIGKILL is delivered at once but the exit takes a moment: bounded wait for it (it is not our
        // child, so no wait4; init reaps it, or it stays a zombie in a container without one).
        let end = Instant::now() + Duration::from_secs(10);
        let mut gone = false;
        for _ in 0..10_000_000 {
            gone = !exists(gpid) || proc_state(gpid) == Some('Z');
            if gone || Instant::now() >= end {
                break;
            }
            std::thread::yield_now();
        }
        assert!(gone, "grandchild {gpid} survived the group kill: state {:?}", proc_state(gpid));
    }

    #[test]
    fn stop_resume_and_drop_leaves_no_child() {
        let dir = tempfile::tempdir().unwrap();
        let fleet = Fleet::start(
            dir.path(),
            vec![sh("kill -STOP $$; exit 7"), sh("exec sleep 1000")],
            Duration::from_secs(30),
        )
        .unwrap();
        let pids = fleet.pids();
        assert!(fleet.wait_until(|f| f.is_stopped(pids[0]), Duration::from_secs(10)), "never stopped");
        assert_eq!(fleet.alive().len(), 2);
        fleet.resume(pids[0]).unwrap();
        assert!(fleet.wait_until(|f| f.alive() == vec![pids[1]], Duration::from_secs(10)));
        drop(fleet);
        for pid in pids {
            assert!(!exists(pid), "pid {pid} survived (or is an unreaped zombie) after drop");
        }
    }

    /// The timeline of the report: a stop is recorded once when first seen (however often it is polled),
    /// then the SIGCONT and SIGKILL sent, each on its process, in order; every outcome carries the release.
    #[test]
    fn stops_seen_and_signals_sent_are_recorded_once_each_on_their_process() {
        let dir = tempfile::tempdir().unwrap();
        let mut fleet = Fleet::start(
            dir.path(),
            vec![sh("kill -STOP $$; exec sleep 1000"), sh("exec sleep 1000")],
            Duration::from_secs(30),
        )
        .unwrap();
        let pids = fleet.pids();
        assert!(fleet.wait_until(|f| f.is_stopped(pids[0]), Duration::from_secs(10)), "never stopped");
        assert!(fleet.is_stopped(pids[0]), "polled again while stopped");
        fleet.resume(pids[0]).unwrap();
        fleet.kill(pids[0]);
        fleet.kill(pids[1]);
        let outcomes = fleet.wait();
        let events: Vec<(EventKind, Option<u32>)> = fleet.events().iter().map(|e| (e.kind, e.pid)).collect();
        assert_eq!(
            events,
            vec![
                (EventKind::Sigstop, Some(pids[0])),
                (EventKind::Sigcont, Some(pids[0])),
                (EventKind::Sigkill, Some(pids[0])),
                (EventKind::Sigkill, Some(pids[1])),
            ]
        );
        assert!(fleet.events().windows(2).all(|w| w[0].unix_ms <= w[1].unix_ms));
        assert!(
            outcomes.iter().all(|o| o.started_unix_ms == fleet.released_unix_ms() && o.started_unix_ms > 0)
        );
    }

    #[test]
    fn drop_during_a_panic_reaps_everything() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().to_path_buf();
        let pids = std::thread::spawn(move || {
            let fleet = Fleet::start(
                &path,
                vec![sh("exec sleep 1000"), sh("exec sleep 1000")],
                Duration::from_secs(60),
            )
            .unwrap();
            let pids = fleet.pids();
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                let _f = fleet;
                panic!("scenario failed");
            }))
            .unwrap_err();
            pids
        })
        .join()
        .unwrap();
        for pid in pids {
            assert!(!exists(pid), "pid {pid} survived a panicking scenario");
        }
    }

    #[test]
    fn spawn_failure_is_an_outcome_not_a_hang() {
        let dir = tempfile::tempdir().unwrap();
        let missing = FleetProcess::new("missing", Command::new("/nonexistent/program"));
        let mut fleet =
            Fleet::start(dir.path(), vec![missing, sh("exit 0")], Duration::from_secs(20)).unwrap();
        let outcomes = fleet.wait();
        assert!(outcomes[0].spawn_error.is_some(), "{:?}", outcomes[0]);
        assert_eq!(outcomes[1].exit_code, Some(0));
    }

    #[test]
    fn lock_waiters_come_from_proc_locks() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let lock = cache.join("m.onnx.lock");
        let held = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).unwrap();
        held.lock().unwrap();
        let mut c = Command::new("flock");
        c.arg(&lock).arg("true");
        let mut fleet = Fleet::start(
            &dir.path().join("fleet"),
            vec![FleetProcess::new("waiter", c)],
            Duration::from_secs(20),
        )
        .unwrap();
        let pid = fleet.pids()[0];
        assert!(fleet.wait_until(
            |f| f.lock_waiters(&cache, &FilePattern::new("*.lock")).contains(&pid),
            Duration::from_secs(10)
        ));
        held.unlock().unwrap();
        assert_eq!(fleet.wait()[0].exit_code, Some(0));
    }

    /// `settled`: every live process is blocked on a cache lock, stopped, or accounted for elsewhere.
    #[test]
    fn settled_counts_lock_waiters_stopped_and_parked_elsewhere() {
        let dir = tempfile::tempdir().unwrap();
        let cache = dir.path().join("cache");
        std::fs::create_dir_all(&cache).unwrap();
        let lock = cache.join("m.onnx.lock");
        let held = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).unwrap();
        held.lock().unwrap();
        let mut waiter = Command::new("flock");
        waiter.arg(&lock).arg("true");
        let processes = vec![FleetProcess::new("waiter", waiter), sh("kill -STOP $$"), sh("exec sleep 1000")];
        let fleet = Fleet::start(&dir.path().join("fleet"), processes, Duration::from_secs(30)).unwrap();
        assert!(
            fleet.wait_until(|f| f.settled(&cache, &FilePattern::new("*.lock"), 1), Duration::from_secs(10))
        );
        assert!(
            !fleet.settled(&cache, &FilePattern::new("*.lock"), 0),
            "the sleeping process is neither blocked nor stopped"
        );
        assert_eq!(fleet.stopped(), vec![fleet.pids()[1]]);
        held.unlock().unwrap();
    }
}
