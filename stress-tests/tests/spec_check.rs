//! The engine of `cargo stress-cache check-spec`, and a test of the declared target's spec: a clean run
//! of the target must give every file of its cache exactly one role. The CLI runs this binary alone
//! (profile `stress-spec-check`) with `STRESS_SPEC_CHECK_OUT` set, and prints the report it writes.

use stress_tests::spec_check;
use stress_tests::target::Target;

#[test]
fn every_file_of_a_clean_run_has_exactly_one_role_in_the_spec() {
    let target = Target::shared().expect("target");
    let report = spec_check::observe(target).expect("a clean run of the target");
    let env = stress_tests::tier::suite_env().expect("suite environment");
    if let Some(out) = &env.spec_check_out {
        let text = serde_json::to_string_pretty(&report).expect("report");
        std::fs::write(out, text).expect("write the spec check report");
    }
    let faults = report.faults();
    assert!(
        faults.is_empty(),
        "the spec of {} does not fit its cache:\n- {}",
        report.target,
        faults.join("\n- ")
    );
}
