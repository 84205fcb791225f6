//! `rpmem bench` runs end to end (briefly) and reports sane figures. Speed
//! itself is measured by running the bench, not by this test.

use std::process::Command;
use std::time::Duration;

use e2e::{bin, run_with_timeout, LocalTarget};

#[test]
fn bench_reports_every_figure_as_json() {
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args(["bench", "--duration", "0.05", "--size", "8M", "--json"])
        .env_remove("RPMEM_SSH")
        .env_remove("RPMEM_CMD");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {out:?}");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    let rtt = r["raw_rtt"]["p50_us"].as_f64().unwrap();
    assert!(rtt > 0.0, "{r}");
    assert!(r["raw_stream"]["gib_per_s"].as_f64().unwrap() > 0.0);
    let lat = r["latency"].as_array().unwrap();
    assert_eq!(lat.len(), 6, "{r}");
    for l in lat {
        let (p50, p99, p999) = (
            l["p50_us"].as_f64().unwrap(),
            l["p99_us"].as_f64().unwrap(),
            l["p999_us"].as_f64().unwrap(),
        );
        assert!(l["samples"].as_u64().unwrap() >= 100, "{l}");
        assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{l}");
        assert!(l["p50_vs_raw"].as_f64().unwrap() > 0.0, "{l}");
    }
    let tput = r["throughput"].as_array().unwrap();
    assert_eq!(tput.len(), 4, "{r}");
    assert!(tput.iter().all(|t| t["gib_per_s"].as_f64().unwrap() > 0.0));
    assert!(r["create_close_ms"].as_f64().unwrap() > 0.0);
    assert!(r["fallocate_ms"].as_f64().unwrap() > 0.0);
}

#[test]
fn bench_against_a_given_target_needs_a_pool_set() {
    let t = LocalTarget::new();
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args(["bench", "localhost"]).envs(t.env());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(60));
    assert_eq!(out.status.code(), Some(22), "{out:?}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with("rpmem: ") && err.contains("POOLSET"),
        "{err}"
    );
}

#[test]
fn bench_runs_against_an_existing_pool_on_a_target() {
    let t = LocalTarget::new();
    let part = t.dir().join("b.part");
    t.write_poolset(
        "b.set",
        &format!("PMEMPOOLSET\nOPTION NOHDRS\n8M {}\n", part.display()),
    );
    // The pool must exist: bench opens it on a given target.
    let mut create = Command::new(bin("rpmem"));
    create
        .args(["create", "localhost", "b.set", "--size", "8M", "--no-hdrs"])
        .envs(t.env());
    let out = run_with_timeout(&mut create, Duration::from_secs(60));
    assert!(out.status.success(), "create: {out:?}");
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args([
        "bench",
        "localhost",
        "b.set",
        "--size",
        "8M",
        "--duration",
        "0.05",
    ])
    .envs(t.env());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench: {out:?}");
    assert!(stdout.contains("raw TCP round trip"), "{stdout}");
    assert!(stdout.contains("persist 64 B"), "{stdout}");
    // No create figure without a local poolset directory of the bench's own.
    assert!(!stdout.contains("create + close"), "{stdout}");
}
