//! `rpmem bench`: every figure beside its raw floor, measured by alternation.
//!
//! For each figure the raw floor (plain TCP carrying the same bytes, see
//! [`raw`]) and rpmem take turns in short rounds, starting side alternating
//! from round to round. Ratios are taken within a round and their median is
//! reported, so the machine's drift from minute to minute cancels out.

mod cpu;
mod plot;
mod raw;
mod report;
mod stats;

use std::path::{Path, PathBuf};
use std::sync::Barrier;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use indicatif::{ProgressBar, ProgressStyle};
use rpmem::{Config, PersistFlags, Pool, RemoveFlags};

use crate::commands::size_arg;
use crate::error::{CliError, Result};
use raw::{Echo, RawLink};
pub use report::Report;
use report::{
    CreateFigure, IdleFigure, LatencyFigure, LatencySide, ThroughputFigure, ThroughputSide,
};
use stats::{median, quantile, range, Rng};

const MIB: usize = 1 << 20;
/// Flushes per batch in the flush×N + drain figure.
const FLUSHES: usize = 16;
/// Most lanes any figure uses.
const MAX_LANES: u32 = 4;

/// Arguments of `rpmem bench`.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// Target node ([user@]host[:port]); omit to bench a local daemon through
    /// rpmem-ssh-local on tmpfs-backed pools
    pub target: Option<String>,
    /// NOHDRS pool set on the target, at least --size large (with TARGET)
    pub pool_set: Option<String>,
    /// Size of each pool benched on; offsets are random over all of it
    #[arg(long, default_value = "256M", value_parser = size_arg)]
    pub size: usize,
    /// Alternating rounds per figure (raw floor, then rpmem, or the reverse)
    #[arg(long, default_value_t = 9, value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub rounds: u32,
    /// Seconds each side runs in each round
    #[arg(long, default_value_t = 0.25)]
    pub duration: f64,
    /// Concurrent sessions, each on its own pool, for the sessions figure
    /// (local target only; 0 skips it)
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(0..=64))]
    pub sessions: u32,
    /// Pool sizes whose create + close is timed beside fallocate (local
    /// target only)
    #[arg(long, value_delimiter = ',', default_value = "256M,4G", value_parser = size_arg)]
    pub create_sizes: Vec<usize>,
    /// Seconds an open session is left idle while its CPU use is measured
    /// (0 skips it)
    #[arg(long, default_value_t = 10.0)]
    pub idle: f64,
    /// Run only these groups of figures (default: all)
    #[arg(long, value_enum, value_delimiter = ',', value_name = "GROUP,...")]
    pub only: Vec<Group>,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
    /// Also draw the latency distributions and the throughput per stream
    /// count into this SVG file
    #[arg(long, value_name = "FILE.svg")]
    pub plot: Option<PathBuf>,
    /// Transport of the rpmem side: tcp (ours) or fabric (libfabric); the
    /// raw floor is plain TCP either way (default: as RPMEM_TRANSPORT says)
    #[arg(long, value_enum)]
    pub transport: Option<BenchTransport>,
    /// libfabric provider of --transport fabric (tcp, sockets, verbs;
    /// default: as RPMEM_FABRIC_PROVIDER says, else the best offered)
    #[arg(long, value_name = "PROVIDER")]
    pub provider: Option<String>,
}

/// Transports `rpmem bench --transport` takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchTransport {
    /// Our TCP transport.
    Tcp,
    /// libfabric (RPMEM_TRANSPORT=fabric).
    Fabric,
}

/// Groups of figures, for `--only`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Group {
    /// Persist, read and flush + drain latency.
    Latency,
    /// 1 MiB persists on 1, 2 and 4 lanes.
    Throughput,
    /// Concurrent sessions on their own pools.
    Sessions,
    /// Create + close beside fallocate.
    Create,
    /// CPU of an idle open session.
    Idle,
}

