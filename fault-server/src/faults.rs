//! Faults a route can inject, and the per-route schedule that hands them out one per request.

use std::collections::VecDeque;

use super::gate::Gate;

/// Number of bytes [`Fault::Corrupt`] flips.
///
/// Sixteen bytes in the middle of a protobuf land inside a tensor's raw data for any realistic
/// model, so the file usually still parses: the client can only notice the damage by hashing,
/// which is exactly what the integrity scenarios want to exercise.
pub const CORRUPT_BYTES: usize = 16;

/// What one request to a route gets.
///
/// A fault is chosen per GET from the route's [`FaultPlan`] (a HEAD takes none and is answered as
/// [`Fault::Ok`]). HTTP-level faults produce a well-formed but wrong response; TCP-level faults break
/// the connection in a specific way; [`Fault::Gated`] parks the response until the test releases a
/// [`Gate`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Fault {
    /// Serve the route normally (200, or 206 for a `Range` request).
    Ok,
    /// Answer with this status and a small HTML error page as the body (what CDNs and object stores
    /// send for 403/404/410), `Content-Type: text/html`; `Retry-After: <secs>` when given.
    Status {
        /// HTTP status code, e.g. 503 or 429.
        code: u16,
        /// Value of the `Retry-After` header in seconds, if any.
        retry_after: Option<u32>,
    },
    /// `200 OK` whose body is [`ERROR_PAGE_HTML`] instead of the model, as a captive portal or a
    /// misconfigured CDN answers: only a checksum or a load of the model can tell.
    ErrorPageWith200,
    /// A `Range` request gets `200` and the whole body, as a server that does not support ranges may
    /// answer (RFC 9110 §14.2): a client that appends it to its partial file poisons the cache.
    IgnoreRange,
    /// A `Range` request gets `416 Range Not Satisfiable` (`Content-Range: bytes */len`) whatever the
    /// range; a request without `Range` is served normally.
    RangeNotSatisfiable,
    /// Served normally but under a new `ETag`, as if the resource changed between a client's probe
    /// (HEAD, or an earlier partial GET) and this response.
    EtagChanged,
    /// Same length and headers (including the ETag), but [`CORRUPT_BYTES`] bytes at `len / 2` are
    /// inverted, so the SHA-256 differs.
    Corrupt,
    /// `Content-Length` claims this many bytes more than are sent; the connection closes after the
    /// real body.
    LongContentLength(u64),
    /// `Content-Length` claims this many bytes fewer than the body; the whole body is written
    /// anyway and the connection is closed, so the surplus can never be parsed as a next response.
    ShortContentLength(u64),
    /// No `Content-Length`: `Transfer-Encoding: chunked`.
    Chunked,
    /// `302 Found` to another path on this server (or to an absolute `http://` URL given as is).
    Redirect {
        /// Target path (`/other`) or absolute URL.
        to: String,
    },
    /// `302 Found` to the same path on a loopback port with no listener, so the client's
    /// connection to the redirect target is refused (ECONNREFUSED).
    ///
    /// A server cannot refuse a connection on a port it listens on; the redirect is how a route
    /// schedule can still say "this attempt gets a refused connection". A client that retries the
    /// *original* URL gets the next entry of the plan. Use
    /// [`ModelServer::refused_url`](super::ModelServer::refused_url) to point a client at the dead
    /// port directly.
    RedirectToDeadPort,
    /// Read the request (needed to pick the route), then close the connection without writing a
    /// single byte: the client sees EOF where the status line should be.
    AcceptThenClose,
    /// Write the full response head (with the real `Content-Length`), then close: EOF before any
    /// body byte.
    HeadersThenClose,
    /// Write the head and this many body bytes, then close (FIN). A count that covers the whole
    /// body sends a complete response (the connection then follows the request's keep-alive).
    CloseAfter(u64),
    /// Read the request, then reset the connection (`SO_LINGER` 0 and close → RST): the client's
    /// read fails with ECONNRESET.
    Reset,
    /// Write the head and `after` body bytes, then nothing until the client leaves or the server
    /// shuts down. A count that covers the whole body sends a complete response.
    Stall {
        /// Body bytes written before the stall.
        after: u64,
    },
    /// Park the response at `at` until `gate` is released, then serve it normally.
    Gated {
        /// Where the response waits.
        at: GatePoint,
        /// The gate that counts and releases parked responses.
        gate: Gate,
    },
}

