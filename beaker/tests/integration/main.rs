//! beaker's integration tests, one binary with a module per concern (the nextest layout: one link of
//! beaker and tract instead of one per file): the cache protocol across real processes
//! (`cache_processes`), `beaker cutout` end to end (`cutout`), how fetch classifies server answers
//! (`fetch_classification`), and the stress declaration against the code (`stress_declaration`).
//! `support` holds what they share.

mod cache_processes;
mod cutout;
mod fetch_classification;
mod stress_declaration;
mod support;
