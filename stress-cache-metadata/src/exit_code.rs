//! The exit codes of `cargo stress-cache`, as `nextest-metadata`'s `NextestExitCode` does for nextest:
//! scripts and the suite's own tests compare against these, never against bare numbers.

/// Every invariant held, every test was stable, every seeded bug was killed where declared.
pub const OK: i32 = 0;
/// The run reached a verdict and it is not a pass: an invariant was violated, a scenario's setup
/// failed, the self-check failed, a test was flaky or broken, or a mutant was not killed where expected.
pub const FAILED: i32 = 1;
/// Usage or setup error: nothing about the target was decided (bad flag, unreadable spec, failed build).
pub const SETUP: i32 = 2;
/// The run was interrupted (128 + SIGINT, as shells report a Ctrl-C), whichever signal stopped it.
pub const INTERRUPTED: i32 = 130;
