//! Parses the output of `strace -f -ttt -T -y -s 0` into [`FsEvent`]s.
//!
//! A hand parser rather than a regex: a line is `<tid> <unix ts> <call>(<args>) = <result> <<dur>>`,
//! and the only hard part is splitting the arguments, which needs to respect quoted strings (with
//! escapes and commas), `<path>` annotations and bracketed structs — a small tokenizer ([`super::syntax`]) does
//! that in one pass. Anything that does not fit is counted in [`ParsedTrace::skipped_lines`], never a panic:
//! the trace of a SIGKILLed process can end mid-line.

use std::collections::HashMap;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use super::syntax::{Call, FdArg, decode_string, normalize, parse_call, parse_fd, split_head};
use super::{FsEvent, FsOp, LockMode, TraceError};

/// The events of one trace file.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ParsedTrace {
    /// The file-system events, in the order their calls returned (a resumed call at its `resumed` line).
    pub events: Vec<FsEvent>,
    /// Lines that could not be parsed (garbled, truncated, unknown calls, orphan `resumed` lines).
    pub skipped_lines: usize,
}

/// Parses the text of one trace file; `process` is stored in every event.
pub fn parse_trace(text: &str, process: usize) -> ParsedTrace {
    let mut parser = Parser { process, ..Parser::default() };
    for line in text.lines() {
        parser.line(line);
    }
    parser.finish()
}

/// Reads and parses one trace file (invalid UTF-8 is replaced: strace escapes non-ASCII bytes itself).
pub fn read_trace(path: &Path, process: usize) -> Result<ParsedTrace, TraceError> {
    let bytes =
        std::fs::read(path).map_err(|source| TraceError::Read { path: path.to_path_buf(), source })?;
    Ok(parse_trace(&String::from_utf8_lossy(&bytes), process))
}

#[derive(Default)]
struct Parser {
    process: usize,
    events: Vec<FsEvent>,
    skipped: usize,
    /// Per tid: the entry timestamp and text of a call printed as `<unfinished ...>`.
    pending: HashMap<u32, (f64, String)>,
    /// Per tid: the cwd last shown by an `AT_FDCWD</cwd>` annotation (resolves `rename("a", "b")`).
    cwd: HashMap<u32, PathBuf>,
    /// The cwd last shown by any tid, for tids (new children) not yet seen with one.
    last_cwd: Option<PathBuf>,
    last_ts: f64,
}

enum Outcome {
    Event(FsOp, bool),
    /// A well-formed call that is not a file-system op we record (`fcntl(F_GETFD)`, a pipe write).
    Ignored,
    Garbled,
}

impl Parser {
    fn line(&mut self, line: &str) {
        let line = line.trim_end();
        if line.is_empty() {
            return;
        }
        let Some((pid, ts, rest)) = split_head(line) else {
            self.skipped += 1;
            return;
        };
        self.last_ts = self.last_ts.max(ts);
        if rest.starts_with("--- ") {
            return; // a signal delivery: not a file-system op
        }
        if let Some(status) = rest.strip_prefix("+++ ") {
            if status.starts_with("exited with ") || status.starts_with("killed by ") {
                self.interrupt(pid, ts);
                // `ok` is false for a death by signal: a killed process had no chance to finish.
                self.push(pid, ts, ts, status.starts_with("exited with "), false, FsOp::Exit);
            } else {
                self.skipped += 1;
            }
            return;
        }
        if let Some(resumed) = rest.strip_prefix("<... ") {
            let joined =
                resumed.split_once(" resumed>").and_then(|(name, tail)| match self.pending.remove(&pid) {
                    Some((entry, head)) if head.split('(').next() == Some(name) => Some((entry, head + tail)),
                    _ => None,
                });
            match joined {
                Some((entry, text)) => self.call(pid, entry, Some(ts), &text, false),
                None => self.skipped += 1,
            }
            return;
        }
        if let Some(head) = rest.strip_suffix("<unfinished ...>") {
            if self.pending.insert(pid, (ts, head.trim_end().to_string())).is_some() {
                self.skipped += 1; // the earlier unfinished call never resumed
            }
            return;
        }
        self.call(pid, ts, None, rest, false);
    }

    /// The tid is gone: a call it left unfinished (a blocking lock wait, typically) ends here.
    fn interrupt(&mut self, pid: u32, ts: f64) {
        if let Some((entry, text)) = self.pending.remove(&pid) {
            self.call(pid, entry, Some(ts), &text, true);
        }
    }

    fn finish(mut self) -> ParsedTrace {
        let mut pending: Vec<(u32, (f64, String))> = self.pending.drain().collect();
        pending.sort_by(|a, b| a.1.0.total_cmp(&b.1.0));
        let end = self.last_ts;
        for (pid, (entry, text)) in pending {
            self.call(pid, entry, Some(end), &text, true);
        }
        ParsedTrace { events: self.events, skipped_lines: self.skipped }
    }

