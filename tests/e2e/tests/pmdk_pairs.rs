//! PMDK 1.12.1's librpmem against our rpmemd: a C program linked to PMDK's
//! library runs through our daemon, which tells PMDK's protocol from ours by
//! the first bytes and serves its lanes over libfabric's sockets provider.
//!
//! Skipped, with a message, where PMDK 1.12.1 is not available (see
//! `e2e::pmdk::prefix`).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::pmdk::{one_part_set, outcome as text};
use e2e::{compile_c_with, pmdk, run_with_timeout, workspace_root, LocalTarget};

const MIB: u64 = 1024 * 1024;

/// Runs `tests/c/pmdk_session.c`, built on PMDK's librpmem, against our
/// daemon serving `t`.
fn session(pmdk: &Path, t: &LocalTarget, args: &[&str]) -> Output {
    let prog = compile_c_with(&workspace_root().join("tests/c/pmdk_session.c"), pmdk, &[]);
    run_with_timeout(
        Command::new(&prog)
            .arg("localhost")
            .args(args)
            .envs(pmdk::env(pmdk))
            .envs(t.env()),
        Duration::from_secs(120),
    )
}

#[test]
fn pmdk_librpmem_creates_persists_reads_and_removes_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "a.set", "", 16 * MIB);
    let o = session(pmdk, &t, &["a.set", "keep"]);
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    // What the program persisted at 4096, byte for byte in the part file.
    let bytes = fs::read(&part).unwrap();
    let want: Vec<u8> = (0..256u32).map(|i| 0xa0 ^ i as u8).collect();
    assert_eq!(&bytes[4096..4096 + 256], &want[..]);
    // The attributes set_attr stored are in the header: signature "CAPTURE".
    assert_eq!(&bytes[..8], b"CAPTURE\0");
    let log = t.log();
    assert!(log.contains("session of PMDK's librpmem"), "{log}");
    assert!(log.contains("sockets provider"), "{log}");

    // A second run creates again: refused with EEXIST, as PMDK's rpmemd does.
    let o = session(pmdk, &t, &["a.set", "create"]);
    assert!(!o.status.success(), "{}", text(&o, &t));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("(errno 17)"), "{}", text(&o, &t));
    assert!(err.contains("Pool already exists"), "{}", text(&o, &t));

    // The full cycle, ending with rpmem_remove through our `rpmemd -r`.
    fs::remove_file(&part).unwrap();
    let o = session(pmdk, &t, &["a.set"]);
    assert!(
        o.status.success() && o.stdout == b"ok\n",
        "{}",
        text(&o, &t)
    );
    assert!(!part.exists(), "rpmem_remove removed the part");
}

#[test]
fn pmdk_librpmem_gets_pmdks_errors_from_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let o = session(pmdk, &t, &["missing.set", "create"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("(errno 2)"),
        "{}",
        text(&o, &t)
    );
    // Smaller than the 8 MiB the program asks for.
    one_part_set(&t, "small.set", "", 4 * MIB);
    let o = session(pmdk, &t, &["small.set", "create"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        !o.status.success() && err.contains("(errno 27)"),
        "{}",
        text(&o, &t)
    );
    assert!(!t.dir().join("small.set.part").exists());
}

/// Runs one of our C API programs, built on PMDK's librpmem, against our
/// daemon serving `t`; returns its stdout.
fn run_ours(pmdk: &Path, t: &LocalTarget, src: &str, cflags: &[&str], args: &[&str]) -> String {
    let prog = compile_c_with(&workspace_root().join("tests/c").join(src), pmdk, cflags);
    let o = run_with_timeout(
        Command::new(&prog)
            .args(args)
            .envs(pmdk::env(pmdk))
            .envs(t.env()),
        Duration::from_secs(300),
    );
    assert!(o.status.success(), "{src}: {}", text(&o, t));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn pmdk_librpmem_runs_the_manual_page_example_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("pool", "32M");
    let out = run_ours(pmdk, &t, "example.c", &[], &["localhost", "pool.set"]);
    assert!(out.contains("example: ok"), "{out}");
    assert!(fs::metadata(&part).unwrap().len() >= 32 * MIB);
}

#[test]
fn pmdk_librpmem_on_four_lanes_through_our_rpmemd_lands_byte_for_byte() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "lanes.set", "", 8 * MIB);
    let image = t.dir().join("lanes.image");
    // Persist (flags 0 and RELAXED), flush + drain, deep_persist and read on
    // four threads, one lane each; fewer rounds than against our library,
    // as PMDK's persists over the sockets provider take ~10 times longer.
    let out = run_ours(
        pmdk,
        &t,
        "lanes.c",
        &["-DROUNDS=40"],
        &["localhost", "lanes.set", image.to_str().unwrap()],
    );
    assert!(out.contains("lanes: ok"), "{out}");
    pmdk::assert_part_matches_image(&part, &image);
}

