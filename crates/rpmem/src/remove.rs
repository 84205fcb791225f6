//! Removing a remote pool: `rpmemd --remove` run over ssh.

use crate::config::{Config, Target};
use crate::error::{Error, Result};
use crate::flags::RemoveFlags;
use crate::launch::{next_command, run_remote, shell_quote};

/// Removes the pool described by `pool_set` on `target`.
///
/// rpmemd's exit status is an errno and becomes this call's error (ENOENT for
/// a missing pool); ssh's own failures (255) and a missing command (127) are
/// connection failures.
pub fn remove(cfg: &Config, target: &str, pool_set: &str, flags: RemoveFlags) -> Result<()> {
    crate::log::init();
    log::info!(
        "remove {target}:{pool_set} (force {}, pool set {})",
        flags.contains(RemoveFlags::FORCE),
        flags.contains(RemoveFlags::POOL_SET)
    );
    crate::log::returned("rpmem_remove", remove_impl(cfg, target, pool_set, flags))
}

fn remove_impl(cfg: &Config, target: &str, pool_set: &str, flags: RemoveFlags) -> Result<()> {
    if pool_set.is_empty() {
        return Err(Error::InvalidArgument("the pool set name is empty".into()));
    }
    let t = Target::parse(target)?;
    let mut cmd = format!(
        "{} --remove={}",
        next_command(&cfg.cmd),
        shell_quote(pool_set)
    );
    if flags.contains(RemoveFlags::FORCE) {
        cmd.push_str(" --force");
    }
    if flags.contains(RemoveFlags::POOL_SET) {
        cmd.push_str(" --pool-set");
    }
    log::debug!("running '{cmd}' on {target} through '{}'", cfg.ssh);
    let (status, stderr) = run_remote(cfg, &t, &cmd)?;
    let code = match status.code() {
        Some(0) => return Ok(()),
        Some(c) => c,
        None => {
            return Err(Error::ConnectionReset(format!(
                "'{cmd}' on {target} was killed by a signal"
            )))
        }
    };
    match code {
        255 | 126 | 127 => Err(Error::ConnectionReset(format!(
            "cannot run '{cmd}' on {target} (status {code}){}",
            if stderr.is_empty() {
                String::new()
            } else {
                format!(": {stderr}")
            }
        ))),
        // rpmemd's one line says what failed and why; the exit status
        // alone only when it printed nothing.
        c => Err(Error::RemoteExit {
            code: c,
            message: format!(
                "{target}:{pool_set}: {}",
                if stderr.is_empty() {
                    format!(
                        "rpmemd --remove failed: {}",
                        std::io::Error::from_raw_os_error(c)
                    )
                } else {
                    stderr
                }
            ),
        }),
    }
}
