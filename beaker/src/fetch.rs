//! HTTP download of a model with ureq: connect and read timeouts, redirects, and bounded retries with
//! exponential backoff for transient failures (refused, reset, timeout, early close / short body,
//! 5xx, 429 honouring `Retry-After`). Other 4xx are final. Every outcome is classified into a
//! [`BeakerError`]: network → exit 3, local write failure → exit 5, bad URL → exit 2.
//!
//! Each attempt streams into a fresh [`Partial`] from the caller (unique per attempt); an attempt that
//! fails drops its partial, which removes it.

use std::io::{IsTerminal, Read};
use std::time::Duration;

use crate::config::{Config, ENV_MODEL_URL, MAX_BACKOFF};
use crate::error::{BeakerError, Result};
use crate::failpoints;
use crate::fsio::Partial;

/// Read buffer size.
const CHUNK: usize = 64 * 1024;
/// Redirects followed.
const MAX_REDIRECTS: u32 = 5;

/// What a successful download cost.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadStats {
    /// Attempts made (1 = no retry).
    pub attempts: u32,
    /// Body bytes received over all attempts (including failed ones).
    pub bytes_received: u64,
}

/// The HTTP agent configured from `cfg` (timeouts, redirects).
pub fn agent(cfg: &Config) -> ureq::Agent {
    let builder = ureq::AgentBuilder::new()
        .redirects(MAX_REDIRECTS)
        .user_agent(concat!("beaker/", env!("CARGO_PKG_VERSION")));
    let builder = crate::mutant_or!(NoTimeout => builder,
        else builder.timeout_connect(cfg.connect_timeout).timeout_read(cfg.read_timeout));
    builder.build()
}

/// Backoff before attempt `next_attempt` (2, 3, ...): `base * 2^(next_attempt - 2)`, or the server's
/// `Retry-After`, both capped at [`MAX_BACKOFF`].
pub fn backoff(base: Duration, next_attempt: u32, retry_after: Option<Duration>) -> Duration {
    let exp = next_attempt.saturating_sub(2).min(20);
    retry_after.unwrap_or_else(|| base.saturating_mul(1u32 << exp)).min(MAX_BACKOFF)
}

/// Parses `Retry-After` given in seconds (an HTTP date is ignored: the exponential backoff applies).
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    value.trim().parse::<u64>().ok().map(Duration::from_secs)
}

enum AttemptError {
    Retry { cause: String, retry_after: Option<Duration> },
    Fatal(BeakerError),
}

fn retry(cause: impl Into<String>) -> AttemptError {
    AttemptError::Retry { cause: cause.into(), retry_after: None }
}

/// Downloads `url` into a partial from `open` (called once per attempt, after a 2xx response), with
/// retries. Returns the complete, not yet fsynced partial: the caller syncs, verifies and publishes.
pub fn download(
    cfg: &Config,
    url: &str,
    open: &mut dyn FnMut() -> Result<Partial>,
) -> Result<(Partial, DownloadStats)> {
    let agent = agent(cfg);
    let mut stats = DownloadStats::default();
    let mut last_cause = String::new();
    for attempt in 1..=cfg.max_attempts {
        stats.attempts = attempt;
        match attempt_once(&agent, url, open, &mut stats) {
            Ok(partial) => return Ok((partial, stats)),
            Err(AttemptError::Fatal(BeakerError::Network { cause, .. })) => {
                return Err(BeakerError::Network { url: url.to_string(), attempts: attempt, cause });
            }
            Err(AttemptError::Fatal(e)) => return Err(e),
            Err(AttemptError::Retry { cause, retry_after }) => {
                // info, not warn: by default stderr carries only the one final error line.
                log::info!("download of {url}, attempt {attempt}/{}: {cause}", cfg.max_attempts);
                last_cause = cause;
                if attempt < cfg.max_attempts {
                    let wait = backoff(cfg.retry_base, attempt + 1, retry_after);
                    log::info!("retrying in {} ms", wait.as_millis());
                    std::thread::sleep(wait);
                }
            }
        }
    }
    Err(BeakerError::Network { url: url.to_string(), attempts: stats.attempts, cause: last_cause })
}

