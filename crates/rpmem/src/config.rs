//! Settings of the engine: which ssh client and remote command to run, lane
//! limits, transport switches, time limits. [`Config::from_env`] reads the
//! librpmem environment variables; the Rust API may set them explicitly.

use std::time::Duration;

use rpmem_transport::spin;

use crate::error::{Error, Result};
use crate::MAX_LANES;

/// Settings for connecting to targets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The ssh client program (`RPMEM_SSH`, default `ssh`): one program name,
    /// never split into words.
    pub ssh: String,
    /// Command run on the target (`RPMEM_CMD`, default `rpmemd`), interpreted
    /// by the target's shell. `|` separates alternatives used round-robin.
    pub cmd: String,
    /// Most lanes to open (`RPMEM_MAX_NLANES`).
    pub max_lanes: u32,
    /// How many flushes a lane may have in flight before flush waits
    /// (`RPMEM_WORK_QUEUE_SIZE`).
    pub work_queue_size: usize,
    /// Whether the TCP transport may be used (`RPMEM_ENABLE_SOCKETS`, default on).
    pub enable_sockets: bool,
    /// Whether libfabric's verbs provider may be used (`RPMEM_ENABLE_VERBS`,
    /// default on).
    pub enable_verbs: bool,
    /// Which transport to use (`RPMEM_TRANSPORT`: `auto`, `tcp` or `fabric`;
    /// `None` is `auto`). Checked when a pool is created or opened.
    pub transport: Option<String>,
    /// The libfabric provider for the fabric transport
    /// (`RPMEM_FABRIC_PROVIDER`; `None`: the best one offered).
    pub fabric_provider: Option<String>,
    /// How long a data-path call waits for the target before failing with
    /// ECONNRESET (`RPMEM_TIMEOUT_MS`, default 5000).
    pub io_timeout: Duration,
    /// How long `rpmem_create` and `rpmem_open` may take, from starting the
    /// ssh client to the daemon's answer, and `rpmem_remove` to its end
    /// (`RPMEM_OPEN_TIMEOUT_MS`, default 60000; 0 or `None`: no limit).
    /// Past it they fail with ETIMEDOUT.
    pub open_timeout: Option<Duration>,
    /// How long a lane busy-polls for a reply before parking in the kernel
    /// (`RPMEM_SPIN_US`, default 100 µs; 0 disables). Waking a parked thread
    /// costs ~100 µs on small VMs, more than a loopback round trip.
    pub spin: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            ssh: "ssh".into(),
            cmd: "rpmemd".into(),
            max_lanes: MAX_LANES,
            work_queue_size: 1024,
            enable_sockets: true,
            enable_verbs: true,
            transport: None,
            fabric_provider: None,
            io_timeout: Duration::from_secs(5),
            open_timeout: Some(Duration::from_secs(60)),
            spin: spin::DEFAULT_SPIN,
        }
    }
}

fn env_nonempty(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn env_bool(name: &str, default: bool) -> bool {
    match env_nonempty(name).as_deref() {
        None => default,
        Some("0") => false,
        Some(_) => true,
    }
}

fn env_num<T: std::str::FromStr>(name: &str) -> Option<T> {
    env_nonempty(name).and_then(|v| v.trim().parse().ok())
}

impl Config {
    /// Reads the librpmem environment variables over the defaults. Malformed
    /// numbers are ignored, as librpmem did.
    pub fn from_env() -> Config {
        let d = Config::default();
        Config {
            ssh: env_nonempty("RPMEM_SSH").unwrap_or(d.ssh),
            cmd: env_nonempty("RPMEM_CMD").unwrap_or(d.cmd),
            max_lanes: env_num::<u32>("RPMEM_MAX_NLANES")
                .filter(|n| *n > 0)
                .map_or(d.max_lanes, |n| n.min(MAX_LANES)),
            work_queue_size: env_num::<usize>("RPMEM_WORK_QUEUE_SIZE")
                .filter(|n| *n > 0)
                .unwrap_or(d.work_queue_size),
            enable_sockets: env_bool("RPMEM_ENABLE_SOCKETS", d.enable_sockets),
            enable_verbs: env_bool("RPMEM_ENABLE_VERBS", d.enable_verbs),
            transport: env_nonempty("RPMEM_TRANSPORT"),
            fabric_provider: env_nonempty("RPMEM_FABRIC_PROVIDER"),
            io_timeout: env_num::<u64>("RPMEM_TIMEOUT_MS")
                .filter(|n| *n > 0)
                .map_or(d.io_timeout, Duration::from_millis),
            open_timeout: match env_num::<u64>("RPMEM_OPEN_TIMEOUT_MS") {
                None => d.open_timeout,
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
            },
            spin: spin::window_from_env(spin::INITIATOR_SPIN_VAR),
        }
    }
}

/// A target node address: `[user@]host[:port]`, with IPv6 as `[addr]:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Login name, if given.
    pub user: Option<String>,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// ssh port, if given.
    pub port: Option<u16>,
    /// Whether the host was written as a bracketed IPv6 address.
    pub ipv6: bool,
}

