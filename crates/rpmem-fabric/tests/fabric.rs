//! The binding over real libfabric providers (`tcp` and `sockets`) on
//! 127.0.0.1: connection management with private data, send/recv, RMA write
//! and read, a peer that dies, and a library that cannot be loaded.

use rpmem_fabric::{Access, Error, Hints, Libfabric, OpKind, RemoteMemory};
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

mod common;
use common::{accept_one, client, completion, connect_one, libfabric, server, PROVIDERS, T};

#[test]
fn connect_carries_private_data_and_a_rejected_peer_gets_an_error() {
    let Some(lib) = libfabric() else { return };
    for prov in PROVIDERS {
        let (sdom, listener, addr) = server(&lib, prov);
        let srv = std::thread::spawn(move || {
            let mut seen = Vec::new();
            for _ in 0..2 {
                let req = listener.next_request(T).unwrap();
                let data = req.private_data().to_vec();
                if data.starts_with(b"good secret") {
                    let mut ep = sdom.accept_endpoint(req).unwrap();
                    ep.accept(T).unwrap();
                    seen.push(data);
                    // Keep it open until the client has seen it connected.
                    let mr = sdom.register(64, Access::LOCAL).unwrap();
                    ep.post_recv(&mr, 0, 64, 1).unwrap();
                    completion(&mut ep, OpKind::Recv, 1);
                } else {
                    listener.reject(req).unwrap();
                    seen.push(data);
                }
            }
            seen
        });
        let cdom = client(&lib, prov, addr);
        let mut bad = cdom.endpoint().unwrap();
        match bad.connect(b"bad secret", T) {
            Err(Error::Rejected) => {}
            other => panic!("{prov}: connect with a bad secret gave {other:?}"),
        }
        let mut good = cdom.endpoint().unwrap();
        good.connect(b"good secret", T).unwrap();
        good.inject(b"bye").unwrap();
        let seen = srv.join().unwrap();
        assert!(seen[0].starts_with(b"bad secret"), "{prov}: {:?}", seen[0]);
        assert!(seen[1].starts_with(b"good secret"), "{prov}: {:?}", seen[1]);
    }
}

