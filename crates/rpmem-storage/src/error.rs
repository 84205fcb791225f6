//! The one error type of this crate.

use std::io;
use std::path::PathBuf;

/// Broad class of a [`StorageError`], for callers that map failures to their
/// own codes (the daemon maps them to protocol statuses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file (pool set or part) does not exist.
    NotFound,
    /// A part file that create would make already exists.
    Exists,
    /// The pool is locked by another process.
    Busy,
    /// Permission denied.
    Access,
    /// Out of space (ENOSPC, EDQUOT).
    NoSpace,
    /// The pool set name is not acceptable.
    BadName,
    /// The pool set file, the pool headers or the header option do not fit.
    BadConfig,
    /// An offset/length pair lies outside the pool.
    OutOfRange,
    /// Anything else (I/O errors without a more precise class).
    Other,
}

/// Everything that can go wrong in target-side storage.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// A pool set file line is invalid (`FILE:LINE: why`; `FILE: why` when
    /// the problem is the whole file).
    #[error("{}: {msg}", where_(file, *line))]
    Parse {
        /// The pool set file.
        file: PathBuf,
        /// 1-based line number (0 when the problem is the whole file).
        line: usize,
        /// What is wrong.
        msg: String,
    },
    /// A system call on a file failed.
    #[error("cannot {op} {}: {source}", path.display())]
    Io {
        /// What was attempted ("create", "open", "map", ...).
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A part is locked by another process.
    #[error("{} is in use by another process", path.display())]
    Busy {
        /// The locked part.
        path: PathBuf,
    },
    /// A part that create would use exists and holds data.
    #[error("{} already exists and is not empty: {reason}", path.display())]
    Exists {
        /// The part.
        path: PathBuf,
        /// Why it cannot be used.
        reason: String,
    },
    /// A pool set name was refused.
    #[error("invalid pool set name '{name}': {reason}")]
    BadName {
        /// The name as given.
        name: String,
        /// Why it was refused.
        reason: String,
    },
    /// A pool header failed verification.
    #[error("{}: damaged pool header: {reason}", path.display())]
    BadHeader {
        /// The part holding the header.
        path: PathBuf,
        /// What failed.
        reason: String,
    },
    /// The pool set and the request or the files on disk do not agree.
    #[error("bad pool configuration: {0}")]
    Config(String),
    /// A range lies outside the pool.
    #[error("range of {len} bytes at offset {offset} is outside the pool of {size} bytes")]
    OutOfRange {
        /// Start of the range.
        offset: u64,
        /// Length of the range.
        len: u64,
        /// Size of the pool.
        size: u64,
    },
}

/// `file:line`, or just `file` for line 0.
fn where_(file: &std::path::Path, line: usize) -> String {
    if line == 0 {
        file.display().to_string()
    } else {
        format!("{}:{line}", file.display())
    }
}

impl StorageError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StorageError::Io {
            op,
            path: path.into(),
            source,
        }
    }

    /// The class of the failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            StorageError::Parse { .. } | StorageError::BadHeader { .. } => ErrorKind::BadConfig,
            StorageError::Config(_) => ErrorKind::BadConfig,
            StorageError::Busy { .. } => ErrorKind::Busy,
            StorageError::Exists { .. } => ErrorKind::Exists,
            StorageError::BadName { .. } => ErrorKind::BadName,
            StorageError::OutOfRange { .. } => ErrorKind::OutOfRange,
            StorageError::Io { source, .. } => match source.raw_os_error() {
                Some(libc::ENOENT) | Some(libc::ENOTDIR) => ErrorKind::NotFound,
                Some(libc::EEXIST) => ErrorKind::Exists,
                Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::EROFS) => ErrorKind::Access,
                Some(libc::ENOSPC) | Some(libc::EDQUOT) => ErrorKind::NoSpace,
                Some(libc::EWOULDBLOCK) => ErrorKind::Busy,
                _ => ErrorKind::Other,
            },
        }
    }

    /// The errno that best describes the failure (used as rpmemd's exit status).
    pub fn errno(&self) -> i32 {
        match self {
            StorageError::Io { source, .. } => match source.raw_os_error() {
                Some(e) if e != 0 => e,
                _ => libc::EIO,
            },
            StorageError::Busy { .. } => libc::EBUSY,
            StorageError::Exists { .. } => libc::EEXIST,
            _ => libc::EINVAL,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = StorageError> = std::result::Result<T, E>;
