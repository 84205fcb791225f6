//! Every `unsafe` of the crate: loading libfabric, and calling through the
//! operation tables of its objects. Each object is owned by one handle type
//! that closes it on drop; the safe layer keeps parents alive (an `Arc` of
//! the parent in each child) so objects close children first.
//!
//! Buffers given to libfabric for an operation must stay valid until the
//! operation completes or the endpoint closes: [`Conn`] owns the endpoint,
//! its completion queue and the table of operations in flight, each holding
//! an `Arc` of the memory region it uses, released only on its completion or
//! after the endpoint is closed.

use crate::error::{Error, Result};
use crate::ffi::*;
use std::collections::HashMap;
use std::ffi::{CStr, CString};
use std::os::fd::RawFd;
use std::os::raw::{c_int, c_void};
use std::ptr::{self, NonNull};
use std::sync::Arc;

/// A loader error with the dynamic loader's own words (libloading keeps
/// them in the source).
fn describe(e: &libloading::Error) -> String {
    match std::error::Error::source(e) {
        Some(s) => s.to_string(),
        None => e.to_string(),
    }
}

/// The exported libfabric functions, resolved once.
pub(crate) struct Lib {
    getinfo: FnGetinfo,
    freeinfo: FnFreeinfo,
    dupinfo: FnDupinfo,
    fabric: FnFabric,
    strerror: FnStrerror,
    version: FnVersion,
    // Keeps the function pointers above valid; dropped last.
    _lib: libloading::Library,
}

impl Lib {
    /// Loads `name` (a soname or a path) and resolves the functions we call.
    pub(crate) fn load(name: &str) -> Result<Lib> {
        let err = |reason: String| Error::Load {
            library: name.to_string(),
            reason,
        };
        // SAFETY: loading runs the library's initialisers; libfabric's only
        // set up its provider table and have no preconditions on us.
        let lib = unsafe { libloading::Library::new(name) }.map_err(|e| err(describe(&e)))?;
        macro_rules! sym {
            ($name:literal, $ty:ty) => {{
                let s: libloading::Symbol<$ty> =
                    // SAFETY: the symbol is libfabric's exported function of
                    // this name, whose C prototype `$ty` spells (checked by
                    // the layout test against the headers). dlsym returns its
                    // default version, the one the headers describe.
                    unsafe { lib.get(concat!($name, "\0").as_bytes()) }
                        .map_err(|e| err(format!("{}: {}", $name, describe(&e))))?;
                *s
            }};
        }
        let getinfo = sym!("fi_getinfo", FnGetinfo);
        let freeinfo = sym!("fi_freeinfo", FnFreeinfo);
        let dupinfo = sym!("fi_dupinfo", FnDupinfo);
        let fabric = sym!("fi_fabric", FnFabric);
        let strerror = sym!("fi_strerror", FnStrerror);
        let version = sym!("fi_version", FnVersion);
        Ok(Lib {
            getinfo,
            freeinfo,
            dupinfo,
            fabric,
            strerror,
            version,
            _lib: lib,
        })
    }

    /// `fi_version()`: (major << 16) | minor of the loaded library.
    pub(crate) fn version(&self) -> u32 {
        // SAFETY: no arguments, returns a constant.
        unsafe { (self.version)() }
    }

    /// `fi_strerror` of a positive error number.
    pub(crate) fn strerror(&self, errno: i32) -> String {
        // SAFETY: fi_strerror accepts any number and returns a static string
        // (or NULL, handled).
        let p = unsafe { (self.strerror)(errno) };
        if p.is_null() {
            return format!("error {errno}");
        }
        // SAFETY: non-null, NUL-terminated, static storage.
        unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
    }

    /// Turns a negative libfabric return value into an error.
    pub(crate) fn fail(&self, call: &'static str, ret: isize) -> Error {
        let errno = ret.unsigned_abs().min(i32::MAX as usize) as i32;
        Error::Call {
            call,
            errno,
            message: self.strerror(errno),
        }
    }

    fn check(&self, call: &'static str, ret: c_int) -> Result<()> {
        if ret < 0 {
            Err(self.fail(call, ret as isize))
        } else {
            Ok(())
        }
    }
}

/// What to put in the `fi_getinfo` hints.
pub(crate) struct HintSpec<'a> {
    pub provider: Option<&'a str>,
    pub caps: u64,
    pub mode: u64,
    pub mr_mode: i32,
    pub msg_order: u64,
}