/// Whether `u` can be a login name. Anything else could be read by ssh as an
/// option or expanded in its configuration (`%r`), so it never reaches ssh.
fn valid_user(u: &str) -> bool {
    let body = u.strip_suffix('$').unwrap_or(u);
    !body.is_empty()
        && !body.starts_with('-')
        && !body.starts_with('@')
        && body
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '-' | '@'))
}

/// Whether `h` can be a host name, an IPv4 address or an IPv6 zone.
fn valid_host(h: &str) -> bool {
    !h.is_empty()
        && !h.starts_with('-')
        && h.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

/// Whether `h` is an IPv6 address, optionally with a `%zone` suffix.
fn valid_ipv6(h: &str) -> bool {
    let (addr, zone) = match h.split_once('%') {
        Some((a, z)) => (a, Some(z)),
        None => (h, None),
    };
    addr.parse::<std::net::Ipv6Addr>().is_ok() && zone.is_none_or(valid_host)
}

impl Target {
    /// Parses `[user@]host[:port]`. User and host names are limited to the
    /// characters such names have, so neither can reach ssh as an option.
    pub fn parse(s: &str) -> Result<Target> {
        let bad = |why: &str| Error::InvalidArgument(format!("invalid target '{s}': {why}"));
        if s.is_empty() {
            return Err(bad("empty"));
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad("contains white space"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(bad("empty user name")),
            None => (None, s),
        };
        let (host, port, ipv6) = if let Some(inner) = rest.strip_prefix('[') {
            let (addr, after) = inner.split_once(']').ok_or_else(|| bad("unclosed '['"))?;
            let port = match after {
                "" => None,
                p => Some(p.strip_prefix(':').ok_or_else(|| bad("junk after ']'"))?),
            };
            (addr, port, true)
        } else {
            match rest.split_once(':') {
                Some((h, p)) => (h, Some(p), false),
                None => (rest, None, false),
            }
        };
        if let Some(u) = &user {
            if !valid_user(u) {
                return Err(bad(&format!(
                    "'{u}' is not a user name (letters, digits, '.', '_', '-', '@', a final '$'; \
                     not starting with '-')"
                )));
            }
        }
        let host_ok = if ipv6 {
            valid_ipv6(host)
        } else {
            valid_host(host)
        };
        if !host_ok {
            return Err(bad(&format!(
                "'{host}' is not a host name or address (letters, digits, '.', '_', '-'; \
                 not starting with '-')"
            )));
        }
        let port = match port {
            None => None,
            Some(p) => Some(
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| bad("bad port number"))?,
            ),
        };
        Ok(Target {
            user,
            host: host.to_string(),
            port,
            ipv6,
        })
    }

    /// The ssh destination argument: `[user@]host`.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_target_forms() {
        let t = Target::parse("alice@node1:2222").unwrap();
        assert_eq!(t.user.as_deref(), Some("alice"));
        assert_eq!(t.host, "node1");
        assert_eq!(t.port, Some(2222));
        assert!(!t.ipv6);
        let t = Target::parse("localhost").unwrap();
        assert_eq!((t.user, t.host.as_str(), t.port), (None, "localhost", None));
        let t = Target::parse("[::1]:22").unwrap();
        assert_eq!((t.host.as_str(), t.port, t.ipv6), ("::1", Some(22), true));
        let t = Target::parse("bob@[fe80::1]").unwrap();
        assert_eq!(t.destination(), "bob@fe80::1");
        for ok in [
            "ad.user@corp.example@host",
            "machine$@10.0.0.1",
            "user_1-x@node-1.example.com:22",
            "u@[fe80::1%eth0]:22",
            "žofie@h",
        ] {
            assert!(Target::parse(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn rejects_bad_targets() {
        for bad in [
            "",
            "host:",
            "host:0",
            "host:99999",
            "@host",
            "[::1",
            "[::1]x",
            "a b",
            "-oProxy",
            "-oProxyCommand=x@h",
            "-F/tmp/cfg@h",
            "u@-F/x",
            "u;x@h",
            "u@h`id`",
            "u@h$(id)",
            "u%h@h",
            "$@h",
            "u@[::1;x]",
            "u@[::1%]",
            "u@[nothex]",
            "u@h/x",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
