//! Data channel: one TCP connection per lane.
//!
//! A connection starts with a [`Hello`] that proves it belongs to the session;
//! the daemon answers with an [`Ack`] (tag 0). Then the initiator sends
//! [`RequestHeader`]s, each followed by `length` payload bytes for the
//! operations that carry data. Every operation except [`Op::Flush`] is answered
//! by one [`Ack`]; a successful [`Op::Read`] ack is followed by `length` bytes.

use crate::codec::{Reader, Writer};
use crate::control::SECRET_LEN;
use crate::{DecodeError, Status};

/// Magic that opens every data connection.
pub const HELLO_MAGIC: [u8; 4] = *b"RPMD";
/// Encoded size of [`Hello`].
pub const HELLO_LEN: usize = 48;
/// Encoded size of [`RequestHeader`].
pub const HEADER_LEN: usize = 32;
/// Encoded size of [`Ack`].
pub const ACK_LEN: usize = 16;

/// Flag: the transfer need not be atomic at 8-byte granularity.
pub const FLAG_RELAXED: u8 = 1;

/// librpmem's flag for persist and flush (`RPMEM_PERSIST_RELAXED`,
/// `RPMEM_FLUSH_RELAXED`): the caller does not need 8-byte atomicity.
pub const API_RELAXED: u32 = 1;

/// The wire flags for librpmem API flags, or `None` if `api` has a bit the
/// API does not define. The two sets are separate on purpose: API values
/// are fixed by librpmem's header, wire values by this protocol.
pub fn wire_flags(api: u32) -> Option<u8> {
    if api & !API_RELAXED != 0 {
        return None;
    }
    Some(if api & API_RELAXED != 0 {
        FLAG_RELAXED
    } else {
        0
    })
}

/// Tag of the ack that answers a [`Hello`].
pub const HELLO_TAG: u64 = 0;

/// The tags of one lane's requests: 1, 2, 3, … ([`HELLO_TAG`] is never
/// reused, not even after wrapping).
#[derive(Debug, Clone)]
pub struct Tags(u64);

impl Default for Tags {
    fn default() -> Self {
        Tags(HELLO_TAG + 1)
    }
}

impl Tags {
    /// The next request's tag.
    pub fn next_tag(&mut self) -> u64 {
        let t = self.0;
        self.0 = match self.0.wrapping_add(1) {
            HELLO_TAG => HELLO_TAG + 1,
            n => n,
        };
        t
    }
}

/// First message on a data connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Protocol version.
    pub version: u16,
    /// Lane this connection serves.
    pub lane: u32,
    /// The session secret from the control channel.
    pub secret: [u8; SECRET_LEN],
}

impl Hello {
    /// Encodes to the fixed wire size.
    pub fn encode(&self) -> [u8; HELLO_LEN] {
        let mut v = Vec::with_capacity(HELLO_LEN);
        let mut w = Writer(&mut v);
        w.bytes(&HELLO_MAGIC);
        w.u16(self.version);
        w.u16(0);
        w.u32(self.lane);
        w.bytes(&[0u8; 4]);
        w.bytes(&self.secret);
        v.try_into().expect("hello is fixed-size")
    }

    /// Decodes the fixed wire form.
    pub fn decode(raw: &[u8; HELLO_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(raw);
        if r.array::<4>()? != HELLO_MAGIC {
            return Err(DecodeError::Malformed("bad hello magic"));
        }
        let version = r.u16()?;
        if r.u16()? != 0 {
            return Err(DecodeError::Malformed("reserved hello bits set"));
        }
        let lane = r.u32()?;
        if r.u32()? != 0 {
            return Err(DecodeError::Malformed("reserved hello bits set"));
        }
        let secret = r.array()?;
        r.finish()?;
        Ok(Hello {
            version,
            lane,
            secret,
        })
    }
}

wire_enum! {
/// Operation carried by a [`RequestHeader`].
pub enum Op: u8 {
    /// Write the payload; no reply. Durable only after a later drain or persist.
    Flush = 1,
    /// Write the payload and make it (and every earlier flush) durable; reply.
    Persist = 2,
    /// Like persist, to the deepest durability domain the target offers.
    DeepPersist = 3,
    /// Make every earlier flush on this lane durable; reply. No payload.
    Drain = 4,
    /// Reply with `length` bytes from `offset`. No payload.
    Read = 5,
}
}

impl Op {
    /// Whether `length` payload bytes follow the header.
    pub fn has_payload(self) -> bool {
        matches!(self, Op::Flush | Op::Persist | Op::DeepPersist)
    }

    /// Whether the daemon answers with an [`Ack`].
    pub fn has_reply(self) -> bool {
        !matches!(self, Op::Flush)
    }
}

/// Header of one data-channel request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestHeader {
    /// What to do.
    pub op: Op,
    /// [`FLAG_RELAXED`] or 0.
    pub flags: u8,
    /// Offset in the remote pool.
    pub offset: u64,
    /// Length in bytes. The receiver bounds it by the pool size before use.
    pub length: u64,
    /// Echoed in the ack, to match replies to requests.
    pub tag: u64,
}

impl RequestHeader {
    /// Encodes to the fixed wire size.
    pub fn encode(&self) -> [u8; HEADER_LEN] {
        let mut out = [0u8; HEADER_LEN];
        out[0] = self.op as u8;
        out[1] = self.flags;
        out[8..16].copy_from_slice(&self.offset.to_le_bytes());
        out[16..24].copy_from_slice(&self.length.to_le_bytes());
        out[24..32].copy_from_slice(&self.tag.to_le_bytes());
        out
    }

