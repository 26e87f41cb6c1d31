//! Driving cargo-nextest: the availability check, one run of a tier's profile with the suite's
//! environment, and the scenario list.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use nextest_metadata::{NextestExitCode, TestListSummary};
use stress_cache_metadata::suite_env;

use crate::cargo::{Cargo, display_command};
use crate::cli::Tier;
use crate::errors::{Error, Result, one_line};
use crate::workspace::SUITE_PACKAGE;

/// Fails with [`Error::NextestMissing`] unless `cargo nextest --version` works.
pub fn check_available(cargo: &Cargo) -> Result<()> {
    let mut cmd = Command::new(cargo.program());
    cmd.args(["nextest", "--version"]).stdin(Stdio::null());
    let shown = display_command(&cmd);
    let output = cmd.output().map_err(|source| Error::Spawn { command: shown, source })?;
    if output.status.success() {
        return Ok(());
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    let first = stderr.lines().map(str::trim).find(|l| !l.is_empty()).unwrap_or("`cargo nextest` failed");
    Err(Error::NextestMissing { detail: one_line(first.trim_start_matches("error:").trim()) })
}

/// The environment contract between `cargo stress-cache` and the suite (docs/CONTRACTS.md).
#[derive(Debug, Clone)]
pub struct SuiteEnv {
    /// `STRESS_TARGET_BIN`.
    pub target_bin: PathBuf,
    /// `STRESS_TARGET_SPEC`.
    pub target_spec: PathBuf,
    /// `STRESS_TIER`.
    pub tier: Tier,
    /// `STRESS_RESULTS_DIR`.
    pub results_dir: PathBuf,
    /// `STRESS_KEEP_DIR`.
    pub keep_dir: PathBuf,
    /// `STRESS_MUTANT`.
    pub mutant: Option<String>,
    /// `STRESS_SEED`.
    pub seed: Option<u64>,
    /// `STRESS_PROCESSES`.
    pub processes: Option<usize>,
}

impl SuiteEnv {
    fn apply(&self, cmd: &mut Command) {
        // Every variable is set or removed: an inherited one (say STRESS_MUTANT, which would silently
        // turn a clean run into a mutant run) never reaches the suite unvalidated.
        for name in suite_env::ALL {
            cmd.env_remove(name);
        }
        cmd.env(suite_env::TARGET_BIN, &self.target_bin)
            .env(suite_env::TARGET_SPEC, &self.target_spec)
            .env(suite_env::TIER, self.tier.as_str())
            .env(suite_env::RESULTS_DIR, &self.results_dir)
            .env(suite_env::KEEP_DIR, &self.keep_dir);
        if let Some(m) = &self.mutant {
            cmd.env(suite_env::MUTANT, m);
        }
        if let Some(seed) = self.seed {
            cmd.env(suite_env::SEED, seed.to_string());
        }
        if let Some(n) = self.processes {
            cmd.env(suite_env::PROCESSES, n.to_string());
        }
    }
}

/// Selection and display options of a nextest run.
#[derive(Debug, Clone, Default)]
pub struct Selection {
    /// `-E` filtersets.
    pub filtersets: Vec<String>,
    /// `--partition`.
    pub partition: Option<String>,
    /// Quieter nextest output (only failures).
    pub quiet: bool,
}

/// How one nextest run ended.
#[derive(Debug)]
pub struct RunOutcome {
    /// nextest's exit code: 0 (all passed) or 100 (some test failed); other codes are errors.
    pub exit_code: i32,
    /// The JUnit report nextest wrote, if it wrote one.
    pub junit: Option<PathBuf>,
}

/// Where nextest writes a profile's JUnit file (`[profile.<name>.junit] path = "junit.xml"` in
/// `.config/nextest.toml`): the store dir is `<target dir>/nextest`.
pub fn junit_candidates(workspace_root: &Path, target_dir: &Path, profile: &str) -> Vec<PathBuf> {
    let mut candidates = vec![target_dir.join("nextest").join(profile).join("junit.xml")];
    let default = workspace_root.join("target").join("nextest").join(profile).join("junit.xml");
    if !candidates.contains(&default) {
        candidates.push(default);
    }
    candidates
}

/// Runs `cargo nextest run -p stress-tests --profile <tier profile>` once with the suite environment.
/// Nextest's output (progress bar, failures) goes straight to stderr.
pub fn run_tier(
    cargo: &Cargo,
    workspace_root: &Path,
    target_dir: &Path,
    env: &SuiteEnv,
    selection: &Selection,
) -> Result<RunOutcome> {
    let profile = env.tier.profile();
    let junit_paths = junit_candidates(workspace_root, target_dir, profile);
    // A JUnit file left by an earlier run must never be mistaken for this run's.
    for path in &junit_paths {
        match std::fs::remove_file(path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(Error::io("cannot remove stale JUnit report", path, source)),
        }
    }
    let mut cmd = cargo.command(&["nextest", "run", "--package", SUITE_PACKAGE, "--profile", profile]);
    for expr in scenario_filtersets(&selection.filtersets) {
        cmd.arg("-E").arg(expr);
    }
    if let Some(partition) = &selection.partition {
        cmd.arg("--partition").arg(partition);
    }
    if env.mutant.is_some() {
        // A seeded bug is meant to fail scenarios; retrying them only doubles the time of mutant runs.
        cmd.args(["--retries", "0"]);
    }
    if selection.quiet {
        cmd.args(["--status-level", "fail", "--final-status-level", "fail", "--cargo-quiet"]);
    }
    env.apply(&mut cmd);
    cmd.stdin(Stdio::null()).stdout(Stdio::inherit()).stderr(Stdio::inherit());
    let shown = display_command(&cmd);
    log::debug!("running {shown}");
    let status = cmd.status().map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    let Some(code) = status.code() else {
        return Err(Error::Nextest { command: shown, code: -1, meaning: "killed by a signal" });
    };
    if code != NextestExitCode::OK && code != NextestExitCode::TEST_RUN_FAILED {
        return Err(Error::Nextest { command: shown, code, meaning: exit_meaning(code) });
    }
    let junit = junit_paths.into_iter().find(|p| p.is_file());
    Ok(RunOutcome { exit_code: code, junit })
}

fn exit_meaning(code: i32) -> &'static str {
    match code {
        NextestExitCode::BUILD_FAILED => "the suite failed to build",
        NextestExitCode::CARGO_METADATA_FAILED => "cargo metadata failed",
        NextestExitCode::NO_TESTS_RUN => "no tests matched",
        NextestExitCode::TEST_LIST_CREATION_FAILED => "listing the tests failed",
        NextestExitCode::SETUP_ERROR => "setup error, e.g. bad .config/nextest.toml or unknown profile",
        NextestExitCode::INVALID_FILTERSET => "invalid filterset",
        NextestExitCode::REQUIRED_VERSION_NOT_MET => "cargo-nextest is too old",
        NextestExitCode::INCOMPLETE_RUN => "the run was interrupted",
        _ => "see nextest's output above",
    }
}

