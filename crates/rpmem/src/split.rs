//! A pool split for threads: [`Chunk`]s, disjoint pieces of the local region
//! that threads write at the same time, and [`Lane`]s, owned handles that
//! replicate them, one per thread, without a lock per call.

use std::marker::PhantomData;
use std::ops::{Bound, Deref, DerefMut, RangeBounds};

use crate::error::{Error, Result};
use crate::flags::PersistFlags;
use crate::lane::Lane as Conn;
use crate::pool::Limits;

/// A piece of a pool's local region: the bytes, and where they sit in the
/// pool. Made by [`Pool::split`](crate::Pool::split) for the whole region and
/// divided with [`Chunk::split_at`] and [`Chunk::chunks`]; like `&mut [u8]` it
/// can be sent to another thread, and no two chunks overlap.
///
/// Write through it as a `&mut [u8]`, then hand it to a [`Lane`] to
/// replicate a range of it.
#[derive(Debug)]
pub struct Chunk<'a> {
    bytes: &'a mut [u8],
    /// Where `bytes` starts in the pool.
    offset: usize,
    /// The start of the pool's region: which pool the chunk belongs to.
    pool: usize,
}

impl<'a> Chunk<'a> {
    pub(crate) fn whole(region: &'a mut [u8]) -> Chunk<'a> {
        let pool = region.as_ptr() as usize;
        Chunk {
            bytes: region,
            offset: 0,
            pool,
        }
    }

    /// Where the chunk starts in the pool (and in the local region).
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// Divides the chunk in two at `mid` bytes, as
    /// [`slice::split_at_mut`].
    ///
    /// # Panics
    /// If `mid > self.len()`.
    pub fn split_at(self, mid: usize) -> (Chunk<'a>, Chunk<'a>) {
        let (a, b) = self.bytes.split_at_mut(mid);
        (
            Chunk {
                bytes: a,
                offset: self.offset,
                pool: self.pool,
            },
            Chunk {
                bytes: b,
                offset: self.offset + mid,
                pool: self.pool,
            },
        )
    }

    /// Divides the chunk into pieces of `size` bytes (the last may be
    /// shorter), as [`slice::chunks_mut`].
    ///
    /// # Panics
    /// If `size` is 0.
    pub fn chunks(self, size: usize) -> impl Iterator<Item = Chunk<'a>> {
        let (offset, pool) = (self.offset, self.pool);
        self.bytes
            .chunks_mut(size)
            .enumerate()
            .map(move |(i, bytes)| Chunk {
                bytes,
                offset: offset + i * size,
                pool,
            })
    }

    /// The pool offset and length of `range` (relative to the chunk).
    fn span(&self, range: impl RangeBounds<usize>) -> Result<(usize, usize)> {
        let start = match range.start_bound() {
            Bound::Included(&s) => s,
            Bound::Excluded(&s) => s.saturating_add(1),
            Bound::Unbounded => 0,
        };
        let end = match range.end_bound() {
            Bound::Included(&e) => e.saturating_add(1),
            Bound::Excluded(&e) => e,
            Bound::Unbounded => self.bytes.len(),
        };
        if start > end || end > self.bytes.len() {
            return Err(Error::InvalidArgument(format!(
                "range {start}..{end} is not inside the chunk of {} bytes",
                self.bytes.len()
            )));
        }
        Ok((self.offset + start, end - start))
    }
}

impl Deref for Chunk<'_> {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        self.bytes
    }
}

impl DerefMut for Chunk<'_> {
    fn deref_mut(&mut self) -> &mut [u8] {
        self.bytes
    }
}

/// One lane of an open pool, owned: a thread drives it without sharing it,
/// so calls take no lock. Made by [`Pool::split`](crate::Pool::split), one
/// per lane granted.
///
/// Calls on one lane are ordered; lanes are independent of each other. A
/// lane that failed for its connection (the target went away or did not
/// answer in time) refuses further calls with
/// [`ErrorKind::ConnectionAborted`](std::io::ErrorKind::ConnectionAborted).
pub struct Lane<'a> {
    conn: &'a mut Conn,
    limits: Limits,
    pool: usize,
}

impl std::fmt::Debug for Lane<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Lane")
            .field("index", &self.index())
            .finish()
    }
}

