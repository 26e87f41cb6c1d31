//! The fixtures of one target build: the model files the server serves and the input every process
//! reads, produced once by the target's declared fixture command (or, for a target that declares none,
//! two deterministic blobs), and described by a [`FixtureSet`] that the suite reads.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use sha2::{Digest, Sha256};
use stress_cache_metadata::{FIXTURES_SCHEMA_VERSION, FixtureModel, FixtureSet, TargetSpec};

use crate::lock::DirLock;
use crate::{Result, RunnerError};

/// File name of the [`FixtureSet`] in a fixtures directory.
pub const FIXTURE_SET_FILE: &str = "fixtures.json";

/// Lower-case hex SHA-256.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The two deterministic blobs (`alpha`: 192 KiB, `beta`: 640 KiB) served to a target that declares
/// no fixtures, by id: `(file name, bytes)`.
pub fn blob_models() -> BTreeMap<String, (String, Vec<u8>)> {
    [("alpha", 192 * 1024, 0xa1fa_u64), ("beta", 640 * 1024, 0xbe7a_u64)]
        .into_iter()
        .map(|(id, len, seed)| (id.to_string(), (format!("{id}.bin"), deterministic_bytes(len, seed))))
        .collect()
}

/// `len` pseudo-random bytes from `seed` (xorshift64*; same on every machine).
pub fn deterministic_bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut state = seed | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        out.extend_from_slice(&state.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Produces (once per build of `bin`) the fixtures `spec` declares under `root`, and returns their
/// description; the [`FixtureSet`] is also written as `fixtures.json` in their directory.
///
/// Processes preparing the same fixtures at once serialise on a lock file; a finished directory is
/// marked complete and reused, keyed by the binary's identity (size, mtime, inode), which changes
/// whenever the binary is rebuilt or replaced.
pub fn prepare(bin: &Path, spec: &TargetSpec, root: &Path) -> Result<(PathBuf, FixtureSet)> {
    let _lock = DirLock::acquire(&root.join(".fixtures.lock"))?;
    let name = spec.binary.clone().unwrap_or_else(|| spec.display_name().to_string());
    let Some(declared) = &spec.fixtures else {
        let dir = root.join(format!("{name}-blobs"));
        fs::create_dir_all(&dir).map_err(|e| RunnerError::io("cannot create", &dir, e))?;
        let mut models = Vec::new();
        for (id, (file_name, bytes)) in blob_models() {
            let path = dir.join(&file_name);
            write_if_different(&path, &bytes)?;
            models.push(FixtureModel { id, file_name, path, sha256: sha256_hex(&bytes) });
        }
        let input = dir.join("input.txt");
        write_if_different(&input, b"stress-cache input\n")?;
        return write_set(&dir, FixtureSet { schema_version: FIXTURES_SCHEMA_VERSION, models, input });
    };
    let identity = file_identity(bin)?;
    let dir = root.join(format!("{name}-{}", &identity[..16]));
    if !dir.join(".complete").exists() {
        let tmp = root.join(format!(".{name}.tmp-{}", std::process::id()));
        let _ = fs::remove_dir_all(&tmp);
        fs::create_dir_all(&tmp).map_err(|e| RunnerError::io("cannot create", &tmp, e))?;
        let args: Vec<String> =
            declared.args.iter().map(|a| a.replace("{out_dir}", &tmp.display().to_string())).collect();
        let line = format!("{} {}", bin.display(), args.join(" "));
        let output = Command::new(bin)
            .args(&args)
            .stdin(Stdio::null())
            .output()
            .map_err(|source| RunnerError::Spawn { command: line.clone(), source })?;
        if !output.status.success() {
            return Err(RunnerError::Fixtures {
                command: line,
                message: format!("{}: {}", output.status, tail(&output.stderr, 2000)),
            });
        }
        fs::write(tmp.join(".complete"), &identity).map_err(|e| RunnerError::io("cannot write", &tmp, e))?;
        let _ = fs::remove_dir_all(&dir);
        fs::rename(&tmp, &dir).map_err(|e| RunnerError::io("cannot rename into", &dir, e))?;
    }
    let mut models = Vec::new();
    for (id, file_name) in &declared.models {
        let path = dir.join(file_name);
        let bytes = fs::read(&path).map_err(|e| RunnerError::io("cannot read fixture", &path, e))?;
        models.push(FixtureModel {
            id: id.clone(),
            file_name: file_name.clone(),
            path,
            sha256: sha256_hex(&bytes),
        });
    }
    let input = match declared.inputs.first() {
        Some(first) => dir.join(first),
        None => {
            let input = dir.join("input.txt");
            write_if_different(&input, b"stress-cache input\n")?;
            input
        }
    };
    write_set(&dir, FixtureSet { schema_version: FIXTURES_SCHEMA_VERSION, models, input })
}

fn write_set(dir: &Path, set: FixtureSet) -> Result<(PathBuf, FixtureSet)> {
    let path = dir.join(FIXTURE_SET_FILE);
    let text = serde_json::to_string_pretty(&set).map_err(|e| RunnerError::Serialize {
        what: "fixture set",
        path: path.clone(),
        message: e.to_string(),
    })?;
    write_if_different(&path, text.as_bytes())?;
    Ok((path, set))
}

/// Writes `bytes` to `path` by temp file and rename, unless it already holds them: a reader in
/// another process never sees a half-written fixture.
fn write_if_different(path: &Path, bytes: &[u8]) -> Result<()> {
    if fs::read(path).ok().as_deref() == Some(bytes) {
        return Ok(());
    }
    let tmp = path.with_extension(format!("tmp-{}", std::process::id()));
    fs::write(&tmp, bytes).map_err(|e| RunnerError::io("cannot write", &tmp, e))?;
    fs::rename(&tmp, path).map_err(|e| RunnerError::io("cannot rename into", path, e))
}

/// Size, mtime and inode of `path`, hex: cheap, and different for every rebuilt or replaced binary.
fn file_identity(path: &Path) -> Result<String> {
    let meta = fs::metadata(path).map_err(|e| RunnerError::io("cannot stat", path, e))?;
    Ok(sha256_hex(format!("{}-{}.{}-{}", meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).as_bytes()))
}

fn tail(bytes: &[u8], max: usize) -> String {
    let text = String::from_utf8_lossy(bytes);
    let start = text.len().saturating_sub(max);
    let start = (start..=text.len()).find(|i| text.is_char_boundary(*i)).unwrap_or(text.len());
    text[start..].trim().to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_deterministic_and_distinct() {
        assert_eq!(deterministic_bytes(100, 7), deterministic_bytes(100, 7));
        assert_ne!(deterministic_bytes(100, 7), deterministic_bytes(100, 8));
        let blobs = blob_models();
        assert_eq!(blobs.len(), 2);
        assert_ne!(blobs["alpha"].1, blobs["beta"].1);
    }

    #[test]
    fn a_target_without_fixtures_gets_blob_files_described_by_their_hashes() {
        let root = tempfile::tempdir().unwrap();
        let tiny = Path::new(env!("CARGO_MANIFEST_DIR")).join("../stress-tests/targets/tiny-cache.toml");
        let spec = TargetSpec::from_spec_file(&tiny).unwrap();
        assert!(spec.fixtures.is_none(), "tiny-cache declares no fixtures: it gets the blobs");
        let (path, set) = prepare(Path::new("/bin/true"), &spec, root.path()).unwrap();
        assert_eq!(FixtureSet::read(&path).unwrap(), set);
        for m in &set.models {
            assert_eq!(sha256_hex(&fs::read(&m.path).unwrap()), m.sha256);
        }
        assert!(set.input.is_file());
    }
}
