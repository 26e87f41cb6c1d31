//! Run directories: a fresh one per run (`<target dir>/stress-cache/<label>-<UTC timestamp>/`) and the
//! resolved declaration the suite reads (`target-spec.toml`); the pinned target executable is kept by
//! content in the store (`retention`).
//! What the CLI keeps inside a run directory (run.json, reports) is the CLI's business.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use stress_cache_metadata::TargetSpec;

use crate::{Result, RunnerError as Error, one_line};

/// Creates a fresh run directory: `dir` if given (it may exist, but must be empty: records of an
/// earlier run would otherwise be aggregated with this one's), else `<parent>/<label>-<UTC timestamp>`
/// with a numeric suffix on collision (`parent`: `$STRESS_RESULTS_DIR` or `<target dir>/stress-cache`).
pub fn create(parent: &Path, label: &str, dir: Option<&Path>) -> Result<PathBuf> {
    if let Some(dir) = dir {
        // The caller checked that a given directory is absent or empty (a usage error, before building).
        std::fs::create_dir_all(dir).map_err(|source| Error::io("cannot create", dir, source))?;
        return std::path::absolute(dir).map_err(|source| Error::io("cannot resolve", dir, source));
    }
    std::fs::create_dir_all(parent).map_err(|source| Error::io("cannot create", parent, source))?;
    let base = format!("{label}-{}", utc_timestamp(SystemTime::now()));
    // Two runs started in the same second get distinct directories; bounded so a broken FS cannot loop.
    for attempt in 1..=100 {
        let name = if attempt == 1 { base.clone() } else { format!("{base}-{attempt}") };
        let path = parent.join(name);
        match std::fs::create_dir(&path) {
            Ok(()) => return Ok(path),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(Error::io("cannot create", path, source)),
        }
    }
    Err(Error::io(
        "cannot create",
        parent.join(base),
        std::io::Error::new(std::io::ErrorKind::AlreadyExists, "100 run directories with this name exist"),
    ))
}

/// Creates a subdirectory.
pub fn subdir(parent: &Path, name: &str) -> Result<PathBuf> {
    let path = parent.join(name);
    std::fs::create_dir_all(&path).map_err(|source| Error::io("cannot create", &path, source))?;
    Ok(path)
}

/// Writes the resolved target declaration as TOML (the file `STRESS_TARGET_SPEC` names), with
/// `command` set to the absolute path of the executable to stress: the suite reads this file as a
/// standalone spec (`TargetSpec::from_spec_file`, which requires `command`), and a relative command
/// would otherwise resolve against the run directory.
pub fn write_spec(run_dir: &Path, spec: &TargetSpec, executable: &Path) -> Result<PathBuf> {
    let path = run_dir.join("target-spec.toml");
    let mut spec = spec.clone();
    spec.command = Some(executable.display().to_string());
    let text = toml::to_string(&spec).map_err(|e| Error::Serialize {
        what: "target spec",
        path: path.clone(),
        message: one_line(&e.to_string()),
    })?;
    write(&path, &text)?;
    Ok(path)
}

/// Writes a file.
pub fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).map_err(|source| Error::io("cannot write", path, source))
}

/// Writes `value` to `path` as compact JSON (a file for machines: nextest's reuse-build files);
/// `what` names it in the error.
pub fn write_json(path: &Path, what: &'static str, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string(value).map_err(|e| Error::Serialize {
        what,
        path: path.to_path_buf(),
        message: one_line(&e.to_string()),
    })?;
    write(path, &text)
}

/// `YYYYMMDDTHHMMSSZ` (UTC) of `time`.
pub fn utc_timestamp(time: SystemTime) -> String {
    let secs = time.duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let rem = secs % 86_400;
    format!("{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 → (year, month, day), proleptic Gregorian (H. Hinnant's algorithm);
/// avoids a date crate for one timestamp.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn written_spec_is_a_valid_standalone_spec_naming_the_executable() {
        let declaration = serde_json::json!({
            "binary": "beaker",
            "args": ["cutout", "{input}"],
            "env": { "url": "U", "cache-dir": "C" },
            "files": { "final": "*.onnx", "partial": "*.partial" },
            "features": { "failpoints": "failpoints" },
        });
        let spec = TargetSpec::from_package_metadata("test", &declaration).expect("valid declaration");
        let dir = tempfile::tempdir().expect("tempdir");
        let exe = Path::new("/abs/target/debug/beaker");
        let path = write_spec(dir.path(), &spec, exe).expect("written");
        let back = TargetSpec::from_spec_file(&path).expect("the suite can read it back");
        assert_eq!(back.command.as_deref(), Some("/abs/target/debug/beaker"));
        assert_eq!(back.binary.as_deref(), Some("beaker"));
        assert_eq!(back.features.failpoints.as_deref(), Some("failpoints"));
    }

    #[test]
    fn timestamps_are_utc_calendar_dates() {
        assert_eq!(utc_timestamp(UNIX_EPOCH), "19700101T000000Z");
        // 2024-02-29 12:34:56 UTC
        assert_eq!(utc_timestamp(UNIX_EPOCH + Duration::from_secs(1_709_210_096)), "20240229T123456Z");
    }
}
