//! The libfabric transport end to end, beyond the C API tests that also run
//! over it: strangers refused at connection time, pools moving between
//! transports, both persistency methods, and a machine without libfabric.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use e2e::{compile_c, is_root, run_with_timeout, LocalTarget, Transport};
use rpmem::{Config, PersistFlags, Pool};
use rpmem_fabric::{Error as FabricError, Fabric, Hints, Libfabric};

const MIB: usize = 1024 * 1024;
const POOL: usize = 16 * MIB;

fn pattern(seed: usize, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 13 + seed * 101) % 251 + 1) as u8)
        .collect()
}

/// The data port of the last session the daemon opened for `set`.
fn data_port(t: &LocalTarget, set: &str) -> u16 {
    let log = t.log();
    let line = log
        .lines()
        .rev()
        .find(|l| l.contains(&format!("pool set '{set}'")) && l.contains("data on "))
        .unwrap_or_else(|| panic!("no 'data on' line in the daemon log:\n{log}"));
    line.rsplit_once(':').unwrap().1.trim().parse().unwrap()
}

/// Writes `(offset, len, flags)` ranges of distinct patterns through `pool`
/// (odd ranges with flush + drain, the rest with persist) and returns the
/// expected pool image.
fn write_ranges(pool: &mut Pool, seed: usize, ranges: &[(usize, usize, PersistFlags)]) -> Vec<u8> {
    for (i, &(off, len, _)) in ranges.iter().enumerate() {
        pool.region_mut()[off..off + len].copy_from_slice(&pattern(seed + i, len));
    }
    for (i, &(off, len, flags)) in ranges.iter().enumerate() {
        let lane = (i % pool.nlanes() as usize) as u32;
        if i % 2 == 1 {
            pool.flush(off, len, lane, flags).unwrap();
            pool.drain(lane).unwrap();
        } else {
            pool.persist(off, len, lane, flags).unwrap();
        }
    }
    pool.region().to_vec()
}

/// Ranges that take every path of the fabric transport: inline (small),
/// staged in chunks (large, 8-byte atomic), straight into the pool (large,
/// relaxed); the last two large ones cross the part boundaries of
/// [`three_parts`].
const RANGES: [(usize, usize, PersistFlags); 6] = [
    (0, 100, PersistFlags::empty()),
    (4096 + 3, 4000, PersistFlags::RELAXED),
    (MIB, 3 * MIB / 2 + 5, PersistFlags::empty()),
    (3 * MIB, 2 * MIB, PersistFlags::RELAXED),
    (8 * MIB - 150 * 1024 + 4, 300 * 1024, PersistFlags::empty()),
    (POOL - 64, 64, PersistFlags::RELAXED),
];

/// A pool set without headers of parts of 4, 4 and 8 MiB (the pool is not
/// contiguous in the daemon's memory); returns the parts' paths.
fn three_parts(t: &LocalTarget, name: &str) -> Vec<PathBuf> {
    let parts: Vec<(PathBuf, &str)> = ["4M", "4M", "8M"]
        .iter()
        .enumerate()
        .map(|(i, s)| (t.dir().join(format!("{name}.part{i}")), *s))
        .collect();
    let mut set = String::from("PMEMPOOLSET\nOPTION NOHDRS\n");
    for (p, s) in &parts {
        set.push_str(&format!("{s} {}\n", p.display()));
    }
    t.write_poolset(name, &set);
    parts.into_iter().map(|(p, _)| p).collect()
}

fn read_all(pool: &Pool, lane: u32) -> Vec<u8> {
    let mut back = vec![0u8; POOL];
    pool.read(&mut back, 0, lane).unwrap();
    back
}

