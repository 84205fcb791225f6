//! Pools on real files in temporary directories.
//!
//! Nothing here starts a process: a child forked by one test holds copies of
//! every descriptor until it execs, which keeps another test's flock alive
//! for that instant. Tests that run external tools live in `tools.rs`.

mod common;

use std::fs;

use common::{attr, load, temp_set, write_set, M};
use rpmem_proto::PoolAttr;
use rpmem_storage::header::{PoolHeader, HEADER_LEN};
use rpmem_storage::{remove, resolve_name, ErrorKind, Pool, Range};

#[test]
fn create_then_open_returns_the_attributes() {
    let (_d, _set, parts, s) = temp_set("a.set", "", &[4 * M, 4 * M]);
    {
        let pool = Pool::create(&s, Some(&attr())).unwrap();
        assert!(pool.has_header());
        assert_eq!(pool.size(), 8 * M - 4096);
        assert_eq!(pool.attr(), Some(attr()));
        assert!(!pool.is_pmem());
    }
    // Each part file has the declared size and a valid header.
    for p in &parts {
        assert_eq!(fs::metadata(p).unwrap().len(), 4 * M);
        let b = fs::read(p).unwrap();
        let h = PoolHeader::from_bytes(b[..HEADER_LEN].try_into().unwrap()).unwrap();
        assert_eq!(h.poolset_uuid, [0x11; 16]);
    }
    let h0 = PoolHeader::from_bytes(
        fs::read(&parts[0]).unwrap()[..HEADER_LEN]
            .try_into()
            .unwrap(),
    )
    .unwrap();
    let h1 = PoolHeader::from_bytes(
        fs::read(&parts[1]).unwrap()[..HEADER_LEN]
            .try_into()
            .unwrap(),
    )
    .unwrap();
    assert_eq!(h0.uuid, [0x22; 16]);
    assert_eq!(h0.next_part_uuid, h1.uuid);
    assert_eq!(h1.next_part_uuid, h0.uuid);
    assert_ne!(h1.uuid, h0.uuid);
    let pool = Pool::open(&s).unwrap();
    assert_eq!(pool.attr(), Some(attr()));
    assert_eq!(pool.size(), 8 * M - 4096);
}

#[test]
fn zero_user_flags_become_the_host_arch_flags() {
    let (_d, _set, _, s) = temp_set("z.set", "", &[2 * M]);
    let mut a = attr();
    a.user_flags = [0; 16];
    let pool = Pool::create(&s, Some(&a)).unwrap();
    let mut want = a;
    want.user_flags = rpmem_storage::header::host_arch_flags();
    assert_eq!(pool.attr(), Some(want));
    drop(pool);
    assert_eq!(Pool::open(&s).unwrap().attr(), Some(want));
}

#[test]
fn create_refuses_existing_parts_and_cleans_up() {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), "b.set", "SINGLEHDR", &[2 * M, 2 * M, 2 * M]);
    // Right size, but something in its first 4 KiB: not ours to overwrite.
    let mut precious = vec![0u8; 2 * M as usize];
    precious[100..108].copy_from_slice(b"precious");
    fs::write(&parts[1], &precious).unwrap();
    let e = Pool::create(&load(&set), Some(&attr())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Exists, "{e}");
    assert_eq!(e.errno(), libc::EEXIST);
    assert!(e.to_string().contains("b.set.part1"), "{e}");
    assert!(!parts[0].exists(), "the part this create made is removed");
    assert!(!parts[2].exists());
    assert!(fs::read(&parts[1]).unwrap() == precious, "left as it was");
    // The wrong size: EINVAL, and the file is left alone too.
    fs::write(&parts[1], b"precious").unwrap();
    let e = Pool::create(&load(&set), Some(&attr())).err().unwrap();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    assert_eq!(fs::read(&parts[1]).unwrap(), b"precious");
    assert!(!parts[0].exists());
    // Without headers nothing tells a blank part from a pool: EEXIST even
    // for a zeroed part of the right size.
    let (nohdrs, np) = write_set(d.path(), "n.set", "NOHDRS", &[2 * M, 2 * M]);
    fs::File::create(&np[1]).unwrap().set_len(2 * M).unwrap();
    let e = Pool::create(&load(&nohdrs), None).err().unwrap();
    assert_eq!(e.errno(), libc::EEXIST, "{e}");
    assert!(!np[0].exists());
}

