//! Target-side storage of rpmem: everything rpmemd does with files.
//!
//! - [`PoolSet`]: pool set files (poolset(5)) for remote pools.
//! - [`PoolHeader`]: the 4 KiB header in PMDK's on-media layout, with
//!   PMDK's checksum.
//! - [`Pool`]: parts created or opened, locked (exclusive `flock`), mapped
//!   shared, addressed as one remote pool; writes, reads, the spans a transport moves bytes through
//!   and coalesced durability.
//! - [`flush`]: the persistent-memory durability path (CPU cache flush).
//! - [`resolve_name`] and [`remove`]: pool set names and `rpmemd --remove`.

#![deny(missing_docs)]

mod error;
pub mod flush;
pub mod header;
mod intent;
mod pool;
pub mod poolset;
mod remove;
mod sys;

pub use error::{ErrorKind, Result, StorageError};
pub use flush::{set_force_pmem, Method};
pub use header::PoolHeader;
pub use pool::{Pool, PoolView, Range};
pub use poolset::{HeaderMode, PartSpec, PoolSet};
pub use remove::{remove, resolve_name};

/// Page size assumed for alignment of parts and durability spans.
pub const PAGE_SIZE: u64 = 4096;
/// Size of a pool header; with headers, the pool's first `HDR_SIZE` bytes.
pub const HDR_SIZE: u64 = rpmem_proto::POOL_HEADER_SIZE;
/// Smallest part size accepted (librpmem's `RPMEM_MIN_PART`).
pub const MIN_PART: u64 = rpmem_proto::MIN_PART_SIZE;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