/// A short, stable label for evidence in reports, e.g. `status(503, retry_after=0)` or
/// `gated(after_bytes=4096, gate=mid)`.
impl std::fmt::Display for Fault {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Fault::Ok => write!(f, "ok"),
            Fault::Status { code, retry_after: Some(secs) } => {
                write!(f, "status({code}, retry_after={secs})")
            }
            Fault::Status { code, retry_after: None } => write!(f, "status({code})"),
            Fault::Corrupt => write!(f, "corrupt"),
            Fault::IgnoreRange => write!(f, "ignore_range"),
            Fault::ErrorPageWith200 => write!(f, "error_page_with_200"),
            Fault::RangeNotSatisfiable => write!(f, "range_not_satisfiable"),
            Fault::EtagChanged => write!(f, "etag_changed"),
            Fault::LongContentLength(extra) => write!(f, "long_content_length(+{extra})"),
            Fault::ShortContentLength(less) => write!(f, "short_content_length(-{less})"),
            Fault::Chunked => write!(f, "chunked"),
            Fault::Redirect { to } => write!(f, "redirect({to})"),
            Fault::RedirectToDeadPort => write!(f, "refused"),
            Fault::AcceptThenClose => write!(f, "accept_then_close"),
            Fault::HeadersThenClose => write!(f, "headers_then_close"),
            Fault::CloseAfter(n) => write!(f, "close_after({n})"),
            Fault::Reset => write!(f, "reset"),
            Fault::Stall { after } => write!(f, "stall(after={after})"),
            Fault::Gated { at: GatePoint::BeforeHeaders, gate } => {
                write!(f, "gated(before_headers, gate={})", gate.name())
            }
            Fault::Gated { at: GatePoint::AfterBytes(n), gate } => {
                write!(f, "gated(after_bytes={n}, gate={})", gate.name())
            }
        }
    }
}

/// Where a [`Fault::Gated`] response waits.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GatePoint {
    /// After the request was read, before any response byte.
    BeforeHeaders,
    /// After the head and this many body bytes, clamped to one byte short of the body: a response
    /// whose last byte is out is finished, so it could no longer be held. On an empty body the
    /// response parks before its head.
    AfterBytes(u64),
}

/// A deterministic per-route schedule: the n-th request to the route gets the n-th fault; once the
/// list is used up every request gets the `then` fault (default [`Fault::Ok`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FaultPlan {
    faults: VecDeque<Fault>,
    then: Fault,
}

impl FaultPlan {
    /// A plan that hands out `faults` in order, then [`Fault::Ok`] forever.
    pub fn new(faults: impl IntoIterator<Item = Fault>) -> Self {
        Self { faults: faults.into_iter().collect(), then: Fault::Ok }
    }

    /// A plan that gives every request `fault`.
    pub fn always(fault: Fault) -> Self {
        Self { faults: VecDeque::new(), then: fault }
    }

    /// Replace the fault used once the list is exhausted.
    pub fn then(mut self, fault: Fault) -> Self {
        self.then = fault;
        self
    }

    /// Faults still queued before the `then` fault takes over.
    pub fn remaining(&self) -> usize {
        self.faults.len()
    }