/// `lanes.c` on PMDK's librpmem against our rpmemd started as `cmd` (an
/// `RPMEM_CMD`) serving `set` in `t`; returns the daemon's log.
fn lanes_through(pmdk: &Path, t: &LocalTarget, set: &str, cmd: &str) -> (PathBuf, String) {
    let prog = compile_c_with(
        &workspace_root().join("tests/c/lanes.c"),
        pmdk,
        &["-DROUNDS=40"],
    );
    let image = t.dir().join("lanes.image");
    let o = run_with_timeout(
        Command::new(&prog)
            .args(["localhost", set, image.to_str().unwrap()])
            .envs(pmdk::env(pmdk))
            .envs(t.env())
            .env("RPMEM_CMD", cmd),
        Duration::from_secs(300),
    );
    assert!(
        o.status.success() && String::from_utf8_lossy(&o.stdout).contains("lanes: ok"),
        "{}",
        text(&o, t)
    );
    (image, t.log())
}

/// With `--persist-apm` on persistent memory (forced here) PMDK's client
/// gets the appliance method: its writes are made durable by its reads
/// after them, and only inline and deep persists reach the daemon.
#[test]
fn pmdk_librpmem_gets_the_appliance_method_from_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = one_part_set(&t, "apm.set", "", 8 * MIB);
    let cmd = format!("RPMEMD_FORCE_PMEM=1 {} --persist-apm", t.rpmem_cmd());
    let (image, log) = lanes_through(pmdk, &t, "apm.set", &cmd);
    assert!(
        log.contains("sockets provider") && log.contains("Apm"),
        "{log}"
    );
    pmdk::assert_part_matches_image(&part, &image);
    // Without persistent memory the same request gets the general method.
    fs::remove_file(&part).unwrap();
    let cmd = format!("{} --persist-apm", t.rpmem_cmd());
    let (image, log) = lanes_through(pmdk, &t, "apm.set", &cmd);
    assert!(log.contains("persist-apm needs persistent memory"), "{log}");
    assert!(log.contains("Gpspm"), "{log}");
    pmdk::assert_part_matches_image(&part, &image);
}

/// A pool set of two parts, the persisted ranges crossing from one into the
/// other: PMDK's client sees the pool at one address.
#[test]
fn pmdk_librpmem_writes_a_pool_set_of_two_parts_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let (p0, p1) = (t.dir().join("two.p0"), t.dir().join("two.p1"));
    t.write_poolset(
        "two.set",
        &format!("PMEMPOOLSET\n2M {}\n8M {}\n", p0.display(), p1.display()),
    );
    let (image, log) = lanes_through(pmdk, &t, "two.set", &t.rpmem_cmd());
    assert!(log.contains("session of PMDK's librpmem"), "{log}");
    // The pool: all of the first part, then the second after its header.
    let mut pool = fs::read(&p0).unwrap();
    assert_eq!(pool.len() as u64, 2 * MIB);
    pool.extend_from_slice(&fs::read(&p1).unwrap()[4096..]);
    pmdk::assert_pool_matches_image(&pool, &image);
}

/// A PMDK client by hand: our codec on rpmemd's stdin/stdout, lanes through
/// libfabric's sockets provider, so it can send what PMDK's library never
/// would.
mod raw {
    use std::io::{Read, Write};
    use std::process::{Child, Stdio};
    use std::sync::Arc;
    use std::time::Duration;

    use e2e::LocalTarget;
    use rpmem_fabric::{Access, Domain, Endpoint, Fabric, Hints, Libfabric, MemoryRegion};
    use rpmem_proto::pmdk::fip::{Persist, PersistResp, PERSIST_RESP_LEN};
    use rpmem_proto::pmdk::obc::{self, Common, IbcAttr, Request, Response};
    use rpmem_proto::pmdk::Status;
    use rpmem_proto::PoolAttr;

