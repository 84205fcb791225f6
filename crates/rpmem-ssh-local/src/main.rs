//! `rpmem-ssh-local`: a stand-in for `ssh` that runs the command on this machine.
//!
//! Set `RPMEM_SSH=rpmem-ssh-local` to use rpmem without an ssh server. It
//! accepts ssh's command line (`[-p PORT] -T -4 -oBatchMode=yes -- [USER@]HOST CMD`
//! and the other usual forms), ignores the host and every option, and runs CMD
//! (the remaining arguments joined by spaces, as ssh does) with `sh -c` in the
//! home directory, with `SSH_CONNECTION="127.0.0.1 0 127.0.0.1 22"`. Standard
//! streams are passed through and the process is replaced by the shell, so the
//! exit status and signals are the command's. Usage errors exit with 255, like
//! ssh.

use std::ffi::OsString;
use std::os::unix::process::CommandExt;
use std::process::Command;

/// What `SSH_CONNECTION` is set to: client address and port, server address and port.
const SSH_CONNECTION: &str = "127.0.0.1 0 127.0.0.1 22";

/// Exit status for usage errors and failures to start the command (ssh's).
const EXIT_FAILURE: i32 = 255;

/// ssh options that take no argument.
const FLAGS: &str = "46AaCfGgKkMNnqsTtVvXxYy";
/// ssh options that take an argument.
const WITH_ARG: &str = "BbcDEeFIiJLlmOoPpQRSWw";

/// Why the command line could not be used.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
enum Error {
    /// An option letter ssh does not know.
    #[error("unknown option -- {0}")]
    UnknownOption(char),
    /// An option that needs a value came last.
    #[error("option requires an argument -- {0}")]
    MissingValue(char),
    /// No destination was given.
    #[error("missing host")]
    MissingHost,
    /// A destination but nothing to run.
    #[error("missing command (interactive sessions are not supported)")]
    MissingCommand,
    /// An argument is not valid UTF-8.
    #[error("argument is not valid UTF-8: {0:?}")]
    NotUtf8(OsString),
}

/// The parts of an ssh command line this program uses.
#[derive(Debug, PartialEq, Eq)]
struct Invocation {
    /// The destination as given (`[user@]host`), ignored.
    host: String,
    /// The command to run: the arguments after the host joined by spaces.
    command: String,
}

/// Parses ssh's command line (without the program name).
fn parse(args: Vec<OsString>) -> Result<Invocation, Error> {
    let args = args
        .into_iter()
        .map(|a| a.into_string().map_err(Error::NotUtf8))
        .collect::<Result<Vec<String>, Error>>()?;
    let mut host: Option<String> = None;
    let mut i = 0;
    let mut options_done = false;
    while i < args.len() {
        let arg = &args[i];
        if !options_done && arg == "--" {
            options_done = true;
            i += 1;
            continue;
        }
        if options_done || !arg.starts_with('-') || arg == "-" {
            if host.is_none() {
                host = Some(arg.clone());
                // ssh keeps parsing options after the destination, unless
                // `--` ended them.
                if options_done {
                    i += 1;
                    break;
                }
                i += 1;
                continue;
            }
            break;
        }
        // A cluster of option letters, getopt style: `-4T`, `-p22`, `-oX=y`.
        let chars = arg[1..].char_indices();
        for (pos, c) in chars {
            if FLAGS.contains(c) {
                continue;
            }
            if WITH_ARG.contains(c) {
                let rest = &arg[1 + pos + c.len_utf8()..];
                if rest.is_empty() {
                    i += 1;
                    if i >= args.len() {
                        return Err(Error::MissingValue(c));
                    }
                }
                break;
            }
            return Err(Error::UnknownOption(c));
        }
        i += 1;
    }
    let host = host.ok_or(Error::MissingHost)?;
    if host.is_empty() {
        return Err(Error::MissingHost);
    }
    if i >= args.len() {
        return Err(Error::MissingCommand);
    }
    Ok(Invocation {
        host,
        command: args[i..].join(" "),
    })
}

