//! A real rpmemd process, spoken to over pipes and TCP.

mod common;

use std::fs;
use std::io::{Read, Write};
use std::time::Duration;

use common::*;
use rpmem_proto::control::{PoolRequest, Request};
use rpmem_proto::data::{Op, FLAG_RELAXED};
use rpmem_proto::{Status, PROTO_VERSION};
use rpmem_storage::header::{PoolHeader, HEADER_LEN};

fn file_bytes(p: &std::path::Path, off: u64, len: usize) -> Vec<u8> {
    let b = fs::read(p).unwrap();
    b[off as usize..off as usize + len].to_vec()
}

#[test]
fn nohdrs_pool_persist_reaches_the_file() {
    let env = Env::new();
    let parts = env.set("a.set", "NOHDRS", &[2 * M, 2 * M]);
    let mut d = env.spawn(&[]);
    let s = opened(d.create("a.set", 4 * M, 4, None));
    assert_eq!(s.remote_size, 4 * M);
    assert!(!s.has_header);
    assert_eq!(s.nlanes, 4);
    assert!(s.attr.is_zero());
    let mut lane = connect(&s, 0);
    // Whole pool usable, offset 0 included.
    assert_eq!(
        persist(&mut lane, Op::Persist, 0, 0, b"head"),
        Some(Status::Ok)
    );
    assert_eq!(file_bytes(&parts[0], 0, 4), b"head");
    // A persist that straddles the two parts, unaligned, non-relaxed.
    let big: Vec<u8> = (0..3 * M as usize - 13)
        .map(|i| (i * 7 % 253) as u8)
        .collect();
    let off = M - 5;
    assert_eq!(
        persist(&mut lane, Op::DeepPersist, 0, off, &big),
        Some(Status::Ok)
    );
    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    let split = (2 * M - off) as usize;
    assert!(p0[off as usize..] == big[..split]);
    assert!(p1[..big.len() - split] == big[split..]);
    assert!(read_remote(&mut lane, off, big.len()).unwrap() == big);
    // Flushes then a drain, on another lane, relaxed and not.
    let mut l2 = connect(&s, 3);
    send_op(&mut l2, Op::Flush, FLAG_RELAXED, 8192, b"relaxed!", 1);
    send_op(&mut l2, Op::Flush, 0, 3 * M + 1, b"atomic", 2);
    send_op(&mut l2, Op::Drain, 0, 0, &[], 3);
    let a = read_ack(&mut l2).unwrap();
    assert_eq!((a.tag, a.status), (3, Status::Ok));
    assert_eq!(file_bytes(&parts[0], 8192, 8), b"relaxed!");
    assert_eq!(file_bytes(&parts[1], M + 1, 6), b"atomic");
    // Read back through the lane.
    assert_eq!(read_remote(&mut l2, 8192, 8).unwrap(), b"relaxed!");
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    let (st, err) = d.finish();
    assert!(st.success(), "{st:?} {err}");
}

#[test]
fn header_pool_create_open_set_attr() {
    let env = Env::new();
    let parts = env.set("h.set", "", &[2 * M, 2 * M]);
    let mut d = env.spawn(&[]);
    let s = opened(d.create("h.set", 4 * M - 4096, 2, Some(attr())));
    assert!(s.has_header);
    assert_eq!(s.remote_size, 4 * M - 4096);
    let mut stored = attr();
    stored.user_flags = rpmem_storage::header::host_arch_flags();
    assert_eq!(
        s.attr, stored,
        "zero user flags are stored as the host's arch flags"
    );
    let mut lane = connect(&s, 1);
    // The header is readable but not writable.
    let hdr = read_remote(&mut lane, 0, HEADER_LEN).unwrap();
    assert_eq!(&hdr[..8], b"RPMEMTST");
    for op in [Op::Persist, Op::DeepPersist] {
        let mut l = connect(&s, 0);
        assert_eq!(
            persist(&mut l, op, 0, 4095, b"xx"),
            Some(Status::BadRequest)
        );
        // The connection is dropped after a bad request.
        let mut b = [0u8; 1];
        assert!(matches!(l.read(&mut b), Ok(0) | Err(_)));
    }
    assert_eq!(
        persist(&mut lane, Op::Persist, 0, 4096, b"data"),
        Some(Status::Ok)
    );
    assert_eq!(file_bytes(&parts[0], 4096, 4), b"data");
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
    let on_disk = fs::read(&parts[0]).unwrap();
    let h = PoolHeader::from_bytes(on_disk[..HEADER_LEN].try_into().unwrap()).unwrap();
    assert_eq!(h.to_attr().uuid, attr().uuid);
    assert_eq!(&on_disk[..HEADER_LEN], &hdr[..], "the header is unchanged");

    // Open returns the attributes; set_attr rewrites them.
    let mut d = env.spawn(&[]);
    let s = opened(d.open("h.set", 4 * M - 4096, 1));
    assert_eq!(s.attr, stored);
    assert!(s.has_header);
    let mut a2 = attr();
    a2.major = 9;
    a2.user_flags = [7; 16];
    assert_eq!(
        d.call(&Request::SetAttr { attr: a2 }),
        rpmem_proto::control::Response::Ok
    );
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
    let mut d = env.spawn(&[]);
    assert_eq!(opened(d.open("h.set", 4096 * 2, 1)).attr, a2);
    assert!(d.close().0.success());
}