/// What one side did in one phase of a round.
#[derive(Debug, Default)]
struct Work {
    /// Latency of each timed operation.
    lat: Vec<Duration>,
    /// Bytes moved in the timed window.
    bytes: u64,
    /// Length of the timed window.
    elapsed: Duration,
    /// Operations done, warm-up included (the CPU time covers them too).
    ops: u64,
}

/// A phase and the CPU both sides used in it.
struct Phase {
    work: Work,
    cpu: cpu::Used,
}

/// Runs the two sides of a figure in alternation.
struct Runner {
    rounds: usize,
    round: Duration,
    local: bool,
}

type Side<'a> = dyn FnMut(Duration) -> Result<Work> + 'a;
/// One operation of a latency figure's raw floor: link, source bytes, offsets.
type RawOp<'a> = dyn FnMut(&RawLink, &[u8], &mut Rng) -> Result<()> + 'a;

impl Runner {
    fn phase(&self, side: &mut Side) -> Result<Phase> {
        let a = cpu::start(self.local);
        let work = side(self.round)?;
        let b = cpu::end(self.local);
        Ok(Phase {
            work,
            cpu: a.until(&b),
        })
    }

    /// `[raw, rpmem]` phases of every round.
    fn alternate(&self, raw: &mut Side, rpmem: &mut Side) -> Result<Vec<[Phase; 2]>> {
        (0..self.rounds)
            .map(|r| {
                if r % 2 == 0 {
                    let a = self.phase(raw)?;
                    Ok([a, self.phase(rpmem)?])
                } else {
                    let b = self.phase(rpmem)?;
                    Ok([self.phase(raw)?, b])
                }
            })
            .collect()
    }
}

/// Runs `op` for `d` after a warm-up of `d / 8`, timing each call.
fn timed(d: Duration, mut op: impl FnMut() -> Result<()>) -> Result<Work> {
    let mut ops = 0;
    let warm = Instant::now();
    while warm.elapsed() < d / 8 {
        op()?;
        ops += 1;
    }
    let mut lat = Vec::with_capacity(1 << 16);
    let start = Instant::now();
    while lat.len() < 20 || (start.elapsed() < d && lat.len() < 4_000_000) {
        let t = Instant::now();
        op()?;
        lat.push(t.elapsed());
    }
    Ok(Work {
        elapsed: start.elapsed(),
        ops: ops + lat.len() as u64,
        lat,
        bytes: 0,
    })
}

/// Runs `op(stream, rng)` on `n` threads at once for `d` after a warm-up;
/// `op` returns the bytes it moved. `end(stream)` runs after the window.
fn streams(
    d: Duration,
    n: usize,
    op: &(dyn Fn(usize, &mut Rng) -> Result<usize> + Sync),
    end: &(dyn Fn(usize) -> Result<()> + Sync),
) -> Result<Work> {
    let barrier = Barrier::new(n);
    let per: Vec<Result<(u64, u64, Duration)>> = std::thread::scope(|s| {
        let hs: Vec<_> = (0..n)
            .map(|i| {
                let barrier = &barrier;
                s.spawn(move || -> Result<(u64, u64, Duration)> {
                    let mut rng = Rng(0x2545_F491_4F6C_DD1D ^ (i as u64 + 1));
                    let mut ops = 0;
                    let warm = Instant::now();
                    // Every thread reaches the barrier even after a failure.
                    let mut failed = None;
                    while failed.is_none() && warm.elapsed() < d / 8 {
                        ops += 1;
                        failed = op(i, &mut rng).err();
                    }
                    barrier.wait();
                    if let Some(e) = failed {
                        return Err(e);
                    }
                    let start = Instant::now();
                    let mut bytes = 0u64;
                    while bytes == 0 || start.elapsed() < d {
                        bytes += op(i, &mut rng)? as u64;
                        ops += 1;
                    }
                    let elapsed = start.elapsed();
                    end(i)?;
                    Ok((bytes, ops, elapsed))
                })
            })
            .collect();
        hs.into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(CliError::Usage("a bench thread panicked".into())))
            })
            .collect()
    });
    let mut w = Work::default();
    for r in per {
        let (bytes, ops, elapsed) = r?;
        w.bytes += bytes;
        w.ops += ops;
        w.elapsed = w.elapsed.max(elapsed);
    }
    Ok(w)
}

