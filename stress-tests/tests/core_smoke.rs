//! End-to-end check of the library core against the real target: the target is found and built from its
//! declaration, N processes share one cache behind the model server, and every invariant is checked.

use stress_tests::scenario::Scenario;
use stress_tests::server::{ModelServer, Route};

#[test]
fn same_model_shared_cache_smoke() {
    let mut s = Scenario::new("core_smoke_same_model").expect("scenario");
    let server = ModelServer::start().expect("server");
    let model = s.target().model_ids()[0].clone();
    let fixture = s.target().model(&model).clone();
    let mut route =
        Route::new(s.target().server_path(&model), fixture.bytes.clone()).model_id(model.as_str());
    for (k, v) in &s.target().spec.server.headers {
        route = route.header(k.as_str(), v.as_str());
    }
    let route = server.add_route(route);
    let url = server.url(&route);
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(4);
    let (plans, recovery) = s.writers_and_recovery(n, &model, &url, &cache);
    let mut run = s.launch(plans).expect("launch");
    run.start_reader();
    run.wait();
    run.recover(recovery);
    run.served_from_routes(&[&route]);
    let record = run.finish();
    assert_eq!(record.outcomes.get("ok"), Some(&n), "{record:#?}");
}

/// Compiled entries written by concurrent processes equal the reference entry of a clean run.
#[test]
fn compiled_entries_match_a_clean_reference_smoke() {
    let mut s = Scenario::new("core_smoke_compiled").expect("scenario");
    if s.target().spec.compiled.is_none() {
        return;
    }
    let server = ModelServer::start().expect("server");
    let model = s.target().model_ids()[0].clone();
    let fixture = s.target().model(&model).clone();
    let path = s.target().server_path(&model);
    let route = server.add_route(Route::new(path.clone(), fixture.bytes.clone()).model_id(model.as_str()));
    // The reference runs fetch from their own route so they do not count as amplification.
    let reference_route = server.add_route(Route::new(format!("/reference{path}"), fixture.bytes.clone()));
    let reference = s.compiled_reference(&[(&model, &server.url(&reference_route))]).expect("reference");
    assert!(!reference.entries.is_empty(), "a clean run produced no compiled entry");
    let cache = s.cache_dir("shared");
    let n = s.tier().capped(3);
    let plans: Vec<_> = (0..n).map(|i| s.writer(i, &model, &server.url(&route), &cache)).collect();
    let mut run = s.launch(plans).expect("launch");
    run.compiled_reference(reference);
    run.wait();
    run.served_from_routes(&[&route]);
    let record = run.finish();
    assert!(record.invariants.iter().any(|i| i.name == "compiled_entries_complete_or_absent"));
}

/// A target of another shape (args instead of env vars, subdirectories, no checksum, no metadata file).
#[test]
fn second_target_shape_smoke() {
    let spec_path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("targets/tiny-cache.toml");
    let spec = stress_cache_metadata::TargetSpec::from_spec_file(&spec_path).expect("spec");
    let target = stress_tests::target::Target::prepare(
        spec,
        env!("CARGO_BIN_EXE_tiny-cache").into(),
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")),
    )
    .expect("prepare");
    let tier = stress_tests::tier::TierConfig::from_env().expect("tier");
    let mut s = Scenario::with_target("core_smoke_second_target", target, tier).expect("scenario");
    let server = ModelServer::start().expect("server");
    let mut routes = Vec::new();
    let mut plans = Vec::new();
    let cache = s.cache_dir("shared");
    for (i, model) in s.target().model_ids().iter().cycle().take(4).enumerate() {
        let fixture = s.target().model(model).clone();
        let mut route =
            Route::new(s.target().server_path(model), fixture.bytes.clone()).model_id(model.as_str());
        for (k, v) in &s.target().spec.server.headers {
            route = route.header(k.as_str(), v.as_str());
        }
        let handle = server.route(&s.target().server_path(model)).unwrap_or_else(|| server.add_route(route));
        plans.push(s.writer(i, model, &server.url(&handle), &cache));
        routes.push(handle);
    }
    let mut run = s.launch(plans).expect("launch");
    run.start_reader();
    run.wait();
    let unique: Vec<_> = routes.iter().take(2).collect();
    run.served_from_routes(&unique);
    let record = run.finish();
    assert_eq!(record.outcomes.get("ok"), Some(&4), "{record:#?}");
}
