//! PMDK's fabric-level messages: what travels on each lane's `FI_EP_MSG`
//! connection beside the client's RMA writes and reads.
//!
//! The connections carry no handshake data (PMDK connects and accepts with
//! no private data), so nothing authenticates them. On a lane the client:
//! - **writes** data with RMA writes to `raddr + offset` (the pool registered
//!   under the rkey the open/create response gave);
//! - **persists** under GPSPM by sending a [`Persist`] message naming the
//!   range, which the daemon makes durable before it sends a [`PersistResp`]
//!   back. A small persist may instead carry its bytes inline
//!   ([`Mode::Send`]), up to the `buff_size` the client announced, and the
//!   daemon copies them into the pool and makes them durable. A deep persist
//!   ([`Mode::Deep`]) always goes through the daemon;
//! - **persists** under APM by reading [`RAW_READ_LEN`] bytes at `raddr`
//!   after its writes: the read completes only after the writes have reached
//!   the target's memory, and the daemon's CPU takes no part;
//! - **reads** the pool with RMA reads; there is no read message.
//!
//! Every field is in the sender's byte order (little-endian on the machines
//! PMDK supports); unlike the ssh-channel messages, nothing is converted.

use crate::codec::{Reader, Writer};
use crate::DecodeError;

/// Size of a persist message without inline data (`struct rpmem_msg_persist`).
pub const PERSIST_HDR_LEN: usize = 24;
/// Size of a persist response (`struct rpmem_msg_persist_resp`).
pub const PERSIST_RESP_LEN: usize = 8;
/// The inline buffer PMDK's librpmem announces: two pool headers, 8 KiB.
pub const DEFAULT_BUFF_SIZE: u64 = 8192;
/// Length of the read-after-write an APM client does to make writes durable.
pub const RAW_READ_LEN: usize = 8;
/// Flag bit: the client waits for a completion of this operation's RMA write
/// (it never reaches the daemon's decisions, but is carried as sent).
pub const FLAG_COMPLETION: u32 = 4;
const MODE_MASK: u32 = 3;

/// What the daemon does with a persist message: the two low bits of its flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// The data was RMA-written; make the range durable.
    Write = 0,
    /// As [`Mode::Write`], then the deepest flush the target has.
    Deep = 1,
    /// The data is inline in the message; copy it in and make it durable.
    Send = 2,
}

/// A persist request on a lane.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Persist {
    /// [`Mode`] in the low two bits, plus [`FLAG_COMPLETION`].
    pub flags: u32,
    /// The lane the client sent it on.
    pub lane: u32,
    /// Address in the daemon's mapping: `raddr + offset`.
    pub addr: u64,
    /// Length of the range.
    pub size: u64,
    /// The range's bytes for [`Mode::Send`]; empty otherwise.
    pub data: Vec<u8>,
}

impl Persist {
    /// The mode its flags select.
    pub fn mode(&self) -> Mode {
        mode_of(self.flags).expect("validated by decode or built by the caller")
    }

    /// The message as sent.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(PERSIST_HDR_LEN + self.data.len());
        let mut w = Writer(&mut out);
        w.u32(self.flags);
        w.u32(self.lane);
        w.u64(self.addr);
        w.u64(self.size);
        w.bytes(&self.data);
        out
    }

    /// Decodes one received message. `buff_size` is the largest inline
    /// payload the session allows; an inline persist must carry exactly
    /// `size` bytes, any other exactly none.
    pub fn decode(buf: &[u8], buff_size: u64) -> Result<Persist, DecodeError> {
        let mut r = Reader::new(buf);
        let flags = r.u32()?;
        let lane = r.u32()?;
        let addr = r.u64()?;
        let size = r.u64()?;
        let mode = mode_of(flags)?;
        let inline = if mode == Mode::Send {
            if size > buff_size {
                return Err(DecodeError::TooLong {
                    what: "PMDK inline persist",
                    len: size,
                    max: buff_size,
                });
            }
            size as usize
        } else {
            0
        };
        let data = r.take(inline)?.to_vec();
        r.finish()?;
        Ok(Persist {
            flags,
            lane,
            addr,
            size,
            data,
        })
    }

    /// The offset of the range in a pool announced at `raddr` of `pool_len`
    /// bytes, or `None` when the range starts before or ends past the pool.
    pub fn offset_in(&self, raddr: u64, pool_len: u64) -> Option<u64> {
        // Wrapping: a region registered past a header is announced at an
        // address below its own, which may wrap below zero.
        let off = self.addr.wrapping_sub(raddr);
        let end = off.checked_add(self.size)?;
        (end <= pool_len).then_some(off)
    }
}

fn mode_of(flags: u32) -> Result<Mode, DecodeError> {
    if flags & !(MODE_MASK | FLAG_COMPLETION) != 0 {
        return Err(DecodeError::Malformed("unknown PMDK persist flags"));
    }
    match flags & MODE_MASK {
        0 => Ok(Mode::Write),
        1 => Ok(Mode::Deep),
        2 => Ok(Mode::Send),
        m => Err(DecodeError::Unknown {
            what: "PMDK persist mode",
            value: m.into(),
        }),
    }
}

