//! Wire-level tests of the fault-injecting model server: each fault is observed through a plain
//! blocking TCP client that writes HTTP/1.1 by hand, so the test sees exactly what a downloader
//! would see (status, headers, body bytes, and how the connection ended).

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::Duration;

use fault_server::{CORRUPT_BYTES, Fault, FaultPlan, Gate, GatePoint, ModelServer, Route, RouteHandle};
use sha2::{Digest, Sha256};

/// Watchdog for every client read: a test fails instead of hanging if the server misbehaves.
const WATCHDOG: Duration = Duration::from_secs(10);

/// How the server ended the exchange.
#[derive(Debug, PartialEq, Eq)]
enum Ending {
    /// Orderly close (FIN).
    Eof,
    /// Connection reset (RST).
    Reset,
}

/// Everything the client received.
#[derive(Debug)]
struct Exchange {
    /// `None` when the connection ended before a complete response head.
    status: Option<u16>,
    headers: Vec<(String, String)>,
    /// Raw bytes after the head, as sent (not de-chunked).
    body: Vec<u8>,
    ending: Ending,
}

impl Exchange {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn content_length(&self) -> Option<u64> {
        self.header("content-length").map(|v| v.parse().expect("numeric Content-Length"))
    }
}

fn sha(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// Deterministic, non-repeating-looking content.
fn content(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect_timeout(&addr, WATCHDOG).expect("connect to model server");
    stream.set_read_timeout(Some(WATCHDOG)).expect("read timeout");
    stream
}

fn send(stream: &mut TcpStream, method: &str, path: &str, extra: &[(&str, &str)], close: bool) {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for (name, value) in extra {
        req.push_str(&format!("{name}: {value}\r\n"));
    }
    if close {
        req.push_str("Connection: close\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).expect("send request");
}

/// Read until the server ends the connection; a read timeout means the server hung.
fn read_to_end(stream: &mut TcpStream) -> (Vec<u8>, Ending) {
    let mut raw = Vec::new();
    let mut buf = [0u8; 64 * 1024];
    // Bounded by the read timeout and by the total size served in these tests.
    for _ in 0..100_000 {
        match stream.read(&mut buf) {
            Ok(0) => return (raw, Ending::Eof),
            Ok(n) => raw.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return (raw, Ending::Reset),
            Err(e) => panic!("client read failed (server hung?): {e}; got {} bytes", raw.len()),
        }
    }
    panic!("response never ended");
}

fn parse(raw: Vec<u8>, ending: Ending) -> Exchange {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return Exchange { status: None, headers: Vec::new(), body: raw, ending };
    };
    let head = String::from_utf8(raw[..end].to_vec()).expect("ASCII head");
    let mut lines = head.split("\r\n");
    let status_line = lines.next().expect("status line");
    let status = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers = lines
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header line");
            (n.trim().to_owned(), v.trim().to_owned())
        })
        .collect();
    Exchange { status: Some(status), headers, body: raw[end + 4..].to_vec(), ending }
}

/// One request on a fresh connection with `Connection: close`, read to the end.
fn fetch(server: &ModelServer, method: &str, path: &str, extra: &[(&str, &str)]) -> Exchange {
    fetch_at(server.addr(), method, path, extra)
}

fn fetch_at(addr: SocketAddr, method: &str, path: &str, extra: &[(&str, &str)]) -> Exchange {
    let mut stream = connect(addr);
    send(&mut stream, method, path, extra, true);
    let (raw, ending) = read_to_end(&mut stream);
    parse(raw, ending)
}

fn get(server: &ModelServer, route: &RouteHandle) -> Exchange {
    fetch(server, "GET", route.path(), &[])
}

