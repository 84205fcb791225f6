//! rpmemd killed at random instants: the pool always opens, consistent.
//!
//! Its own test binary: this file opens pools in the test process between
//! kills, and a child another test forks would hold copies of those locks
//! until it execs.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use rpmem_proto::control::Request;

/// A random number below `n` (std's randomly keyed hasher over the clock).
fn random_below(n: u64) -> u64 {
    use std::hash::BuildHasher;
    std::collections::hash_map::RandomState::new().hash_one(std::time::Instant::now()) % n
}

/// SIGKILL of rpmemd at random instants of a stream of set_attr requests on
/// a pool with a header in every part: every time the pool opens, with the
/// attributes of the last acknowledged set_attr or of the one in flight.
#[test]
fn set_attr_survives_sigkill_at_any_instant() {
    let env = Env::new();
    let parts = env.set("k.set", "", &[2 * M; 6]);
    let set = rpmem_storage::PoolSet::load(&env.sets().join("k.set")).unwrap();
    let mut d = env.spawn(&[]);
    opened(d.create("k.set", 2 * M, 1, Some(attr())));
    assert_eq!(d.call(&Request::Close), rpmem_proto::control::Response::Ok);
    assert!(d.finish().0.success());
    let mut current = rpmem_storage::Pool::open(&set).unwrap().attr().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(8);
    let mut rounds = 0u32;
    let mut cut_short = 0u32;
    while std::time::Instant::now() < deadline || rounds < 20 {
        rounds += 1;
        let mut d = env.spawn(&[]);
        opened(d.open("k.set", 2 * M, 1));
        // Each request changes part 0's uuid (so the part links change) and
        // every shared field.
        let sent: Vec<rpmem_proto::PoolAttr> = (0..8u8)
            .map(|k| {
                let mut a = current;
                let tag = (rounds as u8).wrapping_mul(8).wrapping_add(k);
                a.uuid = [tag; 16];
                a.poolset_uuid = [tag ^ 0x5a; 16];
                a.major = u32::from(tag);
                a
            })
            .collect();
        let mut burst = Vec::new();
        for a in &sent {
            burst.extend_from_slice(&Request::SetAttr { attr: *a }.encode());
        }
        d.send_raw(&burst);
        std::thread::sleep(Duration::from_micros(random_below(4000)));
        d.child.kill().unwrap();
        d.child.wait().unwrap();
        let mut replies = Vec::new();
        d.stdout.read_to_end(&mut replies).unwrap();
        // Each Ok reply is one 5-byte frame.
        let acked = replies.len() / 5;
        if acked < sent.len() {
            cut_short += 1;
        }
        let pool = rpmem_storage::Pool::open(&set).unwrap_or_else(|e| {
            panic!("round {rounds}: after SIGKILL with {acked} set_attr acknowledged: {e}")
        });
        let got = pool.attr().unwrap();
        let last_acked = if acked == 0 { current } else { sent[acked - 1] };
        let in_flight = sent.get(acked).copied();
        assert!(
            got == last_acked || Some(got) == in_flight,
            "round {rounds}: {acked} acknowledged, the pool holds neither the last acknowledged attributes nor the ones in flight"
        );
        drop(pool);
        assert!(
            !parts[0].with_extension("0.rpmem-set-attr").exists(),
            "open leaves no intent behind"
        );
        current = got;
    }
    eprintln!("{rounds} rounds, {cut_short} killed before every set_attr was acknowledged");
    assert!(cut_short > 0, "no kill landed inside the set_attr stream");
}
