//! `rpmem create`, `rpmem info`, `rpmem rm`.

use std::io::Read;
use std::time::Duration;

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use rpmem::{Config, Pool, PoolAttr, RemoveFlags};
use serde::Serialize;

use crate::error::{CliError, Result};
use crate::units::{fmt_size, parse_size};

/// Default local size registered with a pool: the smallest allowed, which any
/// pool set satisfies.
const DEFAULT_SIZE: &str = "8K";

/// Length of the signature attribute.
const SIG_LEN: usize = 8;

/// Parses a local pool size argument: a size, at least the minimum pool, page-aligned.
pub fn size_arg(s: &str) -> std::result::Result<usize, String> {
    let n = parse_size(s)?;
    if n < rpmem::MIN_POOL {
        return Err(format!(
            "size {s} is below the minimum of {}",
            fmt_size(rpmem::MIN_POOL)
        ));
    }
    if n % rpmem::page_size() != 0 {
        return Err(format!(
            "size {s} is not a multiple of the page size ({})",
            rpmem::page_size()
        ));
    }
    Ok(n)
}

/// Parses a lane count argument: a positive number.
pub fn lanes_arg(s: &str) -> std::result::Result<u32, String> {
    match s.parse::<u32>() {
        Ok(n) if n > 0 => Ok(n),
        _ => Err(format!(
            "invalid lane count '{s}': expected a positive number"
        )),
    }
}

/// The pool a session opens and how: the arguments `create` and `info` share.
#[derive(Debug, Args)]
pub struct SessionArgs {
    /// Target node: [user@]host[:port]
    pub target: String,
    /// Pool set file, relative to the target's poolset directory
    pub pool_set: String,
    /// Local size to register while the pool is open, e.g. 8K, 64M, 1G (at
    /// most the pool's size)
    #[arg(long, default_value = DEFAULT_SIZE, value_parser = size_arg)]
    pub size: usize,
    /// Lanes to ask for
    #[arg(long, default_value_t = 1, value_parser = lanes_arg)]
    pub lanes: u32,
}

/// Arguments of `rpmem create`.
#[derive(Debug, Args)]
pub struct CreateArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Create a pool without a header (the pool set must say OPTION NOHDRS)
    #[arg(long)]
    pub no_hdrs: bool,
    /// Signature stored in the header (at most 8 bytes)
    #[arg(long, default_value = "RPMEMCLI", conflicts_with = "no_hdrs")]
    pub signature: String,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `rpmem info`.
#[derive(Debug, Args)]
pub struct InfoArgs {
    #[command(flatten)]
    pub session: SessionArgs,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

/// Arguments of `rpmem rm`.
#[derive(Debug, Args)]
pub struct RmArgs {
    /// Target node: [user@]host[:port]
    pub target: String,
    /// Pool set file, relative to the target's poolset directory
    pub pool_set: String,
    /// Remove even if the pool is inconsistent
    #[arg(long, short)]
    pub force: bool,
    /// Remove the pool set file too
    #[arg(long = "pool-set", short = 's')]
    pub pool_set_file: bool,
    /// Print the result as JSON
    #[arg(long)]
    pub json: bool,
}

fn random_bytes<const N: usize>() -> Result<[u8; N]> {
    let mut b = [0u8; N];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| CliError::io("cannot read /dev/urandom", e))?;
    Ok(b)
}

fn new_attr(signature: &str) -> Result<PoolAttr> {
    let sig = signature.as_bytes();
    if sig.is_empty() || sig.len() > SIG_LEN {
        return Err(CliError::Usage(format!(
            "invalid signature '{signature}': expected 1 to {} bytes",
            SIG_LEN
        )));
    }
    let mut signature = [0u8; 8];
    signature[..sig.len()].copy_from_slice(sig);
    let uuid = random_bytes::<16>()?;
    Ok(PoolAttr {
        signature,
        major: 1,
        compat_features: 0,
        incompat_features: 0,
        ro_compat_features: 0,
        poolset_uuid: random_bytes::<16>()?,
        uuid,
        next_uuid: uuid,
        prev_uuid: uuid,
        user_flags: [0; 16],
    })
}

