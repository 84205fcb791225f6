//! A remote pool bound to a caller-owned local region.

use std::sync::{Mutex, MutexGuard};

use rpmem_proto::control::{Answer, PoolRequest, Request, Session};
use rpmem_proto::data::wire_flags;
use rpmem_proto::transport::{PersistMethod, TransportChoice};
use rpmem_proto::PoolAttr;
use rpmem_transport::initiator::{Connector, LaneOptions};
use rpmem_transport::Region;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::lane::Lane;
use crate::launch::{next_command, Control, ControlChannel};
use crate::log::returned;
use crate::{sys, HEADER_SIZE, MAX_LANES, MIN_POOL};

/// An open remote pool replicating a region the caller owns.
pub struct RemotePool {
    control: Mutex<Box<dyn ControlChannel>>,
    lanes: Vec<Mutex<Lane>>,
    limits: Limits,
    attr: PoolAttr,
    /// `target:pool-set`, the prefix of its messages.
    name: String,
    /// The pool set name alone.
    pool_set: String,
    /// The process that created or opened the pool: a child forked from it
    /// shares the connections and must not use or end them.
    owner: u32,
}

/// A refusal from the daemon as the caller sees it: prefixed with `name`
/// (`target:pool-set`), and without the daemon's own `pool set 'SET': `,
/// so the pool set is named once.
fn remote_message(name: &str, pool_set: &str, message: &str) -> String {
    let own = format!("pool set '{pool_set}': ");
    format!("{name}: {}", message.strip_prefix(&own).unwrap_or(message))
}

/// What every data call checks and needs besides its lane: shared by the
/// indexed calls of [`RemotePool`] and the owned lanes of [`crate::Pool::split`].
/// Each call logs itself at level 4 and its error at level 1, as librpmem.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// Size of the local region.
    size: usize,
    /// The first [`HEADER_SIZE`] bytes hold the pool header.
    has_header: bool,
    /// Flushes a lane may have in flight before a flush drains.
    queue_limit: usize,
}

impl Limits {
    fn check_range(&self, offset: usize, len: usize, write: bool) -> Result<()> {
        let end = offset
            .checked_add(len)
            .ok_or_else(|| invalid(format!("offset {offset} + length {len} overflows")))?;
        if end > self.size {
            return Err(invalid(format!(
                "range {offset}..{end} is beyond the pool size {}",
                self.size
            )));
        }
        if write && self.has_header && offset < HEADER_SIZE {
            return Err(invalid(format!(
                "offset {offset} is inside the {HEADER_SIZE}-byte pool header"
            )));
        }
        Ok(())
    }

    /// The wire flags for persist and flush flags.
    fn wire_flags(flags: u32) -> Result<u8> {
        wire_flags(flags).ok_or_else(|| invalid(format!("invalid flags {flags:#x}")))
    }

    pub(crate) fn persist(
        &self,
        l: &mut Lane,
        offset: usize,
        len: usize,
        flags: u32,
    ) -> Result<()> {
        log::trace!(
            "rpmem_persist {offset}+{len} lane {} flags {flags:#x}",
            l.index()
        );
        let r = Self::wire_flags(flags).and_then(|f| {
            self.check_range(offset, len, true)?;
            l.persist(false, f, offset as u64, len)
        });
        returned("rpmem_persist", r)
    }

    pub(crate) fn deep_persist(&self, l: &mut Lane, offset: usize, len: usize) -> Result<()> {
        log::trace!("rpmem_deep_persist {offset}+{len} lane {}", l.index());
        let r = self
            .check_range(offset, len, true)
            .and_then(|()| l.persist(true, 0, offset as u64, len));
        returned("rpmem_deep_persist", r)
    }

