//! The client's environment variables, end to end: `RPMEM_LOG_LEVEL`,
//! `RPMEM_LOG_FILE` (with the pid suffix), `RPMEM_ENABLE_SOCKETS`,
//! `RPMEM_ENABLE_VERBS`, `RPMEM_MAX_NLANES` and `RPMEM_CMD` alternatives.
//!
//! The library reads the logging variables once per process, so every test
//! that sets them runs the installed `rpmem` tool (or `rpmem demo`) as a child
//! process. Only `rpmem_cmd_alternatives_are_used_in_turn` connects from this
//! process, so nothing else here advances the alternatives' round robin.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{bin, run_rpmem, run_with_timeout, LocalTarget};

const MIB: usize = 1024 * 1024;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// `rpmem ARGS` against `t` with `env` on top of a clean rpmem environment.
fn rpmem(t: &LocalTarget, args: &[&str], env: &[(&str, &str)]) -> Output {
    run_rpmem(Some(t), args, env)
}

fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

#[test]
fn log_level_2_logs_basic_operations_and_the_transport_to_the_file() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("a", "4M");
    let log = t.dir().join("client.log");
    let logs = log.to_str().unwrap();
    let out = run_rpmem(
        Some(&t),
        "create localhost a.set --no-hdrs --size 4M --lanes 3".split(' '),
        &[("RPMEM_LOG_LEVEL", "2"), ("RPMEM_LOG_FILE", logs)],
    );
    assert!(out.status.success(), "{out:?}");
    let s = read(&log);
    assert!(
        s.contains("<librpmem>: <2>")
            && s.contains("transport: tcp (RPMEM_TRANSPORT=tcp; RPMEM_ENABLE_VERBS=1")
            && s.contains("transport tcp"),
        "{s}"
    );
    assert!(
        s.contains("created localhost:a.set: 4194304 bytes, 3 of 3 lanes"),
        "{s}"
    );
    assert!(s.contains("closing localhost:a.set"), "{s}");
    assert!(!s.contains("<3>"), "nothing above level 2: {s}");
    assert!(text(&out.stderr).is_empty(), "the log went to the file");

    // RPMEM_ENABLE_VERBS=0 is named in the transport line.
    let out = rpmem(
        &t,
        &["info", "localhost", "a.set", "--size", "4M"],
        &[
            ("RPMEM_LOG_LEVEL", "2"),
            ("RPMEM_LOG_FILE", logs),
            ("RPMEM_ENABLE_VERBS", "0"),
        ],
    );
    assert!(out.status.success(), "{out:?}");
    let s = read(&log);
    assert!(s.contains("RPMEM_ENABLE_VERBS=0"), "{s}");
    assert!(
        s.contains("opened localhost:a.set"),
        "the file is rewritten: {s}"
    );
    assert!(!s.contains("created"), "{s}");

    // remove is a basic operation too.
    let out = rpmem(
        &t,
        &["rm", "localhost", "a.set"],
        &[("RPMEM_LOG_LEVEL", "2"), ("RPMEM_LOG_FILE", logs)],
    );
    assert!(out.status.success(), "{out:?}");
    assert!(read(&log).contains("remove localhost:a.set"));
}

#[test]
fn log_file_with_a_trailing_dash_gets_the_pid() {
    let t = LocalTarget::new();
    let base = t.dir().join("pid.log-");
    // `exec` keeps the shell's pid, which it prints first.
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!(
            "echo $$; exec {} info localhost missing.set",
            bin("rpmem").display()
        ))
        .envs(t.env())
        .env("RPMEM_LOG_LEVEL", "1")
        .env("RPMEM_LOG_FILE", &base);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(libc::ENOENT), "{out:?}");
    let stdout = text(&out.stdout);
    let pid = stdout.lines().next().unwrap().trim();
    let file = t.dir().join(format!("pid.log-{pid}"));
    let s = read(&file);
    // Level 1: the error returned, with its errno; nothing else.
    assert!(s.contains("<librpmem>: <1>"), "{s}");
    assert!(s.contains("rpmem_open:") && s.contains("(errno 2)"), "{s}");
    assert!(!s.contains("transport:"), "{s}");
    assert!(!base.exists());
}

