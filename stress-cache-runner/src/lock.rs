//! Advisory locks on lock files (`flock(2)` through `std::fs::File::lock`), in the manner of cargo's
//! `flock.rs`: the lock lives as long as the open file, so a process that dies — SIGKILL included —
//! releases it, and no stale lock is ever left to clean up by hand.

use std::fs::{self, File};
use std::path::Path;

use crate::{Result, RunnerError};

/// Holds an exclusive lock on a lock file for its lifetime (processes preparing the same directory
/// take turns).
#[derive(Debug)]
pub struct DirLock {
    _file: File,
}

impl DirLock {
    /// Waits for the exclusive lock on `path` (created with its parent directories if absent).
    pub fn acquire(path: &Path) -> Result<Self> {
        let file = open(path)?;
        file.lock().map_err(|e| RunnerError::io("cannot lock", path, e))?;
        Ok(DirLock { _file: file })
    }

    /// Takes the exclusive lock on `path` if no one holds it; `None` when another process does.
    pub fn try_acquire(path: &Path) -> Result<Option<Self>> {
        let file = open(path)?;
        match file.try_lock() {
            Ok(()) => Ok(Some(DirLock { _file: file })),
            Err(std::fs::TryLockError::WouldBlock) => Ok(None),
            Err(std::fs::TryLockError::Error(e)) => Err(RunnerError::io("cannot lock", path, e)),
        }
    }
}

fn open(path: &Path) -> Result<File> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(|e| RunnerError::io("cannot create", dir, e))?;
    }
    fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| RunnerError::io("cannot open lock", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_held_lock_is_not_taken_twice_and_is_free_again_once_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("x.lock");
        let held = DirLock::acquire(&path).expect("first lock");
        assert!(DirLock::try_acquire(&path).expect("try").is_none(), "a second holder got the lock");
        drop(held);
        assert!(DirLock::try_acquire(&path).expect("try").is_some(), "the lock stayed held after drop");
    }
}
