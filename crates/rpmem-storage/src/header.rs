//! The 4 KiB pool header, in PMDK's on-media layout (`struct pool_hdr` of
//! PMDK 1.12): little-endian fields at the offsets of [`layout`], a
//! shutdown-state block near the end and a checksum in the last 8 bytes.

use rpmem_proto::PoolAttr;

use crate::HDR_SIZE;

/// Size of the header in bytes.
pub const HEADER_LEN: usize = HDR_SIZE as usize;
/// Incompat feature: the checksum covers only the first 2 KiB.
pub const FEAT_CKSUM_2K: u32 = 0x2;
/// Compat feature: check bad blocks.
pub const FEAT_CHECK_BAD_BLOCKS: u32 = 0x1;

/// Where each field of the header lies (byte ranges; integers are
/// little-endian). Everything not listed is reserved and written as zero.
pub mod layout {
    use std::ops::Range;

    /// Format signature, 8 bytes (e.g. `PMEMOBJ\0`).
    pub const SIGNATURE: Range<usize> = 0..8;
    /// Format major version, u32.
    pub const MAJOR: Range<usize> = 8..12;
    /// Compat features, u32.
    pub const COMPAT: Range<usize> = 12..16;
    /// Incompat features, u32.
    pub const INCOMPAT: Range<usize> = 16..20;
    /// Read-only-compat features, u32.
    pub const RO_COMPAT: Range<usize> = 20..24;
    /// UUID of the pool set.
    pub const POOLSET_UUID: Range<usize> = 24..40;
    /// UUID of this part.
    pub const UUID: Range<usize> = 40..56;
    /// UUID of the previous part.
    pub const PREV_PART_UUID: Range<usize> = 56..72;
    /// UUID of the next part.
    pub const NEXT_PART_UUID: Range<usize> = 72..88;
    /// UUID of the previous replica.
    pub const PREV_REPL_UUID: Range<usize> = 88..104;
    /// UUID of the next replica.
    pub const NEXT_REPL_UUID: Range<usize> = 104..120;
    /// Creation time, u64 seconds since the epoch.
    pub const CRTIME: Range<usize> = 120..128;
    /// Architecture flags, 16 bytes.
    pub const ARCH_FLAGS: Range<usize> = 128..144;
    /// Shutdown-state block, kept as found.
    pub const SDS: Range<usize> = 4024..4088;
    /// Checksum, u64; see [`super::checksum`].
    pub const CHECKSUM: Range<usize> = 4088..4096;
    /// End of what the checksum covers with `FEAT_CKSUM_2K`.
    pub const CKSUM_2K_END: usize = 2048;
}

use layout as at;

const SDS_LEN: usize = at::SDS.end - at::SDS.start;

/// ELF machine number of the build target (`e_machine`), as PMDK records it.
#[cfg(target_arch = "x86_64")]
const HOST_MACHINE: u16 = 62;
#[cfg(target_arch = "aarch64")]
const HOST_MACHINE: u16 = 183;
#[cfg(target_arch = "powerpc64")]
const HOST_MACHINE: u16 = 21;
#[cfg(target_arch = "riscv64")]
const HOST_MACHINE: u16 = 243;
#[cfg(not(any(
    target_arch = "x86_64",
    target_arch = "aarch64",
    target_arch = "powerpc64",
    target_arch = "riscv64"
)))]
const HOST_MACHINE: u16 = 0;

/// PMDK's alignment descriptor (`util_get_arch_flags`): for each of char,
/// short, int, long, long long, size_t, off_t, float, double, long double and
/// void *, in that order from the least significant nibble up, 4 bits of
/// (alignment - 1). On x86_64 this is `0x7f737777310`, the value pmempool
/// 1.12 writes.
fn alignment_desc() -> u64 {
    use std::mem::align_of;
    // Rust has no long double; the C ABIs we target align it to 16 bytes
    // (x86_64, aarch64, riscv64, ppc64le with IEEE quad).
    let long_double = 16usize;
    let list = [
        align_of::<std::ffi::c_char>(),
        align_of::<std::ffi::c_short>(),
        align_of::<std::ffi::c_int>(),
        align_of::<std::ffi::c_long>(),
        align_of::<std::ffi::c_longlong>(),
        align_of::<usize>(),
        align_of::<libc::off_t>(),
        align_of::<f32>(),
        align_of::<f64>(),
        long_double,
        align_of::<*const u8>(),
    ];
    list.iter()
        .enumerate()
        .fold(0u64, |d, (i, a)| d | (((*a as u64 - 1) & 0xf) << (4 * i)))
}

