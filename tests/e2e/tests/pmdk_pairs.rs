//! PMDK 1.12.1's librpmem against our rpmemd: a C program linked to PMDK's
//! library runs through our daemon, which tells PMDK's protocol from ours by
//! the first bytes and serves its lanes over libfabric's sockets provider.
//!
//! Skipped, with a message, where PMDK 1.12.1 is not available (see
//! `e2e::pmdk::prefix`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{compile_c_with, pmdk, run_with_timeout, workspace_root, LocalTarget};

const MIB: u64 = 1024 * 1024;

/// Runs `tests/c/pmdk_session.c`, built on PMDK's librpmem, against our
/// daemon serving `t`.
fn session(pmdk: &Path, t: &LocalTarget, args: &[&str]) -> Output {
    let prog = compile_c_with(&workspace_root().join("tests/c/pmdk_session.c"), pmdk, &[]);
    run_with_timeout(
        Command::new(&prog)
            .arg("localhost")
            .args(args)
            .envs(pmdk::env(pmdk))
            .envs(t.env()),
        Duration::from_secs(120),
    )
}

fn text(o: &Output, t: &LocalTarget) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}\nrpmemd log:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        t.log()
    )
}

fn one_part_set(t: &LocalTarget, name: &str, size: u64) -> PathBuf {
    let part = t.dir().join(format!("{name}.part"));
    t.write_poolset(name, &format!("PMEMPOOLSET\n{size} {}\n", part.display()));
    part
}

#[test]
fn pmdk_librpmem_creates_persists_reads_and_removes_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "a.set", 16 * MIB);
    let o = session(pmdk, &t, &["a.set", "keep"]);
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    // What the program persisted at 4096, byte for byte in the part file.
    let bytes = fs::read(&part).unwrap();
    let want: Vec<u8> = (0..256u32).map(|i| 0xa0 ^ i as u8).collect();
    assert_eq!(&bytes[4096..4096 + 256], &want[..]);
    // The attributes set_attr stored are in the header: signature "CAPTURE".
    assert_eq!(&bytes[..8], b"CAPTURE\0");
    let log = t.log();
    assert!(log.contains("session of PMDK's librpmem"), "{log}");
    assert!(log.contains("sockets provider"), "{log}");

    // A second run creates again: refused with EEXIST, as PMDK's rpmemd does.
    let o = session(pmdk, &t, &["a.set", "create"]);
    assert!(!o.status.success(), "{}", text(&o, &t));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("(errno 17)"), "{}", text(&o, &t));
    assert!(err.contains("Pool already exists"), "{}", text(&o, &t));

    // The full cycle, ending with rpmem_remove through our `rpmemd -r`.
    fs::remove_file(&part).unwrap();
    let o = session(pmdk, &t, &["a.set"]);
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    assert!(!part.exists(), "rpmem_remove removed the part");
}

#[test]
fn pmdk_librpmem_gets_pmdks_errors_from_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let o = session(pmdk, &t, &["missing.set", "create"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("(errno 2)"),
        "{}",
        text(&o, &t)
    );
    // Smaller than the 8 MiB the program asks for.
    one_part_set(&t, "small.set", 4 * MIB);
    let o = session(pmdk, &t, &["small.set", "create"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("(errno 27)"),
        "{}",
        text(&o, &t)
    );
    assert!(!t.dir().join("small.set.part").exists());
}

/// Runs one of our C API programs, built on PMDK's librpmem, against our
/// daemon serving `t`; returns its stdout.
fn run_ours(pmdk: &Path, t: &LocalTarget, src: &str, cflags: &[&str], args: &[&str]) -> String {
    let prog = compile_c_with(&workspace_root().join("tests/c").join(src), pmdk, cflags);
    let o = run_with_timeout(
        Command::new(&prog)
            .args(args)
            .envs(pmdk::env(pmdk))
            .envs(t.env()),
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{src}: {}", text(&o, t));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn pmdk_librpmem_runs_the_manual_page_example_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = t.dir().join("pool.part");
    t.write_poolset(
        "pool.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n32M {}\n", part.display()),
    );
    let out = run_ours(pmdk, &t, "example.c", &[], &["localhost", "pool.set"]);
    assert!(out.contains("example: ok"), "{out}");
    assert!(fs::metadata(&part).unwrap().len() >= 32 * MIB);
}

#[test]
fn pmdk_librpmem_on_four_lanes_through_our_rpmemd_lands_byte_for_byte() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "lanes.set", 8 * MIB);
    let image = t.dir().join("lanes.image");
    // Persist (flags 0 and RELAXED), flush + drain, deep_persist and read on
    // four threads, one lane each; fewer rounds than against our library,
    // as PMDK's persists over the sockets provider take ~10 times longer.
    let out = run_ours(
        pmdk,
        &t,
        "lanes.c",
        &["-DROUNDS=40"],
        &["localhost", "lanes.set", image.to_str().unwrap()],
    );
    assert!(out.contains("lanes: ok"), "{out}");
    let want = fs::read(&image).unwrap();
    let got = fs::read(&part).unwrap();
    assert!(!want.is_empty() && got.len() >= 4096 + want.len());
    if let Some(i) = got[4096..].iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "part file differs from the local pool at pool offset {}",
            4096 + i
        );
    }
}
