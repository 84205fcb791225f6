//! The target side through the client: rpmemd's options and configuration
//! files as a session sees them, the persistent-memory durability path
//! (forced with `RPMEMD_FORCE_PMEM=1`), multi-part and SINGLEHDR pools across
//! part boundaries, damaged headers, busy pools and pool set names that try
//! to leave the poolset directory.

use std::fs;
use std::path::PathBuf;

use e2e::{bin, LocalTarget};
use rpmem::{Config, PersistFlags, Pool, PoolAttr};

const MIB: usize = 1024 * 1024;

/// A config whose remote command is `rpmemd ARGS` (no default options).
fn config_with(args: &str) -> Config {
    Config {
        ssh: bin("rpmem-ssh-local").display().to_string(),
        cmd: format!("{} {args}", bin("rpmemd").display()),
        ..Config::default()
    }
}

fn attr() -> PoolAttr {
    PoolAttr::sample(b"TGTCONF\0", 2)
}

/// Writes `name` with `option` ("" for none) and one part per size (MiB);
/// returns the part paths.
fn poolset(t: &LocalTarget, name: &str, option: &str, mib: &[usize]) -> Vec<PathBuf> {
    let mut text = String::from("PMEMPOOLSET\n");
    if !option.is_empty() {
        text.push_str(&format!("OPTION {option}\n"));
    }
    let parts: Vec<PathBuf> = (0..mib.len())
        .map(|i| t.dir().join(format!("{name}.part{i}")))
        .collect();
    for (p, m) in parts.iter().zip(mib) {
        text.push_str(&format!("{m}M {}\n", p.display()));
    }
    t.write_poolset(name, &text);
    parts
}

fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len as u32)
        .map(|i| (i.wrapping_mul(2654435761).wrapping_add(seed) >> 13) as u8)
        .collect()
}

/// The instruction rpmemd is expected to pick on this CPU.
fn expected_instruction() -> &'static str {
    let cpuinfo = fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags: Vec<&str> = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .map(|l| l.split_whitespace().collect())
        .unwrap_or_default();
    if flags.contains(&"clwb") {
        "clwb"
    } else if flags.contains(&"clflushopt") {
        "clflushopt"
    } else {
        "clflush"
    }
}

#[test]
fn forced_pmem_path_persists_to_the_part_files_and_logs_the_instruction() {
    if !cfg!(target_arch = "x86_64") {
        eprintln!("skipping: the cache-flush path is x86_64 only");
        return;
    }
    let t = LocalTarget::new();
    let parts = poolset(&t, "pm.set", "", &[2, 2]);
    let size = 4 * MIB - 4096;

    // Without the switch ordinary files use msync (MAP_SYNC fails here).
    let cfg = t.config();
    let pool = Pool::create(&cfg, "localhost", "pm.set", size, 2, Some(&attr()))
        .unwrap_or_else(|e| panic!("create: {e}; log: {}", t.log()));
    pool.close().unwrap();
    assert!(t.log().contains("persist: msync"), "{}", t.log());

    let mut cfg = t.config();
    cfg.cmd = format!("RPMEMD_FORCE_PMEM=1 {}", t.rpmem_cmd());
    let (mut pool, got) = Pool::open(&cfg, "localhost", "pm.set", size, 2)
        .unwrap_or_else(|e| panic!("open: {e}; log: {}", t.log()));
    assert_eq!(got.signature, attr().signature);
    let insn = expected_instruction();
    let log = t.log();
    assert!(log.contains(&format!("persist: {insn}")), "{log}");
    assert!(log.contains("RPMEMD_FORCE_PMEM=1"), "{log}");

    // Across the boundary of part 0 (pool offset 2M) into part 1, both modes.
    let data = pattern(7, 3 * 4096 + 5);
    let at = 2 * MIB - 4096 - 3;
    pool.region_mut()[at..at + data.len()].copy_from_slice(&data);
    pool.persist(at, data.len(), 0, PersistFlags::empty())
        .unwrap();
    pool.region_mut()[8192..8192 + 11].copy_from_slice(b"relaxed-pm!");
    pool.persist(8192, 11, 1, PersistFlags::RELAXED).unwrap();
    pool.region_mut()[3 * MIB..3 * MIB + 4].copy_from_slice(b"deep");
    pool.deep_persist(3 * MIB, 4, 1).unwrap();

    let p0 = fs::read(&parts[0]).unwrap();
    let p1 = fs::read(&parts[1]).unwrap();
    let split = 2 * MIB - at;
    assert_eq!(&p0[at..], &data[..split]);
    // Part 1 has its own header: pool offset 2M is its byte 4096.
    assert_eq!(&p1[4096..4096 + data.len() - split], &data[split..]);
    assert_eq!(&p0[8192..8192 + 11], b"relaxed-pm!");
    let deep_at = p1.windows(4).position(|w| w == b"deep");
    // Pool offset 2M is part 1 byte 4096 (after its header).
    assert_eq!(deep_at, Some(3 * MIB - 2 * MIB + 4096));
    let mut back = vec![0u8; data.len()];
    pool.read(&mut back, at, 0).unwrap();
    assert_eq!(back, data);
    pool.close().unwrap();
}

