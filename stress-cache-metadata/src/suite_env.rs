//! The environment through which `cargo stress-cache` configures the suite: every `STRESS_*` name,
//! defined once so both sides spell it the same, and the parsers of the values both sides accept.
//!
//! An empty value means "not set" for every variable (as a shell's `STRESS_SEED= cargo ...` intends).

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

/// Every name above.
pub const ALL: [&str; 11] = [
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
];

/// The tiers `STRESS_TIER` accepts.
pub const TIERS: [&str; 2] = ["pr", "nightly"];

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

/// Parses a [`TIER`] value (`pr` or `nightly`), returning its canonical name.
pub fn parse_tier(var: &str, value: &str) -> Result<&'static str, BadValue> {
    let trimmed = value.trim();
    TIERS.into_iter().find(|t| *t == trimmed).ok_or_else(|| BadValue::new(var, value, "`pr` or `nightly`"))
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
        assert_eq!(parse_tier(TIER, " nightly "), Ok("nightly"));
        let err = parse_tier(TIER, "weekly").unwrap_err().to_string();
        assert_eq!(err, "STRESS_TIER=\"weekly\" is not `pr` or `nightly`");
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
