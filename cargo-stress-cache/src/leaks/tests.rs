//! The leak check must be able to fail: one of each leak is planted and each is reported.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

use super::*;

/// Waits for child `pid` to exit without reaping it (`waitid(WNOWAIT)`): it stays a zombie.
fn wait_zombie(pid: u32) -> bool {
    // SAFETY: siginfo_t is plain data that waitid fills; `pid` is our own child.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    let rc =
        unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOWAIT) };
    rc == 0
}

#[test]
fn a_clean_run_dir_has_no_leaks() {
    let run = tempfile::tempdir().unwrap();
    let tmp = run.path().join("repeat-1").join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let baseline = Baseline::take();
    let leaks = check(&baseline, run.path(), &[tmp]);
    assert_eq!(leaks.total(), 0, "{:#?}", leaks.evidence);
}

/// One planted process, zombie, descriptor, temp dir, mount and listening socket: each counted once,
/// with evidence naming it. (Mounting needs root, as the nightly tier's tmpfs scenarios do.)
#[test]
fn one_planted_leak_of_each_kind_is_reported() {
    let run = tempfile::tempdir().unwrap();
    let root = run.path().canonicalize().unwrap();
    let tmp = root.join("repeat-1").join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    let baseline = Baseline::take();

    let mut sleeper = Command::new("sleep")
        .arg("120")
        .env("PLANTED_CACHE_DIR", root.join("cache"))
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let zombie = Command::new("true").stdin(Stdio::null()).spawn().unwrap();
    assert!(wait_zombie(zombie.id()), "the planted child never became a zombie");
    let file = std::fs::File::create(root.join("held-open")).unwrap();
    std::fs::create_dir(tmp.join("scenario-left-behind")).unwrap();
    let point = root.join("mnt");
    std::fs::create_dir(&point).unwrap();
    let c_point = CString::new(point.as_os_str().as_bytes()).unwrap();
    // SAFETY: valid NUL-terminated strings; a NULL data pointer is allowed for tmpfs.
    let rc =
        unsafe { libc::mount(c"tmpfs".as_ptr(), c_point.as_ptr(), c"tmpfs".as_ptr(), 0, std::ptr::null()) };
    assert_eq!(rc, 0, "mounting tmpfs needs root: {}", std::io::Error::last_os_error());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();

    let leaks = check(&baseline, &root, std::slice::from_ref(&tmp));

    // SAFETY: valid NUL-terminated path.
    unsafe { libc::umount2(c_point.as_ptr(), libc::MNT_DETACH) };
    let _ = sleeper.kill();
    let _ = sleeper.wait();
    let mut zombie = zombie;
    let _ = zombie.wait();
    drop((file, listener));

    let counts = (leaks.processes, leaks.zombies, leaks.fds, leaks.temp_dirs, leaks.mounts, leaks.sockets);
    assert_eq!(counts, (1, 1, 1, 1, 1, 1), "{:#?}", leaks.evidence);
    let all = leaks.evidence.join("\n");
    for needle in [
        format!("process {} (sleep)", sleeper.id()),
        format!("zombie {} (true)", zombie.id()),
        "held-open".to_string(),
        "scenario-left-behind".to_string(),
        format!("{} still mounted", point.display()),
        format!("listens on 127.0.0.1:{port}"),
    ] {
        assert!(all.contains(&needle), "{needle} not in:\n{all}");
    }
}

#[test]
fn what_the_cleaner_removed_counts_as_leaked() {
    let cleaned = Cleaned {
        killed: vec![42],
        unmounted: vec![PathBuf::from("/run/x/tmp/mnt/disk")],
        removed: vec!["mnt/".into(), "stray".into()],
        left: Vec::new(),
    };
    let leaks = from_cleaned(&cleaned, "repeat 1/3");
    assert_eq!((leaks.processes, leaks.mounts, leaks.temp_dirs, leaks.total()), (1, 1, 2, 4));
    assert!(
        leaks.evidence.iter().any(|e| e == "repeat 1/3: mnt/ left in the temp dir"),
        "{:?}",
        leaks.evidence
    );
}

#[test]
fn listening_addresses_are_decoded() {
    assert_eq!(local_address("0100007F:1F90"), "127.0.0.1:8080");
    assert_eq!(
        local_address("00000000000000000000000000000000:0050"),
        "[00000000000000000000000000000000]:80"
    );
}
