//! What the libtest-mimic harnesses share: a trial whose body reports failure by panicking, as a
//! `#[test]` function does.

use libtest_mimic::{Failed, Trial};

/// A test named `name` running `body`; a panic in it is the test's failure, with its message.
pub fn trial(name: &str, body: impl FnOnce() + Send + std::panic::UnwindSafe + 'static) -> Trial {
    Trial::test(name, move || {
        std::panic::catch_unwind(body).map_err(|panic| {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "the test panicked".to_string());
            Failed::from(message)
        })
    })
}

/// The target's declaration, or exit 2 with one line: listing needs the declaration only, and
/// building the target waits until a test runs.
pub fn declared_spec() -> stress_cache_metadata::TargetSpec {
    match stress_tests::target::declared_spec() {
        Ok(spec) => spec,
        Err(e) => {
            eprintln!("error: cannot read the target's declaration: {e}");
            std::process::exit(2);
        }
    }
}
