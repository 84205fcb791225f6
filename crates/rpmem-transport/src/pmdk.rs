//! Lanes to PMDK 1.12's rpmemd: PMDK's fabric-level protocol
//! (`rpmem_proto::pmdk::fip`) over libfabric, initiator side.
//!
//! One `FI_EP_MSG` connection per lane, with no private data (PMDK's daemon
//! neither sends nor checks any). The caller's region is registered once and
//! written into the daemon's pool with RMA writes at `raddr + offset`:
//! - general purpose persistency (GPSPM): a persist is the RMA write, then a
//!   persist message naming the range, answered once the daemon made it
//!   durable. A small persist without `RELAXED` carries its bytes inline in
//!   the message instead (up to the inline buffer announced at open, as
//!   PMDK's library does), so the daemon copies them with 8-byte atomicity;
//!   on verbs every persist and flush without `RELAXED` does, in pieces of
//!   that buffer, as PMDK's library does there;
//! - appliance persistency (APM): the RMA write, then an RMA read on the same
//!   connection, which completes only after the write reached the target;
//! - deep persist always goes through a message; reads are RMA reads.
//!
//! Other flushes are RMA writes nobody waits for; a drain makes them durable
//! (a persist message covering every range flushed since, or one RMA read).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rpmem_fabric::{
    Access, Domain, Endpoint, Fabric, Hints, Libfabric, MemoryRegion, OpKind, RemoteMemory,
};
use rpmem_proto::control::Session;
use rpmem_proto::data::FLAG_RELAXED;
use rpmem_proto::pmdk::fip::{Mode, Persist, PersistResp, PERSIST_HDR_LEN, PERSIST_RESP_LEN};
use rpmem_proto::pmdk::obc::IbcAttr;
use rpmem_proto::pmdk::{PersistMethod, Provider};
use rpmem_proto::Status;

use crate::initiator::{Connector, InitiatorLane, LaneOptions};
use crate::{Region, Result, TransportError};

/// The inline buffer we announce: PMDK's librpmem announces two pool
/// headers' worth, 8 KiB, and its daemon sizes its receive buffers by it.
pub const BUFF_SIZE: u64 = rpmem_proto::pmdk::fip::DEFAULT_BUFF_SIZE;
/// Largest bounce buffer a lane registers for reads.
const READ_CHUNK: usize = 1 << 20;
/// Bytes read back after writes under APM.
const RAW_LEN: usize = rpmem_proto::pmdk::fip::RAW_READ_LEN;

const TOK_WRITE: u64 = 1;
const TOK_SEND: u64 = 2;
const TOK_RECV: u64 = 3;
const TOK_READ: u64 = 4;

/// The libfabric provider a PMDK session uses, chosen as PMDK's librpmem
/// chooses it: `verbs` when it reaches `node` and `RPMEM_ENABLE_VERBS` is
/// not 0, else `sockets` when `RPMEM_ENABLE_SOCKETS` is not 0. The error
/// says what was tried and why each was refused.
pub fn choose_provider(
    node: &str,
    enable_verbs: bool,
    enable_sockets: bool,
) -> std::result::Result<Provider, String> {
    let lib = Libfabric::load().map_err(|e| format!("PMDK's protocol needs libfabric: {e}"))?;
    let offered = |p: Provider| lib.getinfo(&Hints::connect(node, 0).provider(p.name()));
    let verbs = if enable_verbs {
        match offered(Provider::Verbs) {
            Ok(_) => return Ok(Provider::Verbs),
            Err(e) => format!("verbs: {e}"),
        }
    } else {
        "verbs: RPMEM_ENABLE_VERBS=0".to_string()
    };
    let sockets = if enable_sockets {
        match offered(Provider::Sockets) {
            Ok(_) => return Ok(Provider::Sockets),
            Err(e) => format!("sockets: {e}"),
        }
    } else {
        "sockets: RPMEM_ENABLE_SOCKETS=0".to_string()
    };
    Err(format!(
        "no libfabric provider for PMDK's protocol to {node} ({verbs}; {sockets})"
    ))
}

