//! Sessions of PMDK 1.12's librpmem: its requests on the ssh channel, and its
//! lanes on libfabric.
//!
//! PMDK's lanes write into the pool with RMA. Under the general method
//! (GPSPM, the default) they send a persist message per persist; the daemon
//! makes the range durable and answers, and the pool is registered from the
//! end of its header (when it has one) to its end, so RMA into the header
//! fails in the provider. Under the appliance method (`--persist-apm`,
//! granted only on persistent memory or with `RPMEMD_FORCE_PMEM=1`) the
//! client reads after its writes at the pool's first byte, so the whole pool
//! is registered, header included, as PMDK's rpmemd does; the daemon then
//! only serves inline and deep persists. Every persist message is checked
//! (lane, range, header) before anything touches the pool. A pool set of
//! several parts is mapped again at one address for them. PMDK's
//! connections carry no secret: a request from another address than the ssh
//! session's client (or `--allow-from`) is rejected before it is accepted,
//! but anyone who can connect from there while the session is open can
//! connect a lane (up to the lanes granted).

use std::io::{Read, Write};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use log::{debug, error, info, warn};
use rpmem_fabric::{Access, Domain, Endpoint, Fabric, Hints, Libfabric, Listener, MemoryRegion};
use rpmem_proto::pmdk::fip::{Mode, Persist, PersistResp, PERSIST_HDR_LEN};
use rpmem_proto::pmdk::obc::{self, Common, IbcAttr, Request, Response, CLOSE_REMOVE};
use rpmem_proto::pmdk::{PersistMethod, Provider, Status as PStatus, PROTO_MAJOR, PROTO_MINOR};
use rpmem_proto::{PoolAttr, Status};
use rpmem_storage::{Pool, PoolSet, PoolView, Range};
use rpmem_transport::pmdk::spin_for;
use rpmem_transport::spin;
use rpmem_transport::target::AllowedPeers;

use crate::error::{DaemonError, Result};
use crate::options::Settings;
use crate::server::{
    load_set, open_storage, read_rest, read_start, refusal, Refusal, SshConnection,
};

/// Size of the pool header PMDK's clients never write.
const HDR_LEN: u64 = 4096;
/// Largest inline persist buffer a client may ask for (PMDK's asks 8 KiB).
const MAX_BUFF_SIZE: u64 = 1 << 20;
/// How often waiting threads look at the stop flag.
const POLL: Duration = Duration::from_millis(100);
/// How long an accepted connection may take to be established.
const ACCEPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Reads the request whose first four bytes are `start`.
fn read_request(start: [u8; 4], input: &mut impl Read) -> Result<Request> {
    let mut hdr = [0u8; obc::MSG_HDR_LEN];
    hdr[..4].copy_from_slice(&start);
    read_rest(input, &mut hdr[4..])?;
    let (_, size) = obc::request_len(hdr).map_err(|e| DaemonError::Protocol(e.to_string()))?;
    let mut msg = vec![0u8; size];
    msg[..obc::MSG_HDR_LEN].copy_from_slice(&hdr);
    read_rest(input, &mut msg[obc::MSG_HDR_LEN..])?;
    Request::decode(&msg).map_err(|e| DaemonError::Protocol(e.to_string()))
}

fn send(out: &mut impl Write, resp: &Response) -> Result<()> {
    out.write_all(&resp.encode())
        .and_then(|_| out.flush())
        .map_err(|e| DaemonError::io("writing the control channel", e))
}

/// The answer to `req` carrying `status` and nothing else.
fn bare_answer(req: &Request, status: PStatus) -> Response {
    match req {
        Request::Create { .. } => Response::Create {
            status,
            ibc: IbcAttr::default(),
        },
        Request::Open { .. } => Response::Open {
            status,
            ibc: IbcAttr::default(),
            attr: PoolAttr::default(),
        },
        Request::Close { .. } => Response::Close { status },
        Request::SetAttr { .. } => Response::SetAttr { status },
    }
}

/// Reports a refused create or open and ends the session.
fn fail(out: &mut impl Write, req: &Request, r: Refusal) -> Result<()> {
    error!("{}", r.message);
    send(out, &bare_answer(req, PStatus::from_ours(r.status)))?;
    Err(DaemonError::Reported {
        code: r.status.errno(),
        message: r.message,
    })
}

