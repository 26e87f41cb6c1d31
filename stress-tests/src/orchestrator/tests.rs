use super::*;

fn sh(script: &str) -> FleetProcess {
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    FleetProcess::new("sh", c)
}

/// A fleet of `first` (a script that stops itself) beside a sleeper, once the first is seen stopped.
fn first_stopped(dir: &std::path::Path, first: &str) -> (Fleet, Vec<u32>) {
    let fleet = Fleet::start(dir, vec![sh(first), sh("exec sleep 1000")], Duration::from_secs(30)).unwrap();
    let pids = fleet.pids();
    assert!(fleet.wait_until(|f| f.is_stopped(pids[0]), Duration::from_secs(10)), "never stopped");
    (fleet, pids)
}

/// A cache dir whose `m.onnx.lock` this process holds exclusively, and a `flock` command that will
/// wait for it.
fn lock_held_with_a_waiter() -> (tempfile::TempDir, std::path::PathBuf, std::fs::File, Command) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).unwrap();
    let lock = cache.join("m.onnx.lock");
    let held = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(&lock).unwrap();
    held.lock().unwrap();
    let mut waiter = Command::new("flock");
    waiter.arg(&lock).arg("true");
    (dir, cache, held, waiter)
}

fn exists(pid: u32) -> bool {
    // SAFETY: signal 0 only probes.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

#[test]
fn records_exit_codes_signals_output_and_rss() {
    let dir = tempfile::tempdir().unwrap();
    let mut fleet = Fleet::start(
        dir.path(),
        vec![sh("echo out; echo err >&2; exit 3"), sh("kill -9 $$"), sh("exit 0")],
        Duration::from_secs(20),
    )
    .unwrap();
    let outcomes = fleet.wait();
    assert_eq!(outcomes.len(), 3);
    assert_eq!(outcomes[0].exit_code, Some(3));
    assert_eq!(outcomes[0].stdout().trim(), "out");
    assert_eq!(outcomes[0].stderr().trim(), "err");
    assert_eq!(outcomes[1].signal, Some(9));
    assert_eq!(outcomes[1].exit_code, None);
    assert_eq!(outcomes[2].exit_code, Some(0));
    assert!(outcomes.iter().all(|o| !o.hung && o.peak_rss_kb.unwrap_or(0) > 0 && o.pid != 0));
}

/// All processes are released together: each records the time it started; the spread is far below
/// the time it takes to fork them one by one.
#[test]
fn processes_start_at_the_same_instant() {
    let dir = tempfile::tempdir().unwrap();
    let n = 12;
    let processes = (0..n).map(|_| sh("date +%s%N")).collect();
    let mut fleet = Fleet::start(dir.path(), processes, Duration::from_secs(20)).unwrap();
    let released_ns = u128::from(fleet.released_unix_ms()) * 1_000_000;
    let outcomes = fleet.wait();
    let starts: Vec<u128> = outcomes.iter().map(|o| o.stdout().trim().parse().unwrap()).collect();
    assert!(starts.iter().all(|s| *s + 5_000_000 >= released_ns), "nobody ran before the release");
    let spread = starts.iter().max().unwrap() - starts.iter().min().unwrap();
    assert!(spread < 1_500_000_000, "start spread {spread} ns");
}

#[test]
fn watchdog_kills_the_whole_group_of_a_hung_process() {
    let dir = tempfile::tempdir().unwrap();
    // The shell starts a grandchild in the same group and both block forever on a pipe nobody writes.
    let mut fleet = Fleet::start(
        dir.path(),
        vec![sh("sleep 1000 & echo $!; wait"), sh("exit 0")],
        Duration::from_millis(800),
    )
    .unwrap();
    let grandchild = fleet.wait_until(
        |f| !f.dir().join("0-sh.stdout").metadata().map(|m| m.len() == 0).unwrap_or(true),
        Duration::from_secs(10),
    );
    assert!(grandchild);
    let outcomes = fleet.wait();
    assert!(outcomes[0].hung, "{:?}", outcomes[0]);
    assert!(!outcomes[1].hung);
    let gpid: u32 = outcomes[0].stdout().trim().parse().unwrap();
    // SIGKILL is delivered at once but the exit takes a moment: bounded wait for it (it is not our
    // child, so no wait4; init reaps it, or it stays a zombie in a container without one).
    let end = Instant::now() + Duration::from_secs(10);
    let mut gone = false;
    for _ in 0..10_000_000 {
        gone = !exists(gpid) || proc_state(gpid) == Some('Z');
        if gone || Instant::now() >= end {
            break;
        }
        std::thread::yield_now();
    }
    assert!(gone, "grandchild {gpid} survived the group kill: state {:?}", proc_state(gpid));
}

#[test]
fn stop_resume_and_drop_leaves_no_child() {
    let dir = tempfile::tempdir().unwrap();
    let (fleet, pids) = first_stopped(dir.path(), "kill -STOP $$; exit 7");
    assert_eq!(fleet.alive().len(), 2);
    fleet.resume(pids[0]).unwrap();
    assert!(fleet.wait_until(|f| f.alive() == vec![pids[1]], Duration::from_secs(10)));
    drop(fleet);
    for pid in pids {
        assert!(!exists(pid), "pid {pid} survived (or is an unreaped zombie) after drop");
    }
}

/// The timeline of the report: a stop is recorded once when first seen (however often it is polled),
/// then the SIGCONT and SIGKILL sent, each on its process, in order; every outcome carries the release.
#[test]
fn stops_seen_and_signals_sent_are_recorded_once_each_on_their_process() {
    let dir = tempfile::tempdir().unwrap();
    let (mut fleet, pids) = first_stopped(dir.path(), "kill -STOP $$; exec sleep 1000");
    assert!(fleet.is_stopped(pids[0]), "polled again while stopped");
    fleet.resume(pids[0]).unwrap();
    fleet.kill(pids[0]);
    fleet.kill(pids[1]);
    let outcomes = fleet.wait();
    let events: Vec<(EventKind, Option<u32>)> = fleet.events().iter().map(|e| (e.kind, e.pid)).collect();
    assert_eq!(
        events,
        vec![
            (EventKind::Sigstop, Some(pids[0])),
            (EventKind::Sigcont, Some(pids[0])),
            (EventKind::Sigkill, Some(pids[0])),
            (EventKind::Sigkill, Some(pids[1])),
        ]
    );
    assert!(fleet.events().windows(2).all(|w| w[0].unix_ms <= w[1].unix_ms));
    assert!(outcomes.iter().all(|o| o.started_unix_ms == fleet.released_unix_ms() && o.started_unix_ms > 0));
}

#[test]
fn drop_during_a_panic_reaps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().to_path_buf();
    let pids = std::thread::spawn(move || {
        let fleet =
            Fleet::start(&path, vec![sh("exec sleep 1000"), sh("exec sleep 1000")], Duration::from_secs(60))
                .unwrap();
        let pids = fleet.pids();
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _f = fleet;
            panic!("scenario failed");
        }))
        .unwrap_err();
        pids
    })
    .join()
    .unwrap();
    for pid in pids {
        assert!(!exists(pid), "pid {pid} survived a panicking scenario");
    }
}

