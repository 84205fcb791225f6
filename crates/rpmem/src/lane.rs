//! One lane: a TCP connection to the daemon carrying requests in order.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

use rpmem_proto::control::SECRET_LEN;
use rpmem_proto::data::{Ack, Hello, Op, RequestHeader, ACK_LEN};
use rpmem_proto::{Status, PROTO_VERSION};

use crate::error::{Error, Result};
use crate::spin::SpinSlot;
use crate::sys;

/// A connected, authenticated lane.
pub(crate) struct Lane {
    stream: TcpStream,
    index: u32,
    spin: Duration,
    next_tag: u64,
    /// Flushes sent since the last drain or persist.
    undrained: usize,
    /// Set after an I/O failure: the stream's state is unknown, so the lane
    /// refuses further use.
    broken: Option<String>,
}

fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

impl Lane {
    /// Connects lane `index` to the daemon and proves it belongs to the session.
    pub(crate) fn connect(
        addr: SocketAddr,
        index: u32,
        secret: &[u8; SECRET_LEN],
        timeout: Duration,
        spin: Duration,
    ) -> Result<Lane> {
        let fail = |what: &str, e: io::Error| {
            Error::ConnectionReset(format!("lane {index}: {what} {addr}: {e}"))
        };
        let mut stream =
            TcpStream::connect_timeout(&addr, timeout).map_err(|e| fail("cannot connect to", e))?;
        stream
            .set_nodelay(true)
            .map_err(|e| fail("cannot configure", e))?;
        stream
            .set_read_timeout(Some(timeout))
            .and_then(|_| stream.set_write_timeout(Some(timeout)))
            .map_err(|e| fail("cannot configure", e))?;
        let hello = Hello {
            version: PROTO_VERSION,
            lane: index,
            secret: *secret,
        };
        stream
            .write_all(&hello.encode())
            .map_err(|e| fail("cannot greet", e))?;
        let mut lane = Lane {
            stream,
            index,
            spin,
            next_tag: 1,
            undrained: 0,
            broken: None,
        };
        let ack = lane.recv_ack(0)?;
        if ack != Status::Ok {
            return Err(Error::Remote {
                status: ack,
                message: format!("lane {index}: the target refused the data connection"),
            });
        }
        Ok(lane)
    }

    fn check(&self) -> Result<()> {
        match &self.broken {
            Some(why) => Err(Error::ConnectionAborted(format!(
                "lane {} is unusable after an earlier failure: {why}",
                self.index
            ))),
            None => Ok(()),
        }
    }

    /// Marks the lane broken and builds the error for an I/O failure.
    fn io_failed(&mut self, what: &str, e: io::Error) -> Error {
        let msg = if timed_out(&e) {
            format!(
                "lane {}: the target did not answer in time ({what})",
                self.index
            )
        } else if e.kind() == io::ErrorKind::UnexpectedEof {
            format!(
                "lane {}: the target closed the connection ({what})",
                self.index
            )
        } else {
            format!("lane {}: {what}: {e}", self.index)
        };
        self.broken = Some(msg.clone());
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        Error::ConnectionReset(msg)
    }

    fn header(&mut self, op: Op, flags: u8, offset: u64, length: u64) -> RequestHeader {
        let tag = self.next_tag;
        self.next_tag = self.next_tag.wrapping_add(1);
        RequestHeader {
            op,
            flags,
            offset,
            length,
            tag,
        }
    }