#[test]
fn a_pool_written_over_one_transport_reads_back_over_the_other() {
    let fabric = Transport::Fabric("tcp");
    if !fabric.available() {
        return;
    }
    for (first, second) in [
        (fabric, Transport::Tcp),
        (Transport::Tcp, Transport::Fabric("sockets")),
    ] {
        let t = LocalTarget::with_transport(first);
        let parts = three_parts(&t, "x.set");
        let mut pool = Pool::create(&t.config(), "localhost", "x.set", POOL, 4, None)
            .unwrap_or_else(|e| panic!("{first:?} create: {e}\n{}", t.log()));
        let want = write_ranges(&mut pool, 1, &RANGES);
        assert!(read_all(&pool, 1) == want, "{first:?}: read back differs");
        pool.close().unwrap();
        let files: Vec<u8> = parts.iter().flat_map(|p| fs::read(p).unwrap()).collect();
        assert!(files == want, "{first:?}: part files");

        let t2 = LocalTarget::with_transport(second);
        let mut cfg = t2.config();
        cfg.cmd = t.config().cmd;
        let (pool, _) = Pool::open(&cfg, "localhost", "x.set", POOL, 2).unwrap();
        assert!(
            read_all(&pool, 0) == want,
            "written over {first:?}, read over {second:?}: differs"
        );
        pool.close().unwrap();
    }
}

#[test]
fn a_fabric_connection_without_the_secret_is_refused_and_the_pool_is_unchanged() {
    let Ok(lib) = Libfabric::load() else {
        assert!(Transport::Fabric("tcp").available());
        return;
    };
    for provider in ["tcp", "sockets"] {
        let t = LocalTarget::with_transport(Transport::Fabric(provider));
        let part = t.write_nohdrs_set("s", "16M");
        let mut pool = Pool::create(&t.config(), "localhost", "s.set", POOL, 2, None).unwrap();
        let want = write_ranges(&mut pool, 7, &RANGES[..2]);
        let before = fs::read(&part).unwrap();
        let port = data_port(&t, "s.set");
        let info = lib
            .getinfo(&Hints::connect("127.0.0.1", port).provider(provider))
            .unwrap()
            .remove(0);
        let domain = Fabric::open(&info).unwrap().domain().unwrap();
        // A hello (magic, version 1, lane 0) with a guessed secret, garbage,
        // and nothing at all.
        let mut guessed = b"RPMD\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00".to_vec();
        guessed.extend_from_slice(&[0x5a; 32]);
        for data in [guessed, b"let me in".to_vec(), Vec::new()] {
            let mut ep = domain.endpoint().unwrap();
            match ep.connect(&data, Duration::from_secs(10)) {
                Err(FabricError::Rejected) => {}
                other => panic!("{provider}: a connection with {data:?} gave {other:?}"),
            }
        }
        assert!(
            fs::read(&part).unwrap() == before,
            "{provider}: the pool changed"
        );
        assert!(
            t.log().contains("fabric connection refused"),
            "{provider}: not logged:\n{}",
            t.log()
        );
        // The session itself is unharmed.
        assert!(read_all(&pool, 1) == want);
        write_ranges(&mut pool, 9, &RANGES[2..3]);
        pool.close().unwrap();
    }
}

/// Runs a session with rpmemd started as `daemon_prefix rpmemd ...`, writes
/// the ranges, and returns what the daemon logged.
fn session_with(t: &LocalTarget, daemon_prefix: &str, daemon_args: &str) -> String {
    let part = t.write_nohdrs_set("m", "16M");
    let cfg = Config {
        cmd: format!("{daemon_prefix}{} {daemon_args}", t.rpmem_cmd()),
        ..t.config()
    };
    let mut pool = Pool::create(&cfg, "localhost", "m.set", POOL, 2, None)
        .unwrap_or_else(|e| panic!("create: {e}\n{}", t.log()));
    let want = write_ranges(&mut pool, 3, &RANGES);
    assert!(read_all(&pool, 0) == want);
    pool.close().unwrap();
    assert!(
        fs::read(&part).unwrap()[..POOL] == want[..],
        "{daemon_prefix}{daemon_args}: part file differs"
    );
    let log = t.log();
    fs::remove_file(t.log_path()).unwrap();
    fs::remove_file(part).unwrap();
    log
}

