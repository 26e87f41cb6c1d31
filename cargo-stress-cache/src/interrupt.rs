//! Interruption: SIGINT or SIGTERM ends a run early, and "interrupted" is its own verdict (exit 130),
//! never a pass of what did not run.
//!
//! The CLI stays in its caller's process group with the children it runs (cargo, nextest), so a
//! terminal's Ctrl-C — SIGINT to the whole foreground process group — reaches nextest directly, and
//! nextest cancels its tests itself. `kill PID` (SIGTERM) reaches this process alone, so it is forwarded
//! to the child. Either way the child is waited for, within bounds: a SIGINT the child did not get
//! after all (`kill -INT PID`) is followed by a forwarded SIGTERM after [`Grace::group_signal`], and a
//! child still running [`Grace::terminate`] after a SIGTERM is killed.
//!
//! The signal handler only sets a flag (signal-hook's `flag` API, so [`Interrupt::requested`] is true
//! as soon as the handler ran); signal-hook's iterator wakes a thread that does the rest. A child's exit
//! is observed by `waitid(WNOWAIT)` on another thread, so a child is never reaped while it may still be
//! signalled (its pid cannot be reused under us).

use std::fmt;
use std::process::{Child, ExitStatus};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use signal_hook::SigId;
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::{Handle, Signals};

/// How long to wait for a child after a signal.
#[derive(Debug, Clone, Copy)]
pub struct Grace {
    /// After a SIGINT the child presumably got too: longer than nextest's own grace period for
    /// its tests (10 s), so a forwarded SIGTERM never cuts nextest's clean-up short.
    pub group_signal: Duration,
    /// After a SIGTERM was forwarded, before SIGKILL. nextest then terminates its tests (SIGTERM, then
    /// SIGKILL after its grace period) and writes its reports.
    pub terminate: Duration,
}

impl Default for Grace {
    fn default() -> Self {
        Grace { group_signal: Duration::from_secs(15), terminate: Duration::from_secs(30) }
    }
}

enum Event {
    /// A signal.
    Signal(i32),
    /// The child with this pid exited (not yet reaped).
    Exited(u32),
}

/// The signal handling of one CLI invocation: installed once, before the first child is started.
pub struct Interrupt {
    /// The last SIGINT/SIGTERM received (0: none), set by the signal handler itself.
    received: Arc<AtomicUsize>,
    events: Mutex<Receiver<Event>>,
    sender: Sender<Event>,
    handle: Handle,
    flags: Vec<SigId>,
    grace: Grace,
}

/// How a child ended, and whether a signal asked this process to stop meanwhile (or before).
#[derive(Debug)]
pub struct Waited {
    /// The child's exit status.
    pub status: ExitStatus,
    /// The SIGINT/SIGTERM this process received, if any (the last one, if several).
    pub signal: Option<i32>,
}

/// The runner's builds wait through the invocation's signal handling: a Ctrl-C during the build is
/// forwarded to cargo and ends the run as interrupted.
impl stress_cache_runner::build::WaitChild for Interrupt {
    fn wait_child(&self, child: &mut Child, what: &str) -> std::io::Result<(ExitStatus, Option<i32>)> {
        self.wait(child, what).map(|w| (w.status, w.signal))
    }
}

impl Interrupt {
    /// Catches SIGINT and SIGTERM from now on.
    pub fn install(grace: Grace) -> std::io::Result<Self> {
        let received = Arc::new(AtomicUsize::new(0));
        let mut flags = Vec::new();
        for signal in [SIGINT, SIGTERM] {
            flags.push(signal_hook::flag::register_usize(signal, Arc::clone(&received), signal as usize)?);
        }
        let mut signals = Signals::new([SIGINT, SIGTERM])?;
        let handle = signals.handle();
        let (sender, events) = mpsc::channel();
        let forward = sender.clone();
        std::thread::Builder::new().name("signals".into()).spawn(move || {
            for signal in signals.forever() {
                if forward.send(Event::Signal(signal)).is_err() {
                    break;
                }
            }
        })?;
        Ok(Interrupt { received, events: Mutex::new(events), sender, handle, flags, grace })
    }

    /// The signal received, if any: checked before every stage, so nothing new starts after it.
    pub fn requested(&self) -> Option<i32> {
        match self.received.load(Ordering::SeqCst) {
            0 => None,
            signal => i32::try_from(signal).ok(),
        }
    }