    pub(crate) fn flush(&self, l: &mut Lane, offset: usize, len: usize, flags: u32) -> Result<()> {
        log::trace!(
            "rpmem_flush {offset}+{len} lane {} flags {flags:#x}",
            l.index()
        );
        let r = Self::wire_flags(flags).and_then(|f| {
            self.check_range(offset, len, true)?;
            l.flush(f, offset as u64, len, self.queue_limit)
        });
        returned("rpmem_flush", r)
    }

    pub(crate) fn drain(l: &mut Lane, flags: u32) -> Result<()> {
        log::trace!("rpmem_drain lane {} flags {flags:#x}", l.index());
        let r = if flags == 0 {
            l.drain()
        } else {
            Err(invalid(format!("invalid flags {flags:#x}")))
        };
        returned("rpmem_drain", r)
    }

    pub(crate) fn read(&self, l: &mut Lane, buf: &mut [u8], offset: usize) -> Result<()> {
        log::trace!("rpmem_read {offset}+{} lane {}", buf.len(), l.index());
        let r = self.check_range(offset, buf.len(), false).and_then(|()| {
            if buf.is_empty() {
                return Ok(());
            }
            l.read(buf, offset as u64)
        });
        returned("rpmem_read", r)
    }
}

impl std::fmt::Debug for RemotePool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RemotePool")
            .field("pool", &self.name)
            .field("size", &self.limits.size)
            .field("lanes", &self.lanes.len())
            .field("has_header", &self.limits.has_header)
            .finish_non_exhaustive()
    }
}

enum Mode {
    Create(Option<PoolAttr>),
    Open,
}

fn invalid(msg: impl Into<String>) -> Error {
    Error::InvalidArgument(msg.into())
}

fn check_region(addr: *const u8, size: usize, nlanes: u32) -> Result<()> {
    let page = sys::page_size();
    if addr.is_null() {
        return Err(invalid("pool_addr is NULL"));
    }
    if !(addr as usize).is_multiple_of(page) {
        return Err(invalid(format!(
            "pool_addr {addr:p} is not aligned to the page size ({page})"
        )));
    }
    if size < MIN_POOL {
        return Err(invalid(format!(
            "pool_size {size} is below the minimum of {MIN_POOL} bytes"
        )));
    }
    if !size.is_multiple_of(page) {
        return Err(invalid(format!(
            "pool_size {size} is not a multiple of the page size ({page})"
        )));
    }
    if nlanes == 0 {
        return Err(invalid("the number of lanes requested is 0"));
    }
    Ok(())
}

impl RemotePool {
    /// Creates the pool described by `pool_set` on `target` and opens it.
    ///
    /// `attr` `None` (or all zero) makes a pool without headers, which the
    /// target's pool set must allow (`OPTION NOHDRS`). `nlanes` is the number
    /// of lanes wanted; [`RemotePool::nlanes`] tells how many were granted.
    ///
    /// # Safety
    /// `addr..addr+size` must be readable for as long as the handle lives.
    pub unsafe fn create(
        cfg: &Config,
        target: &str,
        pool_set: &str,
        addr: *const u8,
        size: usize,
        nlanes: u32,
        attr: Option<&PoolAttr>,
    ) -> Result<RemotePool> {
        crate::log::init();
        let attr = attr.filter(|a| !a.is_zero()).copied();
        let r = Self::connect(
            cfg,
            target,
            pool_set,
            addr,
            size,
            nlanes,
            Mode::Create(attr),
        );
        returned("rpmem_create", r.map(|(p, _)| p))
    }

    /// Opens an existing pool; returns it with its stored attributes (zero for
    /// a pool without headers).
    ///
    /// # Safety
    /// As for [`RemotePool::create`].
    pub unsafe fn open(
        cfg: &Config,
        target: &str,
        pool_set: &str,
        addr: *const u8,
        size: usize,
        nlanes: u32,
    ) -> Result<(RemotePool, PoolAttr)> {
        crate::log::init();
        let r = Self::connect(cfg, target, pool_set, addr, size, nlanes, Mode::Open);
        returned("rpmem_open", r)
    }

