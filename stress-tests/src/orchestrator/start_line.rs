//! The start line: every child forked, parked in `pre_exec` on a shared pipe until all are ready, then
//! released together (see the module docs of [`super`]).

use super::*;

impl Fleet {
    /// Forks every process, waits until all are parked at the start line, releases them together and
    /// returns. stdout/stderr go to `<dir>/<index>-<role>.stdout|.stderr`. The watchdog SIGKILLs the
    /// process group of anything still running `deadline` after the release and marks it hung.
    pub fn start(dir: &Path, processes: Vec<FleetProcess>, deadline: Duration) -> Result<Fleet, FleetError> {
        std::fs::create_dir_all(dir).map_err(|source| FleetError::Io {
            action: "create",
            path: dir.display().to_string(),
            source,
        })?;
        let n = processes.len();
        let (start_r, start_w) = pipe()?;
        let (ready_r, ready_w) = pipe()?;
        let shared = Arc::new(Shared {
            state: Mutex::new(State {
                outcomes: vec![None; n],
                pids: vec![0; n],
                hung: BTreeSet::new(),
                released_at: None,
                stop_watchdog: false,
                events: Vec::new(),
            }),
            changed: Condvar::new(),
        });
        let mut fleet = Fleet {
            shared: shared.clone(),
            threads: Vec::with_capacity(n),
            watchdog: None,
            start_write: Some(start_w),
            roles: processes.iter().map(|p| p.role.clone()).collect(),
            released_unix_ms: 0,
            deadline,
            dir: dir.to_path_buf(),
        };
        let raw_start_w = fleet.start_write.as_ref().map(|fd| fd.as_raw_fd()).unwrap_or(-1);
        let (raw_start_r, raw_ready_w) = (start_r.as_raw_fd(), ready_w.as_raw_fd());
        for (index, process) in processes.into_iter().enumerate() {
            let FleetProcess { role, mut command, observe_printed_path, nofile_limit, no_dac_override } =
                process;
            let stdout_path = dir.join(format!("{index}-{role}.stdout"));
            let stderr_path = dir.join(format!("{index}-{role}.stderr"));
            let open = |path: &Path| {
                File::create(path).map_err(|source| FleetError::Io {
                    action: "create",
                    path: path.display().to_string(),
                    source,
                })
            };
            command.stdout(Stdio::from(open(&stdout_path)?)).stderr(Stdio::from(open(&stderr_path)?));
            command.process_group(0);
            let idx = index as u32;
            // SAFETY: the closure only performs async-signal-safe syscalls on inherited descriptors.
            unsafe {
                command.pre_exec(move || {
                    if let Some(n) = nofile_limit {
                        // Lowered after fork, before exec: the parked child's inherited pipe descriptors
                        // stay usable (a limit only refuses new descriptors).
                        let limit = libc::rlimit { rlim_cur: n as libc::rlim_t, rlim_max: n as libc::rlim_t };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                            return Err(std::io::Error::last_os_error());
                        }
                    }
                    if no_dac_override {
                        drop_dac_override()?;
                    }
                    park_at_start_line(idx, raw_start_r, raw_start_w, raw_ready_w)
                });
            }
            let shared = shared.clone();
            let handle = std::thread::Builder::new()
                .name(format!("fleet-{index}"))
                .spawn(move || {
                    run_one(shared, index, role, command, (stdout_path, stderr_path), observe_printed_path)
                })
                .map_err(|source| FleetError::Io {
                    action: "spawn thread for",
                    path: format!("process {index}"),
                    source,
                })?;
            fleet.threads.push(handle);
        }

