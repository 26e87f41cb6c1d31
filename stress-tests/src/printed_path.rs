//! The path a target says it resolved: targets that print it (`prints-path = true`) hand it to their
//! caller, who opens it next. So it is observed the moment the process is reaped — before its outcome
//! is published to the rest of the harness — and judged later: it must exist, hold the complete model,
//! and be a final artifact (or a symlink to one) of the cache.

use std::path::{Path, PathBuf};

use crate::target::sha256_hex;

/// What the last line of a process's stdout named, and what was there when the process exited.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrintedPath {
    /// The path as printed (trimmed); empty when stdout had no line.
    pub path: PathBuf,
    /// What the path held at exit: `Ok((len, sha256))`, or why it could not be read.
    pub content: Result<(u64, String), String>,
    /// Where it pointed, when it was a symlink.
    pub link_target: Option<PathBuf>,
}

impl PrintedPath {
    /// Reads the last non-empty line of `stdout` as a path and reads that path now. A relative path is
    /// taken relative to `cwd` (the process's working directory).
    pub fn observe(stdout: &Path, cwd: &Path) -> Self {
        let text =
            std::fs::read(stdout).map(|b| String::from_utf8_lossy(&b).into_owned()).unwrap_or_default();
        let line = text.lines().rev().map(str::trim).find(|l| !l.is_empty()).unwrap_or("");
        let path = if line.is_empty() { PathBuf::new() } else { cwd.join(line) };
        if line.is_empty() {
            return PrintedPath { path, content: Err("stdout has no line".into()), link_target: None };
        }
        let link_target = std::fs::read_link(&path).ok();
        let content =
            std::fs::read(&path).map(|b| (b.len() as u64, sha256_hex(&b))).map_err(|e| e.to_string());
        PrintedPath { path, content, link_target }
    }

    /// The file the path resolves to (the symlink target made absolute, or the path itself).
    pub fn resolved(&self) -> PathBuf {
        match &self.link_target {
            Some(t) if t.is_absolute() => t.clone(),
            Some(t) => self.path.parent().map(|p| p.join(t)).unwrap_or_else(|| t.clone()),
            None => self.path.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_line_is_read_as_the_path_and_read_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::write(d.join("model.bin"), b"abc").unwrap();
        std::os::unix::fs::symlink("model.bin", d.join("link")).unwrap();
        std::fs::write(d.join("out"), format!("progress 50%\n{}\n\n", d.join("link").display())).unwrap();
        let seen = PrintedPath::observe(&d.join("out"), d);
        assert_eq!(seen.content, Ok((3, sha256_hex(b"abc"))));
        assert_eq!(seen.resolved(), d.join("model.bin"));
        std::fs::write(d.join("out2"), "gone.bin\n").unwrap();
        let missing = PrintedPath::observe(&d.join("out2"), d);
        assert_eq!(missing.path, d.join("gone.bin"));
        assert!(missing.content.is_err());
    }
}