/// The scenarios: the suite's integration tests (`stress-tests/tests/*.rs`) minus its self-checks.
/// The library's unit tests, the model server's wire tests and `mutants_are_killed` (which runs
/// scenarios against *every* seeded bug itself) test the suite, not the target, so a tier or a
/// mutants row does not run them. nextest unions several `-E`, so each user filterset is intersected.
pub fn scenario_filtersets(user: &[String]) -> Vec<String> {
    const SCENARIOS: &str = "kind(test) & !binary(/^(server|mutants_are_killed|core_smoke)$/)";
    if user.is_empty() {
        return vec![SCENARIOS.to_string()];
    }
    user.iter().map(|expr| format!("{SCENARIOS} & ({expr})")).collect()
}

/// One scenario of the suite.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Scenario {
    /// Test binary (e.g. `stress-tests::crash`).
    pub binary: String,
    /// Test name (the scenario name).
    pub name: String,
}

/// `cargo nextest list -p stress-tests --message-format json`, read with nextest-metadata.
pub fn list(cargo: &Cargo, filtersets: &[String]) -> Result<Vec<Scenario>> {
    let mut cmd = cargo.command(&["nextest", "list", "--package", SUITE_PACKAGE, "--message-format", "json"]);
    for expr in scenario_filtersets(filtersets) {
        cmd.arg("-E").arg(expr);
    }
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let shown = display_command(&cmd);
    log::debug!("running {shown}");
    let output = cmd.output().map_err(|source| Error::Spawn { command: shown.clone(), source })?;
    if !output.status.success() {
        let code = output.status.code().unwrap_or(-1);
        return Err(Error::Nextest { command: shown, code, meaning: exit_meaning(code) });
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let summary = TestListSummary::parse_json(text.as_ref()).map_err(|e| Error::Parse {
        what: "nextest test list",
        path: PathBuf::from(shown),
        message: one_line(&e.to_string()),
    })?;
    let mut scenarios = Vec::new();
    for (binary_id, suite) in &summary.rust_suites {
        for (name, case) in &suite.test_cases {
            if case.filter_match.is_match() {
                scenarios.push(Scenario { binary: binary_id.to_string(), name: name.to_string() });
            }
        }
    }
    Ok(scenarios)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn user_filtersets_are_intersected_with_the_scenario_binaries() {
        assert_eq!(
            scenario_filtersets(&[]),
            vec!["kind(test) & !binary(/^(server|mutants_are_killed|core_smoke)$/)"]
        );
        let user = vec!["test(crash)".to_string(), "binary(gc)".to_string()];
        assert_eq!(
            scenario_filtersets(&user),
            vec![
                "kind(test) & !binary(/^(server|mutants_are_killed|core_smoke)$/) & (test(crash))",
                "kind(test) & !binary(/^(server|mutants_are_killed|core_smoke)$/) & (binary(gc))"
            ]
        );
    }
}