#[test]
fn level_3_goes_to_stderr_without_a_file_and_level_0_logs_nothing() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("s", "4M");
    let out = rpmem(
        &t,
        &["create", "localhost", "s.set", "--no-hdrs", "--size", "4M"],
        &[("RPMEM_LOG_LEVEL", "3")],
    );
    assert!(out.status.success(), "{out:?}");
    let err = text(&out.stderr);
    assert!(err.contains("<librpmem>: <3>"), "{err}");
    assert!(err.contains("starting '"), "the remote command: {err}");
    assert!(err.contains("data on 127.0.0.1:"), "{err}");
    for level in ["0", ""] {
        let out = rpmem(
            &t,
            &["info", "localhost", "s.set", "--size", "4M"],
            &[("RPMEM_LOG_LEVEL", level)],
        );
        assert!(out.status.success(), "{out:?}");
        assert!(
            out.stderr.is_empty(),
            "level {level:?}: {}",
            text(&out.stderr)
        );
    }
}

#[test]
fn level_4_traces_every_data_path_call() {
    let t = LocalTarget::new();
    let log = t.dir().join("trace.log");
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args(["demo", "--size", "4M", "--lanes", "2"])
        .env_remove("RPMEM_CMD")
        .env_remove("RPMEM_SSH")
        .env("RPMEM_LOG_LEVEL", "4")
        .env("RPMEM_LOG_FILE", &log);
    let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
    assert!(out.status.success(), "{out:?}");
    let s = read(&log);
    assert!(s.contains("<librpmem>: <4>"), "{s}");
    assert!(s.contains("rpmem_persist "), "{s}");
    assert!(s.contains("rpmem_read "), "{s}");
}

#[test]
fn sockets_disabled_is_enomedium_with_the_reason_logged() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("n", "4M");
    let log = t.dir().join("n.log");
    let out = rpmem(
        &t,
        &["info", "localhost", "n.set", "--size", "4M"],
        &[
            ("RPMEM_ENABLE_SOCKETS", "0"),
            ("RPMEM_TRANSPORT", "auto"),
            ("RPMEM_LOG_LEVEL", "1"),
            ("RPMEM_LOG_FILE", log.to_str().unwrap()),
        ],
    );
    assert_eq!(out.status.code(), Some(libc::ENOMEDIUM), "{out:?}");
    let s = read(&log);
    assert!(
        s.contains("no usable transport: libfabric verbs: ")
            && s.contains("tcp: disabled by RPMEM_ENABLE_SOCKETS=0"),
        "{s}"
    );
    assert!(s.contains(&format!("(errno {})", libc::ENOMEDIUM)), "{s}");
}

#[test]
fn max_nlanes_caps_the_lanes() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("l", "4M");
    let out = run_rpmem(
        Some(&t),
        "create localhost l.set --no-hdrs --size 4M --lanes 8 --json".split(' '),
        &[("RPMEM_MAX_NLANES", "2")],
    );
    assert!(out.status.success(), "{out:?}");
    let s = text(&out.stdout);
    assert!(s.contains("\"lanes\": 2"), "{s}");
}

#[test]
fn rpmem_cmd_alternatives_are_used_in_turn() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("alt", "4M");
    let logs = [t.dir().join("alt-a.log"), t.dir().join("alt-b.log")];
    let daemon = |log: &Path| {
        format!(
            "{} --poolset-dir={} --log-file={} --log-level=notice",
            bin("rpmemd").display(),
            t.dir().display(),
            log.display()
        )
    };
    let cfg = rpmem::Config {
        ssh: bin("rpmem-ssh-local").display().to_string(),
        cmd: format!("{} | {}", daemon(&logs[0]), daemon(&logs[1])),
        ..rpmem::Config::default()
    };
    let pool = rpmem::Pool::create(&cfg, "localhost", "alt.set", 4 * MIB, 1, None)
        .unwrap_or_else(|e| panic!("create: {e}"));
    pool.close().unwrap();
    let (pool, _) = rpmem::Pool::open(&cfg, "localhost", "alt.set", 4 * MIB, 1)
        .unwrap_or_else(|e| panic!("open: {e}"));
    pool.close().unwrap();
    let a = fs::read_to_string(&logs[0]).unwrap_or_default();
    let b = fs::read_to_string(&logs[1]).unwrap_or_default();
    let served = |s: &str| {
        u8::from(s.contains("created pool set 'alt.set'"))
            + u8::from(s.contains("opened pool set 'alt.set'")) * 2
    };
    // One connection went to each alternative, in either order.
    let (sa, sb) = (served(&a), served(&b));
    assert!((sa, sb) == (1, 2) || (sa, sb) == (2, 1), "a:\n{a}\nb:\n{b}");
}
