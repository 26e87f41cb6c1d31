//! Serde types shared by `cargo stress-cache` and the `stress-tests` suite, in the manner of
//! `nextest-metadata`: the target declaration ([`TargetSpec`], read from
//! `[package.metadata.stress-cache]` or a `--spec` file) and the per-scenario JSON record
//! ([`ScenarioRecord`]) the suite writes and the CLI aggregates, and the names of the `STRESS_*`
//! environment ([`suite_env`]) through which the CLI configures the suite, and `report.json`
//! ([`report::Aggregate`]) which the CLI writes and reads back.

pub mod exit_code;
mod fixtures;
mod invariant_name;
mod nightly;
pub mod patterns;
mod plan;
mod record;
pub mod report;
mod spec_check;
pub mod suite_env;
mod target;
mod tier;

pub use fixtures::{FIXTURES_SCHEMA_VERSION, FixtureModel, FixtureSet, FixtureSetError};
pub use invariant_name::InvariantName;
pub use nightly::{
    CV_BOUND, CrashStatesSummary, LatencyStats, LeakCounts, NightlySummary, PartTime, RSS_GROWTH_BOUND_KB,
    ResourceSample, SUMMARY_FILE, SUMMARY_SCHEMA_VERSION, ScaleFigures, ScaleSummary, SoakFigures,
    SoakSummary, SoakWindow,
};
pub use patterns::{FilePattern, FileRoles, PatternList, Role};
pub use plan::{
    GateRelease, OPTIONAL_ROLES, PLAN_SCHEMA_VERSION, PlannedHold, PlannedKill, PlannedProcess, PlannedRoute,
    RunPlan, failpoint_names,
};
pub use record::{
    CrashStateCounts, EventKind, Figures, Finding, InvariantResult, Phase, ProcessRun, RECORD_SCHEMA_VERSION,
    ScenarioOutcome, ScenarioRecord, Status, TimelineEvent,
};
pub use spec_check::{Moment, SeenFile, SpecCheckReport};
pub use suite_env::SuiteEnv;
pub use target::{
    CompiledCache, EnvNames, ExitCodes, Failpoints, Features, FilePatterns, Fixtures, LockKind, MetadataFile,
    Mutants, ServerLayout, SpecError, SymlinkPolicy, TargetSpec,
};
pub use tier::Tier;