#[test]
fn rma_write_then_read_back_and_send_recv() {
    let Some(lib) = libfabric() else { return };
    const POOL: usize = 1 << 20;
    for prov in PROVIDERS {
        let (sdom, listener, addr) = server(&lib, prov);
        let srv = std::thread::spawn(move || {
            let pool = sdom
                .register(
                    POOL,
                    Access::LOCAL | Access::REMOTE_READ | Access::REMOTE_WRITE,
                )
                .unwrap();
            let msg = sdom.register(4096, Access::LOCAL).unwrap();
            let req = listener.next_request(T).unwrap();
            let mut ep = sdom.accept_endpoint(req).unwrap();
            ep.post_recv(&msg, 0, 64, 10).unwrap();
            ep.accept(T).unwrap();
            // Hand the client the pool's description with a real send.
            msg.write(1024, &pool.remote().to_bytes()).unwrap();
            ep.post_send(&msg, 1024, RemoteMemory::SIZE, 11).unwrap();
            let mut got = Vec::new();
            for _ in 0..2 {
                let c = ep.wait(T).unwrap();
                got.push((c.kind, c.token, c.len));
            }
            got.sort_by_key(|g| g.1);
            assert_eq!(
                got,
                vec![
                    (OpKind::Recv, 10, 4),
                    (OpKind::Send, 11, RemoteMemory::SIZE)
                ]
            );
            let mut note = [0u8; 4];
            msg.read(0, &mut note).unwrap();
            assert_eq!(&note, b"done");
            // The client's RMA write is in our memory.
            let mut bytes = vec![0u8; 65536];
            pool.read(4096, &mut bytes).unwrap();
            ep.inject(b"seen").unwrap();
            // Wait for the client to finish reading before tearing down.
            ep.post_recv(&msg, 0, 64, 12).unwrap();
            completion(&mut ep, OpKind::Recv, 12);
            bytes
        });
        let cdom = client(&lib, prov, addr);
        let local = cdom.register(3 * 65536, Access::LOCAL).unwrap();
        let mut ep = cdom.endpoint().unwrap();
        ep.post_recv(&local, 0, 64, 1).unwrap();
        ep.connect(b"x", T).unwrap();
        assert_eq!(completion(&mut ep, OpKind::Recv, 1), RemoteMemory::SIZE);
        let mut desc = [0u8; RemoteMemory::SIZE];
        local.read(0, &mut desc).unwrap();
        let remote = RemoteMemory::from_bytes(&desc).unwrap();
        assert_eq!(remote.len, POOL as u64);

        let pattern: Vec<u8> = (0..65536u32).map(|i| (i * 7 + 3) as u8).collect();
        local.write(65536, &pattern).unwrap();
        ep.post_write(&local, 65536, pattern.len(), &remote, 4096, 2)
            .unwrap();
        // Waiting inside the provider takes the completion as `wait` does.
        let c = ep.wait_progressing(T).unwrap();
        assert_eq!((c.kind, c.token), (OpKind::Write, 2), "{c:?}");
        // Out of the peer's region: refused before anything is posted.
        assert!(matches!(
            ep.post_write(&local, 0, 16, &remote, POOL as u64 - 8, 9),
            Err(Error::InvalidArgument(_))
        ));
        ep.post_recv(&local, 64, 64, 3).unwrap();
        ep.inject(b"done").unwrap();
        assert_eq!(completion(&mut ep, OpKind::Recv, 3), 4);
        let mut ack = [0u8; 4];
        local.read(64, &mut ack).unwrap();
        assert_eq!(&ack, b"seen");
        ep.post_read(&local, 2 * 65536, pattern.len(), &remote, 4096, 4)
            .unwrap();
        completion(&mut ep, OpKind::Read, 4);
        let mut back = vec![0u8; pattern.len()];
        local.read(2 * 65536, &mut back).unwrap();
        assert!(back == pattern, "{prov}: RMA read returned other bytes");
        ep.inject(b"end").unwrap();
        let on_server = srv.join().unwrap();
        assert!(
            on_server == pattern,
            "{prov}: the server's memory lacks the RMA write"
        );
        assert_eq!(ep.in_flight(), 0);
    }
}

/// Child side of `a_peer_that_dies_fails_the_wait`: connects and waits to be
/// killed. Does nothing when run as an ordinary test.
#[test]
fn peer_child() {
    let Ok(spec) = std::env::var("RPMEM_FABRIC_TEST_PEER") else {
        return;
    };
    let (prov, port) = spec.split_once(':').unwrap();
    let lib = Libfabric::load().unwrap();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let dom = client(&lib, prov, addr);
    let (_ep, _mr) = connect_one(&dom, b"child", 4096, 1);
    println!("connected");
    std::thread::sleep(Duration::from_secs(60));
}

#[test]
fn a_peer_that_dies_fails_the_wait() {
    let Some(lib) = libfabric() else { return };
    for prov in PROVIDERS {
        let (sdom, listener, addr) = server(&lib, prov);
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args(["--exact", "peer_child", "--nocapture", "--test-threads=1"])
            .env("RPMEM_FABRIC_TEST_PEER", format!("{prov}:{}", addr.port()))
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut ep, mr) = accept_one(&sdom, &listener, 4096, 7);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut line = String::new();
        while !line.contains("connected") {
            line.clear();
            assert_ne!(
                out.read_line(&mut line).unwrap(),
                0,
                "{prov}: child ended early"
            );
        }
        child.kill().unwrap();
        child.wait().unwrap();
        let start = Instant::now();
        let r = ep.wait(Duration::from_secs(30));
        let took = start.elapsed();
        match r {
            Err(Error::Disconnected(_)) | Err(Error::Completion { .. }) => {}
            other => panic!("{prov}: a dead peer gave {other:?} after {took:?}"),
        }
        assert!(
            took < Duration::from_secs(10),
            "{prov}: noticed only after {took:?}"
        );
        // Later calls fail at once too.
        assert!(ep.post_recv(&mr, 0, 64, 8).is_err() || ep.wait(Duration::from_secs(1)).is_err());
    }
}

