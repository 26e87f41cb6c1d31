//! The command line, as clap derive types. Invoked by cargo as `cargo-stress-cache stress-cache ...`,
//! hence the outer `cargo` command with a single `stress-cache` subcommand (the nextest pattern).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// `cargo` as seen by a cargo subcommand.
#[derive(Debug, Parser)]
#[command(bin_name = "cargo", version, styles = clap::builder::Styles::plain())]
pub enum CargoCli {
    /// Stress a program's model cache with many processes, crashes and faults.
    StressCache(StressCache),
}

/// `cargo stress-cache`.
#[derive(Debug, Args)]
#[command(
    version,
    about = "Build a target with failpoints, run the stress tiers through nextest, report invariants, \
             benchmarks and flakes"
)]
pub struct StressCache {
    /// Options that apply to every subcommand.
    #[command(flatten)]
    pub global: GlobalOpts,
    /// Which program to stress.
    #[command(flatten)]
    pub target: TargetOpts,
    /// Options of a tier run (the default command).
    #[command(flatten)]
    pub run: RunOpts,
    /// A subcommand; without one, a tier is run.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// Subcommands besides the default tier run.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// List the scenarios of the suite (via `cargo nextest list`).
    List {
        /// Nextest filtersets selecting scenarios.
        #[arg(short = 'E', long = "filterset", value_name = "EXPR")]
        filtersets: Vec<String>,
    },
    /// Re-aggregate saved run directories (merging partitions run on several machines).
    Report {
        /// Run directories (`target/stress-cache/<run-id>`), or any directory holding records and JUnit files.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<PathBuf>,
        /// Also write `report.html` (into DIR; with several DIRs, into the current directory).
        #[arg(long)]
        html: bool,
    },
    /// Remove old run directories under `<target dir>/stress-cache/` and the stored target binaries no
    /// remaining run names. A run directory another process is writing is never removed.
    Clean {
        /// Run directories to keep, newest first.
        #[arg(long, default_value_t = 0, value_name = "N")]
        keep: usize,
    },
    /// Check a target declaration against a clean run of the target: list every file its cache held and
    /// the role each pattern gave it; exit 2 when a file has two roles or none, or no final was seen.
    CheckSpec {
        /// The standalone target declaration (`--spec` file) to check.
        #[arg(value_name = "FILE")]
        file: PathBuf,
    },
    /// Run a record's plan again against the current build (same scenario, seed, processes, mutant,
    /// faults) and say whether the same invariants were violated, and what differed.
    Replay {
        /// A scenario record (`<run dir>/repeat-<n>/records/<scenario>-….json`).
        #[arg(value_name = "RECORD")]
        record: PathBuf,
        /// Replay N times and report the reproduction rate.
        #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
        times: u32,
    },
    /// Reduce a failing record's plan (fewer processes, then fewer faults) while the same invariant is
    /// still violated in 3 of 3 replays; print the minimal plan as a replay command and a scenario test.
    Shrink {
        /// A failing scenario record.
        #[arg(value_name = "RECORD")]
        record: PathBuf,
        /// The invariant(s) that must stay violated [default: the record's first violated one].
        #[arg(long = "invariant", value_name = "NAME")]
        invariants: Vec<String>,
    },
    /// Prove the suite catches bugs: run the tier clean and once per seeded mutant.
    Mutants {
        /// Which program to stress.
        #[command(flatten)]
        target: TargetOpts,
        /// Tier, filtersets, partition, run directory.
        #[command(flatten)]
        tier: TierOpts,
        /// Only these mutants [default: $STRESS_MUTANT, else every declared one].
        #[arg(long = "only", value_name = "NAME")]
        only: Vec<String>,
        /// Keep the temp dirs of the (expected) failures of mutant runs; by default they are removed
        /// once aggregated, as eleven mutants × every scenario add up to gigabytes.
        #[arg(long)]
        keep_mutant_dirs: bool,
    },
}

/// Options that apply to every subcommand.
#[derive(Debug, Args, Clone)]
pub struct GlobalOpts {
    /// Path to the workspace's Cargo.toml.
    #[arg(long, global = true, value_name = "PATH")]
    pub manifest_path: Option<PathBuf>,
    /// Cargo target directory (default: the workspace's).
    #[arg(long, global = true, value_name = "DIR")]
    pub target_dir: Option<PathBuf>,
    /// When to use colours.
    #[arg(long, global = true, value_enum, default_value_t = Color::Auto)]
    pub color: Color,
    /// More output (commands run, per-file details).
    #[arg(short, long, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Less output (only warnings, errors and the tables).
    #[arg(short, long, global = true)]
    pub quiet: bool,
    /// Format of the tables on stdout.
    #[arg(long, global = true, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// A previous `report.json` to compare the benchmarks with.
    #[arg(long, global = true, value_name = "FILE")]
    pub baseline: Option<PathBuf>,
    /// Relative change (percent) beyond which a benchmark counts as regressed.
    #[arg(long, global = true, default_value_t = 20.0, value_name = "PERCENT")]
    pub threshold: f64,
    /// Exit 1 when a benchmark regressed against `--baseline` (default: only flag it).
    #[arg(long, global = true)]
    pub fail_on_regression: bool,
    /// Append the markdown tables to the GitHub Actions job summary (`$GITHUB_STEP_SUMMARY`).
    #[arg(long, global = true)]
    pub github_summary: bool,
}

