//! An open remote pool: its parts mapped, locked, and addressed as one range.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use rpmem_proto::PoolAttr;

use crate::error::{Result, StorageError};
use crate::flush::{self, Method};
use crate::header::{PoolHeader, HEADER_LEN};
use crate::intent;
use crate::poolset::{PartSpec, PoolSet};
use crate::sys::{self, Mapping};
use crate::PAGE_SIZE;

/// A byte range of the remote pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Range {
    /// First byte.
    pub offset: u64,
    /// Number of bytes.
    pub len: u64,
}

struct Part {
    path: PathBuf,
    file: File,
    map: Mapping,
    is_device: bool,
}

/// A contiguous piece of the pool that lives in one part.
#[derive(Debug, Clone, Copy)]
struct Segment {
    pool_off: u64,
    len: u64,
    part: usize,
    part_off: u64,
}

/// An open, exclusively locked remote pool.
///
/// All data operations take `&self` and may run concurrently from several
/// threads (lanes); see the `sys` module for why that is sound.
pub struct Pool {
    set: PoolSet,
    parts: Vec<Part>,
    segments: Vec<Segment>,
    size: u64,
    attr: Mutex<Option<PoolAttr>>,
    method: Method,
    msyncs: AtomicU64,
}

/// The pool's memory at one address (see [`Pool::contiguous`]); unmapped
/// when dropped.
pub struct PoolView {
    map: Mapping,
}

impl PoolView {
    /// The whole view, for raw transfers (the same rules as [`Pool::spans`]).
    pub fn span(&self) -> NonNull<[u8]> {
        self.map.whole()
    }
}

/// Removes the files a failed create made.
struct Cleanup(Vec<PathBuf>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for p in &self.0 {
            let _ = fs::remove_file(p);
        }
    }
}

fn random_uuid() -> [u8; 16] {
    let mut u = [0u8; 16];
    if getrandom::getrandom(&mut u).is_err() {
        // Fall back to time-derived bytes: uniqueness, not secrecy, matters.
        let t = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_nanos())
            .unwrap_or(0)
            ^ u128::from(std::process::id()) << 64;
        u = t.to_le_bytes();
    }
    u[6] = (u[6] & 0x0f) | 0x40;
    u[8] = (u[8] & 0x3f) | 0x80;
    u
}

impl Pool {
    fn assemble(set: &PoolSet, files: Vec<(PathBuf, File, bool)>) -> Result<Pool> {
        let mut parts = Vec::with_capacity(files.len());
        let mut segments = Vec::with_capacity(files.len());
        let mut pool_off = 0;
        let mut pmem = true;
        for (i, (path, file, is_device)) in files.into_iter().enumerate() {
            let aligned = set.parts[i].size / PAGE_SIZE * PAGE_SIZE;
            let len = usize::try_from(aligned).map_err(|_| {
                StorageError::Config(format!("part {} is too large", path.display()))
            })?;
            let map = Mapping::new(&file, len).map_err(|e| StorageError::io("map", &path, e))?;
            let (part_off, seg_len) = set.part_extent(i);
            segments.push(Segment {
                pool_off,
                len: seg_len,
                part: i,
                part_off,
            });
            pool_off += seg_len;
            pmem &= is_device || map.is_sync();
            parts.push(Part {
                path,
                file,
                map,
                is_device,
            });
        }
        Ok(Pool {
            set: set.clone(),
            parts,
            segments,
            size: pool_off,
            attr: Mutex::new(None),
            method: if pmem || flush::force_pmem() {
                Method::detect()
            } else {
                Method::Msync
            },
            msyncs: AtomicU64::new(0),
        })
    }