#[test]
fn set_attr_on_a_pool_without_headers_is_refused() {
    let env = Env::new();
    let (_, mut d, _) = env.created("n.set", 1);
    let (st, msg) = error_status(d.call(&Request::SetAttr { attr: attr() }));
    assert_eq!(st, Status::BadPoolConfig);
    assert!(msg.contains("n.set"), "{msg}");
    // The session goes on.
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
}

/// set, pool size, lanes, attributes, expected status, expected exit code.
type CreateCase = (
    &'static str,
    u64,
    u32,
    Option<rpmem_proto::PoolAttr>,
    Status,
    i32,
);

#[test]
fn create_errors_map_to_statuses_and_exit_codes() {
    let env = Env::new();
    let parts = env.set("e.set", "NOHDRS", &[2 * M]);
    env.set("hdr.set", "", &[2 * M]);
    // The right size but not zeroed: an existing pool, not a pre-made part.
    let mut used = vec![0u8; 2 * M as usize];
    used[0] = b'x';
    fs::write(&parts[0], used).unwrap();
    let cases: Vec<CreateCase> = vec![
        ("e.set", 2 * M, 1, None, Status::Exists, 17),
        ("missing.set", 2 * M, 1, None, Status::NoEntry, 2),
        ("../e.set", 2 * M, 1, None, Status::BadName, 22),
        ("/etc/passwd", 2 * M, 1, None, Status::BadName, 22),
        ("hdr.set", 2 * M - 4096, 1, None, Status::BadPoolConfig, 22),
        (
            "hdr.set",
            2 * M + 4096,
            1,
            Some(attr()),
            Status::BadSize,
            27,
        ),
        ("hdr.set", 2 * M, 0, Some(attr()), Status::BadNlanes, 22),
    ];
    for (set, size, nlanes, a, status, code) in cases {
        let mut d = env.spawn(&[]);
        let (st, msg) = error_status(d.create(set, size, nlanes, a));
        assert_eq!(st, status, "{set}: {msg}");
        if status != Status::BadNlanes {
            assert!(msg.contains(set), "the message names the set: {msg}");
        }
        let (exit, _) = d.finish();
        assert_eq!(exit.code(), Some(code), "{set}");
    }
    // Nothing was created by the refused requests.
    assert!(!env.home().join("hdr.set.0").exists());
    // Open of a pool whose parts do not exist.
    let mut d = env.spawn(&[]);
    assert_eq!(error_status(d.open("hdr.set", 4096, 1)).0, Status::NoEntry);
    assert_eq!(d.finish().0.code(), Some(2));
}

#[test]
fn bad_protocol_version_is_refused() {
    let env = Env::new();
    env.set("v.set", "NOHDRS", &[2 * M]);
    let mut d = env.spawn(&[]);
    let r = d.call(&Request::Create {
        pool: PoolRequest {
            version: PROTO_VERSION + 1,
            ..PoolRequest::new("v.set", 4096, 1)
        },
        attr: None,
    });
    assert_eq!(error_status(r).0, Status::BadProtocol);
    assert_eq!(d.finish().0.code(), Some(93));
    assert!(!env.home().join("v.set.0").exists());
}

