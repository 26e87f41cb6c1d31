//! A fault-injecting model server: serves fixture models over HTTP/1.1 on loopback, with a
//! deterministic per-route schedule of HTTP-level faults, TCP-level faults and gates.
//!
//! ```no_run
//! use std::time::Duration;
//! use fault_server::{Fault, FaultPlan, Gate, GatePoint, ModelServer, Route};
//!
//! let server = ModelServer::start()?;
//! let route = server.add_route(Route::new("/models/small.onnx", vec![0u8; 1024]).model_id("small"));
//! route.set_schedule(FaultPlan::new([
//!     Fault::Status { code: 503, retry_after: Some(0) },
//!     Fault::Corrupt,
//! ]));
//! let url = server.url(&route); // http://127.0.0.1:<port>/models/small.onnx
//! // ... spawn processes that download `url` ...
//! let gate = Gate::named("mid-download");
//! route.set_schedule(FaultPlan::always(Fault::Gated { at: GatePoint::AfterBytes(512), gate: gate.clone() }));
//! gate.wait_arrivals(4, Duration::from_secs(10))?; // four responses parked mid-body
//! gate.release();
//! server.shutdown();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Design
//! - **Blocking API, own runtime.** Tests are synchronous (they spawn OS processes and wait for
//!   them), so [`ModelServer::start`] runs a current-thread tokio runtime on a background thread;
//!   [`ModelServer::shutdown`] (also run on drop) stops accepting, drops every connection task —
//!   which ends stalled and parked responses — and joins the thread.
//! - **One server, one schedule, for every fault.** An HTTP mock (e.g. httpmock) covers statuses
//!   and bodies but not resets, stalls, short bodies or mid-body gates; using it next to a raw TCP
//!   server would split one route's attempts over two servers and two schedules. Here the n-th GET
//!   to a route gets the n-th fault whatever its kind, which is what a retry test needs ("503, then
//!   a reset, then OK").
//! - **hyper writes the responses** (`hyper::server::conn::http1`). Statuses, redirects, Range/416,
//!   ETags, HTML error pages and gates before the head are ordinary responses. The framing is
//!   chosen by the headers: a `Content-Length` header gives a fixed length (which may claim more
//!   than is sent), none gives chunked; the body's size hint is never exact, so hyper does not
//!   second-guess the header. The body (`body.rs`) yields the content up to the next gate or the
//!   fault's byte limit, then ends, or has the connection closed, or stays pending (a stall).
//!   hyper 1.x flushes whenever the body returns `Pending`, and the socket wrapper (`conn.rs`)
//!   reports each completed flush, so "exactly n bytes on the wire, then park/stall/close" holds.
//! - **Close, reset and "no response" are the connection task's.** A fault that ends the
//!   connection asks the connection task to take it back from hyper (`into_parts`): it closes
//!   with a FIN, or with an RST (`SO_LINGER` 0 on the socket), after what hyper flushed and nothing
//!   else.
//! - **A raw path only for what hyper cannot write.** hyper trims a body to its `Content-Length`,
//!   so a body *longer* than its `Content-Length` ([`Fault::ShortContentLength`]) is written byte
//!   for byte by the connection task after taking the connection back (`raw.rs`, whose
//!   `needs_raw_path` is the one place that decides; hyper has parsed the request already).
//! - **Loopback only.** The listener binds `127.0.0.1:0`, never a wildcard address.
//! - **Bounded.** Keep-alive connections serve at most 10 000 requests and close after 60 s without
//!   a request head; request heads are capped at 16 KiB; every gate wait takes a deadline.
//!
//! Every GET to a route consumes one fault of its plan; a HEAD consumes none and gets the route's
//! real headers. See [`Fault`] for the exact wire behaviour of each fault.

mod body;
mod conn;
mod faults;
mod gate;
mod range;
mod raw;
mod respond;
mod route;
mod wait;

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener as StdListener};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::thread::JoinHandle;

use tokio::sync::watch;

pub use faults::{CORRUPT_BYTES, ERROR_PAGE_HTML, Fault, FaultPlan, GatePoint, corrupt};
pub use gate::{Gate, GateError, GateSnapshot};
pub use route::{Route, RouteHandle, RouteStats, RouteWaitError};

/// The server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// Binding a loopback socket failed.
    #[error("model server: binding {addr}: {source}")]
    Bind {
        /// The address that could not be bound.
        addr: SocketAddr,
        /// The OS error.
        source: std::io::Error,
    },
    /// Creating the tokio runtime, registering the listener or spawning its thread failed.
    #[error("model server: {what}: {source}")]
    Runtime {
        /// The step that failed.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
}

/// State shared between the test thread and the server's runtime.
pub(crate) struct Shared {
    routes: RwLock<HashMap<String, RouteHandle>>,
    /// `http://127.0.0.1:<port>`.
    base_url: String,
    /// `http://127.0.0.1:<port with no listener>`.
    refused_base_url: String,
    unknown_requests: AtomicU64,
}

impl Shared {
    pub(crate) fn route(&self, path: &str) -> Option<RouteHandle> {
        self.routes.read().unwrap_or_else(PoisonError::into_inner).get(path).cloned()
    }

    pub(crate) fn count_unknown(&self) {
        self.unknown_requests.fetch_add(1, Ordering::SeqCst);
    }
}

