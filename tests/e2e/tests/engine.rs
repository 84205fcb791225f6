//! The safe Rust API against a real rpmemd reached through rpmem-ssh-local.

use std::fs;
use std::sync::Arc;
use std::thread;

use e2e::LocalTarget;
use rpmem::{Config, PersistFlags, Pool, PoolAttr, RemoveFlags};

const MIB: usize = 1024 * 1024;

fn attr() -> PoolAttr {
    PoolAttr {
        compat_features: 1,
        ro_compat_features: 4,
        ..PoolAttr::sample(b"RPMTEST\0", 7)
    }
}

fn part_bytes(t: &LocalTarget, part: &str, offset: usize, len: usize) -> Vec<u8> {
    let data = fs::read(t.dir().join(part)).expect("read part file");
    data[offset..offset + len].to_vec()
}

#[test]
fn persisted_bytes_reach_the_part_file_and_read_back() {
    let t = LocalTarget::new();
    let (_, mut pool) = t.create_nohdrs("nohdrs", 4 * MIB, 2);
    assert!(!pool.has_header());
    assert_eq!(pool.nlanes(), 2);
    // Without headers the whole pool is usable, offset 0 included.
    pool.region_mut()[..8].copy_from_slice(b"offset-0");
    pool.region_mut()[MIB..MIB + 5].copy_from_slice(b"hello");
    pool.persist(0, 8, 0, PersistFlags::empty()).unwrap();
    pool.persist(MIB, 5, 1, PersistFlags::RELAXED).unwrap();
    assert_eq!(part_bytes(&t, "nohdrs.part", 0, 8), b"offset-0");
    assert_eq!(part_bytes(&t, "nohdrs.part", MIB, 5), b"hello");

    // flush + drain, then deep persist.
    pool.region_mut()[2 * MIB..2 * MIB + 4].copy_from_slice(b"abcd");
    pool.flush(2 * MIB, 4, 0, PersistFlags::empty()).unwrap();
    pool.drain(0).unwrap();
    assert_eq!(part_bytes(&t, "nohdrs.part", 2 * MIB, 4), b"abcd");
    pool.region_mut()[3 * MIB..3 * MIB + 4].copy_from_slice(b"deep");
    pool.deep_persist(3 * MIB, 4, 1).unwrap();
    assert_eq!(part_bytes(&t, "nohdrs.part", 3 * MIB, 4), b"deep");

    let mut buf = [0u8; 5];
    pool.read(&mut buf, MIB, 0).unwrap();
    assert_eq!(&buf, b"hello");
    pool.close().unwrap();
}

#[test]
fn pool_with_headers_protects_its_header_and_keeps_attributes() {
    let t = LocalTarget::new();
    let part = t.dir().join("h0");
    t.write_poolset("hdr.set", &format!("PMEMPOOLSET\n8M {}\n", part.display()));
    let cfg = t.config();
    let mut pool = Pool::create(&cfg, "localhost", "hdr.set", 8 * MIB, 1, Some(&attr()))
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    assert!(pool.has_header());
    // The target reports what it stored: our fields, and zero user flags
    // replaced by its architecture flags as PMDK does.
    let stored = pool.attr();
    assert_eq!(
        (stored.signature, stored.major, stored.uuid),
        (attr().signature, attr().major, attr().uuid)
    );
    assert_ne!(stored.user_flags, [0u8; 16]);
    // The header signature is on disk.
    assert_eq!(part_bytes(&t, "h0", 0, 8), b"RPMTEST\0");
    let e = pool.persist(100, 8, 0, PersistFlags::empty()).unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    assert!(e.to_string().contains("header"), "{e}");
    // Refused calls leave the handle usable.
    pool.region_mut()[4096..4100].copy_from_slice(b"data");
    pool.persist(4096, 4, 0, PersistFlags::empty()).unwrap();
    let mut hdr = [0u8; 8];
    pool.read(&mut hdr, 0, 0).unwrap();
    assert_eq!(&hdr, b"RPMTEST\0");

    let mut changed = attr();
    changed.major = 8;
    pool.set_attr(Some(&changed)).unwrap();
    pool.close().unwrap();

    let e = Pool::create(&cfg, "localhost", "hdr.set", 8 * MIB, 1, Some(&attr()))
        .expect_err("second create must fail");
    assert_eq!(e.errno(), libc::EEXIST, "{e}");

    let (pool, got) = Pool::open(&cfg, "localhost", "hdr.set", 8 * MIB, 1).unwrap();
    assert_eq!(got, changed);
    let mut buf = [0u8; 4];
    pool.read(&mut buf, 4096, 0).unwrap();
    assert_eq!(&buf, b"data");
    // A pool open elsewhere is busy.
    let busy = Pool::open(&cfg, "localhost", "hdr.set", 8 * MIB, 1).expect_err("busy");
    assert_eq!(busy.errno(), libc::EBUSY, "{busy}");
    pool.close().unwrap();

    rpmem::remove(&cfg, "localhost", "hdr.set", RemoveFlags::default()).unwrap();
    assert!(!part.exists());
    let e = Pool::open(&cfg, "localhost", "hdr.set", 8 * MIB, 1).expect_err("gone");
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
}

