//! `cargo stress-cache`: builds a target with its failpoints, checks the checker, runs the stress
//! suite's tiers through cargo-nextest, and turns the scenario records and JUnit reports into a verdict
//! and its tables. The binary is a thin wrapper over [`main_with_args`].
//!
//! Exit codes (all decided in [`errors`]): 0 pass; 1 a violation, a setup error, a failed self-check,
//! a flaky or broken test, or a mutant not killed where expected; 2 usage or setup error
//! ([`errors::Error`]); 130 interrupted.

pub mod aggregate;
pub mod benchmarks;
pub mod built_suite;
pub mod checkspec;
mod clean;
pub mod cli;
pub mod compare;
mod conclusion;
pub mod errors;
pub mod flakes;
pub mod github_summary;
pub mod html_report;
pub mod inputs;
pub mod interrupt;
pub mod junit;
pub mod junit_invariants;
pub mod kills;
pub mod knobs;
pub mod leaks;
pub mod mutants;
pub mod nextest;
pub mod outcomes;
pub mod overview;
pub mod plan_check;
mod prepared_run;
pub mod progress;
pub mod publish;
pub mod replay;
pub mod report;
pub mod run;
pub mod rundir;
pub mod selfcheck;
pub mod shrink;
pub mod summary;
pub mod terminal;
pub mod tmpdir;

pub use stress_cache_runner::{build, cargo, retention, workspace};

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::Parser;

use crate::aggregate::Aggregate;
use crate::build::Flavor;
use crate::cargo::Cargo;
use crate::cli::{CargoCli, Command, GlobalOpts, StressCache, TargetOpts, Tier, TierOpts};
use crate::errors::{EXIT_OK, EXIT_SETUP, Error, Result};
use crate::interrupt::{Grace, Interrupt};
use crate::kills::MutantClass;
use crate::knobs::{Knobs, env_knobs};
use crate::nextest::Selection;

use crate::conclusion::{emit, finish, log_findings, print_notes, stderr_line, stdout_color};
use crate::prepared_run::PreparedRun;
use crate::workspace::{Target, Workspace};

/// Parses `args` (as cargo passes them: `cargo-stress-cache stress-cache ...`), runs, and returns the
/// exit code. Errors are printed here as one `error:` line (plus maybe one `help:` line).
pub fn main_with_args(args: impl IntoIterator<Item = OsString>) -> i32 {
    let cli = match CargoCli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(e),
    };
    let CargoCli::StressCache(args) = cli;
    // A bug must still end as one line and the setup exit code, never a backtrace.
    std::panic::set_hook(Box::new(|info| {
        stderr_line(&format!("error: internal error: {}", errors::one_line(&info.to_string())));
        std::process::exit(EXIT_SETUP);
    }));
    init_logging(&args.global);
    let result = dispatch(args);
    match &result {
        Ok(()) => {}
        // Not an error of the user's: a verdict about the target, or the run's interruption.
        Err(e) if e.is_verdict() => stderr_line(&format!("stress-cache: {e}")),
        Err(e) => {
            stderr_line(&format!("error: {e}"));
            if let Some(help) = e.help() {
                stderr_line(&format!("help: {help}"));
            }
        }
    }
    errors::exit_code_of(&result)
}

/// Help and version print as usual; usage errors become one `error:` line and exit 2.
fn clap_exit(e: clap::Error) -> i32 {
    use clap::error::ErrorKind;
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => {
            let _ = e.print();
            EXIT_OK
        }
        ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            let _ = e.print();
            EXIT_SETUP
        }
        _ => {
            let rendered = e.render().to_string();
            let first = rendered.lines().find(|l| !l.trim().is_empty()).unwrap_or("invalid arguments");
            stderr_line(&format!("error: {}", first.trim_start_matches("error:").trim()));
            stderr_line("help: see `cargo stress-cache --help`");
            EXIT_SETUP
        }
    }
}