    fn recv_ack(&mut self, tag: u64) -> Result<Status> {
        let mut raw = [0u8; ACK_LEN];
        if let Err(e) = self.recv_exact(&mut raw) {
            return Err(self.io_failed("waiting for the acknowledgement", e));
        }
        let ack = match Ack::decode(&raw) {
            Ok(a) => a,
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                return Err(self.io_failed("bad acknowledgement", e));
            }
        };
        if ack.tag != tag {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "acknowledgement for request {} while waiting for {tag}",
                    ack.tag
                ),
            );
            return Err(self.io_failed("out-of-order acknowledgement", e));
        }
        Ok(ack.status)
    }

    /// Fills `buf`, busy-polling for up to `spin` before blocking: a reply that
    /// arrives within a round trip is then picked up without a wake-up.
    fn recv_exact(&mut self, buf: &mut [u8]) -> io::Result<()> {
        let mut got = 0;
        let slot = SpinSlot::acquire();
        let spin = slot.window(self.spin);
        if !spin.is_zero() {
            let start = Instant::now();
            let fd = self.stream.as_raw_fd();
            while got < buf.len() {
                match sys::recv_nowait(fd, &mut buf[got..]) {
                    Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                    Ok(n) => got += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        if start.elapsed() >= spin {
                            break;
                        }
                        std::hint::spin_loop();
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
        }
        drop(slot);
        self.stream.read_exact(&mut buf[got..])
    }

    fn status(&self, status: Status, what: &str) -> Result<()> {
        match status {
            Status::Ok => Ok(()),
            s => Err(Error::Remote {
                status: s,
                message: format!("lane {}: the target failed the {what} ({s:?})", self.index),
            }),
        }
    }

    /// Sends `len` bytes at `src` to `offset` of the remote pool with `op`.
    ///
    /// # Safety
    /// `src..src+len` must be readable.
    unsafe fn send(
        &mut self,
        op: Op,
        flags: u8,
        offset: u64,
        src: *const u8,
        len: usize,
    ) -> Result<u64> {
        let h = self.header(op, flags, offset, len as u64);
        let slot = SpinSlot::acquire();
        // SAFETY: forwarded from the caller.
        let sent = unsafe {
            sys::send_from_raw(
                self.stream.as_raw_fd(),
                &h.encode(),
                src,
                len,
                slot.window(self.spin),
                // A flush needs no answer: let it share segments with the
                // next request; the drain or persist that follows pushes.
                op == Op::Flush,
            )
        };
        drop(slot);
        match sent {
            Ok(()) => Ok(h.tag),
            Err(e) => Err(self.io_failed("sending data", e)),
        }
    }

    /// Copies and makes durable (with every earlier flush on this lane).
    ///
    /// # Safety
    /// `src..src+len` must be readable.
    pub(crate) unsafe fn persist(
        &mut self,
        deep: bool,
        flags: u8,
        offset: u64,
        src: *const u8,
        len: usize,
    ) -> Result<()> {
        self.check()?;
        let op = if deep { Op::DeepPersist } else { Op::Persist };
        // SAFETY: forwarded from the caller.
        let tag = unsafe { self.send(op, flags, offset, src, len) }?;
        let st = self.recv_ack(tag)?;
        self.undrained = 0;
        self.status(st, "persist")
    }

    /// Copies without waiting. After `queue_limit` flushes without a drain it
    /// drains first, so a lane never has more than that many in flight.
    ///
    /// # Safety
    /// `src..src+len` must be readable.
    pub(crate) unsafe fn flush(
        &mut self,
        flags: u8,
        offset: u64,
        src: *const u8,
        len: usize,
        queue_limit: usize,
    ) -> Result<()> {
        self.check()?;
        if self.undrained >= queue_limit {
            self.drain()?;
        }
        // SAFETY: forwarded from the caller.
        unsafe { self.send(Op::Flush, flags, offset, src, len) }?;
        self.undrained += 1;
        Ok(())
    }

    /// Makes every earlier flush on this lane durable.
    pub(crate) fn drain(&mut self) -> Result<()> {
        self.check()?;
        let h = self.header(Op::Drain, 0, 0, 0);
        if let Err(e) = self.stream.write_all(&h.encode()) {
            return Err(self.io_failed("sending drain", e));
        }
        let st = self.recv_ack(h.tag)?;
        self.undrained = 0;
        self.status(st, "drain")
    }

    /// Reads `buf.len()` bytes at `offset` of the remote pool.
    pub(crate) fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<()> {
        self.check()?;
        let h = self.header(Op::Read, 0, offset, buf.len() as u64);
        if let Err(e) = self.stream.write_all(&h.encode()) {
            return Err(self.io_failed("sending read", e));
        }
        let st = self.recv_ack(h.tag)?;
        self.status(st, "read")?;
        if let Err(e) = self.recv_exact(buf) {
            return Err(self.io_failed("receiving read data", e));
        }
        Ok(())
    }

    /// Ends the lane: the daemon sees end-of-stream after our last request.
    pub(crate) fn shutdown(&self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
    }
}
