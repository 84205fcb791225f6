//! The initiator's half of the TCP transport.

use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr, TcpStream};
use std::time::Duration;

use rpmem_proto::control::{Session, SECRET_LEN};
use rpmem_proto::data::{Ack, Hello, Op, RequestHeader, Tags, ACK_LEN, HELLO_TAG};
use rpmem_proto::{Status, PROTO_VERSION};

use super::{sys, StreamSocket};
use crate::initiator::{Connector, InitiatorLane, LaneOptions};
use crate::spin::{poll_then_block, transfer_window};
use crate::{Region, Result, TransportError};

/// Opens TCP lanes to the address and port of the session answer.
#[derive(Debug, Default, Clone, Copy)]
pub struct TcpConnector;

impl Connector for TcpConnector {
    fn name(&self) -> &'static str {
        "tcp"
    }

    fn connect(
        &self,
        session: &Session,
        region: Region,
        options: &LaneOptions,
    ) -> Result<Vec<Box<dyn InitiatorLane>>> {
        let ip: IpAddr = session.addr.parse().map_err(|_| {
            TransportError::Protocol(format!("bad data address '{}'", session.addr))
        })?;
        let addr = SocketAddr::new(ip, session.port);
        (0..session.nlanes)
            .map(|i| {
                let fail = |what: &str, e: io::Error| {
                    TransportError::Failed(format!("lane {i}: {what} {addr}: {e}"))
                };
                let stream = TcpStream::connect_timeout(&addr, options.timeout)
                    .map_err(|e| fail("cannot connect to", e))?;
                stream
                    .set_nodelay(true)
                    .map_err(|e| fail("cannot configure", e))?;
                TcpLane::over(stream, i, &session.secret, region, options)
                    .map(|l| Box::new(l) as Box<dyn InitiatorLane>)
            })
            .collect()
    }
}

/// A connected, authenticated lane on a stream socket.
#[derive(Debug)]
pub struct TcpLane<S: StreamSocket = TcpStream> {
    stream: S,
    index: u32,
    region: Region,
    spin: Duration,
    tags: Tags,
    /// Payload bytes sent since the last answer: the next answer can only
    /// come once the target has taken them in.
    in_flight: u64,
}

impl<S: StreamSocket> TcpLane<S> {
    /// Makes `stream`, connected to the target's data listener, lane
    /// `index` of the session: greets with the secret and waits for the
    /// target to admit it.
    pub fn over(
        stream: S,
        index: u32,
        secret: &[u8; SECRET_LEN],
        region: Region,
        options: &LaneOptions,
    ) -> Result<TcpLane<S>> {
        let fail =
            |what: &str, e: io::Error| TransportError::Failed(format!("lane {index}: {what}: {e}"));
        stream
            .set_timeouts(Some(options.timeout))
            .map_err(|e| fail("cannot configure the connection", e))?;
        let mut lane = TcpLane {
            stream,
            index,
            region,
            spin: options.spin,
            tags: Tags::default(),
            in_flight: 0,
        };
        let hello = Hello {
            version: PROTO_VERSION,
            lane: index,
            secret: *secret,
        };
        lane.send_bytes(&hello.encode(), std::ptr::null(), 0, false)
            .map_err(|e| fail("cannot greet the target", e))?;
        let status = lane.recv_ack(HELLO_TAG)?;
        if status != Status::Ok {
            return Err(TransportError::Refused {
                status,
                message: format!("lane {index}: the target refused the data connection"),
            });
        }
        Ok(lane)
    }

    /// Shuts the connection (its state is unknown now) and classifies `e`.
    fn io_failed(&mut self, what: &str, e: &io::Error) -> TransportError {
        let _ = self.stream.shutdown(Shutdown::Both);
        TransportError::lane_io(self.index, what, e)
    }

