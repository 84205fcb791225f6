//! `rpmem bench`: measure a link and a target, beside a raw TCP baseline
//! taken between the same two endpoints in the same run.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use clap::Args;
use indicatif::{ProgressBar, ProgressStyle};
use nix::errno::Errno;
use nix::sys::socket::{recv, send, MsgFlags};
use rpmem::{Config, Pool, RemoveFlags, PERSIST_RELAXED};
use serde::Serialize;

use crate::commands::size_arg;
use crate::error::{CliError, Result};

const MIB: usize = 1 << 20;
/// Size of the pool whose create + close is timed (the figure).
const BIG_POOL: usize = 256 * MIB;
/// Flushes per batch in the flush×N + drain figure.
const FLUSHES: usize = 16;

/// Arguments of `rpmem bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Target node ([user@]host[:port]); omit to bench a local daemon through
    /// rpmem-ssh-local on a tmpfs-backed pool
    pub target: Option<String>,
    /// NOHDRS pool set on the target, at least --size large (with TARGET)
    pub pool_set: Option<String>,
    /// Size of the pool to bench on
    #[arg(long, default_value = "64M", value_parser = size_arg)]
    pub size: usize,
    /// Seconds spent on each figure
    #[arg(long, default_value_t = 1.0)]
    pub duration: f64,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

/// Latency percentiles of one figure.
#[derive(Debug, Serialize, Clone)]
pub struct Latency {
    /// What was measured.
    pub name: String,
    /// Samples taken.
    pub samples: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// Median over the raw round trip's median (when it applies).
    pub p50_vs_raw: Option<f64>,
    /// p99 over the raw round trip's median (when it applies).
    pub p99_vs_raw: Option<f64>,
}

/// Throughput of one figure.
#[derive(Debug, Serialize, Clone)]
pub struct Throughput {
    /// What was measured.
    pub name: String,
    /// Lanes (threads) used.
    pub lanes: u32,
    /// GiB/s.
    pub gib_per_s: f64,
    /// Over the raw stream of the same run.
    pub vs_raw: Option<f64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Target benched.
    pub target: String,
    /// Pool size used.
    pub pool_size: usize,
    /// Cores on this machine.
    pub cores: usize,
    /// Raw TCP ping-pong, 64 B request, 8 B reply, both ends spinning.
    pub raw_rtt: Latency,
    /// Raw TCP stream of 1 MiB messages answered with 8 B.
    pub raw_stream: Throughput,
    /// Persist, flush/drain and read latencies.
    pub latency: Vec<Latency>,
    /// Persist throughput.
    pub throughput: Vec<Throughput>,
    /// Create + close of a 256 MiB pool, ms (local target only).
    pub create_close_ms: Option<f64>,
    /// posix_fallocate of 256 MiB in the same directory, ms (local target only).
    pub fallocate_ms: Option<f64>,
}

/// Small, fast, deterministic offsets.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    /// An 8-byte aligned offset where `len` bytes fit below `limit`, at or
    /// above `floor`.
    fn offset(&mut self, floor: usize, limit: usize, len: usize) -> usize {
        let span = (limit - len - floor) / 8 + 1;
        floor + (self.next() as usize % span) * 8
    }
}

/// The `per_mille`/1000 quantile of sorted samples (nearest rank), in µs.
fn percentile(sorted: &[Duration], per_mille: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = (sorted.len() * per_mille)
        .div_ceil(1000)
        .clamp(1, sorted.len());
    sorted[rank - 1].as_nanos() as f64 / 1000.0
}

fn latency(name: impl Into<String>, mut v: Vec<Duration>) -> Latency {
    v.sort_unstable();
    Latency {
        name: name.into(),
        samples: v.len(),
        p50_us: percentile(&v, 500),
        p99_us: percentile(&v, 990),
        p999_us: percentile(&v, 999),
        p50_vs_raw: None,
        p99_vs_raw: None,
    }
}

