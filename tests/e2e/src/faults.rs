//! Fault injection for end-to-end tests: a daemon in a network namespace of
//! its own ([`Netns`]), a TCP proxy in that namespace that delays, stalls or
//! cuts what crosses it ([`Proxy`], [`Fault`]), a file system that fills up
//! ([`SmallFs`]), a C initiator that persists until a fault stops it
//! ([`Writer`]), and the daemon processes' life ([`alive`], [`wait_gone`],
//! [`signal`]).
//!
//! Namespaces, iptables and mounts need root: their constructors return
//! `None` (after printing why the caller skips) where the host cannot.

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

use crate::{compile_c, is_root, run_checked, workspace_root, write_script, LocalTarget};

/// Wide hang check for anything that should take a fraction of a second.
pub const HANG: Duration = Duration::from_secs(30);

/// Whether `pid` is a live (not zombie) process.
pub fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

/// Waits until `pid` is gone and returns how long that took.
///
/// # Panics
/// If it still runs after `limit`.
pub fn wait_gone(pid: u32, limit: Duration) -> Duration {
    let start = Instant::now();
    while alive(pid) {
        assert!(
            start.elapsed() < limit,
            "process {pid} still runs after {limit:?}"
        );
        thread::sleep(Duration::from_millis(10));
    }
    start.elapsed()
}

/// Sends signal `sig` (a name such as `KILL` or `STOP`) to `pid`.
pub fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

