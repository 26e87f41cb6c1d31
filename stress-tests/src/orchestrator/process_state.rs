//! What `/proc` says about a process's state: stopped by a signal, asleep waiting for input, its state
//! letter.

/// Whether `pid` is in a job-control stop: a `SIGSTOP` took effect (a pause failpoint's own, or the
/// harness's) and no `SIGCONT` came since.
///
/// Under the file-system tracer a process shows state `t` both in such a stop and at every traced
/// syscall; the tracer traces no `kill`/`tkill`/`tgkill` when it runs with its seccomp filter, so a `t`
/// inside one of those (a process that raised SIGSTOP on itself) or outside any syscall (stopped from
/// outside) is the job-control stop, and a `t` inside any other syscall (a `close` after which the
/// tracer injects a stop, see `holds`) is the tracer at work. Without the filter the tracer also stops
/// at the entry of `tgkill`, before the signal takes effect: a `SIGCONT` sent then is lost, and the
/// process stops for good right after. So for a child of this process (every fleet process is one:
/// the tracer is a detached grandchild) the kernel must agree: `waitid(WSTOPPED | WNOWAIT)` reports a
/// completed group stop to the real parent even while another process traces the child, never a
/// tracer's syscall stop, and `WNOWAIT` leaves the report for the next look.
pub fn is_job_stopped(pid: u32) -> bool {
    let looks_stopped = match proc_state(pid) {
        Some('T') => true,
        Some('t') => current_syscall(pid).is_some_and(|nr| {
            nr == -1 || nr == libc::SYS_kill || nr == libc::SYS_tkill || nr == libc::SYS_tgkill
        }),
        _ => false,
    };
    looks_stopped && group_stop_reported(pid) != Some(false)
}

/// What `waitid` reports of `pid`'s group stop: `None` when `pid` is not a child of this process.
fn group_stop_reported(pid: u32) -> Option<bool> {
    // SAFETY: siginfo_t is plain data; waitid fills it or leaves it zeroed (WNOHANG, nothing to report).
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let flags = libc::WSTOPPED | libc::WNOHANG | libc::WNOWAIT;
    // SAFETY: a non-blocking query about one pid; WNOWAIT consumes nothing.
    let rc = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, flags) };
    if rc != 0 {
        return None;
    }
    // SAFETY: si_pid is set by waitid when it reports a child (zero when it reports nothing).
    Some(unsafe { info.si_pid() } == pid as libc::pid_t)
}

/// The syscall `pid` is in or stopped after, as `/proc/<pid>/syscall` numbers it (`-1`: none); `None`
/// while it runs.
pub fn current_syscall(pid: u32) -> Option<i64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/syscall")).ok()?;
    text.split_whitespace().next()?.parse().ok()
}

/// Whether every thread of `pid` is asleep waiting for input: in `read`/`recv*` or a readiness wait
/// (`poll`, `select`, `epoll_wait`), or on a futex (a thread waiting for another one that does). A process
/// whose download is parked at a server gate ends up here once it has handled every byte it was sent —
/// whether it streams to disk or buffers in memory — so this is the event "it can make no more progress",
/// without guessing how long that takes.
pub fn blocked_waiting_for_input(pid: u32) -> bool {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return false };
    let waits = [
        libc::SYS_read,
        libc::SYS_recvfrom,
        libc::SYS_recvmsg,
        libc::SYS_poll,
        libc::SYS_ppoll,
        libc::SYS_select,
        libc::SYS_pselect6,
        libc::SYS_epoll_wait,
        libc::SYS_epoll_pwait,
        libc::SYS_futex,
    ];
    let mut any = false;
    for task in tasks.flatten().take(1024) {
        let path = task.path();
        let state = std::fs::read_to_string(path.join("stat")).ok().and_then(|stat| {
            let after = stat.rfind(')').map(|i| stat[i + 1..].to_string())?;
            after.split_whitespace().next()?.chars().next()
        });
        if state != Some('S') {
            return false;
        }
        let nr = std::fs::read_to_string(path.join("syscall"))
            .ok()
            .and_then(|s| s.split_whitespace().next().and_then(|n| n.parse::<i64>().ok()));
        if !nr.is_some_and(|nr| waits.contains(&nr)) {
            return false;
        }
        any = true;
    }
    any
}

/// The state letter of `/proc/<pid>/stat` (`R`, `S`, `T`, `t`, `Z`, ...).
pub fn proc_state(pid: u32) -> Option<char> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().next()?.chars().next()
}
