//! The `[package.metadata.stress-cache]` declaration in `beaker/Cargo.toml` and the code agree: the
//! stress suite drives beaker only through that declaration, so a name that drifts would make it
//! test nothing.

use std::collections::BTreeSet;
use std::path::Path;

use beaker::cache;
use beaker::cli::{CacheCommand, Cli, Command};
use beaker::config;
use beaker::error;
use beaker::failpoints;
use beaker::fsio;
use beaker::lock;
use beaker::mutants::Mutant;
use clap::Parser;
use stress_cache_metadata::{FileRoles, LockKind, Role, TargetSpec};

fn manifest() -> toml::Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn spec() -> TargetSpec {
    let value = manifest()["package"]["metadata"]["stress-cache"].clone();
    let spec: TargetSpec = value.try_into().expect("declaration matches the TargetSpec schema");
    spec.validate("beaker/Cargo.toml").expect("declaration is consistent");
    spec
}

/// `*` matches any run of characters within one path component.
fn set<'a>(it: impl IntoIterator<Item = &'a str>) -> BTreeSet<&'a str> {
    it.into_iter().collect()
}

#[test]
fn failpoints_agree() {
    let spec = spec();
    let fp = spec.failpoints.as_ref().expect("failpoints declared");
    assert_eq!(set(fp.names.iter().map(String::as_str)), set(failpoints::FAILPOINT_NAMES.iter().copied()));
    assert_eq!(fp.crash_action, "return(crash)");
    assert_eq!(fp.io_action.as_deref(), Some("return(io)"));
    assert_eq!(fp.pause_action.as_deref(), Some("return(pause)"));
    assert_eq!(fp.reader.as_deref(), Some(failpoints::CACHE_AFTER_RESOLVE));
    assert_eq!(fp.gc.as_deref(), Some(failpoints::GC_BEFORE_DELETE));
    let features = manifest()["features"].clone();
    let name = spec.features.failpoints.as_deref().expect("failpoints feature named");
    assert!(features.get(name).is_some(), "feature {name} exists");
}

#[test]
fn mutants_agree() {
    let spec = spec();
    let declared = set(spec.mutant_names().iter().map(String::as_str));
    assert_eq!(declared, set(Mutant::ALL.iter().map(|m| m.name())));
    let features = manifest()["features"].clone();
    let name = spec.features.mutants.as_deref().expect("mutants feature named");
    assert!(features.get(name).is_some(), "feature {name} exists");
    assert_eq!(spec.env.mutant.as_deref(), Some(config::ENV_MUTANT));
}

#[test]
fn env_names_and_exit_codes_agree() {
    let spec = spec();
    assert_eq!(spec.env.url.as_deref(), Some(config::ENV_MODEL_URL));
    assert_eq!(spec.env.sha256.as_deref(), Some(config::ENV_MODEL_SHA256));
    assert_eq!(spec.env.cache_dir.as_deref(), Some(config::ENV_CACHE_DIR));
    assert_eq!(spec.env.compiled_dir.as_deref(), Some(config::ENV_COMPILED_DIR));
    assert_eq!(spec.env.failpoints.as_deref(), Some(config::ENV_FAILPOINTS));
    for var in spec.extra_env.keys() {
        assert!(config::ALL_ENV_VARS.contains(&var.as_str()), "extra-env {var} is read by beaker");
    }
    // The extra env parses.
    let extra = spec.extra_env.clone();
    let cfg = config::Config::from_lookup(|k| {
        extra.get(k).cloned().or_else(|| (k == config::ENV_CACHE_DIR).then(|| "/tmp/c".to_string()))
    })
    .unwrap();
    assert!(cfg.max_attempts >= 1);

    let codes = &spec.exit_codes;
    assert_eq!(codes.ok, 0);
    assert_eq!(codes.usage, Some(error::EXIT_USAGE));
    assert_eq!(codes.network, Some(error::EXIT_NETWORK));
    assert_eq!(codes.integrity, Some(error::EXIT_INTEGRITY));
    assert_eq!(codes.io, Some(error::EXIT_IO));
}

#[test]
fn binary_and_args_parse() {
    let spec = spec();
    assert_eq!(spec.binary.as_deref(), Some("beaker"));
    let subst = |args: &[String]| -> Vec<String> {
        std::iter::once("beaker".to_string())
            .chain(args.iter().map(|a| {
                a.replace("{input}", "in/bird.png")
                    .replace("{output_dir}", "out")
                    .replace("{max_bytes}", "1000")
                    .replace("{out_dir}", "fx")
            }))
            .collect()
    };
    let cli = Cli::try_parse_from(subst(&spec.args)).expect("args parse");
    let Command::Cutout(args) = cli.command else { panic!("args must run cutout") };
    assert!(args.metadata, "the suite needs --metadata");
    let gc = Cli::try_parse_from(subst(spec.gc_args.as_ref().unwrap())).expect("gc-args parse");
    assert!(matches!(gc.command, Command::Cache(CacheCommand::Gc { max_bytes: 1000 })));
    let verify = Cli::try_parse_from(subst(spec.verify_args.as_ref().unwrap())).expect("verify-args parse");
    assert!(matches!(verify.command, Command::Cache(CacheCommand::Verify)));
    let fixtures = spec.fixtures.as_ref().expect("fixtures");
    let fx = Cli::try_parse_from(subst(&fixtures.args)).expect("fixtures args parse");
    assert!(matches!(fx.command, Command::Fixtures { .. }));
}

#[test]
fn file_patterns_match_the_names_the_code_makes() {
    let spec = spec();
    let files = &spec.files;
    let sha = "ab".repeat(32);
    let url = "http://127.0.0.1:1/models/small/small.onnx";
    let dir = Path::new("/c");
    let roles = FileRoles::compile(files, "beaker").expect("beaker's patterns compile");
    let role = |name: &str| roles.roles_of(Path::new(name));
    for name in [cache::final_name(url, Some(&sha)), cache::final_name(url, None)] {
        assert_eq!(role(&name), vec![Role::Final], "{name} is a final and nothing else");
        let final_path = dir.join(&name);
        let partial = fsio::unique_partial_path(&final_path);
        let partial = partial.file_name().unwrap().to_str().unwrap();
        assert_eq!(role(partial), vec![Role::Partial], "{partial} is a partial and nothing else");
        let lock = lock::lock_path(&final_path);
        let lock = lock.file_name().unwrap().to_str().unwrap();
        assert_eq!(role(lock), vec![Role::Lock], "{lock} is a lock and nothing else");
        let quarantined = format!("{}/{name}.1700000000000", fsio::QUARANTINE_DIR);
        assert_eq!(role(&quarantined), vec![Role::Quarantine], "{quarantined} is quarantined");
    }
    assert_eq!(files.lock_kind, LockKind::Flock);
    let metadata = spec.metadata_file.as_ref().unwrap();
    assert_eq!(metadata.path, "{output_dir}/{input_stem}.beaker.toml");
    assert_eq!(metadata.sha256, "model.sha256");
    assert_eq!(metadata.download_hit.as_deref(), Some("download_cache.hit"));
}
