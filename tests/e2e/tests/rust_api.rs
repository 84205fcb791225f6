//! The idiomatic Rust API against a real daemon: the builder and its
//! environment defaults, owned lanes driving disjoint chunks from several
//! threads at once, typed flags, and errors with their io::ErrorKind.

use std::io::ErrorKind;
use std::time::Duration;

use e2e::{bin, LocalTarget};
use rpmem::{Chunk, Lane, PersistFlags, Pool, RemoveFlags, Transport};

const MIB: usize = 1 << 20;

/// A builder that reaches `t` through its settings, not the environment.
fn builder(t: &LocalTarget, set: &str) -> rpmem::PoolBuilder {
    Pool::builder("localhost", set)
        .ssh(bin("rpmem-ssh-local").display().to_string())
        .remote_command(t.rpmem_cmd())
}

#[test]
fn lanes_and_chunks_are_send() {
    fn send<T: Send>() {}
    send::<Lane<'static>>();
    send::<Chunk<'static>>();
}

#[test]
fn threads_write_and_persist_disjoint_chunks_at_once() {
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("split", "8M");
    let mut pool = builder(&t, "split.set")
        .size(8 * MIB)
        .lanes(4)
        .create(None)
        .unwrap();
    assert_eq!(pool.nlanes(), 4);
    let (region, lanes) = pool.split();
    assert_eq!((region.offset(), region.len()), (0, 8 * MIB));
    let per_lane = region.len() / lanes.len();
    std::thread::scope(|s| {
        let workers: Vec<_> = region
            .chunks(per_lane)
            .zip(lanes)
            .map(|(chunk, mut lane)| {
                s.spawn(move || -> rpmem::Result<()> {
                    let id = lane.index() as u8 + 1;
                    // Four pieces, each written then replicated while the
                    // other threads do the same with theirs.
                    let base = chunk.offset();
                    for (k, mut piece) in chunk.chunks(per_lane / 4).enumerate() {
                        assert_eq!(piece.offset(), base + k * per_lane / 4);
                        piece.fill(id.wrapping_mul(16) + k as u8);
                        match k {
                            0 => lane.persist(&piece, .., PersistFlags::empty())?,
                            1 => lane.persist(&piece, .., PersistFlags::RELAXED)?,
                            2 => lane.deep_persist(&piece, ..)?,
                            _ => {
                                let half = piece.len() / 2;
                                let mut f = lane.flush(&piece, ..half, PersistFlags::empty())?;
                                f.flush(&piece, half.., PersistFlags::RELAXED)?;
                                f.drain()?;
                            }
                        }
                    }
                    let mut back = vec![0u8; 16];
                    lane.read(&mut back, base)?;
                    assert_eq!(back, vec![id.wrapping_mul(16); 16]);
                    Ok(())
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap().unwrap();
        }
    });
    pool.close().unwrap();
    let bytes = std::fs::read(&part).unwrap();
    for lane in 0..4u8 {
        for k in 0..4u8 {
            let at = lane as usize * per_lane + k as usize * per_lane / 4;
            let want = (lane + 1).wrapping_mul(16) + k;
            let got = &bytes[at..at + per_lane / 4];
            assert!(got.iter().all(|b| *b == want), "lane {lane} piece {k}");
        }
    }
}

#[test]
fn lanes_refuse_foreign_chunks_and_bad_ranges() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("a", "4M");
    t.write_nohdrs_set("b", "4M");
    let mut a = builder(&t, "a.set").size(4 * MIB).create(None).unwrap();
    let mut b = builder(&t, "b.set").size(4 * MIB).create(None).unwrap();
    {
        let (_, mut lanes_a) = a.split();
        let (chunk_b, _) = b.split();
        let e = lanes_a[0]
            .persist(&chunk_b, ..8, PersistFlags::empty())
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert!(e.to_string().contains("another pool"), "{e}");
    }
    let (region, mut lanes) = a.split();
    let (small, _rest) = region.split_at(4096);
    for e in [
        lanes[0].persist(&small, 0..4097, PersistFlags::empty()),
        lanes[0]
            .flush(&small, 4096..4097, PersistFlags::empty())
            .map(drop),
        lanes[0].persist(&small, .., PersistFlags::from_bits_retain(0x10)),
    ] {
        let e = e.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{e}");
        assert_eq!(e.errno(), libc::EINVAL);
    }
    // Refusals leave the lane usable.
    lanes[0].persist(&small, .., PersistFlags::empty()).unwrap();
    drop(lanes);
    a.close().unwrap();
    b.close().unwrap();
}

#[test]
fn builder_starts_from_the_environment_and_overrides_it() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("env", "4M");
    // No settings: RPMEM_SSH and RPMEM_CMD come from the environment, read
    // when the builder is made.
    let from_env = temp_env(&t.env(), || Pool::builder("localhost", "env.set"));
    assert_eq!(from_env.get_config().cmd, t.rpmem_cmd());
    let pool = from_env.size(4 * MIB).lanes(2).create(None).unwrap();
    assert_eq!((pool.size(), pool.nlanes()), (4 * MIB, 2));
    pool.close().unwrap();

    // A setting wins over the environment.
    let bogus = t.dir().join("no-such-ssh");
    let e = temp_env(&t.env(), || {
        Pool::builder("localhost", "env.set").ssh(bogus.display().to_string())
    })
    .size(4 * MIB)
    .open()
    .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::ConnectionReset, "{e}");
    assert!(e.to_string().contains("no-such-ssh"), "{e}");

    let b = builder(&t, "env.set").timeout(Duration::from_millis(1500));
    assert_eq!(b.get_config().io_timeout, Duration::from_millis(1500));
}

