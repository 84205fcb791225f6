//! The safe API over [`crate::sys`].

use crate::error::{Error, Result};
use crate::ffi;
use crate::sys::{self, CqEvent, EqEvent, OpKind};
use std::collections::VecDeque;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The loaded libfabric.
#[derive(Clone)]
pub struct Libfabric {
    lib: Arc<sys::Lib>,
}

impl std::fmt::Debug for Libfabric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (major, minor) = self.version();
        write!(f, "Libfabric({major}.{minor})")
    }
}

impl Libfabric {
    /// The library loaded by [`Libfabric::load`].
    pub const DEFAULT_LIBRARY: &'static str = "libfabric.so.1";

    /// Loads `libfabric.so.1` from the dynamic loader's search path.
    pub fn load() -> Result<Libfabric> {
        Self::load_from(Self::DEFAULT_LIBRARY)
    }

    /// Loads libfabric from `name` (a soname or a path).
    pub fn load_from(name: &str) -> Result<Libfabric> {
        Ok(Libfabric {
            lib: Arc::new(sys::Lib::load(name)?),
        })
    }

    /// The loaded library's API version, (major, minor).
    pub fn version(&self) -> (u16, u16) {
        let v = self.lib.version();
        ((v >> 16) as u16, (v & 0xffff) as u16)
    }

    /// What the providers offer for `hints`, best first as libfabric orders
    /// them. No match is an error (`fi_getinfo`'s ENODATA).
    pub fn getinfo(&self, hints: &Hints) -> Result<Vec<Info>> {
        let spec = sys::HintSpec {
            provider: hints.provider.as_deref(),
            caps: ffi::FI_MSG | ffi::FI_RMA,
            mode: ffi::FI_CONTEXT | ffi::FI_CONTEXT2 | ffi::FI_RX_CQ_DATA,
            mr_mode: MrMode::SUPPORTED.bits(),
            msg_order: ffi::FI_ORDER_SAW | ffi::FI_ORDER_RAW | ffi::FI_ORDER_RMA_RAW,
        };
        let service = hints.port.map(|p| p.to_string());
        let flags = if hints.listen { ffi::FI_SOURCE } else { 0 };
        let list = sys::getinfo(
            &self.lib,
            &spec,
            hints.node.as_deref(),
            service.as_deref(),
            flags,
        )?;
        Ok(list.into_iter().map(Info::new).collect())
    }
}

/// What to ask `fi_getinfo` for: always `FI_EP_MSG` endpoints with `FI_MSG`
/// and `FI_RMA`, thread-safe domains, the memory registration modes this
/// crate handles ([`MrMode::SUPPORTED`]), and ordering at the target of a
/// send or an RMA read after the RMA writes posted before it on the same
/// endpoint (`FI_ORDER_SAW`, `FI_ORDER_RAW`): a message announcing written
/// data, or a read that proves it arrived, can follow the writes at once.
#[derive(Debug, Clone, Default)]
pub struct Hints {
    provider: Option<String>,
    node: Option<String>,
    port: Option<u16>,
    listen: bool,
}

impl Hints {
    /// To connect to `node` (an address or host name) on `port`.
    pub fn connect(node: &str, port: u16) -> Hints {
        Hints {
            node: Some(node.to_string()),
            port: Some(port),
            ..Default::default()
        }
    }

    /// To listen on `node` (a local address), on `port` (0: any free port).
    pub fn listen(node: &str, port: u16) -> Hints {
        Hints {
            node: Some(node.to_string()),
            port: Some(port),
            listen: true,
            ..Default::default()
        }
    }

    /// Only this provider (e.g. `tcp`, `sockets`, `verbs`).
    pub fn provider(mut self, name: &str) -> Hints {
        self.provider = Some(name.to_string());
        self
    }
}