fn uuid_str(u: &[u8; 16]) -> String {
    let h: String = u.iter().map(|b| format!("{b:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn sig_str(s: &[u8; 8]) -> String {
    let end = s.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    s[..end]
        .iter()
        .map(|&b| {
            if b.is_ascii_graphic() || b == b' ' {
                (b as char).to_string()
            } else {
                format!("\\x{b:02x}")
            }
        })
        .collect()
}

/// Pool attributes in printable form.
#[derive(Debug, Serialize)]
struct AttrView {
    signature: String,
    major: u32,
    compat_features: u32,
    incompat_features: u32,
    ro_compat_features: u32,
    poolset_uuid: String,
    uuid: String,
    next_uuid: String,
    prev_uuid: String,
    user_flags: String,
}

impl AttrView {
    fn new(a: &PoolAttr) -> AttrView {
        AttrView {
            signature: sig_str(&a.signature),
            major: a.major,
            compat_features: a.compat_features,
            incompat_features: a.incompat_features,
            ro_compat_features: a.ro_compat_features,
            poolset_uuid: uuid_str(&a.poolset_uuid),
            uuid: uuid_str(&a.uuid),
            next_uuid: uuid_str(&a.next_uuid),
            prev_uuid: uuid_str(&a.prev_uuid),
            user_flags: a.user_flags.iter().map(|b| format!("{b:02x}")).collect(),
        }
    }

    fn print(&self) {
        println!("signature     {:?}", self.signature);
        println!("major         {}", self.major);
        println!("compat        {:#010x}", self.compat_features);
        println!("incompat      {:#010x}", self.incompat_features);
        println!("ro_compat     {:#010x}", self.ro_compat_features);
        println!("poolset uuid  {}", self.poolset_uuid);
        println!("uuid          {}", self.uuid);
        println!("next uuid     {}", self.next_uuid);
        println!("prev uuid     {}", self.prev_uuid);
        println!("user flags    {}", self.user_flags);
    }
}

/// What `create` and `info` report.
#[derive(Debug, Serialize)]
struct PoolView {
    target: String,
    pool_set: String,
    has_header: bool,
    lanes: u32,
    lanes_requested: u32,
    local_size: usize,
    attributes: Option<AttrView>,
}

impl PoolView {
    /// The session `s` asked for and what `pool` got; `attr`: the pool's
    /// attributes as the target stored them (not as asked: user flags may differ).
    fn new(s: SessionArgs, pool: &Pool, attr: &PoolAttr) -> PoolView {
        PoolView {
            target: s.target,
            pool_set: s.pool_set,
            has_header: pool.has_header(),
            lanes: pool.nlanes(),
            lanes_requested: s.lanes,
            local_size: pool.size(),
            attributes: pool.has_header().then(|| AttrView::new(attr)),
        }
    }

    fn print(&self) {
        println!("target        {}", self.target);
        println!("pool set      {}", self.pool_set);
        if self.has_header {
            println!("header        yes: the first 4 KiB hold the pool header");
        } else {
            println!("header        none (OPTION NOHDRS): the whole pool is usable");
        }
        println!(
            "lanes         {} (asked for {})",
            self.lanes, self.lanes_requested
        );
        println!(
            "local size    {} ({} bytes)",
            fmt_size(self.local_size),
            self.local_size
        );
        if let Some(a) = &self.attributes {
            a.print();
        }
    }
}

fn emit<T: Serialize>(json: bool, v: &T, text: impl FnOnce(&T)) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(v)?);
    } else {
        text(v);
    }
    Ok(())
}

/// A spinner with the elapsed time on standard error while `work` runs: the
/// target allocates the whole pool before it answers, which takes a while for
/// large pools, and reports no progress meanwhile. indicatif draws nothing
/// when standard error is not a terminal; `quiet` (JSON output) hides it too.
fn with_spinner<T>(quiet: bool, msg: String, work: impl FnOnce() -> T) -> T {
    let bar = if quiet {
        ProgressBar::hidden()
    } else {
        ProgressBar::new_spinner()
    };
    bar.set_style(
        ProgressStyle::with_template("{spinner} {msg} {elapsed}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar.set_message(msg);
    bar.enable_steady_tick(Duration::from_millis(100));
    let r = work();
    bar.finish_and_clear();
    r
}

/// `rpmem create`.
pub fn create(a: CreateArgs) -> Result<()> {
    let cfg = Config::from_env();
    let attr = if a.no_hdrs {
        None
    } else {
        Some(new_attr(&a.signature)?)
    };
    let s = a.session;
    let msg = format!("creating {} on {}", s.pool_set, s.target);
    let pool = with_spinner(a.json, msg, || {
        Pool::create(&cfg, &s.target, &s.pool_set, s.size, s.lanes, attr.as_ref())
    })?;
    let view = PoolView::new(s, &pool, &pool.attr());
    pool.close()?;
    emit(a.json, &view, |v| {
        println!("created");
        v.print();
    })
}

/// `rpmem info`.
pub fn info(a: InfoArgs) -> Result<()> {
    let cfg = Config::from_env();
    let s = a.session;
    let (pool, attr) = Pool::open(&cfg, &s.target, &s.pool_set, s.size, s.lanes)?;
    let view = PoolView::new(s, &pool, &attr);
    pool.close()?;
    emit(a.json, &view, PoolView::print)
}

/// What `rm` reports.
#[derive(Debug, Serialize)]
struct RmView {
    target: String,
    pool_set: String,
    removed: bool,
    force: bool,
    pool_set_file_removed: bool,
}

/// `rpmem rm`.
pub fn rm(a: RmArgs) -> Result<()> {
    let cfg = Config::from_env();
    let mut flags = RemoveFlags::empty();
    flags.set(RemoveFlags::FORCE, a.force);
    flags.set(RemoveFlags::POOL_SET, a.pool_set_file);
    rpmem::remove(&cfg, &a.target, &a.pool_set, flags)?;
    let view = RmView {
        target: a.target,
        pool_set: a.pool_set,
        removed: true,
        force: a.force,
        pool_set_file_removed: a.pool_set_file,
    };
    emit(a.json, &view, |v| {
        let what = if v.pool_set_file_removed {
            "part files and pool set file"
        } else {
            "part files"
        };
        println!("removed {what} of {} on {}", v.pool_set, v.target);
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuid_and_signature_formatting() {
        let mut u = [0u8; 16];
        u[0] = 0xab;
        u[15] = 0x01;
        assert_eq!(uuid_str(&u), "ab000000-0000-0000-0000-000000000001");
        assert_eq!(sig_str(b"PMEMOBJ\0"), "PMEMOBJ");
        assert_eq!(sig_str(b"A\x01\0\0\0\0\0\0"), "A\\x01");
    }

    #[test]
    fn size_and_lane_arguments() {
        assert_eq!(size_arg("8K"), Ok(8192));
        assert!(size_arg("4K").is_err());
        assert!(size_arg("12345").is_err());
        assert!(lanes_arg("0").is_err());
        assert_eq!(lanes_arg("4"), Ok(4));
    }

    #[test]
    fn signature_limits() {
        assert!(new_attr("").is_err());
        assert!(new_attr("TOOLONGSIG").is_err());
        let a = new_attr("ABC").unwrap();
        assert_eq!(&a.signature, b"ABC\0\0\0\0\0");
        assert!(!a.is_zero());
    }
}
