//! A hostile or careless caller: targets and pool set names that a shell,
//! ssh or rpmemd could read as something else never do more than fail with
//! a clear error.

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use e2e::{bin, compile_c, run_with_timeout, workspace_root, LocalTarget};
use rpmem::{Config, Pool, RemoveFlags};

const MIB: usize = 1024 * 1024;

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

/// With the real OpenSSH client and the default one-word `RPMEM_CMD`, a
/// target whose user part is an ssh option would make ssh run a
/// ProxyCommand (or load a config file that names one) on the initiator.
/// Such targets fail with EINVAL before ssh runs: the commands' marker
/// files never appear.
#[test]
fn a_target_is_never_read_by_ssh_as_an_option() {
    if !in_path("ssh") {
        eprintln!("skipping: needs the OpenSSH client (ssh) in PATH");
        return;
    }
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    // ssh runs ProxyCommand as `sh -c "exec CMD"`; `exec >FILE` creates FILE.
    let config = dir.join("evil_config");
    fs::write(
        &config,
        format!(
            "Host *\n  ProxyCommand exec >{}/from-config\n",
            dir.display()
        ),
    )
    .unwrap();
    let before = entries(dir);
    let cfg = Config {
        ssh: "ssh".into(),
        cmd: "rpmemd".into(),
        ..Config::default()
    };
    let targets = [
        format!("-oProxyCommand=>{}/proxy@h", dir.display()),
        format!("-F{}@h", config.display()),
        format!("-oProxyCommand=>{}/proxy-port@h:22", dir.display()),
        format!("-F{}@[::1]", config.display()),
        // The host part too, and characters no user or host name has.
        format!("u@-F{}", config.display()),
        "u;touch${IFS}x@h".into(),
        "u@h`id`".into(),
        "u@h$(id)".into(),
        "u%h@h".into(),
        "u@[::1;x]".into(),
    ];
    for target in &targets {
        let created = Pool::create(&cfg, target, "p.set", 4 * MIB, 1, None).err();
        let removed = rpmem::remove(&cfg, target, "p.set", Default::default()).err();
        assert_eq!(entries(dir), before, "ssh ran a command of {target}");
        let e = created.unwrap_or_else(|| panic!("create through {target} succeeded"));
        assert_eq!(e.errno(), libc::EINVAL, "{target}: {e}");
        assert!(e.to_string().contains("invalid target"), "{target}: {e}");
        let e = removed.unwrap_or_else(|| panic!("remove through {target} succeeded"));
        assert_eq!(e.errno(), libc::EINVAL, "{target}: {e}");
    }
}

/// Ordinary targets still reach the daemon (through the local ssh
/// stand-in), with a user name of the usual forms.
#[test]
fn ordinary_targets_still_work() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("ok", "4M");
    let cfg = t.config();
    for target in [
        "localhost",
        "user.name-1_x@node-1.example.com:2222",
        "ad.user@corp.example@host",
        "machine$@127.0.0.1",
        "[::1]:22",
        "u@[fe80::1%eth0]",
    ] {
        let pool = Pool::create(&cfg, target, "ok.set", 4 * MIB, 1, None)
            .unwrap_or_else(|e| panic!("{target}: {e}\nlog:\n{}", t.log()));
        pool.close().unwrap();
        rpmem::remove(&cfg, target, "ok.set", Default::default())
            .unwrap_or_else(|e| panic!("{target}: {e}"));
    }
}

/// A pool set whose name starts with `-` can be created, opened and
/// removed: no client-supplied name is read as an option by rpmemd, neither
/// through the library nor through `rpmem rm TARGET -- NAME`.
#[test]
fn pool_set_names_starting_with_a_dash_are_removable() {
    let t = LocalTarget::new();
    let cfg = t.config();
    let part = t.dir().join("dash.part");
    let set = |name: &str| {
        t.write_poolset(
            name,
            &format!("PMEMPOOLSET\nOPTION NOHDRS\n4M {}\n", part.display()),
        )
    };
    for name in ["-x.set", "--force", "-r"] {
        let set_path = set(name);
        let pool = Pool::create(&cfg, "localhost", name, 4 * MIB, 1, None)
            .unwrap_or_else(|e| panic!("{name}: {e}\nlog:\n{}", t.log()));
        pool.close().unwrap();
        let (pool, _) = Pool::open(&cfg, "localhost", name, 4 * MIB, 1).unwrap();
        pool.close().unwrap();
        rpmem::remove(&cfg, "localhost", name, RemoveFlags::POOL_SET)
            .unwrap_or_else(|e| panic!("remove {name}: {e}\nlog:\n{}", t.log()));
        assert!(!part.exists() && !set_path.exists(), "{name} survived");
    }
    set("-y.set");
    let pool = Pool::create(&cfg, "localhost", "-y.set", 4 * MIB, 1, None).unwrap();
    pool.close().unwrap();
    let out = run_with_timeout(
        Command::new(bin("rpmem"))
            .args(["rm", "localhost", "--", "-y.set"])
            .envs(t.env()),
        Duration::from_secs(60),
    );
    assert!(out.status.success(), "{out:?}");
    assert!(!part.exists());
}

