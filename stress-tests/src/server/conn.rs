//! One client connection: read request heads, pick the route's fault, write exactly the bytes
//! the fault calls for.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use super::Shared;
use super::faults::{ERROR_PAGE_HTML, Fault, GatePoint, corrupt};
use super::gate::Gate;
use super::request::{MAX_HEAD_BYTES, RangeRequest, RequestHead, head_end, parse_head, parse_range};
use super::route::RouteHandle;

/// Keep-alive bound: a connection serves at most this many requests.
const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// Keep-alive bound: an idle connection (no complete request head) is closed after this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Body bytes per socket write (and per chunk with [`Fault::Chunked`]).
const WRITE_CHUNK: usize = 64 * 1024;
/// Reads of client bytes discarded while a response stalls or parks, before giving up on
/// noticing the client leave (the server's shutdown still ends the response).
const MAX_DISCARD_READS: usize = 1024;

/// What happens to the connection after a response.
enum After {
    KeepAlive,
    /// Graceful close (FIN).
    Close,
    /// Abortive close (RST).
    Reset,
}

/// Serve requests on `stream` until the client leaves, a fault closes it, or a bound is hit.
/// The server's shutdown cancels this task, which closes the socket.
pub(crate) async fn serve(mut stream: TcpStream, shared: Arc<Shared>) {
    // Small writes (headers, the first n bytes of a fault) must leave at once, not wait for
    // Nagle, or "n bytes then stall" would not put n bytes on the wire.
    let _ = stream.set_nodelay(true);
    let mut buf = Vec::with_capacity(1024);
    for _ in 0..MAX_REQUESTS_PER_CONNECTION {
        let head = match tokio::time::timeout(IDLE_TIMEOUT, read_head(&mut stream, &mut buf)).await {
            Ok(Some(head)) => head,
            // Client gone, malformed or oversized head, or idle too long.
            _ => return,
        };
        match respond(&mut stream, &head, &shared).await {
            Ok(After::KeepAlive) => {}
            Ok(After::Close) => {
                let _ = stream.shutdown().await;
                return;
            }
            Ok(After::Reset) => {
                reset(stream);
                return;
            }
            Err(err) => {
                log::debug!("model server: writing response for {}: {err}", head.path);
                return;
            }
        }
    }
}

/// Close with an RST instead of a FIN: `SO_LINGER` with a zero timeout makes `close` abort.
fn reset(stream: TcpStream) {
    if let Err(err) = socket2::SockRef::from(&stream).set_linger(Some(Duration::ZERO)) {
        log::warn!("model server: SO_LINGER 0 failed, connection closes with FIN: {err}");
    }
    drop(stream);
}