    fn push(&mut self, pid: u32, entry: f64, exit: f64, ok: bool, deleted: bool, op: FsOp) {
        self.events.push(FsEvent {
            process: self.process,
            pid,
            entry,
            exit,
            ok,
            deleted,
            op,
            bytes: None,
            offset: None,
        });
    }

    /// `interrupted`: the call never returned; `text` has no result.
    fn call(&mut self, pid: u32, entry: f64, resumed: Option<f64>, text: &str, interrupted: bool) {
        let Some(call) = parse_call(text, interrupted) else {
            self.skipped += 1;
            return;
        };
        for arg in &call.args {
            if arg.starts_with("AT_FDCWD<")
                && let Some(FdArg { path: Some(cwd), .. }) = parse_fd(arg)
            {
                self.cwd.insert(pid, cwd.clone());
                self.last_cwd = Some(cwd);
            }
        }
        let exit = resumed.unwrap_or(entry + call.duration.unwrap_or(0.0));
        match self.op(pid, &call) {
            Outcome::Event(op, deleted) => {
                self.push(pid, entry, exit, call.ok && !interrupted, deleted, op);
                let (bytes, offset) = extent(&call);
                if let Some(event) = self.events.last_mut() {
                    (event.bytes, event.offset) = (bytes, offset);
                }
            }
            Outcome::Ignored => {}
            Outcome::Garbled => self.skipped += 1,
        }
    }

    fn op(&self, pid: u32, call: &Call) -> Outcome {
        let arg = |i: usize| call.args.get(i).copied();
        let path = |dirfd: Option<usize>, i: usize| self.path_arg(pid, dirfd.and_then(arg), arg(i));
        let two =
            |d1: Option<usize>, i1: usize, d2: Option<usize>, i2: usize| Some((path(d1, i1)?, path(d2, i2)?));
        let on_fd = |i: usize, make: &dyn Fn(PathBuf) -> FsOp| match arg(i).map(parse_fd) {
            Some(Some(FdArg { path: Some(p), deleted, .. })) => Outcome::Event(make(p), deleted),
            Some(Some(_)) => Outcome::Ignored,
            _ => Outcome::Garbled,
        };
        let event = |op: Option<FsOp>| op.map_or(Outcome::Garbled, |op| Outcome::Event(op, false));
        match call.name {
            "open" => self.open(pid, call, None, 0, arg(1)),
            "openat" => self.open(pid, call, arg(0), 1, arg(2)),
            "creat" => self.open(pid, call, None, 0, Some("O_CREAT|O_WRONLY|O_TRUNC")),
            "write" | "pwrite64" | "writev" | "pwritev" | "pwritev2" | "sendfile" | "sendfile64" => {
                on_fd(0, &|path| FsOp::Write { path })
            }
            "copy_file_range" => on_fd(2, &|path| FsOp::Write { path }),
            "ftruncate" => on_fd(0, &|path| FsOp::Truncate { path }),
            "truncate" => event(path(None, 0).map(|path| FsOp::Truncate { path })),
            "fsync" | "fdatasync" => on_fd(0, &|path| FsOp::Fsync { path }),
            "close" => on_fd(0, &|path| FsOp::Close { path }),
            "rename" => event(two(None, 0, None, 1).map(|(from, to)| FsOp::Rename { from, to })),
            "renameat" | "renameat2" => {
                event(two(Some(0), 1, Some(2), 3).map(|(from, to)| FsOp::Rename { from, to }))
            }
            "link" => event(two(None, 0, None, 1).map(|(from, to)| FsOp::Link { from, to })),
            "linkat" => event(two(Some(0), 1, Some(2), 3).map(|(from, to)| FsOp::Link { from, to })),
            "unlink" => event(path(None, 0).map(|path| FsOp::Unlink { path })),
            "unlinkat" => event(path(Some(0), 1).map(|path| match arg(2) {
                Some(flags) if flags.contains("AT_REMOVEDIR") => FsOp::Rmdir { path },
                _ => FsOp::Unlink { path },
            })),
            "rmdir" => event(path(None, 0).map(|path| FsOp::Rmdir { path })),
            "mkdir" => event(path(None, 0).map(|path| FsOp::Mkdir { path })),
            "mkdirat" => event(path(Some(0), 1).map(|path| FsOp::Mkdir { path })),
            "symlink" | "symlinkat" => {
                let link = if call.name == "symlink" { path(None, 1) } else { path(Some(1), 2) };
                let target = arg(0).and_then(decode_string).map(|t| PathBuf::from(OsString::from_vec(t)));
                event(target.zip(link).map(|(target, link)| FsOp::Symlink { target, link }))
            }
            "flock" => match arg(1).map(flock_mode) {
                Some(Some((mode, blocking))) => on_fd(0, &|path| FsOp::Lock { path, mode, blocking }),
                _ => Outcome::Garbled,
            },
            "fcntl" | "fcntl64" => match fcntl_lock(arg(1), arg(2)) {
                Some((mode, blocking)) => on_fd(0, &|path| FsOp::Lock { path, mode, blocking }),
                None => Outcome::Ignored,
            },
            _ => Outcome::Garbled,
        }
    }

