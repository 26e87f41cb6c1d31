//! The environment through which `cargo stress-cache` configures the suite: every `STRESS_*` name,
//! defined once so both sides spell it the same, and the parsers of the values both sides accept.
//!
//! An empty value means "not set" for every variable (as a shell's `STRESS_SEED= cargo ...` intends).
//! Outside this crate the names are used only through [`SuiteEnv`] (and, for messages, these constants).

use std::ffi::OsString;
use std::path::PathBuf;
use std::process::Command;

pub use crate::tier::Tier;

/// Path of the executable under test (built with its failpoints feature, plus mutants for mutant runs).
pub const TARGET_BIN: &str = "STRESS_TARGET_BIN";
/// Path of a TOML target declaration (`TargetSpec`) the suite reads instead of the workspace's.
pub const TARGET_SPEC: &str = "STRESS_TARGET_SPEC";
/// Tier: `pr` (the default) or `nightly`.
pub const TIER: &str = "STRESS_TIER";
/// Cap on processes per scenario: a positive integer.
pub const PROCESSES: &str = "STRESS_PROCESSES";
/// Seed of a run: a u64, decimal or `0x` hex.
pub const SEED: &str = "STRESS_SEED";
/// Seeded bug every process of the run is started with (one the target declares).
pub const MUTANT: &str = "STRESS_MUTANT";
/// Where scenario records go.
pub const RESULTS_DIR: &str = "STRESS_RESULTS_DIR";
/// Where the temp dirs of failed scenarios are kept for debugging.
pub const KEEP_DIR: &str = "STRESS_KEEP_DIR";
/// Where scenarios create their temp dirs (and mount their tmpfs); whoever sets it removes what is left.
pub const TMP_DIR: &str = "STRESS_TMP_DIR";

/// `on` (the default) or `off`: record every target process's file-system operations (off, the trace
/// invariants are reported skipped, never held).
pub const TRACE: &str = "STRESS_TRACE";

/// Where the spec check (`cargo stress-cache check-spec`) writes its [`crate::SpecCheckReport`].
pub const SPEC_CHECK_OUT: &str = "STRESS_SPEC_CHECK_OUT";

/// Path of the [`crate::FixtureSet`] the runner prepared for [`TARGET_BIN`]: with it the suite reads
/// the fixtures instead of producing them again in every test process.
pub const FIXTURES: &str = "STRESS_FIXTURES";

/// Path of a [`crate::RunPlan`] to replay: the scenario runs with its seed, tier, mutant and caps instead
/// of the other variables' (`cargo stress-cache replay` and `shrink` set it).
pub const REPLAY_PLAN: &str = "STRESS_REPLAY_PLAN";

/// Every name above.
pub const ALL: [&str; 13] = [
    TARGET_BIN,
    TARGET_SPEC,
    TIER,
    PROCESSES,
    SEED,
    MUTANT,
    RESULTS_DIR,
    KEEP_DIR,
    TMP_DIR,
    TRACE,
    SPEC_CHECK_OUT,
    FIXTURES,
    REPLAY_PLAN,
];

/// The whole environment the CLI hands to the suite, typed: the CLI builds one and [`SuiteEnv::apply`]s
/// it to the nextest command; the suite reads it back with [`SuiteEnv::from_env`]. `None` is "not set"
/// (the suite's default, or — for the target — "find and build it yourself").
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SuiteEnv {
    /// [`TARGET_BIN`].
    pub target_bin: Option<PathBuf>,
    /// [`TARGET_SPEC`].
    pub target_spec: Option<PathBuf>,
    /// [`FIXTURES`].
    pub fixtures: Option<PathBuf>,
    /// [`TIER`] (default [`Tier::Pr`]).
    pub tier: Option<Tier>,
    /// [`PROCESSES`].
    pub processes: Option<usize>,
    /// [`SEED`].
    pub seed: Option<u64>,
    /// [`MUTANT`].
    pub mutant: Option<String>,
    /// [`RESULTS_DIR`].
    pub results_dir: Option<PathBuf>,
    /// [`KEEP_DIR`].
    pub keep_dir: Option<PathBuf>,
    /// [`TMP_DIR`].
    pub tmp_dir: Option<PathBuf>,
    /// [`TRACE`] (default on).
    pub trace: Option<bool>,
    /// [`SPEC_CHECK_OUT`].
    pub spec_check_out: Option<PathBuf>,
    /// [`REPLAY_PLAN`].
    pub replay_plan: Option<PathBuf>,
}

