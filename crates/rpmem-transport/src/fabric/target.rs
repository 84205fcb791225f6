//! The target's half of the libfabric transport: the listener (connection
//! requests are admitted or refused by their private data), and one thread
//! per lane.

use std::io;
use std::net::IpAddr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{debug, warn};
use rpmem_fabric::{
    Access, ConnRequest, Domain, Endpoint, Fabric, Hints, Libfabric, Listener, MemoryRegion, OpKind,
};
use rpmem_proto::data::{Ack, Hello, RequestHeader, ACK_LEN, FLAG_RELAXED, HEADER_LEN, HELLO_LEN};
use rpmem_proto::transport::{FabricSession, PersistMethod, RemotePart};
use rpmem_proto::Status;

use super::{INLINE_MAX, RECV_SLOTS, SLOT_LEN, STAGE_LEN};
use crate::target::{
    AdmittedLane, Incoming, LaneAdmission, LaneHandler, PoolMemory, RunningListener, TargetLane,
    TargetListener,
};
use crate::{Result, TransportError};

/// How often waiting threads look at the stop flag.
const STOP_POLL: Duration = Duration::from_millis(100);
/// How long an admitted connection may take to be established.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);
/// Where a lane's acknowledgement is built when the provider cannot inject.
const ACK_AT: usize = RECV_SLOTS * SLOT_LEN;

/// Pool memory that may be registered for RMA.
///
/// # Safety
/// Beyond [`PoolMemory`]'s promise, every span [`StablePool::stable_spans`]
/// returns stays valid for reads and writes (by the NIC or the provider, at
/// any time) for as long as the value lives.
pub unsafe trait StablePool: PoolMemory + Send + Sync {
    /// The pool's memory as (pool offset, span) pieces in offset order.
    fn stable_spans(&self) -> io::Result<Vec<(u64, NonNull<[u8]>)>>;
}

/// How a fabric listener serves its session.
#[derive(Debug, Clone, Copy)]
pub struct FabricOptions<'a> {
    /// The libfabric provider to listen with.
    pub provider: &'a str,
    /// Lanes in the session.
    pub nlanes: u32,
    /// How the initiator's writes become durable.
    pub persist: PersistMethod,
    /// Leading bytes of the pool (its header) peers may read but not write.
    pub read_only: u64,
    /// How long lanes busy-poll before sleeping (verbs only).
    pub spin: Duration,
}

/// A fabric listener with the pool registered, not yet admitting lanes.
pub struct FabricListener {
    // Drop order: registrations close before the domain and before the pool
    // they cover is released.
    listener: Listener,
    stage: Arc<MemoryRegion>,
    _parts: Vec<Arc<MemoryRegion>>,
    domain: Arc<Domain>,
    session: FabricSession,
    port: u16,
    spin: Duration,
    _pool: Arc<dyn StablePool>,
}

impl std::fmt::Debug for FabricListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FabricListener")
            .field("provider", &self.session.provider)
            .field("port", &self.port)
            .finish()
    }
}

fn fabric_err(what: &str, e: rpmem_fabric::Error) -> io::Error {
    io::Error::other(format!("{what}: {e}"))
}

