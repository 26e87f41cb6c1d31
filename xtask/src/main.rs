//! `cargo xtask`: the project's maintenance commands (`ci`, `nightly`, `fixtures`, `third-party`,
//! `replay-matrix`), runnable from any directory of the workspace through the `.cargo/config.toml` alias.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

mod replay_matrix;

/// Maintenance tasks of the cargo-stress-cache workspace.
#[derive(Debug, Parser)]
#[command(name = "cargo xtask", about)]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// What CI checks: fmt, clippy (-D warnings), the workspace tests (nextest profile `ci`), the PR tier.
    Ci {
        /// Skip the PR stress tier (only the static checks and tests).
        #[arg(long)]
        no_stress: bool,
    },
    /// The nightly job: the nightly tier with repeats, then the mutants matrix, under
    /// `target/stress-cache/nightly-<YYYY-MM-DD>/`.
    Nightly {
        /// Repeats of the nightly tier (flake detection).
        #[arg(long, default_value_t = 3)]
        repeat: u32,
        /// Tier the mutants matrix runs (12 tier runs: `pr` keeps it within a night on two cores).
        #[arg(long, default_value = "pr")]
        mutants_tier: String,
        /// Skip the mutants matrix.
        #[arg(long)]
        skip_mutants: bool,
    },
    /// Opt-in: build the thin wrapper around the crates.io `cached-path` crate
    /// (`stress-tests/targets/cached-path-cli/`, its own workspace) and run a tier on it with its spec.
    ThirdParty {
        /// Tier to run.
        #[arg(long, default_value = "pr")]
        tier: String,
        /// Only check the spec against a clean run (`cargo stress-cache check-spec`).
        #[arg(long)]
        check_spec: bool,
    },
    /// For each seeded bug (or those named): record a failing run of its first killed-by scenario,
    /// replay it `--times N`, shrink it; print the reproduction rates and the shrinks as one table.
    ReplayMatrix {
        /// Mutants to measure (default: every one the target declares).
        mutants: Vec<String>,
        /// Replays per record.
        #[arg(long, default_value_t = 10)]
        times: u32,
    },
    /// Build beaker and write its deterministic model fixtures and input image.
    Fixtures {
        /// Output directory (default: `target/fixtures`).
        #[arg(long)]
        out_dir: Option<PathBuf>,
    },
}

fn main() {
    if let Err(e) = run(Cli::parse()) {
        eprintln!("xtask: error: {e:#}");
        std::process::exit(1);
    }
}

fn run(cli: Cli) -> Result<()> {
    let root = workspace_root()?;
    match cli.task {
        Task::Ci { no_stress } => ci(&root, no_stress),
        Task::Nightly { repeat, mutants_tier, skip_mutants } => {
            nightly(&root, repeat, &mutants_tier, skip_mutants)
        }
        Task::Fixtures { out_dir } => fixtures(&root, out_dir),
        Task::ThirdParty { tier, check_spec } => third_party(&root, &tier, check_spec),
        Task::ReplayMatrix { mutants, times } => replay_matrix::run(&root, &mutants, times),
    }
}

/// The workspace root: this crate's parent directory (xtask lives at `<root>/xtask`), checked with
/// `cargo locate-project` when the compiled-in path no longer exists (a moved checkout).
fn workspace_root() -> Result<PathBuf> {
    let compiled = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf);
    if let Some(root) = compiled.filter(|r| r.join("Cargo.toml").is_file()) {
        return Ok(root);
    }
    let out = Command::new(cargo())
        .args(["locate-project", "--workspace", "--message-format", "plain"])
        .output()
        .context("running cargo locate-project")?;
    if !out.status.success() {
        bail!("cargo locate-project failed: {}", String::from_utf8_lossy(&out.stderr).trim());
    }
    let manifest = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    manifest.parent().map(Path::to_path_buf).context("workspace manifest has no parent directory")
}

fn cargo() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string())
}

