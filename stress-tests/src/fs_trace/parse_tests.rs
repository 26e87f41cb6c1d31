use std::path::{Path, PathBuf};

use super::*;
use crate::fs_trace::syntax::{normalize, unescape};

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

fn ops(trace: &ParsedTrace) -> Vec<&FsOp> {
    trace.events.iter().map(|e| &e.op).collect()
}

/// Recorded with strace 6.1 from a python3 process: a forked child blocks on the parent's flock
/// (`<unfinished ...>` / `resumed`), a thread writes and fsyncs a temp, the parent renames with
/// relative paths.
const FORK_AND_THREAD: &str = r#"14747 1796123166.473085 openat(AT_FDCWD</tmp/fst/c>, "tx.lock", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 3</tmp/fst/c/tx.lock> <0.000108>
14747 1796123166.473283 flock(3</tmp/fst/c/tx.lock>, LOCK_EX) = 0 <0.000051>
14753 1796123166.474561 openat(AT_FDCWD</tmp/fst/c>, "tx.lock", O_RDWR|O_CLOEXEC) = 4</tmp/fst/c/tx.lock> <0.000062>
14753 1796123166.474738 flock(4</tmp/fst/c/tx.lock>, LOCK_EX <unfinished ...>
14754 1796123166.475093 openat(AT_FDCWD</tmp/fst/c>, "/tmp/fst/c/tx.partial", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0644) = 4</tmp/fst/c/tx.partial> <0.000063>
14754 1796123166.475217 write(4</tmp/fst/c/tx.partial>, ""..., 3) = 3 <0.000018>
14754 1796123166.475271 fsync(4</tmp/fst/c/tx.partial>) = 0 <0.000509>
14754 1796123166.475812 close(4</tmp/fst/c/tx.partial>) = 0 <0.000010>
14754 1796123166.475931 +++ exited with 0 +++
14747 1796123166.675441 flock(3</tmp/fst/c/tx.lock>, LOCK_UN <unfinished ...>
14753 1796123166.675631 <... flock resumed>) = 0 <0.200865>
14747 1796123166.675680 <... flock resumed>) = 0 <0.000162>
14753 1796123166.675751 unlink("tx.lock") = 0 <0.000029>
14753 1796123166.676315 +++ exited with 0 +++
14747 1796123166.676354 --- SIGCHLD {si_signo=SIGCHLD, si_code=CLD_EXITED, si_pid=14753, si_uid=0, si_status=0, si_utime=0, si_stime=0} ---
14747 1796123166.676394 rename("tx.partial", "tx.final") = 0 <0.000022>
14747 1796123166.684121 +++ exited with 0 +++
"#;

#[test]
fn real_fork_and_thread_sample() {
    let t = parse_trace(FORK_AND_THREAD, 7);
    assert_eq!(t.skipped_lines, 0);
    let lock = p("/tmp/fst/c/tx.lock");
    let partial = p("/tmp/fst/c/tx.partial");
    let open_lock = FsOp::Open { path: lock.clone(), create: true, trunc: false, excl: false, write: true };
    let wait = FsOp::Lock { path: lock.clone(), mode: LockMode::Exclusive, blocking: true };
    assert_eq!(t.events[0].op, open_lock);
    assert!(t.events.iter().all(|e| e.process == 7 && e.ok));
    // The child's blocking flock: entry at the unfinished line, exit at the resumed line.
    let waited = t.events.iter().find(|e| e.pid == 14753 && e.op == wait).expect("the child's flock");
    assert_eq!((waited.entry, waited.exit), (1796123166.474738, 1796123166.675631));
    let write = t.events.iter().find(|e| matches!(e.op, FsOp::Write { .. })).expect("write");
    assert_eq!(write.op, FsOp::Write { path: partial.clone() });
    assert!((write.exit - (1796123166.475217 + 0.000018)).abs() < 1e-9);
    // Relative names of non-`at` calls resolve against the cwd the tid showed in AT_FDCWD</...>.
    assert!(ops(&t).contains(&&FsOp::Unlink { path: lock }));
    assert!(ops(&t).contains(&&FsOp::Rename { from: partial, to: p("/tmp/fst/c/tx.final") }));
    assert_eq!(t.events.iter().filter(|e| e.op == FsOp::Exit).count(), 3);
}

