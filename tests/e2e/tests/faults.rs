//! Faults, end to end: the target dies, the initiator dies, the target stalls,
//! strangers talk to the data port. Real processes, real sockets, real files.
//!
//! Deadlines asserted here are hang checks with a wide margin over the bound
//! the library promises (`RPMEM_TIMEOUT_MS`, default 5000 ms); the measured
//! times are printed (`cargo test -- --nocapture` shows them).

use std::fs;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use e2e::{bin, compile_c, is_root, LocalTarget};
use rpmem::{Config, PersistFlags, Pool};

const MIB: usize = 1024 * 1024;
/// Wide hang check for anything that should take a fraction of a second.
const HANG: Duration = Duration::from_secs(30);

/// Writes a pool set without headers of one part of `size` in the target dir.
fn nohdrs_set(t: &LocalTarget, name: &str, size: &str) -> PathBuf {
    let part = t.dir().join(format!("{name}.part"));
    t.write_poolset(
        name,
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n{size} {}\n", part.display()),
    );
    part
}

/// The byte a block holds at position `j`: never zero, different per block.
fn pattern(block: usize, j: usize) -> u8 {
    ((block * 31 + j * 7) % 251 + 1) as u8
}

/// What the daemon logged when it opened `set`: its pid and data port.
#[derive(Debug, Clone)]
struct Served {
    pid: u32,
    addr: String,
    port: u16,
}

/// Parses the last "… pool set 'SET': … data on ADDR:PORT" line of the log.
fn served(t: &LocalTarget, set: &str) -> Served {
    let log = t.log();
    let needle = format!("pool set '{set}':");
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&needle) && l.contains("data on "))
        .unwrap_or_else(|| panic!("no 'data on' line for {set} in the daemon log:\n{log}"));
    let pid = line
        .split_once("rpmemd[")
        .and_then(|(_, r)| r.split_once(']'))
        .and_then(|(p, _)| p.parse().ok())
        .unwrap_or_else(|| panic!("no pid in {line:?}"));
    let (_, at) = line.rsplit_once("data on ").expect("data on");
    let (addr, port) = at.trim().rsplit_once(':').expect("addr:port");
    Served {
        pid,
        addr: addr.to_string(),
        port: port.parse().expect("port"),
    }
}

/// Daemon log lines written by process `pid`.
fn log_of(t: &LocalTarget, pid: u32) -> String {
    let tag = format!("rpmemd[{pid}]");
    t.log()
        .lines()
        .filter(|l| l.starts_with(&tag))
        .map(|l| format!("{l}\n"))
        .collect()
}

/// Whether `pid` is a live (not zombie) process.
fn alive(pid: u32) -> bool {
    match fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(s) => !matches!(
            s.rsplit_once(") ").and_then(|(_, r)| r.chars().next()),
            Some('Z' | 'X')
        ),
        Err(_) => false,
    }
}

fn wait_gone(pid: u32, limit: Duration) -> Duration {
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

fn signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(st.success(), "kill -{sig} {pid} failed");
}

fn read_part(part: &Path) -> Vec<u8> {
    fs::read(part).unwrap_or_else(|e| panic!("read {}: {e}", part.display()))
}

// ---------------------------------------------------------------------------
// A C initiator: persists block after block on lane 0 and says so on stdout.

const WRITER_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <librpmem.h>

/* usage: writer TARGET SET POOL_SIZE BLOCK
 * Creates SET without headers, then persists block 0, 1, 2, ... (wrapping)
 * on lane 0, printing "ack B" after each persist that returned 0. On the
 * first failure prints "fail ERRNO MSG", tries once more ("again ERRNO US
 * MSG", US = how long that call took), closes ("close RC US") and exits 0. */
static long long now_us(void) {
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000LL + ts.tv_nsec / 1000;
}
static unsigned char pattern(size_t block, size_t j) {
	return (unsigned char)((block * 31 + j * 7) % 251 + 1);
}
int main(int argc, char **argv) {
	if (argc != 5) return 64;
	size_t size = strtoull(argv[3], NULL, 0), block = strtoull(argv[4], NULL, 0);
	unsigned char *pool;
	if (posix_memalign((void **)&pool, 4096, size)) return 65;
	memset(pool, 0, size);
	unsigned nlanes = 1;
	RPMEMpool *rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes, NULL);
	if (!rpp) {
		printf("create-failed %d %s\n", errno, rpmem_errormsg());
		return 2;
	}
	printf("created\n");
	fflush(stdout);
	size_t nblocks = size / block;
	for (size_t b = 0;; b = (b + 1) % nblocks) {
		for (size_t j = 0; j < block; j++)
			pool[b * block + j] = pattern(b, j);
		unsigned flags = (b % 2) ? RPMEM_PERSIST_RELAXED : 0;
		if (rpmem_persist(rpp, b * block, block, 0, flags)) {
			printf("fail %d %s\n", errno, rpmem_errormsg());
			fflush(stdout);
			long long t = now_us();
			int rc = rpmem_persist(rpp, 0, block, 0, 0);
			int e = errno;
			printf("again %d %lld %s\n", rc ? e : 0, now_us() - t, rpmem_errormsg());
			fflush(stdout);
			t = now_us();
			rc = rpmem_close(rpp);
			printf("close %d %lld\n", rc, now_us() - t);
			fflush(stdout);
			return 0;
		}
		printf("ack %zu\n", b);
		fflush(stdout);
	}
}
"#;

fn writer_exe() -> PathBuf {
    static EXE: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    EXE.get_or_init(|| {
        let src = std::env::temp_dir().join(format!("fault_writer-{}.c", std::process::id()));
        fs::write(&src, WRITER_C).expect("write C source");
        compile_c(&src)
    })
    .clone()
}

/// A running writer, its stdout turned into lines on a channel.
struct Writer {
    child: Child,
    lines: mpsc::Receiver<String>,
    acked: usize,
    seen: Vec<String>,
}

