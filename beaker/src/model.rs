//! The model contract and loading models with tract.
//!
//! Contract: exactly one input, f32 `[1, 3, S, S]` (RGB in [0, 1], channels first), and exactly one
//! output, f32 `[1, 1, S, S]` (foreground probability), with `S` read from the model. Anything else
//! — garbage bytes, a truncated file, an unsupported operator, a different shape — is a
//! [`BeakerError::InvalidModel`] (exit 4), never a panic.
//!
//! Two stages, because the compiled-model cache sits between them:
//! - [`load_model_bytes`] parses ONNX into a *decluttered* [`TypedModel`] ([`LoadedModel`]): the
//!   portable form tract can serialise to NNEF (the compiled cache stores exactly this).
//! - [`ModelPlan::from_typed`] optimises a typed model (from ONNX or from the compiled cache) into a
//!   runnable plan for this machine; optimised graphs hold CPU-specific kernels and are not
//!   serialisable, which is why the cache stores the decluttered form.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use prost::Message;
use tract_onnx::prelude::tract_data::internal::{ensure, format_err};
use tract_onnx::prelude::*;

use crate::error::{BeakerError, Result};

/// A parsed ONNX model that meets the contract, in tract's decluttered (serialisable) form.
#[derive(Debug, Clone)]
pub struct LoadedModel {
    path: PathBuf,
    typed: TypedModel,
    side: usize,
}

impl LoadedModel {
    /// The file the model was read from (used in error messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The side `S` of the square input and output.
    pub fn side(&self) -> usize {
        self.side
    }

    /// The decluttered typed model: what the compiled cache writes as NNEF.
    pub fn typed(&self) -> &TypedModel {
        &self.typed
    }

    /// Optimises this model into a runnable plan (the path without the compiled cache).
    pub fn into_plan(self) -> Result<ModelPlan> {
        ModelPlan::from_typed(&self.path, self.typed)
    }
}

/// Parses ONNX `bytes` (read from `path`, named in errors) and checks the model contract.
///
/// Never panics on malformed input: protobuf decoding errors, tract analysis errors and (defensively)
/// panics inside tract all become [`BeakerError::InvalidModel`].
pub fn load_model_bytes(path: &Path, bytes: &[u8]) -> Result<LoadedModel> {
    let invalid = |reason: String| BeakerError::InvalidModel { path: path.to_path_buf(), reason };
    let typed = guarded(|| {
        let proto = tract_onnx::pb::ModelProto::decode(bytes)
            .map_err(|e| format_err!("not an ONNX protobuf: {e}"))?;
        let model = tract_onnx::onnx().model_for_proto_model(&proto)?;
        model.into_typed()?.into_decluttered()
    })
    .map_err(|e| invalid(one_line(&e)))?;
    let side = check_contract(path, &typed)?;
    Ok(LoadedModel { path: path.to_path_buf(), typed, side })
}

/// Checks the model contract on a typed model and returns `S`.
pub fn check_contract(path: &Path, model: &TypedModel) -> Result<usize> {
    let invalid = |reason: String| BeakerError::InvalidModel { path: path.to_path_buf(), reason };
    if model.inputs.len() != 1 || model.outputs.len() != 1 {
        return Err(invalid(format!(
            "expected 1 input and 1 output, found {} and {}",
            model.inputs.len(),
            model.outputs.len()
        )));
    }
    let concrete = |fact: &TypedFact, what: &str| -> Result<Vec<usize>> {
        if fact.datum_type != f32::datum_type() {
            return Err(invalid(format!("{what} is {:?}, expected f32", fact.datum_type)));
        }
        fact.shape
            .as_concrete()
            .map(|s| s.to_vec())
            .ok_or_else(|| invalid(format!("{what} shape {:?} is not concrete", fact.shape)))
    };
    let input = model.input_fact(0).map_err(|e| invalid(one_line(&e)))?;
    let output = model.output_fact(0).map_err(|e| invalid(one_line(&e)))?;
    let (ishape, oshape) = (concrete(input, "input")?, concrete(output, "output")?);
    match ishape[..] {
        [1, 3, s, s2] if s == s2 && s > 0 => {
            if oshape[..] != [1, 1, s, s] {
                return Err(invalid(format!("output shape {oshape:?}, expected [1, 1, {s}, {s}]")));
            }
            Ok(s)
        }
        _ => Err(invalid(format!("input shape {ishape:?}, expected [1, 3, S, S]"))),
    }
}

/// A model optimised for this machine, ready to run on images.
#[derive(Debug, Clone)]
pub struct ModelPlan {
    plan: Arc<TypedRunnableModel>,
    side: usize,
}

impl ModelPlan {
    /// Checks the contract on `typed` (read from `path`), optimises it and builds a runnable plan.
    pub fn from_typed(path: &Path, typed: TypedModel) -> Result<ModelPlan> {
        let side = check_contract(path, &typed)?;
        let plan = guarded(|| typed.into_optimized()?.into_runnable())
            .map_err(|e| BeakerError::InvalidModel { path: path.to_path_buf(), reason: one_line(&e) })?;
        Ok(ModelPlan { plan, side })
    }

    /// The side `S` of the square input and output.
    pub fn side(&self) -> usize {
        self.side
    }