    /// Waits for `child`, just started, forwarding and escalating signals as the module documentation
    /// says. `what` names the child in log lines.
    pub fn wait(&self, child: &mut Child, what: &str) -> std::io::Result<Waited> {
        let [waited] = self.wait_all([(child, what)])?;
        Ok(waited)
    }

    /// Waits for every one of `children`, all just started and running at once, forwarding and
    /// escalating signals to each still running as [`Interrupt::wait`] does for one.
    pub fn wait_all<const N: usize>(
        &self,
        mut children: [(&mut Child, &str); N],
    ) -> std::io::Result<[Waited; N]> {
        // A signal already received could not have reached a child started after it (callers check
        // before starting one, so this is the narrow window in between).
        let mut came_before_start = self.requested().is_some();
        let pids: Vec<u32> = children.iter().map(|(child, _)| child.id()).collect();
        for &pid in &pids {
            let exited = self.sender.clone();
            std::thread::Builder::new().name("child-exit".into()).spawn(move || {
                wait_exited(pid);
                let _ = exited.send(Event::Exited(pid));
            })?;
        }
        let mut running: Vec<bool> = vec![true; pids.len()];
        // The signal received by the time each child's exit was seen: a child that ended before a
        // signal finished its work, whatever stopped its sibling later. (The flag, not the order of
        // events: a child killed by a group SIGINT may report its exit before the signal thread does.)
        let mut signal_at_exit: Vec<Option<i32>> = vec![None; pids.len()];
        let events = self.events.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // The next step if a child is still running at that instant.
        let mut deadline: Option<(Instant, Escalation)> = None;
        // Bounded by the children's lives: every iteration consumes an event or escalates towards SIGKILL.
        while running.iter().any(|r| *r) {
            let event = match deadline {
                Some((at, _)) => events.recv_timeout(at.saturating_duration_since(Instant::now())),
                None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
            };
            let still: Vec<(u32, &str)> = pids
                .iter()
                .zip(children.iter())
                .zip(&running)
                .filter(|(_, r)| **r)
                .map(|((pid, (_, what)), _)| (*pid, *what))
                .collect();
            match event {
                Ok(Event::Exited(p)) => {
                    if let Some(i) = pids.iter().position(|&pid| pid == p) {
                        running[i] = false;
                        signal_at_exit[i] = self.requested();
                        // From here on a signal no longer counts against this child's result (said
                        // when another child runs on: the self-check ending beside the scenarios).
                        if running.iter().any(|r| *r) {
                            log::info!("{} exited; the rest runs on", children[i].1);
                        }
                    }
                }
                Ok(Event::Signal(signal)) => {
                    // A SIGINT that came after the children started went to the whole process group,
                    // the children included; anything else reached this process alone.
                    if signal == SIGINT && !std::mem::take(&mut came_before_start) {
                        for (_, what) in &still {
                            log::warn!("{}: waiting for {what} to stop", signal_name(signal));
                        }
                        deadline =
                            deadline.or(Some((Instant::now() + self.grace.group_signal, Escalation::Term)));
                    } else {
                        for (pid, what) in &still {
                            log::warn!("{}: forwarding SIGTERM to {what} (pid {pid})", signal_name(signal));
                            send(*pid, SIGTERM);
                        }
                        deadline = Some((Instant::now() + self.grace.terminate, Escalation::Kill));
                    }
                }
                Err(RecvTimeoutError::Timeout) => match deadline.map(|(_, step)| step) {
                    Some(Escalation::Term) => {
                        for (pid, what) in &still {
                            log::warn!(
                                "{what} still running {:?} after SIGINT: sending it SIGTERM",
                                self.grace.group_signal
                            );
                            send(*pid, SIGTERM);
                        }
                        deadline = Some((Instant::now() + self.grace.terminate, Escalation::Kill));
                    }
                    Some(Escalation::Kill) | None => {
                        for (pid, what) in &still {
                            log::warn!(
                                "{what} still running {:?} after SIGTERM: killing it (its own children may \
                                 outlive it)",
                                self.grace.terminate
                            );
                            send(*pid, libc::SIGKILL);
                        }
                        deadline = None;
                    }
                },
                // Unreachable while `self` holds a sender; waiting plainly is still right.
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        drop(events);
        let mut waited = Vec::with_capacity(children.len());
        for ((child, _), (still_running, signal)) in
            children.iter_mut().zip(running.iter().zip(signal_at_exit))
        {
            let status = child.wait()?;
            // Left the loop without its exit event (unreachable, see above): the signal as of now.
            let signal = if *still_running { self.requested() } else { signal };
            waited.push(Waited { status, signal });
        }
        // One status per child, pushed in order above.
        waited.try_into().map_err(|_| std::io::Error::other("a child's status is missing"))
    }
}

impl Drop for Interrupt {
    fn drop(&mut self) {
        // Ends the signal thread, which unregisters its handlers.
        self.handle.close();
        for id in self.flags.drain(..) {
            signal_hook::low_level::unregister(id);
        }
    }
}

#[derive(Debug, Clone, Copy)]
enum Escalation {
    Term,
    Kill,
}

/// Blocks until the child `pid` has exited, without reaping it.
fn wait_exited(pid: u32) {
    // Bounded: EINTR is the only retry, and it needs a signal per iteration.
    for _ in 0..1_000_000 {
        // SAFETY: `info` is a valid, writable siginfo_t; waitid only writes into it.
        let rc = unsafe {
            let mut info: libc::siginfo_t = std::mem::zeroed();
            libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT)
        };
        if rc == 0 || std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return;
        }
    }
}

