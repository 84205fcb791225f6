//! Helpers: run the real rpmemd binary and speak the protocol to it.
#![allow(dead_code)]

use std::fs;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Output, Stdio};
use std::time::Duration;

use rpmem_proto::control::{self, PoolRequest, Request, Response, Session};
use rpmem_proto::data::{Ack, Hello, Op, RequestHeader, ACK_LEN};
use rpmem_proto::{PoolAttr, Status, PROTO_VERSION};

pub const M: u64 = 1 << 20;
pub const SSH: &str = "127.0.0.1 1 127.0.0.1 22";

/// A temporary HOME with a poolset directory in it.
pub struct Env {
    pub tmp: tempfile::TempDir,
}

impl Env {
    pub fn new() -> Env {
        let tmp = tempfile::tempdir().unwrap();
        fs::create_dir(tmp.path().join("sets")).unwrap();
        Env { tmp }
    }
    pub fn home(&self) -> &Path {
        self.tmp.path()
    }
    pub fn sets(&self) -> PathBuf {
        self.tmp.path().join("sets")
    }
    /// Writes pool set `name` with `option` ("" for none) and parts of `sizes`.
    pub fn set(&self, name: &str, option: &str, sizes: &[u64]) -> Vec<PathBuf> {
        let mut text = String::from("PMEMPOOLSET\n");
        if !option.is_empty() {
            text.push_str(&format!("OPTION {option}\n"));
        }
        let mut parts = Vec::new();
        for (i, s) in sizes.iter().enumerate() {
            let p = self.tmp.path().join(format!("{name}.{i}"));
            text.push_str(&format!("{s} {}\n", p.display()));
            parts.push(p);
        }
        fs::write(self.sets().join(name), text).unwrap();
        parts
    }
    /// A command for rpmemd with HOME and the poolset dir set.
    pub fn cmd(&self) -> Command {
        let mut c = Command::new(env!("CARGO_BIN_EXE_rpmemd"));
        c.env("HOME", self.home())
            .env("SSH_CONNECTION", SSH)
            .arg("--poolset-dir")
            .arg(self.sets());
        c
    }
    pub fn spawn(&self, extra: &[&str]) -> Daemon {
        Daemon::spawn(self.cmd().args(extra))
    }

    /// A daemon logging warnings and worse to `<home>/<log>`, and that path.
    pub fn spawn_logging(&self, log: &str) -> (Daemon, PathBuf) {
        let path = self.home().join(log);
        let arg = format!("--log-file={}", path.display());
        (self.spawn(&["--log-level=warn", &arg]), path)
    }

    /// A fresh daemon creates pool set `name`, one 2 MiB part without
    /// headers, with `nlanes` lanes: the part, the daemon, its session.
    pub fn created(&self, name: &str, nlanes: u32) -> (PathBuf, Daemon, Session) {
        let part = self.set(name, "NOHDRS", &[2 * M]).remove(0);
        let mut d = self.spawn(&[]);
        let s = opened(d.create(name, 2 * M, nlanes, None));
        (part, d, s)
    }

    /// A fresh daemon opens pool set `name` (2 MiB) and closes it cleanly:
    /// whoever had it has released it.
    pub fn assert_reopens(&self, name: &str) {
        let mut d = self.spawn(&[]);
        opened(d.open(name, 2 * M, 1));
        assert!(d.close().0.success());
    }
}

pub struct Daemon {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    pub stdout: ChildStdout,
    /// Whether the startup status has been read.
    greeted: bool,
}

impl Daemon {
    pub fn spawn(cmd: &mut Command) -> Daemon {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().unwrap();
        Daemon {
            child,
            stdin,
            stdout,
            greeted: false,
        }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        let i = self.stdin.as_mut().unwrap();
        i.write_all(bytes).unwrap();
        i.flush().unwrap();
    }

    pub fn recv(&mut self) -> Response {
        if !self.greeted {
            let mut status = [0u8; 4];
            self.stdout.read_exact(&mut status).unwrap();
            assert_eq!(status, [0; 4], "startup status");
            self.greeted = true;
        }
        let mut prefix = [0u8; 4];
        self.stdout.read_exact(&mut prefix).unwrap();
        let len = control::frame_len(prefix).unwrap();
        let mut body = vec![0u8; len];
        self.stdout.read_exact(&mut body).unwrap();
        Response::decode(&body).unwrap()
    }

    pub fn call(&mut self, req: &Request) -> Response {
        self.send_raw(&req.encode());
        self.recv()
    }

    pub fn create(
        &mut self,
        set: &str,
        size: u64,
        nlanes: u32,
        attr: Option<PoolAttr>,
    ) -> Response {
        self.call(&Request::Create {
            pool: PoolRequest::new(set, size, nlanes),
            attr,
        })
    }

    pub fn open(&mut self, set: &str, size: u64, nlanes: u32) -> Response {
        self.call(&Request::Open {
            pool: PoolRequest::new(set, size, nlanes),
        })
    }

