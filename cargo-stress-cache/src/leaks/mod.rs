//! Leak check of the harness itself (nightly part 8): after the tier, nothing the run started may be
//! left — no process, zombie, file descriptor, temp dir, mount or listening socket. Two sources:
//!
//! - what the temp-dir cleaner had to remove after each nextest run ([`from_cleaned`]): a scenario that
//!   cleaned up after itself leaves its `STRESS_TMP_DIR` empty, so whatever the cleaner killed, unmounted
//!   or removed there was leaked by the suite;
//! - [`check`] at the end, from `/proc`: processes naming the run dir (command line, environment, working
//!   directory — ancestors of the CLI, which name it in `--run-dir`, aside), unreaped children of the CLI
//!   or of such processes, descriptors the CLI opened since [`Baseline::take`], entries left in the temp
//!   dirs, mounts under the run dir, and listening TCP sockets of the CLI or of such processes.
//!
//! Bounded: every scan reads each `/proc` entry once.

use std::collections::BTreeSet;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use stress_cache_metadata::LeakCounts;

use crate::tmpdir::{self, Cleaned};

/// Most `/proc` entries one scan reads.
const MAX_PROC_ENTRIES: usize = 1_000_000;

/// The CLI's open descriptors when the run started.
#[derive(Debug, Clone, Default)]
pub struct Baseline {
    fds: BTreeSet<(String, String)>,
}

impl Baseline {
    /// This process's descriptors now.
    pub fn take() -> Self {
        Baseline { fds: own_fds() }
    }
}

/// This process's descriptors as `(number, target)`, without the one listing them.
fn own_fds() -> BTreeSet<(String, String)> {
    let me = format!("/proc/{}/fd", std::process::id());
    let Ok(entries) = std::fs::read_dir("/proc/self/fd") else { return BTreeSet::new() };
    entries
        .flatten()
        .take(MAX_PROC_ENTRIES)
        .map(|e| {
            let target = std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default();
            (e.file_name().to_string_lossy().into_owned(), target)
        })
        .filter(|(_, target)| !target.starts_with(&me) && !target.starts_with("/proc/self/fd"))
        .collect()
}

/// What the cleaner found after a nextest run, as leaks (`label`: which run).
pub fn from_cleaned(cleaned: &Cleaned, label: &str) -> LeakCounts {
    let mut leaks = LeakCounts {
        processes: cleaned.killed.len(),
        mounts: cleaned.unmounted.len(),
        temp_dirs: cleaned.removed.len() + cleaned.left.len(),
        ..LeakCounts::default()
    };
    leaks
        .evidence
        .extend(cleaned.killed.iter().map(|p| format!("{label}: process {p} still running in the temp dir")));
    leaks
        .evidence
        .extend(cleaned.unmounted.iter().map(|m| format!("{label}: {} still mounted", m.display())));
    leaks.evidence.extend(cleaned.removed.iter().map(|r| format!("{label}: {r} left in the temp dir")));
    leaks.evidence.extend(cleaned.left.iter().map(|r| format!("{label}: could not clean {r}")));
    leaks
}

/// One `/proc/<pid>` as the check sees it.
struct Proc {
    pid: u32,
    ppid: u32,
    state: char,
    comm: String,
    cmdline: Vec<u8>,
    names_scope: bool,
}

fn read_proc(pid: u32, scope: &[u8]) -> Option<Proc> {
    let dir = PathBuf::from(format!("/proc/{pid}"));
    let stat = std::fs::read_to_string(dir.join("stat")).ok()?;
    // `pid (comm) state ppid ...`: comm may hold spaces and parentheses, so split at the last `)`.
    let close = stat.rfind(')')?;
    let comm = stat.get(stat.find('(')? + 1..close)?.to_string();
    let mut rest = stat[close + 1..].split_whitespace();
    let state = rest.next()?.chars().next()?;
    let ppid = rest.next()?.parse().ok()?;
    let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
    let contains = |bytes: &[u8]| !scope.is_empty() && bytes.windows(scope.len()).any(|w| w == scope);
    let names_scope = contains(&cmdline)
        || std::fs::read(dir.join("environ")).is_ok_and(|e| contains(&e))
        || std::fs::read_link(dir.join("cwd")).is_ok_and(|c| contains(c.as_os_str().as_bytes()));
    Some(Proc { pid, ppid, state, comm, cmdline, names_scope })
}

fn all_procs(scope: &[u8]) -> Vec<Proc> {
    let Ok(entries) = std::fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .take(MAX_PROC_ENTRIES)
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter_map(|pid| read_proc(pid, scope))
        .collect()
}

