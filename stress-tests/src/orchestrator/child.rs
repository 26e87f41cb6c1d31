//! One child of a fleet after the start: the thread that reaps it, and the watchdog that kills the
//! process group of what outlives the deadline.

use super::*;

pub(super) fn kill_group(pid: u32) {
    if pid == 0 {
        return;
    }
    // SAFETY: plain syscalls; the pid is our own child (not yet reaped, so not reused).
    unsafe {
        libc::killpg(pid as libc::pid_t, libc::SIGKILL);
        libc::kill(pid as libc::pid_t, libc::SIGKILL);
    }
}

pub(super) fn reap(pid: u32) -> (Option<i32>, Option<i32>, Option<u64>) {
    for _ in 0..10_000 {
        let mut status = 0;
        // SAFETY: rusage is plain data; wait4 fills it.
        let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
        // SAFETY: waiting on our own child.
        let rc = unsafe { libc::wait4(pid as libc::pid_t, &mut status, 0, &mut usage) };
        if rc == pid as libc::pid_t {
            let rss = Some(usage.ru_maxrss.max(0) as u64);
            if libc::WIFEXITED(status) {
                return (Some(libc::WEXITSTATUS(status)), None, rss);
            }
            if libc::WIFSIGNALED(status) {
                return (None, Some(libc::WTERMSIG(status)), rss);
            }
            continue;
        }
        if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            break;
        }
    }
    (None, None, None)
}

pub(super) fn run_one(
    shared: Arc<Shared>,
    index: usize,
    role: String,
    mut command: Command,
    (stdout_path, stderr_path): (PathBuf, PathBuf),
    observe_printed_path: Option<PathBuf>,
) {
    let spawned = command.spawn();
    let mut outcome = ProcessOutcome {
        index,
        role,
        pid: 0,
        exit_code: None,
        signal: None,
        hung: false,
        wall: Duration::ZERO,
        started_unix_ms: 0,
        peak_rss_kb: None,
        stdout_path,
        stderr_path,
        spawn_error: None,
        printed_path: None,
    };
    match spawned {
        Ok(child) => {
            let pid = child.id();
            drop(child);
            outcome.pid = pid;
            let (code, signal, rss) = reap(pid);
            outcome.exit_code = code;
            outcome.signal = signal;
            outcome.peak_rss_kb = rss;
            // At once, before the outcome is published: what the path held when the process said so.
            if let (Some(cwd), Some(0)) = (&observe_printed_path, code) {
                outcome.printed_path = Some(PrintedPath::observe(&outcome.stdout_path, cwd));
            }
        }
        Err(e) => {
            outcome.spawn_error = Some(e.to_string());
        }
    }
    let mut state = shared.lock();
    if outcome.pid == 0 {
        outcome.pid = state.pids[index];
    }
    outcome.wall = state.released_at.map(|t| t.elapsed()).unwrap_or_default();
    outcome.hung = state.hung.contains(&index);
    state.outcomes[index] = Some(outcome);
    drop(state);
    shared.changed.notify_all();
}

pub(super) fn watchdog(shared: Arc<Shared>, deadline: Duration) {
    let end = Instant::now() + deadline;
    let mut state = shared.lock();
    for _ in 0..1_000_000 {
        if state.stop_watchdog || state.outcomes.iter().all(Option::is_some) {
            return;
        }
        let now = Instant::now();
        if now >= end {
            break;
        }
        state = shared.changed.wait_timeout(state, end - now).unwrap_or_else(|p| p.into_inner()).0;
    }
    if state.stop_watchdog {
        return;
    }
    let unfinished: Vec<(usize, u32)> = state
        .outcomes
        .iter()
        .enumerate()
        .filter(|(_, o)| o.is_none())
        .map(|(i, _)| (i, state.pids[i]))
        .collect();
    for (index, pid) in unfinished {
        state.hung.insert(index);
        state.event(EventKind::Sigkill, pid, "watchdog: still running at the deadline");
        log::warn!(
            "watchdog: pid {pid} (#{index}) still running after {deadline:?}; killing its process group"
        );
        kill_group(pid);
    }
}