    /// Creates every part of `set`, stores `attr` in the headers, and returns
    /// the pool open and locked.
    ///
    /// In a set with headers a part file that already exists is used, as
    /// PMDK does, when it has the declared size and its first 4 KiB are all
    /// zero (a part made with `truncate`); otherwise create fails with EEXIST
    /// (data in it, or a set without headers) or EINVAL (another size), and
    /// with EBUSY when another pool holds it.
    ///
    /// `attr` must be `Some` non-zero exactly when the set has headers (no
    /// `OPTION NOHDRS`). On failure every file this call created is removed;
    /// files that existed before are left as they were.
    pub fn create(set: &PoolSet, attr: Option<&PoolAttr>) -> Result<Pool> {
        let attr = attr.filter(|a| !a.is_zero());
        match (attr.is_some(), set.has_header()) {
            (true, false) => {
                return Err(StorageError::Config(format!(
                    "{} has OPTION NOHDRS but pool attributes were given",
                    set.path.display()
                )))
            }
            (false, true) => {
                return Err(StorageError::Config(format!(
                    "{} has pool headers but no pool attributes were given (use OPTION NOHDRS for a pool without them)",
                    set.path.display()
                )))
            }
            _ => {}
        }
        let mut cleanup = Cleanup(Vec::new());
        let mut files = Vec::with_capacity(set.parts.len());
        for spec in &set.parts {
            let file = if spec.is_device {
                open_part(set, spec)?
            } else {
                let created = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .mode(0o666)
                    .open(&spec.path);
                let f = match created {
                    Ok(f) => {
                        cleanup.0.push(spec.path.clone());
                        lock(&f, &spec.path)?;
                        f
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                        open_premade_part(set, spec)?
                    }
                    Err(e) => return Err(StorageError::io("create", &spec.path, e)),
                };
                sys::allocate(&f, spec.size)
                    .map_err(|e| StorageError::io("allocate", &spec.path, e))?;
                f
            };
            files.push((spec.path.clone(), file, spec.is_device));
        }
        let pool = Pool::assemble(set, files)?;
        if let Some(a) = attr {
            // An intent left by a pool these parts once held is not ours.
            let path = intent::path_for(set);
            intent::remove(&path).map_err(|e| StorageError::io("remove", &path, e))?;
            pool.write_new_headers(a)?;
        }
        // Report what the header holds (zero user flags became the host's).
        *pool.attr.lock().unwrap_or_else(|e| e.into_inner()) =
            attr.map(|a| PoolHeader::from_attr(a).to_attr());
        cleanup.0.clear();
        Ok(pool)
    }

    /// Opens the existing pool of `set`: locks every part, checks sizes and
    /// verifies the headers.
    pub fn open(set: &PoolSet) -> Result<Pool> {
        let mut files = Vec::with_capacity(set.parts.len());
        for spec in &set.parts {
            let file = open_part(set, spec)?;
            files.push((spec.path.clone(), file, spec.is_device));
        }
        let pool = Pool::assemble(set, files)?;
        if set.has_header() {
            pool.finish_set_attr()?;
        }
        let attr = pool.verify_headers()?;
        *pool.attr.lock().unwrap_or_else(|e| e.into_inner()) = attr;
        Ok(pool)
    }