    /// An open: the path is the returned fd's annotation when there is one (what later writes and
    /// closes of that fd will show), else the argument resolved against its directory.
    fn open(&self, pid: u32, call: &Call, dirfd: Option<&str>, name: usize, flags: Option<&str>) -> Outcome {
        let Some(flags) = flags else { return Outcome::Garbled };
        let has = |f: &str| flags.split('|').any(|x| x.trim() == f);
        let annotated = call.ret_path.as_ref().and_then(|r| r.path.clone());
        let Some(path) = annotated.or_else(|| self.path_arg(pid, dirfd, call.args.get(name).copied())) else {
            return Outcome::Garbled;
        };
        let write = has("O_WRONLY") || has("O_RDWR");
        let op =
            FsOp::Open { path, create: has("O_CREAT"), trunc: has("O_TRUNC"), excl: has("O_EXCL"), write };
        Outcome::Event(op, false)
    }

    /// A path argument (`"name"`) made absolute with its dirfd's annotation (or the tid's known cwd
    /// for the non-`at` calls and a bare `AT_FDCWD`); left relative when no base is known.
    /// `linkat(fd, "", ..., AT_EMPTY_PATH)` names the fd itself.
    fn path_arg(&self, pid: u32, dirfd: Option<&str>, name: Option<&str>) -> Option<PathBuf> {
        let relative = PathBuf::from(OsString::from_vec(decode_string(name?)?));
        if relative.is_absolute() {
            return Some(normalize(&relative));
        }
        let base = match dirfd.map(parse_fd) {
            Some(Some(FdArg { path: Some(dir), .. })) => Some(dir),
            Some(Some(FdArg { cwd: true, .. })) | None => {
                self.cwd.get(&pid).or(self.last_cwd.as_ref()).cloned()
            }
            Some(_) => None,
        };
        Some(match base {
            Some(base) => normalize(&base.join(relative)),
            None => relative,
        })
    }
}

/// The extent of a write-like or truncate call: `(bytes written or length set, explicit offset)`.
fn extent(call: &Call) -> (Option<u64>, Option<u64>) {
    let number = |i: usize| call.args.get(i).and_then(|a| a.trim().parse::<u64>().ok());
    let written = call.value.and_then(|v| u64::try_from(v).ok());
    match call.name {
        "write" | "writev" | "sendfile" | "sendfile64" | "copy_file_range" => (written, None),
        "pwrite64" | "pwritev" | "pwritev2" => (written, number(3)),
        "ftruncate" | "truncate" => (number(1), None),
        _ => (None, None),
    }
}

/// `LOCK_EX|LOCK_NB` → (mode, blocking).
fn flock_mode(ops: &str) -> Option<(LockMode, bool)> {
    let has = |f: &str| ops.split('|').any(|x| x.trim() == f);
    let mode = if has("LOCK_UN") {
        LockMode::Unlock
    } else if has("LOCK_EX") {
        LockMode::Exclusive
    } else if has("LOCK_SH") {
        LockMode::Shared
    } else {
        return None;
    };
    Some((mode, !has("LOCK_NB")))
}

/// The lock commands of `fcntl` (`F_SETLK[W]`, `F_OFD_SETLK[W]`, the `64` variants) with their
/// `l_type`; None for every other `fcntl` (`F_GETFD`, `F_SETFL`, `F_GETLK`, ...).
fn fcntl_lock(cmd: Option<&str>, lock: Option<&str>) -> Option<(LockMode, bool)> {
    let blocking = match cmd?.trim_end_matches("64") {
        "F_SETLK" | "F_OFD_SETLK" => false,
        "F_SETLKW" | "F_OFD_SETLKW" => true,
        _ => return None,
    };
    let lock = lock?;
    let mode = if lock.contains("l_type=F_WRLCK") {
        LockMode::Exclusive
    } else if lock.contains("l_type=F_RDLCK") {
        LockMode::Shared
    } else if lock.contains("l_type=F_UNLCK") {
        LockMode::Unlock
    } else {
        return None;
    };
    Some((mode, blocking))
}

#[cfg(test)]
#[path = "parse_tests.rs"]
mod tests;
