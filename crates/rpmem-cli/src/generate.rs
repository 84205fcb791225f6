//! Shell completions and manual pages, generated from the clap definition of
//! the command line so that neither can drift from what the parser accepts.
//!
//! `rpmem completions SHELL` prints a completion script; `make install` runs
//! it for bash, zsh and fish, and runs the hidden `rpmem man-pages DIR` to
//! write rpmem(1) and one page per subcommand (rpmem-create(1), ...).

use std::fs;
use std::path::PathBuf;

use clap::{Args, Command, CommandFactory};
use clap_complete::Shell;
use clap_mangen::Man;
use roff::{bold, roman, Roff};

use crate::error::{CliError, Result};

/// The line that starts the examples of an `after_help` text; what follows
/// it becomes the EXAMPLES section of the manual page.
pub const EXAMPLES: &str = "Examples:";

/// Arguments of `rpmem completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// Shell to write the completion script for
    #[arg(value_enum)]
    pub shell: Shell,
}

/// Arguments of `rpmem man-pages`.
#[derive(Debug, Args)]
pub struct ManArgs {
    /// Directory to write rpmem.1 and rpmem-SUBCOMMAND.1 into (created if missing)
    pub dir: PathBuf,
}

/// `rpmem completions`: the script on stdout.
pub fn completions(a: CompletionsArgs) -> Result<()> {
    let mut cmd = crate::Cli::command();
    clap_complete::generate(a.shell, &mut cmd, "rpmem", &mut std::io::stdout());
    Ok(())
}

/// `rpmem man-pages`: one page for the command and one per visible subcommand.
pub fn man_pages(a: ManArgs) -> Result<()> {
    let what = |e| {
        CliError::io(
            format!("cannot write manual pages to {}", a.dir.display()),
            e,
        )
    };
    fs::create_dir_all(&a.dir).map_err(what)?;
    let mut cmd = crate::Cli::command().disable_help_subcommand(true);
    cmd.build();
    let subs: Vec<Command> = cmd
        .get_subcommands()
        .filter(|s| !s.is_hide_set())
        .cloned()
        .collect();
    let sub_names: Vec<String> = subs.iter().map(|s| page_name(s).to_string()).collect();
    for sub in &subs {
        let text = page(sub, &[], &sub_see_also(&sub_names, page_name(sub)))?;
        let path = a.dir.join(format!("{}.1", page_name(sub)));
        fs::write(&path, text).map_err(what)?;
    }
    let text = page(&cmd, &top_sections(), &top_see_also(&sub_names))?;
    fs::write(a.dir.join("rpmem.1"), text).map_err(what)?;
    Ok(())
}

/// `rpmem-create` for the subcommand, `rpmem` for the command itself.
fn page_name(cmd: &Command) -> &str {
    cmd.get_display_name().unwrap_or_else(|| cmd.get_name())
}

/// A hand-written section: its heading and paragraphs (each a list of
/// tagged items when the tag is not empty).
struct Section {
    heading: &'static str,
    items: Vec<(String, String)>,
}

fn top_sections() -> Vec<Section> {
    let env = |name: &str, what: &str| (name.to_string(), what.to_string());
    vec![
        Section {
            heading: "ENVIRONMENT",
            items: vec![
                env(
                    "RPMEM_SSH",
                    "The ssh client used to reach the target (default ssh). \
                     rpmem-ssh-local stands in for it on a single machine.",
                ),
                env(
                    "RPMEM_CMD",
                    "The command run on the target (default rpmemd), for example \
                     \"rpmemd --poolset-dir=/srv/pools\".",
                ),
                env(
                    "RPMEM_LOG_LEVEL, RPMEM_LOG_FILE",
                    "The library's log, from 1 (errors) to 4 (every data-path call).",
                ),
                env(
                    "",
                    "Every variable of librpmem(7) is honoured, as by a C application.",
                ),
            ],
        },
        Section {
            heading: "EXIT STATUS",
            items: vec![(
                String::new(),
                "0 on success; otherwise the errno of the failure, for example 2 (ENOENT) \
                 for a missing pool set, 17 (EEXIST) for a pool that exists, 22 (EINVAL) \
                 for a bad argument, 104 (ECONNRESET) when the target cannot be reached; \
                 1 when there is no errno. The reason is printed as one line, \
                 \"rpmem: <message>\", on standard error."
                    .to_string(),
            )],
        },
    ]
}

