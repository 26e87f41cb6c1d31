use super::*;
use crate::fs_trace::FsOp;

fn p(s: &str) -> PathBuf {
    PathBuf::from(s)
}

/// temp file created and written, optionally fsynced, renamed to its final name, directory optionally
/// fsynced.
fn publish(sync_file: bool, sync_dir: bool) -> Vec<Op> {
    let mut ops = vec![
        Op::open(p("0/m.tmp"), true, false),
        Op::write(p("0/m.tmp"), None, 4),
        Op::write(p("0/m.tmp"), None, 4),
    ];
    if sync_file {
        ops.push(Op::new(FsOp::Fsync { path: p("0/m.tmp") }));
    }
    ops.push(Op::new(FsOp::Rename { from: p("0/m.tmp"), to: p("0/m.bin") }));
    if sync_dir {
        ops.push(Op::new(FsOp::Fsync { path: p("0") }));
    }
    ops
}

fn states_of(ops: Vec<Op>) -> Vec<CrashState> {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.bin"), b"ABCDEFGH").unwrap();
    let roots = [Root { dir: dir.path().to_path_buf(), label: "cache".into() }];
    explore(ops, &roots, b"", 100).states
}

fn final_contents(states: &[CrashState]) -> Vec<(Loss, Vec<u8>)> {
    states
        .iter()
        .flat_map(|s| {
            s.entries.iter().filter_map(move |(path, e)| match e {
                StateEntry::File(b) if path == &p("0/m.bin") => Some((s.loss, b.clone())),
                _ => None,
            })
        })
        .collect()
}

#[test]
fn a_rename_without_fsync_can_leave_an_empty_file_under_the_final_name() {
    let finals = final_contents(&states_of(publish(false, false)));
    assert!(finals.contains(&(Loss::UnsyncedData, Vec::new())), "{finals:?}");
    assert!(finals.contains(&(Loss::Nothing, b"ABCDEFGH".to_vec())), "{finals:?}");
}

#[test]
fn fsync_before_rename_leaves_only_complete_files_under_the_final_name() {
    let finals = final_contents(&states_of(publish(true, true)));
    assert!(!finals.is_empty());
    assert!(finals.iter().all(|(_, b)| b == b"ABCDEFGH"), "{finals:?}");
}

#[test]
fn a_rename_whose_directory_was_not_fsynced_is_lost_with_the_unsynced_entries() {
    let refs = References { by_inode: BTreeMap::new(), fallback: b"ABCDEFGH" };
    let mut replay = Replay::new(1);
    for op in publish(true, false) {
        replay.apply(&op, &refs);
    }
    // The temp file's name itself was never made durable either: nothing survives.
    assert!(replay.state(Loss::AllUnsynced).is_empty());
    let with_names = replay.state(Loss::UnsyncedData);
    assert_eq!(with_names, vec![(p("0/m.bin"), StateEntry::File(b"ABCDEFGH".to_vec()))]);
    replay.apply(&Op::new(FsOp::Fsync { path: p("0") }), &refs);
    assert_eq!(replay.state(Loss::AllUnsynced), with_names);
}

#[test]
fn identical_states_are_explored_once() {
    let ops = publish(true, true);
    let n = ops.len();
    let exploration = {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("m.bin"), b"ABCDEFGH").unwrap();
        explore(ops, &[Root { dir: dir.path().to_path_buf(), label: "cache".into() }], b"", 100)
    };
    assert_eq!(exploration.candidates, exploration.points * Loss::ALL.len());
    assert!(exploration.states.len() < exploration.candidates);
    assert!(exploration.points <= n + 1);
    let dups: usize = exploration.states.iter().map(|s| s.duplicates).sum();
    assert_eq!(dups + exploration.states.len(), exploration.candidates);
}

#[test]
fn runs_of_writes_are_sampled_at_first_middle_and_last() {
    let mut ops = vec![Op::open(p("0/t"), true, false)];
    ops.extend((0..10).map(|_| Op::write(p("0/t"), None, 1)));
    ops.push(Op::new(FsOp::Fsync { path: p("0/t") }));
    assert_eq!(crash_points(&ops), vec![0, 1, 2, 6, 11, 12]);
}