impl FabricListener {
    /// Listens on an ephemeral port of `ip` for the lanes of a session on
    /// `pool`, as `opts` says.
    pub fn bind(
        lib: &Libfabric,
        ip: IpAddr,
        pool: Arc<dyn StablePool>,
        opts: &FabricOptions<'_>,
    ) -> io::Result<FabricListener> {
        let FabricOptions {
            provider,
            nlanes,
            persist,
            read_only,
            spin,
        } = *opts;
        let info = lib
            .getinfo(&Hints::listen(&ip.to_string(), 0).provider(provider))
            .map_err(|e| fabric_err(&format!("provider {provider} on {ip}"), e))?
            .into_iter()
            .next()
            .ok_or_else(|| {
                io::Error::other(format!("provider {provider} offers nothing on {ip}"))
            })?;
        let fabric = Fabric::open(&info).map_err(|e| fabric_err("opening the fabric", e))?;
        let domain = fabric
            .domain()
            .map_err(|e| fabric_err("opening the domain", e))?;
        let mut parts = Vec::new();
        let mut remote = Vec::new();
        for (offset, span) in pool.stable_spans()? {
            let (ptr, len) = (span.cast::<u8>().as_ptr(), span.len());
            // The header, read-only, then the rest.
            let ro = (read_only.saturating_sub(offset) as usize).min(len);
            for (at, n, access) in [
                (0, ro, Access::REMOTE_READ),
                (ro, len - ro, Access::REMOTE_READ | Access::REMOTE_WRITE),
            ] {
                if n == 0 {
                    continue;
                }
                // SAFETY: StablePool promises the span valid as long as the
                // pool, which this listener holds (and drops after the
                // registrations and every lane endpoint).
                let mr = unsafe { domain.register_raw(ptr.wrapping_add(at), n, access) }
                    .map_err(|e| fabric_err("registering the pool", e))?;
                let r = mr.remote();
                remote.push(RemotePart {
                    offset: offset + at as u64,
                    len: n as u64,
                    addr: r.addr,
                    key: r.key,
                    writable: access.contains(Access::REMOTE_WRITE),
                });
                parts.push(mr);
            }
        }
        let stage = domain
            .register(
                STAGE_LEN * nlanes.max(1) as usize,
                Access::LOCAL | Access::REMOTE_WRITE,
            )
            .map_err(|e| fabric_err("registering the staging areas", e))?;
        let s = stage.remote();
        let listener = fabric.listen().map_err(|e| fabric_err("listening", e))?;
        let port = listener
            .local_addr()
            .map_err(|e| fabric_err("listener address", e))?
            .port();
        Ok(FabricListener {
            listener,
            session: FabricSession {
                provider: provider.to_string(),
                persist,
                inline_max: INLINE_MAX as u32,
                recv_slots: RECV_SLOTS as u32,
                stage: RemotePart {
                    offset: 0,
                    len: STAGE_LEN as u64,
                    addr: s.addr,
                    key: s.key,
                    writable: true,
                },
                parts: remote,
            },
            stage,
            _parts: parts,
            domain,
            port,
            spin,
            _pool: pool,
        })
    }

    /// The port initiators connect to.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// What the initiator's lanes need (for the control-channel answer).
    pub fn session(&self) -> &FabricSession {
        &self.session
    }
}

struct Accepting {
    admission: Arc<LaneAdmission>,
    handler: LaneHandler,
    stop: Arc<AtomicBool>,
    lanes: Mutex<Vec<JoinHandle<()>>>,
}

struct Running {
    shared: Arc<Accepting>,
    accept: Option<JoinHandle<FabricListener>>,
}

impl TargetListener for FabricListener {
    fn name(&self) -> &'static str {
        "fabric"
    }

    fn start(
        self: Box<Self>,
        admission: Arc<LaneAdmission>,
        handler: LaneHandler,
    ) -> io::Result<Box<dyn RunningListener>> {
        let shared = Arc::new(Accepting {
            admission,
            handler,
            stop: Arc::new(AtomicBool::new(false)),
            lanes: Mutex::new(Vec::new()),
        });
        let s2 = Arc::clone(&shared);
        let me = *self;
        let accept = thread::Builder::new()
            .name("fabric-accept".into())
            .spawn(move || {
                accept_loop(&me, &s2);
                me
            })?;
        Ok(Box::new(Running {
            shared,
            accept: Some(accept),
        }))
    }
}

impl RunningListener for Running {
    fn stop(mut self: Box<Self>) {
        self.shared.stop.store(true, Ordering::SeqCst);
        let listener = self.accept.take().and_then(|a| a.join().ok());
        let lanes =
            std::mem::take(&mut *self.shared.lanes.lock().unwrap_or_else(|e| e.into_inner()));
        for h in lanes {
            let _ = h.join();
        }
        // Registrations and the pool go only after every lane has ended.
        drop(listener);
    }
}

