//! The engine's only `unsafe` system calls: sending straight from the caller's
//! region, and writing to the ssh pipe without dying of SIGPIPE.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Sends `head` then `len` bytes at `ptr` on a connected socket with one
/// `sendmsg`, looping over partial sends. Never raises SIGPIPE. While the
/// socket buffer is full it busy-polls for up to `spin` since the last
/// progress before blocking, so a streaming lane is not put to sleep and
/// woken for every buffer's worth. `more` (`MSG_MORE`) lets the kernel hold
/// the bytes back to coalesce them with what follows (a later send without
/// it pushes everything queued).
///
/// # Safety
/// `ptr..ptr+len` must be readable for the duration of the call.
pub(crate) unsafe fn send_from_raw(
    fd: RawFd,
    head: &[u8],
    ptr: *const u8,
    len: usize,
    spin: Duration,
    more: bool,
) -> io::Result<()> {
    let mut head_done = 0usize;
    let mut body_done = 0usize;
    let mut last_progress = Instant::now();
    while head_done < head.len() || body_done < len {
        let mut iov = [
            libc::iovec {
                iov_base: head[head_done..].as_ptr() as *mut libc::c_void,
                iov_len: head.len() - head_done,
            },
            libc::iovec {
                // SAFETY: body_done <= len, so the pointer stays inside the
                // caller's readable range (or one past its end when equal).
                iov_base: unsafe { ptr.add(body_done) } as *mut libc::c_void,
                iov_len: len - body_done,
            },
        ];
        let (iov_ptr, iov_cnt) = if head_done < head.len() {
            (iov.as_mut_ptr(), 2)
        } else {
            (iov[1..].as_mut_ptr(), 1)
        };
        // SAFETY: msghdr is plain data; zeroed is a valid "no name, no control".
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = iov_ptr;
        msg.msg_iovlen = iov_cnt;
        let spinning = last_progress.elapsed() < spin;
        let flags = libc::MSG_NOSIGNAL
            | if spinning { libc::MSG_DONTWAIT } else { 0 }
            | if more { libc::MSG_MORE } else { 0 };
        // SAFETY: the iovecs point into `head` (borrowed for this call) and the
        // caller's range, which the caller guarantees readable.
        let n = unsafe { libc::sendmsg(fd, &msg, flags) };
        if n < 0 {
            let e = io::Error::last_os_error();
            match e.kind() {
                io::ErrorKind::Interrupted => continue,
                io::ErrorKind::WouldBlock if spinning => {
                    std::hint::spin_loop();
                    continue;
                }
                _ => return Err(e),
            }
        }
        last_progress = Instant::now();
        let mut n = n as usize;
        let h = n.min(head.len() - head_done);
        head_done += h;
        n -= h;
        body_done += n;
    }
    Ok(())
}

/// Writes all of `buf` to a pipe; a closed reader yields EPIPE instead of
/// killing the process (the application may not ignore SIGPIPE, and we must
/// not change its disposition).
pub(crate) fn write_pipe(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: sigset_t is plain data and is initialised by sigemptyset.
    let mut block: libc::sigset_t = unsafe { std::mem::zeroed() };
    let mut old: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: both sets are valid, owned locals.
    unsafe {
        libc::sigemptyset(&mut block);
        libc::sigaddset(&mut block, libc::SIGPIPE);
        libc::pthread_sigmask(libc::SIG_BLOCK, &block, &mut old);
    }
    let was_pending = sigpipe_pending();
    let mut done = 0;
    let mut result = Ok(());
    while done < buf.len() {
        // SAFETY: the slice bounds keep the pointer and length inside `buf`.
        let n = unsafe {
            libc::write(
                fd,
                buf[done..].as_ptr() as *const libc::c_void,
                buf.len() - done,
            )
        };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            result = Err(e);
            break;
        }
        done += n as usize;
    }
    if result.is_err() && !was_pending && sigpipe_pending() {
        // Swallow the SIGPIPE our own write raised, before unblocking.
        let timeout = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid set and timeout; a null siginfo pointer is allowed.
        unsafe { libc::sigtimedwait(&block, std::ptr::null_mut(), &timeout) };
    }
    // SAFETY: restores the mask saved above.
    unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &old, std::ptr::null_mut()) };
    result
}

fn sigpipe_pending() -> bool {
    // SAFETY: sigpending fills a valid, owned set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigpending(&mut set);
        libc::sigismember(&set, libc::SIGPIPE) == 1
    }
}

/// The system page size.
pub(crate) fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
    }
}

/// Receives whatever is available without blocking (`MSG_DONTWAIT`).
pub(crate) fn recv_nowait(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: the pointer and length describe `buf`, which we borrow mutably.
    let n = unsafe {
        libc::recv(
            fd,
            buf.as_mut_ptr() as *mut libc::c_void,
            buf.len(),
            libc::MSG_DONTWAIT,
        )
    };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(n as usize)
    }
}

/// Waits until `fd` is readable (or at end of file or in error), for at most
/// `timeout`. `Ok(false)`: the time ran out.
pub(crate) fn wait_readable(fd: RawFd, timeout: Duration) -> io::Result<bool> {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let ms = left.as_millis().min(i32::MAX as u128) as i32;
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd, owned by this frame.
        let n = unsafe { libc::poll(&mut p, 1, ms) };
        if n > 0 {
            return Ok(true);
        }
        if n == 0 {
            if left.is_zero() {
                return Ok(false);
            }
            continue;
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}
