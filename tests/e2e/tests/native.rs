//! What `make install` gives C, Rust and shell users besides the binaries:
//! manual pages that render without warnings, shell completions that
//! complete, and the progress display of long `rpmem` commands.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{bin, compile_c, have_tool, prefix, run_with_timeout, workspace_root, LocalTarget};

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

#[test]
fn create_shows_progress_only_on_a_terminal() {
    let t = LocalTarget::new();
    t.write_nohdrs_set("piped", "64M");
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
        t.write_nohdrs_set(set, "64M");
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

/// The hand-written pages of `docs/man`, as (section, name).
fn written_pages() -> Vec<(String, String)> {
    let dir = workspace_root().join("docs").join("man");
    let mut pages: Vec<(String, String)> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter_map(|f| {
            let (name, sec) = f.rsplit_once('.')?;
            Some((sec.to_string(), name.to_string()))
        })
        .collect();
    pages.sort();
    pages
}

/// `man -M <prefix>/share/man SECTION NAME`, as a user would run it.
fn man_by_name(section: &str, name: &str) -> String {
    let out = run(Command::new("man")
        .arg("-M")
        .arg(man_dir())
        .args([section, name])
        .env("MANWIDTH", "80")
        .env("MANPAGER", "cat")
        .env("PAGER", "cat"));
    assert!(
        out.status.success(),
        "man -M {} {section} {name}: {out:?}",
        man_dir().display()
    );
    strip_overstrike(&text(&out.stdout))
}

#[test]
fn written_pages_are_installed_and_render_without_warnings() {
    let pages = written_pages();
    let want: Vec<(String, String)> = [
        ("1", "rpmemd"),
        ("3", "rpmem_check_version"),
        ("3", "rpmem_create"),
        ("3", "rpmem_errormsg"),
        ("3", "rpmem_persist"),
        ("5", "poolset"),
        ("7", "librpmem"),
    ]
    .iter()
    .map(|(s, n)| (s.to_string(), n.to_string()))
    .collect();
    assert_eq!(pages, want);
    if !have_tool("man") || !have_tool("groff") {
        return;
    }
    for (sec, name) in &pages {
        let installed = man_dir().join(format!("man{sec}/{name}.{sec}"));
        assert!(installed.is_file(), "{} not installed", installed.display());
        let shown = render_clean(&installed);
        assert!(
            shown.starts_with(&format!("{}({sec})", name.to_uppercase())),
            "{shown}"
        );
    }
}

#[test]
fn every_function_has_a_page_by_its_name() {
    if !have_tool("man") {
        return;
    }
    // The exported functions, from the version script, and the page each
    // one lands on.
    let functions = e2e::exported_functions();
    assert_eq!(functions.len(), 12, "{functions:?}");
    for f in functions.iter().map(String::as_str) {
        let page = match f {
            "rpmem_open" | "rpmem_set_attr" | "rpmem_close" | "rpmem_remove" => {
                "RPMEM_CREATE".to_string()
            }
            "rpmem_deep_persist" | "rpmem_flush" | "rpmem_drain" | "rpmem_read" => {
                "RPMEM_PERSIST".to_string()
            }
            other => other.to_uppercase(),
        };
        let shown = man_by_name("3", f);
        assert!(shown.starts_with(&format!("{page}(3)")), "{f}: {shown}");
        let name_line = shown.split("SYNOPSIS").next().unwrap_or_default();
        assert!(name_line.contains(f), "{f} missing from NAME of {page}");
        assert!(shown.contains(&format!("{f}(")), "{f} has no prototype");
    }
    for (sec, name) in [
        ("7", "librpmem"),
        ("1", "rpmemd"),
        ("5", "poolset"),
        ("1", "rpmem"),
    ] {
        let shown = man_by_name(sec, name);
        assert!(
            shown.to_lowercase().starts_with(&format!("{name}({sec})")),
            "{shown}"
        );
    }
}

/// The plain-text lines of a section of a rendered page, up to the next
/// section heading.
fn section<'a>(page: &'a str, heading: &str) -> Vec<&'a str> {
    page.lines()
        .skip_while(|l| *l != heading)
        .skip(1)
        .take_while(|l| l.is_empty() || l.starts_with(' '))
        .collect()
}

/// String literals in the Rust sources under `dir` that start with `prefix`
/// and are environment variable names.
fn env_names_in(dir: &Path, prefix: &str) -> Vec<String> {
    let mut names = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        // The documentation examples' sandbox reads RPMEM_PREFIX, which is
        // the test suite's variable, not the library's.
        if p.extension().is_none_or(|x| x != "rs") || p.ends_with("doc_support.rs") {
            continue;
        }
        let src = std::fs::read_to_string(&p).unwrap();
        for piece in src.split('"').skip(1).step_by(2) {
            if piece.starts_with(prefix)
                && piece.len() > prefix.len()
                && piece.chars().all(|c| c.is_ascii_uppercase() || c == '_')
                && !names.iter().any(|n| n == piece)
            {
                names.push(piece.to_string());
            }
        }
    }
    names
}

