//! The raw floor: plain TCP between this process and `rpmemd --bench-echo`
//! on the target, carrying the same bytes as the figure it is set beside.
//! Both ends spin without limit while a round runs (no spin policy of the
//! product's), and park in the kernel between rounds.

use std::io::{BufRead, BufReader, IoSlice};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::sys::socket::{recv, sendmsg, MsgFlags};
use rpmem::Config;
use rpmem_proto::bench::{EchoHeader, ECHO_BANNER, ECHO_PARK, ECHO_SPAN};

use crate::error::{CliError, Result};

/// The acknowledgement stand-in the server answers with.
const ACK: usize = 16;
/// A spinning wait longer than this means the server is gone or stuck.
const STUCK: Duration = Duration::from_secs(30);

/// `rpmemd --bench-echo` on the target, reached the way the engine reaches
/// the daemon.
pub(super) struct Echo {
    child: Child,
    addr: SocketAddr,
}

impl Echo {
    /// Starts the server and learns its address.
    pub(super) fn start(cfg: &Config, target: &str) -> Result<Echo> {
        let mut child = rpmem::remote_command(cfg, target, "--bench-echo")?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::io(format!("cannot run '{}'", cfg.ssh), e))?;
        let mut line = String::new();
        if let Some(out) = child.stdout.take() {
            BufReader::new(out)
                .read_line(&mut line)
                .map_err(|e| CliError::io("reading the raw floor server's address", e))?;
        }
        let w: Vec<&str> = line.split_whitespace().collect();
        let addr = match w.as_slice() {
            [ip, port, banner] if *banner == ECHO_BANNER => ip
                .parse()
                .ok()
                .zip(port.parse::<u16>().ok())
                .map(|(ip, port)| SocketAddr::new(ip, port)),
            _ => None,
        };
        match addr {
            Some(addr) => Ok(Echo { child, addr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                Err(CliError::Usage(format!(
                    "the target's rpmemd did not start the raw floor server (said {:?}); \
                     is it this version of rpmem's rpmemd?",
                    line.trim()
                )))
            }
        }
    }

    /// A new connection whose server side holds a buffer of `span` bytes
    /// (touched before this returns).
    pub(super) fn connect(&self, span: usize) -> Result<RawLink> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| CliError::io(format!("cannot connect to {}", self.addr), e))?;
        s.set_nodelay(true)
            .map_err(|e| CliError::io("TCP_NODELAY", e))?;
        let link = RawLink { s };
        link.send(
            EchoHeader {
                reply: ACK as u32,
                flags: ECHO_SPAN | ECHO_PARK,
                offset: span as u64,
                ..Default::default()
            },
            &[],
            false,
        )?;
        link.recv(&mut [0u8; ACK])?;
        Ok(link)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // Closing stdin ends it; kill in case ssh lingers.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One raw connection.
pub(super) struct RawLink {
    s: TcpStream,
}

fn stuck(what: &str, since: Instant) -> Result<()> {
    if since.elapsed() > STUCK {
        return Err(CliError::io(
            format!("raw floor {what}"),
            std::io::ErrorKind::TimedOut.into(),
        ));
    }
    std::hint::spin_loop();
    Ok(())
}

impl RawLink {
    fn send(&self, h: EchoHeader, payload: &[u8], more: bool) -> Result<()> {
        let head = h.encode();
        let (mut hd, mut pd) = (0, 0);
        let mut flags = MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT;
        if more {
            flags |= MsgFlags::from_bits_retain(libc::MSG_MORE);
        }
        let start = Instant::now();
        while hd < head.len() || pd < payload.len() {
            let iov = [IoSlice::new(&head[hd..]), IoSlice::new(&payload[pd..])];
            match sendmsg::<()>(self.s.as_raw_fd(), &iov, &[], flags, None) {
                Ok(n) => {
                    let h = n.min(head.len() - hd);
                    hd += h;
                    pd += n - h;
                }
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => stuck("send", start)?,
                Err(e) => return Err(CliError::io("raw floor send", e.into())),
            }
        }
        Ok(())
    }

    fn recv(&self, buf: &mut [u8]) -> Result<()> {
        let mut got = 0;
        let start = Instant::now();
        while got < buf.len() {
            match recv(self.s.as_raw_fd(), &mut buf[got..], MsgFlags::MSG_DONTWAIT) {
                Ok(0) => {
                    return Err(CliError::io(
                        "raw floor receive",
                        std::io::ErrorKind::UnexpectedEof.into(),
                    ))
                }
                Ok(n) => got += n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => stuck("receive", start)?,
                Err(e) => return Err(CliError::io("raw floor receive", e.into())),
            }
        }
        Ok(())
    }

    /// The twin of a persist: `data` to `offset`, then a 16-byte answer.
    pub(super) fn persist(&self, data: &[u8], offset: usize) -> Result<()> {
        self.send(
            EchoHeader {
                payload: data.len() as u32,
                reply: ACK as u32,
                offset: offset as u64,
                ..Default::default()
            },
            data,
            false,
        )?;
        self.recv(&mut [0u8; ACK])
    }

    /// The twin of a flush: `data` to `offset`, no answer, held back to share
    /// segments with what follows.
    pub(super) fn flush(&self, data: &[u8], offset: usize) -> Result<()> {
        let h = EchoHeader {
            payload: data.len() as u32,
            offset: offset as u64,
            ..Default::default()
        };
        self.send(h, data, true)
    }

    /// The twin of a drain: a bare header and a 16-byte answer.
    pub(super) fn drain(&self) -> Result<()> {
        self.persist(&[], 0)
    }

    /// The twin of a read: a bare header, answered with 16 bytes and then
    /// `buf.len()` bytes from `offset`.
    pub(super) fn read(&self, buf: &mut [u8], offset: usize) -> Result<()> {
        self.send(
            EchoHeader {
                reply: (ACK + buf.len()) as u32,
                offset: offset as u64,
                ..Default::default()
            },
            &[],
            false,
        )?;
        self.recv(&mut [0u8; ACK])?;
        self.recv(buf)
    }

    /// Ends a round: the server answers, then sleeps until the next message.
    pub(super) fn park(&self) -> Result<()> {
        self.send(
            EchoHeader {
                reply: ACK as u32,
                flags: ECHO_PARK,
                ..Default::default()
            },
            &[],
            false,
        )?;
        self.recv(&mut [0u8; ACK])
    }
}
