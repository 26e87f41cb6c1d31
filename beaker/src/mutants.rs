//! Seeded bugs: each [`Mutant`] is one small, realistic mistake in the cache code, switched on per
//! process with `BEAKER_MUTANT=<name>` when beaker is built with the cargo feature `mutants`. They exist
//! to prove that the stress suite catches real cache bugs (a suite that never fails proves nothing).
//!
//! Without the feature, [`active`] is a `const fn` returning `None` and every mutant code path is
//! removed at compile time by [`crate::mutant_or!`] (`#[cfg(feature = "mutants")]`), so none of it is
//! in the binary; only the names below remain (the stress declaration test needs them).

use crate::error::{BeakerError, Result};

/// One seeded bug.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mutant {
    /// `no-lock`: the downloader skips the per-model exclusive lock.
    NoLock,
    /// `shared-tmp-name`: a fixed partial name `<final>.partial` and no lock.
    SharedTmpName,
    /// `direct-write`: the download is streamed straight into the final path.
    DirectWrite,
    /// `skip-verify`: the SHA-256 comparison is skipped.
    SkipVerify,
    /// `verify-after-rename`: rename first, then verify (deleting the final on mismatch).
    VerifyAfterRename,
    /// `leave-partial`: a failed download does not remove its partial file.
    LeavePartial,
    /// `unlock-before-rename`: the lock is released after verification but before the rename.
    UnlockBeforeRename,
    /// `no-timeout`: no connect or read timeout.
    NoTimeout,
    /// `compiled-direct-dir`: the compiled entry is filled in place (implemented in `compiled.rs`).
    CompiledDirectDir,
    /// `gc-ignores-readers`: gc deletes entries without trying their lock.
    GcIgnoresReaders,
    /// `name-without-hash`: the final name is the URL's file name only (models with one name collide).
    NameWithoutHash,
    /// `no-fsync`: the downloaded bytes and the cache directory are never fsynced (a power loss can leave
    /// an empty or short file under the final name).
    NoFsync,
    /// `unlink-lock-on-release`: the writer deletes the lock file when it releases it ("tidy up"), while
    /// waiters hold it open: the next process locks a new inode, two holders at once.
    UnlinkLockOnRelease,
    /// `clean-partials-unlocked`: stale partials are removed at startup, before taking any lock of the
    /// entry, so a live writer's partial is deleted under it.
    CleanPartialsUnlocked,
    /// `copy-into-final`: the verified partial is copied into the final name (create, truncate, write)
    /// instead of renamed: the final name holds a growing file for a while.
    CopyIntoFinal,
    /// `unwrap-read-error`: a failed read of the response body (reset, early close) panics instead of
    /// being retried.
    UnwrapReadError,
    /// `quarantine-noop`: moving a bad final aside does nothing, so the refetch finds the same bad file.
    QuarantineNoop,
    /// `skip-unverified-validation`: a download made without a checksum is published without loading
    /// it first (its validation replaced by `Ok(())`), so any body the server sends becomes the model.
    SkipUnverifiedValidation,
    /// `lock-not-revalidated`: a lock is trusted once `flock` returns, even when its file was deleted or
    /// replaced meanwhile (the lock then excludes nobody who opens the path now), and a holder never
    /// checks it still holds the file the path names before cleaning up or publishing.
    LockNotRevalidated,
    /// `final-kind-unchecked`: anything under a final name counts as the model, a directory too (every run
    /// then fails reading it, for good), and `cache verify` skips what is not a regular file.
    FinalKindUnchecked,
    /// `compiled-files-unchecked`: a compiled entry's files are not checked against its manifest on load,
    /// so a corrupted weight file is run as the model.
    CompiledFilesUnchecked,
}

impl Mutant {
    /// Every mutant, in declaration order.
    pub const ALL: &[Mutant] = &[
        Mutant::NoLock,
        Mutant::SharedTmpName,
        Mutant::DirectWrite,
        Mutant::SkipVerify,
        Mutant::VerifyAfterRename,
        Mutant::LeavePartial,
        Mutant::UnlockBeforeRename,
        Mutant::NoTimeout,
        Mutant::CompiledDirectDir,
        Mutant::GcIgnoresReaders,
        Mutant::NameWithoutHash,
        Mutant::NoFsync,
        Mutant::UnlinkLockOnRelease,
        Mutant::CleanPartialsUnlocked,
        Mutant::CopyIntoFinal,
        Mutant::UnwrapReadError,
        Mutant::QuarantineNoop,
        Mutant::SkipUnverifiedValidation,
        Mutant::LockNotRevalidated,
        Mutant::FinalKindUnchecked,
        Mutant::CompiledFilesUnchecked,
    ];