/// This process and its ancestors (they name the run dir on their command lines: `--run-dir`).
fn ancestors(procs: &[Proc]) -> BTreeSet<u32> {
    let mut set = BTreeSet::from([std::process::id()]);
    let mut pid = std::process::id();
    for _ in 0..procs.len() {
        match procs.iter().find(|p| p.pid == pid) {
            Some(p) if p.ppid > 1 && set.insert(p.ppid) => pid = p.ppid,
            _ => break,
        }
    }
    set
}

/// The leak check at the end of a run (see the module doc). `tmp_dirs`: the suite's temp dirs, which
/// must be gone or empty.
pub fn check(baseline: &Baseline, run_dir: &Path, tmp_dirs: &[PathBuf]) -> LeakCounts {
    let root = run_dir.canonicalize().unwrap_or_else(|_| run_dir.to_path_buf());
    let scope = root.as_os_str().as_bytes().to_vec();
    let me = std::process::id();
    let procs = all_procs(&scope);
    let mine = ancestors(&procs);
    let mut leaks = LeakCounts::default();
    let mut owners = BTreeSet::from([me]);
    for p in procs.iter().filter(|p| !mine.contains(&p.pid) && p.state != 'Z') {
        if p.names_scope || p.ppid == me {
            owners.insert(p.pid);
            leaks.processes += 1;
            let cmd = String::from_utf8_lossy(&p.cmdline).replace('\0', " ");
            leaks.evidence.push(format!(
                "process {} ({}) still running: {}",
                p.pid,
                p.comm,
                truncate(&cmd, 160)
            ));
        }
    }
    for p in procs.iter().filter(|p| p.state == 'Z' && (p.ppid == me || owners.contains(&p.ppid))) {
        leaks.zombies += 1;
        leaks.evidence.push(format!("zombie {} ({}), child of {} never reaped", p.pid, p.comm, p.ppid));
    }
    let listening = listening_sockets();
    let is_listening = |target: &str| {
        let inode = target.strip_prefix("socket:[").and_then(|t| t.strip_suffix(']')?.parse::<u64>().ok());
        inode.is_some_and(|i| listening.iter().any(|(l, _)| *l == i))
    };
    // A listening socket is reported once, as a socket.
    for (fd, target) in own_fds().difference(&baseline.fds).filter(|(_, t)| !is_listening(t)) {
        leaks.fds += 1;
        leaks.evidence.push(format!("descriptor {fd} of the harness still open: {target}"));
    }
    for dir in tmp_dirs {
        let Ok(entries) = std::fs::read_dir(dir) else { continue };
        for e in entries.flatten().take(MAX_PROC_ENTRIES) {
            leaks.temp_dirs += 1;
            leaks.evidence.push(format!("{} left in the temp dir", e.path().display()));
        }
    }
    if let Ok(text) = std::fs::read_to_string("/proc/self/mountinfo") {
        for point in tmpdir::mount_points(&text).into_iter().filter(|p| p.starts_with(&root)) {
            leaks.mounts += 1;
            leaks.evidence.push(format!("{} still mounted", point.display()));
        }
    }
    for pid in &owners {
        for (inode, addr) in socket_inodes(*pid).iter().filter_map(|i| listening.iter().find(|(l, _)| l == i))
        {
            leaks.sockets += 1;
            leaks.evidence.push(format!("process {pid} still listens on {addr} (socket inode {inode})"));
        }
    }
    leaks
}

fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}...", &s[..i]),
        None => s.to_string(),
    }
}

/// Inodes of the sockets `pid` has open (`socket:[<inode>]` descriptors).
fn socket_inodes(pid: u32) -> Vec<u64> {
    let Ok(entries) = std::fs::read_dir(format!("/proc/{pid}/fd")) else { return Vec::new() };
    entries
        .flatten()
        .take(MAX_PROC_ENTRIES)
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|t| t.to_str()?.strip_prefix("socket:[")?.strip_suffix(']')?.parse().ok())
        .collect()
}

/// `(inode, local address)` of every listening TCP socket (`/proc/net/tcp{,6}`, state `0A`).
fn listening_sockets() -> Vec<(u64, String)> {
    let mut out = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else { continue };
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() > 9
                && fields[3] == "0A"
                && let Ok(inode) = fields[9].parse()
            {
                out.push((inode, local_address(fields[1])));
            }
        }
    }
    out
}

/// `0100007F:1F90` → `127.0.0.1:8080` (IPv4; IPv6 addresses are shown as the kernel writes them).
fn local_address(field: &str) -> String {
    let Some((ip, port)) = field.split_once(':') else { return field.to_string() };
    let port = u16::from_str_radix(port, 16).map(|p| p.to_string()).unwrap_or_else(|_| port.to_string());
    match u32::from_str_radix(ip, 16) {
        Ok(v) if ip.len() == 8 => format!("{}:{port}", std::net::Ipv4Addr::from(v.swap_bytes())),
        _ => format!("[{ip}]:{port}"),
    }
}

#[cfg(test)]
mod tests;
