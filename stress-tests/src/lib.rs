pub mod orchestrator;
pub mod pattern;
pub mod proc_locks;
pub mod server;
pub mod snapshot;
pub mod target;
pub mod tier;
