//! PMDK 1.12.1's librpmem ⇄ rpmemd protocol, as pure data.
//!
//! PMDK's pair talks over two channels, like ours but in another encoding:
//! - the ssh session's stdin/stdout carries the [`obc`] ("out-of-band
//!   connection") messages: a startup status from the daemon, then create,
//!   open, set_attr and close requests, each answered once;
//! - one libfabric `FI_EP_MSG` connection per lane carries the [`fip`]
//!   persist messages and their responses, beside the client's RMA writes and
//!   reads into the registered pool.
//!
//! Byte order is not uniform, and the codec reproduces it exactly: the obc
//! message headers, request bodies, in-band connection attributes (except
//! their lane count), pool descriptor length and pool attribute numbers are
//! big-endian; the startup status, the close flags, the granted lane count and
//! every fabric-level message are in the sender's byte order, which for the
//! x86-64 and aarch64 hosts PMDK ran on is little-endian.

pub mod fip;
pub mod obc;

use crate::codec::{Reader, Writer};
use crate::{DecodeError, PoolAttr};

/// Protocol version PMDK 1.12.1 speaks: major 0, minor 1; its rpmemd refuses
/// any other.
pub const PROTO_MAJOR: u16 = 0;
/// See [`PROTO_MAJOR`].
pub const PROTO_MINOR: u16 = 1;

wire_enum! {
/// Status codes of obc responses (`enum rpmem_err`).
pub enum Status: u32 {
    /// Success.
    Success = 0,
    /// Protocol version mismatch.
    BadProto = 1,
    /// Invalid pool descriptor.
    BadName = 2,
    /// Invalid pool size.
    BadSize = 3,
    /// Invalid number of lanes.
    BadNlanes = 4,
    /// Invalid provider.
    BadProvider = 5,
    /// Fatal error.
    Fatal = 6,
    /// Fatal in-band (fabric) connection error.
    FatalConn = 7,
    /// Pool already in use.
    Busy = 8,
    /// Pool already exists.
    Exists = 9,
    /// Provider not supported.
    ProvNoSup = 10,
    /// Pool set or a part does not exist.
    NoExist = 11,
    /// Permission denied.
    NoAccess = 12,
    /// Invalid pool set configuration.
    PoolCfg = 13,
}
}

impl Status {
    /// Our status for this one (PMDK's in-band connection failure has no
    /// counterpart and becomes [`crate::Status::Fatal`]).
    pub fn to_ours(self) -> crate::Status {
        use crate::Status as S;
        match self {
            Status::Success => S::Ok,
            Status::BadProto => S::BadProtocol,
            Status::BadName => S::BadName,
            Status::BadSize => S::BadSize,
            Status::BadNlanes => S::BadNlanes,
            Status::BadProvider => S::BadProvider,
            Status::Fatal | Status::FatalConn => S::Fatal,
            Status::Busy => S::Busy,
            Status::Exists => S::Exists,
            Status::ProvNoSup => S::ProviderUnsupported,
            Status::NoExist => S::NoEntry,
            Status::NoAccess => S::Access,
            Status::PoolCfg => S::BadPoolConfig,
        }
    }

    /// The nearest PMDK status for one of ours (PMDK has no "no space", "bad
    /// request" or "unauthenticated"; they travel as fatal errors).
    pub fn from_ours(s: crate::Status) -> Status {
        use crate::Status as S;
        match s {
            S::Ok => Status::Success,
            S::BadProtocol => Status::BadProto,
            S::BadName => Status::BadName,
            S::BadSize => Status::BadSize,
            S::BadNlanes => Status::BadNlanes,
            S::BadProvider => Status::BadProvider,
            S::Fatal | S::NoSpace | S::BadRequest => Status::Fatal,
            S::Unauthenticated => Status::FatalConn,
            S::BadPoolConfig => Status::PoolCfg,
            S::Busy => Status::Busy,
            S::Exists => Status::Exists,
            S::NoEntry => Status::NoExist,
            S::Access => Status::NoAccess,
            S::ProviderUnsupported => Status::ProvNoSup,
        }
    }

