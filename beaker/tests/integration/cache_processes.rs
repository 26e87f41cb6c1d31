//! The download cache under real processes and a fault-injecting loopback model server
//! (crate `fault-server`): one download for N concurrent processes, classified failures with
//! nothing cached, crash at every failpoint then a clean run, gc racing readers.

use std::os::unix::process::ExitStatusExt;
use std::process::Output;
use std::time::Duration;

use crate::support::{self, TestCache, assert_one_error_line, describe};
use beaker::cache;
use beaker::lock;
use fault_server::{Fault, FaultPlan, Gate, GatePoint, ModelServer, Route, RouteHandle};

const PATH: &str = "/models/small/small.onnx";
const WAIT: Duration = Duration::from_secs(120);

fn small() -> Vec<u8> {
    beaker::fixtures::small_model()
}

fn serve(server: &ModelServer, content: Vec<u8>, plan: FaultPlan) -> (RouteHandle, String, String) {
    let route = server.add_route(Route::new(PATH, content).model_id("small").schedule(plan));
    let url = server.url(&route);
    let sha = route.sha256_hex().to_string();
    (route, url, sha)
}

fn fetch(cache: &TestCache, url: &str, sha: Option<&str>, env: &[(&str, &str)]) -> Output {
    let mut cmd = cache.beaker(url, sha, &["cache", "fetch"]);
    cmd.envs(env.iter().copied());
    cmd.output().unwrap()
}

fn assert_cached_once(cache: &TestCache, sha: &str) {
    let state = cache.state();
    assert_eq!(state.finals.len(), 1, "{state:?}");
    assert_eq!(support::sha256_of(&cache.dir.join(&state.finals[0])), sha);
    state.assert_clean(&cache.dir);
}

fn assert_nothing_cached(cache: &TestCache) {
    let state = cache.state();
    assert!(state.finals.is_empty(), "{state:?}");
    state.assert_clean(&cache.dir);
}

#[test]
fn sixteen_concurrent_fetches_download_once() {
    let server = ModelServer::start().unwrap();
    let gate = Gate::named("first-download");
    let (route, url, sha) = serve(
        &server,
        small(),
        FaultPlan::new([Fault::Gated { at: GatePoint::AfterBytes(4096), gate: gate.clone() }]),
    );
    let cache = TestCache::new();
    let children: Vec<_> =
        (0..16).map(|_| cache.beaker(&url, Some(&sha), &["cache", "fetch"]).spawn().unwrap()).collect();
    // One process is mid-download (parked at the gate, holding the exclusive lock) ...
    gate.wait_arrivals(1, WAIT).unwrap();
    // ... and the 15 others are blocked on the entry's lock before it is released.
    let lock_file = lock::lock_path(&cache.dir.join(cache::final_name(&url, Some(&sha))));
    if support::lock_waiters(&lock_file).is_some() {
        support::wait_for(WAIT, "15 processes waiting on the lock", || {
            support::lock_waiters(&lock_file).unwrap_or(0) >= 15
        });
    }
    gate.release();
    let outputs: Vec<Output> = children.into_iter().map(|c| c.wait_with_output().unwrap()).collect();
    let expected_path = cache.dir.join(cache::final_name(&url, Some(&sha)));
    for out in &outputs {
        assert!(out.status.success(), "{}", describe(out));
        assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), expected_path.display().to_string());
    }
    assert_eq!(route.requests(), 1, "exactly one download");
    assert_eq!(route.complete_bodies(), 1);
    assert_cached_once(&cache, &sha);
}

#[test]
fn corrupted_body_exits_4_and_caches_nothing() {
    let server = ModelServer::start().unwrap();
    let (route, url, sha) = serve(&server, small(), FaultPlan::always(Fault::Corrupt));
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("checksum mismatch"));
    assert_eq!(route.requests(), 1, "an integrity failure is not retried");
    assert_nothing_cached(&cache);
}

#[test]
fn invalid_model_without_checksum_exits_4_and_caches_nothing() {
    let server = ModelServer::start().unwrap();
    let (_route, url, _sha) =
        serve(&server, b"definitely not an onnx model".repeat(100), FaultPlan::default());
    let cache = TestCache::new();
    let out = fetch(&cache, &url, None, &[]);
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("invalid model"));
    assert_nothing_cached(&cache);
}

