//! Starting the daemon over ssh and talking to it on the control channel.

use std::io::Read;
use std::os::fd::AsRawFd;
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rpmem_proto::control::{self, Answer, Request, Response};
use rpmem_proto::pmdk::obc;

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::sys;

/// Round-robin position over `|`-separated RPMEM_CMD alternatives.
static NEXT_CMD: AtomicUsize = AtomicUsize::new(0);

/// Picks the remote command for the next connection.
pub(crate) fn next_command(cmd: &str) -> String {
    let alts: Vec<&str> = cmd
        .split('|')
        .map(str::trim)
        .filter(|c| !c.is_empty())
        .collect();
    if alts.is_empty() {
        return "rpmemd".into();
    }
    let i = NEXT_CMD.fetch_add(1, Ordering::Relaxed) % alts.len();
    alts[i].to_string()
}

/// Quotes one word for the target's POSIX shell.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"/._-+=:,@%".contains(&b))
    {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// The ssh command line: `ssh [-p PORT] -T [-4] -oBatchMode=yes -- DEST CMD`.
fn ssh_command(cfg: &Config, target: &Target, remote_cmd: &str) -> Command {
    let mut c = Command::new(&cfg.ssh);
    if let Some(p) = target.port {
        c.arg("-p").arg(p.to_string());
    }
    c.arg("-T");
    if !target.ipv6 {
        c.arg("-4");
    }
    // `--`: nothing after it, destination included, is an ssh option.
    c.arg("-oBatchMode=yes")
        .arg("--")
        .arg(target.destination())
        .arg(remote_cmd);
    c
}

/// The ssh command that runs the next `RPMEM_CMD` alternative on `target`
/// with `args` appended (already quoted for the target's shell), exactly as
/// the engine starts the daemon. For tools that need the daemon in another
/// mode, such as `rpmemd --bench-echo`.
pub fn remote_command(cfg: &Config, target: &str, args: &str) -> Result<Command> {
    let t = Target::parse(target)?;
    let cmd = format!("{} {args}", next_command(&cfg.cmd));
    Ok(ssh_command(cfg, &t, cmd.trim_end()))
}

/// Keeps the last few KiB of what the remote side wrote on stderr, for error
/// messages when it dies.
#[derive(Clone, Default)]
struct StderrTail(Arc<Mutex<Vec<u8>>>);

impl StderrTail {
    const KEEP: usize = 4096;

    fn spawn_reader(&self, mut src: impl Read + Send + 'static) -> JoinHandle<()> {
        let tail = self.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 1024];
            while let Ok(n) = src.read(&mut buf) {
                if n == 0 {
                    break;
                }
                log::debug!(
                    "remote stderr: {}",
                    String::from_utf8_lossy(&buf[..n]).trim_end()
                );
                let mut t = tail.0.lock().unwrap_or_else(|e| e.into_inner());
                t.extend_from_slice(&buf[..n]);
                if t.len() > Self::KEEP {
                    let cut = t.len() - Self::KEEP;
                    t.drain(..cut);
                }
            }
        })
    }

    fn text(&self) -> String {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        String::from_utf8_lossy(&t).trim().replace('\n', "; ")
    }
}

/// Starts the ssh client running `remote_cmd` on `target`, with stdin and
/// stdout from `io`; a reader thread keeps the tail of its stderr.
fn spawn_ssh(
    cfg: &Config,
    target: &Target,
    remote_cmd: &str,
    io: fn() -> Stdio,
) -> Result<(Child, StderrTail, Option<JoinHandle<()>>)> {
    let mut child = ssh_command(cfg, target, remote_cmd)
        .stdin(io())
        .stdout(io())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| Error::ConnectionReset(format!("cannot run ssh client '{}': {e}", cfg.ssh)))?;
    let tail = StderrTail::default();
    let reader = child.stderr.take().map(|e| tail.spawn_reader(e));
    Ok((child, tail, reader))
}