impl Writer {
    fn spawn(env: &[(String, String)], set: &str, size: usize, block: usize) -> Writer {
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
    fn next_event(&mut self, limit: Duration) -> Option<String> {
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
    fn wait_acks(&mut self, n: usize, limit: Duration) {
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
    fn drain_acks(&mut self) {
        while self.next_event(HANG).is_some() {}
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Every block the writer was told was persisted holds its pattern.
fn assert_acked_blocks(data: &[u8], acked: usize, block: usize) {
    let nblocks = data.len() / block;
    for b in 0..acked.min(nblocks) {
        let got = &data[b * block..(b + 1) * block];
        let bad = (0..block).find(|&j| got[j] != pattern(b, j));
        assert!(
            bad.is_none(),
            "acknowledged block {b} (of {acked} acks) is not intact at byte {:?}",
            bad
        );
    }
}

// ---------------------------------------------------------------------------
// 2. Target death.

#[test]
fn target_death_fails_every_lane_in_bounded_time_and_keeps_acknowledged_bytes() {
    const LANES: u32 = 4;
    const BLOCK: usize = 4096;
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "death.set", "16M");
    let cfg = t.config();
    assert_eq!(cfg.io_timeout, Duration::from_millis(5000), "the default");
    let mut pool = Pool::create(&cfg, "localhost", "death.set", 16 * MIB, LANES, None)
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    assert_eq!(pool.nlanes(), LANES);
    for (i, b) in pool.region_mut().iter_mut().enumerate() {
        *b = pattern(i / BLOCK, i % BLOCK);
    }
    let daemon = served(&t, "death.set");
    assert!(alive(daemon.pid));
    let pool = Arc::new(pool);
    let stripe = 16 * MIB / LANES as usize;
    let acks: Arc<Vec<AtomicUsize>> = Arc::new((0..LANES).map(|_| AtomicUsize::new(0)).collect());
    let (tx, rx) = mpsc::channel();
    for lane in 0..LANES {
        let (pool, acks, tx) = (Arc::clone(&pool), Arc::clone(&acks), tx.clone());
        thread::spawn(move || {
            let base = lane as usize * stripe;
            let blocks = stripe / BLOCK;
            let mut k = 0usize;
            loop {
                // Wraps around: the region does not change, so re-persisting is harmless.
                let off = base + (k % blocks) * BLOCK;
                let flags = if k.is_multiple_of(2) {
                    PersistFlags::empty()
                } else {
                    PersistFlags::RELAXED
                };
                match pool.persist(off, BLOCK, lane, flags) {
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
    drop(tx);
    // Let every lane get going, then kill the daemon under them.
    let start = Instant::now();
    while acks.iter().any(|a| a.load(Ordering::SeqCst) < 20) {
        assert!(start.elapsed() < HANG, "lanes did not make progress");
        thread::sleep(Duration::from_millis(2));
    }
    let killed = Instant::now();
    signal(daemon.pid, "KILL");
    let mut worst = Duration::ZERO;
    for _ in 0..LANES {
        let (lane, at, errno, msg) = rx
            .recv_timeout(cfg.io_timeout * 3)
            .expect("a lane's persist hung after the target died");
        let took = at.duration_since(killed);
        worst = worst.max(took);
        eprintln!("lane {lane}: error after {took:?}: errno {errno}: {msg}");
        assert_eq!(errno, libc::ECONNRESET, "lane {lane}: {msg}");
        assert!(msg.contains(&format!("lane {lane}")), "{msg}");
    }
    eprintln!("target death: every lane failed within {worst:?} of SIGKILL");
    assert!(worst < cfg.io_timeout * 3);
    // Every acknowledged byte is in the part file.
    let data = read_part(&part);
    for lane in 0..LANES as usize {
        let n = acks[lane].load(Ordering::SeqCst);
        let stripe_data = &data[lane * stripe..(lane + 1) * stripe];
        let first_block = lane * stripe / BLOCK;
        for b in 0..n.min(stripe / BLOCK) {
            let got = &stripe_data[b * BLOCK..(b + 1) * BLOCK];
            assert!(
                (0..BLOCK).all(|j| got[j] == pattern(first_block + b, j)),
                "lane {lane}: acknowledged block {b} of {n} is not in the part file"
            );
        }
    }
    // Later calls fail fast and say why.
    for lane in 0..LANES {
        let t0 = Instant::now();
        let e = pool
            .persist(4096, 8, lane, PersistFlags::empty())
            .unwrap_err();
        let took = t0.elapsed();
        assert_eq!(e.errno(), libc::ECONNABORTED, "{e}");
        assert!(e.to_string().contains("unusable"), "{e}");
        assert!(took < Duration::from_secs(1), "took {took:?}");
        let mut b = [0u8; 8];
        assert!(pool.read(&mut b, 0, lane).is_err());
        assert!(pool.drain(lane).is_err());
    }
    // Close frees everything: it returns, no process of the session is left,
    // and the pool opens again.
    let pool = Arc::try_unwrap(pool).expect("threads are done");
    let t0 = Instant::now();
    let r = pool.close();
    eprintln!("close after target death: {:?} in {:?}", r, t0.elapsed());
    assert!(r.is_err(), "close cannot succeed on a dead target");
    assert!(t0.elapsed() < HANG);
    assert!(!alive(daemon.pid));
    let (again, _) = Pool::open(&cfg, "localhost", "death.set", 16 * MIB, 1)
        .unwrap_or_else(|e| panic!("reopen: {e}; log: {}", t.log()));
    let mut back = vec![0u8; BLOCK];
    again.read(&mut back, 0, 0).unwrap();
    assert_eq!(back, data[..BLOCK]);
    again.close().unwrap();
}

// ---------------------------------------------------------------------------
// 3. Initiator death.

#[test]
fn initiator_death_releases_the_pool_with_acknowledged_bytes_intact() {
    const SIZE: usize = 8 * MIB;
    const BLOCK: usize = 4096;
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "init.set", "8M");
    let mut w = Writer::spawn(&t.env(), "init.set", SIZE, BLOCK);
    w.wait_acks(300, HANG);
    let daemon = served(&t, "init.set");
    // Kill it mid-stream: it persists in a tight loop.
    let _ = w.child.kill();
    let _ = w.child.wait();
    w.drain_acks();
    assert!(w.seen.is_empty(), "writer said {:?}", w.seen);
    let took = wait_gone(daemon.pid, HANG);
    eprintln!(
        "initiator death: rpmemd {} exited {took:?} after the initiator ({} acks)",
        daemon.pid, w.acked
    );
    let log = log_of(&t, daemon.pid);
    assert!(log.contains("the initiator went away"), "log:\n{log}");
    assert!(!log.contains(" err: "), "rpmemd logged errors:\n{log}");
    // The pool is released and holds every acknowledged block.
    assert_acked_blocks(&read_part(&part), w.acked, BLOCK);
    let cfg = t.config();
    let (pool, _) = Pool::open(&cfg, "localhost", "init.set", SIZE, 2)
        .unwrap_or_else(|e| panic!("reopen after initiator death: {e}; log: {}", t.log()));
    let mut back = vec![0u8; SIZE];
    pool.read(&mut back, 0, 1).unwrap();
    assert_acked_blocks(&back, w.acked, BLOCK);
    pool.close().unwrap();
}

// ---------------------------------------------------------------------------
// 1. Authentication of data connections.

/// Encodes a data-channel Hello as the wire protocol defines it (magic
/// "RPMD", version u16, reserved u16, lane u32, reserved u32, secret[32]).
fn hello(lane: u32, secret: &[u8; 32]) -> Vec<u8> {
    let mut v = b"RPMD".to_vec();
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&0u16.to_le_bytes());
    v.extend_from_slice(&lane.to_le_bytes());
    v.extend_from_slice(&[0u8; 4]);
    v.extend_from_slice(secret);
    v
}

/// A persist request header: op 2, flags, 6 reserved bytes, offset, length, tag.
fn persist_header(offset: u64, len: u64) -> Vec<u8> {
    let mut v = vec![2u8, 0, 0, 0, 0, 0, 0, 0];
    v.extend_from_slice(&offset.to_le_bytes());
    v.extend_from_slice(&len.to_le_bytes());
    v.extend_from_slice(&7u64.to_le_bytes());
    v
}

/// An ssh stand-in that copies what the daemon answers on the control
/// channel to `capture`, so a test can learn a session's secret the way an
/// eavesdropper on that session would.
fn teeing_ssh(dir: &Path, capture: &Path) -> PathBuf {
    let script = dir.join("ssh-tee");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\n'{}' \"$@\" | tee -a '{}'\n",
            bin("rpmem-ssh-local").display(),
            capture.display()
        ),
    )
    .expect("write wrapper");
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(&script, fs::Permissions::from_mode(0o755)).expect("chmod");
    script
}

/// The (port, secret) of the first Opened response in a captured control stream
/// (after the daemon's startup status): the body ends with port u16 and
/// secret[32].
fn captured_session(capture: &Path) -> (u16, [u8; 32]) {
    let raw = fs::read(capture).expect("read capture");
    assert!(raw.len() > 8, "nothing captured");
    assert_eq!(raw[..4], [0; 4], "the daemon's startup status comes first");
    let raw = &raw[4..];
    let len = u32::from_le_bytes(raw[..4].try_into().unwrap()) as usize;
    let body = &raw[4..4 + len];
    assert_eq!(body[0], 0x81, "first answer is not Opened");
    let port = u16::from_le_bytes(body[len - 34..len - 32].try_into().unwrap());
    (port, body[len - 32..].try_into().unwrap())
}

/// What a raw peer gets back: the refusal status if the daemon sent one, and
/// whether the connection was then closed. Never hangs.
fn peer_outcome(mut s: TcpStream) -> (Option<u32>, bool) {
    s.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    let closed = loop {
        match s.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(_) => break false,
        }
    };
    let status = (got.len() >= 16).then(|| u32::from_le_bytes(got[8..12].try_into().unwrap()));
    (status, closed)
}

#[test]
fn strangers_and_replayed_secrets_are_dropped_and_the_pool_is_unchanged() {
    const UNAUTHENTICATED: u32 = 15;
    let t = LocalTarget::new();
    let part_a = nohdrs_set(&t, "a.set", "4M");
    let part_b = nohdrs_set(&t, "b.set", "4M");
    let capture = t.dir().join("control-a.bin");
    let cfg = t.config();

    // Session 1 on a.set, overheard: its secret is now known.
    let spy = Config {
        ssh: teeing_ssh(t.dir(), &capture).display().to_string(),
        ..cfg.clone()
    };
    let mut p1 = Pool::create(&spy, "localhost", "a.set", 4 * MIB, 2, None)
        .unwrap_or_else(|e| panic!("create a: {e}; log: {}", t.log()));
    p1.region_mut()[..4].copy_from_slice(b"one!");
    p1.persist(0, 4, 0, PersistFlags::empty()).unwrap();
    let (port1, secret1) = captured_session(&capture);
    assert_eq!(port1, served(&t, "a.set").port);
    p1.close().unwrap();

    // Session 2 on the same pool and a session on another pool.
    let (mut p2, _) = Pool::open(&cfg, "localhost", "a.set", 4 * MIB, 2).unwrap();
    let s2 = served(&t, "a.set");
    let mut pb = Pool::create(&cfg, "localhost", "b.set", 4 * MIB, 2, None).unwrap();
    let sb = served(&t, "b.set");
    assert_ne!(s2.pid, sb.pid);
    let before_a = read_part(&part_a);
    let before_b = read_part(&part_b);

    let connect = |s: &Served| TcpStream::connect((s.addr.as_str(), s.port)).expect("connect");
    // A peer that says nothing is dropped after the hello timeout.
    let silent = connect(&s2);
    let silent_since = Instant::now();
    let mut outcomes = Vec::new();
    for s in [&s2, &sb] {
        // The overheard secret of session 1, replayed against later sessions,
        // each lane, followed by a write that must not land.
        for lane in 0..3 {
            let mut c = connect(s);
            c.write_all(&hello(lane, &secret1)).unwrap();
            let _ = c.write_all(&persist_header(64, 8));
            let _ = c.write_all(b"REPLAYED");
            outcomes.push((format!("replay lane {lane} to {}", s.port), peer_outcome(c)));
        }
        // No proof at all: a request straight away.
        let mut c = connect(s);
        let _ = c.write_all(&persist_header(128, 16));
        let _ = c.write_all(b"NO-PROOF-NO-PROOF");
        outcomes.push((format!("no hello to {}", s.port), peer_outcome(c)));
        // A guessed secret.
        let mut c = connect(s);
        c.write_all(&hello(0, &[0u8; 32])).unwrap();
        outcomes.push((format!("zero secret to {}", s.port), peer_outcome(c)));
        // Half a hello, then end of stream.
        let mut c = connect(s);
        c.write_all(&hello(0, &secret1)[..20]).unwrap();
        c.shutdown(Shutdown::Write).unwrap();
        outcomes.push((format!("half hello to {}", s.port), peer_outcome(c)));
    }
    for (what, (status, closed)) in &outcomes {
        assert!(closed, "{what}: connection not closed");
        if let Some(st) = status {
            assert_eq!(*st, UNAUTHENTICATED, "{what}");
        }
    }
    // Replays and bad hellos were refused with Unauthenticated, not merely cut.
    let refused = outcomes.iter().filter(|(_, (s, _))| s.is_some()).count();
    assert!(refused >= 2 * 5, "{outcomes:?}");
    let (st, closed) = peer_outcome(silent);
    let waited = silent_since.elapsed();
    eprintln!("silent peer dropped after {waited:?} (status {st:?})");
    assert!(closed && waited < HANG);

    // Logged, per daemon.
    for (s, name) in [(&s2, "a.set"), (&sb, "b.set")] {
        let log = log_of(&t, s.pid);
        let wrong = log.matches("refused: wrong session secret").count();
        assert!(
            wrong >= 4,
            "{name}: {wrong} wrong-secret refusals logged:\n{log}"
        );
        assert!(log.contains("bad hello magic"), "{name}:\n{log}");
        assert!(log.contains("no hello"), "{name}:\n{log}");
    }
    // Nothing reached either pool, and the real sessions still work.
    assert!(read_part(&part_a) == before_a, "a stranger wrote to a.set");
    assert!(read_part(&part_b) == before_b, "a stranger wrote to b.set");
    p2.region_mut()[64..72].copy_from_slice(b"session2");
    pb.region_mut()[64..72].copy_from_slice(b"sessionB");
    for lane in 0..2 {
        p2.persist(64, 8, lane, PersistFlags::empty()).unwrap();
        pb.persist(64, 8, lane, PersistFlags::empty()).unwrap();
    }
    p2.close().unwrap();
    pb.close().unwrap();
    let a = read_part(&part_a);
    assert_eq!(&a[..4], b"one!");
    assert_eq!(&a[64..72], b"session2");
    assert!(a[128..144].iter().all(|&b| b == 0));
    assert_eq!(&read_part(&part_b)[64..72], b"sessionB");
}

// ---------------------------------------------------------------------------
// 4. Stalls and network faults.

/// Parses "fail ERRNO MSG" / "again ERRNO US MSG" / "close RC US".
fn fields(line: &str, tag: &str) -> Vec<String> {
    let rest = line
        .strip_prefix(tag)
        .unwrap_or_else(|| panic!("expected {tag:?}, got {line:?}"));
    rest.trim()
        .splitn(3, ' ')
        .map(str::to_string)
        .collect::<Vec<_>>()
}

/// Drives a writer through a fault injected by `inject` after 100 acks; checks
/// the persist in flight fails with ECONNRESET within `bound`, the next call
/// fails fast, close returns within `bound`, and returns the acks and times.
fn persist_through_fault(
    w: &mut Writer,
    bound: Duration,
    inject: impl FnOnce(),
) -> (Duration, Duration, String) {
    w.wait_acks(100, HANG);
    inject();
    let at = Instant::now();
    let fail = w.next_event(bound).expect("writer ended without failing");
    let took = at.elapsed();
    let f = fields(&fail, "fail ");
    assert_eq!(f[0], libc::ECONNRESET.to_string(), "{fail}");
    let again = w.next_event(bound).expect("again");
    let a = fields(&again, "again ");
    assert_eq!(a[0], libc::ECONNABORTED.to_string(), "{again}");
    let again_us: u64 = a[1].parse().unwrap();
    assert!(again_us < 1_000_000, "{again}");
    let t0 = Instant::now();
    let close = w.next_event(bound).expect("close");
    let close_took = t0.elapsed();
    assert!(close.starts_with("close "), "{close}");
    (took, close_took, f[1..].join(" "))
}

/// A stall with RPMEM_TIMEOUT_MS=1500 failed by the time limit: not before
/// it, not long after it, and close did not wait for the silent target.
fn assert_timed_out(took: Duration, close_took: Duration, msg: &str) {
    assert!(msg.contains("did not answer in time"), "{msg}");
    assert!(
        took >= Duration::from_millis(1000),
        "failed before the time limit: {took:?}"
    );
    assert!(took < Duration::from_millis(1500) + Duration::from_secs(10));
    assert!(
        close_took < Duration::from_secs(10),
        "close took {close_took:?}"
    );
}

#[test]
fn stalled_target_fails_within_rpmem_timeout_ms_and_close_returns() {
    const SIZE: usize = 4 * MIB;
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "stall.set", "4M");
    let mut env = t.env();
    env.push(("RPMEM_TIMEOUT_MS".into(), "1500".into()));
    let mut w = Writer::spawn(&env, "stall.set", SIZE, 4096);
    w.wait_acks(1, HANG);
    let daemon = served(&t, "stall.set");
    let (took, close_took, msg) = persist_through_fault(&mut w, HANG, || {
        signal(daemon.pid, "STOP");
    });
    eprintln!(
        "stalled target (SIGSTOP): persist failed after {took:?} (RPMEM_TIMEOUT_MS=1500): {msg}; \
         close took {close_took:?}"
    );
    assert_timed_out(took, close_took, &msg);
    w.drain_acks();
    // The target resumes, finds its initiator gone, and releases the pool.
    signal(daemon.pid, "CONT");
    wait_gone(daemon.pid, HANG);
    assert_acked_blocks(&read_part(&part), w.acked, 4096);
    let (pool, _) = Pool::open(&t.config(), "localhost", "stall.set", SIZE, 1)
        .unwrap_or_else(|e| panic!("reopen: {e}; log: {}", t.log()));
    pool.close().unwrap();
}

static NETNS_SEQ: AtomicUsize = AtomicUsize::new(0);

/// A network namespace of our own joined to this one by a veth pair with
/// addresses in a private /30 (10.213.x.y), and an ssh stand-in that runs
/// the remote command inside it as sshd would, `SSH_CONNECTION` naming the
/// namespace's address. Everything is deleted on drop.
struct Netns {
    name: String,
    host_if: String,
    ns_ip: String,
    ssh: PathBuf,
    _dir: tempfile::TempDir,
}

fn ip(args: &[&str]) {
    let out = Command::new("ip")
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run ip");
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Netns {
    fn create() -> Option<Netns> {
        let have_ip = Command::new("ip")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !is_root() || !have_ip {
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
        let mut n = Netns {
            name: name.clone(),
            host_if: host_if.clone(),
            ns_ip: ns_ip.clone(),
            ssh: PathBuf::new(),
            _dir: tempfile::tempdir().expect("tempdir"),
        };
        ip(&[
            "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        ip(&["link", "set", &ns_if, "netns", &name]);
        ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if]);
        ip(&["link", "set", &host_if, "up"]);
        ip(&[
            "-n",
            &name,
            "addr",
            "add",
            &format!("{ns_ip}/30"),
            "dev",
            &ns_if,
        ]);
        ip(&["-n", &name, "link", "set", &ns_if, "up"]);
        ip(&["-n", &name, "link", "set", "lo", "up"]);
        let ssh = n._dir.path().join("ssh-netns");
        fs::write(
            &ssh,
            format!(
                "#!/bin/sh\n# ssh stand-in: run the command (last argument) in netns {name}\n\
                 for last; do :; done\n\
                 exec ip netns exec {name} env SSH_CONNECTION='{host_ip} 40000 {ns_ip} 22' \
                 /bin/sh -c \"$last\"\n"
            ),
        )
        .expect("write ssh stand-in");
        use std::os::unix::fs::PermissionsExt;
        fs::set_permissions(&ssh, fs::Permissions::from_mode(0o755)).expect("chmod");
        n.ssh = ssh;
        Some(n)
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

#[test]
fn link_down_mid_stream_fails_within_rpmem_timeout_ms() {
    const SIZE: usize = 8 * MIB;
    let Some(ns) = Netns::create() else { return };
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "net.set", "8M");
    let env = vec![
        ("RPMEM_SSH".to_string(), ns.ssh.display().to_string()),
        ("RPMEM_CMD".to_string(), t.rpmem_cmd()),
        ("RPMEM_TIMEOUT_MS".to_string(), "2000".to_string()),
    ];
    let mut w = Writer::spawn(&env, "net.set", SIZE, 64 * 1024);
    w.wait_acks(1, HANG);
    let daemon = served(&t, "net.set");
    assert!(daemon.addr.starts_with("10.213."), "{daemon:?}");
    let (took, close_took, msg) = persist_through_fault(&mut w, HANG, || {
        ip(&["link", "set", &ns.host_if, "down"]);
    });
    eprintln!(
        "link down: persist failed after {took:?} (RPMEM_TIMEOUT_MS=2000): {msg}; \
         close took {close_took:?}"
    );
    assert!(took < Duration::from_millis(2000) + Duration::from_secs(10));
    w.drain_acks();
    // The control channel does not cross the link: the daemon closes cleanly.
    wait_gone(daemon.pid, HANG);
    let log = log_of(&t, daemon.pid);
    assert!(log.contains("closed"), "{log}");
    assert_acked_blocks(&read_part(&part), w.acked, 64 * 1024);
}

/// What the in-namespace proxy does to the bytes it forwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
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
}

/// A userspace TCP proxy running inside a `Netns`: an iptables REDIRECT in
/// that namespace (and only there) sends every TCP connection arriving for the
/// namespace's address to it; it connects on to the original destination
/// from inside the namespace (local traffic skips PREROUTING) and forwards
/// both ways according to the current `Fault`. The daemon's data connections
/// cross it; its control channel (ssh stand-in pipes) does not.
struct Proxy {
    shared: Arc<ProxyShared>,
    thread: Option<thread::JoinHandle<()>>,
}

/// Read timeout of the proxy's sockets: how often its threads look at the
/// stop flag and the fault mode when nothing arrives.
const PROXY_TICK: Duration = Duration::from_millis(10);

impl Proxy {
    /// Starts the proxy in `ns` and redirects the namespace's incoming TCP
    /// to it. None (with the reason printed) if iptables cannot do that here.
    fn start(ns: &Netns) -> Option<Proxy> {
        let have_iptables = Command::new("iptables")
            .arg("-V")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have_iptables {
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
            .spawn(move || {
                // setns affects this thread only; sockets it makes stay in D.
                let listener = fs::File::open(&netns)
                    .map_err(|e| format!("open {}: {e}", netns.display()))
                    .and_then(|f| {
                        nix::sched::setns(f, nix::sched::CloneFlags::CLONE_NEWNET)
                            .map_err(|e| format!("setns {}: {e}", netns.display()))
                    })
                    .and_then(|()| {
                        std::net::TcpListener::bind(("0.0.0.0", 0))
                            .and_then(|l| l.set_nonblocking(true).map(|()| l))
                            .map_err(|e| format!("listen in the netns: {e}"))
                    });
                match listener {
                    Ok(l) => {
                        let _ =
                            tx.send(l.local_addr().map(|a| a.port()).map_err(|e| e.to_string()));
                        proxy_accept_loop(l, &sh);
                    }
                    Err(e) => {
                        let _ = tx.send(Err(e));
                    }
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
            .args([
                "netns", "exec", &ns.name, "iptables", "-w", "10", "-t", "nat",
            ])
            .arg("-A")
            .args(["PREROUTING", "-p", "tcp", "-d", &ns.ns_ip, "-j", "REDIRECT"])
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

    fn set(&self, fault: Fault) {
        *self.shared.fault.lock().unwrap_or_else(|e| e.into_inner()) = fault;
        if fault == Fault::Cut {
            for (a, b) in self.shared.conns.lock().unwrap().iter() {
                let _ = a.shutdown(Shutdown::Both);
                let _ = b.shutdown(Shutdown::Both);
            }
        }
    }

    /// How many connections went through the proxy.
    fn connections(&self) -> usize {
        self.shared.conns.lock().unwrap().len()
    }

    /// Stops and joins every thread of the proxy (bounded: they all wake
    /// every `PROXY_TICK`) and closes its sockets.
    fn stop(&mut self) {
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

fn proxy_accept_loop(listener: std::net::TcpListener, sh: &Arc<ProxyShared>) {
    let mut pumps = Vec::new();
    while !sh.stop.load(Ordering::SeqCst) {
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
        let dst =
            match nix::sys::socket::getsockopt(&client, nix::sys::socket::sockopt::OriginalDst) {
                Ok(d) => std::net::SocketAddr::from((
                    std::net::Ipv4Addr::from(u32::from_be(d.sin_addr.s_addr)),
                    u16::from_be(d.sin_port),
                )),
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
        let setup = |s: &TcpStream| -> std::io::Result<(TcpStream, TcpStream)> {
            s.set_nonblocking(false)?;
            s.set_nodelay(true)?;
            s.set_read_timeout(Some(PROXY_TICK))?;
            s.set_write_timeout(Some(Duration::from_secs(5)))?;
            Ok((s.try_clone()?, s.try_clone()?))
        };
        let (Ok((c_read, c_write)), Ok((s_read, s_write))) = (setup(&client), setup(&server))
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
    while !sh.stop.load(Ordering::SeqCst) {
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
            if sh.stop.load(Ordering::SeqCst) {
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

/// A writer whose data connection crosses a fault proxy: the daemon runs in
/// a fresh netns, RPMEM_TIMEOUT_MS is 1500. None when the host cannot.
fn proxied_writer(set: &str) -> Option<(Netns, Proxy, LocalTarget, PathBuf, Served, Writer)> {
    const SIZE: usize = 4 * MIB;
    let ns = Netns::create()?;
    let proxy = Proxy::start(&ns)?;
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, set, "4M");
    let env = vec![
        ("RPMEM_SSH".to_string(), ns.ssh.display().to_string()),
        ("RPMEM_CMD".to_string(), t.rpmem_cmd()),
        ("RPMEM_TIMEOUT_MS".to_string(), "1500".to_string()),
    ];
    let mut w = Writer::spawn(&env, set, SIZE, 4096);
    w.wait_acks(1, HANG);
    let daemon = served(&t, set);
    assert_eq!(daemon.addr, ns.ns_ip, "{daemon:?}");
    assert!(
        proxy.connections() >= 1,
        "the data connection did not cross the proxy"
    );
    Some((ns, proxy, t, part, daemon, w))
}

#[test]
fn delayed_stream_slows_persists_without_hitting_rpmem_timeout_ms() {
    let Some((_ns, proxy, t, part, daemon, mut w)) = proxied_writer("delay.set") else {
        return;
    };
    w.wait_acks(50, HANG);
    let t0 = Instant::now();
    w.wait_acks(w.acked + 50, HANG);
    let pass = t0.elapsed() / 50;
    proxy.set(Fault::Delay(20));
    // Count the acks of persists done before the delay (the writer runs
    // ahead of this thread), then time the next ones: all but the one in
    // flight now start later and wait for at least one delayed chunk.
    thread::sleep(Duration::from_millis(300));
    while let Ok(l) = w.lines.try_recv() {
        assert!(l.starts_with("ack "), "writer said {l:?}");
        w.acked += 1;
    }
    const N: usize = 25;
    let t0 = Instant::now();
    let mut worst = Duration::ZERO;
    for _ in 0..N {
        let t1 = Instant::now();
        w.wait_acks(w.acked + 1, HANG);
        worst = worst.max(t1.elapsed());
    }
    let total = t0.elapsed();
    let delayed = total / N as u32;
    proxy.set(Fault::Pass);
    w.wait_acks(w.acked + 50, HANG);
    eprintln!(
        "delayed stream (20 ms per forwarded chunk): persist {delayed:?} on average, \
         worst {worst:?} (passing through: {pass:?}; RPMEM_TIMEOUT_MS=1500)"
    );
    // Every persist waits for at least one delayed answer; none failed (a
    // failure line would have stopped wait_acks).
    assert!(
        total >= Duration::from_millis(20) * (N as u32 - 1),
        "persists were not delayed: {N} took {total:?}"
    );
    assert!(worst < Duration::from_millis(1500), "worst {worst:?}");
    let _ = w.child.kill();
    let _ = w.child.wait();
    w.drain_acks();
    assert!(w.seen.is_empty(), "writer said {:?}", w.seen);
    wait_gone(daemon.pid, HANG);
    assert_acked_blocks(&read_part(&part), w.acked, 4096);
    let log = log_of(&t, daemon.pid);
    assert!(!log.contains(" err: "), "rpmemd logged errors:\n{log}");
}

#[test]
fn stalled_stream_fails_within_rpmem_timeout_ms_and_close_returns() {
    let Some((_ns, proxy, t, part, daemon, mut w)) = proxied_writer("pstall.set") else {
        return;
    };
    let (took, close_took, msg) = persist_through_fault(&mut w, HANG, || proxy.set(Fault::Stall));
    eprintln!(
        "stalled stream (proxy): persist failed after {took:?} (RPMEM_TIMEOUT_MS=1500): {msg}; \
         close took {close_took:?}"
    );
    assert_timed_out(took, close_took, &msg);
    w.drain_acks();
    // The control channel does not cross the proxy: the daemon closes.
    wait_gone(daemon.pid, HANG);
    let log = log_of(&t, daemon.pid);
    assert!(log.contains("closed"), "{log}");
    assert_acked_blocks(&read_part(&part), w.acked, 4096);
}

#[test]
fn cut_stream_fails_at_once_and_close_returns() {
    let Some((_ns, proxy, t, part, daemon, mut w)) = proxied_writer("cut.set") else {
        return;
    };
    let (took, close_took, msg) = persist_through_fault(&mut w, HANG, || proxy.set(Fault::Cut));
    eprintln!(
        "cut stream (proxy): persist failed after {took:?}: {msg}; close took {close_took:?}"
    );
    // Noticed from the end of the stream, not from the timer.
    assert!(!msg.contains("did not answer in time"), "{msg}");
    assert!(took < Duration::from_millis(1500) + Duration::from_secs(10));
    assert!(
        close_took < Duration::from_secs(10),
        "close took {close_took:?}"
    );
    w.drain_acks();
    wait_gone(daemon.pid, HANG);
    let log = log_of(&t, daemon.pid);
    assert!(log.contains("closed"), "{log}");
    assert_acked_blocks(&read_part(&part), w.acked, 4096);
}

// ---------------------------------------------------------------------------
// 6. Target resources.

/// A tmpfs of `size` mounted on a fresh directory, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        if !is_root() {
            return None;
        }
        let d = tempfile::tempdir().ok()?;
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then_some(SmallFs(d))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn full_target_filesystem_fails_create_with_enospc_and_leaves_no_files() {
    let Some(small) = SmallFs::mount("5M") else {
        eprintln!("skipping: needs root (mounts a small tmpfs)");
        return;
    };
    let t = LocalTarget::new();
    let dir = small.0.path();
    // Part 0 fits, part 1 does not.
    t.write_poolset(
        "full.set",
        &format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n4M {}\n4M {}\n",
            dir.join("p0").display(),
            dir.join("p1").display()
        ),
    );
    let cfg = t.config();
    let e = Pool::create(&cfg, "localhost", "full.set", 8 * MIB, 1, None)
        .expect_err("create on a full file system must fail");
    eprintln!("create on a full tmpfs: {e}");
    assert_eq!(e.errno(), libc::ENOSPC, "{e}");
    assert!(e.to_string().contains("full.set"), "{e}");
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
    // With headers too.
    t.write_poolset(
        "fullh.set",
        &format!("PMEMPOOLSET\n16M {}\n", dir.join("h0").display()),
    );
    let attr = rpmem::PoolAttr {
        signature: *b"FULLTST\0",
        major: 1,
        ..Default::default()
    };
    let e = Pool::create(&cfg, "localhost", "fullh.set", 8 * MIB, 1, Some(&attr))
        .expect_err("create must fail");
    assert_eq!(e.errno(), libc::ENOSPC, "{e}");
    let left: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|d| d.unwrap().path())
        .collect();
    assert!(left.is_empty(), "files left behind: {left:?}");
}

// ---------------------------------------------------------------------------
// 5. Hostile input to the installed rpmemd.

/// A control frame: u32 length, then the body.
fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_le_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

/// An Open request body: kind 2, version, name, pool size, lanes.
fn open_body(set: &str, size: u64, nlanes: u32) -> Vec<u8> {
    let mut v = vec![2u8];
    v.extend_from_slice(&1u16.to_le_bytes());
    v.extend_from_slice(&(set.len() as u32).to_le_bytes());
    v.extend_from_slice(set.as_bytes());
    v.extend_from_slice(&size.to_le_bytes());
    v.extend_from_slice(&nlanes.to_le_bytes());
    v
}

fn rpmemd_cmd(t: &LocalTarget) -> Command {
    let mut c = Command::new(bin("rpmemd"));
    c.arg(format!("--poolset-dir={}", t.dir().display()))
        .arg(format!("--log-file={}", t.log_path().display()))
        .arg("--log-level=debug")
        .env("SSH_CONNECTION", "127.0.0.1 1 127.0.0.1 22");
    c
}

#[test]
fn garbage_on_rpmemd_stdin_ends_the_session_without_writing() {
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "g.set", "2M");
    let cfg = t.config();
    let mut p = Pool::create(&cfg, "localhost", "g.set", 2 * MIB, 1, None).unwrap();
    p.region_mut()[4096..4100].copy_from_slice(b"kept");
    p.persist(4096, 4, 0, PersistFlags::empty()).unwrap();
    p.close().unwrap();
    let before = read_part(&part);
    let open = frame(&open_body("g.set", 2 * MIB as u64, 1));
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut random = |n: usize| -> Vec<u8> {
        (0..n)
            .map(|_| {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                rng as u8
            })
            .collect()
    };
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length frame", vec![0, 0, 0, 0]),
        ("huge length", vec![0xff, 0xff, 0xff, 0xff, 1, 2, 3]),
        (
            "length past the limit",
            (64 * 1024 + 1u32).to_le_bytes().to_vec(),
        ),
        ("truncated prefix", vec![5, 0]),
        ("truncated body", vec![50, 0, 0, 0, 2, 1, 0]),
        ("unknown kind", frame(&[0x55])),
        ("close before open", frame(&[4])),
        ("open with a 4 GiB name", {
            let mut b = vec![2u8, 1, 0];
            b.extend_from_slice(&u32::MAX.to_le_bytes());
            frame(&b)
        }),
        ("open with junk after it", {
            let mut b = open_body("g.set", 2 * MIB as u64, 1);
            b.push(0);
            frame(&b)
        }),
        ("open then garbage", {
            let mut v = open.clone();
            v.extend_from_slice(&[9, 0, 0, 0, 0xee, 1, 2, 3, 4, 5, 6, 7, 8]);
            v
        }),
        ("open then a truncated frame", {
            let mut v = open.clone();
            v.extend_from_slice(&[8, 0, 0, 0, 3]);
            v
        }),
        ("open then set_attr too short", {
            let mut v = open.clone();
            v.extend_from_slice(&frame(&[3, 1, 2, 3]));
            v
        }),
    ];
    for i in 0..8 {
        cases.push(("random bytes", random(16 + i * 97)));
        let mut v = open.clone();
        v.extend_from_slice(&random(8 + i * 61));
        cases.push(("open then random bytes", v));
    }
    for (what, input) in &cases {
        let mut child = rpmemd_cmd(&t)
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start rpmemd");
        let mut stdin = child.stdin.take().unwrap();
        let _ = stdin.write_all(input);
        drop(stdin);
        let start = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().unwrap() {
                break st;
            }
            if start.elapsed() > HANG {
                let _ = child.kill();
                panic!("rpmemd hung on {what}");
            }
            thread::sleep(Duration::from_millis(5));
        };
        let opened_only = *what == "open then random bytes" && status.success();
        assert!(
            !status.success() || opened_only,
            "{what}: rpmemd exited {status}; log:\n{}",
            t.log()
        );
        assert!(read_part(&part) == before, "{what}: the pool changed");
    }
    assert!(t.log().contains(" err: "), "errors were not logged");
    // The pool is released and intact.
    let (p, _) = Pool::open(&cfg, "localhost", "g.set", 2 * MIB, 1).unwrap();
    let mut b = [0u8; 4];
    p.read(&mut b, 4096, 0).unwrap();
    assert_eq!(&b, b"kept");
    p.close().unwrap();
}

#[test]
fn garbage_on_an_authenticated_data_connection_drops_that_peer_without_writing() {
    const LANES: u32 = 16;
    let t = LocalTarget::new();
    let part = nohdrs_set(&t, "d.set", "2M");
    Pool::create(&t.config(), "localhost", "d.set", 2 * MIB, 1, None)
        .unwrap()
        .close()
        .unwrap();
    let before = read_part(&part);
    let mut child = rpmemd_cmd(&t)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start rpmemd");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    stdin
        .write_all(&frame(&open_body("d.set", 2 * MIB as u64, LANES)))
        .unwrap();
    let mut status = [0u8; 4];
    stdout.read_exact(&mut status).unwrap();
    assert_eq!(status, [0; 4], "startup status");
    let mut len = [0u8; 4];
    stdout.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; u32::from_le_bytes(len) as usize];
    stdout.read_exact(&mut body).unwrap();
    assert_eq!(body[0], 0x81, "not opened: {body:?}");
    let n = body.len();
    let port = u16::from_le_bytes(body[n - 34..n - 32].try_into().unwrap());
    let secret: [u8; 32] = body[n - 32..].try_into().unwrap();

    let header = |op: u8, flags: u8, offset: u64, length: u64| {
        let mut v = vec![op, flags, 0, 0, 0, 0, 0, 0];
        v.extend_from_slice(&offset.to_le_bytes());
        v.extend_from_slice(&length.to_le_bytes());
        v.extend_from_slice(&5u64.to_le_bytes());
        v
    };
    let mut reserved = header(2, 0, 64, 4);
    reserved[3] = 1;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "unknown op",
            [header(9, 0, 64, 4), b"XXXX".to_vec()].concat(),
        ),
        (
            "unknown flag",
            [header(2, 4, 64, 4), b"XXXX".to_vec()].concat(),
        ),
        ("reserved bytes", [reserved, b"XXXX".to_vec()].concat()),
        (
            "offset past the pool",
            [header(2, 0, 2 * MIB as u64, 4), b"XXXX".to_vec()].concat(),
        ),
        (
            "length past the pool",
            [header(2, 1, 64, 2 * MIB as u64), b"XXXX".to_vec()].concat(),
        ),
        (
            "length u64::MAX",
            [header(1, 0, 64, u64::MAX), b"XXXX".to_vec()].concat(),
        ),
        (
            "offset+length overflow",
            [header(3, 0, u64::MAX - 1, 4), b"XXXX".to_vec()].concat(),
        ),
        ("read past the pool", header(5, 0, 2 * MIB as u64 - 4, 8)),
        ("truncated header", header(2, 0, 64, 4)[..20].to_vec()),
        (
            "truncated payload",
            [header(2, 0, 64, 100), vec![b'T'; 10]].concat(),
        ),
        (
            "truncated large payload",
            [header(2, 0, 0, MIB as u64), vec![b'L'; 4096]].concat(),
        ),
    ];
    cases.push((
        "a second hello",
        [hello(1, &secret), hello(1, &secret)].concat()[48..].to_vec(),
    ));
    assert!(cases.len() < LANES as usize);
    for (lane, (what, bytes)) in cases.iter().enumerate() {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&hello(lane as u32, &secret)).unwrap();
        let mut ack = [0u8; 16];
        c.set_read_timeout(Some(HANG)).unwrap();
        c.read_exact(&mut ack).unwrap();
        assert_eq!(&ack[8..12], &[0, 0, 0, 0], "{what}: hello refused");
        let _ = c.write_all(bytes);
        let _ = c.shutdown(Shutdown::Write);
        let (status, closed) = peer_outcome(c);
        assert!(closed, "{what}: not dropped");
        if let Some(st) = status {
            assert_ne!(st, 0, "{what}: served");
        }
        assert!(read_part(&part) == before, "{what}: the pool changed");
    }
    // The session survives its misbehaving lanes and closes cleanly.
    stdin.write_all(&frame(&[4])).unwrap();
    let mut resp = [0u8; 5];
    stdout.read_exact(&mut resp).unwrap();
    assert_eq!(resp, [1, 0, 0, 0, 0x82]);
    drop(stdin);
    let st = child.wait().unwrap();
    assert!(st.success(), "rpmemd exited {st}");
    assert!(read_part(&part) == before, "the pool changed");
    let log = t.log();
    assert!(log.contains("bad request header"), "{log}");
}

// ---------------------------------------------------------------------------
// 7. Randomized crashes.

const SOAK_C: &str = r#"
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librpmem.h>

/* usage: soak TARGET SET POOL_SIZE NLANES ROUND SEED create|open
 * Lane threads each own a stripe of the pool past its 4 KiB header and fill
 * it with 256-byte blocks, front to back, by a random mix of persist (flags
 * 0 or RELAXED, one or several blocks), flushes then a drain, and
 * deep_persist; after each call that returned 0 they print "ack LANE BLOCK
 * COUNT" for the blocks it made durable. Another thread sets the attributes
 * over and over ("attrsend N" before the call, "attr N" after it returned
 * 0; major = N). A thread stops at its first failure ("fail ..."); once
 * every lane has stopped, the pool is closed ("closed RC") and the program
 * exits 0. */
#define BLOCK 256
static RPMEMpool *rpp;
static unsigned char *pool;
static size_t stripe_blocks;
static unsigned round_no, seed;
static volatile int lanes_left;
static pthread_mutex_t out = PTHREAD_MUTEX_INITIALIZER;

static void say(const char *fmt, unsigned long a, unsigned long b, unsigned long c) {
	pthread_mutex_lock(&out);
	printf(fmt, a, b, c);
	fflush(stdout);
	pthread_mutex_unlock(&out);
}
static unsigned char pattern(unsigned lane, size_t block, size_t j) {
	return (unsigned char)((round_no * 131 + lane * 31 + block * 7 + j) % 251 + 1);
}
static void fill(unsigned lane, size_t first, size_t n) {
	for (size_t b = first; b < first + n; b++)
		for (size_t j = 0; j < BLOCK; j++)
			pool[4096 + (lane * stripe_blocks + b) * BLOCK + j] = pattern(lane, b, j);
}
static size_t off(unsigned lane, size_t b) {
	return 4096 + (lane * stripe_blocks + b) * BLOCK;
}
static void failed(const char *what, unsigned lane) {
	pthread_mutex_lock(&out);
	printf("fail %s %u %d %s\n", what, lane, errno, rpmem_errormsg());
	fflush(stdout);
	pthread_mutex_unlock(&out);
}
static void *lane_main(void *arg) {
	unsigned lane = (unsigned)(size_t)arg;
	unsigned r = seed * 7919 + lane;
	size_t b = 0;
	while (b < stripe_blocks) {
		size_t n = 1 + rand_r(&r) % 8;
		if (n > stripe_blocks - b)
			n = stripe_blocks - b;
		fill(lane, b, n);
		int op = rand_r(&r) % 10, rc = 0;
		if (op < 5) {
			unsigned fl = (op % 2) ? RPMEM_PERSIST_RELAXED : 0;
			rc = rpmem_persist(rpp, off(lane, b), n * BLOCK, lane, fl);
		} else if (op < 8) {
			for (size_t k = 0; k < n && !rc; k++) {
				unsigned fl = (k % 2) ? RPMEM_FLUSH_RELAXED : 0;
				rc = rpmem_flush(rpp, off(lane, b + k), BLOCK, lane, fl);
			}
			if (!rc)
				rc = rpmem_drain(rpp, lane, 0);
		} else {
			rc = rpmem_deep_persist(rpp, off(lane, b), n * BLOCK, lane);
		}
		if (rc) {
			failed("lane", lane);
			break;
		}
		say("ack %lu %lu %lu\n", lane, b, n);
		b += n;
	}
	__sync_fetch_and_sub(&lanes_left, 1);
	return NULL;
}
static void *attr_main(void *arg) {
	(void)arg;
	struct rpmem_pool_attr a;
	memset(&a, 0, sizeof(a));
	memcpy(a.signature, "SOAKTEST", 8);
	memset(a.poolset_uuid, 0x5a, sizeof(a.poolset_uuid));
	for (unsigned k = 1; lanes_left > 0; k++) {
		unsigned n = round_no * 100000 + k;
		a.major = n;
		memcpy(a.uuid, &n, sizeof(n));
		say("attrsend %lu\n", n, 0, 0);
		if (rpmem_set_attr(rpp, &a)) {
			failed("set_attr", 0);
			break;
		}
		say("attr %lu\n", n, 0, 0);
	}
	return NULL;
}
int main(int argc, char **argv) {
	if (argc != 8) return 64;
	size_t size = strtoull(argv[3], NULL, 0);
	unsigned nlanes = (unsigned)strtoul(argv[4], NULL, 0);
	round_no = (unsigned)strtoul(argv[5], NULL, 0);
	seed = (unsigned)strtoul(argv[6], NULL, 0);
	if (posix_memalign((void **)&pool, 4096, size)) return 65;
	memset(pool, 0, size);
	unsigned want = nlanes;
	struct rpmem_pool_attr a;
	memset(&a, 0, sizeof(a));
	memcpy(a.signature, "SOAKTEST", 8);
	memset(a.poolset_uuid, 0x5a, sizeof(a.poolset_uuid));
	if (strcmp(argv[7], "create") == 0)
		rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes, &a);
	else
		rpp = rpmem_open(argv[1], argv[2], pool, size, &nlanes, &a);
	if (!rpp || nlanes != want) {
		printf("open-failed %d %s\n", errno, rpmem_errormsg());
		return 2;
	}
	printf("opened\n");
	fflush(stdout);
	stripe_blocks = (size - 4096) / nlanes / BLOCK;
	lanes_left = (int)nlanes;
	pthread_t t[64], at;
	for (unsigned l = 0; l < nlanes; l++)
		pthread_create(&t[l], NULL, lane_main, (void *)(size_t)l);
	pthread_create(&at, NULL, attr_main, NULL);
	for (unsigned l = 0; l < nlanes; l++)
		pthread_join(t[l], NULL);
	pthread_join(at, NULL);
	printf("closed %d\n", rpmem_close(rpp));
	fflush(stdout);
	return 0;
}
"#;

/// The byte block `block` of lane `lane` holds at `j` in soak round `round`
/// (SOAK_C's `pattern`).
fn soak_pattern(round: u64, lane: u64, block: u64, j: u64) -> u8 {
    ((round * 131 + lane * 31 + block * 7 + j) % 251 + 1) as u8
}

/// How a soak round ends.
#[derive(Debug, Clone, Copy)]
enum Crash {
    /// SIGKILL of rpmemd.
    Target,
    /// SIGKILL of the initiator.
    Initiator,
    /// Every data connection reset (`ss -K`), as a broken link does.
    Link,
}

/// A random number below `n` (std's randomly keyed hasher over the clock).
fn random_below(n: u64) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(Instant::now()) % n
}

/// Lanes persist, flush + drain and deep_persist at random while set_attr
/// runs beside them, on a pool with a header in every part; at a random
/// instant rpmemd is SIGKILLed, or the initiator is, or the data connections
/// are reset. After each, the pool opens, holds every acknowledged block,
/// and has the last acknowledged attributes or the ones in flight.
/// `RPMEM_SOAK_SECS` sets how long it runs (default 30; `make soak
/// DURATION=…`).
#[test]
fn soak_random_crashes_keep_every_acknowledged_write() {
    const PART: usize = 2 * MIB;
    const PARTS: usize = 4;
    const LANES: u64 = 4;
    const BLOCK: usize = 256;
    let secs: u64 = std::env::var("RPMEM_SOAK_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    let size = PARTS * PART - (PARTS - 1) * 4096;
    let t = LocalTarget::new();
    let mut set = String::from("PMEMPOOLSET\n");
    for i in 0..PARTS {
        set.push_str(&format!(
            "{PART} {}\n",
            t.dir().join(format!("soak.part{i}")).display()
        ));
    }
    t.write_poolset("soak.set", &set);
    let exe = {
        let src = std::env::temp_dir().join(format!("soak-{}.c", std::process::id()));
        fs::write(&src, SOAK_C).expect("write C source");
        compile_c(&src)
    };
    eprintln!("soak: {secs} s");
    let crashes: &[Crash] = if is_root() && e2e::have_tool("ss") {
        &[Crash::Target, Crash::Initiator, Crash::Link]
    } else {
        eprintln!("soak: no link cuts (they need root and ss)");
        &[Crash::Target, Crash::Initiator]
    };
    let cfg = t.config();
    let stripe_blocks = (size - 4096) / LANES as usize / BLOCK;
    let mut attr_major: u32 = 0;
    let start = Instant::now();
    let mut counts = [0usize; 3];
    let mut round = 0u64;
    while round == 0 || start.elapsed() < Duration::from_secs(secs) {
        round += 1;
        let mode = if round == 1 { "create" } else { "open" };
        let mut w = Command::new(&exe)
            .args([
                "localhost",
                "soak.set",
                &size.to_string(),
                &LANES.to_string(),
            ])
            .arg(round.to_string())
            .arg(random_below(1 << 30).to_string())
            .arg(mode)
            .envs(t.env())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the soak writer");
        let mut lines = BufReader::new(w.stdout.take().expect("piped")).lines();
        let first = lines.next().and_then(|l| l.ok()).unwrap_or_default();
        assert_eq!(first, "opened", "round {round}: log:\n{}", t.log());
        let daemon = served(&t, "soak.set");
        // Read the writer's lines on a thread; the crash comes meanwhile.
        let (tx, rx) = mpsc::channel();
        let reader = thread::spawn(move || {
            for l in lines.map_while(|l| l.ok()) {
                if tx.send(l).is_err() {
                    break;
                }
            }
        });
        thread::sleep(Duration::from_millis(20 + random_below(300)));
        let crash = crashes[random_below(crashes.len() as u64) as usize];
        counts[crash as usize] += 1;
        match crash {
            Crash::Target => signal(daemon.pid, "KILL"),
            Crash::Initiator => {
                let _ = w.kill();
            }
            Crash::Link => {
                let filter = format!("( dport = :{0} or sport = :{0} )", daemon.port);
                let st = Command::new("ss")
                    .args(["-K", &filter])
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .status()
                    .expect("run ss");
                assert!(st.success(), "ss -K failed");
            }
        }
        let exited = {
            let deadline = Instant::now() + HANG;
            loop {
                if let Some(st) = w.try_wait().unwrap() {
                    break st;
                }
                if Instant::now() > deadline {
                    let _ = w.kill();
                    panic!("round {round} ({crash:?}): the writer hung");
                }
                thread::sleep(Duration::from_millis(5));
            }
        };
        reader.join().unwrap();
        wait_gone(daemon.pid, HANG);
        let mut acked: Vec<Vec<bool>> = vec![vec![false; stripe_blocks]; LANES as usize];
        let (mut last_acked, mut last_sent) = (attr_major, attr_major);
        for l in rx.try_iter() {
            let f: Vec<&str> = l.split(' ').collect();
            match f[0] {
                "ack" => {
                    let n: Vec<usize> = f[1..].iter().map(|x| x.parse().unwrap()).collect();
                    acked[n[0]][n[1]..n[1] + n[2]].fill(true);
                }
                "attrsend" => last_sent = f[1].parse().unwrap(),
                "attr" => last_acked = f[1].parse().unwrap(),
                "fail" | "closed" => {}
                _ => panic!("round {round}: writer said {l:?}"),
            }
        }
        if !matches!(crash, Crash::Initiator) {
            assert!(
                exited.success(),
                "round {round} ({crash:?}): writer {exited}"
            );
        }
        // The pool opens, with every acknowledged block and the attributes
        // of the last acknowledged set_attr or of the one in flight.
        let (pool, attr) = Pool::open(&cfg, "localhost", "soak.set", size, 1)
            .unwrap_or_else(|e| panic!("round {round} ({crash:?}): open: {e}; log:\n{}", t.log()));
        assert!(
            attr.major == last_acked || attr.major == last_sent,
            "round {round} ({crash:?}): attributes {} (last acknowledged {last_acked}, last sent {last_sent})",
            attr.major
        );
        attr_major = attr.major;
        let mut data = vec![0u8; size];
        pool.read(&mut data, 0, 0).unwrap();
        pool.close().unwrap();
        let mut n_acked = 0;
        for (lane, blocks) in acked.iter().enumerate() {
            for (b, _) in blocks.iter().enumerate().filter(|(_, a)| **a) {
                n_acked += 1;
                let at = 4096 + (lane * stripe_blocks + b) * BLOCK;
                let bad = (0..BLOCK).find(|&j| {
                    data[at + j] != soak_pattern(round, lane as u64, b as u64, j as u64)
                });
                assert!(
                    bad.is_none(),
                    "round {round} ({crash:?}): acknowledged block {b} of lane {lane} is not intact at byte {bad:?}"
                );
            }
        }
        eprintln!(
            "soak round {round}: {crash:?}, {n_acked} blocks acknowledged, attributes {}",
            attr.major
        );
    }
    eprintln!(
        "soak: {round} rounds in {:?} (target killed {}, initiator killed {}, link cut {})",
        start.elapsed(),
        counts[0],
        counts[1],
        counts[2]
    );
}
