//! The nightly tier's scenarios (`stress_tests::scenarios::nightly`): one module per part, one test
//! per property. Selected only by the `stress-nightly` profile.

mod exhaustion;
mod lock_integrity;
mod model_update;
mod power_loss;
mod scale;
mod soak;
mod state_recovery;
