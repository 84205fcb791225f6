//! The unsafe edge: every conversion of a raw C pointer into a Rust value
//! happens here, each with the caller's obligations spelled out.

use std::ffi::{c_char, CStr};

use crate::attr::RpmemPoolAttr;
use crate::error::CapiError;
use rpmem::PoolAttr;

/// Sets the calling thread's `errno`.
pub fn set_errno(value: i32) {
    // SAFETY: __errno_location() always returns a valid, aligned pointer to
    // the calling thread's errno, which only this thread accesses.
    unsafe { *libc::__errno_location() = value }
}

/// Reads the calling thread's `errno` (for tests).
#[cfg(test)]
pub fn errno() -> i32 {
    // SAFETY: as in `set_errno`.
    unsafe { *libc::__errno_location() }
}

/// Borrows a NUL-terminated C string argument as UTF-8.
///
/// # Safety
/// `ptr` must be NULL or point to a NUL-terminated string that stays valid
/// and unmodified for `'a`.
pub unsafe fn str_arg<'a>(ptr: *const c_char, name: &'static str) -> Result<&'a str, CapiError> {
    if ptr.is_null() {
        return Err(CapiError::Null(name));
    }
    // SAFETY: non-NULL, and the caller promises a valid NUL-terminated string.
    let s = unsafe { CStr::from_ptr(ptr) };
    s.to_str().map_err(|_| CapiError::NotUtf8(name))
}

/// Reads an optional `struct rpmem_pool_attr` argument (NULL → `None`).
///
/// # Safety
/// `ptr` must be NULL or point to 104 readable bytes.
pub unsafe fn read_attr(ptr: *const RpmemPoolAttr) -> Option<PoolAttr> {
    if ptr.is_null() {
        return None;
    }
    // SAFETY: non-NULL and readable per the caller; read_unaligned makes no
    // alignment demand, and every bit pattern is a valid RpmemPoolAttr.
    let raw = unsafe { ptr.read_unaligned() };
    Some(raw.to_attr())
}

/// Stores attributes into an optional out-argument (NULL → nothing).
///
/// # Safety
/// `ptr` must be NULL or point to 104 writable bytes.
pub unsafe fn write_attr(ptr: *mut RpmemPoolAttr, attr: &PoolAttr) {
    if !ptr.is_null() {
        // SAFETY: non-NULL and writable per the caller; no alignment demand.
        unsafe { ptr.write_unaligned(RpmemPoolAttr::from_attr(attr)) }
    }
}

/// Reads `*nlanes`.
///
/// # Safety
/// `ptr` must be non-NULL and point to a readable, aligned `unsigned`.
pub unsafe fn read_u32(ptr: *const u32) -> u32 {
    // SAFETY: per the caller.
    unsafe { ptr.read() }
}

/// Writes `*nlanes`.
///
/// # Safety
/// `ptr` must be non-NULL and point to a writable, aligned `unsigned`.
pub unsafe fn write_u32(ptr: *mut u32, value: u32) {
    // SAFETY: per the caller.
    unsafe { ptr.write(value) }
}

/// Turns the caller's `(buff, length)` into a byte slice to read into.
/// The bytes are zeroed first, so the slice never exposes uninitialised
/// memory (C callers commonly pass fresh `malloc` buffers).
///
/// # Safety
/// When `length > 0`, `buff` must be NULL or point to `length` writable
/// bytes that nothing else accesses until the returned borrow ends.
pub unsafe fn out_buffer<'a>(buff: *mut u8, length: usize) -> Result<&'a mut [u8], CapiError> {
    if length == 0 {
        return Ok(&mut []);
    }
    if buff.is_null() {
        return Err(CapiError::Null("buff"));
    }
    if length > isize::MAX as usize {
        return Err(CapiError::InvalidArgument(format!(
            "length {length} is larger than any buffer can be"
        )));
    }
    // SAFETY: non-NULL, `length` writable bytes per the caller, length within
    // isize::MAX (checked above); zeroing first initialises every byte.
    unsafe {
        std::ptr::write_bytes(buff, 0, length);
        Ok(std::slice::from_raw_parts_mut(buff, length))
    }
}

/// Moves a pool handle to the heap and hands its address to C.
pub fn into_handle<T>(value: T) -> *mut T {
    Box::into_raw(Box::new(value))
}

/// Borrows the pool behind a handle.
///
/// # Safety
/// `ptr` must be non-NULL, come from [`into_handle`], and not be reclaimed
/// (by [`from_handle`]) while the borrow lives. Shared borrows from several
/// threads are fine when `T: Sync`.
pub unsafe fn handle_ref<'a, T: Sync>(ptr: *const T) -> &'a T {
    // SAFETY: per the caller, `ptr` is a live Box allocation of T.
    unsafe { &*ptr }
}

/// Takes a handle back from C; it must not be used again.
///
/// # Safety
/// `ptr` must be non-NULL, come from [`into_handle`], and not be used by
/// anything else afterwards (in particular not concurrently).
pub unsafe fn from_handle<T>(ptr: *mut T) -> Box<T> {
    // SAFETY: per the caller, `ptr` came from Box::into_raw and is now unique.
    unsafe { Box::from_raw(ptr) }
}