fn accept_loop(l: &FabricListener, shared: &Arc<Accepting>) {
    while !shared.stop.load(Ordering::SeqCst) {
        let req = match l.listener.next_request(STOP_POLL) {
            Ok(r) => r,
            Err(rpmem_fabric::Error::Timeout(_)) => continue,
            Err(e) => {
                warn!("fabric listener: {e}");
                thread::sleep(STOP_POLL);
                continue;
            }
        };
        // Only the session's initiator (and the networks the administrator
        // allowed) may even try a secret.
        let peers = shared.admission.peers();
        match req.peer_addr() {
            Some(peer) if peers.allows(peer.ip()) => {}
            peer => {
                let from = peer.map_or("an unknown address".to_string(), |p| p.to_string());
                warn!(
                    "fabric connection from {from} refused: not from an allowed address ({peers})"
                );
                if let Err(e) = l.listener.reject(req) {
                    warn!("fabric listener: rejecting: {e}");
                }
                continue;
            }
        }
        let admitted = match admit(&shared.admission, req.private_data()) {
            Ok(a) => a,
            Err(why) => {
                warn!("fabric connection refused: {why}");
                if let Err(e) = l.listener.reject(req) {
                    warn!("fabric listener: rejecting: {e}");
                }
                continue;
            }
        };
        let index = admitted.index();
        match accept_lane(l, req, admitted, &shared.stop) {
            Ok(mut lane) => {
                let handler = Arc::clone(&shared.handler);
                let spawned = thread::Builder::new()
                    .name("fabric-lane".into())
                    .spawn(move || {
                        debug!("lane {index} connected (fabric)");
                        handler(&mut lane);
                        debug!("lane {index} closed");
                    });
                match spawned {
                    Ok(h) => {
                        let mut lanes = shared.lanes.lock().unwrap_or_else(|e| e.into_inner());
                        lanes.retain(|h| !h.is_finished());
                        lanes.push(h);
                    }
                    Err(e) => warn!("lane {index}: cannot start its thread: {e}"),
                }
            }
            Err(e) => warn!("lane {index}: {e}"),
        }
    }
}

/// Checks a connection request's private data: a Hello with the session
/// secret, for a lane not yet connected.
fn admit(admission: &Arc<LaneAdmission>, data: &[u8]) -> std::result::Result<AdmittedLane, String> {
    let raw: &[u8; HELLO_LEN] = data
        .get(..HELLO_LEN)
        .and_then(|d| d.try_into().ok())
        .ok_or_else(|| format!("{} bytes of private data, no hello", data.len()))?;
    let hello = Hello::decode(raw).map_err(|e| e.to_string())?;
    admission.admit(&hello).map_err(|(_, why)| why)
}

fn accept_lane(
    l: &FabricListener,
    req: ConnRequest,
    admitted: AdmittedLane,
    stop: &Arc<AtomicBool>,
) -> std::result::Result<FabricTargetLane, rpmem_fabric::Error> {
    let index = admitted.index();
    let msg = l
        .domain
        .register(RECV_SLOTS * SLOT_LEN + ACK_LEN, Access::LOCAL)?;
    let mut ep = l.domain.accept_endpoint(req)?;
    ep.set_spin(super::lane_spin(&l.session.provider, l.spin));
    for slot in 0..RECV_SLOTS {
        ep.post_recv(&msg, slot * SLOT_LEN, SLOT_LEN, slot as u64)?;
    }
    ep.accept(ACCEPT_TIMEOUT)?;
    Ok(FabricTargetLane {
        ep,
        msg,
        stage: Arc::clone(&l.stage),
        stage_at: index as usize * STAGE_LEN,
        index,
        current: None,
        buf: Vec::new(),
        stop: Arc::clone(stop),
        _admitted: admitted,
    })
}

/// Where the payload of the request being served is.
#[derive(Debug, Clone, Copy)]
enum Payload {
    None,
    /// In the receive slot, after the header.
    Inline,
    /// Already in the pool (a relaxed RMA write).
    Direct,
    /// In the lane's staging area (an 8-byte-atomic RMA write).
    Staged,
}

struct Current {
    slot: usize,
    payload: Payload,
}

/// An admitted lane on the target.
struct FabricTargetLane {
    // Drop order: the endpoint closes before the memory it uses.
    ep: Endpoint,
    msg: Arc<MemoryRegion>,
    stage: Arc<MemoryRegion>,
    stage_at: usize,
    index: u32,
    /// The request being served; its receive slot is posted again once its
    /// payload is taken (before the answer, so that an answered initiator
    /// always finds every slot posted).
    current: Option<Current>,
    buf: Vec<u8>,
    stop: Arc<AtomicBool>,
    _admitted: AdmittedLane,
}

impl FabricTargetLane {
    fn repost(&mut self) -> Result<()> {
        if let Some(c) = self.current.take() {
            self.ep
                .post_recv(&self.msg, c.slot * SLOT_LEN, SLOT_LEN, c.slot as u64)
                .map_err(|e| super::lane_error(self.index, "posting a receive", e))?;
        }
        Ok(())
    }

