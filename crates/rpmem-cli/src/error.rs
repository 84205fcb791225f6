//! The CLI's one error type and its exit status.

/// Everything the `rpmem` command can fail with.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client engine failed; the exit status is its errno.
    #[error("{0}")]
    Engine(#[from] rpmem::Error),
    /// A command-line value could not be used.
    #[error("{0}")]
    Usage(String),
    /// A local file operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The demo read back something other than what it persisted.
    #[error("verification failed: {0}")]
    Verify(String),
    /// Output could not be encoded.
    #[error("cannot encode JSON: {0}")]
    Json(#[from] serde_json::Error),
}

impl CliError {
    /// Exit status: the errno of the failure, or 1 when there is none.
    pub fn exit_code(&self) -> i32 {
        let code = match self {
            CliError::Engine(e) => e.errno(),
            CliError::Usage(_) => libc::EINVAL,
            CliError::Io { source, .. } => source.raw_os_error().unwrap_or(1),
            CliError::Verify(_) => libc::EIO,
            CliError::Json(_) => 1,
        };
        if (1..=255).contains(&code) {
            code
        } else {
            1
        }
    }

    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> CliError {
        CliError::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result with the CLI's [`CliError`].
pub type Result<T> = std::result::Result<T, CliError>;