#[test]
fn second_daemon_on_the_same_pool_is_busy() {
    let env = Env::new();
    env.set("b.set", "NOHDRS", &[2 * M]);
    let mut a = env.spawn(&[]);
    opened(a.create("b.set", 2 * M, 1, None));
    let mut b = env.spawn(&[]);
    let (st, msg) = error_status(b.open("b.set", 2 * M, 1));
    assert_eq!(st, Status::Busy, "{msg}");
    assert_eq!(b.finish().0.code(), Some(16));
    // Once the first session ends (its initiator vanished: exit status 1,
    // as PMDK's rpmemd), the pool is free.
    assert_eq!(a.finish().0.code(), Some(1));
    env.assert_reopens("b.set");
}

#[test]
fn killed_daemon_releases_the_lock() {
    let env = Env::new();
    env.set("k.set", "NOHDRS", &[2 * M]);
    let mut a = env.spawn(&[]);
    opened(a.create("k.set", 2 * M, 1, None));
    a.child.kill().unwrap();
    a.child.wait().unwrap();
    env.assert_reopens("k.set");
}

#[test]
fn unauthenticated_connections_are_dropped_without_touching_the_pool() {
    let env = Env::new();
    let (part, mut d, s) = env.created("s.set", 2);
    let before = fs::read(&part).unwrap();
    let mut wrong = s.secret;
    wrong[31] ^= 1;
    let (mut t, ack) = connect_raw(&s, 0, wrong);
    assert_ne!(ack.map(|a| a.status), Some(Status::Ok));
    // Whatever follows is not served.
    let _ = t.write_all(&[0xAB; 64]);
    let mut b = [0u8; 1];
    assert!(matches!(t.read(&mut b), Ok(0) | Err(_)));
    // Lane out of range and a lane already connected are refused too.
    let (_, ack) = connect_raw(&s, 2, s.secret);
    assert_ne!(ack.map(|a| a.status), Some(Status::Ok));
    let _l0 = connect(&s, 0);
    let (_, ack) = connect_raw(&s, 0, s.secret);
    assert_ne!(ack.map(|a| a.status), Some(Status::Ok));
    // A connection that never says hello is dropped too (after the timeout);
    // meanwhile the good lane works.
    let _silent = std::net::TcpStream::connect((s.addr.as_str(), s.port)).unwrap();
    let mut l1 = connect(&s, 1);
    assert_eq!(read_remote(&mut l1, 0, 16).unwrap(), vec![0u8; 16]);
    assert_eq!(fs::read(&part).unwrap(), before);
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
}

#[test]
fn out_of_range_requests_are_refused() {
    let env = Env::new();
    let (_, d, s) = env.created("r.set", 1);
    let mut l = connect(&s, 0);
    assert_eq!(
        persist(&mut l, Op::Persist, 0, 2 * M - 1, b"ab"),
        Some(Status::BadRequest)
    );
    let mut l = connect(&s, 0);
    assert_eq!(
        read_remote(&mut l, u64::MAX - 1, 4),
        Err(Status::BadRequest)
    );
    assert!(d.close().0.success());
}

#[test]
fn lanes_are_capped_by_max_lanes() {
    let env = Env::new();
    env.set("m.set", "NOHDRS", &[2 * M]);
    let mut d = env.spawn(&["--max-lanes", "2"]);
    let s = opened(d.create("m.set", 2 * M, 1024, None));
    assert_eq!(s.nlanes, 2);
    let (_, ack) = connect_raw(&s, 2, s.secret);
    assert_ne!(ack.map(|a| a.status), Some(Status::Ok));
    assert!(d.close().0.success());
}

