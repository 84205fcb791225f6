//! The C API as applications see it: the installed `librpmem.so.1`, header
//! and pkg-config file, and the C programs of `tests/c/` compiled against
//! them and run against a daemon reached through `rpmem-ssh-local`.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

use e2e::{
    compile_c, expect_success, exported_functions, prefix, run_with_timeout, workspace_root,
    LocalTarget, Transport,
};

const MIB: usize = 1024 * 1024;

/// Tests `$body` (a function of the transport) over our TCP transport and
/// over libfabric with its `tcp` and `sockets` providers, as
/// `$name::{tcp, fabric_tcp, fabric_sockets}`.
macro_rules! over_transports {
    ($name:ident, $body:ident) => {
        mod $name {
            use super::*;

            #[test]
            fn tcp() {
                $body(Transport::Tcp)
            }

            #[test]
            fn fabric_tcp() {
                $body(Transport::Fabric("tcp"))
            }

            #[test]
            fn fabric_sockets() {
                $body(Transport::Fabric("sockets"))
            }
        }
    };
}

fn c_source(name: &str) -> PathBuf {
    workspace_root().join("tests").join("c").join(name)
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn tool(cmd: &mut Command) -> String {
    let out = run_with_timeout(cmd, Duration::from_secs(60));
    expect_success(&out, &format!("{cmd:?}"), "")
}

/// Runs a compiled C program with the target's environment.
fn run_prog(t: &LocalTarget, exe: &Path, args: &[&str], limit: Duration) -> Output {
    let mut cmd = Command::new(exe);
    cmd.args(args).current_dir(t.dir());
    for (k, v) in t.env() {
        cmd.env(k, v);
    }
    for k in [
        "RPMEM_MAX_NLANES",
        "RPMEM_ENABLE_SOCKETS",
        "RPMEM_ENABLE_VERBS",
    ] {
        cmd.env_remove(k);
    }
    run_with_timeout(&mut cmd, limit)
}

/// Like [`run_prog`], and the program must exit 0.
fn run_ok(t: &LocalTarget, exe: &Path, args: &[&str]) -> String {
    let out = run_prog(t, exe, args, Duration::from_secs(120));
    expect_success(&out, &format!("{} {args:?}", exe.display()), &t.log())
}

fn part(t: &LocalTarget, name: &str) -> PathBuf {
    t.dir().join(name)
}

fn part_bytes(path: &Path, offset: usize, len: usize) -> Vec<u8> {
    let data = fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    assert!(
        data.len() >= offset + len,
        "{} has {} bytes, want at least {}",
        path.display(),
        data.len(),
        offset + len
    );
    data[offset..offset + len].to_vec()
}

/// Pattern `seed` of roundtrip.c, bytes 0..len.
fn pattern(seed: u32, len: usize) -> Vec<u8> {
    (0..len)
        .map(|i| (seed.wrapping_mul(131) as usize + i * 7 + (i >> 8)) as u8)
        .collect()
}

fn set_with_headers(t: &LocalTarget, name: &str, size: &str, part_name: &str) {
    t.write_poolset(
        name,
        &format!("PMEMPOOLSET\n{size} {}\n", part(t, part_name).display()),
    );
}

fn set_nohdrs(t: &LocalTarget, name: &str, size: &str, part_name: &str) {
    t.write_poolset(
        name,
        &format!(
            "PMEMPOOLSET\nOPTION NOHDRS\n{size} {}\n",
            part(t, part_name).display()
        ),
    );
}

#[test]
fn installed_library_exports_only_versioned_api() {
    let lib = prefix().join("lib").join("librpmem.so.1");
    assert!(lib.exists(), "{} missing", lib.display());
    let dynsyms = tool(Command::new("readelf").args(["--dyn-syms", "-W"]).arg(&lib));
    let defined: BTreeSet<String> = dynsyms
        .lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            (f.len() >= 8 && f[0].ends_with(':') && f[6] != "UND" && f[6] != "Ndx")
                .then(|| f[7].to_string())
        })
        .collect();
    let exports = exported_functions();
    assert_eq!(exports.len(), 12, "{exports:?}");
    let want: BTreeSet<String> = exports
        .iter()
        .map(|n| format!("{n}@@LIBRPMEM_1.0"))
        .collect();
    assert_eq!(defined, want, "exports of {}", lib.display());

    let dynamic = tool(Command::new("readelf").arg("-d").arg(&lib));
    assert!(
        dynamic
            .lines()
            .any(|l| l.contains("(SONAME)") && l.contains("[librpmem.so.1]")),
        "SONAME:\n{dynamic}"
    );
    let link = prefix().join("lib").join("librpmem.so");
    assert_eq!(
        fs::read_link(&link).unwrap_or_else(|e| panic!("{}: {e}", link.display())),
        Path::new("librpmem.so.1")
    );
    let header = fs::read_to_string(prefix().join("include").join("librpmem.h")).unwrap();
    for name in &exports {
        assert!(header.contains(&format!("{name}(")), "header lacks {name}");
    }
}

