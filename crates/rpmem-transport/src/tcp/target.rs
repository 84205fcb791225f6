//! The target's half of the TCP transport: the accept thread, the Hello,
//! and one thread per lane.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use log::{debug, error, warn};
use rpmem_proto::data::{Ack, Hello, RequestHeader, HEADER_LEN, HELLO_LEN, HELLO_TAG};
use rpmem_proto::Status;

use super::{sys, StreamSocket};
use crate::spin::{poll_then_block, transfer_window};
use crate::target::{
    Incoming, LaneAdmission, LaneHandler, PoolMemory, RunningListener, TargetLane, TargetListener,
};
use crate::{Result, TransportError};

/// Connections allowed to be waiting for their Hello beyond the session's
/// lane count: a client connects all its lanes at once, a stranger's silent
/// connections must not pile up a thread each.
pub const SPARE_UNAUTHENTICATED: u32 = 16;
/// How long a new connection has to present its Hello.
pub const HELLO_TIMEOUT: Duration = Duration::from_secs(5);
/// Size of a lane's receive buffer, which is also the staging buffer of the
/// 8-byte-atomic write path: small enough to stay in the first-level cache
/// between the receive and the copy into the pool (for 1 MiB persists of
/// that path, 32 KiB moved ~0.72 of the raw stream where 64 KiB, more than
/// the 48 KiB L1 of the development VM, moved ~0.58, and 16 KiB ~0.67).
pub const STAGE_LEN: usize = 32 << 10;

/// A bound data listener, not yet admitting lanes.
#[derive(Debug)]
pub struct TcpListener {
    listener: std::net::TcpListener,
    spin: Duration,
}

impl TcpListener {
    /// Listens on an ephemeral port of `ip`; lanes poll for up to `spin`
    /// before blocking.
    pub fn bind(ip: IpAddr, spin: Duration) -> io::Result<TcpListener> {
        Ok(TcpListener {
            listener: std::net::TcpListener::bind((ip, 0))?,
            spin,
        })
    }

    /// The port initiators connect to.
    pub fn port(&self) -> io::Result<u16> {
        Ok(self.listener.local_addr()?.port())
    }
}

/// State shared by the accept thread and the lane threads.
struct Accepting {
    admission: Arc<LaneAdmission>,
    handler: LaneHandler,
    spin: Duration,
    stop: AtomicBool,
    conns: Mutex<Vec<(TcpStream, JoinHandle<()>)>>,
    /// Connections accepted that have not finished their Hello yet.
    unauthenticated: AtomicUsize,
}

struct Running {
    shared: Arc<Accepting>,
    local: SocketAddr,
    accept: Option<JoinHandle<()>>,
}

impl TargetListener for TcpListener {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn start(
        self: Box<Self>,
        admission: Arc<LaneAdmission>,
        handler: LaneHandler,
    ) -> io::Result<Box<dyn RunningListener>> {
        let local = self.listener.local_addr()?;
        let shared = Arc::new(Accepting {
            admission,
            handler,
            spin: self.spin,
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
            unauthenticated: AtomicUsize::new(0),
        });
        let s2 = Arc::clone(&shared);
        let listener = self.listener;
        let accept = thread::Builder::new()
            .name("accept".into())
            .spawn(move || accept_loop(listener, s2))?;
        Ok(Box::new(Running {
            shared,
            local,
            accept: Some(accept),
        }))
    }
}

impl RunningListener for Running {
    fn stop(mut self: Box<Self>) {
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
    }
}

fn accept_loop(listener: std::net::TcpListener, shared: Arc<Accepting>) {
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
        let peer = match stream.peer_addr() {
            Ok(a) => a,
            Err(e) => {
                warn!("data connection dropped: no peer address: {e}");
                continue;
            }
        };
        if !shared.admission.peers().allows(peer.ip()) {
            // Closed unread: only the session's initiator (and the networks
            // the administrator allowed) may even try a secret.
            warn!(
                "data connection from {peer} refused: not from an allowed address ({})",
                shared.admission.peers()
            );
            let _ = stream.shutdown(Shutdown::Both);
            continue;
        }
        let peer = peer.to_string();
        let limit = (shared.admission.nlanes() + SPARE_UNAUTHENTICATED) as usize;
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
    let _ = stream.write_all(
        &Ack {
            tag: HELLO_TAG,
            status,
        }
        .encode(),
    );
    let _ = stream.shutdown(Shutdown::Both);
}

