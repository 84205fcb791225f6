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
    /// The peer sent something the protocol does not allow.
    #[error("protocol error: {0}")]
    Protocol(String),
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
            Error::Protocol(_) => libc::EPROTO,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
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