/// The daemon's answer to a [`Persist`]: the range is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PersistResp {
    /// Not set by PMDK's rpmemd (whatever its buffer held); ignored.
    pub flags: u32,
    /// The lane of the persist it answers.
    pub lane: u32,
}

impl PersistResp {
    /// The message as sent.
    pub fn encode(&self) -> [u8; PERSIST_RESP_LEN] {
        let mut out = [0u8; PERSIST_RESP_LEN];
        out[..4].copy_from_slice(&self.flags.to_le_bytes());
        out[4..].copy_from_slice(&self.lane.to_le_bytes());
        out
    }

    /// Decodes one received response.
    pub fn decode(buf: &[u8]) -> Result<PersistResp, DecodeError> {
        let mut r = Reader::new(buf);
        let resp = PersistResp {
            flags: r.u32()?,
            lane: r.u32()?,
        };
        r.finish()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn inline_persist_layout() {
        let p = Persist {
            flags: Mode::Send as u32,
            lane: 3,
            addr: 0x7f00_0000_1000,
            size: 4,
            data: b"abcd".to_vec(),
        };
        let b = p.encode();
        assert_eq!(b.len(), PERSIST_HDR_LEN + 4);
        assert_eq!(&b[..8], &[2, 0, 0, 0, 3, 0, 0, 0]);
        assert_eq!(&b[8..16], &0x7f00_0000_1000u64.to_le_bytes());
        assert_eq!(&b[24..], b"abcd");
        assert_eq!(Persist::decode(&b, DEFAULT_BUFF_SIZE).unwrap(), p);
        assert_eq!(p.offset_in(0x7f00_0000_0000, 0x2000), Some(0x1000));
        assert_eq!(p.offset_in(0x7f00_0000_0000, 0x1003), None);
        assert_eq!(p.offset_in(0x7f00_0000_2000, 0x9000), None);
    }

    #[test]
    fn bad_persists_are_refused() {
        let mut p = Persist {
            flags: Mode::Write as u32 | FLAG_COMPLETION,
            lane: 0,
            addr: 0,
            size: 1 << 20,
            data: vec![],
        };
        assert!(
            Persist::decode(&p.encode(), 64).is_ok(),
            "RMA persist: no limit"
        );
        p.flags = 3;
        assert!(Persist::decode(&p.encode(), 64).is_err(), "mode 3");
        p.flags = 8;
        assert!(Persist::decode(&p.encode(), 64).is_err(), "unknown bit");
        p.flags = Mode::Send as u32;
        assert!(matches!(
            Persist::decode(&p.encode(), 64),
            Err(DecodeError::TooLong { .. })
        ));
        p.size = 8;
        assert!(matches!(
            Persist::decode(&p.encode(), 64),
            Err(DecodeError::Truncated { needed: 8 })
        ));
        assert!(p.offset_in(1, u64::MAX).is_none());
        p.addr = u64::MAX;
        assert!(p.offset_in(0, u64::MAX).is_none(), "end overflows");
    }

    fn persist() -> impl Strategy<Value = Persist> {
        (
            0u32..3,
            any::<bool>(),
            any::<(u32, u64)>(),
            proptest::collection::vec(any::<u8>(), 0..100),
            any::<u64>(),
        )
            .prop_map(|(mode, completion, (lane, addr), data, size)| {
                let flags = mode | if completion { FLAG_COMPLETION } else { 0 };
                if mode == Mode::Send as u32 {
                    Persist {
                        flags,
                        lane,
                        addr,
                        size: data.len() as u64,
                        data,
                    }
                } else {
                    Persist {
                        flags,
                        lane,
                        addr,
                        size,
                        data: vec![],
                    }
                }
            })
    }

    proptest! {
        #[test]
        fn persists_round_trip(p in persist()) {
            prop_assert_eq!(Persist::decode(&p.encode(), 100).unwrap(), p);
        }

        #[test]
        fn responses_round_trip(flags in any::<u32>(), lane in any::<u32>()) {
            let r = PersistResp { flags, lane };
            prop_assert_eq!(PersistResp::decode(&r.encode()).unwrap(), r);
        }

        #[test]
        fn random_and_mutated_bytes_never_panic(
            p in persist(),
            junk in proptest::collection::vec(any::<u8>(), 0..200),
            flip in any::<(usize, u8)>(),
            buff in any::<u64>(),
        ) {
            let mut m = p.encode();
            let n = m.len();
            m[flip.0 % n] ^= flip.1;
            for b in [&junk[..], &m[..], &m[..flip.0 % n]] {
                if let Ok(d) = Persist::decode(b, buff) {
                    prop_assert_eq!(d.encode(), b.to_vec());
                    let _ = d.offset_in(buff, buff);
                }
                if let Ok(d) = PersistResp::decode(b) {
                    prop_assert_eq!(&d.encode()[..], b);
                }
            }
        }
    }
}
