//! `tiny-cache`: a second, deliberately different stress target, written for the suite's own tests.
//!
//! It proves the suite drives *any* program through its declaration (`stress-tests/targets/tiny-cache.toml`)
//! and not beaker's shape: inputs come as arguments instead of environment variables, the cache has
//! subdirectories (`objects/`, `tmp/`, `locks/`), there is no checksum option, no failpoints, no mutants
//! and no metadata file. It is still a correct cache: one flock per object, a unique temp file in the same
//! file system, Content-Length check, fsync, rename, fsync of the directory.
//!
//! Usage: `tiny-cache get --from URL --store DIR --out FILE`
//! Exit codes: 0 ok, 1 network, 2 local I/O, 64 usage.
//!
//! The suite's self-check (`tests/self_check.rs`) also needs a cache that makes one textbook mistake at a
//! time, to show each file-system invariant failing on a real process: `TINY_CACHE_BUG` switches one on
//! (`copy-into-final`, `no-fsync`, `unlink-lock`, `no-lock`), and so do the tests of the fault and
//! kill scenarios (`cache-error-body`, `resume-append`, `keep-dead-temps`, `print-temp-path`, `o-excl-lock`). Unset, the
//! cache is correct.
//!
//! `TINY_CACHE_LOCK=pid` locks by a lock *file* instead of flock (`targets/tiny-cache-pidlock.toml`,
//! `lock-kind = "exists"`): `locks/<key>.lock.pid` created with `O_EXCL`, holding the holder's pid, and
//! broken when that pid is dead — correctly, where the bug `o-excl-lock` never breaks it.
//!
//! On success it prints the path of the cached object on stdout (`prints-path = true` in its spec).

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

/// Attempts per download; every loop in this program is bounded.
const ATTEMPTS: u32 = 3;

enum Failure {
    Usage(String),
    Network(String),
    Io(String, io::Error),
}

fn main() -> ExitCode {
    match run(std::env::args().skip(1).collect()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(Failure::Usage(m)) => {
            eprintln!("tiny-cache: usage: {m}");
            ExitCode::from(64)
        }
        Err(Failure::Network(m)) => {
            eprintln!("tiny-cache: network: {m}");
            ExitCode::from(1)
        }
        Err(Failure::Io(what, e)) => {
            eprintln!("tiny-cache: {what}: {e}");
            ExitCode::from(2)
        }
    }
}

/// The textbook mistake `TINY_CACHE_BUG` switches on, if any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Bug {
    /// Write the body straight under the final name.
    CopyIntoFinal,
    /// Rename without fsyncing the bytes or the directory.
    NoFsync,
    /// Delete the lock file while releasing it (waiters hold the old inode).
    UnlinkLock,
    /// Take no lock.
    NoLock,
    /// Store the body of a non-200 response as the object and exit 0.
    CacheErrorBody,
    /// Keep a dead writer's temp file and resume it: ask for the rest with `Range` and append whatever
    /// comes back (a 200 with the whole body too); take 416 as "already complete".
    ResumeAppend,
    /// Never remove a dead writer's temp files.
    KeepDeadTemps,
    /// Print the temp file's path instead of the object's.
    PrintTempPath,
    /// Lock by creating `locks/<key>.lock.pid` with `O_EXCL` (held while it exists) instead of flock,
    /// waiting a bounded time for it: a holder killed before its clean-up leaves it behind for good.
    ExclusiveCreateLock,
}

fn bug() -> Result<Option<Bug>, Failure> {
    match std::env::var("TINY_CACHE_BUG").ok().as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some("copy-into-final") => Ok(Some(Bug::CopyIntoFinal)),
        Some("no-fsync") => Ok(Some(Bug::NoFsync)),
        Some("unlink-lock") => Ok(Some(Bug::UnlinkLock)),
        Some("no-lock") => Ok(Some(Bug::NoLock)),
        Some("cache-error-body") => Ok(Some(Bug::CacheErrorBody)),
        Some("resume-append") => Ok(Some(Bug::ResumeAppend)),
        Some("keep-dead-temps") => Ok(Some(Bug::KeepDeadTemps)),
        Some("print-temp-path") => Ok(Some(Bug::PrintTempPath)),
        Some("o-excl-lock") => Ok(Some(Bug::ExclusiveCreateLock)),
        Some(other) => Err(Failure::Usage(format!("unknown TINY_CACHE_BUG {other}"))),
    }
}

