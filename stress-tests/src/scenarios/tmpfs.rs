//! tmpfs mounts for the cache-directory stress: a small file system the scenario can fill (real ENOSPC)
//! or cover with a read-only mount while processes run, always unmounted on drop (panics included).
//! Mounting needs root (CAP_SYS_ADMIN); without it every constructor fails with an error saying so.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::scenario::ScenarioError;

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A mounted tmpfs, unmounted (and its mount point removed, if this guard created it) on drop.
#[derive(Debug)]
pub struct Tmpfs {
    path: PathBuf,
    created_dir: bool,
    mounted: bool,
}

fn needs_admin(action: &'static str, path: &Path, detail: String) -> ScenarioError {
    ScenarioError::Io {
        action,
        path: path.display().to_string(),
        source: std::io::Error::new(
            std::io::ErrorKind::PermissionDenied,
            format!(
                "{detail} — the cache-directory stress scenario needs root with CAP_SYS_ADMIN to mount tmpfs \
                 (run the suite as root, e.g. in the CI container)"
            ),
        ),
    }
}

fn run(args: &[&str], path: &Path) -> Result<(), String> {
    let out =
        Command::new(args[0]).args(&args[1..]).arg(path).output().map_err(|e| format!("{}: {e}", args[0]))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{} {}` failed ({}): {}",
            args.join(" "),
            path.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

impl Tmpfs {
    /// Mounts a fresh tmpfs of `size_bytes` on a new directory under `parent` named `<label>-<pid>-<n>`.
    pub fn new_under(parent: &Path, label: &str, size_bytes: u64) -> Result<Self, ScenarioError> {
        let path =
            parent.join(format!("{label}-{}-{}", std::process::id(), NEXT.fetch_add(1, Ordering::Relaxed)));
        // Bounded retry: a guard of another scenario may remove `parent` (empty) between the two mkdirs.
        let mut created = std::fs::create_dir_all(&path);
        for _ in 0..3 {
            if created.is_ok() {
                break;
            }
            created = std::fs::create_dir_all(&path);
        }
        created.map_err(|source| ScenarioError::Io {
            action: "create mount point",
            path: path.display().to_string(),
            source,
        })?;
        let mut fs = Tmpfs { path, created_dir: true, mounted: false };
        fs.mount(size_bytes, false)?;
        Ok(fs)
    }

    /// Mounts a read-only tmpfs over the existing directory `dir` (hiding its content from every new path
    /// lookup; descriptors already open keep working on the hidden files).
    pub fn read_only_over(dir: &Path) -> Result<Self, ScenarioError> {
        let mut fs = Tmpfs { path: dir.to_path_buf(), created_dir: false, mounted: false };
        fs.mount(64 * 1024, true)?;
        Ok(fs)
    }

    /// Bind-mounts the existing directory `dir` over itself and remounts that bind read-only: its content
    /// stays visible, every write under it fails with EROFS. Unmounted on drop like a tmpfs.
    pub fn read_only_bind(dir: &Path) -> Result<Self, ScenarioError> {
        let mut fs = Tmpfs { path: dir.to_path_buf(), created_dir: false, mounted: false };
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(needs_admin("bind-mount", dir, "not running as root".into()));
        }
        let source = dir.to_string_lossy();
        run(&["mount", "--bind", &source], dir).map_err(|e| needs_admin("bind-mount", dir, e))?;
        // Mounted from here on: the guard unmounts it even if the remount fails.
        fs.mounted = true;
        run(&["mount", "-o", "remount,ro,bind"], dir)
            .map_err(|e| needs_admin("remount read-only", dir, e))?;
        Ok(fs)
    }

    /// Changes the size of the mounted tmpfs (`remount,size=`): space given back to a full disk.
    pub fn resize(&self, size_bytes: u64) -> Result<(), ScenarioError> {
        run(&["mount", "-o", &format!("remount,size={size_bytes}")], &self.path)
            .map_err(|e| needs_admin("resize tmpfs", &self.path, e))
    }

    fn mount(&mut self, size_bytes: u64, read_only: bool) -> Result<(), ScenarioError> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            return Err(needs_admin("mount tmpfs on", &self.path, "not running as root".into()));
        }
        let options = format!("size={size_bytes},mode=0755{}", if read_only { ",ro" } else { "" });
        run(&["mount", "-t", "tmpfs", "-o", &options, "tmpfs"], &self.path)
            .map_err(|e| needs_admin("mount tmpfs on", &self.path, e))?;
        self.mounted = true;
        Ok(())
    }

    /// The mount point.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Unmounts now (idempotent); falls back to a lazy unmount if the file system is still busy.
    pub fn unmount(&mut self) -> Result<(), ScenarioError> {
        if !self.mounted {
            return Ok(());
        }
        let result = run(&["umount"], &self.path).or_else(|first| {
            run(&["umount", "-l"], &self.path).map_err(|second| format!("{first}; then {second}"))
        });
        match result {
            Ok(()) => {
                self.mounted = false;
                if self.created_dir {
                    let _ = std::fs::remove_dir(&self.path);
                    // And the shared parent once empty (`mnt/`): the harness leaves no directory behind.
                    if let Some(parent) = self.path.parent() {
                        let _ = std::fs::remove_dir(parent);
                    }
                }
                Ok(())
            }
            Err(e) => Err(ScenarioError::Io {
                action: "unmount",
                path: self.path.display().to_string(),
                source: std::io::Error::other(e),
            }),
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        if let Err(e) = self.unmount() {
            log::error!("{e}");
        }
    }
}