    /// PMDK's message for this status.
    pub fn message(self) -> &'static str {
        match self {
            Status::Success => "Success",
            Status::BadProto => "Protocol version number mismatch",
            Status::BadName => "Invalid pool descriptor",
            Status::BadSize => "Invalid pool size",
            Status::BadNlanes => "Invalid number of lanes",
            Status::BadProvider => "Invalid provider",
            Status::Fatal => "Fatal error",
            Status::FatalConn => "Fatal in-band connection error",
            Status::Busy => "Pool already in use",
            Status::Exists => "Pool already exists",
            Status::ProvNoSup => "Provider not supported",
            Status::NoExist => "Pool set or its part doesn't exist or it is unavailable",
            Status::NoAccess => "Pool set permission denied",
            Status::PoolCfg => "Invalid pool set configuration",
        }
    }
}

wire_enum! {
/// The fabric provider a client asks for (`enum rpmem_provider`); PMDK's
/// "unknown" (0) is none of them.
pub enum Provider: u32 {
    /// libfabric's `verbs` (RDMA).
    Verbs = 1,
    /// libfabric's `sockets` (software, for tests).
    Sockets = 2,
}
}

impl Provider {
    /// libfabric's name of the provider.
    pub fn name(self) -> &'static str {
        match self {
            Provider::Verbs => "verbs",
            Provider::Sockets => "sockets",
        }
    }
}

wire_enum! {
/// How the target makes written data durable (`enum rpmem_persist_method`).
pub enum PersistMethod: u32 {
    /// General purpose server persistency method: the daemon's CPU makes each
    /// persisted range durable when the persist message arrives.
    Gpspm = 1,
    /// Appliance persistency method: the client makes its writes durable with
    /// an RMA read after them; the daemon's CPU is not involved.
    Apm = 2,
}
}

/// Encoded size of the packed pool attributes.
pub const ATTR_LEN: usize = crate::attr::ENCODED_LEN;

impl Reader<'_> {
    pub(crate) fn be_u16(&mut self) -> Result<u16, DecodeError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub(crate) fn be_u32(&mut self) -> Result<u32, DecodeError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub(crate) fn be_u64(&mut self) -> Result<u64, DecodeError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
}

impl Writer<'_> {
    pub(crate) fn be_u16(&mut self, v: u16) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn be_u32(&mut self, v: u32) {
        self.bytes(&v.to_be_bytes());
    }
    pub(crate) fn be_u64(&mut self, v: u64) {
        self.bytes(&v.to_be_bytes());
    }
}

/// `struct rpmem_pool_attr_packed` on the wire: byte arrays as they are, the
/// four feature/version numbers big-endian.
pub(crate) fn write_attr(w: &mut Writer<'_>, a: &PoolAttr) {
    w.bytes(&a.signature);
    w.be_u32(a.major);
    w.be_u32(a.compat_features);
    w.be_u32(a.incompat_features);
    w.be_u32(a.ro_compat_features);
    w.bytes(&a.poolset_uuid);
    w.bytes(&a.uuid);
    w.bytes(&a.next_uuid);
    w.bytes(&a.prev_uuid);
    w.bytes(&a.user_flags);
}

pub(crate) fn read_attr(r: &mut Reader<'_>) -> Result<PoolAttr, DecodeError> {
    PoolAttr::read_with(r, Reader::be_u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_values_and_errnos_are_pmdks() {
        for (i, s) in Status::ALL.iter().enumerate() {
            assert_eq!(*s as u32, i as u32);
            assert_eq!(Status::from_wire(i as u32), Some(*s));
        }
        assert_eq!(Status::from_wire(14), None);
        for s in crate::Status::ALL {
            let p = Status::from_ours(s);
            if p != Status::Fatal && p != Status::FatalConn {
                assert_eq!(p.to_ours(), s, "{s:?}");
            }
        }
        assert_eq!(Provider::from_wire(0), None);
        assert_eq!(Provider::from_wire(2), Some(Provider::Sockets));
        assert_eq!(PersistMethod::from_wire(3), None);
    }

    #[test]
    fn packed_attr_numbers_are_big_endian() {
        let a = PoolAttr {
            signature: *b"PMEMOBJ\0",
            major: 6,
            compat_features: 0x0102_0304,
            ..PoolAttr::default()
        };
        let mut out = Vec::new();
        write_attr(&mut Writer(&mut out), &a);
        assert_eq!(out.len(), ATTR_LEN);
        assert_eq!(&out[8..16], &[0, 0, 0, 6, 1, 2, 3, 4]);
        let mut r = Reader::new(&out);
        assert_eq!(read_attr(&mut r).unwrap(), a);
        r.finish().unwrap();
    }
}
