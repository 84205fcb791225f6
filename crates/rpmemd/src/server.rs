//! The control channel: the session on stdin/stdout.

use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::sync::Arc;

use log::{debug, error, info, warn};
use rpmem_proto::control::{self, PoolRequest, Request, Response, Session, SECRET_LEN};
use rpmem_proto::pmdk::obc;
use rpmem_proto::transport::{PersistMethod, TransportChoice};
use rpmem_proto::{PoolAttr, Status, PROTO_VERSION};
use rpmem_storage::{resolve_name, ErrorKind, Pool, PoolSet, StorageError, HDR_SIZE};
use rpmem_transport::fabric::{FabricListener, FabricOptions};
use rpmem_transport::spin;
use rpmem_transport::target::TargetListener;
use rpmem_transport::tcp::TcpListener;

use crate::error::{DaemonError, Result};
use crate::options::Settings;
use rpmemd::data_server::DataServer;
use rpmemd::pool_memory::PoolMem;

/// The two ends of the ssh session, from `SSH_CONNECTION` (`CLIENT-IP
/// CLIENT-PORT SERVER-IP SERVER-PORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshConnection {
    /// Where the session came from: the initiator, the one address lanes
    /// are accepted from by default.
    pub client: IpAddr,
    /// Where it arrived: the address rpmemd listens on for lanes.
    pub server: IpAddr,
}

/// Parses `SSH_CONNECTION`; rpmemd needs it (there is no other way to know
/// the initiator and the address it reached us at).
pub fn ssh_connection(var: Option<&str>) -> Result<SshConnection> {
    let v = var.ok_or_else(|| {
        DaemonError::Usage(
            "SSH_CONNECTION is not set: rpmemd must be started by sshd (it listens for data connections on the address the session arrived at)".into(),
        )
    })?;
    let fields: Vec<&str> = v.split_whitespace().collect();
    let ip = |i: usize, what: &str| -> Result<IpAddr> {
        let field = fields.get(i).ok_or_else(|| {
            DaemonError::Usage(format!("SSH_CONNECTION '{v}' has no {what} address"))
        })?;
        field.parse().map_err(|_| {
            DaemonError::Usage(format!(
                "SSH_CONNECTION '{v}': '{field}' is not an IP address"
            ))
        })
    };
    Ok(SshConnection {
        server: ip(2, "server")?,
        client: ip(0, "client")?,
    })
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on end of input before the
/// first byte.
pub(crate) fn read_start(input: &mut impl Read, buf: &mut [u8]) -> Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match input.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => {
                return Err(DaemonError::Protocol(
                    "control channel closed mid-message".into(),
                ))
            }
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(DaemonError::io("reading the control channel", e)),
        }
    }
    Ok(true)
}

/// Reads the rest of a message whose start has arrived.
pub(crate) fn read_rest(input: &mut impl Read, buf: &mut [u8]) -> Result<()> {
    input.read_exact(buf).map_err(|e| {
        if e.kind() == io::ErrorKind::UnexpectedEof {
            DaemonError::Protocol("control channel closed mid-message".into())
        } else {
            DaemonError::io("reading the control channel", e)
        }
    })
}

/// Reads one control frame; `Ok(None)` on end of input before a frame.
fn read_frame(input: &mut impl Read) -> Result<Option<Request>> {
    let mut prefix = [0u8; 4];
    if !read_start(input, &mut prefix)? {
        return Ok(None);
    }
    read_frame_after(prefix, input).map(Some)
}

/// Reads the body of the frame whose length prefix has arrived.
fn read_frame_after(prefix: [u8; 4], input: &mut impl Read) -> Result<Request> {
    let body = control::read_body(prefix, input).map_err(|e| match e {
        control::FrameError::Io(e) => DaemonError::io("reading the control channel", e),
        e => DaemonError::Protocol(e.to_string()),
    })?;
    Request::decode(&body).map_err(|e| DaemonError::Protocol(e.to_string()))
}

fn send(out: &mut impl Write, resp: &Response) -> Result<()> {
    out.write_all(&resp.encode())
        .and_then(|_| out.flush())
        .map_err(|e| DaemonError::io("writing the control channel", e))
}

/// A request refused: what the initiator is told.
pub(crate) struct Refusal {
    pub(crate) status: Status,
    pub(crate) message: String,
}

pub(crate) fn refusal(status: Status, message: impl Into<String>) -> Refusal {
    Refusal {
        status,
        message: message.into(),
    }
}

