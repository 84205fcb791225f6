//! Helpers shared by the storage integration tests.
#![allow(dead_code)]

use std::fs;
use std::path::{Path, PathBuf};

use rpmem_proto::PoolAttr;
use rpmem_storage::PoolSet;

pub const M: u64 = 1 << 20;

pub fn attr() -> PoolAttr {
    PoolAttr {
        compat_features: 1,
        user_flags: [0x55; 16],
        ..PoolAttr::sample(b"RPMEMTST", 3)
    }
}

/// Writes a pool set `name` in `dir` with the given option line and part sizes.
pub fn write_set(dir: &Path, name: &str, option: &str, sizes: &[u64]) -> (PathBuf, Vec<PathBuf>) {
    let mut text = String::from("PMEMPOOLSET\n");
    if !option.is_empty() {
        text.push_str(&format!("OPTION {option}\n"));
    }
    let mut parts = Vec::new();
    for (i, s) in sizes.iter().enumerate() {
        let p = dir.join(format!("{name}.part{i}"));
        text.push_str(&format!("{s} {}\n", p.display()));
        parts.push(p);
    }
    let set = dir.join(name);
    fs::write(&set, text).unwrap();
    (set, parts)
}

pub fn load(p: &Path) -> PoolSet {
    PoolSet::load(p).unwrap()
}

/// [`write_set`] in a fresh temporary directory (removed when the returned
/// `TempDir` is dropped): the directory, the set file, its parts and the
/// loaded set.
pub fn temp_set(
    name: &str,
    option: &str,
    sizes: &[u64],
) -> (tempfile::TempDir, PathBuf, Vec<PathBuf>, PoolSet) {
    let d = tempfile::tempdir().unwrap();
    let (set, parts) = write_set(d.path(), name, option, sizes);
    let s = load(&set);
    (d, set, parts, s)
}
