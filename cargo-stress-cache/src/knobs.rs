//! The `STRESS_*` knobs a user may set in the environment ([`stress_cache_metadata::suite_env`]): each
//! is the default of the matching flag, and each is validated before anything is built, so a typo
//! costs one line and exit 2 instead of a build followed by a run with the wrong size (or none).

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use stress_cache_metadata::suite_env;
use stress_cache_metadata::{SuiteEnv, Tier};

use crate::cli::TierOpts;
use crate::errors::{Error, Result};

/// The suite environment this process was started with, read as the suite itself would read it
/// ([`SuiteEnv::from_lookup`]), its directories checked: the `STRESS_*` knobs, the defaults of their
/// flags. An empty value counts as unset.
pub fn env_knobs() -> Result<SuiteEnv> {
    env_knobs_from(|name| std::env::var_os(name))
}

/// [`env_knobs`] with an injectable lookup (for tests).
pub fn env_knobs_from(lookup: impl Fn(&str) -> Option<OsString>) -> Result<SuiteEnv> {
    let mut env = SuiteEnv::from_lookup(lookup)?;
    let dir = |name: &str, value: &Option<PathBuf>| value.as_deref().map(|v| usable_dir(name, v)).transpose();
    env.results_dir = dir(suite_env::RESULTS_DIR, &env.results_dir)?;
    env.keep_dir = dir(suite_env::KEEP_DIR, &env.keep_dir)?;
    Ok(env)
}

/// A directory a knob names: absolute, and a directory or creatable as one (its nearest existing
/// ancestor is a directory).
fn usable_dir(var: &str, value: &Path) -> Result<PathBuf> {
    let path = std::path::absolute(value).map_err(|source| Error::io("cannot resolve", value, source))?;
    let not_a_dir = |p: &Path| {
        Error::Usage(format!("{var}={} cannot be used: {} is not a directory", value.display(), p.display()))
    };
    let mut probe = Some(path.as_path());
    while let Some(p) = probe {
        if p.exists() {
            return if p.is_dir() { Ok(path.clone()) } else { Err(not_a_dir(p)) };
        }
        probe = p.parent();
    }
    Ok(path)
}

/// The knobs of one run: the flag if given, else the environment, else the default.
#[derive(Debug, Clone, PartialEq)]
pub struct Knobs {
    /// Tier (default `pr`).
    pub tier: Tier,
    /// `STRESS_PROCESSES` for the suite.
    pub processes: Option<usize>,
    /// `STRESS_SEED` for the suite.
    pub seed: Option<u64>,
    /// The seeded bug of a tier run, and where it was given (for the error naming an unknown one).
    pub mutant: Option<(String, &'static str)>,
    /// Parent of the run directories (default `<target dir>/stress-cache`).
    pub results_dir: Option<PathBuf>,
    /// Where kept temp dirs go (default inside each repeat's directory).
    pub keep_dir: Option<PathBuf>,
    /// `STRESS_TRACE` for the suite.
    pub trace: Option<bool>,
}

impl Knobs {
    /// Merges the flags of a run with the environment; `mutant_flag` is `--mutant` (tier runs) or the
    /// one `--only` of `mutants`, `None` where the command has none.
    pub fn resolve(tier: &TierOpts, mutant_flag: Option<(&str, &'static str)>, env: SuiteEnv) -> Self {
        let mutant = match mutant_flag {
            Some((name, flag)) => Some((name.to_string(), flag)),
            None => env.mutant.map(|m| (m, suite_env::MUTANT)),
        };
        Knobs {
            tier: tier.tier.or(env.tier).unwrap_or(Tier::Pr),
            processes: tier.processes.or(env.processes),
            seed: tier.seed.or(env.seed),
            mutant,
            results_dir: env.results_dir,
            keep_dir: env.keep_dir,
            trace: env.trace,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs(vars: &[(&str, &str)]) -> Result<SuiteEnv> {
        let vars: Vec<(String, OsString)> =
            vars.iter().map(|(k, v)| (k.to_string(), OsString::from(v))).collect();
        env_knobs_from(|name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone()))
    }

    #[test]
    fn unset_and_empty_knobs_are_absent() {
        assert_eq!(knobs(&[]).unwrap(), SuiteEnv::default());
        assert_eq!(
            knobs(&[(suite_env::TIER, ""), (suite_env::PROCESSES, " ")]).unwrap(),
            SuiteEnv::default()
        );
    }

    #[test]
    fn valid_knobs_parse_as_the_suite_reads_them() {
        let k = knobs(&[
            (suite_env::TIER, "nightly"),
            (suite_env::PROCESSES, "8"),
            (suite_env::SEED, "0x10"),
            (suite_env::MUTANT, " no-lock "),
            (suite_env::RESULTS_DIR, "/nonexistent/results"),
        ])
        .unwrap();
        assert_eq!(k.tier, Some(Tier::Nightly));
        assert_eq!((k.processes, k.seed), (Some(8), Some(16)));
        assert_eq!(k.mutant.as_deref(), Some("no-lock"));
        assert_eq!(k.results_dir.as_deref(), Some(Path::new("/nonexistent/results")));
    }

    #[test]
    fn each_invalid_knob_is_one_line_naming_the_variable() {
        let file = tempfile::NamedTempFile::new().unwrap();
        let file = file.path().to_str().unwrap();
        let under_file = format!("{file}/sub");
        for (var, value, expected) in [
            (
                suite_env::PROCESSES,
                "abc",
                format!("{}=\"abc\" is not a positive integer", suite_env::PROCESSES),
            ),
            (suite_env::PROCESSES, "0", format!("{}=\"0\" is not a positive integer", suite_env::PROCESSES)),
            (suite_env::TIER, "weekly", format!("{}=\"weekly\" is not `pr` or `nightly`", suite_env::TIER)),
            (
                suite_env::SEED,
                "0xzz",
                format!("{}=\"0xzz\" is not a u64 (decimal or 0x hex)", suite_env::SEED),
            ),
            (suite_env::KEEP_DIR, file, "is not a directory".to_string()),
            (suite_env::RESULTS_DIR, &under_file, "is not a directory".to_string()),
        ] {
            let err = knobs(&[(var, value)]).unwrap_err().to_string();
            assert!(err.contains(&expected), "{var}={value}: {err}");
            assert!(err.starts_with(var), "{err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }

    #[test]
    fn flags_win_over_the_environment_which_wins_over_defaults() {
        let env = SuiteEnv {
            tier: Some(Tier::Nightly),
            processes: Some(4),
            seed: Some(9),
            mutant: Some("no-lock".into()),
            ..SuiteEnv::default()
        };
        let mut opts = TierOpts {
            tier: None,
            filtersets: vec![],
            partition: None,
            run_dir: None,
            seed: Some(1),
            processes: None,
            keep: 20,
        };
        let k = Knobs::resolve(&opts, None, env.clone());
        assert_eq!((k.tier, k.processes, k.seed), (Tier::Nightly, Some(4), Some(1)));
        assert_eq!(k.mutant, Some(("no-lock".to_string(), suite_env::MUTANT)));
        opts.tier = Some(Tier::Pr);
        let k = Knobs::resolve(&opts, Some(("direct-write", "--mutant")), env);
        assert_eq!(k.tier, Tier::Pr);
        assert_eq!(k.mutant, Some(("direct-write".to_string(), "--mutant")));
        assert_eq!(Knobs::resolve(&opts, None, SuiteEnv::default()).tier, Tier::Pr);
    }
}
