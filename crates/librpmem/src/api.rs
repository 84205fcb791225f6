//! The exported librpmem API 1.3.
//!
//! Every function is declared with `export!`, which makes it a versioned C
//! symbol and runs its body behind the panic boundary: no panic crosses
//! into C; a failure returns NULL / -1, sets errno and this thread's message
//! (see [`rpmem_errormsg`]). A call refused for its arguments leaves a live
//! handle usable.

use std::ffi::{c_char, c_int, c_uint, c_void};

use rpmem::{Config, RemotePool, RemoveFlags};

use crate::attr::RpmemPoolAttr;
use crate::error::{self, CapiError};
use crate::ffi;
use crate::{MAJOR_VERSION, MINOR_VERSION, REMOVE_FORCE, REMOVE_POOL_SET};

/// What an `RPMEMpool *` points to: the engine's pool, boxed.
pub struct RpmemPool {
    pool: RemotePool,
}

// Lanes are used from many threads at once through shared borrows of one
// handle, and a handle may be closed on another thread than created it.
const _: fn() = || {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<RpmemPool>();
};

/// The arguments `rpmem_create` and `rpmem_open` share, read and checked:
/// the target, the pool set name and the lanes wanted (`*nlanes`, non-zero).
///
/// # Safety
/// `target` and `pool_set_name` must be NULL or NUL-terminated strings valid
/// for `'a`; `nlanes` NULL or a readable `unsigned`.
unsafe fn session_args<'a>(
    target: *const c_char,
    pool_set_name: *const c_char,
    nlanes: *const c_uint,
) -> Result<(&'a str, &'a str, u32), CapiError> {
    non_null!(nlanes);
    // SAFETY: forwarded caller obligation.
    let target = unsafe { ffi::str_arg(target, "target")? };
    // SAFETY: forwarded caller obligation.
    let pool_set = unsafe { ffi::str_arg(pool_set_name, "pool_set_name")? };
    // SAFETY: checked non-NULL; readable per the caller.
    match unsafe { ffi::read_u32(nlanes) } {
        0 => Err(CapiError::InvalidArgument(
            "*nlanes is 0: at least one lane is needed".into(),
        )),
        n => Ok((target, pool_set, n)),
    }
}

/// Tells the caller how many lanes `pool` got and hands it out as a handle.
///
/// # Safety
/// `nlanes` must be non-NULL and point to a writable `unsigned`.
unsafe fn hand_out(pool: RemotePool, nlanes: *mut c_uint) -> *mut RpmemPool {
    // SAFETY: forwarded caller obligation.
    unsafe { ffi::write_u32(nlanes, pool.nlanes()) };
    ffi::into_handle(RpmemPool { pool })
}

export! {
    /// Creates a remote pool on `target` described by the pool set file
    /// `pool_set_name` (relative to the target's poolset directory) and opens it
    /// for the local region `pool_addr`..`pool_addr + pool_size`.
    ///
    /// `*nlanes` is the number of lanes wanted (non-zero) and receives the number
    /// granted. `create_attr` non-NULL and non-zero makes a pool with a 4096-byte
    /// header; NULL or all-zero needs `OPTION NOHDRS` in the set. The environment
    /// (`RPMEM_SSH`, `RPMEM_CMD`, ...) is read at each call. Returns NULL and sets
    /// errno on failure.
    ///
    /// # Safety
    /// Pointers must be NULL or valid for their C types; the region must stay
    /// readable until `rpmem_close`.
    unsafe fn rpmem_create(target: *const c_char, pool_set_name: *const c_char, pool_addr: *mut c_void, pool_size: usize, nlanes: *mut c_uint, create_attr: *const RpmemPoolAttr) -> *mut RpmemPool;
    fail std::ptr::null_mut();
    {
        non_null!(target, pool_set_name, pool_addr, nlanes);
        // SAFETY: C strings and an unsigned, valid for the call per the C contract.
        let (target, pool_set, wanted) = unsafe { session_args(target, pool_set_name, nlanes)? };
        // SAFETY: NULL or a readable struct rpmem_pool_attr per the C contract.
        let attr = unsafe { ffi::read_attr(create_attr) };
        let region = pool_addr.cast::<u8>().cast_const();
        // SAFETY: the C contract makes the caller keep the region readable
        // until rpmem_close, which is as long as the handle lives.
        let pool = unsafe {
            let cfg = Config::from_env();
            RemotePool::create(&cfg, target, pool_set, region, pool_size, wanted, attr.as_ref())?
        };
        // SAFETY: checked non-NULL above; points to a writable unsigned.
        Ok(unsafe { hand_out(pool, nlanes) })
    }
}

