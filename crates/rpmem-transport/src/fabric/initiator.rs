//! The initiator's half of the libfabric transport.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rpmem_fabric::{
    Access, Completion, Domain, Endpoint, Fabric, Hints, Libfabric, MemoryRegion, OpKind,
    RemoteMemory,
};
use rpmem_proto::control::Session;
use rpmem_proto::data::{Ack, Hello, Op, RequestHeader, ACK_LEN, FLAG_RELAXED, HEADER_LEN};
use rpmem_proto::transport::{FabricSession, PersistMethod, RemotePart};
use rpmem_proto::{Status, PROTO_VERSION};

use super::lane_error;
use crate::initiator::{Connector, InitiatorLane, LaneOptions};
use crate::{Region, Result, TransportError};

/// Receive buffers a lane keeps posted for acknowledgements.
const ACK_SLOTS: usize = 4;
/// Size of a lane's bounce buffer for RMA reads.
const BOUNCE_LEN: usize = 256 << 10;
// Layout of a lane's message memory: the request being sent, the
// acknowledgement slots, the read bounce buffer.
const SEND_AT: usize = 0;
const ACKS_AT: usize = super::SLOT_LEN;
const BOUNCE_AT: usize = ACKS_AT + ACK_SLOTS * ACK_LEN;
const MSG_LEN: usize = BOUNCE_AT + BOUNCE_LEN;
// Tokens of the operations a lane posts (acknowledgement receives use their
// slot number).
const TOKEN_SEND: u64 = 1 << 62;
const TOKEN_WRITE: u64 = 1 << 61;
const TOKEN_READ: u64 = 1 << 60;

/// Opens libfabric lanes with one provider to the endpoint of a fabric
/// session answer.
#[derive(Debug, Clone)]
pub struct FabricConnector {
    lib: Libfabric,
    provider: String,
}

impl FabricConnector {
    /// Lanes over `provider` of the loaded `lib`.
    pub fn new(lib: Libfabric, provider: &str) -> FabricConnector {
        FabricConnector {
            lib,
            provider: provider.to_string(),
        }
    }

    /// The provider's name.
    pub fn provider(&self) -> &str {
        &self.provider
    }
}

/// The initiator's region, registered for RMA writes from it.
struct RegisteredRegion {
    mr: Arc<MemoryRegion>,
    // The promise made to Region::new covers the registration while a copy
    // lives; dropped after `mr`.
    _region: Region,
}

impl Connector for FabricConnector {
    fn name(&self) -> &'static str {
        "fabric"
    }

    fn connect(
        &self,
        session: &Session,
        region: Region,
        options: &LaneOptions,
    ) -> Result<Vec<Box<dyn crate::initiator::InitiatorLane>>> {
        let fs = session.fabric.as_deref().cloned().ok_or_else(|| {
            TransportError::Protocol("the target answered without a fabric endpoint".into())
        })?;
        if fs.provider != self.provider {
            return Err(TransportError::Protocol(format!(
                "the target listens with provider {}, not {}",
                fs.provider, self.provider
            )));
        }
        let fail = |what: &str, e: rpmem_fabric::Error| {
            TransportError::Failed(format!(
                "{what} ({} provider, {}:{}): {e}",
                self.provider, session.addr, session.port
            ))
        };
        let info = self
            .lib
            .getinfo(&Hints::connect(&session.addr, session.port).provider(&self.provider))
            .map_err(|e| fail("no fabric path to the target", e))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                fail(
                    "no fabric path to the target",
                    rpmem_fabric::Error::Rejected,
                )
            })?;
        let domain = Fabric::open(&info)
            .and_then(|f| f.domain())
            .map_err(|e| fail("cannot open the fabric", e))?;
        // SAFETY: Region::new's caller promised the region readable while any
        // copy of it lives; RegisteredRegion keeps one beside the
        // registration, and every lane (whose endpoint holds the memory of
        // operations in flight) keeps the RegisteredRegion.
        let mr = unsafe {
            domain.register_raw(region.as_ptr().cast_mut(), region.len(), Access::SOURCE)
        }
        .map_err(|e| fail("cannot register the local region", e))?;
        let shared = Arc::new(Shared {
            region: RegisteredRegion {
                mr,
                _region: region,
            },
            fs,
        });
        (0..session.nlanes)
            .map(|i| {
                FabricLane::connect(&domain, &shared, i, &session.secret, options)
                    .map(|l| Box::new(l) as Box<dyn InitiatorLane>)
            })
            .collect()
    }
}

/// What the lanes of one session share.
struct Shared {
    region: RegisteredRegion,
    fs: FabricSession,
}