fn attempt_once(
    agent: &ureq::Agent,
    url: &str,
    open: &mut dyn FnMut() -> Result<Partial>,
    stats: &mut DownloadStats,
) -> Result<Partial, AttemptError> {
    let response = match agent.get(url).call() {
        Ok(response) => response,
        Err(ureq::Error::Status(code, response)) => {
            let cause = format!("HTTP {code} {}", response.status_text());
            return Err(match code {
                429 => AttemptError::Retry {
                    cause,
                    retry_after: response.header("Retry-After").and_then(parse_retry_after),
                },
                500..=599 => retry(cause),
                _ => AttemptError::Fatal(BeakerError::Network { url: url.to_string(), attempts: 0, cause }),
            });
        }
        Err(ureq::Error::Transport(t)) => return Err(classify_transport(url, &t)),
    };
    let expected = response.header("Content-Length").and_then(|v| v.trim().parse::<u64>().ok());
    let mut partial = open().map_err(AttemptError::Fatal)?;
    let progress = progress_bar(expected);
    let mut reader = response.into_reader();
    let mut buf = vec![0u8; CHUNK];
    let mut read_error = None;
    for _ in 0..u32::MAX {
        let n = match reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => {
                let unwrap: bool = crate::mutant_or!(UnwrapReadError => true, else false);
                if unwrap {
                    panic!("reading the response body failed: {e}");
                }
                read_error = Some(e);
                break;
            }
        };
        let first = partial.is_empty();
        partial.write_chunk(&buf[..n]).map_err(AttemptError::Fatal)?;
        stats.bytes_received += n as u64;
        progress.inc(n as u64);
        if first {
            failpoints::check(failpoints::CACHE_MID_DOWNLOAD, "write", partial.path())
                .map_err(AttemptError::Fatal)?;
        }
    }
    progress.finish_and_clear();
    let got = partial.len();
    if let Some(e) = read_error {
        let what = match e.kind() {
            std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => "read timed out".to_string(),
            std::io::ErrorKind::UnexpectedEof => "connection closed early".to_string(),
            _ => e.to_string(),
        };
        let of = expected.map(|n| format!(" of {n}")).unwrap_or_default();
        return Err(retry(format!("{what} after {got}{of} bytes")));
    }
    if let Some(len) = expected
        && got != len
    {
        return Err(retry(format!("short body: {got} of {len} bytes (Content-Length)")));
    }
    Ok(partial)
}

fn classify_transport(url: &str, t: &ureq::Transport) -> AttemptError {
    use ureq::ErrorKind as K;
    // ureq's Display starts with the URL, which the final error already names.
    let mut cause = t.kind().to_string();
    if let Some(message) = t.message() {
        cause.push_str(&format!(": {message}"));
    }
    if let Some(source) = std::error::Error::source(t) {
        cause.push_str(&format!(": {source}"));
    }
    let cause = one_line(&cause);
    match t.kind() {
        K::InvalidUrl | K::UnknownScheme | K::InsecureRequestHttpsOnly | K::InvalidProxyUrl => {
            let reason = if t.kind() == K::UnknownScheme && url.starts_with("https://") {
                "https support is not compiled in (cargo feature `https`)".to_string()
            } else {
                cause
            };
            AttemptError::Fatal(BeakerError::Config { var: ENV_MODEL_URL, value: url.to_string(), reason })
        }
        K::TooManyRedirects => {
            AttemptError::Fatal(BeakerError::Network { url: url.to_string(), attempts: 0, cause })
        }
        // Refused, reset, DNS hiccup, timeout, a garbled or truncated status line or header.
        _ => retry(cause),
    }
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn progress_bar(len: Option<u64>) -> indicatif::ProgressBar {
    if !std::io::stderr().is_terminal() {
        return indicatif::ProgressBar::hidden();
    }
    let bar = match len {
        Some(len) => indicatif::ProgressBar::new(len),
        None => indicatif::ProgressBar::new_spinner(),
    };
    if let Ok(style) = indicatif::ProgressStyle::with_template(
        "downloading model {bar:30} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style);
    }
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let base = Duration::from_millis(100);
        assert_eq!(backoff(base, 2, None), Duration::from_millis(100));
        assert_eq!(backoff(base, 3, None), Duration::from_millis(200));
        assert_eq!(backoff(base, 5, None), Duration::from_millis(800));
        assert_eq!(backoff(base, 40, None), MAX_BACKOFF);
        assert_eq!(backoff(base, 2, Some(Duration::from_secs(2))), Duration::from_secs(2));
        assert_eq!(backoff(base, 2, Some(Duration::from_secs(3600))), MAX_BACKOFF);
    }

    #[test]
    fn retry_after_seconds_only() {
        assert_eq!(parse_retry_after(" 3 "), Some(Duration::from_secs(3)));
        assert_eq!(parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"), None);
    }
}