fn dechunk(mut body: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    for _ in 0..100_000 {
        let line_end = body.windows(2).position(|w| w == b"\r\n").expect("chunk size line");
        let size = usize::from_str_radix(std::str::from_utf8(&body[..line_end]).unwrap(), 16)
            .expect("hex chunk size");
        body = &body[line_end + 2..];
        if size == 0 {
            assert_eq!(body, b"\r\n", "terminating chunk ends the body");
            return out;
        }
        out.extend_from_slice(&body[..size]);
        assert_eq!(&body[size..size + 2], b"\r\n");
        body = &body[size + 2..];
    }
    panic!("too many chunks");
}

fn server_with(path: &str, bytes: Vec<u8>, plan: FaultPlan) -> (ModelServer, RouteHandle) {
    let server = ModelServer::start().expect("start server");
    let route = server.add_route(Route::new(path, bytes).schedule(plan));
    (server, route)
}

#[test]
fn server_binds_loopback_only_and_urls_point_at_it() {
    let (server, route) = server_with("/m.onnx", content(10), FaultPlan::default());
    assert!(server.addr().ip().is_loopback());
    assert_eq!(server.addr().ip().to_string(), "127.0.0.1");
    assert_eq!(server.url(&route), format!("http://127.0.0.1:{}/m.onnx", server.addr().port()));
}

#[test]
fn ok_get_serves_exact_bytes_with_length_etag_and_extra_headers() {
    let bytes = content(300_000);
    let server = ModelServer::start().unwrap();
    let route = server.add_route(
        Route::new("/models/small/small.onnx", bytes.clone()).header("X-Model-Sha", "abc").model_id("small"),
    );
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.body, bytes);
    assert_eq!(ex.content_length(), Some(bytes.len() as u64));
    let etag = format!("\"{}\"", &sha(&bytes)[..16]);
    assert_eq!(ex.header("etag"), Some(etag.as_str()));
    assert_eq!(route.etag(), etag);
    assert_eq!(ex.header("x-model-sha"), Some("abc"));
    assert_eq!(ex.header("accept-ranges"), Some("bytes"));
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!(route.model_id(), Some("small"));
    assert_eq!(route.sha256_hex(), sha(&bytes));
    assert_eq!((route.requests(), route.complete_bodies(), route.bytes_served()), (1, 1, bytes.len() as u64));
}

#[test]
fn head_returns_get_headers_without_body_and_no_complete_body() {
    let (server, route) = server_with("/m.onnx", content(1000), FaultPlan::default());
    let ex = fetch(&server, "HEAD", "/m.onnx", &[]);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(1000));
    assert_eq!(ex.header("etag"), Some(route.etag().as_str()));
    assert!(ex.body.is_empty());
    assert_eq!((route.requests(), route.complete_bodies(), route.bytes_served()), (1, 0, 0));
}

#[test]
fn range_request_gets_206_with_content_range_and_the_slice() {
    let bytes = content(1000);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::default());
    let ex = fetch(&server, "GET", "/m.onnx", &[("Range", "bytes=100-199")]);
    assert_eq!(ex.status, Some(206));
    assert_eq!(ex.header("content-range"), Some("bytes 100-199/1000"));
    assert_eq!(ex.content_length(), Some(100));
    assert_eq!(ex.body, bytes[100..200]);
    assert_eq!(ex.header("etag"), Some(route.etag().as_str()));
    let tail = fetch(&server, "GET", "/m.onnx", &[("Range", "bytes=990-")]);
    assert_eq!(tail.status, Some(206));
    assert_eq!(tail.body, bytes[990..]);
    // A range is not a complete body: it must not count towards download amplification.
    assert_eq!(route.complete_bodies(), 0);
    assert_eq!(route.bytes_served(), 110);
}

#[test]
fn range_beyond_the_end_gets_416() {
    let (server, _route) = server_with("/m.onnx", content(10), FaultPlan::default());
    let ex = fetch(&server, "GET", "/m.onnx", &[("Range", "bytes=10-20")]);
    assert_eq!(ex.status, Some(416));
    assert_eq!(ex.header("content-range"), Some("bytes */10"));
}