/// One connected lane.
struct FabricLane {
    // Drop order: the endpoint closes first, releasing operations in flight.
    ep: Endpoint,
    msg: Arc<MemoryRegion>,
    shared: Arc<Shared>,
    index: u32,
    timeout: Duration,
    /// Tag of the last request sent, and of the last one acknowledged: the
    /// daemon has taken every request up to the latter.
    last_sent: u64,
    last_acked: u64,
    /// The send buffer still belongs to a send in flight.
    send_busy: bool,
    /// RMA writes and reads in flight.
    rma_in_flight: usize,
    /// Flushes the daemon has been told about and not yet drained.
    flushed: bool,
    /// Appliance-method writes not yet made durable by a read.
    apm_dirty: bool,
}

impl FabricLane {
    fn connect(
        domain: &Arc<Domain>,
        shared: &Arc<Shared>,
        index: u32,
        secret: &[u8; rpmem_proto::control::SECRET_LEN],
        options: &LaneOptions,
    ) -> Result<FabricLane> {
        let fail = |what: &str, e: rpmem_fabric::Error| lane_error(index, what, e);
        let msg = domain
            .register(MSG_LEN, Access::LOCAL)
            .map_err(|e| fail("registering lane buffers", e))?;
        let mut ep = domain
            .endpoint()
            .map_err(|e| fail("making an endpoint", e))?;
        ep.set_spin(super::lane_spin(&shared.fs.provider, options.spin));
        for slot in 0..ACK_SLOTS {
            ep.post_recv(&msg, ACKS_AT + slot * ACK_LEN, ACK_LEN, slot as u64)
                .map_err(|e| fail("posting receives", e))?;
        }
        let hello = Hello {
            version: PROTO_VERSION,
            lane: index,
            secret: *secret,
        };
        match ep.connect(&hello.encode(), options.timeout) {
            Ok(()) => {}
            Err(rpmem_fabric::Error::Rejected) => {
                return Err(TransportError::Refused {
                    status: Status::Unauthenticated,
                    message: format!("lane {index}: the target refused the fabric connection"),
                })
            }
            Err(e) => return Err(fail("connecting", e)),
        }
        Ok(FabricLane {
            ep,
            msg,
            shared: shared.clone(),
            index,
            timeout: options.timeout,
            last_sent: 0,
            last_acked: 0,
            send_busy: false,
            rma_in_flight: 0,
            flushed: false,
            apm_dirty: false,
        })
    }

    fn fs(&self) -> &FabricSession {
        &self.shared.fs
    }

    fn err(&self, what: &str, e: rpmem_fabric::Error) -> TransportError {
        lane_error(self.index, what, e)
    }

    /// Accounts for one completion; an acknowledgement is returned.
    fn complete(&mut self, c: Completion) -> Result<Option<Ack>> {
        match c.kind {
            OpKind::Send => self.send_busy = false,
            OpKind::Write | OpKind::Read => self.rma_in_flight -= 1,
            OpKind::Recv => {
                let at = ACKS_AT + c.token as usize * ACK_LEN;
                let mut raw = [0u8; ACK_LEN];
                self.msg
                    .read(at, &mut raw)
                    .map_err(|e| self.err("reading an acknowledgement", e))?;
                self.ep
                    .post_recv(&self.msg, at, ACK_LEN, c.token)
                    .map_err(|e| self.err("posting a receive", e))?;
                if c.len != ACK_LEN {
                    return Err(TransportError::Failed(format!(
                        "lane {}: an acknowledgement of {} bytes",
                        self.index, c.len
                    )));
                }
                let ack = Ack::decode(&raw).map_err(|e| {
                    TransportError::Failed(format!("lane {}: bad acknowledgement: {e}", self.index))
                })?;
                if ack.tag <= self.last_acked || ack.tag > self.last_sent {
                    return Err(TransportError::Failed(format!(
                        "lane {}: acknowledgement for request {} out of order",
                        self.index, ack.tag
                    )));
                }
                self.last_acked = ack.tag;
                return Ok(Some(ack));
            }
        }
        Ok(None)
    }

