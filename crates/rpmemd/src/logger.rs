//! A small `log` backend: a log file, syslog (/dev/log) or stderr. Never
//! stdout, which carries the protocol.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rpmem_proto::text::escape_controls;

use crate::error::{DaemonError, Result};
use crate::options::{LogLevel, Settings};

enum Sink {
    File(File),
    Syslog(UnixDatagram),
    Stderr,
}

struct Logger {
    sink: Sink,
    pid: u32,
    limiter: Mutex<Limiter>,
}

static TO_STDERR: AtomicBool = AtomicBool::new(false);

/// Whether an installed logger writes to stderr.
pub fn writes_stderr() -> bool {
    TO_STDERR.load(Ordering::SeqCst)
}

/// rpmemd's levels onto the `log` crate's: notice is `Info`, info is
/// `Debug`, debug is `Trace`.
pub fn filter(level: LogLevel) -> LevelFilter {
    match level {
        LogLevel::Err => LevelFilter::Error,
        LogLevel::Warn => LevelFilter::Warn,
        LogLevel::Notice => LevelFilter::Info,
        LogLevel::Info => LevelFilter::Debug,
        LogLevel::Debug => LevelFilter::Trace,
    }
}

fn name(level: Level) -> &'static str {
    match level {
        Level::Error => "err",
        Level::Warn => "warn",
        Level::Info => "notice",
        Level::Debug => "info",
        Level::Trace => "debug",
    }
}

fn syslog_severity(level: Level) -> u8 {
    match level {
        Level::Error => 3,
        Level::Warn => 4,
        Level::Info => 5,
        Level::Debug => 6,
        Level::Trace => 7,
    }
}

/// How long a call site's burst allowance lasts.
const WINDOW: Duration = Duration::from_secs(1);
/// Lines one call site may write per window; the rest are counted.
const BURST: u32 = 10;

/// One call site's share of the log.
struct Site {
    window_start: Instant,
    written: u32,
    left_out: u64,
    level: Level,
    last: String,
}

/// Rate limit per call site (file and line), so a message logged in a loop
/// (one per request) cannot fill the disk.
#[derive(Default)]
struct Limiter {
    sites: HashMap<(&'static str, u32), Site>,
}

impl Limiter {
    /// Whether a record of `key` may be written now, and the summary of what
    /// an earlier window left out, if anything.
    fn admit(
        &mut self,
        key: (&'static str, u32),
        level: Level,
        text: &str,
        now: Instant,
    ) -> (bool, Option<(Level, String)>) {
        let site = self.sites.entry(key).or_insert_with(|| Site {
            window_start: now,
            written: 0,
            left_out: 0,
            level,
            last: String::new(),
        });
        let mut summary = None;
        if now.duration_since(site.window_start) >= WINDOW {
            summary = Self::summary(key, site);
            site.window_start = now;
            site.written = 0;
        }
        if site.written < BURST {
            site.written += 1;
            (true, summary)
        } else {
            site.left_out += 1;
            site.level = level;
            text.clone_into(&mut site.last);
            (false, summary)
        }
    }

    fn summary(key: (&'static str, u32), site: &mut Site) -> Option<(Level, String)> {
        if site.left_out == 0 {
            return None;
        }
        let n = std::mem::take(&mut site.left_out);
        Some((
            site.level,
            format!(
                "left out {n} more lines like this ({}:{}, at most {BURST} a second): {}",
                key.0, key.1, site.last
            ),
        ))
    }

    /// The summaries of every site with lines left out.
    fn drain(&mut self) -> Vec<(Level, String)> {
        self.sites
            .iter_mut()
            .filter_map(|(k, s)| Self::summary(*k, s))
            .collect()
    }
}

impl Logger {
    /// Writes one record as one line with a single write, so daemons
    /// sharing a log file (opened O_APPEND) never mix their lines.
    fn write(&self, level: Level, text: &str) {
        let line = format!("rpmemd[{}] {}: {text}\n", self.pid, name(level));
        match &self.sink {
            Sink::File(f) => {
                let _ = (&*f).write_all(line.as_bytes());
            }
            Sink::Syslog(sock) => {
                // LOG_DAEMON facility (3).
                let msg = format!(
                    "<{}>rpmemd[{}]: {text}",
                    3 * 8 + syslog_severity(level),
                    self.pid
                );
                if sock.send_to(msg.as_bytes(), "/dev/log").is_err() {
                    let _ = std::io::stderr().write_all(line.as_bytes());
                }
            }
            Sink::Stderr => {
                let _ = std::io::stderr().write_all(line.as_bytes());
            }
        }
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        let raw = r.args().to_string();
        let text = escape_controls(&raw);
        let key = (r.file_static().unwrap_or(""), r.line().unwrap_or(0));
        let (write, summary) = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(key, r.level(), &text, Instant::now());
        if let Some((level, s)) = summary {
            self.write(level, &s);
        }
        if write {
            self.write(r.level(), &text);
        }
    }

    fn flush(&self) {
        let pending = self
            .limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain();
        for (level, s) in pending {
            self.write(level, &s);
        }
    }
}

/// Installs the logger the settings ask for: the log file if set, else
/// syslog if enabled and /dev/log exists, else stderr.
pub fn init(s: &Settings) -> Result<()> {
    let sink = if let Some(path) = &s.log_file {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|e| DaemonError::io(format!("cannot open log file {}", path.display()), e))?;
        Sink::File(f)
    } else if s.use_syslog && std::path::Path::new("/dev/log").exists() {
        match UnixDatagram::unbound() {
            Ok(sock) => Sink::Syslog(sock),
            Err(_) => Sink::Stderr,
        }
    } else {
        Sink::Stderr
    };
    TO_STDERR.store(matches!(sink, Sink::Stderr), Ordering::SeqCst);
    let logger: &'static Logger = Box::leak(Box::new(Logger {
        sink,
        pid: std::process::id(),
        limiter: Mutex::new(Limiter::default()),
    }));
    // A second init (never done) would keep the first logger.
    let _ = log::set_logger(logger);
    log::set_max_level(filter(s.log_level));
    Ok(())
}
