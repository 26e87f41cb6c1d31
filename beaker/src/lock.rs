//! Cross-process locks on `<final name>.lock` files, with std's `File::lock` / `lock_shared` /
//! `try_lock` (`flock(2)` on Linux), like cargo's `flock.rs`. Lock files persist (they are never
//! deleted: deleting a lock file another process has open splits the lock in two). A lock is released
//! when its [`LockGuard`] is dropped, and by the kernel when the process dies, however it dies.

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{BeakerError, Result};

/// The lock file of a cache entry: `<entry path>.lock`.
pub fn lock_path(entry: &Path) -> PathBuf {
    let mut name = entry.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    entry.with_file_name(name)
}

/// Lock mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockKind {
    /// Readers: many at once, excludes an exclusive holder.
    Shared,
    /// Writers (download, publish, quarantine, gc delete): one at a time.
    Exclusive,
}

/// A held lock; released on drop.
#[derive(Debug)]
pub struct LockGuard {
    file: File,
    path: PathBuf,
    kind: LockKind,
}

impl LockGuard {
    /// Blocks until the exclusive lock on `path` is held; returns the guard and the time waited.
    pub fn exclusive(path: &Path) -> Result<(LockGuard, Duration)> {
        Self::acquire(path, LockKind::Exclusive)
    }

    /// Blocks until a shared lock on `path` is held; returns the guard and the time waited.
    pub fn shared(path: &Path) -> Result<(LockGuard, Duration)> {
        Self::acquire(path, LockKind::Shared)
    }

    /// Takes the exclusive lock if nobody holds the lock in any mode; `Ok(None)` when it is busy.
    pub fn try_exclusive(path: &Path) -> Result<Option<LockGuard>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(LockGuard { file, path: path.to_path_buf(), kind: LockKind::Exclusive })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(BeakerError::io("lock", path, e)),
        }
    }

    fn acquire(path: &Path, kind: LockKind) -> Result<(LockGuard, Duration)> {
        let file = open(path)?;
        let start = Instant::now();
        let locked = match kind {
            LockKind::Shared => file.lock_shared(),
            LockKind::Exclusive => file.lock(),
        };
        locked.map_err(|e| BeakerError::io("lock", path, e))?;
        let waited = start.elapsed();
        log::debug!("{kind:?} lock on {} after {} ms", path.display(), waited.as_millis());
        Ok((LockGuard { file, path: path.to_path_buf(), kind }, waited))
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The mode held.
    pub fn kind(&self) -> LockKind {
        self.kind
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        #[cfg(feature = "mutants")]
        if self.kind == LockKind::Exclusive
            && crate::mutants::active() == Some(crate::mutants::Mutant::UnlinkLockOnRelease)
        {
            let _ = std::fs::remove_file(&self.path);
        }
        // Closing the descriptor releases the lock too; unlocking first makes the release explicit.
        let _ = self.file.unlock();
    }
}

fn open(path: &Path) -> Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(path)
        .map_err(|e| BeakerError::io("open lock file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shared_excludes_exclusive_and_lock_files_persist() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_path(&dir.path().join("m-0123.onnx"));
        assert_eq!(lock.file_name().unwrap(), "m-0123.onnx.lock");
        let (reader, _) = LockGuard::shared(&lock).unwrap();
        let (reader2, _) = LockGuard::shared(&lock).unwrap();
        assert!(LockGuard::try_exclusive(&lock).unwrap().is_none());
        drop(reader);
        assert!(LockGuard::try_exclusive(&lock).unwrap().is_none());
        drop(reader2);
        let writer = LockGuard::try_exclusive(&lock).unwrap().expect("free");
        assert!(LockGuard::try_exclusive(&lock).unwrap().is_none());
        drop(writer);
        assert!(lock.exists());
    }
}
