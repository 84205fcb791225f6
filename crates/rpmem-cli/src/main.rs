//! `rpmem`: a command-line tool for remote pools.
//!
//! `rpmem demo` shows the whole path working on one machine; `create`, `info`
//! and `rm` manage pools on a target reached the way librpmem reaches it
//! (`RPMEM_SSH`, `RPMEM_CMD`). Errors are printed as one line,
//! `rpmem: <message>`, and the exit status is the errno of the failure (1 when
//! there is none).

mod bench;
mod commands;
mod demo;
mod error;
mod generate;
mod units;

use clap::{Parser, Subcommand};

use error::CliError;

/// Command line of `rpmem`.
#[derive(Debug, Parser)]
#[command(
    name = "rpmem",
    version,
    about = "Create, inspect and remove remote persistent-memory pools",
    long_about = "Create, inspect and remove remote persistent-memory pools.\n\n\
                  rpmem manages pools on a target node running rpmemd, reached the way \
                  librpmem reaches it, and shows and measures the whole replication path \
                  on one machine (demo, bench).",
    after_help = "The target is reached by running $RPMEM_SSH (default ssh), which starts \
                  $RPMEM_CMD (default rpmemd) on it.

Examples:
  rpmem demo
  export RPMEM_CMD='rpmemd --poolset-dir=/srv/pools'
  rpmem create node1 pool.set --size 1G --lanes 4
  rpmem info node1 pool.set --json
  rpmem rm node1 pool.set"
)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
enum Command {
    /// Run a self-contained demonstration on this machine: create a pool,
    /// persist a pattern, read it back, verify, close and remove it.
    #[command(after_help = "Examples:
  rpmem demo
  rpmem demo --size 256M --lanes 8")]
    Demo(demo::DemoArgs),
    /// Create the pool described by a pool set file on the target.
    #[command(after_help = "Examples:
  rpmem create node1 pool.set --lanes 4
  rpmem create alice@node1:2222 pool.set --signature MYAPP
  rpmem create node1 nohdrs.set --no-hdrs --size 1G --json")]
    Create(commands::CreateArgs),
    /// Open a pool and print its attributes, lanes and header state.
    #[command(after_help = "Examples:
  rpmem info node1 pool.set
  rpmem info node1 pool.set --lanes 8 --json")]
    Info(commands::InfoArgs),
    /// Remove a pool's part files (and, with --pool-set, its pool set file).
    #[command(after_help = "Examples:
  rpmem rm node1 pool.set
  rpmem rm node1 pool.set --force --pool-set")]
    Rm(commands::RmArgs),
    /// Measure every figure beside a raw TCP floor between the same
    /// endpoints, the two taking turns in short rounds.
    #[command(after_help = "Examples:
  rpmem bench
  rpmem bench --rounds 5 --duration 0.5 --json --plot bench.svg
  rpmem bench node1 bench.set --size 1G")]
    Bench(bench::BenchArgs),
    /// Print a shell completion script on standard output.
    #[command(after_help = "Examples:
  rpmem completions bash > ~/.local/share/bash-completion/completions/rpmem
  rpmem completions zsh > ~/.zfunc/_rpmem
  rpmem completions fish > ~/.config/fish/completions/rpmem.fish")]
    Completions(generate::CompletionsArgs),
    /// Write the manual pages rpmem(1) and rpmem-SUBCOMMAND(1) into a
    /// directory (used by `make install`).
    #[command(
        hide = true,
        after_help = "Examples:
  rpmem man-pages /usr/local/share/man/man1"
    )]
    ManPages(generate::ManArgs),
}

fn run(cli: Cli) -> error::Result<()> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Create(a) => commands::create(a),
        Command::Info(a) => commands::info(a),
        Command::Rm(a) => commands::rm(a),
        Command::Bench(a) => bench::run(a),
        Command::Completions(a) => generate::completions(a),
        Command::ManPages(a) => generate::man_pages(a),
    }
}

fn main() {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            use clap::error::ErrorKind;
            if matches!(
                e.kind(),
                ErrorKind::DisplayHelp
                    | ErrorKind::DisplayVersion
                    | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
            ) {
                e.exit();
            }
            // clap's message without its usage block, on one line.
            let text = e.render().to_string();
            let msg = text
                .lines()
                .take_while(|l| !l.starts_with("Usage:"))
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect::<Vec<_>>()
                .join(" ");
            let first = msg.strip_prefix("error: ").unwrap_or(&msg);
            eprintln!("rpmem: {first} (try 'rpmem --help')");
            std::process::exit(CliError::Usage(String::new()).exit_code());
        }
    };
    if let Err(e) = run(cli) {
        let msg = e.to_string().replace('\n', " ");
        eprintln!("rpmem: {msg}");
        std::process::exit(e.exit_code());
    }
}
