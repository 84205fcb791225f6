//! The safe API: a pool that owns its local region.

use crate::config::Config;
use crate::error::Result;
use crate::pool::RemotePool;
use rpmem_proto::PoolAttr;

/// A remote pool together with the page-aligned local region it replicates.
pub struct Pool {
    _remote: RemotePool,
}

impl Pool {
    /// Creates a remote pool and a zeroed local region of `size` bytes.
    pub fn create(
        _cfg: &Config,
        _target: &str,
        _pool_set: &str,
        _size: usize,
        _nlanes: u32,
        _attr: Option<&PoolAttr>,
    ) -> Result<Pool> {
        todo!()
    }
}