/// Runs a remote command to completion and returns its status and stderr.
/// Bounded by `RPMEM_OPEN_TIMEOUT_MS` from starting the ssh client, as
/// create and open are: past it the ssh client is stopped and the call
/// fails with ETIMEDOUT.
pub(crate) fn run_remote(
    cfg: &Config,
    target: &Target,
    remote_cmd: &str,
) -> Result<(ExitStatus, String)> {
    let started = Instant::now();
    let (mut child, tail, reader) = spawn_ssh(cfg, target, remote_cmd, Stdio::null)?;
    let deadline = cfg.open_timeout.map(|t| started + t);
    let gone =
        |e: std::io::Error| Error::ConnectionReset(format!("waiting for the ssh client: {e}"));
    // Polled: a remote command takes at least an ssh round trip, so waking
    // at a tenth of the time spent so far costs it little.
    let status = loop {
        if let Some(st) = child.try_wait().map_err(gone)? {
            break st;
        }
        let now = Instant::now();
        if deadline.is_some_and(|d| now >= d) {
            let _ = child.kill();
            let _ = child.wait();
            let ms = cfg.open_timeout.unwrap_or_default().as_millis();
            return Err(Error::TimedOut(format!(
                "'{remote_cmd}' did not finish within {ms} ms of starting (RPMEM_OPEN_TIMEOUT_MS); \
                 the ssh client was stopped"
            )));
        }
        let nap = ((now - started) / 10).clamp(Duration::from_millis(1), Duration::from_millis(50));
        std::thread::sleep(deadline.map_or(nap, |d| nap.min(d - now)));
    };
    // What the command printed; a process it left behind holding the pipe
    // is not waited for past the deadline.
    if let Some(r) = reader {
        while !r.is_finished() && deadline.is_none_or(|d| Instant::now() < d) {
            std::thread::sleep(Duration::from_millis(1));
        }
        if r.is_finished() {
            let _ = r.join();
        }
    }
    Ok((status, tail.text()))
}

/// A running daemon reached through the ssh client.
pub(crate) struct Control {
    child: Child,
    stdin: Option<ChildStdin>,
    stdout: ChildStdout,
    tail: StderrTail,
    tail_reader: Option<JoinHandle<()>>,
    what: String,
    /// How long requests on an open pool (set_attr, close) may wait for
    /// their answer: the data path's `RPMEM_TIMEOUT_MS`.
    timeout: Duration,
    /// Whether the daemon's startup status has been read.
    greeted: bool,
    /// The process that started the ssh client; only it may stop it.
    owner: u32,
    /// When the ssh client started, and how long create and open may take
    /// from then (`RPMEM_OPEN_TIMEOUT_MS`; `None`: no limit).
    started: Instant,
    open_timeout: Option<Duration>,
}

/// The control channel of a session, as the engine drives it: the ssh
/// session to rpmemd ([`RemotePool::create`](crate::RemotePool::create)),
/// or whatever a caller of
/// [`RemotePool::establish`](crate::RemotePool::establish) brings.
pub trait ControlChannel: Send {
    /// Sends `req` and returns the (legal) answer to it.
    fn call(&mut self, req: &Request) -> Result<Answer>;
    /// Ends the channel: closes our end and reaps whatever carried it.
    fn finish(&mut self);
}

impl ControlChannel for Control {
    fn call(&mut self, req: &Request) -> Result<Answer> {
        Control::call(self, req)
    }

    fn finish(&mut self) {
        Control::finish(self);
    }
}

impl Control {
    /// Starts `remote_cmd` on `target` through the ssh client.
    pub(crate) fn start(cfg: &Config, target: &Target, remote_cmd: &str) -> Result<Control> {
        let started = Instant::now();
        let (mut child, tail, tail_reader) = spawn_ssh(cfg, target, remote_cmd, Stdio::piped)?;
        Ok(Control {
            stdin: child.stdin.take(),
            stdout: child.stdout.take().expect("stdout is piped"),
            child,
            tail,
            tail_reader,
            what: format!(
                "'{remote_cmd}' on {} (through '{}')",
                target.destination(),
                cfg.ssh
            ),
            timeout: cfg.io_timeout,
            greeted: false,
            owner: std::process::id(),
            started,
            open_timeout: cfg.open_timeout,
        })
    }