#[test]
fn model_without_checksum_is_validated_and_cached_under_its_url_name() {
    let server = ModelServer::start().unwrap();
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    let cache = TestCache::new();
    let out = fetch(&cache, &url, None, &[]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_cached_once(&cache, &sha);
    assert_eq!(cache.state().finals, vec![cache::final_name(&url, None)]);
}

#[test]
fn mid_stream_close_on_every_try_exits_3_and_caches_nothing() {
    let server = ModelServer::start().unwrap();
    let (route, url, sha) = serve(&server, small(), FaultPlan::always(Fault::CloseAfter(1000)));
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("after 4 attempt"));
    assert_eq!(route.requests(), 4, "BEAKER_MAX_ATTEMPTS bounds the retries");
    assert_nothing_cached(&cache);
}

#[test]
fn transient_failures_are_retried() {
    let server = ModelServer::start().unwrap();
    let plan = FaultPlan::new([
        Fault::Status { code: 503, retry_after: None },
        Fault::Reset,
        Fault::CloseAfter(100),
        Fault::Status { code: 429, retry_after: Some(0) },
        Fault::LongContentLength(10),
    ]);
    let (route, url, sha) = serve(&server, small(), plan);
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[("BEAKER_MAX_ATTEMPTS", "6")]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(route.requests(), 6);
    assert_cached_once(&cache, &sha);
}

#[test]
fn client_errors_are_not_retried_and_refused_is_a_network_error() {
    let server = ModelServer::start().unwrap();
    let (route, url, sha) =
        serve(&server, small(), FaultPlan::always(Fault::Status { code: 404, retry_after: None }));
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("404"));
    assert_eq!(route.requests(), 1);
    let out = fetch(&cache, &server.refused_url(), None, &[]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_one_error_line(&out);
    assert_nothing_cached(&cache);
}