#[test]
fn create_over_zeroed_parts_of_the_right_size() {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), "zp.set", "", &[2 * M, 3 * M, 2 * M]);
    // As `truncate -s` leaves them: the right size, all zeros. Part 2 is
    // left for create to make.
    for (p, len) in parts.iter().zip([2 * M, 3 * M]) {
        fs::File::create(p).unwrap().set_len(len).unwrap();
    }
    let s = load(&set);
    {
        let pool = Pool::create(&s, Some(&attr())).unwrap();
        assert_eq!(pool.attr(), Some(attr()));
        pool.write(4096, b"data").unwrap();
    }
    let pool = Pool::open(&s).unwrap();
    assert_eq!(pool.attr(), Some(attr()));
    let mut b = [0u8; 4];
    pool.read(4096, &mut b).unwrap();
    assert_eq!(&b, b"data");
    drop(pool);
    // Now the headers are written: a second create is EEXIST and changes nothing.
    let before: Vec<Vec<u8>> = parts.iter().map(|p| fs::read(p).unwrap()).collect();
    let e = Pool::create(&s, Some(&attr())).err().unwrap();
    assert_eq!(e.errno(), libc::EEXIST, "{e}");
    for (p, b) in parts.iter().zip(&before) {
        assert!(fs::read(p).unwrap() == *b, "{} unchanged", p.display());
    }
}

#[test]
fn create_over_a_part_in_use_is_busy() {
    let (d, _set, parts, s) = temp_set("busy.set", "", &[2 * M, 2 * M]);
    let held = Pool::create(&s, Some(&attr())).unwrap();
    let e = Pool::create(&s, Some(&attr())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(e.errno(), libc::EBUSY);
    // Another set that names a part of the open pool (its own first part new).
    let other = d.path().join("other.set");
    let fresh = d.path().join("other.part0");
    fs::write(
        &other,
        format!(
            "PMEMPOOLSET\n{} {}\n{} {}\n",
            2 * M,
            fresh.display(),
            2 * M,
            parts[1].display()
        ),
    )
    .unwrap();
    let e = Pool::create(&load(&other), Some(&attr())).err().unwrap();
    assert_eq!(e.errno(), libc::EBUSY, "{e}");
    assert!(!fresh.exists(), "the part this create made is removed");
    assert!(parts[1].exists());
    drop(held);
    assert_eq!(Pool::open(&s).unwrap().attr(), Some(attr()));
}

#[test]
fn remove_with_force_never_overrides_a_lock() {
    let (_d, set, parts, s) = temp_set("rf.set", "NOHDRS", &[2 * M, 2 * M]);
    let held = Pool::create(&s, None).unwrap();
    for pool_set in [false, true] {
        let e = remove(&set, true, pool_set).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
        assert_eq!(e.errno(), libc::EBUSY);
    }
    assert!(parts[0].exists() && parts[1].exists() && set.exists());
    held.write(0, b"still here").unwrap();
    drop(held);
    remove(&set, true, true).unwrap();
    assert!(!parts[0].exists() && !parts[1].exists() && !set.exists());
}

#[test]
fn header_option_must_match_attributes() {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), "c.set", "NOHDRS", &[2 * M]);
    let e = Pool::create(&load(&set), Some(&attr())).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::BadConfig, "{e}");
    let (set2, _) = write_set(d.path(), "d.set", "", &[2 * M]);
    for a in [None, Some(PoolAttr::default())] {
        let e = Pool::create(&load(&set2), a.as_ref()).err().unwrap();
        assert_eq!(e.kind(), ErrorKind::BadConfig, "{e}");
    }
    assert!(!parts[0].exists());
}

#[test]
fn missing_part_is_not_found() {
    let d = tempfile::tempdir().unwrap();
    let (set, _) = write_set(d.path(), "e.set", "NOHDRS", &[2 * M]);
    let e = Pool::open(&load(&set)).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NotFound, "{e}");
    assert_eq!(e.errno(), libc::ENOENT);
}

