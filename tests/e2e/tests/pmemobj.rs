//! Real clients on our library: Debian's libpmemobj and pmempool (PMDK
//! 1.12.1) dlopen `librpmem.so.1` for a pool set's remote replica. With our
//! library first on `LD_LIBRARY_PATH` they replicate to our rpmemd:
//! `pmempool create`, a transactional C program (`tests/c/pmemobj_app.c`),
//! `pmempool sync` in both directions, `pmempool info`, `pmempool rm`, once
//! through `rpmem-ssh-local` and once through a real OpenSSH sshd.
//!
//! `tests/c/pmemobj_trace.c` is a `librpmem.so.1` stand-in that logs every
//! call and forwards it to ours; the trace test uses it to pin down what
//! libpmemobj asks of librpmem (see docs/libpmemobj.md).
//!
//! The scenario runs once more with PMDK 1.12.1's own librpmem in place of
//! ours (where the reference build is available), against our rpmemd.
//!
//! Skipped (with a message) where pmempool or libpmemobj's headers are
//! missing; CI installs them.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use e2e::{
    expect_success, prefix, run_checked, run_with_timeout, workspace_root, LocalTarget, Sshd,
    Transport,
};

const MIB: usize = 1024 * 1024;
const POOL: usize = 64 * MIB;
const LAYOUT: &str = "rpmem-e2e";
/// libpmemobj's pool descriptor ends (and its lanes begin) at 8 KiB.
const LANES_OFF: usize = 8192;

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn have_pmemobj() -> bool {
    let pmempool = Command::new("pmempool")
        .arg("--version")
        .stdin(Stdio::null())
        .output()
        .is_ok_and(|o| o.status.success());
    let header = Path::new("/usr/include/libpmemobj.h").exists();
    if !pmempool || !header {
        eprintln!("skipping: needs pmempool and libpmemobj-dev (apt-get install pmdk-tools libpmemobj-dev)");
    }
    pmempool && header
}

fn scratch(name: &str) -> PathBuf {
    let dir = workspace_root().join("target").join("e2e-scratch");
    fs::create_dir_all(&dir).expect("create scratch dir");
    dir.join(format!("{name}-{}", std::process::id()))
}

fn cc(args: &[&str], out: &Path) {
    run_checked(
        Command::new("cc")
            .args(["-Wall", "-Werror", "-O1"])
            .args(args)
            .arg("-o")
            .arg(out),
    );
}

/// `tests/c/pmemobj_app.c` built against Debian's libpmemobj.
fn build_app(tag: &str) -> PathBuf {
    let src = workspace_root().join("tests/c/pmemobj_app.c");
    let out = scratch(&format!("pmemobj_app-{tag}"));
    cc(
        &[src.to_str().unwrap(), "-lpmemobj", "-lpthread"],
        out.as_path(),
    );
    out
}

/// The tracing `librpmem.so.1` in a directory of its own.
fn build_trace_lib(tag: &str) -> PathBuf {
    let src = workspace_root().join("tests/c/pmemobj_trace.c");
    let dir = scratch(&format!("pmemobj_trace-{tag}"));
    fs::create_dir_all(&dir).expect("create trace lib dir");
    cc(
        &[
            "-shared",
            "-fPIC",
            "-Wl,-soname,librpmem.so.1",
            src.to_str().unwrap(),
            "-ldl",
            "-lpthread",
        ],
        &dir.join("librpmem.so.1"),
    );
    dir
}

/// One pool set with a local replica and a remote one on our daemon.
struct Replicated {
    target: LocalTarget,
    local: tempfile::TempDir,
    /// `RPMEM_SSH`, `RPMEM_CMD` and the library path the clients get.
    env: Vec<(String, String)>,
    /// What the daemon logs when it created the replica, and when it refused
    /// a damaged header (PMDK's rpmemd says nothing specific for that).
    created: &'static str,
    damaged: Option<&'static str>,
}

impl Replicated {
    /// `remote.set` (one 64M part) in the daemon's poolset dir and
    /// `local.set` (one 64M part, `REPLICA <node> remote.set`) in a local dir.
    fn new(node: &str) -> Replicated {
        Replicated::over(node, Transport::Tcp)
    }