fn init_logging(global: &GlobalOpts) {
    let level = match (global.quiet, global.verbose) {
        (true, _) => log::LevelFilter::Warn,
        (false, 0) => log::LevelFilter::Info,
        (false, _) => log::LevelFilter::Debug,
    };
    // Logs and progress go to stderr (like nextest's own output); stdout carries only the tables.
    let _ = env_logger::Builder::new()
        .filter_level(level)
        .target(env_logger::Target::Pipe(Box::new(progress::LogWriter)))
        .format(|buf, record| {
            let prefix = match record.level() {
                log::Level::Error => "error: ",
                log::Level::Warn => "warning: ",
                _ => "",
            };
            writeln!(buf, "stress-cache: {prefix}{}", record.args())
        })
        .try_init();
}

fn dispatch(args: StressCache) -> Result<()> {
    if let Some(option) = args.misplaced_run_options() {
        return Err(Error::Usage(format!(
            "{option} belongs to a tier run or after the subcommand (e.g. `cargo stress-cache mutants {option} ...`)"
        )));
    }
    let global = args.global;
    if !(global.threshold.is_finite() && global.threshold >= 0.0) {
        return Err(Error::Usage(format!(
            "--threshold must be a non-negative number, got {}",
            global.threshold
        )));
    }
    if global.github_summary {
        github_summary::target()?;
    }
    let cargo = Cargo::from_env(
        global.manifest_path.clone(),
        global.target_dir.clone(),
        global.color.into(),
        global.quiet,
    );
    match args.command {
        None => {
            let mutant = args.run.mutant.as_deref().map(|m| (m, "--mutant"));
            let knobs = Knobs::resolve(&args.run.tier, mutant, env_knobs()?);
            let interrupt = install_interrupt()?;
            let request = Request {
                global: &global,
                target: &args.target,
                tier: &args.run.tier,
                knobs,
                interrupt: &interrupt,
            };
            run_tier(cargo, &request, args.run.repeat)
        }
        Some(Command::List { filtersets }) => list(cargo, &global, &filtersets),
        Some(Command::Clean { keep }) => clean::clean(cargo, &global, keep),
        Some(Command::Report { dirs, html }) => report(&global, &dirs, html),
        Some(Command::Replay { record, times }) => {
            let interrupt = install_interrupt()?;
            replay::replay(cargo, &global, &args.target, &record, times, &interrupt)
        }
        Some(Command::Shrink { record, invariants }) => {
            let interrupt = install_interrupt()?;
            shrink::shrink(cargo, &global, &args.target, &record, &invariants, &interrupt)
        }
        Some(Command::CheckSpec { file }) => {
            let interrupt = install_interrupt()?;
            check_spec(cargo, &global, &file, &interrupt)
        }
        Some(Command::Mutants { target, tier, only, keep_mutant_dirs }) => {
            // STRESS_MUTANT is the default of --only here: a one-mutant matrix.
            let knobs = Knobs::resolve(&tier, None, env_knobs()?);
            let only: Vec<(String, &'static str)> = if only.is_empty() {
                knobs.mutant.iter().cloned().collect()
            } else {
                only.into_iter().map(|m| (m, "--only")).collect()
            };
            let interrupt = install_interrupt()?;
            let request =
                Request { global: &global, target: &target, tier: &tier, knobs, interrupt: &interrupt };
            mutants(cargo, &request, &only, keep_mutant_dirs)
        }
    }
}

/// What a tier run or the mutants matrix was asked for.
struct Request<'a> {
    global: &'a GlobalOpts,
    target: &'a TargetOpts,
    tier: &'a TierOpts,
    knobs: Knobs,
    interrupt: &'a Interrupt,
}

/// From here on SIGINT and SIGTERM end the run with the interrupted verdict instead of killing it.
fn install_interrupt() -> Result<Interrupt> {
    Interrupt::install(Grace::default()).map_err(Error::Signals)
}

/// Stops before the next stage once a signal came.
fn stop_if_interrupted(interrupt: &Interrupt, during: &'static str) -> Result<()> {
    match interrupt.requested() {
        Some(signal) => Err(Error::Interrupted { signal: interrupt::signal_name(signal), during }),
        None => Ok(()),
    }
}

/// What every run needs after setup: workspace, target, and a cargo pinned to the target dir.
pub(crate) struct Setup {
    cargo: Cargo,
    workspace: Workspace,
    target_dir: PathBuf,
    target: Target,
}