#[test]
fn four_lanes_from_four_threads_land_every_byte() {
    let t = LocalTarget::new();
    let (part, mut pool) = t.create_nohdrs("lanes", 8 * MIB, 4);
    assert_eq!(pool.nlanes(), 4);
    for (i, b) in pool.region_mut().iter_mut().enumerate() {
        *b = (i % 251) as u8;
    }
    let pool = Arc::new(pool);
    let stripe = 2 * MIB;
    let handles: Vec<_> = (0..4u32)
        .map(|lane| {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let base = lane as usize * stripe;
                for (k, off) in (0..stripe).step_by(64 * 1024).enumerate() {
                    let flags = if k % 2 == 0 {
                        PersistFlags::empty()
                    } else {
                        PersistFlags::RELAXED
                    };
                    if k % 3 == 0 {
                        pool.flush(base + off, 64 * 1024, lane, flags).unwrap();
                    } else {
                        pool.persist(base + off, 64 * 1024, lane, flags).unwrap();
                    }
                }
                pool.drain(lane).unwrap();
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    let on_disk = fs::read(&part).unwrap();
    assert!(
        on_disk[..8 * MIB] == pool.region()[..],
        "part file differs from the region"
    );
    let mut back = vec![0u8; 8 * MIB];
    pool.read(&mut back, 0, 3).unwrap();
    assert!(back == pool.region(), "remote read differs from the region");
    Arc::try_unwrap(pool).ok().unwrap().close().unwrap();
}

/// Flushes go out back to back and the daemon reads ahead of each request:
/// headers and payloads of every size and alignment, on both write paths,
/// share its reads and must still land byte for byte.
#[test]
fn bursts_of_flushes_of_every_size_and_alignment_land_exactly() {
    let t = LocalTarget::new();
    let (part, mut pool) = t.create_nohdrs("burst", 8 * MIB, 1);
    for (i, b) in pool.region_mut().iter_mut().enumerate() {
        *b = (i % 253) as u8 | 1;
    }
    let sizes = [
        1, 7, 8, 31, 32, 33, 100, 4095, 4096, 4097, 65535, 65536, 65537, 200_003,
    ];
    let mut written = Vec::new();
    let mut off = 3;
    for round in 0..3 {
        for (k, &len) in sizes.iter().enumerate() {
            let flags = if (k + round) % 2 == 0 {
                PersistFlags::empty()
            } else {
                PersistFlags::RELAXED
            };
            if k % 5 == 4 {
                pool.persist(off, len, 0, flags).unwrap();
            } else {
                pool.flush(off, len, 0, flags).unwrap();
            }
            written.push((off, len));
            off += len + 13;
        }
        pool.drain(0).unwrap();
    }
    assert!(off < 8 * MIB);
    let on_disk = fs::read(&part).unwrap();
    let mut expected = vec![0u8; 8 * MIB];
    for &(o, l) in &written {
        expected[o..o + l].copy_from_slice(&pool.region()[o..o + l]);
    }
    assert!(on_disk[..8 * MIB] == expected[..], "part file differs");
    pool.close().unwrap();
}

#[test]
fn bad_arguments_are_refused_without_breaking_the_pool() {
    let t = LocalTarget::new();
    let cfg = t.config();
    let (_, pool) = t.create_nohdrs("b", 4 * MIB, 2);
    let cases: Vec<(&str, rpmem::Result<()>)> = vec![
        (
            "past end",
            pool.persist(4 * MIB - 4, 8, 0, PersistFlags::empty()),
        ),
        (
            "overflow",
            pool.persist(usize::MAX, 2, 0, PersistFlags::empty()),
        ),
        ("lane", pool.persist(0, 8, 2, PersistFlags::empty())),
        // Bits the type has no name for are still refused.
        (
            "flags",
            pool.persist(0, 8, 0, PersistFlags::from_bits_retain(2)),
        ),
        (
            "flush flags",
            pool.flush(0, 8, 0, PersistFlags::from_bits_retain(0x80)),
        ),
        ("read past end", pool.read(&mut [0u8; 16], 4 * MIB - 8, 0)),
    ];
    for (what, r) in cases {
        let e = r.expect_err(what);
        assert_eq!(e.errno(), libc::EINVAL, "{what}: {e}");
        assert!(!e.to_string().is_empty());
    }
    pool.persist(0, 4096, 1, PersistFlags::empty()).unwrap();
    pool.close().unwrap();

    // Remote pool smaller than the local region.
    let e = Pool::open(&cfg, "localhost", "b.set", 8 * MIB, 1).expect_err("too big");
    assert_eq!(e.errno(), libc::EFBIG, "{e}");
    // Attributes that do not match the set's header option.
    let e = Pool::create(&cfg, "localhost", "b.set", 4 * MIB, 1, Some(&attr()))
        .expect_err("attr on NOHDRS");
    assert!([libc::EINVAL, libc::EEXIST].contains(&e.errno()), "{e}");
    // Missing pool set.
    let e = Pool::open(&cfg, "localhost", "nope.set", 4 * MIB, 1).expect_err("missing");
    assert_eq!(e.errno(), libc::ENOENT, "{e}");
    // Unreachable target: the ssh client does not exist.
    let bad = Config {
        ssh: "/nonexistent/ssh".into(),
        ..cfg.clone()
    };
    let e = Pool::open(&bad, "localhost", "b.set", 4 * MIB, 1).expect_err("no ssh");
    assert_eq!(e.errno(), libc::ECONNRESET, "{e}");
    // The TCP transport switched off leaves none.
    let off = Config {
        enable_sockets: false,
        ..cfg.clone()
    };
    let e = Pool::open(&off, "localhost", "b.set", 4 * MIB, 1).expect_err("no transport");
    assert_eq!(e.errno(), libc::ENOMEDIUM, "{e}");
}