    fn connect(
        cfg: &Config,
        target_str: &str,
        pool_set: &str,
        addr: *const u8,
        size: usize,
        nlanes: u32,
        mode: Mode,
    ) -> Result<(RemotePool, PoolAttr)> {
        check_region(addr, size, nlanes)?;
        if pool_set.is_empty() {
            return Err(invalid("the pool set name is empty"));
        }
        let target = Target::parse(target_str)?;
        let selected = crate::select::select(cfg)?;
        log::info!(
            "transport: {} ({})",
            match &selected.request {
                TransportChoice::Tcp => "tcp".to_string(),
                TransportChoice::Fabric { provider } => format!("fabric, provider {provider}"),
            },
            selected.why
        );
        let want = nlanes.min(cfg.max_lanes).clamp(1, MAX_LANES);
        let name = format!("{target_str}:{pool_set}");
        let cmd = next_command(&cfg.cmd);
        log::debug!("{name}: starting '{cmd}' through '{}'", cfg.ssh);
        let control = Control::start(cfg, &target, &cmd)?;
        let pool = PoolRequest::new(pool_set, size as u64, want).over(selected.request.clone());
        let req = match mode {
            Mode::Create(attr) => Request::Create { pool, attr },
            Mode::Open => Request::Open { pool },
        };
        // SAFETY: forwarded from create/open's caller.
        let r = unsafe {
            Self::establish(
                cfg,
                name.clone(),
                Box::new(control),
                selected.connector.as_ref(),
                &req,
                addr,
            )
        };
        match r {
            Err(Error::ForeignDaemon(why)) => {
                // PMDK's rpmemd refused our request and exited, touching
                // nothing: start it again and speak its protocol.
                log::info!("{name}: {why}; starting it again to speak PMDK's protocol");
                let (control, connector) = crate::pmdk::start(cfg, &target, &cmd)?;
                let provider = control.provider().name();
                // SAFETY: forwarded from create/open's caller.
                let r = unsafe {
                    Self::establish(cfg, name.clone(), Box::new(control), &connector, &req, addr)
                };
                if r.is_ok() {
                    log::info!(
                        "{name}: protocol PMDK 1.12 (the target runs PMDK's rpmemd), \
                         libfabric provider {provider}; its fabric connections carry no secret"
                    );
                }
                r
            }
            Ok(p) => {
                log::info!("{name}: protocol rpmem (the target runs our rpmemd)");
                Ok(p)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates or opens a pool with `req` (a create or open request for
    /// the region `addr..addr+req.pool_size`) over an already started
    /// control channel, and joins the session with `connector`'s transport.
    /// [`RemotePool::create`] and [`RemotePool::open`] use ssh and TCP; this
    /// is the seam for other channels and transports.
    ///
    /// # Safety
    /// As for [`RemotePool::create`].
    pub unsafe fn establish(
        cfg: &Config,
        name: String,
        mut control: Box<dyn ControlChannel>,
        connector: &dyn Connector,
        req: &Request,
        addr: *const u8,
    ) -> Result<(RemotePool, PoolAttr)> {
        let Some(PoolRequest {
            pool_size,
            nlanes: want,
            pool_set,
            ..
        }) = req.pool()
        else {
            return Err(invalid(format!("{} does not open a pool", req.name())));
        };
        let (size, want) = (*pool_size, *want);
        let verb = match req {
            Request::Create { .. } => "created",
            _ => "opened",
        };
        let size = usize::try_from(size).map_err(|_| invalid("pool_size is too large"))?;
        check_region(addr, size, want)?;
        // SAFETY: the caller promised the region readable for the handle's
        // lifetime, which the lanes do not outlive; check_region refused a
        // null address.
        let region =
            unsafe { Region::new(addr, size) }.ok_or_else(|| invalid("pool_addr is NULL"))?;
        let session = match control.call(req)? {
            Answer::Opened(s) => s,
            Answer::Refused { status, message } => {
                control.finish();
                return Err(Error::Remote {
                    status,
                    message: remote_message(&name, pool_set, &message),
                });
            }
            Answer::Done => return Err(Error::Protocol("unexpected response to open".into())),
        };
        let lanes = match Self::connect_lanes(cfg, connector, &session, region, want) {
            Ok(l) => l,
            Err(e) => {
                // Release the pool on the target before reporting.
                let _ = control.call(&Request::Close);
                control.finish();
                return Err(e);
            }
        };
        log::info!(
            "{verb} {name}: {size} bytes, {} of {want} lanes, {}, transport {}",
            lanes.len(),
            if session.has_header {
                "with header"
            } else {
                "no header"
            },
            match &session.fabric {
                None => "tcp".to_string(),
                Some(f) => format!(
                    "fabric (provider {}, persist {})",
                    f.provider,
                    match f.persist {
                        PersistMethod::General => "general",
                        PersistMethod::Appliance => "appliance",
                    }
                ),
            }
        );
        log::debug!(
            "{name}: remote pool {} bytes, data on {}:{}",
            session.remote_size,
            session.addr,
            session.port
        );
        let pool = RemotePool {
            control: Mutex::new(control),
            lanes,
            limits: Limits {
                size,
                has_header: session.has_header,
                queue_limit: cfg.work_queue_size.max(1),
            },
            attr: session.attr,
            name,
            pool_set: pool_set.clone(),
            owner: std::process::id(),
        };
        Ok((pool, session.attr))
    }

    fn connect_lanes(
        cfg: &Config,
        connector: &dyn Connector,
        s: &Session,
        region: Region,
        want: u32,
    ) -> Result<Vec<Mutex<Lane>>> {
        if s.nlanes == 0 || s.nlanes > want {
            return Err(Error::Protocol(format!(
                "target granted {} lanes for {want} requested",
                s.nlanes
            )));
        }
        let options = LaneOptions {
            timeout: cfg.io_timeout,
            spin: cfg.spin,
        };
        let lanes = connector.connect(s, region, &options)?;
        Ok((0..)
            .zip(lanes)
            .map(|(i, l)| Mutex::new(Lane::new(i, l)))
            .collect())
    }

    /// Lanes granted.
    pub fn nlanes(&self) -> u32 {
        self.lanes.len() as u32
    }

    /// Whether the first 4096 bytes of the remote pool hold its header.
    pub fn has_header(&self) -> bool {
        self.limits.has_header
    }

    /// The attributes the target reported when the pool was created or
    /// opened: for a new pool, what it stored (zero user flags become the
    /// target's architecture flags, as in PMDK). Not updated by `set_attr`.
    pub fn attr(&self) -> PoolAttr {
        self.attr
    }

    /// Size of the local region (the usable part of the remote pool).
    pub fn size(&self) -> usize {
        self.limits.size
    }

    /// Refuses a call from any process but the one that made the handle.
    fn check_owner(&self) -> Result<()> {
        let me = std::process::id();
        if me == self.owner {
            return Ok(());
        }
        Err(Error::ForeignProcess(format!(
            "{} was opened by process {}; process {me} cannot use it \
             (a pool handle does not survive fork)",
            self.name, self.owner
        )))
    }

    fn lane(&self, call: &str, lane: u32) -> Result<MutexGuard<'_, Lane>> {
        returned(call, self.check_owner())?;
        let l = self.lanes.get(lane as usize).ok_or_else(|| {
            invalid(format!(
                "lane {lane} is out of range (the pool has {} lanes)",
                self.lanes.len()
            ))
        });
        Ok(returned(call, l)?.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// Waits until no lane's transport reads the region for an earlier
    /// flush (see `Lane::release`): the application is about to write it.
    pub(crate) fn release_all(&mut self) {
        for l in &mut self.lanes {
            l.get_mut().unwrap_or_else(|e| e.into_inner()).release();
        }
    }

    /// Every lane, each borrowed on its own (no lock per call), with what
    /// the data calls check; for [`crate::Pool::split`].
    pub(crate) fn lanes_mut(&mut self) -> (Limits, Vec<&mut Lane>) {
        let lanes = self
            .lanes
            .iter_mut()
            .map(|l| l.get_mut().unwrap_or_else(|e| e.into_inner()))
            .collect();
        (self.limits, lanes)
    }

    /// Copies `len` bytes at `offset` of the local region to the remote pool and
    /// makes them durable there. `flags`: 0 or [`crate::PERSIST_RELAXED`].
    pub fn persist(&self, offset: usize, len: usize, lane: u32, flags: u32) -> Result<()> {
        let mut l = self.lane("rpmem_persist", lane)?;
        self.limits.persist(&mut l, offset, len, flags)
    }

    /// Like [`RemotePool::persist`], to the deepest durability domain of the target.
    pub fn deep_persist(&self, offset: usize, len: usize, lane: u32) -> Result<()> {
        let mut l = self.lane("rpmem_deep_persist", lane)?;
        self.limits.deep_persist(&mut l, offset, len)
    }

    /// Copies without waiting for durability; see [`RemotePool::drain`].
    pub fn flush(&self, offset: usize, len: usize, lane: u32, flags: u32) -> Result<()> {
        let mut l = self.lane("rpmem_flush", lane)?;
        self.limits.flush(&mut l, offset, len, flags)
    }

    /// Makes every earlier flush on `lane` durable. `flags` must be 0.
    pub fn drain(&self, lane: u32, flags: u32) -> Result<()> {
        let mut l = self.lane("rpmem_drain", lane)?;
        Limits::drain(&mut l, flags)
    }

    /// Reads `buf.len()` bytes at `offset` of the remote pool.
    pub fn read(&self, buf: &mut [u8], offset: usize, lane: u32) -> Result<()> {
        let mut l = self.lane("rpmem_read", lane)?;
        self.limits.read(&mut l, buf, offset)
    }

    /// Rewrites the stored attributes (`None`: zeroed attributes).
    pub fn set_attr(&self, attr: Option<&PoolAttr>) -> Result<()> {
        log::trace!("rpmem_set_attr {}", self.name);
        returned("rpmem_set_attr", self.set_attr_impl(attr))
    }

    fn set_attr_impl(&self, attr: Option<&PoolAttr>) -> Result<()> {
        self.check_owner()?;
        let attr = attr.copied().unwrap_or_default();
        let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
        self.done(c.call(&Request::SetAttr { attr })?)
    }

    /// The outcome of a set-attributes or close answer.
    fn done(&self, answer: Answer) -> Result<()> {
        match answer {
            Answer::Done => Ok(()),
            Answer::Refused { status, message } => Err(Error::Remote {
                status,
                message: remote_message(&self.name, &self.pool_set, &message),
            }),
            Answer::Opened(_) => Err(Error::Protocol(
                "unexpected response to a pool request".into(),
            )),
        }
    }

    /// Closes the pool on both sides; the remote pool stays.
    /// If the handle is dropped instead, the ssh client is killed and the
    /// daemon releases the pool when its control channel ends.
    pub fn close(self) -> Result<()> {
        log::info!("closing {}", self.name);
        let name = self.name.clone();
        returned(&format!("rpmem_close {name}"), self.close_impl())
    }

    fn close_impl(self) -> Result<()> {
        // In another process only its copies of the descriptors go, as
        // `self` drops; the owner's session is untouched (see `Control`).
        self.check_owner()?;
        for l in &self.lanes {
            l.lock().unwrap_or_else(|e| e.into_inner()).shutdown();
        }
        let mut c = self.control.lock().unwrap_or_else(|e| e.into_inner());
        let r = c.call(&Request::Close);
        c.finish();
        self.done(r?)
    }
}
