//! Gates: responses park at a chosen point until the test releases them, so overlap between
//! processes is forced by events instead of sleeps.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::watch;

/// A release condition checked on every gate event; see [`Gate::release_when`].
type Predicate = Box<dyn Fn(&GateSnapshot) -> bool + Send + Sync>;

/// Numbers the gates made with [`Gate::new`] so errors can still name them.
static NEXT_GATE: AtomicU64 = AtomicU64::new(1);

/// A point-in-time view of a gate.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct GateSnapshot {
    /// Responses that reached the gate so far (parked or passed straight through).
    pub arrivals: u64,
    /// Responses waiting at the gate right now.
    pub parked: u64,
    /// Whether the gate is open.
    pub released: bool,
}

/// A gate's watchdog deadline expired.
#[derive(Debug, thiserror::Error)]
#[error(
    "gate `{gate}`: condition not met within {timeout:?} (watchdog): {waiting_for}; \
     arrivals={}, parked={}, released={}",
    .last.arrivals, .last.parked, .last.released
)]
pub struct GateError {
    /// Name of the gate.
    pub gate: String,
    /// The deadline that expired.
    pub timeout: Duration,
    /// What the caller was waiting for.
    pub waiting_for: String,
    /// The gate's state when the deadline expired.
    pub last: GateSnapshot,
}

/// A shared barrier for responses: every [`Fault::Gated`](super::Fault::Gated) response that
/// reaches it is counted and parked until [`Gate::release`] opens it; all parked responses then
/// continue at once, and later arrivals pass straight through (still counted).
///
/// Cloning gives another handle to the same gate. The test side is blocking (`Condvar`); the
/// server side waits on a `tokio::sync::watch` channel, so neither side polls or sleeps.
#[derive(Clone)]
pub struct Gate {
    inner: Arc<Inner>,
}

struct Inner {
    name: String,
    state: Mutex<GateSnapshot>,
    /// Wakes blocking waiters in [`Gate::wait_until`] on every arrival, departure and release.
    changed: Condvar,
    /// `true` once released; parked server tasks wait for it.
    open: watch::Sender<bool>,
    predicate: Mutex<Option<Predicate>>,
}

impl Gate {
    /// A closed gate named `gate-<n>`.
    pub fn new() -> Self {
        Self::named(format!("gate-{}", NEXT_GATE.fetch_add(1, Ordering::Relaxed)))
    }

    /// A closed gate with a name that error messages use.
    pub fn named(name: impl Into<String>) -> Self {
        let (open, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                name: name.into(),
                state: Mutex::new(GateSnapshot { arrivals: 0, parked: 0, released: false }),
                changed: Condvar::new(),
                open,
                predicate: Mutex::new(None),
            }),
        }
    }

    /// The gate's name.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The current counts.
    pub fn snapshot(&self) -> GateSnapshot {
        *self.lock_state()
    }

    /// Responses that reached the gate so far.
    pub fn arrivals(&self) -> u64 {
        self.snapshot().arrivals
    }

    /// Responses waiting at the gate right now.
    pub fn parked(&self) -> u64 {
        self.snapshot().parked
    }

    /// Whether the gate has been released.
    pub fn is_released(&self) -> bool {
        self.snapshot().released
    }

    /// Open the gate: every parked response continues, later arrivals do not wait.
    pub fn release(&self) {
        {
            let mut state = self.lock_state();
            state.released = true;
        }
        self.inner.open.send_replace(true);
        self.inner.changed.notify_all();
    }

    /// Release the gate as soon as `predicate` holds. It is checked now, on every arrival, and on
    /// [`Gate::reevaluate`] — call that when something outside the gate changed (e.g. another
    /// process blocked on a lock), so an orchestrator can say "release when every live process is
    /// parked here or waiting for a lock". Replaces an earlier predicate.
    ///
    /// The predicate runs without the gate's state lock held, so it may call [`Gate::snapshot`].
    pub fn release_when(&self, predicate: impl Fn(&GateSnapshot) -> bool + Send + Sync + 'static) {
        *self.inner.predicate.lock().unwrap_or_else(PoisonError::into_inner) = Some(Box::new(predicate));
        self.reevaluate();
    }

    /// Check the [`Gate::release_when`] predicate now and release if it holds.
    pub fn reevaluate(&self) {
        let snapshot = self.snapshot();
        if snapshot.released {
            return;
        }
        let holds = self
            .inner
            .predicate
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .is_some_and(|predicate| predicate(&snapshot));
        if holds {
            self.release();
        }
    }

    /// Block until at least `n` responses have arrived at the gate (before a release, every
    /// arrival is parked), or fail once `timeout` has passed with an error naming the gate.
    pub fn wait_arrivals(&self, n: u64, timeout: Duration) -> Result<GateSnapshot, GateError> {
        self.wait_until(timeout, &format!("{n} arrivals"), |s| s.arrivals >= n)
    }

    /// Block until `condition` holds for the gate's state, or fail once `timeout` has passed.
    /// `what` describes the condition in the error.
    pub fn wait_until(
        &self,
        timeout: Duration,
        what: &str,
        condition: impl FnMut(&GateSnapshot) -> bool,
    ) -> Result<GateSnapshot, GateError> {
        let deadline = Instant::now() + timeout;
        let state = self.lock_state();
        crate::wait::until_deadline(&self.inner.changed, state, deadline, |s| *s, condition).map_err(|last| {
            GateError { gate: self.inner.name.clone(), timeout, waiting_for: what.to_owned(), last }
        })
    }

    /// Server side: count an arrival and wait until the gate is open. Cancel-safe: a response
    /// dropped while parked (server shutdown) is no longer counted as parked.
    pub(crate) async fn pass(&self) {
        let parked = {
            let mut state = self.lock_state();
            state.arrivals += 1;
            if !state.released {
                state.parked += 1;
            }
            !state.released
        };
        self.inner.changed.notify_all();
        if !parked {
            return;
        }
        let _departure = Departure(self);
        self.reevaluate();
        let mut open = self.inner.open.subscribe();
        // `wait_for` checks the current value first, so a release between the count above and
        // this subscription is not missed. It only fails if the sender is gone, which cannot
        // happen while `self` holds it.
        let _ = open.wait_for(|open| *open).await;
    }

    fn lock_state(&self) -> MutexGuard<'_, GateSnapshot> {
        // A panicking test thread must not turn every later gate call into a second panic.
        self.inner.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Default for Gate {
    fn default() -> Self {
        Self::new()
    }
}

/// Un-parks a response when its wait ends, normally or by cancellation.
struct Departure<'a>(&'a Gate);

impl Drop for Departure<'_> {
    fn drop(&mut self) {
        self.0.lock_state().parked -= 1;
        self.0.inner.changed.notify_all();
    }
}

impl fmt::Debug for Gate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self.snapshot();
        f.debug_struct("Gate")
            .field("name", &self.inner.name)
            .field("arrivals", &s.arrivals)
            .field("parked", &s.parked)
            .field("released", &s.released)
            .finish()
    }
}

/// Two handles are equal when they refer to the same gate.
impl PartialEq for Gate {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.inner, &other.inner)
    }
}

impl Eq for Gate {}
