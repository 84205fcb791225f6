//! The crate's only `unsafe` code: mappings of part files, the raw-pointer
//! transfers into and out of them, and the few libc calls std lacks.
//!
//! A mapping is shared memory: lanes (threads) write to it concurrently and
//! other processes may map the same file. No Rust reference into a mapping is
//! ever created. Every access goes through `ptr::read_volatile` /
//! `ptr::write_volatile`, an 8-byte non-temporal store (`movnti`, in inline
//! assembly the compiler cannot merge), or a system call (`msync`; a
//! transport's `recv`/`send` on the spans [`Mapping::span`] hands out) that
//! the kernel performs, so concurrent accesses to the same bytes have
//! the semantics of the hardware (whole aligned words, no tearing of an
//! aligned 8-byte store), not undefined behaviour of Rust references. Every
//! public function bounds-checks its offsets against the mapping first.

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;
use std::ptr::{self, NonNull};

use crate::flush::Method;

/// A `MAP_SHARED` read/write mapping of the first `len` bytes of a file.
pub(crate) struct Mapping {
    ptr: NonNull<u8>,
    len: usize,
    sync: bool,
}

// SAFETY: the mapping is plain shared memory owned by this value until Drop;
// all accesses are volatile or kernel-performed (see the module comment), so
// using it from several threads at once is sound.
unsafe impl Send for Mapping {}
// SAFETY: as above.
unsafe impl Sync for Mapping {}

/// Copies from which [`Mapping::write_atomic`] stores non-temporally.
pub(crate) const STREAM_MIN: usize = 4096;

/// Stores `words` words from `src` (any alignment) to the 8-aligned `dst`,
/// one 8-byte store each, bypassing the cache where the CPU can.
///
/// # Safety
/// `dst` must be 8-aligned and `dst..dst+words` writable, `src..src+words`
/// readable.
unsafe fn store_words_streaming(dst: *mut u64, src: *const u64, words: usize) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::asm;
        for k in 0..words {
            // SAFETY: k < words, so both addresses are inside the caller's
            // ranges; dst+k is 8-aligned, so movnti is one 8-byte store.
            unsafe {
                let v = ptr::read_unaligned(src.add(k));
                asm!("movnti [{0}], {1}", in(reg) dst.add(k), in(reg) v,
                     options(nostack, preserves_flags));
            }
        }
        // Non-temporal stores are weakly ordered: make them visible before
        // anything that follows (the answer, another lane's read).
        crate::flush::fence();
    }
    #[cfg(not(target_arch = "x86_64"))]
    for k in 0..words {
        // SAFETY: as above; a plain aligned 8-byte store.
        unsafe { ptr::write_volatile(dst.add(k), ptr::read_unaligned(src.add(k))) };
    }
}

fn out_of_bounds() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "range outside the mapping")
}

