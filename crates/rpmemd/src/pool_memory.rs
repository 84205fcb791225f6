//! The open pool as the transports see it.

use std::io;
use std::ops::Deref;
use std::ptr::NonNull;
use std::sync::Arc;

use rpmem_storage::Pool;
use rpmem_transport::fabric::StablePool;
use rpmem_transport::target::PoolMemory;

/// An open pool lent to a lane's transport: borrowed (`PoolMem<&Pool>`) for
/// a lane's requests, or shared (`PoolMem<Arc<Pool>>`) with a transport that
/// registers its memory for RMA.
pub struct PoolMem<P>(pub P);

// SAFETY: `Pool::spans` hands out pieces of the pool's live mappings, valid
// while the pool is open (the borrow or the Arc keeps it open), and storage
// never makes Rust references into them.
unsafe impl<P: Deref<Target = Pool> + Sync> PoolMemory for PoolMem<P> {
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

// SAFETY: the spans are pieces of the pool's mappings, which stay mapped
// until the pool is dropped; the Arc held here prevents that while this
// value lives.
unsafe impl StablePool for PoolMem<Arc<Pool>> {
    fn stable_spans(&self) -> io::Result<Vec<(u64, NonNull<[u8]>)>> {
        let mut out = Vec::new();
        let mut at = 0u64;
        self.0.spans(0, self.0.size(), |s| {
            out.push((at, s));
            at += s.len() as u64;
            Ok(())
        })?;
        Ok(out)
    }
}
