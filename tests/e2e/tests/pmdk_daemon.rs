//! Our librpmem against PMDK 1.12.1's rpmemd: the library finds out from the
//! daemon's answer that it is PMDK's, starts it again and speaks PMDK's
//! protocol, its lanes over libfabric's sockets provider.
//!
//! Skipped, with a message, where PMDK 1.12.1 is not available (see
//! `e2e::pmdk::prefix`).

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use e2e::faults::{persist_until_error, signal, wait_for_acks};
use e2e::pmdk::{one_part_set, outcome as text};
use e2e::{compile_c_with, pmdk, prefix, run_with_timeout, workspace_root, LocalTarget};
use rpmem::Pool;

const MIB: u64 = 1024 * 1024;

/// Runs a C program of tests/c built on OUR librpmem against PMDK's rpmemd
/// serving `t` (`daemon`: what goes before and after its command line, e.g.
/// an environment setting and options), with the library logging at level 2.
fn run_ours(
    pmdk: &Path,
    t: &LocalTarget,
    src: &str,
    cflags: &[&str],
    args: &[&str],
    daemon: (&str, &str),
) -> Output {
    let prog = compile_c_with(
        &workspace_root().join("tests/c").join(src),
        prefix(),
        cflags,
    );
    let mut env = pmdk::daemon_env(pmdk, t);
    env[1].1 = format!("{}{}{}", daemon.0, env[1].1, daemon.1);
    run_with_timeout(
        Command::new(&prog)
            .args(args)
            .env_remove("LD_LIBRARY_PATH")
            .env("RPMEM_LOG_LEVEL", "2")
            .envs(env),
        Duration::from_secs(300),
    )
}

/// The library said, at log level 2, that the session spoke PMDK's protocol.
fn assert_pmdk_session(o: &Output, t: &LocalTarget) {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains(
            "protocol PMDK 1.12 (the target runs PMDK's rpmemd), libfabric provider sockets"
        ),
        "{}",
        text(o, t)
    );
    assert!(
        t.log().contains("in-band connection established"),
        "{}",
        text(o, t)
    );
}

#[test]
fn our_librpmem_runs_the_manual_page_example_through_pmdks_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "pool.set", "OPTION NOHDRS\n", 32 * MIB);
    let o = run_ours(
        pmdk,
        &t,
        "example.c",
        &[],
        &["localhost", "pool.set"],
        ("", ""),
    );
    assert!(o.status.success(), "{}", text(&o, &t));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("example: ok"),
        "{}",
        text(&o, &t)
    );
    assert_pmdk_session(&o, &t);
    assert!(fs::metadata(&part).unwrap().len() >= 32 * MIB);
}

#[test]
fn our_librpmem_creates_sets_attributes_reopens_and_removes_with_pmdks_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "a.set", "", 16 * MIB);
    // create (attributes A, 4 lanes), persist 256 bytes at 4096, set_attr
    // (B), close; open must return B and read back the bytes; close.
    let o = run_ours(
        pmdk,
        &t,
        "pmdk_session.c",
        &[],
        &["localhost", "a.set", "keep"],
        ("", ""),
    );
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    assert_pmdk_session(&o, &t);
    let bytes = fs::read(&part).unwrap();
    let want: Vec<u8> = (0..256u32).map(|i| 0xa0 ^ i as u8).collect();
    assert_eq!(&bytes[4096..4096 + 256], &want[..]);
    assert_eq!(
        &bytes[..8],
        b"CAPTURE\0",
        "set_attr's attributes in the header"
    );

    // Creating again: PMDK's rpmemd refuses, and the errno is EEXIST.
    let o = run_ours(
        pmdk,
        &t,
        "pmdk_session.c",
        &[],
        &["localhost", "a.set", "create"],
        ("", ""),
    );
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("(errno 17)"),
        "{}",
        text(&o, &t)
    );

    // The whole cycle, ending with rpmem_remove (PMDK's `rpmemd --remove`).
    fs::remove_file(&part).unwrap();
    let o = run_ours(
        pmdk,
        &t,
        "pmdk_session.c",
        &[],
        &["localhost", "a.set"],
        ("", ""),
    );
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    assert!(!part.exists(), "rpmem_remove removed the part");
}

/// Persist (flags 0 and RELAXED), flush + drain, deep_persist and read on
/// four threads, one lane each; the part file must equal the local pool.
fn four_lanes(daemon: (&str, &str), method_line: &str) {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "lanes.set", "", 8 * MIB);
    let image = t.dir().join("lanes.image");
    let o = run_ours(
        pmdk,
        &t,
        "lanes.c",
        &["-DROUNDS=40"],
        &["localhost", "lanes.set", image.to_str().unwrap()],
        daemon,
    );
    assert!(o.status.success(), "{}", text(&o, &t));
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("lanes: ok"),
        "{}",
        text(&o, &t)
    );
    assert_pmdk_session(&o, &t);
    assert!(t.log().contains(method_line), "{}", text(&o, &t));
    pmdk::assert_part_matches_image(&part, &image);
}

