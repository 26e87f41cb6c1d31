//! Routes: the bytes served under one path, their fault schedule and their counters.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use sha2::{Digest, Sha256};

use super::faults::{Fault, FaultPlan};

/// A route to register with [`ModelServer::add_route`](super::ModelServer::add_route).
#[derive(Clone, Debug)]
pub struct Route {
    path: String,
    content: Bytes,
    headers: Vec<(String, String)>,
    model_id: Option<String>,
    plan: FaultPlan,
}

impl Route {
    /// Serve `content` under `path` (must start with `/`; matched exactly, query string ignored).
    pub fn new(path: impl Into<String>, content: impl Into<Bytes>) -> Self {
        Self {
            path: path.into(),
            content: content.into(),
            headers: Vec::new(),
            model_id: None,
            plan: FaultPlan::default(),
        }
    }

    /// Add a response header sent on every response of this route (e.g. one the target expects).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Tag the route with the model identity it serves, for evidence in reports.
    pub fn model_id(mut self, id: impl Into<String>) -> Self {
        self.model_id = Some(id.into());
        self
    }

    /// The initial fault schedule (default: always [`Fault::Ok`]).
    pub fn schedule(mut self, plan: FaultPlan) -> Self {
        self.plan = plan;
        self
    }

    /// The path the route is served under.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// A registered route: change its schedule and read its counters while the server runs.
/// Clones share the same route.
#[derive(Clone, Debug)]
pub struct RouteHandle {
    inner: Arc<RouteState>,
}

#[derive(Debug)]
struct RouteState {
    path: String,
    content: Bytes,
    sha256: String,
    headers: Vec<(String, String)>,
    model_id: Option<String>,
    /// The plan and the log of served faults share a lock so the log's order is the order in
    /// which requests took their faults.
    schedule: Mutex<Schedule>,
    /// Signalled (with `schedule` locked in between, so no waiter misses it) whenever a counter
    /// changes; lets tests wait for "the stalled client got its bytes" without polling.
    changed: Condvar,
    requests: AtomicU64,
    complete_bodies: AtomicU64,
    bytes_served: AtomicU64,
}

#[derive(Debug)]
struct Schedule {
    plan: FaultPlan,
    served: Vec<Fault>,
    /// When each request of `served` took its fault (same order), for timelines.
    served_at: Vec<SystemTime>,
}

impl RouteHandle {
    pub(crate) fn new(route: Route) -> Self {
        let sha256 = hex::encode(Sha256::digest(&route.content));
        Self {
            inner: Arc::new(RouteState {
                path: route.path,
                content: route.content,
                sha256,
                headers: route.headers,
                model_id: route.model_id,
                schedule: Mutex::new(Schedule {
                    plan: route.plan,
                    served: Vec::new(),
                    served_at: Vec::new(),
                }),
                changed: Condvar::new(),
                requests: AtomicU64::new(0),
                complete_bodies: AtomicU64::new(0),
                bytes_served: AtomicU64::new(0),
            }),
        }
    }

    /// The path the route is served under.
    pub fn path(&self) -> &str {
        &self.inner.path
    }

    /// The model identity given with [`Route::model_id`].
    pub fn model_id(&self) -> Option<&str> {
        self.inner.model_id.as_deref()
    }

    /// The exact bytes a fault-free response carries.
    pub fn content(&self) -> &Bytes {
        &self.inner.content
    }

    /// Hex SHA-256 of [`RouteHandle::content`].
    pub fn sha256_hex(&self) -> &str {
        &self.inner.sha256
    }

    /// The `ETag` header value: the first 16 hex digits of the SHA-256, quoted.
    pub fn etag(&self) -> String {
        format!("\"{}\"", &self.inner.sha256[..16])
    }

    /// Extra headers sent on every response of this route.
    pub fn headers(&self) -> &[(String, String)] {
        &self.inner.headers
    }

    /// Replace the fault schedule; the next request takes the plan's first fault.
    pub fn set_schedule(&self, plan: FaultPlan) {
        self.lock_schedule().plan = plan;
    }

    /// Requests received for this route (GET and HEAD, whatever fault they got).
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }

    /// Full-length `200` GET bodies whose last byte was handed to the writer with correct framing
    /// ([`Fault::Ok`], [`Fault::Corrupt`], [`Fault::Chunked`], [`Fault::Gated`], ...). Partial
    /// bodies, range responses, HEAD and mis-framed responses never count: this is the download
    /// amplification figure. Counted before the connection writes its last bytes.
    pub fn complete_bodies(&self) -> u64 {
        self.inner.complete_bodies.load(Ordering::SeqCst)
    }

    /// Body bytes of this route sent, over all responses.
    ///
    /// Counted when a piece of body is handed to the connection's writer, just before it reaches
    /// the socket, so a client never holds bytes that are not counted yet; a client that leaves
    /// mid-body can leave the count up to one 64 KiB piece ahead of what reached its socket.
    /// Parked and stalled responses are counted once their bytes are on the wire.
    pub fn bytes_served(&self) -> u64 {
        self.inner.bytes_served.load(Ordering::SeqCst)
    }

    /// All counters at once.
    pub fn stats(&self) -> RouteStats {
        RouteStats {
            requests: self.requests(),
            complete_bodies: self.complete_bodies(),
            bytes_served: self.bytes_served(),
        }
    }

    /// Block until `condition` holds for the route's counters, or fail once `timeout` has passed
    /// with an error naming the route. `what` describes the condition in the error.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl FnMut(&RouteStats) -> bool,
    ) -> Result<RouteStats, RouteWaitError> {
        let deadline = Instant::now() + timeout;
        let guard = self.lock_schedule();
        crate::wait::until_deadline(&self.inner.changed, guard, deadline, |_| self.stats(), condition)
            .map_err(|last| RouteWaitError {
                path: self.inner.path.clone(),
                timeout,
                waiting_for: what.to_owned(),
                last,
            })
    }

    /// The fault each request got, in request order.
    pub fn served_faults(&self) -> Vec<Fault> {
        self.lock_schedule().served.clone()
    }

    /// The fault each request got, with the time it took it, in request order.
    pub fn served_faults_at(&self) -> Vec<(SystemTime, Fault)> {
        let schedule = self.lock_schedule();
        schedule.served_at.iter().copied().zip(schedule.served.iter().cloned()).collect()
    }

    /// Count a request and take its fault.
    pub(crate) fn next_fault(&self) -> Fault {
        let mut schedule = self.lock_schedule();
        self.inner.requests.fetch_add(1, Ordering::SeqCst);
        let fault = schedule.plan.next_fault();
        schedule.served.push(fault.clone());
        schedule.served_at.push(SystemTime::now());
        drop(schedule);
        self.inner.changed.notify_all();
        fault
    }

    /// Counts a HEAD request (it takes no plan entry) and returns the fault it gets: [`Fault::Ok`].
    pub(crate) fn count_head(&self) -> Fault {
        self.inner.requests.fetch_add(1, Ordering::SeqCst);
        self.inner.changed.notify_all();
        Fault::Ok
    }

    pub(crate) fn add_bytes_served(&self, n: u64) {
        self.inner.bytes_served.fetch_add(n, Ordering::SeqCst);
        self.notify();
    }

    pub(crate) fn add_complete_body(&self) {
        self.inner.complete_bodies.fetch_add(1, Ordering::SeqCst);
        self.notify();
    }

    /// Wake [`RouteHandle::wait_until`] callers. Taking the lock orders this after any waiter's
    /// check, so a waiter is either already waiting (and woken) or will see the new value.
    fn notify(&self) {
        drop(self.lock_schedule());
        self.inner.changed.notify_all();
    }

    fn lock_schedule(&self) -> MutexGuard<'_, Schedule> {
        self.inner.schedule.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A snapshot of a route's counters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RouteStats {
    /// See [`RouteHandle::requests`].
    pub requests: u64,
    /// See [`RouteHandle::complete_bodies`].
    pub complete_bodies: u64,
    /// See [`RouteHandle::bytes_served`].
    pub bytes_served: u64,
}

/// [`RouteHandle::wait_until`]'s deadline expired.
#[derive(Debug, thiserror::Error)]
#[error(
    "route `{path}`: condition not met within {timeout:?} (watchdog): {waiting_for}; last counters {last:?}"
)]
pub struct RouteWaitError {
    /// Path of the route.
    pub path: String,
    /// The deadline that expired.
    pub timeout: Duration,
    /// What the caller was waiting for.
    pub waiting_for: String,
    /// The counters when the deadline expired.
    pub last: RouteStats,
}