/// Serves a PMDK session whose first request starts with `start`.
pub fn serve(
    settings: &Settings,
    ssh: &SshConnection,
    start: [u8; 4],
    input: &mut impl Read,
    out: &mut impl Write,
) -> Result<()> {
    let addr = ssh.server;
    let first = read_request(start, input)?;
    info!("session of PMDK's librpmem (PMDK protocol {PROTO_MAJOR}.{PROTO_MINOR})");
    let (common, attr, set_name, create) = match &first {
        Request::Create {
            common,
            attr,
            pool_desc,
        } => (common, (!attr.is_zero()).then_some(*attr), pool_desc, true),
        Request::Open { common, pool_desc } => (common, None, pool_desc, false),
        other => {
            let r = refusal(
                Status::Fatal,
                format!("the first request must be create or open, not {other:?}"),
            );
            return fail(out, other, r);
        }
    };
    let (session, ibc) = match open(settings, ssh, common, set_name, create, attr.as_ref()) {
        Ok(x) => x,
        Err(r) => return fail(out, &first, r),
    };
    info!(
        "{} pool set '{set_name}' for PMDK's librpmem: {} bytes, {} lanes, {} provider on {addr}:{}, {:?}",
        if create { "created" } else { "opened" },
        session.pool.size(),
        ibc.nlanes,
        session.provider.name(),
        ibc.port,
        session.method,
    );
    let answer = if create {
        Response::Create {
            status: PStatus::Success,
            ibc,
        }
    } else {
        Response::Open {
            status: PStatus::Success,
            ibc,
            attr: session.pool.attr().unwrap_or_default(),
        }
    };
    if let Err(e) = send(out, &answer) {
        error!("{e}");
        session.stop();
        return Err(e);
    }
    control_loop(input, out, session, set_name, create)
}

fn open(
    settings: &Settings,
    ssh: &SshConnection,
    c: &Common,
    set_name: &str,
    create: bool,
    attr: Option<&PoolAttr>,
) -> std::result::Result<(FabricSession, IbcAttr), Refusal> {
    if (c.major, c.minor) != (PROTO_MAJOR, PROTO_MINOR) {
        return Err(refusal(
            Status::BadProtocol,
            format!(
                "PMDK protocol version {}.{} is not supported (this rpmemd speaks {PROTO_MAJOR}.{PROTO_MINOR})",
                c.major, c.minor
            ),
        ));
    }
    let provider = c.provider().ok_or_else(|| {
        refusal(
            Status::BadProvider,
            format!("unknown provider {}", c.provider),
        )
    })?;
    if c.nlanes == 0 {
        return Err(refusal(Status::BadNlanes, "zero lanes requested"));
    }
    if c.buff_size > MAX_BUFF_SIZE {
        return Err(refusal(
            Status::Fatal,
            format!(
                "inline persist buffer of {} bytes is over the {MAX_BUFF_SIZE} allowed",
                c.buff_size
            ),
        ));
    }
    let set = load_set(settings, set_name, c.pool_size)?;
    let listening = listen(ssh.server, provider)?;
    let pool = open_storage(&set, set_name, create, attr)?;
    let nlanes = c.nlanes.min(settings.max_lanes);
    let method = if !settings.persist_apm {
        PersistMethod::Gpspm
    } else if pool.persist_method().is_cache_flush() {
        PersistMethod::Apm
    } else {
        info!(
            "pool set '{set_name}': persist-apm needs persistent memory (or \
             RPMEMD_FORCE_PMEM=1); PMDK's librpmem gets the general method"
        );
        PersistMethod::Gpspm
    };
    let peers = settings.allowed_peers(ssh.client);
    FabricSession::start(listening, pool, set, nlanes, c.buff_size, method, peers)
        .map_err(|e| refusal(Status::Fatal, e))
}

