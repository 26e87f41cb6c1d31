//! What stays in `<target dir>/stress-cache/` (the store root): the newest run directories, and each
//! target executable once, by content, under `bin/<sha256>/`.
//!
//! ```text
//! stress-cache/
//!   .retention.lock              held while a binary is stored or the store is pruned
//!   bin/<sha256>/<name>          a pinned target executable, shared by every run that stressed it
//!   fixtures/                    model files (see `fixtures`)
//!   <label>-<UTC timestamp>/     a run directory (see `rundir::create`)
//!     .in-use.lock               held by the process writing the run, for the whole run
//!     target.sha256              which `bin/<sha256>/` the run stressed (and `bin/<sha256>/users/`
//!                                lists the run dirs that used it, `--run-dir`s outside the root too)
//! ```
//!
//! Invariant: pruning never deletes a run directory another process is writing (its `.in-use.lock` is
//! held), nor one with a mount beneath it (a kept temp dir of a disk-full scenario), nor a binary a
//! run directory that still exists names.

use std::fs;
use std::os::unix::ffi::OsStringExt;
use std::path::{Path, PathBuf};

use crate::fixtures::sha256_hex;
use crate::lock::DirLock;
use crate::{Result, RunnerError};

/// Run directories kept by default (`--keep`).
pub const DEFAULT_KEEP: usize = 20;
/// Directory of the binary store inside the store root.
pub const BIN_STORE: &str = "bin";
/// Held by the process that writes a run directory, for as long as it writes.
pub const IN_USE_LOCK: &str = ".in-use.lock";
/// Names the stored binary a run directory used (its SHA-256, hex).
pub const BIN_REF: &str = "target.sha256";
const STORE_LOCK: &str = ".retention.lock";
/// Inside `bin/<sha256>/`: one file per run directory that used the binary, holding its path.
const USERS: &str = "users";

/// A run directory claimed by this process: pruning elsewhere leaves it alone until this is dropped.
#[derive(Debug)]
pub struct RunDirClaim {
    _lock: DirLock,
}

/// Claims `run_dir` for this process (creates its `.in-use.lock` and holds it).
pub fn claim(run_dir: &Path) -> Result<RunDirClaim> {
    Ok(RunDirClaim { _lock: DirLock::acquire(&run_dir.join(IN_USE_LOCK))? })
}

/// Stores `executable` once by content under `<root>/bin/<sha256>/<name>`, records in `run_dir` that
/// the run uses it, and returns the stored path.
///
/// Why a copy at all: cargo's uplifted binary (`target/debug/<bin>`) is replaced by the next build of
/// that package in the same target dir, with whatever features that build had — a tier running
/// meanwhile would silently stress a binary without failpoints. Why by content: a 48 MB copy per run
/// dir made 100 runs cost 5 GB.
pub fn store_executable(root: &Path, run_dir: &Path, executable: &Path) -> Result<PathBuf> {
    let bytes = fs::read(executable).map_err(|e| RunnerError::io("cannot read", executable, e))?;
    let sha = sha256_hex(&bytes);
    let name = executable.file_name().unwrap_or(std::ffi::OsStr::new("target"));
    // Under the store lock, store and reference together: a prune in between would otherwise see a
    // binary no run names yet.
    let _store = DirLock::acquire(&root.join(STORE_LOCK))?;
    let dir = root.join(BIN_STORE).join(&sha);
    let stored = dir.join(name);
    if !stored.is_file() {
        fs::create_dir_all(&dir).map_err(|e| RunnerError::io("cannot create", &dir, e))?;
        let staging = dir.join(format!(".{}.copying", name.to_string_lossy()));
        // Staged in the same directory, then renamed: no run ever sees a half-copied binary.
        fs::copy(executable, &staging)
            .map_err(|e| RunnerError::io("copy the target executable", &staging, e))?;
        fs::rename(&staging, &stored)
            .map_err(|e| RunnerError::io("rename the target executable", &stored, e))?;
    }
    let reference = run_dir.join(BIN_REF);
    fs::write(&reference, format!("{sha}\n")).map_err(|e| RunnerError::io("cannot write", &reference, e))?;
    // And the store knows its users: a `--run-dir` outside the store root is never listed by pruning.
    let users = dir.join(USERS);
    fs::create_dir_all(&users).map_err(|e| RunnerError::io("cannot create", &users, e))?;
    let user = users.join(&sha256_hex(run_dir.as_os_str().as_encoded_bytes())[..16]);
    fs::write(&user, run_dir.as_os_str().as_encoded_bytes())
        .map_err(|e| RunnerError::io("cannot write", &user, e))?;
    Ok(stored)
}

/// What [`prune`] did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Pruned {
    /// Run directories kept (newest first).
    pub kept: Vec<PathBuf>,
    /// Run directories removed.
    pub removed: Vec<PathBuf>,
    /// Older run directories left because another process is writing them.
    pub in_use: Vec<PathBuf>,
    /// Older run directories left because something is mounted beneath them.
    pub mounted: Vec<PathBuf>,
    /// Older run directories that could not be removed, with the cause.
    pub failed: Vec<(PathBuf, String)>,
    /// Stored binaries removed (their SHA-256), as no remaining run names them.
    pub binaries_removed: Vec<String>,
}