impl SuiteEnv {
    /// Reads every variable from this process's environment (an empty value is "not set").
    pub fn from_env() -> Result<Self, BadValue> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// [`SuiteEnv::from_env`] with an injectable lookup.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, BadValue> {
        let text = |name: &str| -> Result<Option<String>, BadValue> {
            match lookup(name) {
                None => Ok(None),
                Some(v) => match v.into_string() {
                    Ok(s) if s.trim().is_empty() => Ok(None),
                    Ok(s) => Ok(Some(s)),
                    Err(v) => Err(BadValue::new(name, &v.to_string_lossy(), "valid UTF-8")),
                },
            }
        };
        let path = |name: &str| lookup(name).filter(|v| !v.is_empty()).map(PathBuf::from);
        Ok(SuiteEnv {
            target_bin: path(TARGET_BIN),
            target_spec: path(TARGET_SPEC),
            fixtures: path(FIXTURES),
            tier: text(TIER)?.map(|v| parse_tier(TIER, &v)).transpose()?,
            processes: text(PROCESSES)?.map(|v| parse_processes(PROCESSES, &v)).transpose()?,
            seed: text(SEED)?.map(|v| parse_seed(SEED, &v)).transpose()?,
            mutant: text(MUTANT)?.map(|v| v.trim().to_string()),
            results_dir: path(RESULTS_DIR),
            keep_dir: path(KEEP_DIR),
            tmp_dir: path(TMP_DIR),
            trace: text(TRACE)?.map(|v| parse_trace(TRACE, &v)).transpose()?,
            spec_check_out: path(SPEC_CHECK_OUT),
            replay_plan: path(REPLAY_PLAN),
        })
    }

    /// Sets this environment on `cmd`, and removes every other `STRESS_*` variable: an inherited one
    /// (say `STRESS_MUTANT`, which would silently turn a clean run into a mutant run) never reaches the
    /// suite unvalidated.
    pub fn apply(&self, cmd: &mut Command) {
        for name in ALL {
            cmd.env_remove(name);
        }
        let paths = [
            (TARGET_BIN, &self.target_bin),
            (TARGET_SPEC, &self.target_spec),
            (FIXTURES, &self.fixtures),
            (RESULTS_DIR, &self.results_dir),
            (KEEP_DIR, &self.keep_dir),
            (TMP_DIR, &self.tmp_dir),
            (SPEC_CHECK_OUT, &self.spec_check_out),
            (REPLAY_PLAN, &self.replay_plan),
        ];
        for (name, value) in paths {
            if let Some(v) = value {
                cmd.env(name, v);
            }
        }
        if let Some(tier) = self.tier {
            cmd.env(TIER, tier.as_str());
        }
        if let Some(n) = self.processes {
            cmd.env(PROCESSES, n.to_string());
        }
        if let Some(seed) = self.seed {
            cmd.env(SEED, seed.to_string());
        }
        if let Some(m) = &self.mutant {
            cmd.env(MUTANT, m);
        }
        if let Some(trace) = self.trace {
            cmd.env(TRACE, if trace { "on" } else { "off" });
        }
    }

    /// The tier (default [`Tier::Pr`]).
    pub fn tier_or_default(&self) -> Tier {
        self.tier.unwrap_or_default()
    }

    /// Whether target processes are traced (default on).
    pub fn trace_or_default(&self) -> bool {
        self.trace.unwrap_or(true)
    }
}

/// A `STRESS_*` value that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}={value:?} is not {expected}")]
pub struct BadValue {
    /// The variable (or option) name.
    pub var: String,
    /// The value found.
    pub value: String,
    /// What was expected, e.g. "a positive integer".
    pub expected: &'static str,
}

