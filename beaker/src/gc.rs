//! `beaker cache ls | verify | gc`: listing, re-hashing and LRU eviction of the download cache.
//!
//! gc is safe while other processes use the cache: it deletes an entry only while holding that
//! entry's lock exclusively, taken with `try_lock` — a reader that has resolved the path holds the
//! shared lock until it has loaded the bytes, so gc skips that entry instead of deleting it under the
//! reader. LRU order is the final file's mtime (touched on every hit).

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::cache::{self, FinalKey};
use crate::config::Config;
use crate::error::{BeakerError, Result};
use crate::failpoints;
use crate::fsio;
use crate::lock::{self, LockGuard};

/// One final file in the download cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its path.
    pub path: PathBuf,
    /// Its file name.
    pub name: String,
    /// Size in bytes.
    pub size: u64,
    /// Last use (mtime).
    pub modified: SystemTime,
}

/// The items of `dir` with their names, read lazily (none when `dir` does not exist); a failure to read
/// is a `list` error on `dir`.
fn named_items(dir: &Path) -> Result<impl Iterator<Item = Result<(std::fs::DirEntry, String)>> + '_> {
    let read = match std::fs::read_dir(dir) {
        Ok(read) => Some(read),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(BeakerError::io("list", dir, e)),
    };
    Ok(read.into_iter().flatten().map(move |item| {
        let item = item.map_err(|e| BeakerError::io("list", dir, e))?;
        let name = item.file_name().to_string_lossy().into_owned();
        Ok((item, name))
    }))
}

/// The final files in the cache dir (not partials, locks, or quarantine), oldest first.
pub fn list_entries(dir: &Path) -> Result<Vec<Entry>> {
    let mut entries = Vec::new();
    for item in named_items(dir)? {
        let (item, name) = item?;
        if !name.ends_with(&format!(".{}", cache::FINAL_EXTENSION)) {
            continue;
        }
        let meta = match item.metadata() {
            Ok(meta) if meta.is_file() => meta,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(BeakerError::io("stat", item.path(), e)),
        };
        let modified = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
        entries.push(Entry { path: item.path(), name, size: meta.len(), modified });
    }
    entries.sort_by(|a, b| a.modified.cmp(&b.modified).then_with(|| a.name.cmp(&b.name)));
    Ok(entries)
}

/// `beaker cache ls`: one line per entry (`<size>\t<name>`), then the total.
pub fn ls(cfg: &Config) -> Result<String> {
    let entries = list_entries(&cfg.cache_dir)?;
    let mut out = String::new();
    for e in &entries {
        out.push_str(&format!("{}\t{}\n", e.size, e.name));
    }
    let total: u64 = entries.iter().map(|e| e.size).sum();
    out.push_str(&format!(
        "{} entr{}, {total} bytes in {}\n",
        entries.len(),
        plural(entries.len()),
        cfg.cache_dir.display()
    ));
    Ok(out)
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "y" } else { "ies" }
}

/// The verdict on one entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// Entry name.
    pub name: String,
    /// `None` when good, else why it is bad.
    pub problem: Option<String>,
}

/// `beaker cache verify`: re-hashes every `<stem>-<sha16>.onnx` against its name and loads every
/// `<stem>-url<hash>.onnx` (no checksum known); any other `.onnx` name is bad, and so is anything under
/// a final name that is not a regular file; every compiled entry is checked against its manifest. Returns the verdicts;
/// [`verify_result`] turns them into the exit status.
pub fn verify(cfg: &Config) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::new();
    for e in list_entries(&cfg.cache_dir)? {
        let problem = match cache::parse_final_name(&e.name) {
            Some(FinalKey::Sha256Prefix(prefix)) => match fsio::sha256_file(&e.path) {
                Ok((sha, _)) if sha.starts_with(&prefix) => None,
                Ok((sha, _)) => Some(format!("content sha256 {sha} does not match the name")),
                Err(BeakerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(err) => return Err(err),
            },
            Some(FinalKey::UrlHashPrefix(_)) => match cache::validate_model_file(&e.path, &e.path) {
                Ok(()) => None,
                Err(BeakerError::InvalidModel { reason, .. }) => Some(format!("does not load: {reason}")),
                Err(BeakerError::Io { source, .. }) if source.kind() == std::io::ErrorKind::NotFound => {
                    continue;
                }
                Err(err) => return Err(err),
            },
            None => Some("not a beaker cache name (<stem>-<16 hex>.onnx or <stem>-url<16 hex>.onnx)".into()),
        };
        verdicts.push(Verdict { name: e.name, problem });
    }
    verdicts.extend(verify_compiled(&cfg.compiled_dir)?);
    let skip_non_files: bool = crate::mutant_or!(FinalKindUnchecked => true, else false);
    if !skip_non_files {
        for (name, kind) in non_file_finals(&cfg.cache_dir)? {
            // The next run moves it aside; until then it is damage a user should hear about.
            verdicts.push(Verdict {
                name,
                problem: Some(format!("not a regular file ({kind}) under a final name")),
            });
        }
    }
    Ok(verdicts)
}