    /// As [`Replicated::new`], the sessions over `transport`.
    fn over(node: &str, transport: Transport) -> Replicated {
        let target = LocalTarget::with_transport(transport);
        let local = tempfile::Builder::new()
            .prefix("rpmem-pmemobj-")
            .tempdir()
            .expect("local dir");
        target.write_poolset(
            "remote.set",
            &format!(
                "PMEMPOOLSET\n64M {}\n",
                target.dir().join("remote.part0").display()
            ),
        );
        fs::write(
            local.path().join("local.set"),
            format!(
                "PMEMPOOLSET\n64M {}\n\nREPLICA {node} remote.set\n",
                local.path().join("local.part0").display()
            ),
        )
        .expect("write local.set");
        let mut env = target.env();
        env.push((
            "LD_LIBRARY_PATH".into(),
            prefix().join("lib").display().to_string(),
        ));
        Replicated {
            target,
            local,
            env,
            created: "created pool set 'remote.set'",
            damaged: Some("damaged pool header"),
        }
    }

    fn set(&self) -> PathBuf {
        self.local.path().join("local.set")
    }
    fn local_part(&self) -> PathBuf {
        self.local.path().join("local.part0")
    }
    fn remote_part(&self) -> PathBuf {
        self.target.dir().join("remote.part0")
    }

    fn set_env(&mut self, key: &str, value: &str) {
        self.env.retain(|(k, _)| k != key);
        self.env.push((key.into(), value.into()));
    }

    fn run(&self, prog: &Path, args: &[&str]) -> Output {
        let mut cmd = Command::new(prog);
        cmd.args(args).current_dir(self.local.path());
        for k in [
            "RPMEM_MAX_NLANES",
            "RPMEM_ENABLE_SOCKETS",
            "RPMEM_ENABLE_VERBS",
            "PMEMOBJ_NLANES",
        ] {
            cmd.env_remove(k);
        }
        cmd.envs(self.env.iter().map(|(k, v)| (k, v)));
        run_with_timeout(&mut cmd, Duration::from_secs(300))
    }

    /// Runs `prog args`; it must succeed. Returns its stdout.
    fn ok(&self, prog: &Path, args: &[&str]) -> String {
        let out = self.run(prog, args);
        let what = format!("{} {args:?}", prog.display());
        expect_success(&out, &what, &self.target.log())
    }

    fn pmempool(&self, args: &[&str]) -> String {
        self.ok(Path::new("pmempool"), args)
    }
}

/// Object (offset, size) pairs `pmemobj_app write` printed, root included.
fn written_ranges(out: &str) -> Vec<(usize, usize)> {
    out.lines()
        .filter_map(|l| {
            let w: Vec<&str> = l.split_whitespace().collect();
            match w.as_slice() {
                ["object", _, "offset", off, "size", size]
                | ["root", "offset", off, "size", size] => {
                    Some((off.parse().unwrap(), size.parse().unwrap()))
                }
                _ => None,
            }
        })
        .collect()
}

fn u64_at(b: &[u8], off: usize) -> usize {
    u64::from_le_bytes(b[off..off + 8].try_into().unwrap()) as usize
}

/// The remote part holds what the local part holds where libpmemobj keeps
/// persistent state: the pool header's identity, the persistent pool
/// descriptor, every lane, the written objects. (Outside these, libpmemobj
/// keeps run-time state in the mapping that it never persists, e.g. the
/// volatile tail of the pool descriptor and free chunks' headers.)
fn assert_replicated(r: &Replicated, objects: &[(usize, usize)]) {
    let local = fs::read(r.local_part()).expect("read local part");
    let remote = fs::read(r.remote_part()).expect("read remote part");
    assert_eq!(local.len(), POOL);
    assert_eq!(remote.len(), POOL);
    assert_eq!(&remote[..8], b"PMEMOBJ\0", "remote signature");
    assert_eq!(local[8..40], remote[8..40], "major, features, poolset uuid");
    // Layout name, lanes offset, nlanes, heap offset, descriptor checksum,
    // root offset and size.
    assert_eq!(local[4096..6184], remote[4096..6184], "pool descriptor");
    let heap_off = u64_at(&local, 4096 + 1024 + 16);
    assert!(
        heap_off > LANES_OFF && heap_off < POOL,
        "heap offset {heap_off}"
    );
    assert!(
        local[LANES_OFF..heap_off] == remote[LANES_OFF..heap_off],
        "lanes differ"
    );
    assert!(!objects.is_empty());
    for &(off, len) in objects {
        assert!(off >= heap_off && off + len <= POOL, "object at {off}");
        assert!(
            local[off..off + len] == remote[off..off + len],
            "object at {off} ({len} bytes) differs between local and remote part"
        );
        assert!(
            remote[off..off + len].iter().any(|&b| b != 0),
            "object at {off} is zero on the remote"
        );
    }
    let differing = local[LANES_OFF..]
        .iter()
        .zip(&remote[LANES_OFF..])
        .filter(|(a, b)| a != b)
        .count();
    eprintln!(
        "bytes past 8 KiB differing between local and remote part (run-time state): {differing}"
    );
}

