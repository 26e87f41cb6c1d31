//! How cargo is invoked: the `cargo` program (from `$CARGO`, as cargo sets it for its subcommands and
//! test processes, else `cargo` on PATH) and the options every invocation shares.

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

/// cargo's `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CargoColor {
    /// `auto`.
    #[default]
    Auto,
    /// `always`.
    Always,
    /// `never`.
    Never,
}

impl CargoColor {
    /// The value of `--color`.
    pub fn as_str(self) -> &'static str {
        match self {
            CargoColor::Auto => "auto",
            CargoColor::Always => "always",
            CargoColor::Never => "never",
        }
    }
}

/// Invokes cargo with the user's `--manifest-path`, `--target-dir` and `--color`.
#[derive(Debug, Clone)]
pub struct Cargo {
    program: OsString,
    manifest_path: Option<PathBuf>,
    target_dir: Option<PathBuf>,
    color: CargoColor,
    quiet: bool,
}

impl Cargo {
    /// Cargo as this process was started by it (`$CARGO`), else `cargo` on PATH.
    pub fn from_env(
        manifest_path: Option<PathBuf>,
        target_dir: Option<PathBuf>,
        color: CargoColor,
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
        let mut cmd = self.command_on_built(subcommand);
        if let Some(path) = &self.manifest_path {
            cmd.arg("--manifest-path").arg(path);
        }
        if let Some(dir) = &self.target_dir {
            cmd.arg("--target-dir").arg(dir);
        }
        cmd
    }

    /// `cargo <subcommand...>` with `--color` only: for a subcommand that runs what an earlier call
    /// built (`nextest run --binaries-metadata`), which refuses the build's options (`--target-dir`,
    /// `--manifest-path`): the files it reads name the target dir and the workspace.
    pub fn command_on_built(&self, subcommand: &[&str]) -> Command {
        let mut cmd = Command::new(&self.program);
        // Under `cargo run` (the workspace alias) or a test this process carries its package's variables.
        scrub_package_env(&mut cmd);
        cmd.args(subcommand);
        cmd.arg("--color").arg(self.color.as_str());
        cmd
    }
}

/// Removes the per-package variables cargo sets for a running test, bench or `cargo run` binary
/// (`CARGO_PKG_*`, `CARGO_MANIFEST_*`, `OUT_DIR`, ...) from `cmd`.
///
/// Why: build scripts such as ring's fingerprint some of them; leaking the outer package's values into a
/// nested `cargo build` makes cargo rebuild those dependencies in the shared target directory every time
/// the outer package changes — minutes per alternation on two cores.
pub fn scrub_package_env(cmd: &mut Command) {
    const PREFIXES: [&str; 6] =
        ["CARGO_PKG_", "CARGO_MANIFEST_", "CARGO_CRATE_", "CARGO_BIN_", "CARGO_PRIMARY_", "CARGO_CFG_"];
    for (var, _) in std::env::vars_os() {
        let name = var.to_string_lossy();
        if PREFIXES.iter().any(|p| name.starts_with(p)) || name == "CARGO_TARGET_TMPDIR" || name == "OUT_DIR"
        {
            cmd.env_remove(&var);
        }
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
