//! Command line (rpmemd(1)) and configuration files.

use std::ffi::OsString;
use std::fs;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{ArgAction, Parser, ValueEnum};
use rpmem_transport::target::{AllowedPeers, IpNet};

use crate::error::{DaemonError, Result};

/// Log levels as rpmemd names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, ValueEnum)]
pub enum LogLevel {
    /// Errors only.
    Err,
    /// Warnings.
    Warn,
    /// Session events (open, close).
    Notice,
    /// Connection events.
    Info,
    /// Everything.
    Debug,
}

impl LogLevel {
    fn parse(s: &str) -> Option<LogLevel> {
        LogLevel::from_str(s, false).ok()
    }
}

/// rpmemd's command line.
#[derive(Debug, Parser)]
#[command(
    name = "rpmemd",
    version,
    about = "rpmem target daemon: serves remote pools to librpmem over the ssh session and TCP lanes",
    after_help = "Configuration files: /etc/rpmemd/rpmemd.conf, then $HOME/.rpmemd.conf (or only --config FILE); \
later files override earlier ones and the command line wins. Lines are 'key = value' with the long option names \
as keys (poolset-dir, log-file, log-level, nthreads, max-lanes, allow-from; persist-apm, persist-general, use-syslog take \
yes/no); '#' starts a comment; $HOME is expanded. A bad line is an error naming file and line (exit 22).

Persistency methods: rpmemd makes every persisted range durable itself before acknowledging it: msync of the \
covering pages, or on persistent memory (MAP_SYNC or device DAX) a CPU cache flush (clwb, clflushopt or \
clflush) and fence. That is the general method (persist-general, always in effect). The appliance method \
(persist-apm) is RDMA's read-after-write without the target CPU: sessions of PMDK's librpmem and our \
fabric sessions get it where every part is persistent memory (or RPMEMD_FORCE_PMEM=1), otherwise rpmemd \
logs why and uses the general method; over our TCP transport every byte passes through rpmemd, so there \
it changes nothing.

Data connections: rpmemd listens on the server address of SSH_CONNECTION and accepts lanes only from its \
client address (127.0.0.1 under rpmem-ssh-local), plus what --allow-from adds; any other connection is closed \
unread and logged. Each must present the session's secret within 5 s in all.

Environment: RPMEMD_FORCE_PMEM=1 uses the persistent-memory path even on ordinary files (for testing)."
)]
pub struct Cli {
    /// Read only this configuration file.
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Remove the pool described by the pool set file SET and exit.
    /// SET may start with '-' (`-r -x.set`) or follow `--` (`-r -- -x.set`).
    #[arg(
        short = 'r',
        long = "remove",
        value_name = "SET",
        allow_hyphen_values = true
    )]
    pub remove: Option<String>,
    /// With --remove: remove even if the pool is inconsistent.
    #[arg(short = 'f', long = "force")]
    pub force: bool,
    /// With --remove: remove the pool set file too.
    #[arg(short = 's', long = "pool-set")]
    pub pool_set: bool,
    /// Number of processing threads (accepted for compatibility; every lane
    /// has its own thread).
    #[arg(short = 't', long = "nthreads", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub nthreads: Option<u32>,
    /// Directory that pool set names are relative to (default $HOME).
    #[arg(long = "poolset-dir", value_name = "DIR")]
    pub poolset_dir: Option<PathBuf>,
    /// Log to this file instead of syslog.
    #[arg(long = "log-file", value_name = "FILE")]
    pub log_file: Option<PathBuf>,
    /// Least severe level logged.
    #[arg(long = "log-level", value_name = "LEVEL")]
    pub log_level: Option<LogLevel>,
    /// Appliance persistency method (RDMA read-after-write): given to PMDK's
    /// librpmem and our fabric sessions on persistent memory; over TCP
    /// rpmemd makes data durable itself either way.
    #[arg(long = "persist-apm")]
    pub persist_apm: bool,
    /// General persistency method: rpmemd makes each persisted range durable
    /// (msync, or cache flush on pmem) before acknowledging it (the default).
    #[arg(long = "persist-general")]
    pub persist_general: bool,
    /// Log to syslog (the default unless a log file is set).
    #[arg(long = "use-syslog")]
    pub use_syslog: bool,
    /// Most lanes granted to one session.
    #[arg(long = "max-lanes", value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub max_lanes: Option<u32>,
    /// Also accept data connections from these addresses or networks
    /// (comma-separated, e.g. 10.0.0.0/8,fd00::5; repeatable); by default
    /// only the ssh session's client address may connect lanes.
    #[arg(long = "allow-from", value_name = "LIST", action = ArgAction::Append, value_parser = parse_allow_list)]
    pub allow_from: Vec<Vec<IpNet>>,
    /// Serve the raw TCP baseline of `rpmem bench` instead of a pool.
    #[arg(long, hide = true)]
    pub bench_echo: bool,
}