/// Which program to stress.
#[derive(Debug, Args, Clone, Default)]
pub struct TargetOpts {
    /// The workspace package to stress (default: `[workspace.metadata.stress-cache] target`, else the
    /// one package declaring `[package.metadata.stress-cache]`).
    #[arg(short, long, value_name = "SPEC", conflicts_with = "spec")]
    pub package: Option<String>,
    /// A standalone target declaration (same schema plus `command`) for a program outside the workspace.
    #[arg(long, value_name = "FILE")]
    pub spec: Option<PathBuf>,
}

impl StressCache {
    /// Tier-run options given before a subcommand, which would otherwise be silently ignored
    /// (global options such as `--format` may stand anywhere).
    pub fn misplaced_run_options(&self) -> Option<&'static str> {
        self.command.as_ref()?;
        let t = &self.run.tier;
        let given = [
            (self.target.package.is_some(), "--package"),
            (self.target.spec.is_some(), "--spec"),
            (t.tier.is_some(), "--tier"),
            (!t.filtersets.is_empty(), "--filterset"),
            (t.partition.is_some(), "--partition"),
            (t.run_dir.is_some(), "--run-dir"),
            (t.seed.is_some(), "--seed"),
            (t.processes.is_some(), "--processes"),
            (t.keep != stress_cache_runner::retention::DEFAULT_KEEP, "--keep"),
            (self.run.repeat != 1, "--repeat"),
            (self.run.mutant.is_some(), "--mutant"),
        ];
        given.into_iter().find(|(set, _)| *set).map(|(_, name)| name)
    }
}

/// Options shared by tier runs and the mutants matrix.
#[derive(Debug, Args, Clone)]
pub struct TierOpts {
    /// Tier: `pr` (minutes) or `nightly` (longer, more processes) [default: $STRESS_TIER, else pr].
    #[arg(long, value_parser = parse_tier)]
    pub tier: Option<Tier>,
    /// Nextest filtersets selecting scenarios (repeatable).
    #[arg(short = 'E', long = "filterset", value_name = "EXPR")]
    pub filtersets: Vec<String>,
    /// Nextest partition, e.g. `hash:1/2` (merge the run dirs later with `report`).
    #[arg(long, value_name = "PARTITION")]
    pub partition: Option<String>,
    /// Run directory (default: `<target dir>/stress-cache/<run-id>`).
    #[arg(long, value_name = "DIR")]
    pub run_dir: Option<PathBuf>,
    /// Seed for the suite, decimal or 0x hex [default: $STRESS_SEED, else the suite's].
    #[arg(long, value_parser = parse_seed)]
    pub seed: Option<u64>,
    /// Cap on processes per scenario, at least 1 [default: $STRESS_PROCESSES, else none].
    #[arg(long, value_name = "N", value_parser = parse_processes)]
    pub processes: Option<usize>,
    /// Run directories to keep in `<target dir>/stress-cache/`, this one included; older ones (and
    /// binaries no kept run names) are removed when a run starts.
    #[arg(long, value_name = "N", default_value_t = stress_cache_runner::retention::DEFAULT_KEEP)]
    pub keep: usize,
}

/// Options of a tier run.
#[derive(Debug, Args, Clone)]
pub struct RunOpts {
    /// Tier, filtersets, partition, run directory.
    #[command(flatten)]
    pub tier: TierOpts,
    /// Run the tier N times (flake detection across repeats).
    #[arg(long, default_value_t = 1, value_name = "N", value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub repeat: u32,
    /// Run every process with this seeded bug (needs the target's mutants feature); expect exit 1
    /// [default: $STRESS_MUTANT].
    #[arg(long, value_name = "NAME")]
    pub mutant: Option<String>,
}

/// `--seed`, parsed as the suite parses `STRESS_SEED`.
fn parse_seed(value: &str) -> Result<u64, String> {
    stress_cache_metadata::suite_env::parse_seed("--seed", value)
        .map_err(|e| format!("expected {}", e.expected))
}

/// `--processes`, parsed as the suite parses `STRESS_PROCESSES`.
fn parse_processes(value: &str) -> Result<usize, String> {
    stress_cache_metadata::suite_env::parse_processes("--processes", value)
        .map_err(|e| format!("expected {}", e.expected))
}

pub use stress_cache_metadata::Tier;

/// `--tier`, parsed as the suite parses `STRESS_TIER`.
fn parse_tier(value: &str) -> Result<Tier, String> {
    stress_cache_metadata::suite_env::parse_tier("--tier", value)
        .map_err(|e| format!("expected {}", e.expected))
}

/// `--color`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Color {
    /// Colour when stderr is a terminal.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

impl From<Color> for stress_cache_runner::cargo::CargoColor {
    fn from(c: Color) -> Self {
        match c {
            Color::Auto => Self::Auto,
            Color::Always => Self::Always,
            Color::Never => Self::Never,
        }
    }
}

impl Color {
    /// The value cargo and nextest take for `--color`.
    pub fn as_str(self) -> &'static str {
        match self {
            Color::Auto => "auto",
            Color::Always => "always",
            Color::Never => "never",
        }
    }
}

/// `--format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Terminal tables.
    Table,
    /// The aggregate as JSON (the same as `report.json`; usable as `--baseline`).
    Json,
    /// Markdown tables, fit for a CI job summary.
    Markdown,
}
