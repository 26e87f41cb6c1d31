//! The raw path: the one response shape hyper cannot put on the wire, written byte for byte after
//! the connection is taken back from hyper. [`needs_raw_path`] is the one place that decides it.

use bytes::Bytes;
use hyper::StatusCode;
use hyper::header::HeaderMap;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

use crate::faults::Fault;
use crate::route::RouteHandle;

/// Body bytes per socket write (and per count into the route's counters).
const PIECE: usize = 64 * 1024;

/// Why `fault` cannot be served through hyper, or `None` when hyper can serve it.
///
/// Everything else maps onto hyper: statuses, redirects, Range and ETag faults are ordinary
/// responses; a body that ends early, stalls or parks is a body that stops yielding; close,
/// reset and "no response at all" are the connection task dropping hyper's connection. Every
/// variant is listed so that a new fault has to be placed here.
pub(crate) fn needs_raw_path(fault: &Fault) -> Option<&'static str> {
    match fault {
        Fault::ShortContentLength(_) => {
            Some("hyper trims a body to its Content-Length, so it cannot send the bytes past it")
        }
        Fault::Ok
        | Fault::Status { .. }
        | Fault::ErrorPageWith200
        | Fault::IgnoreRange
        | Fault::RangeNotSatisfiable
        | Fault::EtagChanged
        | Fault::Corrupt
        | Fault::LongContentLength(_)
        | Fault::Chunked
        | Fault::Redirect { .. }
        | Fault::RedirectToDeadPort
        | Fault::AcceptThenClose
        | Fault::HeadersThenClose
        | Fault::CloseAfter(_)
        | Fault::Reset
        | Fault::Stall { .. }
        | Fault::Gated { .. } => None,
    }
}

/// A response the connection task writes itself, then closes the connection.
pub(crate) struct RawResponse {
    head: Vec<u8>,
    body: Bytes,
    route: RouteHandle,
}

impl RawResponse {
    /// `status` and `headers` (which carry whatever `Content-Length` the fault claims) as an
    /// HTTP/1.1 head with `Connection: close`, then all of `body`, counted into `route`.
    pub(crate) fn new(status: StatusCode, headers: &HeaderMap, body: Bytes, route: &RouteHandle) -> Self {
        let reason = status.canonical_reason().unwrap_or("Injected");
        let mut head = format!("HTTP/1.1 {} {reason}\r\n", status.as_u16()).into_bytes();
        for (name, value) in headers {
            head.extend_from_slice(name.as_str().as_bytes());
            head.extend_from_slice(b": ");
            head.extend_from_slice(value.as_bytes());
            head.extend_from_slice(b"\r\n");
        }
        head.extend_from_slice(b"Connection: close\r\n\r\n");
        Self { head, body, route: route.clone() }
    }

    /// Write the head and the body, counting body bytes as each write returns.
    pub(crate) async fn write(&self, stream: &mut TcpStream) -> std::io::Result<()> {
        stream.write_all(&self.head).await?;
        for piece in self.body.chunks(PIECE) {
            stream.write_all(piece).await?;
            self.route.add_bytes_served(piece.len() as u64);
        }
        stream.flush().await
    }
}
