pub mod crash_states;
pub mod fs_trace;
pub mod invariants;
pub mod orchestrator;
pub mod printed_path;
pub mod proc_locks;
pub mod reader_probe;
pub mod record;
pub mod replay;
pub mod run_metadata;
pub mod scenario;
pub mod scenarios;
pub mod snapshot;
pub mod spec_check;
pub mod target;
pub mod tier;

/// The fault-injecting model server, its own crate; re-exported so `stress_tests::server::...` and
/// `crate::server::...` paths keep working.
pub use fault_server as server;