#[test]
fn config_file_options_reach_the_daemon_and_the_command_line_wins() {
    let t = LocalTarget::new();
    poolset(&t, "c.set", "NOHDRS", &[2]);
    let log = t.dir().join("conf.log");
    let conf = t.dir().join("rpmemd.conf");
    fs::write(
        &conf,
        format!(
            "# rpmemd configuration\n\
             poolset-dir = {}\n\
             log-file = {}   # where the log goes\n\
             log-level = info\n\
             max-lanes = 2\n\
             nthreads = 3\n\
             persist-apm = yes\n\
             persist-general = no\n\
             use-syslog = no\n",
            t.dir().display(),
            log.display()
        ),
    )
    .unwrap();
    let cfg = config_with(&format!("-c {}", conf.display()));
    let pool = Pool::create(&cfg, "localhost", "c.set", 2 * MIB, 8, None)
        .unwrap_or_else(|e| panic!("create: {e}"));
    assert_eq!(pool.nlanes(), 2, "max-lanes from the file");
    pool.close().unwrap();
    let text = fs::read_to_string(&log).unwrap();
    assert!(text.contains("persist-apm requested"), "{text}");
    assert!(text.contains("persist-general = no"), "{text}");
    assert!(text.contains("persist: msync"), "log-level info: {text}");

    // The command line overrides the file.
    let cfg = config_with(&format!(
        "-c {} --max-lanes=3 --log-level err",
        conf.display()
    ));
    let (pool, _) = Pool::open(&cfg, "localhost", "c.set", 2 * MIB, 8).unwrap();
    assert_eq!(pool.nlanes(), 3, "--max-lanes wins");
    pool.close().unwrap();
    assert_eq!(
        fs::read_to_string(&log).unwrap(),
        text,
        "--log-level err: nothing more logged"
    );

    // -t/--nthreads on the command line is accepted.
    let cfg = config_with(&format!("-c {} -t 4", conf.display()));
    let (pool, _) = Pool::open(&cfg, "localhost", "c.set", 2 * MIB, 1).unwrap();
    pool.close().unwrap();
}

#[test]
fn bad_config_line_fails_the_session_naming_file_and_line() {
    let t = LocalTarget::new();
    poolset(&t, "b.set", "NOHDRS", &[2]);
    let conf = t.dir().join("bad.conf");
    fs::write(
        &conf,
        format!("poolset-dir = {}\nmax-lanes = lots\n", t.dir().display()),
    )
    .unwrap();
    let cfg = config_with(&format!("-c {}", conf.display()));
    let e = Pool::create(&cfg, "localhost", "b.set", 2 * MIB, 1, None)
        .expect_err("a bad configuration line must fail the session");
    let msg = e.to_string();
    assert!(
        msg.contains(&format!("{}:2:", conf.display())),
        "errno {}: {msg}",
        e.errno()
    );
    assert!(!t.dir().join("b.set.part0").exists());
    // rpmemd --remove reports it through its exit status: EINVAL.
    let e = rpmem::remove(&cfg, "localhost", "b.set", rpmem::RemoveFlags::default())
        .expect_err("remove with a bad configuration");
    assert_eq!(e.errno(), libc::EINVAL, "{e}");
}