#[test]
fn ignore_range_answers_a_range_request_with_200_and_the_whole_body() {
    let bytes = content(1000);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::IgnoreRange]));
    let ex = fetch(&server, "GET", "/m.onnx", &[("Range", "bytes=500-")]);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.header("content-range"), None);
    assert_eq!(ex.header("accept-ranges"), Some("none"));
    assert_eq!(ex.body, bytes);
    assert_eq!(route.complete_bodies(), 1, "a whole 200 body counts");
}

#[test]
fn range_not_satisfiable_answers_any_range_with_416_and_a_plain_get_normally() {
    let plan = FaultPlan::always(Fault::RangeNotSatisfiable);
    let (server, route) = server_with("/m.onnx", content(10), plan);
    let ex = fetch(&server, "GET", "/m.onnx", &[("Range", "bytes=0-4")]);
    assert_eq!(ex.status, Some(416));
    assert_eq!(ex.header("content-range"), Some("bytes */10"));
    assert_eq!(get(&server, &route).status, Some(200));
}

#[test]
fn etag_changed_serves_the_body_under_another_etag_than_the_probe_saw() {
    let bytes = content(100);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::EtagChanged]));
    let probe = fetch(&server, "HEAD", "/m.onnx", &[]);
    assert_eq!(probe.header("etag"), Some(route.etag().as_str()));
    let body = get(&server, &route);
    assert_ne!(body.header("etag"), probe.header("etag"));
    assert_eq!(body.body, bytes);
}

#[test]
fn error_statuses_and_the_200_error_page_carry_html_bodies() {
    let plan = FaultPlan::new([Fault::Status { code: 410, retry_after: None }, Fault::ErrorPageWith200]);
    let (server, route) = server_with("/m.onnx", content(100), plan);
    let gone = get(&server, &route);
    assert_eq!(gone.status, Some(410));
    assert_eq!(gone.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(String::from_utf8_lossy(&gone.body).contains("<h1>410 Gone</h1>"));
    let page = get(&server, &route);
    assert_eq!(page.status, Some(200));
    assert_eq!(page.body, fault_server::ERROR_PAGE_HTML);
}

#[test]
fn unknown_path_is_404_and_counted() {
    let (server, route) = server_with("/m.onnx", content(10), FaultPlan::default());
    let ex = fetch(&server, "GET", "/nope.onnx", &[]);
    assert_eq!(ex.status, Some(404));
    assert_eq!(server.unknown_requests(), 1);
    assert_eq!(route.requests(), 0);
}

#[test]
fn status_fault_sends_the_code_and_retry_after_then_the_plan_continues() {
    let bytes = content(100);
    let plan = FaultPlan::new([
        Fault::Status { code: 503, retry_after: Some(0) },
        Fault::Status { code: 429, retry_after: None },
    ]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let first = get(&server, &route);
    assert_eq!(first.status, Some(503));
    assert_eq!(first.header("retry-after"), Some("0"));
    let second = get(&server, &route);
    assert_eq!(second.status, Some(429));
    assert_eq!(second.header("retry-after"), None);
    let third = get(&server, &route);
    assert_eq!(third.status, Some(200));
    assert_eq!(third.body, bytes);
    assert_eq!(route.complete_bodies(), 1);
    assert_eq!(route.bytes_served(), 100, "error bodies are not model bytes");
}

#[test]
fn corrupt_fault_keeps_length_and_etag_but_changes_the_hash() {
    let bytes = content(10_000);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::Corrupt]));
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(10_000));
    assert_eq!(ex.body.len(), bytes.len());
    assert_ne!(sha(&ex.body), sha(&bytes));
    let differing = ex.body.iter().zip(&bytes).filter(|(a, b)| a != b).count();
    assert_eq!(differing, CORRUPT_BYTES);
    assert_eq!(ex.body[..5000], bytes[..5000], "damage starts at len/2");
    assert_eq!(ex.header("etag"), Some(route.etag().as_str()));
    assert_eq!(route.complete_bodies(), 1, "a full-length body counts even when corrupt");
}

