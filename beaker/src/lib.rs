//! beaker's model caches: a crash-safe, multi-process download cache for ONNX models, a compiled-model
//! cache (tract NNEF, the analogue of ONNX Runtime's CoreML cache), and the `cutout` command that uses
//! both. This is the system under test of `cargo stress-cache`; see `ARCHITECTURE.md`.
//!
//! Invariant: a file only ever appears under a final cache name complete and verified (temp file in the
//! same directory → fsync → verify → rename → fsync dir), and every writer holds the entry's lock.

pub mod cache;
pub mod cli;
pub mod compiled;
pub mod config;
pub mod cutout;
pub mod error;
pub mod failpoints;
pub mod fetch;
pub mod fixtures;
pub mod fsio;
pub mod gc;
pub mod lock;
pub mod model;
pub mod mutants;
pub mod run_metadata;

pub use error::BeakerError;
