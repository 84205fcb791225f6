//! A small `log` backend: a log file, syslog (/dev/log) or stderr. Never
//! stdout, which carries the protocol.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::os::unix::net::UnixDatagram;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use log::{Level, LevelFilter, Log, Metadata, Record};

use crate::error::{DaemonError, Result};
use crate::options::{LogLevel, Settings};

enum Sink {
    File(Mutex<File>),
    Syslog(UnixDatagram),
    Stderr,
}

struct Logger {
    sink: Sink,
    pid: u32,
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

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if !self.enabled(r.metadata()) {
            return;
        }
        match &self.sink {
            Sink::File(f) => {
                let mut f = f.lock().unwrap_or_else(|e| e.into_inner());
                let _ = writeln!(f, "rpmemd[{}] {}: {}", self.pid, name(r.level()), r.args());
            }
            Sink::Syslog(sock) => {
                // LOG_DAEMON facility (3).
                let msg = format!(
                    "<{}>rpmemd[{}]: {}",
                    3 * 8 + syslog_severity(r.level()),
                    self.pid,
                    r.args()
                );
                if sock.send_to(msg.as_bytes(), "/dev/log").is_err() {
                    eprintln!("rpmemd[{}] {}: {}", self.pid, name(r.level()), r.args());
                }
            }
            Sink::Stderr => {
                eprintln!("rpmemd[{}] {}: {}", self.pid, name(r.level()), r.args());
            }
        }
    }

    fn flush(&self) {
        if let Sink::File(f) = &self.sink {
            let _ = f.lock().unwrap_or_else(|e| e.into_inner()).flush();
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
        Sink::File(Mutex::new(f))
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
    }));
    // A second init (never done) would keep the first logger.
    let _ = log::set_logger(logger);
    log::set_max_level(filter(s.log_level));
    Ok(())
}
