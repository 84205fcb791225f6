//! The TCP transport's only `unsafe` code: socket calls on raw memory (the
//! initiator's region, pool mappings), which std cannot express.

use std::io;
use std::os::fd::RawFd;

fn result(n: isize) -> io::Result<usize> {
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

fn wait_flag(nonblocking: bool) -> libc::c_int {
    if nonblocking {
        libc::MSG_DONTWAIT
    } else {
        0
    }
}

/// One `sendmsg` of `head` followed by `len` bytes at `body`; returns the
/// bytes sent (a prefix of the two). Never raises SIGPIPE. `more`
/// (`MSG_MORE`) lets the kernel hold the bytes back to share segments with
/// what follows (a later send without it pushes everything queued).
///
/// # Safety
/// `body..body+len` must be readable for the duration of the call.
pub(crate) unsafe fn send_two(
    fd: RawFd,
    head: &[u8],
    body: *const u8,
    len: usize,
    nonblocking: bool,
    more: bool,
) -> io::Result<usize> {
    let mut iov = [
        libc::iovec {
            iov_base: head.as_ptr() as *mut libc::c_void,
            iov_len: head.len(),
        },
        libc::iovec {
            iov_base: body as *mut libc::c_void,
            iov_len: len,
        },
    ];
    let (iov_ptr, iov_cnt) = if head.is_empty() {
        (iov[1..].as_mut_ptr(), 1)
    } else {
        (iov.as_mut_ptr(), 2)
    };
    // SAFETY: msghdr is plain data; zeroed is a valid "no name, no control".
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov_ptr;
    msg.msg_iovlen = iov_cnt;
    let flags = libc::MSG_NOSIGNAL | wait_flag(nonblocking) | if more { libc::MSG_MORE } else { 0 };
    // SAFETY: the iovecs point into `head` (borrowed for this call) and the
    // caller's range, which the caller guarantees readable.
    result(unsafe { libc::sendmsg(fd, &msg, flags) })
}

/// One `recv` of at most `len` bytes into `dst`.
///
/// # Safety
/// `dst..dst+len` must be writable for the duration of the call and not
/// referenced by any Rust reference.
pub(crate) unsafe fn recv_raw(
    fd: RawFd,
    dst: *mut u8,
    len: usize,
    nonblocking: bool,
) -> io::Result<usize> {
    // SAFETY: the caller guarantees the range writable; the kernel writes at
    // most `len` bytes there.
    result(unsafe { libc::recv(fd, dst.cast(), len, wait_flag(nonblocking)) })
}

/// One `recv` into `buf`.
pub(crate) fn recv(fd: RawFd, buf: &mut [u8], nonblocking: bool) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, borrowed mutably.
    unsafe { recv_raw(fd, buf.as_mut_ptr(), buf.len(), nonblocking) }
}
