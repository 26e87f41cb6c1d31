//! Deterministic test fixtures: two ONNX models that meet beaker's model contract (a small one,
//! ~300 KB, and a large one, ~2 MB) and a test image of a bird.
//!
//! Everything is generated in Rust, byte-identical on every run and machine: the ONNX protobuf is
//! built with tract-onnx's `pb` types and encoded with prost, weights come from a fixed-seed
//! xorshift generator (no RNG crate, no floating-point transcendental functions whose last bit could
//! differ between libm implementations), and the PNG is encoded by the pinned `image` crate.
//!
//! The models are tiny MLPs, `Flatten → Gemm → Relu → Gemm → Reshape → Sigmoid`, whose weights are
//! *designed* rather than random: each hidden unit averages a "warm colour" score (red minus blue)
//! over one cell of a coarse grid, and the output layer paints that score back onto the cell's
//! pixels. The warm-coloured bird on a blue sky therefore gets a high foreground probability and the
//! sky a low one: the mask depends on the image, which lets tests tell a real inference from a
//! constant.

use std::path::Path;

use prost::Message;
use tract_onnx::pb;

use crate::error::{BeakerError, Result};

/// File name of the small model written by [`write_all`].
pub const SMALL_MODEL_FILE: &str = "small.onnx";
/// File name of the large model written by [`write_all`].
pub const LARGE_MODEL_FILE: &str = "large.onnx";
/// File name of the test image written by [`write_all`].
pub const TEST_IMAGE_FILE: &str = "bird.png";

/// Side length `S` of the small model's square input.
pub const SMALL_SIDE: usize = 32;
/// Side length `S` of the large model's square input.
pub const LARGE_SIDE: usize = 64;
/// Hidden width of the small model (sized for ~300 KB of weights).
const SMALL_HIDDEN: usize = 18;
/// Hidden width of the large model (sized for ~2 MB of weights).
const LARGE_HIDDEN: usize = 32;

/// Width of the test image in pixels (deliberately not square and not `S`, so resizing is exercised).
pub const IMAGE_WIDTH: u32 = 96;
/// Height of the test image in pixels.
pub const IMAGE_HEIGHT: u32 = 80;

/// Writes `small.onnx`, `large.onnx` and `bird.png` into `out_dir` (created if missing).
pub fn write_all(out_dir: &Path) -> Result<()> {
    std::fs::create_dir_all(out_dir).map_err(|e| BeakerError::io("create dir", out_dir, e))?;
    for (name, bytes) in [
        (SMALL_MODEL_FILE, small_model()),
        (LARGE_MODEL_FILE, large_model()),
        (TEST_IMAGE_FILE, test_image_png()),
    ] {
        let path = out_dir.join(name);
        std::fs::write(&path, bytes).map_err(|e| BeakerError::io("write", &path, e))?;
    }
    Ok(())
}

/// The small fixture model (S = 32, ~300 KB), as ONNX protobuf bytes.
pub fn small_model() -> Vec<u8> {
    model_bytes(SMALL_SIDE, SMALL_HIDDEN, 0x5eed_0001, "beaker-fixture-small")
}

/// The large fixture model (S = 64, ~2 MB), as ONNX protobuf bytes.
pub fn large_model() -> Vec<u8> {
    model_bytes(LARGE_SIDE, LARGE_HIDDEN, 0x5eed_0002, "beaker-fixture-large")
}

/// The test image: a 96×80 RGB PNG of an orange bird on a blue sky.
pub fn test_image_png() -> Vec<u8> {
    let mut rng = XorShift::new(0xb1_7d);
    let img = image::RgbImage::from_fn(IMAGE_WIDTH, IMAGE_HEIGHT, |x, y| {
        let (fx, fy) = (x as f32, y as f32);
        // A little per-pixel noise so the image is not trivially compressible or flat.
        let noise = (rng.next_u32() % 9) as i32 - 4;
        let inside = |cx: f32, cy: f32, rx: f32, ry: f32| {
            let (dx, dy) = ((fx - cx) / rx, (fy - cy) / ry);
            dx * dx + dy * dy <= 1.0
        };
        let body = inside(44.0, 46.0, 22.0, 14.0);
        let head = inside(64.0, 32.0, 9.0, 9.0);
        let eye = inside(67.0, 30.0, 1.6, 1.6);
        // Beak: a small triangle to the right of the head.
        let beak = (72.0..80.0).contains(&fx) && (fy - 33.0).abs() <= (80.0 - fx) * 0.35;
        // Tail: a wedge to the left of the body.
        let tail = (12.0..26.0).contains(&fx) && (fy - 42.0).abs() <= (26.0 - fx) * 0.6;
        let base: [i32; 3] = if eye {
            [20, 20, 20]
        } else if beak {
            [230, 180, 40]
        } else if body || head || tail {
            // Orange-brown plumage, a bit darker on the belly.
            if body && fy > 50.0 { [200, 110, 50] } else { [225, 120, 45] }
        } else {
            // Sky: blue, lighter towards the horizon.
            [110 + (y as i32) / 2, 160 + (y as i32) / 2, 235]
        };
        image::Rgb(base.map(|c| (c + noise).clamp(0, 255) as u8))
    });
    let mut out = Vec::new();
    image::DynamicImage::ImageRgb8(img)
        .write_to(&mut std::io::Cursor::new(&mut out), image::ImageFormat::Png)
        .expect("encoding a PNG into memory cannot fail");
    out
}

