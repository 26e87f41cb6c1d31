//! The file-system trace: runs target processes under `strace` and checks cache-safety properties on
//! what they actually did (which paths were created, written, fsynced, renamed, locked, removed, and
//! when), rather than only on the cache contents they left behind.
//!
//! Why a trace: the content invariants (see [`crate::invariants`]) catch a bug only when a run happens
//! to hit the losing interleaving or a crash at the wrong moment. A trace shows the unsafe *pattern*
//! (a final written in place, a rename without fsync, a lock file unlinked under its holder) on every
//! run, even a lucky one.
//!
//! Flow: [`wrap`] a command (one trace file per process), spawn it, reap it, [`wait_complete`] for the
//! tracer to finish the file, [`read_trace`] each file, [`FsTrace::merge`] them and [`check`] the
//! properties against the [`CacheRoles`] of the cache directories.

mod checks;
mod parse;
mod syntax;

#[cfg(test)]
mod checks_tests;
#[cfg(test)]
pub(crate) mod e2e_tests;

use std::io::{Read, Seek, SeekFrom};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

pub use checks::{CacheRoles, TraceVerdicts, check};
pub use parse::{ParsedTrace, parse_trace, read_trace};

/// Errors of the file-system trace.
#[derive(Debug, thiserror::Error)]
pub enum TraceError {
    /// No `strace` executable on `PATH`.
    #[error("strace is required for the file-system trace: apt-get install strace")]
    StraceMissing,
    /// A trace file could not be read.
    #[error("cannot read trace file {path}: {source}")]
    Read {
        /// The trace file.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// The system calls traced: everything that creates, writes, syncs, renames, links, removes or locks
/// a file, plus `close` (to know when a process let go of a temp or lock file). Reads are left out:
/// they are most of a model loader's calls and no property needs them.
pub const TRACED_SYSCALLS: &str = "openat,open,creat,rename,renameat,renameat2,unlink,unlinkat,rmdir,\
mkdir,mkdirat,link,linkat,symlink,symlinkat,truncate,ftruncate,write,pwrite64,writev,pwritev,fsync,\
fdatasync,flock,fcntl,close,copy_file_range,sendfile";

/// Finds `strace` on `PATH` (an executable regular file).
pub fn strace_path() -> Result<PathBuf, TraceError> {
    let path = std::env::var_os("PATH").ok_or(TraceError::StraceMissing)?;
    std::env::split_paths(&path)
        .map(|dir| dir.join("strace"))
        .find(|candidate| {
            std::fs::metadata(candidate).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
        .ok_or(TraceError::StraceMissing)
}

/// A new command that runs `cmd` under `strace`, writing the trace to `trace_file`.
///
/// `-D` is what makes this a drop-in replacement: the tracer runs as a detached grandchild, so the pid
/// the caller gets from `spawn` *is* the traced program's, and `wait` reports its real exit status or
/// signal (a SIGKILL the scenario sends lands on the program, not on strace). `--seccomp-bpf` stops
/// the tracee only at the traced calls (the overhead is paid on file-system calls, not on every
/// syscall); `-f` follows threads and children; `-ttt -T` give entry timestamps and durations; `-y`
/// annotates every fd with its path; `-s 0` keeps written data out of the trace; `-q` drops
/// attach/detach chatter.
///
/// The environment changes (`env`/`env_remove`) and the current directory of `cmd` are copied; its
/// stdio settings cannot be read back from a `Command`, so the caller sets them on the result. An
/// `env_clear` on `cmd` is not visible either and is not reproduced.
pub fn wrap(cmd: &Command, strace: &Path, trace_file: &Path, inject: Option<&str>) -> Command {
    let mut wrapped = Command::new(strace);
    // The tracer injects no signal under `--seccomp-bpf` (it never sees the syscall's exit): a process
    // whose injection stops it (the holds) is traced without the filter, at the cost of more tracer stops.
    let seccomp = !inject.is_some_and(|i| i.contains("signal="));
    wrapped.arg("-D");
    if seccomp {
        wrapped.arg("--seccomp-bpf");
    }
    wrapped
        .args(["-f", "-q", "-ttt", "-T", "-y", "-s", "0", "-o"])
        .arg(trace_file)
        .arg("-e")
        .arg(format!("trace={TRACED_SYSCALLS}"));
    // Several injections are `;`-separated, one `-e inject=` each.
    for inject in inject.into_iter().flat_map(|i| i.split(';')).filter(|i| !i.is_empty()) {
        wrapped.arg("-e").arg(format!("inject={inject}"));
    }
    wrapped.arg("--").arg(cmd.get_program()).args(cmd.get_args());
    for (key, value) in cmd.get_envs() {
        match value {
            Some(value) => wrapped.env(key, value),
            None => wrapped.env_remove(key),
        };
    }
    if let Some(dir) = cmd.get_current_dir() {
        wrapped.current_dir(dir);
    }
    wrapped
}

/// Waits (at most `deadline`) until `trace_file` holds the exit line of `pid`
/// (`<pid> <ts> +++ exited with N +++` or `+++ killed by SIG... +++`).
///
/// Why: with `-D` the caller reaps the program before the detached tracer has necessarily written its
/// last lines; reading the trace earlier would miss the final operations. Returns false on timeout.
/// Polls with a short sleep (200 µs, doubling up to 10 ms: the tracer usually finishes within a
/// millisecond of the reap, and a fixed 5 ms step cost every traced start 5 ms): this is a bounded
/// wait for an event the kernel does not signal to us.
pub fn wait_complete(trace_file: &Path, pid: u32, deadline: Duration) -> bool {
    let start = Instant::now();
    let mut tail = ExitLineScanner { pid: pid.to_string(), offset: 0, partial: Vec::new() };
    let mut pause = Duration::from_micros(200);
    loop {
        if tail.poll(trace_file) {
            return true;
        }
        if start.elapsed() >= deadline {
            return false;
        }
        std::thread::sleep(pause.min(deadline.saturating_sub(start.elapsed())));
        pause = (pause * 2).min(Duration::from_millis(10));
    }
}

/// Reads a growing trace file incrementally (the file can be megabytes; rereading it on every poll
/// would be quadratic) and looks for the exit line of one pid.
struct ExitLineScanner {
    pid: String,
    offset: u64,
    partial: Vec<u8>,
}

impl ExitLineScanner {
    fn poll(&mut self, trace_file: &Path) -> bool {
        let Ok(mut file) = std::fs::File::open(trace_file) else { return false };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return false;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else { return false };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(last_newline) = self.partial.iter().rposition(|&b| b == b'\n') else { return false };
        let complete: Vec<u8> = self.partial.drain(..=last_newline).collect();
        String::from_utf8_lossy(&complete).lines().any(|line| self.is_exit_line(line))
    }

    fn is_exit_line(&self, line: &str) -> bool {
        let mut fields = line.split_whitespace();
        let (Some(pid), Some(_ts), Some("+++"), Some(what)) =
            (fields.next(), fields.next(), fields.next(), fields.next())
        else {
            return false;
        };
        pid == self.pid && matches!(what, "exited" | "killed") && fields.last() == Some("+++")
    }
}

/// One file-system operation of a traced process.
#[derive(Debug, Clone, PartialEq)]
pub struct FsEvent {
    /// Caller-given index of the traced process (one trace file per process): all threads and
    /// children in one trace file count as one process.
    pub process: usize,
    /// The thread id from the trace line.
    pub pid: u32,
    /// Unix time (seconds, µs resolution) when the call was entered.
    pub entry: f64,
    /// `entry` + the call's duration; for a call that was interrupted by another line
    /// (`<unfinished ...>`), the timestamp of its `resumed` line.
    pub exit: f64,
    /// The call succeeded (non-negative result). Calls still blocked when the process exited or the
    /// trace ended are recorded with `ok: false` and `exit` = that moment.
    pub ok: bool,
    /// The fd's file had already been unlinked (strace's `(deleted)` marker): the op touched an
    /// orphaned inode that no longer has `path` as its name.
    pub deleted: bool,
    /// What was done.
    pub op: FsOp,
    /// How many bytes a successful write wrote (its result), or the length a truncate set: what the
    /// power-loss states ([`crate::crash_states`]) need to rebuild a file as it was at any point.
    pub bytes: Option<u64>,
    /// The explicit file offset of a positional write (`pwrite64`, `pwritev`); `None` writes at the
    /// fd's position.
    pub offset: Option<u64>,
}

/// A file-system operation. Paths are absolute when strace gave enough context (an fd annotation, or
/// a cwd seen on an earlier `AT_FDCWD</cwd>` of the process) and normalised lexically.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FsOp {
    /// `open`/`openat`/`creat` (for a successful open, the path of the returned fd).
    Open { path: PathBuf, create: bool, trunc: bool, excl: bool, write: bool },
    /// `write`, `pwrite64`, `writev`, `pwritev`, and the destination of `copy_file_range`/`sendfile`.
    Write { path: PathBuf },
    /// `truncate`/`ftruncate`.
    Truncate { path: PathBuf },
    /// `rename`/`renameat`/`renameat2`.
    Rename { from: PathBuf, to: PathBuf },
    /// `unlink`, `unlinkat` without `AT_REMOVEDIR`.
    Unlink { path: PathBuf },
    /// `rmdir`, `unlinkat` with `AT_REMOVEDIR`.
    Rmdir { path: PathBuf },
    /// `mkdir`/`mkdirat`.
    Mkdir { path: PathBuf },
    /// `link`/`linkat` (hard link `to` → same inode as `from`).
    Link { from: PathBuf, to: PathBuf },
    /// `symlink`/`symlinkat`; `target` is stored verbatim (it is not resolved by the kernel either).
    Symlink { target: PathBuf, link: PathBuf },
    /// `fsync`/`fdatasync`.
    Fsync { path: PathBuf },
    /// `flock`, or an `fcntl` record lock (`F_SETLK[W]`, `F_OFD_SETLK[W]`).
    Lock { path: PathBuf, mode: LockMode, blocking: bool },
    /// `close` of an fd that named a file.
    Close { path: PathBuf },
    /// The thread exited or was killed (`+++ exited with N +++`, `+++ killed by SIG... +++`).
    Exit,
}

/// What a lock call asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockMode {
    /// `LOCK_EX`, `F_WRLCK`.
    Exclusive,
    /// `LOCK_SH`, `F_RDLCK`.
    Shared,
    /// `LOCK_UN`, `F_UNLCK`.
    Unlock,
}

impl FsOp {
    /// Every path the op names (a symlink's target excluded: it is only text).
    pub fn paths(&self) -> Vec<&Path> {
        match self {
            FsOp::Open { path, .. }
            | FsOp::Write { path }
            | FsOp::Truncate { path }
            | FsOp::Unlink { path }
            | FsOp::Rmdir { path }
            | FsOp::Mkdir { path }
            | FsOp::Fsync { path }
            | FsOp::Lock { path, .. }
            | FsOp::Close { path } => vec![path],
            FsOp::Rename { from, to } | FsOp::Link { from, to } => vec![from, to],
            FsOp::Symlink { link, .. } => vec![link],
            FsOp::Exit => Vec::new(),
        }
    }
}

/// The events of several traced processes, merged and sorted by entry time.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FsTrace {
    /// All events, sorted by `entry` (stable: same-timestamp events keep their file order).
    pub events: Vec<FsEvent>,
}

impl FsTrace {
    /// Merges per-process traces (their `process` indices should differ).
    pub fn merge(traces: Vec<ParsedTrace>) -> FsTrace {
        let mut events: Vec<FsEvent> = traces.into_iter().flat_map(|t| t.events).collect();
        events.sort_by(|a, b| a.entry.total_cmp(&b.entry));
        FsTrace { events }
    }
}