#[test]
fn second_open_is_busy_until_the_first_closes() {
    let (_d, _set, _, s) = temp_set("f.set", "NOHDRS", &[2 * M, 2 * M]);
    let pool = Pool::create(&s, None).unwrap();
    let e = Pool::open(&s).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::Busy, "{e}");
    assert_eq!(e.errno(), libc::EBUSY);
    drop(pool);
    Pool::open(&s).unwrap();
}

#[test]
fn damaged_header_is_refused_and_left_alone() {
    let (_d, _set, parts, s) = temp_set("g.set", "", &[2 * M, 2 * M]);
    drop(Pool::create(&s, Some(&attr())).unwrap());
    let mut b = fs::read(&parts[1]).unwrap();
    b[60] ^= 1;
    fs::write(&parts[1], &b).unwrap();
    let e = Pool::open(&s).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::BadConfig, "{e}");
    assert!(e.to_string().contains("checksum"), "{e}");
    assert_eq!(fs::read(&parts[1]).unwrap(), b, "nothing written");
}

#[test]
fn size_mismatch_is_refused() {
    let (_d, _set, parts, s) = temp_set("h.set", "NOHDRS", &[2 * M]);
    drop(Pool::create(&s, None).unwrap());
    fs::OpenOptions::new()
        .write(true)
        .open(&parts[0])
        .unwrap()
        .set_len(3 * M)
        .unwrap();
    let e = Pool::open(&s).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::BadConfig, "{e}");
}

#[test]
fn singlehdr_offsets_cross_part_boundaries() {
    let d = tempfile::tempdir().unwrap();
    // 2M + (3M+100 -> 3M aligned) + 2M, single header: pool = 7M.
    let (set, parts) = write_set(d.path(), "i.set", "SINGLEHDR", &[2 * M, 3 * M + 100, 2 * M]);
    let s = load(&set);
    let pool = Pool::create(&s, Some(&attr())).unwrap();
    assert_eq!(pool.size(), 7 * M);
    let data: Vec<u8> = (0..8192u32).map(|i| (i % 251) as u8 + 1).collect();
    // Straddles part 0 / part 1 at pool offset 2M.
    pool.write(2 * M - 4000, &data).unwrap();
    // Straddles part 1 / part 2 at pool offset 5M.
    pool.write(5 * M - 3, &data[..10]).unwrap();
    pool.persist(
        &mut [
            Range {
                offset: 2 * M - 4000,
                len: 8192,
            },
            Range {
                offset: 5 * M - 3,
                len: 10,
            },
        ],
        true,
    )
    .unwrap();
    let mut back = vec![0u8; 8192];
    pool.read(2 * M - 4000, &mut back).unwrap();
    assert_eq!(back, data);
    drop(pool);
    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    let p2 = fs::read(&parts[2]).unwrap();
    assert_eq!(&p0[(2 * M - 4000) as usize..], &data[..4000]);
    // No header in part 1: its byte 0 is pool offset 2M.
    assert_eq!(&p1[..4192], &data[4000..]);
    assert_eq!(&p1[(3 * M - 3) as usize..3 * M as usize], &data[..3]);
    assert_eq!(&p2[..7], &data[3..10]);
    // Only part 0 has a header.
    assert!(PoolHeader::from_bytes(p0[..HEADER_LEN].try_into().unwrap()).is_ok());
    assert!(PoolHeader::from_bytes(p1[..HEADER_LEN].try_into().unwrap()).is_err());
}

#[test]
fn all_headers_offsets_skip_each_later_header() {
    let (_d, _set, parts, s) = temp_set("j.set", "", &[2 * M, 2 * M]);
    let pool = Pool::create(&s, Some(&attr())).unwrap();
    assert_eq!(pool.size(), 4 * M - 4096);
    pool.write(2 * M - 2, &[1, 2, 3, 4]).unwrap();
    assert!(pool.write(4 * M - 4096 - 1, &[1, 2]).is_err());
    assert_eq!(
        pool.check_range(u64::MAX, 2).unwrap_err().kind(),
        ErrorKind::OutOfRange
    );
    pool.persist(
        &mut [Range {
            offset: 2 * M - 2,
            len: 4,
        }],
        false,
    )
    .unwrap();
    drop(pool);
    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    assert_eq!(&p0[(2 * M - 2) as usize..], &[1, 2]);
    assert_eq!(
        &p1[4096..4098],
        &[3, 4],
        "part 1 data starts after its header"
    );
    // The header of part 1 is intact.
    Pool::open(&s).unwrap();
}

