//! CPU cache flushing for mappings of real persistent memory.
//!
//! Where a part is persistent memory (a `MAP_SYNC` mapping or a device-DAX
//! character device), a store is durable once its cache line has been
//! written back and a fence has ordered the write-back; no system call is
//! needed. This module picks the write-back instruction as PMDK's libpmem
//! does — `clwb` if CPUID says the CPU has it, else `clflushopt`, else
//! `clflush` — and runs it over a byte range followed by `sfence`.
//!
//! On other architectures there is no cache-flush path: [`Method::detect`]
//! returns [`Method::Msync`] and the pool keeps using `msync`.
//!
//! The process-wide switch [`set_force_pmem`] (rpmemd sets it from
//! `RPMEMD_FORCE_PMEM=1`) makes pools use the cache-flush path even on
//! ordinary files, so that the path can be exercised on machines without
//! persistent memory. The bytes still reach the file (the mapping is
//! `MAP_SHARED`), but their durability then rests on the page cache.

use std::sync::atomic::{AtomicBool, Ordering};

/// Size of a cache line flushed by one instruction.
pub const CACHE_LINE: usize = 64;

static FORCE_PMEM: AtomicBool = AtomicBool::new(false);

/// Makes every pool opened or created from now on in this process use the
/// cache-flush path, as if its parts were persistent memory (a test switch).
pub fn set_force_pmem(on: bool) {
    FORCE_PMEM.store(on, Ordering::SeqCst);
}

/// Whether [`set_force_pmem`] is on.
pub fn force_pmem() -> bool {
    FORCE_PMEM.load(Ordering::SeqCst)
}

/// How a pool makes written ranges durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Method {
    /// `msync(MS_SYNC)` of the covering pages (ordinary files).
    Msync,
    /// `clwb` per cache line, then `sfence`.
    Clwb,
    /// `clflushopt` per cache line, then `sfence`.
    ClflushOpt,
    /// `clflush` per cache line (ordered by itself), then `sfence`.
    Clflush,
}

impl Method {
    /// The best cache-flush instruction this CPU has, by CPUID (leaf 7, EBX
    /// bit 24 `clwb`, bit 23 `clflushopt`; `clflush` is part of SSE2, which
    /// every x86_64 has). [`Method::Msync`] on other architectures.
    pub fn detect() -> Method {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{__cpuid_count, __get_cpuid_max};
            // SAFETY: CPUID exists on every x86_64 CPU; leaf 7 is read only
            // when the maximum basic leaf says it exists. (These intrinsics
            // are safe to call on newer toolchains.)
            #[allow(unused_unsafe)]
            let ebx = unsafe {
                if __get_cpuid_max(0).0 >= 7 {
                    __cpuid_count(7, 0).ebx
                } else {
                    0
                }
            };
            if ebx & (1 << 24) != 0 {
                Method::Clwb
            } else if ebx & (1 << 23) != 0 {
                Method::ClflushOpt
            } else {
                Method::Clflush
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            Method::Msync
        }
    }

    /// Whether this method flushes CPU caches (the persistent-memory path).
    pub fn is_cache_flush(self) -> bool {
        self != Method::Msync
    }

    /// The method's name as logged: `msync`, `clwb`, `clflushopt`, `clflush`.
    pub fn name(self) -> &'static str {
        match self {
            Method::Msync => "msync",
            Method::Clwb => "clwb",
            Method::ClflushOpt => "clflushopt",
            Method::Clflush => "clflush",
        }
    }
}

impl std::fmt::Display for Method {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Writes back every cache line overlapping `ptr..ptr+len` with `method`'s
/// instruction. Does not fence: call [`fence`] once after a batch.
/// [`Method::Msync`] does nothing.
///
/// # Safety
/// `ptr..ptr+len` must lie inside one live mapping of this process (the
/// instructions fault on unmapped addresses, like a load would). The line
/// containing `ptr` and the one containing `ptr+len-1` are touched even when
/// they extend past the range; they belong to the same mapping because
/// mappings are page-aligned.
pub(crate) unsafe fn write_back(method: Method, ptr: *const u8, len: usize) {
    if len == 0 {
        return;
    }
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::asm;
        let start = ptr as usize & !(CACHE_LINE - 1);
        let end = ptr as usize + len;
        let mut line = start;
        while line < end {
            let p = line as *const u8;
            // SAFETY: p is inside the caller's mapping (see the contract);
            // these instructions only write the line back, they change no
            // memory contents and no flags.
            unsafe {
                match method {
                    Method::Clwb => {
                        asm!("clwb [{0}]", in(reg) p, options(nostack, preserves_flags))
                    }
                    Method::ClflushOpt => {
                        asm!("clflushopt [{0}]", in(reg) p, options(nostack, preserves_flags))
                    }
                    Method::Clflush => std::arch::x86_64::_mm_clflush(p),
                    Method::Msync => return,
                }
            }
            line += CACHE_LINE;
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        let _ = (method, ptr, len);
    }
}

/// Orders every earlier write-back before later stores (`sfence`).
pub(crate) fn fence() {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: sfence has no operands and no memory-safety preconditions.
    #[allow(unused_unsafe)]
    unsafe {
        std::arch::x86_64::_mm_sfence()
    };
    #[cfg(not(target_arch = "x86_64"))]
    std::sync::atomic::fence(Ordering::SeqCst);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detect_reports_a_cache_flush_on_x86_64() {
        let m = Method::detect();
        #[cfg(target_arch = "x86_64")]
        assert!(m.is_cache_flush(), "{m}");
        #[cfg(not(target_arch = "x86_64"))]
        assert_eq!(m, Method::Msync);
        assert!(["clwb", "clflushopt", "clflush", "msync"].contains(&m.name()));
    }

    #[test]
    fn every_instruction_runs_over_an_unaligned_range() {
        let buf = vec![7u8; 4 * CACHE_LINE + 3];
        for m in [
            Method::detect(),
            Method::Clflush,
            Method::Msync,
            // Only run the optional instructions where the CPU has them.
        ] {
            // SAFETY: the range is inside `buf`, a live allocation.
            unsafe { write_back(m, buf.as_ptr().wrapping_add(5), buf.len() - 5) };
            fence();
        }
        assert!(buf.iter().all(|&b| b == 7), "contents unchanged");
    }
}
