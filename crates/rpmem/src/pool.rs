//! A remote pool bound to a caller-owned local region.

use crate::config::Config;
use crate::error::Result;
use rpmem_proto::PoolAttr;

/// An open remote pool replicating a region the caller owns.
pub struct RemotePool {
    _priv: (),
}

impl RemotePool {
    /// Creates the pool described by `pool_set` on `target` and opens it.
    ///
    /// `attr` `None` (or all zero) makes a pool without headers, which the
    /// target's pool set must allow (`OPTION NOHDRS`). `nlanes` is the number
    /// of lanes wanted; [`RemotePool::nlanes`] tells how many were granted.
    ///
    /// # Safety
    /// `addr..addr+size` must be readable for as long as the handle lives.
    pub unsafe fn create(
        _cfg: &Config,
        _target: &str,
        _pool_set: &str,
        _addr: *const u8,
        _size: usize,
        _nlanes: u32,
        _attr: Option<&PoolAttr>,
    ) -> Result<RemotePool> {
        todo!()
    }

    /// Opens an existing pool; returns it with its stored attributes (zero for
    /// a pool without headers).
    ///
    /// # Safety
    /// As for [`RemotePool::create`].
    pub unsafe fn open(
        _cfg: &Config,
        _target: &str,
        _pool_set: &str,
        _addr: *const u8,
        _size: usize,
        _nlanes: u32,
    ) -> Result<(RemotePool, PoolAttr)> {
        todo!()
    }

    /// Lanes granted.
    pub fn nlanes(&self) -> u32 {
        todo!()
    }

    /// Whether the first 4096 bytes of the remote pool hold its header.
    pub fn has_header(&self) -> bool {
        todo!()
    }

    /// Copies `len` bytes at `offset` of the local region to the remote pool and
    /// makes them durable there. `flags`: 0 or [`crate::PERSIST_RELAXED`].
    pub fn persist(&self, _offset: usize, _len: usize, _lane: u32, _flags: u32) -> Result<()> {
        todo!()
    }

    /// Like [`RemotePool::persist`], to the deepest durability domain of the target.
    pub fn deep_persist(&self, _offset: usize, _len: usize, _lane: u32) -> Result<()> {
        todo!()
    }

    /// Copies without waiting for durability; see [`RemotePool::drain`].
    pub fn flush(&self, _offset: usize, _len: usize, _lane: u32, _flags: u32) -> Result<()> {
        todo!()
    }

    /// Makes every earlier flush on `lane` durable. `flags` must be 0.
    pub fn drain(&self, _lane: u32, _flags: u32) -> Result<()> {
        todo!()
    }

    /// Reads `buf.len()` bytes at `offset` of the remote pool.
    pub fn read(&self, _buf: &mut [u8], _offset: usize, _lane: u32) -> Result<()> {
        todo!()
    }

    /// Rewrites the stored attributes (`None`: zeroed attributes).
    pub fn set_attr(&self, _attr: Option<&PoolAttr>) -> Result<()> {
        todo!()
    }

    /// Closes the pool on both sides; the remote pool stays.
    pub fn close(self) -> Result<()> {
        todo!()
    }
}