/// Fills the whole usable pool (above the header) with a pattern, persists
/// it in chunks that straddle every part boundary, reopens and reads it back.
fn round_trip(t: &LocalTarget, name: &str, size: usize, parts: &[PathBuf]) -> Vec<u8> {
    let cfg = t.config();
    let mut pool = Pool::create(&cfg, "localhost", name, size, 4, Some(&attr()))
        .unwrap_or_else(|e| panic!("create {name}: {e}; log: {}", t.log()));
    let data = pattern(size as u32, size - 4096);
    pool.region_mut()[4096..].copy_from_slice(&data);
    // Chunks of 300 KiB + 3 bytes: misaligned, crossing each boundary.
    let chunk = 300 * 1024 + 3;
    let mut off = 4096;
    let mut lane = 0;
    while off < size {
        let n = chunk.min(size - off);
        let flags = if lane % 2 == 0 {
            PersistFlags::empty()
        } else {
            PersistFlags::RELAXED
        };
        pool.persist(off, n, lane, flags).unwrap();
        off += n;
        lane = (lane + 1) % 4;
    }
    pool.close().unwrap();
    for p in parts {
        assert!(p.exists(), "{}", p.display());
    }
    let (pool, got) = Pool::open(&cfg, "localhost", name, size, 2).unwrap();
    assert_eq!(got.signature, attr().signature);
    // A second client is refused while this one holds the pool.
    let busy =
        Pool::open(&cfg, "localhost", name, size, 1).expect_err("second open must be refused");
    assert_eq!(busy.errno(), libc::EBUSY, "{busy}");
    let mut back = vec![0u8; size - 4096];
    for (i, piece) in back.chunks_mut(MIB).enumerate() {
        pool.read(piece, 4096 + i * MIB, (i % 2) as u32).unwrap();
    }
    assert!(back == data, "{name}: data read back differs");
    pool.close().unwrap();
    data
}

#[test]
fn multi_part_pool_round_trips_across_part_boundaries() {
    let t = LocalTarget::new();
    let parts = poolset(&t, "multi.set", "", &[2, 3, 2]);
    // Every part has a header; the remote pool skips the later ones.
    let size = 7 * MIB - 2 * 4096;
    let data = round_trip(&t, "multi.set", size, &parts);
    let files: Vec<Vec<u8>> = parts.iter().map(|p| fs::read(p).unwrap()).collect();
    // pool offset 4096.. is part 0 byte 4096..2M; then part 1 from 4096; ...
    let p0 = 2 * MIB - 4096;
    let p1 = 3 * MIB - 4096;
    assert_eq!(&files[0][4096..], &data[..p0]);
    assert_eq!(&files[1][4096..], &data[p0..p0 + p1]);
    assert_eq!(&files[2][4096..], &data[p0 + p1..]);
    for f in &files {
        assert_eq!(&f[..8], b"TGTCONF\0", "each part has a header");
    }
}

#[test]
fn singlehdr_pool_round_trips_across_part_boundaries() {
    let t = LocalTarget::new();
    let parts = poolset(&t, "single.set", "SINGLEHDR", &[2, 3, 2]);
    let size = 7 * MIB;
    let data = round_trip(&t, "single.set", size, &parts);
    let files: Vec<Vec<u8>> = parts.iter().map(|p| fs::read(p).unwrap()).collect();
    assert_eq!(&files[0][..8], b"TGTCONF\0");
    assert_eq!(&files[0][4096..], &data[..2 * MIB - 4096]);
    // No header in later parts: their byte 0 continues the pool.
    assert_eq!(&files[1][..], &data[2 * MIB - 4096..5 * MIB - 4096]);
    assert_eq!(&files[2][..], &data[5 * MIB - 4096..]);
}

