//! Reading `/proc/locks`: which processes hold or wait for which file locks. Lines with `->` are
//! processes blocked waiting for the lock of the line above; a lock file is identified by device and
//! inode (`maj:min:inode`, major/minor in hex).
//!
//! Used to know, by event rather than by guessing, that a process is parked on a cache lock.

use std::collections::BTreeSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use stress_cache_metadata::FilePatterns;

use crate::snapshot::walk;
use stress_cache_metadata::FilePattern;

/// One line of `/proc/locks`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockLine {
    /// Lock ordinal (first field).
    pub id: u64,
    /// `->` line: this process is blocked waiting for the lock.
    pub blocked: bool,
    /// `FLOCK`, `POSIX`, `OFDLCK`, `LEASE`, ...
    pub kind: String,
    /// `WRITE` (exclusive) rather than `READ` (shared).
    pub write: bool,
    /// Process id (-1 for OFD locks).
    pub pid: i64,
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Inode of the locked file.
    pub inode: u64,
}

/// A file identity as `/proc/locks` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct FileId {
    /// Device major.
    pub major: u64,
    /// Device minor.
    pub minor: u64,
    /// Inode.
    pub inode: u64,
}

impl FileId {
    /// The identity of the file at `path`.
    pub fn of(path: &Path) -> std::io::Result<Self> {
        let meta = std::fs::metadata(path)?;
        Ok(Self::from_dev_ino(meta.dev(), meta.ino()))
    }

    /// From `st_dev` (glibc encoding) and `st_ino`.
    pub fn from_dev_ino(dev: u64, inode: u64) -> Self {
        let major = ((dev >> 8) & 0xfff) | ((dev >> 32) & !0xfff);
        let minor = (dev & 0xff) | ((dev >> 12) & !0xff);
        FileId { major, minor, inode }
    }
}

impl LockLine {
    /// The locked file's identity.
    pub fn file(&self) -> FileId {
        FileId { major: self.major, minor: self.minor, inode: self.inode }
    }
}

/// Parses the text of `/proc/locks` (malformed lines are skipped).
pub fn parse_proc_locks(text: &str) -> Vec<LockLine> {
    text.lines().filter_map(parse_line).collect()
}

fn parse_line(line: &str) -> Option<LockLine> {
    let mut fields = line.split_whitespace().peekable();
    let id = fields.next()?.trim_end_matches(':').parse().ok()?;
    let blocked = fields.peek() == Some(&"->");
    if blocked {
        fields.next();
    }
    let kind = fields.next()?.to_string();
    let _advisory = fields.next()?;
    let write = fields.next()? == "WRITE";
    let pid = fields.next()?.parse().ok()?;
    let mut dev = fields.next()?.split(':');
    let major = u64::from_str_radix(dev.next()?, 16).ok()?;
    let minor = u64::from_str_radix(dev.next()?, 16).ok()?;
    let inode = dev.next()?.parse().ok()?;
    Some(LockLine { id, blocked, kind, write, pid, major, minor, inode })
}

/// Reads and parses `/proc/locks` now.
pub fn read_proc_locks() -> std::io::Result<Vec<LockLine>> {
    // One large read: the kernel generates /proc/locks anew on every read() call, so reading it in
    // small pieces (as read_to_string starts out) while locks come and go can skip or repeat lines.
    use std::io::Read;
    let mut file = std::fs::File::open("/proc/locks")?;
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0;
    for _ in 0..64 {
        let n = file.read(&mut buf[len..])?;
        if n == 0 {
            break;
        }
        len += n;
        if len == buf.len() {
            buf.resize(buf.len() * 2, 0);
        }
    }
    Ok(parse_proc_locks(&String::from_utf8_lossy(&buf[..len])))
}

/// Identities of the files under `dir` (recursively) matching `pattern` (relative to `dir`).
pub fn lock_file_ids(dir: &Path, pattern: &FilePattern) -> BTreeSet<FileId> {
    walk(dir)
        .into_iter()
        .filter(|e| e.is_file && pattern.matches(&e.relative))
        .map(|e| FileId::from_dev_ino(e.dev, e.inode))
        .collect()
}

/// Of `pids`, those blocked (a `->` line) waiting for a lock on one of `files`.
pub fn blocked_on(lines: &[LockLine], pids: &[u32], files: &BTreeSet<FileId>) -> BTreeSet<u32> {
    lines
        .iter()
        .filter(|l| l.blocked && files.contains(&l.file()))
        .filter_map(|l| u32::try_from(l.pid).ok())
        .filter(|pid| pids.contains(pid))
        .collect()
}

/// Of `pids`, those holding (not waiting for) a lock on one of `files`.
pub fn holding(lines: &[LockLine], pids: &[u32], files: &BTreeSet<FileId>) -> BTreeSet<u32> {
    holders(lines, pids, files, |_| true)
}

/// Of `pids`, those holding an exclusive (write) lock on one of `files`.
pub fn holding_exclusively(lines: &[LockLine], pids: &[u32], files: &BTreeSet<FileId>) -> BTreeSet<u32> {
    holders(lines, pids, files, |l| l.write)
}

fn holders(
    lines: &[LockLine],
    pids: &[u32],
    files: &BTreeSet<FileId>,
    kind: impl Fn(&LockLine) -> bool,
) -> BTreeSet<u32> {
    lines
        .iter()
        .filter(|l| !l.blocked && kind(l) && files.contains(&l.file()))
        .filter_map(|l| u32::try_from(l.pid).ok())
        .filter(|pid| pids.contains(pid))
        .collect()
}