#[test]
fn pkg_config_file_describes_the_prefix() {
    let pc_dir = prefix().join("lib").join("pkgconfig");
    let pc = fs::read_to_string(pc_dir.join("librpmem.pc")).expect("librpmem.pc installed");
    assert!(!pc.contains('@'), "unsubstituted placeholder:\n{pc}");
    assert!(
        pc.contains(&format!("prefix={}", prefix().display())),
        "{pc}"
    );
    if Command::new("pkg-config").arg("--version").output().is_ok() {
        let mut cmd = Command::new("pkg-config");
        cmd.args(["--cflags", "--libs", "librpmem"])
            .env("PKG_CONFIG_PATH", &pc_dir);
        let flags = tool(&mut cmd);
        assert!(flags.contains("-lrpmem"), "{flags}");
        assert!(
            flags.contains(&format!("-I{}", prefix().join("include").display())),
            "{flags}"
        );
        assert!(
            flags.contains(&format!("-L{}", prefix().join("lib").display())),
            "{flags}"
        );
    }
}

#[test]
fn abi_program_links_versioned_symbols() {
    let exe = compile_c(&c_source("abi.c"));
    let t = tool(Command::new("objdump").arg("-T").arg(&exe));
    for name in ["rpmem_create", "rpmem_persist", "rpmem_errormsg"] {
        assert!(
            t.lines()
                .any(|l| l.contains("LIBRPMEM_1.0") && l.ends_with(name)),
            "{name}@LIBRPMEM_1.0 not referenced:\n{t}"
        );
    }
    let out = tool(&mut Command::new(&exe));
    assert!(out.contains("0 failures"), "{out}");
}

fn example(tr: Transport) {
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    set_nohdrs(&t, "pool.set", "32M", "pool.part");
    let exe = compile_c(&c_source("example.c"));
    let out = run_ok(&t, &exe, &["localhost", "pool.set"]);
    assert!(out.contains("example: ok"), "{out}");
    let len = fs::metadata(part(&t, "pool.part")).unwrap().len();
    assert!(len >= 32 * MIB as u64, "part file has {len} bytes");
    assert_eq!(part_bytes(&part(&t, "pool.part"), 0, 4096), vec![0u8; 4096]);

    // The original's unaligned pool is refused with EINVAL.
    let out = run_ok(&t, &exe, &["localhost", "pool.set", "unaligned"]);
    assert!(out.contains("unaligned pool_addr refused"), "{out}");
}

fn roundtrip(tr: Transport) {
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    set_with_headers(&t, "rt.set", "8M", "rt.part");
    let exe = compile_c(&c_source("roundtrip.c"));
    let p = part(&t, "rt.part");

    run_ok(&t, &exe, &["localhost", "rt.set", "create"]);
    assert_eq!(&part_bytes(&p, 0, 8), b"RTTEST\0\0", "header signature");
    assert_eq!(part_bytes(&p, 8192, 65536), pattern(1, 65536));
    assert_eq!(part_bytes(&p, MIB, 4096), pattern(2, 4096));
    assert_eq!(part_bytes(&p, 2 * MIB + 3, 1000), pattern(3, 1000));

    run_ok(&t, &exe, &["localhost", "rt.set", "open"]);
    assert_eq!(part_bytes(&p, 8192, 65536), pattern(4, 65536));

    run_ok(&t, &exe, &["localhost", "rt.set", "verify"]);
}