fn setup(mut cargo: Cargo, global: &GlobalOpts, target: &TargetOpts) -> Result<Setup> {
    // First, because nothing below is of any use without nextest.
    nextest::check_available(&cargo)?;
    let workspace = Workspace::load(&cargo)?;
    let resolved = workspace.resolve_target(target.package.as_deref(), target.spec.as_deref())?;
    workspace.require_suite()?;
    let target_dir = match &global.target_dir {
        Some(dir) => std::path::absolute(dir).map_err(|source| Error::io("cannot resolve", dir, source))?,
        None => workspace.target_dir().to_path_buf(),
    };
    cargo.set_target_dir(target_dir.clone());
    Ok(Setup { cargo, workspace, target_dir, target: resolved })
}

pub(crate) fn selection(global: &GlobalOpts, tier: &TierOpts) -> Selection {
    Selection {
        filtersets: tier.filtersets.clone(),
        partition: tier.partition.clone(),
        output: nextest::Output::of(global.quiet, global.verbose),
        retries: None,
    }
}

fn run_tier(cargo: Cargo, request: &Request<'_>, repeat: u32) -> Result<()> {
    let Request { global, target, tier, knobs, interrupt } = request;
    let interrupt: &Interrupt = interrupt;
    let setup = setup(cargo, global, target)?;
    stop_if_interrupted(interrupt, "reading the workspace")?;
    if let Some((name, origin)) = &knobs.mutant {
        check_declared(&setup, name, origin)?;
    }
    let mutant = knobs.mutant.as_ref().map(|(m, _)| m.clone());
    rundir::check_usable(tier.run_dir.as_deref())?;
    let baseline = global.baseline.as_deref().map(crate::aggregate::read).transpose()?;
    // The nightly tier's own tests run a few scenarios against seeded bugs (each part shows it catches
    // one), so its binary has them compiled in; without `STRESS_MUTANT` none is active.
    let flavor = if mutant.is_some() || knobs.tier == stress_cache_metadata::Tier::Nightly {
        Flavor::WithMutants
    } else {
        Flavor::Failpoints
    };
    let target_bin = build::target_executable(&setup.cargo, &setup.target, flavor, interrupt)?;
    stop_if_interrupted(interrupt, "building the target")?;
    log::info!("target {} at {}", setup.target.spec.display_name(), target_bin.display());
    let label = match &mutant {
        Some(m) => format!("{}-mutant-{m}", knobs.tier.as_str()),
        None => knobs.tier.as_str().to_string(),
    };
    let prepared = PreparedRun::create(&setup, tier, knobs, &label, target_bin)?;
    let run_dir = &prepared.dir;
    let tier_run = prepared.tier_run(&setup, global, tier, knobs, interrupt);
    let (started, leak_baseline) = (std::time::Instant::now(), leaks::Baseline::take());
    let outcome = tier_run.run(crate::run::Request {
        run_dir,
        repeat,
        mutant: mutant.as_deref(),
        label: &label,
        self_check: true,
    })?;
    let mut agg = outcome.aggregate;
    if knobs.tier == stress_cache_metadata::Tier::Nightly && outcome.interruption.is_none() {
        nightly_summary(run_dir, repeat, &outcome.inputs, &mut agg, outcome.leaks, &leak_baseline, started)?;
    }
    if let Some(base) = &baseline {
        crate::aggregate::compare_with(&mut agg, base, global.threshold, global.fail_on_regression);
    }
    finish(&agg, run_dir, global)
}

/// After a nightly tier run: the leak check of the harness (what the cleaner removed after each nextest
/// run, then `/proc` now), whose findings make the verdict `error`, and `summary.json`.
fn nightly_summary(
    run_dir: &std::path::Path,
    repeat: u32,
    inputs: &inputs::Inputs,
    agg: &mut Aggregate,
    mut leaked: stress_cache_metadata::LeakCounts,
    baseline: &leaks::Baseline,
    started: std::time::Instant,
) -> Result<()> {
    let mut tmp_dirs = vec![run_dir.join("self-check").join("tmp")];
    tmp_dirs.extend((1..=repeat).map(|n| run_dir.join(format!("repeat-{n}")).join("tmp")));
    leaked.add(leaks::check(baseline, run_dir, &tmp_dirs));
    agg.harness_leaks = leaked.evidence.iter().map(|e| format!("LEAK: {e}")).collect();
    let summary = summary::build(inputs, agg, leaked, repeat, started.elapsed());
    let path = summary::write(run_dir, &summary)?;
    log::info!("nightly summary in {}", path.display());
    Ok(())
}