/// Keeps the `keep` newest run directories under `root` (by the timestamp in their names) plus any in
/// use or with a mount beneath, removes the others, then removes stored binaries no remaining run names.
/// Directories not named by [`crate::rundir::create`] (a `--run-dir` the user chose) are never touched.
pub fn prune(root: &Path, keep: usize) -> Result<Pruned> {
    let mut pruned = Pruned::default();
    if !root.is_dir() {
        return Ok(pruned);
    }
    let _store = DirLock::acquire(&root.join(STORE_LOCK))?;
    let mut runs = run_dirs(root)?;
    // Newest first: the timestamp, then the collision suffix, both in the name.
    runs.sort_by(|a, b| b.0.cmp(&a.0));
    let mounts = mount_points();
    for (index, (_, dir)) in runs.into_iter().enumerate() {
        if index < keep {
            pruned.kept.push(dir);
            continue;
        }
        if mounts.iter().any(|m| m.starts_with(&dir)) {
            pruned.mounted.push(dir);
            continue;
        }
        let Some(_claim) = DirLock::try_acquire(&dir.join(IN_USE_LOCK))? else {
            pruned.in_use.push(dir);
            continue;
        };
        match fs::remove_dir_all(&dir) {
            Ok(()) => pruned.removed.push(dir),
            Err(e) => {
                pruned.failed.push((dir.clone(), e.to_string()));
            }
        }
    }
    let store = root.join(BIN_STORE);
    for entry in fs::read_dir(&store).into_iter().flatten().flatten() {
        let sha = entry.file_name().to_string_lossy().into_owned();
        if !is_sha256(&sha) || has_users(&entry.path(), &sha) {
            continue;
        }
        if fs::remove_dir_all(entry.path()).is_ok() {
            pruned.binaries_removed.push(sha);
        }
    }
    Ok(pruned)
}

/// The run directories directly under `root`, each with its sort key (timestamp, collision suffix).
fn run_dirs(root: &Path) -> Result<Vec<((String, u32), PathBuf)>> {
    let entries = fs::read_dir(root).map_err(|e| RunnerError::io("cannot read", root, e))?;
    let mut runs = Vec::new();
    for entry in entries.flatten() {
        let is_dir = entry.file_type().map(|t| t.is_dir()).unwrap_or(false);
        let name = entry.file_name().to_string_lossy().into_owned();
        if let (true, Some(key)) = (is_dir, run_dir_key(&name)) {
            runs.push((key, entry.path()));
        }
    }
    Ok(runs)
}

/// `<label>-YYYYMMDDTHHMMSSZ` or `<label>-YYYYMMDDTHHMMSSZ-<n>` → (timestamp, n); anything else is not
/// a run directory this store made.
fn run_dir_key(name: &str) -> Option<(String, u32)> {
    let is_stamp = |s: &str| {
        s.len() == 16
            && s.as_bytes()[8] == b'T'
            && s.ends_with('Z')
            && s[..8].bytes().chain(s[9..15].bytes()).all(|b| b.is_ascii_digit())
    };
    let mut parts = name.rsplitn(3, '-');
    let last = parts.next()?;
    if is_stamp(last) {
        return Some((last.to_string(), 1));
    }
    let stamp = parts.next()?;
    let attempt: u32 = last.parse().ok()?;
    is_stamp(stamp).then(|| (stamp.to_string(), attempt))
}

/// Whether a run directory that still exists names the binary `bin_dir` holds (users whose run dir
/// is gone are forgotten on the way).
fn has_users(bin_dir: &Path, sha: &str) -> bool {
    let mut used = false;
    for user in fs::read_dir(bin_dir.join(USERS)).into_iter().flatten().flatten() {
        let run_dir = fs::read(user.path()).map(|b| PathBuf::from(std::ffi::OsString::from_vec(b)));
        let names_it = run_dir
            .ok()
            .and_then(|dir| fs::read_to_string(dir.join(BIN_REF)).ok())
            .is_some_and(|named| named.trim() == sha);
        if names_it {
            used = true;
        } else {
            let _ = fs::remove_file(user.path());
        }
    }
    used
}

