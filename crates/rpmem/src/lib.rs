//! Replicate a local memory region to persistent memory on another node.
//!
//! A [`Pool`] owns a page-aligned region in this process and is bound to a
//! *remote pool* on a *target* node, served by `rpmemd` and described there by
//! a pool set file. Write into the region, then [`persist`](Pool::persist) the
//! ranges written: each call copies them to the same offsets of the remote pool
//! and returns once they are durable there.
//!
//! ```
//! # let Some(_sandbox) = rpmem::doc_support::Sandbox::new() else { return Ok(()) };
//! use rpmem::{PersistFlags, Pool};
//!
//! let mut pool = Pool::builder("localhost", "pool.set").size(1 << 20).create(None)?;
//! pool.region_mut()[4096..4101].copy_from_slice(b"hello");
//! pool.persist(4096, 5, 0, PersistFlags::empty())?;
//! pool.close()?;
//! # Ok::<(), rpmem::Error>(())
//! ```
//!
//! - [`Pool::builder`] sets everything about reaching the pool (target, pool
//!   set, region size, lanes, time limit, transport), starting from the
//!   environment librpmem reads (`RPMEM_SSH`, `RPMEM_CMD`, ...), so a Rust
//!   program obeys the same variables as a C one.
//! - [`Pool::split`] hands each thread a [`Chunk`] of the region and an owned
//!   [`Lane`]: threads write and replicate their chunks at the same time, with
//!   no lock per call.
//! - [`PersistFlags`] and [`RemoveFlags`] are librpmem's flags, typed.
//! - Every failure is an [`Error`] with its [`errno`](Error::errno) and its
//!   [`std::io::ErrorKind`] ([`Error::kind`]), and converts into
//!   [`std::io::Error`].
//! - [`RemotePool`] is the same engine over a region the caller owns, given as
//!   a raw pointer; it is what the C library `librpmem.so.1` wraps.
//!
//! The target is reached by running the ssh client, which starts `rpmemd`
//! there; each lane is then one TCP connection to it. Without an ssh server,
//! `rpmem-ssh-local` (installed with rpmem) runs the daemon on this machine:
//! set `RPMEM_SSH` to it and `RPMEM_CMD` to `rpmemd --poolset-dir=DIR`.

#![deny(missing_docs)]

mod builder;
mod config;
#[doc(hidden)]
pub mod doc_support;
mod error;
mod flags;
mod lane;
mod launch;
mod log;
mod pmdk;
mod pool;
mod region;
mod remove;
mod select;
mod split;
mod sys;

pub use builder::{PoolBuilder, Transport};
pub use config::{Config, Target};
pub use error::{Error, Result};
pub use flags::{PersistFlags, RemoveFlags};
pub use launch::{remote_command, shell_quote, ControlChannel};
pub use pool::RemotePool;
pub use region::Pool;
pub use remove::remove;
pub use rpmem_proto::{PoolAttr, Status};
pub use split::{Chunk, Flushes, Lane};
pub use sys::page_size;

/// `RPMEM_PERSIST_RELAXED` for [`RemotePool`]: the transfer need not be
/// atomic at 8-byte granularity ([`PersistFlags::RELAXED`] in the safe API).
pub const PERSIST_RELAXED: u32 = rpmem_proto::data::API_RELAXED;
/// Same bit as [`PERSIST_RELAXED`], under the name librpmem gave it for flush.
pub const FLUSH_RELAXED: u32 = rpmem_proto::data::API_RELAXED;
/// Smallest local pool accepted.
pub const MIN_POOL: usize = 8 * 1024;
/// Smallest part file a pool set may have.
pub const MIN_PART: usize = rpmem_proto::MIN_PART_SIZE as usize;
/// Size of the pool header that protects the first bytes of a pool with headers.
pub const HEADER_SIZE: usize = rpmem_proto::POOL_HEADER_SIZE as usize;
/// Most lanes the library ever opens, whatever is asked.
pub const MAX_LANES: u32 = 1024;

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