/// Sends `signal` to `pid`, a child not yet reaped (so the pid is still its own).
fn send(pid: u32, signal: i32) {
    // SAFETY: kill(2) has no memory effects; the pid is our unreaped child's.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

/// `SIGINT`, `SIGTERM`, ... for log lines and records.
pub fn signal_name(signal: i32) -> String {
    match signal {
        SIGINT => "SIGINT".into(),
        SIGTERM => "SIGTERM".into(),
        libc::SIGKILL => "SIGKILL".into(),
        libc::SIGHUP => "SIGHUP".into(),
        other => format!("signal {other}"),
    }
}

/// Why a run stopped early.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Cause {
    /// This process received a signal (`SIGINT`, `SIGTERM`).
    Signal {
        /// Its name.
        signal: String,
    },
    /// nextest cancelled the run itself (it was signalled directly): some selected tests never ran.
    NextestCancelled,
    /// nextest was killed by a signal.
    NextestKilled {
        /// Its name.
        signal: String,
    },
}

impl fmt::Display for Cause {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Cause::Signal { signal } => write!(f, "{signal}"),
            Cause::NextestCancelled => f.write_str("nextest cancelling the run"),
            Cause::NextestKilled { signal } => write!(f, "nextest being killed by {signal}"),
        }
    }
}

/// A run that stopped early: what stopped it, when, and what had completed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interruption {
    /// What stopped it.
    pub cause: Cause,
    /// The stage it stopped in (`repeat 1/3`, `the self-check`, ...).
    pub during: String,
    /// Scenario records written by then, in the stage that was interrupted.
    pub records: usize,
    /// Scenario tests selected per repeat, when known.
    pub scenarios: Option<usize>,
    /// Repeats that ran to the end.
    pub repeats_complete: u32,
    /// Repeats asked for.
    pub repeats: u32,
}

