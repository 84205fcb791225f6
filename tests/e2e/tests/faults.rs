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
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::Ordering;
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use e2e::faults::{
    alive, assert_acked_blocks, pattern, persist_until_error, signal, wait_for_acks, wait_gone,
    Fault, FaultOutcome, Netns, Proxy, SmallFs, Writer, HANG,
};
use e2e::{
    bin, compile_c, is_root, read_file, workspace_root, write_script, LocalTarget, Served,
    Transport,
};
use rpmem::{Config, PersistFlags, Pool};
use rpmem_proto::control::{self, PoolRequest, Request, Response, Session};
use rpmem_proto::data::{
    Ack, Hello, Op, RequestHeader, ACK_LEN, FLAG_RELAXED, HEADER_LEN, HELLO_LEN,
};
use rpmem_proto::{Status, PROTO_VERSION};

const MIB: usize = 1024 * 1024;

// ---------------------------------------------------------------------------
// 2. Target death.

#[test]
fn target_death_fails_every_lane_in_bounded_time_and_keeps_acknowledged_bytes() {
    target_death(Transport::Tcp);
}

#[test]
fn target_death_fails_every_fabric_lane_in_bounded_time_and_keeps_acknowledged_bytes() {
    for provider in ["tcp", "sockets"] {
        target_death(Transport::Fabric(provider));
    }
}