#[test]
fn set_attr_rewrites_every_header() {
    let (d, _set, _, s) = temp_set("k.set", "", &[2 * M, 2 * M, 2 * M]);
    let pool = Pool::create(&s, Some(&attr())).unwrap();
    let mut a2 = attr();
    a2.uuid = [0x99; 16];
    a2.major = 7;
    a2.next_uuid = [0x77; 16];
    pool.set_attr(&a2).unwrap();
    assert_eq!(pool.attr(), Some(a2));
    drop(pool);
    let pool = Pool::open(&s).unwrap();
    assert_eq!(pool.attr(), Some(a2));
    // No headers: set_attr is a configuration error.
    let (set2, _) = write_set(d.path(), "l.set", "NOHDRS", &[2 * M]);
    let p2 = Pool::create(&load(&set2), None).unwrap();
    assert_eq!(p2.set_attr(&a2).unwrap_err().kind(), ErrorKind::BadConfig);
    assert_eq!(p2.attr(), None);
}

#[test]
fn persist_coalesces_and_validates() {
    let d = tempfile::tempdir().unwrap();
    let (set, _) = write_set(d.path(), "m.set", "NOHDRS", &[4 * M]);
    let pool = Pool::create(&load(&set), None).unwrap();
    let mut rs = [
        Range {
            offset: 8192,
            len: 10,
        },
        Range {
            offset: 0,
            len: 4096,
        },
        Range {
            offset: 4096,
            len: 1,
        },
        Range {
            offset: 3 * M,
            len: 0,
        },
    ];
    let before = pool.msync_calls();
    pool.persist(&mut rs, false).unwrap();
    assert_eq!(pool.msync_calls() - before, 1, "one msync for all ranges");
    // Sixteen scattered flushes drained together: still one durability call.
    let mut scattered: Vec<Range> = (0..16)
        .map(|i| Range {
            offset: i * 3 * 4096 + 100,
            len: 512,
        })
        .collect();
    let before = pool.msync_calls();
    pool.persist(&mut scattered, false).unwrap();
    assert_eq!(pool.msync_calls() - before, 1);
    let mut bad = [Range {
        offset: 4 * M,
        len: 1,
    }];
    assert!(pool.persist(&mut bad, false).is_err());
    pool.persist(&mut [], true).unwrap();
}

#[test]
fn remove_respects_force_and_pool_set_flags() {
    let (_d, set, parts, s) = temp_set("n.set", "", &[2 * M, 2 * M]);
    drop(Pool::create(&s, Some(&attr())).unwrap());
    // Busy pool: refused without force.
    let held = Pool::open(&s).unwrap();
    assert_eq!(
        remove(&set, false, false).unwrap_err().kind(),
        ErrorKind::Busy
    );
    drop(held);
    // Damaged header: refused without force, removed with it.
    let mut b = fs::read(&parts[0]).unwrap();
    b[8] ^= 1;
    fs::write(&parts[0], &b).unwrap();
    assert_eq!(
        remove(&set, false, false).unwrap_err().kind(),
        ErrorKind::BadConfig
    );
    assert!(parts[0].exists() && parts[1].exists());
    remove(&set, true, false).unwrap();
    assert!(!parts[0].exists() && !parts[1].exists());
    assert!(set.exists());
    // Again with force: missing parts are fine; with the pool-set flag the set goes too.
    remove(&set, true, true).unwrap();
    assert!(!set.exists());
    let e = remove(&set, false, false).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    assert_eq!(e.errno(), libc::ENOENT);
}

#[test]
fn remove_intact_pool_without_force() {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), "o.set", "NOHDRS", &[2 * M]);
    drop(Pool::create(&load(&set), None).unwrap());
    remove(&set, false, true).unwrap();
    assert!(!parts[0].exists() && !set.exists());
}