/// Runs `cargo <args>` in the workspace root; Err when it cannot start or exits non-zero.
fn cargo_step(root: &Path, args: &[&str]) -> Result<()> {
    let status = cargo_status(root, args)?;
    if !status.success() {
        bail!("`cargo {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

fn cargo_status(root: &Path, args: &[&str]) -> Result<std::process::ExitStatus> {
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut cmd = Command::new(cargo());
    // `cargo xtask` is a `cargo run`: its package variables must not reach nested builds.
    stress_cache_runner::cargo::scrub_package_env(&mut cmd);
    cmd.args(args)
        .current_dir(root)
        .status()
        .with_context(|| format!("cannot run `cargo {}`", args.join(" ")))
}

fn ci(root: &Path, no_stress: bool) -> Result<()> {
    cargo_step(root, &["fmt", "--all", "--", "--check"])?;
    cargo_step(root, &["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"])?;
    cargo_step(root, &["nextest", "run", "--workspace", "--profile", "ci"])?;
    if !no_stress {
        cargo_step(root, &["stress-cache", "--tier", "pr"])?;
    }
    eprintln!("xtask: ci passed (JUnit: target/nextest/ci/junit.xml)");
    Ok(())
}

fn nightly(root: &Path, repeat: u32, mutants_tier: &str, skip_mutants: bool) -> Result<()> {
    let dir = fresh_dir(
        &root.join("target").join("stress-cache"),
        &format!("nightly-{}", utc_date(SystemTime::now())),
    )?;
    let tier_dir = dir.join("tier");
    let tier_dir_s = tier_dir.to_string_lossy().into_owned();
    let repeat_s = repeat.to_string();
    // Both halves run even when the first fails: the night's report should say everything it can.
    // In GitHub Actions the CLI writes its own tables to the job summary.
    let summary_flag: &[&str] =
        if std::env::var_os("GITHUB_STEP_SUMMARY").is_some() { &["--github-summary"] } else { &[] };
    let tier_args = ["stress-cache", "--tier", "nightly", "--repeat", &repeat_s, "--run-dir", &tier_dir_s];
    let started = std::time::Instant::now();
    let tier_status = cargo_status(root, &[&tier_args[..], summary_flag].concat())?;
    let mut timings =
        format!("- nightly tier: {:.0} s (per part: `tier/summary.json`)\n", started.elapsed().as_secs_f64());
    let mut failures = Vec::new();
    if !tier_status.success() {
        failures.push(format!("nightly tier ({tier_status})"));
    }
    let mut summary = read_or_note(&tier_dir.join("report.md"));
    if !skip_mutants {
        let mutants_dir = dir.join("mutants");
        let mutants_dir_s = mutants_dir.to_string_lossy().into_owned();
        let mutants_args = ["stress-cache", "mutants", "--tier", mutants_tier, "--run-dir", &mutants_dir_s];
        let started = std::time::Instant::now();
        let status = cargo_status(root, &[&mutants_args[..], summary_flag].concat())?;
        timings.push_str(&format!("- mutants matrix: {:.0} s\n", started.elapsed().as_secs_f64()));
        if !status.success() {
            failures.push(format!("mutants matrix ({status})"));
        }
        summary.push_str("\n\n");
        summary.push_str(&read_or_note(&mutants_dir.join("mutants.md")));
    }
    summary.push_str("\n\n## Timings\n\n");
    summary.push_str(&timings);
    let summary_path = dir.join("summary.md");
    std::fs::write(&summary_path, &summary)
        .with_context(|| format!("cannot write {}", summary_path.display()))?;
    eprintln!("xtask: nightly report in {}", dir.display());
    if !failures.is_empty() {
        bail!("nightly failed: {}", failures.join(", "));
    }
    Ok(())
}

/// `parent/name`, or `parent/name-2`, `-3`, ... when a run of the same day already used it.
fn fresh_dir(parent: &Path, name: &str) -> Result<PathBuf> {
    std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    for attempt in 1..=100 {
        let dir = if attempt == 1 { parent.join(name) } else { parent.join(format!("{name}-{attempt}")) };
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot create {}", dir.display())),
        }
    }
    bail!("100 directories named {name}[-n] exist under {}", parent.display())
}

fn read_or_note(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|_| format!("({} was not written)\n", path.display()))
}

fn fixtures(root: &Path, out_dir: Option<PathBuf>) -> Result<()> {
    let out = out_dir.unwrap_or_else(|| root.join("target").join("fixtures"));
    std::fs::create_dir_all(&out).with_context(|| format!("cannot create {}", out.display()))?;
    let out = std::path::absolute(&out)?;
    let out_s = out.to_string_lossy().into_owned();
    cargo_step(root, &["run", "--quiet", "--package", "beaker", "--", "fixtures", "--out-dir", &out_s])?;
    eprintln!("xtask: fixtures in {}", out.display());
    Ok(())
}

/// Builds `cached-path-cli` into `target/third-party` (its dependencies never touch the workspace's
/// lock file or target dir), then runs `cargo stress-cache` with its spec and the binary on PATH.
fn third_party(root: &Path, tier: &str, check_spec: bool) -> Result<()> {
    let wrapper = root.join("stress-tests/targets/cached-path-cli");
    let target_dir = root.join("target/third-party");
    eprintln!("xtask: building {}", wrapper.display());
    let mut build = Command::new(cargo());
    stress_cache_runner::cargo::scrub_package_env(&mut build);
    let status = build
        .args(["build", "--locked", "--manifest-path"])
        .arg(wrapper.join("Cargo.toml"))
        .arg("--target-dir")
        .arg(&target_dir)
        .status()
        .context("cannot run cargo build for cached-path-cli")?;
    if !status.success() {
        bail!("building cached-path-cli failed ({status})");
    }
    let path = std::env::join_paths(
        std::iter::once(target_dir.join("debug"))
            .chain(std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default())),
    )?;
    let spec = "stress-tests/targets/cached-path.toml";
    let args: Vec<&str> = if check_spec {
        vec!["stress-cache", "check-spec", spec]
    } else {
        vec!["stress-cache", "--tier", tier, "--spec", spec]
    };
    eprintln!("xtask: cargo {}", args.join(" "));
    let mut cmd = Command::new(cargo());
    stress_cache_runner::cargo::scrub_package_env(&mut cmd);
    let status = cmd
        .args(&args)
        .env("PATH", path)
        .current_dir(root)
        .status()
        .context("cannot run cargo stress-cache")?;
    // The verdict is the report's; pass its exit code on.
    std::process::exit(status.code().unwrap_or(1));
}

/// `YYYY-MM-DD` (UTC) of `time`, via days-from-civil inverse (H. Hinnant); avoids a date crate.
fn utc_date(time: SystemTime) -> String {
    let days = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs() / 86_400).unwrap_or(0) as i64 + 719_468;
    let era = days.div_euclid(146_097);
    let doe = days.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}-{m:02}-{d:02}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn utc_date_is_the_calendar_date() {
        assert_eq!(utc_date(UNIX_EPOCH), "1970-01-01");
        assert_eq!(utc_date(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "2024-02-29");
    }
}