/// Calls `fi_getinfo` and returns every answer as its own owned `fi_info`.
pub(crate) fn getinfo(
    lib: &Arc<Lib>,
    spec: &HintSpec<'_>,
    node: Option<&str>,
    service: Option<&str>,
    flags: u64,
) -> Result<Vec<Info>> {
    let cstr = |s: Option<&str>| -> Result<Option<CString>> {
        s.map(|s| {
            CString::new(s).map_err(|_| Error::InvalidArgument(format!("{s:?} contains NUL")))
        })
        .transpose()
    };
    let node = cstr(node)?;
    let service = cstr(service)?;
    let provider = cstr(spec.provider)?;
    // SAFETY: fi_dupinfo(NULL) is fi_allocinfo(): a zeroed fi_info with every
    // attribute structure allocated, or NULL.
    let hints = NonNull::new(unsafe { (lib.dupinfo)(ptr::null()) }).ok_or(Error::Call {
        call: "fi_allocinfo",
        errno: libc::ENOMEM,
        message: "out of memory".into(),
    })?;
    let hints = Info {
        ptr: hints,
        lib: lib.clone(),
    };
    // SAFETY: `hints` is ours, fully allocated by fi_allocinfo; the provider
    // name is strdup'ed because fi_freeinfo frees it with free().
    unsafe {
        let h = hints.ptr.as_ptr();
        (*h).caps = spec.caps;
        (*h).mode = spec.mode;
        (*(*h).ep_attr).type_ = FI_EP_MSG;
        (*(*h).domain_attr).mr_mode = spec.mr_mode;
        (*(*h).domain_attr).threading = FI_THREAD_SAFE;
        (*(*h).tx_attr).msg_order = spec.msg_order;
        (*(*h).rx_attr).msg_order = spec.msg_order;
        if let Some(p) = &provider {
            (*(*h).fabric_attr).prov_name = libc::strdup(p.as_ptr());
        }
    }
    let mut list: *mut fi_info = ptr::null_mut();
    let opt = |c: &Option<CString>| c.as_ref().map_or(ptr::null(), |c| c.as_ptr());
    // SAFETY: strings are NUL-terminated and outlive the call; hints is a valid
    // fi_info; `list` receives a list we free below.
    let ret = unsafe {
        (lib.getinfo)(
            FI_VERSION_REQUESTED,
            opt(&node),
            opt(&service),
            flags,
            hints.ptr.as_ptr(),
            &mut list,
        )
    };
    lib.check("fi_getinfo", ret)?;
    let mut out = Vec::new();
    let mut cur = list;
    while !cur.is_null() {
        // SAFETY: `cur` is an element of the list fi_getinfo returned; dupinfo
        // copies that one element (its `next` is NULL in the copy).
        let dup = unsafe { (lib.dupinfo)(cur) };
        if let Some(ptr) = NonNull::new(dup) {
            out.push(Info {
                ptr,
                lib: lib.clone(),
            });
        }
        // SAFETY: still a valid list element.
        cur = unsafe { (*cur).next };
    }
    // SAFETY: the list came from fi_getinfo and is freed once.
    unsafe { (lib.freeinfo)(list) };
    Ok(out)
}

/// One owned `fi_info` (freed with `fi_freeinfo`).
pub(crate) struct Info {
    ptr: NonNull<fi_info>,
    lib: Arc<Lib>,
}

// SAFETY: an fi_info is plain heap data owned by this handle alone.
unsafe impl Send for Info {}
// SAFETY: shared access only reads it.
unsafe impl Sync for Info {}

impl Drop for Info {
    fn drop(&mut self) {
        // SAFETY: owned, freed once.
        unsafe { (self.lib.freeinfo)(self.ptr.as_ptr()) }
    }
}

fn cstr_field(p: *const std::os::raw::c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: libfabric's string fields are NUL-terminated heap strings owned
    // by the fi_info we borrow for this call.
    unsafe { CStr::from_ptr(p) }.to_string_lossy().into_owned()
}

/// Plain values read out of an `fi_info`.
#[derive(Debug, Clone, Default)]
pub(crate) struct InfoFields {
    pub provider: String,
    pub fabric: String,
    pub domain: String,
    pub mr_mode: i32,
    pub mr_key_size: usize,
    pub inject_size: usize,
    pub tx_size: usize,
    pub rx_size: usize,
    pub max_msg_size: usize,
    pub src_addr: Vec<u8>,
    pub dest_addr: Vec<u8>,
}

fn bytes_at(p: *const c_void, len: usize) -> Vec<u8> {
    if p.is_null() || len == 0 {
        return Vec::new();
    }
    // SAFETY: libfabric's address fields point to `len` readable bytes.
    unsafe { std::slice::from_raw_parts(p as *const u8, len) }.to_vec()
}

impl Info {
    pub(crate) fn fields(&self) -> InfoFields {
        // SAFETY: a valid fi_info from libfabric; its attribute pointers are
        // either NULL (checked) or valid for its lifetime.
        unsafe {
            let i = &*self.ptr.as_ptr();
            let mut f = InfoFields {
                src_addr: bytes_at(i.src_addr, i.src_addrlen),
                dest_addr: bytes_at(i.dest_addr, i.dest_addrlen),
                ..Default::default()
            };
            if let Some(fa) = i.fabric_attr.as_ref() {
                f.provider = cstr_field(fa.prov_name);
                f.fabric = cstr_field(fa.name);
            }
            if let Some(da) = i.domain_attr.as_ref() {
                f.domain = cstr_field(da.name);
                f.mr_mode = da.mr_mode;
                f.mr_key_size = da.mr_key_size;
            }
            if let Some(tx) = i.tx_attr.as_ref() {
                f.inject_size = tx.inject_size;
                f.tx_size = tx.size;
            }
            if let Some(rx) = i.rx_attr.as_ref() {
                f.rx_size = rx.size;
            }
            if let Some(ep) = i.ep_attr.as_ref() {
                f.max_msg_size = ep.max_msg_size;
            }
            f
        }
    }