/// The host's architecture flags, laid out as the header's
/// [`layout::ARCH_FLAGS`]: alignment descriptor, ELF class (2 = 64-bit), ELF data
/// encoding (1 = little endian), 4 reserved bytes, ELF machine.
pub fn host_arch_flags() -> [u8; 16] {
    let mut f = [0u8; 16];
    f[0..8].copy_from_slice(&alignment_desc().to_le_bytes());
    f[8] = if cfg!(target_pointer_width = "64") {
        2
    } else {
        1
    };
    f[9] = if cfg!(target_endian = "little") { 1 } else { 2 };
    f[14..16].copy_from_slice(&HOST_MACHINE.to_le_bytes());
    f
}

/// PMDK's `util_checksum`: a Fletcher-64-like sum over little-endian u32
/// words of `buf`. The checksum field ([`layout::CHECKSUM`]) counts as zero,
/// and with `cksum_2k` every word from [`layout::CKSUM_2K_END`] on counts as
/// zero too (still summed, as zero).
pub fn checksum(buf: &[u8; HEADER_LEN], cksum_2k: bool) -> u64 {
    let end = if cksum_2k {
        at::CKSUM_2K_END
    } else {
        at::CHECKSUM.start
    };
    let mut lo: u32 = 0;
    let mut hi: u32 = 0;
    for (i, w) in buf.chunks_exact(4).enumerate() {
        if i * 4 < end {
            lo = lo.wrapping_add(u32::from_le_bytes([w[0], w[1], w[2], w[3]]));
        }
        hi = hi.wrapping_add(lo);
    }
    (u64::from(hi) << 32) | u64::from(lo)
}

/// A decoded pool header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolHeader {
    /// Format signature.
    pub signature: [u8; 8],
    /// Format major version.
    pub major: u32,
    /// Compat features.
    pub compat: u32,
    /// Incompat features.
    pub incompat: u32,
    /// Read-only-compat features.
    pub ro_compat: u32,
    /// UUID of the pool set.
    pub poolset_uuid: [u8; 16],
    /// UUID of this part.
    pub uuid: [u8; 16],
    /// UUID of the previous part.
    pub prev_part_uuid: [u8; 16],
    /// UUID of the next part.
    pub next_part_uuid: [u8; 16],
    /// UUID of the previous replica.
    pub prev_repl_uuid: [u8; 16],
    /// UUID of the next replica.
    pub next_repl_uuid: [u8; 16],
    /// Creation time, seconds since the epoch.
    pub crtime: u64,
    /// Architecture flags ([`layout::ARCH_FLAGS`]).
    pub arch_flags: [u8; 16],
    /// Shutdown-state block ([`layout::SDS`]), kept as found.
    pub sds: [u8; SDS_LEN],
}

fn arr<const N: usize>(b: &[u8], field: std::ops::Range<usize>) -> [u8; N] {
    let mut a = [0u8; N];
    a.copy_from_slice(&b[field]);
    a
}

impl PoolHeader {
    /// Builds part 0's header fields from attributes (part links are left to
    /// the caller). All-zero user flags become the host's arch flags.
    pub fn from_attr(attr: &PoolAttr) -> PoolHeader {
        let arch_flags = if attr.user_flags == [0u8; 16] {
            host_arch_flags()
        } else {
            attr.user_flags
        };
        PoolHeader {
            signature: attr.signature,
            major: attr.major,
            compat: attr.compat_features,
            incompat: attr.incompat_features,
            ro_compat: attr.ro_compat_features,
            poolset_uuid: attr.poolset_uuid,
            uuid: attr.uuid,
            prev_part_uuid: attr.uuid,
            next_part_uuid: attr.uuid,
            prev_repl_uuid: attr.prev_uuid,
            next_repl_uuid: attr.next_uuid,
            crtime: 0,
            arch_flags,
            sds: [0; SDS_LEN],
        }
    }