/// Runs `op` repeatedly for `d` (at least 100 times, at most 1 000 000).
fn sample(d: Duration, mut op: impl FnMut() -> Result<()>) -> Result<Vec<Duration>> {
    let mut v = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while v.len() < 1_000_000 && (v.len() < 100 || start.elapsed() < d) {
        let t = Instant::now();
        op()?;
        v.push(t.elapsed());
    }
    Ok(v)
}

/// The raw baseline: `rpmemd --bench-echo` on the target, reached the way
/// the engine reaches the daemon.
struct Echo {
    child: Child,
    addr: SocketAddr,
}

impl Echo {
    fn start(cfg: &Config, target: &str) -> Result<Echo> {
        let mut child = rpmem::remote_command(cfg, target, "--bench-echo")?
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| CliError::io(format!("cannot run '{}'", cfg.ssh), e))?;
        let mut line = String::new();
        let out = child.stdout.take().expect("stdout is piped");
        BufReader::new(out)
            .read_line(&mut line)
            .map_err(|e| CliError::io("reading the baseline server's address", e))?;
        let mut words = line.split_whitespace();
        let addr = match (
            words.next(),
            words.next().and_then(|p| p.parse::<u16>().ok()),
        ) {
            (Some(ip), Some(port)) => ip.parse().ok().map(|ip| SocketAddr::new(ip, port)),
            _ => None,
        };
        let addr = addr.ok_or_else(|| {
            let _ = child.kill();
            CliError::Usage(format!(
                "the target's rpmemd did not start the baseline server (said {:?}); \
                 is it rpmem's rpmemd?",
                line.trim()
            ))
        })?;
        Ok(Echo { child, addr })
    }

    fn connect(&self) -> Result<TcpStream> {
        let s = TcpStream::connect_timeout(&self.addr, Duration::from_secs(5))
            .map_err(|e| CliError::io(format!("cannot connect to {}", self.addr), e))?;
        s.set_nodelay(true)
            .map_err(|e| CliError::io("TCP_NODELAY", e))?;
        Ok(s)
    }
}

