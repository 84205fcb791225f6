//! One lane of an open pool, driven through the transport boundary: the
//! policy every transport shares (a failure breaks the lane for good, at
//! most `queue_limit` flushes wait for a drain, a non-Ok answer is an error).

use rpmem_proto::Status;
use rpmem_transport::initiator::InitiatorLane;

use crate::error::{Error, Result};

/// A connected lane and what the engine tracks about it.
pub(crate) struct Lane {
    inner: Box<dyn InitiatorLane>,
    index: u32,
    /// Flushes sent since the last drain or persist.
    undrained: usize,
    /// The transport may still read ranges of flushes (see `release`).
    unreleased: bool,
    /// Set after a failure: the connection's state is unknown, so the lane
    /// refuses further use.
    broken: Option<String>,
}

impl Lane {
    /// Lane `index`, connected by a transport.
    pub(crate) fn new(index: u32, inner: Box<dyn InitiatorLane>) -> Lane {
        Lane {
            inner,
            index,
            undrained: 0,
            unreleased: false,
            broken: None,
        }
    }

    /// The lane's number in its pool.
    pub(crate) fn index(&self) -> u32 {
        self.index
    }

    /// Runs one transport call; a failure that leaves the connection in an
    /// unknown state breaks the lane.
    fn call<T>(
        &mut self,
        f: impl FnOnce(&mut dyn InitiatorLane) -> rpmem_transport::Result<T>,
    ) -> Result<T> {
        if let Some(why) = &self.broken {
            return Err(Error::ConnectionAborted(format!(
                "lane {} is unusable after an earlier failure: {why}",
                self.index
            )));
        }
        f(self.inner.as_mut()).map_err(|e| {
            if e.breaks_lane() {
                self.broken = Some(e.to_string());
            }
            Error::from(e)
        })
    }

    fn status(&self, status: Status, what: &str) -> Result<()> {
        match status {
            Status::Ok => Ok(()),
            // What the daemon answers when msync/fsync (or the cache flush)
            // failed: nothing else fails an accepted persist or drain.
            Status::Fatal if what != "read" => Err(Error::Remote {
                status: Status::Fatal,
                message: format!(
                    "lane {}: the target could not make the data durable ({what} failed there; its log says why)",
                    self.index
                ),
            }),
            s => Err(Error::Remote {
                status: s,
                message: format!("lane {}: the target failed the {what} ({s:?})", self.index),
            }),
        }
    }

    /// Copies `offset..offset+len` of the region and makes it durable (with
    /// every earlier flush on this lane).
    pub(crate) fn persist(&mut self, deep: bool, flags: u8, offset: u64, len: usize) -> Result<()> {
        let st = self.call(|l| l.persist(deep, flags, offset, len))?;
        self.undrained = 0;
        self.unreleased = false;
        self.status(st, "persist")
    }

    /// Copies without waiting. After `queue_limit` flushes without a drain it
    /// drains first, so a lane never has more than that many in flight.
    pub(crate) fn flush(
        &mut self,
        flags: u8,
        offset: u64,
        len: usize,
        queue_limit: usize,
    ) -> Result<()> {
        if self.undrained >= queue_limit {
            self.drain()?;
        }
        self.unreleased = true;
        self.call(|l| l.flush(flags, offset, len))?;
        self.undrained += 1;
        Ok(())
    }

    /// Waits until the transport reads none of the ranges flushed since the
    /// last drain or persist, so the application may write them again. A
    /// lane that fails this is closed at once (its transport then reads
    /// nothing more) and reports the failure on its next call.
    pub(crate) fn release(&mut self) {
        if !self.unreleased {
            return;
        }
        match self.call(|l| l.release()) {
            Ok(()) => self.unreleased = false,
            Err(e) => {
                self.broken.get_or_insert_with(|| e.to_string());
                self.inner.shutdown();
                self.unreleased = false;
            }
        }
    }

    /// Makes every earlier flush on this lane durable.
    pub(crate) fn drain(&mut self) -> Result<()> {
        let st = self.call(|l| l.drain())?;
        self.undrained = 0;
        self.unreleased = false;
        self.status(st, "drain")
    }

    /// Reads `buf.len()` bytes at `offset` of the remote pool.
    pub(crate) fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<()> {
        let st = self.call(|l| l.read(buf, offset))?;
        self.status(st, "read")
    }

    /// Ends the lane: the daemon sees end-of-stream after our last request.
    pub(crate) fn shutdown(&mut self) {
        self.inner.shutdown();
    }
}
