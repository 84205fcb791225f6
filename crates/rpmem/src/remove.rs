//! Removing a remote pool: `rpmemd --remove` run over ssh.

use crate::config::Config;
use crate::error::Result;

/// What [`remove`] removes besides the part files.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoveFlags {
    /// Remove even if the pool is inconsistent.
    pub force: bool,
    /// Remove the pool set file too.
    pub pool_set: bool,
}

/// Removes the pool described by `pool_set` on `target`.
pub fn remove(_cfg: &Config, _target: &str, _pool_set: &str, _flags: RemoveFlags) -> Result<()> {
    todo!()
}