/// xorshift32: tiny, fixed-seed, and identical everywhere (integer arithmetic only).
struct XorShift(u32);

impl XorShift {
    fn new(seed: u32) -> Self {
        XorShift(seed.max(1))
    }

    fn next_u32(&mut self) -> u32 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        self.0 = x;
        x
    }

    /// Uniform in [-1, 1), built from 24 bits so the conversion to f32 is exact.
    fn next_signed(&mut self) -> f32 {
        (self.next_u32() >> 8) as f32 / (1u32 << 23) as f32 - 1.0
    }
}

/// Side of the coarse grid whose cells the hidden units summarise: the largest `g` with `g² ≤ hidden`.
fn grid_side(hidden: usize) -> usize {
    (1..=hidden).take_while(|g| g * g <= hidden).last().unwrap_or(1)
}

/// Builds the ONNX model bytes for input side `side` and hidden width `hidden`.
fn model_bytes(side: usize, hidden: usize, seed: u32, name: &str) -> Vec<u8> {
    let pixels = side * side;
    let inputs = 3 * pixels;
    let grid = grid_side(hidden);
    let cell_of = |p: usize| {
        let (y, x) = (p / side, p % side);
        (y * grid / side) * grid + (x * grid / side)
    };
    let mut cell_sizes = vec![0usize; grid * grid];
    for p in 0..pixels {
        cell_sizes[cell_of(p)] += 1;
    }
    let mut rng = XorShift::new(seed);
    // Noise well below the designed weights: it makes the tensors look like real weights without
    // changing which pixels end up foreground.
    let noise = 1e-4f32;

    // W1: [inputs, hidden]. Unit `h < grid²` = mean over its cell of (R - B); the rest are noise.
    let mut w1 = vec![0f32; inputs * hidden];
    for (i, w) in w1.iter_mut().enumerate() {
        *w = rng.next_signed() * noise;
        let (input, h) = (i / hidden, i % hidden);
        let (channel, p) = (input / pixels, input % pixels);
        if h < grid * grid && cell_of(p) == h {
            let mean = 1.0 / cell_sizes[h] as f32;
            match channel {
                0 => *w += mean,
                2 => *w -= mean,
                _ => {}
            }
        }
    }
    let b1: Vec<f32> = (0..hidden).map(|_| rng.next_signed() * noise).collect();
    // W2: [hidden, pixels]. Each pixel reads its own cell's unit with a strong gain; b2 makes the
    // default (no warm colour) a clear background.
    let mut w2 = vec![0f32; hidden * pixels];
    for (i, w) in w2.iter_mut().enumerate() {
        *w = rng.next_signed() * noise;
        let (h, p) = (i / pixels, i % pixels);
        if h < grid * grid && cell_of(p) == h {
            *w += 12.0;
        }
    }
    let b2: Vec<f32> = (0..pixels).map(|_| -2.0 + rng.next_signed() * noise).collect();
    // The contract tolerates initializers the graph never uses; ship one so that stays true.
    let unused: Vec<f32> = (0..256).map(|_| rng.next_signed()).collect();

    let s = side as i64;
    let graph = pb::GraphProto {
        name: name.to_string(),
        node: vec![
            node("Flatten", &["input"], &["flat"], vec![attr_int("axis", 1)]),
            node("Gemm", &["flat", "w1", "b1"], &["hidden_pre"], vec![]),
            node("Relu", &["hidden_pre"], &["hidden"], vec![]),
            node("Gemm", &["hidden", "w2", "b2"], &["logits_flat"], vec![]),
            node("Reshape", &["logits_flat", "mask_shape"], &["logits"], vec![]),
            node("Sigmoid", &["logits"], &["mask"], vec![]),
        ],
        initializer: vec![
            tensor_f32("w1", &[inputs as i64, hidden as i64], &w1),
            tensor_f32("b1", &[hidden as i64], &b1),
            tensor_f32("w2", &[hidden as i64, pixels as i64], &w2),
            tensor_f32("b2", &[pixels as i64], &b2),
            tensor_i64("mask_shape", &[1, 1, s, s]),
            tensor_f32("unused_calibration", &[256], &unused),
        ],
        input: vec![value_info("input", &[1, 3, s, s])],
        output: vec![value_info("mask", &[1, 1, s, s])],
        ..Default::default()
    };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 13 }],
        producer_name: "beaker-fixtures".to_string(),
        producer_version: "1".to_string(),
        graph: Some(graph),
        ..Default::default()
    };
    model.encode_to_vec()
}

