//! The transport boundary of rpmem, shared by the client engine and rpmemd.
//!
//! A *lane* carries one initiator thread's requests, in order, to the target
//! and brings the answers back. Both sides drive lanes only through the
//! traits here, so a transport is one module that implements them:
//!
//! - [`initiator`]: what the client engine needs. A [`initiator::Connector`]
//!   opens the lanes of a session over the caller's local [`Region`]; each
//!   [`initiator::InitiatorLane`] persists, flushes, drains and reads ranges.
//! - [`target`]: what rpmemd needs. A [`target::TargetListener`] admits lanes
//!   (authenticated with the session secret) and hands each to the daemon's
//!   session logic as a [`target::TargetLane`], which yields requests, brings
//!   their payload into pool memory ([`target::PoolMemory`]) and answers.
//! - [`spin`]: the busy-poll policy both sides use (spin slots, poll then
//!   block), configured from `RPMEM_SPIN_US` / `RPMEMD_SPIN_US`.
//! - [`tcp`]: the TCP transport, both halves: one connection per lane.
//! - [`pmdk`]: lanes to PMDK 1.12's rpmemd, in PMDK's protocol over libfabric.
//!
//! Protocol rules (message layouts, which request gets an answer) live in
//! `rpmem-proto`; pool validation, durability and pending ranges live in the
//! daemon; this crate moves bytes.

#![warn(missing_docs)]

mod error;
pub mod fabric;
pub mod initiator;
pub mod pmdk;
mod region;
pub mod spin;
pub mod target;
pub mod tcp;

pub use error::{Result, TransportError};
pub use region::Region;
