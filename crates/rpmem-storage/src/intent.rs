//! The set_attr intent: every part's new header, made durable beside part 0
//! before any header changes.
//!
//! set_attr rewrites one 4 KiB header per part, and the headers link to each
//! other by uuid, so a crash between two header writes (or in the middle of
//! one) would leave a pool whose headers disagree. The intent makes the
//! change recoverable: it is written to a temporary file, synced and renamed
//! into place (so it is either absent or complete), then the headers are
//! written, then it is removed. Open finds a complete intent only when a
//! set_attr was cut short after it began changing headers, and finishes it;
//! so a crash at any instant leaves the old attributes or the new ones.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use crate::header::HEADER_LEN;
use crate::poolset::PoolSet;

const MAGIC: &[u8; 16] = b"RPMEM-SETATTR-1\0";
const ENTRY_LEN: usize = 8 + 16 + HEADER_LEN;

/// One part's header change.
#[derive(Clone)]
pub(crate) struct Entry {
    /// Index of the part in the pool set.
    pub part: usize,
    /// The part's uuid before the change (tells the intent of this pool
    /// from a stale one).
    pub old_uuid: [u8; 16],
    /// The new header, checksummed.
    pub image: [u8; HEADER_LEN],
}

/// What [`read`] found.
pub(crate) enum Found {
    /// No intent: no set_attr was cut short.
    Absent,
    /// A complete intent.
    Valid(Vec<Entry>),
    /// A file that is not a complete intent (it never was renamed into
    /// place complete, so no header was changed after it).
    Invalid,
}

/// Where the intent of `set` lives: beside part 0, or beside the pool set
/// file when part 0 is a device.
pub(crate) fn path_for(set: &PoolSet) -> PathBuf {
    let base = if set.parts[0].is_device {
        &set.path
    } else {
        &set.parts[0].path
    };
    let mut s = base.clone().into_os_string();
    s.push(".rpmem-set-attr");
    PathBuf::from(s)
}

fn tmp_of(path: &Path) -> PathBuf {
    let mut s = path.to_path_buf().into_os_string();
    s.push(".tmp");
    PathBuf::from(s)
}

/// FNV-1a, 64 bit: catches a damaged or foreign file, no secrecy needed.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn encode(entries: &[Entry]) -> Vec<u8> {
    let mut b = Vec::with_capacity(16 + 8 + entries.len() * ENTRY_LEN + 8);
    b.extend_from_slice(MAGIC);
    b.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        b.extend_from_slice(&(e.part as u64).to_le_bytes());
        b.extend_from_slice(&e.old_uuid);
        b.extend_from_slice(&e.image);
    }
    let sum = fnv(&b);
    b.extend_from_slice(&sum.to_le_bytes());
    b
}

fn decode(b: &[u8]) -> Option<Vec<Entry>> {
    let body_len = b.len().checked_sub(8)?;
    let (body, sum) = b.split_at(body_len);
    if body.len() < 24 || &body[..16] != MAGIC || fnv(body).to_le_bytes() != sum {
        return None;
    }
    let n = usize::try_from(u64::from_le_bytes(body[16..24].try_into().ok()?)).ok()?;
    let rest = &body[24..];
    if rest.len() != n.checked_mul(ENTRY_LEN)? {
        return None;
    }
    rest.chunks_exact(ENTRY_LEN)
        .map(|c| {
            Some(Entry {
                part: usize::try_from(u64::from_le_bytes(c[..8].try_into().ok()?)).ok()?,
                old_uuid: c[8..24].try_into().ok()?,
                image: c[24..].try_into().ok()?,
            })
        })
        .collect()
}

fn sync_dir_of(path: &Path) -> io::Result<()> {
    let dir = path.parent().unwrap_or(Path::new("/"));
    File::open(dir)?.sync_all()
}

/// Makes the intent durable at `path` (complete or not at all).
pub(crate) fn write(path: &Path, entries: &[Entry]) -> io::Result<()> {
    let tmp = tmp_of(path);
    let mut f = File::create(&tmp)?;
    f.write_all(&encode(entries))?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    sync_dir_of(path)
}

/// Reads the intent at `path`.
pub(crate) fn read(path: &Path) -> io::Result<Found> {
    match fs::read(path) {
        Ok(b) => Ok(decode(&b).map_or(Found::Invalid, Found::Valid)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Found::Absent),
        Err(e) => Err(e),
    }
}

/// Removes the intent and any half-written temporary one, durably.
pub(crate) fn remove(path: &Path) -> io::Result<()> {
    let mut removed = false;
    for p in [path.to_path_buf(), tmp_of(path)] {
        match fs::remove_file(&p) {
            Ok(()) => removed = true,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    if removed {
        sync_dir_of(path)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_every_damage_is_detected() {
        let entries = vec![
            Entry {
                part: 0,
                old_uuid: [1; 16],
                image: [2; HEADER_LEN],
            },
            Entry {
                part: 3,
                old_uuid: [4; 16],
                image: [5; HEADER_LEN],
            },
        ];
        let b = encode(&entries);
        let back = decode(&b).unwrap();
        assert_eq!(back.len(), 2);
        assert_eq!(back[1].part, 3);
        assert_eq!(back[1].old_uuid, [4; 16]);
        assert_eq!(back[1].image, [5; HEADER_LEN]);
        for cut in [0, 7, 8, 24, b.len() - 1] {
            assert!(decode(&b[..cut]).is_none(), "cut at {cut}");
        }
        for i in (0..b.len()).step_by(97) {
            let mut d = b.clone();
            d[i] ^= 0x10;
            assert!(decode(&d).is_none(), "byte {i}");
        }
    }
}
