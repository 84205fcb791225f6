//! The pool set parser (rpmemd reads pool set files a client names). Nothing
//! may panic, and whatever parses must describe a pool rpmemd can address:
//! at least one part, each part listed once and at least the minimum size,
//! and a total size that fits a file offset.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use libfuzzer_sys::fuzz_target;
use rpmem_storage::{PoolSet, MIN_PART};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(set) = PoolSet::parse(Path::new("/fuzz/pool.set"), text) else {
        return;
    };
    assert!(!set.parts.is_empty());
    let mut seen = HashSet::new();
    for p in &set.parts {
        assert!(p.path.is_absolute());
        assert!(seen.insert(&p.path), "{} listed twice", p.path.display());
        assert!(p.is_device || p.size >= MIN_PART);
    }
    let total = set.remote_size();
    assert!(total <= i64::MAX as u64);
    assert!(total > 0);
});