#[test]
fn spawn_failure_is_an_outcome_not_a_hang() {
    let dir = tempfile::tempdir().unwrap();
    let missing = FleetProcess::new("missing", Command::new("/nonexistent/program"));
    let mut fleet = Fleet::start(dir.path(), vec![missing, sh("exit 0")], Duration::from_secs(20)).unwrap();
    let outcomes = fleet.wait();
    assert!(outcomes[0].spawn_error.is_some(), "{:?}", outcomes[0]);
    assert_eq!(outcomes[1].exit_code, Some(0));
}

#[test]
fn lock_waiters_come_from_proc_locks() {
    let (dir, cache, held, c) = lock_held_with_a_waiter();
    let mut fleet = Fleet::start(
        &dir.path().join("fleet"),
        vec![FleetProcess::new("waiter", c)],
        Duration::from_secs(20),
    )
    .unwrap();
    let pid = fleet.pids()[0];
    assert!(fleet.wait_until(
        |f| f.lock_waiters(&cache, &FilePattern::new("*.lock")).contains(&pid),
        Duration::from_secs(10)
    ));
    held.unlock().unwrap();
    assert_eq!(fleet.wait()[0].exit_code, Some(0));
}

/// `settled`: every live process is blocked on a cache lock, stopped, or accounted for elsewhere.
#[test]
fn settled_counts_lock_waiters_stopped_and_parked_elsewhere() {
    let (dir, cache, held, waiter) = lock_held_with_a_waiter();
    let processes = vec![FleetProcess::new("waiter", waiter), sh("kill -STOP $$"), sh("exec sleep 1000")];
    let fleet = Fleet::start(&dir.path().join("fleet"), processes, Duration::from_secs(30)).unwrap();
    assert!(fleet.wait_until(|f| f.settled(&cache, &FilePattern::new("*.lock"), 1), Duration::from_secs(10)));
    assert!(
        !fleet.settled(&cache, &FilePattern::new("*.lock"), 0),
        "the sleeping process is neither blocked nor stopped"
    );
    assert_eq!(fleet.stopped(), vec![fleet.pids()[1]]);
    held.unlock().unwrap();
}
