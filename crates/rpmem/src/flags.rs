//! Typed flags of the Rust API; their bits are librpmem's, so the C library
//! converts with `from_bits`.

use bitflags::bitflags;

bitflags! {
    /// How [`Pool::persist`](crate::Pool::persist), [`Lane::persist`](crate::Lane::persist)
    /// and the flush calls transfer a range.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct PersistFlags: u32 {
        /// The transfer need not be atomic at 8-byte granularity: the target
        /// receives it straight into the pool, in any order and piece size.
        /// Durability once the call returned is the same
        /// (`RPMEM_PERSIST_RELAXED`, `RPMEM_FLUSH_RELAXED`).
        const RELAXED = 1;
    }
}

bitflags! {
    /// What [`remove`](crate::remove()) removes besides the part files.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct RemoveFlags: u32 {
        /// Remove even if the pool is inconsistent (`RPMEM_REMOVE_FORCE`).
        const FORCE = 1;
        /// Remove the pool set file too (`RPMEM_REMOVE_POOL_SET`).
        const POOL_SET = 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bits_are_librpmems() {
        assert_eq!(PersistFlags::RELAXED.bits(), crate::PERSIST_RELAXED);
        assert_eq!(PersistFlags::RELAXED.bits(), crate::FLUSH_RELAXED);
        assert_eq!(RemoveFlags::FORCE.bits(), 0x1);
        assert_eq!(RemoveFlags::POOL_SET.bits(), 0x2);
        assert_eq!(RemoveFlags::from_bits(0x4), None);
        assert!(PersistFlags::default().is_empty());
    }
}