fn target_death(tr: Transport) {
    const LANES: u32 = 4;
    const BLOCK: usize = 4096;
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    let cfg = t.config();
    assert_eq!(cfg.io_timeout, Duration::from_millis(5000), "the default");
    let (part, mut pool) = t.create_nohdrs("death", 16 * MIB, LANES);
    assert_eq!(pool.nlanes(), LANES);
    for (i, b) in pool.region_mut().iter_mut().enumerate() {
        *b = pattern(i / BLOCK, i % BLOCK);
    }
    let daemon = t.served("death.set");
    assert!(alive(daemon.pid));
    let pool = Arc::new(pool);
    let stripe = 16 * MIB / LANES as usize;
    let (acks, rx) = persist_until_error(&pool, BLOCK);
    // Let every lane get going, then kill the daemon under them.
    wait_for_acks(&acks, 20);
    let killed = Instant::now();
    signal(daemon.pid, "KILL");
    let mut worst = Duration::ZERO;
    for _ in 0..LANES {
        let (lane, at, errno, msg) = rx
            .recv_timeout(cfg.io_timeout * 3)
            .expect("a lane's persist hung after the target died");
        let took = at.duration_since(killed);
        worst = worst.max(took);
        eprintln!("{tr:?} lane {lane}: error after {took:?}: errno {errno}: {msg}");
        assert_eq!(errno, libc::ECONNRESET, "lane {lane}: {msg}");
        assert!(msg.contains(&format!("lane {lane}")), "{msg}");
    }
    eprintln!("{tr:?} target death: every lane failed within {worst:?} of SIGKILL");
    assert!(worst < cfg.io_timeout * 3);
    // Every acknowledged byte is in the part file.
    let data = read_file(&part);
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
    let part = t.write_nohdrs_set("init", "8M");
    let mut w = Writer::spawn(&t.env(), "init.set", SIZE, BLOCK);
    w.wait_acks(300, HANG);
    let daemon = t.served("init.set");
    // Kill it mid-stream: it persists in a tight loop.
    w.kill();
    w.drain_acks();
    assert!(w.seen.is_empty(), "writer said {:?}", w.seen);
    let took = wait_gone(daemon.pid, HANG);
    eprintln!(
        "initiator death: rpmemd {} exited {took:?} after the initiator ({} acks)",
        daemon.pid, w.acked
    );
    let log = t.log_of(daemon.pid);
    assert!(log.contains("the initiator went away"), "log:\n{log}");
    assert!(!log.contains(" err: "), "rpmemd logged errors:\n{log}");
    // The pool is released and holds every acknowledged block.
    assert_acked_blocks(&read_file(&part), w.acked, BLOCK);
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

/// A data lane's Hello for `lane` with `secret`.
fn hello(lane: u32, secret: &[u8; 32]) -> [u8; HELLO_LEN] {
    Hello {
        version: PROTO_VERSION,
        lane,
        secret: *secret,
    }
    .encode()
}

/// A request header of `op` (tag 7).
fn header(op: Op, flags: u8, offset: u64, length: u64) -> [u8; HEADER_LEN] {
    RequestHeader {
        op,
        flags,
        offset,
        length,
        tag: 7,
    }
    .encode()
}

/// The session a control stream (after the daemon's startup status) opens.
fn opened_session(stream: &mut impl Read) -> Session {
    let mut status = [0u8; 4];
    stream.read_exact(&mut status).expect("startup status");
    assert_eq!(status, [0; 4], "the daemon's startup status comes first");
    let body = control::read_frame(stream)
        .expect("a response frame")
        .expect("a response");
    match Response::decode(&body).expect("a response") {
        Response::Opened(s) => s,
        other => panic!("first answer is not Opened: {other:?}"),
    }
}

/// An ssh stand-in that copies what the daemon answers on the control
/// channel to `capture`, so a test can learn a session's secret the way an
/// eavesdropper on that session would.
fn teeing_ssh(dir: &Path, capture: &Path) -> PathBuf {
    write_script(
        &dir.join("ssh-tee"),
        &format!(
            "'{}' \"$@\" | tee -a '{}'\n",
            bin("rpmem-ssh-local").display(),
            capture.display()
        ),
    )
}

/// What a raw peer gets back: the refusal status if the daemon sent one, and
/// whether the connection was then closed. Never hangs.
fn peer_outcome(mut s: TcpStream) -> (Option<Status>, bool) {
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
    let status = got
        .first_chunk::<ACK_LEN>()
        .map(|a| Ack::decode(a).expect("an ack").status);
    (status, closed)
}

#[test]
fn strangers_and_replayed_secrets_are_dropped_and_the_pool_is_unchanged() {
    let t = LocalTarget::new();
    let part_a = t.write_nohdrs_set("a", "4M");
    let part_b = t.write_nohdrs_set("b", "4M");
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
    let overheard = opened_session(&mut &read_file(&capture)[..]);
    let secret1 = overheard.secret;
    assert_eq!(overheard.port, t.served("a.set").port);
    p1.close().unwrap();

    // Session 2 on the same pool and a session on another pool.
    let (mut p2, _) = Pool::open(&cfg, "localhost", "a.set", 4 * MIB, 2).unwrap();
    let s2 = t.served("a.set");
    let mut pb = Pool::create(&cfg, "localhost", "b.set", 4 * MIB, 2, None).unwrap();
    let sb = t.served("b.set");
    assert_ne!(s2.pid, sb.pid);
    let before_a = read_file(&part_a);
    let before_b = read_file(&part_b);

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
            let _ = c.write_all(&header(Op::Persist, 0, 64, 8));
            let _ = c.write_all(b"REPLAYED");
            outcomes.push((format!("replay lane {lane} to {}", s.port), peer_outcome(c)));
        }
        // No proof at all: a request straight away.
        let mut c = connect(s);
        let _ = c.write_all(&header(Op::Persist, 0, 128, 16));
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
            assert_eq!(*st, Status::Unauthenticated, "{what}");
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
        let log = t.log_of(s.pid);
        let wrong = log.matches("refused: wrong session secret").count();
        assert!(
            wrong >= 4,
            "{name}: {wrong} wrong-secret refusals logged:\n{log}"
        );
        assert!(log.contains("bad hello magic"), "{name}:\n{log}");
        assert!(log.contains("no hello"), "{name}:\n{log}");
    }
    // Nothing reached either pool, and the real sessions still work.
    assert!(read_file(&part_a) == before_a, "a stranger wrote to a.set");
    assert!(read_file(&part_b) == before_b, "a stranger wrote to b.set");
    p2.region_mut()[64..72].copy_from_slice(b"session2");
    pb.region_mut()[64..72].copy_from_slice(b"sessionB");
    for lane in 0..2 {
        p2.persist(64, 8, lane, PersistFlags::empty()).unwrap();
        pb.persist(64, 8, lane, PersistFlags::empty()).unwrap();
    }
    p2.close().unwrap();
    pb.close().unwrap();
    let a = read_file(&part_a);
    assert_eq!(&a[..4], b"one!");
    assert_eq!(&a[64..72], b"session2");
    assert!(a[128..144].iter().all(|&b| b == 0));
    assert_eq!(&read_file(&part_b)[64..72], b"sessionB");
}