impl<'a> Lane<'a> {
    pub(crate) fn new(conn: &'a mut Conn, limits: Limits, region: &[u8]) -> Lane<'a> {
        Lane {
            conn,
            limits,
            pool: region.as_ptr() as usize,
        }
    }

    /// The lane's number, as [`Pool::persist`](crate::Pool::persist) and the
    /// C API name it.
    pub fn index(&self) -> u32 {
        self.conn.index()
    }

    /// Runs `call` with the pool offset and length of `range` of `chunk`,
    /// which must be a chunk of this lane's pool.
    fn on_range(
        &mut self,
        chunk: &Chunk<'_>,
        range: impl RangeBounds<usize>,
        call: impl FnOnce(&Limits, &mut Conn, usize, usize) -> Result<()>,
    ) -> Result<()> {
        if chunk.pool != self.pool {
            return Err(Error::InvalidArgument(
                "the chunk belongs to another pool than the lane".into(),
            ));
        }
        let (offset, len) = chunk.span(range)?;
        call(&self.limits, self.conn, offset, len)
    }

    /// Copies `range` of `chunk` (relative to the chunk; `..` for all of it)
    /// to the remote pool and returns once it is durable there, together with
    /// every earlier flush of this lane.
    pub fn persist(
        &mut self,
        chunk: &Chunk<'_>,
        range: impl RangeBounds<usize>,
        flags: PersistFlags,
    ) -> Result<()> {
        self.on_range(chunk, range, |l, c, off, len| {
            l.persist(c, off, len, flags.bits())
        })
    }

    /// As [`Lane::persist`], to the deepest durability domain of the target
    /// (the part files are also synchronised).
    pub fn deep_persist(
        &mut self,
        chunk: &Chunk<'_>,
        range: impl RangeBounds<usize>,
    ) -> Result<()> {
        self.on_range(chunk, range, |l, c, off, len| l.deep_persist(c, off, len))
    }

    /// Sends `range` of `chunk` without waiting for it to be durable. Over
    /// RDMA the transport may read the chunk until the flush is drained, so
    /// the chunk stays borrowed as long as the returned [`Flushes`] lives:
    /// more flushes go through it, [`Flushes::drain`] makes them all durable.
    ///
    /// Writing the chunk while it may still be read does not compile:
    ///
    /// ```compile_fail
    /// # fn f(lane: &mut rpmem::Lane<'_>, mut chunk: rpmem::Chunk<'_>) -> rpmem::Result<()> {
    /// let flushes = lane.flush(&chunk, .., rpmem::PersistFlags::empty())?;
    /// chunk[0] = 1; // the flush may still be reading it
    /// flushes.drain()
    /// # }
    /// ```
    ///
    /// After the drain it does:
    ///
    /// ```
    /// # fn f(lane: &mut rpmem::Lane<'_>, mut chunk: rpmem::Chunk<'_>) -> rpmem::Result<()> {
    /// let flushes = lane.flush(&chunk, .., rpmem::PersistFlags::empty())?;
    /// flushes.drain()?;
    /// chunk[0] = 1;
    /// # Ok(())
    /// # }
    /// ```
    pub fn flush<'l, 'c>(
        &'l mut self,
        chunk: &'c Chunk<'_>,
        range: impl RangeBounds<usize>,
        flags: PersistFlags,
    ) -> Result<Flushes<'l, 'a, 'c>> {
        let mut f = Flushes {
            lane: self,
            drained: false,
            chunks: PhantomData,
        };
        f.flush(chunk, range, flags)?;
        Ok(f)
    }

    /// Makes every earlier flush of this lane durable.
    pub fn drain(&mut self) -> Result<()> {
        Limits::drain(self.conn, 0)
    }

    /// Reads `buf.len()` bytes at `offset` of the remote pool into `buf`.
    pub fn read(&mut self, buf: &mut [u8], offset: usize) -> Result<()> {
        self.limits.read(self.conn, buf, offset)
    }
}

/// Flushes of one [`Lane`] not yet drained, made by [`Lane::flush`]: the
/// chunks they came from stay borrowed (`'c`) until [`Flushes::drain`], or
/// until it is dropped, which waits until the transport no longer reads
/// them (without making them durable).
#[must_use = "flushed ranges are durable only after Flushes::drain"]
pub struct Flushes<'l, 'a, 'c> {
    lane: &'l mut Lane<'a>,
    drained: bool,
    chunks: PhantomData<&'c [u8]>,
}

impl std::fmt::Debug for Flushes<'_, '_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Flushes")
            .field("lane", &self.lane.index())
            .finish()
    }
}

impl<'c> Flushes<'_, '_, 'c> {
    /// Flushes `range` of `chunk` too, on the same lane.
    pub fn flush(
        &mut self,
        chunk: &'c Chunk<'_>,
        range: impl RangeBounds<usize>,
        flags: PersistFlags,
    ) -> Result<()> {
        self.lane.on_range(chunk, range, |l, c, off, len| {
            l.flush(c, off, len, flags.bits())
        })
    }

    /// Makes every flush of the lane durable; the chunks are free again.
    pub fn drain(mut self) -> Result<()> {
        self.drained = true;
        self.lane.drain()
    }
}

impl Drop for Flushes<'_, '_, '_> {
    fn drop(&mut self) {
        if !self.drained {
            self.lane.conn.release();
        }
    }
}