export! {
    /// Opens an existing remote pool; arguments as for [`rpmem_create`]. When
    /// `open_attr` is non-NULL it receives the stored attributes (zero for a pool
    /// without headers). Opening with `open_attr == NULL` does not make a pool's
    /// header writable: that is decided by the target.
    ///
    /// # Safety
    /// As for [`rpmem_create`]; `open_attr` must be NULL or writable.
    unsafe fn rpmem_open(target: *const c_char, pool_set_name: *const c_char, pool_addr: *mut c_void, pool_size: usize, nlanes: *mut c_uint, open_attr: *mut RpmemPoolAttr) -> *mut RpmemPool;
    fail std::ptr::null_mut();
    {
        non_null!(target, pool_set_name, pool_addr, nlanes);
        // SAFETY: C strings and an unsigned, valid for the call per the C contract.
        let (target, pool_set, wanted) = unsafe { session_args(target, pool_set_name, nlanes)? };
        let region = pool_addr.cast::<u8>().cast_const();
        // SAFETY: as in rpmem_create.
        let (pool, attr) = unsafe {
            RemotePool::open(&Config::from_env(), target, pool_set, region, pool_size, wanted)?
        };
        // SAFETY: NULL or a writable struct rpmem_pool_attr per the C contract.
        unsafe { ffi::write_attr(open_attr, &attr) };
        // SAFETY: checked non-NULL above; points to a writable unsigned.
        Ok(unsafe { hand_out(pool, nlanes) })
    }
}

export! {
    /// Overwrites the pool's stored attributes (`attr` NULL: zeroed ones).
    /// Returns 0, or -1 with errno set.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle; `attr` NULL or readable.
    unsafe fn rpmem_set_attr(rpp: *mut RpmemPool, attr: *const RpmemPoolAttr) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        // SAFETY: NULL or a readable struct rpmem_pool_attr per the C contract.
        let attr = unsafe { ffi::read_attr(attr) };
        rpp.pool.set_attr(attr.as_ref())?;
        Ok(0)
    }
}

export! {
    /// Closes the pool on both sides (the remote pool stays). Returns 0, or -1
    /// with errno set if closing failed; the handle is freed in either case and
    /// must not be used again.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle that no other thread is using.
    unsafe fn rpmem_close(rpp: *mut RpmemPool) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle, given up by the caller.
        let rpp = unsafe { ffi::from_handle(rpp) };
        rpp.pool.close()?;
        Ok(0)
    }
}

export! {
    /// Copies `length` bytes at `offset` of the local region to the remote pool
    /// and makes them durable there. `flags`: 0 or `RPMEM_PERSIST_RELAXED`.
    /// Returns 0, or -1 with errno set.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle.
    unsafe fn rpmem_persist(rpp: *mut RpmemPool, offset: usize, length: usize, lane: c_uint, flags: c_uint) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        rpp.pool.persist(offset, length, lane, flags)?;
        Ok(0)
    }
}

export! {
    /// Like [`rpmem_persist`] (flags 0), and also flushes to the deepest
    /// durability domain the target offers.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle.
    unsafe fn rpmem_deep_persist(rpp: *mut RpmemPool, offset: usize, length: usize, lane: c_uint) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        rpp.pool.deep_persist(offset, length, lane)?;
        Ok(0)
    }
}

export! {
    /// Copies without waiting for durability (see [`rpmem_drain`]).
    /// `flags`: 0 or `RPMEM_FLUSH_RELAXED`.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle.
    unsafe fn rpmem_flush(rpp: *mut RpmemPool, offset: usize, length: usize, lane: c_uint, flags: c_uint) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        rpp.pool.flush(offset, length, lane, flags)?;
        Ok(0)
    }
}

