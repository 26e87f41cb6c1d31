//! Whether a recorded [`RunPlan`] can still be run against the current target: every failpoint it arms
//! and its mutant still declared, its fixtures the same bytes. A plan that no longer fits is a setup
//! error (exit 2) before anything runs — never a verdict about the target.

use stress_cache_metadata::{FixtureSet, RunPlan, ScenarioRecord, TargetSpec};

/// Why a recorded plan cannot be replayed against this target.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PlanMismatch {
    /// The record was written before plans were recorded.
    #[error("record {record} has no plan (written before plans were recorded): run its scenario again")]
    NoPlan {
        /// The record's path.
        record: String,
    },
    /// The plan arms a failpoint the target no longer declares.
    #[error(
        "the plan arms failpoint `{name}`, which target {target} no longer declares (declared: {declared})"
    )]
    Failpoint {
        /// The failpoint.
        name: String,
        /// The target's name.
        target: String,
        /// The declared failpoints.
        declared: String,
    },
    /// The plan's seeded bug is not declared by the target.
    #[error("the plan runs seeded bug `{name}`, which target {target} does not declare")]
    Mutant {
        /// The mutant.
        name: String,
        /// The target's name.
        target: String,
    },
    /// A fixture the plan served is missing or has other bytes now.
    #[error("fixture `{model}` is not the one the plan served (recorded sha256 {recorded}, now {now})")]
    Fixture {
        /// Model id.
        model: String,
        /// Recorded SHA-256.
        recorded: String,
        /// Current SHA-256, or `missing`.
        now: String,
    },
    /// No scenario test of the suite runs the plan's scenario.
    #[error("no scenario test named `{test}` in the suite (the plan's scenario `{scenario}`)")]
    NoScenario {
        /// The scenario.
        scenario: String,
        /// The test name looked for.
        test: String,
    },
}

/// The plan of `record` (read from `path`), or why it has none.
pub fn plan_of(record: &ScenarioRecord, path: &std::path::Path) -> Result<RunPlan, PlanMismatch> {
    record.plan.clone().ok_or_else(|| PlanMismatch::NoPlan { record: path.display().to_string() })
}

/// Checks `plan` against the target's declaration and its current fixtures.
pub fn check(plan: &RunPlan, spec: &TargetSpec, fixtures: &FixtureSet) -> Result<(), PlanMismatch> {
    check_declared(plan, spec)?;
    check_fixtures(plan, fixtures)
}

/// Checks that every failpoint and the mutant of `plan` are declared by `spec` (before any build).
pub fn check_declared(plan: &RunPlan, spec: &TargetSpec) -> Result<(), PlanMismatch> {
    let target = spec.display_name().to_string();
    let declared = spec.failpoint_names();
    if let Some(name) = plan.failpoints().into_iter().find(|f| !declared.contains(f)) {
        return Err(PlanMismatch::Failpoint { name, target, declared: declared.join(", ") });
    }
    if let Some(m) = &plan.mutant
        && !spec.mutant_names().contains(m)
    {
        return Err(PlanMismatch::Mutant { name: m.clone(), target });
    }
    Ok(())
}

/// Checks that the fixtures `plan` served are the target's fixtures now.
pub fn check_fixtures(plan: &RunPlan, fixtures: &FixtureSet) -> Result<(), PlanMismatch> {
    for (model, recorded) in &plan.fixtures {
        let now = fixtures.models.iter().find(|f| &f.id == model).map(|f| f.sha256.clone());
        if now.as_ref() != Some(recorded) {
            let now = now.unwrap_or_else(|| "missing".into());
            return Err(PlanMismatch::Fixture { model: model.clone(), recorded: recorded.clone(), now });
        }
    }
    Ok(())
}

/// The nextest test that runs scenario `scenario` (record names use `.`, test names `_`).
pub fn test_name(scenario: &str) -> String {
    scenario.replace(['.', '-'], "_")
}

/// The nextest filterset selecting that test alone, whether it is a top-level test or in a module of
/// a test binary (`contention::same_model_…`).
pub fn test_filter(scenario: &str) -> String {
    format!("test(/(^|::){}$/)", test_name(scenario))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::errors::{EXIT_SETUP, Error};
    use stress_cache_metadata::{FixtureModel, PlannedProcess};

    /// The suite's second target: it declares no failpoint at all.
    fn tiny_cache() -> TargetSpec {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../stress-tests/targets/tiny-cache.toml");
        TargetSpec::from_spec_file(&path).expect("tiny-cache's spec reads")
    }

    fn plan(failpoints: &str) -> RunPlan {
        RunPlan {
            scenario: "crash_at_cache.after_lock_then_recovers".into(),
            processes: vec![PlannedProcess { failpoints: Some(failpoints.into()), ..Default::default() }],
            fixtures: [("small".to_string(), "ab".to_string())].into(),
            ..Default::default()
        }
    }

    fn fixtures(sha: &str) -> FixtureSet {
        FixtureSet {
            schema_version: stress_cache_metadata::FIXTURES_SCHEMA_VERSION,
            models: vec![FixtureModel {
                id: "small".into(),
                file_name: "s".into(),
                path: "/s".into(),
                sha256: sha.into(),
            }],
            input: "/in".into(),
        }
    }

    #[test]
    fn plan_arming_a_removed_failpoint_is_a_one_line_setup_error() {
        let err = check(&plan("cache.after_lock=return(crash)"), &tiny_cache(), &fixtures("ab")).unwrap_err();
        let message = Error::from(err.clone()).to_string();
        assert_eq!(Error::from(err).exit_code(), EXIT_SETUP);
        assert!(!message.contains('\n'), "{message}");
        assert!(
            message.contains("`cache.after_lock`") && message.contains("no longer declares"),
            "{message}"
        );
    }

    #[test]
    fn plan_without_failpoints_and_same_fixtures_fits() {
        let fits = check(&plan(""), &tiny_cache(), &fixtures("ab"));
        assert_eq!(fits, Ok(()));
    }

    #[test]
    fn plan_with_other_fixture_bytes_does_not_fit() {
        let err = check(&plan(""), &tiny_cache(), &fixtures("cd")).unwrap_err();
        assert!(matches!(err, PlanMismatch::Fixture { .. }), "{err}");
    }

    #[test]
    fn test_filter_matches_the_test_name_at_any_module_depth_only() {
        assert_eq!(test_filter("recovers_from_reset"), "test(/(^|::)recovers_from_reset$/)");
    }

    #[test]
    fn test_names_replace_the_dots_of_record_names() {
        assert_eq!(
            test_name("crash_at_cache.after_lock_then_recovers"),
            "crash_at_cache_after_lock_then_recovers"
        );
    }
}
