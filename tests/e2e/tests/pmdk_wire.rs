//! PMDK's own librpmem and rpmemd, observed on the ssh channel: a C program
//! linked to PMDK's librpmem runs one of each request against PMDK's rpmemd
//! (through `rpmem-ssh-local`, with a shell wrapper that tees both
//! directions to files), and our codec must decode every byte they exchanged
//! and encode it back identically.
//!
//! Set `RPMEM_PMDK_FIXTURES_OUT=DIR` to keep the captured streams (that is
//! how `crates/rpmem-proto/tests/fixtures/pmdk/` was made). Skipped, with a
//! message, where PMDK 1.12.1 is not available (see `e2e::pmdk::prefix`).

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{bin, compile_c_with, pmdk, run_with_timeout, workspace_root, LocalTarget};
use rpmem_proto::pmdk::obc::{self, Request, Response};
use rpmem_proto::pmdk::PersistMethod;

/// The streams this test once captured, which rpmem-proto's own tests check
/// field by field.
fn fixture(name: &str) -> Vec<u8> {
    read(
        &workspace_root().join("crates/rpmem-proto/tests/fixtures/pmdk"),
        name,
    )
}

/// Tees the session's stdin to `DIR/NAME.in` and its stdout to `DIR/NAME.out`
/// around the rest of the command line. The input tee runs beside the
/// command, not in a pipeline before it, and is killed when the command
/// exits: PMDK's librpmem leaks its end of the session's stdin into the ssh
/// child, so that tee would never see end of input and the session would
/// never end. (sh points a background job's stdin at /dev/null, hence fd 3.)
const TEE: &str = r#"dir=$1 name=$2; shift 2
mkfifo "$dir/$name.fifo"
exec 3<&0
tee "$dir/$name.in" <&3 >"$dir/$name.fifo" &
exec 3<&-
"$@" <"$dir/$name.fifo" | tee "$dir/$name.out"
kill $! 2>/dev/null
"#;

fn read(dir: &Path, name: &str) -> Vec<u8> {
    fs::read(dir.join(name)).unwrap_or_else(|e| panic!("read {name}: {e}"))
}

#[test]
fn pmdk_pair_speaks_what_our_codec_encodes() {
    let Some(pmdk) = pmdk::prefix() else { return };
    let t = LocalTarget::new();
    let cap = t.dir().join("capture");
    fs::create_dir(&cap).unwrap();
    fs::write(t.dir().join("tee.sh"), TEE).unwrap();
    t.write_poolset(
        "cap.set",
        &format!("PMEMPOOLSET\n16M {}\n", t.dir().join("cap.part").display()),
    );
    // librpmem takes `|`-separated commands round-robin: one per session.
    let cmd = |name: &str| {
        format!(
            "sh {} {} {name} {} --poolset-dir={} --log-file={} --log-level=info",
            t.dir().join("tee.sh").display(),
            cap.display(),
            pmdk::rpmemd(pmdk).display(),
            t.dir().display(),
            t.log_path().display()
        )
    };
    let prog = compile_c_with(&workspace_root().join("tests/c/pmdk_session.c"), pmdk, &[]);
    let out = run_with_timeout(
        Command::new(&prog)
            .args(["localhost", "cap.set"])
            .envs(pmdk::env(pmdk))
            .env("RPMEM_SSH", bin("rpmem-ssh-local"))
            .env(
                "RPMEM_CMD",
                format!("{}|{}|{}", cmd("create"), cmd("open"), cmd("remove")),
            ),
        Duration::from_secs(120),
    );
    assert!(
        out.status.success() && out.stdout == b"ok\n",
        "pmdk_session: {}\n{}\nrpmemd log:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr),
        t.log()
    );

    if let Some(dir) = std::env::var_os("RPMEM_PMDK_FIXTURES_OUT") {
        for name in ["create.in", "create.out", "open.in", "open.out"] {
            fs::write(Path::new(&dir).join(name), read(&cap, name)).unwrap();
        }
    }
    // The client's side depends only on what the program asks for.
    for name in ["create.in", "open.in"] {
        let bytes = read(&cap, name);
        let reqs = obc::decode_requests(&bytes).unwrap();
        let again: Vec<u8> = reqs.iter().flat_map(Request::encode).collect();
        assert_eq!(again, bytes, "{name} re-encodes exactly");
        assert_eq!(bytes, fixture(name), "{name} as captured before");
    }
    // The daemon's answers carry this run's port, key and address.
    for name in ["create.out", "open.out"] {
        let bytes = read(&cap, name);
        let (status, resps, last) = obc::decode_responses(&bytes).unwrap();
        assert_eq!(
            (status, last),
            (0, None),
            "{name}: startup status 0, no failure"
        );
        let mut again = obc::encode_startup_status(0).to_vec();
        again.extend(resps.iter().flat_map(Response::encode));
        assert_eq!(again, bytes, "{name} re-encodes exactly");
        let (_, mut want, _) = obc::decode_responses(&fixture(name)).unwrap();
        let (Response::Create { ibc, .. } | Response::Open { ibc, .. }) = &resps[0] else {
            panic!("{name}: first response {:?}", resps[0]);
        };
        assert!(ibc.port > 0 && ibc.port <= 0xffff, "{ibc:?}");
        assert_eq!(ibc.persist_method(), Some(PersistMethod::Gpspm));
        assert_ne!(ibc.raddr, 0);
        if let Response::Create { ibc: w, .. } | Response::Open { ibc: w, .. } = &mut want[0] {
            (w.port, w.rkey, w.raddr) = (ibc.port, ibc.rkey, ibc.raddr);
        }
        assert_eq!(
            resps, want,
            "{name} as captured before, but for port, key and address"
        );
    }
    // `rpmemd --remove` reports through its exit status only.
    assert_eq!(read(&cap, "remove.out"), b"");
}
