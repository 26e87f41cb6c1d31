//! `cargo stress-cache check-spec FILE`: validates a target declaration against a clean run of the
//! target. The suite runs it (profile `stress-spec-check`, `tests/spec_check.rs`) and writes a
//! [`SpecCheckReport`]; this module prints which files each pattern matched and decides: every file of
//! the cache must have exactly one role (or be ignored), and a final must have been recognised.

use std::path::Path;

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use stress_cache_metadata::{Role, SpecCheckReport};

use crate::cargo::Cargo;
use crate::errors::{Error, Result};
use crate::interrupt::Interrupt;
use stress_cache_metadata::SuiteEnv;

use crate::nextest;

/// The nextest profile that runs the spec check.
pub const PROFILE: &str = "stress-spec-check";

/// Runs the check with `env` (which names the report file) and returns the report.
pub fn observe(
    cargo: &Cargo,
    env: &SuiteEnv,
    output: nextest::Output,
    interrupt: &Interrupt,
) -> Result<SpecCheckReport> {
    let out =
        env.spec_check_out.clone().ok_or_else(|| Error::Usage("check-spec needs a report path".into()))?;
    let mut cmd = nextest::profile_command(cargo, PROFILE, env, output, None);
    let (shown, waited) = nextest::run_interruptibly(&mut cmd, interrupt, "nextest (check-spec)")?;
    if let Some(signal) = waited.signal {
        return Err(Error::Interrupted {
            signal: crate::interrupt::signal_name(signal),
            during: "check-spec",
        });
    }
    // A spec that does not fit fails the test (exit 100) after writing the report; anything else
    // without a report is a setup problem.
    match std::fs::read_to_string(&out) {
        Ok(text) => serde_json::from_str(&text)
            .map_err(|e| Error::Usage(format!("unreadable spec check report {}: {e}", out.display()))),
        Err(_) => {
            let code = waited.status.code().unwrap_or(-1);
            Err(Error::Nextest { command: shown, code, meaning: nextest::exit_meaning(code) })
        }
    }
}

/// The table of every file seen: path, the roles the spec gave it, and when it was seen.
pub fn render(report: &SpecCheckReport) -> String {
    let mut table = Table::new();
    table
        .force_no_tty()
        .load_preset(UTF8_FULL_CONDENSED)
        .set_content_arrangement(ContentArrangement::Dynamic);
    table.set_header(vec!["file (relative to the cache dir)", "role", "seen"]);
    for f in &report.files {
        let role = match f.roles.as_slice() {
            [] => "NO ROLE".to_string(),
            [Role::Ignored] => "ignored".to_string(),
            [one] => one.key().to_string(),
            many => format!("OVERLAP: {}", many.iter().map(|r| r.key()).collect::<Vec<_>>().join(" + ")),
        };
        let seen: Vec<&str> = f.moments.iter().map(|m| m.as_str()).collect();
        table.add_row(vec![f.path.clone(), role, seen.join(", ")]);
    }
    format!("check-spec: {} ({} files seen in a clean run)\n{table}\n", report.target, report.files.len())
}

/// `Ok` for a fitting spec; an error naming the first fault for one that does not fit.
pub fn verdict(report: &SpecCheckReport, spec: &Path) -> Result<()> {
    let faults = report.faults();
    match faults.split_first() {
        None => Ok(()),
        Some((first, rest)) => Err(Error::SpecDoesNotFit {
            spec: spec.to_path_buf(),
            first: first.clone(),
            more: if rest.is_empty() { String::new() } else { format!(" (and {} more)", rest.len()) },
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use stress_cache_metadata::{Moment, SeenFile};

    use super::*;

    #[test]
    fn an_overlap_is_shown_in_the_table_and_rejects_the_spec() {
        let report = SpecCheckReport {
            target: "t".into(),
            files: vec![
                SeenFile {
                    path: "m.bin".into(),
                    moments: BTreeSet::from([Moment::AfterColdRun]),
                    roles: vec![Role::Final],
                    is_dir: false,
                },
                SeenFile {
                    path: "m.lock".into(),
                    moments: BTreeSet::from([Moment::DuringDownload]),
                    roles: vec![Role::Final, Role::Lock],
                    is_dir: false,
                },
            ],
            problems: vec![],
        };
        assert!(render(&report).contains("OVERLAP: final + lock"), "{}", render(&report));
        let err = verdict(&report, Path::new("s.toml")).unwrap_err();
        assert!(err.to_string().contains("`m.lock` matches 2 patterns: final and lock"), "{err}");
        assert_eq!(err.exit_code(), crate::errors::EXIT_SETUP);
    }
}