#[test]
fn damaged_header_is_refused_end_to_end_and_left_alone() {
    let t = LocalTarget::new();
    let parts = poolset(&t, "dmg.set", "", &[2, 2]);
    let size = 4 * MIB - 4096;
    let cfg = t.config();
    Pool::create(&cfg, "localhost", "dmg.set", size, 1, Some(&attr()))
        .unwrap()
        .close()
        .unwrap();
    for (part, byte) in [(0, 44), (1, 130)] {
        let good = fs::read(&parts[part]).unwrap();
        let mut bad = good.clone();
        bad[byte] ^= 0x10;
        fs::write(&parts[part], &bad).unwrap();
        let e = Pool::open(&cfg, "localhost", "dmg.set", size, 1)
            .expect_err("a damaged header must be refused");
        assert_eq!(e.errno(), libc::EINVAL, "{e}");
        assert!(e.to_string().contains("checksum"), "{e}");
        assert_eq!(fs::read(&parts[part]).unwrap(), bad, "nothing written");
        fs::write(&parts[part], &good).unwrap();
    }
    Pool::open(&cfg, "localhost", "dmg.set", size, 1)
        .unwrap()
        .0
        .close()
        .unwrap();
}

#[test]
fn names_outside_the_poolset_dir_are_refused_and_logged() {
    let t = LocalTarget::new();
    let outside = tempfile::tempdir().unwrap();
    let part = outside.path().join("p");
    let set = outside.path().join("out.set");
    fs::write(
        &set,
        format!("PMEMPOOLSET\nOPTION NOHDRS\n2M {}\n", part.display()),
    )
    .unwrap();
    std::os::unix::fs::symlink(&set, t.dir().join("link.set")).unwrap();
    let rel = format!(
        "../{}/out.set",
        outside.path().file_name().unwrap().to_string_lossy()
    );
    let cfg = t.config();
    for name in [rel.as_str(), set.to_str().unwrap(), "link.set"] {
        let e = Pool::create(&cfg, "localhost", name, 2 * MIB, 1, None)
            .err()
            .unwrap_or_else(|| panic!("{name} must be refused"));
        assert_eq!(e.errno(), libc::EINVAL, "{name}: {e}");
        assert!(!part.exists(), "{name}: nothing created outside");
        let log = t.log();
        assert!(
            log.contains(&format!("invalid pool set name '{name}'")),
            "{name}: {log}"
        );
    }
}

#[test]
fn bad_pool_set_lines_reach_the_client_with_file_and_line() {
    let t = LocalTarget::new();
    let cfg = t.config();
    for (name, text, line) in [
        ("size.set", "PMEMPOOLSET\n# parts\n4Q /tmp/x\n", 3),
        ("rel.set", "PMEMPOOLSET\n4M rel/part\n", 2),
        (
            "both.set",
            "PMEMPOOLSET\nOPTION SINGLEHDR\nOPTION NOHDRS\n4M /tmp/x\n",
            3,
        ),
        (
            "repl.set",
            "PMEMPOOLSET\n4M /tmp/x\nREPLICA\n4M /tmp/y\n",
            3,
        ),
    ] {
        let path = t.write_poolset(name, text);
        let e = Pool::create(&cfg, "localhost", name, 2 * MIB, 1, None)
            .err()
            .unwrap_or_else(|| panic!("{name} must be refused"));
        assert_eq!(e.errno(), libc::EINVAL, "{name}: {e}");
        let canonical = path.canonicalize().unwrap();
        assert!(
            e.to_string()
                .contains(&format!("{}:{line}: ", canonical.display())),
            "{name}: {e}"
        );
    }
}