    pub struct Session {
        pub child: Child,
        pub ibc: IbcAttr,
        domain: Arc<Domain>,
    }

    pub struct Lane {
        ep: Endpoint,
        buf: Arc<MemoryRegion>,
    }

    impl Session {
        /// Creates `set` (8 MiB, with attributes) in our rpmemd serving `t`.
        pub fn create(t: &LocalTarget, set: &str, nlanes: u32) -> Session {
            Session::create_as(t, set, nlanes, "127.0.0.1 1 127.0.0.1 22", &[])
        }

        /// [`Session::create`] with the daemon's `SSH_CONNECTION` and extra
        /// options given.
        pub fn create_as(
            t: &LocalTarget,
            set: &str,
            nlanes: u32,
            ssh_connection: &str,
            extra: &[&str],
        ) -> Session {
            let mut child = t
                .rpmemd_command()
                .args(extra)
                .env("SSH_CONNECTION", ssh_connection)
                .stdin(Stdio::piped())
                .stdout(Stdio::piped())
                .spawn()
                .expect("start rpmemd");
            let req = Request::Create {
                common: Common::sample(nlanes),
                attr: PoolAttr {
                    signature: *b"RAWPMDK\0",
                    major: 1,
                    ..PoolAttr::default()
                },
                pool_desc: set.into(),
            };
            child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(&req.encode())
                .unwrap();
            let mut answer = [0u8; obc::STATUS_LEN + obc::CREATE_RESP_LEN];
            child
                .stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut answer)
                .unwrap();
            let (status, resps, _) = obc::decode_responses(&answer).unwrap();
            assert_eq!(status, 0);
            let Response::Create { status, ibc } = resps[0] else {
                panic!("{resps:?}")
            };
            assert_eq!(status, Status::Success);
            let lib = Libfabric::load().expect("libfabric");
            let info = lib
                .getinfo(&Hints::connect("127.0.0.1", ibc.port as u16).provider("sockets"))
                .expect("sockets provider")
                .remove(0);
            let domain = Fabric::open(&info).unwrap().domain().unwrap();
            Session { child, ibc, domain }
        }

        pub fn lane(&self) -> Lane {
            self.try_lane().expect("connect a lane")
        }

        /// A lane, or why the daemon refused it.
        pub fn try_lane(&self) -> Result<Lane, rpmem_fabric::Error> {
            let mut ep = self.domain.endpoint().unwrap();
            let buf = self.domain.register(64 << 10, Access::LOCAL).unwrap();
            ep.post_recv(&buf, 0, PERSIST_RESP_LEN, 1).unwrap();
            ep.connect(&[], Duration::from_secs(5))?;
            Ok(Lane { ep, buf })
        }

        /// Closes the session; rpmemd answers and exits 0.
        pub fn close(mut self) {
            let req = Request::Close { flags: 0 };
            self.child
                .stdin
                .as_mut()
                .unwrap()
                .write_all(&req.encode())
                .unwrap();
            let mut answer = [0u8; obc::BARE_RESP_LEN];
            self.child
                .stdout
                .as_mut()
                .unwrap()
                .read_exact(&mut answer)
                .unwrap();
            assert_eq!(
                Response::decode(&answer).unwrap(),
                Response::Close {
                    status: Status::Success
                }
            );
            assert!(self.child.wait().unwrap().success());
        }
    }

    impl Lane {
        /// Sends `p`; its answer, or `None` when the daemon dropped the lane.
        pub fn persist(&mut self, p: &Persist) -> Option<PersistResp> {
            let msg = p.encode();
            self.buf.write(4096, &msg).unwrap();
            self.ep.post_send(&self.buf, 4096, msg.len(), 2).ok()?;
            loop {
                let c = self.ep.wait(Duration::from_secs(5)).ok()?;
                if c.token == 1 {
                    let mut resp = [0u8; PERSIST_RESP_LEN];
                    self.buf.read(0, &mut resp).unwrap();
                    return Some(PersistResp::decode(&resp).unwrap());
                }
            }
        }
    }
}