fn node(op: &str, inputs: &[&str], outputs: &[&str], attribute: Vec<pb::AttributeProto>) -> pb::NodeProto {
    pb::NodeProto {
        name: outputs[0].to_string(),
        op_type: op.to_string(),
        input: inputs.iter().map(|s| s.to_string()).collect(),
        output: outputs.iter().map(|s| s.to_string()).collect(),
        attribute,
        ..Default::default()
    }
}

fn attr_int(name: &str, value: i64) -> pb::AttributeProto {
    pb::AttributeProto {
        name: name.to_string(),
        r#type: pb::attribute_proto::AttributeType::Int as i32,
        i: value,
        ..Default::default()
    }
}

fn tensor_f32(name: &str, dims: &[i64], data: &[f32]) -> pb::TensorProto {
    let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, dims.to_vec(), pb::tensor_proto::DataType::Float, raw_data)
}

fn tensor_i64(name: &str, data: &[i64]) -> pb::TensorProto {
    let raw_data = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    tensor(name, vec![data.len() as i64], pb::tensor_proto::DataType::Int64, raw_data)
}

/// A tensor initializer of `dims` holding `raw_data` (little-endian values of `data_type`).
fn tensor(
    name: &str,
    dims: Vec<i64>,
    data_type: pb::tensor_proto::DataType,
    raw_data: Vec<u8>,
) -> pb::TensorProto {
    pb::TensorProto {
        name: name.to_string(),
        dims,
        data_type: data_type as i32,
        raw_data,
        ..Default::default()
    }
}

fn value_info(name: &str, dims: &[i64]) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{Dimension, dimension};
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: pb::tensor_proto::DataType::Float as i32,
                shape: Some(pb::TensorShapeProto {
                    dim: dims
                        .iter()
                        .map(|&d| Dimension {
                            value: Some(dimension::Value::DimValue(d)),
                            ..Default::default()
                        })
                        .collect(),
                }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::{Digest, Sha256};

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    #[test]
    fn fixtures_are_deterministic() {
        assert_eq!(sha(&small_model()), sha(&small_model()));
        assert_eq!(sha(&large_model()), sha(&large_model()));
        assert_eq!(sha(&test_image_png()), sha(&test_image_png()));
    }

    /// Pinned: the stress suite's baselines and anyone's cached fixtures assume these exact bytes. A
    /// deliberate generator change updates these; an accidental one (or an encoder upgrade) fails here.
    #[test]
    fn fixture_hashes_are_pinned() {
        assert_eq!(sha(&small_model()), "bfa54752d919d0b13b0d9cf2aa97a9ebb73a3cc4c170b57042846becf75efc40");
        assert_eq!(sha(&large_model()), "5c5acc5bd49650dcb33e7a1868598050e7aa23c2e4bcd44050418ce7d71dd182");
        assert_eq!(
            sha(&test_image_png()),
            "69a3c04526cda154c70721c57f0891382ab426790c69f933ae5bba290b784b47"
        );
    }

    #[test]
    fn fixture_sizes_are_in_range() {
        let small = small_model().len();
        let large = large_model().len();
        assert!((250_000..400_000).contains(&small), "small.onnx is {small} bytes");
        assert!((1_800_000..2_400_000).contains(&large), "large.onnx is {large} bytes");
        let img = image::load_from_memory(&test_image_png()).unwrap();
        assert_eq!((img.width(), img.height()), (IMAGE_WIDTH, IMAGE_HEIGHT));
    }

    #[test]
    fn write_all_writes_the_same_bytes_twice() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        write_all(&a).unwrap();
        write_all(&b).unwrap();
        for name in [SMALL_MODEL_FILE, LARGE_MODEL_FILE, TEST_IMAGE_FILE] {
            assert_eq!(std::fs::read(a.join(name)).unwrap(), std::fs::read(b.join(name)).unwrap());
        }
    }

    #[test]
    fn fixture_models_load_and_meet_the_contract() {
        for (bytes, side) in [(small_model(), SMALL_SIDE), (large_model(), LARGE_SIDE)] {
            let model = crate::model::load_model_bytes(Path::new("fixture.onnx"), &bytes).unwrap();
            assert_eq!(model.side(), side);
        }
    }
}
