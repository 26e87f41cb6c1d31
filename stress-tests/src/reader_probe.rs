//! A reader that keeps opening every visible final artifact while writers run, and classifies what it
//! read: evidence for `readers_saw_only_complete_content`. Bounded by a stop signal, a deadline and an
//! iteration cap; between scans it waits (up to 2 ms) for the stop signal.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use stress_cache_metadata::{FilePatterns, FileRoles, Role};

use crate::snapshot::{Content, classify, walk};
use crate::target::ModelFixture;

/// Scans at most this many times.
const MAX_SCANS: u64 = 200_000;

/// What the reader saw.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReaderReport {
    /// Directory scans done.
    pub scans: u64,
    /// Final artifacts read in full.
    pub reads: u64,
    /// Reads that were a complete model.
    pub complete_reads: u64,
    /// Reads that were not (prefix, corrupted, unrelated): `path: label, N B` per distinct observation.
    pub bad_reads: Vec<String>,
    /// Reads of exactly a wrong body the server served (a corrupted copy, an error page with 200), with
    /// the evidence line: bad unless the target had no way to tell (see `Content::undetectable_without`),
    /// which the checker decides.
    pub served_wrong_reads: Vec<(PathBuf, Content, String)>,
}

/// The running reader thread.
pub struct ReaderProbe {
    stop: Option<mpsc::Sender<()>>,
    handle: Option<JoinHandle<ReaderReport>>,
}

impl ReaderProbe {
    /// Starts reading every final artifact (the final pattern, minus anything a lock, partial or quarantine
    /// pattern also matches: a reader never reads a lock as content) under each of `dirs` until
    /// [`ReaderProbe::stop`] or `deadline`.
    pub fn start(
        dirs: Vec<PathBuf>,
        files: &FilePatterns,
        models: BTreeMap<String, ModelFixture>,
        deadline: Duration,
    ) -> Self {
        let (tx, rx) = mpsc::channel::<()>();
        let pattern = FinalOnly(FileRoles::from_validated(files));
        let handle = std::thread::Builder::new()
            .name("reader-probe".into())
            .spawn(move || run(dirs, pattern, models, deadline, rx))
            .ok();
        ReaderProbe { stop: Some(tx), handle }
    }

    /// Stops the reader and returns what it saw (does one last scan first).
    pub fn stop(mut self) -> ReaderReport {
        self.finish()
    }

    fn finish(&mut self) -> ReaderReport {
        self.stop.take();
        self.handle.take().and_then(|h| h.join().ok()).unwrap_or_default()
    }
}

impl Drop for ReaderProbe {
    fn drop(&mut self) {
        self.finish();
    }
}

/// Files whose one role is final: never an ignored sidecar, a lock, a partial or a quarantined file.
struct FinalOnly(FileRoles);

impl FinalOnly {
    fn matches(&self, relative: &std::path::Path) -> bool {
        self.0.role_of(relative) == Some(Role::Final)
    }
}

fn run(
    dirs: Vec<PathBuf>,
    pattern: FinalOnly,
    models: BTreeMap<String, ModelFixture>,
    deadline: Duration,
    stop: mpsc::Receiver<()>,
) -> ReaderReport {
    let end = Instant::now() + deadline;
    let mut report = ReaderReport::default();
    // (dev, inode, len, mtime) of files already seen complete: immutable once published, not re-read.
    let mut known_complete: BTreeMap<(u64, u64), (u64, i128)> = BTreeMap::new();
    let mut stopping = false;
    while report.scans < MAX_SCANS {
        report.scans += 1;
        for dir in &dirs {
            for entry in walk(dir).into_iter().filter(|e| e.is_file && pattern.matches(&e.relative)) {
                let Ok(meta) = std::fs::metadata(&entry.path) else { continue };
                let mtime = meta.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok());
                let stamp = (meta.len(), mtime.map(|d| d.as_nanos() as i128).unwrap_or(-1));
                if known_complete.get(&(entry.dev, entry.inode)) == Some(&stamp) {
                    continue;
                }
                let Ok(bytes) = std::fs::read(&entry.path) else { continue };
                report.reads += 1;
                match classify(&bytes, &models) {
                    Content::Complete(_) if bytes.len() as u64 == stamp.0 => {
                        report.complete_reads += 1;
                        known_complete.insert((entry.dev, entry.inode), stamp);
                    }
                    Content::Complete(_) => report.complete_reads += 1,
                    wrong @ (Content::ServedCorrupt(_) | Content::ServedErrorPage) => {
                        let line =
                            format!("{}: read {} ({} B)", entry.path.display(), wrong.label(), bytes.len());
                        if report.served_wrong_reads.len() < 50
                            && !report.served_wrong_reads.iter().any(|(_, _, l)| *l == line)
                        {
                            report.served_wrong_reads.push((dir.clone(), wrong, line));
                        }
                    }
                    other => {
                        let line =
                            format!("{}: read {} ({} B)", entry.path.display(), other.label(), bytes.len());
                        if report.bad_reads.len() < 50 && !report.bad_reads.contains(&line) {
                            report.bad_reads.push(line);
                        }
                    }
                }
            }
        }
        if stopping || Instant::now() >= end {
            break;
        }
        match stop.recv_timeout(Duration::from_millis(2)) {
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            // Stop requested: one last scan so files published at the very end are read too.
            _ => stopping = true,
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::target::blob_models;

    fn bin_files() -> FilePatterns {
        toml::from_str("final = \"*.bin\"\npartial = \"*.partial\"\nlock = \"*.bin.lock\"").unwrap()
    }

    #[test]
    fn never_reads_a_lock_file_as_content_even_when_the_final_pattern_matches_it() {
        let models = blob_models();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alpha"), &models["alpha"].bytes).unwrap();
        std::fs::write(dir.path().join("alpha.lock"), b"").unwrap();
        let files: FilePatterns =
            toml::from_str("final = \"*\"\npartial = \"*.part\"\nlock = \"*.lock\"").unwrap();
        let report =
            ReaderProbe::start(vec![dir.path().to_path_buf()], &files, models, Duration::from_secs(5)).stop();
        assert!(report.bad_reads.is_empty(), "{:?}", report.bad_reads);
        assert_eq!(report.complete_reads, 1);
    }

    #[test]
    fn reports_a_prefix_visible_under_a_final_name() {
        let models = blob_models();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alpha.bin"), &models["alpha"].bytes[..4096]).unwrap();
        std::fs::write(dir.path().join("beta.bin"), &models["beta"].bytes).unwrap();
        std::fs::write(dir.path().join("beta.bin.1-2.partial"), b"ignored: not a final name").unwrap();
        let probe =
            ReaderProbe::start(vec![dir.path().to_path_buf()], &bin_files(), models, Duration::from_secs(5));
        let report = probe.stop();
        assert!(report.scans >= 1);
        assert_eq!(report.complete_reads, 1);
        assert_eq!(report.bad_reads.len(), 1, "{:?}", report.bad_reads);
        assert!(report.bad_reads[0].contains("prefix(alpha, 4096 B)"));
    }

    #[test]
    fn clean_cache_reads_only_complete_content() {
        let models = blob_models();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("alpha.bin"), &models["alpha"].bytes).unwrap();
        let probe =
            ReaderProbe::start(vec![dir.path().to_path_buf()], &bin_files(), models, Duration::from_secs(5));
        let report = probe.stop();
        assert!(report.bad_reads.is_empty());
        assert_eq!(report.complete_reads, 1, "a complete file is read once, then recognised by identity");
    }
}
