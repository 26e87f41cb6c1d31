//! Failpoints at the cache's I/O seams (cargo feature `failpoints`, `fail` crate), armed per process
//! by the `FAILPOINTS` environment variable, e.g. `FAILPOINTS=cache.before_rename=return(crash)`.
//!
//! Each seam is one line: `failpoints::hit(NAME)?` (or [`check`] for a [`BeakerError`]). The action
//! argument of `return(...)` is interpreted here, in one place:
//! - `return(crash)`: `kill(getpid(), SIGKILL)`: the process dies exactly as with `kill -9` (no
//!   destructors, no unwinding, no cleanup);
//! - `return(io)`: the seam returns a real `std::io::Error` (EIO), which flows through the normal error
//!   path (→ `BeakerError::Io`, exit 5);
//! - `return(pause)`: `raise(SIGSTOP)`; the harness holds the process there and resumes it with SIGCONT.
//!
//! Plain `fail` actions (`panic`, `off`, `sleep(ms)`, `pause`) work as the `fail` crate defines them.
//! Without the feature, [`hit`] compiles to `Ok(())`.

use std::io;
use std::path::Path;

use crate::error::{BeakerError, Result};

/// Exclusive lock of a model taken, before anything else.
pub const CACHE_AFTER_LOCK: &str = "cache.after_lock";
/// First chunk of the download is on disk in the partial file.
pub const CACHE_MID_DOWNLOAD: &str = "cache.mid_download";
/// The partial file is complete, fsynced and verified, not yet renamed.
pub const CACHE_BEFORE_RENAME: &str = "cache.before_rename";
/// The final file is renamed into place; the lock is still held.
pub const CACHE_AFTER_RENAME: &str = "cache.after_rename";
/// The lock holder is about to remove stale partial files of its key.
pub const CACHE_STALE_CLEANUP: &str = "cache.stale_cleanup";
/// A reader holds the shared lock and has the final path, before loading it.
pub const CACHE_AFTER_RESOLVE: &str = "cache.after_resolve";
/// The compiled entry is built in its temp dir, before the rename (in `compiled.rs`).
pub const COMPILED_BEFORE_RENAME: &str = "compiled.before_rename";
/// gc holds an entry's lock exclusively and is about to delete it.
pub const GC_BEFORE_DELETE: &str = "gc.before_delete";

/// Every failpoint beaker defines (checked against `beaker/Cargo.toml` by `tests/integration/stress_declaration.rs`).
pub const FAILPOINT_NAMES: &[&str] = &[
    CACHE_AFTER_LOCK,
    CACHE_MID_DOWNLOAD,
    CACHE_BEFORE_RENAME,
    CACHE_AFTER_RENAME,
    CACHE_STALE_CLEANUP,
    CACHE_AFTER_RESOLVE,
    COMPILED_BEFORE_RENAME,
    GC_BEFORE_DELETE,
];

/// Arms the failpoints from `FAILPOINTS` (called once by `cli::main`). A malformed value is a config
/// error (exit 2) instead of the `fail` crate's panic; a non-empty value in a build without the
/// feature is also a config error, so a stress run never believes it injected a fault it did not.
pub fn init_from_env() -> Result<()> {
    let Ok(value) = std::env::var(crate::config::ENV_FAILPOINTS) else {
        return Ok(());
    };
    let bad = |reason: String| BeakerError::Config {
        var: crate::config::ENV_FAILPOINTS,
        value: value.clone(),
        reason,
    };
    let mut entries = Vec::new();
    for entry in value.split(';').map(str::trim).filter(|e| !e.is_empty()) {
        let Some((name, actions)) = entry.split_once('=') else {
            return Err(bad(format!("`{entry}` is not `name=actions`")));
        };
        entries.push((name.trim(), actions.trim()));
    }
    #[cfg(feature = "failpoints")]
    for (name, actions) in entries {
        fail::cfg(name, actions).map_err(|e| bad(format!("failpoint {name}: {e}")))?;
    }
    #[cfg(not(feature = "failpoints"))]
    if let Some((name, _)) = entries.first() {
        return Err(bad(format!("failpoint {name}: beaker was built without the `failpoints` feature")));
    }
    Ok(())
}

/// Evaluates failpoint `name`; `Err` only for `return(io)`.
#[inline]
pub fn hit(name: &str) -> io::Result<()> {
    #[cfg(feature = "failpoints")]
    if let Some(result) = fail::eval(name, |arg| action(name, arg.as_deref())) {
        return result;
    }
    let _ = name;
    Ok(())
}

/// [`hit`], with an injected error reported as `BeakerError::Io { op, path }`.
#[inline]
pub fn check(name: &str, op: &'static str, path: &Path) -> Result<()> {
    hit(name).map_err(|e| BeakerError::io(op, path, e))
}

#[cfg(feature = "failpoints")]
fn action(name: &str, arg: Option<&str>) -> io::Result<()> {
    match arg.map(str::trim) {
        Some("crash") => {
            log::debug!("failpoint {name}: crash");
            // SAFETY: plain libc calls with valid arguments; SIGKILL cannot be caught, so the process
            // ends here without running destructors. `_exit` is the unreachable fallback.
            unsafe {
                libc::kill(libc::getpid(), libc::SIGKILL);
                libc::_exit(137)
            }
        }
        Some("io") => {
            log::debug!("failpoint {name}: injected I/O error");
            Err(io::Error::from_raw_os_error(libc::EIO))
        }
        Some("pause") => {
            log::debug!("failpoint {name}: SIGSTOP");
            // SAFETY: raising a signal on ourselves; execution continues after SIGCONT.
            unsafe {
                libc::raise(libc::SIGSTOP);
            }
            Ok(())
        }
        other => {
            log::warn!("failpoint {name}: unknown return value {other:?}, ignored");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_dotted() {
        let mut names = FAILPOINT_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FAILPOINT_NAMES.len());
        assert!(FAILPOINT_NAMES.iter().all(|n| n.contains('.')));
    }

    #[cfg(feature = "failpoints")]
    #[test]
    fn io_action_returns_an_error() {
        let scenario = fail::FailScenario::setup();
        fail::cfg("test.io", "return(io)").unwrap();
        assert_eq!(hit("test.io").unwrap_err().raw_os_error(), Some(libc::EIO));
        fail::cfg("test.io", "off").unwrap();
        assert!(hit("test.io").is_ok());
        scenario.teardown();
    }
}