export! {
    /// Makes every earlier flush on `lane` durable. `flags` must be 0.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle.
    unsafe fn rpmem_drain(rpp: *mut RpmemPool, lane: c_uint, flags: c_uint) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        rpp.pool.drain(lane, flags)?;
        Ok(0)
    }
}

export! {
    /// Reads `length` bytes at `offset` of the remote pool into `buff` (which
    /// may be NULL only when `length` is 0). Returns 0, or -1 with errno set.
    ///
    /// # Safety
    /// `rpp` must be NULL or a live handle; `buff` NULL or `length` writable bytes.
    unsafe fn rpmem_read(rpp: *mut RpmemPool, buff: *mut c_void, offset: usize, length: usize, lane: c_uint) -> c_int;
    fail -1;
    {
        non_null!(rpp);
        // SAFETY: non-NULL live handle per the C contract.
        let rpp = unsafe { ffi::handle_ref(rpp) };
        // SAFETY: per the C contract buff holds `length` writable bytes that
        // the caller does not touch during the call.
        let buf = unsafe { ffi::out_buffer(buff.cast::<u8>(), length)? };
        rpp.pool.read(buf, offset, lane)?;
        Ok(0)
    }
}

export! {
    /// Removes the remote pool described by `pool_set` on `target`: its part
    /// files; with `RPMEM_REMOVE_FORCE` even if inconsistent; with
    /// `RPMEM_REMOVE_POOL_SET` the set file too. Other flag bits → EINVAL.
    /// Returns 0, or -1 with errno set (ENOENT for a missing pool).
    ///
    /// # Safety
    /// `target` and `pool_set` must be NULL or NUL-terminated strings.
    unsafe fn rpmem_remove(target: *const c_char, pool_set: *const c_char, flags: c_int) -> c_int;
    fail -1;
    {
        non_null!(target, pool_set);
        // SAFETY: non-NULL C strings, valid for the call per the C contract.
        let target = unsafe { ffi::str_arg(target, "target")? };
        // SAFETY: as above.
        let pool_set = unsafe { ffi::str_arg(pool_set, "pool_set")? };
        let flags = u32::try_from(flags)
            .ok()
            .and_then(RemoveFlags::from_bits)
            .ok_or_else(|| {
                let known = REMOVE_FORCE | REMOVE_POOL_SET;
                CapiError::InvalidArgument(format!(
                    "invalid flags 0x{:x} (unknown bits 0x{:x})",
                    flags,
                    flags & !known
                ))
            })?;
        rpmem::remove(&Config::from_env(), target, pool_set, flags)?;
        Ok(0)
    }
}

export! {
    /// Checks the library against the API version an application was built for.
    /// Returns NULL when compatible (same major, minor not newer than 3);
    /// otherwise a message such as "librpmem major version mismatch (need 2,
    /// found 1)". As in PMDK, the message is written to this thread's error
    /// buffer (the one [`rpmem_errormsg`] returns): it must not be freed, and it
    /// stays unchanged until the next failing librpmem call in the same thread.
    /// errno is left alone.
    fn rpmem_check_version(major_required: c_uint, minor_required: c_uint) -> *const c_char;
    // Should anything panic, the answer must still read as a failure: the
    // boundary then returns the message buffer, which holds the reason.
    fail error::message_ptr();
    {
        let msg = if major_required != MAJOR_VERSION {
            format!(
                "librpmem major version mismatch (need {major_required}, found {MAJOR_VERSION})"
            )
        } else if minor_required > MINOR_VERSION {
            format!(
                "librpmem minor version mismatch (need {minor_required}, found {MINOR_VERSION})"
            )
        } else {
            return Ok(std::ptr::null());
        };
        Ok(error::set_message(&msg))
    }
}

export! {
    /// This thread's last error message: a NUL-terminated string owned by the
    /// library ("" before any failure). The pointer stays valid for the life of
    /// the thread; the text is replaced by the next failing call in this thread.
    fn rpmem_errormsg() -> *const c_char;
    fail c"".as_ptr();
    {
        Ok(error::message_ptr())
    }
}