// ---------------------------------------------------------------------------
// 4. Stalls and network faults.

/// A stall with RPMEM_TIMEOUT_MS=1500 failed by the time limit: not before
/// it, not long after it, and close did not wait for the silent target.
fn assert_timed_out(f: &FaultOutcome) {
    assert!(f.msg.contains("did not answer in time"), "{f:?}");
    assert!(f.took >= Duration::from_millis(1000), "too early: {f:?}");
    assert_bounded(f, Duration::from_millis(1500));
}

/// The failure came within `limit` and a wide margin, and close did not
/// wait for the silent peer.
fn assert_bounded(f: &FaultOutcome, limit: Duration) {
    assert!(f.took < limit + Duration::from_secs(10), "{f:?}");
    assert!(f.close_took < Duration::from_secs(10), "{f:?}");
}

/// After a fault on the data path only: the writer has ended, the daemon
/// closed the session cleanly and exited, and the part holds every block
/// the writer was told was persisted.
fn assert_closed_keeping_acked_blocks(
    w: &mut Writer,
    t: &LocalTarget,
    daemon: &Served,
    part: &Path,
    block: usize,
) {
    w.drain_acks();
    wait_gone(daemon.pid, HANG);
    let log = t.log_of(daemon.pid);
    assert!(log.contains("closed"), "{log}");
    assert_acked_blocks(&read_file(part), w.acked, block);
}

#[test]
fn stalled_target_fails_within_rpmem_timeout_ms_and_close_returns() {
    const SIZE: usize = 4 * MIB;
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("stall", "4M");
    let mut env = t.env();
    env.push(("RPMEM_TIMEOUT_MS".into(), "1500".into()));
    let mut w = Writer::spawn(&env, "stall.set", SIZE, 4096);
    w.wait_acks(1, HANG);
    let daemon = t.served("stall.set");
    let f = w.through_fault(HANG, || signal(daemon.pid, "STOP"));
    eprintln!("stalled target (SIGSTOP), RPMEM_TIMEOUT_MS=1500: {f:?}");
    assert_timed_out(&f);
    w.drain_acks();
    // The target resumes, finds its initiator gone, and releases the pool.
    signal(daemon.pid, "CONT");
    wait_gone(daemon.pid, HANG);
    assert_acked_blocks(&read_file(&part), w.acked, 4096);
    let (pool, _) = Pool::open(&t.config(), "localhost", "stall.set", SIZE, 1)
        .unwrap_or_else(|e| panic!("reopen: {e}; log: {}", t.log()));
    pool.close().unwrap();
}

#[test]
fn link_down_mid_stream_fails_within_rpmem_timeout_ms() {
    link_down(Transport::Tcp);
}

#[test]
fn link_down_mid_stream_fails_fabric_lanes_within_rpmem_timeout_ms() {
    link_down(Transport::Fabric("tcp"));
}