    /// Runs the model on one `[1, 3, S, S]` input given as `3·S·S` channel-first values and
    /// returns the `S·S` foreground probabilities, row-major.
    ///
    /// `path` names the model in errors (a run failure means the model is broken: exit 4).
    pub fn run(&self, path: &Path, input: Vec<f32>) -> Result<Vec<f32>> {
        let s = self.side;
        let invalid = |reason: String| BeakerError::InvalidModel { path: path.to_path_buf(), reason };
        if input.len() != 3 * s * s {
            // A caller bug, not a model problem; still reported, never a panic.
            return Err(invalid(format!("input has {} values, expected {}", input.len(), 3 * s * s)));
        }
        guarded(|| {
            let tensor = tract_ndarray::Array4::from_shape_vec((1, 3, s, s), input)?.into_tensor();
            let outputs = self.plan.run(tvec!(tensor.into_tvalue()))?;
            let mask = outputs
                .first()
                .ok_or_else(|| format_err!("model produced no output"))?
                .to_plain_array_view::<f32>()?
                .iter()
                .copied()
                .collect::<Vec<f32>>();
            ensure!(mask.len() == s * s, "output has {} values, expected {}", mask.len(), s * s);
            Ok(mask)
        })
        .map_err(|e| invalid(one_line(&e)))
    }
}

/// Runs a tract call, turning a panic inside tract into an error: a malformed model must be an
/// integrity error with exit code 4, not a crash. (tract 0.23 does panic on some corrupted graphs,
/// e.g. an output name no node produces indexes a map in `tract-onnx/src/model.rs`.)
///
/// The panic is also kept off stderr (logged at debug level instead): beaker prints exactly one line
/// per error. A thread-local flag scopes that to panics raised inside `guarded` on this thread; any
/// other panic still goes to the previous hook.
fn guarded<T>(f: impl FnOnce() -> TractResult<T>) -> TractResult<T> {
    install_quiet_panic_hook();
    let was = IN_GUARD.with(|g| g.replace(true));
    let result = catch_unwind(AssertUnwindSafe(f));
    IN_GUARD.with(|g| g.set(was));
    match result {
        Ok(result) => result,
        Err(panic) => {
            let msg = panic
                .downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| panic.downcast_ref::<&str>().copied())
                .unwrap_or("unknown panic");
            Err(format_err!("malformed graph (tract panicked: {msg})"))
        }
    }
}

thread_local! {
    static IN_GUARD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

fn install_quiet_panic_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_GUARD.with(|g| g.get()) {
                log::debug!("panic inside tract (reported as an invalid model): {info}");
            } else {
                previous(info);
            }
        }));
    });
}

/// Flattens an error chain into one line (the CLI prints exactly one line per error).
pub(crate) fn one_line(e: &TractError) -> String {
    e.chain().map(|c| c.to_string()).collect::<Vec<_>>().join(": ").replace('\n', " ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn small_fixture_runs_and_mask_depends_on_input() {
        let model = load_model_bytes(Path::new("small.onnx"), &fixtures::small_model()).unwrap();
        let s = model.side();
        let plan = model.into_plan().unwrap();
        // Left half warm (red), right half sky (blue).
        let mut input = vec![0f32; 3 * s * s];
        for y in 0..s {
            for x in 0..s {
                let (r, b) = if x < s / 2 { (0.9, 0.1) } else { (0.4, 0.9) };
                input[y * s + x] = r;
                input[s * s + y * s + x] = 0.5;
                input[2 * s * s + y * s + x] = b;
            }
        }
        let mask = plan.run(Path::new("small.onnx"), input).unwrap();
        assert_eq!(mask.len(), s * s);
        let (left, right) = (mask[s * (s / 2) + 1], mask[s * (s / 2) + s - 2]);
        assert!(left > 0.7 && right < 0.3, "left {left}, right {right}");
    }

    #[test]
    fn garbage_bytes_are_invalid_model_not_panics() {
        let good = fixtures::small_model();
        let mut cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"definitely not onnx".to_vec(),
            good[..good.len() / 2].to_vec(),
            good[..100].to_vec(),
            good[..good.len() - 1].to_vec(),
        ];
        // The protobuf structure (nodes first, then the weights, then inputs/outputs) lives in the
        // first and last few hundred bytes: corrupt those densely, the weights sparsely.
        let structural = (0..600).step_by(3).chain((good.len() - 400..good.len()).step_by(3));
        for (n, pos) in structural.chain([good.len() / 3, good.len() / 2]).enumerate() {
            let mut flipped = good.clone();
            flipped[pos] ^= [0xff, 0x01, 0x80, 0x7f][n % 4];
            cases.push(flipped);
        }
        for (i, bytes) in cases.iter().enumerate() {
            match load_model_bytes(Path::new("bad.onnx"), bytes) {
                Err(BeakerError::InvalidModel { path, reason }) => {
                    assert_eq!(path, Path::new("bad.onnx"));
                    assert!(!reason.contains('\n'), "case {i}: multi-line reason {reason:?}");
                }
                // A flip inside weight data leaves a valid model: that is the checksum's job.
                Ok(m) => assert_eq!(m.side(), fixtures::SMALL_SIDE, "case {i}"),
                Err(e) => panic!("case {i}: unexpected error kind {e}"),
            }
        }
    }

    #[test]
    fn wrong_shape_breaks_the_contract() {
        let model = load_model_bytes(Path::new("small.onnx"), &fixtures::small_model()).unwrap();
        let path = Path::new("cut.onnx");
        let reason = |typed: &TypedModel| match check_contract(path, typed).unwrap_err() {
            BeakerError::InvalidModel { reason, .. } => reason,
            e => panic!("unexpected {e}"),
        };
        // Output wired to the input: [1, 3, S, S] instead of [1, 1, S, S].
        let mut typed = model.typed().clone();
        typed.outputs = typed.inputs.clone();
        assert!(reason(&typed).contains("output shape"), "{}", reason(&typed));
        // Two outputs.
        let mut typed = model.typed().clone();
        typed.outputs.push(typed.inputs[0]);
        assert!(reason(&typed).contains("1 output"), "{}", reason(&typed));
    }
}