    /// An independent copy.
    pub(crate) fn dup(&self) -> Result<Info> {
        // SAFETY: valid fi_info; dupinfo returns a new allocation or NULL.
        let p = unsafe { (self.lib.dupinfo)(self.ptr.as_ptr()) };
        Ok(Info {
            ptr: NonNull::new(p).ok_or(Error::Call {
                call: "fi_dupinfo",
                errno: libc::ENOMEM,
                message: "out of memory".into(),
            })?,
            lib: self.lib.clone(),
        })
    }

    pub(crate) fn lib(&self) -> &Arc<Lib> {
        &self.lib
    }
}

macro_rules! close_on_drop {
    ($t:ident, $field:ident) => {
        impl Drop for $t {
            fn drop(&mut self) {
                // SAFETY: the object is ours and still open; every child holds
                // an Arc of its parent, so children are already closed.
                unsafe {
                    let f = &mut (*self.ptr).$field as *mut fid;
                    if let Some(close) = (*(*f).ops).close {
                        close(f);
                    }
                }
            }
        }
        // SAFETY: domains are opened FI_THREAD_SAFE, so libfabric serialises
        // concurrent use of this object itself.
        unsafe impl Send for $t {}
        // SAFETY: as above.
        unsafe impl Sync for $t {}
    };
}

/// An open `fid_fabric`.
pub(crate) struct FabricH {
    ptr: *mut fid_fabric,
    pub(crate) lib: Arc<Lib>,
    pub(crate) provider: String,
}
close_on_drop!(FabricH, fid);

fn unsupported(provider: &str, operation: &'static str) -> Error {
    Error::Unsupported {
        provider: provider.to_string(),
        operation,
    }
}

impl FabricH {
    pub(crate) fn open(info: &Info) -> Result<FabricH> {
        let lib = info.lib().clone();
        let mut fab: *mut fid_fabric = ptr::null_mut();
        // SAFETY: fabric_attr of a valid fi_info from fi_getinfo.
        let ret =
            unsafe { (lib.fabric)((*info.ptr.as_ptr()).fabric_attr, &mut fab, ptr::null_mut()) };
        lib.check("fi_fabric", ret)?;
        Ok(FabricH {
            ptr: fab,
            provider: info.fields().provider,
            lib,
        })
    }

    fn ops(&self) -> &fi_ops_fabric {
        // SAFETY: an open fabric's ops table lives as long as the fabric.
        unsafe { &*(*self.ptr).ops }
    }

    pub(crate) fn domain(&self, info: &Info) -> Result<DomainH> {
        let f = self
            .ops()
            .domain
            .ok_or(unsupported(&self.provider, "fi_domain"))?;
        let mut d: *mut fid_domain = ptr::null_mut();
        // SAFETY: open fabric, valid info, out pointer to a local.
        let ret = unsafe { f(self.ptr, info.ptr.as_ptr(), &mut d, ptr::null_mut()) };
        self.lib.check("fi_domain", ret)?;
        Ok(DomainH {
            ptr: d,
            lib: self.lib.clone(),
            provider: self.provider.clone(),
        })
    }

    /// An event queue with an fd wait object where the provider offers one.
    pub(crate) fn eq(&self) -> Result<EqH> {
        let f = self
            .ops()
            .eq_open
            .ok_or(unsupported(&self.provider, "fi_eq_open"))?;
        let (eq, fd) = open_queue(&self.lib, "fi_eq_open", |wait_obj| {
            let mut attr = fi_eq_attr {
                size: 64,
                flags: 0,
                wait_obj,
                signaling_vector: 0,
                wait_set: ptr::null_mut(),
            };
            let mut eq: *mut fid_eq = ptr::null_mut();
            // SAFETY: open fabric, attr and out pointer are locals.
            let ret = unsafe { f(self.ptr, &mut attr, &mut eq, ptr::null_mut()) };
            (ret, eq as *mut fid)
        })?;
        Ok(EqH {
            ptr: eq as *mut fid_eq,
            lib: self.lib.clone(),
            fd,
        })
    }

    pub(crate) fn passive_ep(&self, info: &Info) -> Result<PepH> {
        let f = self
            .ops()
            .passive_ep
            .ok_or(unsupported(&self.provider, "fi_passive_ep"))?;
        let mut p: *mut fid_pep = ptr::null_mut();
        // SAFETY: open fabric, valid info, out pointer to a local.
        let ret = unsafe { f(self.ptr, info.ptr.as_ptr(), &mut p, ptr::null_mut()) };
        self.lib.check("fi_passive_ep", ret)?;
        Ok(PepH {
            ptr: p,
            lib: self.lib.clone(),
            provider: self.provider.clone(),
        })
    }

    /// `fi_trywait` on a CQ and an EQ: true when both fds may be slept on.
    pub(crate) fn trywait(&self, cq: &CqH, eq: &EqH) -> Result<bool> {
        let f = self
            .ops()
            .trywait
            .ok_or(unsupported(&self.provider, "fi_trywait"))?;
        // SAFETY: both objects are open and belong to this fabric.
        let mut fids = unsafe {
            [
                &mut (*cq.ptr).fid as *mut fid,
                &mut (*eq.ptr).fid as *mut fid,
            ]
        };
        // SAFETY: open fabric, array of two open fids.
        let ret = unsafe { f(self.ptr, fids.as_mut_ptr(), 2) };
        match ret {
            0 => Ok(true),
            r if r == -libc::EAGAIN => Ok(false),
            r => Err(self.lib.fail("fi_trywait", r as isize)),
        }
    }
}