fn control_loop(
    input: &mut impl Read,
    out: &mut impl Write,
    session: FabricSession,
    set_name: &str,
    created: bool,
) -> Result<()> {
    loop {
        let mut start = [0u8; 4];
        let req = match read_start(input, &mut start)
            .and_then(|more| more.then(|| read_request(start, input)).transpose())
        {
            Ok(Some(r)) => r,
            Ok(None) | Err(DaemonError::Io { .. }) => {
                // As PMDK's rpmemd: an abnormal end, exit status 1.
                warn!("pool set '{set_name}': the initiator went away without closing the pool; closing it");
                session.stop();
                return Err(DaemonError::Abandoned);
            }
            Err(e) => {
                error!("pool set '{set_name}': {e}; closing");
                session.stop();
                return Err(e);
            }
        };
        let answer = match &req {
            Request::SetAttr { attr } => match session.pool.set_attr(attr) {
                Ok(()) => {
                    debug!("pool set '{set_name}': attributes set");
                    Response::SetAttr {
                        status: PStatus::Success,
                    }
                }
                Err(e) => {
                    let r = crate::server::storage_refusal(set_name, &e);
                    warn!("{}", r.message);
                    Response::SetAttr {
                        status: PStatus::from_ours(r.status),
                    }
                }
            },
            Request::Close { flags } => {
                let set_path = session.set_path.clone();
                session.stop();
                let mut status = PStatus::Success;
                if created && flags & CLOSE_REMOVE != 0 {
                    if let Err(e) = rpmem_storage::remove(&set_path, true, false) {
                        error!("pool set '{set_name}': removing at close: {e}");
                        status = PStatus::Fatal;
                    }
                }
                info!("pool set '{set_name}': closed");
                // The initiator may already be gone; the pool is closed either way.
                let _ = send(out, &Response::Close { status });
                return Ok(());
            }
            other => {
                warn!("pool set '{set_name}': a pool is already open in this session");
                bare_answer(other, PStatus::Fatal)
            }
        };
        if let Err(e) = send(out, &answer) {
            info!("{e}; closing");
            session.stop();
            return Ok(());
        }
    }
}

/// A fabric listener for `provider` on `addr`, not yet accepting.
struct Listening {
    provider: Provider,
    domain: Arc<Domain>,
    listener: Listener,
    port: u16,
}

fn listen(addr: IpAddr, provider: Provider) -> std::result::Result<Listening, Refusal> {
    let unsupported = |what: String| {
        refusal(
            Status::ProviderUnsupported,
            format!("libfabric provider '{}': {what}", provider.name()),
        )
    };
    let lib = Libfabric::load().map_err(|e| unsupported(e.to_string()))?;
    let info = lib
        .getinfo(&Hints::listen(&addr.to_string(), 0).provider(provider.name()))
        .map_err(|e| unsupported(e.to_string()))?
        .into_iter()
        .next()
        .ok_or_else(|| unsupported(format!("nothing offered on {addr}")))?;
    let fabric = Fabric::open(&info).map_err(|e| unsupported(e.to_string()))?;
    let domain = fabric.domain().map_err(|e| unsupported(e.to_string()))?;
    let listener = fabric.listen().map_err(|e| unsupported(e.to_string()))?;
    let port = listener
        .local_addr()
        .map_err(|e| unsupported(e.to_string()))?
        .port();
    Ok(Listening {
        provider,
        domain,
        listener,
        port,
    })
}

/// What every lane of a session shares.
struct Shared {
    pool: Arc<Pool>,
    stop: AtomicBool,
    /// Lanes established so far.
    lanes: AtomicU32,
    /// Address the client adds pool offsets to.
    raddr: u64,
    nlanes: u32,
    buff_size: u64,
    has_header: bool,
    /// Where lanes may connect from (PMDK's carry no secret).
    peers: AllowedPeers,
    /// How long a lane polls before sleeping in the provider.
    spin: Duration,
}

/// The fabric side of a PMDK session: the registered pool, the thread that
/// accepts lanes and one thread per lane.
struct FabricSession {
    pool: Arc<Pool>,
    set_path: PathBuf,
    provider: Provider,
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
    acceptor: JoinHandle<()>,
    /// Registration of the pool; dropped after every endpoint that used it.
    mr: Arc<MemoryRegion>,
    /// The pool at one address when it has several parts; unmapped after
    /// the registration.
    view: Option<PoolView>,
    method: PersistMethod,
}