#[test]
fn names_stay_inside_the_poolset_dir() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("sets");
    fs::create_dir_all(dir.join("sub")).unwrap();
    fs::write(dir.join("ok.set"), "PMEMPOOLSET\n").unwrap();
    fs::write(dir.join("sub/deep.set"), "PMEMPOOLSET\n").unwrap();
    fs::write(d.path().join("outside.set"), "PMEMPOOLSET\n").unwrap();
    std::os::unix::fs::symlink(d.path().join("outside.set"), dir.join("link.set")).unwrap();
    assert_eq!(
        resolve_name(&dir, "ok.set").unwrap(),
        dir.canonicalize().unwrap().join("ok.set")
    );
    assert!(resolve_name(&dir, "sub/deep.set").is_ok());
    assert!(resolve_name(&dir, "./sub/deep.set").is_ok());
    for bad in [
        "",
        "/etc/passwd",
        "../outside.set",
        "sub/../../outside.set",
        "link.set",
        "a\0b",
    ] {
        let e = resolve_name(&dir, bad).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::BadName, "{bad:?}: {e}");
    }
    assert_eq!(
        resolve_name(&dir, "nope.set").unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

#[test]
fn concurrent_lanes_write_disjoint_ranges() {
    let d = tempfile::tempdir().unwrap();
    let (set, _) = write_set(d.path(), "p.set", "NOHDRS", &[2 * M, 2 * M]);
    let pool = Pool::create(&load(&set), None).unwrap();
    std::thread::scope(|sc| {
        for t in 0..4u8 {
            let pool = &pool;
            sc.spawn(move || {
                let chunk = vec![t + 1; 1000];
                for k in 0..100u64 {
                    let off = (u64::from(t) * 100 + k) * 4000 + 3;
                    pool.write(off, &chunk).unwrap();
                }
            });
        }
    });
    let mut b = vec![0u8; 1000];
    pool.read(3 * 100 * 4000 + 3, &mut b).unwrap();
    assert!(b.iter().all(|&x| x == 4));
}

#[test]
fn writes_of_every_size_and_alignment_land_exactly() {
    // Below and above the size from which words are stored non-temporally,
    // at every offset within a word: the bytes land, their neighbours don't move.
    let d = tempfile::tempdir().unwrap();
    let (set, _) = write_set(d.path(), "w.set", "NOHDRS", &[2 * M]);
    let pool = Pool::create(&load(&set), None).unwrap();
    let base = 64 * 1024;
    let mut expect = vec![0u8; 100_000];
    pool.write(base, &expect).unwrap();
    let mut seed = 1u8;
    for len in [1usize, 7, 8, 9, 4095, 4096, 4097, 65_536, 70_001] {
        for shift in 0..8usize {
            seed = seed.wrapping_add(37);
            let data: Vec<u8> = (0..len).map(|i| (i % 253) as u8 ^ seed).collect();
            let at = 1000 + shift + len % 5;
            pool.write(base + at as u64, &data).unwrap();
            expect[at..at + len].copy_from_slice(&data);
            let mut got = vec![0u8; expect.len()];
            pool.read(base, &mut got).unwrap();
            assert!(got == expect, "write of {len} bytes at +{shift}");
        }
    }
}

#[test]
fn a_contiguous_view_is_the_pool_at_one_address() {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), "v.set", "", &[2 * M, 2 * M]);
    let pool = Pool::create(&load(&set), Some(&attr())).unwrap();
    let view = pool.contiguous().unwrap();
    let span = view.span();
    assert_eq!(span.len() as u64, pool.size());
    // Written through the view across the part boundary; durable through
    // the pool; in the files where the pool's offsets say.
    let at = (2 * M - 2) as usize;
    let p = span.as_ptr().cast::<u8>();
    for (i, b) in [5u8, 6, 7, 8].into_iter().enumerate() {
        // SAFETY: at + 3 is inside the view, which lives until the end.
        unsafe { p.add(at + i).write_volatile(b) };
    }
    pool.persist(
        &mut [Range {
            offset: at as u64,
            len: 4,
        }],
        false,
    )
    .unwrap();
    let mut back = [0u8; 4];
    pool.read(at as u64, &mut back).unwrap();
    assert_eq!(back, [5, 6, 7, 8], "the pool sees what the view wrote");
    drop(view);
    drop(pool);
    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    assert_eq!(&p0[at..], &[5, 6]);
    assert_eq!(&p1[4096..4098], &[7, 8]);
}
