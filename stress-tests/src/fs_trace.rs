//! TEMPORARY STUB (replaced by the fs_trace module from branch fs-trace).
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::pattern::FilePattern;

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct TraceError(String);

pub fn strace_path() -> Result<PathBuf, TraceError> {
    Err(TraceError("stub".into()))
}
pub fn wrap(cmd: &Command, _strace: &Path, _trace_file: &Path) -> Command {
    let mut c = Command::new(cmd.get_program());
    c.args(cmd.get_args());
    c
}
pub fn wait_complete(_trace_file: &Path, _pid: u32, _deadline: Duration) -> bool {
    true
}
pub struct ParsedTrace;
pub fn read_trace(_path: &Path, _process: usize) -> Result<ParsedTrace, TraceError> {
    Ok(ParsedTrace)
}
pub struct FsTrace;
impl FsTrace {
    pub fn merge(_v: Vec<ParsedTrace>) -> FsTrace {
        FsTrace
    }
}
pub struct CacheRoles {
    pub dir: PathBuf,
    pub final_: Vec<FilePattern>,
    pub partial: Vec<FilePattern>,
    pub lock: Vec<FilePattern>,
    pub lock_kind_exists: bool,
    pub entries_are_dirs: bool,
}
pub struct TraceVerdicts {
    pub final_published_atomically: Vec<String>,
    pub live_temp_files_left_alone: Vec<String>,
    pub lock_files_stable: Vec<String>,
    pub published_durably: Vec<String>,
    pub writer_holds_exclusive_lock: Option<Vec<String>>,
    pub events: usize,
}
pub fn check(_t: &FsTrace, _r: &[CacheRoles]) -> TraceVerdicts {
    TraceVerdicts {
        final_published_atomically: vec![],
        live_temp_files_left_alone: vec![],
        lock_files_stable: vec![],
        published_durably: vec![],
        writer_holds_exclusive_lock: None,
        events: 0,
    }
}