#[test]
fn long_content_length_claims_more_than_sent_then_closes() {
    let bytes = content(1000);
    let plan = FaultPlan::new([Fault::LongContentLength(500)]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(1500));
    assert_eq!(ex.body, bytes, "all real bytes, then EOF");
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!(route.complete_bodies(), 0, "a mis-framed body is not complete");
}

#[test]
fn short_content_length_claims_less_than_sent() {
    let bytes = content(1000);
    let plan = FaultPlan::new([Fault::ShortContentLength(400)]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let ex = get(&server, &route);
    assert_eq!(ex.content_length(), Some(600));
    // A client honouring Content-Length keeps only a prefix.
    assert_eq!(ex.body[..600], bytes[..600]);
    assert_eq!(route.complete_bodies(), 0);
}

#[test]
fn chunked_fault_has_no_content_length_and_decodes_to_the_content() {
    let bytes = content(200_000);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::Chunked]));
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), None);
    assert_eq!(ex.header("transfer-encoding"), Some("chunked"));
    assert_eq!(dechunk(&ex.body), bytes);
    assert_eq!(route.complete_bodies(), 1);
}

#[test]
fn redirect_fault_sends_302_to_the_target_path_on_this_server() {
    let bytes = content(50);
    let server = ModelServer::start().unwrap();
    let route = server.add_route(
        Route::new("/old.onnx", bytes.clone())
            .schedule(FaultPlan::always(Fault::Redirect { to: "/new.onnx".into() })),
    );
    let target = server.add_route(Route::new("/new.onnx", bytes.clone()));
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(302));
    let location = ex.header("location").expect("Location").to_owned();
    assert_eq!(location, server.url(&target));
    let followed = fetch(&server, "GET", "/new.onnx", &[]);
    assert_eq!(followed.body, bytes);
}

#[test]
fn refused_fault_redirects_to_a_refusing_port_and_a_retry_gets_the_next_entry() {
    let bytes = content(50);
    let (server, route) = server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::RedirectToDeadPort]));
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(302));
    let location = ex.header("location").expect("Location");
    let hostport = location
        .strip_prefix("http://")
        .and_then(|rest| rest.strip_suffix("/m.onnx"))
        .expect("absolute URL to the same path");
    let addr: SocketAddr = hostport.parse().expect("ip:port");
    assert!(addr.ip().is_loopback());
    let err = TcpStream::connect_timeout(&addr, WATCHDOG).expect_err("nothing listens there");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
    // Retrying the original URL gets the next plan entry.
    assert_eq!(get(&server, &route).body, bytes);
    assert_eq!(route.served_faults(), vec![Fault::RedirectToDeadPort, Fault::Ok]);
}

#[test]
fn refused_url_refuses_connections() {
    let server = ModelServer::start().unwrap();
    let url = server.refused_url();
    let hostport = url.strip_prefix("http://").and_then(|r| r.strip_suffix('/')).unwrap();
    let addr: SocketAddr = hostport.parse().unwrap();
    let err = TcpStream::connect_timeout(&addr, WATCHDOG).expect_err("refused");
    assert_eq!(err.kind(), ErrorKind::ConnectionRefused);
}

#[test]
fn accept_then_close_gives_eof_without_any_response_byte() {
    let plan = FaultPlan::new([Fault::AcceptThenClose]);
    let (server, route) = server_with("/m.onnx", content(100), plan);
    let ex = get(&server, &route);
    assert_eq!(ex.status, None);
    assert!(ex.body.is_empty(), "no byte at all");
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!(route.requests(), 1);
}

#[test]
fn headers_then_close_gives_the_head_and_no_body() {
    let plan = FaultPlan::new([Fault::HeadersThenClose]);
    let (server, route) = server_with("/m.onnx", content(100), plan);
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(100));
    assert!(ex.body.is_empty());
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!((route.complete_bodies(), route.bytes_served()), (0, 0));
}

#[test]
fn close_after_n_gives_exactly_n_body_bytes_and_no_complete_body() {
    let bytes = content(100_000);
    let plan = FaultPlan::new([Fault::CloseAfter(4096)]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(100_000));
    assert_eq!(ex.body, bytes[..4096]);
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!((route.requests(), route.complete_bodies(), route.bytes_served()), (1, 0, 4096));
}

