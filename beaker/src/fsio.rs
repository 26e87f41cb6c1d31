//! All cache file I/O in one place, in the manner of cargo's `paths::write_atomic`: a temp file in the
//! *same directory* as its final name (never the system temp dir, which may be another file system) →
//! stream + hash → fsync → verify → rename → fsync the directory. A file therefore only ever appears
//! under a final name complete and durable.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use sha2::{Digest, Sha256};

use crate::error::{BeakerError, Result};

/// Suffix of in-progress downloads.
pub const PARTIAL_SUFFIX: &str = ".partial";
/// Name of the quarantine directory inside the download cache.
pub const QUARANTINE_DIR: &str = "quarantine";

/// Milliseconds since the Unix epoch.
pub fn unix_ms_now() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

/// A per-process unique suffix `<pid>-<nonce>`: pid, a process-local counter and the clock.
pub fn unique_suffix() -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.subsec_nanos()).unwrap_or(0);
    format!("{}-{:x}{:08x}", std::process::id(), n, nanos)
}

/// `<final name>.<pid>-<nonce>.partial`, next to the final file (unique per process and attempt).
pub fn unique_partial_path(final_path: &Path) -> PathBuf {
    with_suffix(final_path, &format!(".{}{PARTIAL_SUFFIX}", unique_suffix()))
}

/// `<path><suffix>` in the same directory.
pub fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name: OsString = path.file_name().unwrap_or_default().to_os_string();
    name.push(suffix);
    path.with_file_name(name)
}

/// Creates `dir` and its parents.
pub fn create_dir_all(dir: &Path) -> Result<()> {
    fs::create_dir_all(dir).map_err(|e| BeakerError::io("create directory", dir, e))
}

/// fsyncs a directory so that renames and unlinks in it are durable.
pub fn fsync_dir(dir: &Path) -> Result<()> {
    let skip: bool = crate::mutant_or!(NoFsync => true, else false);
    if skip {
        return Ok(());
    }
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| BeakerError::io("fsync directory", dir, e))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// Renames `from` to `to` (same directory) and fsyncs the directory.
pub fn rename_durable(from: &Path, to: &Path) -> Result<()> {
    fs::rename(from, to).map_err(|e| BeakerError::io("rename", from, e))?;
    fsync_dir(parent_of(to))
}

/// Removes a file and fsyncs its directory; a file that is already gone is fine.
pub fn remove_durable(path: &Path) -> Result<()> {
    match fs::remove_file(path) {
        Ok(()) => fsync_dir(parent_of(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(BeakerError::io("remove", path, e)),
    }
}

/// A file being written under a temporary name, hashed as it is written. Dropped without
/// [`Partial::persist`], it removes itself (a failed download leaves nothing behind) — unless
/// it was told to [`Partial::keep_on_drop`]. A killed process leaves it; the next lock holder of the
/// key removes it ([`remove_stale_partials`]).
#[derive(Debug)]
pub struct Partial {
    path: PathBuf,
    file: File,
    hasher: Sha256,
    len: u64,
    remove_on_drop: bool,
}

impl Partial {
    /// Creates a new file at `path`, failing if it exists (`O_EXCL`).
    pub fn create_new(path: PathBuf) -> Result<Partial> {
        let file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| BeakerError::io("create", &path, e))?;
        Ok(Partial { path, file, hasher: Sha256::new(), len: 0, remove_on_drop: true })
    }

    /// Creates or truncates `path` (only the seeded bugs `shared-tmp-name` and `direct-write` do this).
    pub fn create_truncate(path: PathBuf) -> Result<Partial> {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&path)
            .map_err(|e| BeakerError::io("create", &path, e))?;
        Ok(Partial { path, file, hasher: Sha256::new(), len: 0, remove_on_drop: true })
    }

    /// Do not remove the file when dropped.
    pub fn keep_on_drop(&mut self) {
        self.remove_on_drop = false;
    }

    /// The temporary path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes written so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was written yet.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `buf` and feeds it to the hash.
    pub fn write_chunk(&mut self, buf: &[u8]) -> Result<()> {
        self.file.write_all(buf).map_err(|e| BeakerError::io("write", &self.path, e))?;
        self.hasher.update(buf);
        self.len += buf.len() as u64;
        Ok(())
    }

    /// fsyncs the file's contents.
    pub fn sync(&mut self) -> Result<()> {
        let skip: bool = crate::mutant_or!(NoFsync => true, else false);
        if skip {
            return Ok(());
        }
        self.file.sync_all().map_err(|e| BeakerError::io("fsync", &self.path, e))
    }

    /// Lower-case hex SHA-256 of everything written.
    pub fn sha256_hex(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }

    /// Renames the file to `final_path` (same directory) and fsyncs the directory.
    pub fn persist(mut self, final_path: &Path) -> Result<()> {
        let copy: bool = crate::mutant_or!(CopyIntoFinal => self.path != final_path, else false);
        if copy {
            fs::copy(&self.path, final_path).map_err(|e| BeakerError::io("copy", final_path, e))?;
            return Ok(());
        }
        if self.path != final_path {
            rename_durable(&self.path, final_path)?;
        } else {
            fsync_dir(parent_of(final_path))?;
        }
        self.remove_on_drop = false;
        Ok(())
    }
}

