//! The PR tier's scenario tests, one binary with a module per family (the nextest layout: one link,
//! one process listing): each test runs one scenario with the options from the environment
//! (`STRESS_MUTANT`) and fails listing its setup errors or every violated invariant.
//!
//! Separate binaries remain where the separation buys something nameable: `crash` and
//! `mutants_are_killed` are libtest-mimic harnesses whose tests the target's declaration decides;
//! `self_check`, `core_smoke`, `spec_check` and `tiny_cache_faults` test the checker, not the target,
//! and the stress profiles leave them out by binary; `nightly` is the nightly tier's own.

mod compiled;
mod contention;
mod gc;
mod locks;
mod network;
mod second_target;