/// `check-spec FILE`: builds nothing (a spec names a program outside the workspace), runs the target
/// once clean through the suite, prints every file of its cache with its role, and decides.
fn check_spec(
    cargo: Cargo,
    global: &GlobalOpts,
    file: &std::path::Path,
    interrupt: &Interrupt,
) -> Result<()> {
    let target = TargetOpts { package: None, spec: Some(file.to_path_buf()) };
    let setup = setup(cargo, global, &target)?;
    let target_bin = build::target_executable(&setup.cargo, &setup.target, Flavor::Failpoints, interrupt)?;
    let dir = rundir::create(&setup.target_dir.join("stress-cache"), "check-spec", None)?;
    let spec = rundir::write_spec(&dir, &setup.target.spec, &target_bin)?;
    let (fixtures, _) = stress_cache_runner::fixtures::prepare(
        &target_bin,
        &setup.target.spec,
        &setup.target_dir.join("stress-cache").join("fixtures"),
    )?;
    let tmp_dir = tmpdir::create(&dir)?;
    let env = stress_cache_metadata::SuiteEnv {
        target_bin: Some(target_bin),
        target_spec: Some(spec),
        fixtures: Some(fixtures),
        tier: Some(Tier::Pr),
        results_dir: Some(rundir::subdir(&dir, "records")?),
        keep_dir: Some(rundir::subdir(&dir, "kept")?),
        mutant: None,
        seed: None,
        processes: None,
        trace: Some(false),
        tmp_dir: Some(tmp_dir.clone()),
        spec_check_out: Some(dir.join("spec-check.json")),
        replay_plan: None,
    };
    let report =
        checkspec::observe(&setup.cargo, &env, nextest::Output::of(global.quiet, global.verbose), interrupt);
    let _ = tmpdir::clean(&tmp_dir);
    let report = report?;
    emit(&checkspec::render(&report));
    checkspec::verdict(&report, file)?;
    stderr_line(&format!(
        "stress-cache: spec {} fits: every file of a clean run has exactly one role",
        file.display()
    ));
    Ok(())
}

/// Fails unless the target declares the mutant `name` (given by `origin`, a flag or `STRESS_MUTANT`).
fn check_declared(setup: &Setup, name: &str, origin: &'static str) -> Result<()> {
    let known = setup.target.spec.mutant_names();
    if known.iter().any(|m| m == name) {
        return Ok(());
    }
    Err(Error::UnknownMutant { name: name.to_string(), origin, known: known.join(", ") })
}

fn list(cargo: Cargo, global: &GlobalOpts, filtersets: &[String]) -> Result<()> {
    nextest::check_available(&cargo)?;
    let workspace = Workspace::load(&cargo)?;
    workspace.require_suite()?;
    let selection = Selection {
        filtersets: filtersets.to_vec(),
        partition: None,
        output: nextest::Output::of(global.quiet, global.verbose),
        retries: None,
    };
    let scenarios = match nextest::list(&cargo, Tier::Pr.nextest_profile(), &selection, None)? {
        nextest::Listed::Scenarios(suite) => suite.scenarios,
        // Without an interrupt nothing can stop the listing but the listing's own exit.
        nextest::Listed::Stopped(_) => Vec::new(),
    };
    if global.format == cli::Format::Json {
        emit(&format!("{}\n", serde_json::to_string_pretty(&scenarios).unwrap_or_else(|_| "[]".into())));
        return Ok(());
    }
    let mut table = comfy_table::Table::new();
    table.load_preset(if global.format == cli::Format::Markdown {
        comfy_table::presets::ASCII_MARKDOWN
    } else {
        comfy_table::presets::UTF8_FULL_CONDENSED
    });
    table.set_header(vec!["test binary", "scenario"]);
    for s in &scenarios {
        table.add_row(vec![s.binary.as_str(), s.name.as_str()]);
    }
    emit(&format!("{table}\n"));
    log::info!("{} scenarios", scenarios.len());
    Ok(())
}