fn main() {
    let inv = match parse(std::env::args_os().skip(1).collect()) {
        Ok(inv) => inv,
        Err(e) => {
            eprintln!("rpmem-ssh-local: {e}");
            eprintln!("usage: rpmem-ssh-local [ssh options] [user@]host command [args...]");
            std::process::exit(EXIT_FAILURE);
        }
    };
    let mut cmd = Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(&inv.command)
        .env("SSH_CONNECTION", SSH_CONNECTION);
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        // Like a login over ssh; a missing home directory is not fatal.
        if std::path::Path::new(&home).is_dir() {
            cmd.current_dir(home);
        }
    }
    let err = cmd.exec();
    eprintln!("rpmem-ssh-local: cannot run /bin/sh: {err}");
    std::process::exit(EXIT_FAILURE);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Invocation, Error> {
        parse(args.iter().map(OsString::from).collect())
    }

    fn ok(args: &[&str]) -> (String, String) {
        let inv = p(args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
        (inv.host, inv.command)
    }

    #[test]
    fn librpmem_form() {
        assert_eq!(
            ok(&[
                "-p",
                "2222",
                "-T",
                "-4",
                "-oBatchMode=yes",
                "node",
                "rpmemd --x"
            ]),
            ("node".into(), "rpmemd --x".into())
        );
        assert_eq!(
            ok(&["-T", "-oBatchMode=yes", "u@node", "rpmemd"]),
            ("u@node".into(), "rpmemd".into())
        );
    }

    #[test]
    fn option_forms() {
        assert_eq!(ok(&["-p22", "-4T", "h", "c"]).1, "c");
        assert_eq!(ok(&["-o", "A=b", "-l", "root", "h", "c"]).1, "c");
        assert_eq!(
            ok(&["-i", "/k", "-F", "/dev/null", "-vvv", "h", "c"]).1,
            "c"
        );
        assert_eq!(
            ok(&["-J", "x", "-E", "log", "-b", "a", "-c", "aes", "h", "c"]).1,
            "c"
        );
        assert_eq!(
            ok(&["-6", "-x", "-a", "-A", "-C", "-n", "-q", "-t", "h", "c"]).1,
            "c"
        );
        assert_eq!(
            ok(&["-L", "1:h:2", "-R", "3:h:4", "-D", "5", "-S", "none", "h", "c"]).1,
            "c"
        );
    }

    #[test]
    fn options_after_host_and_double_dash() {
        assert_eq!(
            ok(&["h", "-p", "22", "ls", "-l"]),
            ("h".into(), "ls -l".into())
        );
        // As ssh: options are parsed again after the destination, unless
        // `--` ended them before it.
        assert_eq!(ok(&["-T", "h", "-x", "y"]), ("h".into(), "y".into()));
        assert_eq!(
            ok(&["-T", "--", "h", "-x", "y"]),
            ("h".into(), "-x y".into())
        );
        assert_eq!(ok(&["--", "-h", "c"]), ("-h".into(), "c".into()));
        assert_eq!(
            ok(&["-T", "-oBatchMode=yes", "--", "u@h", "rpmemd --x"]),
            ("u@h".into(), "rpmemd --x".into())
        );
        assert_eq!(ok(&["h", "--", "-p", "1"]), ("h".into(), "-p 1".into()));
    }

    #[test]
    fn command_words_joined_with_spaces() {
        assert_eq!(ok(&["h", "echo", "a b", "c"]).1, "echo a b c");
    }

    #[test]
    fn usage_errors() {
        assert_eq!(p(&[]).unwrap_err(), Error::MissingHost);
        assert_eq!(p(&["-T", "-4"]).unwrap_err(), Error::MissingHost);
        assert_eq!(p(&["h"]).unwrap_err(), Error::MissingCommand);
        assert_eq!(p(&["-p"]).unwrap_err(), Error::MissingValue('p'));
        assert_eq!(p(&["-Z", "h", "c"]).unwrap_err(), Error::UnknownOption('Z'));
        assert_eq!(p(&["", "c"]).unwrap_err(), Error::MissingHost);
    }
}
