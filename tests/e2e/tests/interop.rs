//! Pools that move between PMDK's tools and ours, end to end through the
//! client: a pool `pmempool create` made opens through our daemon with its
//! attributes, and the part files our daemon writes pass `pmempool info` and
//! `pmempool check`.
//!
//! Skipped (with a message) where `pmempool` is not installed.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use e2e::{have_tool, run_checked, LocalTarget};
use rpmem::{PersistFlags, Pool, RemoveFlags};

const MIB: usize = 1024 * 1024;
const POOL: usize = 16 * MIB;

/// `pmempool ARGS FILE`; it must succeed. Returns its stdout.
fn pmempool(args: &[&str], file: &Path) -> String {
    run_checked(Command::new("pmempool").args(args).arg(file))
}

fn one_part_set(t: &LocalTarget, name: &str, part: &Path) {
    t.write_poolset(name, &format!("PMEMPOOLSET\n16M {}\n", part.display()));
}

/// `<name>.set`, whose one part `<name>.part` is a 16 MiB obj pool with
/// `layout` that `pmempool create` made; returns the part.
fn pmempool_pool(t: &LocalTarget, name: &str, layout: &str) -> PathBuf {
    let part = t.dir().join(format!("{name}.part"));
    let layout = format!("--layout={layout}");
    pmempool(&["create", "obj", &layout, "-s", "16M"], &part);
    one_part_set(t, &format!("{name}.set"), &part);
    part
}

/// A fresh target, or `None` (skipping, outside CI) without `pmempool`.
fn pmempool_target() -> Option<LocalTarget> {
    have_tool("pmempool").then(LocalTarget::new)
}

#[test]
fn pmempool_obj_pool_opens_through_our_daemon_with_its_attributes() {
    let Some(t) = pmempool_target() else { return };
    let part = pmempool_pool(&t, "pmdk", "interop-layout");
    let before = fs::read(&part).unwrap();

    let cfg = t.config();
    let (pool, attr) = Pool::open(&cfg, "localhost", "pmdk.set", POOL, 2)
        .unwrap_or_else(|e| panic!("open: {e}; log: {}", t.log()));
    assert!(pool.has_header());
    assert_eq!(&attr.signature, b"PMEMOBJ\0");
    // The attributes are the header's fields, at PMDK's offsets (pinned
    // here independently of rpmem-storage's layout table).
    assert_eq!(
        attr.major,
        u32::from_le_bytes(before[8..12].try_into().unwrap())
    );
    assert_eq!(
        attr.incompat_features,
        u32::from_le_bytes(before[16..20].try_into().unwrap())
    );
    assert_eq!(&attr.poolset_uuid[..], &before[24..40]);
    assert_eq!(&attr.uuid[..], &before[40..56]);
    assert_eq!(&attr.user_flags[..], &before[128..144], "arch flags");
    // Reading through the daemon gives the pool's bytes: header and the
    // layout name in the pmemobj descriptor.
    let mut head = vec![0u8; 8192];
    pool.read(&mut head, 0, 0).unwrap();
    assert_eq!(head[..], before[..8192]);
    assert!(head[4096..4096 + 1024]
        .windows(14)
        .any(|w| w == b"interop-layout"));
    pool.close().unwrap();
    // Open and close change nothing, and pmempool still accepts the pool.
    assert!(
        fs::read(&part).unwrap() == before,
        "open/close wrote nothing"
    );
    pmempool(&["check"], &part);
}

