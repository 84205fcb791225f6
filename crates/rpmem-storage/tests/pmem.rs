//! The persistent-memory durability path, forced on ordinary files.
//!
//! A separate test binary: `set_force_pmem` is process-wide.

use std::fs;

use rpmem_storage::{set_force_pmem, Method, Pool, PoolSet, Range};

const M: u64 = 1 << 20;

#[test]
fn forced_pmem_pools_flush_cache_lines_and_the_bytes_reach_the_files() {
    let d = tempfile::tempdir().unwrap();
    let parts: Vec<_> = (0..2).map(|i| d.path().join(format!("p{i}"))).collect();
    let set = d.path().join("pm.set");
    fs::write(
        &set,
        format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n2M {}\n2M {}\n",
            parts[0].display(),
            parts[1].display()
        ),
    )
    .unwrap();
    let s = PoolSet::load(&set).unwrap();

    // Without the switch, ordinary files use msync (MAP_SYNC fails here).
    let pool = Pool::create(&s, None).unwrap();
    if !pool.is_pmem() {
        assert_eq!(pool.persist_method(), Method::Msync);
    }
    drop(pool);

    set_force_pmem(true);
    let pool = Pool::open(&s).unwrap();
    let m = pool.persist_method();
    assert_eq!(m, Method::detect());
    #[cfg(target_arch = "x86_64")]
    assert!(m.is_cache_flush(), "{m}");
    // Across the part boundary, unaligned at both ends.
    let data: Vec<u8> = (0..300u32).map(|i| (i % 255) as u8 + 1).collect();
    pool.write(2 * M - 100, &data).unwrap();
    pool.write(5, b"head").unwrap();
    let mut rs = [
        Range {
            offset: 2 * M - 100,
            len: 300,
        },
        Range { offset: 5, len: 4 },
    ];
    pool.persist(&mut rs, false).unwrap();
    pool.persist(&mut rs, true).unwrap();
    assert!(pool
        .persist(
            &mut [Range {
                offset: 4 * M,
                len: 1
            }],
            false
        )
        .is_err());
    drop(pool);
    set_force_pmem(false);
    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    assert_eq!(&p0[5..9], b"head");
    assert_eq!(&p0[(2 * M - 100) as usize..], &data[..100]);
    assert_eq!(&p1[..200], &data[100..]);
}