    /// The name used in `BEAKER_MUTANT` and in the stress declaration.
    pub const fn name(self) -> &'static str {
        match self {
            Mutant::NoLock => "no-lock",
            Mutant::SharedTmpName => "shared-tmp-name",
            Mutant::DirectWrite => "direct-write",
            Mutant::SkipVerify => "skip-verify",
            Mutant::VerifyAfterRename => "verify-after-rename",
            Mutant::LeavePartial => "leave-partial",
            Mutant::UnlockBeforeRename => "unlock-before-rename",
            Mutant::NoTimeout => "no-timeout",
            Mutant::CompiledDirectDir => "compiled-direct-dir",
            Mutant::GcIgnoresReaders => "gc-ignores-readers",
            Mutant::NameWithoutHash => "name-without-hash",
            Mutant::NoFsync => "no-fsync",
            Mutant::UnlinkLockOnRelease => "unlink-lock-on-release",
            Mutant::CleanPartialsUnlocked => "clean-partials-unlocked",
            Mutant::CopyIntoFinal => "copy-into-final",
            Mutant::UnwrapReadError => "unwrap-read-error",
            Mutant::QuarantineNoop => "quarantine-noop",
            Mutant::SkipUnverifiedValidation => "skip-unverified-validation",
            Mutant::LockNotRevalidated => "lock-not-revalidated",
            Mutant::FinalKindUnchecked => "final-kind-unchecked",
            Mutant::CompiledFilesUnchecked => "compiled-files-unchecked",
        }
    }

    /// Parses a mutant name.
    pub fn from_name(name: &str) -> Option<Mutant> {
        Mutant::ALL.iter().copied().find(|m| m.name() == name)
    }
}

/// Parses a `BEAKER_MUTANT` value: empty → none, a known name → that mutant, else a config error.
pub fn parse(value: Option<&str>) -> Result<Option<Mutant>> {
    match value.map(str::trim) {
        None | Some("") => Ok(None),
        Some(name) => Mutant::from_name(name).map(Some).ok_or_else(|| BeakerError::Config {
            var: crate::config::ENV_MUTANT,
            value: name.to_string(),
            reason: format!(
                "unknown mutant; known: {}",
                Mutant::ALL.iter().map(|m| m.name()).collect::<Vec<_>>().join(", ")
            ),
        }),
    }
}

#[cfg(feature = "mutants")]
static ACTIVE: std::sync::OnceLock<Option<Mutant>> = std::sync::OnceLock::new();

/// Reads and validates `BEAKER_MUTANT` once (called first thing by `cli::main`). An unknown name is a
/// config error (exit 2); so is any non-empty value in a build without the `mutants` feature, so a
/// stress run never silently tests the correct code while believing it tests a bug.
pub fn init_from_env() -> Result<()> {
    let value = std::env::var(crate::config::ENV_MUTANT).ok();
    let parsed = parse(value.as_deref())?;
    #[cfg(feature = "mutants")]
    {
        let _ = ACTIVE.set(parsed);
        if let Some(m) = parsed {
            // The declared `mutants.active-marker`: the stress suite counts a mutant as run only where a
            // process printed this line, whatever the log level.
            eprintln!("beaker: seeded bug `{}` is active", m.name());
        }
        Ok(())
    }
    #[cfg(not(feature = "mutants"))]
    match parsed {
        None => Ok(()),
        Some(m) => Err(BeakerError::Config {
            var: crate::config::ENV_MUTANT,
            value: m.name().to_string(),
            reason: "this beaker was built without the `mutants` feature".into(),
        }),
    }
}

/// The active seeded bug, if any (read from `BEAKER_MUTANT` on first use).
#[cfg(feature = "mutants")]
pub fn active() -> Option<Mutant> {
    *ACTIVE.get_or_init(|| parse(std::env::var(crate::config::ENV_MUTANT).ok().as_deref()).ok().flatten())
}

/// The active seeded bug: always `None` without the `mutants` feature.
#[cfg(not(feature = "mutants"))]
pub const fn active() -> Option<Mutant> {
    None
}

/// `mutant_or!(Name => buggy_expr, else correct_expr)`: evaluates `buggy_expr` when mutant `Name` is
/// active. Without the `mutants` feature the buggy expression is removed at compile time.
#[macro_export]
macro_rules! mutant_or {
    ($m:ident => $mutant:expr, else $normal:expr) => {{
        #[cfg(feature = "mutants")]
        let value =
            if $crate::mutants::active() == Some($crate::mutants::Mutant::$m) { $mutant } else { $normal };
        #[cfg(not(feature = "mutants"))]
        let value = $normal;
        value
    }};
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_is_usage_error() {
        for m in Mutant::ALL {
            assert_eq!(Mutant::from_name(m.name()), Some(*m));
        }
        assert_eq!(parse(Some("")).unwrap(), None);
        assert_eq!(parse(Some("no-lock")).unwrap(), Some(Mutant::NoLock));
        assert_eq!(parse(Some("nope")).unwrap_err().exit_code(), crate::error::EXIT_USAGE);
    }
}