    /// Classifies a request message of `len` bytes.
    fn payload(h: &RequestHeader, len: usize) -> std::result::Result<Payload, String> {
        let relaxed = h.flags & FLAG_RELAXED != 0;
        if !h.op.has_payload() {
            return if len == HEADER_LEN {
                Ok(Payload::None)
            } else {
                Err(format!("{:?} request of {len} bytes", h.op))
            };
        }
        if len == HEADER_LEN + h.length as usize && h.length as usize <= INLINE_MAX {
            Ok(Payload::Inline)
        } else if len != HEADER_LEN {
            Err(format!(
                "{len}-byte message for a {}-byte payload",
                h.length
            ))
        } else if relaxed {
            Ok(Payload::Direct)
        } else if h.length <= STAGE_LEN as u64 {
            Ok(Payload::Staged)
        } else {
            Err(format!(
                "{}-byte payload is over the staging area",
                h.length
            ))
        }
    }
}

impl TargetLane for FabricTargetLane {
    fn index(&self) -> u32 {
        self.index
    }

    fn next(&mut self) -> Result<Incoming> {
        self.repost()?;
        let c = loop {
            if self.stop.load(Ordering::SeqCst) {
                return Ok(Incoming::Closed);
            }
            match self.ep.wait(STOP_POLL) {
                Ok(c) if c.kind == OpKind::Recv => break c,
                Ok(_) => {}
                Err(rpmem_fabric::Error::Timeout(_)) => {}
                Err(
                    rpmem_fabric::Error::Disconnected(_) | rpmem_fabric::Error::Completion { .. },
                ) => return Ok(Incoming::Closed),
                Err(e) => return Err(super::lane_error(self.index, "waiting for a request", e)),
            }
        };
        let slot = c.token as usize;
        let mut raw = [0u8; HEADER_LEN];
        self.msg
            .read(slot * SLOT_LEN, &mut raw)
            .map_err(|e| super::lane_error(self.index, "reading a request", e))?;
        self.current = Some(Current {
            slot,
            payload: Payload::None,
        });
        if c.len < HEADER_LEN {
            return Ok(Incoming::Malformed {
                tag: 0,
                why: format!("{}-byte request", c.len),
            });
        }
        let h = match RequestHeader::decode(&raw) {
            Ok(h) => h,
            Err(e) => {
                return Ok(Incoming::Malformed {
                    tag: RequestHeader::tag_of(&raw),
                    why: format!("bad request header: {e}"),
                })
            }
        };
        match Self::payload(&h, c.len) {
            Ok(p) => {
                self.current = Some(Current { slot, payload: p });
                Ok(Incoming::Request(h))
            }
            Err(why) => Ok(Incoming::Malformed { tag: h.tag, why }),
        }
    }

    fn receive_payload(
        &mut self,
        mem: &dyn PoolMemory,
        request: &RequestHeader,
        _relaxed: bool,
    ) -> Result<()> {
        let len = request.length as usize;
        let (payload, slot) = match &self.current {
            Some(c) => (c.payload, c.slot),
            None => (Payload::None, 0),
        };
        let read = match payload {
            Payload::None | Payload::Direct => None,
            Payload::Inline => Some((&self.msg, slot * SLOT_LEN + HEADER_LEN)),
            Payload::Staged => Some((&self.stage, self.stage_at)),
        };
        if let Some((mr, at)) = read {
            self.buf.resize(len, 0);
            mr.read(at, &mut self.buf)
                .map_err(|e| super::lane_error(self.index, "taking the payload", e))?;
            mem.write_atomic(request.offset, &self.buf)
                .map_err(|e| TransportError::Failed(format!("writing payload: {e}")))?;
        }
        self.repost()
    }

    fn answer(&mut self, tag: u64, status: Status) -> Result<()> {
        self.repost()?;
        let ack = Ack { tag, status }.encode();
        let r = if self.ep.inject_size() >= ACK_LEN {
            self.ep.inject(&ack)
        } else {
            self.msg
                .write(ACK_AT, &ack)
                .and_then(|_| self.ep.post_send(&self.msg, ACK_AT, ACK_LEN, u64::MAX))
                .and_then(|_| loop {
                    if self.ep.wait(ACCEPT_TIMEOUT)?.kind == OpKind::Send {
                        break Ok(());
                    }
                })
        };
        r.map_err(|e| super::lane_error(self.index, "sending an acknowledgement", e))
    }

    fn send_read(&mut self, _mem: &dyn PoolMemory, _offset: u64, _len: u64) -> Result<()> {
        Err(TransportError::Failed(
            "a read request on a fabric lane (reads are RMA reads)".into(),
        ))
    }

    fn shutdown(&mut self) {
        self.ep.shutdown();
    }
}
