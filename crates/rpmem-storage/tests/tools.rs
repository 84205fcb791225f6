//! Pools checked with external tools (pmempool, mount), in their own test
//! binary so their child processes cannot hold the locks of `pool.rs` tests.

mod common;

use std::fs;
use std::process::Command;

use common::{load, write_set, M};
use rpmem_storage::header::{checksum, PoolHeader, FEAT_CKSUM_2K, HEADER_LEN};
use rpmem_storage::{ErrorKind, Pool};

#[test]
fn pmempool_pools_verify_with_our_checksum() {
    if Command::new("pmempool").arg("--version").output().is_err() {
        eprintln!("skipped: pmempool is not installed");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let pool = d.path().join("obj.pool");
    let out = Command::new("pmempool")
        .args(["create", "--layout=x", "obj"])
        .arg(&pool)
        .args(["-s", "16M"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let b = fs::read(&pool).unwrap();
    let raw: &[u8; HEADER_LEN] = b[..HEADER_LEN].try_into().unwrap();
    let h = PoolHeader::from_bytes(raw).unwrap();
    assert_eq!(&h.signature, b"PMEMOBJ\0");
    assert_ne!(h.incompat & FEAT_CKSUM_2K, 0, "pmempool 1.12 sets CKSUM_2K");
    assert_eq!(
        u64::from_le_bytes(raw[4088..].try_into().unwrap()),
        checksum(raw, true)
    );
    // Our host arch flags are what PMDK wrote.
    assert_eq!(h.arch_flags, rpmem_storage::header::host_arch_flags());
    // And a header we write for the same fields reproduces PMDK's bytes.
    assert_eq!(&h.to_bytes()[..], &raw[..]);
    // A pool set naming the pmempool file opens, headers verified.
    let set = d.path().join("obj.set");
    fs::write(&set, format!("PMEMPOOLSET\n16M {}\n", pool.display())).unwrap();
    let p = Pool::open(&load(&set)).unwrap();
    let a = p.attr().unwrap();
    assert_eq!(&a.signature, b"PMEMOBJ\0");
    assert_eq!(a.uuid, h.uuid);
    assert_eq!(p.size(), 16 * M);
}

/// A small tmpfs mounted on a temporary directory, unmounted on drop.
struct SmallFs(tempfile::TempDir);

impl SmallFs {
    fn mount(size: &str) -> Option<SmallFs> {
        let d = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(d.path())
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false);
        ok.then_some(SmallFs(d))
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

#[test]
fn no_space_surfaces_as_enospc_and_cleans_up() {
    let Some(fs_) = SmallFs::mount("3M") else {
        eprintln!("skipped: cannot mount a small tmpfs (needs root)");
        return;
    };
    let (set, parts) = write_set(fs_.0.path(), "q.set", "NOHDRS", &[2 * M, 2 * M]);
    let e = Pool::create(&load(&set), None).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::NoSpace, "{e}");
    assert_eq!(e.errno(), libc::ENOSPC);
    assert!(!parts[0].exists() && !parts[1].exists());
}

#[test]
fn a_fifo_is_refused_as_a_pool_set_without_blocking() {
    let d = tempfile::tempdir().unwrap();
    let fifo = d.path().join("fifo.set");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    // Opening a FIFO for reading waits for a writer: run the load in a
    // thread so that a regression fails the test instead of hanging it.
    let (tx, rx) = std::sync::mpsc::channel();
    let path = fifo.clone();
    std::thread::spawn(move || {
        let _ = tx.send(rpmem_storage::PoolSet::load(&path).map(|_| ()));
    });
    let e = rx
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("loading a FIFO as a pool set blocked")
        .unwrap_err();
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
    assert!(e.to_string().contains("fifo.set"), "{e}");
    // A FIFO named as a part is refused at open, also without blocking.
    let part = d.path().join("fifo.part");
    assert!(Command::new("mkfifo")
        .arg(&part)
        .status()
        .unwrap()
        .success());
    let set = d.path().join("p.set");
    fs::write(
        &set,
        format!("PMEMPOOLSET\nOPTION NOHDRS\n2M {}\n", part.display()),
    )
    .unwrap();
    let e = Pool::open(&load(&set)).err().unwrap();
    assert_eq!(e.kind(), ErrorKind::BadConfig, "{e}");
    assert!(e.to_string().contains("not a regular file"), "{e}");
}
