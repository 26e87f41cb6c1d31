//! The bounded wait the test-side handles ([`crate::Gate`], [`crate::RouteHandle`]) offer: block on a
//! condition variable until a condition holds for what the server has done so far, or a deadline passes.

use std::sync::{Condvar, MutexGuard, PoisonError};
use std::time::Instant;

/// Waits on `changed` (holding `guard` between checks) until `condition` holds for what `observe` reads,
/// or `deadline` passes: `Ok` with the observation that held, `Err` with the last one.
pub(crate) fn until_deadline<T, S>(
    changed: &Condvar,
    mut guard: MutexGuard<'_, T>,
    deadline: Instant,
    mut observe: impl FnMut(&T) -> S,
    mut condition: impl FnMut(&S) -> bool,
) -> Result<S, S> {
    // Bounded by the deadline: every iteration either returns or waits for at most the time left, and
    // `Instant` is monotonic.
    loop {
        let seen = observe(&guard);
        if condition(&seen) {
            return Ok(seen);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(seen);
        }
        guard = changed.wait_timeout(guard, deadline - now).unwrap_or_else(PoisonError::into_inner).0;
    }
}