/// How long a lane polls its completion queue before sleeping in the
/// provider. `sockets` moves data on its own progress thread: polling only
/// takes the CPU that thread needs (measured on two cores: a 64 B persist's
/// median rose from ~50 µs to ~150 µs and worse with a 100 µs poll), so it
/// sleeps at once, as PMDK's daemon does. On `verbs` the completion queue
/// is the hardware's and polling it is what makes a persist fast.
pub fn spin_for(provider: Provider, spin: Duration) -> Duration {
    match provider {
        Provider::Sockets => Duration::ZERO,
        Provider::Verbs => spin,
    }
}

/// What the lanes of a PMDK session need from its open or create answer.
#[derive(Debug, Clone)]
pub struct PmdkTarget {
    /// Host the daemon's fabric listener is on (the ssh target's host).
    pub node: String,
    /// The provider asked for.
    pub provider: Provider,
    /// The daemon's in-band connection attributes.
    pub ibc: IbcAttr,
    /// The inline buffer announced.
    pub buff_size: u64,
}

/// Where the control channel leaves the [`PmdkTarget`] of the session it
/// opened, for the [`PmdkConnector`] to take.
pub type PmdkSlot = Arc<Mutex<Option<PmdkTarget>>>;

/// Opens the lanes of a session with PMDK's rpmemd.
#[derive(Debug, Default, Clone)]
pub struct PmdkConnector {
    /// Filled by the control channel when the daemon answered.
    pub slot: PmdkSlot,
}

fn fabric_err(lane: u32, what: &str, e: rpmem_fabric::Error) -> TransportError {
    match e {
        rpmem_fabric::Error::Disconnected(m) => {
            TransportError::Closed(format!("lane {lane}: {what}: connection lost: {m}"))
        }
        e => TransportError::Failed(format!("lane {lane}: {what}: {e}")),
    }
}

impl Connector for PmdkConnector {
    fn name(&self) -> &'static str {
        "PMDK fabric"
    }

    fn connect(
        &self,
        session: &Session,
        region: Region,
        options: &LaneOptions,
    ) -> Result<Vec<Box<dyn InitiatorLane>>> {
        let t = self
            .slot
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()
            .ok_or_else(|| TransportError::Protocol("no PMDK session to connect to".into()))?;
        let method = t.ibc.persist_method().ok_or_else(|| {
            TransportError::Protocol(format!(
                "unknown persistency method {}",
                t.ibc.persist_method
            ))
        })?;
        let port = u16::try_from(t.ibc.port)
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| TransportError::Protocol(format!("bad fabric port {}", t.ibc.port)))?;
        let setup = |what: &str, e: rpmem_fabric::Error| {
            TransportError::Failed(format!(
                "{} provider to {}:{port}: {what}: {e}",
                t.provider.name(),
                t.node
            ))
        };
        let lib = Libfabric::load().map_err(|e| setup("loading libfabric", e))?;
        let info = lib
            .getinfo(&Hints::connect(&t.node, port).provider(t.provider.name()))
            .map_err(|e| setup("fi_getinfo", e))?
            .remove(0);
        let max_msg = info.max_msg_size().max(4096);
        let domain = Fabric::open(&info)
            .and_then(|f| f.domain())
            .map_err(|e| setup("opening the domain", e))?;
        // SAFETY: the region stays readable while any lane lives (the
        // promise made to `Region::new`); it is registered for local access
        // only, and the lanes use it only as the source of RMA writes, so
        // neither libfabric nor the peer ever writes into it.
        let local =
            unsafe { domain.register_raw(region.as_ptr().cast_mut(), region.len(), Access::LOCAL) }
                .map_err(|e| setup("registering the region", e))?;
        let remote = RemoteMemory {
            addr: t.ibc.raddr,
            key: t.ibc.rkey,
            len: region.len() as u64,
        };
        let buff_size = t.buff_size as usize;
        let mut lanes: Vec<Box<dyn InitiatorLane>> = Vec::new();
        for index in 0..session.nlanes {
            let msg = domain
                .register(
                    PERSIST_HDR_LEN + buff_size + PERSIST_RESP_LEN,
                    Access::LOCAL,
                )
                .map_err(|e| fabric_err(index, "registering the message buffer", e))?;
            let mut ep = domain
                .endpoint()
                .map_err(|e| fabric_err(index, "making an endpoint", e))?;
            ep.set_spin(spin_for(t.provider, options.spin));
            let resp_at = PERSIST_HDR_LEN + buff_size;
            ep.post_recv(&msg, resp_at, PERSIST_RESP_LEN, TOK_RECV)
                .and_then(|()| ep.connect(&[], options.timeout))
                .map_err(|e| fabric_err(index, "connecting", e))?;
            lanes.push(Box::new(PmdkLane {
                index,
                ep,
                domain: Arc::clone(&domain),
                region,
                local: Arc::clone(&local),
                msg,
                resp_at,
                bounce: None,
                remote,
                method,
                provider: t.provider,
                buff_size,
                max_msg,
                timeout: options.timeout,
                flushed: None,
            }));
        }
        Ok(lanes)
    }
}

