//! One client connection: hyper serves it, and the connection can be taken back from hyper when a
//! fault ends it in a way HTTP has no word for (close or reset mid-exchange, or raw bytes).

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Notify;

use crate::Shared;
use crate::raw::RawResponse;
use crate::respond;

/// Keep-alive bound: a connection serves at most this many requests (the last one is answered
/// with `Connection: close`).
pub(crate) const MAX_REQUESTS_PER_CONNECTION: usize = 10_000;
/// Keep-alive bound: a connection with no complete request head for this long is closed (hyper's
/// header read timeout, which also runs while a kept-alive connection waits for its next request).
const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Largest request head accepted (hyper's read buffer; a bigger head gets 431 and a close).
const MAX_HEAD_BYTES: usize = 16 * 1024;

/// How the connection task ends a connection that hyper can no longer serve.
pub(crate) enum Takeover {
    /// Close (FIN) after what hyper already flushed.
    Close,
    /// Abortive close: `SO_LINGER` 0, then close, so the client reads ECONNRESET.
    Reset,
    /// Write this response byte for byte (hyper wrote nothing of it), then close.
    Raw(RawResponse),
}

/// State shared by the connection task, its requests' responses and its socket wrapper.
#[derive(Default)]
pub(crate) struct ConnControl {
    /// Completed flushes of the socket wrapper: hyper flushes only once every byte it buffered
    /// has been written, so a flush after a body handed over its bytes puts them on the wire.
    flushes: AtomicU64,
    flush_waiter: Mutex<Option<Waker>>,
    takeover: Mutex<Option<Takeover>>,
    takeover_requested: Notify,
    requests: AtomicUsize,
}

impl ConnControl {
    /// The flush count now; pass it to [`ConnControl::poll_flushed_since`].
    pub(crate) fn flushes(&self) -> u64 {
        self.flushes.load(Ordering::SeqCst)
    }

    /// Ready once the socket was flushed after `mark` was read. hyper flushes whenever the body
    /// it polls returns `Pending`, so a body that waits here after its last piece knows its bytes
    /// are on the wire.
    pub(crate) fn poll_flushed_since(&self, mark: u64, cx: &mut Context<'_>) -> Poll<()> {
        // Register first, then check: a flush between the two still wakes this task.
        *self.flush_waiter.lock().unwrap_or_else(PoisonError::into_inner) = Some(cx.waker().clone());
        if self.flushes() > mark { Poll::Ready(()) } else { Poll::Pending }
    }

    fn note_flush(&self) {
        self.flushes.fetch_add(1, Ordering::SeqCst);
        if let Some(waker) = self.flush_waiter.lock().unwrap_or_else(PoisonError::into_inner).take() {
            waker.wake();
        }
    }

    /// Ask the connection task to end the connection this way (the first request wins).
    pub(crate) fn take_over(&self, takeover: Takeover) {
        let mut slot = self.takeover.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(takeover);
            self.takeover_requested.notify_one();
        }
    }

    async fn takeover(&self) -> Takeover {
        // Bounded: `notify_one` stores a permit, and the slot is filled before it is sent.
        loop {
            self.takeover_requested.notified().await;
            if let Some(takeover) = self.takeover.lock().unwrap_or_else(PoisonError::into_inner).take() {
                return takeover;
            }
        }
    }

    /// Count a request on this connection; `true` when it is the last one allowed.
    pub(crate) fn count_request(&self) -> bool {
        self.requests.fetch_add(1, Ordering::SeqCst) + 1 >= MAX_REQUESTS_PER_CONNECTION
    }
}

/// Serve `stream` with hyper until the client leaves, a bound is hit, or a fault takes the
/// connection over. The server's shutdown cancels this task, which closes the socket.
pub(crate) async fn serve(stream: TcpStream, shared: Arc<Shared>) {
    // Small writes (a head, the first n bytes of a fault) must leave at once, not wait for Nagle,
    // or "n bytes then stall" would not put n bytes on the wire.
    let _ = stream.set_nodelay(true);
    let control = Arc::new(ConnControl::default());
    let io = TokioIo::new(ConnIo { stream, control: Arc::clone(&control) });
    let service = {
        let control = Arc::clone(&control);
        service_fn(move |request| respond::respond(request, Arc::clone(&shared), Arc::clone(&control)))
    };
    let mut conn = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(IDLE_TIMEOUT)
        .max_buf_size(MAX_HEAD_BYTES)
        .serve_connection(io, service);
    let takeover = tokio::select! {
        result = &mut conn => {
            if let Err(err) = result {
                // A client that left, an idle or malformed connection: nothing to report upward.
                log::debug!("model server: connection ended: {err}");
            }
            return;
        }
        takeover = control.takeover() => takeover,
    };
    // hyper is stopped mid-exchange; what it already flushed is on the wire, nothing else is.
    let mut io = conn.into_parts().io.into_inner();
    match takeover {
        Takeover::Close => io.close().await,
        Takeover::Reset => io.reset(),
        Takeover::Raw(response) => {
            if let Err(err) = response.write(&mut io.stream).await {
                log::debug!("model server: writing a raw response: {err}");
            }
            io.close().await;
        }
    }
}

/// The socket under hyper: reports completed flushes to [`ConnControl`] and ends connections with
/// a FIN or an RST.
pub(crate) struct ConnIo {
    stream: TcpStream,
    control: Arc<ConnControl>,
}

impl ConnIo {
    /// Graceful close: FIN after everything written, then release the socket.
    async fn close(mut self) {
        let _ = self.stream.shutdown().await;
    }

    /// Close with an RST instead of a FIN: `SO_LINGER` with a zero timeout makes `close` abort.
    fn reset(self) {
        if let Err(err) = socket2::SockRef::from(&self.stream).set_linger(Some(Duration::ZERO)) {
            log::warn!("model server: SO_LINGER 0 failed, connection closes with FIN: {err}");
        }
        drop(self);
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flushed = Pin::new(&mut self.stream).poll_flush(cx);
        if let Poll::Ready(Ok(())) = flushed {
            self.control.note_flush();
        }
        flushed
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}