impl Drop for Partial {
    fn drop(&mut self) {
        if self.remove_on_drop {
            match fs::remove_file(&self.path) {
                Ok(()) => log::debug!("removed {}", self.path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => log::warn!("cannot remove {}: {e}", self.path.display()),
            }
        }
    }
}

/// Writes `bytes` to `path` atomically: temp file in the same directory, fsync, rename, fsync dir.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let mut name = OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(format!(".{}.tmp", unique_suffix()));
    let mut tmp = Partial::create_new(path.with_file_name(name))?;
    tmp.write_chunk(bytes)?;
    tmp.sync()?;
    tmp.persist(path)
}

/// Reads a whole file.
pub fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| BeakerError::io("read", path, e))
}

/// Streams a file through SHA-256: `(lower-case hex, length)`.
pub fn sha256_file(path: &Path) -> Result<(String, u64)> {
    let mut file = File::open(path).map_err(|e| BeakerError::io("open", path, e))?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).map_err(|e| BeakerError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        len += n as u64;
    }
    Ok((hex::encode(hasher.finalize()), len))
}

/// Lower-case hex SHA-256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Sets a file's mtime to now (LRU bookkeeping for gc); best effort.
pub fn touch(path: &Path) {
    let result = OpenOptions::new().append(true).open(path).and_then(|f| f.set_modified(SystemTime::now()));
    if let Err(e) = result {
        log::debug!("cannot touch {}: {e}", path.display());
    }
}

/// Removes the partial files of `final_path` (`<final name>.*.partial`). Call only while holding the
/// exclusive lock of that entry: then no live process can be writing them. Returns how many were removed.
pub fn remove_stale_partials(final_path: &Path) -> Result<usize> {
    let dir = parent_of(final_path);
    let prefix = format!("{}.", final_path.file_name().unwrap_or_default().to_string_lossy());
    let entries = fs::read_dir(dir).map_err(|e| BeakerError::io("list", dir, e))?;
    let mut removed = 0;
    for entry in entries {
        let entry = entry.map_err(|e| BeakerError::io("list", dir, e))?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix) && name.ends_with(PARTIAL_SUFFIX) {
            log::info!("removing stale partial {name}");
            match fs::remove_file(entry.path()) {
                Ok(()) => removed += 1,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(BeakerError::io("remove stale partial", entry.path(), e)),
            }
        }
    }
    if removed > 0 {
        fsync_dir(dir)?;
    }
    Ok(removed)
}

/// Moves `final_path` to `<cache dir>/quarantine/<final name>.<unix ms>` and returns the new path.
pub fn quarantine(final_path: &Path) -> Result<PathBuf> {
    let noop: bool = crate::mutant_or!(QuarantineNoop => true, else false);
    if noop {
        return Ok(final_path.to_path_buf());
    }
    let dir = parent_of(final_path).join(QUARANTINE_DIR);
    create_dir_all(&dir)?;
    let mut name = final_path.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".{}", unix_ms_now()));
    let target = dir.join(name);
    fs::rename(final_path, &target).map_err(|e| BeakerError::io("quarantine", final_path, e))?;
    fsync_dir(&dir)?;
    fsync_dir(parent_of(final_path))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partial_removes_itself_unless_persisted() {
        let dir = tempfile::tempdir().unwrap();
        let final_path = dir.path().join("m-00.onnx");
        let p = Partial::create_new(unique_partial_path(&final_path)).unwrap();
        let name = p.path().file_name().unwrap().to_string_lossy().into_owned();
        assert!(name.starts_with("m-00.onnx.") && name.ends_with(".partial"), "{name}");
        let path = p.path().to_path_buf();
        drop(p);
        assert!(!path.exists());

        let mut p = Partial::create_new(unique_partial_path(&final_path)).unwrap();
        p.write_chunk(b"hello").unwrap();
        p.sync().unwrap();
        assert_eq!(p.sha256_hex(), sha256_hex(b"hello"));
        p.persist(&final_path).unwrap();
        assert_eq!(fs::read(&final_path).unwrap(), b"hello");
        assert_eq!(sha256_file(&final_path).unwrap(), (sha256_hex(b"hello"), 5));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn stale_partials_of_one_key_only() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a-01.onnx");
        let b = dir.path().join("b-02.onnx");
        for p in [unique_partial_path(&a), unique_partial_path(&a), unique_partial_path(&b)] {
            let mut p = Partial::create_new(p).unwrap();
            p.keep_on_drop();
        }
        assert_eq!(remove_stale_partials(&a).unwrap(), 2);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn write_atomic_and_quarantine() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.onnx");
        write_atomic(&f, b"one").unwrap();
        write_atomic(&f, b"two").unwrap();
        assert_eq!(fs::read(&f).unwrap(), b"two");
        let q = quarantine(&f).unwrap();
        assert!(!f.exists());
        assert!(q.starts_with(dir.path().join(QUARANTINE_DIR)));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
