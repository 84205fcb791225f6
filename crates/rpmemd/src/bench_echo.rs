//! `rpmemd --bench-echo`: the raw TCP floor of `rpmem bench`.
//!
//! It is started exactly like a serving daemon (over ssh, on the address of
//! the ssh session), so the floor crosses the same two endpoints as the pool
//! traffic. It prints `ADDR PORT echo/2` on stdout, then serves every
//! connection on its own thread with the messages of
//! [`rpmem_proto::bench`]: it receives each payload into the connection's
//! buffer and answers with the bytes asked for, spinning on a non-blocking
//! socket without limit (no spin policy of the product's), except after a
//! message marked [`ECHO_PARK`], when it sleeps in the kernel until the next
//! one. It exits when its stdin closes.

use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use log::{info, warn};
use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use rpmem_proto::bench::{
    EchoHeader, ECHO_BANNER, ECHO_HEADER_LEN, ECHO_MAX_MESSAGE, ECHO_PARK, ECHO_SPAN,
};

use crate::error::{DaemonError, Result};

/// Most connections served at once; further ones are closed on arrival.
const MAX_CONNECTIONS: usize = 64;
/// The answer's first bytes, standing in for an acknowledgement.
const ACK_LEN: usize = 16;

/// Serves the floor until stdin closes.
pub fn serve(addr: IpAddr) -> Result<()> {
    let listener = TcpListener::bind((addr, 0))
        .map_err(|e| DaemonError::io(format!("cannot listen on {addr}"), e))?;
    let port = listener
        .local_addr()
        .map_err(|e| DaemonError::io("listener address", e))?
        .port();
    println!("{addr} {port} {ECHO_BANNER}");
    io::stdout()
        .flush()
        .map_err(|e| DaemonError::io("writing the port", e))?;
    std::thread::spawn(|| {
        let mut sink = [0u8; 64];
        while matches!(io::stdin().read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
    info!("bench-echo listening on {addr}:{port}");
    let live = Arc::new(AtomicUsize::new(0));
    for conn in listener.incoming() {
        let s = match conn {
            Ok(s) => s,
            Err(e) => {
                warn!("bench-echo accept: {e}");
                continue;
            }
        };
        if live.fetch_add(1, Ordering::AcqRel) >= MAX_CONNECTIONS {
            live.fetch_sub(1, Ordering::AcqRel);
            warn!("bench-echo: {MAX_CONNECTIONS} connections already, closing a new one");
            continue;
        }
        let live = Arc::clone(&live);
        std::thread::spawn(move || {
            if let Err(e) = echo(s) {
                warn!("bench-echo connection ended: {e}");
            }
            live.fetch_sub(1, Ordering::AcqRel);
        });
    }
    Ok(())
}

/// Fills `buf`; the first byte is awaited asleep when `park`, every other by
/// spinning. `Ok(false)` on a clean end before any byte.
fn fill(s: &TcpStream, buf: &mut [u8], park: bool) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let flags = if park && got == 0 {
            MsgFlags::empty()
        } else {
            MsgFlags::MSG_DONTWAIT
        };
        match recv(s.as_raw_fd(), &mut buf[got..], flags) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
            Ok(n) => got += n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(true)
}

fn send_all(s: &TcpStream, mut buf: &[u8], more: bool) -> io::Result<()> {
    let flags = MsgFlags::MSG_NOSIGNAL
        | MsgFlags::MSG_DONTWAIT
        | if more {
            MsgFlags::from_bits_retain(libc::MSG_MORE)
        } else {
            MsgFlags::empty()
        };
    while !buf.is_empty() {
        match send(s.as_raw_fd(), buf, flags) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

fn invalid(msg: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.into())
}

fn echo(s: TcpStream) -> io::Result<()> {
    s.set_nodelay(true)?;
    // Without a span, payloads go through a scratch buffer and answers are zeros.
    let mut span: Vec<u8> = vec![0u8; ECHO_MAX_MESSAGE as usize / 64];
    let mut spanned = false;
    let mut raw = [0u8; ECHO_HEADER_LEN];
    let ack = [0u8; ACK_LEN];
    let mut park = true;
    while fill(&s, &mut raw, park)? {
        let h = EchoHeader::decode(&raw).map_err(|e| invalid(e.to_string()))?;
        park = h.flags & ECHO_PARK != 0;
        let (payload, reply) = (h.payload as usize, h.reply as usize);
        if h.flags & ECHO_SPAN != 0 {
            if payload != 0 || reply > ACK_LEN {
                return Err(invalid("a span message carries no data"));
            }
            let len = usize::try_from(h.offset).map_err(|_| invalid("span too large"))?;
            // Touched now, so page faults stay out of the measured rounds.
            span = vec![0x5a; len];
            spanned = true;
            send_all(&s, &ack[..reply], false)?;
            continue;
        }
        if spanned {
            let body = reply.saturating_sub(ACK_LEN);
            let at = usize::try_from(h.offset).unwrap_or(usize::MAX);
            let end = at.saturating_add(payload.max(body));
            if end > span.len() {
                return Err(invalid(format!(
                    "message at {at}..{end} outside the span of {}",
                    span.len()
                )));
            }
            if !fill(&s, &mut span[at..at + payload], false)? {
                return Err(io::ErrorKind::UnexpectedEof.into());
            }
            if reply > 0 {
                send_all(&s, &ack[..reply.min(ACK_LEN)], body > 0)?;
                send_all(&s, &span[at..at + body], false)?;
            }
        } else {
            let mut left = payload;
            while left > 0 {
                let n = left.min(span.len());
                if !fill(&s, &mut span[..n], false)? {
                    return Err(io::ErrorKind::UnexpectedEof.into());
                }
                left -= n;
            }
            let mut left = reply;
            while left > 0 {
                let n = left.min(span.len());
                send_all(&s, &span[..n], n < left)?;
                left -= n;
            }
        }
    }
    Ok(())
}