/// Read the next request head into `buf` (keeping any pipelined bytes after it).
async fn read_head(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Option<RequestHead> {
    let mut chunk = [0u8; 4096];
    // Bounded: every iteration grows `buf` by at least one byte or returns, and `buf` is capped.
    loop {
        if let Some(end) = head_end(buf) {
            let head = parse_head(&buf[..end]);
            buf.drain(..end);
            return head;
        }
        if buf.len() >= MAX_HEAD_BYTES {
            return None;
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn respond(stream: &mut TcpStream, head: &RequestHead, shared: &Shared) -> io::Result<After> {
    let keep_alive = head.keep_alive();
    let is_head = head.method == "HEAD";
    let Some(route) = shared.route(&head.path) else {
        shared.count_unknown();
        let reply = Reply::new(404, &[]).body(b"no such route\n");
        reply.write(stream, is_head, keep_alive).await?;
        return Ok(after(keep_alive));
    };
    if head.method != "GET" && !is_head {
        // A request body would have to be skipped to keep the connection usable; not worth it.
        let reply = Reply::new(405, route.headers()).header("Allow", "GET, HEAD");
        reply.write(stream, is_head, false).await?;
        return Ok(After::Close);
    }
    // The plan schedules the requests that carry a body. A client that probes with HEAD first (for an
    // ETag or a length) gets the route's real headers and leaves the plan to its GETs, so a fault meant
    // for a download is never spent on a probe.
    let fault = if is_head { route.count_head() } else { route.next_fault() };
    match fault {
        Fault::Status { code, retry_after } => {
            let mut reply = Reply::new(code, route.headers());
            if let Some(secs) = retry_after {
                reply = reply.header("Retry-After", secs.to_string());
            }
            // An HTML page, as a CDN or object store sends: a client that caches the body of an error
            // response as the model is caught by its content, whatever its length.
            let reason = reason(code);
            let page = format!(
                "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\
                 <p>injected fault</p></body></html>\n"
            );
            // The page replaces the route's own Content-Type (a model's), as a real error page does.
            reply.headers.retain(|(name, _)| !name.eq_ignore_ascii_case("content-type"));
            reply = reply.header("Content-Type", "text/html; charset=utf-8");
            reply.body(page.as_bytes()).write(stream, is_head, keep_alive).await?;
            Ok(after(keep_alive))
        }
        Fault::Redirect { to } => {
            let location = if to.starts_with("http://") || to.starts_with("https://") {
                to
            } else {
                format!("{}{to}", shared.base_url)
            };
            let reply = Reply::new(302, route.headers()).header("Location", location);
            reply.write(stream, is_head, keep_alive).await?;
            Ok(after(keep_alive))
        }
        Fault::RedirectToDeadPort => {
            let location = format!("{}{}", shared.refused_base_url, route.path());
            let reply = Reply::new(302, route.headers()).header("Location", location);
            reply.write(stream, is_head, keep_alive).await?;
            Ok(after(keep_alive))
        }
        Fault::AcceptThenClose => Ok(After::Close),
        Fault::Reset => Ok(After::Reset),
        Fault::Gated { at: GatePoint::BeforeHeaders, gate } => {
            if !park(stream, &gate).await {
                return Ok(After::Close);
            }
            serve_content(stream, head, &route, &Fault::Ok, keep_alive).await
        }
        other => serve_content(stream, head, &route, &other, keep_alive).await,
    }
}

fn after(keep_alive: bool) -> After {
    if keep_alive { After::KeepAlive } else { After::Close }
}

/// How a content response ends.
enum End {
    /// Correctly framed: keep the connection if the client wants to.
    Done,
    /// Close (FIN) after the written bytes.
    Close,
    /// Write nothing more until the client leaves or the server shuts down.
    Stall,
}

/// Serve the route's content (or a slice of it for `Range`) shaped by a body-level fault.
async fn serve_content(
    stream: &mut TcpStream,
    head: &RequestHead,
    route: &RouteHandle,
    fault: &Fault,
    keep_alive: bool,
) -> io::Result<After> {
    let is_head = head.method == "HEAD";
    let content: Bytes = match fault {
        // Corrupt the whole entity, then slice, so ranges agree with a full corrupted GET.
        Fault::Corrupt => corrupt(route.content()).into(),
        Fault::ErrorPageWith200 => Bytes::from_static(ERROR_PAGE_HTML),
        _ => route.content().clone(),
    };
    let len = content.len() as u64;
    let range = match fault {
        Fault::IgnoreRange => RangeRequest::Full,
        Fault::RangeNotSatisfiable if head.header("range").is_some() => RangeRequest::Unsatisfiable,
        _ => parse_range(head.header("range"), len),
    };
    let (status, body, content_range) = match range {
        RangeRequest::Full => (200, content, None),
        RangeRequest::Partial { start, end } => (
            206,
            // `parse_range` guarantees start <= end < len, which fits usize (it came from one).
            content.slice(start as usize..=end as usize),
            Some(format!("bytes {start}-{end}/{len}")),
        ),
        RangeRequest::Unsatisfiable => {
            let reply = Reply::new(416, route.headers()).header("Content-Range", format!("bytes */{len}"));
            reply.write(stream, is_head, keep_alive).await?;
            return Ok(after(keep_alive));
        }
    };
    let body_len = body.len() as u64;

    // (claimed Content-Length or None for chunked, body bytes to write, gate, ending)
    let (claimed, mut limit, mut gate, end) = match fault {
        Fault::Chunked => (None, body_len, None, End::Done),
        Fault::LongContentLength(extra) => {
            (Some(body_len.saturating_add(*extra)), body_len, None, End::Close)
        }
        Fault::ShortContentLength(less) => (Some(body_len.saturating_sub(*less)), body_len, None, End::Close),
        Fault::HeadersThenClose => (Some(body_len), 0, None, End::Close),
        Fault::CloseAfter(n) => (Some(body_len), (*n).min(body_len), None, End::Close),
        Fault::Stall { after } => (Some(body_len), (*after).min(body_len), None, End::Stall),
        Fault::Gated { at: GatePoint::AfterBytes(n), gate } => {
            (Some(body_len), body_len, Some(((*n).min(body_len), gate.clone())), End::Done)
        }
        _ => (Some(body_len), body_len, None, End::Done),
    };
    if is_head {
        limit = 0;
        if let Some((at, _)) = &mut gate {
            *at = 0;
        }
    }

    let etag = match fault {
        Fault::EtagChanged => format!("\"changed-{}\"", route.etag().trim_matches('"')),
        _ => route.etag(),
    };
    let accept_ranges = if matches!(fault, Fault::IgnoreRange) { "none" } else { "bytes" };
    let mut reply =
        Reply::new(status, route.headers()).header("Accept-Ranges", accept_ranges).header("ETag", etag);
    if let Some(range) = content_range {
        reply = reply.header("Content-Range", range);
    }
    reply.length = claimed;
    let connection_close = matches!(end, End::Done) && !keep_alive;
    stream.write_all(reply.head(connection_close).as_bytes()).await?;

    let chunked = claimed.is_none();
    let mut offset = 0u64;
    // Bounded: every iteration writes at least one byte of `body` or passes the gate once.
    while offset < limit || gate.is_some() {
        if let Some((at, g)) = &gate
            && *at == offset
        {
            if !park(stream, g).await {
                return Ok(After::Close);
            }
            gate = None;
            continue;
        }
        let mut piece_end = (offset + WRITE_CHUNK as u64).min(limit);
        if let Some((at, _)) = &gate {
            piece_end = piece_end.min(*at);
        }
        let piece = &body[offset as usize..piece_end as usize];
        if chunked {
            let mut framed = format!("{:x}\r\n", piece.len()).into_bytes();
            framed.extend_from_slice(piece);
            framed.extend_from_slice(b"\r\n");
            stream.write_all(&framed).await?;
        } else {
            stream.write_all(piece).await?;
        }
        route.add_bytes_served(piece_end - offset);
        offset = piece_end;
    }

    match end {
        End::Done => {
            if chunked && !is_head {
                stream.write_all(b"0\r\n\r\n").await?;
            }
            stream.flush().await?;
            if status == 200 && !is_head {
                route.add_complete_body();
            }
            Ok(after(keep_alive))
        }
        End::Close => Ok(After::Close),
        End::Stall => {
            stream.flush().await?;
            discard_until_eof(stream).await;
            Ok(After::Close)
        }
    }
}

/// Wait at `gate`; `false` when the client closed the connection first (the response is then
/// no longer counted as parked, so a killed process does not look like a waiting one).
async fn park(stream: &mut TcpStream, gate: &Gate) -> bool {
    tokio::select! {
        () = gate.pass() => true,
        () = discard_until_eof(stream) => false,
    }
}

/// Read and drop client bytes until EOF or error; if the client keeps sending, stop reading after
/// a bound and wait for cancellation (gate release or server shutdown) instead.
async fn discard_until_eof(stream: &mut TcpStream) {
    let mut sink = [0u8; 1024];
    for _ in 0..MAX_DISCARD_READS {
        match stream.read(&mut sink).await {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
    }
    std::future::pending::<()>().await;
}

/// A response head (and small body) under construction.
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    /// `Some(n)`: `Content-Length: n`; `None`: `Transfer-Encoding: chunked`.
    length: Option<u64>,
    body: Vec<u8>,
}

impl Reply {
    fn new(status: u16, route_headers: &[(String, String)]) -> Self {
        Self { status, headers: route_headers.to_vec(), length: Some(0), body: Vec::new() }
    }

    fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_owned(), value.into()));
        self
    }

    fn body(mut self, body: &[u8]) -> Self {
        self.length = Some(body.len() as u64);
        self.body = body.to_vec();
        self
    }

    /// The status line and headers, ending with the blank line.
    fn head(&self, connection_close: bool) -> String {
        let mut out = format!("HTTP/1.1 {} {}\r\n", self.status, reason(self.status));
        // A model's type, unless the reply names its own (an error page is HTML).
        if !self.headers.iter().any(|(name, _)| name.eq_ignore_ascii_case("content-type")) {
            out.push_str("Content-Type: application/octet-stream\r\n");
        }
        match self.length {
            Some(n) => out.push_str(&format!("Content-Length: {n}\r\n")),
            None => out.push_str("Transfer-Encoding: chunked\r\n"),
        }
        for (name, value) in &self.headers {
            out.push_str(&format!("{name}: {value}\r\n"));
        }
        if connection_close {
            out.push_str("Connection: close\r\n");
        }
        out.push_str("\r\n");
        out
    }

    /// Write a complete, correctly framed response (no body for HEAD).
    async fn write(&self, stream: &mut TcpStream, is_head: bool, keep_alive: bool) -> io::Result<()> {
        let mut bytes = self.head(!keep_alive).into_bytes();
        if !is_head {
            bytes.extend_from_slice(&self.body);
        }
        stream.write_all(&bytes).await?;
        stream.flush().await
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        410 => "Gone",
        405 => "Method Not Allowed",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Injected",
    }
}
