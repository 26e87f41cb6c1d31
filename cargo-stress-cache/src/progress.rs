//! Overall progress of long work (`mutants`: mutant i/N; `--repeat N`: repeat i/N) as an indicatif
//! bar on a terminal, with an ETA and the kills so far; without a terminal, the plain log lines alone.
//!
//! While a bar is shown, every other line on stderr goes above it: this process's log lines (through
//! [`LogWriter`]) and nextest's output, which [`crate::nextest::run_interruptibly`] then pipes through
//! [`println`] instead of letting it write over the bar.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// The bar on screen, if any.
static ACTIVE: Mutex<Option<ProgressBar>> = Mutex::new(None);

/// An overall progress bar, cleared when dropped.
#[derive(Debug)]
pub struct Progress {
    bar: Option<ProgressBar>,
}

impl Progress {
    /// A bar over `total` items of `what` (`mutant`, `repeat`) on a terminal stderr; nothing otherwise,
    /// nor for a single item (the log lines say all there is).
    pub fn start(what: &str, total: u64) -> Self {
        if total < 2 || !std::io::stderr().is_terminal() {
            return Progress { bar: None };
        }
        let style = ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} · ETA {eta} · {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr())
            .with_style(style)
            .with_prefix(what.to_string());
        bar.enable_steady_tick(Duration::from_millis(500));
        if let Ok(mut active) = ACTIVE.lock() {
            *active = Some(bar.clone());
        }
        Progress { bar: Some(bar) }
    }

    /// Item `index` (0-based) is starting.
    pub fn item(&self, index: usize, message: String) {
        if let Some(bar) = &self.bar {
            bar.set_position(index as u64);
            bar.set_message(message);
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        if let Some(bar) = self.bar.take() {
            if let Ok(mut active) = ACTIVE.lock() {
                *active = None;
            }
            bar.finish_and_clear();
        }
    }
}

/// Whether a bar is on screen (then child output must go through [`println`]).
pub fn active() -> bool {
    ACTIVE.lock().map(|a| a.is_some()).unwrap_or(false)
}

/// Writes `line` to stderr, above the bar when one is shown.
pub fn println(line: &str) {
    let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
    match bar {
        Some(bar) => bar.println(line),
        None => {
            let _ = writeln!(std::io::stderr().lock(), "{line}");
        }
    }
}

/// The log's stderr writer: above the bar while one is shown.
pub struct LogWriter;

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ACTIVE.lock().ok().and_then(|a| a.clone());
        match bar {
            Some(bar) => {
                let text = String::from_utf8_lossy(buf);
                bar.suspend(|| std::io::stderr().lock().write_all(text.as_bytes()))?;
                Ok(buf.len())
            }
            None => std::io::stderr().lock().write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}
