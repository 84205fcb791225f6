//! The rpmem wire protocol, as pure data: no sockets, no files, no threads.
//!
//! Two channels carry it:
//! - the **control channel** is the ssh session's stdin/stdout. It carries
//!   length-prefixed [`control`] frames: the initiator asks to create or open a
//!   pool, set its attributes or close it, and the daemon answers each request.
//! - one **data channel** (a TCP connection) per lane carries fixed-size
//!   [`data`] request headers followed by payload, and fixed-size acks.
//!
//! Everything here is encoded little-endian. Every length read from a peer is
//! bounded before it is trusted (see [`control::MAX_FRAME`]).

/// Declares a fieldless enum whose variants stand for wire values of type
/// `$repr`, with `ALL` (every variant, in the order declared) and
/// `from_wire` (the variant a wire value stands for, if any).
macro_rules! wire_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident: $repr:ty {
            $( $(#[$vmeta:meta])* $variant:ident = $value:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr($repr)]
        pub enum $name {
            $( $(#[$vmeta])* $variant = $value, )+
        }

        impl $name {
            /// Every value, in the order declared.
            pub const ALL: [$name; [$(stringify!($variant)),+].len()] = [$($name::$variant),+];

            /// The value `v` stands for on the wire; `None` when it names none.
            pub fn from_wire(v: $repr) -> Option<$name> {
                $name::ALL.iter().copied().find(|x| *x as $repr == v)
            }
        }
    };
}

pub mod attr;
pub mod bench;
mod codec;
pub mod control;
pub mod data;
pub mod pmdk;
pub mod status;
pub mod text;
pub mod transport;

pub use attr::PoolAttr;
pub use status::Status;

/// Size of the pool header: in a pool with headers, its first bytes, which
/// data operations never write.
pub const POOL_HEADER_SIZE: u64 = 4096;
/// Smallest part a pool set may have (librpmem's `RPMEM_MIN_PART`).
pub const MIN_PART_SIZE: u64 = 2 << 20;

/// Protocol version spoken by this crate. A peer with another major is refused
/// with [`Status::BadProtocol`].
pub const PROTO_VERSION: u16 = 1;

/// Errors found while decoding bytes received from a peer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum DecodeError {
    /// The buffer ended before the message did.
    #[error("truncated message: needed {needed} more bytes")]
    Truncated {
        /// How many more bytes the decoder wanted.
        needed: usize,
    },
    /// A frame or string length is larger than the protocol allows.
    #[error("{what} of {len} bytes exceeds the limit of {max}")]
    TooLong {
        /// Which field.
        what: &'static str,
        /// The length the peer claimed.
        len: u64,
        /// The largest length accepted.
        max: u64,
    },
    /// A message kind, opcode or status this version does not know.
    #[error("unknown {what} {value}")]
    Unknown {
        /// Which field.
        what: &'static str,
        /// The value found.
        value: u64,
    },
    /// A well-formed message that the protocol does not allow here (a
    /// response of the wrong kind, an answer to another request).
    #[error("unexpected {what} to {to}")]
    Unexpected {
        /// What arrived.
        what: &'static str,
        /// What it answered.
        to: &'static str,
    },
    /// A field holds a value that is not allowed (bad magic, bad UTF-8, junk
    /// after the message, reserved bits set).
    #[error("malformed message: {0}")]
    Malformed(&'static str),
}

#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
