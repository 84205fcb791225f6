//! The safe API: a pool that owns its local region.

use memmap2::MmapMut;
use rpmem_proto::PoolAttr;

use crate::builder::PoolBuilder;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::flags::PersistFlags;
use crate::pool::RemotePool;
use crate::split::{Chunk, Lane};

/// A remote pool together with the page-aligned local region it replicates.
///
/// Write into [`Pool::region_mut`], then [`Pool::persist`] the ranges written.
#[derive(Debug)]
pub struct Pool {
    // Declared before `region` so the connection closes before the memory goes.
    remote: RemotePool,
    region: MmapMut,
}

fn anon_region(size: usize) -> Result<MmapMut> {
    MmapMut::map_anon(size).map_err(|e| Error::io(format!("cannot map a {size}-byte region"), e))
}

impl Pool {
    /// Settings for creating or opening the pool set file `pool_set` on
    /// `target`, starting from the librpmem environment; see [`PoolBuilder`].
    pub fn builder(target: impl Into<String>, pool_set: impl Into<String>) -> PoolBuilder {
        PoolBuilder::new(target, pool_set)
    }

    /// Creates a remote pool and a zeroed local region of `size` bytes.
    pub fn create(
        cfg: &Config,
        target: &str,
        pool_set: &str,
        size: usize,
        nlanes: u32,
        attr: Option<&PoolAttr>,
    ) -> Result<Pool> {
        let region = anon_region(size)?;
        // SAFETY: the region is owned by the returned Pool and outlives
        // `remote`, which is dropped first.
        let remote = unsafe {
            RemotePool::create(cfg, target, pool_set, region.as_ptr(), size, nlanes, attr)
        }?;
        Ok(Pool { remote, region })
    }

    /// Opens an existing remote pool with a zeroed local region of `size`
    /// bytes; returns it with the stored attributes.
    pub fn open(
        cfg: &Config,
        target: &str,
        pool_set: &str,
        size: usize,
        nlanes: u32,
    ) -> Result<(Pool, PoolAttr)> {
        let region = anon_region(size)?;
        // SAFETY: as in `create`.
        let (remote, attr) =
            unsafe { RemotePool::open(cfg, target, pool_set, region.as_ptr(), size, nlanes) }?;
        Ok((Pool { remote, region }, attr))
    }

    /// The local region.
    pub fn region(&self) -> &[u8] {
        &self.region
    }

    /// The local region, for writing what the next persist will replicate.
    ///
    /// Over a transport that reads flushed ranges straight from the region
    /// (RDMA), this first waits until it has read them all; a lane that
    /// fails that wait is closed and reports it on its next call.
    pub fn region_mut(&mut self) -> &mut [u8] {
        self.remote.release_all();
        &mut self.region
    }

    /// Lanes granted.
    pub fn nlanes(&self) -> u32 {
        self.remote.nlanes()
    }

    /// Whether the first 4096 bytes of the remote pool hold its header.
    pub fn has_header(&self) -> bool {
        self.remote.has_header()
    }

    /// See [`RemotePool::attr`].
    pub fn attr(&self) -> PoolAttr {
        self.remote.attr()
    }

    /// Size of the local region.
    pub fn size(&self) -> usize {
        self.region.len()
    }

    /// See [`RemotePool::persist`].
    pub fn persist(&self, offset: usize, len: usize, lane: u32, flags: PersistFlags) -> Result<()> {
        self.remote.persist(offset, len, lane, flags.bits())
    }

    /// See [`RemotePool::deep_persist`].
    pub fn deep_persist(&self, offset: usize, len: usize, lane: u32) -> Result<()> {
        self.remote.deep_persist(offset, len, lane)
    }

    /// See [`RemotePool::flush`].
    pub fn flush(&self, offset: usize, len: usize, lane: u32, flags: PersistFlags) -> Result<()> {
        self.remote.flush(offset, len, lane, flags.bits())
    }

    /// See [`RemotePool::drain`].
    pub fn drain(&self, lane: u32) -> Result<()> {
        self.remote.drain(lane, 0)
    }

    /// Reads from the remote pool into `buf` (not into the local region).
    pub fn read(&self, buf: &mut [u8], offset: usize, lane: u32) -> Result<()> {
        self.remote.read(buf, offset, lane)
    }

    /// Splits the pool for threads: the whole local region as one [`Chunk`]
    /// (divide it with [`Chunk::chunks`] or [`Chunk::split_at`]) and one
    /// owned [`Lane`] per lane granted. Each thread takes a chunk and a lane,
    /// writes its chunk and replicates it while the others do the same with
    /// theirs; no call takes a lock.
    ///
    /// ```
    /// # let Some(_sandbox) = rpmem::doc_support::Sandbox::new() else { return Ok(()) };
    /// use rpmem::{PersistFlags, Pool};
    ///
    /// let mut pool = Pool::builder("localhost", "pool.set")
    ///     .size(4 << 20)
    ///     .lanes(4)
    ///     .create(None)?;
    /// let (region, lanes) = pool.split();
    /// let per_lane = region.len() / lanes.len();
    /// std::thread::scope(|s| {
    ///     let workers: Vec<_> = region
    ///         .chunks(per_lane)
    ///         .zip(lanes)
    ///         .map(|(mut chunk, mut lane)| {
    ///             s.spawn(move || {
    ///                 chunk.fill(lane.index() as u8 + 1);
    ///                 lane.persist(&chunk, .., PersistFlags::empty())?;
    ///                 // Part of it again, without the 8-byte atomicity.
    ///                 chunk[..64].fill(0xff);
    ///                 lane.persist(&chunk, ..64, PersistFlags::RELAXED)
    ///             })
    ///         })
    ///         .collect();
    ///     workers.into_iter().try_for_each(|w| w.join().unwrap())
    /// })?;
    ///
    /// let mut back = [0u8; 2];
    /// pool.read(&mut back, per_lane + 64, 1)?;
    /// assert_eq!(back, [2, 2]);
    /// pool.close()?;
    /// # Ok::<(), rpmem::Error>(())
    /// ```
    pub fn split(&mut self) -> (Chunk<'_>, Vec<Lane<'_>>) {
        self.remote.release_all();
        let (limits, conns) = self.remote.lanes_mut();
        let lanes = conns
            .into_iter()
            .map(|c| Lane::new(c, limits, &self.region))
            .collect();
        (Chunk::whole(&mut self.region), lanes)
    }

    /// See [`RemotePool::set_attr`].
    pub fn set_attr(&self, attr: Option<&PoolAttr>) -> Result<()> {
        self.remote.set_attr(attr)
    }

    /// Closes the pool on both sides; the remote pool stays.
    pub fn close(self) -> Result<()> {
        self.remote.close()
    }
}