fn link_down(tr: Transport) {
    const SIZE: usize = 8 * MIB;
    if !tr.available() {
        return;
    }
    let Some(ns) = Netns::create() else { return };
    let t = LocalTarget::with_transport(tr);
    let part = t.write_nohdrs_set("net", "8M");
    let mut env = ns.env(&t);
    env.push(("RPMEM_TIMEOUT_MS".into(), "2000".into()));
    env.extend(tr.env());
    let mut w = Writer::spawn(&env, "net.set", SIZE, 64 * 1024);
    w.wait_acks(1, HANG);
    let daemon = t.served("net.set");
    assert!(daemon.addr.starts_with("10.213."), "{daemon:?}");
    let f = w.through_fault(HANG, || ns.set_link(false));
    eprintln!("{tr:?} link down, RPMEM_TIMEOUT_MS=2000: {f:?}");
    assert_bounded(&f, Duration::from_millis(2000));
    // The control channel does not cross the link: the daemon closes cleanly.
    assert_closed_keeping_acked_blocks(&mut w, &t, &daemon, &part, 64 * 1024);
}

/// A writer whose data connection crosses a fault proxy: the daemon runs in
/// a fresh netns, RPMEM_TIMEOUT_MS is 1500. None when the host cannot.
fn proxied_writer(name: &str) -> Option<(Netns, Proxy, LocalTarget, PathBuf, Served, Writer)> {
    const SIZE: usize = 4 * MIB;
    let ns = Netns::create()?;
    let proxy = Proxy::start(&ns)?;
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set(name, "4M");
    let mut env = ns.env(&t);
    // The proxy connects on from inside the namespace, so the daemon sees
    // the lanes come from the namespace's own address, not from the ssh
    // client's: allow it, as for an initiator behind a jump host.
    for (k, v) in &mut env {
        if k == "RPMEM_CMD" {
            v.push_str(&format!(" --allow-from={}", ns.ns_ip()));
        }
    }
    env.push(("RPMEM_TIMEOUT_MS".into(), "1500".into()));
    let set = format!("{name}.set");
    let mut w = Writer::spawn(&env, &set, SIZE, 4096);
    w.wait_acks(1, HANG);
    let daemon = t.served(&set);
    assert_eq!(daemon.addr, ns.ns_ip(), "{daemon:?}");
    assert!(
        proxy.connections() >= 1,
        "the data connection did not cross the proxy"
    );
    Some((ns, proxy, t, part, daemon, w))
}