fn run(args: Vec<String>) -> Result<(), Failure> {
    let bug = bug()?;
    let (mut url, mut store, mut out) = (None, None, None);
    let mut it = args.iter();
    if it.next().map(String::as_str) != Some("get") {
        return Err(Failure::Usage("tiny-cache get --from URL --store DIR --out FILE".into()));
    }
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| Failure::Usage(format!("{flag} needs a value")))?;
        match flag.as_str() {
            "--from" => url = Some(value.clone()),
            "--store" => store = Some(PathBuf::from(value)),
            "--out" => out = Some(PathBuf::from(value)),
            other => return Err(Failure::Usage(format!("unknown flag {other}"))),
        }
    }
    let (url, store, out) = match (url, store, out) {
        (Some(u), Some(s), Some(o)) => (u, s, o),
        _ => return Err(Failure::Usage("--from, --store and --out are required".into())),
    };
    let key = fnv1a_hex(url.as_bytes());
    let io = |what: &str| {
        let what = what.to_string();
        move |e| Failure::Io(what, e)
    };
    for sub in ["objects", "tmp", "locks"] {
        fs::create_dir_all(store.join(sub)).map_err(io("create store"))?;
    }
    let object = store.join("objects").join(format!("{key}.bin"));
    let lock_path = store.join("locks").join(format!("{key}.lock"));
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io("open lock"))?;
    // One writer per object; the kernel releases the lock if this process dies.
    let pid_lock = store.join("locks").join(format!("{key}.lock.pid"));
    let pid_mode = std::env::var("TINY_CACHE_LOCK").is_ok_and(|v| v.trim() == "pid");
    if bug != Some(Bug::ExclusiveCreateLock) && pid_mode {
        take_pid_lock(&pid_lock, &store.join("locks").join(format!("{key}.break")))?;
    } else if bug == Some(Bug::ExclusiveCreateLock) {
        // The bug: a lock that is a file's existence dies with nobody.
        let mut taken = false;
        for _ in 0..200 {
            if OpenOptions::new().write(true).create_new(true).open(&pid_lock).is_ok() {
                taken = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        if !taken {
            return Err(Failure::Io(
                "lock".into(),
                io::Error::other(format!("{} is held", pid_lock.display())),
            ));
        }
    } else if bug != Some(Bug::NoLock) {
        lock.lock().map_err(io("lock"))?;
    }
    let resume = bug == Some(Bug::ResumeAppend);
    let tmp = if resume {
        store.join("tmp").join(format!("{key}.resume.part"))
    } else {
        store.join("tmp").join(format!("{key}.{}.part", std::process::id()))
    };
    if !object.exists() {
        // Anything in tmp/ for this key is a dead writer's: we hold the lock.
        let clean = !matches!(bug, Some(Bug::KeepDeadTemps | Bug::ResumeAppend));
        if let (true, Ok(entries)) = (clean, fs::read_dir(store.join("tmp"))) {
            for entry in entries.flatten().take(10_000) {
                if entry.file_name().to_string_lossy().starts_with(&format!("{key}.")) {
                    let _ = fs::remove_file(entry.path());
                }
            }
        }
        let into = if bug == Some(Bug::CopyIntoFinal) { &object } else { &tmp };
        let result = download_with_retries(&url, into, bug);
        if let Err(e) = result {
            let _ = fs::remove_file(into);
            return Err(e);
        }
        if bug != Some(Bug::CopyIntoFinal) {
            fs::rename(&tmp, &object).map_err(io("publish"))?;
        }
        if bug != Some(Bug::NoFsync) {
            File::open(store.join("objects")).and_then(|d| d.sync_all()).map_err(io("sync store"))?;
        }
    }
    if bug == Some(Bug::UnlinkLock) {
        fs::remove_file(&lock_path).map_err(io("remove lock"))?;
    }
    if bug == Some(Bug::ExclusiveCreateLock) || pid_mode {
        let _ = fs::remove_file(&pid_lock);
    }
    drop(lock);
    if let Some(parent) = out.parent() {
        fs::create_dir_all(parent).map_err(io("create output dir"))?;
    }
    fs::copy(&object, &out).map_err(io("copy to output"))?;
    let printed = if bug == Some(Bug::PrintTempPath) { &tmp } else { &object };
    println!("{}", printed.display());
    Ok(())
}

/// The pid lock of `TINY_CACHE_LOCK=pid`: under the `breaker` flock (so a pid file is always created and
/// written whole, and two processes that find the same dead pid break it once, never a fresh lock),
/// create `lock` with `O_EXCL` and this pid, or find it held: by a live pid, wait (bounded); by a dead
/// pid, or empty (its creator died before writing), remove it and try again.
fn take_pid_lock(lock: &Path, breaker: &Path) -> Result<(), Failure> {
    let io = |what: &'static str| move |e| Failure::Io(what.into(), e);
    for _ in 0..400 {
        let guard = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(breaker)
            .map_err(io("open lock breaker"))?;
        guard.lock().map_err(io("lock breaker"))?;
        match OpenOptions::new().write(true).create_new(true).open(lock) {
            Ok(mut file) => {
                writeln!(file, "{}", std::process::id())
                    .and_then(|()| file.sync_all())
                    .map_err(io("write lock"))?;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Failure::Io("lock".into(), e)),
        }
        let text = match fs::read_to_string(lock) {
            Ok(text) => text,
            // Released (its holder removes it without the breaker) since our create failed: try again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(Failure::Io("read lock".into(), e)),
        };
        let holder = text.trim().parse::<i32>().ok();
        // SAFETY: kill with signal 0 only checks that the pid exists.
        let alive = holder.is_some_and(|pid| {
            let found = unsafe { libc::kill(pid, 0) } == 0;
            found || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
        });
        if !alive {
            // Dead, or empty: created and written under the breaker, so its creator died in between.
            eprintln!("tiny-cache: breaking the stale lock {} (holder {holder:?} is gone)", lock.display());
            match fs::remove_file(lock) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(Failure::Io("break stale lock".into(), e)),
            }
            continue;
        }
        drop(guard);
        std::thread::sleep(Duration::from_millis(10));
    }
    Err(Failure::Io("lock".into(), io::Error::other(format!("{} is held", lock.display()))))
}