impl FabricSession {
    fn start(
        l: Listening,
        pool: Pool,
        set: PoolSet,
        nlanes: u32,
        buff_size: u64,
        method: PersistMethod,
        peers: AllowedPeers,
    ) -> std::result::Result<(FabricSession, IbcAttr), String> {
        let size = pool.size();
        let mut spans = Vec::new();
        pool.spans(0, size, |s| {
            spans.push(s);
            Ok(())
        })
        .map_err(|e| format!("pool memory: {e}"))?;
        // PMDK's clients address the pool at one address: a pool set of
        // several parts is mapped again as one view for them.
        let (base, view) = match spans[..] {
            [span] => (span.as_ptr().cast::<u8>(), None),
            _ => {
                let view = pool.contiguous().map_err(|e| {
                    format!(
                        "PMDK's clients need the {} parts at one address: {e}",
                        spans.len()
                    )
                })?;
                (view.span().as_ptr().cast::<u8>(), Some(view))
            }
        };
        let has_header = pool.has_header();
        // Under the general method the header is not registered, so RMA
        // into it fails; appliance clients read after their writes at the
        // pool's first byte, so there the whole pool is registered.
        let skip = if has_header && method == PersistMethod::Gpspm {
            HDR_LEN
        } else {
            0
        };
        // SAFETY: `base..base+size` is the live mapping of the pool (or its
        // view), which `Shared` (an Arc of the pool) and `view` keep open
        // until `stop` has joined every thread that owns an endpoint and
        // dropped the region; `skip` is inside it.
        let mr = unsafe {
            l.domain.register_raw(
                base.add(skip as usize),
                (size - skip) as usize,
                Access::LOCAL | Access::REMOTE_READ | Access::REMOTE_WRITE,
            )
        }
        .map_err(|e| format!("registering the pool with libfabric: {e}"))?;
        let remote = mr.remote();
        let raddr = remote.addr.wrapping_sub(skip);
        let pool = Arc::new(pool);
        let shared = Arc::new(Shared {
            pool: Arc::clone(&pool),
            stop: AtomicBool::new(false),
            lanes: AtomicU32::new(0),
            raddr,
            nlanes,
            buff_size,
            has_header,
            peers,
            spin: spin_for(l.provider, spin::window_from_env(spin::TARGET_SPIN_VAR)),
        });
        let threads = Arc::new(Mutex::new(Vec::new()));
        let acceptor = {
            let (shared, threads, domain) = (
                Arc::clone(&shared),
                Arc::clone(&threads),
                Arc::clone(&l.domain),
            );
            let listener = l.listener;
            thread::Builder::new()
                .name("pmdk-accept".into())
                .spawn(move || accept_lanes(&listener, &domain, &shared, &threads))
                .map_err(|e| format!("starting the accepting thread: {e}"))?
        };
        let ibc = IbcAttr {
            port: l.port.into(),
            persist_method: method as u32,
            rkey: remote.key,
            raddr,
            nlanes,
        };
        Ok((
            FabricSession {
                pool,
                set_path: set.path,
                provider: l.provider,
                shared,
                threads,
                acceptor,
                mr,
                view,
                method,
            },
            ibc,
        ))
    }

    /// Ends every lane and the listener, waits for their threads, then
    /// releases the registration and the pool (locks included).
    fn stop(self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        let _ = self.acceptor.join();
        let lanes = std::mem::take(&mut *self.threads.lock().unwrap_or_else(|e| e.into_inner()));
        for t in lanes {
            let _ = t.join();
        }
        drop(self.mr);
        drop(self.view);
        drop(self.shared);
        if Arc::try_unwrap(self.pool).is_err() {
            warn!("the pool was still referenced at close");
        }
    }
}

fn accept_lanes(
    listener: &Listener,
    domain: &Arc<Domain>,
    shared: &Arc<Shared>,
    threads: &Mutex<Vec<JoinHandle<()>>>,
) {
    let mut conns = 0u32;
    while !shared.stop.load(Ordering::Relaxed) {
        let req = match listener.next_request(POLL) {
            Ok(r) => r,
            Err(rpmem_fabric::Error::Timeout(_)) => continue,
            Err(e) => {
                error!("PMDK lanes: waiting for connections: {e}");
                return;
            }
        };
        conns = conns.wrapping_add(1);
        let peer = req.peer_addr();
        if !peer.is_some_and(|p| shared.peers.allows(p.ip())) {
            warn!(
                "PMDK lanes: refused a connection from {}: not from an allowed address ({})",
                peer.map_or_else(|| "an unknown address".into(), |p| p.to_string()),
                shared.peers
            );
            let _ = listener.reject(req);
            continue;
        }
        if shared.lanes.load(Ordering::Relaxed) >= shared.nlanes {
            warn!(
                "PMDK lanes: refused a connection past the {} lanes granted",
                shared.nlanes
            );
            let _ = listener.reject(req);
            continue;
        }
        // An endpoint stays on the thread that made it.
        let (domain, shared) = (Arc::clone(domain), Arc::clone(shared));
        let spawned = thread::Builder::new()
            .name(format!("pmdk-conn-{conns}"))
            .spawn(move || match Lane::accept(&domain, req, &shared) {
                Ok(lane) => lane.serve(),
                Err(e) => warn!("PMDK lanes: accepting a connection: {e}"),
            });
        match spawned {
            Ok(t) => threads.lock().unwrap_or_else(|e| e.into_inner()).push(t),
            Err(e) => error!("PMDK lanes: starting a lane thread: {e}"),
        }
    }
}