#[test]
fn garbage_on_the_control_channel_ends_the_session_without_writing() {
    let env = Env::new();
    let parts = env.set("g.set", "NOHDRS", &[2 * M]);
    // As the first frame: nothing is created.
    let mut d = env.spawn(&[]);
    d.send_raw(b"\x05\x00\x00\x00\x99garbage");
    let (st, _) = d.finish();
    assert!(!st.success());
    assert!(!parts[0].exists());
    // After open: the session ends, the pool is untouched and released.
    let mut d = env.spawn(&[]);
    let s = opened(d.create("g.set", 2 * M, 1, None));
    let mut l = connect(&s, 0);
    assert_eq!(
        persist(&mut l, Op::Persist, 0, 100, b"kept"),
        Some(Status::Ok)
    );
    let before = fs::read(&parts[0]).unwrap();
    d.send_raw(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3]);
    let (st, _) = d.finish();
    assert!(!st.success());
    assert_eq!(fs::read(&parts[0]).unwrap(), before);
    env.assert_reopens("g.set");
}

#[test]
fn initiator_death_makes_pending_flushes_durable_and_exits_non_zero() {
    let env = Env::new();
    let (part, d, s) = env.created("f.set", 1);
    let mut l = connect(&s, 0);
    send_op(&mut l, Op::Flush, 0, 64, b"pending", 1);
    // Give the lane a moment to receive the flush, then vanish.
    std::thread::sleep(Duration::from_millis(200));
    drop(l);
    // No close: an abnormal end, exit status 1 as PMDK's rpmemd.
    let (st, err) = d.finish();
    assert_eq!(st.code(), Some(1), "{err}");
    assert_eq!(file_bytes(&part, 64, 7), b"pending");
}

#[test]
fn silent_connections_cannot_pile_up() {
    let env = Env::new();
    let parts = env.set("q.set", "NOHDRS", &[2 * M]);
    let (mut d, log) = env.spawn_logging("q.log");
    let s = opened(d.create("q.set", 2 * M, 1, None));
    let before = fs::read(&parts[0]).unwrap();
    // One lane: 1 + 16 spare connections may wait for their hello.
    let silent: Vec<std::net::TcpStream> = (0..17)
        .map(|_| std::net::TcpStream::connect((s.addr.as_str(), s.port)).unwrap())
        .collect();
    // The next one is dropped at once, long before the 5 s hello timeout.
    let mut extra = std::net::TcpStream::connect((s.addr.as_str(), s.port)).unwrap();
    extra
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    let t0 = std::time::Instant::now();
    let mut b = [0u8; 1];
    assert!(matches!(extra.read(&mut b), Ok(0) | Err(_)));
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // Once the silent ones go away their places free up for the real lane.
    drop(silent);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let mut lane = loop {
        let (t, ack) = connect_raw(&s, 0, s.secret);
        if ack.map(|a| a.status) == Some(Status::Ok) {
            break t;
        }
        assert!(std::time::Instant::now() < deadline, "lane never accepted");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(read_remote(&mut lane, 0, 8).unwrap(), vec![0u8; 8]);
    assert_eq!(fs::read(&parts[0]).unwrap(), before);
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("waiting to authenticate"), "{text}");
}

/// A persist whose payload is cut short is never acknowledged; on the
/// default path what lands in the pool is whole staging-buffer pieces
/// received before the cut (no piece written in part, no aligned word
/// torn), as README's fault table says.
#[test]
fn cut_payload_lands_only_in_whole_pieces_and_is_not_acknowledged() {
    const PIECE: usize = rpmem_transport::tcp::STAGE_LEN;
    let env = Env::new();
    let (part, d, s) = env.created("cut.set", 1);
    let mut l = connect(&s, 0);
    let off = 8192u64;
    let payload: Vec<u8> = (0..4 * PIECE).map(|i| (i % 251 + 1) as u8).collect();
    let h = rpmem_proto::data::RequestHeader {
        op: Op::Persist,
        flags: 0,
        offset: off,
        length: payload.len() as u64,
        tag: 9,
    };
    l.write_all(&h.encode()).unwrap();
    // Two whole pieces and 100 bytes of the third, then the link is gone.
    let sent = 2 * PIECE + 100;
    l.write_all(&payload[..sent]).unwrap();
    l.shutdown(std::net::Shutdown::Write).unwrap();
    assert!(
        read_ack(&mut l).is_none(),
        "a cut persist is not acknowledged"
    );
    drop(l);
    assert!(d.close().0.success());
    let file = fs::read(&part).unwrap();
    let at = off as usize;
    assert!(file[at..at + 2 * PIECE] == payload[..2 * PIECE]);
    assert!(
        file[at + 2 * PIECE..at + 4 * PIECE].iter().all(|&b| b == 0),
        "the incomplete piece and what never came are not written"
    );
}

