//! The one error type of the client engine, and its errno mapping.

use rpmem_proto::Status;

/// Result with the engine's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong in the client engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The caller passed something invalid; the handle, if any, is untouched.
    #[error("{0}")]
    InvalidArgument(String),
    /// The daemon refused a request.
    #[error("{message}")]
    Remote {
        /// The protocol status the daemon sent.
        status: Status,
        /// The daemon's explanation.
        message: String,
    },
    /// A remote command (e.g. `rpmemd --remove`) exited with this errno.
    #[error("{message}")]
    RemoteExit {
        /// The exit status, which rpmemd sets to an errno.
        code: i32,
        /// What it printed, or a summary.
        message: String,
    },
    /// The ssh client or the daemon could not be started, or the target died.
    #[error("{0}")]
    ConnectionReset(String),
    /// The connection to the target was lost mid-session.
    #[error("{0}")]
    ConnectionAborted(String),
    /// No transport is enabled or usable.
    #[error("{0}")]
    NoTransport(String),
    /// Create or open did not complete within `RPMEM_OPEN_TIMEOUT_MS`.
    #[error("{0}")]
    TimedOut(String),
    /// The handle belongs to another process: this one was forked from the
    /// process that created or opened the pool.
    #[error("{0}")]
    ForeignProcess(String),
    /// The peer sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The daemon that answered speaks PMDK's protocol, not ours. Create and
    /// open then start it again and speak PMDK's; callers see this only
    /// where that is not possible.
    #[error("{0}")]
    ForeignDaemon(String),
    /// A local system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The errno librpmem set for this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::Remote { status, .. } => status.errno(),
            Error::RemoteExit { code, .. } => *code,
            Error::ConnectionReset(_) => libc::ECONNRESET,
            Error::ConnectionAborted(_) => libc::ECONNABORTED,
            Error::NoTransport(_) => libc::ENOMEDIUM,
            Error::Protocol(_) | Error::ForeignDaemon(_) => libc::EPROTO,
            Error::ForeignProcess(_) => libc::EPERM,
            Error::TimedOut(_) => libc::ETIMEDOUT,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }

    /// The [`std::io::ErrorKind`] of this error, as std classifies its errno:
    /// [`InvalidInput`](std::io::ErrorKind::InvalidInput) for EINVAL,
    /// [`NotFound`](std::io::ErrorKind::NotFound) for ENOENT,
    /// [`ConnectionReset`](std::io::ErrorKind::ConnectionReset) for a target
    /// that went away or did not answer in time, and so on.
    ///
    /// ```
    /// use std::io::ErrorKind;
    ///
    /// let e = rpmem::Target::parse("-oProxyCommand=x").unwrap_err();
    /// assert_eq!(e.kind(), ErrorKind::InvalidInput);
    /// assert_eq!(e.errno(), libc::EINVAL);
    /// ```
    pub fn kind(&self) -> std::io::ErrorKind {
        match self {
            Error::Io { source, .. } => source.kind(),
            e => std::io::Error::from_raw_os_error(e.errno()).kind(),
        }
    }

    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

impl From<rpmem_transport::TransportError> for Error {
    fn from(e: rpmem_transport::TransportError) -> Error {
        use rpmem_transport::TransportError as T;
        match e {
            T::Failed(m) | T::Closed(m) => Error::ConnectionReset(m),
            T::Refused { status, message } => Error::Remote { status, message },
            T::Invalid(m) => Error::InvalidArgument(m),
            T::Protocol(m) => Error::Protocol(m),
        }
    }
}

/// For code that deals in [`std::io::Error`]: the same [`kind`](Error::kind)
/// and message, with this error inside
/// ([`get_ref`](std::io::Error::get_ref) and a downcast give its errno back).
impl From<Error> for std::io::Error {
    fn from(e: Error) -> std::io::Error {
        std::io::Error::new(e.kind(), e)
    }
}