bitflags::bitflags! {
    /// A domain's memory registration requirements (`mr_mode`).
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MrMode: i32 {
        /// Local buffers of operations must be registered (descriptors passed).
        const LOCAL = ffi::FI_MR_LOCAL;
        /// Keys are raw (not handled: such providers are not offered).
        const RAW = ffi::FI_MR_RAW;
        /// RMA addresses are virtual addresses, not offsets into the region.
        const VIRT_ADDR = ffi::FI_MR_VIRT_ADDR;
        /// Registered memory must be backed by allocated pages.
        const ALLOCATED = ffi::FI_MR_ALLOCATED;
        /// The provider chooses the key.
        const PROV_KEY = ffi::FI_MR_PROV_KEY;
        /// Registrations bind to endpoints (not handled: not offered).
        const ENDPOINT = ffi::FI_MR_ENDPOINT;
    }
}

impl MrMode {
    /// The modes this crate handles, sent as the hints' `mr_mode` so that
    /// providers needing others are not offered.
    pub const SUPPORTED: MrMode = MrMode::LOCAL
        .union(MrMode::VIRT_ADDR)
        .union(MrMode::ALLOCATED)
        .union(MrMode::PROV_KEY);

    /// The RMA address of byte 0 of a region at `base`: the virtual address
    /// with `VIRT_ADDR`, else 0 (addresses are offsets into the region).
    pub fn remote_base(self, base: usize) -> u64 {
        if self.contains(MrMode::VIRT_ADDR) {
            base as u64
        } else {
            0
        }
    }

    /// The key to request at registration: any value under `PROV_KEY` (the
    /// provider picks), else our own, unique within the domain.
    pub fn requested_key(self, ours: u64) -> u64 {
        if self.contains(MrMode::PROV_KEY) {
            0
        } else {
            ours
        }
    }
}

/// One answer of `fi_getinfo`: a provider, fabric and domain, with the
/// endpoint's attributes and addresses.
pub struct Info {
    raw: sys::Info,
    fields: sys::InfoFields,
}

impl std::fmt::Debug for Info {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Info")
            .field("provider", &self.fields.provider)
            .field("fabric", &self.fields.fabric)
            .field("domain", &self.fields.domain)
            .field("mr_mode", &self.mr_mode())
            .field("src", &self.src_addr())
            .field("dest", &self.dest_addr())
            .finish()
    }
}

/// Decodes a `sockaddr_in`/`sockaddr_in6` as libfabric stores it.
fn sockaddr(bytes: &[u8]) -> Option<SocketAddr> {
    let family = u16::from_ne_bytes(bytes.get(0..2)?.try_into().ok()?) as i32;
    let port = u16::from_be_bytes(bytes.get(2..4)?.try_into().ok()?);
    match family {
        libc::AF_INET => {
            let a: [u8; 4] = bytes.get(4..8)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V4(Ipv4Addr::from(a)), port))
        }
        libc::AF_INET6 => {
            let a: [u8; 16] = bytes.get(8..24)?.try_into().ok()?;
            Some(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(a)), port))
        }
        _ => None,
    }
}

impl Info {
    fn new(raw: sys::Info) -> Info {
        let fields = raw.fields();
        Info { raw, fields }
    }

    /// An independent copy.
    pub fn try_clone(&self) -> Result<Info> {
        Ok(Info::new(self.raw.dup()?))
    }

    /// The provider's name (`tcp`, `sockets`, `verbs`, ...).
    pub fn provider(&self) -> &str {
        &self.fields.provider
    }

    /// The fabric's name (e.g. `127.0.0.1/32`).
    pub fn fabric_name(&self) -> &str {
        &self.fields.fabric
    }

    /// The domain's name (e.g. `lo`, `mlx5_0`).
    pub fn domain_name(&self) -> &str {
        &self.fields.domain
    }

    /// What the domain needs for memory registration.
    pub fn mr_mode(&self) -> MrMode {
        MrMode::from_bits_retain(self.fields.mr_mode)
    }

    /// Largest send the provider copies at once ([`Endpoint::inject`]).
    pub fn inject_size(&self) -> usize {
        self.fields.inject_size
    }

    /// Transmit queue depth.
    pub fn tx_size(&self) -> usize {
        self.fields.tx_size
    }

    /// Receive queue depth.
    pub fn rx_size(&self) -> usize {
        self.fields.rx_size
    }

    /// Largest message or RMA transfer.
    pub fn max_msg_size(&self) -> usize {
        self.fields.max_msg_size
    }

