//! Cross-process locks on `<final name>.lock` files, with std's `File::lock` / `lock_shared` /
//! `try_lock` (`flock(2)` on Linux), like cargo's `flock.rs`. Lock files persist (they are never
//! deleted: deleting a lock file another process has open splits the lock in two). A lock is released
//! when its [`LockGuard`] is dropped, and by the kernel when the process dies, however it dies.
//!
//! A lock file someone else deletes or replaces (a user's `rm`, a cleaner) splits the lock all the
//! same: a process that locked the old inode and one that creates the new file both "hold" it. So a
//! lock is taken again until the locked descriptor is the file the path names, and a holder checks
//! [`LockGuard::is_current`] before it removes or publishes anything: one that lost its lock file
//! starts over instead of acting on the entry next to the new holder.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::error::{BeakerError, Result};

/// Bound on "locked an inode the path no longer names, take it again" rounds.
const MAX_RELOCKS: u32 = 8;

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
            Ok(()) => {
                let guard = LockGuard { file, path: path.to_path_buf(), kind: LockKind::Exclusive };
                // A lock on an inode the path no longer names is no lock: report the entry busy.
                Ok(guard.is_current().then_some(guard))
            }
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(BeakerError::io("lock", path, e)),
        }
    }

    fn acquire(path: &Path, kind: LockKind) -> Result<(LockGuard, Duration)> {
        let start = Instant::now();
        for _ in 0..MAX_RELOCKS {
            let file = open(path)?;
            let locked = match kind {
                LockKind::Shared => file.lock_shared(),
                LockKind::Exclusive => file.lock(),
            };
            locked.map_err(|e| BeakerError::io("lock", path, e))?;
            let guard = LockGuard { file, path: path.to_path_buf(), kind };
            if !guard.is_current() {
                // We waited on an inode that was deleted or replaced meanwhile: whoever opens the path
                // now locks another inode, so this lock excludes nobody. Take the one the path names.
                log::warn!(
                    "lock file {} was removed or replaced while waiting; locking it again",
                    path.display()
                );
                continue;
            }
            let waited = start.elapsed();
            log::debug!("{kind:?} lock on {} after {} ms", path.display(), waited.as_millis());
            return Ok((guard, waited));
        }
        Err(BeakerError::io(
            "lock",
            path,
            std::io::Error::other(format!("the lock file kept being replaced ({MAX_RELOCKS} times)")),
        ))
    }

    /// Whether the locked descriptor is still the file the lock path names (not deleted, not replaced):
    /// only then does holding it exclude the processes that open the path now.
    pub fn is_current(&self) -> bool {
        let unchecked: bool = crate::mutant_or!(LockNotRevalidated => true, else false);
        if unchecked {
            return true;
        }
        match (self.file.metadata(), std::fs::metadata(&self.path)) {
            (Ok(held), Ok(named)) => held.dev() == named.dev() && held.ino() == named.ino(),
            _ => false,
        }
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

    #[test]
    fn a_deleted_or_replaced_lock_file_is_not_current_and_is_locked_again() {
        let dir = tempfile::tempdir().unwrap();
        let lock = lock_path(&dir.path().join("m-0123.onnx"));
        let (holder, _) = LockGuard::exclusive(&lock).unwrap();
        assert!(holder.is_current());
        std::fs::remove_file(&lock).unwrap();
        assert!(!holder.is_current(), "deleted under its holder");
        // The path names a new inode: a newcomer locks it (the old holder excludes nobody) ...
        let (newcomer, _) = LockGuard::exclusive(&lock).unwrap();
        assert!(newcomer.is_current());
        drop(newcomer);
        std::fs::remove_file(&lock).unwrap();
        std::fs::write(&lock, b"replaced").unwrap();
        // ... and a replaced file is not the held one either.
        assert!(!holder.is_current());
    }
}