#[test]
fn our_librpmem_on_four_lanes_through_pmdks_rpmemd_lands_byte_for_byte() {
    four_lanes(
        ("", ""),
        "persist method: General Purpose Server Persistency Method",
    );
}

/// The same with PMDK's rpmemd in appliance mode (which it grants only on
/// persistent memory: PMEM_IS_PMEM_FORCE makes the tmpfs pool count as it):
/// writes made durable by reads after them, never by the daemon's CPU.
#[test]
fn our_librpmem_on_four_lanes_with_pmdks_rpmemd_in_appliance_mode() {
    four_lanes(
        ("PMEM_IS_PMEM_FORCE=1 ", " --persist-apm"),
        "persist method: Appliance Persistency Method",
    );
}

#[test]
fn pmdks_rpmemd_killed_mid_persist_fails_every_lane_within_rpmem_timeout_ms() {
    const LANES: u32 = 4;
    const BLOCK: usize = 4096;
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "death.set", "OPTION NOHDRS\n", 16 * MIB);
    let mut cfg = pmdk::daemon_config(pmdk, &t);
    cfg.io_timeout = Duration::from_millis(2000);
    let size = 16 * MIB as usize;
    let mut pool = Pool::create(&cfg, "localhost", "death.set", size, LANES, None)
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    assert_eq!(pool.nlanes(), LANES);
    for (i, b) in pool.region_mut().iter_mut().enumerate() {
        *b = (i / BLOCK) as u8 ^ (i % 251) as u8;
    }
    let pids = pmdk::rpmemd_pids(pmdk, &t);
    assert_eq!(pids.len(), 1, "one PMDK rpmemd serves the pool: {pids:?}");
    let pool = Arc::new(pool);
    let stripe = size / LANES as usize;
    let (acks, rx) = persist_until_error(&pool, BLOCK);
    wait_for_acks(&acks, 20);
    let killed = Instant::now();
    signal(pids[0], "KILL");
    for _ in 0..LANES {
        let (lane, at, errno, msg) = rx
            .recv_timeout(cfg.io_timeout * 3)
            .expect("a lane's persist hung after PMDK's rpmemd died");
        let took = at.duration_since(killed);
        eprintln!("lane {lane}: error after {took:?}: errno {errno}: {msg}");
        assert_eq!(errno, libc::ECONNRESET, "lane {lane}: {msg}");
        assert!(
            took <= cfg.io_timeout + Duration::from_millis(500),
            "lane {lane} failed {took:?} after the kill: {msg}"
        );
    }
    // What was acknowledged before the kill is in the part file.
    let data = fs::read(&part).unwrap();
    for lane in 0..LANES as usize {
        let n = acks[lane].load(Ordering::SeqCst).min(stripe / BLOCK);
        let from = lane * stripe;
        let to = from + n * BLOCK;
        let bad = (from..to).find(|&i| data[i] != ((i / BLOCK) as u8 ^ (i % 251) as u8));
        assert!(bad.is_none(), "lane {lane}: acknowledged byte {bad:?} lost");
    }
}

/// An ssh stand-in that counts its runs in `count` before running
/// rpmem-ssh-local.
fn counting_ssh(dir: &Path, count: &Path) -> String {
    let script = dir.join("counting-ssh");
    fs::write(
        &script,
        format!(
            "#!/bin/sh\necho run >> '{}'\nexec '{}' \"$@\"\n",
            count.display(),
            e2e::bin("rpmem-ssh-local").display()
        ),
    )
    .unwrap();
    fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    script.display().to_string()
}

/// Our daemon costs one ssh connection per session, PMDK's two (the first
/// one tells which daemon answers), and the library logs which protocol.
#[test]
fn only_a_pmdk_daemon_costs_a_second_ssh_connection() {
    let Some(pmdk) = pmdk::prefix() else { return };
    for (theirs, runs) in [(false, 1), (true, 2)] {
        let t = LocalTarget::new();
        one_part_set(&t, "c.set", "OPTION NOHDRS\n", 8 * MIB);
        let count = t.dir().join("ssh-runs");
        let mut cfg = if theirs {
            pmdk::daemon_config(pmdk, &t)
        } else {
            t.config()
        };
        cfg.ssh = counting_ssh(t.dir(), &count);
        let pool = Pool::create(&cfg, "localhost", "c.set", 8 * MIB as usize, 2, None)
            .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
        pool.close().unwrap();
        let n = fs::read_to_string(&count).unwrap().lines().count();
        assert_eq!(n, runs, "PMDK's rpmemd: {theirs}; log: {}", t.log());
    }
}
