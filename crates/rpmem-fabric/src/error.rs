//! The one error type of the binding.

/// Result with this crate's [`Error`].
pub type Result<T> = std::result::Result<T, Error>;

/// Everything that can go wrong talking to libfabric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// libfabric (or one of its symbols) could not be loaded.
    #[error("cannot load libfabric ({library}): {reason}")]
    Load {
        /// The library name or path that was tried.
        library: String,
        /// Why it failed, as the dynamic loader said.
        reason: String,
    },
    /// A libfabric call failed.
    #[error("{call}: {message} (errno {errno})")]
    Call {
        /// The libfabric function that failed, e.g. `fi_getinfo`.
        call: &'static str,
        /// The positive errno (or libfabric error number) it returned.
        errno: i32,
        /// `fi_strerror`'s text (with the provider's detail where it gave one).
        message: String,
    },
    /// A provider lacks an operation this crate needs.
    #[error("provider {provider} does not implement {operation}")]
    Unsupported {
        /// The provider's name.
        provider: String,
        /// The operation, e.g. `fi_trywait`.
        operation: &'static str,
    },
    /// Nothing happened within the time allowed.
    #[error("{0}: timed out")]
    Timeout(&'static str),
    /// The peer refused the connection.
    #[error("connection refused by the peer")]
    Rejected,
    /// The connection ended (the peer closed it, died, or the link went away).
    #[error("connection lost: {0}")]
    Disconnected(String),
    /// An operation completed with an error.
    #[error("{operation} failed: {message} (errno {errno})")]
    Completion {
        /// The caller's token of the failed operation.
        token: u64,
        /// What kind of operation it was.
        operation: &'static str,
        /// The positive errno reported.
        errno: i32,
        /// Its text.
        message: String,
    },
    /// The caller passed something invalid.
    #[error("{0}")]
    InvalidArgument(String),
    /// A local system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl Error {
    /// The errno that best describes this error.
    pub fn errno(&self) -> i32 {
        match self {
            Error::Load { .. } => libc::ENOMEDIUM,
            Error::Call { errno, .. } | Error::Completion { errno, .. } => *errno,
            Error::Unsupported { .. } => libc::ENOTSUP,
            Error::Timeout(_) => libc::ETIMEDOUT,
            Error::Rejected => libc::ECONNREFUSED,
            Error::Disconnected(_) => libc::ECONNRESET,
            Error::InvalidArgument(_) => libc::EINVAL,
            Error::Io { source, .. } => source.raw_os_error().unwrap_or(libc::EIO),
        }
    }
}