/// Checks every compiled entry (a directory of the compiled dir, not a `.`-prefixed build dir) against
/// its manifest, without loading it: verdicts named `compiled <entry>`.
fn verify_compiled(dir: &Path) -> Result<Vec<Verdict>> {
    let mut verdicts = Vec::new();
    for item in named_items(dir)? {
        let (item, name) = item?;
        if name.starts_with('.') || !item.path().is_dir() {
            continue;
        }
        let problem = match crate::compiled::check_entry(&item.path()) {
            Ok(problem) => problem,
            // Removed meanwhile (rebuilt by a process holding its lock): nothing left to judge.
            Err(_) if !item.path().exists() => continue,
            Err(e) => return Err(e),
        };
        verdicts.push(Verdict { name: format!("compiled {name}"), problem });
    }
    verdicts.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(verdicts)
}

/// Names under the final extension that are not regular files (a directory, a dangling symlink, ...),
/// with what they are: [`list_entries`] skips them, [`verify`] reports them.
fn non_file_finals(dir: &Path) -> Result<Vec<(String, &'static str)>> {
    let mut out = Vec::new();
    for item in named_items(dir)? {
        let (item, name) = item?;
        if !name.ends_with(&format!(".{}", cache::FINAL_EXTENSION)) {
            continue;
        }
        let kind = match std::fs::metadata(item.path()) {
            Ok(meta) if meta.is_file() => continue,
            Ok(meta) if meta.is_dir() => "a directory",
            Ok(_) => "not a file",
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => "a dangling symlink",
            Err(e) => return Err(BeakerError::io("stat", item.path(), e)),
        };
        out.push((name, kind));
    }
    out.sort();
    Ok(out)
}

/// Report lines for `verdicts`, and `VerifyFailed` (exit 4) if any entry is bad.
pub fn verify_result(cfg: &Config, verdicts: &[Verdict]) -> (String, Result<()>) {
    let mut out = String::new();
    let mut bad = 0;
    for v in verdicts {
        match &v.problem {
            None => out.push_str(&format!("ok\t{}\n", v.name)),
            Some(p) => {
                bad += 1;
                out.push_str(&format!("BAD\t{}\t{p}\n", v.name));
            }
        }
    }
    let result =
        if bad == 0 { Ok(()) } else { Err(BeakerError::VerifyFailed { dir: cfg.cache_dir.clone(), bad }) };
    (out, result)
}

/// What gc did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GcReport {
    /// Entries deleted.
    pub evicted: Vec<String>,
    /// Entries that would have been evicted but were in use (lock busy).
    pub busy: Vec<String>,
    /// Bytes of the entries left.
    pub remaining_bytes: u64,
    /// Partial files of crashed downloads removed (their entry's lock was free).
    pub stale_partials: Vec<String>,
}

/// `beaker cache gc --max-bytes N`: evicts least recently used entries until the cache holds at most
/// `max_bytes`, skipping any entry whose lock it cannot take exclusively (in use by a reader or writer).
pub fn gc(cfg: &Config, max_bytes: u64) -> Result<GcReport> {
    let entries = list_entries(&cfg.cache_dir)?;
    let mut total: u64 = entries.iter().map(|e| e.size).sum();
    let mut report = GcReport::default();
    for e in entries {
        if total <= max_bytes {
            break;
        }
        let lock_path = lock::lock_path(&e.path);
        let guard: Option<LockGuard> = crate::mutant_or!(GcIgnoresReaders => None, else match LockGuard::try_exclusive(&lock_path)? {
            Some(guard) => Some(guard),
            None => {
                log::info!("gc: {} is in use, skipped", e.name);
                report.busy.push(e.name);
                continue;
            }
        });
        // Looked up again under the lock: another gc may have deleted it meanwhile.
        let size = match std::fs::metadata(&e.path) {
            Ok(meta) => meta.len(),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                total = total.saturating_sub(e.size);
                continue;
            }
            Err(err) => return Err(BeakerError::io("stat", &e.path, err)),
        };
        failpoints::check(failpoints::GC_BEFORE_DELETE, "remove", &e.path)?;
        fsio::remove_durable(&e.path)?;
        drop(guard);
        log::info!("gc: evicted {} ({size} bytes)", e.name);
        total = total.saturating_sub(e.size);
        report.evicted.push(e.name);
    }
    report.remaining_bytes = total;
    report.stale_partials = remove_stale_partials(&cfg.cache_dir)?;
    Ok(report)
}