/// Recorded from python3: names with quotes, a newline, `<`/`>` (octal in annotations), UTF-8
/// (octal), a comma; `(deleted)` after the annotation; failed calls; `..` in a path.
const ESCAPES: &str = r#"11616 1796122763.831442 openat(AT_FDCWD</tmp/fst/c>, "tx, \"weird\"\n.partial", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 4</tmp/fst/c/tx, \"weird\"\n.partial> <0.000098>
11616 1796122763.832506 rename("tx, \"weird\"\n.partial", "tx.final") = 0 <0.000052>
12092 1796122834.196799 openat(AT_FDCWD</tmp/fst/c>, "a>b<c", O_WRONLY|O_CREAT|O_TRUNC|O_APPEND|O_CLOEXEC, 0644) = 3</tmp/fst/c/a\76b\74c> <0.000113>
12092 1796122834.198701 openat(AT_FDCWD</tmp/fst/c>, "\303\274\t\1", O_WRONLY|O_CREAT|O_TRUNC|O_APPEND|O_CLOEXEC, 0644) = 3</tmp/fst/c/\303\274\t\1> <0.000073>
12092 1796122834.198252 ftruncate(3</tmp/fst/c/sp ace (deleted)>, 0) = 0 <0.000057>
11616 1796122763.835847 write(4</tmp/fst/c/del>(deleted), ""..., 2) = 2 <0.000047>
11616 1796122763.835426 openat(AT_FDCWD</tmp/fst/c>, "nope", O_RDONLY|O_CLOEXEC) = -1 ENOENT (No such file or directory) <0.000043>
12092 1796122834.200417 rename("q\\b", "d/../qq") = 0 <0.000049>
12092 1796122834.207607 renameat2(3</tmp/fst/c>, "cp2", 3</tmp/fst/c>, "qq", RENAME_NOREPLACE) = -1 EEXIST (File exists) <0.000034>
"#;

#[test]
fn escapes_annotations_and_failures() {
    let t = parse_trace(ESCAPES, 0);
    assert_eq!(t.skipped_lines, 0);
    let weird = p("/tmp/fst/c/tx, \"weird\"\n.partial");
    assert!(matches!(&t.events[0].op, FsOp::Open { path, trunc: true, .. } if *path == weird));
    assert_eq!(t.events[1].op, FsOp::Rename { from: weird, to: p("/tmp/fst/c/tx.final") });
    assert!(matches!(&t.events[2].op, FsOp::Open { path, .. } if *path == p("/tmp/fst/c/a>b<c")));
    assert!(matches!(&t.events[3].op, FsOp::Open { path, .. } if *path == p("/tmp/fst/c/ü\t\u{1}")));
    // The old in-annotation marker and strace 6's trailing marker are both stripped and remembered.
    assert_eq!(t.events[4].op, FsOp::Truncate { path: p("/tmp/fst/c/sp ace") });
    assert!(t.events[4].deleted);
    assert_eq!(t.events[5].op, FsOp::Write { path: p("/tmp/fst/c/del") });
    assert!(t.events[5].deleted && !t.events[0].deleted);
    // A failed open keeps the resolved argument.
    assert!(!t.events[6].ok);
    assert!(
        matches!(&t.events[6].op, FsOp::Open { path, write: false, .. } if *path == p("/tmp/fst/c/nope"))
    );
    assert_eq!(t.events[7].op, FsOp::Rename { from: p("/tmp/fst/c/q\\b"), to: p("/tmp/fst/c/qq") });
    assert!(t.events[7].ok && !t.events[8].ok);
}

