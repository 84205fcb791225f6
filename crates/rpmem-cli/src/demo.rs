//! `rpmem demo`: the whole path on one machine, narrated.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use clap::Args;
use rpmem::{Config, PersistFlags, Pool, RemoveFlags};

use crate::commands::{lanes_arg, size_arg};
use crate::error::{CliError, Result};
use crate::units::{fmt_duration, fmt_rate, fmt_size};

/// Size of one transfer when persisting or reading the whole pool.
const CHUNK: usize = 4 << 20;
/// Number of small persists timed for the latency figure.
const SMALL_PERSISTS: usize = 200;
/// Size of one small persist.
const SMALL: usize = 64;

/// Arguments of `rpmem demo`.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Pool size
    #[arg(long, default_value = "32M", value_parser = size_arg)]
    pub size: usize,
    /// Lanes to ask for
    #[arg(long, default_value_t = 4, value_parser = lanes_arg)]
    pub lanes: u32,
    /// Target node ([user@]host[:port]); only meaningful with your own RPMEM_SSH
    #[arg(long, default_value = "localhost")]
    pub target: String,
    /// Use this existing NOHDRS pool set on the target instead of writing one
    /// (needed when RPMEM_CMD is set)
    #[arg(long)]
    pub pool_set: Option<String>,
}

/// The command that runs the `rpmemd` installed beside this program on
/// pool sets in `dir`, logging to `dir/rpmemd.log` (`extra`: more options).
pub(crate) fn local_daemon_cmd(dir: &Path, extra: &str) -> Result<String> {
    let rpmemd = sibling("rpmemd")?;
    let quote = |p: &Path| rpmem::shell_quote(&p.display().to_string());
    Ok(format!(
        "{} --poolset-dir={} --log-file={}{extra}",
        quote(&rpmemd),
        quote(dir),
        quote(&dir.join("rpmemd.log")),
    ))
}

fn env_set(name: &str) -> bool {
    std::env::var_os(name).is_some_and(|v| !v.is_empty())
}

/// A program installed next to this executable.
pub(crate) fn sibling(name: &str) -> Result<PathBuf> {
    let exe =
        std::env::current_exe().map_err(|e| CliError::io("cannot find the rpmem executable", e))?;
    let dir = exe.parent().unwrap_or(Path::new("/"));
    let p = dir.join(name);
    if !p.is_file() {
        return Err(CliError::Usage(format!(
            "{} not found next to rpmem (install with `make install`, or set RPMEM_SSH and RPMEM_CMD)",
            p.display()
        )));
    }
    Ok(p)
}

/// Fills `buf` with a pattern that differs in every 8-byte word.
fn fill_pattern(buf: &mut [u8], seed: u64) {
    for (i, w) in buf.chunks_mut(8).enumerate() {
        let v = (i as u64 ^ seed).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let bytes = v.to_le_bytes();
        w.copy_from_slice(&bytes[..w.len()]);
    }
}