fn report(global: &GlobalOpts, dirs: &[PathBuf], html: bool) -> Result<()> {
    let inputs = inputs::collect(dirs)?;
    if inputs.is_empty() {
        let dirs = dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(", ");
        return Err(Error::NoResults { dirs });
    }
    let mut agg = crate::aggregate::from_inputs(&inputs);
    if let Some(path) = &global.baseline {
        crate::aggregate::compare_with(
            &mut agg,
            &crate::aggregate::read(path)?,
            global.threshold,
            global.fail_on_regression,
        );
    }
    // `report` exists to read the tables: always the full ones.
    emit(&report::render_with(&agg, global.format, stdout_color(global.color)));
    publish::after_report(dirs, &agg, global, html)?;
    log_findings(&agg);
    print_notes(&agg);
    let outcome = crate::aggregate::outcome(&agg);
    if outcome.is_ok() {
        log::info!("{}", report::summary_line(&agg));
    }
    outcome
}

fn mutants(
    cargo: Cargo,
    request: &Request<'_>,
    only: &[(String, &'static str)],
    keep_mutant_dirs: bool,
) -> Result<()> {
    let Request { global, target, tier, knobs, interrupt } = request;
    let interrupt: &Interrupt = interrupt;
    let setup = setup(cargo, global, target)?;
    stop_if_interrupted(interrupt, "reading the workspace")?;
    let declared: Vec<String> = setup.target.spec.mutant_names().to_vec();
    if declared.is_empty() {
        return Err(stress_cache_runner::RunnerError::MissingFeature {
            package: setup.target.spec.display_name().to_string(),
            problem: "declares no mutants (`[package.metadata.stress-cache.mutants] names`)".into(),
        }
        .into());
    }
    for (name, origin) in only {
        check_declared(&setup, name, origin)?;
    }
    let chosen: Vec<String> =
        if only.is_empty() { declared } else { only.iter().map(|(m, _)| m.clone()).collect() };
    rundir::check_usable(tier.run_dir.as_deref())?;
    // One build with both features serves the clean run too: without STRESS_MUTANT no bug is active.
    let target_bin = build::target_executable(&setup.cargo, &setup.target, Flavor::WithMutants, interrupt)?;
    stop_if_interrupted(interrupt, "building the target")?;
    let label = format!("mutants-{}", knobs.tier.as_str());
    let prepared = PreparedRun::create(&setup, tier, knobs, &label, target_bin)?;
    let run_dir = &prepared.dir;
    let tier_run = prepared.tier_run(&setup, global, tier, knobs, interrupt);
    let killed_by = setup.target.spec.mutants.as_ref().map(|m| m.killed_by.clone()).unwrap_or_default();
    let plan = mutants::MatrixPlan { mutants: &chosen, killed_by: &killed_by, keep_dirs: keep_mutant_dirs };
    let matrix = mutants::run(&tier_run, run_dir, &plan)?;
    emit(&matrix.render(global.format));
    publish::after_mutants(run_dir, &matrix, global)?;
    for row in matrix.mutants.iter().filter(|m| m.class != MutantClass::KilledWhereExpected) {
        let expected =
            if row.expected.is_empty() { "none declared".to_string() } else { row.expected.join(", ") };
        log::warn!("mutant `{}`: {} (expected to be killed in: {expected})", row.mutant, row.class.as_str());
    }
    if !matrix.clean_passed() && matrix.interrupted.is_none() {
        log::warn!("the clean build did not pass: {}", matrix.clean.as_str());
    }
    if let Some(interrupted) = &matrix.interrupted {
        stderr_line(&format!("stress-cache: {interrupted}"));
    }
    stderr_line(&format!("stress-cache: artifacts in {}", run_dir.display()));
    matrix.outcome()
}
