//! `beaker cutout`: gets the model through both caches and cuts the bird out of each image.
//!
//! Per run: decode every input first (a bad image is a usage error, exit 2, before any download) →
//! resolve the model in the download cache (shared lock held) → read its bytes and hash them (the
//! SHA-256 of the bytes actually loaded goes to `.beaker.toml`) → load or compile through the compiled
//! cache keyed by that hash → release the shared lock → per image: resize to S×S, run, resize the mask
//! back, write `<stem>_cutout.png` (RGBA, mask as alpha) and with `--metadata` `<stem>.beaker.toml`.
//!
//! A model file that does not load is quarantined and fetched again, once (the download cache's
//! [`cache::quarantine_and_refetch`]); a second failure is reported as is (exit 4).

use std::path::{Path, PathBuf};

use image::imageops::FilterType;
use image::{DynamicImage, GrayImage, RgbImage, RgbaImage};

use crate::cache::{self, ResolvedModel};
use crate::compiled::{self, CompiledModel, CompiledOutcome};
use crate::config::Config;
use crate::error::{BeakerError, Result};
use crate::fsio;
use crate::model::load_model_bytes;
use crate::run_metadata::{CompiledCacheInfo, ModelInfo, Phase, RunMetadata};

/// What `beaker cutout` was asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CutoutArgs {
    /// Input images (PNG).
    pub images: Vec<PathBuf>,
    /// Where outputs go; `None`: next to each input.
    pub output_dir: Option<PathBuf>,
    /// Also write `<stem>.beaker.toml`.
    pub metadata: bool,
}

impl From<&crate::cli::CutoutArgs> for CutoutArgs {
    fn from(args: &crate::cli::CutoutArgs) -> Self {
        CutoutArgs {
            images: args.images.clone(),
            output_dir: args.output_dir.clone(),
            metadata: args.metadata,
        }
    }
}

/// Suffix of the cutout image written for `<stem>.png`.
pub const CUTOUT_SUFFIX: &str = "_cutout.png";
/// Suffix of the run metadata written for `<stem>.png` with `--metadata`.
pub const METADATA_SUFFIX: &str = ".beaker.toml";

/// Runs `beaker cutout`.
pub fn run(args: &CutoutArgs, config: &Config) -> Result<()> {
    if args.images.is_empty() {
        return Err(BeakerError::Usage("no input image given".into()));
    }
    // Decode first: a typo in an image name should not cost a model download.
    let inputs = args
        .images
        .iter()
        .map(|path| Ok((path.clone(), decode(path)?)))
        .collect::<Result<Vec<(PathBuf, RgbImage)>>>()?;

    let prepared = prepare_model(config)?;
    for (path, img) in &inputs {
        let stem = stem_of(path)?;
        let out_dir = match &args.output_dir {
            Some(dir) => dir.clone(),
            None => parent_of(path).to_path_buf(),
        };
        fsio::create_dir_all(&out_dir)?;
        let mut phases = prepared.phases.clone();
        let mask =
            Phase::measure("inference", &mut phases, || infer(&prepared.plan, &prepared.outcome.path, img))?;
        let out_path = out_dir.join(format!("{stem}{CUTOUT_SUFFIX}"));
        Phase::measure("write_output", &mut phases, || write_cutout(&out_path, img, &mask))?;
        log::info!("wrote {}", out_path.display());
        if args.metadata {
            let meta = RunMetadata {
                model: prepared.model_info.clone(),
                download_cache: prepared.download_cache,
                compiled_cache: CompiledCacheInfo {
                    hit: prepared.outcome.hit,
                    path: prepared.outcome.path.display().to_string(),
                },
                phases,
            };
            meta.write(&out_dir.join(format!("{stem}{METADATA_SUFFIX}")))?;
        }
    }
    Ok(())
}

/// The model, ready to run, and what getting it took.
struct Prepared {
    plan: CompiledModel,
    outcome: CompiledOutcome,
    model_info: ModelInfo,
    download_cache: crate::run_metadata::DownloadCacheInfo,
    /// resolve, lock_wait, download (from the download cache), compile, load.
    phases: Vec<Phase>,
}

/// Resolves, reads, hashes and loads (or compiles) the model; quarantines and refetches it once if
/// its bytes do not load.
fn prepare_model(config: &Config) -> Result<Prepared> {
    let mut resolved = cache::resolve_for_reading(config)?;
    match load(config, &mut resolved) {
        Ok(prepared) => Ok(prepared),
        Err(LoadError::BadModel(e)) => {
            log::warn!("{e}; quarantining and fetching the model again");
            let mut again = cache::quarantine_and_refetch(config, resolved, &e.to_string())?;
            load(config, &mut again).map_err(LoadError::into_inner)
        }
        Err(LoadError::Other(e)) => Err(e),
    }
}

/// Why [`load`] failed: the model bytes themselves (worth a quarantine), or anything else.
enum LoadError {
    BadModel(BeakerError),
    Other(BeakerError),
}

impl LoadError {
    fn into_inner(self) -> BeakerError {
        match self {
            LoadError::BadModel(e) | LoadError::Other(e) => e,
        }
    }
}

