//! What `/proc` says about a process's state: stopped by a signal, asleep waiting for input, its state
//! letter.

/// Whether `pid` is stopped by a stop signal (job-control stop). Under the file-system tracer a process
/// shows state `t` both in such a stop and, for microseconds, at every traced syscall; the tracer traces
/// no `kill`/`tkill`/`tgkill`, so a `t` stop inside one of those (a process that raised SIGSTOP on
/// itself, as a pause failpoint does) or outside any syscall (stopped from outside) is the job-control
/// stop, and a `t` inside any other syscall is the tracer at work.
pub fn is_job_stopped(pid: u32) -> bool {
    match proc_state(pid) {
        Some('T') => true,
        Some('t') => {
            let Ok(text) = std::fs::read_to_string(format!("/proc/{pid}/syscall")) else { return false };
            match text.split_whitespace().next() {
                Some("-1") => true,
                Some(nr) => nr
                    .parse::<i64>()
                    .is_ok_and(|nr| nr == libc::SYS_kill || nr == libc::SYS_tkill || nr == libc::SYS_tgkill),
                None => false,
            }
        }
        _ => false,
    }
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