/// The lines of the format description, including both dirfd kinds and a lock wait that another
/// tid interrupts.
#[test]
fn brief_sample_lines() {
    let text = r#"3952  1733050000.123456 openat(AT_FDCWD</tmp>, "/tmp/tx.partial", O_WRONLY|O_CREAT|O_TRUNC|O_CLOEXEC, 0666) = 3</tmp/tx.partial> <0.000021>
3952  1733050000.123800 renameat2(AT_FDCWD</work>, "a.partial", 5</cache>, "a.onnx", RENAME_NOREPLACE) = 0 <0.000030>
3952  1733050000.124000 flock(3</tmp/tx.lock>, LOCK_EX <unfinished ...>
3953  1733050000.124100 unlink("/tmp/tx.lock") = 0 <0.000010>
3952  1733050001.000000 <... flock resumed>) = 0 <0.875900>
3952  1733050001.000100 fcntl(4</c/x.lock>, F_SETLKW, {l_type=F_WRLCK, l_whence=SEEK_SET, l_start=0, l_len=0}) = 0 <0.000003>
3952  1733050001.000300 close(3</tmp/tx.lock>) = 0 <0.000002>
3952  1733050001.000400 unlinkat(AT_FDCWD</w>, "/c/d", AT_REMOVEDIR) = 0 <0.000010>
3952  1733050002.000000 +++ killed by SIGKILL +++
"#;
    let t = parse_trace(text, 1);
    assert_eq!(t.skipped_lines, 0);
    assert_eq!(t.events[0].entry, 1733050000.123456);
    assert_eq!(t.events[1].op, FsOp::Rename { from: p("/work/a.partial"), to: p("/cache/a.onnx") });
    assert_eq!(t.events[2].pid, 3953);
    let flock = &t.events[3];
    assert_eq!((flock.entry, flock.exit, flock.ok), (1733050000.124, 1733050001.0, true));
    assert_eq!(flock.op, FsOp::Lock { path: p("/tmp/tx.lock"), mode: LockMode::Exclusive, blocking: true });
    assert_eq!(
        t.events[4].op,
        FsOp::Lock { path: p("/c/x.lock"), mode: LockMode::Exclusive, blocking: true }
    );
    assert_eq!(t.events[5].op, FsOp::Close { path: p("/tmp/tx.lock") });
    assert_eq!(t.events[6].op, FsOp::Rmdir { path: p("/c/d") });
    assert_eq!(t.events[7].op, FsOp::Exit);
}

#[test]
fn lock_modes_other_fcntls_and_copies() {
    let text = r#"1 10.000000 flock(3</c/l>, LOCK_NB|LOCK_UN) = 0 <0.000047>
1 10.000001 flock(3</c/l>, LOCK_SH|LOCK_NB) = -1 EWOULDBLOCK (Operation would block) <0.000001>
1 10.000002 fcntl(3</c/l>, F_OFD_SETLK, {l_type=F_RDLCK, l_whence=SEEK_SET, l_start=0, l_len=0}) = 0 <0.000001>
1 10.000003 fcntl(3</c/l>, F_SETLK, {l_type=F_UNLCK, l_whence=SEEK_SET, l_start=0, l_len=0}) = 0 <0.000001>
1 10.000004 fcntl(2</dev/pts/0>, F_DUPFD, 10) = 11</dev/pts/0> <0.000008>
1 10.000005 fcntl(3</c/l>, F_GETLK, {l_type=F_WRLCK, l_whence=SEEK_SET, l_start=0, l_len=0}) = 0 <0.000001>
1 10.000006 copy_file_range(4</tmp/fst/c/qq>, NULL, 5</tmp/fst/c/cp>, NULL, 10, 0) = 0 <0.000048>
1 10.000007 sendfile(5</tmp/fst/c/cp>, 4</tmp/fst/c/qq>, [0], 1) = 0 <0.000046>
1 10.000008 write(1<pipe:[13473]>, ""..., 18) = 18 <0.000012>
1 10.000009 writev(5</tmp/fst/c/cp>, [...], 2) = 2 <0.000040>
1 10.000010 linkat(3</tmp/x>(deleted), "", AT_FDCWD</c>, "final", AT_EMPTY_PATH) = 0 <0.000047>
1 10.000011 symlinkat("/x/y", 3</tmp/fst/c>, "sl") = 0 <0.000065>
1 10.000012 mkdirat(3</tmp/fst/c>, "e", 0777) = 0 <0.000082>
1 10.000013 creat("/c/n", 0644) = 3</c/n> <0.000010>
"#;
    let t = parse_trace(text, 0);
    assert_eq!(t.skipped_lines, 0);
    let lock = |mode, blocking| FsOp::Lock { path: p("/c/l"), mode, blocking };
    let expected = vec![
        lock(LockMode::Unlock, false),
        lock(LockMode::Shared, false),
        lock(LockMode::Shared, false),
        lock(LockMode::Unlock, false),
        FsOp::Write { path: p("/tmp/fst/c/cp") },
        FsOp::Write { path: p("/tmp/fst/c/cp") },
        FsOp::Write { path: p("/tmp/fst/c/cp") },
        FsOp::Link { from: p("/tmp/x"), to: p("/c/final") },
        FsOp::Symlink { target: p("/x/y"), link: p("/tmp/fst/c/sl") },
        FsOp::Mkdir { path: p("/tmp/fst/c/e") },
        FsOp::Open { path: p("/c/n"), create: true, trunc: true, excl: false, write: true },
    ];
    assert_eq!(ops(&t), expected.iter().collect::<Vec<_>>());
    assert!(!t.events[1].ok);
}