fn gib_per_s(w: &Work) -> f64 {
    w.bytes as f64 / w.elapsed.as_secs_f64().max(1e-9) / (1u64 << 30) as f64
}

fn latency_side(phases: &[&Phase]) -> LatencySide {
    let mut all: Vec<Duration> = phases
        .iter()
        .flat_map(|p| p.work.lat.iter().copied())
        .collect();
    all.sort_unstable();
    let ops: u64 = phases.iter().map(|p| p.work.ops).sum::<u64>().max(1);
    let client: Duration = phases.iter().map(|p| p.cpu.client).sum();
    let target: Option<Duration> = phases.iter().map(|p| p.cpu.target).sum();
    LatencySide {
        samples: all.len(),
        p50_us: quantile(&all, 0.5),
        p99_us: quantile(&all, 0.99),
        p999_us: quantile(&all, 0.999),
        client_cpu_us_per_op: client.as_secs_f64() * 1e6 / ops as f64,
        target_cpu_us_per_op: target.map(|t| t.as_secs_f64() * 1e6 / ops as f64),
        curve: stats::curve(&all),
    }
}

fn latency_figure(name: &str, floor: &str, rounds: &mut [[Phase; 2]]) -> LatencyFigure {
    let (mut p50, mut p99) = (Vec::new(), Vec::new());
    for [raw, rp] in rounds.iter_mut() {
        raw.work.lat.sort_unstable();
        rp.work.lat.sort_unstable();
        let (a, b) = (&raw.work.lat, &rp.work.lat);
        p50.push(quantile(b, 0.5) / quantile(a, 0.5).max(1e-3));
        p99.push(quantile(b, 0.99) / quantile(a, 0.99).max(1e-3));
    }
    let raw: Vec<&Phase> = rounds.iter().map(|r| &r[0]).collect();
    let rp: Vec<&Phase> = rounds.iter().map(|r| &r[1]).collect();
    LatencyFigure {
        name: name.into(),
        floor: floor.into(),
        raw: latency_side(&raw),
        rpmem: latency_side(&rp),
        p50_ratio: median(&p50),
        p99_ratio: median(&p99),
        p50_ratio_range: range(&p50),
    }
}

fn throughput_side(phases: &[&Phase]) -> ThroughputSide {
    let rates: Vec<f64> = phases.iter().map(|p| gib_per_s(&p.work)).collect();
    let mib = phases.iter().map(|p| p.work.ops).sum::<u64>().max(1) as f64;
    let client: Duration = phases.iter().map(|p| p.cpu.client).sum();
    let target: Option<Duration> = phases.iter().map(|p| p.cpu.target).sum();
    ThroughputSide {
        gib_per_s: median(&rates),
        client_cpu_us_per_mib: client.as_secs_f64() * 1e6 / mib,
        target_cpu_us_per_mib: target.map(|t| t.as_secs_f64() * 1e6 / mib),
    }
}

/// A target on this machine: a poolset directory on tmpfs and daemons
/// started next to us through the local launcher.
struct Local {
    dir: tempfile::TempDir,
}

impl Local {
    fn new(cfg: &mut Config) -> Result<Local> {
        let base = Path::new("/dev/shm");
        let mut b = tempfile::Builder::new();
        b.prefix("rpmem-bench-");
        let dir = if base.is_dir() {
            b.tempdir_in(base)
        } else {
            b.tempdir()
        }
        .map_err(|e| CliError::io("cannot create a temporary directory", e))?;
        if std::env::var_os("RPMEM_CMD").is_none_or(|v| v.is_empty()) {
            cfg.cmd = crate::demo::local_daemon_cmd(dir.path(), "")?;
        }
        if std::env::var_os("RPMEM_SSH").is_none_or(|v| v.is_empty()) {
            cfg.ssh = crate::demo::sibling("rpmem-ssh-local")?
                .display()
                .to_string();
        }
        Ok(Local { dir })
    }

