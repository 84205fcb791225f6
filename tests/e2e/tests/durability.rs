//! Durability failures on the target reach the initiator: the pool lives on
//! a FUSE file system (`tests/c/faultfs.c`) whose fsync fails with EIO while
//! a control file exists, so the daemon's `msync(MS_SYNC)` fails for real.
//! Every such failure must come back as an error from the next persist,
//! drain or deep persist on that lane, or from the close of the pool.
//!
//! Needs root, `/dev/fuse`, `cc` and libfuse3 (`pkg-config fuse3`); skips
//! without them (CI installs them).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use e2e::{have_tool, is_root, workspace_root, LocalTarget};
use rpmem::{PersistFlags, Pool};

const MIB: usize = 1024 * 1024;
const SIZE: usize = 8 * MIB;
/// `Status::Fatal` as the library reports it.
const EREMOTEIO: i32 = 121;

/// A mounted faultfs, unmounted on drop.
struct FaultFs {
    dir: tempfile::TempDir,
    child: Child,
}

impl FaultFs {
    fn mount() -> Option<FaultFs> {
        if !is_root() || !Path::new("/dev/fuse").exists() {
            eprintln!("skipping: needs root and /dev/fuse");
            return None;
        }
        if !have_tool("cc") || !have_tool("pkg-config") {
            return None;
        }
        let flags = Command::new("pkg-config")
            .args(["--cflags", "--libs", "fuse3"])
            .output()
            .expect("run pkg-config");
        if !flags.status.success() {
            assert!(
                std::env::var_os("CI").is_none(),
                "libfuse3-dev is not installed: .ci/run must install it"
            );
            eprintln!("skipping: needs libfuse3 (pkg-config fuse3)");
            return None;
        }
        let dir = tempfile::Builder::new()
            .prefix("rpmem-faultfs-")
            .tempdir()
            .expect("tempdir");
        let exe = dir.path().join("faultfs");
        let cc = Command::new("cc")
            .args(["-Wall", "-Werror", "-O1"])
            .arg(workspace_root().join("tests/c/faultfs.c"))
            .args(String::from_utf8_lossy(&flags.stdout).split_whitespace())
            .arg("-o")
            .arg(&exe)
            .output()
            .expect("run cc");
        assert!(
            cc.status.success(),
            "compiling faultfs: {}",
            String::from_utf8_lossy(&cc.stderr)
        );
        for d in ["back", "mnt"] {
            fs::create_dir(dir.path().join(d)).unwrap();
        }
        let child = Command::new(&exe)
            .arg(dir.path().join("back"))
            .arg(dir.path().join("fail"))
            .arg(dir.path().join("mnt"))
            .stdin(Stdio::null())
            .spawn()
            .expect("start faultfs");
        let fs = FaultFs { dir, child };
        let deadline = Instant::now() + Duration::from_secs(20);
        while !fs.mounted() {
            assert!(Instant::now() < deadline, "faultfs did not mount");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(fs)
    }

    fn mnt(&self) -> PathBuf {
        self.dir.path().join("mnt")
    }

    fn mounted(&self) -> bool {
        let mnt = self.mnt();
        fs::read_to_string("/proc/self/mountinfo")
            .unwrap()
            .lines()
            .any(|l| l.split(' ').nth(4) == Some(mnt.to_str().unwrap()))
    }

    /// From now on fsync (and so msync) on the file system fails, or works.
    fn failing(&self, on: bool) {
        let control = self.dir.path().join("fail");
        if on {
            fs::write(control, b"").unwrap();
        } else {
            fs::remove_file(control).unwrap();
        }
    }

    /// The bytes of a file in the backing directory.
    fn backing(&self, name: &str) -> Vec<u8> {
        fs::read(self.dir.path().join("back").join(name)).unwrap()
    }
}

impl Drop for FaultFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.mnt()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = Command::new("umount").arg("-l").arg(self.mnt()).status();
    }
}

