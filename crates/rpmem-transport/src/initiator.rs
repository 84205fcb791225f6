//! The initiator's side of the boundary: what the client engine drives.
//!
//! The engine validates every call (flags, range inside the region, the
//! header protection, the lane number) and keeps the policy common to all
//! transports (a lane broken by a failure stays broken, how many flushes
//! may wait for a drain). A transport only moves the bytes and the answers.

use std::time::Duration;

use rpmem_proto::control::Session;
use rpmem_proto::Status;

use crate::{Region, Result};

/// How lanes behave, the same for every transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LaneOptions {
    /// How long one operation may wait for the target before the lane fails.
    pub timeout: Duration,
    /// How long a lane busy-polls for progress before blocking (see [`crate::spin`]).
    pub spin: Duration,
}

/// One lane of an open pool: an owned handle that carries one thread's
/// requests, in order. Ranges are offsets of the [`Region`] the lane was
/// opened with, which are also the offsets in the remote pool.
///
/// Once a method returned an error for which
/// [`crate::TransportError::breaks_lane`] holds, the lane must not be used
/// again (the engine enforces that).
pub trait InitiatorLane: Send {
    /// Copies `offset..offset+len` of the region to the pool and waits until
    /// it and every earlier flush of this lane are durable (`deep`: in the
    /// deepest durability domain). `flags` are wire flags
    /// (`rpmem_proto::data::FLAG_RELAXED`). Returns the target's verdict.
    fn persist(&mut self, deep: bool, flags: u8, offset: u64, len: usize) -> Result<Status>;

    /// Copies `offset..offset+len` of the region to the pool without waiting:
    /// durable only after a later [`InitiatorLane::drain`] or persist.
    fn flush(&mut self, flags: u8, offset: u64, len: usize) -> Result<()>;

    /// Waits until every earlier flush of this lane is durable.
    fn drain(&mut self) -> Result<Status>;

    /// Waits until no operation of this lane reads the region any more, so
    /// that the ranges of earlier flushes may be written again (they stay
    /// undurable until a drain). Transports that copy a range out before
    /// [`InitiatorLane::flush`] returns have nothing to wait for.
    fn release(&mut self) -> Result<()> {
        Ok(())
    }

    /// Reads `buf.len()` bytes at `offset` of the pool into `buf`. When the
    /// status is not [`Status::Ok`], `buf` is untouched.
    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<Status>;

    /// Ends the lane: the target sees its end after the last request.
    fn shutdown(&mut self);
}

/// Opens the lanes of a session for one transport.
pub trait Connector {
    /// The transport's name, for logs.
    fn name(&self) -> &'static str;

    /// Opens `session.nlanes` lanes over `region`, as granted in the
    /// target's answer on the control channel, each authenticated with the
    /// session secret. All or nothing.
    fn connect(
        &self,
        session: &Session,
        region: Region,
        options: &LaneOptions,
    ) -> Result<Vec<Box<dyn InitiatorLane>>>;
}