    /// The tag of a header that may not decode, to answer it with a refusal.
    pub fn tag_of(raw: &[u8; HEADER_LEN]) -> u64 {
        let mut tag = [0u8; 8];
        tag.copy_from_slice(&raw[HEADER_LEN - 8..]);
        u64::from_le_bytes(tag)
    }

    /// Decodes the fixed wire form; unknown ops and flag bits are errors.
    pub fn decode(raw: &[u8; HEADER_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(raw);
        let v = r.u8()?;
        let op = Op::from_wire(v).ok_or(DecodeError::Unknown {
            what: "opcode",
            value: v.into(),
        })?;
        let flags = r.u8()?;
        if flags & !FLAG_RELAXED != 0 {
            return Err(DecodeError::Unknown {
                what: "flags",
                value: flags.into(),
            });
        }
        if r.array::<6>()? != [0u8; 6] {
            return Err(DecodeError::Malformed("reserved header bytes set"));
        }
        let h = RequestHeader {
            op,
            flags,
            offset: r.u64()?,
            length: r.u64()?,
            tag: r.u64()?,
        };
        r.finish()?;
        Ok(h)
    }
}

/// The daemon's answer to one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ack {
    /// Tag of the request answered.
    pub tag: u64,
    /// Outcome.
    pub status: Status,
}

impl Ack {
    /// The status, if this ack answers the request tagged `tag` (a lane's
    /// answers come in the order of its requests).
    pub fn answering(&self, tag: u64) -> Result<Status, DecodeError> {
        if self.tag == tag {
            Ok(self.status)
        } else {
            Err(DecodeError::Unexpected {
                what: "acknowledgement",
                to: "another request",
            })
        }
    }

    /// Encodes to the fixed wire size.
    pub fn encode(&self) -> [u8; ACK_LEN] {
        let mut out = [0u8; ACK_LEN];
        out[..8].copy_from_slice(&self.tag.to_le_bytes());
        out[8..12].copy_from_slice(&(self.status as u32).to_le_bytes());
        out
    }

    /// Decodes the fixed wire form.
    pub fn decode(raw: &[u8; ACK_LEN]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(raw);
        let tag = r.u64()?;
        let raw_status = r.u32()?;
        let status = Status::from_wire(raw_status).ok_or(DecodeError::Unknown {
            what: "status",
            value: raw_status.into(),
        })?;
        if r.u32()? != 0 {
            return Err(DecodeError::Malformed("reserved ack bytes set"));
        }
        r.finish()?;
        Ok(Ack { tag, status })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn fixed_messages_round_trip() {
        let h = Hello {
            version: 1,
            lane: 7,
            secret: [3; SECRET_LEN],
        };
        assert_eq!(Hello::decode(&h.encode()).unwrap(), h);
        for op in [Op::Flush, Op::Persist, Op::DeepPersist, Op::Drain, Op::Read] {
            let r = RequestHeader {
                op,
                flags: FLAG_RELAXED,
                offset: 4096,
                length: u64::MAX,
                tag: 42,
            };
            assert_eq!(RequestHeader::decode(&r.encode()).unwrap(), r);
        }
        let a = Ack {
            tag: 9,
            status: Status::BadRequest,
        };
        assert_eq!(Ack::decode(&a.encode()).unwrap(), a);
    }

    #[test]
    fn unknown_flags_and_ops_are_refused() {
        let mut raw = RequestHeader {
            op: Op::Persist,
            flags: 0,
            offset: 0,
            length: 1,
            tag: 1,
        }
        .encode();
        raw[1] = 2;
        assert!(RequestHeader::decode(&raw).is_err());
        raw[1] = 0;
        raw[0] = 9;
        assert!(RequestHeader::decode(&raw).is_err());
        let mut hello = Hello {
            version: 1,
            lane: 0,
            secret: [0; SECRET_LEN],
        }
        .encode();
        hello[0] = b'X';
        assert!(Hello::decode(&hello).is_err());
    }

    #[test]
    fn api_flags_map_explicitly() {
        assert_eq!(wire_flags(0), Some(0));
        assert_eq!(wire_flags(API_RELAXED), Some(FLAG_RELAXED));
        assert_eq!(wire_flags(2), None);
        assert_eq!(wire_flags(u32::MAX), None);
    }

    #[test]
    fn tags_skip_the_hello_tag_and_acks_match_them() {
        let mut t = Tags::default();
        assert_eq!((t.next_tag(), t.next_tag()), (1, 2));
        let mut t = Tags(u64::MAX);
        assert_eq!((t.next_tag(), t.next_tag()), (u64::MAX, 1));
        let a = Ack {
            tag: 5,
            status: Status::Fatal,
        };
        assert_eq!(a.answering(5), Ok(Status::Fatal));
        assert!(a.answering(4).is_err());
        let h = RequestHeader {
            op: Op::Read,
            flags: 0,
            offset: 1,
            length: 2,
            tag: 77,
        };
        let mut raw = h.encode();
        raw[0] = 0xee;
        assert_eq!(RequestHeader::tag_of(&raw), 77);
    }

    proptest! {
        #[test]
        fn fixed_decoders_never_panic(h in any::<[u8; 32]>(), a in any::<[u8; 16]>(), x in any::<[u8; 16]>(), s in any::<[u8; 32]>()) {
            let _ = RequestHeader::decode(&h);
            let _ = Ack::decode(&a);
            let mut hello = [0u8; HELLO_LEN];
            hello[..16].copy_from_slice(&x);
            hello[16..].copy_from_slice(&s);
            let _ = Hello::decode(&hello);
            // With the magic right, the rest is still checked, never trusted.
            hello[..4].copy_from_slice(&HELLO_MAGIC);
            if let Ok(d) = Hello::decode(&hello) {
                prop_assert_eq!(d.encode(), hello);
            }
        }
    }
}
