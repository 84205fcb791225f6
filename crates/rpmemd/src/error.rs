//! The one error type of the daemon.

use std::io;
use std::path::PathBuf;

use rpmem_storage::StorageError;

/// Why rpmemd stops with a non-zero exit status.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// A configuration file line is invalid.
    #[error("{}:{line}: {msg}", file.display())]
    Config {
        /// The configuration file.
        file: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// The command line or the environment is unusable.
    #[error("{0}")]
    Usage(String),
    /// A system call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was attempted.
        what: String,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A storage operation failed.
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// The initiator sent something that is not the protocol.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The initiator went away (end of input, or the control channel
    /// failed) with the pool still open; already logged. An abnormal end of
    /// the session, as PMDK's rpmemd treats it.
    #[error("the initiator went away without closing the pool")]
    Abandoned,
    /// A request failed and the failure was reported to the initiator; the
    /// daemon exits with this errno-like status.
    #[error("{message}")]
    Reported {
        /// Exit status.
        code: i32,
        /// What failed.
        message: String,
    },
}

impl DaemonError {
    pub(crate) fn io(what: impl Into<String>, source: io::Error) -> Self {
        DaemonError::Io {
            what: what.into(),
            source,
        }
    }

    /// The exit status: the errno of the failure.
    pub fn exit_code(&self) -> i32 {
        match self {
            DaemonError::Config { .. } | DaemonError::Usage(_) => libc::EINVAL,
            DaemonError::Io { source, .. } => match source.raw_os_error() {
                Some(e) if e > 0 && e < 256 => e,
                _ => libc::EIO,
            },
            DaemonError::Storage(e) => e.errno(),
            DaemonError::Protocol(_) => libc::EPROTO,
            DaemonError::Reported { code, .. } => *code,
            // PMDK's rpmemd exits 1 when its out-of-band connection ends
            // without a close request.
            DaemonError::Abandoned => 1,
        }
    }
}

/// Result alias of the daemon.
pub type Result<T, E = DaemonError> = std::result::Result<T, E>;