/// Whether `prog -V` runs and succeeds (the tool is installed and works).
fn runs(prog: &str) -> bool {
    Command::new(prog)
        .arg("-V")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

// ---------------------------------------------------------------------------
// The C writer.

/// The byte the writer puts at position `j` of block `block`: never zero,
/// different per block (`tests/c/fault_writer.c`'s `pattern`).
pub fn pattern(block: usize, j: usize) -> u8 {
    ((block * 31 + j * 7) % 251 + 1) as u8
}

fn writer_exe() -> PathBuf {
    static EXE: OnceLock<PathBuf> = OnceLock::new();
    EXE.get_or_init(|| compile_c(&workspace_root().join("tests/c/fault_writer.c")))
        .clone()
}

/// A running `tests/c/fault_writer.c`, its stdout turned into lines on a
/// channel: it persists block after block on lane 0, says `ack B` after
/// each, and on the first failure says `fail`, `again` and `close`.
pub struct Writer {
    child: Child,
    /// The writer's stdout, a line at a time.
    pub lines: mpsc::Receiver<String>,
    /// Acknowledged persists counted so far.
    pub acked: usize,
    /// The lines other than acks returned so far.
    pub seen: Vec<String>,
}

/// How a persist in flight met a fault (see [`Writer::through_fault`]).
#[derive(Debug)]
pub struct FaultOutcome {
    /// From the fault to the failed persist's return.
    pub took: Duration,
    /// How long the following `rpmem_close` took.
    pub close_took: Duration,
    /// The failed persist's `rpmem_errormsg()`.
    pub msg: String,
}

/// Splits "TAG A B REST…" after `tag` into at most three fields.
fn fields(line: &str, tag: &str) -> Vec<String> {
    let rest = line
        .strip_prefix(tag)
        .unwrap_or_else(|| panic!("expected {tag:?}, got {line:?}"));
    rest.trim().splitn(3, ' ').map(str::to_string).collect()
}

impl Writer {
    /// Starts the writer on pool set `set` of `size` bytes, persisting
    /// blocks of `block` bytes, with `env` (`RPMEM_SSH`, `RPMEM_CMD`, …).
    pub fn spawn(env: &[(String, String)], set: &str, size: usize, block: usize) -> Writer {
        let mut child = Command::new(writer_exe())
            .args(["localhost", set, &size.to_string(), &block.to_string()])
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the writer");
        let out = child.stdout.take().expect("piped");
        let (tx, rx) = mpsc::channel();
        thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Writer {
            child,
            lines: rx,
            acked: 0,
            seen: Vec::new(),
        }
    }

    /// Next line that is not an ack (acks are counted), or None at EOF.
    pub fn next_event(&mut self, limit: Duration) -> Option<String> {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with("ack ") => self.acked += 1,
                Ok(l) => {
                    self.seen.push(l.clone());
                    return Some(l);
                }
                Err(mpsc::RecvTimeoutError::Disconnected) => return None,
                Err(mpsc::RecvTimeoutError::Timeout) => {
                    let _ = self.child.kill();
                    panic!(
                        "writer hung: no event within {limit:?} ({} acks, seen {:?})",
                        self.acked, self.seen
                    )
                }
            }
        }
    }

    /// Waits until at least `n` persists were acknowledged.
    pub fn wait_acks(&mut self, n: usize, limit: Duration) {
        let deadline = Instant::now() + limit;
        while self.acked < n {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(l) if l.starts_with("ack ") => self.acked += 1,
                Ok(l) if l == "created" => {}
                Ok(l) => panic!("writer: unexpected {l:?} after {} acks", self.acked),
                Err(e) => {
                    let _ = self.child.kill();
                    panic!("writer: {e:?} after {} acks", self.acked)
                }
            }
        }
    }

    /// Counts the acks still in the pipe, up to EOF.
    pub fn drain_acks(&mut self) {
        while self.next_event(HANG).is_some() {}
    }

    /// Kills the writer mid-stream and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Injects a fault with `inject` after 100 acks; checks that the persist
    /// in flight fails with ECONNRESET within `bound`, that the next call
    /// fails fast with ECONNABORTED and that close returns within `bound`.
    pub fn through_fault(&mut self, bound: Duration, inject: impl FnOnce()) -> FaultOutcome {
        self.wait_acks(100, HANG);
        inject();
        let at = Instant::now();
        let fail = self
            .next_event(bound)
            .expect("writer ended without failing");
        let took = at.elapsed();
        let f = fields(&fail, "fail ");
        assert_eq!(f[0], libc::ECONNRESET.to_string(), "{fail}");
        let again = self.next_event(bound).expect("again");
        let a = fields(&again, "again ");
        assert_eq!(a[0], libc::ECONNABORTED.to_string(), "{again}");
        let again_us: u64 = a[1].parse().expect("microseconds");
        assert!(again_us < 1_000_000, "{again}");
        let t0 = Instant::now();
        let close = self.next_event(bound).expect("close");
        let close_took = t0.elapsed();
        assert!(close.starts_with("close "), "{close}");
        FaultOutcome {
            took,
            close_took,
            msg: f[1..].join(" "),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Asserts that every block the writer was told was persisted holds its
/// [`pattern`] in `data` (the part file).
pub fn assert_acked_blocks(data: &[u8], acked: usize, block: usize) {
    let nblocks = data.len() / block;
    for b in 0..acked.min(nblocks) {
        let got = &data[b * block..(b + 1) * block];
        let bad = (0..block).find(|&j| got[j] != pattern(b, j));
        assert!(
            bad.is_none(),
            "acknowledged block {b} (of {acked} acks) is not intact at byte {bad:?}"
        );
    }
}

// ---------------------------------------------------------------------------
// The network.

static NETNS_SEQ: AtomicUsize = AtomicUsize::new(0);

/// Runs `ip ARGS`.
///
/// # Panics
/// If it fails, with its stderr.
pub fn ip(args: &[&str]) {
    run_checked(Command::new("ip").args(args));
}

/// A network namespace of our own joined to this one by a veth pair with
/// addresses in a private /30 (10.213.x.y), and an ssh stand-in that runs
/// the remote command inside it as sshd would, `SSH_CONNECTION` naming the
/// namespace's address. Everything is deleted on drop.
pub struct Netns {
    name: String,
    host_if: String,
    ns_ip: String,
    ssh: PathBuf,
    _dir: tempfile::TempDir,
}

impl Netns {
    /// Creates the namespace, or returns `None` (saying why) when not root
    /// or without iproute2.
    pub fn create() -> Option<Netns> {
        if !is_root() || !runs("ip") {
            eprintln!("skipping: needs root and iproute2 (network namespaces)");
            return None;
        }
        let pid = std::process::id();
        let seq = NETNS_SEQ.fetch_add(1, Ordering::SeqCst);
        let name = format!("rpmemf-{pid}-{seq}");
        let host_if = format!("rpf{}h{seq}", pid % 100_000);
        let ns_if = format!("rpf{}n{seq}", pid % 100_000);
        let octet = pid % 256;
        let base = (seq % 64) * 4;
        let host_ip = format!("10.213.{octet}.{}", base + 1);
        let ns_ip = format!("10.213.{octet}.{}", base + 2);
        ip(&["netns", "add", &name]);
        // From here on, drop deletes what was made.
        let dir = tempfile::tempdir().expect("tempdir");
        let ssh = dir.path().join("ssh-netns");
        let n = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            ns_ip: ns_ip.clone(),
            ssh: ssh.clone(),
            _dir: dir,
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        let ns_addr = format!("{ns_ip}/30");
        ip(&["-n", &name, "addr", "add", &ns_addr, "dev", &ns_if]);
        ip(&["-n", &name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        write_script(
            &ssh,
            &format!(
                "# ssh stand-in: run the command (last argument) in netns {name}\n\
                 for last; do :; done\n\
                 exec ip netns exec {name} env SSH_CONNECTION='{host_ip} 40000 {ns_ip} 22' \
                 /bin/sh -c \"$last\"\n"
            ),
        );
        Some(n)
    }

    /// The namespace's address, where a daemon started in it serves.
    pub fn ns_ip(&self) -> &str {
        &self.ns_ip
    }

    /// The environment that reaches `t`'s daemon started inside the
    /// namespace: `RPMEM_SSH` is the stand-in, `RPMEM_CMD` the target's.
    pub fn env(&self, t: &LocalTarget) -> Vec<(String, String)> {
        vec![
            ("RPMEM_SSH".to_string(), self.ssh.display().to_string()),
            ("RPMEM_CMD".to_string(), t.rpmem_cmd()),
        ]
    }

    /// Takes this side's end of the veth pair down (or up again): what
    /// crosses the link stops without either end being told.
    pub fn set_link(&self, up: bool) {
        ip(&["link", "set", &self.host_if, if up { "up" } else { "down" }]);
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Deleting the namespace deletes its veth end, and with it ours.
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
        let _ = Command::new("ip")
            .args(["link", "del", &self.host_if])
            .stderr(Stdio::null())
            .status();
    }
}

/// What the in-namespace proxy does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward as they come.
    Pass,
    /// Sleep this many milliseconds before forwarding each chunk.
    Delay(u64),
    /// Forward nothing more; both sockets stay open.
    Stall,
    /// Shut both sockets down.
    Cut,
}

/// State shared by the proxy's threads and the test.
struct ProxyShared {
    fault: Mutex<Fault>,
    stop: AtomicBool,
    /// Both sockets of every connection accepted so far.
    conns: Mutex<Vec<(TcpStream, TcpStream)>>,
}

impl ProxyShared {
    fn fault(&self) -> Fault {
        *self.fault.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }
}

/// A userspace TCP proxy running inside a [`Netns`]: an iptables REDIRECT in
/// that namespace (and only there) sends every TCP connection arriving for the
/// namespace's address to it; it connects on to the original destination
/// from inside the namespace (local traffic skips PREROUTING) and forwards
/// both ways according to the current [`Fault`]. A daemon's data connections
/// cross it; its control channel (the ssh stand-in's pipes) does not.
pub struct Proxy {
    shared: Arc<ProxyShared>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Read timeout of the proxy's sockets: how often its threads look at the
/// stop flag and the fault mode when nothing arrives.
const PROXY_TICK: Duration = Duration::from_millis(10);

/// Binds a listener inside the namespace at `netns` from the calling
/// thread (setns affects this thread only; sockets it makes stay there).
fn listen_in(netns: &Path) -> Result<std::net::TcpListener, String> {
    let f = fs::File::open(netns).map_err(|e| format!("open {}: {e}", netns.display()))?;
    nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
        .map_err(|e| format!("setns {}: {e}", netns.display()))?;
    std::net::TcpListener::bind(("0.0.0.0", 0))
        .and_then(|l| l.set_nonblocking(true).map(|()| l))
        .map_err(|e| format!("listen in the netns: {e}"))
}

impl Proxy {
    /// Starts the proxy in `ns` and redirects the namespace's incoming TCP
    /// to it. None (with the reason printed) if iptables cannot do that here.
    pub fn start(ns: &Netns) -> Option<Proxy> {
        if !runs("iptables") {
            eprintln!("skipping: needs iptables (a REDIRECT inside the test's netns)");
            return None;
        }
        let shared = Arc::new(ProxyShared {
            fault: Mutex::new(Fault::Pass),
            stop: AtomicBool::new(false),
            conns: Mutex::new(Vec::new()),
        });
        let (tx, rx) = mpsc::channel();
        let netns = PathBuf::from(format!("/run/netns/{}", ns.name));
        let sh = Arc::clone(&shared);
        let thread = thread::Builder::new()
            .name("fault-proxy".into())
            .spawn(move || match listen_in(&netns) {
                Ok(l) => {
                    let _ = tx.send(l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()));
                    accept_loop(l, &sh);
                }
                Err(e) => {
                    let _ = tx.send(Err(e));
                }
            })
            .expect("spawn the proxy thread");
        let mut proxy = Proxy {
            shared,
            thread: Some(thread),
        };
        let port = rx
            .recv_timeout(HANG)
            .expect("the proxy thread did not start")
            .unwrap_or_else(|e| panic!("proxy: {e}"));
        let out = Command::new("ip")
            .args(["netns", "exec", &ns.name])
            .args(["iptables", "-w", "10", "-t", "nat", "-A", "PREROUTING"])
            .args(["-p", "tcp", "-d", &ns.ns_ip, "-j", "REDIRECT"])
            .args(["--to-ports", &port.to_string()])
            .stdin(Stdio::null())
            .output()
            .expect("run iptables");
        if !out.status.success() {
            eprintln!(
                "skipping: iptables cannot redirect inside a netns here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
            proxy.stop();
            return None;
        }
        Some(proxy)
    }

    /// Switches what the proxy does from now on (`Cut` also shuts every
    /// connection it carries).
    pub fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        if fault == Fault::Cut {
            for (a, b) in self.shared.conns.lock().unwrap().iter() {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }

    /// How many connections went through the proxy.
    pub fn connections(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Stops and joins every thread of the proxy (bounded: they all wake
    /// every `PROXY_TICK`) and closes its sockets.
    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.shared
            .conns
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Where a redirected connection was going.
fn original_destination(client: &TcpStream) -> nix::Result<SocketAddr> {
    let d = nix::sys::socket::getsockopt(client, nix::sys::socket::sockopt::OriginalDst)?;
    Ok(SocketAddr::from((
        std::net::Ipv4Addr::from(u32::from_be(d.sin_addr.s_addr)),
        u16::from_be(d.sin_port),
    )))
}

/// A reading and a writing handle of `s`, blocking with the proxy's tick.
fn pump_ends(s: &TcpStream) -> std::io::Result<(TcpStream, TcpStream)> {
    s.set_nonblocking(false)?;
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(PROXY_TICK))?;
    s.set_write_timeout(Some(Duration::from_secs(5)))?;
    Ok((s.try_clone()?, s.try_clone()?))
}

fn accept_loop(listener: std::net::TcpListener, sh: &Arc<ProxyShared>) {
    let mut pumps = Vec::new();
    while !sh.stopped() {
        let client = match listener.accept() {
            Ok((c, _)) => c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                thread::sleep(Duration::from_millis(2));
                continue;
            }
            Err(e) => {
                eprintln!("proxy: accept: {e}");
                thread::sleep(PROXY_TICK);
                continue;
            }
        };
        let dst = match original_destination(&client) {
            Ok(d) => d,
            Err(e) => {
                eprintln!("proxy: SO_ORIGINAL_DST: {e}");
                continue;
            }
        };
        let server = match TcpStream::connect_timeout(&dst, Duration::from_secs(5)) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("proxy: connect {dst}: {e}");
                continue;
            }
        };
        let (Ok((c_read, c_write)), Ok((s_read, s_write))) =
            (pump_ends(&client), pump_ends(&server))
        else {
            eprintln!("proxy: socket setup failed");
            continue;
        };
        sh.conns.lock().unwrap().push((client, server));
        if sh.fault() == Fault::Cut {
            let _ = c_read.shutdown(Shutdown::Both);
            let _ = s_read.shutdown(Shutdown::Both);
            continue;
        }
        for (from, to) in [(c_read, s_write), (s_read, c_write)] {
            let sh = Arc::clone(sh);
            pumps.push(thread::spawn(move || pump(from, to, &sh)));
        }
    }
    for p in pumps {
        let _ = p.join();
    }
}

/// Forwards `from` to `to` under the shared fault mode until either side
/// ends, the mode is Cut, or the proxy stops.
fn pump(mut from: TcpStream, mut to: TcpStream, sh: &ProxyShared) {
    let cut = |from: &TcpStream, to: &TcpStream| {
        let _ = from.shutdown(Shutdown::Both);
        let _ = to.shutdown(Shutdown::Both);
    };
    let mut buf = vec![0u8; 64 * 1024];
    while !sh.stopped() {
        match sh.fault() {
            Fault::Cut => return cut(&from, &to),
            Fault::Stall => {
                thread::sleep(PROXY_TICK);
                continue;
            }
            Fault::Pass | Fault::Delay(_) => {}
        }
        let n = match from.read(&mut buf) {
            Ok(0) => {
                let _ = to.shutdown(Shutdown::Write);
                return;
            }
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                continue
            }
            Err(_) => return cut(&from, &to),
        };
        // A chunk read before a fault was set is subject to it too.
        loop {
            if sh.stopped() {
                return;
            }
            match sh.fault() {
                Fault::Pass => break,
                Fault::Delay(ms) => {
                    thread::sleep(Duration::from_millis(ms));
                    break;
                }
                Fault::Stall => thread::sleep(PROXY_TICK),
                Fault::Cut => return cut(&from, &to),
            }
        }
        if to.write_all(&buf[..n]).is_err() {
            return cut(&from, &to);
        }
    }
}

// ---------------------------------------------------------------------------
// Storage.

/// A tmpfs of a given size mounted on a fresh directory, unmounted on drop.
pub struct SmallFs(tempfile::TempDir);

impl SmallFs {
    /// Mounts a tmpfs of `size` (as `mount -o size=` takes it), or returns
    /// `None` (saying why) when not root or the mount fails.
    pub fn mount(size: &str) -> Option<SmallFs> {
        let mounted = is_root()
            .then(|| tempfile::tempdir().ok())
            .flatten()
            .filter(|d| {
                Command::new("mount")
                    .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
                    .arg(d.path())
                    .stderr(Stdio::null())
                    .status()
                    .is_ok_and(|s| s.success())
            });
        if mounted.is_none() {
            eprintln!("skipping: needs root (mounts a small tmpfs)");
        }
        mounted.map(SmallFs)
    }

    /// Where it is mounted.
    pub fn path(&self) -> &Path {
        self.0.path()
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// What [`persist_until_error`] reports for each lane: when its persist
/// failed, the errno and the message.
pub type LaneFailure = (u32, Instant, i32, String);

/// One thread per lane persisting `block`-byte blocks of its stripe of the
/// region over and over (flags 0 and RELAXED in turn; the region does not
/// change, so re-persisting is harmless) until a persist fails. Returns the
/// acknowledged persists per lane and where each lane's failure arrives.
pub fn persist_until_error(
    pool: &Arc<rpmem::Pool>,
    block: usize,
) -> (Arc<Vec<AtomicUsize>>, mpsc::Receiver<LaneFailure>) {
    let lanes = pool.nlanes();
    let stripe = pool.region().len() / lanes as usize;
    let acks: Arc<Vec<AtomicUsize>> = Arc::new((0..lanes).map(|_| AtomicUsize::new(0)).collect());
    let (tx, rx) = mpsc::channel();
    for lane in 0..lanes {
        let (pool, acks, tx) = (Arc::clone(pool), Arc::clone(&acks), tx.clone());
        thread::spawn(move || {
            let base = lane as usize * stripe;
            let blocks = stripe / block;
            let mut k = 0usize;
            loop {
                let off = base + (k % blocks) * block;
                let flags = if k.is_multiple_of(2) {
                    rpmem::PersistFlags::empty()
                } else {
                    rpmem::PersistFlags::RELAXED
                };
                match pool.persist(off, block, lane, flags) {
                    Ok(()) => {
                        k += 1;
                        acks[lane as usize].store(k, Ordering::SeqCst);
                    }
                    Err(e) => {
                        let _ = tx.send((lane, Instant::now(), e.errno(), e.to_string()));
                        return;
                    }
                }
            }
        });
    }
    (acks, rx)
}

/// Waits until every lane of [`persist_until_error`] has `n` acknowledged
/// persists.
pub fn wait_for_acks(acks: &[AtomicUsize], n: usize) {
    let start = Instant::now();
    while acks.iter().any(|a| a.load(Ordering::SeqCst) < n) {
        assert!(start.elapsed() < HANG, "lanes did not make progress");
        thread::sleep(Duration::from_millis(2));
    }
}
