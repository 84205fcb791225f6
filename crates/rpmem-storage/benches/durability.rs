//! Cost of the daemon's durability path on a disk-backed file: the
//! 8-byte-atomic write, and one msync for many pending ranges versus one per
//! range (what a drain after N flushes saves).

use std::path::Path;

use criterion::{black_box, criterion_group, criterion_main, BatchSize, Criterion};
use rpmem_storage::{Pool, PoolSet, Range};

const SIZE: u64 = 16 << 20;

fn pool(dir: &Path) -> Pool {
    let set = dir.join("bench.set");
    let text = format!(
        "PMEMPOOLSET\nOPTION NOHDRS\n{SIZE} {}\n",
        dir.join("bench.part").display()
    );
    std::fs::write(&set, text).unwrap();
    Pool::create(&PoolSet::load(&set).unwrap(), None).unwrap()
}

fn base_dir() -> tempfile::TempDir {
    // On disk, under the target directory: msync there reaches the device.
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn durability(c: &mut Criterion) {
    let dir = base_dir();
    let p = pool(dir.path());
    let data = vec![0x5au8; 4096];
    c.bench_function("write 4 KiB (8-byte stores)", |b| {
        b.iter(|| p.write(black_box(8192), black_box(&data)).unwrap())
    });
    let ranges: Vec<Range> = (0..16u64)
        .map(|i| Range {
            offset: i * 3 * 4096,
            len: 4096,
        })
        .collect();
    // Dirty the 16 pages before every sample so each msync has work to do.
    let dirty = |p: &Pool| {
        for r in &ranges {
            p.write(r.offset, &data[..r.len as usize]).unwrap();
        }
        ranges.clone()
    };
    c.bench_function("drain of 16 flushed 4 KiB ranges (one msync)", |b| {
        b.iter_batched_ref(
            || dirty(&p),
            |r| p.persist(r, false).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("16 persists of one 4 KiB range each", |b| {
        b.iter_batched_ref(
            || dirty(&p),
            |r| {
                for one in r.iter() {
                    p.persist(&mut [*one], false).unwrap();
                }
            },
            BatchSize::SmallInput,
        )
    });
}

criterion_group!(benches, durability);
criterion_main!(benches);
