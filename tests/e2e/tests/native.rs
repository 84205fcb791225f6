//! What `make install` gives C, Rust and shell users besides the binaries:
//! manual pages that render without warnings, shell completions that
//! complete, and the progress display of long `rpmem` commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{bin, have_tool, prefix, run_with_timeout, LocalTarget};

const LIMIT: Duration = Duration::from_secs(60);

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn run(cmd: &mut Command) -> Output {
    run_with_timeout(cmd, LIMIT)
}

fn man_dir() -> PathBuf {
    prefix().join("share").join("man")
}

/// Renders a page file with man's and groff's warnings on; returns the text.
/// Panics on any warning.
fn render_clean(page: &Path) -> String {
    let out = run(Command::new("man")
        .args(["--warnings=all", "-E", "UTF-8", "-l"])
        .arg(page)
        .env("MANWIDTH", "80")
        .env("MAN_KEEP_FORMATTING", "0"));
    let err = text(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "man --warnings {}: {}\n{err}",
        page.display(),
        out.status
    );
    let out = run(Command::new("groff")
        .args(["-ww", "-z", "-b", "-man", "-Tutf8"])
        .arg(page));
    let err = text(&out.stderr);
    assert!(
        out.status.success() && err.trim().is_empty(),
        "groff -ww {}:\n{err}",
        page.display()
    );
    render(page)
}

/// The page as `man` shows it, plain text.
fn render(page: &Path) -> String {
    let out = run(Command::new("man")
        .args(["-E", "UTF-8", "-l"])
        .arg(page)
        .env("MANWIDTH", "80"));
    assert!(out.status.success(), "man -l {}: {out:?}", page.display());
    strip_overstrike(&text(&out.stdout))
}

/// Drops the backspace sequences of bold and underlined text.
fn strip_overstrike(s: &str) -> String {
    let mut out: Vec<char> = Vec::new();
    for c in s.chars() {
        if c == '\u{8}' {
            out.pop();
        } else {
            out.push(c);
        }
    }
    out.into_iter().collect()
}

/// The subcommands `rpmem --help` lists.
fn listed_subcommands() -> Vec<String> {
    let out = run(Command::new(bin("rpmem")).arg("--help"));
    assert!(out.status.success(), "{out:?}");
    let help = text(&out.stdout);
    help.split("Commands:")
        .nth(1)
        .expect("a Commands: section")
        .lines()
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .filter(|w| *w != "help")
        .map(str::to_string)
        .collect()
}

#[test]
fn rpmem_pages_are_generated_for_every_subcommand() {
    if !have_tool("man") || !have_tool("groff") {
        return;
    }
    let dir = man_dir().join("man1");
    let subs = listed_subcommands();
    assert!(subs.contains(&"create".to_string()), "{subs:?}");
    assert!(!subs.contains(&"man-pages".to_string()), "hidden: {subs:?}");
    let top = render_clean(&dir.join("rpmem.1"));
    for s in &subs {
        assert!(top.contains(&format!("rpmem-{s}(1)")), "rpmem(1) lacks {s}");
        let page = render_clean(&dir.join(format!("rpmem-{s}.1")));
        let help = text(&run(Command::new(bin("rpmem")).args([s, "--help"])).stdout);
        // Every option the parser knows is documented, and the examples of
        // --help are the page's.
        for word in help.split_whitespace() {
            let opt = word.trim_end_matches(',');
            if opt.starts_with("--") && opt.len() > 2 {
                assert!(page.contains(opt), "rpmem-{s}(1) lacks {opt}:\n{page}");
            }
        }
        let examples: Vec<&str> = help
            .split("Examples:")
            .nth(1)
            .unwrap_or_else(|| panic!("rpmem {s} --help has no examples:\n{help}"))
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
            .collect();
        assert!(!examples.is_empty(), "rpmem {s} --help");
        for e in examples {
            assert!(page.contains(e), "rpmem-{s}(1) lacks the example {e:?}");
        }
    }
}