impl Cli {
    /// Parses a command line (program name first). `-r -- SET` and
    /// `--remove -- SET` name SET, whatever it looks like; clap alone would
    /// take `--` for the name.
    pub fn try_parse_args(
        args: impl IntoIterator<Item = OsString>,
    ) -> std::result::Result<Cli, clap::Error> {
        let mut args: Vec<OsString> = args.into_iter().collect();
        let mut i = 1;
        while i + 2 < args.len() {
            if (args[i] == "-r" || args[i] == "--remove") && args[i + 1] == "--" {
                let mut joined = OsString::from("--remove=");
                joined.push(&args[i + 2]);
                args.splice(i..i + 3, [joined]);
            }
            i += 1;
        }
        Cli::try_parse_from(args)
    }
}

/// Parses an allow list: addresses and networks separated by commas (and
/// blanks).
fn parse_allow_list(v: &str) -> std::result::Result<Vec<IpNet>, String> {
    let nets = v
        .split([',', ' ', '\t'])
        .filter(|e| !e.is_empty())
        .map(AllowedPeers::parse_entry)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    if nets.is_empty() {
        return Err("an empty list".into());
    }
    Ok(nets)
}

/// The settings in effect after defaults, files and the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// Pool set directory (None when $HOME is unset and nothing set it).
    pub poolset_dir: Option<PathBuf>,
    /// Log file, if any.
    pub log_file: Option<PathBuf>,
    /// Log level.
    pub log_level: LogLevel,
    /// Appliance persistency method requested.
    pub persist_apm: bool,
    /// General persistency method requested.
    pub persist_general: bool,
    /// Log to syslog.
    pub use_syslog: bool,
    /// Processing threads requested.
    pub nthreads: u32,
    /// Lane cap per session.
    pub max_lanes: u32,
    /// Addresses and networks allowed to connect lanes besides the ssh
    /// session's client.
    pub allow_from: Vec<IpNet>,
}

/// Default lane cap.
pub const DEFAULT_MAX_LANES: u32 = 64;
/// System-wide configuration file.
pub const SYSTEM_CONFIG: &str = "/etc/rpmemd/rpmemd.conf";

fn home() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
}

fn expand_home(v: &str) -> Option<PathBuf> {
    if v.contains("$HOME") {
        let h = home()?;
        Some(PathBuf::from(v.replace("$HOME", &h.to_string_lossy())))
    } else {
        Some(PathBuf::from(v))
    }
}

impl Default for Settings {
    fn default() -> Self {
        Settings::default_with_home(home())
    }
}

impl Settings {
    /// The defaults, with the pool set directory `home`.
    pub fn default_with_home(home: Option<PathBuf>) -> Self {
        Settings {
            poolset_dir: home,
            log_file: None,
            log_level: LogLevel::Err,
            persist_apm: false,
            persist_general: true,
            use_syslog: true,
            nthreads: 1,
            max_lanes: DEFAULT_MAX_LANES,
            allow_from: Vec::new(),
        }
    }

    /// Applies one configuration file's text. `key = value` lines, `#`
    /// comments; switches take yes/no.
    pub fn apply_config(&mut self, file: &Path, text: &str) -> Result<()> {
        for (i, raw) in text.lines().enumerate() {
            let err = |msg: String| DaemonError::Config {
                file: file.to_path_buf(),
                line: i + 1,
                msg,
            };
            let line = match raw.find('#') {
                Some(p) => &raw[..p],
                None => raw,
            }
            .trim();
            if line.is_empty() {
                continue;
            }
            let (key, value) = line
                .split_once('=')
                .map(|(k, v)| (k.trim(), v.trim()))
                .ok_or_else(|| err(format!("expected 'key = value', found '{line}'")))?;
            if value.is_empty() {
                return Err(err(format!("'{key}' has no value")));
            }
            let switch = || match value {
                "yes" => Ok(true),
                "no" => Ok(false),
                _ => Err(err(format!("'{key}' takes yes or no, not '{value}'"))),
            };
            let number = || match value.parse::<u32>() {
                Ok(n) if n > 0 => Ok(n),
                _ => Err(err(format!(
                    "'{key}' takes a positive number, not '{value}'"
                ))),
            };
            match key {
                "poolset-dir" => {
                    self.poolset_dir = Some(
                        expand_home(value)
                            .ok_or_else(|| err("$HOME is used but not set".into()))?,
                    )
                }
                "log-file" => {
                    self.log_file = Some(
                        expand_home(value)
                            .ok_or_else(|| err("$HOME is used but not set".into()))?,
                    )
                }
                "log-level" => {
                    self.log_level = LogLevel::parse(value).ok_or_else(|| {
                        err(format!(
                            "unknown log level '{value}' (err, warn, notice, info, debug)"
                        ))
                    })?
                }
                "persist-apm" => self.persist_apm = switch()?,
                "persist-general" => self.persist_general = switch()?,
                "use-syslog" => self.use_syslog = switch()?,
                "nthreads" => self.nthreads = number()?,
                "max-lanes" => self.max_lanes = number()?,
                "allow-from" => self.allow_from = parse_allow_list(value).map_err(err)?,
                other => return Err(err(format!("unknown option '{other}'"))),
            }
        }
        Ok(())
    }