    /// Waits (up to the lane's time limit) until `done` holds, accounting
    /// for every completion; `done` sees the acknowledgements.
    fn wait_until(
        &mut self,
        what: &str,
        mut done: impl FnMut(&FabricLane, Option<&Ack>) -> bool,
    ) -> Result<Option<Ack>> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if done(self, None) {
                return Ok(None);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            let c = self.ep.wait(left).map_err(|e| self.err(what, e))?;
            if let Some(ack) = self.complete(c)? {
                if done(self, Some(&ack)) {
                    return Ok(Some(ack));
                }
            }
        }
    }

    /// Takes completions that are already there, without waiting.
    fn reap(&mut self) -> Result<()> {
        while let Some(c) = self.ep.poll().map_err(|e| self.err("reaping", e))? {
            if let Some(ack) = self.complete(c)? {
                return Err(TransportError::Failed(format!(
                    "lane {}: unexpected acknowledgement for request {}",
                    self.index, ack.tag
                )));
            }
        }
        Ok(())
    }

    /// Sends a request; with `inline`, its payload (`len` bytes of the
    /// region at `offset`) travels in the message. Returns the tag.
    fn send(&mut self, op: Op, flags: u8, offset: u64, len: usize, inline: bool) -> Result<u64> {
        self.reap()?;
        // A request needs a receive buffer the daemon has posted.
        if self.last_sent - self.last_acked >= self.fs().recv_slots.max(1) as u64 - 1
            && op != Op::Drain
        {
            self.drain_messages()?;
        }
        if self.send_busy {
            self.wait_until("sending", |l, _| !l.send_busy)?;
        }
        // Tags count up from 1 (0 answers the hello on TCP lanes).
        let tag = self.last_sent + 1;
        let h = RequestHeader {
            op,
            flags,
            offset,
            length: len as u64,
            tag,
        };
        let mut n = HEADER_LEN;
        self.msg
            .write(SEND_AT, &h.encode())
            .map_err(|e| self.err("building a request", e))?;
        if inline {
            let src = usize::try_from(offset).unwrap_or(usize::MAX);
            self.msg
                .copy_from(SEND_AT + HEADER_LEN, &self.shared.region.mr, src, len)
                .map_err(|e| self.err("building a request", e))?;
            n += len;
        }
        self.ep
            .post_send(&self.msg, SEND_AT, n, TOKEN_SEND)
            .map_err(|e| self.err("sending a request", e))?;
        self.send_busy = true;
        self.last_sent = tag;
        Ok(tag)
    }

    /// Waits for the acknowledgement of `tag`.
    fn ack(&mut self, tag: u64, what: &str) -> Result<Status> {
        let ack = self.wait_until(what, |_, a| a.is_some_and(|a| a.tag == tag))?;
        Ok(ack.map_or(Status::Ok, |a| a.status))
    }

    /// Posts RMA operations on `offset..offset+len` of the pool, split at its
    /// registered parts: writes from the region at the same offsets, or
    /// reads into the bounce buffer.
    fn rma(&mut self, write: bool, offset: u64, len: usize, stage: bool) -> Result<()> {
        let parts: Vec<RemotePart> = if stage {
            let s = self.fs().stage;
            vec![RemotePart {
                offset,
                len: s.len,
                addr: s.addr + self.index as u64 * s.len,
                ..s
            }]
        } else {
            self.fs().parts.clone()
        };
        let end = offset + len as u64;
        let mut at = offset;
        while at < end {
            let p = parts
                .iter()
                .find(|p| p.offset <= at && at < p.offset + p.len)
                .filter(|p| p.writable || !write)
                .ok_or_else(|| {
                    TransportError::Invalid(format!(
                        "lane {}: pool offset {at} is not {} by RMA",
                        self.index,
                        if write { "writable" } else { "readable" }
                    ))
                })?;
            let n = (end.min(p.offset + p.len) - at) as usize;
            let remote = RemoteMemory {
                addr: p.addr,
                key: p.key,
                len: p.len,
            };
            let r = if write {
                // The source is the region at the pool offset (with staging
                // too; only the destination differs).
                self.ep.post_write(
                    &self.shared.region.mr,
                    at as usize,
                    n,
                    &remote,
                    at - p.offset,
                    TOKEN_WRITE,
                )
            } else {
                let dst = BOUNCE_AT + (at - offset) as usize;
                self.ep
                    .post_read(&self.msg, dst, n, &remote, at - p.offset, TOKEN_READ)
            };
            r.map_err(|e| self.err(if write { "RMA write" } else { "RMA read" }, e))?;
            self.rma_in_flight += 1;
            at += n as u64;
        }
        Ok(())
    }

    /// Appliance method: one RMA read after the writes, which completes only
    /// once they reached the pool; waits for every RMA operation.
    fn apm_commit(&mut self) -> Result<()> {
        let p = self.fs().parts[0];
        self.rma(false, p.offset, 1, false)?;
        self.wait_until("waiting for the appliance read", |l, _| {
            l.rma_in_flight == 0
        })?;
        self.apm_dirty = false;
        Ok(())
    }

    /// Sends a drain and waits for its answer, which gives every receive
    /// buffer back.
    fn drain_messages(&mut self) -> Result<Status> {
        let tag = self.send(Op::Drain, 0, 0, 0, false)?;
        let st = self.ack(tag, "waiting for the drain")?;
        self.flushed = false;
        Ok(st)
    }

    /// Makes `offset..offset+len` durable through the daemon, with 8-byte
    /// atomicity unless `relaxed`; returns the first non-Ok status.
    fn persist_through_daemon(
        &mut self,
        op: Op,
        flags: u8,
        offset: u64,
        len: usize,
    ) -> Result<Status> {
        let relaxed = flags & FLAG_RELAXED != 0;
        if len <= self.fs().inline_max as usize {
            let tag = self.send(op, flags, offset, len, true)?;
            return self.ack(tag, "waiting for the persist");
        }
        if relaxed {
            self.rma(true, offset, len, false)?;
            let tag = self.send(op, flags, offset, len, false)?;
            return self.ack(tag, "waiting for the persist");
        }
        // Through the staging area, one chunk per round trip; every chunk
        // but the last ends on an 8-byte boundary of the pool.
        let stage = self.fs().stage.len as usize;
        let mut done = 0usize;
        while done < len {
            let at = offset + done as u64;
            let mut n = (len - done).min(stage);
            if n < len - done {
                n -= ((at + n as u64) % 8) as usize;
            }
            // The previous chunk's answer said the daemon copied it out.
            self.rma(true, at, n, true)?;
            let tag = self.send(op, flags, at, n, false)?;
            let st = self.ack(tag, "waiting for the persist")?;
            if st != Status::Ok {
                return Ok(st);
            }
            done += n;
        }
        Ok(Status::Ok)
    }

    fn check(&self, offset: u64, len: usize) -> Result<()> {
        if self.shared.region.mr.len() < len || offset > (self.shared.region.mr.len() - len) as u64
        {
            return Err(TransportError::Invalid(format!(
                "lane {}: range {offset}+{len} is outside the region",
                self.index
            )));
        }
        Ok(())
    }

    fn apm(&self, flags: u8) -> bool {
        self.fs().persist == PersistMethod::Appliance && flags & FLAG_RELAXED != 0
    }
}

