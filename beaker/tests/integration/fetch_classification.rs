//! How `beaker::fetch::download` classifies what a server answers: which statuses are retried and
//! which are final, which wait `Retry-After` sets, that redirects are followed and the user agent is
//! sent, and what a body that disagrees with its `Content-Length` becomes — each ending in the error
//! (and so the exit code) the user sees.
//!
//! Canned HTTP answers come from httpmock, which counts the requests (one per attempt). A body that
//! disagrees with its `Content-Length` is not a well-formed HTTP answer, which httpmock (on hyper)
//! cannot send; those come from the fault-injecting server (crate `fault-server`).

use std::path::PathBuf;
use std::sync::{Mutex, OnceLock, PoisonError};
use std::thread::ThreadId;
use std::time::Duration;

use beaker::config::Config;
use beaker::error::{BeakerError, EXIT_NETWORK, EXIT_USAGE};
use beaker::fetch::{DownloadStats, download};
use beaker::fsio::{Partial, unique_partial_path};
use fault_server::{Fault, FaultPlan, ModelServer, Route};
use httpmock::prelude::*;

/// Attempts per download in these tests.
const ATTEMPTS: u32 = 3;
/// Backoff base: waits of `BASE_MS`, `2 * BASE_MS`, ... unless `Retry-After` says otherwise.
const BASE_MS: u64 = 20;

/// A download target: a fresh directory for the partials.
struct Target {
    dir: tempfile::TempDir,
}

impl Target {
    fn new() -> Self {
        Self { dir: tempfile::tempdir().expect("temp dir") }
    }

    fn config(&self, url: &str) -> Config {
        Config {
            cache_dir: self.dir.path().to_path_buf(),
            compiled_dir: self.dir.path().join("compiled"),
            model_url: url.to_owned(),
            model_sha256: None,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(5),
            max_attempts: ATTEMPTS,
            retry_base: Duration::from_millis(BASE_MS),
        }
    }

    /// `download(url)` into this directory: the partial's bytes and the stats, or the error.
    fn download(&self, url: &str) -> Result<(Vec<u8>, DownloadStats), BeakerError> {
        let final_path: PathBuf = self.dir.path().join("model.onnx");
        let mut open = || Partial::create_new(unique_partial_path(&final_path));
        let (partial, stats) = download(&self.config(url), url, &mut open)?;
        let bytes = std::fs::read(partial.path()).expect("read the partial");
        Ok((bytes, stats))
    }
}

/// The attempts and cause of a network failure; panics on any other outcome.
fn network_failure(result: Result<(Vec<u8>, DownloadStats), BeakerError>) -> (u32, String) {
    match result {
        Err(err @ BeakerError::Network { .. }) => {
            assert_eq!(err.exit_code(), EXIT_NETWORK, "a network failure exits 3");
            let BeakerError::Network { attempts, cause, .. } = err else { unreachable!() };
            (attempts, cause)
        }
        Err(other) => panic!("expected a network failure, got {other:?}"),
        Ok((bytes, stats)) => panic!("expected a network failure, got {} bytes after {stats:?}", bytes.len()),
    }
}

#[test]
fn client_errors_are_final_after_one_attempt_and_exit_3() {
    for code in [400, 403, 404, 410] {
        let server = MockServer::start();
        let mock = server.mock(|when, then| {
            when.method(GET).path("/m.onnx");
            then.status(code).header("content-type", "text/html").body("<h1>no</h1>");
        });
        let (attempts, cause) = network_failure(Target::new().download(&server.url("/m.onnx")));
        assert_eq!(attempts, 1, "HTTP {code} is not retried");
        assert!(cause.contains(&format!("HTTP {code}")), "cause names the status: {cause}");
        assert_eq!(mock.calls(), 1, "HTTP {code}: one request");
    }
}

#[test]
fn server_errors_are_retried_until_the_attempts_run_out() {
    for code in [500, 502, 503, 504] {
        let server = MockServer::start();
        let mock = server.mock(|when, then| {
            when.method(GET).path("/m.onnx");
            then.status(code).body("try later");
        });
        let (attempts, cause) = network_failure(Target::new().download(&server.url("/m.onnx")));
        assert_eq!(attempts, ATTEMPTS, "HTTP {code} is retried");
        assert!(cause.contains(&format!("HTTP {code}")), "{cause}");
        assert_eq!(mock.calls(), ATTEMPTS as usize);
    }
}

#[test]
fn too_many_requests_waits_as_long_as_retry_after_says() {
    let logs = LogRecorder::install();
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.method(GET).path("/m.onnx");
        then.status(429).header("Retry-After", "0");
    });
    let (attempts, _) = network_failure(Target::new().download(&server.url("/m.onnx")));
    assert_eq!((attempts, mock.calls()), (ATTEMPTS, ATTEMPTS as usize), "429 is retried");
    // Without Retry-After the waits would be BASE_MS and 2 * BASE_MS.
    assert_eq!(logs.waits_ms(), [0, 0]);
}

#[test]
fn retry_after_is_honoured_only_for_429_and_only_in_seconds() {
    let logs = LogRecorder::install();
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path("/unavailable.onnx");
        then.status(503).header("Retry-After", "0");
    });
    server.mock(|when, then| {
        when.method(GET).path("/dated.onnx");
        then.status(429).header("Retry-After", "Wed, 21 Oct 2015 07:28:00 GMT");
    });
    let target = Target::new();
    network_failure(target.download(&server.url("/unavailable.onnx")));
    assert_eq!(logs.waits_ms(), [BASE_MS, 2 * BASE_MS], "a 503's Retry-After is not used");
    network_failure(target.download(&server.url("/dated.onnx")));
    assert_eq!(
        logs.waits_ms(),
        [BASE_MS, 2 * BASE_MS, BASE_MS, 2 * BASE_MS],
        "an HTTP-date Retry-After falls back to the exponential backoff"
    );
}