#[test]
fn both_persistency_methods_land_every_byte_in_the_part_file() {
    let tr = Transport::Fabric("tcp");
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    let log = session_with(&t, "", "");
    assert!(log.contains("persist general"), "{log}");
    // Appliance where every part counts as persistent memory.
    let log = session_with(&t, "RPMEMD_FORCE_PMEM=1 ", "--persist-apm");
    assert!(log.contains("persist appliance"), "{log}");
    // Asked for on ordinary files: refused, said why, general used.
    let log = session_with(&t, "", "--persist-apm");
    assert!(log.contains("persist-apm needs every part"), "{log}");
    assert!(log.contains("persist general"), "{log}");
}

const CREATE_C: &str = r#"
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <librpmem.h>

/* usage: create TARGET SET: creates and closes an 8 MiB pool without
 * attributes; prints "ok" or "errno N: MESSAGE". */
int main(int argc, char **argv) {
	size_t size = 8 << 20;
	void *pool;
	unsigned nlanes = 2;
	if (posix_memalign(&pool, 4096, size))
		return 2;
	memset(pool, 0, size);
	RPMEMpool *rpp = rpmem_create(argv[1], argv[2], pool, size, &nlanes, NULL);
	if (!rpp) {
		printf("errno %d: %s\n", errno, rpmem_errormsg());
		return 0;
	}
	if (rpmem_persist(rpp, 4096, 4096, 0, 0) || rpmem_close(rpp)) {
		printf("errno %d: %s\n", errno, rpmem_errormsg());
		return 0;
	}
	printf("ok\n");
	return 0;
}
"#;

/// The file the dynamic loader maps for libfabric.so.1.
fn libfabric_file() -> PathBuf {
    let _lib = Libfabric::load().unwrap();
    let maps = fs::read_to_string("/proc/self/maps").unwrap();
    let path = maps
        .lines()
        .filter_map(|l| l.split_whitespace().nth(5))
        .find(|p| p.contains("libfabric.so"))
        .expect("libfabric is mapped");
    PathBuf::from(path)
}

#[test]
fn without_libfabric_tcp_works_and_fabric_fails_with_enomedium() {
    if !Transport::Fabric("tcp").available() {
        return;
    }
    if !is_root() || !Path::new("/usr/bin/unshare").exists() {
        eprintln!("skipping: needs root and unshare (hides libfabric in a mount namespace)");
        return;
    }
    let lib = libfabric_file();
    let src = std::env::temp_dir().join(format!("fabric_create-{}.c", std::process::id()));
    fs::write(&src, CREATE_C).unwrap();
    let exe = compile_c(&src);
    let t = LocalTarget::new();
    let run = |transport: &str, set: &str| -> String {
        t.write_nohdrs_set(set, "8M");
        // The client and the daemon it starts run where libfabric's file
        // is an empty one: dlopen fails as if it were not installed.
        let mut cmd = Command::new("/usr/bin/unshare");
        cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg(format!(
                "mount --bind /dev/null '{}' && exec \"$0\" localhost {set}.set",
                lib.display()
            ))
            .arg(&exe)
            .current_dir(t.dir());
        for (k, v) in t.env() {
            cmd.env(k, v);
        }
        cmd.env_remove("RPMEM_TRANSPORT");
        if !transport.is_empty() {
            cmd.env("RPMEM_TRANSPORT", transport);
        }
        let out = run_with_timeout(&mut cmd, Duration::from_secs(120));
        assert!(out.status.success(), "{out:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    assert_eq!(run("", "auto").trim(), "ok", "auto without libfabric");
    assert_eq!(run("tcp", "tcp").trim(), "ok", "tcp without libfabric");
    let out = run("fabric", "fab");
    eprintln!("without libfabric, RPMEM_TRANSPORT=fabric: {out}");
    assert!(
        out.starts_with(&format!("errno {}:", libc::ENOMEDIUM)) && out.contains("libfabric"),
        "{out}"
    );
    assert!(
        !t.dir().join("fab.part").exists(),
        "the daemon was asked anyway"
    );
}