/// A running fault-injecting HTTP server on `127.0.0.1:<ephemeral port>`.
pub struct ModelServer {
    shared: Arc<Shared>,
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: Option<JoinHandle<()>>,
}

impl ModelServer {
    /// Bind `127.0.0.1:0` and start serving on a background thread.
    pub fn start() -> Result<Self, ServerError> {
        let loopback = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
        let std_listener = listen(loopback).map_err(|source| ServerError::Bind { addr: loopback, source })?;
        let addr =
            std_listener.local_addr().map_err(|source| ServerError::Bind { addr: loopback, source })?;
        let refused_port = dead_port()?;
        std_listener
            .set_nonblocking(true)
            .map_err(|source| ServerError::Runtime { what: "making the listener non-blocking", source })?;

        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|source| ServerError::Runtime { what: "building the tokio runtime", source })?;
        let listener = {
            let _context = runtime.enter();
            tokio::net::TcpListener::from_std(std_listener)
                .map_err(|source| ServerError::Runtime { what: "registering the listener", source })?
        };

        let shared = Arc::new(Shared {
            routes: RwLock::new(HashMap::new()),
            base_url: format!("http://{addr}"),
            refused_base_url: format!("http://127.0.0.1:{refused_port}"),
            unknown_requests: AtomicU64::new(0),
        });
        let (stop, stop_rx) = watch::channel(false);
        let thread_shared = Arc::clone(&shared);
        let thread = std::thread::Builder::new()
            .name(format!("model-server-{}", addr.port()))
            .spawn(move || {
                runtime.block_on(accept_loop(listener, thread_shared, stop_rx));
                // Dropping the runtime drops every connection task: stalled and parked
                // responses end here and their sockets close.
                drop(runtime);
            })
            .map_err(|source| ServerError::Runtime { what: "spawning the server thread", source })?;
        Ok(Self { shared, addr, stop, thread: Some(thread) })
    }

    /// The bound address (always `127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:<port>`.
    pub fn base_url(&self) -> &str {
        &self.shared.base_url
    }

    /// Register `route` (replacing a route with the same path) and return its handle.
    pub fn add_route(&self, route: Route) -> RouteHandle {
        let handle = RouteHandle::new(route);
        self.shared
            .routes
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(handle.path().to_owned(), handle.clone());
        handle
    }

    /// The handle of the route registered under `path`.
    pub fn route(&self, path: &str) -> Option<RouteHandle> {
        self.shared.route(path)
    }

    /// The full URL of `route` on this server.
    pub fn url(&self, route: &RouteHandle) -> String {
        self.url_for(route.path())
    }

    /// The full URL of `path` (which starts with `/`) on this server.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{path}", self.shared.base_url)
    }

    /// A URL on a loopback port with no listener: connecting to it is refused (ECONNREFUSED).
    ///
    /// The port was bound and released at start; another process could in principle bind it
    /// since, which on a test machine is vanishingly unlikely and shows up as a non-refusal.
    pub fn refused_url(&self) -> String {
        format!("{}/", self.shared.refused_base_url)
    }

    /// Requests for paths with no route (answered 404).
    pub fn unknown_requests(&self) -> u64 {
        self.shared.unknown_requests.load(Ordering::SeqCst)
    }

    /// Stop the server: close the listener, end every response (stalled and parked ones too)
    /// and join the server thread. Route handles stay readable afterwards.
    pub fn shutdown(mut self) {
        self.stop_and_join();
    }

    fn stop_and_join(&mut self) {
        self.stop.send_replace(true);
        if let Some(thread) = self.thread.take()
            && thread.join().is_err()
        {
            log::error!("model server {}: server thread panicked", self.addr);
        }
    }
}

impl Drop for ModelServer {
    fn drop(&mut self) {
        self.stop_and_join();
    }
}

impl std::fmt::Debug for ModelServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ModelServer").field("addr", &self.addr).finish_non_exhaustive()
    }
}

/// Listen on `addr` with a backlog deep enough for a burst of processes started at the same
/// instant: std's default of 128 would drop SYNs in a nightly-sized storm, and a dropped SYN
/// costs the client a one-second retransmit that looks like a hang.
fn listen(addr: SocketAddr) -> std::io::Result<StdListener> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// Listen backlog; the kernel caps it at `net.core.somaxconn`.
const LISTEN_BACKLOG: i32 = 4096;

/// Bind an ephemeral loopback port, note it and release it, so nothing listens there.
fn dead_port() -> Result<u16, ServerError> {
    let loopback = SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 0));
    let listener =
        StdListener::bind(loopback).map_err(|source| ServerError::Bind { addr: loopback, source })?;
    let port = listener.local_addr().map_err(|source| ServerError::Bind { addr: loopback, source })?.port();
    drop(listener);
    Ok(port)
}

/// Accept connections until `stop` turns true; each connection runs as its own task.
/// Bounded by the server's lifetime: [`ModelServer::shutdown`] (or drop) ends it.
async fn accept_loop(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = stop.wait_for(|stopped| *stopped) => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    tokio::spawn(conn::serve(stream, Arc::clone(&shared)));
                }
                Err(err) => {
                    // e.g. EMFILE under a process storm: back off briefly instead of spinning on
                    // the same error (a pause for resource pressure, not for synchronisation).
                    log::warn!("model server {}: accept failed: {err}", shared.base_url);
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
        }
    }
}