        // Collect (index, pid) from every parked child.
        let setup_deadline = Instant::now() + Duration::from_secs(60);
        let mut ready = 0usize;
        let mut buf = Vec::with_capacity(n * 8);
        for _ in 0..100_000 {
            let spawn_failures = fleet.shared.lock().outcomes.iter().filter(|o| o.is_some()).count();
            if ready + spawn_failures >= n || Instant::now() >= setup_deadline {
                break;
            }
            let mut pfd = libc::pollfd { fd: ready_r.as_raw_fd(), events: libc::POLLIN, revents: 0 };
            // SAFETY: one valid pollfd.
            let rc = unsafe { libc::poll(&mut pfd, 1, 20) };
            if rc <= 0 {
                continue;
            }
            let mut chunk = [0u8; 512];
            // SAFETY: reading into a stack buffer from our pipe.
            let got = unsafe { libc::read(ready_r.as_raw_fd(), chunk.as_mut_ptr().cast(), chunk.len()) };
            if got > 0 {
                buf.extend_from_slice(&chunk[..got as usize]);
                let mut state = fleet.shared.lock();
                while buf.len() >= 8 {
                    let msg: Vec<u8> = buf.drain(..8).collect();
                    let index = u32::from_le_bytes([msg[0], msg[1], msg[2], msg[3]]) as usize;
                    let pid = u32::from_le_bytes([msg[4], msg[5], msg[6], msg[7]]);
                    if index < n {
                        state.pids[index] = pid;
                        ready += 1;
                    }
                }
            }
        }
        drop(ready_w);
        drop(ready_r);
        drop(start_r);
        let spawn_failures = fleet.shared.lock().outcomes.iter().filter(|o| o.is_some()).count();
        if ready + spawn_failures < n {
            return Err(FleetError::NotReady { ready, total: n, waited: Duration::from_secs(60) });
        }

        // Release everyone at once.
        fleet.released_unix_ms = unix_ms_now();
        fleet.shared.lock().released_at = Some(Instant::now());
        if let Some(start_w) = fleet.start_write.take() {
            let bytes = vec![b'g'; n];
            let mut written = 0;
            for _ in 0..10_000 {
                if written >= n {
                    break;
                }
                // SAFETY: writing from a live buffer to our pipe.
                let rc = unsafe {
                    libc::write(start_w.as_raw_fd(), bytes[written..].as_ptr().cast(), n - written)
                };
                if rc > 0 {
                    written += rc as usize;
                } else if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    break;
                }
            }
        }
        let watchdog_shared = fleet.shared.clone();
        fleet.watchdog = Some(
            std::thread::Builder::new()
                .name("fleet-watchdog".into())
                .spawn(move || watchdog(watchdog_shared, deadline))
                .map_err(|source| FleetError::Io {
                    action: "spawn thread for",
                    path: "watchdog".into(),
                    source,
                })?,
        );
        Ok(fleet)
    }
}

fn pipe() -> Result<(OwnedFd, OwnedFd), FleetError> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two new descriptors into `fds`, which we then own.
    let rc = unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) };
    if rc != 0 {
        return Err(FleetError::Io {
            action: "pipe2",
            path: "start pipe".into(),
            source: std::io::Error::last_os_error(),
        });
    }
    // SAFETY: both descriptors are fresh and owned by nobody else.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

/// The child side of the start line. Runs between fork and exec: only async-signal-safe calls, no allocation.
fn park_at_start_line(index: u32, start_r: i32, start_w: i32, ready_w: i32) -> std::io::Result<()> {
    // SAFETY: raw syscalls on descriptors inherited from the parent; buffers are on the stack.
    unsafe {
        libc::close(start_w);
        // Die with the harness: the forking thread is the one that reaps this child, so it lives exactly as
        // long as the child is ours; if the whole test process dies (even by SIGKILL), so does the child.
        libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0);
        let pid = libc::getpid() as u32;
        let mut msg = [0u8; 8];
        msg[..4].copy_from_slice(&index.to_le_bytes());
        msg[4..].copy_from_slice(&pid.to_le_bytes());
        if libc::write(ready_w, msg.as_ptr().cast(), msg.len()) != msg.len() as isize {
            return Err(std::io::Error::last_os_error());
        }
        libc::close(ready_w);
        let mut byte = 0u8;
        for _ in 0..10_000 {
            let n = libc::read(start_r, (&raw mut byte).cast(), 1);
            if n == 1 {
                libc::close(start_r);
                return Ok(());
            }
            if n == 0 {
                // The harness went away without releasing us.
                return Err(std::io::Error::from_raw_os_error(libc::ECANCELED));
            }
            let err = std::io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EINTR) {
                return Err(err);
            }
        }
        Err(std::io::Error::from_raw_os_error(libc::EINTR))
    }
}