/// Opens an event or completion queue, preferring an fd wait object (which
/// lets a waiter sleep on both queues of an endpoint at once). `open` makes
/// the call for a wait object and returns its result and the new queue,
/// whose `fid` comes first (so the pointer casts back to the queue type).
fn open_queue(
    lib: &Lib,
    call: &'static str,
    mut open: impl FnMut(c_int) -> (c_int, *mut fid),
) -> Result<(*mut fid, Option<RawFd>)> {
    let mut last = None;
    for wait_obj in [FI_WAIT_FD, FI_WAIT_UNSPEC] {
        let (ret, f) = open(wait_obj);
        if ret == 0 {
            let fd = if wait_obj == FI_WAIT_FD {
                // SAFETY: `f` was just opened.
                unsafe { wait_fd(f) }
            } else {
                None
            };
            return Ok((f, fd));
        }
        last = Some(lib.fail(call, ret as isize));
    }
    Err(last.expect("tried at least once"))
}

/// `fi_control(FI_GETWAIT)` for an fd wait object.
///
/// # Safety
/// `f` must be an open CQ or EQ.
unsafe fn wait_fd(f: *mut fid) -> Option<RawFd> {
    let mut fd: c_int = -1;
    // SAFETY: caller guarantees `f` is open; the argument is an int for fds.
    let ret = unsafe {
        match (*(*f).ops).control {
            Some(ctl) => ctl(f, FI_GETWAIT, &mut fd as *mut c_int as *mut c_void),
            None => -1,
        }
    };
    (ret == 0 && fd >= 0).then_some(fd)
}

/// An open `fid_domain`.
pub(crate) struct DomainH {
    ptr: *mut fid_domain,
    lib: Arc<Lib>,
    provider: String,
}
close_on_drop!(DomainH, fid);

impl DomainH {
    /// A completion queue of `fi_cq_msg_entry`, fd-waitable where possible.
    pub(crate) fn cq(&self, size: usize) -> Result<CqH> {
        // SAFETY: an open domain's ops table lives as long as the domain.
        let f = unsafe { (*(*self.ptr).ops).cq_open }
            .ok_or(unsupported(&self.provider, "fi_cq_open"))?;
        let (cq, fd) = open_queue(&self.lib, "fi_cq_open", |wait_obj| {
            let mut attr = fi_cq_attr {
                size,
                flags: 0,
                format: FI_CQ_FORMAT_MSG,
                wait_obj,
                signaling_vector: 0,
                wait_cond: 0,
                wait_set: ptr::null_mut(),
            };
            let mut cq: *mut fid_cq = ptr::null_mut();
            // SAFETY: open domain; attr and out pointer are locals.
            let ret = unsafe { f(self.ptr, &mut attr, &mut cq, ptr::null_mut()) };
            (ret, cq as *mut fid)
        })?;
        Ok(CqH {
            ptr: cq as *mut fid_cq,
            lib: self.lib.clone(),
            fd,
        })
    }

    pub(crate) fn endpoint(&self, info: &Info) -> Result<EpH> {
        // SAFETY: as in `cq`.
        let f = unsafe { (*(*self.ptr).ops).endpoint }
            .ok_or(unsupported(&self.provider, "fi_endpoint"))?;
        let mut ep: *mut fid_ep = ptr::null_mut();
        // SAFETY: open domain, valid info, out pointer to a local.
        let ret = unsafe { f(self.ptr, info.ptr.as_ptr(), &mut ep, ptr::null_mut()) };
        self.lib.check("fi_endpoint", ret)?;
        Ok(EpH {
            ptr: ep,
            lib: self.lib.clone(),
            provider: self.provider.clone(),
        })
    }
}

/// Registered memory: an `fid_mr` and the bytes it covers.
pub(crate) struct MrH {
    ptr: *mut fid_mr,
    base: *mut u8,
    len: usize,
    // Owned backing memory (anonymous mapping), if we allocated it.
    _owned: Option<memmap2::MmapMut>,
    // Registrations close before their domain.
    _domain: Arc<DomainH>,
}
close_on_drop!(MrH, fid);

impl MrH {
    /// Registers `len` bytes of a fresh zeroed anonymous mapping.
    pub(crate) fn register_owned(
        domain: &Arc<DomainH>,
        len: usize,
        access: u64,
        key: u64,
    ) -> Result<MrH> {
        let mut map = memmap2::MmapMut::map_anon(len.max(1)).map_err(|source| Error::Io {
            context: "allocating memory to register",
            source,
        })?;
        let base = map.as_mut_ptr();
        // SAFETY: the mapping lives in the handle as long as the registration.
        unsafe { Self::register(domain, base, len, access, key, Some(map)) }
    }