#[test]
fn ok_body_lands_in_the_partial_in_one_attempt_with_the_user_agent_sent() {
    let body: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let server = MockServer::start();
    let mock = server.mock(|when, then| {
        when.method(GET).path("/m.onnx").header("user-agent", concat!("beaker/", env!("CARGO_PKG_VERSION")));
        then.status(200).body(&body);
    });
    let (bytes, stats) = Target::new().download(&server.url("/m.onnx")).expect("download");
    assert_eq!(bytes, body);
    assert_eq!(stats, DownloadStats { attempts: 1, bytes_received: body.len() as u64 });
    assert_eq!(mock.calls(), 1);
}

#[test]
fn redirects_are_followed_and_a_redirect_loop_is_final() {
    let server = MockServer::start();
    server.mock(|when, then| {
        when.method(GET).path("/old.onnx");
        then.status(302).header("Location", "/new.onnx");
    });
    let new = server.mock(|when, then| {
        when.method(GET).path("/new.onnx");
        then.status(200).body("model");
    });
    let (bytes, stats) = Target::new().download(&server.url("/old.onnx")).expect("redirect followed");
    assert_eq!((bytes.as_slice(), stats.attempts, new.calls()), (&b"model"[..], 1, 1));

    let looping = server.mock(|when, then| {
        when.method(GET).path("/loop.onnx");
        then.status(302).header("Location", "/loop.onnx");
    });
    let (attempts, cause) = network_failure(Target::new().download(&server.url("/loop.onnx")));
    assert_eq!(attempts, 1, "too many redirects is not retried: {cause}");
    assert!(looping.calls() > 1, "the redirects were followed before giving up");
}

#[test]
fn body_shorter_than_its_content_length_is_retried_as_a_network_failure() {
    let server = ModelServer::start().expect("model server");
    let route = server.add_route(
        Route::new("/m.onnx", vec![7u8; 10_000]).schedule(FaultPlan::always(Fault::LongContentLength(500))),
    );
    let (attempts, cause) = network_failure(Target::new().download(&server.url(&route)));
    assert_eq!((attempts, route.requests()), (ATTEMPTS, u64::from(ATTEMPTS)), "{cause}");
}

#[test]
fn body_shorter_than_its_content_length_then_a_good_one_succeeds_on_the_retry() {
    let server = ModelServer::start().expect("model server");
    let content = vec![7u8; 10_000];
    let route = server.add_route(
        Route::new("/m.onnx", content.clone()).schedule(FaultPlan::new([Fault::CloseAfter(4096)])),
    );
    let (bytes, stats) = Target::new().download(&server.url(&route)).expect("second attempt succeeds");
    assert_eq!(bytes, content, "the retry starts a fresh partial");
    assert_eq!(stats, DownloadStats { attempts: 2, bytes_received: 4096 + 10_000 });
}

#[test]
fn body_longer_than_its_content_length_is_cut_at_the_content_length() {
    let server = ModelServer::start().expect("model server");
    let content: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
    let route = server.add_route(
        Route::new("/m.onnx", content.clone()).schedule(FaultPlan::new([Fault::ShortContentLength(400)])),
    );
    // Only the checksum or the model load can tell: fetch trusts the framing.
    let (bytes, stats) = Target::new().download(&server.url(&route)).expect("framed body accepted");
    assert_eq!(bytes, content[..9_600]);
    assert_eq!(stats.attempts, 1);
}

#[test]
fn refused_connection_is_retried_and_a_non_http_url_is_a_usage_error() {
    let server = ModelServer::start().expect("model server");
    let (attempts, cause) = network_failure(Target::new().download(&server.refused_url()));
    assert_eq!(attempts, ATTEMPTS, "{cause}");
    match Target::new().download("ftp://127.0.0.1/m.onnx") {
        Err(err @ BeakerError::Config { .. }) => assert_eq!(err.exit_code(), EXIT_USAGE),
        other => panic!("expected a configuration error, got {other:?}"),
    }
}

/// Records beaker's log lines with the thread that logged them, so that a test reads the backoff
/// waits its own download chose even when tests share the process (`cargo test`).
struct LogRecorder;

static LINES: Mutex<Vec<(ThreadId, String)>> = Mutex::new(Vec::new());

impl LogRecorder {
    fn install() -> &'static LogRecorder {
        static RECORDER: LogRecorder = LogRecorder;
        static INSTALLED: OnceLock<()> = OnceLock::new();
        INSTALLED.get_or_init(|| {
            log::set_logger(&RECORDER).expect("no other logger in this test binary");
            log::set_max_level(log::LevelFilter::Info);
        });
        &RECORDER
    }

    /// The waits before each retry on this thread so far, from `retrying in <n> ms`.
    fn waits_ms(&self) -> Vec<u64> {
        let me = std::thread::current().id();
        LINES
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .filter(|(thread, _)| *thread == me)
            .filter_map(|(_, line)| line.strip_prefix("retrying in ")?.strip_suffix(" ms")?.parse().ok())
            .collect()
    }
}

impl log::Log for LogRecorder {
    fn enabled(&self, metadata: &log::Metadata<'_>) -> bool {
        metadata.level() <= log::Level::Info
    }

    fn log(&self, record: &log::Record<'_>) {
        if record.target().starts_with("beaker") {
            let line = (std::thread::current().id(), record.args().to_string());
            LINES.lock().unwrap_or_else(PoisonError::into_inner).push(line);
        }
    }

    fn flush(&self) {}
}
