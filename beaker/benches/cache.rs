//! Cache benchmark: cold fetch vs. warm hit vs. local file for the large fixture (~2 MB), side by
//! side in one run, with real `beaker` processes against a loopback model server.
//!
//! `cargo bench -p beaker --bench cache` (optional: `BEAKER_BENCH_RUNS=N`, default 7). Rows:
//! - cold: empty download and compiled caches; the model is downloaded over loopback, verified
//!   (SHA-256), published; `cutout` also compiles it to NNEF.
//! - warm hit: both caches populated; no network, no re-hash of the cached model (documented
//!   decision), `cutout` loads the compiled entry.
//! - local file: the model file copied into the download cache by hand (no network), compiled cache
//!   empty: what a model already on disk costs through beaker.
//!
//! Plus in-process baselines for the large model: SHA-256 of the bytes (what re-hashing every hit
//! would add) and reading + parsing the ONNX file directly with tract (no cache at all).

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

const MODEL_PATH: &str = "/models/large/large.onnx";

fn main() -> Result<()> {
    // `cargo bench` passes `--bench` (and possibly a filter); nothing to configure from them.
    let runs: usize = std::env::var("BEAKER_BENCH_RUNS").ok().and_then(|v| v.parse().ok()).unwrap_or(7);
    let runs = runs.clamp(1, 50);
    let bin = beaker_bin()?;
    let tmp = tempfile::tempdir()?;
    let root = tmp.path();
    beaker::fixtures::write_all(&root.join("fixtures"))?;
    let model = std::fs::read(root.join("fixtures/large.onnx"))?;
    let sha256 = beaker::fsio::sha256_hex(&model);
    let image = root.join("fixtures/bird.png");
    let server = Server::start(model.clone())?;
    let bench =
        Bench { bin, root: root.to_path_buf(), url: server.url.clone(), sha256: sha256.clone(), image };

    println!(
        "beaker cache benchmark: large.onnx ({} bytes, sha256 {}), {runs} runs per cell",
        model.len(),
        &sha256[..16]
    );
    println!("binary: {}", bench.bin.display());

    // Each sample gets fresh directories so a cold run is really cold.
    let mut results: Vec<(&str, Duration, Duration)> = Vec::new();
    let before = server.requests();
    let cold_fetch = bench.samples(runs, |b, dirs| b.run(dirs, &["cache", "fetch"]), |_| Ok(()))?;
    let cold_cutout = bench.samples(runs, |b, dirs| b.cutout(dirs), |_| Ok(()))?;
    let downloads = server.requests() - before;
    ensure!(downloads == 2 * runs, "expected {} downloads for the cold runs, saw {downloads}", 2 * runs);
    results.push(("cold (download + verify [+ compile])", cold_fetch, cold_cutout));

    let before = server.requests();
    let warm_fetch = bench.samples(runs, |b, dirs| b.run(dirs, &["cache", "fetch"]), |d| bench.warm_up(d))?;
    let warm_cutout = bench.samples(runs, |b, dirs| b.cutout(dirs), |d| bench.warm_up(d))?;
    ensure!(server.requests() - before == 2 * runs, "warm-up only: one download per sample dir");
    results.push(("warm hit (both caches populated)", warm_fetch, warm_cutout));

    let before = server.requests();
    let seed = |d: &Dirs| bench.seed_local(d, &model);
    let local_fetch = bench.samples(runs, |b, dirs| b.run(dirs, &["cache", "fetch"]), seed)?;
    let local_cutout = bench.samples(runs, |b, dirs| b.cutout(dirs), seed)?;
    ensure!(server.requests() == before, "local-file runs must not touch the network");
    results.push(("local file (copied into the cache)", local_fetch, local_cutout));

    let rehash = median(runs, || {
        let t = Instant::now();
        std::hint::black_box(beaker::fsio::sha256_hex(&model));
        Ok(t.elapsed())
    })?;
    let direct_load = median(runs, || {
        let t = Instant::now();
        let bytes = std::fs::read(root.join("fixtures/large.onnx"))?;
        let loaded = beaker::model::load_model_bytes(Path::new("large.onnx"), &bytes)?;
        std::hint::black_box(loaded.into_plan()?);
        Ok(t.elapsed())
    })?;

    println!();
    println!("{:<40} {:>16} {:>16}", "scenario (median)", "cache fetch", "cutout");
    for (name, fetch, cutout) in &results {
        println!("{name:<40} {:>13.1} ms {:>13.1} ms", ms(*fetch), ms(*cutout));
    }
    println!();
    println!("ratios                                        cache fetch           cutout");
    let ratio = |a: Duration, b: Duration| ms(a) / ms(b).max(1e-3);
    println!(
        "{:<40} {:>15.2}x {:>15.2}x",
        "cold / warm",
        ratio(cold_fetch, warm_fetch),
        ratio(cold_cutout, warm_cutout)
    );
    println!(
        "{:<40} {:>15.2}x {:>15.2}x",
        "local file / warm",
        ratio(local_fetch, warm_fetch),
        ratio(local_cutout, warm_cutout)
    );
    println!();
    println!("in-process baselines (median)");
    println!(
        "{:<40} {:>13.2} ms  (what re-hashing every warm hit would add)",
        "sha256 of large.onnx",
        ms(rehash)
    );
    println!(
        "{:<40} {:>13.2} ms  (no cache, no process start)",
        "read + tract load + optimise",
        ms(direct_load)
    );
    Ok(())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(runs: usize, mut f: impl FnMut() -> Result<Duration>) -> Result<Duration> {
    let mut v = (0..runs).map(|_| f()).collect::<Result<Vec<_>>>()?;
    v.sort();
    Ok(v[v.len() / 2])
}

/// The `beaker` binary: cargo sets `CARGO_BIN_EXE_beaker` for benches; else `target/<profile>/beaker`
/// next to this bench executable's `deps/` directory.
fn beaker_bin() -> Result<PathBuf> {
    if let Some(path) = option_env!("CARGO_BIN_EXE_beaker").map(PathBuf::from).filter(|p| p.is_file()) {
        return Ok(path);
    }
    let exe = std::env::current_exe()?;
    let candidate = exe.parent().and_then(Path::parent).map(|p| p.join("beaker"));
    match candidate {
        Some(path) if path.is_file() => Ok(path),
        _ => bail!(
            "beaker binary not found next to {}; run `cargo bench -p beaker --bench cache`",
            exe.display()
        ),
    }
}

/// One sample's cache directories.
struct Dirs {
    cache: PathBuf,
    compiled: PathBuf,
    out: PathBuf,
}

struct Bench {
    bin: PathBuf,
    root: PathBuf,
    url: String,
    sha256: String,
    image: PathBuf,
}

impl Bench {
    /// Runs `sample` `runs` times, each on fresh directories prepared by `prepare` (not timed).
    fn samples(
        &self,
        runs: usize,
        sample: impl Fn(&Bench, &Dirs) -> Result<()>,
        prepare: impl Fn(&Dirs) -> Result<()>,
    ) -> Result<Duration> {
        static N: AtomicUsize = AtomicUsize::new(0);
        median(runs, || {
            let base = self.root.join(format!("s{}", N.fetch_add(1, Ordering::Relaxed)));
            let dirs =
                Dirs { cache: base.join("models"), compiled: base.join("compiled"), out: base.join("out") };
            prepare(&dirs)?;
            let t = Instant::now();
            sample(self, &dirs)?;
            Ok(t.elapsed())
        })
    }

    fn run(&self, dirs: &Dirs, args: &[&str]) -> Result<()> {
        let out = Command::new(&self.bin)
            .args(args)
            .env("ONNX_MODEL_CACHE_DIR", &dirs.cache)
            .env("BEAKER_COMPILED_CACHE_DIR", &dirs.compiled)
            .env("BEAKER_CUTOUT_MODEL_URL", &self.url)
            .env("BEAKER_CUTOUT_MODEL_SHA256", &self.sha256)
            .env("RUST_LOG", "warn")
            .env_remove("FAILPOINTS")
            .env_remove("BEAKER_MUTANT")
            .output()
            .with_context(|| format!("running {}", self.bin.display()))?;
        ensure!(out.status.success(), "beaker {args:?} failed: {}", String::from_utf8_lossy(&out.stderr));
        Ok(())
    }

    fn cutout(&self, dirs: &Dirs) -> Result<()> {
        let image = self.image.to_str().context("non-UTF-8 temp path")?;
        let out = dirs.out.to_str().context("non-UTF-8 temp path")?;
        self.run(dirs, &["cutout", image, "--output-dir", out])
    }

    /// Populates both caches with one untimed cutout.
    fn warm_up(&self, dirs: &Dirs) -> Result<()> {
        self.cutout(dirs)
    }

    /// Copies the model into the download cache under its final name, as a user with the file would.
    fn seed_local(&self, dirs: &Dirs, model: &[u8]) -> Result<()> {
        std::fs::create_dir_all(&dirs.cache)?;
        let name = beaker::cache::final_name(&self.url, Some(&self.sha256));
        std::fs::write(dirs.cache.join(name), model)?;
        Ok(())
    }
}

/// The loopback model server (crate `fault-server`) with one route serving `body` at `MODEL_PATH`.
struct Server {
    _server: fault_server::ModelServer,
    route: fault_server::RouteHandle,
    url: String,
}

impl Server {
    fn start(body: Vec<u8>) -> Result<Server> {
        let server = fault_server::ModelServer::start()?;
        let route = server.add_route(fault_server::Route::new(MODEL_PATH, body));
        let url = server.url(&route);
        Ok(Server { _server: server, route, url })
    }

    fn requests(&self) -> usize {
        self.route.requests() as usize
    }
}
