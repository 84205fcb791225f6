//! What `rpmem bench` reports, as JSON or as a table.

use serde::Serialize;

/// One side of a latency figure, pooled over every round.
#[derive(Debug, Serialize, Clone, Default)]
pub struct LatencySide {
    /// Timed operations.
    pub samples: usize,
    /// Median, µs.
    pub p50_us: f64,
    /// 99th percentile, µs.
    pub p99_us: f64,
    /// 99.9th percentile, µs.
    pub p999_us: f64,
    /// CPU time of this process per operation, µs.
    pub client_cpu_us_per_op: f64,
    /// CPU time of the target's processes per operation, µs (target on this
    /// machine only).
    pub target_cpu_us_per_op: Option<f64>,
    /// The distribution as `[nines, µs]` points (nines = -log10(1 - q)).
    pub curve: Vec<[f64; 2]>,
}

/// A latency figure beside its raw floor.
#[derive(Debug, Serialize, Clone)]
pub struct LatencyFigure {
    /// What rpmem did.
    pub name: String,
    /// What the raw floor did.
    pub floor: String,
    /// The raw floor.
    pub raw: LatencySide,
    /// rpmem.
    pub rpmem: LatencySide,
    /// Median over rounds of (rpmem p50 / raw p50) of the same round.
    pub p50_ratio: f64,
    /// Median over rounds of (rpmem p99 / raw p99) of the same round.
    pub p99_ratio: f64,
    /// Smallest and largest per-round p50 ratio.
    pub p50_ratio_range: [f64; 2],
}

/// One side of a throughput figure.
#[derive(Debug, Serialize, Clone, Default)]
pub struct ThroughputSide {
    /// Median over rounds, GiB/s.
    pub gib_per_s: f64,
    /// CPU time of this process per MiB moved, µs.
    pub client_cpu_us_per_mib: f64,
    /// CPU time of the target's processes per MiB moved, µs.
    pub target_cpu_us_per_mib: Option<f64>,
}

/// A throughput figure beside its raw floor.
#[derive(Debug, Serialize, Clone)]
pub struct ThroughputFigure {
    /// What rpmem did.
    pub name: String,
    /// Concurrent streams: lanes of one pool, or sessions.
    pub streams: u32,
    /// Whether the streams are separate sessions on separate pools.
    pub sessions: bool,
    /// The raw floor: as many plain TCP streams.
    pub raw: ThroughputSide,
    /// rpmem.
    pub rpmem: ThroughputSide,
    /// Median over rounds of (rpmem / raw) of the same round.
    pub ratio: f64,
    /// Smallest and largest per-round ratio.
    pub ratio_range: [f64; 2],
}

/// Create + close of a pool beside `posix_fallocate` of its size.
#[derive(Debug, Serialize, Clone)]
pub struct CreateFigure {
    /// Pool size, bytes.
    pub size: usize,
    /// Median fallocate time, ms.
    pub fallocate_ms: f64,
    /// Median create + close time, ms.
    pub create_close_ms: f64,
    /// Median over rounds of (create + close − fallocate) of the same round, ms.
    pub extra_ms: f64,
    /// Smallest and largest per-round extra, ms.
    pub extra_range_ms: [f64; 2],
}

/// CPU used by an open session left idle.
#[derive(Debug, Serialize, Clone)]
pub struct IdleFigure {
    /// How long it was left idle, s.
    pub seconds: f64,
    /// This process's CPU time over that, % of one core.
    pub client_cpu_percent: f64,
    /// The target's processes' CPU time, % of one core.
    pub target_cpu_percent: Option<f64>,
}

/// The whole report.
#[derive(Debug, Serialize)]
pub struct Report {
    /// Target and pool set benched.
    pub target: String,
    /// Transport of the rpmem side (`tcp`, `fabric, provider P`, `auto`).
    pub transport: String,
    /// Size of each pool used, bytes.
    pub pool_size: usize,
    /// Cores on this machine.
    pub cores: usize,
    /// Alternating rounds per figure.
    pub rounds: usize,
    /// Seconds each side runs per round.
    pub round_seconds: f64,
    /// Load average (1, 5, 15 min) when the bench started.
    pub load_average_start: Option<[f64; 3]>,
    /// Load average when it ended.
    pub load_average_end: Option<[f64; 3]>,
    /// Latency figures.
    pub latency: Vec<LatencyFigure>,
    /// Throughput figures.
    pub throughput: Vec<ThroughputFigure>,
    /// Create + close figures (target on this machine only).
    pub create: Vec<CreateFigure>,
    /// Idle CPU of an open session.
    pub idle: Option<IdleFigure>,
}

fn opt(v: Option<f64>, prec: usize) -> String {
    v.map_or("-".into(), |v| format!("{v:.prec$}"))
}

/// Prints the report as tables.
pub fn print(r: &Report) {
    println!(
        "rpmem bench: {} over {} ({} pools, {} cores, {} alternating rounds of {} s per side)",
        r.target,
        r.transport,
        crate::units::fmt_size(r.pool_size),
        r.cores,
        r.rounds,
        r.round_seconds
    );
    if let Some([a, b, c]) = r.load_average_start {
        println!("load average at start: {a:.2} {b:.2} {c:.2}");
    }
    println!();
    println!(
        "{:<26} {:>8} {:>8} {:>8}  {:>7} {:>7}  {:>7} {:>7}",
        "latency µs (raw / rpmem)", "p50", "p99", "p99.9", "p50 ×", "p99 ×", "cpu cl", "cpu tg"
    );
    for l in &r.latency {
        for (label, s) in [(&l.floor, &l.raw), (&l.name, &l.rpmem)] {
            let ratios = if std::ptr::eq(s, &l.rpmem) {
                format!("{:>6.2}× {:>6.2}×", l.p50_ratio, l.p99_ratio)
            } else {
                format!("{:>7} {:>7}", "", "")
            };
            println!(
                "{:<26} {:>8.1} {:>8.1} {:>8.1}  {ratios}  {:>7.1} {:>7}",
                label,
                s.p50_us,
                s.p99_us,
                s.p999_us,
                s.client_cpu_us_per_op,
                opt(s.target_cpu_us_per_op, 1)
            );
        }
    }
    println!();
    println!(
        "{:<34} {:>7} {:>7} {:>7}  {:>13}",
        "throughput GiB/s", "raw", "rpmem", "ratio", "cpu µs/MiB"
    );
    for t in &r.throughput {
        let unit = if t.sessions { "sessions" } else { "lanes" };
        println!(
            "{:<34} {:>7.2} {:>7.2} {:>6.2}×  {:>6.0} {:>6}",
            format!("{} ({} {unit})", t.name, t.streams),
            t.raw.gib_per_s,
            t.rpmem.gib_per_s,
            t.ratio,
            t.rpmem.client_cpu_us_per_mib,
            opt(t.rpmem.target_cpu_us_per_mib, 0)
        );
    }
    for c in &r.create {
        println!();
        println!(
            "create + close of {}: {:.1} ms; fallocate: {:.1} ms; extra {:.1} ms",
            crate::units::fmt_size(c.size),
            c.create_close_ms,
            c.fallocate_ms,
            c.extra_ms
        );
    }
    if let Some(i) = &r.idle {
        println!();
        println!(
            "idle open session over {:.1} s: client {:.2} % CPU, target {} % CPU",
            i.seconds,
            i.client_cpu_percent,
            opt(i.target_cpu_percent, 2)
        );
    }
}
