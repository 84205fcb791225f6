//! Status codes a daemon reports. They are the protocol's, not errno values:
//! each side maps them to its own error type (the C edge maps them to errno as
//! librpmem did).

wire_enum! {
/// Outcome of a request, as carried on the wire.
pub enum Status: u32 {
    /// Success.
    Ok = 0,
    /// The peer speaks another protocol version.
    BadProtocol = 1,
    /// The pool set name is invalid or reaches outside the poolset directory.
    BadName = 2,
    /// The remote pool is smaller than the requested size, or a size is invalid.
    BadSize = 3,
    /// The number of lanes is invalid.
    BadNlanes = 4,
    /// The requested transport is invalid.
    BadProvider = 5,
    /// An unexpected failure on the target.
    Fatal = 6,
    /// The pool set file or the pool is misconfigured (bad poolset, header
    /// option that does not match the attributes, damaged header).
    BadPoolConfig = 7,
    /// The pool is open by another client.
    Busy = 8,
    /// The pool already exists.
    Exists = 9,
    /// The pool set file or the pool does not exist.
    NoEntry = 10,
    /// Permission denied on the target.
    Access = 11,
    /// The requested transport is not supported by the target.
    ProviderUnsupported = 12,
    /// The target ran out of space.
    NoSpace = 13,
    /// A request's range, lane or flags are invalid.
    BadRequest = 14,
    /// A data connection failed to authenticate.
    Unauthenticated = 15,
}
}

impl Status {
    /// The errno librpmem reported for this status (Linux values).
    pub fn errno(self) -> i32 {
        // Values from Linux's asm-generic/errno*.h; the protocol crate has no libc.
        const EINVAL: i32 = 22;
        match self {
            Status::Ok => 0,
            Status::BadProtocol => 93, // EPROTONOSUPPORT
            Status::BadName => EINVAL,
            Status::BadSize => 27, // EFBIG
            Status::BadNlanes | Status::BadProvider | Status::BadPoolConfig => EINVAL,
            Status::Fatal => 121,               // EREMOTEIO
            Status::Busy => 16,                 // EBUSY
            Status::Exists => 17,               // EEXIST
            Status::NoEntry => 2,               // ENOENT
            Status::Access => 13,               // EACCES
            Status::ProviderUnsupported => 124, // EMEDIUMTYPE
            Status::NoSpace => 28,              // ENOSPC
            Status::BadRequest => EINVAL,
            Status::Unauthenticated => 13, // EACCES
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_round_trip() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            assert_eq!(Status::from_wire(i as u32), Some(*s));
        }
        assert_eq!(Status::from_wire(Status::ALL.len() as u32), None);
    }

    #[test]
    fn errno_table_matches_librpmem() {
        assert_eq!(Status::BadProtocol.errno(), 93);
        assert_eq!(Status::BadSize.errno(), 27);
        assert_eq!(Status::Fatal.errno(), 121);
        assert_eq!(Status::Busy.errno(), 16);
        assert_eq!(Status::Exists.errno(), 17);
        assert_eq!(Status::NoEntry.errno(), 2);
        assert_eq!(Status::ProviderUnsupported.errno(), 124);
    }
}
