//! The library's own log, as librpmem's: `RPMEM_LOG_LEVEL` and
//! `RPMEM_LOG_FILE`.
//!
//! At the first create, open or remove of the process, if `RPMEM_LOG_LEVEL`
//! is 1–4, a [`log`] backend is installed that writes to `RPMEM_LOG_FILE`
//! (a trailing `-` has the process id appended: `rpmem.log-` becomes
//! `rpmem.log-1234`) or, without it, to stderr. If the host application already installed a
//! `log` logger, that one is kept and receives our records instead.
//!
//! Levels, as librpmem's: 0 nothing; 1 every error the library returns (and
//! warnings); 2 the version, once, and basic operations (create, open, close,
//! remove with target, pool set, lanes and transport); 3 more detail (the remote command, session
//! and lane set-up); 4 every data-path call.

use std::fs::File;
use std::io::Write;
use std::sync::{Mutex, Once};

use log::{Level, LevelFilter, Log, Metadata, Record};
use rpmem_proto::text::escape_controls;

use crate::error::Error;

/// Where our records go.
enum Sink {
    File(Mutex<File>),
    Stderr,
}

struct Logger {
    sink: Sink,
}

/// librpmem's numeric level of a record.
fn number(level: Level) -> u8 {
    match level {
        Level::Error | Level::Warn => 1,
        Level::Info => 2,
        Level::Debug => 3,
        Level::Trace => 4,
    }
}

/// `RPMEM_LOG_LEVEL` onto the `log` crate's filter.
pub(crate) fn filter(level: u32) -> LevelFilter {
    match level {
        0 => LevelFilter::Off,
        1 => LevelFilter::Warn,
        2 => LevelFilter::Info,
        3 => LevelFilter::Debug,
        _ => LevelFilter::Trace,
    }
}

/// The log file name for `RPMEM_LOG_FILE=value`: a trailing `-` gets the
/// process id appended.
pub(crate) fn file_name(value: &str, pid: u32) -> String {
    if value.ends_with('-') {
        format!("{value}{pid}")
    } else {
        value.to_string()
    }
}

/// The log line of record `r`, as PMDK's librpmem writes one. Names and the
/// target's messages can hold anything: control characters are escaped, so
/// that one record is one line.
fn line(r: &Record<'_>) -> String {
    let text = r.args().to_string();
    format!(
        "<librpmem>: <{}> [{}] {}\n",
        number(r.level()),
        r.module_path().unwrap_or("rpmem"),
        escape_controls(&text)
    )
}

impl Sink {
    /// Writes `line` whole; a failure to log is not the caller's failure.
    fn write_line(&self, line: &str) {
        let _ = match self {
            Sink::File(f) => f
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .write_all(line.as_bytes()),
            Sink::Stderr => std::io::stderr().write_all(line.as_bytes()),
        };
    }
}

impl Log for Logger {
    fn enabled(&self, m: &Metadata<'_>) -> bool {
        m.level() <= log::max_level()
    }

    fn log(&self, r: &Record<'_>) {
        if self.enabled(r.metadata()) {
            self.sink.write_line(&line(r));
        }
    }

    fn flush(&self) {
        if let Sink::File(f) = &self.sink {
            let _ = f.lock().unwrap_or_else(|e| e.into_inner()).flush();
        }
    }
}

/// Installs the logger once per process if `RPMEM_LOG_LEVEL` asks for one.
/// Called at every create, open and remove; only the first call reads the
/// environment.
pub(crate) fn init() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let level = std::env::var("RPMEM_LOG_LEVEL")
            .ok()
            .and_then(|v| v.trim().parse::<u32>().ok())
            .unwrap_or(0);
        if level == 0 {
            return;
        }
        let mut problem = None;
        let sink = match std::env::var("RPMEM_LOG_FILE")
            .ok()
            .filter(|v| !v.is_empty())
        {
            Some(v) => {
                let name = file_name(&v, std::process::id());
                match File::create(&name) {
                    Ok(f) => Sink::File(Mutex::new(f)),
                    Err(e) => {
                        problem = Some(format!(
                            "cannot open RPMEM_LOG_FILE {name}: {e}; logging to stderr"
                        ));
                        Sink::Stderr
                    }
                }
            }
            None => Sink::Stderr,
        };
        let logger: &'static Logger = Box::leak(Box::new(Logger { sink }));
        // Fails when the host application has its own logger: keep it, and
        // leave its level alone.
        if log::set_logger(logger).is_ok() {
            log::set_max_level(filter(level));
        }
        if let Some(p) = problem {
            log::warn!("{p}");
        }
        // The package version, the one `pkg-config --modversion librpmem` gives.
        log::info!(
            "rpmem {}, pid {}",
            env!("CARGO_PKG_VERSION"),
            std::process::id()
        );
    });
}

/// Logs (level 1) an error about to be returned by `call`, and passes the
/// result through.
pub(crate) fn returned<T>(call: &str, r: Result<T, Error>) -> Result<T, Error> {
    if let Err(e) = &r {
        log::error!("{call}: {e} (errno {})", e.errno());
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_and_file_names() {
        assert_eq!(filter(0), LevelFilter::Off);
        assert_eq!(filter(1), LevelFilter::Warn);
        assert_eq!(filter(2), LevelFilter::Info);
        assert_eq!(filter(3), LevelFilter::Debug);
        assert_eq!(filter(4), LevelFilter::Trace);
        assert_eq!(filter(9), LevelFilter::Trace);
        assert_eq!(number(Level::Error), 1);
        assert_eq!(number(Level::Info), 2);
        assert_eq!(file_name("/tmp/rpmem.log-", 42), "/tmp/rpmem.log-42");
        assert_eq!(file_name("/tmp/rpmem.log", 42), "/tmp/rpmem.log");
    }
}