#[test]
fn pages_cover_every_variable_and_option_the_code_reads() {
    if !have_tool("man") {
        return;
    }
    let root = workspace_root();
    let lib = render(&man_dir().join("man7/librpmem.7"));
    let env = section(&lib, "ENVIRONMENT").join("\n");
    let transport = root.join("crates/rpmem-transport/src");
    let mut lib_vars = env_names_in(&root.join("crates/rpmem/src"), "RPMEM_");
    lib_vars.extend(env_names_in(&transport, "RPMEM_"));
    assert!(lib_vars.len() >= 9, "{lib_vars:?}");
    for v in lib_vars {
        assert!(env.contains(&v), "librpmem(7) ENVIRONMENT lacks {v}");
    }
    let daemon = render(&man_dir().join("man1/rpmemd.1"));
    let env = section(&daemon, "ENVIRONMENT").join("\n");
    let mut daemon_vars = env_names_in(&root.join("crates/rpmemd/src"), "RPMEMD_");
    daemon_vars.extend(env_names_in(
        &root.join("crates/rpmem-storage/src"),
        "RPMEMD_",
    ));
    daemon_vars.extend(env_names_in(&transport, "RPMEMD_"));
    assert!(!daemon_vars.is_empty());
    for v in daemon_vars {
        assert!(env.contains(&v), "rpmemd(1) ENVIRONMENT lacks {v}");
    }
    // Every option of rpmemd's parser, under OPTIONS.
    let out = run(Command::new(bin("rpmemd")).arg("--help"));
    let help = text(&out.stdout);
    let options = section(&daemon, "OPTIONS").join("\n");
    let mut seen = 0;
    for word in help.split_whitespace() {
        let opt = word.trim_end_matches(',');
        if opt.starts_with("--")
            && opt.len() > 2
            && opt
                .chars()
                .skip(2)
                .all(|c| c.is_ascii_lowercase() || c == '-')
        {
            assert!(options.contains(opt), "rpmemd(1) OPTIONS lacks {opt}");
            seen += 1;
        }
    }
    assert!(seen >= 12, "only {seen} options in rpmemd --help:\n{help}");
}

/// The complete program of librpmem(7)'s EXAMPLE section.
fn librpmem7_example() -> String {
    let out = run(Command::new("man")
        .args(["-E", "ascii", "-l"])
        .arg(man_dir().join("man7/librpmem.7"))
        .env("MANWIDTH", "200"));
    let page = strip_overstrike(&text(&out.stdout));
    let lines = section(&page, "EXAMPLE");
    let start = lines
        .iter()
        .position(|l| l.trim() == "#include <errno.h>")
        .expect("the example starts with #include <errno.h>");
    let indent = lines[start].len() - lines[start].trim_start().len();
    let mut src = String::new();
    for l in &lines[start..] {
        src.push_str(l.get(indent..).unwrap_or(""));
        src.push('\n');
        if l.len() == indent + 1 && l.ends_with('}') {
            return src;
        }
    }
    panic!("the example does not end with a closing brace:\n{src}");
}

#[test]
fn librpmem7_example_compiles_and_runs() {
    if !have_tool("man") {
        return;
    }
    let src = librpmem7_example();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("librpmem7_example.c");
    std::fs::write(&file, &src).unwrap();
    let exe = compile_c(&file);

    let t = LocalTarget::new();
    let part = t.dir().join("example.part");
    t.write_poolset(
        "example.set",
        &format!("PMEMPOOLSET\n32M {}\n", part.display()),
    );
    let go = || {
        let out = run(Command::new(&exe)
            .args(["localhost", "example.set"])
            .envs(t.env()));
        assert!(out.status.success(), "{out:?}\n{}", t.log());
        text(&out.stdout)
    };
    // Created the first time, opened the second (its create fails with EEXIST).
    for _ in 0..2 {
        let out = go();
        assert!(out.contains("signature EXAMPLE"), "{out}");
        assert!(
            out.contains("the target holds: hello from process"),
            "{out}"
        );
    }
    let bytes = std::fs::read(&part).unwrap();
    assert_eq!(&bytes[..7], b"EXAMPLE", "header signature on the target");
    assert!(bytes[4096..].starts_with(b"hello from process "));
}

#[test]
fn library_logs_its_version_at_level_2() {
    let pc_dir = prefix().join("lib/pkgconfig");
    let version = if have_tool("pkg-config") {
        let out = run(Command::new("pkg-config")
            .args(["--modversion", "librpmem"])
            .env("PKG_CONFIG_PATH", &pc_dir));
        assert!(out.status.success(), "{out:?}");
        text(&out.stdout).trim().to_string()
    } else {
        return;
    };
    let cargo = std::fs::read_to_string(workspace_root().join("Cargo.toml")).unwrap();
    assert!(
        cargo.contains(&format!("version = \"{version}\"")),
        "pkg-config says {version}"
    );
    // A C program's first librpmem call (a remove that fails) at level 2.
    let t = LocalTarget::new();
    let log = t.dir().join("client.log");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("remove_missing.c");
    std::fs::write(
        &file,
        "#include <librpmem.h>\nint main(void) { return rpmem_remove(\"localhost\", \"none.set\", 0) == 0; }\n",
    )
    .unwrap();
    let exe = compile_c(&file);
    for (level, logged) in [("2", true), ("1", false)] {
        let out = run(Command::new(&exe)
            .envs(t.env())
            .env("RPMEM_LOG_LEVEL", level)
            .env("RPMEM_LOG_FILE", &log));
        assert!(out.status.success(), "{out:?}");
        let lines = std::fs::read_to_string(&log).unwrap();
        let want = format!("<librpmem>: <2> [rpmem::log] rpmem {version}, pid ");
        assert_eq!(lines.contains(&want), logged, "level {level}:\n{lines}");
        assert!(lines.contains("rpmem_remove"), "level {level}:\n{lines}");
    }
}
