//! The open pool as the transports see it.

use std::io;
use std::ptr::NonNull;

use rpmem_storage::Pool;
use rpmem_transport::target::PoolMemory;

/// An open pool lent to a lane's transport.
pub struct PoolMem<'a>(pub &'a Pool);

// SAFETY: `Pool::spans` hands out pieces of the pool's live mappings, valid
// while the pool is open (it outlives this borrow), and storage never makes
// Rust references into them.
unsafe impl PoolMemory for PoolMem<'_> {
    fn size(&self) -> u64 {
        self.0.size()
    }

    fn spans(
        &self,
        offset: u64,
        len: u64,
        f: &mut dyn FnMut(NonNull<[u8]>) -> io::Result<()>,
    ) -> io::Result<()> {
        self.0.spans(offset, len, f)
    }

    fn write_atomic(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.0
            .write(offset, data)
            .map_err(|e| io::Error::other(e.to_string()))
    }
}