    /// Builds the settings: defaults, then the configuration files (only
    /// `cli.config` when given), then the command line.
    pub fn load(cli: &Cli) -> Result<Settings> {
        Settings::load_from(cli, Path::new(SYSTEM_CONFIG), home().as_deref())
    }

    /// [`Settings::load`] with the system configuration file and the home
    /// directory given (so the order can be tested without touching /etc).
    pub fn load_from(cli: &Cli, system: &Path, home: Option<&Path>) -> Result<Settings> {
        let mut s = Settings::default_with_home(home.map(Path::to_path_buf));
        match &cli.config {
            Some(f) => {
                let text = fs::read_to_string(f).map_err(|e| {
                    DaemonError::io(format!("cannot read configuration file {}", f.display()), e)
                })?;
                s.apply_config(f, &text)?;
            }
            None => {
                let mut files = vec![system.to_path_buf()];
                if let Some(h) = home {
                    files.push(h.join(".rpmemd.conf"));
                }
                for f in files {
                    match fs::read_to_string(&f) {
                        Ok(text) => s.apply_config(&f, &text)?,
                        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                        Err(e) => {
                            return Err(DaemonError::io(
                                format!("cannot read configuration file {}", f.display()),
                                e,
                            ))
                        }
                    }
                }
            }
        }
        if let Some(d) = &cli.poolset_dir {
            s.poolset_dir = Some(d.clone());
        }
        if let Some(f) = &cli.log_file {
            s.log_file = Some(f.clone());
        }
        if let Some(l) = cli.log_level {
            s.log_level = l;
        }
        s.persist_apm |= cli.persist_apm;
        s.persist_general |= cli.persist_general;
        s.use_syslog |= cli.use_syslog;
        if let Some(n) = cli.nthreads {
            s.nthreads = n;
        }
        if let Some(n) = cli.max_lanes {
            s.max_lanes = n;
        }
        if !cli.allow_from.is_empty() {
            s.allow_from = cli.allow_from.concat();
        }
        Ok(s)
    }

    /// Who may connect the lanes of a session whose ssh client is `client`.
    pub fn allowed_peers(&self, client: IpAddr) -> AllowedPeers {
        AllowedPeers::only(client).and(&self.allow_from)
    }