/// Lanes come only from the ssh session's client address (127.0.0.1 here):
/// a connection from 127.0.0.2 holding the right secret is closed unread and
/// logged; `--allow-from` widens the rule.
#[test]
fn lanes_only_from_the_ssh_client_or_allowed_networks() {
    let env = Env::new();
    let parts = env.set("p.set", "NOHDRS", &[2 * M]);
    let (mut d, log) = env.spawn_logging("p.log");
    let s = opened(d.create("p.set", 2 * M, 2, None));
    let other = std::net::Ipv4Addr::new(127, 0, 0, 2);
    let mut stranger = connect_from(&s, other);
    assert_eq!(hello_on(&mut stranger, &s, 0), None);
    let mut b = [0u8; 1];
    assert!(matches!(stranger.read(&mut b), Ok(0) | Err(_)));
    // The session's own address still connects both lanes.
    let mut l0 = connect_from(&s, std::net::Ipv4Addr::LOCALHOST);
    assert_eq!(hello_on(&mut l0, &s, 0).map(|a| a.status), Some(Status::Ok));
    assert_eq!(
        persist(&mut l0, Op::Persist, 0, 64, b"mine"),
        Some(Status::Ok)
    );
    assert!(d.close().0.success());
    assert_eq!(file_bytes(&parts[0], 64, 4), b"mine");
    let text = fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("from 127.0.0.2:")
            && text.contains("not from an allowed address (127.0.0.1)"),
        "{text}"
    );
    // Widened on the command line, and in a configuration file.
    let conf = env.home().join("allow.conf");
    fs::write(&conf, "allow-from = 10.0.0.0/8, 127.0.0.2\n").unwrap();
    let conf_arg = format!("--config={}", conf.display());
    for extra in [
        &["--allow-from", "192.168.0.0/16,127.0.0.0/8"][..],
        &[&conf_arg],
    ] {
        let mut d = env.spawn(extra);
        let s = opened(d.open("p.set", 2 * M, 1));
        let mut l = connect_from(&s, other);
        assert_eq!(
            hello_on(&mut l, &s, 0).map(|a| a.status),
            Some(Status::Ok),
            "{extra:?}"
        );
        assert_eq!(read_remote(&mut l, 64, 4).unwrap(), b"mine");
        assert!(d.close().0.success());
    }
}

/// The whole hello must arrive within the hello timeout (5 s): a client
/// sending one byte every 4 s is dropped at that deadline, not after 48
/// reads of up to 5 s each, and the session's lanes work meanwhile.
#[test]
fn a_slow_hello_is_dropped_at_the_deadline() {
    let env = Env::new();
    let (_, d, s) = env.created("h.set", 1);
    let mut slow = std::net::TcpStream::connect((s.addr.as_str(), s.port)).unwrap();
    slow.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut w = slow.try_clone().unwrap();
    let hello = rpmem_proto::data::Hello {
        version: rpmem_proto::PROTO_VERSION,
        lane: 0,
        secret: s.secret,
    }
    .encode();
    let t0 = std::time::Instant::now();
    let dribble = std::thread::spawn(move || {
        for byte in hello {
            if w.write_all(&[byte]).is_err() {
                return;
            }
            std::thread::sleep(Duration::from_secs(4));
        }
    });
    // Meanwhile the real lane connects and works.
    let mut lane = connect(&s, 0);
    assert_eq!(
        persist(&mut lane, Op::Persist, 0, 8, b"real"),
        Some(Status::Ok)
    );
    let mut b = [0u8; 1];
    assert!(matches!(slow.read(&mut b), Ok(0) | Err(_)));
    let took = t0.elapsed();
    assert!(
        took >= Duration::from_secs(4) && took < Duration::from_secs(12),
        "dropped after {took:?}"
    );
    assert_eq!(read_remote(&mut lane, 8, 4).unwrap(), b"real");
    drop(slow);
    assert!(d.close().0.success());
    drop(dribble);
}