/// Reads the Hello, all of it within [`HELLO_TIMEOUT`] of the start: a
/// peer dribbling a byte at a time cannot hold its slot for longer.
fn read_hello(stream: &mut TcpStream) -> io::Result<[u8; HELLO_LEN]> {
    let deadline = Instant::now() + HELLO_TIMEOUT;
    let mut raw = [0u8; HELLO_LEN];
    let mut got = 0;
    while got < HELLO_LEN {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("{got} of {HELLO_LEN} bytes in {HELLO_TIMEOUT:?}"),
            ));
        }
        stream.set_read_timeout(Some(left))?;
        match stream.read(&mut raw[got..]) {
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            // A timeout (or a signal) comes back round to the deadline.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted
                        | io::ErrorKind::WouldBlock
                        | io::ErrorKind::TimedOut
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(raw)
}

fn connection(mut stream: TcpStream, peer: &str, shared: &Accepting) {
    let waiting = Unauthenticated(&shared.unauthenticated);
    let _ = stream.set_nodelay(true);
    let raw = match read_hello(&mut stream) {
        Ok(raw) => raw,
        Err(e) => {
            warn!("data connection from {peer} dropped: no hello ({e})");
            // The accept thread keeps a clone of the stream until it next
            // accepts; shut the connection now so the peer sees it end.
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    };
    drop(waiting);
    let hello = match Hello::decode(&raw) {
        Ok(h) => h,
        Err(e) => return refuse(stream, peer, Status::Unauthenticated, &e.to_string()),
    };
    let admitted = match shared.admission.admit(&hello) {
        Ok(a) => a,
        Err((status, why)) => return refuse(stream, peer, status, &why),
    };
    let index = admitted.index();
    let ok = stream.set_read_timeout(None).and_then(|_| {
        stream.write_all(
            &Ack {
                tag: HELLO_TAG,
                status: Status::Ok,
            }
            .encode(),
        )
    });
    if let Err(e) = ok {
        warn!("lane {index}: cannot acknowledge the connection: {e}");
        return;
    }
    debug!("lane {index} connected from {peer}");
    let mut lane = TcpTargetLane::new(stream, index, shared.spin);
    (shared.handler)(&mut lane);
    debug!("lane {index} closed");
}

/// An admitted lane on the target, on a stream socket.
#[derive(Debug)]
pub struct TcpTargetLane<S: StreamSocket = TcpStream> {
    stream: S,
    index: u32,
    spin: Duration,
    inbox: Inbox,
}

/// Bytes received ahead of what the lane has consumed. One `recv` takes
/// whatever has arrived, up to [`STAGE_LEN`], so a burst of flushes costs a
/// few system calls rather than two each (header, then payload). It is also
/// the staging buffer of the 8-byte-atomic path.
#[derive(Debug, Default)]
struct Inbox {
    /// Allocated on first use.
    buf: Vec<u8>,
    start: usize,
    end: usize,
}

impl Inbox {
    fn len(&self) -> usize {
        self.end - self.start
    }

    /// The next `n` bytes (at most [`Inbox::len`]), consumed.
    fn take(&mut self, n: usize) -> &[u8] {
        let at = self.start;
        self.start += n;
        &self.buf[at..at + n]
    }

    /// Makes at least `want` bytes (at most [`STAGE_LEN`]) available,
    /// receiving as many more as have arrived and fit. Returns how many are
    /// available: fewer than `want` only at end of stream.
    fn fill(&mut self, fd: i32, spin: Duration, want: usize) -> io::Result<usize> {
        if self.len() >= want {
            return Ok(self.len());
        }
        if self.buf.is_empty() {
            self.buf = vec![0u8; STAGE_LEN];
        }
        if self.buf.len() - self.start < want {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let need = want - self.len();
        let (end, buf) = (self.end, &mut self.buf);
        let got = poll_then_block(spin, need, |done, nonblocking| {
            sys::recv(fd, &mut buf[end + done..], nonblocking)
        })?;
        self.end += got;
        Ok(self.len())
    }
}

/// End of stream ends the lane quietly; anything else is a failure.
fn io_stop(e: &io::Error, what: &str) -> TransportError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        TransportError::Closed(what.into())
    } else {
        TransportError::Failed(format!("{what}: {e}"))
    }
}

