//! End to end: real programs (python3, sh, cp, mv, rm, flock) run under [`wrap`], their traces parsed
//! and checked. Two-process interleavings are forced by events (the first process prints `ready` and
//! waits for a line on stdin), not by sleeps.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::*;
use stress_cache_metadata::FilePattern;

/// `python3` started as the interpreter itself, not through a version manager's shim (pyenv's is a shell
/// script that starts several processes, each of them traced here: ten times the interpreter's own
/// start), and without `site` (`-S`): the scripts here use built-in modules only.
pub(crate) fn python3() -> Command {
    static REAL: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    let real = REAL.get_or_init(|| {
        Command::new("python3")
            .args(["-S", "-c", "import sys; print(sys.executable)"])
            .output()
            .ok()
            .filter(|o| o.status.success())
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| PathBuf::from(s.trim()))
            .filter(|p| p.is_file())
            .unwrap_or_else(|| PathBuf::from("python3"))
    });
    let mut cmd = Command::new(real);
    cmd.arg("-S");
    cmd
}

/// A publisher: optional flock on `m.lock`, write `m.onnx.partial`, optional fsync, rename to
/// `m.onnx`, optional fsync of the directory. argv: dir, lock (0/1), sync (0/1), pause (`lock`: print
/// ready once the lock is held; `temp`: once the temp is written; else none).
const PUBLISHER: &str = r#"
import fcntl, os, sys
d, lock, sync, pause = sys.argv[1], sys.argv[2] == "1", sys.argv[3] == "1", sys.argv[4]
def wait():
    print("ready", flush=True)
    sys.stdin.readline()
