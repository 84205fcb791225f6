//! What the documentation examples of this crate run against: pool sets in
//! a fresh directory, served by the `rpmemd` of an installed prefix and
//! reached through its `rpmem-ssh-local` (no ssh server needed). Not part of
//! the API.
//!
//! `make test` installs into a prefix and names it in `RPMEM_PREFIX`; without
//! that variable [`Sandbox::new`] returns `None` and the examples end early.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// A poolset directory holding `pool.set` (32 MiB, `OPTION NOHDRS`) and
/// `hdr.set` (32 MiB, with a pool header), removed on drop.
#[derive(Debug)]
pub struct Sandbox {
    dir: PathBuf,
}

impl Sandbox {
    /// Writes the pool sets and points `RPMEM_SSH` and `RPMEM_CMD` at the
    /// prefix in `RPMEM_PREFIX`; `None` when that is unset or lacks the
    /// programs.
    ///
    /// # Panics
    /// When the directory cannot be written (the example cannot run).
    pub fn new() -> Option<Sandbox> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let prefix = PathBuf::from(std::env::var_os("RPMEM_PREFIX")?);
        let (ssh, rpmemd) = (
            prefix.join("bin/rpmem-ssh-local"),
            prefix.join("bin/rpmemd"),
        );
        if !ssh.is_file() || !rpmemd.is_file() {
            return None;
        }
        let dir = std::env::temp_dir().join(format!(
            "rpmem-doc-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).expect("create the sandbox directory");
        let sandbox = Sandbox { dir };
        sandbox.write_set("pool.set", "OPTION NOHDRS\n");
        sandbox.write_set("hdr.set", "");
        // Each example is its own process, so the environment is ours.
        std::env::set_var("RPMEM_SSH", &ssh);
        std::env::set_var(
            "RPMEM_CMD",
            format!(
                "{} --poolset-dir={}",
                rpmemd.display(),
                sandbox.dir.display()
            ),
        );
        Some(sandbox)
    }

    fn write_set(&self, name: &str, options: &str) {
        let part = self.dir.join(name).with_extension("part");
        let text = format!("PMEMPOOLSET\n{options}32M {}\n", part.display());
        std::fs::write(self.dir.join(name), text).expect("write a pool set");
    }

    /// The poolset directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