/// The final name a partial `<final name>.<pid>-<nonce>.partial` belongs to.
pub fn partial_owner(partial_name: &str) -> Option<&str> {
    let base = partial_name.strip_suffix(fsio::PARTIAL_SUFFIX)?;
    let (final_name, unique) = base.rsplit_once('.')?;
    let (pid, nonce) = unique.split_once('-')?;
    let ok = !pid.is_empty()
        && pid.bytes().all(|b| b.is_ascii_digit())
        && !nonce.is_empty()
        && nonce.bytes().all(|b| b.is_ascii_hexdigit());
    ok.then_some(final_name)
}

/// Removes partial files whose entry lock is free (so no process is downloading them): leftovers of
/// crashed downloads of keys nobody fetched again.
fn remove_stale_partials(dir: &Path) -> Result<Vec<String>> {
    let mut removed = Vec::new();
    for item in named_items(dir)? {
        let (item, name) = item?;
        let Some(owner) = partial_owner(&name) else { continue };
        let Some(guard) = LockGuard::try_exclusive(&lock::lock_path(&dir.join(owner)))? else { continue };
        fsio::remove_durable(&item.path())?;
        drop(guard);
        log::info!("gc: removed stale partial {name}");
        removed.push(name);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::File;
    use std::time::Duration;

    fn cfg(dir: &Path) -> Config {
        let mut c = Config::from_lookup(|_| None).unwrap();
        c.cache_dir = dir.to_path_buf();
        c
    }

    fn entry(dir: &Path, content: &[u8], age_s: u64) -> String {
        let sha = fsio::sha256_hex(content);
        let name = format!("m{age_s}-{}.onnx", &sha[..16]);
        std::fs::write(dir.join(&name), content).unwrap();
        let t = SystemTime::now() - Duration::from_secs(age_s);
        File::options().append(true).open(dir.join(&name)).unwrap().set_modified(t).unwrap();
        name
    }

    #[test]
    fn gc_evicts_lru_and_skips_entries_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let oldest = entry(dir.path(), &[1; 100], 300);
        let middle = entry(dir.path(), &[2; 100], 200);
        let newest = entry(dir.path(), &[3; 100], 100);
        std::fs::write(dir.path().join("x-0123456789abcdef.onnx.12-ab.partial"), b"p").unwrap();
        let (reader, _) = LockGuard::shared(&lock::lock_path(&dir.path().join(&oldest))).unwrap();
        let report = gc(&cfg(dir.path()), 150).unwrap();
        assert_eq!(report.busy, vec![oldest.clone()]);
        assert_eq!(report.stale_partials.len(), 1, "{report:?}");
        assert_eq!(report.evicted, vec![middle, newest.clone()]);
        assert!(dir.path().join(&oldest).exists());
        drop(reader);
        let report = gc(&cfg(dir.path()), 0).unwrap();
        assert_eq!(report.evicted, vec![oldest]);
        assert_eq!(report.remaining_bytes, 0);
        assert!(report.stale_partials.is_empty(), "{report:?}");
        assert!(partial_owner("a.onnx.partial").is_none());
        assert_eq!(partial_owner("a-01.onnx.99-1f.partial"), Some("a-01.onnx"));
    }

    #[test]
    fn verify_flags_bad_content_and_bad_names() {
        let dir = tempfile::tempdir().unwrap();
        let good = entry(dir.path(), b"good", 10);
        let bad = entry(dir.path(), b"bad", 20);
        std::fs::write(dir.path().join(&bad), b"flipped").unwrap();
        std::fs::write(dir.path().join("plain.onnx"), b"x").unwrap();
        std::fs::create_dir(dir.path().join("m-0123456789abcdef.onnx")).unwrap();
        let verdicts = verify(&cfg(dir.path())).unwrap();
        let bad_names: Vec<_> =
            verdicts.iter().filter(|v| v.problem.is_some()).map(|v| v.name.as_str()).collect();
        assert_eq!(bad_names.len(), 3, "{verdicts:?}");
        assert!(
            bad_names.contains(&"m-0123456789abcdef.onnx"),
            "a directory under a final name: {verdicts:?}"
        );
        assert!(verdicts.iter().any(|v| v.name == good && v.problem.is_none()));
        let (_, result) = verify_result(&cfg(dir.path()), &verdicts);
        assert_eq!(result.unwrap_err().exit_code(), crate::error::EXIT_INTEGRITY);
    }
}
