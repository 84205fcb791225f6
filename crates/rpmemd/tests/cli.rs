//! rpmemd's command line, configuration files and exit statuses.

mod common;

use std::fs;

use rpmem_proto::control::{Request, Response};

use common::*;

#[test]
fn version_and_help() {
    let env = Env::new();
    let out = run(env.cmd().arg("-V"));
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
    let out = run(env.cmd().arg("--help"));
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--poolset-dir",
        "--remove",
        "--max-lanes",
        "--allow-from",
        "--persist-apm",
        "--log-level",
    ] {
        assert!(help.contains(opt), "{opt}");
    }
    let out = run(env.cmd().arg("--no-such-option"));
    assert_eq!(out.status.code(), Some(22));
}

#[test]
fn no_ssh_connection_is_a_clear_error() {
    let env = Env::new();
    for value in [None, Some("garbage"), Some("1.2.3.4 5 not-an-ip 22")] {
        let mut c = env.cmd();
        match value {
            None => c.env_remove("SSH_CONNECTION"),
            Some(v) => c.env("SSH_CONNECTION", v),
        };
        let out = run(&mut c);
        assert_eq!(out.status.code(), Some(22), "{value:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("SSH_CONNECTION"), "{err}");
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn remove_mode_exit_codes() {
    let env = Env::new();
    let out = run(env.cmd().args(["-r", "missing.set"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("missing.set"));

    // Create a pool through a session, then remove it.
    let parts = env.set("p.set", "", &[2 * M]);
    let mut d = env.spawn(&[]);
    opened(d.create("p.set", 4096, 1, Some(attr())));
    // In use: busy.
    let out = run(env.cmd().args(["-r", "p.set"]));
    assert_eq!(out.status.code(), Some(16));
    // --force overrides damage, never a lock.
    for force in [&["-f"][..], &["--force", "--pool-set"][..]] {
        let out = run(env.cmd().args(["-r", "p.set"]).args(force));
        assert_eq!(out.status.code(), Some(16), "{force:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("in use"), "{err}");
        assert!(parts[0].exists() && env.sets().join("p.set").exists());
    }
    assert_eq!(d.call(&Request::Close), Response::Ok);
    assert!(d.finish().0.success());
    // Damaged: refused without --force, removed with it.
    let mut b = fs::read(&parts[0]).unwrap();
    b[9] ^= 1;
    fs::write(&parts[0], &b).unwrap();
    let out = run(env.cmd().args(["-r", "p.set"]));
    assert_eq!(out.status.code(), Some(22));
    assert!(parts[0].exists());
    let out = run(env.cmd().args(["--remove", "p.set", "--force"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!parts[0].exists());
    assert!(env.sets().join("p.set").exists());
    let out = run(env.cmd().args(["-r", "p.set", "-f", "-s"]));
    assert!(out.status.success());
    assert!(!env.sets().join("p.set").exists());
    // Names outside the poolset dir are refused.
    let out = run(env.cmd().args(["-r", "../x.set", "-f"]));
    assert_eq!(out.status.code(), Some(22));
}

#[test]
fn config_files_and_command_line_precedence() {
    let env = Env::new();
    let a = env.home().join("a");
    let b = env.home().join("b");
    let c = env.home().join("c");
    for d in [&a, &b, &c] {
        fs::create_dir(d).unwrap();
    }
    // Each directory holds a pool set whose name tells where it was found;
    // remove (with --force, parts absent) succeeds only where the set is.
    let mk = |dir: &std::path::Path, name: &str| {
        fs::write(
            dir.join(name),
            format!("PMEMPOOLSET\n2M {}/{name}.part\n", dir.display()),
        )
        .unwrap()
    };
    fs::write(
        env.home().join(".rpmemd.conf"),
        "# user config\npoolset-dir = $HOME/a\n",
    )
    .unwrap();
    let rpmemd = || {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_rpmemd"));
        cmd.env("HOME", env.home());
        cmd
    };
    // $HOME/.rpmemd.conf is read and $HOME expanded.
    mk(&a, "1.set");
    assert!(run(rpmemd().args(["-r", "1.set", "-f"])).status.success());
    // The command line wins over the file.
    mk(&a, "2.set");
    let out = run(rpmemd()
        .args(["-r", "2.set", "-f", "--poolset-dir"])
        .arg(&b));
    assert_eq!(out.status.code(), Some(2));
    mk(&b, "2.set");
    let eq = format!("--poolset-dir={}", b.display());
    assert!(run(rpmemd().args(["-r", "2.set", "-f", &eq]))
        .status
        .success());
    // -c FILE: only that file is read.
    let conf = env.home().join("only.conf");
    fs::write(
        &conf,
        format!("poolset-dir = {}\nlog-level = debug\n", c.display()),
    )
    .unwrap();
    mk(&c, "3.set");
    assert!(run(rpmemd().args(["-r", "3.set", "-f", "-c"]).arg(&conf))
        .status
        .success());
    mk(&a, "4.set");
    let out = run(rpmemd().args(["-r", "4.set", "-f", "-c"]).arg(&conf));
    assert_eq!(
        out.status.code(),
        Some(2),
        "the user config is not read with -c"
    );
    // A bad line: EINVAL naming file and line.
    fs::write(&conf, "log-level = debug\nuse-syslog = perhaps\n").unwrap();
    let out = run(rpmemd().args(["-r", "x.set", "-c"]).arg(&conf));
    assert_eq!(out.status.code(), Some(22));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("{}:2:", conf.display())), "{err}");
    // Missing -c file: ENOENT.
    let out = run(rpmemd().args(["-r", "x.set", "-c", "/nonexistent/rpmemd.conf"]));
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn log_file_receives_the_log() {
    let env = Env::new();
    env.set("l.set", "NOHDRS", &[2 * M]);
    let log = env.home().join("rpmemd.log");
    let mut d = env.spawn(&["--log-level", "notice", "--log-file", log.to_str().unwrap()]);
    opened(d.create("l.set", 2 * M, 1, None));
    assert_eq!(d.call(&Request::Close), Response::Ok);
    let (st, err) = d.finish();
    assert!(st.success());
    assert!(err.is_empty(), "nothing on stderr: {err}");
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("created pool set 'l.set'"), "{text}");
}

/// A pool set whose name starts with `-` is removable: `-r NAME` and
/// `--remove NAME` take the next word as the name whatever it looks like
/// (as getopt does), and `-r -- NAME` names it after `--`.
#[test]
fn remove_takes_names_that_look_like_options() {
    let env = Env::new();
    for args in [
        &["-r", "-x.set"][..],
        &["--remove", "-x.set"],
        &["-r", "--", "-x.set"],
        &["--remove", "--", "-x.set"],
        &["--remove=-x.set"],
        &["-r", "-x.set", "-f"],
    ] {
        let parts = env.set("-x.set", "", &[2 * M]);
        let mut d = env.spawn(&[]);
        opened(d.create("-x.set", 4096, 1, Some(attr())));
        assert_eq!(d.call(&Request::Close), Response::Ok);
        assert!(d.finish().0.success());
        assert!(parts[0].exists());
        let out = run(env.cmd().args(args));
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(!parts[0].exists(), "{args:?}: the part survived");
    }
    // A name is still one word: what follows it is parsed as options.
    let out = run(env.cmd().args(["-r", "--", "a.set", "b.set"]));
    assert_eq!(out.status.code(), Some(22));
    let out = run(env.cmd().args(["-r", "--", "-f"]));
    assert_eq!(out.status.code(), Some(2), "'-f' is a name after --");
}