#[test]
fn bad_persists_from_a_pmdk_client_are_refused_without_touching_the_pool() {
    use rpmem_proto::pmdk::fip::{Mode, Persist};
    if pmdk::prefix().is_none() {
        return;
    }
    let t = LocalTarget::new();
    let part = one_part_set(&t, "b.set", "", 8 * MIB);
    // More lanes than connections: a lane the daemon drops still counts.
    let s = raw::Session::create(&t, "b.set", 8);
    let before = fs::read(&part).unwrap();
    let raddr = s.ibc.raddr;
    let inline = |lane: u32, offset: u64, data: &[u8]| Persist {
        flags: Mode::Send as u32,
        lane,
        addr: raddr.wrapping_add(offset),
        size: data.len() as u64,
        data: data.to_vec(),
    };
    let bad = [
        ("lane out of range", inline(8, 8192, b"evil")),
        ("offset inside the header", inline(0, 16, b"evil")),
        ("range past the end", inline(0, 8 * MIB - 2, b"evil")),
    ];
    for (what, p) in &bad {
        let mut lane = s.lane();
        assert_eq!(lane.persist(p), None, "{what}: answered");
    }
    assert_eq!(fs::read(&part).unwrap(), before, "the pool is untouched");
    let log = t.log();
    assert_eq!(log.matches("refused persist").count(), 3, "{log}");

    // The session goes on: a good inline persist lands and is answered.
    let mut lane = s.lane();
    let resp = lane.persist(&inline(0, 8192, b"good"));
    assert_eq!(resp.map(|r| r.lane), Some(0));
    s.close();
    assert_eq!(&fs::read(&part).unwrap()[8192..8196], b"good");
}

/// PMDK's lanes carry no secret, so the address rule is what keeps
/// strangers out: a lane from another address than the ssh session's client
/// is rejected before it is accepted (and logged); `--allow-from` admits it.
#[test]
fn pmdk_lanes_only_from_the_ssh_client_or_allowed_networks() {
    use rpmem_proto::pmdk::fip::{Mode, Persist};
    if pmdk::prefix().is_none() {
        return;
    }
    let t = LocalTarget::new();
    let part = one_part_set(&t, "far.set", "", 8 * MIB);
    // The ssh session came from 127.0.0.2; this test's lanes leave from 127.0.0.1.
    let s = raw::Session::create_as(&t, "far.set", 2, "127.0.0.2 1 127.0.0.1 22", &[]);
    let before = fs::read(&part).unwrap();
    assert!(s.try_lane().is_err(), "a lane from 127.0.0.1 was accepted");
    s.close();
    assert_eq!(fs::read(&part).unwrap(), before, "the pool is untouched");
    let log = t.log();
    assert!(
        log.contains("from 127.0.0.1:") && log.contains("not from an allowed address (127.0.0.2)"),
        "{log}"
    );
    let part = one_part_set(&t, "near.set", "", 8 * MIB);
    let s = raw::Session::create_as(
        &t,
        "near.set",
        2,
        "127.0.0.2 1 127.0.0.1 22",
        &["--allow-from=127.0.0.0/8"],
    );
    let mut lane = s.lane();
    let resp = lane.persist(&Persist {
        flags: Mode::Send as u32,
        lane: 0,
        addr: s.ibc.raddr.wrapping_add(8192),
        size: 4,
        data: b"near".to_vec(),
    });
    assert_eq!(resp.map(|r| r.lane), Some(0));
    drop(lane);
    s.close();
    assert_eq!(&fs::read(&part).unwrap()[8192..8196], b"near");
}

#[test]
fn pmdk_librpmem_persists_1_mib_ranges_through_our_rpmemd() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let part = t.write_nohdrs_set("bench", "64M");
    // The program BENCHMARKS.md compares pairings with, briefly: 64 B and
    // 1 MiB persists of a pool filled with 0x5a.
    let out = run_ours(
        pmdk,
        &t,
        "persist_bench.c",
        &[],
        &["localhost", "bench.set", "0.3"],
    );
    assert!(
        out.starts_with("64B p50 ") && out.contains("\n1MiB "),
        "{out}"
    );
    // The 1 MiB persists cover the pool from offset 0, one MiB after another.
    let n: usize = out
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{out}"));
    assert!(n > 0, "{out}");
    let bytes = fs::read(&part).unwrap();
    let covered = n.min(63) << 20;
    assert!(bytes[..covered].iter().all(|&b| b == 0x5a), "{out}");
}
