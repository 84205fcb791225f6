//! `rpmemd --bench-echo`: the raw TCP baseline for `rpmem bench`.
//!
//! It is started exactly like a serving daemon (over ssh, on the address of
//! the ssh session), so the baseline crosses the same two endpoints as the
//! pool traffic. It prints its address and port on stdout and then answers every message
//! (`u32` length, `u32` zero, then that many bytes) with 8 bytes, spinning on
//! a non-blocking socket: the best round trip this link can do. It exits when
//! its stdin closes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;

use log::{info, warn};
use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};

use crate::error::{DaemonError, Result};

/// Largest message accepted, so a confused peer cannot make us allocate.
const MAX_MESSAGE: usize = 64 << 20;

/// Serves the baseline until stdin closes.
pub fn serve(addr: IpAddr) -> Result<()> {
    let listener = TcpListener::bind((addr, 0))
        .map_err(|e| DaemonError::io(format!("cannot listen on {addr}"), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| DaemonError::io("listener address", e))?
        .port();
    println!("{addr} {port}");
    io::stdout()
        .flush()
        .map_err(|e| DaemonError::io("writing the port", e))?;
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    info!("bench-echo listening on {addr}:{port}");
    for conn in listener.incoming() {
        match conn {
            Ok(s) => {
                if let Err(e) = echo(s) {
                    warn!("bench-echo connection ended: {e}");
                }
            }
            Err(e) => warn!("bench-echo accept: {e}"),
        }
    }
    Ok(())
}

/// Fills `buf` by spinning on non-blocking reads. `Ok(false)` on a clean end.
fn spin_fill(s: &TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        match recv(s.as_raw_fd(), &mut buf[got..], MsgFlags::MSG_DONTWAIT) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn echo(s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    let mut buf = vec![0u8; 1 << 20];
    let mut head = [0u8; 8];
    let reply = [0u8; 8];
    while spin_fill(&s, &mut head)? {
        let len = u32::from_le_bytes(head[..4].try_into().expect("4 bytes")) as usize;
        if len > MAX_MESSAGE {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "message too long",
            ));
        }
        let mut left = len;
        while left > 0 {
            let n = left.min(buf.len());
            if !spin_fill(&s, &mut buf[..n])? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            left -= n;
        }
        let mut sent = 0;
        while sent < reply.len() {
            match send(s.as_raw_fd(), &reply[sent..], MsgFlags::MSG_NOSIGNAL) {
                Ok(n) => sent += n,
                Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}
