//! `beaker cutout` end to end: the real binary against a loopback model server serving the large
//! fixture, through both caches (cold, then warm), plus the failure classes cutout owns.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use anyhow::{Context, Result, ensure};

/// The loopback model server (crate `fault-server`) with one route serving `body` at `/models/large/large.onnx`.
struct ModelServer {
    _server: fault_server::ModelServer,
    route: fault_server::RouteHandle,
    url: String,
}

impl ModelServer {
    fn start(body: Vec<u8>) -> Result<ModelServer> {
        let server = fault_server::ModelServer::start()?;
        let route = server.add_route(fault_server::Route::new("/models/large/large.onnx", body));
        let url = server.url(&route);
        Ok(ModelServer { _server: server, route, url })
    }

    fn requests(&self) -> usize {
        self.route.requests() as usize
    }
}

/// A scratch world: cache dirs, fixtures, output dir.
struct World {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    model: Vec<u8>,
    sha256: String,
}

impl World {
    fn new() -> Result<World> {
        let tmp = tempfile::tempdir()?;
        let root = tmp.path().to_path_buf();
        beaker::fixtures::write_all(&root.join("fixtures"))?;
        let model = beaker::fixtures::large_model();
        let sha256 = beaker::fsio::sha256_hex(&model);
        Ok(World { _tmp: tmp, root, model, sha256 })
    }

    fn cache_dir(&self) -> PathBuf {
        self.root.join("cache/models")
    }

    fn compiled_dir(&self) -> PathBuf {
        self.root.join("cache/compiled")
    }

    fn image(&self) -> PathBuf {
        self.root.join("fixtures/bird.png")
    }

    fn beaker(&self, url: &str, sha256: &str, args: &[&str]) -> Result<Output> {
        self.beaker_env(url, sha256, args, &[])
    }

    fn beaker_env(&self, url: &str, sha256: &str, args: &[&str], env: &[(&str, &str)]) -> Result<Output> {
        Command::new(env!("CARGO_BIN_EXE_beaker"))
            .args(args)
            .env_clear()
            .envs(env.iter().copied())
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("ONNX_MODEL_CACHE_DIR", self.cache_dir())
            .env("BEAKER_COMPILED_CACHE_DIR", self.compiled_dir())
            .env("BEAKER_CUTOUT_MODEL_URL", url)
            .env("BEAKER_CUTOUT_MODEL_SHA256", sha256)
            .env("BEAKER_CONNECT_TIMEOUT_MS", "2000")
            .env("BEAKER_READ_TIMEOUT_MS", "2000")
            .env("BEAKER_MAX_ATTEMPTS", "2")
            .env("BEAKER_RETRY_BASE_MS", "10")
            .output()
            .context("running beaker")
    }

    fn cutout(&self, url: &str, sha256: &str, out: &Path) -> Result<Output> {
        self.cutout_env(url, sha256, out, &[])
    }

    fn cutout_env(&self, url: &str, sha256: &str, out: &Path, env: &[(&str, &str)]) -> Result<Output> {
        let image = self.image();
        let args = ["cutout", image.to_str().unwrap(), "--output-dir", out.to_str().unwrap(), "--metadata"];
        self.beaker_env(url, sha256, &args, env)
    }

    /// Names in the compiled dir, sorted.
    #[cfg(feature = "failpoints")]
    fn compiled_names(&self) -> Result<Vec<String>> {
        let mut names = std::fs::read_dir(self.compiled_dir())?
            .map(|e| Ok(e?.file_name().to_string_lossy().into_owned()))
            .collect::<Result<Vec<_>>>()?;
        names.sort();
        Ok(names)
    }
}