fn lanes(tr: Transport) {
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    set_with_headers(&t, "lanes.set", "8M", "lanes.part");
    let exe = compile_c(&c_source("lanes.c"));
    let image = t.dir().join("lanes.image");
    let out = run_ok(
        &t,
        &exe,
        &["localhost", "lanes.set", image.to_str().unwrap()],
    );
    assert!(out.contains("lanes: ok"), "{out}");
    let want = fs::read(&image).unwrap();
    assert!(!want.is_empty());
    let got = part_bytes(&part(&t, "lanes.part"), 4096, want.len());
    if let Some(i) = got.iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "part file differs from the local pool at pool offset {}: {:#04x} vs {:#04x}",
            4096 + i,
            got[i],
            want[i]
        );
    }
}

fn badcalls(tr: Transport) {
    if !tr.available() {
        return;
    }
    let t = LocalTarget::with_transport(tr);
    set_with_headers(&t, "hdr.set", "8M", "hdr.part");
    set_with_headers(&t, "exists.set", "8M", "exists.part");
    set_nohdrs(&t, "nohdrs.set", "8M", "nohdrs.part");
    set_with_headers(&t, "small.set", "2M", "small.part");
    set_with_headers(&t, "nopool.set", "8M", "nopool.part");
    set_with_headers(&t, "mism-null.set", "8M", "mism-null.part");
    set_nohdrs(&t, "mism-attr.set", "8M", "mism-attr.part");
    // A set outside the poolset directory that must never be reached.
    let outside = t.dir().parent().unwrap().join(format!(
        "escape-{}",
        t.dir().file_name().unwrap().to_string_lossy()
    ));
    fs::create_dir_all(&outside).unwrap();
    fs::write(
        outside.join("escape.set"),
        format!(
            "PMEMPOOLSET\n8M {}\n",
            outside.join("escape.part").display()
        ),
    )
    .unwrap();

    let exe = compile_c(&c_source("badcalls.c"));
    let escape = format!(
        "../{}/escape.set",
        outside.file_name().unwrap().to_string_lossy()
    );
    let out = run_prog(&t, &exe, &["localhost", &escape], Duration::from_secs(240));
    let so = text(&out.stdout);
    let escaped = outside.join("escape.part").exists();
    let _ = fs::remove_dir_all(&outside);
    assert!(
        out.status.success() && !so.contains("FAIL"),
        "badcalls ({}):\n--- stdout:\n{so}--- stderr:\n{}--- daemon log:\n{}",
        out.status,
        text(&out.stderr),
        t.log()
    );
    assert!(
        !escaped,
        "a pool set outside the poolset directory was used"
    );
    // Refused creates left nothing behind.
    for p in [
        "small.part",
        "mism-null.part",
        "mism-attr.part",
        "nopool.part",
    ] {
        assert!(!part(&t, p).exists(), "{p} was created");
    }
    // remove: parts gone, set file kept; with POOL_SET the set file too.
    assert!(!part(&t, "exists.part").exists());
    assert!(t.dir().join("exists.set").exists());
    assert!(!part(&t, "nohdrs.part").exists());
    assert!(!t.dir().join("nohdrs.set").exists());
    // The refused persists never reached the header of hdr.set.
    assert_eq!(&part_bytes(&part(&t, "hdr.part"), 0, 8), b"BADCALL\0");
}

over_transports!(manual_page_example_runs_against_nohdrs_set, example);

over_transports!(data_and_attributes_survive_close_and_reopen, roundtrip);

over_transports!(four_threads_on_four_lanes, lanes);

over_transports!(every_bad_call_fails_with_its_errno, badcalls);
