//! Parsing and printing sizes and durations.

use std::time::Duration;

/// Parses a size as poolset(5) writes them, with the pool set parser
/// itself ([`rpmem_storage::poolset::parse_size`]), so a size is accepted
/// here exactly when a pool set would accept it: a number of bytes,
/// optionally with `K`…`P` or `KiB`…`PiB` (powers of 1024) or `kB`…`PB`
/// (powers of 1000), case as written.
pub fn parse_size(s: &str) -> Result<usize, String> {
    rpmem_storage::poolset::parse_size(s.trim())
        .ok_or_else(|| {
            format!(
                "invalid size '{s}': a number with an optional K, M, G, T, P, KiB … PiB or kB … PB"
            )
        })
        .and_then(|v| usize::try_from(v).map_err(|_| format!("invalid size '{s}': too large")))
}

/// Formats a byte count readably: `32 MiB`, `4 KiB`, `1000 B`, `1.5 MiB`.
pub fn fmt_size(n: usize) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    if n < 1024 {
        return format!("{n} B");
    }
    let mut v = n as f64;
    let mut unit = "B";
    for u in UNITS {
        if v < 1024.0 {
            break;
        }
        v /= 1024.0;
        unit = u;
    }
    if v.fract() == 0.0 {
        format!("{v:.0} {unit}")
    } else {
        format!("{v:.1} {unit}")
    }
}

/// Formats a duration readably: `812 µs`, `12.3 ms`, `1.20 s`.
pub fn fmt_duration(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us < 1000.0 {
        format!("{us:.0} µs")
    } else if us < 1e6 {
        format!("{:.1} ms", us / 1e3)
    } else {
        format!("{:.2} s", us / 1e6)
    }
}

/// Formats a throughput in MiB/s.
pub fn fmt_rate(bytes: usize, d: Duration) -> String {
    let secs = d.as_secs_f64().max(1e-9);
    format!("{:.0} MiB/s", bytes as f64 / secs / (1024.0 * 1024.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096"), Ok(4096));
        assert_eq!(parse_size("8K"), Ok(8192));
        assert_eq!(parse_size("32M"), Ok(32 << 20));
        assert_eq!(parse_size("2MiB"), Ok(2 << 20));
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        // As in a pool set, suffixes are case-sensitive.
        assert!(parse_size("1g").is_err());
        assert!(parse_size("4k").is_err());
        assert_eq!(parse_size("3MB"), Ok(3_000_000));
        assert_eq!(parse_size("1kB"), Ok(1000));
        assert!(parse_size("").is_err());
        assert!(parse_size("M").is_err());
        assert!(parse_size("12X").is_err());
        assert!(parse_size("-1").is_err());
        assert!(parse_size("99999999999P").is_err());
    }

    #[test]
    fn formatting() {
        assert_eq!(fmt_size(32 << 20), "32 MiB");
        assert_eq!(fmt_size(1536 * 1024), "1.5 MiB");
        assert_eq!(fmt_size(100), "100 B");
        assert_eq!(fmt_duration(Duration::from_micros(45)), "45 µs");
        assert_eq!(fmt_duration(Duration::from_millis(12)), "12.0 ms");
        assert_eq!(fmt_duration(Duration::from_millis(1200)), "1.20 s");
    }
}