#[test]
fn bash_completion_completes_subcommands_and_options() {
    let script = prefix().join("share/bash-completion/completions/rpmem");
    assert!(script.is_file(), "{} not installed", script.display());
    let complete = |words: &str, cword: usize| {
        let prog = format!(
            "source '{}'; COMP_WORDS=({words}); COMP_CWORD={cword}; COMP_LINE='{words}'; \
             COMP_POINT=${{#COMP_LINE}}; _rpmem rpmem \"${{COMP_WORDS[$COMP_CWORD]}}\" \
             \"${{COMP_WORDS[$COMP_CWORD-1]}}\"; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            script.display()
        );
        let out = run(Command::new("bash").arg("-c").arg(prog));
        assert!(out.status.success(), "{out:?}");
        text(&out.stdout)
    };
    let subs = complete("rpmem cr", 1);
    assert_eq!(subs.trim(), "create", "{subs}");
    let all = complete("rpmem ''", 1);
    for s in listed_subcommands() {
        assert!(all.lines().any(|l| l == s), "{s} missing from {all}");
    }
    let opts = complete("rpmem create --la", 2);
    assert_eq!(opts.trim(), "--lanes", "{opts}");
    let shells = complete("rpmem completions ''", 2);
    for sh in ["bash", "zsh", "fish"] {
        assert!(shells.lines().any(|l| l == sh), "{shells}");
    }
}

#[test]
fn fish_completion_completes_subcommands_and_options() {
    let script = prefix().join("share/fish/vendor_completions.d/rpmem.fish");
    assert!(script.is_file(), "{} not installed", script.display());
    if !have_tool("fish") {
        return;
    }
    let prog = format!(
        "source '{}'; complete -C 'rpmem cr'; complete -C 'rpmem info --js'",
        script.display()
    );
    let out = run(Command::new("fish").arg("--no-config").arg("-c").arg(prog));
    let got = text(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        got.lines()
            .any(|l| l.starts_with("create\t") && l.contains("pool set")),
        "{got}"
    );
    assert!(got.lines().any(|l| l.starts_with("--json")), "{got}");
}

#[test]
fn zsh_completion_is_found_by_compinit() {
    let dir = prefix().join("share/zsh/site-functions");
    assert!(dir.join("_rpmem").is_file(), "_rpmem not installed");
    if !have_tool("zsh") {
        return;
    }
    let out = run(Command::new("zsh").arg("-n").arg(dir.join("_rpmem")));
    assert!(out.status.success(), "zsh -n _rpmem: {out:?}");
    let home = tempfile::tempdir().unwrap();
    let prog = format!(
        "fpath=('{}' $fpath); autoload -Uz compinit; compinit -u -d '{}/zcompdump'; \
         print -r -- ${{_comps[rpmem]}}",
        dir.display(),
        home.path().display()
    );
    let out = run(Command::new("zsh")
        .arg("-f")
        .arg("-c")
        .arg(prog)
        .env("HOME", home.path()));
    assert_eq!(text(&out.stdout).trim(), "_rpmem", "{out:?}");
}

fn nohdrs_set(t: &LocalTarget, name: &str) {
    let part = t.dir().join(format!("{name}.part"));
    t.write_poolset(
        &format!("{name}.set"),
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n64M {}\n", part.display()),
    );
}

#[test]
fn create_shows_progress_only_on_a_terminal() {
    let t = LocalTarget::new();
    nohdrs_set(&t, "piped");
    let out = run(Command::new(bin("rpmem"))
        .args(["create", "localhost", "piped.set", "--no-hdrs"])
        .envs(t.env()));
    assert!(out.status.success(), "{out:?}\n{}", t.log());
    assert!(text(&out.stdout).starts_with("created"), "{out:?}");
    assert!(out.stderr.is_empty(), "progress drawn on a pipe: {out:?}");

    if !have_tool("script") {
        return;
    }
    // script(1) gives the command a terminal and copies what it draws.
    let on_tty = |set: &str, extra: &str| {
        nohdrs_set(&t, set);
        let cmdline = format!(
            "{} create localhost {set}.set --no-hdrs {extra}",
            bin("rpmem").display()
        );
        let out = run(Command::new("script")
            .args(["-q", "-e", "-c", &cmdline, "/dev/null"])
            .envs(t.env()));
        assert!(out.status.success(), "{out:?}\n{}", t.log());
        text(&out.stdout)
    };
    let shown = on_tty("tty", "");
    assert!(
        shown.contains("creating tty.set on localhost"),
        "no progress on a terminal: {shown:?}"
    );
    assert!(shown.contains("created"), "{shown:?}");
    // --json keeps even a terminal free of it.
    let shown = on_tty("json", "--json");
    assert!(!shown.contains("creating"), "{shown:?}");
    assert!(shown.contains("\"pool_set\": \"json.set\""), "{shown:?}");
}