/// One connected lane.
struct PmdkLane {
    index: u32,
    ep: Endpoint,
    domain: Arc<Domain>,
    region: Region,
    /// The caller's region, registered: the source of every RMA write.
    local: Arc<MemoryRegion>,
    /// Send buffer (persist message and inline data), then the response slot.
    msg: Arc<MemoryRegion>,
    resp_at: usize,
    /// Destination of RMA reads, grown on demand up to [`READ_CHUNK`].
    bounce: Option<Arc<MemoryRegion>>,
    remote: RemoteMemory,
    method: PersistMethod,
    provider: Provider,
    buff_size: usize,
    max_msg: usize,
    timeout: Duration,
    /// Range written by flushes and not yet made durable (start, end).
    flushed: Option<(u64, u64)>,
}

impl PmdkLane {
    fn fail(&self, what: &str, e: rpmem_fabric::Error) -> TransportError {
        match e {
            rpmem_fabric::Error::Timeout(_) => TransportError::Failed(format!(
                "lane {}: the target did not answer within {} ms ({what})",
                self.index,
                self.timeout.as_millis()
            )),
            e => fabric_err(self.index, what, e),
        }
    }

    /// Waits for the completion of an operation of `kind`; completions of
    /// other operations (writes nobody waits for) are passed over.
    fn await_op(&mut self, kind: OpKind, what: &str) -> Result<usize> {
        let deadline = Instant::now() + self.timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.fail(what, rpmem_fabric::Error::Timeout("waiting")));
            }
            match self.ep.wait_progressing(left) {
                Ok(c) if c.kind == kind => return Ok(c.len),
                Ok(_) => {}
                Err(e) => return Err(self.fail(what, e)),
            }
        }
    }

    /// Posts RMA writes of the range, in pieces the provider takes.
    fn write(&mut self, offset: u64, len: usize) -> Result<()> {
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.max_msg);
            let at = offset + done as u64;
            let local = at as usize;
            self.ep
                .post_write(&self.local, local, n, &self.remote, at, TOK_WRITE)
                .map_err(|e| self.fail("RMA write", e))?;
            done += n;
        }
        Ok(())
    }

    /// Sends a persist message for the range and waits for its answer.
    fn message(&mut self, mode: Mode, offset: u64, len: usize) -> Result<()> {
        let data = if mode == Mode::Send {
            let mut d = vec![0u8; len];
            if !self.region.copy_out(offset, &mut d) {
                return Err(TransportError::Invalid(format!(
                    "range {offset}+{len} is outside the region"
                )));
            }
            d
        } else {
            Vec::new()
        };
        let p = Persist {
            flags: mode as u32,
            lane: self.index,
            addr: self.remote.addr.wrapping_add(offset),
            size: len as u64,
            data,
        };
        let bytes = p.encode();
        self.msg
            .write(0, &bytes)
            .map_err(|e| self.fail("persist message", e))?;
        self.ep
            .post_send(&self.msg, 0, bytes.len(), TOK_SEND)
            .map_err(|e| self.fail("persist message", e))?;
        let (mut sent, mut answered) = (false, false);
        let deadline = Instant::now() + self.timeout;
        while !(sent && answered) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(self.fail("persist", rpmem_fabric::Error::Timeout("waiting")));
            }
            match self.ep.wait_progressing(left) {
                Ok(c) if c.kind == OpKind::Send => sent = true,
                Ok(c) if c.kind == OpKind::Recv => answered = true,
                Ok(_) => {}
                Err(e) => return Err(self.fail("persist", e)),
            }
        }
        let mut raw = [0u8; PERSIST_RESP_LEN];
        self.msg
            .read(self.resp_at, &mut raw)
            .map_err(|e| self.fail("persist answer", e))?;
        self.ep
            .post_recv(&self.msg, self.resp_at, PERSIST_RESP_LEN, TOK_RECV)
            .map_err(|e| self.fail("posting a receive", e))?;
        let resp = PersistResp::decode(&raw)
            .map_err(|e| TransportError::Failed(format!("lane {}: {e}", self.index)))?;
        if resp.lane != self.index {
            return Err(TransportError::Failed(format!(
                "lane {}: the target answered for lane {}",
                self.index, resp.lane
            )));
        }
        Ok(())
    }

    /// Reads back after writes (APM): completes once every earlier write
    /// of this connection reached the target.
    fn read_after_write(&mut self, offset: u64, len: usize) -> Result<()> {
        let n = len.clamp(1, RAW_LEN);
        // Into the send buffer, which no message uses between calls.
        let at = offset.min(self.remote.len.saturating_sub(n as u64));
        self.ep
            .post_read(&self.msg, 0, n, &self.remote, at, TOK_READ)
            .map_err(|e| self.fail("read after write", e))?;
        self.await_op(OpKind::Read, "read after write")?;
        Ok(())
    }

    /// Makes what earlier flushes wrote durable.
    fn settle(&mut self) -> Result<()> {
        let Some((start, end)) = self.flushed.take() else {
            return Ok(());
        };
        match self.method {
            PersistMethod::Gpspm => self.message(Mode::Write, start, (end - start) as usize),
            PersistMethod::Apm => self.read_after_write(start, (end - start) as usize),
        }
    }

    /// Whether a persist or flush without `RELAXED` travels inline: when it
    /// fits the inline buffer, and on verbs always, in pieces of it, as
    /// PMDK's library does (an RDMA write does not promise that an aligned
    /// 8-byte word never appears half-written; the daemon's copy does).
    fn inline(&self, flags: u8, len: usize) -> bool {
        flags & FLAG_RELAXED == 0 && (len <= self.buff_size || self.provider == Provider::Verbs)
    }

    /// Persists the range inline, one message per inline buffer's worth.
    fn inline_persist(&mut self, offset: u64, len: usize) -> Result<()> {
        self.settle()?;
        let mut done = 0;
        while done < len {
            let n = (len - done).min(self.buff_size);
            self.message(Mode::Send, offset + done as u64, n)?;
            done += n;
        }
        Ok(())
    }
}

