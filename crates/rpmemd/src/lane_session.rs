//! What one lane's requests do to the pool, whatever transport brought
//! them: validation (bounds, header protection), the write path, pending
//! ranges, durability, and the answer.

use log::{error, trace, warn};
use rpmem_proto::data::{Op, RequestHeader, FLAG_RELAXED};
use rpmem_proto::Status;
use rpmem_storage::{Pool, Range, HDR_SIZE};
use rpmem_transport::target::{Incoming, TargetLane};
use rpmem_transport::TransportError;

use crate::pool_memory::PoolMem;

/// Pending (flushed, not yet drained) ranges a lane keeps before it makes
/// them durable on its own, bounding its memory.
pub const MAX_PENDING: usize = 4096;

/// Why a lane stops serving.
enum Stop {
    /// The peer closed the lane.
    Closed,
    /// The lane can no longer be trusted.
    Failed(String),
}

impl From<TransportError> for Stop {
    fn from(e: TransportError) -> Stop {
        match e {
            TransportError::Closed(_) => Stop::Closed,
            e => Stop::Failed(e.to_string()),
        }
    }
}

/// One lane's session state.
pub struct LaneSession<'a> {
    pool: &'a Pool,
    /// Ranges written and not yet made durable.
    pending: Vec<Range>,
    /// A durability failure no answer has reported yet (one made while
    /// flushes piled up): the next drain or persist on the lane fails, or
    /// the close of the pool if none comes.
    unreported: Option<String>,
}

impl<'a> LaneSession<'a> {
    /// A lane of `pool` with nothing pending.
    pub fn new(pool: &'a Pool) -> Self {
        LaneSession {
            pool,
            pending: Vec::with_capacity(64),
            unreported: None,
        }
    }

    /// Serves `lane` until it ends, then makes whatever is pending durable.
    /// Returns a durability failure the initiator has not been told of (of
    /// that last pass, or of an earlier one no drain or persist followed),
    /// for the close of the pool to report.
    pub fn serve(mut self, lane: &mut dyn TargetLane) -> Option<String> {
        loop {
            match self.one(lane) {
                Ok(()) => {}
                Err(Stop::Closed) => break,
                Err(Stop::Failed(why)) => {
                    warn!("lane {}: {why}; dropping the connection", lane.index());
                    lane.shutdown();
                    break;
                }
            }
        }
        self.make_durable(lane.index(), false).err()
    }

    /// Refuses a request that cannot be trusted and ends the lane.
    fn bad_request(lane: &mut dyn TargetLane, tag: u64, why: String) -> Result<(), Stop> {
        let _ = lane.answer(tag, Status::BadRequest);
        Err(Stop::Failed(why))
    }

    /// Checks a request against the pool.
    fn validate(&self, h: &RequestHeader) -> Result<(), String> {
        if h.op != Op::Drain {
            if let Err(e) = self.pool.check_range(h.offset, h.length) {
                return Err(format!("{:?}: {e}", h.op));
            }
        }
        if h.op.has_payload() && self.pool.has_header() && h.offset < HDR_SIZE {
            return Err(format!(
                "{:?} at offset {} would overwrite the pool header",
                h.op, h.offset
            ));
        }
        Ok(())
    }

    fn one(&mut self, lane: &mut dyn TargetLane) -> Result<(), Stop> {
        let h = match lane.next()? {
            Incoming::Request(h) => h,
            Incoming::Malformed { tag, why } => return Self::bad_request(lane, tag, why),
            Incoming::Closed => return Err(Stop::Closed),
        };
        trace!(
            "lane {}: {:?} offset {} length {} flags {}",
            lane.index(),
            h.op,
            h.offset,
            h.length,
            h.flags
        );
        if let Err(why) = self.validate(&h) {
            return Self::bad_request(lane, h.tag, why);
        }
        let mem = PoolMem(self.pool);
        let status = match h.op {
            Op::Flush | Op::Persist | Op::DeepPersist => {
                lane.receive_payload(&mem, &h, h.flags & FLAG_RELAXED != 0)?;
                if h.length > 0 {
                    self.pending.push(Range {
                        offset: h.offset,
                        len: h.length,
                    });
                }
                match h.op {
                    // A flush is made durable by a later drain or persist,
                    // or here once too many ranges wait; a flush has no
                    // answer, so a failure then waits for the next one.
                    Op::Flush if self.pending.len() < MAX_PENDING => Status::Ok,
                    Op::Flush => {
                        if let Err(why) = self.make_durable(lane.index(), false) {
                            self.unreported = Some(why);
                        }
                        Status::Ok
                    }
                    op => Self::status(self.make_durable(lane.index(), op == Op::DeepPersist)),
                }
            }
            Op::Drain => Self::status(self.make_durable(lane.index(), false)),
            Op::Read => Status::Ok,
        };
        if h.op.has_reply() {
            lane.answer(h.tag, status)?;
        }
        if h.op == Op::Read {
            lane.send_read(&mem, h.offset, h.length)?;
        }
        Ok(())
    }

    /// The answer to a request whose durability pass ended `r`.
    fn status(r: Result<(), String>) -> Status {
        match r {
            Ok(()) => Status::Ok,
            Err(_) => Status::Fatal,
        }
    }

    /// One coalesced durability pass over everything pending. Fails (saying
    /// why) when it failed, and also when an earlier pass failed unseen.
    fn make_durable(&mut self, index: u32, deep: bool) -> Result<(), String> {
        let r = self.pool.persist(&mut self.pending, deep);
        self.pending.clear();
        let earlier = self.unreported.take();
        match (r, earlier) {
            (Ok(()), None) => Ok(()),
            (Ok(()), Some(why)) => {
                error!("lane {index}: reporting an earlier durability failure");
                Err(why)
            }
            (Err(e), _) => {
                let why = format!("lane {index}: making data durable failed: {e}");
                error!("{why}");
                Err(why)
            }
        }
    }
}