    /// Copies the attribute-carried fields onto this header (what set_attr
    /// changes in every part's header).
    pub fn apply_attr(&mut self, attr: &PoolAttr) {
        self.signature = attr.signature;
        self.major = attr.major;
        self.compat = attr.compat_features;
        self.incompat = attr.incompat_features;
        self.ro_compat = attr.ro_compat_features;
        self.poolset_uuid = attr.poolset_uuid;
        self.prev_repl_uuid = attr.prev_uuid;
        self.next_repl_uuid = attr.next_uuid;
        self.arch_flags = attr.user_flags;
    }

    /// The attributes this header (part 0's) stores.
    pub fn to_attr(&self) -> PoolAttr {
        PoolAttr {
            signature: self.signature,
            major: self.major,
            compat_features: self.compat,
            incompat_features: self.incompat,
            ro_compat_features: self.ro_compat,
            poolset_uuid: self.poolset_uuid,
            uuid: self.uuid,
            next_uuid: self.next_repl_uuid,
            prev_uuid: self.prev_repl_uuid,
            user_flags: self.arch_flags,
        }
    }

    /// Encodes to 4096 bytes with the checksum filled in.
    pub fn to_bytes(&self) -> [u8; HEADER_LEN] {
        let mut b = [0u8; HEADER_LEN];
        b[at::SIGNATURE].copy_from_slice(&self.signature);
        b[at::MAJOR].copy_from_slice(&self.major.to_le_bytes());
        b[at::COMPAT].copy_from_slice(&self.compat.to_le_bytes());
        b[at::INCOMPAT].copy_from_slice(&self.incompat.to_le_bytes());
        b[at::RO_COMPAT].copy_from_slice(&self.ro_compat.to_le_bytes());
        b[at::POOLSET_UUID].copy_from_slice(&self.poolset_uuid);
        b[at::UUID].copy_from_slice(&self.uuid);
        b[at::PREV_PART_UUID].copy_from_slice(&self.prev_part_uuid);
        b[at::NEXT_PART_UUID].copy_from_slice(&self.next_part_uuid);
        b[at::PREV_REPL_UUID].copy_from_slice(&self.prev_repl_uuid);
        b[at::NEXT_REPL_UUID].copy_from_slice(&self.next_repl_uuid);
        b[at::CRTIME].copy_from_slice(&self.crtime.to_le_bytes());
        b[at::ARCH_FLAGS].copy_from_slice(&self.arch_flags);
        b[at::SDS].copy_from_slice(&self.sds);
        let sum = checksum(&b, self.incompat & FEAT_CKSUM_2K != 0);
        b[at::CHECKSUM].copy_from_slice(&sum.to_le_bytes());
        b
    }