/// A file some live process has open for writing (from `/proc/<pid>/fd` and `fdinfo`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenForWrite {
    /// The process.
    pub pid: u32,
    /// The file (as the kernel names it; ` (deleted)` when unlinked).
    pub path: PathBuf,
    /// Opened with `O_APPEND`.
    pub append: bool,
}

/// Files under `dir` that `pids` have open with write access (`O_WRONLY`/`O_RDWR`), except those matching
/// `except` (e.g. lock files, which are opened read-write only to lock them).
pub fn open_for_write(pids: &[u32], dir: &Path, except: Option<&FilePattern>) -> Vec<OpenForWrite> {
    let mut out = Vec::new();
    for &pid in pids {
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { continue };
        for fd in fds.flatten().take(4096) {
            let Ok(path) = std::fs::read_link(fd.path()) else { continue };
            let Ok(relative) = path.strip_prefix(dir) else { continue };
            if except.is_some_and(|p| p.matches(relative)) {
                continue;
            }
            let info =
                std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{}", fd.file_name().to_string_lossy()));
            let flags = info.ok().and_then(|text| {
                let flags = text.lines().find_map(|l| l.strip_prefix("flags:"))?.trim().to_string();
                u32::from_str_radix(&flags, 8).ok()
            });
            if let Some(f) = flags.filter(|f| f & 0b11 != 0) {
                out.push(OpenForWrite { pid, path, append: f & 0o2000 != 0 });
            }
        }
    }
    out
}

/// Live check of "every writer holds the entry's exclusive lock": each of `pids` that has a data file of
/// `dir` open for writing must hold an exclusive (`WRITE`) lock on one of `dir`'s lock files right now.
/// Returns (checks made, witnesses, violations).
pub fn writers_hold_exclusive_locks(
    pids: &[u32],
    dir: &Path,
    files: &FilePatterns,
) -> (usize, Vec<String>, Vec<String>) {
    let roles = stress_cache_metadata::FileRoles::from_validated(files);
    let Some(pattern) = roles.lock.clone() else { return (0, Vec::new(), Vec::new()) };
    let final_ = roles.final_.clone();
    // A final opened to append is a reader bumping its mtime under a shared lock (LRU), not a download.
    let writers: Vec<OpenForWrite> = open_for_write(pids, dir, Some(&pattern))
        .into_iter()
        .filter(|w| !(w.append && w.path.strip_prefix(dir).is_ok_and(|r| final_.matches(r))))
        .collect();
    if writers.is_empty() {
        return (0, Vec::new(), Vec::new());
    }
    let (mut witnesses, mut evidence) = (Vec::new(), Vec::new());
    for w in &writers {
        // A writer parked mid-download without its lock stays so: a violation is confirmed by three
        // reads in a row, so one garbled read of /proc/locks can never make one.
        let holds = (0..3).any(|_| {
            let ids = lock_file_ids(dir, &pattern);
            read_proc_locks()
                .unwrap_or_default()
                .iter()
                .any(|l| !l.blocked && l.write && i64::from(w.pid) == l.pid && ids.contains(&l.file()))
        });
        if holds {
            witnesses.push(format!(
                "pid {} writing {} holds an exclusive lock of the cache",
                w.pid,
                w.path.display()
            ));
        } else {
            evidence.push(format!(
                "pid {} is writing {} without holding an exclusive lock on any lock file of {} ({})",
                w.pid,
                w.path.display(),
                dir.display(),
                pattern.as_str()
            ));
        }
    }
    (writers.len(), witnesses, evidence)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    #[test]
    fn parses_holders_and_waiters() {
        let text = "1: FLOCK  ADVISORY  WRITE 4242 fd:01:1234 0 EOF\n\
                    1: -> FLOCK  ADVISORY  WRITE 4243 fd:01:1234 0 EOF\n\
                    2: POSIX  ADVISORY  READ 99 00:2d:77 0 EOF\n\
                    garbage\n";
        let lines = parse_proc_locks(text);
        assert_eq!(lines.len(), 3);
        assert!(!lines[0].blocked && lines[0].write && lines[0].pid == 4242);
        assert!(lines[1].blocked && lines[1].pid == 4243 && lines[1].major == 0xfd && lines[1].inode == 1234);
        let files = BTreeSet::from([FileId { major: 0xfd, minor: 1, inode: 1234 }]);
        assert_eq!(blocked_on(&lines, &[4242, 4243], &files), BTreeSet::from([4243]));
        assert_eq!(holding(&lines, &[4242, 4243], &files), BTreeSet::from([4242]));
    }

    /// A real holder (flock(1) child) and a real waiter show up in /proc/locks with this file's identity.
    #[test]
    fn sees_a_real_holder_and_waiter() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("m.onnx.lock");
        std::fs::write(&lock, b"").unwrap();
        let file = std::fs::OpenOptions::new().write(true).open(&lock).unwrap();
        file.lock().unwrap();
        let mut waiter = Command::new("flock")
            .arg(&lock)
            .arg("true")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("flock(1) from util-linux");
        let pid = waiter.id();
        let files = lock_file_ids(dir.path(), &FilePattern::new("*.lock"));
        assert_eq!(files.len(), 1);
        let me = std::process::id();
        let mut seen = false;
        for _ in 0..20_000 {
            let lines = read_proc_locks().unwrap();
            assert!(holding(&lines, &[me], &files).contains(&me));
            if blocked_on(&lines, &[pid], &files).contains(&pid) {
                seen = true;
                break;
            }
            std::thread::yield_now();
        }
        file.unlock().unwrap();
        assert!(waiter.wait().unwrap().success());
        assert!(seen, "waiter {pid} never appeared as blocked in /proc/locks");
    }
}