    /// Registers `len` bytes at `base`.
    ///
    /// # Safety
    /// `base..base+len` must stay valid for reads and writes (by libfabric,
    /// at any time) until the returned handle and every operation using it
    /// are gone.
    pub(crate) unsafe fn register(
        domain: &Arc<DomainH>,
        base: *mut u8,
        len: usize,
        access: u64,
        key: u64,
        owned: Option<memmap2::MmapMut>,
    ) -> Result<MrH> {
        // SAFETY: an open domain's mr ops table lives as long as the domain.
        let f =
            unsafe { (*(*domain.ptr).mr).reg }.ok_or(unsupported(&domain.provider, "fi_mr_reg"))?;
        let mut mr: *mut fid_mr = ptr::null_mut();
        // SAFETY: open domain; the caller vouches for the memory.
        let ret = unsafe {
            f(
                &mut (*domain.ptr).fid,
                base as *const c_void,
                len,
                access,
                0,
                key,
                0,
                &mut mr,
                ptr::null_mut(),
            )
        };
        domain.lib.check("fi_mr_reg", ret)?;
        Ok(MrH {
            ptr: mr,
            base,
            len,
            _owned: owned,
            _domain: domain.clone(),
        })
    }

    /// The key the peer uses to reach this memory.
    pub(crate) fn key(&self) -> u64 {
        // SAFETY: open registration; `key` is set by fi_mr_reg.
        unsafe { (*self.ptr).key }
    }

    pub(crate) fn base(&self) -> usize {
        self.base as usize
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn desc(&self) -> *mut c_void {
        // SAFETY: open registration.
        unsafe { (*self.ptr).mem_desc }
    }

    fn range(&self, offset: usize, len: usize) -> Result<*mut u8> {
        match offset.checked_add(len) {
            Some(end) if end <= self.len => Ok(self.base.wrapping_add(offset)),
            _ => Err(Error::InvalidArgument(format!(
                "range {offset}+{len} is outside the {}-byte registration",
                self.len
            ))),
        }
    }

    /// Copies `src` into the memory at `offset`.
    pub(crate) fn write(&self, offset: usize, src: &[u8]) -> Result<()> {
        let dst = self.range(offset, src.len())?;
        // SAFETY: in bounds (checked) of memory valid for the handle's life;
        // libfabric may access it concurrently, which is the nature of
        // registered memory (bytes, no invariants).
        unsafe { ptr::copy(src.as_ptr(), dst, src.len()) };
        Ok(())
    }

    /// Copies `len` bytes of `src` at `src_offset` to `offset` (the two may
    /// be the same registration, overlapping).
    pub(crate) fn copy_from(
        &self,
        offset: usize,
        src: &MrH,
        src_offset: usize,
        len: usize,
    ) -> Result<()> {
        let dst = self.range(offset, len)?;
        let from = src.range(src_offset, len)?;
        // SAFETY: both ranges are in bounds (checked) of memory valid for
        // the handles' lives; `ptr::copy` allows overlap.
        unsafe { ptr::copy(from, dst, len) };
        Ok(())
    }

    /// Copies memory at `offset` into `dst`.
    pub(crate) fn read(&self, offset: usize, dst: &mut [u8]) -> Result<()> {
        let src = self.range(offset, dst.len())?;
        // SAFETY: as in `write`.
        unsafe { ptr::copy(src, dst.as_mut_ptr(), dst.len()) };
        Ok(())
    }
}

/// An open `fid_eq`.
pub(crate) struct EqH {
    ptr: *mut fid_eq,
    lib: Arc<Lib>,
    pub(crate) fd: Option<RawFd>,
}
close_on_drop!(EqH, fid);

/// Largest private data we accept with a connection request.
pub(crate) const MAX_CM_DATA: usize = 256;

/// One event read from an event queue.
pub(crate) enum EqEvent {
    ConnReq { info: Info, data: Vec<u8> },
    Connected,
    Shutdown,
    Other,
    Error { errno: i32, message: String },
}

impl EqH {
    /// Reads one event; `timeout` `None` does not wait, `Some(ms)` waits in
    /// the kernel (`fi_eq_sread`).
    pub(crate) fn read(&self, timeout_ms: Option<i32>) -> Result<Option<EqEvent>> {
        const WORDS: usize = (std::mem::size_of::<fi_eq_cm_entry>() + MAX_CM_DATA) / 8;
        let mut buf = [0u64; WORDS];
        let mut event: u32 = 0;
        // SAFETY: open EQ whose table lives as long as it.
        let ops = unsafe { &*(*self.ptr).ops };
        // SAFETY: open EQ; buf is writable for its whole size and 8-aligned.
        let ret = unsafe {
            match timeout_ms {
                None => ops.read.map(|f| {
                    f(
                        self.ptr,
                        &mut event,
                        buf.as_mut_ptr() as *mut c_void,
                        WORDS * 8,
                        0,
                    )
                }),
                Some(ms) => ops.sread.map(|f| {
                    f(
                        self.ptr,
                        &mut event,
                        buf.as_mut_ptr() as *mut c_void,
                        WORDS * 8,
                        ms,
                        0,
                    )
                }),
            }
        }
        .unwrap_or(-(libc::ENOSYS as isize));
        if ret == -(libc::EAGAIN as isize) || ret == -(libc::ETIMEDOUT as isize) {
            return Ok(None);
        }
        if ret == -FI_EAVAIL {
            // SAFETY: zeroed err entry (err_data_size 0: do not copy err_data).
            let mut e: fi_eq_err_entry = unsafe { std::mem::zeroed() };
            // SAFETY: open EQ, pointer to a local entry.
            let r = unsafe { ops.readerr.map(|f| f(self.ptr, &mut e, 0)) }.unwrap_or(-1);
            if r < 0 {
                return Err(self.lib.fail("fi_eq_readerr", r));
            }
            let errno = e.err.abs();
            return Ok(Some(EqEvent::Error {
                errno,
                message: self.lib.strerror(errno),
            }));
        }
        if ret < 0 {
            return Err(self.lib.fail("fi_eq_read", ret));
        }
        let hdr = std::mem::size_of::<fi_eq_cm_entry>();
        Ok(Some(match event {
            FI_CONNREQ => {
                // SAFETY: a CONNREQ entry is an fi_eq_cm_entry at the start of
                // buf; its `info` becomes ours to free.
                let info = unsafe { (*(buf.as_ptr() as *const fi_eq_cm_entry)).info };
                let info = Info {
                    ptr: NonNull::new(info).ok_or(Error::Call {
                        call: "fi_eq_read",
                        errno: libc::EPROTO,
                        message: "connection request without info".into(),
                    })?,
                    lib: self.lib.clone(),
                };
                let n = (ret as usize).clamp(hdr, WORDS * 8);
                // SAFETY: buf is WORDS*8 initialised bytes.
                let bytes = unsafe { std::slice::from_raw_parts(buf.as_ptr() as *const u8, n) };
                EqEvent::ConnReq {
                    info,
                    data: bytes[hdr..].to_vec(),
                }
            }
            FI_CONNECTED => EqEvent::Connected,
            FI_SHUTDOWN => EqEvent::Shutdown,
            _ => EqEvent::Other,
        }))
    }
}

/// An open `fid_pep`.
pub(crate) struct PepH {
    ptr: *mut fid_pep,
    lib: Arc<Lib>,
    provider: String,
}
close_on_drop!(PepH, fid);

fn cm_ops<'a>(cm: *mut fi_ops_cm) -> &'a fi_ops_cm {
    // SAFETY: callers pass the cm table of an open endpoint, which lives as
    // long as the endpoint they borrow.
    unsafe { &*cm }
}

/// Binds `what` to the object `f` with `flags`.
///
/// # Safety
/// Both must be open objects of the same fabric.
unsafe fn bind(lib: &Lib, f: *mut fid, what: *mut fid, flags: u64) -> Result<()> {
    // SAFETY: guaranteed by the caller.
    let ret = unsafe {
        match (*(*f).ops).bind {
            Some(b) => b(f, what, flags),
            None => -libc::ENOSYS,
        }
    };
    lib.check("fi_ep_bind", ret)
}

/// Reads an endpoint's (or passive endpoint's) own address.
///
/// # Safety
/// `f` must be open and `cm` its cm table.
unsafe fn getname(lib: &Lib, f: *mut fid, cm: *mut fi_ops_cm) -> Result<Vec<u8>> {
    let mut buf = [0u8; 128];
    let mut len = buf.len();
    let ret = match cm_ops(cm).getname {
        // SAFETY: guaranteed by the caller; buf and len are locals.
        Some(g) => unsafe { g(f, buf.as_mut_ptr() as *mut c_void, &mut len) },
        None => -libc::ENOSYS,
    };
    lib.check("fi_getname", ret)?;
    Ok(buf[..len.min(buf.len())].to_vec())
}

impl PepH {
    pub(crate) fn bind_eq(&self, eq: &EqH) -> Result<()> {
        // SAFETY: both open.
        unsafe { bind(&self.lib, &mut (*self.ptr).fid, &mut (*eq.ptr).fid, 0) }
    }