/// One accepted connection and its receive buffer.
struct Lane {
    ep: Endpoint,
    buf: Arc<MemoryRegion>,
    shared: Arc<Shared>,
}

impl Lane {
    fn accept(
        domain: &Arc<Domain>,
        req: rpmem_fabric::ConnRequest,
        shared: &Arc<Shared>,
    ) -> rpmem_fabric::Result<Lane> {
        let mut ep = domain.accept_endpoint(req)?;
        ep.set_spin(shared.spin);
        let buf = domain.register(PERSIST_HDR_LEN + shared.buff_size as usize, Access::LOCAL)?;
        ep.post_recv(&buf, 0, buf.len(), 0)?;
        ep.accept(ACCEPT_TIMEOUT)?;
        Ok(Lane {
            ep,
            buf,
            shared: Arc::clone(shared),
        })
    }

    fn serve(mut self) {
        // Only established connections count against the lanes granted (a
        // connection that failed to be accepted takes no slot).
        if self.shared.lanes.fetch_add(1, Ordering::Relaxed) >= self.shared.nlanes {
            warn!(
                "PMDK lanes: dropped a connection past the {} lanes granted",
                self.shared.nlanes
            );
            self.ep.shutdown();
            return;
        }
        let mut msg = vec![0u8; self.buf.len()];
        while !self.shared.stop.load(Ordering::Relaxed) {
            let done = match self.ep.wait_progressing(POLL) {
                Ok(c) => c,
                Err(rpmem_fabric::Error::Timeout(_)) => continue,
                Err(e) => {
                    info!("PMDK lane: {e}");
                    break;
                }
            };
            if done.kind != rpmem_fabric::OpKind::Recv {
                continue;
            }
            let got = &mut msg[..done.len];
            if let Err(e) = self.buf.read(0, got) {
                error!("PMDK lane: reading the receive buffer: {e}");
                break;
            }
            let p = match self.check(got) {
                Ok(p) => p,
                Err(why) => {
                    warn!("PMDK lane: refused persist: {why}; dropping the lane");
                    break;
                }
            };
            if let Err(e) = self.persist(&p) {
                error!("PMDK lane: {e}; dropping the lane");
                break;
            }
            let resp = PersistResp {
                flags: 0,
                lane: p.lane,
            };
            if let Err(e) = self
                .ep
                .post_recv(&self.buf, 0, self.buf.len(), 0)
                .and_then(|_| self.ep.inject(&resp.encode()))
            {
                info!("PMDK lane: {e}");
                break;
            }
        }
        self.ep.shutdown();
    }

    /// Decodes and validates a persist message; returns it with its pool
    /// offset in `addr`.
    fn check(&self, raw: &[u8]) -> std::result::Result<Persist, String> {
        let s = &self.shared;
        let mut p = Persist::decode(raw, s.buff_size).map_err(|e| e.to_string())?;
        if p.lane >= s.nlanes {
            return Err(format!("lane {} of {}", p.lane, s.nlanes));
        }
        let off = p
            .offset_in(s.raddr, s.pool.size())
            .ok_or_else(|| format!("range 0x{:x}+{} is outside the pool", p.addr, p.size))?;
        if s.has_header && off < HDR_LEN && p.size > 0 {
            return Err(format!("offset {off} is inside the pool header"));
        }
        p.addr = off;
        Ok(p)
    }

    fn persist(&self, p: &Persist) -> std::result::Result<(), rpmem_storage::StorageError> {
        let pool = &self.shared.pool;
        if p.mode() == Mode::Send {
            pool.write(p.addr, &p.data)?;
        }
        let mut range = [Range {
            offset: p.addr,
            len: p.size,
        }];
        pool.persist(&mut range, p.mode() == Mode::Deep)
    }
}