    /// Writes a NOHDRS pool set `NAME.set` of one part of `size` bytes.
    fn set(&self, name: &str, size: usize) -> Result<String> {
        let text = format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n{size} {}\n",
            self.path(&format!("{name}.part")).display()
        );
        let set = format!("{name}.set");
        std::fs::write(self.path(&set), text)
            .map_err(|e| CliError::io("cannot write a pool set", e))?;
        Ok(set)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Writes the whole pool once, so neither side's page faults land in a round.
fn warm_up(pool: &Pool) -> Result<()> {
    let floor = if pool.has_header() { 4096 } else { 0 };
    let mut off = floor;
    while off < pool.size() {
        let len = MIB.min(pool.size() - off);
        pool.persist(off, len, 0, PersistFlags::RELAXED)?;
        off += len;
    }
    Ok(())
}

/// Everything a figure needs.
struct Bench {
    runner: Runner,
    cfg: Config,
    target: String,
    local: Option<Local>,
    size: usize,
    /// What the raw floor sends: as large as a pool, written like its region.
    src: Vec<u8>,
}

impl Bench {
    fn floor(pool: &Pool) -> usize {
        if pool.has_header() {
            4096
        } else {
            0
        }
    }

    /// A latency figure: `raw_op` on one raw link beside `rp_op` on lane 0.
    fn latency(
        &self,
        echo: &Echo,
        pool: &Pool,
        name: &str,
        floor: &str,
        raw_op: &mut RawOp,
        rp_op: &mut dyn FnMut(&Pool, &mut Rng) -> Result<()>,
    ) -> Result<LatencyFigure> {
        let link = echo.connect(self.size)?;
        let (mut r1, mut r2) = (Rng(0x9E37_79B9_7F4A_7C15), Rng(0x9E37_79B9_7F4A_7C15));
        let src = &self.src;
        let mut raw = |d| {
            let w = timed(d, || raw_op(&link, src, &mut r1))?;
            link.park()?;
            Ok(w)
        };
        let mut rp = |d| timed(d, || rp_op(pool, &mut r2));
        let mut rounds = self.runner.alternate(&mut raw, &mut rp)?;
        Ok(latency_figure(name, floor, &mut rounds))
    }

    /// 1 MiB persists on each of `lanes` (pool, lane) pairs at once, beside
    /// as many raw streams.
    fn throughput(
        &self,
        echo: &Echo,
        lanes: &[(&Pool, u32)],
        flags: PersistFlags,
        sessions: bool,
    ) -> Result<ThroughputFigure> {
        let n = lanes.len();
        let links = (0..n)
            .map(|_| echo.connect(self.size))
            .collect::<Result<Vec<_>>>()?;
        let size = self.size;
        let src = &self.src;
        let raw_op = |i: usize, rng: &mut Rng| -> Result<usize> {
            let off = rng.offset(0, size, MIB, 4096);
            links[i].persist(&src[off..off + MIB], off)?;
            Ok(MIB)
        };
        let park = |i: usize| links[i].park();
        let rp_op = |i: usize, rng: &mut Rng| -> Result<usize> {
            let (pool, lane) = lanes[i];
            let off = rng.offset(Self::floor(pool), pool.size(), MIB, 4096);
            pool.persist(off, MIB, lane, flags)?;
            Ok(MIB)
        };
        let nothing = |_| Ok(());
        let mut raw = |d| streams(d, n, &raw_op, &park);
        let mut rp = |d| streams(d, n, &rp_op, &nothing);
        let rounds = self.runner.alternate(&mut raw, &mut rp)?;
        let ratios: Vec<f64> = rounds
            .iter()
            .map(|[a, b]| gib_per_s(&b.work) / gib_per_s(&a.work).max(1e-9))
            .collect();
        let kind = if flags.contains(PersistFlags::RELAXED) {
            "relaxed"
        } else {
            "flags 0"
        };
        Ok(ThroughputFigure {
            name: format!("persist 1 MiB, {kind}"),
            streams: n as u32,
            sessions,
            raw: throughput_side(&rounds.iter().map(|r| &r[0]).collect::<Vec<_>>()),
            rpmem: throughput_side(&rounds.iter().map(|r| &r[1]).collect::<Vec<_>>()),
            ratio: median(&ratios),
            ratio_range: range(&ratios),
        })
    }

