//! The installed `rpmem` command against a real daemon through rpmem-ssh-local.

use std::process::{Command, Output};
use std::time::Duration;

use e2e::{bin, run_rpmem, run_with_timeout, LocalTarget};

const ENOENT: i32 = 2;
const EEXIST: i32 = 17;
const EINVAL: i32 = 22;

fn rpmem(t: Option<&LocalTarget>, args: &[&str]) -> Output {
    run_rpmem(t, args, &[])
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// The error output is exactly one line, `rpmem: ...`.
fn assert_one_line_error(out: &Output) -> String {
    let err = text(&out.stderr);
    assert!(err.starts_with("rpmem: "), "{out:?}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err:?}");
    assert!(!err.contains("panicked"), "{err}");
    err
}

#[test]
fn demo_succeeds_and_verifies() {
    let out = rpmem(None, &["demo"]);
    let stdout = text(&out.stdout);
    assert!(
        out.status.success(),
        "demo failed: {out:?}\nstdout:\n{stdout}"
    );
    assert!(
        stdout.contains("OK: all 33554432 bytes read back match what was persisted"),
        "{stdout}"
    );
    assert!(stdout.contains("part file on the target holds the same bytes"));
    assert!(stdout.contains("demo finished: OK"), "{stdout}");
}

#[test]
fn demo_with_other_size_and_lanes() {
    let out = rpmem(None, &["demo", "--size", "8M", "--lanes", "2"]);
    let stdout = text(&out.stdout);
    assert!(out.status.success(), "{out:?}\n{stdout}");
    assert!(stdout.contains("OK: all 8388608 bytes"), "{stdout}");
}

#[test]
fn info_and_rm_of_a_missing_pool_are_enoent() {
    let t = LocalTarget::new();
    for cmd in ["info", "rm"] {
        let out = rpmem(Some(&t), &[cmd, "localhost", "nosuch.set"]);
        assert_eq!(
            out.status.code(),
            Some(ENOENT),
            "{cmd}: {out:?}\nlog:\n{}",
            t.log()
        );
        assert_one_line_error(&out);
    }
}

#[test]
fn create_info_rm_nohdrs() {
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("a", "4M");
    let out = run_rpmem(
        Some(&t),
        "create localhost a.set --no-hdrs --size 4M --lanes 2".split(' '),
        &[],
    );
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    assert!(text(&out.stdout).contains("created"));
    assert_eq!(std::fs::metadata(&part).unwrap().len(), 4 << 20);

    // Creating it again: EEXIST.
    let out = rpmem(Some(&t), &["create", "localhost", "a.set", "--no-hdrs"]);
    assert_eq!(out.status.code(), Some(EEXIST), "{out:?}");
    assert_one_line_error(&out);

    let out = rpmem(Some(&t), &["info", "localhost", "a.set"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    let s = text(&out.stdout);
    assert!(s.contains("header        none"), "{s}");

    let out = rpmem(Some(&t), &["info", "localhost", "a.set", "--json"]);
    assert!(out.status.success(), "{out:?}");
    let s = text(&out.stdout);
    assert!(s.contains("\"has_header\": false"), "{s}");
    assert!(s.contains("\"attributes\": null"), "{s}");

    let out = rpmem(Some(&t), &["rm", "localhost", "a.set"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    assert!(!part.exists(), "part file survived rm");
    assert!(
        t.dir().join("a.set").exists(),
        "set file removed without --pool-set"
    );
}

#[test]
fn create_with_header_shows_attributes() {
    let t = LocalTarget::new();
    let part = t.dir().join("h.part");
    t.write_poolset("h.set", &format!("PMEMPOOLSET\n8M {}\n", part.display()));
    let out = rpmem(
        Some(&t),
        &["create", "localhost", "h.set", "--signature", "CLITEST"],
    );
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    let out = rpmem(Some(&t), &["info", "localhost", "h.set", "--json"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    let s = text(&out.stdout);
    assert!(s.contains("\"has_header\": true"), "{s}");
    assert!(s.contains("\"signature\": \"CLITEST\""), "{s}");
    assert!(s.contains("\"major\": 1"), "{s}");

    let out = rpmem(Some(&t), &["rm", "localhost", "h.set", "--pool-set"]);
    assert!(out.status.success(), "{out:?}\nlog:\n{}", t.log());
    assert!(!part.exists());
    assert!(!t.dir().join("h.set").exists());
}

#[test]
fn bad_arguments_are_one_line_einval() {
    for args in [
        &["create"][..],
        &["info", "localhost"],
        &["create", "h", "s", "--size", "3K"],
        &["create", "h", "s", "--size", "12Q"],
        &["create", "h", "s", "--lanes", "0"],
        &["bogus"],
    ] {
        let out = rpmem(None, args);
        assert_eq!(out.status.code(), Some(EINVAL), "{args:?}: {out:?}");
        assert_one_line_error(&out);
    }
}

#[test]
fn bad_target_is_one_line_einval() {
    let t = LocalTarget::new();
    let out = rpmem(Some(&t), &["info", "host:99999", "a.set"]);
    assert_eq!(out.status.code(), Some(EINVAL), "{out:?}");
    assert_one_line_error(&out);
}

#[test]
fn unreachable_daemon_is_one_line_error() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("x", "4M");
    let out = run_with_timeout(
        Command::new(bin("rpmem"))
            .args(["info", "localhost", "x.set"])
            .env("RPMEM_SSH", bin("rpmem-ssh-local"))
            .env("RPMEM_CMD", "/nonexistent/rpmemd"),
        Duration::from_secs(60),
    );
    assert!(!out.status.success(), "{out:?}");
    assert_one_line_error(&out);
}