    /// Sends a request and waits for its response: for create and open
    /// until `RPMEM_OPEN_TIMEOUT_MS` after the ssh client started, for
    /// requests on an open pool at most `RPMEM_TIMEOUT_MS`.
    ///
    /// The first answer also tells whose daemon answers: PMDK's rpmemd reads
    /// our request's length as a message type it does not know, writes one
    /// more 4-byte status and exits; that is [`Error::ForeignDaemon`].
    pub(crate) fn call(&mut self, req: &Request) -> Result<Answer> {
        self.send(&req.encode())?;
        let opening = matches!(req, Request::Create { .. } | Request::Open { .. });
        let deadline = self.deadline(opening);
        let first = self.greet(deadline, opening)?;
        let mut prefix = [0u8; 4];
        self.read_by(&mut prefix, deadline, opening, "before answering")?;
        let len = match control::frame_len(prefix) {
            Ok(len) => len,
            Err(e) => {
                if first && self.read_upto(&mut [0u8; 1], deadline, opening)? == 0 {
                    return Err(self.foreign(prefix));
                }
                return Err(Error::Protocol(e.to_string()));
            }
        };
        let mut body = vec![0u8; len];
        let got = self.read_upto(&mut body, deadline, opening)?;
        if got == 0 && first {
            return Err(self.foreign(prefix));
        }
        if got < len {
            return Err(self.died("in the middle of an answer"));
        }
        let resp = Response::decode(&body).map_err(|e| Error::Protocol(e.to_string()))?;
        req.answer(resp).map_err(|e| Error::Protocol(e.to_string()))
    }

    /// The daemon ended right after a 4-byte status following its startup
    /// status: PMDK's rpmemd refusing a request it cannot parse.
    fn foreign(&mut self, status: [u8; 4]) -> Error {
        let _ = self.finish();
        Error::ForeignDaemon(format!(
            "{} is not our rpmemd: it refused our first request and ended with status {} \
             (as PMDK's rpmemd does)",
            self.what,
            obc::decode_startup_status(status)
        ))
    }