    /// Decodes 4096 bytes, verifying the checksum. The error says what is
    /// wrong.
    pub fn from_bytes(b: &[u8; HEADER_LEN]) -> Result<PoolHeader, String> {
        // Every field zero (whatever the unused bytes hold) is no header.
        if b[..at::ARCH_FLAGS.end].iter().all(|&x| x == 0) && b[at::SDS].iter().all(|&x| x == 0) {
            return Err("the header is all zeros".into());
        }
        let u32_at = |field| u32::from_le_bytes(arr(b, field));
        let incompat = u32_at(at::INCOMPAT);
        let stored = u64::from_le_bytes(arr(b, at::CHECKSUM));
        let computed = checksum(b, incompat & FEAT_CKSUM_2K != 0);
        if stored != computed {
            return Err(format!(
                "checksum mismatch (stored {stored:#018x}, computed {computed:#018x})"
            ));
        }
        Ok(PoolHeader {
            signature: arr(b, at::SIGNATURE),
            major: u32_at(at::MAJOR),
            compat: u32_at(at::COMPAT),
            incompat,
            ro_compat: u32_at(at::RO_COMPAT),
            poolset_uuid: arr(b, at::POOLSET_UUID),
            uuid: arr(b, at::UUID),
            prev_part_uuid: arr(b, at::PREV_PART_UUID),
            next_part_uuid: arr(b, at::NEXT_PART_UUID),
            prev_repl_uuid: arr(b, at::PREV_REPL_UUID),
            next_repl_uuid: arr(b, at::NEXT_REPL_UUID),
            crtime: u64::from_le_bytes(arr(b, at::CRTIME)),
            arch_flags: arr(b, at::ARCH_FLAGS),
            sds: arr(b, at::SDS),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr() -> PoolAttr {
        PoolAttr {
            compat_features: FEAT_CHECK_BAD_BLOCKS,
            ..PoolAttr::sample(b"PMEMOBJ\0", 6)
        }
    }

    #[test]
    fn layout_offsets_are_pmdks() {
        let mut h = PoolHeader::from_attr(&attr());
        h.crtime = 0x1122334455667788;
        let b = h.to_bytes();
        assert_eq!(&b[0..8], b"PMEMOBJ\0");
        assert_eq!(b[8], 6);
        assert_eq!(b[12], 1);
        assert_eq!(&b[24..40], &[0x11; 16]);
        assert_eq!(&b[40..56], &[0x22; 16]);
        assert_eq!(&b[88..104], &[0x44; 16], "prev_repl_uuid");
        assert_eq!(&b[104..120], &[0x33; 16], "next_repl_uuid");
        assert_eq!(b[120], 0x88);
        // Host arch flags filled in: 64-bit class, little endian.
        assert_eq!(b[136], 2);
        assert_eq!(b[137], 1);
        #[cfg(target_arch = "x86_64")]
        {
            assert_eq!(u16::from_le_bytes([b[142], b[143]]), 62);
            // The value PMDK 1.12's pmempool writes on x86_64.
            assert_eq!(
                u64::from_le_bytes(b[128..136].try_into().unwrap()),
                0x0000_07f7_3777_7310
            );
        }
    }

    #[test]
    fn round_trip_and_attr_mapping() {
        let mut a = attr();
        a.user_flags = [9; 16];
        let h = PoolHeader::from_attr(&a);
        let back = PoolHeader::from_bytes(&h.to_bytes()).unwrap();
        assert_eq!(back, h);
        assert_eq!(back.to_attr(), a);
    }

    #[test]
    fn every_flipped_byte_is_detected() {
        let b = PoolHeader::from_attr(&attr()).to_bytes();
        for i in (0..HEADER_LEN).step_by(7) {
            let mut d = b;
            d[i] ^= 0x40;
            assert!(PoolHeader::from_bytes(&d).is_err(), "byte {i}");
        }
    }

    #[test]
    fn cksum_2k_ignores_the_second_half() {
        let mut a = attr();
        a.incompat_features = FEAT_CKSUM_2K;
        let b = PoolHeader::from_attr(&a).to_bytes();
        let mut d = b;
        d[3000] ^= 1; // in the shutdown-state-free tail: not covered
        assert!(PoolHeader::from_bytes(&d).is_ok());
        d[100] ^= 1;
        assert!(PoolHeader::from_bytes(&d).is_err());
        // The tail still counts as zero words: the sum differs from one over
        // a 2 KiB buffer.
        let mut z = [0u8; HEADER_LEN];
        z[0] = 1;
        assert_eq!(checksum(&z, true), (1024u64 << 32) | 1);
        assert_eq!(checksum(&z, false), (1024u64 << 32) | 1);
        z[3000] = 1; // word 750: counted only without CKSUM_2K
        assert_eq!(checksum(&z, true), (1024u64 << 32) | 1);
        assert_eq!(checksum(&z, false), ((1024u64 + 274) << 32) | 2);
    }

    #[test]
    fn zero_header_is_refused() {
        assert!(PoolHeader::from_bytes(&[0u8; HEADER_LEN]).is_err());
        // Found by fuzzing: every field zero, bytes only in the unused area,
        // and a checksum that matches. It decoded to a header that encodes
        // as all zeros, which then did not decode.
        let mut b = [0u8; HEADER_LEN];
        b[1000] = 1;
        let sum = checksum(&b, false);
        b[layout::CHECKSUM].copy_from_slice(&sum.to_le_bytes());
        let e = PoolHeader::from_bytes(&b).unwrap_err();
        assert!(e.contains("zero"), "{e}");
    }
}