    /// The local address (a listener's, with its port once bound).
    pub fn src_addr(&self) -> Option<SocketAddr> {
        sockaddr(&self.fields.src_addr)
    }

    /// The peer's address.
    pub fn dest_addr(&self) -> Option<SocketAddr> {
        sockaddr(&self.fields.dest_addr)
    }
}

/// An open fabric, tied to the [`Info`] it was opened on.
pub struct Fabric {
    h: sys::FabricH,
    info: Info,
}

impl Fabric {
    /// Opens the fabric `info` names.
    pub fn open(info: &Info) -> Result<Arc<Fabric>> {
        Ok(Arc::new(Fabric {
            h: sys::FabricH::open(&info.raw)?,
            info: info.try_clone()?,
        }))
    }

    /// The info the fabric was opened on.
    pub fn info(&self) -> &Info {
        &self.info
    }

    /// Opens the domain of the fabric's info.
    pub fn domain(self: &Arc<Self>) -> Result<Arc<Domain>> {
        let h = self.h.domain(&self.info.raw)?;
        Ok(Arc::new(Domain {
            h: Arc::new(h),
            mr_mode: self.info.mr_mode(),
            next_key: AtomicU64::new(1),
            fabric: self.clone(),
        }))
    }

    /// Listens at the fabric info's source address (from
    /// [`Hints::listen`]); connection requests arrive on the listener.
    pub fn listen(self: &Arc<Self>) -> Result<Listener> {
        let eq = self.h.eq()?;
        let pep = self.h.passive_ep(&self.info.raw)?;
        pep.bind_eq(&eq)?;
        pep.listen()?;
        Ok(Listener {
            pep,
            eq,
            _fabric: self.clone(),
        })
    }
}

bitflags::bitflags! {
    /// What a registration allows.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct Access: u64 {
        /// Source of sends and RMA writes, target of receives and RMA reads.
        const LOCAL = ffi::FI_SEND | ffi::FI_RECV | ffi::FI_READ | ffi::FI_WRITE;
        /// Only the source of sends and RMA writes (memory we never write).
        const SOURCE = ffi::FI_SEND | ffi::FI_WRITE;
        /// The peer may RMA-read it.
        const REMOTE_READ = ffi::FI_REMOTE_READ;
        /// The peer may RMA-write it.
        const REMOTE_WRITE = ffi::FI_REMOTE_WRITE;
    }
}

/// An open domain: registers memory and makes endpoints.
pub struct Domain {
    h: Arc<sys::DomainH>,
    mr_mode: MrMode,
    next_key: AtomicU64,
    fabric: Arc<Fabric>,
}

impl Domain {
    /// The fabric the domain belongs to.
    pub fn fabric(&self) -> &Arc<Fabric> {
        &self.fabric
    }

    fn key(&self) -> u64 {
        self.mr_mode
            .requested_key(self.next_key.fetch_add(1, Ordering::Relaxed))
    }

    fn region(&self, h: sys::MrH) -> Arc<MemoryRegion> {
        let remote_base = self.mr_mode.remote_base(h.base());
        Arc::new(MemoryRegion {
            h: Arc::new(h),
            remote_base,
        })
    }

    /// Registers `len` bytes of new zeroed memory the region owns.
    pub fn register(&self, len: usize, access: Access) -> Result<Arc<MemoryRegion>> {
        let h = sys::MrH::register_owned(&self.h, len, access.bits(), self.key())?;
        Ok(self.region(h))
    }

    /// Registers memory the caller owns (an application's region, a mapped
    /// pool).
    ///
    /// # Safety
    /// `ptr..ptr+len` must stay valid for reads and writes, by libfabric at
    /// any time, until the returned region and every endpoint that used it
    /// are dropped.
    pub unsafe fn register_raw(
        &self,
        ptr: *mut u8,
        len: usize,
        access: Access,
    ) -> Result<Arc<MemoryRegion>> {
        // SAFETY: the caller's promise is the one MrH::register needs.
        let h = unsafe { sys::MrH::register(&self.h, ptr, len, access.bits(), self.key(), None)? };
        Ok(self.region(h))
    }