#[test]
fn delayed_stream_slows_persists_without_hitting_rpmem_timeout_ms() {
    let Some((_ns, proxy, t, part, daemon, mut w)) = proxied_writer("delay") else {
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
    w.kill();
    w.drain_acks();
    assert!(w.seen.is_empty(), "writer said {:?}", w.seen);
    wait_gone(daemon.pid, HANG);
    assert_acked_blocks(&read_file(&part), w.acked, 4096);
    let log = t.log_of(daemon.pid);
    assert!(!log.contains(" err: "), "rpmemd logged errors:\n{log}");
}

/// A proxied writer meets `fault` mid-stream; `check` judges how its
/// persist failed. The control channel does not cross the proxy: the
/// daemon then closes cleanly, keeping every acknowledged block.
fn proxied_fault(name: &str, fault: Fault, check: impl FnOnce(&FaultOutcome)) {
    let Some((_ns, proxy, t, part, daemon, mut w)) = proxied_writer(name) else {
        return;
    };
    let f = w.through_fault(HANG, || proxy.set(fault));
    eprintln!("{fault:?} (proxy), RPMEM_TIMEOUT_MS=1500: {f:?}");
    check(&f);
    assert_closed_keeping_acked_blocks(&mut w, &t, &daemon, &part, 4096);
}

#[test]
fn stalled_stream_fails_within_rpmem_timeout_ms_and_close_returns() {
    proxied_fault("pstall", Fault::Stall, assert_timed_out);
}

#[test]
fn cut_stream_fails_at_once_and_close_returns() {
    proxied_fault("cut", Fault::Cut, |f| {
        // Noticed from the end of the stream, not from the timer.
        assert!(!f.msg.contains("did not answer in time"), "{f:?}");
        assert_bounded(f, Duration::from_millis(1500));
    });
}

// ---------------------------------------------------------------------------
// 6. Target resources.

#[test]
fn full_target_filesystem_fails_create_with_enospc_and_leaves_no_files() {
    let Some(small) = SmallFs::mount("5M") else {
        return;
    };
    let t = LocalTarget::new();
    let dir = small.path();
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

/// An Open request frame.
fn open_frame(set: &str, size: usize, nlanes: u32) -> Vec<u8> {
    Request::Open {
        pool: PoolRequest::new(set, size as u64, nlanes),
    }
    .encode()
}

/// The installed rpmemd serving `t`, started as sshd would start it, its
/// control channel's input piped; its output goes to `stdout`.
fn rpmemd(t: &LocalTarget, stdout: Stdio) -> (Child, ChildStdin) {
    let mut child = t
        .rpmemd_command()
        .stdin(Stdio::piped())
        .stdout(stdout)
        .stderr(Stdio::null())
        .spawn()
        .expect("start rpmemd");
    let stdin = child.stdin.take().expect("piped");
    (child, stdin)
}

#[test]
fn garbage_on_rpmemd_stdin_ends_the_session_without_writing() {
    let t = LocalTarget::new();
    let cfg = t.config();
    let (part, mut p) = t.create_nohdrs("g", 2 * MIB, 1);
    p.region_mut()[4096..4100].copy_from_slice(b"kept");
    p.persist(4096, 4, 0, PersistFlags::empty()).unwrap();
    p.close().unwrap();
    let before = read_file(&part);
    let open = open_frame("g.set", 2 * MIB, 1);
    let body = |frame: &[u8]| frame[4..].to_vec();
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
    let set_attr = Request::SetAttr {
        attr: rpmem_proto::PoolAttr::default(),
    }
    .encode();
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("zero-length frame", control::encode_frame(&[])),
        (
            "huge length",
            [&u32::MAX.to_le_bytes()[..], &[1, 2, 3]].concat(),
        ),
        (
            "length past the limit",
            (control::MAX_FRAME as u32 + 1).to_le_bytes().to_vec(),
        ),
        ("truncated prefix", open[..2].to_vec()),
        ("truncated body", open[..7].to_vec()),
        ("unknown kind", control::encode_frame(&[0x55])),
        ("close before open", Request::Close.encode()),
        ("open with a 4 GiB name", {
            // Kind and version, then a name length no frame can hold.
            let mut b = body(&open)[..3].to_vec();
            b.extend_from_slice(&u32::MAX.to_le_bytes());
            control::encode_frame(&b)
        }),
        ("open with junk after it", {
            let mut b = body(&open);
            b.push(0);
            control::encode_frame(&b)
        }),
        (
            "open then garbage",
            [
                &open[..],
                &control::encode_frame(&[0xee, 1, 2, 3, 4, 5, 6, 7, 8]),
            ]
            .concat(),
        ),
        (
            "open then a truncated frame",
            [&open[..], &set_attr[..5]].concat(),
        ),
        (
            "open then set_attr too short",
            [&open[..], &control::encode_frame(&body(&set_attr)[..4])].concat(),
        ),
    ];
    for i in 0..8 {
        cases.push(("random bytes", random(16 + i * 97)));
        let mut v = open.clone();
        v.extend_from_slice(&random(8 + i * 61));
        cases.push(("open then random bytes", v));
    }
    for (what, input) in &cases {
        let (mut child, mut stdin) = rpmemd(&t, Stdio::null());
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
        assert!(read_file(&part) == before, "{what}: the pool changed");
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
    let (part, pool) = t.create_nohdrs("d", 2 * MIB, 1);
    pool.close().unwrap();
    let before = read_file(&part);
    let (mut child, mut stdin) = rpmemd(&t, Stdio::piped());
    let mut stdout = child.stdout.take().expect("piped");
    stdin
        .write_all(&open_frame("d.set", 2 * MIB, LANES))
        .unwrap();
    let Session { port, secret, .. } = opened_session(&mut stdout);

    // Bytes 0, 1 and 3 of a header: its op, its flags, a reserved byte.
    let patched = |at: usize, v: u8| {
        let mut h = header(Op::Persist, 0, 64, 4);
        h[at] = v;
        h
    };
    let with = |h: [u8; HEADER_LEN], payload: &[u8]| [&h[..], payload].concat();
    let big = 2 * MIB as u64;
    let mut cases: Vec<(&str, Vec<u8>)> = vec![
        ("unknown op", with(patched(0, 9), b"XXXX")),
        ("unknown flag", with(patched(1, 4), b"XXXX")),
        ("reserved bytes", with(patched(3, 1), b"XXXX")),
        (
            "offset past the pool",
            with(header(Op::Persist, 0, big, 4), b"XXXX"),
        ),
        (
            "length past the pool",
            with(header(Op::Persist, FLAG_RELAXED, 64, big), b"XXXX"),
        ),
        (
            "length u64::MAX",
            with(header(Op::Flush, 0, 64, u64::MAX), b"XXXX"),
        ),
        (
            "offset+length overflow",
            with(header(Op::DeepPersist, 0, u64::MAX - 1, 4), b"XXXX"),
        ),
        (
            "read past the pool",
            header(Op::Read, 0, big - 4, 8).to_vec(),
        ),
        (
            "truncated header",
            header(Op::Persist, 0, 64, 4)[..20].to_vec(),
        ),
        (
            "truncated payload",
            with(header(Op::Persist, 0, 64, 100), &[b'T'; 10]),
        ),
        (
            "truncated large payload",
            with(header(Op::Persist, 0, 0, MIB as u64), &[b'L'; 4096]),
        ),
    ];
    cases.push(("a second hello", hello(1, &secret).to_vec()));
    assert!(cases.len() < LANES as usize);
    for (lane, (what, bytes)) in cases.iter().enumerate() {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        c.write_all(&hello(lane as u32, &secret)).unwrap();
        let mut ack = [0u8; ACK_LEN];
        c.set_read_timeout(Some(HANG)).unwrap();
        c.read_exact(&mut ack).unwrap();
        let ack = Ack::decode(&ack).expect("an ack");
        assert_eq!(ack.status, Status::Ok, "{what}: hello refused");
        let _ = c.write_all(bytes);
        let _ = c.shutdown(Shutdown::Write);
        let (status, closed) = peer_outcome(c);
        assert!(closed, "{what}: not dropped");
        if let Some(st) = status {
            assert_ne!(st, Status::Ok, "{what}: served");
        }
        assert!(read_file(&part) == before, "{what}: the pool changed");
    }
    // The session survives its misbehaving lanes and closes cleanly.
    stdin.write_all(&Request::Close.encode()).unwrap();
    let resp = control::read_frame(&mut stdout)
        .unwrap()
        .expect("an answer");
    assert_eq!(Response::decode(&resp).unwrap(), Response::Ok);
    drop(stdin);
    let st = child.wait().unwrap();
    assert!(st.success(), "rpmemd exited {st}");
    assert!(read_file(&part) == before, "the pool changed");
    let log = t.log();
    assert!(log.contains("bad request header"), "{log}");
}

// ---------------------------------------------------------------------------
// 7. Randomized crashes.

/// The byte block `block` of lane `lane` holds at `j` in soak round `round`
/// (`tests/c/soak.c`'s `pattern`).
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
    let exe = compile_c(&workspace_root().join("tests/c/soak.c"));
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
        let daemon = t.served("soak.set");
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