impl InitiatorLane for PmdkLane {
    fn persist(&mut self, deep: bool, flags: u8, offset: u64, len: usize) -> Result<Status> {
        if len == 0 {
            self.settle()?;
            return Ok(Status::Ok);
        }
        if deep {
            self.write(offset, len)?;
            self.settle()?;
            self.message(Mode::Deep, offset, len)?;
        } else if self.inline(flags, len) {
            self.inline_persist(offset, len)?;
        } else {
            self.write(offset, len)?;
            match self.method {
                PersistMethod::Gpspm => {
                    self.settle()?;
                    self.message(Mode::Write, offset, len)?;
                }
                PersistMethod::Apm => {
                    self.flushed = None;
                    self.read_after_write(offset, len)?;
                }
            }
        }
        Ok(Status::Ok)
    }

    fn flush(&mut self, flags: u8, offset: u64, len: usize) -> Result<()> {
        if len == 0 {
            return Ok(());
        }
        if self.provider == Provider::Verbs && self.inline(flags, len) {
            // Atomicity first: durable at once, as PMDK's flush on verbs.
            return self.inline_persist(offset, len);
        }
        self.write(offset, len)?;
        let end = offset + len as u64;
        self.flushed = Some(match self.flushed {
            Some((s, e)) => (s.min(offset), e.max(end)),
            None => (offset, end),
        });
        Ok(())
    }