    /// Create + close of a `size` pool beside posix_fallocate of `size`.
    fn create(&self, local: &Local, index: usize, size: usize) -> Result<CreateFigure> {
        let set = local.set(&format!("create{index}"), size)?;
        let probe = local.path("fallocate.probe");
        let mut raw = |_| {
            let f = std::fs::File::create_new(&probe)
                .map_err(|e| CliError::io(format!("cannot create {}", probe.display()), e))?;
            let t = Instant::now();
            let r =
                nix::fcntl::posix_fallocate(std::os::fd::AsRawFd::as_raw_fd(&f), 0, size as i64);
            let elapsed = t.elapsed();
            drop(f);
            let _ = std::fs::remove_file(&probe);
            r.map_err(|e| CliError::io("posix_fallocate", e.into()))?;
            Ok(Work {
                lat: vec![elapsed],
                ops: 1,
                ..Default::default()
            })
        };
        let mut rp = |_| {
            let t = Instant::now();
            Pool::create(&self.cfg, &self.target, &set, size, 1, None)?.close()?;
            let elapsed = t.elapsed();
            rpmem::remove(&self.cfg, &self.target, &set, RemoveFlags::default())?;
            Ok(Work {
                lat: vec![elapsed],
                ops: 1,
                ..Default::default()
            })
        };
        let rounds = self.runner.alternate(&mut raw, &mut rp)?;
        let ms = |p: &Phase| p.work.lat[0].as_secs_f64() * 1e3;
        let extra: Vec<f64> = rounds.iter().map(|[a, b]| ms(b) - ms(a)).collect();
        Ok(CreateFigure {
            size,
            fallocate_ms: median(&rounds.iter().map(|r| ms(&r[0])).collect::<Vec<_>>()),
            create_close_ms: median(&rounds.iter().map(|r| ms(&r[1])).collect::<Vec<_>>()),
            extra_ms: median(&extra),
            extra_range_ms: range(&extra),
        })
    }

    /// CPU both sides use while `pool` stays open and idle for `secs`, right
    /// after activity.
    fn idle(&self, pool: &Pool, secs: f64) -> Result<IdleFigure> {
        for i in 0..1000 {
            pool.persist(Self::floor(pool) + i * 64, 64, 0, PersistFlags::empty())?;
        }
        let local = self.runner.local;
        let a = cpu::start(local);
        let t = Instant::now();
        std::thread::sleep(Duration::from_secs_f64(secs));
        let used = a.until(&cpu::end(local));
        let wall = t.elapsed().as_secs_f64();
        let pct = |d: Duration| d.as_secs_f64() / wall * 100.0;
        Ok(IdleFigure {
            seconds: wall,
            client_cpu_percent: pct(used.client),
            target_cpu_percent: used.target.map(pct),
        })
    }

