use super::*;
use crate::fixtures;
use crate::model::load_model_bytes;

fn small() -> (Vec<u8>, String) {
    let bytes = fixtures::small_model();
    let sha = fsio::sha256_hex(&bytes);
    (bytes, sha)
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[test]
fn tract_version_matches_cargo_lock() {
    let lock = fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../Cargo.lock")).unwrap();
    let needle = format!("name = \"tract-nnef\"\nversion = \"{TRACT_VERSION}\"");
    assert!(lock.contains(&needle), "update compiled::TRACT_VERSION to the locked tract-nnef version");
}

#[test]
fn miss_then_hit_and_same_mask() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, sha) = small();
    let path = Path::new("small.onnx");
    let (plan, outcome) = load_or_compile(dir.path(), &sha, || load_model_bytes(path, &bytes)).unwrap();
    assert!(!outcome.hit);
    assert!(outcome.compile.is_some());
    assert_eq!(outcome.path, dir.path().join(entry_name(&sha)));
    assert!(outcome.path.join(MANIFEST_FILE).is_file());
    let entry = entry_name(&sha);
    assert_eq!(names(dir.path()), vec![entry.clone(), format!("{entry}.lock")]);

    let (plan2, outcome2) =
        load_or_compile(dir.path(), &sha, || panic!("a hit must not parse the ONNX model")).unwrap();
    assert!(outcome2.hit);
    assert_eq!(outcome2.path, outcome.path);

    let s = plan.side();
    let input: Vec<f32> = (0..3 * s * s).map(|i| (i % 7) as f32 / 7.0).collect();
    let direct = load_model_bytes(path, &bytes).unwrap().into_plan().unwrap();
    let a = direct.run(path, input.clone()).unwrap();
    let b = plan.run(path, input.clone()).unwrap();
    let c = plan2.run(path, input).unwrap();
    for ((x, y), z) in a.iter().zip(&b).zip(&c) {
        assert!((x - y).abs() < 1e-4 && (x - z).abs() < 1e-4, "{x} {y} {z}");
    }
}

#[test]
fn broken_entry_is_rebuilt_and_stale_builds_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, sha) = small();
    let entry = dir.path().join(entry_name(&sha));
    // A half-built entry (no manifest) and a build dir left by a crashed process.
    fs::create_dir_all(&entry).unwrap();
    fs::write(entry.join("graph.nnef"), "garbage").unwrap();
    let stale = build_dir(&entry);
    fs::create_dir_all(stale.join("sub")).unwrap();
    fs::write(stale.join("sub/x.dat"), "x").unwrap();

    let (_, outcome) =
        load_or_compile(dir.path(), &sha, || load_model_bytes(Path::new("small.onnx"), &bytes)).unwrap();
    assert!(!outcome.hit);
    let name = entry_name(&sha);
    assert_eq!(names(dir.path()), vec![name.clone(), format!("{name}.lock")]);

    // A plain file squatting on the entry name is replaced.
    fs::remove_dir_all(&entry).unwrap();
    fs::write(&entry, "not a directory").unwrap();
    let (_, outcome) =
        load_or_compile(dir.path(), &sha, || load_model_bytes(Path::new("small.onnx"), &bytes)).unwrap();
    assert!(!outcome.hit && entry.join(MANIFEST_FILE).is_file());

    // A weight file with one flipped byte loads in tract: the manifest's hashes catch it, rebuilt.
    let dat = fs::read_dir(&entry)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "dat"))
        .expect("a weight file");
    let mut bytes_dat = fs::read(&dat).unwrap();
    let middle = bytes_dat.len() / 2;
    bytes_dat[middle] ^= 1;
    fs::write(&dat, bytes_dat).unwrap();
    assert!(check_entry(&entry).unwrap().is_some_and(|p| p.contains("changed")));
    let (_, outcome) =
        load_or_compile(dir.path(), &sha, || load_model_bytes(Path::new("small.onnx"), &bytes)).unwrap();
    assert!(!outcome.hit);
    assert_eq!(check_entry(&entry).unwrap(), None);

    // A corrupted manifest is also rebuilt.
    fs::write(entry.join(MANIFEST_FILE), "format = 1\nmodel_sha256 = \"nope\"").unwrap();
    let (_, outcome) =
        load_or_compile(dir.path(), &sha, || load_model_bytes(Path::new("small.onnx"), &bytes)).unwrap();
    assert!(!outcome.hit);
    let (_, outcome) = load_or_compile(dir.path(), &sha, || panic!("must hit")).unwrap();
    assert!(outcome.hit);
}

#[test]
fn compile_error_is_returned_and_leaves_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let sha = "ab".repeat(32);
    let err = load_or_compile(dir.path(), &sha, || load_model_bytes(Path::new("bad.onnx"), b"garbage"))
        .unwrap_err();
    assert!(matches!(err, BeakerError::InvalidModel { .. }), "{err}");
    assert_eq!(names(dir.path()), vec![format!("{}.lock", entry_name(&sha))]);
}

#[test]
fn concurrent_threads_compile_once() {
    let dir = tempfile::tempdir().unwrap();
    let (bytes, sha) = small();
    let compiles = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                load_or_compile(dir.path(), &sha, || {
                    compiles.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    load_model_bytes(Path::new("small.onnx"), &bytes)
                })
                .unwrap();
            });
        }
    });
    assert_eq!(compiles.load(std::sync::atomic::Ordering::SeqCst), 1);
}