    /// Sends `head` then `len` bytes at `body`, polling while the socket
    /// buffer is full (see [`poll_then_block`]).
    fn send_bytes(&self, head: &[u8], body: *const u8, len: usize, more: bool) -> io::Result<()> {
        let fd = self.stream.as_raw_fd();
        let total = head.len() + len;
        let sent = poll_then_block(self.spin, total, |done, nonblocking| {
            let h = done.min(head.len());
            let b = done - h;
            // SAFETY: `b <= len` and the caller vouched for body..body+len,
            // so body+b..body+len is readable (empty when b == len).
            unsafe {
                sys::send_two(
                    fd,
                    &head[h..],
                    body.wrapping_add(b),
                    len - b,
                    nonblocking,
                    more,
                )
            }
        })?;
        if sent < total {
            return Err(io::ErrorKind::WriteZero.into());
        }
        Ok(())
    }

    /// Fills `buf`, polling for up to `window` first (a reply within a round
    /// trip is then picked up without a wake-up).
    fn recv_exact(&self, buf: &mut [u8], window: Duration) -> io::Result<()> {
        let fd = self.stream.as_raw_fd();
        let got = poll_then_block(window, buf.len(), |done, nonblocking| {
            sys::recv(fd, &mut buf[done..], nonblocking)
        })?;
        if got < buf.len() {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        Ok(())
    }

    fn recv_ack(&mut self, tag: u64) -> Result<Status> {
        let mut raw = [0u8; ACK_LEN];
        let window = transfer_window(self.spin, std::mem::take(&mut self.in_flight));
        if let Err(e) = self.recv_exact(&mut raw, window) {
            return Err(self.io_failed("waiting for the acknowledgement", &e));
        }
        let ack = match Ack::decode(&raw) {
            Ok(a) => a,
            Err(e) => {
                let e = io::Error::new(io::ErrorKind::InvalidData, e.to_string());
                return Err(self.io_failed("bad acknowledgement", &e));
            }
        };
        ack.answering(tag).map_err(|_| {
            let e = io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "acknowledgement for request {} while waiting for {tag}",
                    ack.tag
                ),
            );
            self.io_failed("out-of-order acknowledgement", &e)
        })
    }

    /// Sends a request with `len` bytes of the region at `offset` as its
    /// payload (none for 0); returns its tag.
    fn request(&mut self, op: Op, flags: u8, offset: u64, len: usize) -> Result<u64> {
        let body = if op.has_payload() {
            self.region.range(offset, len).ok_or_else(|| {
                TransportError::Invalid(format!(
                    "lane {}: range {offset}+{len} is outside the region",
                    self.index
                ))
            })?
        } else {
            std::ptr::null()
        };
        let tag = self.tags.next_tag();
        let h = RequestHeader {
            op,
            flags,
            offset,
            length: len as u64,
            tag,
        };
        let body_len = if op.has_payload() { len } else { 0 };
        // A request without an answer (a flush) may wait to share segments
        // with the next one; the drain or persist that follows pushes.
        if let Err(e) = self.send_bytes(&h.encode(), body, body_len, !op.has_reply()) {
            let what = match op {
                Op::Drain => "sending drain",
                Op::Read => "sending read",
                _ => "sending data",
            };
            return Err(self.io_failed(what, &e));
        }
        self.in_flight += body_len as u64;
        Ok(tag)
    }
}

impl<S: StreamSocket> InitiatorLane for TcpLane<S> {
    fn persist(&mut self, deep: bool, flags: u8, offset: u64, len: usize) -> Result<Status> {
        let op = if deep { Op::DeepPersist } else { Op::Persist };
        let tag = self.request(op, flags, offset, len)?;
        self.recv_ack(tag)
    }

    fn flush(&mut self, flags: u8, offset: u64, len: usize) -> Result<()> {
        self.request(Op::Flush, flags, offset, len).map(drop)
    }

    fn drain(&mut self) -> Result<Status> {
        let tag = self.request(Op::Drain, 0, 0, 0)?;
        self.recv_ack(tag)
    }

    fn read(&mut self, buf: &mut [u8], offset: u64) -> Result<Status> {
        let tag = self.request(Op::Read, 0, offset, buf.len())?;
        let status = self.recv_ack(tag)?;
        if status == Status::Ok {
            let window = transfer_window(self.spin, buf.len() as u64);
            if let Err(e) = self.recv_exact(buf, window) {
                return Err(self.io_failed("receiving read data", &e));
            }
        }
        Ok(status)
    }

    fn shutdown(&mut self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}
