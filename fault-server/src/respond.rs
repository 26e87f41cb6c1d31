//! One request: find the route, take its fault, and turn the fault into a response for hyper or a
//! takeover of the connection.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Method, Request, Response, StatusCode};

use crate::Shared;
use crate::body::{BodyEnd, FaultBody};
use crate::conn::{ConnControl, Takeover};
use crate::faults::{ERROR_PAGE_HTML, Fault, GatePoint, corrupt};
use crate::range::{RangeRequest, parse_range};
use crate::raw::{RawResponse, needs_raw_path};
use crate::route::RouteHandle;

/// What a request gets.
enum Reply {
    /// A response hyper writes.
    Http(Response<FaultBody>),
    /// No response from hyper: the connection task ends the connection this way.
    Takeover(Takeover),
}

/// hyper's service: answer `request`, or hand the connection to the connection task and never
/// answer (hyper then writes nothing more for it).
pub(crate) async fn respond(
    request: Request<Incoming>,
    shared: Arc<Shared>,
    conn: Arc<ConnControl>,
) -> Result<Response<FaultBody>, Infallible> {
    let last_on_connection = conn.count_request();
    // Only body-less requests are served (GET, HEAD; anything else gets 405 and a close), so the
    // request body is dropped unread.
    let (request, _body) = request.into_parts();
    match reply(&request, &shared, &conn).await {
        Reply::Http(mut response) => {
            if last_on_connection {
                response.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            Ok(response)
        }
        Reply::Takeover(takeover) => {
            // What hyper still buffers (the tail of an earlier response on this connection) goes on
            // the wire first: hyper flushes as soon as this future is pending.
            let mark = conn.flushes();
            std::future::poll_fn(|cx| conn.poll_flushed_since(mark, cx)).await;
            conn.take_over(takeover);
            // The connection task drops hyper's connection, and this future with it.
            std::future::pending().await
        }
    }
}

async fn reply(request: &Parts, shared: &Shared, conn: &Arc<ConnControl>) -> Reply {
    let is_head = request.method == Method::HEAD;
    let Some(route) = shared.route(request.uri.path()) else {
        shared.count_unknown();
        return plain(StatusCode::NOT_FOUND, HeaderMap::new(), Bytes::from_static(b"no such route\n"), conn);
    };
    if request.method != Method::GET && !is_head {
        // A request body would have to be skipped to keep the connection usable; not worth it.
        let mut headers = route_headers(&route);
        headers.insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        return plain(StatusCode::METHOD_NOT_ALLOWED, headers, Bytes::new(), conn);
    }
    // The plan schedules the requests that carry a body. A client that probes with HEAD first (for an
    // ETag or a length) gets the route's real headers and leaves the plan to its GETs, so a fault meant
    // for a download is never spent on a probe.
    let fault = if is_head { route.count_head() } else { route.next_fault() };
    let range = request.headers.get(header::RANGE).and_then(|value| value.to_str().ok());
    match fault {
        Fault::Status { code, retry_after } => {
            let status = StatusCode::from_u16(code).unwrap_or_else(|_| {
                log::warn!("model server: status {code} is not an HTTP status; sending 500");
                StatusCode::INTERNAL_SERVER_ERROR
            });
            let mut headers = route_headers(&route);
            if let Some(secs) = retry_after {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            // An HTML page, as a CDN or object store sends: a client that caches the body of an error
            // response as the model is caught by its content, whatever its length. The page replaces
            // the route's own Content-Type (a model's), as a real error page does.
            headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/html; charset=utf-8"));
            plain(status, headers, error_page(status), conn)
        }
        Fault::Redirect { to } => {
            let location = if to.starts_with("http://") || to.starts_with("https://") {
                to
            } else {
                format!("{}{to}", shared.base_url)
            };
            redirect(&route, &location, conn)
        }
        Fault::RedirectToDeadPort => {
            redirect(&route, &format!("{}{}", shared.refused_base_url, route.path()), conn)
        }
        Fault::AcceptThenClose => Reply::Takeover(Takeover::Close),
        Fault::Reset => Reply::Takeover(Takeover::Reset),
        Fault::Gated { at: GatePoint::BeforeHeaders, gate } => {
            // Dropped (and no longer counted as parked) when hyper sees the client leave.
            gate.pass().await;
            content(&route, &Fault::Ok, range, conn)
        }
        // An empty body has no byte to park after: it parks before its head instead.
        Fault::Gated { at: GatePoint::AfterBytes(_), gate } if route.content().is_empty() => {
            gate.pass().await;
            content(&route, &Fault::Ok, range, conn)
        }
        other => content(&route, &other, range, conn),
    }
}

/// Serve the route's content (or a slice of it for `Range`) shaped by a body-level fault.
fn content(route: &RouteHandle, fault: &Fault, range: Option<&str>, conn: &Arc<ConnControl>) -> Reply {
    let content: Bytes = match fault {
        // Corrupt the whole entity, then slice, so ranges agree with a full corrupted GET.
        Fault::Corrupt => corrupt(route.content()).into(),
        Fault::ErrorPageWith200 => Bytes::from_static(ERROR_PAGE_HTML),
        _ => route.content().clone(),
    };
    let len = content.len() as u64;
    let range = match fault {
        Fault::IgnoreRange => RangeRequest::Full,
        Fault::RangeNotSatisfiable if range.is_some() => RangeRequest::Unsatisfiable,
        _ => parse_range(range, len),
    };
    let mut headers = route_headers(route);
    let (status, body) = match range {
        RangeRequest::Full => (StatusCode::OK, content),
        RangeRequest::Partial { start, end } => {
            headers.insert(header::CONTENT_RANGE, header_value(format!("bytes {start}-{end}/{len}")));
            // `parse_range` guarantees start <= end < len, which fits usize (it came from one).
            (StatusCode::PARTIAL_CONTENT, content.slice(start as usize..=end as usize))
        }
        RangeRequest::Unsatisfiable => {
            headers.insert(header::CONTENT_RANGE, header_value(format!("bytes */{len}")));
            return plain(StatusCode::RANGE_NOT_SATISFIABLE, headers, Bytes::new(), conn);
        }
    };
    let body_len = body.len() as u64;

    // (claimed Content-Length or None for chunked, body bytes sent, gate, ending)
    let (claimed, limit, gate, end) = match fault {
        Fault::Chunked => (None, body_len, None, BodyEnd::Done),
        Fault::LongContentLength(extra) => {
            (Some(body_len.saturating_add(*extra)), body_len, None, BodyEnd::Close)
        }
        Fault::ShortContentLength(less) => {
            (Some(body_len.saturating_sub(*less)), body_len, None, BodyEnd::Close)
        }
        Fault::HeadersThenClose => (Some(body_len), 0, None, BodyEnd::Close),
        Fault::CloseAfter(n) => (Some(body_len), (*n).min(body_len), None, BodyEnd::Close),
        Fault::Stall { after } => (Some(body_len), (*after).min(body_len), None, BodyEnd::Stall),
        // A response whose last byte is handed over is finished (hyper stops polling a body that
        // has reached its Content-Length), so a gate holds at most before the last byte.
        Fault::Gated { at: GatePoint::AfterBytes(n), gate } => (
            Some(body_len),
            body_len,
            Some(((*n).min(body_len.saturating_sub(1)), gate.clone())),
            BodyEnd::Done,
        ),
        _ => (Some(body_len), body_len, None, BodyEnd::Done),
    };
    let etag = match fault {
        Fault::EtagChanged => format!("\"changed-{}\"", route.etag().trim_matches('"')),
        _ => route.etag(),
    };
    let accept_ranges = if matches!(fault, Fault::IgnoreRange) { "none" } else { "bytes" };
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static(accept_ranges));
    headers.insert(header::ETAG, header_value(etag));
    if let Some(claimed) = claimed {
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(claimed));
    }

    if let Some(why) = needs_raw_path(fault) {
        log::trace!("model server: {fault} takes the raw path: {why}");
        with_model_type(&mut headers);
        return Reply::Takeover(Takeover::Raw(RawResponse::new(status, &headers, body, route)));
    }
    let body =
        FaultBody::content(body, limit, end, gate, route, conn).counts_complete(status == StatusCode::OK);
    Reply::Http(response(status, headers, body))
}