    fn drain(&mut self) -> Result<Status> {
        self.settle()?;
        Ok(Status::Ok)
    }

    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<Status> {
        let chunk = buf.len().min(READ_CHUNK);
        if self.bounce.as_ref().is_none_or(|b| b.len() < chunk) {
            let b = self
                .domain
                .register(chunk, Access::LOCAL)
                .map_err(|e| self.fail("registering a read buffer", e))?;
            self.bounce = Some(b);
        }
        let bounce = Arc::clone(self.bounce.as_ref().expect("registered above"));
        for (i, piece) in buf.chunks_mut(chunk).enumerate() {
            let at = offset + (i * chunk) as u64;
            self.ep
                .post_read(&bounce, 0, piece.len(), &self.remote, at, TOK_READ)
                .map_err(|e| self.fail("RMA read", e))?;
            self.await_op(OpKind::Read, "RMA read")?;
            bounce
                .read(0, piece)
                .map_err(|e| self.fail("RMA read", e))?;
        }
        Ok(Status::Ok)
    }

    fn shutdown(&mut self) {
        self.ep.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_never_polls_verbs_polls_as_configured() {
        let spin = Duration::from_micros(100);
        assert_eq!(spin_for(Provider::Sockets, spin), Duration::ZERO);
        assert_eq!(spin_for(Provider::Verbs, spin), spin);
    }

    #[test]
    fn the_provider_is_chosen_as_pmdks_library_chooses_it() {
        if Libfabric::load().is_err() {
            eprintln!("skipping: needs libfabric");
            return;
        }
        // Nothing enabled: the error names both switches.
        let e = choose_provider("127.0.0.1", false, false).unwrap_err();
        assert!(
            e.contains("RPMEM_ENABLE_VERBS=0") && e.contains("RPMEM_ENABLE_SOCKETS=0"),
            "{e}"
        );
        // Verbs excluded: sockets.
        assert_eq!(
            choose_provider("127.0.0.1", false, true),
            Ok(Provider::Sockets)
        );
        // Both allowed: verbs where a device offers it, else sockets, and
        // sockets excluded leaves verbs or an error saying why it is not.
        let have_verbs = Libfabric::load()
            .unwrap()
            .getinfo(&Hints::connect("127.0.0.1", 0).provider("verbs"))
            .is_ok();
        let want = if have_verbs {
            Provider::Verbs
        } else {
            Provider::Sockets
        };
        assert_eq!(choose_provider("127.0.0.1", true, true), Ok(want));
        match choose_provider("127.0.0.1", true, false) {
            Ok(p) => assert!(have_verbs && p == Provider::Verbs),
            Err(e) => assert!(!have_verbs && e.contains("verbs: "), "{e}"),
        }
    }
}