    pub(crate) fn listen(&self) -> Result<()> {
        // SAFETY: open pep.
        let cm = cm_ops(unsafe { (*self.ptr).cm });
        let f = cm.listen.ok_or(unsupported(&self.provider, "fi_listen"))?;
        // SAFETY: open pep bound to an EQ.
        self.lib.check("fi_listen", unsafe { f(self.ptr) })
    }

    pub(crate) fn name(&self) -> Result<Vec<u8>> {
        // SAFETY: open pep and its cm table.
        unsafe { getname(&self.lib, &mut (*self.ptr).fid, (*self.ptr).cm) }
    }

    /// Refuses the connection request that came with `info`.
    pub(crate) fn reject(&self, info: &Info) -> Result<()> {
        // SAFETY: open pep.
        let cm = cm_ops(unsafe { (*self.ptr).cm });
        let f = cm.reject.ok_or(unsupported(&self.provider, "fi_reject"))?;
        // SAFETY: open pep; the handle is the request's, from its info.
        let ret = unsafe { f(self.ptr, (*info.ptr.as_ptr()).handle, ptr::null(), 0) };
        self.lib.check("fi_reject", ret)
    }
}

/// An open `fid_ep`, before it becomes a [`Conn`].
pub(crate) struct EpH {
    ptr: *mut fid_ep,
    lib: Arc<Lib>,
    provider: String,
}
close_on_drop!(EpH, fid);

/// An open `fid_cq`.
pub(crate) struct CqH {
    ptr: *mut fid_cq,
    lib: Arc<Lib>,
    pub(crate) fd: Option<RawFd>,
}
close_on_drop!(CqH, fid);

/// One completion, or the error an operation completed with.
pub(crate) enum CqEvent {
    Done {
        ctx: usize,
        len: usize,
    },
    Failed {
        ctx: usize,
        errno: i32,
        message: String,
    },
}

impl CqH {
    /// Reads one completion; `timeout_ms` `Some` waits in the kernel.
    pub(crate) fn read(&self, timeout_ms: Option<i32>) -> Result<Option<CqEvent>> {
        // SAFETY: open CQ whose table lives as long as it.
        let ops = unsafe { &*(*self.ptr).ops };
        let mut e = fi_cq_msg_entry {
            op_context: ptr::null_mut(),
            flags: 0,
            len: 0,
        };
        let out = &mut e as *mut fi_cq_msg_entry as *mut c_void;
        // SAFETY: open CQ of FI_CQ_FORMAT_MSG; room for one entry.
        let ret = unsafe {
            match timeout_ms {
                None => ops.read.map(|f| f(self.ptr, out, 1)),
                Some(ms) => ops.sread.map(|f| f(self.ptr, out, 1, ptr::null(), ms)),
            }
        }
        .unwrap_or(-(libc::ENOSYS as isize));
        if ret == -(libc::EAGAIN as isize) || ret == -(libc::ETIMEDOUT as isize) || ret == 0 {
            return Ok(None);
        }
        if ret == -FI_EAVAIL {
            // SAFETY: zeroed err entry (err_data_size 0: do not copy err_data).
            let mut err: fi_cq_err_entry = unsafe { std::mem::zeroed() };
            // SAFETY: open CQ, pointer to a local.
            let r = unsafe { ops.readerr.map(|f| f(self.ptr, &mut err, 0)) }.unwrap_or(-1);
            if r < 0 {
                return Err(self.lib.fail("fi_cq_readerr", r));
            }
            let errno = err.err.abs();
            return Ok(Some(CqEvent::Failed {
                ctx: err.op_context as usize,
                errno,
                message: self.lib.strerror(errno),
            }));
        }
        if ret < 0 {
            return Err(self.lib.fail("fi_cq_read", ret));
        }
        Ok(Some(CqEvent::Done {
            ctx: e.op_context as usize,
            len: e.len,
        }))
    }
}

/// Which data operation an operation or completion is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpKind {
    /// A receive into registered memory.
    Recv,
    /// A send from registered memory.
    Send,
    /// An RMA write to the peer's registered memory.
    Write,
    /// An RMA read from the peer's registered memory.
    Read,
}

