//! Runs the real `rpmem-ssh-local` binary the way librpmem and people run ssh.

use std::io::Write;
use std::process::{Command, Output, Stdio};

const EXE: &str = env!("CARGO_BIN_EXE_rpmem-ssh-local");
const SIGTERM: i32 = 15;

fn run(args: &[&str]) -> Output {
    Command::new(EXE)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run rpmem-ssh-local")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn librpmem_argument_form_runs_command_through_shell() {
    let o = run(&[
        "-p",
        "2222",
        "-T",
        "-4",
        "-oBatchMode=yes",
        "node1",
        "echo one; echo two",
    ]);
    assert!(o.status.success(), "{o:?}");
    assert_eq!(stdout(&o), "one\ntwo\n");
}

#[test]
fn other_argument_orders_and_forms() {
    for args in [
        &[
            "-T",
            "-o",
            "BatchMode=yes",
            "-l",
            "root",
            "host",
            "echo",
            "ok",
        ][..],
        &["root@host", "-p", "22", "echo", "ok"],
        &["-4T", "-p22", "-oX=y", "--", "host", "echo ok"],
        &[
            "-i",
            "/nonexistent",
            "-F",
            "/dev/null",
            "-q",
            "-v",
            "h",
            "echo",
            "ok",
        ],
    ] {
        let o = run(args);
        assert!(o.status.success(), "{args:?}: {o:?}");
        assert_eq!(stdout(&o), "ok\n", "{args:?}");
    }
}

#[test]
fn command_words_are_joined_with_spaces_like_ssh() {
    // ssh does not quote: "a  b" becomes two words again on the remote shell.
    let o = run(&["h", "printf", "'%s|'", "a  b", "c"]);
    assert_eq!(stdout(&o), "a|b|c|");
}

#[test]
fn exit_status_is_the_commands() {
    assert_eq!(run(&["h", "exit 0"]).status.code(), Some(0));
    assert_eq!(run(&["h", "exit 7"]).status.code(), Some(7));
    assert_eq!(run(&["h", "exit 255"]).status.code(), Some(255));
    assert_eq!(run(&["h", "false"]).status.code(), Some(1));
}

#[test]
fn signals_are_the_commands() {
    use std::os::unix::process::ExitStatusExt;
    let o = run(&["h", "kill -TERM $$"]);
    assert_eq!(o.status.signal(), Some(SIGTERM), "{o:?}");
}

#[test]
fn stdin_and_stdout_pass_through() {
    let mut child = Command::new(EXE)
        .args(["-T", "host", "tr a-z A-Z; echo err >&2"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(b"hello over the channel\n").unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success());
    assert_eq!(stdout(&o), "HELLO OVER THE CHANNEL\n");
    assert_eq!(String::from_utf8_lossy(&o.stderr), "err\n");
}

#[test]
fn ssh_connection_is_set() {
    let o = Command::new(EXE)
        .args(["h", "echo \"$SSH_CONNECTION\""])
        .env_remove("SSH_CONNECTION")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "127.0.0.1 0 127.0.0.1 22\n");
}

#[test]
fn missing_host_or_command_exits_255_with_a_message() {
    for args in [
        &[][..],
        &["-T", "-4"],
        &["host"],
        &["-p"],
        &["-Z", "h", "true"],
    ] {
        let o = run(args);
        assert_eq!(o.status.code(), Some(255), "{args:?}");
        let err = String::from_utf8_lossy(&o.stderr);
        assert!(err.starts_with("rpmem-ssh-local: "), "{args:?}: {err}");
        assert!(o.stdout.is_empty());
    }
}