    fn header_parts(&self) -> impl Iterator<Item = usize> + '_ {
        (0..self.parts.len()).filter(|&i| self.set.part_has_header(i))
    }

    fn read_header(&self, i: usize) -> Result<[u8; HEADER_LEN]> {
        let mut b = [0u8; HEADER_LEN];
        self.parts[i]
            .map
            .read(0, &mut b)
            .map_err(|e| StorageError::io("read header of", &self.parts[i].path, e))?;
        Ok(b)
    }

    fn write_header(&self, i: usize, h: &PoolHeader) -> Result<()> {
        self.write_header_bytes(i, &h.to_bytes())
    }

    fn write_header_bytes(&self, i: usize, image: &[u8; HEADER_LEN]) -> Result<()> {
        let p = &self.parts[i];
        p.map
            .write_atomic(0, image)
            .map_err(|e| StorageError::io("write header of", &p.path, e))?;
        p.map
            .msync(0, HEADER_LEN)
            .map_err(|e| StorageError::io("sync header of", &p.path, e))
    }

    fn write_new_headers(&self, attr: &PoolAttr) -> Result<()> {
        let n = self.parts.len();
        let uuids: Vec<[u8; 16]> = (0..n)
            .map(|i| if i == 0 { attr.uuid } else { random_uuid() })
            .collect();
        let crtime = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        for i in self.header_parts() {
            let mut h = PoolHeader::from_attr(attr);
            h.uuid = uuids[i];
            h.prev_part_uuid = uuids[(i + n - 1) % n];
            h.next_part_uuid = uuids[(i + 1) % n];
            h.crtime = crtime;
            self.write_header(i, &h)?;
        }
        Ok(())
    }

    /// Verifies every header; returns part 0's attributes (None without headers).
    fn verify_headers(&self) -> Result<Option<PoolAttr>> {
        if !self.set.has_header() {
            return Ok(None);
        }
        let bad = |i: usize, reason: String| StorageError::BadHeader {
            path: self.parts[i].path.clone(),
            reason,
        };
        let mut hdrs: Vec<Option<PoolHeader>> = vec![None; self.parts.len()];
        for i in self.header_parts() {
            let h = PoolHeader::from_bytes(&self.read_header(i)?).map_err(|r| bad(i, r))?;
            hdrs[i] = Some(h);
        }
        let first = hdrs[0].clone().ok_or_else(|| bad(0, "missing".into()))?;
        let n = self.parts.len();
        for i in 0..n {
            let Some(h) = &hdrs[i] else { continue };
            if h.poolset_uuid != first.poolset_uuid {
                return Err(bad(i, "its pool set uuid differs from part 0's".into()));
            }
            if h.signature != first.signature || h.major != first.major {
                return Err(bad(
                    i,
                    "its signature or version differs from part 0's".into(),
                ));
            }
            if let Some(next) = &hdrs[(i + 1) % n] {
                if h.next_part_uuid != next.uuid || next.prev_part_uuid != h.uuid {
                    return Err(bad(
                        i,
                        format!("its link to part {} is broken", (i + 1) % n),
                    ));
                }
            }
        }
        Ok(Some(first.to_attr()))
    }

    /// Size of the remote pool in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether the first 4096 bytes are the pool header (writes there must be
    /// refused by the server).
    pub fn has_header(&self) -> bool {
        self.set.has_header()
    }

    /// The stored attributes (None for a pool without headers).
    pub fn attr(&self) -> Option<PoolAttr> {
        *self.attr.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The pool set this pool was made from.
    pub fn pool_set(&self) -> &PoolSet {
        &self.set
    }

    /// Whether every part is mapped `MAP_SYNC` (persistent memory).
    pub fn is_pmem(&self) -> bool {
        self.parts.iter().all(|p| p.map.is_sync())
    }

    /// How [`Pool::persist`] makes ranges durable: a CPU cache flush where
    /// every part is persistent memory (`MAP_SYNC` mapping or device DAX), or
    /// where [`crate::set_force_pmem`] is on; `msync` otherwise.
    pub fn persist_method(&self) -> Method {
        self.method
    }

    /// Rewrites the attributes in every header (as PMDK's
    /// `util_replica_set_attr`: part 0's uuid and its neighbours' links follow
    /// `attr.uuid`), checksums and syncs them.
    ///
    /// Crash-safe: the new headers are first recorded in a durable intent
    /// file beside part 0 (`PART0.rpmem-set-attr`), which open completes if
    /// the rewrite was cut short; a crash at any instant leaves the old
    /// attributes or the new ones.
    pub fn set_attr(&self, attr: &PoolAttr) -> Result<()> {
        if !self.has_header() {
            return Err(StorageError::Config(format!(
                "{} has no pool header (OPTION NOHDRS): there are no attributes to set",
                self.set.path.display()
            )));
        }
        let mut cached = self.attr.lock().unwrap_or_else(|e| e.into_inner());
        let n = self.parts.len();
        let mut hdrs = Vec::new();
        let mut old_uuids = Vec::new();
        for i in self.header_parts() {
            let h = PoolHeader::from_bytes(&self.read_header(i)?).map_err(|reason| {
                StorageError::BadHeader {
                    path: self.parts[i].path.clone(),
                    reason,
                }
            })?;
            old_uuids.push(h.uuid);
            hdrs.push((i, h));
        }
        for (i, h) in &mut hdrs {
            h.apply_attr(attr);
            if *i == 0 {
                h.uuid = attr.uuid;
            }
            if *i == n - 1 {
                h.next_part_uuid = attr.uuid;
            }
            if *i == 1 % n {
                h.prev_part_uuid = attr.uuid;
            }
        }
        // Durable intent first: from here on a crash at any instant leaves
        // headers that open completes to the new attributes.
        let entries: Vec<intent::Entry> = hdrs
            .iter()
            .zip(&old_uuids)
            .map(|((i, h), old_uuid)| intent::Entry {
                part: *i,
                old_uuid: *old_uuid,
                image: h.to_bytes(),
            })
            .collect();
        let path = intent::path_for(&self.set);
        intent::write(&path, &entries).map_err(|e| StorageError::io("write", &path, e))?;
        for e in &entries {
            self.write_header_bytes(e.part, &e.image)?;
        }
        *cached = Some(*attr);
        intent::remove(&path).map_err(|e| StorageError::io("remove", &path, e))
    }

    /// Completes a set_attr that a crash cut short (see the `intent`
    /// module): writes every header it recorded. An intent that is
    /// incomplete, or belongs to a pool these parts no longer hold, is
    /// removed without touching a header.
    fn finish_set_attr(&self) -> Result<()> {
        let path = intent::path_for(&self.set);
        let io_err = |e| StorageError::io("recover the set_attr intent", &path, e);
        if let intent::Found::Valid(entries) = intent::read(&path).map_err(io_err)? {
            let parts: Vec<usize> = self.header_parts().collect();
            let ours = entries.len() == parts.len()
                && entries.iter().zip(&parts).all(|(e, &i)| {
                    e.part == i
                        && PoolHeader::from_bytes(&e.image).is_ok()
                        && self.read_header(i).is_ok_and(|b| {
                            // A torn header is what the intent repairs; an
                            // intact one must be this change's old or new.
                            PoolHeader::from_bytes(&b)
                                .map_or(true, |h| h.uuid == e.old_uuid || b == e.image)
                        })
                });
            if ours {
                for e in &entries {
                    self.write_header_bytes(e.part, &e.image)?;
                }
            }
        }
        intent::remove(&path).map_err(io_err)
    }

    /// Checks that `offset..offset+len` lies inside the pool.
    pub fn check_range(&self, offset: u64, len: u64) -> Result<()> {
        match offset.checked_add(len) {
            Some(end) if end <= self.size => Ok(()),
            _ => Err(StorageError::OutOfRange {
                offset,
                len,
                size: self.size,
            }),
        }
    }

    /// Calls `f(part, part_offset, pool_offset_delta, len)` for each piece of
    /// the (checked) range, in order.
    fn pieces<E>(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(&Part, usize, usize, usize) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut off = offset;
        let end = offset + len;
        let mut s = self
            .segments
            .partition_point(|seg| seg.pool_off + seg.len <= off);
        while off < end && s < self.segments.len() {
            let seg = &self.segments[s];
            let within = off - seg.pool_off;
            let n = (seg.len - within).min(end - off);
            f(
                &self.parts[seg.part],
                (seg.part_off + within) as usize,
                (off - offset) as usize,
                n as usize,
            )?;
            off += n;
            s += 1;
        }
        Ok(())
    }

    /// Copies `data` to `offset` with 8-byte stores for every aligned word
    /// (a crash never leaves such a word torn).
    pub fn write(&self, offset: u64, data: &[u8]) -> Result<()> {
        self.check_range(offset, data.len() as u64)?;
        self.pieces(offset, data.len() as u64, |p, poff, doff, n| {
            p.map
                .write_atomic(poff, &data[doff..doff + n])
                .map_err(|e| StorageError::io("write", &p.path, e))
        })
    }

    /// Copies `buf.len()` bytes at `offset` out of the pool.
    pub fn read(&self, offset: u64, buf: &mut [u8]) -> Result<()> {
        self.check_range(offset, buf.len() as u64)?;
        self.pieces(offset, buf.len() as u64, |p, poff, doff, n| {
            p.map
                .read(poff, &mut buf[doff..doff + n])
                .map_err(|e| StorageError::io("read", &p.path, e))
        })
    }

    /// Calls `f` with the memory of each piece of `offset..offset+len`, in
    /// order (parts are mapped separately, so the pool is not contiguous):
    /// what a transport receives payload into or sends read data from.
    ///
    /// The spans are valid while the pool is open. They are shared memory:
    /// write them only through system calls or volatile stores, and never
    /// make a Rust reference into them (other lanes write concurrently).
    pub fn spans(
        &self,
        offset: u64,
        len: u64,
        mut f: impl FnMut(NonNull<[u8]>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.check_range(offset, len)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e.to_string()))?;
        self.pieces(offset, len, |p, poff, _, n| f(p.map.span(poff, n)?))
    }

    /// The whole pool at one address, for transports that address it as one
    /// region (PMDK's clients): every part's piece of the pool mapped again,
    /// one after another. Writes through the view are written to the same
    /// pages as through the pool, and [`Pool::persist`] makes them durable.
    /// Fails when a piece is not a whole number of pages.
    pub fn contiguous(&self) -> Result<PoolView> {
        let pieces: Vec<_> = self
            .segments
            .iter()
            .map(|s| (&self.parts[s.part].file, s.part_off, s.len as usize))
            .collect();
        let map = Mapping::contiguous(&pieces)
            .map_err(|e| StorageError::io("map the parts at one address", &self.set.path, e))?;
        Ok(PoolView { map })
    }

    /// Makes `ranges` durable. Allocates nothing.
    ///
    /// On persistent memory ([`Pool::persist_method`] is a cache flush) every
    /// cache line of the ranges is written back, then one fence. Otherwise
    /// the pages covering all the ranges are synced with one msync per part
    /// they touch: msync writes back only the dirty pages of its span, so N
    /// pending flushes cost one durability call (and, on a journalling file
    /// system, one commit) instead of N.
    ///
    /// `deep` flushes to the deepest domain available: the msync of the
    /// span and an fsync of every part file, after the cache flush on
    /// persistent memory (standing in for the region's deep flush).
    pub fn persist(&self, ranges: &mut [Range], deep: bool) -> Result<()> {
        if self.method.is_cache_flush() {
            for r in ranges.iter().filter(|r| r.len > 0) {
                self.check_range(r.offset, r.len)?;
                self.pieces(r.offset, r.len, |p, poff, _, n| {
                    p.map
                        .write_back(self.method, poff, n)
                        .map_err(|e| StorageError::io("flush", &p.path, e))
                })?;
            }
            flush::fence();
            if !deep {
                return Ok(());
            }
        }
        let mut span: Option<(u64, u64)> = None;
        for r in ranges.iter().filter(|r| r.len > 0) {
            self.check_range(r.offset, r.len)?;
            let start = r.offset / PAGE_SIZE * PAGE_SIZE;
            let end = (r.offset + r.len).div_ceil(PAGE_SIZE) * PAGE_SIZE;
            span = Some(span.map_or((start, end), |(s, e)| (s.min(start), e.max(end))));
        }
        if let Some(span) = span {
            self.sync_span(span)?;
        }
        if deep {
            for p in self.parts.iter().filter(|p| !p.is_device) {
                p.file
                    .sync_all()
                    .map_err(|e| StorageError::io("fsync", &p.path, e))?;
            }
        }
        Ok(())
    }

    /// How many msync calls this pool has made: what a drain costs.
    pub fn msync_calls(&self) -> u64 {
        self.msyncs.load(Ordering::Relaxed)
    }

    fn sync_span(&self, (start, end): (u64, u64)) -> Result<()> {
        let end = end.min(self.size);
        self.pieces(start, end.saturating_sub(start), |p, poff, _, n| {
            self.msyncs.fetch_add(1, Ordering::Relaxed);
            p.map
                .msync(poff, n)
                .map_err(|e| StorageError::io("msync", &p.path, e))
        })
    }
}