impl BadValue {
    fn new(var: &str, value: &str, expected: &'static str) -> Self {
        BadValue { var: var.to_string(), value: value.to_string(), expected }
    }
}

/// Parses a [`TIER`] value (`pr` or `nightly`).
pub fn parse_tier(var: &str, value: &str) -> Result<Tier, BadValue> {
    Tier::from_name(value.trim()).ok_or_else(|| BadValue::new(var, value, "`pr` or `nightly`"))
}

/// Parses a [`PROCESSES`] value: a positive integer (0 processes would check nothing).
pub fn parse_processes(var: &str, value: &str) -> Result<usize, BadValue> {
    value
        .trim()
        .parse()
        .ok()
        .filter(|n| *n > 0)
        .ok_or_else(|| BadValue::new(var, value, "a positive integer"))
}

/// Parses a [`SEED`] value: a u64, decimal or `0x` hex.
pub fn parse_seed(var: &str, value: &str) -> Result<u64, BadValue> {
    let v = value.trim();
    let parsed = match v.strip_prefix("0x").or_else(|| v.strip_prefix("0X")) {
        Some(hex) => u64::from_str_radix(hex, 16).ok(),
        None => v.parse().ok(),
    };
    parsed.ok_or_else(|| BadValue::new(var, value, "a u64 (decimal or 0x hex)"))
}

/// Parses a [`TRACE`] value: `on` or `off`.
pub fn parse_trace(var: &str, value: &str) -> Result<bool, BadValue> {
    match value.trim() {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(BadValue::new(var, value, "`on` or `off`")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_is_a_distinct_stress_variable() {
        let mut names = ALL.to_vec();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), ALL.len());
        assert!(ALL.iter().all(|n| n.starts_with("STRESS_")));
    }

    #[test]
    fn tier_accepts_the_two_tiers_only() {
        assert_eq!(parse_tier(TIER, " nightly "), Ok(Tier::Nightly));
        let err = parse_tier(TIER, "weekly").unwrap_err().to_string();
        assert_eq!(err, "STRESS_TIER=\"weekly\" is not `pr` or `nightly`");
    }

    #[test]
    fn applied_env_reads_back_the_same() {
        let env = SuiteEnv {
            target_bin: Some("/bin/target".into()),
            target_spec: Some("/run/spec.toml".into()),
            fixtures: Some("/run/fixtures.json".into()),
            tier: Some(Tier::Nightly),
            processes: Some(8),
            seed: Some(0x10),
            mutant: Some("no-lock".into()),
            results_dir: Some("/run/records".into()),
            keep_dir: Some("/run/kept".into()),
            tmp_dir: Some("/run/tmp".into()),
            trace: Some(false),
            spec_check_out: Some("/run/spec-check.json".into()),
            replay_plan: Some("/run/plan.json".into()),
        };
        let mut cmd = Command::new("true");
        cmd.env(MUTANT, "inherited");
        env.apply(&mut cmd);
        let vars: Vec<(OsString, Option<OsString>)> =
            cmd.get_envs().map(|(k, v)| (k.to_owned(), v.map(|v| v.to_owned()))).collect();
        let read =
            SuiteEnv::from_lookup(|name| vars.iter().find(|(k, _)| k == name).and_then(|(_, v)| v.clone()))
                .unwrap();
        assert_eq!(read, env);
        let mut cleared = Command::new("true");
        cleared.env(MUTANT, "inherited");
        SuiteEnv::default().apply(&mut cleared);
        assert!(cleared.get_envs().all(|(k, v)| !ALL.iter().any(|n| k == *n) || v.is_none()));
    }

    #[test]
    fn processes_must_be_a_positive_integer() {
        assert_eq!(parse_processes(PROCESSES, "8"), Ok(8));
        for bad in ["0", "abc", "-3", ""] {
            assert!(parse_processes(PROCESSES, bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn seed_is_decimal_or_hex() {
        assert_eq!(parse_seed(SEED, "24301"), Ok(24301));
        assert_eq!(parse_seed(SEED, "0x5eed"), Ok(0x5eed));
        assert!(parse_seed(SEED, "0xzz").is_err());
        assert!(parse_seed(SEED, "seed").is_err());
    }
}
