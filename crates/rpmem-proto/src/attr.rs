//! Remote pool attributes, laid out exactly as librpmem's `struct rpmem_pool_attr`.

use crate::codec::Reader;
use crate::DecodeError;

/// Length of [`PoolAttr::signature`].
pub const SIG_LEN: usize = 8;
/// Length of each uuid field.
pub const UUID_LEN: usize = 16;
/// Length of [`PoolAttr::user_flags`].
pub const USER_FLAGS_LEN: usize = 16;
/// Encoded size: the C struct's size, 104 bytes with no padding.
pub const ENCODED_LEN: usize = 104;

/// The attributes stored in a remote pool's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct PoolAttr {
    /// On-media format signature (e.g. `PMEMOBJ\0`).
    pub signature: [u8; SIG_LEN],
    /// Major version of the on-media format.
    pub major: u32,
    /// Optional features.
    pub compat_features: u32,
    /// Required features.
    pub incompat_features: u32,
    /// Features without which the pool is read-only.
    pub ro_compat_features: u32,
    /// UUID of the pool set the remote pool replicates.
    pub poolset_uuid: [u8; UUID_LEN],
    /// UUID of the remote pool's first part.
    pub uuid: [u8; UUID_LEN],
    /// UUID of the next replica.
    pub next_uuid: [u8; UUID_LEN],
    /// UUID of the previous replica.
    pub prev_uuid: [u8; UUID_LEN],
    /// User flags (in PMDK's header, the architecture flags).
    pub user_flags: [u8; USER_FLAGS_LEN],
}

impl PoolAttr {
    /// Recognisable attributes for tests: `signature`, `major`, the uuids
    /// filled with 0x11 (pool set), 0x22 (pool), 0x33 (next), 0x44
    /// (previous), no features, zero user flags.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn sample(signature: &[u8; SIG_LEN], major: u32) -> PoolAttr {
        PoolAttr {
            signature: *signature,
            major,
            poolset_uuid: [0x11; UUID_LEN],
            uuid: [0x22; UUID_LEN],
            next_uuid: [0x33; UUID_LEN],
            prev_uuid: [0x44; UUID_LEN],
            ..PoolAttr::default()
        }
    }

    /// Attributes no two of whose fields hold the same bytes, for layout
    /// tests: [`PoolAttr::sample`]`(b"PMEMOBJ\0", 6)` with features 1, 2
    /// and 3 and user flags 0xf8.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn distinct() -> PoolAttr {
        PoolAttr {
            compat_features: 1,
            incompat_features: 2,
            ro_compat_features: 3,
            user_flags: [0xf8; UUID_LEN],
            ..PoolAttr::sample(b"PMEMOBJ\0", 6)
        }
    }

    /// True when every field is zero: librpmem treats that like a NULL attr.
    pub fn is_zero(&self) -> bool {
        *self == PoolAttr::default()
    }

    /// The 104 bytes of the C struct.
    pub fn to_bytes(&self) -> [u8; ENCODED_LEN] {
        let mut out = [0u8; ENCODED_LEN];
        out[0..8].copy_from_slice(&self.signature);
        out[8..12].copy_from_slice(&self.major.to_le_bytes());
        out[12..16].copy_from_slice(&self.compat_features.to_le_bytes());
        out[16..20].copy_from_slice(&self.incompat_features.to_le_bytes());
        out[20..24].copy_from_slice(&self.ro_compat_features.to_le_bytes());
        out[24..40].copy_from_slice(&self.poolset_uuid);
        out[40..56].copy_from_slice(&self.uuid);
        out[56..72].copy_from_slice(&self.next_uuid);
        out[72..88].copy_from_slice(&self.prev_uuid);
        out[88..104].copy_from_slice(&self.user_flags);
        out
    }

    /// Parses the 104 bytes of the C struct.
    pub fn from_bytes(raw: &[u8; ENCODED_LEN]) -> Self {
        // Infallible: the array has exactly the needed length.
        Self::read(&mut Reader::new(raw)).expect("fixed-size attr")
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Self::read_with(r, Reader::u32)
    }

    /// Reads the fields in order, the integers with `u32` (our wire is
    /// little-endian, PMDK's ssh channel big-endian).
    pub(crate) fn read_with<'a>(
        r: &mut Reader<'a>,
        u32: fn(&mut Reader<'a>) -> Result<u32, DecodeError>,
    ) -> Result<Self, DecodeError> {
        Ok(PoolAttr {
            signature: r.array()?,
            major: u32(r)?,
            compat_features: u32(r)?,
            incompat_features: u32(r)?,
            ro_compat_features: u32(r)?,
            poolset_uuid: r.array()?,
            uuid: r.array()?,
            next_uuid: r.array()?,
            prev_uuid: r.array()?,
            user_flags: r.array()?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_matches_c_struct_offsets() {
        let a = PoolAttr::distinct();
        let b = a.to_bytes();
        assert_eq!(&b[0..8], b"PMEMOBJ\0");
        assert_eq!(b[8], 6);
        assert_eq!(b[16], 2);
        assert_eq!(b[24], 0x11);
        assert_eq!(b[40], 0x22);
        assert_eq!(b[56], 0x33);
        assert_eq!(b[72], 0x44);
        assert_eq!(b[103], 0xf8);
        assert_eq!(PoolAttr::from_bytes(&b), a);
        assert!(!a.is_zero());
        assert!(PoolAttr::default().is_zero());
    }
}