#[test]
fn parts_our_daemon_writes_pass_pmempool_info_and_check() {
    let Some(t) = pmempool_target() else { return };
    // The model: a pool pmempool made, read through our daemon.
    pmempool_pool(&t, "model", "copied");
    let cfg = t.config();
    let (src, attr) = Pool::open(&cfg, "localhost", "model.set", POOL, 1)
        .unwrap_or_else(|e| panic!("open model: {e}; log: {}", t.log()));
    let mut body = vec![0u8; POOL - 4096];
    for (i, piece) in body.chunks_mut(MIB).enumerate() {
        src.read(piece, 4096 + i * MIB, 0).unwrap();
    }
    src.close().unwrap();

    // Our pool: created by our daemon with those attributes, the body
    // persisted through the client.
    let ours = t.dir().join("ours.part");
    one_part_set(&t, "ours.set", &ours);
    let mut pool = Pool::create(&cfg, "localhost", "ours.set", POOL, 4, Some(&attr))
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    pool.region_mut()[4096..].copy_from_slice(&body);
    for (i, _) in body.chunks(MIB).enumerate() {
        let off = 4096 + i * MIB;
        let len = MIB.min(POOL - off);
        pool.persist(off, len, (i % 4) as u32, PersistFlags::empty())
            .unwrap();
    }
    pool.close().unwrap();

    let info = pmempool(&["info"], &ours);
    assert!(info.contains("PMEMOBJ"), "{info}");
    assert!(info.contains("copied"), "layout shown: {info}");
    let check = pmempool(&["check", "-v"], &ours);
    assert!(check.contains("consistent"), "{check}");
    assert!(!check.contains("not consistent"), "{check}");

    // And our header reads back through our daemon unchanged.
    let (pool, again) = Pool::open(&cfg, "localhost", "ours.set", POOL, 1).unwrap();
    assert_eq!(again, attr);
    pool.close().unwrap();
    rpmem::remove(&cfg, "localhost", "ours.set", RemoveFlags::default()).unwrap();
    assert!(!ours.exists());
}

/// A pool set of two 8 MiB parts at `dir/<stem>.p0`, `.p1`, named `name`.
fn two_part_set(t: &LocalTarget, name: &str, stem: &str) -> [PathBuf; 2] {
    let parts = [0, 1].map(|i| t.dir().join(format!("{stem}.p{i}")));
    t.write_poolset(
        name,
        &format!(
            "PMEMPOOLSET\n8M {}\n8M {}\n",
            parts[0].display(),
            parts[1].display()
        ),
    );
    parts
}

#[test]
fn multi_part_pools_move_both_ways_and_pass_pmempool_check() {
    let Some(t) = pmempool_target() else { return };
    // pmempool makes a two-part obj pool from a pool set in the poolset dir.
    two_part_set(&t, "pmdk2.set", "pmdk2");
    let set = t.dir().join("pmdk2.set");
    pmempool(&["create", "obj", "--layout=two-parts"], &set);
    // Our daemon opens it (every part header verified, links followed).
    let size = 16 * MIB - 4096;
    let cfg = t.config();
    let (src, attr) = Pool::open(&cfg, "localhost", "pmdk2.set", size, 1)
        .unwrap_or_else(|e| panic!("open: {e}; log: {}", t.log()));
    assert_eq!(&attr.signature, b"PMEMOBJ\0");
    let mut body = vec![0u8; size - 4096];
    for (i, piece) in body.chunks_mut(MIB).enumerate() {
        src.read(piece, 4096 + i * MIB, 0).unwrap();
    }
    src.close().unwrap();

    // Ours: same attributes and contents, written through the client across
    // the part boundary; pmempool checks every part header and the links.
    let parts = two_part_set(&t, "ours2.set", "ours2");
    let mut pool = Pool::create(&cfg, "localhost", "ours2.set", size, 2, Some(&attr))
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    pool.region_mut()[4096..].copy_from_slice(&body);
    pool.persist(4096, size - 4096, 0, PersistFlags::empty())
        .unwrap();
    pool.close().unwrap();
    let set = t.dir().join("ours2.set");
    let check = pmempool(&["check", "-v"], &set);
    assert!(check.contains("part 1: pool header correct"), "{check}");
    assert!(check.contains(": consistent"), "{check}");
    let info = pmempool(&["info"], &set);
    assert!(info.contains("two-parts"), "{info}");
    assert!(info.contains("[OK]"), "{info}");
    assert!(!info.contains("[wrong"), "{info}");
    for p in &parts {
        assert_eq!(fs::metadata(p).unwrap().len(), 8 * MIB as u64);
    }
}