fn is_sha256(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Every mount point of this process's mount namespace (field 5 of `/proc/self/mountinfo`, with its
/// octal escapes undone).
fn mount_points() -> Vec<PathBuf> {
    let Ok(text) = fs::read_to_string("/proc/self/mountinfo") else { return Vec::new() };
    text.lines().filter_map(|line| line.split(' ').nth(4)).map(|p| PathBuf::from(unescape_octal(p))).collect()
}

fn unescape_octal(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes
            .get(i + 1..i + 4)
            .filter(|d| bytes[i] == b'\\' && d.iter().all(|b| (b'0'..=b'7').contains(b)));
        match octal {
            Some(d) => {
                out.push((d[0] - b'0') * 64 + (d[1] - b'0') * 8 + (d[2] - b'0'));
                i += 4;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_dir_names_sort_by_timestamp_then_collision_suffix() {
        assert_eq!(run_dir_key("pr-20261202T101010Z"), Some(("20261202T101010Z".into(), 1)));
        assert_eq!(run_dir_key("mutants-pr-20261202T101010Z-3"), Some(("20261202T101010Z".into(), 3)));
        assert_eq!(run_dir_key("fixtures"), None);
        assert_eq!(run_dir_key("bin"), None);
        assert_eq!(run_dir_key("my-run"), None);
    }

    /// A store root with run dirs `pr-2026120{1..=n}T000000Z`, each naming a binary of its own content
    /// (`i % distinct`), oldest first.
    fn store_with_runs(n: usize, distinct: usize) -> (tempfile::TempDir, Vec<PathBuf>) {
        let root = tempfile::tempdir().expect("tempdir");
        let exe_dir = tempfile::tempdir().expect("tempdir");
        let mut dirs = Vec::new();
        for i in 0..n {
            let dir = root.path().join(format!("pr-202612{:02}T000000Z", i + 1));
            fs::create_dir(&dir).expect("run dir");
            let exe = exe_dir.path().join("beaker");
            fs::write(&exe, format!("binary {}", i % distinct)).expect("exe");
            let stored = store_executable(root.path(), &dir, &exe).expect("stored");
            assert_eq!(fs::read(&stored).expect("stored"), fs::read(&exe).expect("exe"));
            dirs.push(dir);
        }
        (root, dirs)
    }

    fn stored_binaries(root: &Path) -> usize {
        fs::read_dir(root.join(BIN_STORE)).map(|d| d.count()).unwrap_or(0)
    }

    #[test]
    fn a_binary_is_stored_once_per_content_however_many_runs_use_it() {
        let (root, _) = store_with_runs(6, 2);
        assert_eq!(stored_binaries(root.path()), 2);
    }

    #[test]
    fn prune_keeps_the_newest_runs_and_the_binaries_they_name() {
        let (root, dirs) = store_with_runs(5, 5);
        // Not run dirs of the store: never touched.
        fs::create_dir(root.path().join("my-run")).expect("user dir");
        fs::create_dir(root.path().join("fixtures")).expect("fixtures");
        let pruned = prune(root.path(), 3).expect("pruned");
        assert_eq!(pruned.kept, vec![dirs[4].clone(), dirs[3].clone(), dirs[2].clone()]);
        assert_eq!(pruned.removed.len(), 2);
        assert!(!dirs[0].exists() && !dirs[1].exists() && dirs[2].exists());
        assert!(root.path().join("my-run").exists() && root.path().join("fixtures").exists());
        assert_eq!(pruned.binaries_removed.len(), 2);
        assert_eq!(stored_binaries(root.path()), 3);
        for dir in &dirs[2..] {
            let sha = fs::read_to_string(dir.join(BIN_REF)).expect("ref");
            assert!(root.path().join(BIN_STORE).join(sha.trim()).join("beaker").is_file());
        }
    }

    #[test]
    fn prune_never_removes_a_run_dir_another_process_is_writing() {
        let (root, dirs) = store_with_runs(3, 3);
        // A separate open file description conflicts like another process's would (flock semantics).
        let writing = claim(&dirs[0]).expect("claimed");
        let pruned = prune(root.path(), 0).expect("pruned");
        assert_eq!(pruned.in_use, vec![dirs[0].clone()]);
        assert!(dirs[0].exists(), "an in-use run dir was removed");
        assert_eq!(stored_binaries(root.path()), 1, "the in-use run's binary must stay");
        drop(writing);
        let pruned = prune(root.path(), 0).expect("pruned");
        assert_eq!(pruned.removed, vec![dirs[0].clone()]);
        assert_eq!(stored_binaries(root.path()), 0);
    }

    #[test]
    fn a_binary_used_by_a_run_dir_outside_the_root_survives_pruning() {
        let (root, _) = store_with_runs(2, 2);
        let elsewhere = tempfile::tempdir().expect("tempdir");
        let exe = elsewhere.path().join("beaker");
        fs::write(&exe, "binary 0").expect("exe");
        let run_dir = elsewhere.path().join("my-run");
        fs::create_dir(&run_dir).expect("run dir");
        let stored = store_executable(root.path(), &run_dir, &exe).expect("stored");
        let pruned = prune(root.path(), 0).expect("pruned");
        assert_eq!((pruned.removed.len(), pruned.binaries_removed.len()), (2, 1));
        assert!(stored.is_file(), "the binary a --run-dir elsewhere uses was removed");
        fs::remove_dir_all(&run_dir).expect("gone");
        assert_eq!(prune(root.path(), 0).expect("pruned").binaries_removed.len(), 1);
        assert!(!stored.exists());
    }

    #[test]
    fn mountinfo_escapes_are_undone() {
        assert_eq!(unescape_octal(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_octal(r"/x\\y"), r"/x\\y");
    }
}
