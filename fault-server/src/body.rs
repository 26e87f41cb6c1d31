//! The response body hyper writes: it yields the content piece by piece up to the next gate or the
//! fault's byte limit, then ends (correct framing), has the connection closed, or stays pending.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};

use bytes::Bytes;
use http_body::{Body, Frame};

use crate::conn::{ConnControl, Takeover};
use crate::gate::Gate;
use crate::route::RouteHandle;

/// Body bytes per frame: one socket write's worth.
const PIECE: usize = 64 * 1024;

/// What happens once the body has yielded its `limit` bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyEnd {
    /// End the body: hyper finishes the framing and may keep the connection.
    Done,
    /// Once the bytes are on the wire, close the connection (FIN): the client sees a body
    /// shorter than its framing promised.
    Close,
    /// Once the bytes are on the wire, send nothing more until the client leaves or the server
    /// shuts down.
    Stall,
}

/// A body that hyper frames by the response's headers: a `Content-Length` header makes a fixed
/// length (which may claim more than is sent), no header makes it chunked. Its size hint is
/// never exact, so hyper takes the framing from the headers and never checks the two against
/// each other.
pub(crate) struct FaultBody {
    content: Bytes,
    offset: usize,
    limit: usize,
    gate: Option<GateStop>,
    end: BodyEnd,
    /// The route whose counters these bytes feed (`None` for error pages and the like).
    route: Option<RouteHandle>,
    /// Count a complete body when the last byte is handed over (a full-length 200 GET).
    complete: bool,
    conn: Arc<ConnControl>,
    /// The flush count when the body started waiting for its bytes to reach the wire.
    flush_mark: Option<u64>,
}

struct GateStop {
    at: usize,
    gate: Gate,
    parked: Option<Pin<Box<dyn Future<Output = ()> + Send>>>,
}

impl FaultBody {
    /// A complete small body (error page, 404 text, nothing) that feeds no counters.
    pub(crate) fn plain(content: impl Into<Bytes>, conn: &Arc<ConnControl>) -> Self {
        let content = content.into();
        let limit = content.len();
        Self {
            content,
            offset: 0,
            limit,
            gate: None,
            end: BodyEnd::Done,
            route: None,
            complete: false,
            conn: Arc::clone(conn),
            flush_mark: None,
        }
    }

    /// The route's `content` (already sliced for a range), of which `limit` bytes are sent
    /// (clamped to its length) before `end`; the response parks at `gate` after `at` bytes.
    pub(crate) fn content(
        content: Bytes,
        limit: u64,
        end: BodyEnd,
        gate: Option<(u64, Gate)>,
        route: &RouteHandle,
        conn: &Arc<ConnControl>,
    ) -> Self {
        let clamp = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).min(content.len());
        let limit = clamp(limit);
        let gate = gate.map(|(at, gate)| GateStop { at: clamp(at).min(limit), gate, parked: None });
        Self {
            offset: 0,
            limit,
            gate,
            end,
            route: Some(route.clone()),
            complete: false,
            conn: Arc::clone(conn),
            flush_mark: None,
            content,
        }
    }

    /// Count a complete body when the last byte is handed over (only with [`BodyEnd::Done`]).
    pub(crate) fn counts_complete(mut self, complete: bool) -> Self {
        self.complete = complete && self.end == BodyEnd::Done && self.limit == self.content.len();
        self
    }

    /// Ready once every byte yielded so far has been written to the socket.
    fn poll_on_the_wire(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let mark = *self.flush_mark.get_or_insert_with(|| self.conn.flushes());
        self.conn.poll_flushed_since(mark, cx)
    }
}

impl Body for FaultBody {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Infallible>>> {
        let this = self.get_mut();
        // A gate at this offset: the bytes before it go on the wire first, then the response
        // parks (counted by the gate) until the gate opens or the connection is dropped.
        if this.gate.as_ref().is_some_and(|stop| stop.at == this.offset) {
            ready!(this.poll_on_the_wire(cx));
            if let Some(stop) = &mut this.gate {
                let gate = stop.gate.clone();
                let parked = stop.parked.get_or_insert_with(|| Box::pin(async move { gate.pass().await }));
                ready!(parked.as_mut().poll(cx));
            }
            this.gate = None;
            this.flush_mark = None;
        }
        if this.offset < this.limit {
            let mut end = (this.offset + PIECE).min(this.limit);
            if let Some(stop) = &this.gate {
                end = end.min(stop.at);
            }
            let piece = this.content.slice(this.offset..end);
            this.offset = end;
            if let Some(route) = &this.route {
                route.add_bytes_served(piece.len() as u64);
                if this.complete && this.offset == this.content.len() {
                    route.add_complete_body();
                }
            }
            return Poll::Ready(Some(Ok(Frame::data(piece))));
        }
        match this.end {
            BodyEnd::Done => Poll::Ready(None),
            BodyEnd::Close => {
                ready!(this.poll_on_the_wire(cx));
                this.conn.take_over(Takeover::Close);
                Poll::Pending
            }
            // Nothing wakes this body again; the connection still notices the client leaving.
            BodyEnd::Stall => {
                ready!(this.poll_on_the_wire(cx));
                Poll::Pending
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.offset == self.limit && self.end == BodyEnd::Done && self.gate.is_none()
    }
}