/// Opens and locks an existing part: a device, or a regular file (a FIFO,
/// socket or directory named as a part is a configuration error, not a
/// pool) of the declared size.
fn open_part(set: &PoolSet, spec: &PartSpec) -> Result<File> {
    let f = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(&spec.path)
        .map_err(|e| StorageError::io("open", &spec.path, e))?;
    lock(&f, &spec.path)?;
    if spec.is_device {
        return Ok(f);
    }
    let meta = f
        .metadata()
        .map_err(|e| StorageError::io("stat", &spec.path, e))?;
    let at = || format!("{} line {}", set.path.display(), spec.line);
    if !meta.file_type().is_file() {
        return Err(StorageError::Config(format!(
            "part {} ({}) is not a regular file",
            spec.path.display(),
            at()
        )));
    }
    if meta.size() != spec.size {
        return Err(StorageError::Config(format!(
            "part {} is {} bytes but {} says {}",
            spec.path.display(),
            meta.size(),
            at(),
            spec.size
        )));
    }
    Ok(f)
}

/// Opens and locks a part file create found already there: usable only in
/// a set with headers, when it is a regular file of the declared size whose
/// first 4 KiB (the header area) are zero.
fn open_premade_part(set: &PoolSet, spec: &PartSpec) -> Result<File> {
    let f = open_part(set, spec)?;
    if !set.has_header() {
        return Err(StorageError::Exists {
            path: spec.path.clone(),
            reason: "without pool headers (OPTION NOHDRS) a blank part cannot be told from a pool in use, so create makes every part itself".into(),
        });
    }
    let mut head = [0u8; HEADER_LEN];
    let n = HEADER_LEN.min(usize::try_from(spec.size).unwrap_or(HEADER_LEN));
    f.read_exact_at(&mut head[..n], 0)
        .map_err(|e| StorageError::io("read", &spec.path, e))?;
    if head.iter().any(|&b| b != 0) {
        return Err(StorageError::Exists {
            path: spec.path.clone(),
            reason: "its first 4 KiB are not zero (a part may be reused only when they are)".into(),
        });
    }
    Ok(f)
}

pub(crate) fn lock(file: &File, path: &Path) -> Result<()> {
    sys::lock_exclusive(file).map_err(|e| {
        if e.raw_os_error() == Some(libc::EWOULDBLOCK) {
            StorageError::Busy {
                path: path.to_path_buf(),
            }
        } else {
            StorageError::io("lock", path, e)
        }
    })
}
