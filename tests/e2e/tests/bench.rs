//! `rpmem bench` runs end to end (briefly) and reports sane figures. Speed
//! itself is measured by running the bench, not by this test.

use std::process::Command;
use std::time::Duration;

use e2e::{bin, run_with_timeout, LocalTarget};

/// Every text node of an SVG file, which must parse as XML with an `svg` root.
fn svg_texts(path: &std::path::Path) -> (Vec<String>, usize) {
    let text = std::fs::read_to_string(path).expect("the plot was written");
    let doc = roxmltree::Document::parse(&text).expect("the plot is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    let texts = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text())
        .map(|t| t.trim().to_string())
        .collect();
    let lines = doc
        .descendants()
        .filter(|n| n.has_tag_name("polyline"))
        .count();
    (texts, lines)
}

/// Runs `rpmem bench ARGS --json` against local daemons (none of the
/// environment's ssh settings) and returns its report.
fn local_bench_json(args: &[&str]) -> serde_json::Value {
    let mut cmd = Command::new(bin("rpmem"));
    cmd.arg("bench")
        .args(args)
        .arg("--json")
        .env_remove("RPMEM_SSH")
        .env_remove("RPMEM_CMD");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    assert!(out.status.success(), "bench failed: {out:?}");
    serde_json::from_slice(&out.stdout).expect("JSON report")
}

#[test]
fn bench_alternates_every_figure_with_its_floor_and_plots_them() {
    let dir = tempfile::tempdir().unwrap();
    let svg = dir.path().join("bench.svg");
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args([
        "bench",
        "--rounds",
        "2",
        "--duration",
        "0.02",
        "--size",
        "8M",
        "--sessions",
        "2",
        "--create-sizes",
        "4M,6M",
        "--idle",
        "0.3",
        "--json",
        "--plot",
    ])
    .arg(&svg)
    .env_remove("RPMEM_SSH")
    .env_remove("RPMEM_CMD");
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {out:?}");
    let r: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(r["rounds"], 2, "{r}");
    let num = |v: &serde_json::Value| v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"));

    let lat = r["latency"].as_array().unwrap();
    let names: Vec<&str> = lat.iter().map(|l| l["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "persist 64 B",
            "persist 4 KiB",
            "persist 64 KiB",
            "read 4 KiB",
            "flush 4 KiB ×16 + drain"
        ]
    );
    for l in lat {
        for side in [&l["raw"], &l["rpmem"]] {
            assert!(side["samples"].as_u64().unwrap() >= 40, "{l}");
            let (p50, p99, p999) = (
                num(&side["p50_us"]),
                num(&side["p99_us"]),
                num(&side["p999_us"]),
            );
            assert!(0.0 < p50 && p50 <= p99 && p99 <= p999, "{l}");
            assert!(num(&side["client_cpu_us_per_op"]) > 0.0, "{l}");
            // The target runs on this machine, so its CPU is measured too.
            assert!(num(&side["target_cpu_us_per_op"]) > 0.0, "{l}");
            assert_eq!(side["curve"].as_array().unwrap().len(), 28, "{l}");
        }
        let [lo, hi] = [num(&l["p50_ratio_range"][0]), num(&l["p50_ratio_range"][1])];
        let mid = num(&l["p50_ratio"]);
        assert!(0.0 < lo && lo <= mid && mid <= hi, "{l}");
    }

    let tput = r["throughput"].as_array().unwrap();
    let shape: Vec<(u64, bool)> = tput
        .iter()
        .map(|t| {
            (
                t["streams"].as_u64().unwrap(),
                t["sessions"].as_bool().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        shape,
        [(1, false), (1, false), (2, false), (4, false), (2, true)]
    );
    for t in tput {
        assert!(num(&t["raw"]["gib_per_s"]) > 0.0, "{t}");
        assert!(num(&t["rpmem"]["gib_per_s"]) > 0.0, "{t}");
        assert!(num(&t["ratio"]) > 0.0, "{t}");
    }

    let create = r["create"].as_array().unwrap();
    let sizes: Vec<u64> = create.iter().map(|c| c["size"].as_u64().unwrap()).collect();
    assert_eq!(sizes, [4 << 20, 6 << 20]);
    for c in create {
        assert!(
            num(&c["fallocate_ms"]) > 0.0 && num(&c["create_close_ms"]) > 0.0,
            "{c}"
        );
    }
    let idle = &r["idle"];
    assert!(num(&idle["seconds"]) >= 0.3, "{idle}");
    // Generous: a session that kept spinning while idle would use ~100 %.
    assert!(num(&idle["client_cpu_percent"]) < 50.0, "{idle}");
    assert!(num(&idle["target_cpu_percent"]) < 50.0, "{idle}");
    assert!(
        r["load_average_start"]
            .as_array()
            .is_some_and(|l| l.len() == 3),
        "{r}"
    );

    let (texts, lines) = svg_texts(&svg);
    for series in [
        "persist 64 B",
        "persist 64 B (raw floor)",
        "persist 4 KiB",
        "persist 4 KiB (raw floor)",
        "persist 64 KiB",
        "persist 64 KiB (raw floor)",
        "rpmem, lanes of one pool",
        "raw floor, streams",
        "rpmem, one session per pool",
        "raw floor, streams beside sessions",
    ] {
        assert!(
            texts.iter().any(|t| t == series),
            "no {series:?} in {texts:?}"
        );
    }
    assert!(!texts.iter().any(|t| t.starts_with("read")), "{texts:?}");
    // Six latency curves and four throughput lines, beside the grid and legend.
    assert!(lines >= 10, "{lines} lines");
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
    t.write_nohdrs_set("b", "8M");
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
        "--rounds",
        "1",
        "--duration",
        "0.05",
        "--idle",
        "0",
    ])
    .envs(t.env());
    let out = run_with_timeout(&mut cmd, Duration::from_secs(300));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench: {out:?}");
    assert!(stdout.contains("raw 64 B + 16 B answer"), "{stdout}");
    assert!(stdout.contains("persist 64 B"), "{stdout}");
    assert!(stdout.contains("(4 lanes)"), "{stdout}");
    // Sessions need pool sets of the bench's own, as create does.
    assert!(!stdout.contains("sessions)"), "{stdout}");
    // No create figure without a local poolset directory of the bench's own.
    assert!(!stdout.contains("create + close"), "{stdout}");
}

#[test]
fn bench_runs_only_the_groups_asked_for() {
    let r = local_bench_json(&[
        "--only",
        "create",
        "--create-sizes",
        "4M",
        "--rounds",
        "1",
        "--size",
        "8M",
    ]);
    assert_eq!(r["latency"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["throughput"].as_array().map(Vec::len), Some(0), "{r}");
    assert_eq!(r["create"].as_array().map(Vec::len), Some(1), "{r}");
    assert!(r["idle"].is_null(), "{r}");
}

#[test]
fn bench_measures_the_fabric_transport_beside_the_raw_floor() {
    if !e2e::Transport::Fabric("tcp").available() {
        return;
    }
    let r = local_bench_json(&[
        "--transport",
        "fabric",
        "--provider",
        "tcp",
        "--only",
        "latency",
        "--idle",
        "0",
        "--rounds",
        "1",
        "--duration",
        "0.05",
        "--size",
        "8M",
    ]);
    assert_eq!(r["transport"], "fabric, provider tcp", "{r}");
    let lat = r["latency"].as_array().expect("latency figures");
    assert!(lat.len() >= 4, "{r}");
    assert!(
        lat.iter()
            .all(|f| f["rpmem"]["p50_us"].as_f64() > Some(0.0)),
        "{r}"
    );
    // A provider needs the fabric transport.
    let out = Command::new(bin("rpmem"))
        .args(["bench", "--transport", "tcp", "--provider", "sockets"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--transport fabric"));
}
