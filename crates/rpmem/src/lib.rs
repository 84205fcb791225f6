//! Client engine of rpmem: replicate a local memory region to a remote pool.
//!
//! Two layers:
//! - [`RemotePool`] works on a region the caller owns, given as a raw pointer
//!   (this is what the C library wraps); creating one is `unsafe` because the
//!   caller promises the region outlives the handle.
//! - [`Pool`] owns its region and is entirely safe to use.
//!
//! A pool is reached by running the ssh client (see [`Config`]) which starts
//! `rpmemd` on the target; the pool is then served over one TCP connection per
//! lane.

mod builder;
mod config;
#[doc(hidden)]
pub mod doc_support;
mod error;
mod flags;
mod lane;
mod launch;
mod log;
mod pool;
mod region;
mod remove;
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

/// Flag for persist and flush: the transfer need not be atomic at 8-byte
/// granularity, so it may take the fastest path.
pub const PERSIST_RELAXED: u32 = rpmem_proto::data::API_RELAXED;
/// Same bit as [`PERSIST_RELAXED`], under the name librpmem gave it for flush.
pub const FLUSH_RELAXED: u32 = rpmem_proto::data::API_RELAXED;
/// Smallest local pool accepted.
pub const MIN_POOL: usize = 8 * 1024;
/// Smallest part file a pool set may have.
pub const MIN_PART: usize = 2 * 1024 * 1024;
/// Size of the pool header that protects the first bytes of a pool with headers.
pub const HEADER_SIZE: usize = 4096;
/// Most lanes the library ever opens, whatever is asked.
pub const MAX_LANES: u32 = 1024;