#[test]
fn unfinished_calls_and_relative_paths_without_cwd() {
    let text = "5 1.000000 rename(\"a\", \"b\") = 0 <0.000010>\n\
                5 2.000000 flock(3</c/l>, LOCK_EX <unfinished ...>\n\
                6 2.500000 flock(4</c/m>, LOCK_EX <unfinished ...>\n\
                5 3.000000 +++ killed by SIGKILL +++\n\
                7 4.000000 close(3</c/z>) = 0 <0.000001>\n";
    let t = parse_trace(text, 0);
    // No cwd seen yet: the names stay relative (they cannot match a cache dir).
    assert_eq!(t.events[0].op, FsOp::Rename { from: p("a"), to: p("b") });
    // A lock wait cut by the exit is kept as a failed call that lasted until the exit...
    let waited = &t.events[1];
    assert_eq!((waited.entry, waited.exit, waited.ok), (2.0, 3.0, false));
    assert_eq!(t.events[2].op, FsOp::Exit);
    // ... and one still pending at the end of the trace lasts until the last timestamp.
    let pending = t.events.last().expect("events");
    assert_eq!((pending.pid, pending.entry, pending.exit, pending.ok), (6, 2.5, 4.0, false));
}

#[test]
fn garbled_lines_are_counted_not_fatal() {
    let text = "garbage\n\
                12 notatime openat(AT_FDCWD, \"x\", O_RDONLY) = 3 <0.1>\n\
                12 1.5 <... flock resumed>) = 0 <0.1>\n\
                12 1.6 frobnicate(1, 2) = 0 <0.1>\n\
                12 1.7 openat(AT_FDCWD</c>, \"x\n\
                12 1.8 rename(\"a\") = 0 <0.1>\n\
                12 1.9 write(3</c/x>, \"\"..., 3) = 3 <0.1>\n";
    let t = parse_trace(text, 0);
    assert_eq!(t.skipped_lines, 6);
    assert_eq!(t.events.len(), 1);
    // Every prefix of real traces (a tracer killed mid-line) parses without a panic.
    for sample in [FORK_AND_THREAD, ESCAPES] {
        for cut in (0..sample.len()).filter(|&i| sample.is_char_boundary(i)) {
            let _ = parse_trace(&sample[..cut], 0);
        }
    }
}

#[test]
fn read_trace_reports_a_missing_file() {
    let err = read_trace(Path::new("/nonexistent/fs-trace"), 0).expect_err("missing");
    assert!(err.to_string().contains("/nonexistent/fs-trace"), "{err}");
}

#[test]
fn unescape_edge_cases() {
    assert_eq!(unescape(br#"a\x41\101\"b"#, b'"').0, b"aAA\"b");
    assert_eq!(unescape(br"\x", b'"').0, b"x");
    assert_eq!(unescape(b"\\", b'"').0, b"");
    assert_eq!(normalize(Path::new("/a/./b/../c")), p("/a/c"));
}

#[test]
fn writes_and_truncates_carry_their_extent() {
    let text = r#"1 1796123166.000001 write(4</c/t.partial>, ""..., 8192) = 4096 <0.000018>
1 1796123166.000002 pwrite64(4</c/t.partial>, ""..., 100, 7000) = 100 <0.000018>
1 1796123166.000003 ftruncate(4</c/t.partial>, 123) = 0 <0.000018>
1 1796123166.000004 fsync(4</c/t.partial>) = 0 <0.000018>
"#;
    let t = parse_trace(text, 0);
    let extents: Vec<(Option<u64>, Option<u64>)> = t.events.iter().map(|e| (e.bytes, e.offset)).collect();
    // The bytes written are the result, not the count asked for.
    assert_eq!(extents, vec![(Some(4096), None), (Some(100), Some(7000)), (Some(123), None), (None, None)]);
}