/// Maps a storage failure to a protocol status.
fn storage_status(e: &StorageError) -> Status {
    match e.kind() {
        ErrorKind::NotFound => Status::NoEntry,
        ErrorKind::Exists => Status::Exists,
        ErrorKind::Busy => Status::Busy,
        ErrorKind::Access => Status::Access,
        ErrorKind::NoSpace => Status::NoSpace,
        ErrorKind::BadName => Status::BadName,
        ErrorKind::BadConfig => Status::BadPoolConfig,
        ErrorKind::OutOfRange | ErrorKind::Other => Status::Fatal,
    }
}

pub(crate) fn storage_refusal(set: &str, e: &StorageError) -> Refusal {
    refusal(storage_status(e), format!("pool set '{set}': {e}"))
}

/// A create or open request, whichever came.
struct OpenReq<'a> {
    pool: &'a PoolRequest,
    create: bool,
    attr: Option<PoolAttr>,
}

/// Serves one session: the first request must create or open a pool.
/// Returns the exit status.
pub fn serve(settings: &Settings, ssh: &SshConnection) -> Result<()> {
    let stdin = io::stdin();
    let stdout = io::stdout();
    let mut input = stdin.lock();
    let mut out = stdout.lock();
    // PMDK's rpmemd speaks first: a 4-byte status once it is ready, which
    // PMDK's librpmem waits for before it sends anything. So this daemon
    // does the same, for both protocols, and then tells them apart by the
    // first bytes the initiator sends: a PMDK request starts with its
    // big-endian type, ours with a little-endian length of at most 64 KiB
    // (see `obc::is_request_start`). Our library reads the status after its
    // first request, so the greeting costs no round trip.
    out.write_all(&obc::encode_startup_status(0))
        .and_then(|_| out.flush())
        .map_err(|e| DaemonError::io("writing the control channel", e))?;
    let mut start = [0u8; 4];
    if !read_start(&mut input, &mut start)? {
        info!("the initiator closed the control channel before a request");
        return Ok(());
    }
    if obc::is_request_start(start) {
        return crate::pmdk::serve(settings, ssh, start, &mut input, &mut out);
    }
    let first = read_frame_after(start, &mut input)?;
    let req = match &first {
        Request::Create { pool, attr } => OpenReq {
            pool,
            create: true,
            attr: *attr,
        },
        Request::Open { pool } => OpenReq {
            pool,
            create: false,
            attr: None,
        },
        other => {
            let r = refusal(
                Status::BadProtocol,
                format!("the first request must be create or open, not {other:?}"),
            );
            return fail(&mut out, r);
        }
    };
    let (server, session) = match open_pool(settings, ssh, &req) {
        Ok(x) => x,
        Err(r) => return fail(&mut out, r),
    };
    info!(
        "{} pool set '{}': {} bytes, {} lanes, data on {}:{}",
        if req.create { "created" } else { "opened" },
        req.pool.pool_set,
        session.remote_size,
        session.nlanes,
        session.addr,
        session.port
    );
    if let Err(e) = send(&mut out, &Response::Opened(session)) {
        error!("{e}");
        close(server);
        return Err(e);
    }
    control_loop(&mut input, &mut out, server, &req.pool.pool_set)
}

fn fail(out: &mut impl Write, r: Refusal) -> Result<()> {
    error!("{}", r.message);
    send(
        out,
        &Response::Error {
            status: r.status,
            message: r.message.clone(),
        },
    )?;
    Err(DaemonError::Reported {
        code: r.status.errno(),
        message: r.message,
    })
}

/// Loads the pool set `set_name` names and checks it holds `pool_size`
/// bytes.
pub(crate) fn load_set(
    settings: &Settings,
    set_name: &str,
    pool_size: u64,
) -> std::result::Result<PoolSet, Refusal> {
    let dir = settings
        .poolset_dir()
        .map_err(|e| refusal(Status::Fatal, e.to_string()))?;
    let path = resolve_name(dir, set_name).map_err(|e| storage_refusal(set_name, &e))?;
    let set = PoolSet::load(&path).map_err(|e| storage_refusal(set_name, &e))?;
    let remote_size = set.remote_size();
    if remote_size < pool_size {
        return Err(refusal(
            Status::BadSize,
            format!(
                "pool set '{set_name}' provides {remote_size} bytes, less than the {pool_size} requested"
            ),
        ));
    }
    Ok(set)
}

/// Creates (with `attr`) or opens the pool of `set`.
pub(crate) fn open_storage(
    set: &PoolSet,
    set_name: &str,
    create: bool,
    attr: Option<&PoolAttr>,
) -> std::result::Result<Pool, Refusal> {
    let pool = if create {
        Pool::create(set, attr)
    } else {
        Pool::open(set)
    }
    .map_err(|e| storage_refusal(set_name, &e))?;
    debug!("pool set '{set_name}': persist: {}", pool.persist_method());
    Ok(pool)
}

