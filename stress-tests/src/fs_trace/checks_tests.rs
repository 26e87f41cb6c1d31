//! The properties on synthetic traces written in strace's format, each one held and violated.

use std::path::PathBuf;

use super::*;
use stress_cache_metadata::FilePattern;

fn roles() -> Vec<CacheRoles> {
    vec![CacheRoles {
        dir: PathBuf::from("/c"),
        final_: vec![FilePattern::new("*.onnx")],
        partial: vec![FilePattern::new("*.partial")],
        lock: vec![FilePattern::new("*.lock")],
        ignore: vec![FilePattern::new("*.meta")],
        lock_kind_exists: false,
        entries_are_dirs: false,
    }]
}

/// One text per process (index = position); lines as `<pid> <ts> <call>`.
fn trace(processes: &[String]) -> FsTrace {
    FsTrace::merge(processes.iter().enumerate().map(|(i, text)| parse_trace(text, i)).collect())
}

/// The correct publisher: lock, write temp, fsync, close, rename, fsync dir, unlock. `t` = start second.
fn publisher(pid: u32, t: u32, skip: &[&str]) -> String {
    let lines = [
        ("open-lock", r#"openat(AT_FDCWD</w>, "/c/m.lock", O_RDWR|O_CREAT|O_CLOEXEC, 0644) = 3</c/m.lock>"#),
        ("lock", "flock(3</c/m.lock>, LOCK_EX) = 0"),
        (
            "open-temp",
            r#"openat(AT_FDCWD</w>, "m.onnx.partial", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 4</c/m.onnx.partial>"#,
        ),
        ("write", r#"write(4</c/m.onnx.partial>, ""..., 10) = 10"#),
        ("fsync", "fsync(4</c/m.onnx.partial>) = 0"),
        ("close", "close(4</c/m.onnx.partial>) = 0"),
        ("rename", r#"rename("/c/m.onnx.partial", "/c/m.onnx") = 0"#),
        ("open-dir", r#"openat(AT_FDCWD</w>, "/c", O_RDONLY|O_DIRECTORY) = 4</c>"#),
        ("fsync-dir", "fsync(4</c>) = 0"),
        ("close-dir", "close(4</c>) = 0"),
        ("unlock", "flock(3</c/m.lock>, LOCK_UN) = 0"),
        ("close-lock", "close(3</c/m.lock>) = 0"),
        ("exit", "+++ exited with 0 +++"),
    ];
    let mut text = String::new();
    for (i, (name, call)) in lines.iter().enumerate() {
        if skip.contains(name) {
            continue;
        }
        let duration = if call.starts_with("+++") { String::new() } else { " <0.000010>".to_string() };
        text.push_str(&format!("{pid} {t}.{:06} {call}{duration}\n", (i + 1) * 100));
    }
    text
}

fn lines(text: &[(u32, &str, &str)]) -> String {
    text.iter().map(|(pid, ts, call)| format!("{pid} {ts} {call}\n")).collect()
}

#[test]
fn correct_publisher_holds_every_property() {
    let verdicts = check(&trace(&[publisher(100, 1, &[]), publisher(200, 2, &[])]), &roles());
    assert!(verdicts.all_held(), "{verdicts:#?}");
    assert_eq!(verdicts.writer_holds_exclusive_lock, Some(Vec::new()));
    assert_eq!(verdicts.events, 24, "the two exit events name no cache path");
}

#[test]
fn final_written_in_place_is_not_atomic() {
    let cp = lines(&[
        (
            300,
            "5.000000",
            r#"openat(AT_FDCWD</w>, "/c/m.onnx", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3</c/m.onnx> <0.000010>"#,
        ),
        (300, "5.000100", r#"write(3</c/m.onnx>, ""..., 10) = 10 <0.000010>"#),
        // beaker's mtime bump: open for append without create/trunc and no write is fine.
        (
            300,
            "5.000200",
            r#"openat(AT_FDCWD</w>, "/c/n.onnx", O_WRONLY|O_APPEND) = 4</c/n.onnx> <0.000010>"#,
        ),
        // a failed O_EXCL create did not create anything
        (
            300,
            "5.000300",
            r#"openat(AT_FDCWD</w>, "/c/n.onnx", O_WRONLY|O_CREAT|O_EXCL, 0644) = -1 EEXIST (File exists) <0.000010>"#,
        ),
    ]);
    let verdicts = check(&trace(&[cp]), &roles());
    let evidence = &verdicts.final_published_atomically;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert_eq!(
        evidence[0],
        "pid 300 opened final /c/m.onnx with O_CREAT|O_TRUNC at 5.000000 (a final must appear only by \
         rename of a complete file)"
    );
    assert!(evidence[1].starts_with("pid 300 wrote to final /c/m.onnx at 5.000100"), "{evidence:#?}");
}

#[test]
fn compiled_entry_built_in_place_is_not_atomic() {
    let mut compiled = roles();
    compiled[0].final_ = vec![FilePattern::new("*-*")];
    compiled[0].partial = vec![FilePattern::new(".*.tmp")];
    compiled[0].entries_are_dirs = true;
    let good = lines(&[
        (1, "1.000000", r#"mkdir("/c/.ab-cd.1.tmp", 0777) = 0 <0.000010>"#),
        (
            1,
            "1.000100",
            r#"openat(AT_FDCWD</w>, "/c/.ab-cd.1.tmp/lib.so", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 3</c/.ab-cd.1.tmp/lib.so> <0.000010>"#,
        ),
        (1, "1.000200", r#"write(3</c/.ab-cd.1.tmp/lib.so>, ""..., 9) = 9 <0.000010>"#),
        (1, "1.000300", "fsync(3</c/.ab-cd.1.tmp/lib.so>) = 0 <0.000010>"),
        (1, "1.000400", r#"rename("/c/.ab-cd.1.tmp", "/c/ab-cd") = 0 <0.000010>"#),
        (1, "1.000500", "fsync(4</c>) = 0 <0.000010>"),
    ]);
    let verdicts = check(&trace(&[good]), &compiled);
    assert!(verdicts.final_published_atomically.is_empty(), "{verdicts:#?}");
    assert!(verdicts.published_durably.is_empty(), "{verdicts:#?}");
    let bad = lines(&[
        (2, "2.000000", r#"mkdir("/c/ab-cd", 0777) = 0 <0.000010>"#),
        (
            2,
            "2.000100",
            r#"openat(AT_FDCWD</w>, "/c/ab-cd/lib.so", O_WRONLY|O_CREAT, 0644) = 3</c/ab-cd/lib.so> <0.000010>"#,
        ),
    ]);
    let evidence = check(&trace(&[bad]), &compiled).final_published_atomically;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert!(evidence[0].starts_with("pid 2 created final /c/ab-cd by mkdir at 2.000000"), "{evidence:#?}");
    assert!(
        evidence[1].contains("opened /c/ab-cd/lib.so inside a final entry with O_CREAT"),
        "{evidence:#?}"
    );
}

/// Process 0 writes a temp from 1.0001 until its close at 1.0005; `other` is process 1's text.
fn temp_writer_and(other: &[(u32, &str, &str)]) -> TraceVerdicts {
    check(&trace(&[publisher(100, 1, &[]), lines(other)]), &roles())
}

#[test]
fn removing_a_live_temp_of_another_process_is_caught() {
    let evidence = temp_writer_and(&[(9, "1.000350", r#"unlink("/c/m.onnx.partial") = 0 <0.000010>"#)])
        .live_temp_files_left_alone;
    assert_eq!(
        evidence,
        ["pid 9 unlinked live temp /c/m.onnx.partial at 1.000350 while pid 100 was writing it (opened at \
          1.000310, live until 1.000600) (a temp belongs to its writer until it closes, renames or exits)"]
    );
    let truncated = temp_writer_and(&[(
        9,
        "1.000350",
        r#"openat(AT_FDCWD</w>, "/c/m.onnx.partial", O_WRONLY|O_CREAT|O_TRUNC, 0644) = 5</c/m.onnx.partial> <0.000010>"#,
    )]);
    assert!(truncated.live_temp_files_left_alone[0].contains("truncated (O_TRUNC)"), "{truncated:#?}");
}

#[test]
fn temps_of_finished_or_ambiguous_writers_may_be_removed() {
    // After the writer closed it (a stale-temp sweep), and overlapping the writer's open (not definite).
    let verdicts = temp_writer_and(&[
        (9, "1.000650", r#"unlink("/c/m.onnx.partial") = -1 ENOENT (No such file or directory) <0.000010>"#),
        (9, "1.000600", r#"unlink("/c/m.onnx.partial") = 0 <0.000010>"#),
        (9, "1.000305", r#"unlink("/c/m.onnx.partial") = 0 <0.000010>"#),
    ]);
    assert!(verdicts.live_temp_files_left_alone.is_empty(), "{verdicts:#?}");
}

#[test]
fn lock_files_held_in_turn_are_stable() {
    let second = lines(&[
        (
            200,
            "1.000150",
            r#"openat(AT_FDCWD</w>, "/c/m.lock", O_RDWR|O_CREAT, 0644) = 3</c/m.lock> <0.000010>"#,
        ),
        (200, "1.000200", "flock(3</c/m.lock>, LOCK_EX <unfinished ...>"),
        (200, "1.001150", "<... flock resumed>) = 0 <0.000950>"),
        (200, "1.001200", "close(3</c/m.lock>) = 0 <0.000010>"),
        (200, "1.001300", r#"unlink("/c/m.lock") = 0 <0.000010>"#),
        (200, "1.001400", "+++ exited with 0 +++"),
    ]);
    let verdicts = check(&trace(&[publisher(100, 1, &[]), second]), &roles());
    assert!(verdicts.lock_files_stable.is_empty(), "{verdicts:#?}");
}

#[test]
fn lock_file_removed_under_its_holder_is_caught_twice() {
    // pid 200 unlinks the lock pid 100 holds, then a new file of the same name is locked by pid 300.
    let remover = lines(&[(200, "1.000150", r#"unlink("/c/m.lock") = 0 <0.000010>"#)]);
    let second = lines(&[
        (
            300,
            "1.000170",
            r#"openat(AT_FDCWD</w>, "/c/m.lock", O_RDWR|O_CREAT, 0644) = 3</c/m.lock> <0.000010>"#,
        ),
        (300, "1.000190", "flock(3</c/m.lock>, LOCK_EX) = 0 <0.000010>"),
        (300, "1.000300", "close(3</c/m.lock>) = 0 <0.000010>"),
    ]);
    let evidence = check(&trace(&[publisher(100, 1, &[]), remover, second]), &roles()).lock_files_stable;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert_eq!(
        evidence[0],
        "pid 200 unlinked lock file /c/m.lock at 1.000150 while pid 100 was using it (opened at 1.000110, \
         in use until 1.001200) (the next contender locks a new file: two holders)"
    );
    assert!(
        evidence[1].starts_with(
            "pid 300 (from 1.000200 to 1.000300) and pid 100 (from 1.000210 to 1.001100) held exclusive \
             locks on two different files named /c/m.lock"
        ),
        "{evidence:#?}"
    );
}

#[test]
fn existence_locks_broken_under_a_live_holder_are_caught() {
    let mut exists = roles();
    exists[0].lock_kind_exists = true;
    let excl =
        r#"openat(AT_FDCWD</w>, "/c/m.lock", O_WRONLY|O_CREAT|O_EXCL, 0644) = 3</c/m.lock> <0.000010>"#;
    let a = lines(&[
        (1, "1.000000", excl),
        (1, "1.000100", "close(3</c/m.lock>) = 0 <0.000010>"),
        (1, "1.000900", r#"unlink("/c/m.lock") = 0 <0.000010>"#),
    ]);
    let c = lines(&[(3, "1.000500", excl), (3, "1.000600", r#"unlink("/c/m.lock") = 0 <0.000010>"#)]);
    // In turn: held.
    let later = lines(&[(4, "1.001000", excl), (4, "1.001100", r#"unlink("/c/m.lock") = 0 <0.000010>"#)]);
    assert!(check(&trace(&[a.clone(), later]), &exists).lock_files_stable.is_empty());
    // pid 2 "breaks the stale lock" of a live holder, pid 3 then creates its own.
    let b = lines(&[(2, "1.000400", r#"unlink("/c/m.lock") = 0 <0.000010>"#)]);
    let evidence = check(&trace(&[a, b, c]), &exists).lock_files_stable;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert!(
        evidence[0].starts_with("pid 2 unlinked lock file /c/m.lock at 1.000400 while pid 1"),
        "{evidence:#?}"
    );
    assert!(evidence[1].starts_with("pid 1 (from 1.000010 to 1.000900) and pid 3"), "{evidence:#?}");
}

#[test]
fn publish_without_fsyncs_is_not_durable() {
    let no_fsync = check(&trace(&[publisher(100, 1, &["fsync"])]), &roles()).published_durably;
    assert_eq!(
        no_fsync,
        ["pid 100 renamed /c/m.onnx.partial to final /c/m.onnx at 1.000700 without an fsync of \
          /c/m.onnx.partial after its last write at 1.000410 (a crash can publish an empty or torn file)"]
    );
    let no_dir = check(&trace(&[publisher(100, 1, &["fsync-dir"])]), &roles()).published_durably;
    assert_eq!(
        no_dir,
        ["pid 100 renamed /c/m.onnx.partial to final /c/m.onnx at 1.000700 but did not fsync the directory \
          /c before exiting at 1.001300 (a crash can lose the rename)"]
    );
    // An fsync that came before the last write does not count.
    let early = publisher(100, 1, &[]).replace("1.000500 fsync", "1.000250 fsync");
    assert_eq!(check(&trace(&[early]), &roles()).published_durably.len(), 1);
}

#[test]
fn moving_a_final_away_is_not_a_publish_but_needs_the_lock() {
    let quarantine =
        lines(&[(5, "3.000000", r#"rename("/c/m.onnx", "/c/quarantine/m.onnx.1") = 0 <0.000010>"#)]);
    let verdicts = check(&trace(&[quarantine]), &roles());
    assert!(verdicts.published_durably.is_empty(), "{verdicts:#?}");
    assert_eq!(
        verdicts.writer_holds_exclusive_lock,
        Some(vec![
            "pid 5 moved final /c/m.onnx away to /c/quarantine/m.onnx.1 at 3.000000 without holding an \
             exclusive lock on a lock file of /c (publishes and removals must be serialised by the cache \
             lock)"
                .to_string()
        ])
    );
}

#[test]
fn publish_and_eviction_without_the_lock_are_caught() {
    let unlocked = publisher(100, 1, &["lock", "unlock"]);
    let evict = lines(&[(7, "4.000000", r#"unlinkat(AT_FDCWD</c>, "m.onnx", 0) = 0 <0.000010>"#)]);
    let evidence = check(&trace(&[unlocked, evict]), &roles()).writer_holds_exclusive_lock.expect("locks");
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert!(evidence[0].starts_with("pid 100 published /c/m.onnx.partial as final /c/m.onnx at 1.000700"));
    assert!(evidence[1].starts_with("pid 7 removed final /c/m.onnx at 4.000000"), "{evidence:#?}");
    // A shared lock is not enough.
    let shared = publisher(100, 1, &[]).replace("LOCK_EX", "LOCK_SH");
    assert_eq!(check(&trace(&[shared]), &roles()).writer_holds_exclusive_lock.map(|v| v.len()), Some(1));
    // Not applicable without lock patterns.
    let mut lockless = roles();
    lockless[0].lock.clear();
    assert_eq!(check(&trace(&[publisher(100, 1, &["lock"])]), &lockless).writer_holds_exclusive_lock, None);
}

#[test]
fn paths_belong_to_the_first_matching_cache_and_evidence_is_capped() {
    let mut two = roles();
    two.insert(0, CacheRoles { dir: PathBuf::from("/c/sub"), final_: Vec::new(), ..two[0].clone() });
    let text: Vec<(u32, String, String)> = (0..25)
        .map(|i| (i, format!("1.{i:06}"), format!(r#"truncate("/c/{i}.onnx", 0) = 0 <0.000001>"#)))
        .chain([(99, "2.000000".to_string(), r#"truncate("/c/sub/x.onnx", 0) = 0 <0.000001>"#.to_string())])
        .collect();
    let text: Vec<(u32, &str, &str)> = text.iter().map(|(p, t, c)| (*p, t.as_str(), c.as_str())).collect();
    let evidence = check(&trace(&[lines(&text)]), &two).final_published_atomically;
    assert_eq!(evidence.len(), 21);
    assert_eq!(evidence[20], "... and 5 more");
}

#[test]
fn a_thread_exit_does_not_end_its_process() {
    // The trace was cut before the leader's exit line: a worker thread's exit must not end the
    // process (its lock would then look released before the publish).
    let cut = publisher(100, 1, &["unlock", "close-lock", "exit"])
        + &lines(&[(101, "1.000050", "+++ exited with 0 +++")]);
    let verdicts = check(&trace(&[cut]), &roles());
    assert!(verdicts.all_held(), "{verdicts:#?}");
}