    /// Writes one whole request.
    pub(crate) fn send(&mut self, frame: &[u8]) -> Result<()> {
        let sent = match &self.stdin {
            Some(stdin) => sys::write_pipe(stdin.as_raw_fd(), frame),
            None => Err(std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        };
        if sent.is_err() {
            return Err(self.died("while sending a request"));
        }
        Ok(())
    }

    /// When the answer to a request must have arrived.
    pub(crate) fn deadline(&self, opening: bool) -> Option<Instant> {
        if opening {
            self.open_timeout.map(|t| self.started + t)
        } else {
            Some(Instant::now() + self.timeout)
        }
    }

    /// Reads the daemon's startup status unless read already; true when it
    /// was read now.
    pub(crate) fn greet(&mut self, deadline: Option<Instant>, opening: bool) -> Result<bool> {
        if self.greeted {
            return Ok(false);
        }
        // The daemon writes a 4-byte status when it is ready (as PMDK's
        // does; see rpmemd's server), before any answer: read after the
        // first request so it costs no round trip.
        let mut status = [0u8; obc::STATUS_LEN];
        self.read_by(&mut status, deadline, opening, "before answering")?;
        match obc::decode_startup_status(status) {
            0 => {
                self.greeted = true;
                Ok(true)
            }
            // A non-zero status is the errno of a start-up failure.
            s @ 1..=4095 => Err(Error::RemoteExit {
                code: s as i32,
                message: format!(
                    "{} failed to start: {}",
                    self.what,
                    std::io::Error::from_raw_os_error(s as i32)
                ),
            }),
            s => Err(Error::Protocol(format!(
                "{} reported status {s} when it started",
                self.what
            ))),
        }
    }

    /// Fills `buf` from the daemon's stdout before `deadline` (if any).
    pub(crate) fn read_by(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        opening: bool,
        when: &str,
    ) -> Result<()> {
        if self.read_upto(buf, deadline, opening)? < buf.len() {
            return Err(self.died(when));
        }
        Ok(())
    }

    /// Reads into `buf` until it is full or the daemon's stdout ends, before
    /// `deadline` (if any); returns how much was read.
    fn read_upto(
        &mut self,
        buf: &mut [u8],
        deadline: Option<Instant>,
        opening: bool,
    ) -> Result<usize> {
        let mut got = 0;
        while got < buf.len() {
            if let Some(d) = deadline {
                let left = d.saturating_duration_since(Instant::now());
                if !matches!(sys::wait_readable(self.stdout.as_raw_fd(), left), Ok(true)) {
                    return Err(self.stalled(opening));
                }
            }
            match self.stdout.read(&mut buf[got..]) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        Ok(got)
    }

    /// Stops the ssh client of a daemon that did not answer in time.
    fn stalled(&mut self, opening: bool) -> Error {
        let _ = self.child.kill();
        self.stdin.take();
        let _ = self.child.wait();
        // Not joined: a stalled remote process may still hold the stderr
        // pipe; the reader thread ends when it does.
        self.tail_reader.take();
        if opening {
            let ms = self.open_timeout.unwrap_or_default().as_millis();
            Error::TimedOut(format!(
                "{} did not answer within {ms} ms of starting (RPMEM_OPEN_TIMEOUT_MS); \
                 the ssh client was stopped",
                self.what
            ))
        } else {
            Error::ConnectionReset(format!(
                "{} did not answer within {} ms (RPMEM_TIMEOUT_MS); the ssh client was stopped",
                self.what,
                self.timeout.as_millis()
            ))
        }
    }

    /// Builds the error for a daemon that went away, with its exit status and
    /// the end of what it printed.
    fn died(&mut self, when: &str) -> Error {
        let status = self.finish();
        let tail = self.tail.text();
        let mut msg = format!("{} ended {when}", self.what);
        let mut errno = None;
        if let Some(s) = status {
            match s.code() {
                // ssh reports its own failures (unreachable host, refused
                // authentication) with 255, a missing remote command with 127.
                Some(c @ 2..=125) => {
                    // rpmemd's exit status is the errno of its failure, as
                    // PMDK's; the shell's own statuses start at 126, and 1
                    // is any program's plain failure (`false`), not EPERM.
                    msg.push_str(&format!(
                        " with status {c} ({})",
                        std::io::Error::from_raw_os_error(c)
                    ));
                    errno = Some(c);
                }
                Some(255) => msg.push_str(": the ssh client failed (status 255)"),
                Some(127) => msg.push_str(": command not found on the target (status 127)"),
                Some(c) => msg.push_str(&format!(" with status {c}")),
                None => msg.push_str(", killed by a signal"),
            }
        }
        if !tail.is_empty() {
            msg.push_str(": ");
            msg.push_str(&tail);
        }
        match errno {
            Some(code) => Error::RemoteExit { code, message: msg },
            None => Error::ConnectionReset(msg),
        }
    }

    /// Closes our end of the pipes and reaps the ssh client.
    pub(crate) fn finish(&mut self) -> Option<ExitStatus> {
        self.stdin.take();
        let status = self.child.wait().ok();
        if let Some(t) = self.tail_reader.take() {
            let _ = t.join();
        }
        status
    }
}

impl Drop for Control {
    fn drop(&mut self) {
        if std::process::id() != self.owner {
            // A child forked from the owner: the ssh client and the reader
            // thread are the owner's. Close only our copies of the pipes.
            std::mem::forget(self.tail_reader.take());
            return;
        }
        if self.tail_reader.is_some() {
            // Not finished cleanly: make sure no ssh process outlives us.
            let _ = self.child.kill();
            self.finish();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_for_the_remote_shell() {
        assert_eq!(shell_quote("pool.set"), "pool.set");
        assert_eq!(shell_quote("a b"), "'a b'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote("$(rm -rf /)"), "'$(rm -rf /)'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn builds_the_documented_ssh_command_line() {
        let cfg = Config::default();
        let t = Target::parse("u@h:2222").unwrap();
        let c = ssh_command(&cfg, &t, "rpmemd");
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(
            args,
            [
                "-p",
                "2222",
                "-T",
                "-4",
                "-oBatchMode=yes",
                "--",
                "u@h",
                "rpmemd"
            ]
        );
        let t = Target::parse("[::1]").unwrap();
        let c = ssh_command(&cfg, &t, "rpmemd");
        let args: Vec<_> = c.get_args().map(|a| a.to_str().unwrap()).collect();
        assert_eq!(args, ["-T", "-oBatchMode=yes", "--", "::1", "rpmemd"]);
    }

    #[test]
    fn alternatives_rotate() {
        let a = next_command("x | y");
        let b = next_command("x | y");
        assert_ne!(a, b);
        assert!(["x", "y"].contains(&a.as_str()));
        assert_eq!(next_command("solo"), "solo");
    }
}
