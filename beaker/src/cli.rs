//! The `beaker` command line (clap). [`main`] is the whole program: it sets up logging, the seeded bug
//! and the failpoints, runs one subcommand and turns any [`BeakerError`] into ONE plain line on stderr,
//! `beaker: error: <cause>`, and the documented exit code (2 usage/config, 3 network, 4 integrity,
//! 5 local I/O). A clap usage error exits 2 with clap's message.

use std::io::Write;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::config::Config;
use crate::error::{BeakerError, EXIT_USAGE, Result};

/// Bird-image cutouts with a crash-safe, multi-process model cache.
#[derive(Debug, Parser)]
#[command(name = "beaker", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Cut the bird out of each image: writes `<stem>_cutout.png` (RGBA, mask as alpha).
    Cutout(CutoutArgs),
    /// Inspect and maintain the download cache.
    #[command(subcommand)]
    Cache(CacheCommand),
    /// Write the deterministic test fixtures (small.onnx, large.onnx, bird.png).
    #[command(hide = true)]
    Fixtures {
        /// Directory to write them into (created if missing).
        #[arg(long)]
        out_dir: PathBuf,
    },
}

/// `beaker cutout` arguments (passed to `crate::cutout::run`).
#[derive(Debug, Clone, Args)]
pub struct CutoutArgs {
    /// Input images.
    #[arg(required = true)]
    pub images: Vec<PathBuf>,
    /// Where to write outputs (default: next to each input).
    #[arg(long)]
    pub output_dir: Option<PathBuf>,
    /// Also write `<stem>.beaker.toml` describing what the run did.
    #[arg(long)]
    pub metadata: bool,
}

/// `beaker cache ...`.
#[derive(Debug, Subcommand)]
pub enum CacheCommand {
    /// Make sure the configured model is in the download cache; print its final path.
    Fetch,
    /// List cached models.
    Ls,
    /// Re-hash every cached model (exit 4 on a bad entry).
    Verify,
    /// Evict least recently used models until the cache holds at most N bytes.
    Gc {
        /// Size bound in bytes.
        #[arg(long)]
        max_bytes: u64,
    },
}

/// Runs beaker with the process arguments; returns the exit code.
pub fn main() -> i32 {
    init_logging();
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() { EXIT_USAGE } else { 0 };
        }
    };
    match run(cli) {
        Ok(()) => 0,
        Err(e) => {
            let line = e.to_string().split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(std::io::stderr(), "beaker: error: {line}");
            e.exit_code()
        }
    }
}

fn init_logging() {
    let env = env_logger::Env::default().filter_or(crate::config::ENV_LOG, "warn");
    let _ = env_logger::Builder::from_env(env).format_timestamp_millis().try_init();
}

/// Runs one parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    crate::mutants::init_from_env()?;
    crate::failpoints::init_from_env()?;
    match cli.command {
        Command::Cutout(args) => run_cutout(&args),
        Command::Cache(cmd) => run_cache(cmd),
        Command::Fixtures { out_dir } => crate::fixtures::write_all(&out_dir),
    }
}

fn run_cutout(args: &CutoutArgs) -> Result<()> {
    let cfg = Config::from_env()?;
    crate::cutout::run(&crate::cutout::CutoutArgs::from(args), &cfg)
}

fn run_cache(cmd: CacheCommand) -> Result<()> {
    let cfg = Config::from_env()?;
    let mut stdout = std::io::stdout().lock();
    let out = |e| BeakerError::io("write", "<stdout>", e);
    match cmd {
        CacheCommand::Fetch => {
            let model = crate::cache::fetch(&cfg)?;
            writeln!(stdout, "{}", model.path.display()).map_err(out)?;
        }
        CacheCommand::Ls => write!(stdout, "{}", crate::gc::ls(&cfg)?).map_err(out)?,
        CacheCommand::Verify => {
            let verdicts = crate::gc::verify(&cfg)?;
            let (text, result) = crate::gc::verify_result(&cfg, &verdicts);
            write!(stdout, "{text}").map_err(out)?;
            result?;
        }
        CacheCommand::Gc { max_bytes } => {
            let report = crate::gc::gc(&cfg, max_bytes)?;
            for name in &report.evicted {
                writeln!(stdout, "evicted\t{name}").map_err(out)?;
            }
            for name in &report.busy {
                writeln!(stdout, "in use\t{name}").map_err(out)?;
            }
            for name in &report.stale_partials {
                writeln!(stdout, "removed stale partial\t{name}").map_err(out)?;
            }
            writeln!(stdout, "{} bytes left", report.remaining_bytes).map_err(out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_documented_command_lines() {
        Cli::command_for_tests().debug_assert();
        let cli =
            Cli::try_parse_from(["beaker", "cutout", "a.png", "b.png", "--output-dir", "o", "--metadata"])
                .unwrap();
        let Command::Cutout(args) = cli.command else { panic!("not cutout") };
        assert_eq!(args.images.len(), 2);
        assert!(args.metadata);
        let cli = Cli::try_parse_from(["beaker", "cache", "gc", "--max-bytes", "10"]).unwrap();
        assert!(matches!(cli.command, Command::Cache(CacheCommand::Gc { max_bytes: 10 })));
        assert!(Cli::try_parse_from(["beaker", "cache", "gc"]).is_err());
        assert!(Cli::try_parse_from(["beaker", "fixtures", "--out-dir", "d"]).is_ok());
    }

    impl Cli {
        fn command_for_tests() -> clap::Command {
            <Cli as clap::CommandFactory>::command()
        }
    }
}