/// Runs `op(offset, len, lane)` over the pool in CHUNK pieces, one thread per lane.
fn over_lanes(
    size: usize,
    lanes: u32,
    op: impl Fn(usize, usize, u32) -> rpmem::Result<()> + Sync,
) -> Result<()> {
    let chunks: Vec<(usize, usize)> = (0..size)
        .step_by(CHUNK)
        .map(|off| (off, CHUNK.min(size - off)))
        .collect();
    let op = &op;
    let chunks = &chunks;
    std::thread::scope(|s| {
        let handles: Vec<_> = (0..lanes)
            .map(|lane| {
                s.spawn(move || {
                    for (off, len) in chunks.iter().skip(lane as usize).step_by(lanes as usize) {
                        op(*off, *len, lane)?;
                    }
                    Ok::<(), rpmem::Error>(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("demo worker panicked")?;
        }
        Ok(())
    })
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn step(what: &str, text: String) {
    println!("{what:<10} {text}");
}

/// `rpmem demo`.
pub fn run(a: DemoArgs) -> Result<()> {
    let mut cfg = Config::from_env();
    let mut _dir_guard = None;
    let mut part: Option<PathBuf> = None;
    let pool_set = match (&a.pool_set, env_set("RPMEM_CMD")) {
        (Some(set), _) => set.clone(),
        (None, true) => {
            return Err(CliError::Usage(
                "RPMEM_CMD is set, so the pool set directory is not this demo's: \
                 give --pool-set NAME of a NOHDRS pool set on the target"
                    .into(),
            ))
        }
        (None, false) => {
            let dir = tempfile::Builder::new()
                .prefix("rpmem-demo-")
                .tempdir()
                .map_err(|e| CliError::io("cannot create a temporary directory", e))?;
            let p = dir.path().join("demo.part");
            let set = format!("PMEMPOOLSET\nOPTION NOHDRS\n{} {}\n", a.size, p.display());
            std::fs::write(dir.path().join("demo.set"), set)
                .map_err(|e| CliError::io("cannot write the demo pool set", e))?;
            cfg.cmd = local_daemon_cmd(dir.path(), " --log-level=info")?;
            part = Some(p);
            _dir_guard = Some(dir);
            "demo.set".to_string()
        }
    };
    if !env_set("RPMEM_SSH") {
        cfg.ssh = sibling("rpmem-ssh-local")?.display().to_string();
    }

    println!("rpmem demo: replicate a local region to a remote pool and read it back");
    step("target", format!("{} (ssh client: {})", a.target, cfg.ssh));
    step("daemon", cfg.cmd.clone());
    match &part {
        Some(p) => step(
            "pool set",
            format!(
                "{pool_set}: OPTION NOHDRS, one {} part {}",
                fmt_size(a.size),
                p.display()
            ),
        ),
        None => step("pool set", format!("{pool_set} (yours, on the target)")),
    }

    let t = Instant::now();
    let mut pool = Pool::create(&cfg, &a.target, &pool_set, a.size, a.lanes, None)?;
    let lanes = pool.nlanes();
    step(
        "create",
        format!(
            "{} pool, {lanes} lane(s) granted (asked for {}), header: {}, in {}",
            fmt_size(a.size),
            a.lanes,
            if pool.has_header() { "yes" } else { "none" },
            fmt_duration(t.elapsed())
        ),
    );

    let seed = std::process::id() as u64;
    let t = Instant::now();
    fill_pattern(pool.region_mut(), seed);
    step(
        "fill",
        format!(
            "{} of pattern written locally in {}",
            fmt_size(a.size),
            fmt_duration(t.elapsed())
        ),
    );

    let t = Instant::now();
    over_lanes(a.size, lanes, |off, len, lane| {
        pool.persist(off, len, lane, PersistFlags::empty())
    })?;
    let d = t.elapsed();
    step(
        "persist",
        format!(
            "{} in {} pieces of {} over {lanes} lane(s): {} ({})",
            fmt_size(a.size),
            a.size.div_ceil(CHUNK),
            fmt_size(CHUNK.min(a.size)),
            fmt_duration(d),
            fmt_rate(a.size, d)
        ),
    );

    let mut times = Vec::with_capacity(SMALL_PERSISTS);
    for i in 0..SMALL_PERSISTS {
        let off = (i * 4096) % (a.size - SMALL + 1);
        let t = Instant::now();
        pool.persist(off, SMALL, 0, PersistFlags::empty())?;
        times.push(t.elapsed());
    }
    step(
        "latency",
        format!(
            "{SMALL_PERSISTS} persists of {SMALL} B on lane 0: median {}",
            fmt_duration(median(times))
        ),
    );

    let mut back = vec![0u8; a.size];
    let t = Instant::now();
    read_back(&pool, &mut back, lanes)?;
    let d = t.elapsed();
    step(
        "read",
        format!(
            "{} back from the target in {} ({})",
            fmt_size(a.size),
            fmt_duration(d),
            fmt_rate(a.size, d)
        ),
    );

    if let Some(i) = back.iter().zip(pool.region()).position(|(x, y)| x != y) {
        return Err(CliError::Verify(format!(
            "byte {i} read back as {:#04x}, persisted {:#04x}",
            back[i],
            pool.region()[i]
        )));
    }
    step(
        "verify",
        format!(
            "OK: all {} bytes read back match what was persisted",
            a.size
        ),
    );
    if let Some(p) = &part {
        let on_disk = std::fs::read(p)
            .map_err(|e| CliError::io(format!("cannot read {}", p.display()), e))?;
        if on_disk.get(..a.size) != Some(pool.region()) {
            return Err(CliError::Verify(format!(
                "part file {} differs from what was persisted",
                p.display()
            )));
        }
        step(
            "verify",
            "OK: the part file on the target holds the same bytes".into(),
        );
    }

    let t = Instant::now();
    pool.close()?;
    step("close", format!("in {}", fmt_duration(t.elapsed())));

    let t = Instant::now();
    rpmem::remove(&cfg, &a.target, &pool_set, RemoveFlags::default())?;
    step(
        "remove",
        format!("part files removed in {}", fmt_duration(t.elapsed())),
    );
    if let Some(p) = &part {
        if p.exists() {
            return Err(CliError::Verify(format!(
                "part file {} still exists after remove",
                p.display()
            )));
        }
    }
    println!("demo finished: OK");
    Ok(())
}

/// Reads the whole pool into `back` in CHUNK pieces, one thread per lane.
fn read_back(pool: &Pool, back: &mut [u8], lanes: u32) -> Result<()> {
    let mut per_lane: Vec<Vec<(usize, &mut [u8])>> = (0..lanes).map(|_| Vec::new()).collect();
    for (i, piece) in back.chunks_mut(CHUNK).enumerate() {
        per_lane[i % lanes as usize].push((i * CHUNK, piece));
    }
    std::thread::scope(|s| {
        let handles: Vec<_> = per_lane
            .into_iter()
            .enumerate()
            .map(|(lane, pieces)| {
                s.spawn(move || {
                    for (off, buf) in pieces {
                        pool.read(buf, off, lane as u32)?;
                    }
                    Ok::<(), rpmem::Error>(())
                })
            })
            .collect();
        for h in handles {
            h.join().expect("demo reader panicked")?;
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_differs_per_word() {
        let mut b = vec![0u8; 64];
        fill_pattern(&mut b, 1);
        assert_ne!(b[..8], b[8..16]);
        let mut c = vec![0u8; 64];
        fill_pattern(&mut c, 2);
        assert_ne!(b, c);
    }
}