/// Receives exactly `len` bytes into `dst`.
///
/// # Safety
/// `dst..dst+len` must be writable and not referenced by Rust references.
unsafe fn recv_raw_exact(fd: i32, dst: *mut u8, len: usize, spin: Duration) -> io::Result<()> {
    let got = poll_then_block(spin, len, |done, nonblocking| {
        // SAFETY: done < len, so dst+done..dst+len is inside the caller's range.
        unsafe { sys::recv_raw(fd, dst.add(done), len - done, nonblocking) }
    })?;
    if got < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

impl<S: StreamSocket> TcpTargetLane<S> {
    /// Lane `index` on `stream`, already admitted; it polls for up to
    /// `spin` before blocking.
    pub fn new(stream: S, index: u32, spin: Duration) -> Self {
        TcpTargetLane {
            stream,
            index,
            spin,
            inbox: Inbox::default(),
        }
    }

    /// See [`Inbox::fill`].
    fn fill(&mut self, want: usize, spin: Duration) -> io::Result<usize> {
        self.inbox.fill(self.stream.as_raw_fd(), spin, want)
    }
}

impl<S: StreamSocket> TargetLane for TcpTargetLane<S> {
    fn index(&self) -> u32 {
        self.index
    }

    fn next(&mut self) -> Result<Incoming> {
        match self.fill(HEADER_LEN, self.spin) {
            Ok(0) => return Ok(Incoming::Closed),
            Ok(n) if n < HEADER_LEN => {
                return Err(TransportError::Failed(
                    "connection closed mid-header".into(),
                ))
            }
            Ok(_) => {}
            Err(e) => return Err(io_stop(&e, "reading a request")),
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(self.inbox.take(HEADER_LEN));
        Ok(match RequestHeader::decode(&raw) {
            Ok(h) => Incoming::Request(h),
            Err(e) => Incoming::Malformed {
                tag: RequestHeader::tag_of(&raw),
                why: format!("bad request header: {e}"),
            },
        })
    }

    fn receive_payload(
        &mut self,
        mem: &dyn PoolMemory,
        request: &RequestHeader,
        relaxed: bool,
    ) -> Result<()> {
        let (offset, len) = (request.offset, request.length);
        let failed = |e: io::Error| TransportError::Failed(format!("receiving payload: {e}"));
        // Mid-payload the rest is on its way: poll longer for a longer one.
        let spin = transfer_window(self.spin, len);
        if relaxed {
            // What came with earlier reads first, the rest straight into the pool.
            let early = (self.inbox.len() as u64).min(len);
            mem.write_atomic(offset, self.inbox.take(early as usize))
                .map_err(failed)?;
            let fd = self.stream.as_raw_fd();
            return mem
                .spans(offset + early, len - early, &mut |span: NonNull<[u8]>| {
                    // SAFETY: PoolMemory promises the span writable, with no
                    // Rust reference to it, for the duration of this call.
                    unsafe { recv_raw_exact(fd, span.cast::<u8>().as_ptr(), span.len(), spin) }
                })
                .map_err(failed);
        }
        let mut done = 0u64;
        while done < len {
            let at = offset + done;
            let want = (len - done).min(STAGE_LEN as u64) as usize;
            match self.fill(want, spin) {
                Ok(have) if have >= want => {}
                Ok(_) => {
                    return Err(TransportError::Failed(
                        "connection closed mid-payload".into(),
                    ))
                }
                Err(e) => return Err(failed(e)),
            }
            let mut n = want as u64;
            if n < len - done {
                // End every piece on an 8-byte boundary of the pool, so no
                // aligned word is written in two pieces.
                n -= (at + n) % 8;
            }
            mem.write_atomic(at, self.inbox.take(n as usize))
                .map_err(|e| TransportError::Failed(format!("writing payload: {e}")))?;
            done += n;
        }
        Ok(())
    }

    fn answer(&mut self, tag: u64, status: Status) -> Result<()> {
        let ack = Ack { tag, status }.encode();
        let fd = self.stream.as_raw_fd();
        let sent = poll_then_block(Duration::ZERO, ack.len(), |done, nonblocking| {
            // SAFETY: an empty body; the header is borrowed for the call.
            unsafe { sys::send_two(fd, &ack[done..], std::ptr::null(), 0, nonblocking, false) }
        });
        match sent {
            Ok(n) if n == ack.len() => Ok(()),
            Ok(_) => Err(TransportError::Closed("sending an acknowledgement".into())),
            Err(e) => Err(io_stop(&e, "sending an acknowledgement")),
        }
    }

    fn send_read(&mut self, mem: &dyn PoolMemory, offset: u64, len: u64) -> Result<()> {
        let fd = self.stream.as_raw_fd();
        mem.spans(offset, len, &mut |span: NonNull<[u8]>| {
            let (p, n) = (span.cast::<u8>().as_ptr().cast_const(), span.len());
            let sent = poll_then_block(Duration::ZERO, n, |done, nonblocking| {
                // SAFETY: PoolMemory promises the span readable for this
                // call; done < n keeps the range inside it.
                unsafe { sys::send_two(fd, &[], p.add(done), n - done, nonblocking, false) }
            })?;
            if sent < n {
                return Err(io::ErrorKind::WriteZero.into());
            }
            Ok(())
        })
        .map_err(|e| io_stop(&e, "sending read data"))
    }

    fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Both);
    }
}
