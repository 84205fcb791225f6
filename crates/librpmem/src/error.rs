//! Errors at the C boundary: one enum, mapped to errno and to the
//! thread-local message that `rpmem_errormsg()` returns.

use std::any::Any;
use std::cell::RefCell;
use std::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::ffi;

/// Size of the per-thread message buffer, terminating NUL included. Longer
/// messages are cut at a character boundary.
pub const MSG_BUF_LEN: usize = 2048;

/// Why a call failed.
#[derive(Debug)]
pub enum CapiError {
    /// A required pointer argument was NULL (EINVAL).
    Null(&'static str),
    /// A string argument was not valid UTF-8 (EINVAL).
    NotUtf8(&'static str),
    /// An argument only C can get wrong (EINVAL), e.g. `*nlanes == 0`.
    InvalidArgument(String),
    /// The engine refused or failed; its own errno mapping applies.
    Engine(rpmem::Error),
    /// A panic was caught at the boundary (ENOTRECOVERABLE).
    Panic(String),
}

impl From<rpmem::Error> for CapiError {
    fn from(e: rpmem::Error) -> Self {
        CapiError::Engine(e)
    }
}

impl CapiError {
    /// The errno the failing call sets.
    pub fn errno(&self) -> i32 {
        match self {
            CapiError::Null(_) | CapiError::NotUtf8(_) | CapiError::InvalidArgument(_) => {
                libc::EINVAL
            }
            // A failure must never leave errno at 0: that would read as success.
            CapiError::Engine(e) => match e.errno() {
                n if n > 0 => n,
                _ => libc::EIO,
            },
            CapiError::Panic(_) => libc::ENOTRECOVERABLE,
        }
    }

    /// Turns a panic payload into an error, keeping its message.
    pub fn from_panic(payload: &(dyn Any + Send)) -> Self {
        let what = if let Some(s) = payload.downcast_ref::<&'static str>() {
            (*s).to_string()
        } else if let Some(s) = payload.downcast_ref::<String>() {
            s.clone()
        } else {
            "panic with a non-string payload".to_string()
        };
        CapiError::Panic(what)
    }
}

impl std::fmt::Display for CapiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapiError::Null(arg) => write!(f, "{arg} is NULL"),
            CapiError::NotUtf8(arg) => write!(f, "{arg} is not valid UTF-8"),
            CapiError::InvalidArgument(msg) => f.write_str(msg),
            CapiError::Engine(e) => write!(f, "{e}"),
            CapiError::Panic(what) => write!(f, "internal error: {what}"),
        }
    }
}

thread_local! {
    // A fixed array, not a String: the pointer handed to C never moves and
    // stays valid for the thread's lifetime; only the contents change. No
    // destructor is registered, so the buffer outlives other TLS teardown.
    static MESSAGE: RefCell<[u8; MSG_BUF_LEN]> = const { RefCell::new([0; MSG_BUF_LEN]) };
}

/// Stores `msg` as this thread's last error message (cut at the first NUL
/// and to fit the buffer) and returns the buffer's address.
pub fn set_message(msg: &str) -> *const c_char {
    let msg = msg.split('\0').next().unwrap_or("");
    let mut end = msg.len().min(MSG_BUF_LEN - 1);
    while !msg.is_char_boundary(end) {
        end -= 1;
    }
    MESSAGE
        .try_with(|cell| match cell.try_borrow_mut() {
            Ok(mut buf) => {
                buf[..end].copy_from_slice(&msg.as_bytes()[..end]);
                buf[end] = 0;
                buf.as_ptr().cast::<c_char>()
            }
            Err(_) => cell.as_ptr().cast_const().cast::<c_char>(),
        })
        .unwrap_or(c"".as_ptr())
}

/// The address of this thread's message buffer ("" before any failure).
pub fn message_ptr() -> *const c_char {
    MESSAGE
        .try_with(|cell| cell.as_ptr().cast_const().cast::<c_char>())
        .unwrap_or(c"".as_ptr())
}

/// This thread's last error message, as Rust text (for tests and logging).
pub fn last_message() -> String {
    MESSAGE
        .try_with(|cell| {
            let buf = cell.borrow();
            let len = buf.iter().position(|b| *b == 0).unwrap_or(buf.len());
            String::from_utf8_lossy(&buf[..len]).into_owned()
        })
        .unwrap_or_default()
}

/// Records a failure of `func`: sets the message and errno. The message does
/// not name the function: programs written for librpmem print it after the
/// name themselves (`"rpmem_open: %s"`). Never panics: should formatting the
/// message panic, errno is still set.
pub fn report(func: &str, err: &CapiError) {
    if catch_unwind(AssertUnwindSafe(|| set_message(&err.to_string()))).is_err() {
        set_message(&format!("{func} failed"));
    }
    ffi::set_errno(err.errno());
}

/// The panic boundary behind `ffi_boundary!`: runs `body`, returns its value
/// on success and `fail` after reporting any error or caught panic.
pub fn boundary<T, F>(func: &'static str, fail: T, body: F) -> T
where
    F: FnOnce() -> Result<T, CapiError>,
{
    // AssertUnwindSafe: after a panic the only state the caller can reach is
    // the handle, whose engine state is behind the engine's own locks; the
    // caller learns of the failure through ENOTRECOVERABLE.
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(Ok(v)) => v,
        Ok(Err(e)) => {
            report(func, &e);
            fail
        }
        Err(payload) => {
            let e = CapiError::from_panic(&*payload);
            // Dropping a payload can itself panic; never let that escape.
            let _ = catch_unwind(AssertUnwindSafe(move || drop(payload)));
            report(func, &e);
            fail
        }
    }
}
