//! The engine's only `unsafe` system calls: writing to the ssh pipe without
//! dying of SIGPIPE, waiting for its answer, the page size.

use std::io;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// Writes all of `buf` to a pipe; a closed reader yields EPIPE instead of
/// killing the process (the application may not ignore SIGPIPE, and we must
/// not change its disposition).
pub(crate) fn write_pipe(fd: RawFd, buf: &[u8]) -> io::Result<()> {
    // SAFETY: sigset_t is plain data and is initialised by sigemptyset.
    let mut block: libc::sigset_t = unsafe { std::mem::zeroed() };
    // SAFETY: as above; filled by pthread_sigmask.
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

/// The system page size: what the local region's address and size must be
/// multiples of.
pub fn page_size() -> usize {
    // SAFETY: sysconf has no memory-safety preconditions.
    let v = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    if v > 0 {
        v as usize
    } else {
        4096
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