/// Pool set names that name a directory, and part paths that do or hold a
/// NUL byte, fail with EINVAL and a message naming the problem (not ENOENT
/// with an ENOTDIR message, nor EREMOTEIO).
#[test]
fn names_and_part_paths_of_directories_are_einval() {
    let t = LocalTarget::new();
    let cfg = t.config();
    let part = t.write_nohdrs_set("p", "4M");
    fs::create_dir(t.dir().join("sub")).unwrap();
    let d = t.dir().display();
    t.write_poolset(
        "dot.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n4M {d}/.\n"),
    );
    t.write_poolset(
        "slash.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n4M {d}/sub/\n"),
    );
    t.write_poolset(
        "dir.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n4M {d}/sub\n"),
    );
    t.write_poolset(
        "nul.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n4M {d}/a\0b\n"),
    );
    let cases = [
        ("p.set/", "ends with '/'"),
        ("sub/", "ends with '/'"),
        ("p.set/x", "not a directory"),
        (".", "directory"),
        ("sub", "directory"),
        ("sub/.", "directory"),
        ("dot.set", "names a directory"),
        ("slash.set", "names a directory"),
        ("dir.set", "is a directory"),
        ("nul.set", "NUL"),
    ];
    for (name, why) in cases {
        for create in [true, false] {
            let r = if create {
                Pool::create(&cfg, "localhost", name, 4 * MIB, 1, None).map(drop)
            } else {
                Pool::open(&cfg, "localhost", name, 4 * MIB, 1).map(drop)
            };
            let e = r.err().unwrap_or_else(|| panic!("{name}: succeeded"));
            assert!(
                e.errno() == libc::EINVAL || e.errno() == libc::ENOTDIR,
                "{name} (create {create}): errno {}: {e}",
                e.errno()
            );
            assert!(e.to_string().contains(why), "{name}: {e}");
        }
        let e = rpmem::remove(&cfg, "localhost", name, Default::default()).unwrap_err();
        assert!(
            e.errno() == libc::EINVAL || e.errno() == libc::ENOTDIR,
            "remove {name}: errno {}: {e}",
            e.errno()
        );
        assert!(e.to_string().contains(why), "remove {name}: {e}");
    }
    assert!(!part.exists());
}

/// A daemon that fails at start-up (bad option, bad configuration file)
/// reaches the caller with its exit status as errno, as with PMDK, and
/// its message.
#[test]
fn daemon_start_up_failures_carry_the_daemons_errno() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("s", "4M");
    let conf = t.dir().join("bad.conf");
    fs::write(&conf, "no-such-key = 1\n").unwrap();
    let base = t.config();
    for (extra, why) in [
        (
            format!("-c {}", conf.display()),
            "unknown option 'no-such-key'",
        ),
        ("--no-such-option".to_string(), "no-such-option"),
        ("--max-lanes=0".to_string(), "max-lanes"),
    ] {
        let cfg = Config {
            cmd: format!("{} {extra}", base.cmd),
            ..base.clone()
        };
        let e = Pool::create(&cfg, "localhost", "s.set", 4 * MIB, 1, None)
            .err()
            .unwrap_or_else(|| panic!("{extra}: create succeeded"));
        assert_eq!(e.errno(), libc::EINVAL, "{extra}: {e}");
        assert!(e.to_string().contains(why), "{extra}: {e}");
        let e = Pool::open(&cfg, "localhost", "s.set", 4 * MIB, 1)
            .err()
            .unwrap_or_else(|| panic!("{extra}: open succeeded"));
        assert_eq!(e.errno(), libc::EINVAL, "{extra}: {e}");
    }
    // The shell's own statuses stay connection failures.
    let cfg = Config {
        cmd: "/nonexistent/rpmemd".into(),
        ..base.clone()
    };
    let e = Pool::open(&cfg, "localhost", "s.set", 4 * MIB, 1)
        .err()
        .unwrap();
    assert_eq!(e.errno(), libc::ECONNRESET, "{e}");
}

/// The library's log: a pool set name (or a target's message) holding a
/// newline stays on its record's line.
#[test]
fn library_log_lines_cannot_be_forged() {
    let t = LocalTarget::new();
    let log = t.dir().join("client.log");
    let out = run_with_timeout(
        Command::new(bin("rpmem"))
            .args(["info", "localhost", "x.set\n<librpmem>: <1> forged"])
            .envs(t.env())
            .env("RPMEM_LOG_LEVEL", "3")
            .env("RPMEM_LOG_FILE", &log),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(libc::ENOENT), "{out:?}");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains(r"x.set\n<librpmem>: <1> forged"), "{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("<librpmem>: <") && !line.starts_with("<librpmem>: <1> forged"),
            "{line:?}"
        );
    }
}

