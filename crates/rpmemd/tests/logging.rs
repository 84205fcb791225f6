//! rpmemd's log file: control characters of client-supplied names are
//! escaped, every line is written whole (many daemons share one file), and
//! a message repeated in a loop is rate-limited with a count of what was
//! left out.

mod common;

use std::fs;
use std::path::Path;

use common::*;
use rpmem_proto::control::{Request, Response};

const LEVELS: [&str; 5] = ["err", "warn", "notice", "info", "debug"];

/// Every line of the log at `path`, checked to be one whole record:
/// `rpmemd[PID] LEVEL: message` with no control characters.
fn records(path: &Path) -> Vec<String> {
    let text = fs::read_to_string(path).unwrap();
    assert!(text.ends_with('\n'), "the log ends mid-line");
    text.lines()
        .map(|l| {
            let rest = l
                .strip_prefix("rpmemd[")
                .unwrap_or_else(|| panic!("not a record: {l:?}"));
            let (pid, rest) = rest.split_once("] ").unwrap_or_else(|| panic!("{l:?}"));
            assert!(pid.parse::<u32>().is_ok(), "{l:?}");
            let (level, _) = rest.split_once(": ").unwrap_or_else(|| panic!("{l:?}"));
            assert!(LEVELS.contains(&level), "{l:?}");
            assert!(!l.chars().any(char::is_control), "{l:?}");
            l.to_string()
        })
        .collect()
}

#[test]
fn names_cannot_forge_log_lines() {
    let env = Env::new();
    let log = env.home().join("d.log");
    let logs = log.to_str().unwrap();
    let mut d = env.spawn(&["--log-file", logs, "--log-level", "debug"]);
    let evil = "x.set\nrpmemd[1] err: forged\r\x1b[2J";
    let (status, _) = error_status(d.open(evil, 4096, 1));
    assert_eq!(status, rpmem_proto::Status::NoEntry);
    d.finish();
    let lines = records(&log);
    assert!(
        lines
            .iter()
            .any(|l| l.contains(r"x.set\nrpmemd[1] err: forged\r\u{1b}[2J")),
        "{lines:#?}"
    );
    assert!(
        !lines.iter().any(|l| l.starts_with("rpmemd[1] ")),
        "{lines:#?}"
    );
}

/// Sixteen daemons at once, each logging lines of a few KiB into one file:
/// no line is cut or mixed with another.
#[test]
fn daemons_sharing_a_log_file_never_mix_lines() {
    let env = Env::new();
    let log = env.home().join("shared.log");
    let logs = log.to_str().unwrap().to_string();
    let rounds = 8;
    let threads: Vec<_> = (0..16)
        .map(|t| {
            let sets = env.sets();
            let home = env.home().to_path_buf();
            let logs = logs.clone();
            std::thread::spawn(move || {
                for r in 0..rounds {
                    let name = format!("{t}-{r}-{}.set", "n".repeat(4000));
                    let mut d = Daemon::spawn(
                        std::process::Command::new(env!("CARGO_BIN_EXE_rpmemd"))
                            .env("HOME", &home)
                            .env("SSH_CONNECTION", SSH)
                            .arg("--poolset-dir")
                            .arg(&sets)
                            .args(["--log-file", &logs, "--log-level", "debug"]),
                    );
                    error_status(d.open(&name, 4096, 1));
                    d.finish();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let lines = records(&log);
    for t in 0..16 {
        for r in 0..rounds {
            let name = format!("'{t}-{r}-{}.set'", "n".repeat(4000));
            assert!(
                lines.iter().any(|l| l.contains(&name)),
                "no whole line names set {t}-{r}"
            );
        }
    }
}

/// A set_attr loop at level info: the per-call line is rate-limited, and
/// what was left out is counted, so lines plus the counts add up.
#[test]
fn a_message_repeated_in_a_loop_is_rate_limited() {
    let env = Env::new();
    env.set("p.set", "", &[2 * M]);
    let log = env.home().join("loop.log");
    let logs = log.to_str().unwrap();
    let mut d = env.spawn(&["--log-file", logs, "--log-level", "info"]);
    opened(d.create("p.set", 4096, 1, Some(attr())));
    let n = 500;
    let start = std::time::Instant::now();
    for _ in 0..n {
        assert_eq!(d.call(&Request::SetAttr { attr: attr() }), Response::Ok);
    }
    let secs = start.elapsed().as_secs() as usize + 1;
    assert_eq!(d.call(&Request::Close), Response::Ok);
    assert!(d.finish().0.success());
    let lines = records(&log);
    let shown = lines
        .iter()
        .filter(|l| l.split_once(": ").unwrap().1 == "pool set 'p.set': attributes set")
        .count();
    let left_out: usize = lines
        .iter()
        .filter_map(|l| {
            let (_, tail) = l.split_once("left out ")?;
            tail.split_whitespace().next()?.parse::<usize>().ok()
        })
        .sum();
    // At most 10 a second (the first window may start just before the loop).
    assert!(shown <= 10 * (secs + 1), "{shown} of {n} lines in {secs} s");
    assert_eq!(shown + left_out, n, "{lines:#?}");
    assert!(fs::metadata(&log).unwrap().len() < 64 * 1024);
}