/// Sleeps until `a` or `b` is readable or `timeout_ms` passes.
pub(crate) fn poll2(a: RawFd, b: RawFd, timeout_ms: i32) -> Result<()> {
    let mut fds = [
        libc::pollfd {
            fd: a,
            events: libc::POLLIN,
            revents: 0,
        },
        libc::pollfd {
            fd: b,
            events: libc::POLLIN,
            revents: 0,
        },
    ];
    // SAFETY: two initialised pollfd entries owned by this frame.
    let r = unsafe { libc::poll(fds.as_mut_ptr(), 2, timeout_ms) };
    if r < 0 {
        let e = std::io::Error::last_os_error();
        if e.kind() != std::io::ErrorKind::Interrupted {
            return Err(Error::Io {
                context: "poll",
                source: e,
            });
        }
    }
    Ok(())
}

/// One operation in flight: the provider's scratch space (its address is the
/// operation's context), the caller's token, and the memory it uses.
#[repr(C)]
struct InFlight {
    scratch: fi_context2,
    token: u64,
    kind: OpKind,
    len: usize,
    _mr: Arc<MrH>,
}

// SAFETY: the scratch pointers are libfabric's, used only by the provider
// while the operation is in flight; moving the entry between threads (with
// the endpoint that owns it) does not touch them.
unsafe impl Send for InFlight {}

/// A connected (or connecting) endpoint with its queues and the operations in
/// flight on it.
pub(crate) struct Conn {
    // Field order is drop order: the endpoint closes before its queues, and
    // before the in-flight table releases the memory operations use.
    ep: EpH,
    pub(crate) cq: CqH,
    pub(crate) eq: EqH,
    inflight: HashMap<usize, Box<InFlight>>,
    // Kept for the destination address until connect.
    info: Info,
}

impl Conn {
    /// Binds `ep` to its own CQ (send and receive) and EQ, and enables it.
    pub(crate) fn new(ep: EpH, cq: CqH, eq: EqH, info: Info) -> Result<Conn> {
        // SAFETY: all three are open objects of one domain/fabric.
        unsafe {
            bind(&ep.lib, &mut (*ep.ptr).fid, &mut (*eq.ptr).fid, 0)?;
            bind(
                &ep.lib,
                &mut (*ep.ptr).fid,
                &mut (*cq.ptr).fid,
                FI_TRANSMIT | FI_RECV,
            )?;
        }
        // SAFETY: open endpoint, bound to its queues.
        let ret = unsafe {
            let f = &mut (*ep.ptr).fid as *mut fid;
            match (*(*f).ops).control {
                Some(ctl) => ctl(f, FI_ENABLE, ptr::null_mut()),
                None => -libc::ENOSYS,
            }
        };
        ep.lib.check("fi_enable", ret)?;
        Ok(Conn {
            ep,
            cq,
            eq,
            inflight: HashMap::new(),
            info,
        })
    }

