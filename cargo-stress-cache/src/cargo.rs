//! How cargo is invoked: the `cargo` program (from `$CARGO`, as cargo sets it for its subcommands,
//! else `cargo` on PATH) and the options every invocation shares.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

use crate::cli::Color;

/// Invokes cargo with the user's `--manifest-path`, `--target-dir` and `--color`.
#[derive(Debug, Clone)]
pub struct Cargo {
    program: OsString,
    manifest_path: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    color: Color,
    quiet: bool,
}

impl Cargo {
    /// Cargo as `cargo stress-cache` was started by it (`$CARGO`), else `cargo` on PATH.
    pub fn from_env(
        manifest_path: Option<PathBuf>,
        target_dir: Option<PathBuf>,
        color: Color,
        quiet: bool,
    ) -> Self {
        let program = std::env::var_os("CARGO").unwrap_or_else(|| OsString::from("cargo"));
        Self { program, manifest_path, target_dir, color, quiet }
    }

    /// Whether `-q` was given (cargo's own progress is then silenced too).
    pub fn quiet(&self) -> bool {
        self.quiet
    }

    /// The cargo program.
    pub fn program(&self) -> &OsString {
        &self.program
    }

    /// The `--manifest-path` given, if any.
    pub fn manifest_path(&self) -> Option<&PathBuf> {
        self.manifest_path.as_ref()
    }

    /// Overrides the target dir (once the workspace's is known it is passed explicitly everywhere).
    pub fn set_target_dir(&mut self, dir: PathBuf) {
        self.target_dir = Some(dir);
    }

    /// `cargo <subcommand...>` with the shared options appended.
    pub fn command(&self, subcommand: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        // Under `cargo run` (the workspace alias) this process carries our package's variables.
        stress_cache_metadata::cargo_env::scrub_package_env(&mut cmd);
        cmd.args(subcommand);
        cmd.arg("--color").arg(self.color.as_str());
        if let Some(path) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(path);
        }
        if let Some(dir) = &self.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        cmd
    }
}

/// A command line for messages (`cargo build -p beaker ...`).
pub fn display_command(cmd: &Command) -> String {
    let mut parts = vec![cmd.get_program().to_string_lossy().into_owned()];
    parts.extend(cmd.get_args().map(|a| a.to_string_lossy().into_owned()));
    if parts[0].ends_with("/cargo") {
        parts[0] = "cargo".to_string();
    }
    parts.join(" ")
}