fn redirect(route: &RouteHandle, location: &str, conn: &Arc<ConnControl>) -> Reply {
    let mut headers = route_headers(route);
    headers.insert(header::LOCATION, header_value(location.to_owned()));
    plain(StatusCode::FOUND, headers, Bytes::new(), conn)
}

/// A complete, correctly framed response with a small body that feeds no route counters.
fn plain(status: StatusCode, mut headers: HeaderMap, body: Bytes, conn: &Arc<ConnControl>) -> Reply {
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    Reply::Http(response(status, headers, FaultBody::plain(body, conn)))
}

fn response(status: StatusCode, mut headers: HeaderMap, body: FaultBody) -> Response<FaultBody> {
    with_model_type(&mut headers);
    let mut response = Response::new(body);
    *response.status_mut() = status;
    *response.headers_mut() = headers;
    response
}

/// A model's type, unless the route or the reply names its own (an error page is HTML).
fn with_model_type(headers: &mut HeaderMap) {
    headers.entry(header::CONTENT_TYPE).or_insert(HeaderValue::from_static("application/octet-stream"));
}

/// The route's extra headers. One that is not a valid header is left out, with a warning: the
/// route API is infallible, and a test server must not fail a run over it.
fn route_headers(route: &RouteHandle) -> HeaderMap {
    let mut headers = HeaderMap::new();
    for (name, value) in route.headers() {
        match (HeaderName::try_from(name.as_str()), HeaderValue::try_from(value.as_str())) {
            (Ok(name), Ok(value)) => {
                headers.append(name, value);
            }
            _ => log::warn!(
                "model server: route {}: header {name:?}: {value:?} is not valid HTTP",
                route.path()
            ),
        }
    }
    headers
}

/// A value built by this module from digits, quotes, hex and URLs made of them.
fn header_value(value: String) -> HeaderValue {
    HeaderValue::try_from(value).unwrap_or_else(|err| {
        log::warn!("model server: invalid header value: {err}");
        HeaderValue::from_static("")
    })
}

/// The HTML page of an injected error status.
fn error_page(status: StatusCode) -> Bytes {
    let code = status.as_u16();
    let reason = status.canonical_reason().unwrap_or("Injected");
    format!(
        "<!DOCTYPE html>\n<html><head><title>{code} {reason}</title></head>\n<body><h1>{code} {reason}</h1>\
         <p>injected fault</p></body></html>\n"
    )
    .into()
}