fn download_with_retries(url: &str, tmp: &Path, bug: Option<Bug>) -> Result<(), Failure> {
    let mut last = String::new();
    for _ in 0..ATTEMPTS {
        match download_once(url, tmp, bug) {
            Ok(()) => return Ok(()),
            Err(DownloadError::Io(e)) => return Err(Failure::Io("write temp file".into(), e)),
            Err(DownloadError::Net(m)) => last = m,
        }
    }
    Err(Failure::Network(format!("{url}: {last} (after {ATTEMPTS} attempts)")))
}

enum DownloadError {
    Net(String),
    Io(io::Error),
}

/// One plain HTTP/1.1 GET (loopback test servers only; no TLS), following one redirect level is not
/// needed by the scenarios this target runs.
fn download_once(url: &str, tmp: &Path, bug: Option<Bug>) -> Result<(), DownloadError> {
    let net = |e: io::Error| DownloadError::Net(e.to_string());
    let rest = url.strip_prefix("http://").ok_or_else(|| DownloadError::Net(format!("not http: {url}")))?;
    let (host, path) = rest.split_once('/').map(|(h, p)| (h, format!("/{p}"))).unwrap_or((rest, "/".into()));
    // The temp file exists before the request goes out (as in many clients): a writer killed while
    // waiting for the response leaves an empty one behind for the next lock holder to clean up.
    let resume_from = match bug {
        Some(Bug::ResumeAppend) => fs::metadata(tmp).map(|m| m.len()).unwrap_or(0),
        _ => 0,
    };
    let mut file = if resume_from > 0 {
        OpenOptions::new().append(true).open(tmp).map_err(DownloadError::Io)?
    } else {
        File::create(tmp).map_err(DownloadError::Io)?
    };
    let mut stream = TcpStream::connect(host).map_err(net)?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).map_err(net)?;
    let range = if resume_from > 0 { format!("Range: bytes={resume_from}-\r\n") } else { String::new() };
    write!(stream, "GET {path} HTTP/1.1\r\nHost: {host}\r\n{range}Connection: close\r\n\r\n").map_err(net)?;
    let mut reader = BufReader::new(stream);
    let mut status = String::new();
    reader.read_line(&mut status).map_err(net)?;
    let ok = status.starts_with("HTTP/1.1 200") || (resume_from > 0 && status.starts_with("HTTP/1.1 206"));
    if resume_from > 0 && status.starts_with("HTTP/1.1 416") {
        // The bug: "nothing left to fetch" taken as "the partial is complete".
        return Ok(());
    }
    if !ok && bug != Some(Bug::CacheErrorBody) {
        return Err(DownloadError::Net(format!("status {}", status.trim())));
    }
    let mut length = None;
    for _ in 0..100 {
        let mut line = String::new();
        reader.read_line(&mut line).map_err(net)?;
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            length = v.trim().parse::<u64>().ok();
        }
    }
    let length = length.ok_or_else(|| DownloadError::Net("no Content-Length".into()))?;
    let copied = io::copy(&mut reader.by_ref().take(length), &mut file).map_err(net)?;
    if copied != length {
        return Err(DownloadError::Net(format!("short body: {copied} of {length} bytes")));
    }
    if bug != Some(Bug::NoFsync) {
        file.sync_all().map_err(DownloadError::Io)?;
    }
    Ok(())
}

fn fnv1a_hex(bytes: &[u8]) -> String {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    format!("{h:016x}")
}