    fn cm(&self) -> &fi_ops_cm {
        // SAFETY: open endpoint.
        cm_ops(unsafe { (*self.ep.ptr).cm })
    }

    /// Starts connecting to the destination of the endpoint's info.
    pub(crate) fn connect(&self, param: &[u8]) -> Result<()> {
        let f = self
            .cm()
            .connect
            .ok_or(unsupported(&self.ep.provider, "fi_connect"))?;
        // SAFETY: open endpoint; dest_addr belongs to our info; param is a
        // borrowed slice libfabric copies during the call.
        let ret = unsafe {
            f(
                self.ep.ptr,
                (*self.info.ptr.as_ptr()).dest_addr,
                param.as_ptr() as *const c_void,
                param.len(),
            )
        };
        self.ep.lib.check("fi_connect", ret)
    }

    /// Accepts the connection request this endpoint was made for.
    pub(crate) fn accept(&self, param: &[u8]) -> Result<()> {
        let f = self
            .cm()
            .accept
            .ok_or(unsupported(&self.ep.provider, "fi_accept"))?;
        // SAFETY: open endpoint created from a CONNREQ info; param copied.
        let ret = unsafe { f(self.ep.ptr, param.as_ptr() as *const c_void, param.len()) };
        self.ep.lib.check("fi_accept", ret)
    }

    pub(crate) fn name(&self) -> Result<Vec<u8>> {
        // SAFETY: open endpoint and its cm table.
        unsafe { getname(&self.ep.lib, &mut (*self.ep.ptr).fid, (*self.ep.ptr).cm) }
    }

    /// Copies `data` out at once (`fi_inject`); no completion follows.
    /// Ok(false) means the queue is full: reap completions and retry.
    pub(crate) fn inject(&self, data: &[u8]) -> Result<bool> {
        // SAFETY: open endpoint's msg table.
        let f = unsafe { (*(*self.ep.ptr).msg).inject }
            .ok_or(unsupported(&self.ep.provider, "fi_inject"))?;
        // SAFETY: data is borrowed for the call; inject copies it before returning.
        let ret = unsafe {
            f(
                self.ep.ptr,
                data.as_ptr() as *const c_void,
                data.len(),
                u64::MAX,
            )
        };
        self.posted("fi_inject", ret)
    }

    fn posted(&self, call: &'static str, ret: isize) -> Result<bool> {
        match ret {
            0 => Ok(true),
            r if r == -(libc::EAGAIN as isize) => Ok(false),
            r => Err(self.ep.lib.fail(call, r)),
        }
    }

    /// Posts one operation on `len` bytes of `mr` at `offset` (for RMA, to or
    /// from `remote` = (address, key) on the peer). Ok(false): the queue is
    /// full, nothing was posted.
    pub(crate) fn post(
        &mut self,
        kind: OpKind,
        mr: &Arc<MrH>,
        offset: usize,
        len: usize,
        remote: (u64, u64),
        token: u64,
    ) -> Result<bool> {
        let buf = mr.range(offset, len)? as *mut c_void;
        let mut op = Box::new(InFlight {
            // SAFETY: scratch space is plain pointers; zero is its initial state.
            scratch: unsafe { std::mem::zeroed() },
            token,
            kind,
            len,
            _mr: mr.clone(),
        });
        let ctx = &mut op.scratch as *mut fi_context2 as *mut c_void;
        let desc = mr.desc();
        let (addr, key) = remote;
        let ep = self.ep.ptr;
        let name = |s| unsupported(&self.ep.provider, s);
        // SAFETY: open endpoint; `buf..buf+len` lies in registered memory that
        // the in-flight entry keeps alive (Arc) until the operation completes
        // or the endpoint is closed (it closes first, see Conn's fields);
        // `ctx` points into the boxed entry, which does not move.
        let ret = unsafe {
            let msg = &*(*ep).msg;
            let rma = &*(*ep).rma;
            match kind {
                OpKind::Recv => msg.recv.ok_or(name("fi_recv"))?(ep, buf, len, desc, u64::MAX, ctx),
                OpKind::Send => msg.send.ok_or(name("fi_send"))?(ep, buf, len, desc, u64::MAX, ctx),
                OpKind::Write => {
                    rma.write.ok_or(name("fi_write"))?(ep, buf, len, desc, u64::MAX, addr, key, ctx)
                }
                OpKind::Read => {
                    rma.read.ok_or(name("fi_read"))?(ep, buf, len, desc, u64::MAX, addr, key, ctx)
                }
            }
        };
        let call = match kind {
            OpKind::Recv => "fi_recv",
            OpKind::Send => "fi_send",
            OpKind::Write => "fi_write",
            OpKind::Read => "fi_read",
        };
        let ok = self.posted(call, ret)?;
        if ok {
            self.inflight.insert(ctx as usize, op);
        }
        Ok(ok)
    }

    /// Matches a completion's context to its operation, releasing it:
    /// (token, kind, posted length).
    pub(crate) fn complete(&mut self, ctx: usize) -> Option<(u64, OpKind, usize)> {
        self.inflight
            .remove(&ctx)
            .map(|op| (op.token, op.kind, op.len))
    }

    /// How many operations are in flight.
    pub(crate) fn in_flight(&self) -> usize {
        self.inflight.len()
    }
}