impl InitiatorLane for FabricLane {
    fn persist(&mut self, deep: bool, flags: u8, offset: u64, len: usize) -> Result<Status> {
        self.check(offset, len)?;
        if !deep && self.apm(flags) {
            self.reap()?;
            self.rma(true, offset, len, false)?;
            self.apm_commit()?;
            if self.flushed {
                // Earlier flushes that went through the daemon.
                return self.drain_messages();
            }
            return Ok(Status::Ok);
        }
        if self.apm_dirty {
            self.apm_commit()?;
        }
        let op = if deep { Op::DeepPersist } else { Op::Persist };
        let st = self.persist_through_daemon(op, flags, offset, len)?;
        self.flushed = false;
        Ok(st)
    }

    fn flush(&mut self, flags: u8, offset: u64, len: usize) -> Result<()> {
        self.check(offset, len)?;
        self.reap()?;
        if self.apm(flags) {
            self.rma(true, offset, len, false)?;
            self.apm_dirty = true;
            return Ok(());
        }
        let relaxed = flags & FLAG_RELAXED != 0;
        if len <= self.fs().inline_max as usize {
            self.send(Op::Flush, flags, offset, len, true)?;
        } else if relaxed {
            self.rma(true, offset, len, false)?;
            self.send(Op::Flush, flags, offset, len, false)?;
        } else {
            // The staging area is reused only after an answer, so a large
            // 8-byte-atomic flush is made durable at once.
            let st = self.persist_through_daemon(Op::Persist, flags, offset, len)?;
            if st != Status::Ok {
                return Err(TransportError::Refused {
                    status: st,
                    message: format!("lane {}: the target failed the flush ({st:?})", self.index),
                });
            }
            return Ok(());
        }
        self.flushed = true;
        Ok(())
    }

    fn drain(&mut self) -> Result<Status> {
        self.reap()?;
        if self.apm_dirty {
            self.apm_commit()?;
        }
        if !self.flushed {
            return Ok(Status::Ok);
        }
        self.drain_messages()
    }

    fn release(&mut self) -> Result<()> {
        self.reap()?;
        self.wait_until("waiting for RMA writes to finish", |l, _| {
            l.rma_in_flight == 0
        })?;
        Ok(())
    }

    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<Status> {
        self.check(offset, buf.len())?;
        self.reap()?;
        for (i, chunk) in buf.chunks_mut(BOUNCE_LEN).enumerate() {
            let at = offset + (i * BOUNCE_LEN) as u64;
            self.rma(false, at, chunk.len(), false)?;
            self.wait_until("waiting for an RMA read", |l, _| l.rma_in_flight == 0)?;
            self.msg
                .read(BOUNCE_AT, chunk)
                .map_err(|e| self.err("copying read data", e))?;
        }
        Ok(Status::Ok)
    }

    fn shutdown(&mut self) {
        self.ep.shutdown();
    }
}
