//! Data connections: the accept thread, the handshake, and one thread per
//! lane serving requests with blocking I/O.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::OnceLock;
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, trace, warn};
use nix::errno::Errno;
use nix::sys::socket::{recv, MsgFlags};
use rpmem_proto::control::SECRET_LEN;
use rpmem_proto::data::{Ack, Hello, Op, RequestHeader, FLAG_RELAXED, HEADER_LEN, HELLO_LEN};
use rpmem_proto::{Status, PROTO_VERSION};
use rpmem_storage::{Pool, Range, HDR_SIZE};
use std::os::fd::AsRawFd;

/// Connections allowed to be waiting for their Hello beyond the session's
/// lane count: a client connects all its lanes at once, a stranger's silent
/// connections must not pile up a thread each.
pub const SPARE_UNAUTHENTICATED: u32 = 16;
/// How long a new connection has to present its Hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of a lane's staging buffer for the 8-byte-atomic write path: small
/// enough to stay in cache between the receive and the copy into the pool
/// (1 MiB measured ~0.6 of the raw stream for 1 MiB persists, 64 KiB ~0.9).
pub const STAGE_LEN: usize = 64 << 10;
/// Pending (flushed, not yet drained) ranges a lane keeps before it makes
/// them durable on its own, bounding its memory.
pub const MAX_PENDING: usize = 4096;

/// Default of how long a lane busy-polls for the next request before parking
/// in the kernel: a loopback round trip is ~20 µs, a wake-up ~100 µs here.
pub const DEFAULT_SPIN: Duration = Duration::from_micros(100);

/// The spin window: `RPMEMD_SPIN_US` (0 disables) or [`DEFAULT_SPIN`].
fn spin_window() -> Duration {
    static SPIN: OnceLock<Duration> = OnceLock::new();
    *SPIN.get_or_init(|| {
        std::env::var("RPMEMD_SPIN_US")
            .ok()
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map_or(DEFAULT_SPIN, Duration::from_micros)
    })
}

/// Threads of this process busy-polling right now.
static SPINNERS: AtomicUsize = AtomicUsize::new(0);

