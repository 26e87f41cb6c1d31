//! `cached-path-cli get --url URL --cache-dir DIR [--out FILE]`: resolves URL through the `cached-path`
//! crate's on-disk cache in DIR, prints the absolute path of the cached file as one line on stdout and,
//! with `--out`, copies it to FILE.
//!
//! Exit codes: 0 ok, 64 usage, 1 network/HTTP (including non-2xx statuses), 2 local I/O, 3 anything
//! else. Errors are one line on stderr.

use std::error::Error as StdError;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use cached_path::{CacheBuilder, Error as CacheError};

const EXIT_NETWORK: u8 = 1;
const EXIT_IO: u8 = 2;
const EXIT_OTHER: u8 = 3;
const EXIT_USAGE: u8 = 64;

const USAGE: &str = "usage: cached-path-cli get --url URL --cache-dir DIR [--out FILE]";

/// Retries after a retriable failure (timeouts, 502/503/504); the crate's default is 3.
const MAX_RETRIES: u32 = 2;
/// Cap of the crate's exponential backoff, in ms (default 5000): keeps stress runs short.
const MAX_BACKOFF_MS: u32 = 1000;
/// Whole-request timeout (the crate's default is none) and connect timeout.
const TIMEOUT: Duration = Duration::from_secs(5);

struct Failure {
    code: u8,
    message: String,
}

impl Failure {
    fn new(code: u8, message: impl Into<String>) -> Self {
        Failure { code, message: message.into() }
    }
}

struct Args {
    url: String,
    cache_dir: PathBuf,
    out: Option<PathBuf>,
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(failure) => {
            let line = failure.message.split_whitespace().collect::<Vec<_>>().join(" ");
            let _ = writeln!(io::stderr(), "cached-path-cli: {line}");
            ExitCode::from(failure.code)
        }
    }
}

fn run() -> Result<(), Failure> {
    let args = parse_args(std::env::args_os().skip(1))?;
    let cache_dir = std::path::absolute(&args.cache_dir)
        .map_err(|e| Failure::new(EXIT_IO, format!("cache dir {}: {e}", args.cache_dir.display())))?;
    let cache = CacheBuilder::new()
        .dir(cache_dir)
        .offline(false)
        .max_retries(MAX_RETRIES)
        .max_backoff(MAX_BACKOFF_MS)
        .timeout(TIMEOUT)
        .connect_timeout(TIMEOUT)
        .build()
        .map_err(|e| match e {
            CacheError::IoError(io) => Failure::new(EXIT_IO, format!("cannot create cache dir: {io}")),
            other => Failure::new(EXIT_OTHER, format!("cannot set up cache: {}", chain(&other))),
        })?;
    let path = cache.cached_path(&args.url).map_err(classify)?;
    let path = std::path::absolute(&path).unwrap_or(path);
    if let Some(out) = &args.out {
        copy_out(&path, out)?;
    }
    let mut stdout = io::stdout().lock();
    writeln!(stdout, "{}", path.display())
        .and_then(|()| stdout.flush())
        .map_err(|e| Failure::new(EXIT_IO, format!("cannot write stdout: {e}")))
}

fn parse_args(mut it: impl Iterator<Item = std::ffi::OsString>) -> Result<Args, Failure> {
    let usage = |msg: &str| Failure::new(EXIT_USAGE, format!("{msg}; {USAGE}"));
    match it.next() {
        Some(cmd) if cmd == "get" => {}
        Some(cmd) if cmd == "--help" || cmd == "-h" => return Err(usage("help requested")),
        Some(cmd) => return Err(usage(&format!("unknown command {:?}", cmd))),
        None => return Err(usage("missing command")),
    }
    let (mut url, mut cache_dir, mut out) = (None, None, None);
    while let Some(flag) = it.next() {
        let flag = flag.to_str().map(str::to_owned).ok_or_else(|| usage("non-UTF-8 argument"))?;
        let (name, inline) = match flag.split_once('=') {
            Some((n, v)) => (n.to_owned(), Some(std::ffi::OsString::from(v))),
            None => (flag.clone(), None),
        };
        let slot = match name.as_str() {
            "--url" => &mut url,
            "--cache-dir" => &mut cache_dir,
            "--out" => &mut out,
            _ => return Err(usage(&format!("unknown argument {flag:?}"))),
        };
        if slot.is_some() {
            return Err(usage(&format!("{name} given twice")));
        }
        let value = match inline {
            Some(v) => v,
            None => it.next().ok_or_else(|| usage(&format!("{name} needs a value")))?,
        };
        if value.is_empty() {
            return Err(usage(&format!("{name} must not be empty")));
        }
        *slot = Some(value);
    }
    let url = url
        .ok_or_else(|| usage("missing --url"))?
        .into_string()
        .map_err(|_| usage("--url is not UTF-8"))?;
    // cached-path treats anything not starting with "http" as a local file; this CLI is for URLs only.
    if !(url.starts_with("http://") || url.starts_with("https://")) {
        return Err(usage(&format!("--url must be an http(s) URL, got {url:?}")));
    }
    let cache_dir = PathBuf::from(cache_dir.ok_or_else(|| usage("missing --cache-dir"))?);
    Ok(Args { url, cache_dir, out: out.map(PathBuf::from) })
}

fn copy_out(from: &Path, to: &Path) -> Result<(), Failure> {
    let fail = |e: io::Error| Failure::new(EXIT_IO, format!("cannot copy {} to {}: {e}", from.display(), to.display()));
    if let Some(parent) = to.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(fail)?;
    }
    std::fs::copy(from, to).map(drop).map_err(fail)
}

/// Maps a `cached_path::Error` to an exit code.
fn classify(e: CacheError) -> Failure {
    let message = chain(&e);
    let code = match &e {
        CacheError::InvalidUrl(_) | CacheError::ResourceNotFound(_) => EXIT_USAGE,
        CacheError::IoError(_) => EXIT_IO,
        CacheError::HttpError(http) => {
            // reqwest reports a failed *write* of the body to the temp file (disk full, EIO) as a
            // decode error wrapping the OS error; everything else here is the network or the server.
            if (http.is_decode() || http.is_body()) && local_io_error(http) {
                EXIT_IO
            } else {
                EXIT_NETWORK
            }
        }
        _ => EXIT_OTHER,
    };
    Failure::new(code, message)
}

/// An OS error in the source chain whose kind is not a network one: a local file-system failure.
fn local_io_error(e: &(dyn StdError + 'static)) -> bool {
    let mut cur: Option<&(dyn StdError + 'static)> = Some(e);
    while let Some(err) = cur {
        if let Some(io) = err.downcast_ref::<io::Error>()
            && io.raw_os_error().is_some()
        {
            use io::ErrorKind::*;
            return !matches!(
                io.kind(),
                ConnectionReset
                    | ConnectionAborted
                    | ConnectionRefused
                    | NotConnected
                    | BrokenPipe
                    | TimedOut
                    | UnexpectedEof
                    | Interrupted
                    | WouldBlock
                    | NetworkDown
                    | NetworkUnreachable
                    | HostUnreachable
            );
        }
        cur = err.source();
    }
    false
}

/// The error and its sources on one line.
fn chain(e: &(dyn StdError + 'static)) -> String {
    let mut parts = vec![e.to_string()];
    let mut cur = e.source();
    while let Some(err) = cur {
        let s = err.to_string();
        if !parts.iter().any(|p| p.contains(&s)) {
            parts.push(s);
        }
        cur = err.source();
    }
    parts.join(": ")
}