#[test]
fn the_builder_chooses_the_transport() {
    if !e2e::Transport::Fabric("tcp").available() {
        return;
    }
    let t = LocalTarget::new();
    t.write_nohdrs_set("tr", "4M");
    // libfabric with a provider nobody offers: refused, naming it.
    let fabric = builder(&t, "tr.set")
        .size(4 * MIB)
        .transport(Transport::Fabric)
        .fabric_provider("no-such-provider");
    let e = fabric.create(None).unwrap_err();
    assert_eq!(e.errno(), libc::ENOMEDIUM, "{e}");
    assert!(e.to_string().contains("no-such-provider"), "{e}");
    // A later choice of our TCP wins.
    let mut pool = fabric
        .clone()
        .transport(Transport::Tcp)
        .create(None)
        .unwrap();
    pool.region_mut()[..3].copy_from_slice(b"tcp");
    pool.persist(0, 3, 0, PersistFlags::empty()).unwrap();
    pool.close().unwrap();
    assert!(!t.log().contains("transport fabric"), "{}", t.log());

    // And libfabric's tcp provider, named by the builder.
    let mut pool = fabric
        .transport(Transport::Fabric)
        .fabric_provider("tcp")
        .open()
        .unwrap();
    let mut back = [0u8; 3];
    pool.read(&mut back, 0, 0).unwrap();
    assert_eq!(&back, b"tcp");
    pool.region_mut()[3..9].copy_from_slice(b"fabric");
    pool.persist(3, 6, 0, PersistFlags::empty()).unwrap();
    pool.close().unwrap();
    assert!(
        t.log().contains("transport fabric, provider tcp"),
        "{}",
        t.log()
    );
    let part = std::fs::read(t.dir().join("tr.part")).unwrap();
    assert_eq!(&part[..9], b"tcpfabric");
}

/// Runs `f` with `vars` set, then removes them again. The variables are only
/// read by builders made inside `f`, and this test binary sets them nowhere
/// else.
fn temp_env<T>(vars: &[(String, String)], f: impl FnOnce() -> T) -> T {
    for (k, v) in vars {
        std::env::set_var(k, v);
    }
    let r = f();
    for (k, _) in vars {
        std::env::remove_var(k);
    }
    r
}

#[test]
fn errors_carry_their_kind_and_errno() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("k", "4M");
    let missing = builder(&t, "missing.set").size(4 * MIB).open().unwrap_err();
    assert_eq!(
        (missing.kind(), missing.errno()),
        (ErrorKind::NotFound, libc::ENOENT)
    );
    let pool = builder(&t, "k.set").size(4 * MIB).create(None).unwrap();
    let busy = builder(&t, "k.set").size(4 * MIB).open().unwrap_err();
    assert_eq!(
        (busy.kind(), busy.errno()),
        (ErrorKind::ResourceBusy, libc::EBUSY)
    );
    pool.close().unwrap();
    let exists = builder(&t, "k.set").size(4 * MIB).create(None).unwrap_err();
    assert_eq!(
        (exists.kind(), exists.errno()),
        (ErrorKind::AlreadyExists, libc::EEXIST)
    );

    // Into std::io::Error, for `?` in io code: same kind, same message, and
    // the errno back through the inner error.
    let message = missing.to_string();
    let io: std::io::Error = missing.into();
    assert_eq!(io.kind(), ErrorKind::NotFound);
    assert_eq!(io.to_string(), message);
    let inner = io
        .get_ref()
        .unwrap()
        .downcast_ref::<rpmem::Error>()
        .unwrap();
    assert_eq!(inner.errno(), libc::ENOENT);

    let cfg = t.config();
    rpmem::remove(&cfg, "localhost", "k.set", RemoveFlags::POOL_SET).unwrap();
    assert!(!t.dir().join("k.set").exists());
}