if lock:
    lk = os.open(os.path.join(d, "m.lock"), os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(lk, fcntl.LOCK_EX)
    if pause == "lock": wait()
t, f = os.path.join(d, "m.onnx.partial"), os.path.join(d, "m.onnx")
fd = os.open(t, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
os.write(fd, b"weights" * 1000)
if pause == "temp": wait()
if sync: os.fsync(fd)
os.close(fd)
try:
    os.rename(t, f)
except FileNotFoundError:
    sys.exit(3)
if sync:
    dfd = os.open(d, os.O_RDONLY)
    os.fsync(dfd)
    os.close(dfd)
if lock:
    fcntl.flock(lk, fcntl.LOCK_UN)
    os.close(lk)
"#;

/// A temp dir with a cache `c/` and the traced processes started in it.
struct Lab {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    strace: PathBuf,
    /// Process index of the next start.
    next: usize,
    traces: Vec<ParsedTrace>,
}

/// One traced process.
struct Traced {
    child: Child,
    trace: PathBuf,
    process: usize,
}

impl Lab {
    fn new() -> Lab {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().canonicalize().expect("canonical tempdir");
        std::fs::create_dir(root.join("c")).expect("cache dir");
        let strace = strace_path().expect("these tests run real processes under strace");
        Lab { _tmp: tmp, root, strace, next: 0, traces: Vec::new() }
    }

    fn roles(&self) -> Vec<CacheRoles> {
        vec![CacheRoles {
            dir: self.root.join("c"),
            final_: vec![FilePattern::new("*.onnx")],
            partial: vec![FilePattern::new("*.partial")],
            lock: vec![FilePattern::new("*.lock")],
            ignore: vec![FilePattern::new("*.meta")],
            lock_kind_exists: false,
            entries_are_dirs: false,
        }]
    }

    /// Starts `program args...` under strace in the lab root, stdin and stdout piped.
    fn start(&mut self, program: &str, args: &[&str]) -> Traced {
        let mut cmd = Command::new(program);
        cmd.args(args);
        self.start_command(cmd)
    }

    fn start_command(&mut self, mut cmd: Command) -> Traced {
        cmd.current_dir(&self.root);
        let process = self.next;
        self.next += 1;
        let trace = self.root.join(format!("trace-{process}"));
        let child = wrap(&cmd, &self.strace, &trace, None)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn strace");
        Traced { child, trace, process }
    }

    fn publisher(&mut self, lock: bool, sync: bool, pause: &str) -> Traced {
        let (lock, sync) = (if lock { "1" } else { "0" }, if sync { "1" } else { "0" });
        let mut python = python3();
        python.args(["-c", PUBLISHER, "c", lock, sync, pause]);
        self.start_command(python)
    }

    /// Reaps the process, waits for its trace to be complete and parses it.
    fn finish(&mut self, mut traced: Traced) -> std::process::ExitStatus {
        drop(traced.child.stdin.take());
        let status = traced.child.wait().expect("wait");
        assert!(wait_complete(&traced.trace, traced.child.id(), Duration::from_secs(20)), "trace incomplete");
        let parsed = read_trace(&traced.trace, traced.process).expect("read trace");
        assert_eq!(parsed.skipped_lines, 0, "unparsed lines in {}", traced.trace.display());
        self.traces.push(parsed);
        status
    }

    fn verdicts(&mut self) -> TraceVerdicts {
        check(&FsTrace::merge(std::mem::take(&mut self.traces)), &self.roles())
    }
}

impl Traced {
    fn ready(&mut self) {
        let stdout = self.child.stdout.as_mut().expect("piped stdout");
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).expect("read ready");
        assert_eq!(line.trim(), "ready");
    }

    fn resume(&mut self) {
        let stdin = self.child.stdin.as_mut().expect("piped stdin");
        stdin.write_all(b"go\n").expect("resume");
    }
}

#[test]
fn wrap_keeps_pid_exit_status_signal_env_and_cwd() {
    let mut lab = Lab::new();
    let mut cmd = Command::new("sh");
    cmd.args(["-c", r#"printf '%s|%s' "$FS_TRACE_X" "${HOME-unset}" > out; kill -KILL $$"#])
        .env("FS_TRACE_X", "v")
        .env_remove("HOME")
        .current_dir(&lab.root);
    let trace = lab.root.join("trace-sh");
    let mut child = wrap(&cmd, &lab.strace, &trace, None).spawn().expect("spawn");
    let status = child.wait().expect("wait");
    assert_eq!(status.signal(), Some(libc::SIGKILL), "{status:?}");
    assert!(wait_complete(&trace, child.id(), Duration::from_secs(20)));
    assert_eq!(std::fs::read_to_string(lab.root.join("out")).expect("out"), "v|unset");
    let parsed = read_trace(&trace, 0).expect("trace");
    let exit = parsed.events.iter().find(|e| e.op == FsOp::Exit).expect("exit event");
    assert_eq!(exit.pid, child.id(), "the traced program kept the spawned pid");
    let exited = lab.start("sh", &["-c", "exit 3"]);
    assert_eq!(lab.finish(exited).code(), Some(3));
}

#[test]
fn a_signal_injection_drops_the_seccomp_filter_and_each_expression_gets_its_own_flag() {
    let cmd = Command::new("prog");
    let inject = "close,fsync:signal=SIGSTOP;flock:delay_exit=1s";
    let wrapped = wrap(&cmd, Path::new("/usr/bin/strace"), Path::new("/t/trace"), Some(inject));
    let args: Vec<_> = wrapped.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    assert!(!args.iter().any(|a| a == "--seccomp-bpf"), "{args:?}");
    let injects: Vec<&String> = args.iter().filter(|a| a.starts_with("inject=")).collect();
    assert_eq!(injects, ["inject=close,fsync:signal=SIGSTOP", "inject=flock:delay_exit=1s"]);
    let delay_only =
        wrap(&cmd, Path::new("/usr/bin/strace"), Path::new("/t/trace"), Some("rename:delay_exit=1s"));
    assert!(delay_only.get_args().any(|a| a == "--seccomp-bpf"));
}

#[test]
fn wrap_builds_the_strace_command() {
    let mut cmd = Command::new("prog");
    cmd.args(["a b", "--x"]).env("K", "v").env_remove("R").current_dir("/somewhere");
    let wrapped = wrap(&cmd, Path::new("/usr/bin/strace"), Path::new("/t/trace"), None);
    assert_eq!(wrapped.get_program(), "/usr/bin/strace");
    let args: Vec<_> = wrapped.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    let expected = "-D --seccomp-bpf -f -q -ttt -T -y -s 0 -o /t/trace -e";
    assert_eq!(args[..12].join(" "), expected);
    assert_eq!(args[12], format!("trace={TRACED_SYSCALLS}"));
    assert!(!args[12].contains(char::is_whitespace) && args[12].ends_with(",sendfile"));
    assert_eq!(args[13..], ["--", "prog", "a b", "--x"]);
    let envs: Vec<_> = wrapped.get_envs().collect();
    assert_eq!(
        envs,
        [(std::ffi::OsStr::new("K"), Some(std::ffi::OsStr::new("v"))), (std::ffi::OsStr::new("R"), None)]
    );
    assert_eq!(wrapped.get_current_dir(), Some(Path::new("/somewhere")));
}

#[test]
fn wait_complete_times_out_without_the_exit_line() {
    let dir = tempfile::tempdir().expect("tempdir");
    let trace = dir.path().join("t");
    std::fs::write(&trace, "12 1.000000 +++ exited with 0 +++\n123 1.000001 close(3</x>) = 0 <0.1>\n123 1.0")
        .expect("write");
    assert!(!wait_complete(&trace, 123, Duration::from_millis(30)));
    assert!(!wait_complete(&dir.path().join("missing"), 123, Duration::from_millis(10)));
    let mut file = std::fs::OpenOptions::new().append(true).open(&trace).expect("open");
    file.write_all(b"00002 +++ killed by SIGKILL +++\n").expect("append");
    assert!(wait_complete(&trace, 123, Duration::from_millis(30)));
}

#[test]
fn correct_publisher_holds_every_property() {
    let mut lab = Lab::new();
    let publisher = lab.publisher(true, true, "");
    assert!(lab.finish(publisher).success());
    let verdicts = lab.verdicts();
    assert!(verdicts.all_held(), "{verdicts:#?}");
    assert_eq!(verdicts.writer_holds_exclusive_lock, Some(Vec::new()));
    assert!(verdicts.events > 10, "{verdicts:#?}");
}

#[test]
fn cp_onto_a_final_is_not_atomic() {
    let mut lab = Lab::new();
    std::fs::write(lab.root.join("model"), b"weights").expect("source");
    let cp = lab.start("cp", &["model", "c/m.onnx"]);
    let pid = cp.child.id();
    assert!(lab.finish(cp).success());
    let evidence = lab.verdicts().final_published_atomically;
    assert!(!evidence.is_empty(), "cp must be caught");
    assert!(evidence[0].starts_with(&format!("pid {pid} opened final ")), "{evidence:#?}");
    assert!(evidence.iter().any(|e| e.contains("wrote to final")), "{evidence:#?}");
}

#[test]
fn removing_another_process_live_temp_is_caught() {
    let mut lab = Lab::new();
    std::fs::write(lab.root.join("c/old.onnx.partial"), b"stale").expect("stale temp");
    let mut writer = lab.publisher(false, true, "temp");
    writer.ready();
    // Removing a stale temp nobody has open is fine; removing the writer's live temp is not.
    let sweep = lab.start("rm", &["c/old.onnx.partial"]);
    assert!(lab.finish(sweep).success());
    let rm = lab.start("rm", &["c/m.onnx.partial"]);
    let rm_pid = rm.child.id();
    assert!(lab.finish(rm).success());
    writer.resume();
    assert_eq!(lab.finish(writer).code(), Some(3), "the writer lost its temp");
    let evidence = lab.verdicts().live_temp_files_left_alone;
    assert_eq!(evidence.len(), 1, "{evidence:#?}");
    assert!(evidence[0].starts_with(&format!("pid {rm_pid} unlinked live temp ")), "{evidence:#?}");
    assert!(evidence[0].contains("/c/m.onnx.partial"), "{evidence:#?}");
}

#[test]
fn lock_file_removed_under_its_holder_is_caught() {
    let mut lab = Lab::new();
    let mut holder = lab.publisher(true, true, "lock");
    holder.ready();
    // A contender that waits its turn is fine.
    let waiter = lab.start("flock", &["c/m.lock", "true"]);
    holder.resume();
    assert!(lab.finish(holder).success());
    assert!(lab.finish(waiter).success());
    assert!(lab.verdicts().lock_files_stable.is_empty());
    // One that removes the lock file and takes a lock on a fresh one is not.
    let mut holder = lab.publisher(true, true, "lock");
    holder.ready();
    let breaker = lab.start("sh", &["-c", "rm c/m.lock && flock c/m.lock true"]);
    assert!(lab.finish(breaker).success());
    holder.resume();
    assert!(lab.finish(holder).success());
    let evidence = lab.verdicts().lock_files_stable;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert!(
        evidence[0].contains("unlinked lock file ") && evidence[0].contains("/c/m.lock"),
        "{evidence:#?}"
    );
    assert!(evidence[1].contains("held exclusive locks on two different files named"), "{evidence:#?}");
}

#[test]
fn publish_without_fsync_is_not_durable() {
    let mut lab = Lab::new();
    let publisher = lab.publisher(true, false, "");
    assert!(lab.finish(publisher).success());
    let verdicts = lab.verdicts();
    let evidence = &verdicts.published_durably;
    assert_eq!(evidence.len(), 2, "{evidence:#?}");
    assert!(evidence[0].contains("without an fsync of "), "{evidence:#?}");
    assert!(evidence[1].contains("but did not fsync the directory "), "{evidence:#?}");
    assert!(verdicts.final_published_atomically.is_empty() && verdicts.lock_files_stable.is_empty());
}

#[test]
fn publish_without_the_lock_is_caught() {
    let mut lab = Lab::new();
    let mv = lab.start("sh", &["-c", "printf x > c/m.onnx.partial && sync && mv c/m.onnx.partial c/m.onnx"]);
    assert!(lab.finish(mv).success());
    let evidence = lab.verdicts().writer_holds_exclusive_lock.expect("the cache declares lock files");
    assert_eq!(evidence.len(), 1, "{evidence:#?}");
    assert!(evidence[0].contains("published ") && evidence[0].contains("without holding an exclusive lock"));
    assert!(Path::new(&lab.root.join("c/m.onnx")).exists());
}
