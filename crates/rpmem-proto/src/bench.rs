//! The raw floor of `rpmem bench`: `rpmemd --bench-echo` and the bench talk
//! plain TCP with this 32-byte header (the size of a data request header, so
//! the floor carries the same bytes as the traffic it is compared with).
//!
//! After the header come `payload` bytes; the server then answers with
//! `reply` bytes (none when `reply` is 0), taken from its buffer at `offset`
//! after a 16-byte stand-in for an acknowledgement.

use crate::codec::Reader;
use crate::DecodeError;

/// Size of an [`EchoHeader`] on the wire.
pub const ECHO_HEADER_LEN: usize = 32;
/// Largest payload or reply of one message, so a confused peer cannot make
/// the other side allocate without bound.
pub const ECHO_MAX_MESSAGE: u32 = 64 << 20;
/// Largest buffer a connection may ask the server to hold ([`ECHO_SPAN`]).
pub const ECHO_MAX_SPAN: u64 = 64 << 30;
/// After answering, wait for the next message asleep in the kernel instead of
/// spinning: the floor is parked while the product runs.
pub const ECHO_PARK: u32 = 1;
/// Set up the connection: the server allocates (and touches) a buffer of
/// `offset` bytes; later payloads land in it at their offsets, as a pool's do.
pub const ECHO_SPAN: u32 = 2;
/// What the server's first line ends with, so an older server is recognised.
pub const ECHO_BANNER: &str = "echo/2";

/// One raw-floor message header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EchoHeader {
    /// Bytes following the header.
    pub payload: u32,
    /// Bytes the server answers with (0: no answer).
    pub reply: u32,
    /// [`ECHO_PARK`], [`ECHO_SPAN`].
    pub flags: u32,
    /// Where the payload lands in (and the reply comes from) the server's
    /// buffer; with [`ECHO_SPAN`], the buffer's size.
    pub offset: u64,
}

impl EchoHeader {
    /// Encodes to the fixed wire size.
    pub fn encode(&self) -> [u8; ECHO_HEADER_LEN] {
        let mut out = [0u8; ECHO_HEADER_LEN];
        out[0..4].copy_from_slice(&self.payload.to_le_bytes());
        out[4..8].copy_from_slice(&self.reply.to_le_bytes());
        out[8..12].copy_from_slice(&self.flags.to_le_bytes());
        out[16..24].copy_from_slice(&self.offset.to_le_bytes());
        out
    }

    /// Decodes and bounds a header.
    pub fn decode(raw: &[u8; ECHO_HEADER_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(raw);
        let payload = r.u32()?;
        let reply = r.u32()?;
        let flags = r.u32()?;
        let reserved = r.u32()?;
        let offset = r.u64()?;
        let tail = r.u64()?;
        r.finish()?;
        for (what, len) in [("echo payload", payload), ("echo reply", reply)] {
            if len > ECHO_MAX_MESSAGE {
                return Err(DecodeError::TooLong {
                    what,
                    len: len.into(),
                    max: ECHO_MAX_MESSAGE.into(),
                });
            }
        }
        if flags & !(ECHO_PARK | ECHO_SPAN) != 0 {
            return Err(DecodeError::Unknown {
                what: "echo flags",
                value: flags.into(),
            });
        }
        if reserved != 0 || tail != 0 {
            return Err(DecodeError::Malformed("reserved echo header bytes set"));
        }
        if flags & ECHO_SPAN != 0 && offset > ECHO_MAX_SPAN {
            return Err(DecodeError::TooLong {
                what: "echo span",
                len: offset,
                max: ECHO_MAX_SPAN,
            });
        }
        Ok(EchoHeader {
            payload,
            reply,
            flags,
            offset,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn round_trips() {
        let h = EchoHeader {
            payload: 4096,
            reply: 16,
            flags: ECHO_PARK,
            offset: 1 << 33,
        };
        assert_eq!(EchoHeader::decode(&h.encode()), Ok(h));
    }

    #[test]
    fn bounds_are_enforced() {
        let too_long = EchoHeader {
            payload: ECHO_MAX_MESSAGE + 1,
            ..Default::default()
        };
        assert!(matches!(
            EchoHeader::decode(&too_long.encode()),
            Err(DecodeError::TooLong { .. })
        ));
        let span = EchoHeader {
            flags: ECHO_SPAN,
            offset: ECHO_MAX_SPAN + 1,
            ..Default::default()
        };
        assert!(EchoHeader::decode(&span.encode()).is_err());
        let mut raw = EchoHeader::default().encode();
        raw[8] = 4;
        assert!(EchoHeader::decode(&raw).is_err());
        raw[8] = 0;
        raw[30] = 1;
        assert!(EchoHeader::decode(&raw).is_err());
    }

    proptest! {
        #[test]
        fn decode_never_panics(raw in proptest::array::uniform32(any::<u8>())) {
            if let Ok(h) = EchoHeader::decode(&raw) {
                prop_assert_eq!(h.encode(), raw);
            }
        }
    }
}