impl Drop for Echo {
    fn drop(&mut self) {
        // Closing stdin ends it; kill in case ssh lingers.
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spin_send(s: &TcpStream, mut buf: &[u8]) -> Result<()> {
    while !buf.is_empty() {
        match send(
            s.as_raw_fd(),
            buf,
            MsgFlags::MSG_NOSIGNAL | MsgFlags::MSG_DONTWAIT,
        ) {
            Ok(n) => buf = &buf[n..],
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
            Err(e) => return Err(CliError::io("baseline send", e.into())),
        }
    }
    Ok(())
}

fn spin_recv(s: &TcpStream, buf: &mut [u8]) -> Result<()> {
    let mut got = 0;
    while got < buf.len() {
        match recv(s.as_raw_fd(), &mut buf[got..], MsgFlags::MSG_DONTWAIT) {
            Ok(0) => {
                return Err(CliError::io(
                    "baseline receive",
                    std::io::ErrorKind::UnexpectedEof.into(),
                ))
            }
            Ok(n) => got += n,
            Err(Errno::EAGAIN) | Err(Errno::EINTR) => std::hint::spin_loop(),
            Err(e) => return Err(CliError::io("baseline receive", e.into())),
        }
    }
    Ok(())
}

fn message(len: usize) -> Vec<u8> {
    let mut m = vec![0xa5u8; 8 + len];
    m[..4].copy_from_slice(&(len as u32).to_le_bytes());
    m[4..8].fill(0);
    m
}

fn raw_rtt(echo: &Echo, d: Duration) -> Result<Latency> {
    let s = echo.connect()?;
    let msg = message(64 - 8);
    let mut reply = [0u8; 8];
    let v = sample(d, || {
        spin_send(&s, &msg)?;
        spin_recv(&s, &mut reply)
    })?;
    Ok(latency("raw TCP round trip (64 B / 8 B, spinning)", v))
}

fn raw_stream(echo: &Echo, d: Duration) -> Result<Throughput> {
    let s = echo.connect()?;
    let msg = message(MIB);
    let mut reply = [0u8; 8];
    let v = sample(d, || {
        spin_send(&s, &msg)?;
        spin_recv(&s, &mut reply)
    })?;
    let total: Duration = v.iter().sum();
    Ok(Throughput {
        name: "raw TCP stream (1 MiB messages, 8 B answer)".into(),
        lanes: 1,
        gib_per_s: gib_per_s(v.len() * MIB, total),
        vs_raw: None,
    })
}

fn gib_per_s(bytes: usize, d: Duration) -> f64 {
    bytes as f64 / d.as_secs_f64().max(1e-9) / (1u64 << 30) as f64
}

fn persist_latency(pool: &Pool, size: usize, flags: u32, d: Duration) -> Result<Latency> {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15 ^ size as u64);
    let floor = if pool.has_header() { 4096 } else { 0 };
    let limit = pool.size();
    let v = sample(d, || {
        let off = rng.offset(floor, limit, size);
        pool.persist(off, size, 0, flags).map_err(CliError::from)
    })?;
    let kind = if flags & PERSIST_RELAXED != 0 {
        ", relaxed"
    } else {
        ""
    };
    Ok(latency(
        format!("persist {}{kind}", crate::units::fmt_size(size)),
        v,
    ))
}

fn flush_drain_latency(pool: &Pool, d: Duration) -> Result<Latency> {
    let mut rng = Rng(42);
    let floor = if pool.has_header() { 4096 } else { 0 };
    let limit = pool.size();
    let v = sample(d, || {
        for _ in 0..FLUSHES {
            let off = rng.offset(floor, limit, 4096);
            pool.flush(off, 4096, 0, 0)?;
        }
        pool.drain(0, 0).map_err(CliError::from)
    })?;
    Ok(latency(format!("flush 4 KiB ×{FLUSHES} + drain"), v))
}

fn read_latency(pool: &Pool, d: Duration) -> Result<Latency> {
    let mut rng = Rng(7);
    let limit = pool.size();
    let mut buf = vec![0u8; 4096];
    let v = sample(d, || {
        let off = rng.offset(0, limit, 4096);
        pool.read(&mut buf, off, 0).map_err(CliError::from)
    })?;
    Ok(latency("read 4 KiB", v))
}

fn throughput(pool: &Pool, lanes: u32, flags: u32, d: Duration) -> Result<Throughput> {
    let per_lane = pool.size() / lanes as usize;
    let floor = if pool.has_header() { 4096 } else { 0 };
    let start = Instant::now();
    let bytes = std::thread::scope(|s| {
        let hs: Vec<_> = (0..lanes)
            .map(|lane| {
                s.spawn(move || -> Result<usize> {
                    let base = (lane as usize * per_lane).max(floor);
                    let end = (lane as usize + 1) * per_lane;
                    let slots = ((end - base) / MIB).max(1);
                    let mut done = 0;
                    let mut i = 0;
                    while start.elapsed() < d || done == 0 {
                        let off = base + (i % slots) * MIB;
                        let len = MIB.min(end - off);
                        pool.persist(off, len, lane, flags)?;
                        done += len;
                        i += 1;
                    }
                    Ok(done)
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| h.join().expect("bench worker panicked"))
            .sum::<Result<usize>>()
    })?;
    let kind = if flags & PERSIST_RELAXED != 0 {
        "relaxed"
    } else {
        "flags 0"
    };
    Ok(Throughput {
        name: format!("persist 1 MiB, {kind}"),
        lanes,
        gib_per_s: gib_per_s(bytes, start.elapsed()),
        vs_raw: None,
    })
}

/// A local target: a poolset directory on tmpfs and a daemon next to us.
struct Local {
    dir: tempfile::TempDir,
}

impl Local {
    fn new(cfg: &mut Config, size: usize) -> Result<Local> {
        let base = Path::new("/dev/shm");
        let mut b = tempfile::Builder::new();
        b.prefix("rpmem-bench-");
        let dir = if base.is_dir() {
            b.tempdir_in(base)
        } else {
            b.tempdir()
        }
        .map_err(|e| CliError::io("cannot create a temporary directory", e))?;
        let set = |name: &str, size: usize| -> Result<()> {
            let text = format!(
                "PMEMPOOLSET\nOPTION NOHDRS\n{size} {}\n",
                dir.path().join(format!("{name}.part")).display()
            );
            std::fs::write(dir.path().join(format!("{name}.set")), text)
                .map_err(|e| CliError::io("cannot write a pool set", e))
        };
        set("bench", size)?;
        set("big", BIG_POOL)?;
        let rpmemd = crate::demo::sibling("rpmemd")?;
        if std::env::var_os("RPMEM_CMD").is_none_or(|v| v.is_empty()) {
            cfg.cmd = format!(
                "{} --poolset-dir={} --log-file={}",
                rpmem::shell_quote(&rpmemd.display().to_string()),
                rpmem::shell_quote(&dir.path().display().to_string()),
                rpmem::shell_quote(&dir.path().join("rpmemd.log").display().to_string()),
            );
        }
        if std::env::var_os("RPMEM_SSH").is_none_or(|v| v.is_empty()) {
            cfg.ssh = crate::demo::sibling("rpmem-ssh-local")?
                .display()
                .to_string();
        }
        Ok(Local { dir })
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

fn fallocate_ms(path: &Path) -> Result<f64> {
    let f = std::fs::File::create_new(path)
        .map_err(|e| CliError::io(format!("cannot create {}", path.display()), e))?;
    let t = Instant::now();
    nix::fcntl::posix_fallocate(f.as_raw_fd(), 0, BIG_POOL as i64)
        .map_err(|e| CliError::io("posix_fallocate", e.into()))?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    drop(f);
    let _ = std::fs::remove_file(path);
    Ok(ms)
}

/// `rpmem bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    if a.duration <= 0.0 || !a.duration.is_finite() || a.duration > 3600.0 {
        return Err(CliError::Usage(format!(
            "--duration {} is not a number of seconds between 0 and 3600",
            a.duration
        )));
    }
    let d = Duration::from_secs_f64(a.duration);
    let mut cfg = Config::from_env();
    let (target, pool_set, local) = match (&a.target, &a.pool_set) {
        (Some(t), Some(p)) => (t.clone(), p.clone(), None),
        (Some(_), None) => {
            return Err(CliError::Usage(
                "with a TARGET, give the POOLSET of a NOHDRS pool set there too".into(),
            ))
        }
        (None, _) => {
            let l = Local::new(&mut cfg, a.size)?;
            ("localhost".to_string(), "bench.set".to_string(), Some(l))
        }
    };
    let steps = 14;
    let bar = if a.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let step = |msg: &str| {
        bar.set_message(msg.to_string());
    };

    step("raw TCP baseline");
    let echo = Echo::start(&cfg, &target)?;
    let raw = raw_rtt(&echo, d)?;
    bar.inc(1);
    let stream = raw_stream(&echo, d)?;
    bar.inc(1);
    drop(echo);

    step("creating the pool");
    let pool = match &local {
        Some(_) => Pool::create(&cfg, &target, &pool_set, a.size, 4, None)?,
        None => Pool::open(&cfg, &target, &pool_set, a.size, 4)?.0,
    };
    bar.inc(1);
    let mut latencies = Vec::new();
    for (size, flags) in [(64, 0), (64, PERSIST_RELAXED), (4096, 0), (64 * 1024, 0)] {
        step(&format!("persist latency {size} B"));
        latencies.push(persist_latency(&pool, size, flags, d)?);
        bar.inc(1);
    }
    step("flush + drain");
    latencies.push(flush_drain_latency(&pool, d)?);
    bar.inc(1);
    step("read latency");
    latencies.push(read_latency(&pool, d)?);
    bar.inc(1);
    for l in &mut latencies {
        l.p50_vs_raw = Some(l.p50_us / raw.p50_us);
        l.p99_vs_raw = Some(l.p99_us / raw.p50_us);
    }
    let mut tput = Vec::new();
    for (lanes, flags) in [
        (1, PERSIST_RELAXED),
        (1, 0),
        (2, PERSIST_RELAXED),
        (4, PERSIST_RELAXED),
    ] {
        let lanes = lanes.min(pool.nlanes());
        step(&format!("throughput on {lanes} lane(s)"));
        let mut t = throughput(&pool, lanes, flags, d)?;
        t.vs_raw = Some(t.gib_per_s / stream.gib_per_s);
        tput.push(t);
        bar.inc(1);
    }
    pool.close()?;

    let (mut create_close_ms, mut fallocate) = (None, None);
    if let Some(l) = &local {
        step("create + close of 256 MiB");
        let t = Instant::now();
        let big = Pool::create(&cfg, &target, "big.set", BIG_POOL, 1, None)?;
        big.close()?;
        create_close_ms = Some(t.elapsed().as_secs_f64() * 1e3);
        rpmem::remove(&cfg, &target, "big.set", RemoveFlags::default())?;
        fallocate = Some(fallocate_ms(&l.path("fallocate.probe"))?);
        rpmem::remove(&cfg, &target, &pool_set, RemoveFlags::default())?;
    }
    bar.inc(1);
    bar.finish_and_clear();

    let report = Report {
        target: format!("{target}:{pool_set}"),
        pool_size: a.size,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        raw_rtt: raw,
        raw_stream: stream,
        latency: latencies,
        throughput: tput,
        create_close_ms,
        fallocate_ms: fallocate,
    };
    if a.json {
        let text = serde_json::to_string_pretty(&report)?;
        println!("{text}");
    } else {
        print_table(&report);
    }
    Ok(())
}

fn print_table(r: &Report) {
    println!(
        "rpmem bench: {} ({} pool, {} cores)",
        r.target,
        crate::units::fmt_size(r.pool_size),
        r.cores
    );
    println!();
    println!(
        "{:<44} {:>9} {:>9} {:>9} {:>8} {:>8}",
        "latency (µs)", "p50", "p99", "p99.9", "p50/raw", "p99/raw"
    );
    let row = |l: &Latency| {
        let ratio = |v: Option<f64>| v.map_or("-".to_string(), |v| format!("{v:.2}×"));
        println!(
            "{:<44} {:>9.1} {:>9.1} {:>9.1} {:>8} {:>8}",
            l.name,
            l.p50_us,
            l.p99_us,
            l.p999_us,
            ratio(l.p50_vs_raw),
            ratio(l.p99_vs_raw)
        );
    };
    row(&r.raw_rtt);
    for l in &r.latency {
        row(l);
    }
    println!();
    println!(
        "{:<44} {:>5} {:>9} {:>8}",
        "throughput", "lanes", "GiB/s", "vs raw"
    );
    let trow = |t: &Throughput| {
        println!(
            "{:<44} {:>5} {:>9.2} {:>8}",
            t.name,
            t.lanes,
            t.gib_per_s,
            t.vs_raw
                .map_or("-".to_string(), |v| format!("{:.0}%", v * 100.0))
        );
    };
    trow(&r.raw_stream);
    for t in &r.throughput {
        trow(t);
    }
    if let (Some(c), Some(f)) = (r.create_close_ms, r.fallocate_ms) {
        println!();
        println!(
            "create + close of a 256 MiB pool: {c:.1} ms (fallocate of 256 MiB there: {f:.1} ms)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_pick_the_right_sample() {
        let v: Vec<Duration> = (1..=1000).map(Duration::from_micros).collect();
        assert_eq!(percentile(&v, 500), 500.0);
        assert_eq!(percentile(&v, 990), 990.0);
        assert_eq!(percentile(&v, 999), 999.0);
        assert_eq!(percentile(&v[..1], 999), 1.0);
        assert_eq!(percentile(&[], 500), 0.0);
    }

    #[test]
    fn offsets_stay_in_range_and_aligned() {
        let mut r = Rng(1);
        for _ in 0..10_000 {
            let o = r.offset(4096, 1 << 20, 4096);
            assert!(o >= 4096 && o + 4096 <= 1 << 20 && o.is_multiple_of(8));
        }
    }
}