    /// Opens `n` pools of `size` on the local target, one lane each.
    fn sessions(&self, local: &Local, n: u32) -> Result<Vec<(Pool, String)>> {
        (0..n)
            .map(|i| {
                let set = local.set(&format!("session{i}"), self.size)?;
                let mut pool = Pool::create(&self.cfg, &self.target, &set, self.size, 1, None)?;
                pool.region_mut().fill(0xa5);
                warm_up(&pool)?;
                Ok((pool, set))
            })
            .collect()
    }
}

fn check_seconds(what: &str, v: f64, min: f64) -> Result<()> {
    if !v.is_finite() || v < min || v > 3600.0 {
        return Err(CliError::Usage(format!(
            "{what} {v} is not a number of seconds between {min} and 3600"
        )));
    }
    Ok(())
}

/// `rpmem bench`.
pub fn run(a: BenchArgs) -> Result<()> {
    check_seconds("--duration", a.duration, 1e-3)?;
    check_seconds("--idle", a.idle, 0.0)?;
    if a.size < 2 * MIB {
        return Err(CliError::Usage("--size must be at least 2 MiB".into()));
    }
    let mut cfg = Config::from_env();
    match (a.transport, &a.provider) {
        (Some(BenchTransport::Tcp), Some(_)) => {
            return Err(CliError::Usage(
                "--provider names a libfabric provider: it goes with --transport fabric".into(),
            ))
        }
        (Some(BenchTransport::Tcp), None) => cfg.transport = Some("tcp".into()),
        (Some(BenchTransport::Fabric), p) => {
            cfg.transport = Some("fabric".into());
            if let Some(p) = p {
                cfg.fabric_provider = Some(p.clone());
            }
        }
        (None, Some(_)) => {
            return Err(CliError::Usage(
                "--provider goes with --transport fabric".into(),
            ))
        }
        (None, None) => {}
    }
    let transport = match cfg.transport.as_deref() {
        Some("fabric") => format!(
            "fabric, provider {}",
            cfg.fabric_provider.as_deref().unwrap_or("the best offered")
        ),
        Some(t) => t.to_string(),
        None => "auto".to_string(),
    };
    let (target, pool_set, local) = match (&a.target, &a.pool_set) {
        (Some(t), Some(p)) => (t.clone(), p.clone(), None),
        (Some(_), None) => {
            return Err(CliError::Usage(
                "with a TARGET, give the POOLSET of a NOHDRS pool set there too".into(),
            ))
        }
        (None, _) => {
            let l = Local::new(&mut cfg)?;
            let set = l.set("bench", a.size)?;
            ("localhost".to_string(), set, Some(l))
        }
    };
    let load_start = cpu::load_average();
    let want = |g: Group| a.only.is_empty() || a.only.contains(&g);
    let sessions = if local.is_some() && want(Group::Sessions) {
        a.sessions
    } else {
        0
    };
    let creates = if local.is_some() && want(Group::Create) {
        a.create_sizes.len()
    } else {
        0
    };
    let steps = 5 * u64::from(want(Group::Latency))
        + 4 * u64::from(want(Group::Throughput))
        + u64::from(sessions > 0)
        + creates as u64
        + 1;
    let bar = if a.json || !std::io::IsTerminal::is_terminal(&std::io::stderr()) {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(steps)
    };
    bar.set_style(
        ProgressStyle::with_template("{bar:30} {pos}/{len} {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    let step = |msg: &str| {
        bar.inc(1);
        bar.set_message(msg.to_string());
    };
    bar.set_message("creating the pool");

    let bench = Bench {
        runner: Runner {
            rounds: a.rounds as usize,
            round: Duration::from_secs_f64(a.duration),
            local: local.is_some(),
        },
        target,
        size: a.size,
        src: vec![0xa5; a.size],
        local,
        cfg,
    };
    let mut pool = match &bench.local {
        Some(_) => Pool::create(
            &bench.cfg,
            &bench.target,
            &pool_set,
            a.size,
            MAX_LANES,
            None,
        )?,
        None => Pool::open(&bench.cfg, &bench.target, &pool_set, a.size, MAX_LANES)?.0,
    };
    pool.region_mut().fill(0xa5);
    warm_up(&pool)?;
    // Before the raw floor's server exists, so only the session is measured.
    let idle = if a.idle > 0.0 && want(Group::Idle) {
        bar.set_message("idle session");
        Some(bench.idle(&pool, a.idle)?)
    } else {
        None
    };
    let echo = Echo::start(&bench.cfg, &bench.target)?;

    let floor = Bench::floor(&pool);
    let limit = pool.size();
    let mut latency = Vec::new();
    // 64 KiB: the bytes of the flush burst below in one message, its floor
    // the least any sender pays to move them and get one answer.
    let sizes: &[usize] = if want(Group::Latency) {
        &[64, 4096, 64 << 10]
    } else {
        &[]
    };
    for &size in sizes {
        let s = crate::units::fmt_size(size);
        step(&format!("persist {s}"));
        latency.push(bench.latency(
            &echo,
            &pool,
            &format!("persist {s}"),
            &format!("raw {s} + 16 B answer"),
            &mut |l, src, rng| {
                let off = rng.offset(floor, limit, size, 8);
                l.persist(&src[off..off + size], off)
            },
            &mut |p, rng| {
                let off = rng.offset(floor, limit, size, 8);
                Ok(p.persist(off, size, 0, PersistFlags::empty())?)
            },
        )?);
    }
    if want(Group::Latency) {
        step("read 4 KiB");
        let (mut b1, mut b2) = (vec![0u8; 4096], vec![0u8; 4096]);
        latency.push(bench.latency(
            &echo,
            &pool,
            "read 4 KiB",
            "raw request, 16 B + 4 KiB answer",
            &mut |l, _, rng| l.read(&mut b1, rng.offset(floor, limit, 4096, 8)),
            &mut |p, rng| Ok(p.read(&mut b2, rng.offset(floor, limit, 4096, 8), 0)?),
        )?);
        step("flush + drain");
        latency.push(bench.latency(
            &echo,
            &pool,
            &format!("flush 4 KiB ×{FLUSHES} + drain"),
            &format!("raw 4 KiB ×{FLUSHES} + request"),
            &mut |l, src, rng| {
                for _ in 0..FLUSHES {
                    let off = rng.offset(floor, limit, 4096, 8);
                    l.flush(&src[off..off + 4096], off)?;
                }
                l.drain()
            },
            &mut |p, rng| {
                for _ in 0..FLUSHES {
                    p.flush(
                        rng.offset(floor, limit, 4096, 8),
                        4096,
                        0,
                        PersistFlags::empty(),
                    )?;
                }
                Ok(p.drain(0)?)
            },
        )?);
    }

    let mut throughput = Vec::new();
    let shapes: &[(u32, PersistFlags)] = if want(Group::Throughput) {
        &[
            (1, PersistFlags::RELAXED),
            (1, PersistFlags::empty()),
            (2, PersistFlags::RELAXED),
            (4, PersistFlags::RELAXED),
        ]
    } else {
        &[]
    };
    for &(lanes, flags) in shapes {
        let lanes = lanes.min(pool.nlanes());
        step(&format!("1 MiB persists on {lanes} lane(s)"));
        let pairs: Vec<(&Pool, u32)> = (0..lanes).map(|l| (&pool, l)).collect();
        throughput.push(bench.throughput(&echo, &pairs, flags, false)?);
    }
    pool.close()?;
    if let Some(l) = &bench.local {
        rpmem::remove(&bench.cfg, &bench.target, &pool_set, RemoveFlags::default())?;
        if sessions > 0 {
            step(&format!("{sessions} sessions"));
            let pools = bench.sessions(l, sessions)?;
            let pairs: Vec<(&Pool, u32)> = pools.iter().map(|(p, _)| (p, 0)).collect();
            let fig = bench.throughput(&echo, &pairs, PersistFlags::RELAXED, true);
            for (p, set) in pools {
                p.close()?;
                rpmem::remove(&bench.cfg, &bench.target, &set, RemoveFlags::default())?;
            }
            throughput.push(fig?);
        }
    }
    drop(echo);
    let mut create = Vec::new();
    if let Some(l) = &bench.local {
        for (i, &size) in a.create_sizes[..creates].iter().enumerate() {
            step(&format!(
                "create + close of {}",
                crate::units::fmt_size(size)
            ));
            create.push(bench.create(l, i, size)?);
        }
    }
    bar.finish_and_clear();

    let report = Report {
        target: format!("{}:{pool_set}", bench.target),
        transport,
        pool_size: a.size,
        cores: std::thread::available_parallelism().map_or(1, |n| n.get()),
        rounds: a.rounds as usize,
        round_seconds: a.duration,
        load_average_start: load_start,
        load_average_end: cpu::load_average(),
        latency,
        throughput,
        create,
        idle,
    };
    if let Some(path) = &a.plot {
        plot::draw(&report, path)?;
    }
    if a.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        report::print(&report);
    }
    Ok(())
}
