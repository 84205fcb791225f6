//! `struct rpmem_pool_attr`, laid out exactly as in `librpmem.h`.

use std::ffi::c_char;

use rpmem::PoolAttr;

/// The C `struct rpmem_pool_attr` (104 bytes, no padding).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RpmemPoolAttr {
    /// Pool signature.
    pub signature: [c_char; 8],
    /// Format major version number.
    pub major: u32,
    /// Mask of compatible ("may") features.
    pub compat_features: u32,
    /// Mask of "must support" features.
    pub incompat_features: u32,
    /// Mask of features without which the pool is read-only.
    pub ro_compat_features: u32,
    /// Pool set uuid.
    pub poolset_uuid: [u8; 16],
    /// First part uuid.
    pub uuid: [u8; 16],
    /// Next pool uuid.
    pub next_uuid: [u8; 16],
    /// Previous pool uuid.
    pub prev_uuid: [u8; 16],
    /// User flags.
    pub user_flags: [u8; 16],
}

const _: () = assert!(std::mem::size_of::<RpmemPoolAttr>() == 104);
const _: () = assert!(std::mem::align_of::<RpmemPoolAttr>() == 4);
const _: () = assert!(std::mem::offset_of!(RpmemPoolAttr, major) == 8);
const _: () = assert!(std::mem::offset_of!(RpmemPoolAttr, poolset_uuid) == 24);
const _: () = assert!(std::mem::offset_of!(RpmemPoolAttr, user_flags) == 88);

impl RpmemPoolAttr {
    /// Converts to the engine's attributes.
    pub fn to_attr(&self) -> PoolAttr {
        PoolAttr {
            signature: self.signature.map(|c| c as u8),
            major: self.major,
            compat_features: self.compat_features,
            incompat_features: self.incompat_features,
            ro_compat_features: self.ro_compat_features,
            poolset_uuid: self.poolset_uuid,
            uuid: self.uuid,
            next_uuid: self.next_uuid,
            prev_uuid: self.prev_uuid,
            user_flags: self.user_flags,
        }
    }

    /// Converts from the engine's attributes.
    pub fn from_attr(a: &PoolAttr) -> Self {
        RpmemPoolAttr {
            signature: a.signature.map(|b| b as c_char),
            major: a.major,
            compat_features: a.compat_features,
            incompat_features: a.incompat_features,
            ro_compat_features: a.ro_compat_features,
            poolset_uuid: a.poolset_uuid,
            uuid: a.uuid,
            next_uuid: a.next_uuid,
            prev_uuid: a.prev_uuid,
            user_flags: a.user_flags,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn c_layout_matches_engine_encoding() {
        let a = PoolAttr::distinct();
        let c = RpmemPoolAttr::from_attr(&a);
        // The in-memory C struct must be byte-for-byte the engine's encoding.
        let mut raw = [0u8; 104];
        for (i, b) in raw.iter_mut().enumerate() {
            // Read the struct's bytes without unsafe: re-encode field by field.
            *b = match i {
                0..=7 => c.signature[i] as u8,
                8..=11 => c.major.to_ne_bytes()[i - 8],
                12..=15 => c.compat_features.to_ne_bytes()[i - 12],
                16..=19 => c.incompat_features.to_ne_bytes()[i - 16],
                20..=23 => c.ro_compat_features.to_ne_bytes()[i - 20],
                24..=39 => c.poolset_uuid[i - 24],
                40..=55 => c.uuid[i - 40],
                56..=71 => c.next_uuid[i - 56],
                72..=87 => c.prev_uuid[i - 72],
                _ => c.user_flags[i - 88],
            };
        }
        assert_eq!(raw, a.to_bytes());
        assert_eq!(c.to_attr(), a);
    }
}