#[test]
fn a_missing_library_or_provider_is_a_clear_error() {
    let err = Libfabric::load_from("libfabric-bogus.so.1").unwrap_err();
    assert!(matches!(err, Error::Load { .. }), "{err:?}");
    assert_eq!(err.errno(), libc::ENOMEDIUM);
    let msg = err.to_string();
    assert!(msg.contains("libfabric-bogus.so.1"), "{msg}");
    let Some(lib) = libfabric() else { return };
    assert!(lib.version() >= (1, 10), "{:?}", lib.version());
    let err = lib
        .getinfo(&Hints::connect("127.0.0.1", 1).provider("no-such-provider"))
        .unwrap_err();
    assert!(err.to_string().contains("fi_getinfo"), "{err}");
}

/// CPU time this thread has used (utime + stime from /proc, in ticks).
fn thread_cpu_ticks() -> u64 {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").unwrap();
    // Fields after the parenthesised command name; utime and stime are the
    // 14th and 15th of the whole line.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap()
}

#[test]
fn an_idle_wait_sleeps_and_times_out() {
    let Some(lib) = libfabric() else { return };
    for prov in PROVIDERS {
        let (sdom, listener, addr) = server(&lib, prov);
        let srv = std::thread::spawn(move || {
            let (mut ep, _mr) = accept_one(&sdom, &listener, 64, 1);
            completion(&mut ep, OpKind::Recv, 1);
        });
        let cdom = client(&lib, prov, addr);
        let (mut ep, _mr) = connect_one(&cdom, b"x", 64, 1);
        let ticks = thread_cpu_ticks();
        let start = Instant::now();
        match ep.wait(Duration::from_millis(1500)) {
            Err(Error::Timeout(_)) => {}
            other => panic!("{prov}: an idle wait gave {other:?}"),
        }
        let took = start.elapsed();
        assert!(took >= Duration::from_millis(1500), "{prov}: {took:?}");
        // 100 ticks per second: a spinning wait would use ~150.
        let used = thread_cpu_ticks() - ticks;
        assert!(
            used <= 30,
            "{prov}: an idle 1.5 s wait used {used} ticks of CPU"
        );
        // The same for the wait that sleeps inside the provider.
        let ticks = thread_cpu_ticks();
        match ep.wait_progressing(Duration::from_millis(1500)) {
            Err(Error::Timeout(_)) => {}
            other => panic!("{prov}: an idle progressing wait gave {other:?}"),
        }
        let used = thread_cpu_ticks() - ticks;
        assert!(
            used <= 30,
            "{prov}: an idle 1.5 s progressing wait used {used} ticks of CPU"
        );
        ep.inject(b"bye").unwrap();
        srv.join().unwrap();
    }
}