/// Asserts that the target's daemon logged `what`, showing its log if not.
fn assert_target_logged(r: &Replicated, what: &str) {
    let log = r.target.log();
    assert!(log.contains(what), "no {what:?} in the daemon log:\n{log}");
}

fn damage(path: &Path, off: u64, bytes: &[u8]) {
    use std::io::{Seek, SeekFrom, Write};
    let mut f = fs::OpenOptions::new()
        .write(true)
        .open(path)
        .expect("open part to damage");
    f.seek(SeekFrom::Start(off)).unwrap();
    f.write_all(bytes).unwrap();
}

/// Items 1–4 of the issue on one pool set.
fn full_scenario(r: &Replicated, app: &Path) {
    let set = r.set();
    let set = set.to_str().unwrap();
    let layout = format!("--layout={LAYOUT}");

    // 1. pmempool creates the pool with its remote replica.
    r.pmempool(&["create", "obj", &layout, set]);
    let remote = fs::read(r.remote_part()).expect("remote part exists");
    assert_eq!(remote.len(), POOL);
    assert_eq!(&remote[..8], b"PMEMOBJ\0");
    assert!(
        r.target.log().contains(r.created),
        "the daemon did not create the replica:\n{}",
        r.target.log()
    );

    // 2. Transactions replicate; reopening reads them back.
    let out = r.ok(app, &["write", set, LAYOUT, "24", "7"]);
    assert!(out.contains("committed 24 objects"), "{out}");
    let objects = written_ranges(&out);
    assert_eq!(objects.len(), 25, "{out}");
    assert_replicated(r, &objects);
    let out = r.ok(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(out.contains("verified 24 objects"), "{out}");

    // 3a. The local part deleted: sync rebuilds it from the remote replica.
    fs::remove_file(r.local_part()).unwrap();
    r.pmempool(&["sync", set]);
    let out = r.ok(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(out.contains("verified 24 objects"), "{out}");
    assert_replicated(r, &objects);

    // 3b. The local header damaged: the pool no longer opens; sync repairs it.
    damage(&r.local_part(), 0, &[0u8; 4096]);
    let out = r.run(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(!out.status.success(), "a zeroed header opened: {out:?}");
    r.pmempool(&["sync", set]);
    let out = r.ok(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(out.contains("verified 24 objects"), "{out}");

    // 3c. The reverse: the remote header damaged. Our daemon refuses to open
    // it (checksum), so the pool does not open; sync removes the remote pool
    // (`rpmemd --remove --force`, run by libpmempool over RPMEM_SSH itself),
    // recreates it with rpmem_create and copies the local replica into it.
    damage(&r.remote_part(), 300, b"XX");
    let out = r.run(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(!out.status.success(), "a damaged remote opened: {out:?}");
    if let Some(damaged) = r.damaged {
        assert_target_logged(r, damaged);
    }
    r.pmempool(&["sync", set]);
    assert_replicated(r, &objects);
    // What the repaired remote holds serves the next recovery.
    fs::remove_file(r.local_part()).unwrap();
    r.pmempool(&["sync", set]);
    let out = r.ok(app, &["verify", set, LAYOUT, "24", "7"]);
    assert!(out.contains("verified 24 objects"), "{out}");

    // 4. info shows the remote replica; rm removes it through rpmem_remove.
    let info = r.pmempool(&["info", set]);
    assert!(info.contains("Number of replicas       : 2"), "{info}");
    assert!(info.contains("Replica 1 - remote"), "{info}");
    assert!(
        info.contains("pool set                 : remote.set"),
        "{info}"
    );
    assert!(
        info.contains("Signature                : PMEMOBJ"),
        "{info}"
    );
    assert!(
        info.contains(&format!("Layout                   : {LAYOUT}")),
        "{info}"
    );
    r.pmempool(&["rm", set]);
    assert!(!r.local_part().exists(), "local part survived pmempool rm");
    assert!(
        !r.remote_part().exists(),
        "remote part survived pmempool rm"
    );
    assert!(
        r.target.dir().join("remote.set").exists(),
        "pmempool rm without -a removed the remote set file"
    );
}

#[test]
fn pmemobj_replicates_syncs_and_removes_through_our_library() {
    if !have_pmemobj() {
        return;
    }
    let app = build_app("local");
    let r = Replicated::new("localhost");
    full_scenario(&r, &app);
}

/// The same with PMDK 1.12.1's own librpmem first on the library path: its
/// lanes reach our rpmemd over libfabric's sockets provider.
#[test]
fn pmemobj_through_pmdks_librpmem_replicates_to_our_rpmemd() {
    if !have_pmemobj() {
        return;
    }
    let Some(pmdk) = e2e::pmdk::prefix() else {
        return;
    };
    let app = build_app("pmdk");
    let mut r = Replicated::new("localhost");
    for (k, v) in e2e::pmdk::env(pmdk) {
        r.set_env(&k, &v);
    }
    full_scenario(&r, &app);
    assert_target_logged(&r, "session of PMDK's librpmem");
}

/// Our librpmem with PMDK 1.12.1's rpmemd on the target: the library finds
/// out the daemon is PMDK's and speaks its protocol, lanes over libfabric's
/// sockets provider.
///
/// The other libraries are the reference build's: Debian's libpmemobj and
/// libpmempool mark new pools for unsafe-shutdown and bad-block checks, which
/// the reference rpmemd (built without ndctl) refuses to open with EOPNOTSUPP
/// whichever librpmem asks.
#[test]
fn pmemobj_through_our_librpmem_replicates_to_pmdks_rpmemd() {
    if !have_pmemobj() {
        return;
    }
    let Some(pmdk) = e2e::pmdk::prefix() else {
        return;
    };
    let app = build_app("to-pmdk");
    let mut r = Replicated::new("localhost");
    let libs = r.local.path().join("lib");
    fs::create_dir(&libs).unwrap();
    std::os::unix::fs::symlink(
        prefix().join("lib/librpmem.so.1"),
        libs.join("librpmem.so.1"),
    )
    .unwrap();
    for l in [
        "libpmem",
        "libpmem2",
        "libpmemobj",
        "libpmempool",
        "libpmemblk",
        "libpmemlog",
    ] {
        let name = format!("{l}.so.1");
        std::os::unix::fs::symlink(pmdk.join("lib").join(&name), libs.join(&name)).unwrap();
    }
    r.set_env("LD_LIBRARY_PATH", &libs.display().to_string());
    let cmd = e2e::pmdk::rpmemd_cmd(pmdk, &r.target);
    r.set_env("RPMEM_CMD", &cmd);
    r.created = "create request response: (status = 0)";
    r.damaged = None;
    r.set_env("RPMEM_LOG_LEVEL", "2");
    // One log per process: a trailing '-' gets the pid.
    let log = r.local.path().join("librpmem.log-");
    r.set_env("RPMEM_LOG_FILE", &log.display().to_string());
    full_scenario(&r, &app);
    let ours: String = fs::read_dir(r.local.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with("librpmem.log-"))
        .map(|e| fs::read_to_string(e.path()).unwrap_or_default())
        .collect();
    assert!(
        ours.contains("protocol PMDK 1.12 (the target runs PMDK's rpmemd)"),
        "{ours}"
    );
    assert_target_logged(&r, "in-band connection established");
}

#[test]
fn pmemobj_replicates_over_the_fabric_transport() {
    let tr = Transport::Fabric("tcp");
    if !have_pmemobj() || !tr.available() {
        return;
    }
    let app = build_app("fabric");
    let r = Replicated::over("localhost", tr);
    full_scenario(&r, &app);
    assert_target_logged(&r, "transport fabric, provider tcp");
}

#[test]
fn pmemobj_over_real_ssh() {
    if !have_pmemobj() {
        return;
    }
    let Some(sshd) = Sshd::start() else { return };
    let app = build_app("ssh");
    let mut r = Replicated::new(&sshd.target());
    r.set_env("RPMEM_SSH", &sshd.ssh_wrapper().display().to_string());
    full_scenario(&r, &app);
    let log = r.target.log();
    assert!(log.contains("serving on 127.0.0.1"), "{log}");
}

/// One traced call: its name and `key=value` fields.
struct Call {
    name: String,
    fields: Vec<(String, String)>,
}

impl Call {
    fn get(&self, key: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| panic!("{} has no {key}", self.name))
    }
    fn num(&self, key: &str) -> usize {
        self.get(key).parse().unwrap()
    }
}

fn read_trace(path: &Path) -> Vec<Call> {
    let s = fs::read_to_string(path).unwrap_or_default();
    let calls: Vec<Call> = s
        .lines()
        .map(|l| {
            let mut w = l.split_whitespace();
            let name = w.next().unwrap_or_default().to_string();
            let fields = w
                .filter_map(|kv| kv.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            Call { name, fields }
        })
        .collect();
    fs::remove_file(path).ok();
    calls
}

fn named<'a>(calls: &'a [Call], name: &str) -> Vec<&'a Call> {
    calls.iter().filter(|c| c.name == name).collect()
}

/// What libpmemobj and libpmempool ask of librpmem, pinned down through the
/// tracing stand-in (docs/libpmemobj.md records the findings).
#[test]
fn what_libpmemobj_asks_of_librpmem() {
    if !have_pmemobj() {
        return;
    }
    let app = build_app("trace");
    let trace_dir = build_trace_lib("trace");
    let mut r = Replicated::new("localhost");
    let trace = r.local.path().join("trace.log");
    r.set_env("LD_LIBRARY_PATH", &trace_dir.display().to_string());
    r.set_env(
        "RPMEM_TRACE_REAL",
        &prefix().join("lib/librpmem.so.1").display().to_string(),
    );
    r.set_env("RPMEM_TRACE_FILE", &trace.display().to_string());
    let set = r.set();
    let set = set.to_str().unwrap();
    let layout = format!("--layout={LAYOUT}");
    let failed = |calls: &[Call]| {
        calls
            .iter()
            .filter(|c| c.fields.iter().any(|(k, v)| k == "rc" && v != "0"))
            .map(|c| format!("{} {:?}", c.name, c.fields))
            .collect::<Vec<_>>()
    };

    // create: the whole pool, with attributes, 1024 lanes asked for; our
    // daemon grants its --max-lanes default (64).
    r.pmempool(&["create", "obj", &layout, set]);
    let calls = read_trace(&trace);
    assert!(failed(&calls).is_empty(), "{:?}", failed(&calls));
    let create = named(&calls, "create");
    assert_eq!(create.len(), 1);
    let c = create[0];
    assert_eq!(c.get("set"), "remote.set");
    assert_eq!(c.get("target"), "localhost");
    assert_eq!(c.num("size"), POOL);
    assert_eq!(c.num("addr_page_off"), 0);
    assert_eq!(c.get("attr"), "1");
    assert_eq!(c.get("sig"), "PMEMOBJ");
    assert_eq!(c.num("nlanes_in"), 1024);
    let nlanes = c.num("nlanes_out");
    assert_eq!(nlanes, 64);
    assert_eq!(named(&calls, "close").len(), 1);
    assert!(!named(&calls, "persist").is_empty());

    // A transactional run on many threads: persists on several lanes, all
    // below the granted count, none into the header, both flag values.
    r.ok(&app, &["write", set, LAYOUT, "8", "3"]);
    read_trace(&trace);
    let out = r.ok(&app, &["threads", set, LAYOUT, "16", "24"]);
    assert!(out.contains("verified 384 objects"), "{out}");
    let calls = read_trace(&trace);
    assert!(failed(&calls).is_empty(), "{:?}", failed(&calls));
    let opens = named(&calls, "open");
    assert_eq!(opens.len(), 2, "the program opens the pool twice");
    for o in &opens {
        assert_eq!(o.num("size"), POOL);
        assert_eq!(o.num("nlanes_in"), 1024);
        assert_eq!(o.num("nlanes_out"), nlanes);
        assert_eq!(o.get("sig"), "PMEMOBJ", "attributes come back on open");
    }
    // On open libpmemobj reads its descriptor and heap header back.
    let reads = named(&calls, "read");
    assert!(
        reads.iter().any(|c| c.num("off") == 4096),
        "no descriptor read"
    );
    assert!(reads.iter().all(|c| c.num("off") >= 4096));
    let persists = named(&calls, "persist");
    let mut lanes: Vec<usize> = persists.iter().map(|c| c.num("lane")).collect();
    lanes.sort_unstable();
    lanes.dedup();
    assert!(lanes.len() > 1, "all persists on lanes {lanes:?}");
    assert!(lanes.iter().all(|&l| l < nlanes), "lanes {lanes:?}");
    assert!(persists.iter().all(|c| c.num("off") >= 4096));
    assert!(persists.iter().all(|c| c.num("off") + c.num("len") <= POOL));
    let flags: Vec<&str> = persists.iter().map(|c| c.get("flags")).collect();
    assert!(flags.contains(&"0") && flags.contains(&"1"), "flags seen");
    assert!(flags.iter().all(|f| *f == "0" || *f == "1"));

    // pmemobj_xpersist(PMEMOBJ_F_RELAXED) becomes RPMEM_PERSIST_RELAXED;
    // pmemobj_persist and pmemobj_flush become persists with flags 0;
    // pmemobj_drain sends nothing.
    let out = r.ok(&app, &["flags", set, LAYOUT]);
    assert!(out.contains("flush and drain done"), "{out}");
    let calls = read_trace(&trace);
    assert!(failed(&calls).is_empty(), "{:?}", failed(&calls));
    let tail: Vec<(usize, usize, &str)> = named(&calls, "persist")
        .iter()
        .rev()
        .take(4)
        .rev()
        .map(|c| (c.num("off"), c.num("len"), c.get("flags")))
        .collect();
    let note = tail[0].0;
    assert_eq!(
        tail[..3],
        [(note, 64, "1"), (note, 64, "0"), (note, 64, "0")],
        "{tail:?}"
    );
    assert!(named(&calls, "drain").is_empty());
    assert!(named(&calls, "flush").is_empty());

    // sync from the remote: a header-sized open, one read of the whole pool
    // past the header, set_attr with the new replica links.
    fs::remove_file(r.local_part()).unwrap();
    r.pmempool(&["sync", set]);
    let calls = read_trace(&trace);
    assert!(failed(&calls).is_empty(), "{:?}", failed(&calls));
    let opens = named(&calls, "open");
    assert!(opens.iter().any(|o| o.num("size") == 8192), "no 8 KiB open");
    let reads = named(&calls, "read");
    assert!(
        reads
            .iter()
            .any(|c| c.num("off") == 4096 && c.num("len") == POOL - 4096),
        "no whole-pool read"
    );
    let set_attr = named(&calls, "set_attr");
    assert_eq!(set_attr.len(), 1);
    assert_eq!(set_attr[0].get("sig"), "PMEMOBJ");
    let out = r.ok(&app, &["verify", set, LAYOUT, "8", "3"]);
    assert!(out.contains("verified 8 objects"), "{out}");
    read_trace(&trace);

    // rm: rpmem_remove(target, "remote.set", 0).
    r.pmempool(&["rm", set]);
    let calls = read_trace(&trace);
    let rm = named(&calls, "remove");
    assert_eq!(rm.len(), 1);
    assert_eq!(rm[0].get("set"), "remote.set");
    assert_eq!(rm[0].get("flags"), "0");
    assert_eq!(rm[0].get("rc"), "0");
    assert!(!r.remote_part().exists());
}

/// A remote pool set smaller than the local replica: our daemon refuses the
/// create (EFBIG), pmempool fails and leaves neither side's part behind; a
/// two-part remote set of enough net size (sizes minus the second part's
/// header) serves the pool.
#[test]
fn remote_replica_size_is_checked_and_parts_may_be_many() {
    if !have_pmemobj() {
        return;
    }
    let app = build_app("size");
    let r = Replicated::new("localhost");
    let set = r.set();
    let set = set.to_str().unwrap();
    let layout = format!("--layout={LAYOUT}");
    let p0 = r.target.dir().join("p0");
    let p1 = r.target.dir().join("p1");
    r.target.write_poolset(
        "remote.set",
        &format!("PMEMPOOLSET\n32M {}\n", p0.display()),
    );
    let out = r.run(Path::new("pmempool"), &["create", "obj", &layout, set]);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        text(&out.stderr).contains("remote replica"),
        "{}",
        text(&out.stderr)
    );
    assert!(r.target.log().contains("less than the 67108864 requested"));
    assert!(!p0.exists() && !r.local_part().exists());

    r.target.write_poolset(
        "remote.set",
        &format!("PMEMPOOLSET\n33M {}\n33M {}\n", p0.display(), p1.display()),
    );
    r.pmempool(&["create", "obj", &layout, set]);
    let out = r.ok(&app, &["write", set, LAYOUT, "16", "5"]);
    assert_eq!(written_ranges(&out).len(), 17, "{out}");
    fs::remove_file(r.local_part()).unwrap();
    r.pmempool(&["sync", set]);
    let out = r.ok(&app, &["verify", set, LAYOUT, "16", "5"]);
    assert!(out.contains("verified 16 objects"), "{out}");
    assert_eq!(&fs::read(&p1).unwrap()[..8], b"PMEMOBJ\0", "part 1 header");
    r.pmempool(&["rm", set]);
    assert!(!p0.exists() && !p1.exists());
}