fn ok(output: &Output) -> Result<()> {
    ensure!(
        output.status.success(),
        "beaker failed with {:?}: {}",
        output.status.code(),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

fn metadata(out: &Path) -> Result<toml::Value> {
    Ok(toml::from_str(&std::fs::read_to_string(out.join("bird.beaker.toml"))?)?)
}

#[test]
fn cold_then_warm_cutout_through_both_caches() -> Result<()> {
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;

    let cold = world.root.join("out-cold");
    ok(&world.cutout(&server.url, &world.sha256, &cold)?)?;
    assert_eq!(server.requests(), 1);
    let cutout = image::open(cold.join("bird_cutout.png"))?;
    assert_eq!(cutout.color(), image::ColorType::Rgba8);
    let cutout = cutout.to_rgba8();
    assert_eq!(cutout.dimensions(), (beaker::fixtures::IMAGE_WIDTH, beaker::fixtures::IMAGE_HEIGHT));
    let (bird, sky) = (cutout.get_pixel(44, 46)[3], cutout.get_pixel(90, 4)[3]);
    assert!(bird > 160 && sky < 80, "bird alpha {bird}, sky alpha {sky}");

    let meta = metadata(&cold)?;
    assert_eq!(meta["model"]["sha256"].as_str(), Some(world.sha256.as_str()));
    assert_eq!(meta["model"]["size_bytes"].as_integer(), Some(world.model.len() as i64));
    assert_eq!(meta["download_cache"]["hit"].as_bool(), Some(false));
    assert_eq!(meta["download_cache"]["bytes_downloaded"].as_integer(), Some(world.model.len() as i64));
    assert_eq!(meta["compiled_cache"]["hit"].as_bool(), Some(false));
    let compiled_path = meta["compiled_cache"]["path"].as_str().unwrap().to_string();
    assert!(Path::new(&compiled_path).join(beaker::compiled::MANIFEST_FILE).is_file());
    let phases: Vec<(String, i64, i64)> = meta["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| {
            (
                p["name"].as_str().unwrap().to_string(),
                p["start_unix_ms"].as_integer().unwrap(),
                p["end_unix_ms"].as_integer().unwrap(),
            )
        })
        .collect();
    let names: Vec<&str> = phases.iter().map(|p| p.0.as_str()).collect();
    for name in ["resolve", "download", "compile", "load", "inference", "write_output"] {
        assert!(names.contains(&name), "phase {name} missing from {names:?}");
    }
    assert!(phases.iter().all(|(_, start, end)| start <= end), "{phases:?}");

    let warm = world.root.join("out-warm");
    ok(&world.cutout(&server.url, &world.sha256, &warm)?)?;
    assert_eq!(server.requests(), 1, "a warm run must not download");
    let meta = metadata(&warm)?;
    assert_eq!(meta["download_cache"]["hit"].as_bool(), Some(true));
    assert_eq!(meta["download_cache"]["bytes_downloaded"].as_integer(), Some(0));
    assert_eq!(meta["compiled_cache"]["hit"].as_bool(), Some(true));
    assert_eq!(meta["compiled_cache"]["path"].as_str(), Some(compiled_path.as_str()));
    assert_eq!(std::fs::read(cold.join("bird_cutout.png"))?, std::fs::read(warm.join("bird_cutout.png"))?);

    // Only final entries and lock files remain in either cache.
    for dir in [world.cache_dir(), world.compiled_dir()] {
        for entry in std::fs::read_dir(&dir)? {
            let name = entry?.file_name().to_string_lossy().into_owned();
            assert!(!name.ends_with(".partial") && !name.ends_with(".tmp"), "left over: {name}");
        }
    }
    Ok(())
}

#[test]
fn corrupted_cached_model_is_quarantined_and_refetched() -> Result<()> {
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;
    let out = world.root.join("out");
    let fetched = world.beaker(&server.url, &world.sha256, &["cache", "fetch"])?;
    ok(&fetched)?;
    let final_path = PathBuf::from(String::from_utf8(fetched.stdout)?.trim());
    // Truncate the cached model behind the cache's back (hits are not re-hashed).
    std::fs::write(&final_path, &world.model[..world.model.len() / 2])?;

    ok(&world.cutout(&server.url, &world.sha256, &out)?)?;
    assert_eq!(server.requests(), 2, "the bad file must be fetched again, once");
    assert_eq!(std::fs::read(&final_path)?, world.model);
    assert_eq!(std::fs::read_dir(world.cache_dir().join("quarantine"))?.count(), 1);
    let meta = metadata(&out)?;
    assert_eq!(meta["model"]["sha256"].as_str(), Some(world.sha256.as_str()));
    Ok(())
}

#[test]
fn model_breaking_the_contract_exits_4_and_bad_image_exits_2() -> Result<()> {
    let world = World::new()?;
    // Served bytes that are not a model, no checksum given: validated by loading, never cached.
    let server = ModelServer::start(b"this is not an onnx model".to_vec())?;
    let out = world.root.join("out");
    let run = world.cutout(&server.url, "", &out)?;
    assert_eq!(run.status.code(), Some(4), "{}", String::from_utf8_lossy(&run.stderr));
    let stderr = String::from_utf8(run.stderr)?;
    assert!(stderr.starts_with("beaker: error: ") && stderr.lines().count() == 1, "{stderr:?}");
    assert!(!out.join("bird_cutout.png").exists());

    // A well-formed protobuf whose graph output names no node: tract 0.23 panics on it; beaker must
    // still report one line and exit 4.
    let mut proto =
        <tract_onnx::pb::ModelProto as prost::Message>::decode(&*beaker::fixtures::small_model())?;
    proto.graph.as_mut().context("graph")?.output[0].name = "nobody-makes-this".into();
    let broken = ModelServer::start(prost::Message::encode_to_vec(&proto))?;
    let run = world.cutout(&broken.url, "", &world.root.join("out2"))?;
    let stderr = String::from_utf8(run.stderr)?;
    assert_eq!(run.status.code(), Some(4), "{stderr}");
    assert!(stderr.lines().count() == 1 && !stderr.contains("panicked at"), "{stderr:?}");

    let missing = world.root.join("no-such.png");
    let run = world.beaker(&server.url, "", &["cutout", missing.to_str().unwrap()])?;
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8(run.stderr)?;
    assert!(stderr.contains("no-such.png") && stderr.lines().count() == 1, "{stderr:?}");
    Ok(())
}

/// The same pipeline in-process (`beaker::cutout::run`), independent of the CLI wiring.
#[test]
fn library_cutout_cold_then_warm() -> Result<()> {
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;
    let env = [
        ("ONNX_MODEL_CACHE_DIR", world.cache_dir().display().to_string()),
        ("BEAKER_COMPILED_CACHE_DIR", world.compiled_dir().display().to_string()),
        ("BEAKER_CUTOUT_MODEL_URL", server.url.clone()),
        ("BEAKER_CUTOUT_MODEL_SHA256", world.sha256.clone()),
    ];
    let config = beaker::config::Config::from_lookup(|k| {
        env.iter().find(|(name, _)| *name == k).map(|(_, v)| v.clone())
    })?;
    for (round, hit) in [("cold", false), ("warm", true)] {
        let out = world.root.join(round);
        let args = beaker::cutout::CutoutArgs {
            images: vec![world.image()],
            output_dir: Some(out.clone()),
            metadata: true,
        };
        beaker::cutout::run(&args, &config)?;
        let meta = metadata(&out)?;
        assert_eq!(meta["download_cache"]["hit"].as_bool(), Some(hit), "{round}");
        assert_eq!(meta["compiled_cache"]["hit"].as_bool(), Some(hit), "{round}");
        assert!(out.join("bird_cutout.png").is_file());
    }
    assert_eq!(server.requests(), 1);
    Ok(())
}

/// A crash at `compiled.before_rename` leaves only a build dir (never a half entry); the next run
/// removes it and compiles. An injected I/O error there exits 5 and leaves nothing.
#[cfg(feature = "failpoints")]
#[test]
fn compiled_cache_survives_crash_and_io_error_before_rename() -> Result<()> {
    use std::os::unix::process::ExitStatusExt;
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;
    let entry = beaker::compiled::entry_name(&world.sha256);

    let crash = [("FAILPOINTS", "compiled.before_rename=return(crash)")];
    let run = world.cutout_env(&server.url, &world.sha256, &world.root.join("o1"), &crash)?;
    assert_eq!(run.status.signal(), Some(9), "{run:?}");
    let names = world.compiled_names()?;
    assert!(!names.contains(&entry), "a crash must not leave an entry: {names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!(".{entry}.")) && n.ends_with(".tmp")), "{names:?}");

    let io = [("FAILPOINTS", "compiled.before_rename=return(io)")];
    let run = world.cutout_env(&server.url, &world.sha256, &world.root.join("o2"), &io)?;
    assert_eq!(run.status.code(), Some(5), "{}", String::from_utf8_lossy(&run.stderr));
    // The stale build dir of the crash was removed by this lock holder, its own one on error.
    assert_eq!(world.compiled_names()?, vec![format!("{entry}.lock")]);

    let out = world.root.join("o3");
    ok(&world.cutout(&server.url, &world.sha256, &out)?)?;
    assert_eq!(metadata(&out)?["compiled_cache"]["hit"].as_bool(), Some(false));
    assert_eq!(world.compiled_names()?, vec![entry.clone(), format!("{entry}.lock")]);
    Ok(())
}

/// Seeded bug `compiled-direct-dir`: the same crash leaves a half-built entry under its final name,
/// which is what the stress suite must catch. A correct process then repairs it.
#[cfg(all(feature = "failpoints", feature = "mutants"))]
#[test]
fn compiled_direct_dir_mutant_leaves_a_half_entry() -> Result<()> {
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;
    let entry = beaker::compiled::entry_name(&world.sha256);
    let env =
        [("FAILPOINTS", "compiled.before_rename=return(crash)"), ("BEAKER_MUTANT", "compiled-direct-dir")];
    let run = world.cutout_env(&server.url, &world.sha256, &world.root.join("o1"), &env)?;
    assert!(!run.status.success());
    let half = world.compiled_dir().join(&entry);
    assert!(half.is_dir() && !half.join(beaker::compiled::MANIFEST_FILE).exists());

    let out = world.root.join("o2");
    ok(&world.cutout(&server.url, &world.sha256, &out)?)?;
    assert_eq!(metadata(&out)?["compiled_cache"]["hit"].as_bool(), Some(false));
    assert!(half.join(beaker::compiled::MANIFEST_FILE).is_file());
    Ok(())
}

/// Eight concurrent cutouts on empty caches: all succeed, one download, one compile, one entry.
#[test]
fn concurrent_cutouts_download_once_and_compile_once() -> Result<()> {
    let world = World::new()?;
    let server = ModelServer::start(world.model.clone())?;
    let image = world.image();
    let children = (0..8)
        .map(|i| {
            let out = world.root.join(format!("out{i}"));
            Command::new(env!("CARGO_BIN_EXE_beaker"))
                .args([
                    "cutout",
                    image.to_str().unwrap(),
                    "--output-dir",
                    out.to_str().unwrap(),
                    "--metadata",
                ])
                .env_clear()
                .env("ONNX_MODEL_CACHE_DIR", world.cache_dir())
                .env("BEAKER_COMPILED_CACHE_DIR", world.compiled_dir())
                .env("BEAKER_CUTOUT_MODEL_URL", &server.url)
                .env("BEAKER_CUTOUT_MODEL_SHA256", &world.sha256)
                .stderr(std::process::Stdio::piped())
                .spawn()
                .map(|child| (out, child))
        })
        .collect::<std::io::Result<Vec<_>>>()?;
    let mut compiled_misses = 0;
    for (out, child) in children {
        ok(&child.wait_with_output()?)?;
        let meta = metadata(&out)?;
        assert_eq!(meta["model"]["sha256"].as_str(), Some(world.sha256.as_str()));
        if meta["compiled_cache"]["hit"].as_bool() == Some(false) {
            compiled_misses += 1;
        }
    }
    assert_eq!(server.requests(), 1, "one download");
    assert_eq!(compiled_misses, 1, "one compile");
    let entries: Vec<_> = std::fs::read_dir(world.compiled_dir())?
        .map(|e| e.map(|e| e.file_name().to_string_lossy().into_owned()))
        .collect::<std::io::Result<_>>()?;
    assert_eq!(entries.len(), 2, "one entry and its lock: {entries:?}");
    Ok(())
}
