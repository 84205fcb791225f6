//! The one error type of the transport layer.

use std::io;

use rpmem_proto::Status;

/// Why a lane operation or a connection attempt failed.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    /// The lane can no longer be used: an I/O error, a timeout or a garbled
    /// answer left the connection in an unknown state.
    #[error("{0}")]
    Failed(String),
    /// The peer ended the connection.
    #[error("{0}")]
    Closed(String),
    /// The target refused the lane with `status`.
    #[error("{message}")]
    Refused {
        /// What the target answered.
        status: Status,
        /// What happened, for the log and the caller.
        message: String,
    },
    /// A request the transport cannot carry (e.g. a range outside the
    /// region); the lane is as it was.
    #[error("{0}")]
    Invalid(String),
    /// The peer said something the protocol does not allow (e.g. a session
    /// answer with an unusable address).
    #[error("{0}")]
    Protocol(String),
}

/// Result of transport operations.
pub type Result<T, E = TransportError> = std::result::Result<T, E>;

/// Whether `e` is what a socket time limit (`SO_RCVTIMEO`/`SO_SNDTIMEO`) gives.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl TransportError {
    /// Classifies an I/O failure of lane `lane` while doing `what`, in the
    /// words the initiator's caller sees.
    pub fn lane_io(lane: u32, what: &str, e: &io::Error) -> TransportError {
        if is_timeout(e) {
            TransportError::Failed(format!(
                "lane {lane}: the target did not answer in time ({what})"
            ))
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            TransportError::Closed(format!(
                "lane {lane}: the target closed the connection ({what})"
            ))
        } else {
            TransportError::Failed(format!("lane {lane}: {what}: {e}"))
        }
    }

    /// Whether the lane is unusable after this error (everything but a
    /// refusal or an invalid argument, which leave the connection as it was).
    pub fn breaks_lane(&self) -> bool {
        matches!(self, TransportError::Failed(_) | TransportError::Closed(_))
    }
}
