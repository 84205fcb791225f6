//! The daemon's lane session logic on a real pool, driven over an
//! in-memory socket pair (no process, no network): what each request does
//! to the pool and what the initiator is told.

mod common;

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::time::Duration;

use common::{attr, persist, read_ack, read_remote, send_op, Env, M};
use rpmem_proto::data::{Op, RequestHeader, FLAG_RELAXED};
use rpmem_proto::Status;
use rpmem_storage::{Pool, PoolSet};
use rpmem_transport::tcp::TcpTargetLane;
use rpmemd::lane_session::LaneSession;

/// Serves one lane of `pool` on a thread while `client` plays the initiator.
fn with_lane<T>(pool: &Pool, client: impl FnOnce(&mut UnixStream) -> T) -> T {
    let (mut ours, theirs) = UnixStream::pair().unwrap();
    ours.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut lane = TcpTargetLane::new(theirs, 0, Duration::from_micros(50));
            LaneSession::new(pool).serve(&mut lane);
        });
        let r = client(&mut ours);
        drop(ours);
        r
    })
}

fn pool(env: &Env, name: &str, option: &str, parts: &[u64]) -> Pool {
    env.set(name, option, parts);
    let set = PoolSet::load(&env.sets().join(name)).unwrap();
    let a = attr();
    Pool::create(&set, (option != "NOHDRS").then_some(&a)).unwrap()
}

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31) ^ seed)
        .collect()
}

/// Whether the daemon ended the lane (end of stream, no more bytes).
fn ended(t: &mut UnixStream) -> bool {
    let mut b = [0u8; 1];
    matches!(t.read(&mut b), Ok(0))
}

#[test]
fn persists_land_across_parts_on_both_write_paths() {
    let env = Env::new();
    let p = pool(&env, "two.set", "NOHDRS", &[2 * M, 2 * M]);
    // Both ranges straddle the boundary between the two part files.
    let (atomic, relaxed) = (pattern(8192 + 3, 1), pattern(70_001, 2));
    let (a_off, r_off) = (2 * M - 4096 - 5, 2 * M - 30_000);
    with_lane(&p, |t| {
        assert_eq!(persist(t, Op::Persist, 0, a_off, &atomic), Some(Status::Ok));
        assert_eq!(read_remote(t, a_off, atomic.len()).unwrap(), atomic);
        let flags = FLAG_RELAXED;
        assert_eq!(
            persist(t, Op::DeepPersist, flags, r_off, &relaxed),
            Some(Status::Ok)
        );
        assert_eq!(read_remote(t, r_off, relaxed.len()).unwrap(), relaxed);
    });
    let mut back = vec![0u8; relaxed.len()];
    p.read(r_off, &mut back).unwrap();
    assert_eq!(back, relaxed);
}

#[test]
fn flushes_get_no_answer_and_the_drain_makes_them_durable() {
    let env = Env::new();
    let p = pool(&env, "f.set", "NOHDRS", &[2 * M]);
    let before = p.msync_calls();
    let data = pattern(4096, 3);
    with_lane(&p, |t| {
        for (i, tag) in (1..=3).enumerate() {
            send_op(t, Op::Flush, 0, 8192 * i as u64, &data, tag);
        }
        send_op(t, Op::Drain, 0, 0, &[], 4);
        // The first answer is the drain's: the flushes were not answered.
        let a = read_ack(t).unwrap();
        assert_eq!((a.tag, a.status), (4, Status::Ok));
        assert_eq!(read_remote(t, 16384, 4096).unwrap(), data);
    });
    // One coalesced msync for the three flushes.
    assert_eq!(p.msync_calls() - before, 1);
}

#[test]
fn pending_flushes_are_made_durable_when_the_lane_ends() {
    let env = Env::new();
    let p = pool(&env, "e.set", "NOHDRS", &[2 * M]);
    let before = p.msync_calls();
    with_lane(&p, |t| send_op(t, Op::Flush, 0, 0, &pattern(100, 4), 1));
    assert_eq!(p.msync_calls() - before, 1);
    let mut back = vec![0u8; 100];
    p.read(0, &mut back).unwrap();
    assert_eq!(back, pattern(100, 4));
}

#[test]
fn requests_outside_the_pool_or_on_its_header_are_refused_and_end_the_lane() {
    let env = Env::new();
    let p = pool(&env, "h.set", "", &[2 * M]);
    let size = p.size();
    for (op, offset, len) in [
        (Op::Persist, 0, 8),
        (Op::Flush, 4095, 2),
        (Op::Persist, size - 4, 8),
        (Op::Read, size, 1),
        (Op::Read, u64::MAX, 2),
    ] {
        with_lane(&p, |t| {
            let h = RequestHeader {
                op,
                flags: 0,
                offset,
                length: len,
                tag: 40,
            };
            t.write_all(&h.encode()).unwrap();
            let a = read_ack(t).expect("an answer");
            assert_eq!(
                (a.tag, a.status),
                (40, Status::BadRequest),
                "{op:?} {offset}"
            );
            assert!(ended(t), "{op:?} {offset}");
        });
    }
    // Reading the header itself is allowed.
    with_lane(&p, |t| {
        assert_eq!(read_remote(t, 0, 8).unwrap(), b"RPMEMTST")
    });
}

#[test]
fn a_malformed_header_is_answered_with_its_tag_and_ends_the_lane() {
    let env = Env::new();
    let p = pool(&env, "m.set", "NOHDRS", &[2 * M]);
    for corrupt in [0usize, 1, 2] {
        with_lane(&p, |t| {
            let mut raw = RequestHeader {
                op: Op::Drain,
                flags: 0,
                offset: 0,
                length: 0,
                tag: 0x1234_5678_9abc,
            }
            .encode();
            // An unknown opcode, an unknown flag, a reserved byte set.
            raw[corrupt] = 0x40;
            t.write_all(&raw).unwrap();
            let a = read_ack(t).expect("an answer");
            assert_eq!((a.tag, a.status), (0x1234_5678_9abc, Status::BadRequest));
            assert!(ended(t));
        });
    }
}

#[test]
fn a_payload_cut_short_ends_the_lane_without_an_answer() {
    let env = Env::new();
    let p = pool(&env, "c.set", "NOHDRS", &[2 * M]);
    with_lane(&p, |t| {
        let h = RequestHeader {
            op: Op::Persist,
            flags: 0,
            offset: 0,
            length: 4096,
            tag: 1,
        };
        t.write_all(&h.encode()).unwrap();
        t.write_all(&[7u8; 100]).unwrap();
        t.shutdown(std::net::Shutdown::Write).unwrap();
        assert!(ended(t));
    });
}
