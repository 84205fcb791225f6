//! Through a real OpenSSH server on loopback: the ssh command line the engine
//! builds, the daemon learning its address from sshd's `SSH_CONNECTION`, and a
//! pool's whole life (create, persist, close, reopen, read, remove).
//!
//! Skipped (with a message) unless running as root with /usr/sbin/sshd.

use std::fs;
use std::process::Command;
use std::time::Duration;

use e2e::{bin, run_with_timeout, LocalTarget, Sshd};
use rpmem::{Config, PersistFlags, Pool, RemoveFlags};

const MIB: usize = 1024 * 1024;

#[test]
fn sshd_runs_commands_given_in_librpmems_form() {
    let Some(sshd) = Sshd::start() else { return };
    let port = sshd.port().to_string();
    let out = run_with_timeout(
        Command::new(sshd.ssh_wrapper()).args([
            "-p",
            &port,
            "-T",
            "-4",
            "-oBatchMode=yes",
            "127.0.0.1",
            "echo \"conn=$SSH_CONNECTION\"; exit 3",
        ]),
        Duration::from_secs(30),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{out:?}\nsshd log:\n{}",
        sshd.log()
    );
    let conn = stdout
        .trim()
        .strip_prefix("conn=")
        .unwrap_or_else(|| panic!("unexpected output {stdout:?}"));
    let fields: Vec<&str> = conn.split_whitespace().collect();
    assert_eq!(fields.len(), 4, "{conn}");
    assert_eq!(fields[2], "127.0.0.1");
    assert_eq!(fields[3], port);
}

#[test]
fn pool_lifecycle_over_real_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("ssh", "8M");
    let cfg = Config {
        ssh: sshd.ssh_wrapper().display().to_string(),
        cmd: t.rpmem_cmd(),
        ..Config::default()
    };
    let target = sshd.target();
    let ctx = |what: &str, e: &dyn std::fmt::Display| {
        format!(
            "{what}: {e}\nrpmemd log:\n{}\nsshd log:\n{}",
            t.log(),
            sshd.log()
        )
    };

    let mut pool = Pool::create(&cfg, &target, "ssh.set", 8 * MIB, 2, None)
        .unwrap_or_else(|e| panic!("{}", ctx("create", &e)));
    assert!(!pool.has_header());
    assert!(pool.nlanes() >= 1);
    let pattern: Vec<u8> = (0..64 * 1024).map(|i| (i * 7 % 251) as u8).collect();
    pool.region_mut()[..8].copy_from_slice(b"over-ssh");
    pool.region_mut()[MIB..MIB + pattern.len()].copy_from_slice(&pattern);
    pool.persist(0, 8, 0, PersistFlags::empty())
        .unwrap_or_else(|e| panic!("{}", ctx("persist", &e)));
    pool.persist(MIB, pattern.len(), pool.nlanes() - 1, PersistFlags::empty())
        .unwrap_or_else(|e| panic!("{}", ctx("persist", &e)));
    pool.close()
        .unwrap_or_else(|e| panic!("{}", ctx("close", &e)));

    // The bytes are in the part file on the target.
    let data = fs::read(&part).expect("read part file");
    assert_eq!(data.len(), 8 * MIB);
    assert_eq!(&data[..8], b"over-ssh");
    assert_eq!(&data[MIB..MIB + pattern.len()], &pattern[..]);

    // Reopen and read back through the remote.
    let (pool, attr) = Pool::open(&cfg, &target, "ssh.set", 8 * MIB, 1)
        .unwrap_or_else(|e| panic!("{}", ctx("open", &e)));
    assert!(attr.is_zero());
    let mut buf = vec![0u8; pattern.len()];
    pool.read(&mut buf, MIB, 0)
        .unwrap_or_else(|e| panic!("{}", ctx("read", &e)));
    assert_eq!(buf, pattern);
    let mut head = [0u8; 8];
    pool.read(&mut head, 0, 0).unwrap();
    assert_eq!(&head, b"over-ssh");
    pool.close().unwrap();

    rpmem::remove(&cfg, &target, "ssh.set", RemoveFlags::default())
        .unwrap_or_else(|e| panic!("{}", ctx("remove", &e)));
    assert!(!part.exists(), "part file survived remove");
    assert!(
        t.dir().join("ssh.set").exists(),
        "set file removed without POOL_SET"
    );
}

#[test]
fn cli_reaches_target_over_real_ssh() {
    let Some(sshd) = Sshd::start() else { return };
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("cli", "4M");
    let rpmem = |args: &[&str]| {
        run_with_timeout(
            Command::new(bin("rpmem"))
                .args(args)
                .env("RPMEM_SSH", sshd.ssh_wrapper())
                .env("RPMEM_CMD", t.rpmem_cmd()),
            Duration::from_secs(60),
        )
    };
    let target = sshd.target();
    let out = rpmem(&["create", &target, "cli.set", "--no-hdrs", "--size", "4M"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    assert!(part.exists());
    let out = rpmem(&["info", &target, "cli.set", "--json"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    let info = String::from_utf8_lossy(&out.stdout);
    assert!(info.contains("\"has_header\": false"), "{info}");
    let out = rpmem(&["rm", &target, "cli.set", "--pool-set"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    assert!(!part.exists());
    assert!(!t.dir().join("cli.set").exists());
}