    fn make_endpoint(self: &Arc<Self>, info: sys::Info) -> Result<Endpoint> {
        let f = info.fields();
        let ep = self.h.endpoint(&info)?;
        let cq = self.h.cq((f.tx_size + f.rx_size).max(16))?;
        let eq = self.fabric.h.eq()?;
        Ok(Endpoint {
            conn: Some(sys::Conn::new(ep, cq, eq, info)?),
            pending: VecDeque::new(),
            broken: None,
            spin: Duration::from_micros(100),
            inject_size: f.inject_size,
            domain: self.clone(),
        })
    }

    /// An endpoint to the destination of the fabric's info, ready to
    /// [`Endpoint::connect`] (post receives first).
    pub fn endpoint(self: &Arc<Self>) -> Result<Endpoint> {
        self.make_endpoint(self.fabric.info.raw.dup()?)
    }

    /// An endpoint for an incoming request, ready to [`Endpoint::accept`]
    /// (post receives first).
    pub fn accept_endpoint(self: &Arc<Self>, req: ConnRequest) -> Result<Endpoint> {
        self.make_endpoint(req.info)
    }
}

/// What a peer needs to reach a [`MemoryRegion`] with RMA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemoteMemory {
    /// RMA address of the region's byte 0.
    pub addr: u64,
    /// Registration key.
    pub key: u64,
    /// Length in bytes.
    pub len: u64,
}

impl RemoteMemory {
    /// Encoded size.
    pub const SIZE: usize = 24;

    /// Little-endian encoding: addr, key, len.
    pub fn to_bytes(&self) -> [u8; Self::SIZE] {
        let mut b = [0u8; Self::SIZE];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..16].copy_from_slice(&self.key.to_le_bytes());
        b[16..24].copy_from_slice(&self.len.to_le_bytes());
        b
    }

    /// Decodes [`RemoteMemory::to_bytes`]; `None` if too short.
    pub fn from_bytes(b: &[u8]) -> Option<RemoteMemory> {
        let u = |r: std::ops::Range<usize>| Some(u64::from_le_bytes(b.get(r)?.try_into().ok()?));
        Some(RemoteMemory {
            addr: u(0..8)?,
            key: u(8..16)?,
            len: u(16..24)?,
        })
    }
}

/// Registered memory.
pub struct MemoryRegion {
    h: Arc<sys::MrH>,
    remote_base: u64,
}

impl MemoryRegion {
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.h.len()
    }

    /// True for a zero-length region.
    pub fn is_empty(&self) -> bool {
        self.h.len() == 0
    }

    /// What the peer needs to reach this region.
    pub fn remote(&self) -> RemoteMemory {
        RemoteMemory {
            addr: self.remote_base,
            key: self.h.key(),
            len: self.h.len() as u64,
        }
    }

    /// Copies `data` into the region at `offset`.
    pub fn write(&self, offset: usize, data: &[u8]) -> Result<()> {
        self.h.write(offset, data)
    }

    /// Copies `len` bytes of `src` at `src_offset` into this region at
    /// `offset`.
    pub fn copy_from(
        &self,
        offset: usize,
        src: &MemoryRegion,
        src_offset: usize,
        len: usize,
    ) -> Result<()> {
        self.h.copy_from(offset, &src.h, src_offset, len)
    }

    /// Copies from the region at `offset` into `out`.
    pub fn read(&self, offset: usize, out: &mut [u8]) -> Result<()> {
        self.h.read(offset, out)
    }
}

/// A listening (passive) endpoint.
pub struct Listener {
    pep: sys::PepH,
    eq: sys::EqH,
    _fabric: Arc<Fabric>,
}

/// A connection request, with the private data the peer sent.
pub struct ConnRequest {
    info: sys::Info,
    data: Vec<u8>,
}

impl ConnRequest {
    /// The private data sent with the request (as the provider delivered it;
    /// some pad it to a fixed size).
    pub fn private_data(&self) -> &[u8] {
        &self.data
    }

    /// The address the request came from, where the provider says.
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        sockaddr(&self.info.fields().dest_addr)
    }
}

fn millis(d: Duration) -> i32 {
    d.as_millis().clamp(1, i32::MAX as u128) as i32
}