fn top_see_also(subs: &[String]) -> Vec<String> {
    let mut v: Vec<String> = subs.to_vec();
    v.extend(["rpmemd", "librpmem", "poolset"].map(String::from));
    v
}

fn sub_see_also(subs: &[String], this: &str) -> Vec<String> {
    let mut v = vec!["rpmem".to_string()];
    v.extend(subs.iter().filter(|s| *s != this).cloned());
    v.extend(["rpmemd", "librpmem", "poolset"].map(String::from));
    v
}

/// Section number of a page named in SEE ALSO.
fn section_of(name: &str) -> u8 {
    match name {
        "librpmem" => 7,
        "poolset" => 5,
        _ => 1,
    }
}

/// Splits an `after_help` text into its prose and its example lines.
fn split_after_help(cmd: &Command) -> (Vec<String>, Vec<String>) {
    let text = cmd
        .get_after_long_help()
        .or_else(|| cmd.get_after_help())
        .map(|s| s.to_string())
        .unwrap_or_default();
    match text.split_once(EXAMPLES) {
        Some((prose, ex)) => (
            prose.lines().map(str::to_string).collect(),
            ex.lines()
                .map(|l| l.strip_prefix("  ").unwrap_or(l).to_string())
                .skip_while(|l| l.trim().is_empty())
                .collect(),
        ),
        None => (text.lines().map(str::to_string).collect(), Vec::new()),
    }
}

/// Renders one page: clap_mangen's title, name, synopsis, description,
/// options and subcommands, then the examples of the help text and the
/// given sections.
fn page(cmd: &Command, sections: &[Section], see_also: &[String]) -> Result<Vec<u8>> {
    let man = Man::new(cmd.clone())
        .source(format!("rpmem {}", env!("CARGO_PKG_VERSION")))
        .manual("rpmem manual");
    let mut out = Vec::new();
    let io = |e| CliError::io("cannot render a manual page", e);
    man.render_title(&mut out).map_err(io)?;
    // No hyphenation: command names and options must not break across lines.
    out.extend_from_slice(b".nh\n");
    man.render_name_section(&mut out).map_err(io)?;
    man.render_synopsis_section(&mut out).map_err(io)?;
    man.render_description_section(&mut out).map_err(io)?;
    if cmd.get_arguments().any(|a| !a.is_hide_set()) {
        man.render_options_section(&mut out).map_err(io)?;
    }
    if cmd.get_subcommands().any(|s| !s.is_hide_set()) {
        man.render_subcommands_section(&mut out).map_err(io)?;
    }
    let (prose, examples) = split_after_help(cmd);
    let mut r = Roff::new();
    let prose: Vec<&String> = prose.iter().filter(|l| !l.trim().is_empty()).collect();
    if !prose.is_empty() {
        r.control("SH", ["NOTES"]);
        for l in prose {
            r.text([roman(l.trim())]);
        }
    }
    if !examples.is_empty() {
        r.control("SH", ["EXAMPLES"]);
        r.control("PP", []);
        r.control("nf", []);
        r.control("RS", ["4"]);
        for l in &examples {
            r.text([roman(l.as_str())]);
        }
        r.control("RE", []);
        r.control("fi", []);
    }
    for s in sections {
        r.control("SH", [s.heading]);
        for (tag, text) in &s.items {
            if tag.is_empty() {
                r.control("PP", []);
            } else {
                r.control("TP", []);
                r.text([bold(tag.as_str())]);
            }
            r.text([roman(text.as_str())]);
        }
    }
    r.control("SH", ["SEE ALSO"]);
    let mut refs = Vec::new();
    for (i, name) in see_also.iter().enumerate() {
        let sep = if i + 1 == see_also.len() { "" } else { "," };
        refs.push(bold(name.as_str()));
        refs.push(roman(format!("({}){sep} ", section_of(name))));
    }
    r.text(refs);
    out.extend_from_slice(r.render().as_bytes());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_has_examples() {
        let mut cmd = crate::Cli::command();
        cmd.build();
        let mut all = vec![cmd.clone()];
        // clap's own `help` subcommand only prints the others' help.
        all.extend(
            cmd.get_subcommands()
                .filter(|c| c.get_name() != "help")
                .cloned(),
        );
        for c in all {
            let (_, ex) = split_after_help(&c);
            assert!(
                ex.iter().any(|l| l.starts_with("rpmem")),
                "{} has no example in its --help",
                page_name(&c)
            );
        }
    }
}