/// Fails the whole test binary (instead of hanging it) if `done` is not set
/// within `limit`.
fn watchdog(what: &'static str, limit: Duration) -> Arc<std::sync::atomic::AtomicBool> {
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = done.clone();
    std::thread::spawn(move || {
        let start = Instant::now();
        while !flag.load(std::sync::atomic::Ordering::Relaxed) {
            if start.elapsed() > limit {
                eprintln!("{what}: still running after {limit:?}: a hang; aborting");
                std::process::abort();
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    done
}

/// One session as the transport makes it: a server with a registered pool
/// and `LANES` accepted endpoints; a client with its region registered once
/// and one endpoint per lane, each lane an RMA write and a message answered
/// by the server; then the client shuts its lanes down and drops them, the
/// region and the domain in the transport's order, while the server notices
/// and tears down its side.
fn one_session(lib: &Libfabric, prov: &str, round: usize) {
    const LANES: u64 = 4;
    const POOL: usize = 1 << 16;
    let (sdom, listener, addr) = server(lib, prov);
    let srv = std::thread::spawn(move || {
        let pool = sdom
            .register(POOL, Access::LOCAL | Access::REMOTE_WRITE)
            .unwrap();
        let msg = sdom.register(64 * LANES as usize, Access::LOCAL).unwrap();
        let mut eps = Vec::new();
        for lane in 0..LANES {
            let req = listener.next_request(T).unwrap();
            let mut ep = sdom.accept_endpoint(req).unwrap();
            ep.post_recv(&msg, 64 * lane as usize, 64, lane).unwrap();
            ep.accept(T).unwrap();
            msg.write(64 * lane as usize, &pool.remote().to_bytes())
                .unwrap();
            eps.push(ep);
        }
        // Each lane: the pool's description out, a "written" note in, an
        // answer out; then wait for the client to go away.
        for (lane, ep) in eps.iter_mut().enumerate() {
            let at = 64 * lane;
            let mut desc = [0u8; RemoteMemory::SIZE];
            msg.read(at, &mut desc).unwrap();
            ep.inject(&desc).unwrap();
            completion(ep, OpKind::Recv, lane as u64);
        }
        for ep in &mut eps {
            ep.inject(b"ok").unwrap();
        }
        for ep in &mut eps {
            assert!(ep.wait(T).is_err(), "the client's shutdown went unnoticed");
            ep.shutdown();
        }
        let mut got = vec![0u8; POOL];
        pool.read(0, &mut got).unwrap();
        got
    });
    let cdom = client(lib, prov, addr);
    let region = cdom.register(POOL, Access::LOCAL).unwrap();
    let pattern: Vec<u8> = (0..POOL).map(|i| (i * 31 + round) as u8).collect();
    region.write(0, &pattern).unwrap();
    let mut lanes = Vec::new();
    for lane in 0..LANES {
        lanes.push(connect_one(&cdom, &lane.to_le_bytes(), 64, 100));
    }
    let part = POOL / LANES as usize;
    for (lane, (ep, msg)) in lanes.iter_mut().enumerate() {
        assert_eq!(completion(ep, OpKind::Recv, 100), RemoteMemory::SIZE);
        let mut desc = [0u8; RemoteMemory::SIZE];
        msg.read(0, &mut desc).unwrap();
        let remote = RemoteMemory::from_bytes(&desc).unwrap();
        ep.post_write(&region, lane * part, part, &remote, (lane * part) as u64, 1)
            .unwrap();
        completion(ep, OpKind::Write, 1);
        ep.post_recv(msg, 0, 64, 101).unwrap();
        ep.inject(b"written").unwrap();
    }
    for (ep, _) in &mut lanes {
        assert_eq!(completion(ep, OpKind::Recv, 101), 2);
        ep.shutdown();
    }
    drop(lanes);
    drop(region);
    drop(cdom);
    let on_server = srv.join().unwrap();
    assert!(on_server == pattern, "{prov} round {round}: pool differs");
}

#[test]
fn sessions_set_up_and_torn_down_many_times_never_hang() {
    let Some(lib) = libfabric() else { return };
    const ROUNDS: usize = 25;
    let done = watchdog("50 fabric sessions", Duration::from_secs(120));
    let runs: Vec<_> = PROVIDERS
        .iter()
        .map(|&prov| {
            let lib = lib.clone();
            std::thread::spawn(move || {
                for round in 0..ROUNDS {
                    one_session(&lib, prov, round);
                }
            })
        })
        .collect();
    for r in runs {
        r.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
}
