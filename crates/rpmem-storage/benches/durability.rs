//! Cost of the daemon's durability path on a real file: the 8-byte-atomic
//! write, and one msync pass for many pending ranges versus one per range
//! (what a drain after N flushes saves).

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
    // tmpfs when there is one, like the bench's pools; a disk otherwise.
    let shm = Path::new("/dev/shm");
    if shm.is_dir() {
        tempfile::tempdir_in(shm).unwrap()
    } else {
        tempfile::tempdir().unwrap()
    }
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
    c.bench_function("persist 16 ranges, one pass", |b| {
        b.iter_batched_ref(
            || ranges.clone(),
            |r| p.persist(r, false).unwrap(),
            BatchSize::SmallInput,
        )
    });
    c.bench_function("persist 16 ranges, one call each", |b| {
        b.iter(|| {
            for r in &ranges {
                p.persist(&mut [*r], false).unwrap();
            }
        })
    });
}

criterion_group!(benches, durability);
criterion_main!(benches);