    /// Closes the pool (a close request, answered Ok), then as `finish`.
    pub fn close(mut self) -> (ExitStatus, String) {
        assert_eq!(self.call(&Request::Close), Response::Ok);
        self.finish()
    }

    /// Closes stdin and waits; returns the status and stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        drop(self.stdin.take());
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            e.read_to_string(&mut err).unwrap();
        }
        (self.child.wait().unwrap(), err)
    }
}

pub fn opened(r: Response) -> Session {
    match r {
        Response::Opened(s) => s,
        other => panic!("expected Opened, got {other:?}"),
    }
}

pub fn error_status(r: Response) -> (Status, String) {
    match r {
        Response::Error { status, message } => (status, message),
        other => panic!("expected an error, got {other:?}"),
    }
}

/// Connects lane `lane` and returns the daemon's answer to the hello.
pub fn connect_raw(s: &Session, lane: u32, secret: [u8; 32]) -> (TcpStream, Option<Ack>) {
    let mut t = TcpStream::connect((s.addr.as_str(), s.port)).unwrap();
    t.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    t.write_all(
        &Hello {
            version: PROTO_VERSION,
            lane,
            secret,
        }
        .encode(),
    )
    .unwrap();
    let ack = read_ack(&mut t);
    (t, ack)
}

/// A TCP connection to the session's data port from the local address
/// `from` (loopback answers for all of 127/8, so a second "host" is
/// 127.0.0.2).
pub fn connect_from(s: &Session, from: std::net::Ipv4Addr) -> TcpStream {
    use nix::sys::socket::{bind, connect, socket, AddressFamily, SockFlag, SockType, SockaddrIn};
    use std::os::fd::AsRawFd;
    let fd = socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )
    .unwrap();
    let [a, b, c, d] = from.octets();
    bind(fd.as_raw_fd(), &SockaddrIn::new(a, b, c, d, 0)).unwrap();
    let to: std::net::SocketAddrV4 = format!("{}:{}", s.addr, s.port).parse().unwrap();
    connect(fd.as_raw_fd(), &SockaddrIn::from(to)).unwrap();
    let t = TcpStream::from(fd);
    t.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    t
}

/// Sends lane `lane`'s hello with the session's secret on `t` and returns
/// the answer (None when the daemon closed the connection instead).
pub fn hello_on(t: &mut TcpStream, s: &Session, lane: u32) -> Option<Ack> {
    let hello = Hello {
        version: PROTO_VERSION,
        lane,
        secret: s.secret,
    };
    // The daemon may have closed the connection already: a failed write is
    // an answer too.
    t.write_all(&hello.encode()).ok()?;
    read_ack(t)
}

/// Connects lane `lane` and expects it accepted. A lane whose previous
/// connection the test just dropped may still be tearing down on the daemon
/// (it is refused as "already connected" until then), so retry briefly.
pub fn connect(s: &Session, lane: u32) -> TcpStream {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let (t, ack) = connect_raw(s, lane, s.secret);
        match ack.map(|a| a.status) {
            Some(Status::Ok) => return t,
            Some(Status::BadNlanes) if std::time::Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(20));
            }
            other => panic!("lane {lane} refused: {other:?}"),
        }
    }
}

pub fn read_ack(t: &mut impl Read) -> Option<Ack> {
    let mut raw = [0u8; ACK_LEN];
    t.read_exact(&mut raw).ok()?;
    Some(Ack::decode(&raw).unwrap())
}

pub fn send_op(t: &mut impl Write, op: Op, flags: u8, offset: u64, data: &[u8], tag: u64) {
    let h = RequestHeader {
        op,
        flags,
        offset,
        length: data.len() as u64,
        tag,
    };
    let mut buf = h.encode().to_vec();
    buf.extend_from_slice(data);
    t.write_all(&buf).unwrap();
}

/// Persist (or deep persist) `data` at `offset`; returns the ack status
/// (None when the daemon dropped the connection without one).
pub fn persist<S: Read + Write>(
    t: &mut S,
    op: Op,
    flags: u8,
    offset: u64,
    data: &[u8],
) -> Option<Status> {
    send_op(t, op, flags, offset, data, 77);
    let a = read_ack(t)?;
    assert_eq!(a.tag, 77);
    Some(a.status)
}

pub fn read_remote<S: Read + Write>(t: &mut S, offset: u64, len: usize) -> Result<Vec<u8>, Status> {
    let h = RequestHeader {
        op: Op::Read,
        flags: 0,
        offset,
        length: len as u64,
        tag: 5,
    };
    t.write_all(&h.encode()).unwrap();
    let a = read_ack(t).expect("ack");
    if a.status != Status::Ok {
        return Err(a.status);
    }
    let mut buf = vec![0u8; len];
    t.read_exact(&mut buf).unwrap();
    Ok(buf)
}

/// Runs rpmemd to completion (no stdin).
pub fn run(cmd: &mut Command) -> Output {
    cmd.stdin(Stdio::null()).output().unwrap()
}

pub fn attr() -> PoolAttr {
    PoolAttr::sample(b"RPMEMTST", 2)
}