#[cfg(test)]
mod tests {
    // SAFETY (for every unsafe block in these tests): the exports are called
    // with pointers that are either NULL, C string literals, or point to live
    // locals of the right size; the calls under test refuse before using them.
    #![allow(clippy::undocumented_unsafe_blocks)]

    use super::*;
    use crate::error::last_message;
    use std::ffi::CStr;
    use std::ptr::{null, null_mut};

    /// Runs `f` with errno preset to 0; returns errno and the message after.
    fn errno_after<R>(f: impl FnOnce() -> R) -> (R, i32, String) {
        ffi::set_errno(0);
        let r = f();
        (r, ffi::errno(), last_message())
    }

    fn cstr(p: *const c_char) -> String {
        assert!(!p.is_null());
        // SAFETY: the library returns NUL-terminated strings.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    #[test]
    fn null_handle_is_einval_everywhere() {
        let mut byte = 0u8;
        let buf = (&mut byte as *mut u8).cast::<c_void>();
        // SAFETY (all calls below): NULL handles are allowed and refused.
        type Call = Box<dyn Fn() -> c_int>;
        let cases: Vec<(&str, Call)> = vec![
            (
                "rpmem_persist",
                Box::new(|| unsafe { rpmem_persist(null_mut(), 4096, 8, 0, 0) }),
            ),
            (
                "rpmem_deep_persist",
                Box::new(|| unsafe { rpmem_deep_persist(null_mut(), 4096, 8, 0) }),
            ),
            (
                "rpmem_flush",
                Box::new(|| unsafe { rpmem_flush(null_mut(), 4096, 8, 0, 0) }),
            ),
            (
                "rpmem_drain",
                Box::new(|| unsafe { rpmem_drain(null_mut(), 0, 0) }),
            ),
            (
                "rpmem_read",
                Box::new(move || unsafe { rpmem_read(null_mut(), buf, 0, 1, 0) }),
            ),
            (
                "rpmem_set_attr",
                Box::new(|| unsafe { rpmem_set_attr(null_mut(), null()) }),
            ),
            (
                "rpmem_close",
                Box::new(|| unsafe { rpmem_close(null_mut()) }),
            ),
        ];
        for (name, call) in cases {
            let (ret, errno, msg) = errno_after(call);
            assert_eq!(ret, -1, "{name}");
            assert_eq!(errno, libc::EINVAL, "{name}");
            assert_eq!(msg, "rpp is NULL", "{name}");
        }
    }

    #[test]
    fn create_and_open_check_c_arguments_first() {
        let mut region = vec![0u8; 8192];
        let addr = region.as_mut_ptr().cast::<c_void>();
        let mut lanes: c_uint = 4;
        let nl: *mut c_uint = &mut lanes;
        let t = c"localhost".as_ptr();
        let s = c"pool.set".as_ptr();
        type Call<'a> = Box<dyn Fn() -> *mut RpmemPool + 'a>;
        // SAFETY (all calls below): every non-NULL pointer is valid; each
        // call has one NULL argument and is refused before any use.
        let cases: Vec<(&str, Call)> = vec![
            (
                "target is NULL",
                Box::new(|| unsafe { rpmem_create(null(), s, addr, 8192, nl, null()) }),
            ),
            (
                "pool_set_name is NULL",
                Box::new(|| unsafe { rpmem_create(t, null(), addr, 8192, nl, null()) }),
            ),
            (
                "pool_addr is NULL",
                Box::new(|| unsafe { rpmem_create(t, s, null_mut(), 8192, nl, null()) }),
            ),
            (
                "nlanes is NULL",
                Box::new(|| unsafe { rpmem_create(t, s, addr, 8192, null_mut(), null()) }),
            ),
            (
                "target is NULL",
                Box::new(|| unsafe { rpmem_open(null(), s, addr, 8192, nl, null_mut()) }),
            ),
            (
                "pool_set_name is NULL",
                Box::new(|| unsafe { rpmem_open(t, null(), addr, 8192, nl, null_mut()) }),
            ),
            (
                "pool_addr is NULL",
                Box::new(|| unsafe { rpmem_open(t, s, null_mut(), 8192, nl, null_mut()) }),
            ),
            (
                "nlanes is NULL",
                Box::new(|| unsafe { rpmem_open(t, s, addr, 8192, null_mut(), null_mut()) }),
            ),
        ];
        for (want, call) in cases {
            let (ret, errno, msg) = errno_after(call);
            assert!(ret.is_null(), "{want}");
            assert_eq!(errno, libc::EINVAL, "{want}");
            assert_eq!(msg, want);
        }
        assert_eq!(lanes, 4, "*nlanes untouched on failure");
    }

    #[test]
    fn zero_lanes_and_bad_utf8_are_einval() {
        let mut region = vec![0u8; 8192];
        let addr = region.as_mut_ptr().cast::<c_void>();
        let mut lanes: c_uint = 0;
        let (ret, errno, msg) = errno_after(|| {
            // SAFETY: valid pointers; refused because *nlanes is 0.
            unsafe {
                rpmem_create(
                    c"localhost".as_ptr(),
                    c"p.set".as_ptr(),
                    addr,
                    8192,
                    &mut lanes,
                    null(),
                )
            }
        });
        assert!(ret.is_null());
        assert_eq!(errno, libc::EINVAL);
        assert!(msg.starts_with("*nlanes is 0"), "{msg}");

        lanes = 1;
        let bad = c"\xff\xfe".as_ptr();
        let (ret, errno, msg) = errno_after(|| {
            // SAFETY: valid pointers; refused because the target is not UTF-8.
            unsafe { rpmem_open(bad, c"p.set".as_ptr(), addr, 8192, &mut lanes, null_mut()) }
        });
        assert!(ret.is_null());
        assert_eq!(errno, libc::EINVAL);
        assert_eq!(msg, "target is not valid UTF-8");
    }

    #[test]
    fn remove_checks_pointers_and_flags() {
        let t = c"localhost".as_ptr();
        let s = c"pool.set".as_ptr();
        // SAFETY (all calls below): valid or NULL strings, refused before use.
        let (ret, errno, msg) = errno_after(|| unsafe { rpmem_remove(null(), s, 0) });
        assert_eq!((ret, errno), (-1, libc::EINVAL));
        assert_eq!(msg, "target is NULL");
        let (ret, errno, msg) = errno_after(|| unsafe { rpmem_remove(t, null(), 0) });
        assert_eq!((ret, errno), (-1, libc::EINVAL));
        assert_eq!(msg, "pool_set is NULL");
        for flags in [4, 0x10 | REMOVE_FORCE, -1] {
            let (ret, errno, msg) = errno_after(|| unsafe { rpmem_remove(t, s, flags) });
            assert_eq!((ret, errno), (-1, libc::EINVAL), "flags {flags:#x}");
            assert!(msg.starts_with("invalid flags"), "{msg}");
        }
    }

    /// Programs written for librpmem print `"rpmem_open: %s"` with
    /// `rpmem_errormsg()`; the message itself does not name the function.
    #[test]
    fn messages_do_not_repeat_the_function_name() {
        let (ret, errno, msg) = errno_after(|| {
            // SAFETY: valid strings; refused for the target's white space.
            unsafe { rpmem_remove(c"a b".as_ptr(), c"p.set".as_ptr(), 0) }
        });
        assert_eq!((ret, errno), (-1, libc::EINVAL));
        assert!(msg.starts_with("invalid target 'a b'"), "{msg}");
        // SAFETY: NULL handle, refused.
        let (_, _, msg) = errno_after(|| unsafe { rpmem_persist(null_mut(), 0, 8, 0, 0) });
        assert_eq!(msg, "rpp is NULL");
    }

    #[test]
    fn check_version_reports_mismatches() {
        assert!(rpmem_check_version(1, 0).is_null());
        assert!(rpmem_check_version(1, 3).is_null());
        ffi::set_errno(1234);
        let m = cstr(rpmem_check_version(2, 0));
        assert_eq!(m, "librpmem major version mismatch (need 2, found 1)");
        assert_eq!(ffi::errno(), 1234, "errno left alone");
        assert_eq!(
            cstr(rpmem_check_version(0, 9)),
            "librpmem major version mismatch (need 0, found 1)"
        );
        assert_eq!(
            cstr(rpmem_check_version(1, 4)),
            "librpmem minor version mismatch (need 4, found 3)"
        );
        // The same buffer rpmem_errormsg() returns.
        assert_eq!(rpmem_check_version(1, 4), rpmem_errormsg());
    }

    #[test]
    fn errormsg_is_thread_local_and_stable() {
        let here = rpmem_errormsg();
        // SAFETY: NULL handle, refused.
        assert_eq!(unsafe { rpmem_drain(null_mut(), 0, 0) }, -1);
        assert_eq!(cstr(here), "rpp is NULL", "same pointer, new text");
        std::thread::spawn(|| {
            assert_eq!(cstr(rpmem_errormsg()), "", "fresh thread has no message");
            // SAFETY: NULL target, refused.
            assert_eq!(unsafe { rpmem_remove(null(), c"p".as_ptr(), 0) }, -1);
            assert_eq!(cstr(rpmem_errormsg()), "target is NULL");
        })
        .join()
        .unwrap();
        assert_eq!(
            cstr(rpmem_errormsg()),
            "rpp is NULL",
            "other thread's error not seen"
        );
        // A successful call does not clear the message.
        assert!(rpmem_check_version(1, 3).is_null());
        assert_eq!(cstr(here), "rpp is NULL");
    }

    #[test]
    fn panics_become_enotrecoverable() {
        let (ret, errno, msg) =
            errno_after(|| ffi_boundary!("rpmem_test", -7, { panic!("boom {}", 42) }));
        assert_eq!(ret, -7);
        assert_eq!(errno, libc::ENOTRECOVERABLE);
        assert_eq!(msg, "internal error: boom 42");
        let (ret, _, msg) = errno_after(|| {
            ffi_boundary!("rpmem_test", null::<u8>(), {
                std::panic::panic_any(17u32);
            })
        });
        assert!(ret.is_null());
        assert_eq!(msg, "internal error: panic with a non-string payload");
    }

    #[test]
    fn messages_are_cut_to_the_buffer() {
        let long = "é".repeat(error::MSG_BUF_LEN);
        error::set_message(&long);
        let m = last_message();
        assert!(m.len() < error::MSG_BUF_LEN && m.len() >= error::MSG_BUF_LEN - 2);
        assert!(m.chars().all(|c| c == 'é'));
        error::set_message("before\0after");
        assert_eq!(last_message(), "before");
    }

    #[test]
    fn read_buffer_rules() {
        // SAFETY: length 0 never touches the pointer.
        assert!(unsafe { ffi::out_buffer(null_mut(), 0) }
            .unwrap()
            .is_empty());
        // SAFETY: NULL with a length is refused before use.
        let e = unsafe { ffi::out_buffer(null_mut(), 1) }.unwrap_err();
        assert_eq!(
            (e.errno(), e.to_string()),
            (libc::EINVAL, "buff is NULL".to_string())
        );
        let mut b = [7u8; 4];
        // SAFETY: refused for its length before any use.
        let e = unsafe { ffi::out_buffer(b.as_mut_ptr(), usize::MAX) }.unwrap_err();
        assert_eq!(e.errno(), libc::EINVAL);
        // SAFETY: b has 4 writable bytes.
        let s = unsafe { ffi::out_buffer(b.as_mut_ptr(), 4) }.unwrap();
        assert_eq!(s, &[0, 0, 0, 0], "zeroed before use");
    }

    #[test]
    fn engine_errors_keep_their_errno() {
        let e = CapiError::from(rpmem::Error::ConnectionReset("ssh died".into()));
        assert_eq!(e.errno(), libc::ECONNRESET);
        assert_eq!(e.to_string(), "ssh died");
        let e = CapiError::from(rpmem::Error::RemoteExit {
            code: 0,
            message: "odd".into(),
        });
        assert_eq!(e.errno(), libc::EIO, "a failure never reports errno 0");
    }
}