/// A pool of one part on the faultfs, without headers.
fn pool_on(t: &LocalTarget, fs: &FaultFs, name: &str, nlanes: u32) -> Pool {
    t.write_poolset(
        &format!("{name}.set"),
        &format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n8M {}\n",
            fs.mnt().join(format!("{name}.part")).display()
        ),
    );
    // A lane drains on its own after this many flushes; more than the
    // daemon's limit of pending ranges lets that limit be reached.
    let cfg = rpmem::Config {
        work_queue_size: 8192,
        ..t.config()
    };
    Pool::create(
        &cfg,
        "localhost",
        &format!("{name}.set"),
        SIZE,
        nlanes,
        None,
    )
    .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()))
}

fn assert_not_durable(r: rpmem::Result<()>, what: &str, t: &LocalTarget) {
    let e = r.expect_err(what);
    assert_eq!(e.errno(), EREMOTEIO, "{what}: {e}; log: {}", t.log());
    assert!(e.to_string().contains("durable"), "{what}: {e}");
}

#[test]
fn failed_msync_fails_persist_drain_and_deep_persist() {
    let Some(fs) = FaultFs::mount() else { return };
    let t = LocalTarget::new();
    let mut pool = pool_on(&t, &fs, "p", 2);
    pool.region_mut()[..4].copy_from_slice(b"good");
    pool.persist(0, 4, 0, PersistFlags::empty()).unwrap();
    fs.failing(true);
    pool.region_mut()[4096..4100].copy_from_slice(b"lost");
    assert_not_durable(
        pool.persist(4096, 4, 0, PersistFlags::empty()),
        "persist",
        &t,
    );
    pool.flush(8192, 4, 1, PersistFlags::empty()).unwrap();
    assert_not_durable(pool.drain(1), "drain", &t);
    assert_not_durable(pool.deep_persist(2 * MIB, 4, 1), "deep persist", &t);
    fs.failing(false);
    // Every failure was reported; the close has nothing left to report.
    let r = pool.close();
    assert!(r.is_ok(), "{r:?}; log: {}", t.log());
    assert_eq!(&fs.backing("p.part")[..4], b"good");
}

/// Flushes left pending when the pool is closed, and flushes whose
/// durability failed while they piled up (a lane makes them durable on its
/// own at 4096 pending ranges) with no drain after it: the close reports it.
#[test]
fn close_reports_durability_failures_no_drain_reported() {
    let Some(fs) = FaultFs::mount() else { return };
    let t = LocalTarget::new();

    // Pending at close, and the sync at close fails.
    let mut pool = pool_on(&t, &fs, "c1", 1);
    pool.region_mut()[4096..4100].copy_from_slice(b"pend");
    pool.flush(4096, 4, 0, PersistFlags::empty()).unwrap();
    fs.failing(true);
    assert_not_durable(pool.close(), "close with a flush pending", &t);
    fs.failing(false);

    // Failed while flushes piled up; the sync at close works, yet the close
    // must still say the data may not be durable.
    let failed_passes = || t.log().matches("making data durable failed").count();
    let before = failed_passes();
    let mut pool = pool_on(&t, &fs, "c2", 1);
    for i in 0..4096 {
        pool.region_mut()[i * 8] = 1;
    }
    fs.failing(true);
    for i in 0..4096 {
        pool.flush(i * 8, 1, 0, PersistFlags::empty()).unwrap();
    }
    // The lane's own durability pass failed: wait until it has run.
    let deadline = Instant::now() + Duration::from_secs(20);
    while failed_passes() == before {
        assert!(
            Instant::now() < deadline,
            "no failed pass; log: {}",
            t.log()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    fs.failing(false);
    assert_not_durable(pool.close(), "close after an unreported failure", &t);

    // A clean session on the same file system closes cleanly.
    let mut pool = pool_on(&t, &fs, "c3", 1);
    pool.region_mut()[4096] = 9;
    pool.flush(4096, 1, 0, PersistFlags::empty()).unwrap();
    pool.close().unwrap();
    assert_eq!(fs.backing("c3.part")[4096], 9);
}