impl fmt::Display for Interruption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "INTERRUPTED by {} during {}: ", self.cause, self.during)?;
        match self.scenarios {
            Some(n) => write!(f, "{} of {n} scenario records", self.records)?,
            None => write!(f, "{} scenario records", self.records)?,
        }
        write!(f, ", {} of {} repeats complete", self.repeats_complete, self.repeats)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    use std::process::Command;

    use super::*;

    // Signals are process-wide: these tests must not overlap inside one test process.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn quick() -> Grace {
        Grace { group_signal: Duration::from_millis(300), terminate: Duration::from_millis(300) }
    }

    /// A child in its own process group (so no signal meant for this test process reaches it by
    /// accident) that ignores `ignored` signals.
    fn child(ignored: &str) -> Child {
        let script = format!("trap '' {ignored}; exec sleep 60");
        Command::new("sh").args(["-c", &script]).process_group(0).spawn().expect("sh")
    }

    /// Waits for `child` while `signal` reaches this process (and, with `to_child`, the child too, as a
    /// terminal's Ctrl-C does) strictly during the wait: a helper thread raises it once `wait` holds
    /// its event lock, which it takes before reading its first event.
    fn wait_with_signal_during(
        interrupt: &Interrupt,
        child: &mut Child,
        signal: i32,
        to_child: bool,
    ) -> Waited {
        let pid = child.id();
        std::thread::scope(|scope| {
            scope.spawn(|| {
                let deadline = Instant::now() + Duration::from_secs(10);
                while interrupt.events.try_lock().is_ok() && Instant::now() < deadline {
                    std::thread::yield_now();
                }
                signal_hook::low_level::raise(signal).unwrap();
                if to_child {
                    send(pid, signal);
                }
            });
            interrupt.wait(child, "sh").unwrap()
        })
    }

    #[test]
    fn sigterm_to_the_cli_alone_is_forwarded_to_the_child_at_once() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(Grace::default()).unwrap();
        let mut child = child("INT");
        let started = Instant::now();
        let waited = wait_with_signal_during(&interrupt, &mut child, SIGTERM, false);
        assert_eq!(waited.status.signal(), Some(SIGTERM), "{:?}", waited.status);
        assert_eq!(waited.signal, Some(SIGTERM));
        assert!(started.elapsed() < Grace::default().group_signal, "not forwarded at once");
    }

    #[test]
    fn sigint_to_the_group_is_left_to_the_child() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(Grace::default()).unwrap();
        // A forwarded SIGTERM would be ignored, and the child would die of the SIGKILL much later.
        let mut child = child("TERM");
        let waited = wait_with_signal_during(&interrupt, &mut child, SIGINT, true);
        assert_eq!(waited.status.signal(), Some(SIGINT), "{:?}", waited.status);
        assert_eq!(waited.signal, Some(SIGINT));
    }

    #[test]
    fn a_child_that_missed_the_sigint_gets_sigterm_after_the_group_grace() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(quick()).unwrap();
        let mut child = child("HUP");
        let started = Instant::now();
        let waited = wait_with_signal_during(&interrupt, &mut child, SIGINT, false);
        assert_eq!(waited.status.signal(), Some(SIGTERM), "{:?}", waited.status);
        assert!(
            started.elapsed() >= quick().group_signal,
            "forwarded before the grace: {:?}",
            started.elapsed()
        );
    }

    #[test]
    fn a_child_that_ignores_sigint_and_sigterm_is_killed_within_the_bounds() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(quick()).unwrap();
        let mut child = child("INT TERM");
        let started = Instant::now();
        // Not sent to the child: its shell may not have set its traps yet; the forwarded SIGTERM comes
        // a grace period later, when it has.
        let waited = wait_with_signal_during(&interrupt, &mut child, SIGINT, false);
        assert_eq!(waited.status.signal(), Some(libc::SIGKILL), "{:?}", waited.status);
        let took = started.elapsed();
        assert!(
            took >= quick().group_signal + quick().terminate && took < Duration::from_secs(20),
            "{took:?}"
        );
    }

    #[test]
    fn a_signal_before_the_child_started_is_forwarded_at_once() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(Grace::default()).unwrap();
        signal_hook::low_level::raise(SIGINT).unwrap();
        assert_eq!(interrupt.requested(), Some(SIGINT), "set by the handler, before raise returns");
        let mut child = child("INT");
        let started = Instant::now();
        let waited = interrupt.wait(&mut child, "sleep").unwrap();
        assert_eq!(waited.status.signal(), Some(SIGTERM), "{:?}", waited.status);
        assert!(started.elapsed() < Grace::default().group_signal, "not forwarded at once");
    }

    #[test]
    fn without_a_signal_the_child_is_just_waited_for() {
        let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
        let interrupt = Interrupt::install(Grace::default()).unwrap();
        let mut child = Command::new("sh").args(["-c", "exit 3"]).spawn().unwrap();
        let waited = interrupt.wait(&mut child, "sh").unwrap();
        assert_eq!((waited.status.code(), waited.signal), (Some(3), None));
    }

    #[test]
    fn the_interruption_line_says_what_completed() {
        let interruption = Interruption {
            cause: Cause::Signal { signal: "SIGINT".into() },
            during: "repeat 1/1".into(),
            records: 12,
            scenarios: Some(32),
            repeats_complete: 0,
            repeats: 1,
        };
        assert_eq!(
            interruption.to_string(),
            "INTERRUPTED by SIGINT during repeat 1/1: 12 of 32 scenario records, 0 of 1 repeats complete"
        );
    }
}