/// Reads the resolved model under its shared lock, then loads it through the compiled cache; the
/// shared lock is released once the model is loaded.
fn load(config: &Config, resolved: &mut ResolvedModel) -> std::result::Result<Prepared, LoadError> {
    let start = fsio::unix_ms_now();
    let bytes = resolved.read_bytes().map_err(LoadError::Other)?;
    let sha256 = fsio::sha256_hex(&bytes);
    // Hits are not re-hashed by the cache, but cutout hashes what it loads anyway: a final file whose
    // bytes no longer match the configured checksum (bit rot, tampering) is a bad model, not a model.
    if let Some(expected) = &resolved.sha256_expected
        && *expected != sha256
    {
        return Err(LoadError::BadModel(BeakerError::ChecksumMismatch {
            url: resolved.url.clone(),
            expected: expected.clone(),
            actual: sha256,
        }));
    }
    let mut onnx_failed = false;
    let result = compiled::load_or_compile(&config.compiled_dir, &sha256, || {
        load_model_bytes(&resolved.path, &bytes).inspect_err(|_| onnx_failed = true)
    });
    let (plan, outcome) = match result {
        Ok(ok) => ok,
        Err(e) if onnx_failed => return Err(LoadError::BadModel(e)),
        Err(e) => return Err(LoadError::Other(e)),
    };
    resolved.release();

    let mut phases = resolved.phases.clone();
    // Reading and hashing the bytes counts towards the first model phase, so phases stay in order.
    match &outcome.compile {
        Some(compile) => {
            phases.push(Phase { start_unix_ms: start, ..compile.clone() });
            phases.push(outcome.load.clone());
        }
        None => phases.push(Phase { start_unix_ms: start, ..outcome.load.clone() }),
    }
    Ok(Prepared {
        plan,
        model_info: ModelInfo {
            url: resolved.url.clone(),
            sha256,
            path: resolved.path.display().to_string(),
            size_bytes: bytes.len() as u64,
        },
        download_cache: resolved.download_cache_info(),
        outcome,
        phases,
    })
}

/// Decodes an input image; any failure is a usage error (the user named a bad file).
fn decode(path: &Path) -> Result<RgbImage> {
    let bad =
        |e: &dyn std::fmt::Display| BeakerError::Usage(format!("cannot read image {}: {e}", path.display()));
    let reader = image::ImageReader::open(path).map_err(|e| bad(&e))?;
    let reader = reader.with_guessed_format().map_err(|e| bad(&e))?;
    let img = reader.decode().map_err(|e| bad(&e))?;
    if img.width() == 0 || img.height() == 0 {
        return Err(bad(&"empty image"));
    }
    Ok(img.to_rgb8())
}

/// Runs the model on `img`: returns the mask at the image's size.
fn infer(plan: &CompiledModel, model_path: &Path, img: &RgbImage) -> Result<GrayImage> {
    let s = plan.side();
    let side = u32::try_from(s).map_err(|_| BeakerError::InvalidModel {
        path: model_path.to_path_buf(),
        reason: format!("input side {s} is too large"),
    })?;
    let small = image::imageops::resize(img, side, side, FilterType::Triangle);
    // Channels first, RGB in [0, 1]: the model contract.
    let mut input = vec![0f32; 3 * s * s];
    for (x, y, pixel) in small.enumerate_pixels() {
        let at = y as usize * s + x as usize;
        for c in 0..3 {
            input[c * s * s + at] = f32::from(pixel[c]) / 255.0;
        }
    }
    let probs = plan.run(model_path, input)?;
    let mask = GrayImage::from_fn(side, side, |x, y| {
        let p = probs[y as usize * s + x as usize];
        // NaN (a broken model) becomes fully transparent rather than garbage.
        image::Luma([if p.is_nan() { 0 } else { (p.clamp(0.0, 1.0) * 255.0).round() as u8 }])
    });
    Ok(image::imageops::resize(&mask, img.width(), img.height(), FilterType::Triangle))
}

/// Writes the RGBA cutout atomically (a concurrent reader never sees half a PNG).
fn write_cutout(path: &Path, img: &RgbImage, mask: &GrayImage) -> Result<()> {
    let rgba = RgbaImage::from_fn(img.width(), img.height(), |x, y| {
        let [r, g, b] = img.get_pixel(x, y).0;
        image::Rgba([r, g, b, mask.get_pixel(x, y)[0]])
    });
    let mut png = Vec::new();
    DynamicImage::ImageRgba8(rgba)
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
        .map_err(|e| BeakerError::io("encode png", path, std::io::Error::other(e.to_string())))?;
    fsio::write_atomic(path, &png)
}

fn stem_of(path: &Path) -> Result<String> {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| BeakerError::Usage(format!("input {} has no file name", path.display())))
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn bird_mask_separates_bird_from_sky() {
        let bytes = fixtures::small_model();
        let path = Path::new("small.onnx");
        let plan = load_model_bytes(path, &bytes).unwrap().into_plan().unwrap();
        let img = image::load_from_memory(&fixtures::test_image_png()).unwrap().to_rgb8();
        let mask = infer(&plan, path, &img).unwrap();
        assert_eq!(mask.dimensions(), img.dimensions());
        // Centre of the bird's body vs. a sky corner.
        let (bird, sky) = (mask.get_pixel(44, 46)[0], mask.get_pixel(90, 4)[0]);
        assert!(bird > 160 && sky < 80, "bird alpha {bird}, sky alpha {sky}");

        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join(format!("bird{CUTOUT_SUFFIX}"));
        write_cutout(&out, &img, &mask).unwrap();
        let back = image::open(&out).unwrap().to_rgba8();
        assert_eq!(back.dimensions(), img.dimensions());
        assert_eq!(back.get_pixel(44, 46)[3], bird);
    }

    #[test]
    fn bad_images_are_usage_errors() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.png");
        let garbage = dir.path().join("garbage.png");
        std::fs::write(&garbage, b"not a png").unwrap();
        for path in [missing, garbage] {
            let err = decode(&path).unwrap_err();
            assert_eq!(err.exit_code(), crate::error::EXIT_USAGE, "{err}");
            assert!(!err.to_string().contains('\n'));
        }
    }
}