impl Mapping {
    /// Maps `len` bytes of `file` shared and writable. Tries
    /// `MAP_SHARED_VALIDATE | MAP_SYNC` first (real persistent memory) and
    /// falls back to plain `MAP_SHARED` where the kernel refuses it
    /// (EOPNOTSUPP on ext4/tmpfs without DAX; EINVAL on old kernels).
    pub(crate) fn new(file: &File, len: usize) -> io::Result<Mapping> {
        if len == 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "cannot map zero bytes",
            ));
        }
        let prot = libc::PROT_READ | libc::PROT_WRITE;
        let fd = file.as_raw_fd();
        let mut sync = true;
        // SAFETY: a fresh mapping chosen by the kernel (addr NULL); it does
        // not alias any Rust object. The result is checked below.
        let mut p = unsafe {
            libc::mmap(
                ptr::null_mut(),
                len,
                prot,
                libc::MAP_SHARED_VALIDATE | libc::MAP_SYNC,
                fd,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            let e = io::Error::last_os_error();
            match e.raw_os_error() {
                Some(libc::EOPNOTSUPP) | Some(libc::EINVAL) => {}
                _ => return Err(e),
            }
            sync = false;
            // SAFETY: as above.
            p = unsafe { libc::mmap(ptr::null_mut(), len, prot, libc::MAP_SHARED, fd, 0) };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
        }
        let ptr = NonNull::new(p.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        Ok(Mapping { ptr, len, sync })
    }

    /// Maps pieces of files one after another at one address: each piece is
    /// `(file, file offset, length)`, both page multiples. The view shares
    /// the files' pages with every other shared mapping of them, so what is
    /// written through it is what those mappings see and make durable.
    pub(crate) fn contiguous(pieces: &[(&File, u64, usize)]) -> io::Result<Mapping> {
        let page = crate::PAGE_SIZE;
        let mut total = 0usize;
        for &(_, off, len) in pieces {
            if len == 0 || !off.is_multiple_of(page) || !(len as u64).is_multiple_of(page) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "a piece of a contiguous view is not page-aligned",
                ));
            }
            total = total.checked_add(len).ok_or_else(out_of_bounds)?;
        }
        if total == 0 {
            return Err(out_of_bounds());
        }
        // SAFETY: a fresh anonymous reservation chosen by the kernel (addr
        // NULL), inaccessible until the pieces replace it; checked below.
        let base = unsafe {
            libc::mmap(
                ptr::null_mut(),
                total,
                libc::PROT_NONE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if base == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        let ptr =
            NonNull::new(base.cast::<u8>()).ok_or_else(|| io::Error::other("mmap gave NULL"))?;
        // Owns the reservation from here: an error below unmaps it whole.
        let view = Mapping {
            ptr,
            len: total,
            sync: false,
        };
        let mut at = 0usize;
        for &(file, off, len) in pieces {
            let off = libc::off_t::try_from(off).map_err(|_| out_of_bounds())?;
            // SAFETY: `at..at+len` lies inside the reservation `view` owns
            // (the lengths sum to `total`), so MAP_FIXED replaces only our
            // own pages, which no Rust object refers to.
            let p = unsafe {
                libc::mmap(
                    base.cast::<u8>().add(at).cast(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED | libc::MAP_FIXED,
                    file.as_raw_fd(),
                    off,
                )
            };
            if p == libc::MAP_FAILED {
                return Err(io::Error::last_os_error());
            }
            at += len;
        }
        Ok(view)
    }

    /// Whether the mapping is `MAP_SYNC` (persistent memory, no msync needed).
    pub(crate) fn is_sync(&self) -> bool {
        self.sync
    }

    fn check(&self, off: usize, len: usize) -> io::Result<*mut u8> {
        match off.checked_add(len) {
            Some(end) if end <= self.len => {
                // SAFETY: off <= self.len, so the result stays inside (or one
                // past the end of) the mapping.
                Ok(unsafe { self.ptr.as_ptr().add(off) })
            }
            _ => Err(out_of_bounds()),
        }
    }

    /// `msync(MS_SYNC)` of the pages covering `off..off+len`.
    pub(crate) fn msync(&self, off: usize, len: usize) -> io::Result<()> {
        if len == 0 {
            return Ok(());
        }
        let page = crate::PAGE_SIZE as usize;
        let start = off / page * page;
        let end = off
            .checked_add(len)
            .ok_or_else(out_of_bounds)?
            .div_ceil(page)
            * page;
        let end = end.min(self.len);
        let p = self.check(start, end.saturating_sub(start))?;
        // SAFETY: p..p+(end-start) lies inside our mapping; p is page-aligned
        // because the mapping base is and start is a page multiple.
        let r = unsafe { libc::msync(p.cast(), end - start, libc::MS_SYNC) };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Writes back the CPU cache lines covering `off..off+len` with
    /// `method`'s instruction (no fence; see [`crate::flush::fence`]).
    pub(crate) fn write_back(&self, method: Method, off: usize, len: usize) -> io::Result<()> {
        let p = self.check(off, len)?;
        // SAFETY: p..p+len lies inside this live mapping (checked above);
        // the lines rounded out from it are inside too, because the mapping
        // starts and ends on page boundaries.
        unsafe { crate::flush::write_back(method, p, len) };
        Ok(())
    }

    /// Copies `src` to `off`, with a single 8-byte store for every aligned
    /// 8-byte word of the destination and byte stores for the unaligned
    /// head and tail: an aligned word is never observed half-written.
    ///
    /// From [`STREAM_MIN`] bytes on, the words are stored non-temporally
    /// (x86-64 `movnti`, then `sfence`): a large copy into a pool line that
    /// is not in the cache then costs no read of that line first, which with
    /// ordinary stores took twice the kernel's own copy of the same bytes.
    pub(crate) fn write_atomic(&self, off: usize, src: &[u8]) -> io::Result<()> {
        let dst = self.check(off, src.len())?;
        let n = src.len();
        let head = dst.align_offset(8).min(n);
        let words = (n - head) / 8;
        // SAFETY: dst..dst+n is inside the mapping (checked above) and src is
        // a valid slice of n bytes that cannot overlap the mapping's bytes
        // through a Rust reference (none exist). The u64 stores go to
        // addresses dst+head+8k, which are 8-aligned by construction; the
        // source is read unaligned.
        unsafe {
            for (i, b) in src[..head].iter().enumerate() {
                ptr::write_volatile(dst.add(i), *b);
            }
            let wdst = dst.add(head).cast::<u64>();
            let wsrc = src.as_ptr().add(head).cast::<u64>();
            if n >= STREAM_MIN {
                store_words_streaming(wdst, wsrc, words);
            } else {
                for k in 0..words {
                    ptr::write_volatile(wdst.add(k), ptr::read_unaligned(wsrc.add(k)));
                }
            }
            let tail = head + words * 8;
            for (i, b) in src[tail..].iter().enumerate() {
                ptr::write_volatile(dst.add(tail + i), *b);
            }
        }
        Ok(())
    }

    /// Copies `dst.len()` bytes from `off` out of the mapping.
    pub(crate) fn read(&self, off: usize, dst: &mut [u8]) -> io::Result<()> {
        let src = self.check(off, dst.len())?;
        for (i, d) in dst.iter_mut().enumerate() {
            // SAFETY: src+i is inside the checked range.
            *d = unsafe { ptr::read_volatile(src.add(i)) };
        }
        Ok(())
    }

    /// The whole mapping (see [`Mapping::span`]).
    pub(crate) fn whole(&self) -> NonNull<[u8]> {
        NonNull::slice_from_raw_parts(self.ptr, self.len)
    }

    /// The raw memory of `off..off+len`, for a transport to receive into
    /// or send from (see the module comment for how it may be accessed).
    pub(crate) fn span(&self, off: usize, len: usize) -> io::Result<NonNull<[u8]>> {
        let p = self.check(off, len)?;
        // SAFETY: `check` returned a pointer derived from the non-null base.
        let p = unsafe { NonNull::new_unchecked(p) };
        Ok(NonNull::slice_from_raw_parts(p, len))
    }
}

impl Drop for Mapping {
    fn drop(&mut self) {
        // SAFETY: ptr/len describe the mapping made in `new`, unmapped once;
        // no reference into it can outlive self.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Takes an exclusive, non-blocking `flock` on `file`. Held until the file is
/// closed (or the process dies). `EWOULDBLOCK` means another holder.
pub(crate) fn lock_exclusive(file: &File) -> io::Result<()> {
    // SAFETY: flock on a valid, open descriptor; no memory is involved.
    let r = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Allocates `len` bytes of `file` (`posix_fallocate`), so that writes
/// through the mapping never hit ENOSPC as SIGBUS.
pub(crate) fn allocate(file: &File, len: u64) -> io::Result<()> {
    let len = libc::off_t::try_from(len).map_err(|_| io::Error::from_raw_os_error(libc::EFBIG))?;
    loop {
        // SAFETY: posix_fallocate on a valid descriptor; it returns the errno.
        let r = unsafe { libc::posix_fallocate(file.as_raw_fd(), 0, len) };
        match r {
            0 => return Ok(()),
            libc::EINTR => continue,
            e => return Err(io::Error::from_raw_os_error(e)),
        }
    }
}
