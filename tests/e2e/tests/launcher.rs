//! The installed `rpmem-ssh-local` in the role librpmem gives ssh: starting the
//! installed daemon, which must find `SSH_CONNECTION` and speak on stdio.
//! (Argument parsing is covered by the crate's own tests.)

use std::process::Command;
use std::time::Duration;

use e2e::{bin, prefix, run_with_timeout};

#[test]
fn installed_prefix_is_complete() {
    let p = prefix();
    for f in [
        "bin/rpmemd",
        "bin/rpmem",
        "bin/rpmem-ssh-local",
        "lib/librpmem.so.1",
        "include/librpmem.h",
        "lib/pkgconfig/librpmem.pc",
    ] {
        assert!(p.join(f).is_file(), "{} missing", p.join(f).display());
    }
    let link = std::fs::read_link(p.join("lib/librpmem.so")).expect("librpmem.so symlink");
    assert_eq!(link.to_str(), Some("librpmem.so.1"));
    let pc = std::fs::read_to_string(p.join("lib/pkgconfig/librpmem.pc")).unwrap();
    assert!(
        !pc.contains('@'),
        "unsubstituted placeholder in librpmem.pc:\n{pc}"
    );
    assert!(pc.contains(&p.display().to_string()), "{pc}");
}

#[test]
fn launcher_passes_status_and_environment_in_librpmems_form() {
    let out = run_with_timeout(
        Command::new(bin("rpmem-ssh-local")).args([
            "-p",
            "22",
            "-T",
            "-4",
            "-oBatchMode=yes",
            "localhost",
            "echo \"$SSH_CONNECTION\"; exit 42",
        ]),
        Duration::from_secs(10),
    );
    assert_eq!(out.status.code(), Some(42), "{out:?}");
    assert_eq!(out.stdout, b"127.0.0.1 0 127.0.0.1 22\n");
}

#[test]
fn launcher_starts_installed_daemon() {
    let out = run_with_timeout(
        Command::new(bin("rpmem-ssh-local"))
            .args(["localhost", &format!("{} -V", bin("rpmemd").display())]),
        Duration::from_secs(10),
    );
    assert!(out.status.success(), "rpmemd -V failed: {out:?}");
    assert!(!out.stdout.is_empty() || !out.stderr.is_empty());
}