fn open_pool(
    settings: &Settings,
    ssh: &SshConnection,
    req: &OpenReq<'_>,
) -> std::result::Result<(DataServer, Session), Refusal> {
    let addr = ssh.server;
    if req.pool.version != PROTO_VERSION {
        return Err(refusal(
            Status::BadProtocol,
            format!(
                "protocol version {} is not supported (this rpmemd speaks {PROTO_VERSION})",
                req.pool.version
            ),
        ));
    }
    if req.pool.nlanes == 0 {
        return Err(refusal(Status::BadNlanes, "zero lanes requested"));
    }
    let set = load_set(settings, &req.pool.pool_set, req.pool.pool_size)?;
    let set_name = req.pool.pool_set.as_str();
    // A fabric session needs libfabric here; find out before touching the pool.
    let lib = match &req.pool.transport {
        TransportChoice::Tcp => None,
        TransportChoice::Fabric { provider } => {
            Some(rpmem_fabric::Libfabric::load().map_err(|e| {
                refusal(
                    Status::ProviderUnsupported,
                    format!(
                        "the fabric transport (provider {provider}) is not available here: {e}"
                    ),
                )
            })?)
        }
    };
    let mut secret = [0u8; SECRET_LEN];
    getrandom::getrandom(&mut secret)
        .map_err(|e| refusal(Status::Fatal, format!("no random session secret: {e}")))?;
    let pool = Arc::new(open_storage(&set, set_name, req.create, req.attr.as_ref())?);
    let nlanes = req.pool.nlanes.min(settings.max_lanes);
    let has_header = pool.has_header();
    let attr = pool.attr().unwrap_or_default();
    let size = pool.size();
    let spin = spin::window_from_env(spin::TARGET_SPIN_VAR);
    let (listener, port, fabric): (Box<dyn TargetListener>, u16, _) =
        match (&req.pool.transport, lib) {
            (TransportChoice::Fabric { provider }, Some(lib)) => {
                let persist = persist_method(settings, &pool, set_name);
                let l = FabricListener::bind(
                    &lib,
                    addr,
                    Arc::new(PoolMem(Arc::clone(&pool))),
                    &FabricOptions {
                        provider,
                        nlanes,
                        persist,
                        read_only: if has_header { HDR_SIZE } else { 0 },
                        spin,
                    },
                )
                .map_err(|e| {
                    refusal(
                        Status::ProviderUnsupported,
                        format!("cannot serve provider {provider} on {addr}: {e}"),
                    )
                })?;
                info!(
                    "pool set '{set_name}': transport fabric, provider {provider}, persist {}",
                    match persist {
                        PersistMethod::General => "general",
                        PersistMethod::Appliance => "appliance",
                    }
                );
                let (port, session) = (l.port(), Box::new(l.session().clone()));
                (Box::new(l), port, Some(session))
            }
            _ => {
                let l = TcpListener::bind(addr, spin).map_err(|e| {
                    refusal(
                        Status::Fatal,
                        format!("cannot listen on {addr} for data connections: {e}"),
                    )
                })?;
                let port = l
                    .port()
                    .map_err(|e| refusal(Status::Fatal, format!("listener address: {e}")))?;
                (Box::new(l), port, None)
            }
        };
    let peers = settings.allowed_peers(ssh.client);
    debug!("pool set '{set_name}': lanes accepted from {peers}");
    let server = DataServer::start(listener, pool, secret, nlanes, peers)
        .map_err(|e| refusal(Status::Fatal, format!("cannot start the data server: {e}")))?;
    Ok((
        server,
        Session {
            version: PROTO_VERSION,
            nlanes,
            remote_size: size,
            has_header,
            attr,
            addr: addr.to_string(),
            port,
            secret,
            fabric,
        },
    ))
}

/// The appliance method where asked for (`--persist-apm`) and possible: the
/// initiator's reads then vouch for durability only if data in the pool's
/// memory is durable, i.e. every part is persistent memory (or
/// `RPMEMD_FORCE_PMEM=1` says to treat it so).
fn persist_method(settings: &Settings, pool: &Pool, set_name: &str) -> PersistMethod {
    if !settings.persist_apm {
        return PersistMethod::General;
    }
    if pool.persist_method().is_cache_flush() {
        return PersistMethod::Appliance;
    }
    info!(
        "pool set '{set_name}': persist-apm needs every part to be persistent memory \
         (this pool is synced with msync); using the general method"
    );
    PersistMethod::General
}