#[test]
fn usage_and_config_errors_exit_2_with_one_line() {
    let cache = TestCache::new();
    let url = "http://127.0.0.1:9/models/small/small.onnx";
    let out = cache.beaker(url, None, &["cache", "gc"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
    for (var, value) in
        [("BEAKER_MAX_ATTEMPTS", "many"), ("BEAKER_MUTANT", "no-such-bug"), ("FAILPOINTS", "x")]
    {
        let out = cache.beaker(url, None, &["cache", "fetch"]).env(var, value).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{var}: {}", describe(&out));
        assert!(assert_one_error_line(&out).contains(var));
    }
    let out = cache.beaker(url, Some("abc"), &["cache", "fetch"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", describe(&out));
}

#[test]
fn crash_at_each_failpoint_then_a_clean_run_succeeds() {
    let server = ModelServer::start().unwrap();
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    for fp in [
        "cache.after_lock",
        "cache.stale_cleanup",
        "cache.mid_download",
        "cache.before_rename",
        "cache.after_rename",
        "cache.after_resolve",
    ] {
        let cache = TestCache::new();
        let failpoints = format!("{fp}=return(crash)");
        let out = fetch(&cache, &url, Some(&sha), &[("FAILPOINTS", &failpoints)]);
        assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{fp}: {}", describe(&out));
        if fp == "cache.mid_download" || fp == "cache.before_rename" {
            assert_eq!(cache.state().partials.len(), 1, "{fp}: the crash leaves its partial");
        }
        let out = fetch(&cache, &url, Some(&sha), &[]);
        assert!(out.status.success(), "{fp}: {}", describe(&out));
        assert_cached_once(&cache, &sha);
    }
    // gc killed right before a delete: the cache stays usable.
    let cache = TestCache::new();
    assert!(fetch(&cache, &url, Some(&sha), &[]).status.success());
    let out = cache
        .beaker(&url, Some(&sha), &["cache", "gc", "--max-bytes", "0"])
        .env("FAILPOINTS", "gc.before_delete=return(crash)")
        .output()
        .unwrap();
    assert_eq!(out.status.signal(), Some(libc::SIGKILL), "{}", describe(&out));
    assert!(fetch(&cache, &url, Some(&sha), &[]).status.success());
    assert_cached_once(&cache, &sha);
}

#[test]
fn injected_io_error_exits_5_and_leaves_nothing() {
    let server = ModelServer::start().unwrap();
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    for fp in ["cache.mid_download", "cache.before_rename"] {
        let cache = TestCache::new();
        let failpoints = format!("{fp}=return(io)");
        let out = fetch(&cache, &url, Some(&sha), &[("FAILPOINTS", &failpoints)]);
        assert_eq!(out.status.code(), Some(5), "{fp}: {}", describe(&out));
        assert_one_error_line(&out);
        assert_nothing_cached(&cache);
    }
}

/// A reader paused (SIGSTOP) while holding the shared lock on a resolved path; gc runs meanwhile.
fn gc_with_a_paused_reader(mutant: Option<&str>) -> (TestCache, Output, Output) {
    let server = ModelServer::start().unwrap();
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    let cache = TestCache::new();
    assert!(fetch(&cache, &url, Some(&sha), &[]).status.success());
    let reader = cache
        .beaker(&url, Some(&sha), &["cache", "fetch"])
        .env("FAILPOINTS", "cache.after_resolve=return(pause)")
        .spawn()
        .unwrap();
    assert!(support::wait_stopped(reader.id()), "the reader stops at cache.after_resolve");
    let mut gc = cache.beaker(&url, Some(&sha), &["cache", "gc", "--max-bytes", "0"]);
    if let Some(m) = mutant {
        gc.env("BEAKER_MUTANT", m);
    }
    let gc_out = gc.output().unwrap();
    support::resume(reader.id());
    let reader_out = reader.wait_with_output().unwrap();
    (cache, gc_out, reader_out)
}

#[test]
fn gc_racing_a_reader_skips_the_entry_in_use() {
    let (cache, gc_out, reader_out) = gc_with_a_paused_reader(None);
    assert!(gc_out.status.success(), "{}", describe(&gc_out));
    assert!(String::from_utf8_lossy(&gc_out.stdout).contains("in use"), "{}", describe(&gc_out));
    assert!(reader_out.status.success(), "{}", describe(&reader_out));
    let path = String::from_utf8_lossy(&reader_out.stdout).trim().to_string();
    assert!(std::path::Path::new(&path).exists(), "the reader's model is still there");
    // Once the reader is gone, gc evicts it.
    let out = cache
        .beaker("http://127.0.0.1:9/x.onnx", None, &["cache", "gc", "--max-bytes", "0"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", describe(&out));
    assert!(cache.state().finals.is_empty());
    cache.state().assert_clean(&cache.dir);
}

#[test]
fn gc_ignores_readers_mutant_deletes_under_the_reader() {
    let (cache, gc_out, _reader_out) = gc_with_a_paused_reader(Some("gc-ignores-readers"));
    assert!(gc_out.status.success(), "{}", describe(&gc_out));
    assert!(cache.state().finals.is_empty(), "the seeded bug deletes the entry in use");
}

#[test]
fn cache_verify_rehashes_and_flags_bad_entries() {
    let server = ModelServer::start().unwrap();
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    let cache = TestCache::new();
    assert!(fetch(&cache, &url, Some(&sha), &[]).status.success());
    assert!(fetch(&cache, &url, None, &[]).status.success());
    let verify = || cache.beaker(&url, Some(&sha), &["cache", "verify"]).output().unwrap();
    let out = verify();
    assert!(out.status.success(), "{}", describe(&out));
    let ls = cache.beaker(&url, Some(&sha), &["cache", "ls"]).output().unwrap();
    assert!(String::from_utf8_lossy(&ls.stdout).contains("2 entries"), "{}", describe(&ls));
    let final_path = cache.dir.join(cache::final_name(&url, Some(&sha)));
    let mut bytes = std::fs::read(&final_path).unwrap();
    bytes[100] ^= 0xff;
    std::fs::write(&final_path, bytes).unwrap();
    let out = verify();
    assert_eq!(out.status.code(), Some(4), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("1 bad entry"));
}

#[test]
fn a_final_that_fails_to_load_is_quarantined_and_fetched_again() {
    let server = ModelServer::start().unwrap();
    let (route, url, sha) = serve(&server, small(), FaultPlan::default());
    let cache = TestCache::new();
    let cfg = beaker::config::Config::from_lookup(|k| match k {
        "ONNX_MODEL_CACHE_DIR" => Some(cache.dir.display().to_string()),
        "BEAKER_CUTOUT_MODEL_URL" => Some(url.clone()),
        "BEAKER_RETRY_BASE_MS" => Some("1".into()),
        _ => None,
    })
    .unwrap();
    std::fs::create_dir_all(&cache.dir).unwrap();
    std::fs::write(cache::final_path(&cfg), b"a truncated model").unwrap();
    let model = cache::resolve_for_reading(&cfg).unwrap();
    assert!(model.hit && model.holds_read_lock());
    let Err(err) = beaker::model::load_model_bytes(&model.path, &model.read_bytes().unwrap()) else {
        panic!("garbage loaded as a model")
    };
    let model = cache::quarantine_and_refetch(&cfg, model, &err.to_string()).unwrap();
    assert!(!model.hit);
    assert_eq!(model.attempts, 1);
    assert!(beaker::model::load_model_bytes(&model.path, &model.read_bytes().unwrap()).is_ok());
    drop(model);
    assert_eq!(route.requests(), 1);
    let state = cache.state();
    assert_eq!(state.quarantined.len(), 1, "{state:?}");
    assert_cached_once(&cache, &sha);
}

#[test]
fn seeded_bugs_change_behaviour() {
    let server = ModelServer::start().unwrap();
    // skip-verify: a corrupted body is published.
    let (_route, url, sha) = serve(&server, small(), FaultPlan::always(Fault::Corrupt));
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[("BEAKER_MUTANT", "skip-verify")]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_ne!(support::sha256_of(&cache.dir.join(&cache.state().finals[0])), sha);
    // leave-partial: a failed download leaves its partials.
    let (_route, url, sha) = serve(&server, small(), FaultPlan::always(Fault::CloseAfter(1000)));
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[("BEAKER_MUTANT", "leave-partial")]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert_eq!(cache.state().partials.len(), 4);
    // name-without-hash: the final is named after the URL only.
    let (_route, url, sha) = serve(&server, small(), FaultPlan::default());
    let cache = TestCache::new();
    let out = fetch(&cache, &url, Some(&sha), &[("BEAKER_MUTANT", "name-without-hash")]);
    assert!(out.status.success(), "{}", describe(&out));
    assert_eq!(cache.state().finals, vec!["small.onnx".to_string()]);
}

#[test]
fn concurrent_fetches_survive_a_reset_of_the_one_download() {
    let server = ModelServer::start().unwrap();
    let gate = Gate::named("second-attempt");
    let plan =
        FaultPlan::new([Fault::Reset, Fault::Gated { at: GatePoint::BeforeHeaders, gate: gate.clone() }]);
    let (route, url, sha) = serve(&server, small(), plan);
    let cache = TestCache::new();
    let children: Vec<_> =
        (0..8).map(|_| cache.beaker(&url, Some(&sha), &["cache", "fetch"]).spawn().unwrap()).collect();
    // The downloader's first attempt was reset; its retry is parked while the others queue.
    gate.wait_arrivals(1, WAIT).unwrap();
    gate.release();
    for child in children {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success(), "{}", describe(&out));
    }
    assert_eq!(route.requests(), 2, "one reset attempt, one retry, no other download");
    assert_cached_once(&cache, &sha);
}

#[test]
fn models_with_the_same_file_name_do_not_collide() {
    let server = ModelServer::start().unwrap();
    let a = server.add_route(Route::new("/models/a/model.onnx", small()).model_id("a"));
    let b =
        server.add_route(Route::new("/models/b/model.onnx", beaker::fixtures::large_model()).model_id("b"));
    let cache = TestCache::new();
    for route in [&a, &b] {
        let out = fetch(&cache, &server.url(route), Some(route.sha256_hex()), &[]);
        assert!(out.status.success(), "{}", describe(&out));
        let path = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert_eq!(support::sha256_of(std::path::Path::new(&path)), route.sha256_hex());
    }
    assert_eq!(cache.state().finals.len(), 2);
    cache.state().assert_clean(&cache.dir);
    // The seeded bug `name-without-hash` makes them collide: b resolves to a's bytes.
    let cache = TestCache::new();
    for route in [&a, &b] {
        let out = fetch(
            &cache,
            &server.url(route),
            Some(route.sha256_hex()),
            &[("BEAKER_MUTANT", "name-without-hash")],
        );
        assert!(out.status.success(), "{}", describe(&out));
    }
    assert_eq!(cache.state().finals, vec!["model.onnx".to_string()]);
    assert_eq!(support::sha256_of(&cache.dir.join("model.onnx")), a.sha256_hex());
}

#[test]
fn a_stalled_body_times_out_and_exits_3() {
    let server = ModelServer::start().unwrap();
    let (route, url, sha) = serve(&server, small(), FaultPlan::always(Fault::Stall { after: 1000 }));
    let cache = TestCache::new();
    let out =
        fetch(&cache, &url, Some(&sha), &[("BEAKER_READ_TIMEOUT_MS", "200"), ("BEAKER_MAX_ATTEMPTS", "2")]);
    assert_eq!(out.status.code(), Some(3), "{}", describe(&out));
    assert!(assert_one_error_line(&out).contains("timed out"), "{}", describe(&out));
    assert_eq!(route.requests(), 2);
    assert_nothing_cached(&cache);
}