impl Listener {
    /// The address the listener is bound to (with the port chosen for port 0).
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let name = self.pep.name()?;
        sockaddr(&name).ok_or_else(|| Error::InvalidArgument("listener has no IP address".into()))
    }

    /// Waits up to `timeout` for the next connection request.
    pub fn next_request(&self, timeout: Duration) -> Result<ConnRequest> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("waiting for a connection request"));
            }
            match self.eq.read(Some(millis(left)))? {
                Some(EqEvent::ConnReq { info, data }) => return Ok(ConnRequest { info, data }),
                Some(EqEvent::Error { errno, message }) => {
                    return Err(Error::Call {
                        call: "fi_eq_sread",
                        errno,
                        message,
                    })
                }
                _ => {}
            }
        }
    }

    /// Refuses a request; the peer's connect fails with [`Error::Rejected`].
    pub fn reject(&self, req: ConnRequest) -> Result<()> {
        self.pep.reject(&req.info)
    }
}

/// One finished operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Completion {
    /// The token given when it was posted.
    pub token: u64,
    /// What it was.
    pub kind: OpKind,
    /// Bytes received for a receive; the posted length otherwise.
    pub len: usize,
}

fn op_name(kind: OpKind) -> &'static str {
    match kind {
        OpKind::Recv => "receive",
        OpKind::Send => "send",
        OpKind::Write => "RMA write",
        OpKind::Read => "RMA read",
    }
}

/// Longest a post waits for room in a full queue before giving up.
const QUEUE_FULL_LIMIT: Duration = Duration::from_secs(5);

/// A connection-oriented endpoint with its own completion and event queues.
/// Operations are posted with a `token` and completions give it back.
pub struct Endpoint {
    // None once shut down: the endpoint and its queues are closed then.
    conn: Option<sys::Conn>,
    pending: VecDeque<Completion>,
    broken: Option<String>,
    spin: Duration,
    inject_size: usize,
    domain: Arc<Domain>,
}

impl Endpoint {
    /// How long [`Endpoint::wait`] busy-polls before sleeping (default 100 µs).
    pub fn set_spin(&mut self, spin: Duration) {
        self.spin = spin;
    }

    /// Largest message [`Endpoint::inject`] takes.
    pub fn inject_size(&self) -> usize {
        self.inject_size
    }

    /// Operations posted and not yet completed.
    pub fn in_flight(&self) -> usize {
        self.conn.as_ref().map_or(0, |c| c.in_flight())
    }

    fn conn(&self) -> Result<&sys::Conn> {
        self.conn.as_ref().ok_or_else(|| self.closed())
    }

    fn conn_mut(&mut self) -> Result<&mut sys::Conn> {
        match self.conn {
            Some(ref mut c) => Ok(c),
            None => Err(Error::Disconnected(self.broken.clone().unwrap_or_default())),
        }
    }

    fn closed(&self) -> Error {
        Error::Disconnected(self.broken.clone().unwrap_or_default())
    }