    /// This plan cut after its first `n` faults (anything but [`Fault::Ok`], the repeating `then`
    /// fault included), in order; every later request is served clean (a replayed plan shrunk to fewer
    /// faults).
    pub fn capped(self, n: usize) -> Self {
        let repeat = if self.then == Fault::Ok { 0 } else { n };
        let mut left = n;
        let mut faults = VecDeque::new();
        for fault in self.faults.into_iter().chain(std::iter::repeat_n(self.then, repeat)) {
            if left == 0 {
                break;
            }
            if fault != Fault::Ok {
                left -= 1;
            }
            faults.push_back(fault);
        }
        Self { faults, then: Fault::Ok }
    }

    /// Take the fault for the next request.
    pub(crate) fn next_fault(&mut self) -> Fault {
        self.faults.pop_front().unwrap_or_else(|| self.then.clone())
    }
}

impl Default for FaultPlan {
    fn default() -> Self {
        Self::always(Fault::Ok)
    }
}

/// The body of [`Fault::ErrorPageWith200`]: an HTML page, nothing like any model.
pub const ERROR_PAGE_HTML: &[u8] =
    b"<!DOCTYPE html>\n<html><head><title>Sign in to continue</title></head>\n\
<body><h1>Sign in to continue</h1><p>This network requires you to sign in before you can download files.</p>\
</body></html>\n";

/// The body [`Fault::Corrupt`] sends: `content` with [`CORRUPT_BYTES`] bytes at `len / 2`
/// inverted (fewer near the end of a short body). An empty body cannot be corrupted and is
/// returned unchanged.
pub fn corrupt(content: &[u8]) -> Vec<u8> {
    let mut out = content.to_vec();
    let start = out.len() / 2;
    let end = (start + CORRUPT_BYTES).min(out.len());
    for byte in &mut out[start..end] {
        *byte = !*byte;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plan_hands_out_faults_in_order_then_the_then_fault() {
        let mut plan = FaultPlan::new([Fault::Corrupt, Fault::Chunked]).then(Fault::Reset);
        assert_eq!(plan.next_fault(), Fault::Corrupt);
        assert_eq!(plan.next_fault(), Fault::Chunked);
        assert_eq!(plan.next_fault(), Fault::Reset);
        assert_eq!(plan.next_fault(), Fault::Reset);
    }

    #[test]
    fn capped_plan_serves_its_first_n_faults_then_clean_responses() {
        let mut plan =
            FaultPlan::new([Fault::Ok, Fault::Corrupt, Fault::Chunked]).then(Fault::Reset).capped(1);
        assert_eq!(plan.next_fault(), Fault::Ok);
        assert_eq!(plan.next_fault(), Fault::Corrupt);
        assert_eq!(plan.next_fault(), Fault::Ok);
        let mut always = FaultPlan::always(Fault::Reset).capped(2);
        assert_eq!(
            [always.next_fault(), always.next_fault(), always.next_fault()],
            [Fault::Reset, Fault::Reset, Fault::Ok]
        );
        let mut none = FaultPlan::always(Fault::Reset).capped(0);
        assert_eq!(none.next_fault(), Fault::Ok);
    }

    #[test]
    fn labels_name_the_fault_and_its_parameters() {
        let gate = Gate::named("mid");
        assert_eq!(
            Fault::Status { code: 503, retry_after: Some(0) }.to_string(),
            "status(503, retry_after=0)"
        );
        assert_eq!(
            Fault::Gated { at: GatePoint::AfterBytes(4096), gate }.to_string(),
            "gated(after_bytes=4096, gate=mid)"
        );
    }

    #[test]
    fn corrupt_keeps_length_and_changes_middle_bytes_only() {
        let content: Vec<u8> = (0..100u8).collect();
        let bad = corrupt(&content);
        assert_eq!(bad.len(), content.len());
        assert_eq!(bad[..50], content[..50]);
        assert_ne!(bad[50..66], content[50..66]);
        assert_eq!(bad[66..], content[66..]);
        assert!(corrupt(&[]).is_empty());
        assert_ne!(corrupt(&[7]), vec![7]);
    }
}