/// Stops the data side and releases the pool (locks included). Returns
/// the durability failures no answer reported, as one message.
fn close(server: DataServer) -> Option<String> {
    let stopped = server.stop();
    match stopped.pool {
        Some(pool) => drop(pool),
        None => warn!("the pool was still referenced at close"),
    }
    (!stopped.unreported.is_empty()).then(|| stopped.unreported.join("; "))
}

/// The initiator vanished without a close request: the pool is closed as
/// usual (pending flushes made durable, locks released) and the session ends
/// as abnormal, as PMDK's rpmemd ends it (exit status 1).
fn abandoned(server: DataServer, set_name: &str, why: &str) -> Result<()> {
    warn!("pool set '{set_name}': the initiator went away without closing the pool ({why}); closing it");
    close(server);
    Err(DaemonError::Abandoned)
}

fn control_loop(
    input: &mut impl Read,
    out: &mut impl Write,
    server: DataServer,
    set_name: &str,
) -> Result<()> {
    loop {
        let req = match read_frame(input) {
            Ok(Some(r)) => r,
            Ok(None) => {
                return abandoned(server, set_name, "end of input");
            }
            Err(DaemonError::Io { what, source }) => {
                return abandoned(server, set_name, &format!("{what}: {source}"));
            }
            Err(e) => {
                error!("pool set '{set_name}': {e}; closing");
                close(server);
                return Err(e);
            }
        };
        match req {
            Request::SetAttr { attr } => {
                let resp = match server.pool().set_attr(&attr) {
                    Ok(()) => {
                        debug!("pool set '{set_name}': attributes set");
                        Response::Ok
                    }
                    Err(e) => {
                        let r = storage_refusal(set_name, &e);
                        warn!("{}", r.message);
                        Response::Error {
                            status: r.status,
                            message: r.message,
                        }
                    }
                };
                if let Err(e) = send(out, &resp) {
                    return abandoned(server, set_name, &e.to_string());
                }
            }
            Request::Close => {
                // The initiator may already be gone; the pool is closed either way.
                let Some(lost) = close(server) else {
                    info!("pool set '{set_name}': closed");
                    let _ = send(out, &Response::Ok);
                    return Ok(());
                };
                let r = refusal(
                    Status::Fatal,
                    format!("pool set '{set_name}': closed, but written data may not be durable: {lost}"),
                );
                return fail(out, r);
            }
            req @ (Request::Create { .. } | Request::Open { .. }) => {
                debug_assert!(req.opens_pool());
                let msg = format!("a pool (set '{set_name}') is already open in this session");
                warn!("{msg}");
                if let Err(e) = send(
                    out,
                    &Response::Error {
                        status: Status::BadRequest,
                        message: msg,
                    },
                ) {
                    return abandoned(server, set_name, &e.to_string());
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ssh_connection_fields() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert_eq!(
            ssh_connection(Some("10.0.0.1 5555 10.0.0.2 22")).unwrap(),
            SshConnection {
                client: ip("10.0.0.1"),
                server: ip("10.0.0.2")
            }
        );
        assert_eq!(
            ssh_connection(Some("fd00::9 5555 ::1 22")).unwrap(),
            SshConnection {
                client: ip("fd00::9"),
                server: ip("::1")
            }
        );
        for bad in [
            None,
            Some(""),
            Some("1.2.3.4 5"),
            Some("a b host 22"),
            Some("host 5 1.2.3.4 22"),
        ] {
            let e = ssh_connection(bad).unwrap_err();
            assert_eq!(e.exit_code(), libc::EINVAL);
        }
    }

    #[test]
    fn garbage_frames_are_protocol_errors() {
        let mut zero = &[0u8, 0, 0, 0][..];
        assert!(matches!(
            read_frame(&mut zero),
            Err(DaemonError::Protocol(_))
        ));
        let mut huge = &[0xffu8, 0xff, 0xff, 0x7f, 1][..];
        assert!(matches!(
            read_frame(&mut huge),
            Err(DaemonError::Protocol(_))
        ));
        let mut unknown = &[1u8, 0, 0, 0, 0x55][..];
        assert!(matches!(
            read_frame(&mut unknown),
            Err(DaemonError::Protocol(_))
        ));
        let mut empty = &[][..];
        assert!(matches!(read_frame(&mut empty), Ok(None)));
        let mut cut = &[5u8, 0][..];
        assert!(matches!(
            read_frame(&mut cut),
            Err(DaemonError::Protocol(_))
        ));
    }
}
