//! Shared helpers of beaker's process-level tests: the beaker binary with failpoints and mutants,
//! the command environment, and inspection of a cache directory.
#![allow(dead_code)]

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use beaker::lock::LockGuard;

/// The beaker binary built with `failpoints,mutants`.
///
/// With `cargo test -p beaker --features failpoints,mutants` this is `CARGO_BIN_EXE_beaker`. Under a
/// plain `cargo test -p beaker` the crash tests must still run, so the feature build is made here with
/// a nested `cargo build -p beaker --no-default-features --features failpoints,mutants` (the outer cargo has released the
/// target-dir lock while tests run) and copied to a private path, so that a concurrent build of plain
/// beaker in the shared target dir cannot swap the binary under the tests.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let built = PathBuf::from(env!("CARGO_BIN_EXE_beaker"));
        if cfg!(all(feature = "failpoints", feature = "mutants")) {
            return built;
        }
        // The runner builds it as `cargo stress-cache` does: beaker's declared failpoints and mutants
        // features, the executable read from cargo's JSON messages.
        use stress_cache_runner::{build, cargo, workspace::Workspace};
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
        let cargo = cargo::Cargo::from_env(Some(manifest), None, cargo::CargoColor::Never, true);
        let target = Workspace::load(&cargo)
            .and_then(|ws| ws.resolve_target(Some("beaker"), None))
            .expect("beaker's stress-cache declaration");
        let feature_build =
            build::target_executable(&cargo, &target, build::Flavor::WithMutants, &build::PlainWait)
                .expect("cargo build -p beaker --no-default-features --features failpoints,mutants");
        let dir = built.parent().unwrap().join("beaker-test-bins");
        std::fs::create_dir_all(&dir).unwrap();
        let dest = dir.join("beaker-failpoints-mutants");
        let tmp = dir.join(format!(".beaker-failpoints-mutants.{}.tmp", std::process::id()));
        std::fs::copy(&feature_build, &tmp).expect("copy the feature build");
        std::fs::rename(&tmp, &dest).unwrap();
        dest
    })
}

/// A fresh cache directory (with a sibling compiled dir) for one test.
pub struct TestCache {
    /// Owns the directories.
    pub root: tempfile::TempDir,
    /// The download cache.
    pub dir: PathBuf,
}

impl TestCache {
    /// A new empty cache.
    pub fn new() -> TestCache {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("models");
        TestCache { dir, root }
    }

    /// `beaker <args>` against this cache and `url` (with `sha256` if given), short timeouts, no
    /// failpoints or mutant unless added.
    pub fn beaker(&self, url: &str, sha256: Option<&str>, args: &[&str]) -> Command {
        let mut cmd = Command::new(bin());
        cmd.args(args)
            .env("ONNX_MODEL_CACHE_DIR", &self.dir)
            .env("BEAKER_COMPILED_CACHE_DIR", self.root.path().join("compiled"))
            .env("BEAKER_CUTOUT_MODEL_URL", url)
            .env("BEAKER_CUTOUT_MODEL_SHA256", sha256.unwrap_or(""))
            .env("BEAKER_CONNECT_TIMEOUT_MS", "2000")
            .env("BEAKER_READ_TIMEOUT_MS", "2000")
            .env("BEAKER_MAX_ATTEMPTS", "4")
            .env("BEAKER_RETRY_BASE_MS", "1")
            .env("RUST_LOG", "warn")
            .env_remove("FAILPOINTS")
            .env_remove("BEAKER_MUTANT")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd
    }

    /// What is in the cache directory now.
    pub fn state(&self) -> CacheState {
        CacheState::of(&self.dir)
    }
}

/// The files of a cache directory, by kind.
#[derive(Debug, Default)]
pub struct CacheState {
    /// `*.onnx`.
    pub finals: Vec<String>,
    /// `*.partial`.
    pub partials: Vec<String>,
    /// `*.lock`.
    pub locks: Vec<String>,
    /// Anything else (except the quarantine dir).
    pub other: Vec<String>,
    /// Files in `quarantine/`.
    pub quarantined: Vec<String>,
}

impl CacheState {
    /// Lists `dir` (missing dir → empty).
    pub fn of(dir: &Path) -> CacheState {
        let mut state = CacheState::default();
        let Ok(read) = std::fs::read_dir(dir) else { return state };
        for entry in read {
            let name = entry.unwrap().file_name().to_string_lossy().into_owned();
            if name == "quarantine" {
                state.quarantined = std::fs::read_dir(dir.join(&name))
                    .unwrap()
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect();
            } else if name.ends_with(".onnx") {
                state.finals.push(name);
            } else if name.ends_with(".partial") {
                state.partials.push(name);
            } else if name.ends_with(".lock") {
                state.locks.push(name);
            } else {
                state.other.push(name);
            }
        }
        state.finals.sort();
        state
    }

    /// Asserts the cache is clean: no partials, no stray files, no lock held.
    pub fn assert_clean(&self, dir: &Path) {
        assert!(self.partials.is_empty(), "partials left: {self:?}");
        assert!(self.other.is_empty(), "stray files: {self:?}");
        for lock in &self.locks {
            let guard = LockGuard::try_exclusive(&dir.join(lock)).unwrap();
            assert!(guard.is_some(), "lock {lock} is still held");
        }
    }
}

/// Output as text, for messages.
pub fn describe(out: &Output) -> String {
    format!(
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The stderr of a failed run is exactly one line, `beaker: error: ...`: no panic, no log noise
/// (`RUST_LOG=warn`).
pub fn assert_one_error_line(out: &Output) -> String {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert_eq!(lines.len(), 1, "exactly one stderr line expected:\n{}", describe(out));
    assert!(lines[0].starts_with("beaker: error: "), "{}", describe(out));
    assert!(!stderr.contains("panicked"), "panic:\n{}", describe(out));
    lines[0].to_string()
}

/// Number of processes blocked waiting for the flock on `lock_file` (from `/proc/locks`), or `None`
/// when `/proc/locks` is unavailable.
pub fn lock_waiters(lock_file: &Path) -> Option<usize> {
    let ino = std::fs::metadata(lock_file).ok()?.ino();
    let text = std::fs::read_to_string("/proc/locks").ok()?;
    let suffix = format!(":{ino}");
    Some(
        text.lines()
            .filter(|l| l.contains("->") && l.split_whitespace().any(|f| f.ends_with(&suffix)))
            .count(),
    )
}

/// Waits (bounded by `timeout`) until `cond` holds, observing it every few milliseconds; the overlap
/// itself is forced by a gate, this only observes that the other processes reached their lock wait.
pub fn wait_for(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Blocks until the child `pid` has stopped (SIGSTOP from a `return(pause)` failpoint) and returns
/// `true`, or returns `false` if it exited instead.
pub fn wait_stopped(pid: u32) -> bool {
    let mut status = 0;
    // SAFETY: waitpid on our own child with a valid out pointer.
    let r = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, libc::WUNTRACED) };
    assert_eq!(r, pid as libc::pid_t, "waitpid: {}", std::io::Error::last_os_error());
    libc::WIFSTOPPED(status)
}

/// Sends SIGCONT to `pid`.
pub fn resume(pid: u32) {
    // SAFETY: sending a signal to our own child.
    unsafe {
        libc::kill(pid as libc::pid_t, libc::SIGCONT);
    }
}

/// sha256 hex of a file.
pub fn sha256_of(path: &Path) -> String {
    beaker::fsio::sha256_file(path).unwrap().0
}
