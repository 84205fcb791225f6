//! PMDK 1.12.1's own librpmem and rpmemd, for tests that pair them with ours.
//!
//! The reference build lives in an install prefix found by [`prefix()`]. Its
//! programs need [`env()`]: its `lib/` first on the loader path (the system may
//! hold Debian's libpmem too) and libfabric's sockets provider, as there is no
//! RDMA device here.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::{lock_file, workspace_root};

/// Environment variable naming an install prefix that holds the PMDK build.
pub const PREFIX_ENV: &str = "RPMEM_PMDK_PREFIX";

/// Exit status of `build-pmdk.sh` when build tools are missing.
const BUILD_MISSING_TOOLS: i32 = 3;

/// The PMDK 1.12.1 install prefix (holding `bin/rpmemd`, `lib/librpmem.so.1`),
/// or `None` after printing why the caller should skip.
///
/// Taken from `RPMEM_PMDK_PREFIX` when set; otherwise built once (minutes,
/// serialised across test processes) into `target/pmdk-ref` by
/// `../shared/reference/build-pmdk.sh` when that script exists beside the
/// workspace, which does nothing when the prefix already holds the build.
///
/// # Panics
/// If `RPMEM_PMDK_PREFIX` names a prefix without PMDK's rpmemd and librpmem,
/// or the build script fails for another reason than missing tools.
pub fn prefix() -> Option<&'static Path> {
    static PREFIX: OnceLock<Option<PathBuf>> = OnceLock::new();
    PREFIX.get_or_init(find_or_build).as_deref()
}

fn find_or_build() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os(PREFIX_ENV).filter(|p| !p.is_empty()) {
        let p = PathBuf::from(p);
        assert!(
            is_built(&p),
            "{PREFIX_ENV}={} holds no PMDK build (bin/rpmemd, lib/librpmem.so.1)",
            p.display()
        );
        return Some(p);
    }
    let script = workspace_root()
        .parent()
        .map(|up| up.join("shared/reference/build-pmdk.sh"))
        .filter(|s| s.is_file());
    let Some(script) = script else {
        eprintln!(
            "skipping: needs PMDK 1.12.1 ({PREFIX_ENV} unset and no ../shared/reference/build-pmdk.sh)"
        );
        return None;
    };
    let target = workspace_root().join("target");
    std::fs::create_dir_all(&target)
        .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
    let prefix = target.join("pmdk-ref");
    let lock = lock_file(&target.join(".pmdk-ref.lock"));
    if !is_built(&prefix) {
        eprintln!("e2e: building PMDK 1.12.1 into {}", prefix.display());
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg(&prefix)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", script.display()));
    drop(lock);
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        Some(0) => Some(prefix),
        Some(BUILD_MISSING_TOOLS) => {
            eprintln!("skipping: cannot build PMDK 1.12.1: {}", stderr.trim());
            None
        }
        _ => panic!(
            "{} {} failed ({}):\n{stderr}",
            script.display(),
            prefix.display(),
            out.status
        ),
    }
}

fn is_built(p: &Path) -> bool {
    p.join("bin/rpmemd").is_file() && p.join("lib/librpmem.so.1").exists()
}

/// What PMDK's programs need in their environment to run here: the prefix's
/// libraries first, and the sockets provider instead of verbs.
pub fn env(prefix: &Path) -> Vec<(String, String)> {
    vec![
        (
            "LD_LIBRARY_PATH".into(),
            prefix.join("lib").display().to_string(),
        ),
        ("RPMEM_ENABLE_SOCKETS".into(), "1".into()),
        ("RPMEM_ENABLE_VERBS".into(), "0".into()),
    ]
}

/// PMDK's rpmemd under `prefix`.
pub fn rpmemd(prefix: &Path) -> PathBuf {
    prefix.join("bin/rpmemd")
}

/// The `RPMEM_CMD` that runs PMDK's rpmemd (with its own libraries) on the
/// poolset directory of `t`, logging into `t`'s log file.
pub fn rpmemd_cmd(prefix: &Path, t: &crate::LocalTarget) -> String {
    format!(
        "LD_LIBRARY_PATH={} {} --poolset-dir={} --log-file={} --log-level=debug",
        prefix.join("lib").display(),
        rpmemd(prefix).display(),
        t.dir().display(),
        t.log_path().display()
    )
}

/// `RPMEM_SSH` and `RPMEM_CMD` that make our library reach PMDK's rpmemd
/// serving `t` through `rpmem-ssh-local`.
pub fn daemon_env(prefix: &Path, t: &crate::LocalTarget) -> Vec<(String, String)> {
    vec![
        (
            "RPMEM_SSH".into(),
            crate::bin("rpmem-ssh-local").display().to_string(),
        ),
        ("RPMEM_CMD".into(), rpmemd_cmd(prefix, t)),
    ]
}

/// Engine settings that reach PMDK's rpmemd serving `t`.
pub fn daemon_config(prefix: &Path, t: &crate::LocalTarget) -> rpmem::Config {
    rpmem::Config {
        cmd: rpmemd_cmd(prefix, t),
        ..t.config()
    }
}

/// Pids of PMDK's rpmemd processes serving `t` (found by the poolset
/// directory on their command line, which is unique to `t`).
pub fn rpmemd_pids(prefix: &Path, t: &crate::LocalTarget) -> Vec<u32> {
    let exe = rpmemd(prefix).display().to_string();
    let dir = format!("--poolset-dir={}", t.dir().display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            let Ok(raw) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
                return false;
            };
            let args: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            args.first() == Some(&exe.as_bytes()) && args.contains(&dir.as_bytes())
        })
        .collect()
}

/// A program's outcome and the daemon's log, for assertion messages.
pub fn outcome(o: &std::process::Output, t: &crate::LocalTarget) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}\nrpmemd log:\n{}",
        o.status,
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr),
        t.log()
    )
}

/// Writes pool set `name` in `t`: one part `<name>.part` of `size` bytes
/// after the option lines `opts` (e.g. `"OPTION NOHDRS\n"`); returns the
/// part's path.
pub fn one_part_set(t: &crate::LocalTarget, name: &str, opts: &str, size: u64) -> PathBuf {
    let part = t.dir().join(format!("{name}.part"));
    t.write_poolset(
        name,
        &format!("PMEMPOOLSET\n{opts}{size} {}\n", part.display()),
    );
    part
}

/// The part file `part` holds, from pool offset 4096 on, exactly the local
/// pool image `lanes.c` wrote to `image`.
pub fn assert_part_matches_image(part: &Path, image: &Path) {
    let got = std::fs::read(part).unwrap_or_else(|e| panic!("{}: {e}", part.display()));
    assert_pool_matches_image(&got, image);
}

/// The pool's bytes `got` hold, from offset 4096 on, exactly the local pool
/// image `lanes.c` wrote to `image`.
pub fn assert_pool_matches_image(got: &[u8], image: &Path) {
    let want = std::fs::read(image).unwrap_or_else(|e| panic!("{}: {e}", image.display()));
    assert!(!want.is_empty() && got.len() >= 4096 + want.len());
    if let Some(i) = got[4096..].iter().zip(&want).position(|(a, b)| a != b) {
        panic!(
            "part file differs from the local pool at pool offset {}",
            4096 + i
        );
    }
}