    /// The pool set directory, or a clear error when there is none.
    pub fn poolset_dir(&self) -> Result<&Path> {
        self.poolset_dir.as_deref().ok_or_else(|| {
            DaemonError::Usage(
                "no poolset directory: $HOME is not set and neither --poolset-dir nor a configuration file sets one".into(),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_lines() {
        let mut s = Settings::default();
        s.apply_config(
            Path::new("/x.conf"),
            "# comment\n\npoolset-dir = /srv/sets # trailing\nlog-level=debug\npersist-apm = yes\nuse-syslog = no\nmax-lanes = 8\nnthreads = 3\nlog-file = /tmp/l\n",
        )
        .unwrap();
        assert_eq!(s.poolset_dir.as_deref(), Some(Path::new("/srv/sets")));
        assert_eq!(s.log_level, LogLevel::Debug);
        assert!(s.persist_apm && !s.use_syslog && s.persist_general);
        assert_eq!((s.max_lanes, s.nthreads), (8, 3));
        assert_eq!(s.log_file.as_deref(), Some(Path::new("/tmp/l")));
    }

    #[test]
    fn bad_config_lines_name_file_and_line() {
        for (text, line) in [
            ("bogus = 1\n", 1),
            ("\nuse-syslog = maybe\n", 2),
            ("log-level = loud\n", 1),
            ("poolset-dir\n", 1),
            ("max-lanes = 0\n", 1),
            ("poolset-dir =\n", 1),
        ] {
            let e = Settings::default()
                .apply_config(Path::new("/x.conf"), text)
                .unwrap_err();
            assert!(
                e.to_string().starts_with(&format!("/x.conf:{line}: ")),
                "{text:?}: {e}"
            );
            assert_eq!(e.exit_code(), libc::EINVAL);
        }
    }

    #[test]
    fn allow_from_in_files_and_on_the_command_line() {
        let net = |s: &str| AllowedPeers::parse_entry(s).unwrap();
        let mut s = Settings::default();
        s.apply_config(
            Path::new("/x.conf"),
            "allow-from = 10.0.0.0/8, fd00::1 192.168.1.7\n",
        )
        .unwrap();
        assert_eq!(
            s.allow_from,
            vec![net("10.0.0.0/8"), net("fd00::1"), net("192.168.1.7")]
        );
        let peers = s.allowed_peers("127.0.0.1".parse().unwrap());
        assert!(peers.allows("10.3.4.5".parse().unwrap()));
        assert!(peers.allows("127.0.0.1".parse().unwrap()));
        assert!(!peers.allows("127.0.0.2".parse().unwrap()));
        for bad in [
            "allow-from = host\n",
            "allow-from = 10.0.0.0/40\n",
            "allow-from = ,\n",
        ] {
            let e = Settings::default()
                .apply_config(Path::new("/x.conf"), bad)
                .unwrap_err();
            assert!(e.to_string().starts_with("/x.conf:1: "), "{bad:?}: {e}");
        }
        let cli = parse(&["--allow-from", "10.1.0.0/16,10.2.0.1", "--allow-from=::1"]);
        let d = tempfile::tempdir().unwrap();
        let conf = d.path().join("c.conf");
        fs::write(&conf, "allow-from = 192.168.0.0/16\n").unwrap();
        let s = Settings::load_from(&cli, &conf, None).unwrap();
        assert_eq!(
            s.allow_from,
            vec![net("10.1.0.0/16"), net("10.2.0.1"), net("::1")],
            "the command line replaces the file's list"
        );
        assert!(Cli::try_parse_from(["rpmemd", "--allow-from", "nowhere"]).is_err());
        assert!(Cli::try_parse_from(["rpmemd", "--allow-from", ""]).is_err());
    }

    #[test]
    fn defaults_are_rpmemds() {
        let s = Settings::default();
        assert!(s.persist_general && !s.persist_apm && s.use_syslog);
        assert_eq!(s.log_level, LogLevel::Err);
        assert_eq!(s.max_lanes, DEFAULT_MAX_LANES);
    }

    fn parse(args: &[&str]) -> Cli {
        Cli::try_parse_from(std::iter::once("rpmemd").chain(args.iter().copied())).unwrap()
    }

    #[test]
    fn system_then_home_then_command_line() {
        let d = tempfile::tempdir().unwrap();
        let system = d.path().join("system.conf");
        let home = d.path().join("home");
        fs::create_dir(&home).unwrap();
        fs::write(
            &system,
            "poolset-dir = /sys-dir\nlog-level = warn\nmax-lanes = 5\nnthreads = 2\nuse-syslog = no\n",
        )
        .unwrap();
        fs::write(
            home.join(".rpmemd.conf"),
            "log-level = info\nmax-lanes = 6\npersist-general = no\nlog-file = $HOME/x.log\n",
        )
        .unwrap();
        // Both files: the home file overrides the system one key by key.
        let s = Settings::load_from(&parse(&[]), &system, Some(&home)).unwrap();
        assert_eq!(s.poolset_dir.as_deref(), Some(Path::new("/sys-dir")));
        assert_eq!(s.log_level, LogLevel::Info);
        assert_eq!((s.max_lanes, s.nthreads), (6, 2));
        assert!(!s.use_syslog && !s.persist_general && !s.persist_apm);
        // The command line wins over both, switches included.
        let s = Settings::load_from(
            &parse(&[
                "--poolset-dir",
                "/cli-dir",
                "--log-level",
                "debug",
                "--max-lanes",
                "7",
                "-t",
                "3",
                "--use-syslog",
                "--persist-general",
                "--persist-apm",
                "--log-file",
                "/cli.log",
            ]),
            &system,
            Some(&home),
        )
        .unwrap();
        assert_eq!(s.poolset_dir.as_deref(), Some(Path::new("/cli-dir")));
        assert_eq!(s.log_level, LogLevel::Debug);
        assert_eq!((s.max_lanes, s.nthreads), (7, 3));
        assert!(s.use_syslog && s.persist_general && s.persist_apm);
        assert_eq!(s.log_file.as_deref(), Some(Path::new("/cli.log")));
        // -c FILE: neither default file is read.
        let only = d.path().join("only.conf");
        fs::write(&only, "max-lanes = 9\n").unwrap();
        let s = Settings::load_from(
            &parse(&["-c", only.to_str().unwrap()]),
            &system,
            Some(&home),
        )
        .unwrap();
        assert_eq!(s.max_lanes, 9);
        assert_eq!(s.log_level, LogLevel::Err);
        assert_eq!((s.nthreads, s.use_syslog), (1, true));
        // Missing default files are fine; a bad line in the system file is
        // an error naming it.
        let s = Settings::load_from(&parse(&[]), &d.path().join("none"), None).unwrap();
        assert_eq!(s, Settings::default_with_home(None));
        fs::write(&system, "max-lanes = 5\nnthreads = -1\n").unwrap();
        let e = Settings::load_from(&parse(&[]), &system, Some(&home)).unwrap_err();
        assert!(
            e.to_string()
                .starts_with(&format!("{}:2: ", system.display())),
            "{e}"
        );
        assert_eq!(e.exit_code(), libc::EINVAL);
    }

    #[test]
    fn help_documents_persistency_methods_files_and_the_pmem_switch() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "--persist-apm",
            "--persist-general",
            "--nthreads",
            "/etc/rpmemd/rpmemd.conf",
            "$HOME/.rpmemd.conf",
            "the command line wins",
            "clwb",
            "general method",
            "changes nothing",
            "RPMEMD_FORCE_PMEM=1",
        ] {
            assert!(help.contains(needle), "{needle}: {help}");
        }
    }

    #[test]
    fn remove_names_may_look_like_options() {
        let remove = |args: &[&str]| {
            Cli::try_parse_args(
                std::iter::once("rpmemd")
                    .chain(args.iter().copied())
                    .map(OsString::from),
            )
            .map(|c| (c.remove, c.force))
            .map_err(|e| e.kind())
        };
        let name = |n: &str| Ok((Some(n.to_string()), false));
        assert_eq!(remove(&["-r", "-x.set"]), name("-x.set"));
        assert_eq!(remove(&["--remove", "-x.set"]), name("-x.set"));
        assert_eq!(remove(&["-r", "--", "-x.set"]), name("-x.set"));
        assert_eq!(remove(&["--remove", "--", "--"]), name("--"));
        assert_eq!(remove(&["-r", "--"]), name("--"));
        assert_eq!(remove(&["--remove=--force"]), name("--force"));
        assert_eq!(
            remove(&["-r", "--", "-f", "-f"]),
            Ok((Some("-f".into()), true))
        );
        assert!(remove(&["-r", "--", "a", "b"]).is_err());
        assert!(remove(&["-r"]).is_err());
    }

    #[test]
    fn command_line_parses_rpmemd_options() {
        let cli = Cli::try_parse_from([
            "rpmemd",
            "-r",
            "a.set",
            "-f",
            "-s",
            "-t",
            "4",
            "--poolset-dir=/p",
            "--log-level",
            "info",
            "--persist-apm",
            "--max-lanes",
            "2",
        ])
        .unwrap();
        assert_eq!(cli.remove.as_deref(), Some("a.set"));
        assert!(cli.force && cli.pool_set && cli.persist_apm);
        assert_eq!(cli.nthreads, Some(4));
        assert_eq!(cli.log_level, Some(LogLevel::Info));
        assert!(Cli::try_parse_from(["rpmemd", "--log-level", "loud"]).is_err());
        assert!(Cli::try_parse_from(["rpmemd", "--persist-apm=yes"]).is_err());
        assert!(Cli::try_parse_from(["rpmemd", "-t", "0"]).is_err());
        assert!(Cli::try_parse_from(["rpmemd", "--nthreads=x"]).is_err());
        assert_eq!(parse(&["--nthreads=2"]).nthreads, Some(2));
        let c = parse(&["--use-syslog", "--persist-general", "-c", "/f"]);
        assert!(c.use_syslog && c.persist_general && !c.persist_apm);
        assert_eq!(c.config.as_deref(), Some(Path::new("/f")));
        let c = parse(&["--config=/g", "--remove=s", "--force", "--pool-set"]);
        assert_eq!(c.config.as_deref(), Some(Path::new("/g")));
        assert!(c.force && c.pool_set && c.remove.as_deref() == Some("s"));
    }
}
