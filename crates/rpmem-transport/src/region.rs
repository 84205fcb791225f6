//! The initiator's local region, as transports see it.

use std::ptr::NonNull;

/// The caller-owned memory a pool replicates: `len` bytes at `ptr`.
///
/// Transports only read it (a TCP lane sends from it, an RMA transport
/// registers it once for all lanes). A `Region` is a plain pointer and may be
/// copied into every lane; the promise made to [`Region::new`] covers them all.
#[derive(Debug, Clone, Copy)]
pub struct Region {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a Region is only ever read through, by system calls or the NIC;
// whoever made it promised the memory stays readable (see `new`), from any
// thread.
unsafe impl Send for Region {}
// SAFETY: as above.
unsafe impl Sync for Region {}

impl Region {
    /// Wraps `len` bytes at `ptr`; `None` if `ptr` is null.
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay readable for as long as this value or any
    /// copy of it (in particular any lane given it) is alive.
    pub unsafe fn new(ptr: *const u8, len: usize) -> Option<Region> {
        NonNull::new(ptr.cast_mut()).map(|ptr| Region { ptr, len })
    }

    /// First byte.
    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the region is empty.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// The address of `offset..offset+len` inside the region, or `None` if
    /// that range is not inside it.
    pub fn range(&self, offset: u64, len: usize) -> Option<*const u8> {
        let off = usize::try_from(offset).ok()?;
        if off.checked_add(len)? > self.len {
            return None;
        }
        Some(self.ptr.as_ptr().wrapping_add(off).cast_const())
    }
}

impl Region {
    /// Copies `out.len()` bytes at `offset` of the region into `out`; false
    /// (and `out` untouched) if that range is not inside the region.
    pub fn copy_out(&self, offset: u64, out: &mut [u8]) -> bool {
        let Some(src) = self.range(offset, out.len()) else {
            return false;
        };
        // SAFETY: `range` checked that `src..src+out.len()` lies inside the
        // region, which `new`'s caller promised readable; `out` is a
        // distinct, writable buffer of that length.
        unsafe { std::ptr::copy_nonoverlapping(src, out.as_mut_ptr(), out.len()) };
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_bounded() {
        let buf = [0u8; 64];
        // SAFETY: `buf` outlives `r`.
        let r = unsafe { Region::new(buf.as_ptr(), buf.len()) }.unwrap();
        assert_eq!(r.range(0, 64), Some(buf.as_ptr()));
        assert_eq!(r.range(64, 0), Some(buf.as_ptr().wrapping_add(64)));
        assert!(r.range(1, 64).is_none());
        assert!(r.range(u64::MAX, 1).is_none());
        // SAFETY: null is refused before anything is read.
        assert!(unsafe { Region::new(std::ptr::null(), 1) }.is_none());
    }
}