/// After fork, the child's calls on its parent's handle fail with EPERM
/// and a message saying why; its close frees only its own copy, and the
/// parent's session goes on (persist, read, close all succeed).
#[test]
fn a_forked_child_cannot_use_or_end_its_parents_pool() {
    let t = LocalTarget::new();
    let (part, pool) = t.create_nohdrs("fork", 4 * MIB, 1);
    pool.close().unwrap();
    let exe = compile_c(&workspace_root().join("tests/c/fork.c"));
    let out = run_with_timeout(
        Command::new(&exe)
            .args(["localhost", "fork.set"])
            .envs(t.env()),
        Duration::from_secs(60),
    );
    assert!(
        out.status.success(),
        "{out:?}\nstderr: {}\nlog:\n{}",
        String::from_utf8_lossy(&out.stderr),
        t.log()
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let data = fs::read(&part).unwrap();
    assert!(data[..4096].iter().all(|b| *b == 0x33));
}

/// `rpmem_create`, `rpmem_open` and `rpmem_remove` end within
/// `RPMEM_OPEN_TIMEOUT_MS`, both when the ssh client never connects and when
/// the daemon never answers: ETIMEDOUT, and the ssh client is stopped.
#[test]
fn create_open_and_remove_are_bounded_by_their_timeout() {
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("slow", "4M");
    let hung_ssh = e2e::write_script(&t.dir().join("hung-ssh"), "exec sleep 60\n");
    let ssh_local = bin("rpmem-ssh-local").display().to_string();
    for (ssh, cmd) in [
        (hung_ssh.display().to_string(), t.rpmem_cmd()),
        (ssh_local.clone(), "sleep 5".to_string()),
        (ssh_local, format!("sleep 5; {}", t.rpmem_cmd())),
    ] {
        for op in ["create", "info", "rm"] {
            if op == "rm" && cmd == "sleep 5" {
                // `sleep 5 --remove=…` fails at once; the next case stalls rm.
                continue;
            }
            let mut c = Command::new(bin("rpmem"));
            c.args([op, "localhost", "slow.set"])
                .env("RPMEM_SSH", &ssh)
                .env("RPMEM_CMD", &cmd)
                .env("RPMEM_OPEN_TIMEOUT_MS", "1000");
            match op {
                "create" => c.args(["--size", "4M", "--no-hdrs"]),
                "info" => c.args(["--size", "4M"]),
                _ => &mut c,
            };
            let start = Instant::now();
            let out = run_with_timeout(&mut c, Duration::from_secs(20));
            let took = start.elapsed();
            assert_eq!(
                out.status.code(),
                Some(libc::ETIMEDOUT),
                "{op} via {ssh} running {cmd}: {out:?}"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(err.contains("RPMEM_OPEN_TIMEOUT_MS"), "{err}");
            assert!(
                took >= Duration::from_millis(1000) && took < Duration::from_secs(10),
                "{op}: {took:?}"
            );
        }
    }
    assert!(!part.exists());
}

/// A refusal names the pool set once, after the target: the daemon's own
/// "pool set 'SET': " and rpmemd --remove's restated errno are not repeated.
#[test]
fn remote_errors_name_the_pool_set_once() {
    let t = LocalTarget::new();
    t.write_poolset("bad.set", "PMEMPOOLSET\n4Q /nowhere/x.part\n");
    for (args, starts) in [
        (
            &["info", "localhost", "missing.set"][..],
            "rpmem: localhost:missing.set: cannot open pool set ",
        ),
        (
            &["info", "localhost", "bad.set"],
            "rpmem: localhost:bad.set: ",
        ),
        (
            &["rm", "localhost", "missing.set"],
            "rpmem: localhost:missing.set: rpmemd: cannot open pool set ",
        ),
    ] {
        let mut c = Command::new(bin("rpmem"));
        c.args(args).envs(t.env());
        let out = run_with_timeout(&mut c, Duration::from_secs(60));
        assert!(!out.status.success(), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.starts_with(starts), "{args:?}: {err}");
        assert!(!err.contains("pool set '"), "{args:?}: {err}");
        // The name after the target, and the set file's path (or its line).
        let set = args[2];
        assert_eq!(err.matches(set).count(), 2, "{args:?}: {err}");
        assert_eq!(
            err.matches("(os error").count(),
            u8::from(set == "missing.set") as usize,
            "{args:?}: {err}"
        );
    }
}