#[test]
fn reset_fault_gives_connection_reset() {
    let (server, route) = server_with("/m.onnx", content(100), FaultPlan::new([Fault::Reset]));
    let ex = get(&server, &route);
    assert_eq!(ex.ending, Ending::Reset);
    assert!(ex.body.is_empty() && ex.status.is_none());
}

#[test]
fn stall_sends_n_bytes_then_nothing_until_shutdown_which_does_not_block() {
    let bytes = content(100_000);
    let plan = FaultPlan::new([Fault::Stall { after: 1000 }]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let mut stream = connect(server.addr());
    send(&mut stream, "GET", "/m.onnx", &[], true);
    // Read the head and the first 1000 body bytes (the server wrote them before stalling).
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    for _ in 0..10_000 {
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n")
            && raw.len() >= end + 4 + 1000
        {
            break;
        }
        let n = stream.read(&mut buf).expect("stalled response still sends its first bytes");
        assert_ne!(n, 0, "connection closed before the stall");
        raw.extend_from_slice(&buf[..n]);
    }
    // The client can see the bytes a moment before the server counts them: wait for the count.
    let stats = route.wait_until(WATCHDOG, "1000 bytes counted", |s| s.bytes_served >= 1000).unwrap();
    assert_eq!(stats.bytes_served, 1000);
    // Shutdown must end the stalled response; after it, the stream holds nothing more.
    server.shutdown();
    let (rest, ending) = read_to_end(&mut stream);
    raw.extend_from_slice(&rest);
    let ex = parse(raw, ending);
    assert_eq!(ex.content_length(), Some(100_000));
    assert_eq!(ex.body, bytes[..1000], "exactly n bytes, then nothing");
    assert_eq!(route.complete_bodies(), 0);
}

#[test]
fn plan_is_consumed_one_fault_per_get_then_the_then_fault_and_head_takes_none() {
    let plan = FaultPlan::new([Fault::Ok, Fault::Status { code: 503, retry_after: Some(0) }, Fault::Corrupt])
        .then(Fault::Status { code: 500, retry_after: None });
    let (server, route) = server_with("/m.onnx", content(100), plan);
    let statuses: Vec<_> = (0..5).map(|_| get(&server, &route).status).collect();
    assert_eq!(statuses, [Some(200), Some(503), Some(200), Some(500), Some(500)]);
    assert_eq!(route.requests(), 5);
    assert_eq!(route.served_faults().len(), 5);
    assert_eq!(route.served_faults()[2], Fault::Corrupt);
    // HEAD takes no plan entry: the plan schedules the requests that carry a body.
    route.set_schedule(FaultPlan::new([Fault::Status { code: 404, retry_after: None }]));
    assert_eq!(fetch(&server, "HEAD", "/m.onnx", &[]).status, Some(200));
    assert_eq!(get(&server, &route).status, Some(404));
    assert_eq!(get(&server, &route).status, Some(200));
}

#[test]
fn keep_alive_connection_serves_consecutive_plan_entries() {
    let bytes = content(100);
    let plan = FaultPlan::new([Fault::Status { code: 503, retry_after: Some(1) }]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let mut stream = connect(server.addr());
    send(&mut stream, "GET", "/m.onnx", &[], false);
    send(&mut stream, "GET", "/m.onnx", &[], true);
    let (raw, ending) = read_to_end(&mut stream);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 503 "), "{text}");
    assert!(text.contains("HTTP/1.1 200 OK"), "{text}");
    assert!(raw.ends_with(&bytes));
    assert_eq!(ending, Ending::Eof);
    assert_eq!(route.requests(), 2);
}

/// Spawn `n` clients that GET `path` and return their exchanges.
fn spawn_clients(addr: SocketAddr, path: &str, n: usize) -> Vec<thread::JoinHandle<Exchange>> {
    (0..n)
        .map(|_| {
            let path = path.to_owned();
            thread::spawn(move || fetch_at(addr, "GET", &path, &[]))
        })
        .collect()
}

#[test]
fn gate_before_headers_parks_n_responses_until_release_then_all_complete() {
    let bytes = content(50_000);
    let gate = Gate::named("before-headers");
    let plan = FaultPlan::always(Fault::Gated { at: GatePoint::BeforeHeaders, gate: gate.clone() });
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let clients = spawn_clients(server.addr(), "/m.onnx", 3);
    let snap = gate.wait_arrivals(3, WATCHDOG).expect("three responses park");
    assert_eq!((snap.arrivals, snap.parked, snap.released), (3, 3, false));
    assert_eq!(route.bytes_served(), 0, "nothing sent while parked");
    assert_eq!(route.complete_bodies(), 0);
    gate.release();
    for client in clients {
        let ex = client.join().expect("client thread");
        assert_eq!(ex.status, Some(200));
        assert_eq!(ex.body, bytes);
    }
    assert_eq!(route.complete_bodies(), 3);
    assert_eq!(gate.parked(), 0);
    // An open gate lets later arrivals straight through (still counted).
    assert_eq!(get(&server, &route).body, bytes);
    assert_eq!(gate.arrivals(), 4);
}

#[test]
fn gate_after_bytes_parks_mid_body_with_exactly_n_bytes_sent() {
    let bytes = content(100_000);
    let gate = Gate::new();
    let plan = FaultPlan::new([
        Fault::Gated { at: GatePoint::AfterBytes(4096), gate: gate.clone() },
        Fault::Gated { at: GatePoint::AfterBytes(4096), gate: gate.clone() },
    ]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let clients = spawn_clients(server.addr(), "/m.onnx", 2);
    gate.wait_arrivals(2, WATCHDOG).expect("two responses park");
    assert_eq!(route.bytes_served(), 2 * 4096);
    assert_eq!(route.complete_bodies(), 0);
    gate.release();
    for client in clients {
        assert_eq!(client.join().unwrap().body, bytes);
    }
    assert_eq!(route.complete_bodies(), 2);
    assert_eq!(route.bytes_served(), 2 * 100_000);
}

#[test]
fn gate_wait_deadline_expires_with_an_error_naming_the_gate() {
    let gate = Gate::named("nobody-comes");
    let err = gate.wait_arrivals(1, Duration::from_millis(20)).expect_err("no arrival");
    assert_eq!(err.gate, "nobody-comes");
    assert_eq!(err.last.arrivals, 0);
    assert!(err.to_string().contains("nobody-comes"), "{err}");
}

#[test]
fn gate_release_when_predicate_releases_on_the_arrival_that_satisfies_it() {
    let bytes = content(10_000);
    let gate = Gate::named("predicate");
    gate.release_when(|s| s.parked >= 2);
    let plan = FaultPlan::always(Fault::Gated { at: GatePoint::BeforeHeaders, gate: gate.clone() });
    let (server, _route) = server_with("/m.onnx", bytes.clone(), plan);
    let clients = spawn_clients(server.addr(), "/m.onnx", 2);
    for client in clients {
        assert_eq!(client.join().unwrap().body, bytes);
    }
    assert!(gate.is_released());
    assert_eq!(gate.arrivals(), 2);
}

#[test]
fn a_client_leaving_while_parked_is_no_longer_counted_as_parked() {
    let gate = Gate::named("leaver");
    let plan = FaultPlan::always(Fault::Gated { at: GatePoint::BeforeHeaders, gate: gate.clone() });
    let (server, _route) = server_with("/m.onnx", content(10), plan);
    let mut stream = connect(server.addr());
    send(&mut stream, "GET", "/m.onnx", &[], true);
    gate.wait_arrivals(1, WATCHDOG).unwrap();
    drop(stream);
    let snap = gate.wait_until(WATCHDOG, "parked back to 0", |s| s.parked == 0).expect("departure noticed");
    assert_eq!(snap.arrivals, 1);
}

#[test]
fn shutdown_ends_responses_parked_at_an_unreleased_gate() {
    let gate = Gate::named("never-released");
    let plan = FaultPlan::always(Fault::Gated { at: GatePoint::BeforeHeaders, gate: gate.clone() });
    let (server, _route) = server_with("/m.onnx", content(10), plan);
    let clients = spawn_clients(server.addr(), "/m.onnx", 2);
    gate.wait_arrivals(2, WATCHDOG).unwrap();
    drop(server); // Drop shuts down like `shutdown()`.
    for client in clients {
        let ex = client.join().unwrap();
        assert_eq!(ex.status, None, "no response was ever sent");
    }
    assert_eq!(gate.parked(), 0);
}

#[test]
fn route_wait_until_returns_on_the_counter_event_and_errors_naming_the_route_on_deadline() {
    let plan = FaultPlan::new([Fault::Stall { after: 1000 }]);
    let (server, route) = server_with("/stall.onnx", content(10_000), plan);
    let mut stream = connect(server.addr());
    send(&mut stream, "GET", "/stall.onnx", &[], true);
    let stats = route
        .wait_until(WATCHDOG, "stalled response wrote its bytes", |s| s.bytes_served >= 1000)
        .expect("bytes written before the stall");
    assert_eq!((stats.requests, stats.complete_bodies, stats.bytes_served), (1, 0, 1000));
    let err = route
        .wait_until(Duration::from_millis(20), "a complete body", |s| s.complete_bodies > 0)
        .expect_err("a stalled body never completes");
    assert_eq!(err.path, "/stall.onnx");
    assert!(err.to_string().contains("/stall.onnx"), "{err}");
}

#[test]
fn short_content_length_still_sends_the_surplus_bytes_then_closes() {
    // hyper would trim the body to its Content-Length; the raw path must not.
    let bytes = content(1000);
    let (server, route) =
        server_with("/m.onnx", bytes.clone(), FaultPlan::new([Fault::ShortContentLength(400)]));
    let ex = get(&server, &route);
    assert_eq!(ex.status, Some(200));
    assert_eq!(ex.content_length(), Some(600));
    assert_eq!(ex.body, bytes, "every byte of the body, past the claimed length");
    assert_eq!(ex.ending, Ending::Eof);
    assert_eq!(route.bytes_served(), 1000);
    // The connection was taken back from hyper for one response only: the next GET is served by hyper.
    assert_eq!(get(&server, &route).body, bytes);
}

#[test]
fn oversized_request_head_is_refused_and_takes_no_fault() {
    let (server, route) = server_with("/m.onnx", content(10), FaultPlan::default());
    let mut stream = connect(server.addr());
    let huge = "x".repeat(32 * 1024);
    send(&mut stream, "GET", "/m.onnx", &[("X-Padding", huge.as_str())], true);
    let (raw, ending) = read_to_end(&mut stream);
    let ex = parse(raw, ending);
    // hyper answers 431; closing with the rest of the head unread may reset the connection first.
    assert!(matches!(ex.status, None | Some(431)), "refused, not served: {:?}", ex.status);
    assert_eq!(route.requests(), 0);
}

#[test]
fn gate_after_the_whole_body_parks_one_byte_short_so_the_response_is_still_held() {
    let bytes = content(1000);
    let gate = Gate::named("at-the-end");
    let plan = FaultPlan::new([Fault::Gated { at: GatePoint::AfterBytes(5000), gate: gate.clone() }]);
    let (server, route) = server_with("/m.onnx", bytes.clone(), plan);
    let clients = spawn_clients(server.addr(), "/m.onnx", 1);
    gate.wait_arrivals(1, WATCHDOG).expect("the response parks");
    assert_eq!((route.bytes_served(), route.complete_bodies()), (999, 0));
    gate.release();
    for client in clients {
        assert_eq!(client.join().unwrap().body, bytes);
    }
    assert_eq!(route.complete_bodies(), 1);
}