/// At most half the cores spin at once (at least one): the other half is
/// left to the initiator's threads and to lanes doing real work, so many
/// busy lanes on a small machine park instead of starving each other.
fn max_spinners() -> usize {
    static MAX: OnceLock<usize> = OnceLock::new();
    *MAX.get_or_init(|| thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

/// A permission to busy-poll, released on drop or by [`SpinSlot::release`].
struct SpinSlot(bool);

impl SpinSlot {
    /// Takes a slot if fewer than [`max_spinners`] are taken.
    fn acquire() -> SpinSlot {
        if SPINNERS.fetch_add(1, Ordering::AcqRel) < max_spinners() {
            SpinSlot(true)
        } else {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
            SpinSlot(false)
        }
    }

    /// The spin window this slot allows: `window` if held, else zero.
    fn window(&self, window: Duration) -> Duration {
        if self.0 {
            window
        } else {
            Duration::ZERO
        }
    }

    fn release(&mut self) {
        if std::mem::take(&mut self.0) {
            SPINNERS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for SpinSlot {
    fn drop(&mut self) {
        self.release();
    }
}

/// Fills `buf` from `stream`. While bytes keep arriving it polls without
/// blocking, and blocks only after `window` without progress, so requests
/// and payloads that follow within a round trip are served without the cost
/// of waking a parked thread. `Ok(false)`: the peer closed before any byte.
fn fill(stream: &TcpStream, buf: &mut [u8], window: Duration) -> io::Result<bool> {
    let mut slot = SpinSlot::acquire();
    let window = slot.window(window);
    let mut got = 0;
    let mut last_progress = Instant::now();
    while got < buf.len() {
        let spinning = last_progress.elapsed() < window;
        if !spinning {
            slot.release();
        }
        let flags = if spinning {
            MsgFlags::MSG_DONTWAIT
        } else {
            MsgFlags::empty()
        };
        match recv(stream.as_raw_fd(), &mut buf[got..], flags) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => {
                got += n;
                last_progress = Instant::now();
            }
            Err(Errno::EAGAIN) if spinning => std::hint::spin_loop(),
            Err(Errno::EINTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

/// State shared by the control thread, the accept thread and the lanes.
pub struct Shared {
    /// The open pool.
    pub pool: Pool,
    secret: [u8; SECRET_LEN],
    nlanes: u32,
    connected: Vec<AtomicBool>,
    stop: AtomicBool,
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    /// Connections accepted that have not finished their Hello yet.
    unauthenticated: AtomicUsize,
}

/// The running data side of a session.
pub struct DataServer {
    shared: Arc<Shared>,
    local: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl DataServer {
    /// Starts accepting lane connections on `listener`.
    pub fn start(
        listener: TcpListener,
        pool: Pool,
        secret: [u8; SECRET_LEN],
        nlanes: u32,
    ) -> io::Result<DataServer> {
        let local = listener.local_addr()?;
        let shared = Arc::new(Shared {
            pool,
            secret,
            nlanes,
            connected: (0..nlanes).map(|_| AtomicBool::new(false)).collect(),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            unauthenticated: AtomicUsize::new(0),
        });
        let s2 = Arc::clone(&shared);
        let accept = thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, s2))?;
        Ok(DataServer {
            shared,
            local,
            accept: Some(accept),
        })
    }

    /// The shared state (the pool, for set_attr).
    pub fn shared(&self) -> &Shared {
        &self.shared
    }

    /// Stops accepting, shuts every lane down, waits for the lane threads
    /// (each makes its pending ranges durable on the way out) and returns
    /// the pool, still locked, once nothing else references it.
    pub fn stop(mut self) -> Option<Pool> {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept thread with a connection of our own.
        let _ = TcpStream::connect_timeout(&self.local, Duration::from_secs(1));
        if let Some(a) = self.accept.take() {
            let _ = a.join();
        }
        let conns =
            std::mem::take(&mut *self.shared.conns.lock().unwrap_or_else(|e| e.into_inner()));
        for (s, _) in &conns {
            let _ = s.shutdown(Shutdown::Both);
        }
        for (_, h) in conns {
            let _ = h.join();
        }
        Arc::try_unwrap(self.shared).ok().map(|s| s.pool)
    }
}

fn accept_loop(listener: TcpListener, shared: Arc<Shared>) {
    for conn in listener.incoming() {
        if shared.stop.load(Ordering::SeqCst) {
            break;
        }
        let stream = match conn {
            Ok(s) => s,
            Err(e) => {
                warn!("accepting a data connection failed: {e}");
                continue;
            }
        };
        let peer = stream
            .peer_addr()
            .map(|a| a.to_string())
            .unwrap_or_else(|_| "?".into());
        let limit = (shared.nlanes + SPARE_UNAUTHENTICATED) as usize;
        if shared.unauthenticated.load(Ordering::SeqCst) >= limit {
            warn!(
                "data connection from {peer} dropped: {limit} connections are already \
                 waiting to authenticate"
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        shared.unauthenticated.fetch_add(1, Ordering::SeqCst);
        let clone = match stream.try_clone() {
            Ok(c) => c,
            Err(e) => {
                warn!("data connection from {peer}: {e}");
                shared.unauthenticated.fetch_sub(1, Ordering::SeqCst);
                continue;
            }
        };
        let s2 = Arc::clone(&shared);
        match thread::Builder::new()
            .name("lane".into())
            .spawn(move || connection(stream, &peer, &s2))
        {
            Ok(h) => {
                let mut conns = shared.conns.lock().unwrap_or_else(|e| e.into_inner());
                // Forget finished connections (refused ones included), so
                // their descriptors close and the list stays short.
                conns.retain(|(_, h)| !h.is_finished());
                conns.push((clone, h));
            }
            Err(e) => {
                error!("cannot start a lane thread: {e}");
                shared.unauthenticated.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// Counts a connection as unauthenticated until its Hello has been read.
struct Unauthenticated<'a>(&'a AtomicUsize);

impl Drop for Unauthenticated<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Sends a refusal (best effort) and drops the connection.
fn refuse(mut stream: TcpStream, peer: &str, status: Status, why: &str) {
    warn!("data connection from {peer} refused: {why}");
    let _ = stream.write_all(&Ack { tag: 0, status }.encode());
    let _ = stream.shutdown(Shutdown::Both);
}

fn connection(mut stream: TcpStream, peer: &str, shared: &Shared) {
    let waiting = Unauthenticated(&shared.unauthenticated);
    let _ = stream.set_nodelay(true);
    if let Err(e) = stream.set_read_timeout(Some(HELLO_TIMEOUT)) {
        return refuse(stream, peer, Status::Fatal, &e.to_string());
    }
    let mut raw = [0u8; HELLO_LEN];
    if let Err(e) = stream.read_exact(&mut raw) {
        warn!("data connection from {peer} dropped: no hello ({e})");
        // The accept thread keeps a clone of the stream until it next
        // accepts; shut the connection now so the peer sees it end.
        let _ = stream.shutdown(Shutdown::Both);
        return;
    }
    drop(waiting);
    let hello = match Hello::decode(&raw) {
        Ok(h) => h,
        Err(e) => return refuse(stream, peer, Status::Unauthenticated, &e.to_string()),
    };
    if !ct_eq(&hello.secret, &shared.secret) {
        return refuse(
            stream,
            peer,
            Status::Unauthenticated,
            "wrong session secret",
        );
    }
    if hello.version != PROTO_VERSION {
        return refuse(
            stream,
            peer,
            Status::BadProtocol,
            &format!("protocol version {}", hello.version),
        );
    }
    let lane = hello.lane;
    if lane >= shared.nlanes {
        return refuse(
            stream,
            peer,
            Status::BadNlanes,
            &format!("lane {lane} of {}", shared.nlanes),
        );
    }
    let slot = &shared.connected[lane as usize];
    if slot
        .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
        .is_err()
    {
        return refuse(
            stream,
            peer,
            Status::BadNlanes,
            &format!("lane {lane} is already connected"),
        );
    }
    let ok = stream.set_read_timeout(None).and_then(|_| {
        stream.write_all(
            &Ack {
                tag: 0,
                status: Status::Ok,
            }
            .encode(),
        )
    });
    match ok {
        Ok(()) => {
            debug!("lane {lane} connected from {peer}");
            let mut l = LaneServer {
                lane,
                shared,
                stream,
                pending: Vec::with_capacity(64),
                stage: Vec::new(),
            };
            l.serve();
            l.finish();
            debug!("lane {lane} closed");
        }
        Err(e) => warn!("lane {lane}: cannot acknowledge the connection: {e}"),
    }
    slot.store(false, Ordering::SeqCst);
}

/// Why a lane stops serving.
enum Stop {
    /// The peer closed the connection (or the session is closing).
    Closed,
    /// The connection can no longer be trusted.
    Failed(String),
}

struct LaneServer<'a> {
    lane: u32,
    shared: &'a Shared,
    stream: TcpStream,
    /// Ranges flushed and not yet made durable.
    pending: Vec<Range>,
    /// Staging buffer of the 8-byte-atomic path, allocated on first use.
    stage: Vec<u8>,
}

fn io_stop(e: io::Error, what: &str) -> Stop {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        Stop::Closed
    } else {
        Stop::Failed(format!("{what}: {e}"))
    }
}

impl LaneServer<'_> {
    fn serve(&mut self) {
        loop {
            match self.one() {
                Ok(()) => {}
                Err(Stop::Closed) => return,
                Err(Stop::Failed(why)) => {
                    warn!("lane {}: {why}; dropping the connection", self.lane);
                    let _ = self.stream.shutdown(Shutdown::Both);
                    return;
                }
            }
        }
    }

    /// Makes whatever is pending durable (lane end).
    fn finish(&mut self) {
        if let Err(e) = self.shared.pool.persist(&mut self.pending, false) {
            error!(
                "lane {}: making pending data durable failed: {e}",
                self.lane
            );
        }
        self.pending.clear();
    }

    fn ack(&mut self, tag: u64, status: Status) -> Result<(), Stop> {
        self.stream
            .write_all(&Ack { tag, status }.encode())
            .map_err(|e| io_stop(e, "sending an acknowledgement"))
    }

    fn read_header(&mut self) -> Result<[u8; HEADER_LEN], Stop> {
        let mut raw = [0u8; HEADER_LEN];
        match fill(&self.stream, &mut raw, spin_window()) {
            Ok(true) => Ok(raw),
            Ok(false) => Err(Stop::Closed),
            Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {
                Err(Stop::Failed("connection closed mid-header".into()))
            }
            Err(e) => Err(io_stop(e, "reading a request")),
        }
    }

    /// Refuses a request whose payload cannot be trusted and ends the lane.
    fn bad_request(&mut self, tag: u64, why: String) -> Result<(), Stop> {
        let _ = self.ack(tag, Status::BadRequest);
        Err(Stop::Failed(why))
    }

    fn one(&mut self) -> Result<(), Stop> {
        let raw = self.read_header()?;
        let h = match RequestHeader::decode(&raw) {
            Ok(h) => h,
            Err(e) => {
                let tag = u64::from_le_bytes(raw[24..32].try_into().unwrap_or([0; 8]));
                return self.bad_request(tag, format!("bad request header: {e}"));
            }
        };
        trace!(
            "lane {}: {:?} offset {} length {} flags {}",
            self.lane,
            h.op,
            h.offset,
            h.length,
            h.flags
        );
        let pool = &self.shared.pool;
        if h.op != Op::Drain {
            if let Err(e) = pool.check_range(h.offset, h.length) {
                return self.bad_request(h.tag, format!("{:?}: {e}", h.op));
            }
        }
        if h.op.has_payload() && pool.has_header() && h.offset < HDR_SIZE {
            return self.bad_request(
                h.tag,
                format!(
                    "{:?} at offset {} would overwrite the pool header",
                    h.op, h.offset
                ),
            );
        }
        match h.op {
            Op::Flush | Op::Persist | Op::DeepPersist => {
                self.receive(h.offset, h.length, h.flags & FLAG_RELAXED != 0)?;
                if h.length > 0 {
                    self.pending.push(Range {
                        offset: h.offset,
                        len: h.length,
                    });
                }
                match h.op {
                    Op::Flush => {
                        if self.pending.len() >= MAX_PENDING {
                            self.make_durable(false)?;
                        }
                        Ok(())
                    }
                    op => {
                        let st = self.make_durable(op == Op::DeepPersist)?;
                        self.ack(h.tag, st)
                    }
                }
            }
            Op::Drain => {
                let st = self.make_durable(false)?;
                self.ack(h.tag, st)
            }
            Op::Read => {
                self.ack(h.tag, Status::Ok)?;
                pool.send_from(self.stream.as_fd(), h.offset, h.length)
                    .map_err(|e| io_stop(e, "sending read data"))
            }
        }
    }

    /// One coalesced durability pass over everything pending. The status is
    /// what the initiator is told.
    fn make_durable(&mut self, deep: bool) -> Result<Status, Stop> {
        let r = self.shared.pool.persist(&mut self.pending, deep);
        self.pending.clear();
        Ok(match r {
            Ok(()) => Status::Ok,
            Err(e) => {
                error!("lane {}: durability failed: {e}", self.lane);
                Status::Fatal
            }
        })
    }

    /// Receives `len` payload bytes into the pool at `offset`.
    fn receive(&mut self, offset: u64, len: u64, relaxed: bool) -> Result<(), Stop> {
        let pool = &self.shared.pool;
        if relaxed {
            let slot = SpinSlot::acquire();
            return pool
                .recv_into(self.stream.as_fd(), offset, len, slot.window(spin_window()))
                .map_err(|e| Stop::Failed(format!("receiving payload: {e}")));
        }
        if self.stage.is_empty() && len > 0 {
            self.stage = vec![0u8; STAGE_LEN];
        }
        let mut done = 0u64;
        while done < len {
            let at = offset + done;
            let mut n = (len - done).min(STAGE_LEN as u64);
            if n < len - done {
                // End every chunk on an 8-byte boundary of the pool, so no
                // aligned word is written in two pieces.
                n -= (at + n) % 8;
            }
            let buf = &mut self.stage[..n as usize];
            match fill(&self.stream, buf, spin_window()) {
                Ok(true) => {}
                Ok(false) => return Err(Stop::Failed("connection closed mid-payload".into())),
                Err(e) => return Err(Stop::Failed(format!("receiving payload: {e}"))),
            }
            pool.write(at, buf)
                .map_err(|e| Stop::Failed(format!("writing payload: {e}")))?;
            done += n;
        }
        Ok(())
    }
}