    /// The endpoint's own address.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        let name = self.conn()?.name()?;
        sockaddr(&name).ok_or_else(|| Error::InvalidArgument("endpoint has no IP address".into()))
    }

    /// Connects, sending `private_data` with the request, and waits up to
    /// `timeout` for the peer to accept.
    pub fn connect(&mut self, private_data: &[u8], timeout: Duration) -> Result<()> {
        if private_data.len() > sys::MAX_CM_DATA {
            return Err(Error::InvalidArgument(format!(
                "private data of {} bytes is over the {} allowed",
                private_data.len(),
                sys::MAX_CM_DATA
            )));
        }
        self.conn()?.connect(private_data)?;
        self.await_connected(timeout)
    }

    /// Accepts the request the endpoint was made for and waits up to
    /// `timeout` for the connection to be established.
    pub fn accept(&mut self, timeout: Duration) -> Result<()> {
        self.conn()?.accept(&[])?;
        self.await_connected(timeout)
    }

    fn await_connected(&mut self, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Error::Timeout("connecting"));
            }
            match self.conn()?.eq.read(Some(millis(left)))? {
                Some(EqEvent::Connected) => return Ok(()),
                Some(EqEvent::Error { errno, .. }) if errno == libc::ECONNREFUSED => {
                    return Err(Error::Rejected)
                }
                Some(EqEvent::Error { errno, message }) => {
                    return Err(Error::Call {
                        call: "connecting",
                        errno,
                        message,
                    })
                }
                Some(EqEvent::Shutdown) => return Err(Error::Rejected),
                _ => {}
            }
        }
    }

    /// Ends the connection by closing the endpoint (the peer sees it as
    /// lost); operations in flight are released and every later call fails
    /// with [`Error::Disconnected`].
    ///
    /// `fi_shutdown` is not used: the `sockets` provider (libfabric 1.17)
    /// closes the connection's socket there and again when the endpoint is
    /// closed, by which time the process may have reused the number for
    /// another descriptor (a progress thread's wake-up socket, a file).
    pub fn shutdown(&mut self) {
        self.broken
            .get_or_insert_with(|| "shut down locally".into());
        self.conn = None;
    }

    fn check(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(Error::Disconnected(why.clone())),
            None => Ok(()),
        }
    }

    fn post(
        &mut self,
        kind: OpKind,
        mr: &Arc<MemoryRegion>,
        offset: usize,
        len: usize,
        remote: (u64, u64),
        token: u64,
    ) -> Result<()> {
        let h = mr.h.clone();
        self.retry("posting (queue full)", |c| {
            c.post(kind, &h, offset, len, remote, token)
        })
    }

    /// Runs `attempt` until it is accepted (true); while the queue is full,
    /// makes room by reaping completions (kept for `wait`).
    fn retry(
        &mut self,
        what: &'static str,
        mut attempt: impl FnMut(&mut sys::Conn) -> Result<bool>,
    ) -> Result<()> {
        let deadline = Instant::now() + QUEUE_FULL_LIMIT;
        loop {
            self.check()?;
            if attempt(self.conn_mut()?)? {
                return Ok(());
            }
            if let Some(c) = self.reap()? {
                self.pending.push_back(c);
            } else {
                self.check_events()?;
                if Instant::now() >= deadline {
                    return Err(Error::Timeout(what));
                }
                std::thread::yield_now();
            }
        }
    }

    fn rma_target(remote: &RemoteMemory, offset: u64, len: usize) -> Result<(u64, u64)> {
        match offset.checked_add(len as u64) {
            Some(end) if end <= remote.len => Ok((remote.addr + offset, remote.key)),
            _ => Err(Error::InvalidArgument(format!(
                "remote range {offset}+{len} is outside the peer's {}-byte region",
                remote.len
            ))),
        }
    }

    /// Posts a receive of up to `len` bytes into `mr` at `offset`.
    pub fn post_recv(
        &mut self,
        mr: &Arc<MemoryRegion>,
        offset: usize,
        len: usize,
        token: u64,
    ) -> Result<()> {
        self.post(OpKind::Recv, mr, offset, len, (0, 0), token)
    }

    /// Posts a send of `len` bytes from `mr` at `offset`.
    pub fn post_send(
        &mut self,
        mr: &Arc<MemoryRegion>,
        offset: usize,
        len: usize,
        token: u64,
    ) -> Result<()> {
        self.post(OpKind::Send, mr, offset, len, (0, 0), token)
    }

    /// Sends `data` (at most [`Endpoint::inject_size`] bytes), copied before
    /// returning; no completion is reported for it.
    pub fn inject(&mut self, data: &[u8]) -> Result<()> {
        if data.len() > self.inject_size {
            return Err(Error::InvalidArgument(format!(
                "{} bytes is over the inject size {}",
                data.len(),
                self.inject_size
            )));
        }
        self.retry("injecting (queue full)", |c| c.inject(data))
    }

    /// Posts an RMA write of `len` bytes of `mr` at `offset` to `remote` at
    /// `remote_offset`.
    pub fn post_write(
        &mut self,
        mr: &Arc<MemoryRegion>,
        offset: usize,
        len: usize,
        remote: &RemoteMemory,
        remote_offset: u64,
        token: u64,
    ) -> Result<()> {
        let target = Self::rma_target(remote, remote_offset, len)?;
        self.post(OpKind::Write, mr, offset, len, target, token)
    }

    /// Posts an RMA read of `len` bytes of `remote` at `remote_offset` into
    /// `mr` at `offset`.
    pub fn post_read(
        &mut self,
        mr: &Arc<MemoryRegion>,
        offset: usize,
        len: usize,
        remote: &RemoteMemory,
        remote_offset: u64,
        token: u64,
    ) -> Result<()> {
        let target = Self::rma_target(remote, remote_offset, len)?;
        self.post(OpKind::Read, mr, offset, len, target, token)
    }

    /// One completion from the CQ, if there is one.
    fn reap(&mut self) -> Result<Option<Completion>> {
        loop {
            match self.conn()?.cq.read(None)? {
                None => return Ok(None),
                Some(CqEvent::Done { ctx, len }) => {
                    if let Some(c) = self.completed(ctx, len) {
                        return Ok(Some(c));
                    }
                }
                Some(CqEvent::Failed {
                    ctx,
                    errno,
                    message,
                }) => return Err(self.failed(ctx, errno, message)),
            }
        }
    }

    /// Notices the connection ending (from the event queue).
    fn check_events(&mut self) -> Result<()> {
        self.check()?;
        match self.conn()?.eq.read(None)? {
            Some(EqEvent::Shutdown) => {
                self.broken = Some("the peer closed the connection".into());
            }
            Some(EqEvent::Error { message, .. }) => self.broken = Some(message),
            _ => {}
        }
        self.check()
    }

    /// The next completion without waiting, if any.
    pub fn poll(&mut self) -> Result<Option<Completion>> {
        if let Some(c) = self.pending.pop_front() {
            return Ok(Some(c));
        }
        if let Some(c) = self.reap()? {
            return Ok(Some(c));
        }
        self.check_events()?;
        Ok(None)
    }

    /// Waits up to `timeout` for the next completion: busy-polls for the
    /// spin time, then sleeps on the queues' file descriptors (or in
    /// `fi_cq_sread` where the provider has none). A connection that ends
    /// fails the wait with [`Error::Disconnected`].
    pub fn wait(&mut self, timeout: Duration) -> Result<Completion> {
        self.wait_then(timeout, Self::sleep)
    }

    /// Like [`Endpoint::wait`], but keeps the provider working while it
    /// waits: reads the completion queue (`fi_cq_read`) for the spin time,
    /// then sleeps inside `fi_cq_sread` in short slices, looking at the
    /// connection's events between them. Providers whose data moves only
    /// when the queue is read (libfabric's `sockets`, whose own progress
    /// thread wakes every few milliseconds) need this where a large
    /// transfer or a quick answer is waited for; PMDK's library and daemon
    /// wait the same way.
    pub fn wait_progressing(&mut self, timeout: Duration) -> Result<Completion> {
        self.wait_then(timeout, Self::sleep_in_cq)
    }

    /// The wait loop both waits share; `sleep` is how it waits once the
    /// spin time is over.
    fn wait_then(
        &mut self,
        timeout: Duration,
        sleep: fn(&mut Self, Duration) -> Result<()>,
    ) -> Result<Completion> {
        let start = Instant::now();
        loop {
            // While spinning only the completion queue is read: it is cheap,
            // the event queue is not, and a connection that ends fails the
            // operations in flight anyway.
            if let Some(c) = self.pending.pop_front() {
                return Ok(c);
            }
            if let Some(c) = self.reap()? {
                return Ok(c);
            }
            let elapsed = start.elapsed();
            if elapsed < self.spin {
                std::hint::spin_loop();
                continue;
            }
            if let Err(e) = self.check_events() {
                // What the peer sent before it went away still counts.
                return match self.reap()? {
                    Some(c) => Ok(c),
                    None => Err(e),
                };
            }
            if elapsed >= timeout {
                return Err(Error::Timeout("waiting for a completion"));
            }
            sleep(self, timeout - elapsed)?;
        }
    }

    fn sleep(&mut self, left: Duration) -> Result<()> {
        let conn = self.conn()?;
        if let (Some(cfd), Some(efd)) = (conn.cq.fd, conn.eq.fd) {
            match self.domain.fabric.h.trywait(&conn.cq, &conn.eq) {
                Ok(true) => return sys::poll2(cfd, efd, millis(left)),
                Ok(false) => return Ok(()),
                Err(Error::Unsupported { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        // No fd to sleep on.
        self.sleep_in_cq(left)
    }

    /// Sleeps in `fi_cq_sread` for at most a short slice (so that a
    /// shutdown is noticed); what completes meanwhile waits in `pending`.
    fn sleep_in_cq(&mut self, left: Duration) -> Result<()> {
        let slice = millis(left.min(Duration::from_millis(10)));
        match self.conn()?.cq.read(Some(slice))? {
            None => Ok(()),
            Some(CqEvent::Done { ctx, len }) => {
                if let Some(c) = self.completed(ctx, len) {
                    self.pending.push_back(c);
                }
                Ok(())
            }
            Some(CqEvent::Failed {
                ctx,
                errno,
                message,
            }) => Err(self.failed(ctx, errno, message)),
        }
    }

    /// The completion of the operation with context `ctx`; `len` counts only
    /// for receives (providers need not report it for the rest).
    fn completed(&mut self, ctx: usize, len: usize) -> Option<Completion> {
        let (token, kind, posted) = self.conn.as_mut()?.complete(ctx)?;
        let len = if kind == OpKind::Recv { len } else { posted };
        Some(Completion { token, kind, len })
    }

    /// An operation failed: the endpoint is unusable from now on.
    fn failed(&mut self, ctx: usize, errno: i32, message: String) -> Error {
        let (token, kind, _) =
            self.conn
                .as_mut()
                .and_then(|c| c.complete(ctx))
                .unwrap_or((u64::MAX, OpKind::Send, 0));
        self.broken.get_or_insert_with(|| message.clone());
        Error::Completion {
            token,
            operation: op_name(kind),
            errno,
            message,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_move_between_threads() {
        fn send<T: Send>() {}
        fn shared<T: Send + Sync>() {}
        send::<Endpoint>();
        send::<ConnRequest>();
        send::<Listener>();
        shared::<Domain>();
        shared::<Fabric>();
        shared::<MemoryRegion>();
        shared::<Libfabric>();
    }

    #[test]
    fn sockaddr_decodes_ipv4_and_ipv6() {
        let mut v4 = vec![0u8; 16];
        v4[0..2].copy_from_slice(&(libc::AF_INET as u16).to_ne_bytes());
        v4[2..4].copy_from_slice(&7000u16.to_be_bytes());
        v4[4..8].copy_from_slice(&[127, 0, 0, 1]);
        assert_eq!(sockaddr(&v4), Some("127.0.0.1:7000".parse().unwrap()));
        let mut v6 = vec![0u8; 28];
        v6[0..2].copy_from_slice(&(libc::AF_INET6 as u16).to_ne_bytes());
        v6[2..4].copy_from_slice(&9u16.to_be_bytes());
        v6[23] = 1;
        assert_eq!(sockaddr(&v6), Some("[::1]:9".parse().unwrap()));
        assert_eq!(sockaddr(&v4[..3]), None);
        assert_eq!(sockaddr(&[0u8; 16]), None);
    }

    #[test]
    fn mr_mode_decides_address_and_key() {
        let verbs = MrMode::LOCAL | MrMode::VIRT_ADDR | MrMode::ALLOCATED | MrMode::PROV_KEY;
        assert_eq!(verbs.remote_base(0x7f00_0000), 0x7f00_0000);
        assert_eq!(verbs.requested_key(5), 0);
        let offsets = MrMode::empty();
        assert_eq!(offsets.remote_base(0x7f00_0000), 0);
        assert_eq!(offsets.requested_key(5), 5);
        assert!(MrMode::SUPPORTED.contains(verbs));
        assert!(!MrMode::SUPPORTED.contains(MrMode::ENDPOINT));
    }

    #[test]
    fn remote_memory_round_trips() {
        let r = RemoteMemory {
            addr: 1 << 40,
            key: 77,
            len: 4096,
        };
        assert_eq!(RemoteMemory::from_bytes(&r.to_bytes()), Some(r));
        assert_eq!(RemoteMemory::from_bytes(&r.to_bytes()[..23]), None);
    }
}
