//! Pool set names and pool removal.

use std::fs;
use std::io;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path, PathBuf};

use crate::error::{Result, StorageError};
use crate::pool::Pool;
use crate::poolset::PoolSet;

/// Resolves a pool set `name` (relative to `dir`) to the canonical path of
/// an existing pool set file inside `dir`.
///
/// Absolute names, `..` components and names whose canonical path (symlinks
/// followed) leaves `dir` are refused; a missing file is an ENOENT I/O error.
pub fn resolve_name(dir: &Path, name: &str) -> Result<PathBuf> {
    let refuse = |reason: &str| StorageError::BadName {
        name: name.to_string(),
        reason: reason.to_string(),
    };
    if name.is_empty() {
        return Err(refuse("the name is empty"));
    }
    if name.contains('\0') {
        return Err(refuse("the name contains a NUL byte"));
    }
    let rel = Path::new(name);
    if rel.is_absolute() {
        return Err(refuse("the name must be relative to the poolset directory"));
    }
    if rel.components().any(|c| c == Component::ParentDir) {
        return Err(refuse("the name must not contain '..'"));
    }
    if name.ends_with('/') {
        return Err(refuse(
            "the name ends with '/' (a pool set name names a file)",
        ));
    }
    let base = dir
        .canonicalize()
        .map_err(|e| StorageError::io("open the poolset directory", dir, e))?;
    let joined = base.join(rel);
    let full = joined.canonicalize().map_err(|e| {
        if e.raw_os_error() == Some(libc::ENOTDIR) {
            refuse("a component of the name is not a directory")
        } else {
            StorageError::io("open pool set", &joined, e)
        }
    })?;
    if full.is_dir() {
        return Err(refuse("it names a directory, not a pool set file"));
    }
    if !full.starts_with(&base) {
        return Err(refuse(&format!(
            "it resolves to {}, outside the poolset directory {}",
            full.display(),
            base.display()
        )));
    }
    Ok(full)
}

/// Removes the pool of the pool set file `set_path`: its part files and,
/// with `remove_set`, the pool set file itself.
///
/// Without `force` the pool must be intact (parts present with the declared
/// sizes, headers valid); with `force` every existing part file is removed
/// regardless and missing ones are skipped. A pool in use is never removed,
/// with or without `force` (EBUSY): every part stays locked until all are
/// unlinked, so no session can open it half-removed.
pub fn remove(set_path: &Path, force: bool, remove_set: bool) -> Result<()> {
    let set = PoolSet::load(set_path)?;
    // Opening verifies sizes and headers and fails if the pool is in use.
    let _held: Box<dyn std::any::Any> = if force {
        Box::new(lock_existing_parts(&set)?)
    } else {
        Box::new(Pool::open(&set)?)
    };
    for part in set.parts.iter().filter(|p| !p.is_device) {
        match fs::remove_file(&part.path) {
            Ok(()) => {}
            Err(e) if force && e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("remove", &part.path, e)),
        }
    }
    let intent = crate::intent::path_for(&set);
    crate::intent::remove(&intent).map_err(|e| StorageError::io("remove", &intent, e))?;
    if remove_set {
        fs::remove_file(set_path).map_err(|e| StorageError::io("remove", set_path, e))?;
    }
    Ok(())
}

/// Locks every part file that exists (what a forced removal may delete).
fn lock_existing_parts(set: &PoolSet) -> Result<Vec<fs::File>> {
    let mut held = Vec::new();
    for part in set.parts.iter().filter(|p| !p.is_device) {
        match fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&part.path)
        {
            Ok(f) => {
                crate::pool::lock(&f, &part.path)?;
                held.push(f);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(StorageError::io("open", &part.path, e)),
        }
    }
    Ok(held)
}
