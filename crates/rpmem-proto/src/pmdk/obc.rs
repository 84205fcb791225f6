//! PMDK's ssh-channel ("out-of-band connection") messages.
//!
//! The daemon speaks first: as soon as it has read its configuration it
//! writes a 4-byte startup status (0 when ready, else an errno; see
//! [`encode_startup_status`]), and librpmem sends nothing before it has read
//! a 0. Then each request is a 12-byte header — type and total size, both
//! big-endian — followed by its body; each response is a 16-byte header —
//! status, type and total size — followed by a body of fixed size for its
//! type. A daemon that fails after the startup status writes one more 4-byte
//! status (an errno) before exiting.

use super::{read_attr, write_attr, PersistMethod, Provider, Status, ATTR_LEN};
use crate::codec::{Reader, Writer};
use crate::{DecodeError, PoolAttr};

/// Size of the startup status.
pub const STATUS_LEN: usize = 4;
/// Size of a request header (`struct rpmem_msg_hdr`).
pub const MSG_HDR_LEN: usize = 12;
/// Size of a response header (`struct rpmem_msg_hdr_resp`).
pub const RESP_HDR_LEN: usize = 16;
/// Size of the fields create and open share (`struct rpmem_msg_common`).
pub const COMMON_LEN: usize = 28;
/// Size of the in-band connection attributes (`struct rpmem_msg_ibc_attr`).
pub const IBC_LEN: usize = 28;
/// Longest pool descriptor accepted, its terminating NUL included (PATH_MAX).
pub const MAX_DESC: usize = 4096;
/// Size of a create request without its pool descriptor.
pub const CREATE_LEN: usize = MSG_HDR_LEN + COMMON_LEN + ATTR_LEN + 4;
/// Size of an open request without its pool descriptor.
pub const OPEN_LEN: usize = MSG_HDR_LEN + COMMON_LEN + 4;
/// Size of a close request.
pub const CLOSE_LEN: usize = MSG_HDR_LEN + 4;
/// Size of a set_attr request.
pub const SET_ATTR_LEN: usize = MSG_HDR_LEN + ATTR_LEN;
/// Largest request accepted (a create with the longest descriptor).
pub const MAX_REQUEST: usize = CREATE_LEN + MAX_DESC;
/// Size of a create response.
pub const CREATE_RESP_LEN: usize = RESP_HDR_LEN + IBC_LEN;
/// Size of an open response.
pub const OPEN_RESP_LEN: usize = RESP_HDR_LEN + IBC_LEN + ATTR_LEN;
/// Size of a close or set_attr response.
pub const BARE_RESP_LEN: usize = RESP_HDR_LEN;
/// Close flag: remove the pool the session created.
pub const CLOSE_REMOVE: u32 = 1;

wire_enum! {
/// Message types (`enum rpmem_msg_type`).
pub enum MsgType: u32 {
    /// Create request.
    Create = 1,
    /// Create response.
    CreateResp = 2,
    /// Open request.
    Open = 3,
    /// Open response.
    OpenResp = 4,
    /// Close request.
    Close = 5,
    /// Close response.
    CloseResp = 6,
    /// Set attributes request.
    SetAttr = 7,
    /// Set attributes response.
    SetAttrResp = 8,
}
}

/// The startup status as the daemon writes it: host byte order, which on
/// every machine PMDK supports is little-endian.
pub fn encode_startup_status(status: u32) -> [u8; STATUS_LEN] {
    status.to_le_bytes()
}

/// Reads a startup (or final) status.
pub fn decode_startup_status(raw: [u8; STATUS_LEN]) -> u32 {
    u32::from_le_bytes(raw)
}

/// Whether the first four bytes a client sends start a PMDK request: they
/// are the big-endian type of a request, so three zero bytes and a small odd
/// number. (Our own frames start with a little-endian length of at most
/// 64 KiB, whose fourth byte is always zero.)
pub fn is_request_start(first: [u8; 4]) -> bool {
    first[..3] == [0, 0, 0] && matches!(first[3], 1 | 3 | 5 | 7)
}

/// Validates a request header and returns the type and the request's total
/// size (header included), before anything is allocated for the body.
pub fn request_len(hdr: [u8; MSG_HDR_LEN]) -> Result<(MsgType, usize), DecodeError> {
    let mut r = Reader::new(&hdr);
    let ty = r.be_u32()?;
    let size = r.be_u64()?;
    let (ty, min, max) = match MsgType::from_wire(ty) {
        Some(t @ MsgType::Create) => (t, CREATE_LEN + 2, MAX_REQUEST),
        Some(t @ MsgType::Open) => (t, OPEN_LEN + 2, OPEN_LEN + MAX_DESC),
        Some(t @ MsgType::Close) => (t, CLOSE_LEN, CLOSE_LEN),
        Some(t @ MsgType::SetAttr) => (t, SET_ATTR_LEN, SET_ATTR_LEN),
        _ => {
            return Err(DecodeError::Unknown {
                what: "PMDK request type",
                value: ty.into(),
            })
        }
    };
    if size > max as u64 {
        return Err(DecodeError::TooLong {
            what: "PMDK request",
            len: size,
            max: max as u64,
        });
    }
    if size < min as u64 {
        return Err(DecodeError::Malformed("PMDK request shorter than its type"));
    }
    Ok((ty, size as usize))
}

/// The fields create and open requests share (`struct rpmem_msg_common`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Common {
    /// Protocol major version ([`super::PROTO_MAJOR`] from PMDK 1.12.1).
    pub major: u16,
    /// Protocol minor version.
    pub minor: u16,
    /// Size of the client's region: the pool must be at least this large.
    pub pool_size: u64,
    /// Lanes the client wants.
    pub nlanes: u32,
    /// Fabric provider, as its wire value (see [`Common::provider`]).
    pub provider: u32,
    /// Largest inline persist the client will send (its buffer size).
    pub buff_size: u64,
}

impl Common {
    /// A request for tests: PMDK 1.12.1's version, an 8 MiB pool, `nlanes`
    /// lanes over `sockets`, PMDK's 8 KiB inline buffer.
    #[cfg(any(test, feature = "fixtures"))]
    pub fn sample(nlanes: u32) -> Common {
        Common {
            major: super::PROTO_MAJOR,
            minor: super::PROTO_MINOR,
            pool_size: 8 << 20,
            nlanes,
            provider: Provider::Sockets as u32,
            buff_size: 8192,
        }
    }

    /// The provider, if the value names one.
    pub fn provider(&self) -> Option<Provider> {
        Provider::from_wire(self.provider)
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.be_u16(self.major);
        w.be_u16(self.minor);
        w.be_u64(self.pool_size);
        w.be_u32(self.nlanes);
        w.be_u32(self.provider);
        w.be_u64(self.buff_size);
    }

    fn read(r: &mut Reader<'_>) -> Result<Common, DecodeError> {
        Ok(Common {
            major: r.be_u16()?,
            minor: r.be_u16()?,
            pool_size: r.be_u64()?,
            nlanes: r.be_u32()?,
            provider: r.be_u32()?,
            buff_size: r.be_u64()?,
        })
    }
}

/// A request from PMDK's librpmem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create the pool of a pool set and open it.
    Create {
        /// Version, size, lanes, provider, inline buffer.
        common: Common,
        /// Attributes for the header; all zero means none (a pool without
        /// headers).
        attr: PoolAttr,
        /// The pool set name, relative to the daemon's poolset directory.
        pool_desc: String,
    },
    /// Open the pool of a pool set.
    Open {
        /// Version, size, lanes, provider, inline buffer.
        common: Common,
        /// The pool set name.
        pool_desc: String,
    },
    /// Close the pool and end the session.
    Close {
        /// [`CLOSE_REMOVE`] or 0; sent in the client's byte order.
        flags: u32,
    },
    /// Replace the attributes in the pool header.
    SetAttr {
        /// New attributes.
        attr: PoolAttr,
    },
}

fn write_desc(w: &mut Writer<'_>, desc: &str) {
    w.be_u32(desc.len() as u32 + 1);
    w.bytes(desc.as_bytes());
    w.u8(0);
}

/// A pool descriptor: big-endian length including the NUL, then the string,
/// which must fill the length exactly (at least one byte, no inner NUL).
fn read_desc(r: &mut Reader<'_>, room: usize) -> Result<String, DecodeError> {
    let len = r.be_u32()? as usize;
    if len != room {
        return Err(DecodeError::Malformed(
            "PMDK pool descriptor size does not match the message size",
        ));
    }
    if len < 2 {
        return Err(DecodeError::Malformed("PMDK pool descriptor is empty"));
    }
    let raw = r.take(len)?;
    let (nul, text) = raw.split_last().expect("len >= 2");
    if *nul != 0 || text.contains(&0) {
        return Err(DecodeError::Malformed(
            "PMDK pool descriptor is not one NUL-terminated string",
        ));
    }
    String::from_utf8(text.to_vec())
        .map_err(|_| DecodeError::Malformed("PMDK pool descriptor is not UTF-8"))
}

impl Request {
    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Request::Create { .. } => MsgType::Create,
            Request::Open { .. } => MsgType::Open,
            Request::Close { .. } => MsgType::Close,
            Request::SetAttr { .. } => MsgType::SetAttr,
        }
    }

    /// The complete message, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CREATE_LEN + 64);
        let mut w = Writer(&mut out);
        w.be_u32(self.msg_type() as u32);
        w.be_u64(0); // patched below
        match self {
            Request::Create {
                common,
                attr,
                pool_desc,
            } => {
                common.write(&mut w);
                write_attr(&mut w, attr);
                write_desc(&mut w, pool_desc);
            }
            Request::Open { common, pool_desc } => {
                common.write(&mut w);
                write_desc(&mut w, pool_desc);
            }
            Request::Close { flags } => w.u32(*flags),
            Request::SetAttr { attr } => write_attr(&mut w, attr),
        }
        let size = out.len() as u64;
        out[4..12].copy_from_slice(&size.to_be_bytes());
        out
    }

    /// Decodes one complete request (header included, nothing after it), as
    /// [`request_len`] sized it.
    pub fn decode(buf: &[u8]) -> Result<Request, DecodeError> {
        let hdr: [u8; MSG_HDR_LEN] = buf
            .get(..MSG_HDR_LEN)
            .ok_or_else(|| DecodeError::Truncated {
                needed: MSG_HDR_LEN - buf.len(),
            })?
            .try_into()
            .expect("sliced to the header size");
        let (ty, size) = request_len(hdr)?;
        if buf.len() < size {
            return Err(DecodeError::Truncated {
                needed: size - buf.len(),
            });
        }
        if buf.len() > size {
            return Err(DecodeError::Malformed("trailing bytes after message"));
        }
        let mut r = Reader::new(&buf[MSG_HDR_LEN..]);
        let req = match ty {
            MsgType::Create => {
                let common = Common::read(&mut r)?;
                let attr = read_attr(&mut r)?;
                let pool_desc = read_desc(&mut r, size - CREATE_LEN)?;
                Request::Create {
                    common,
                    attr,
                    pool_desc,
                }
            }
            MsgType::Open => {
                let common = Common::read(&mut r)?;
                let pool_desc = read_desc(&mut r, size - OPEN_LEN)?;
                Request::Open { common, pool_desc }
            }
            MsgType::Close => Request::Close { flags: r.u32()? },
            MsgType::SetAttr => Request::SetAttr {
                attr: read_attr(&mut r)?,
            },
            _ => unreachable!("request_len accepts only request types"),
        };
        r.finish()?;
        Ok(req)
    }
}

/// In-band connection attributes: where and how the client reaches the
/// daemon's fabric endpoint (`struct rpmem_msg_ibc_attr`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct IbcAttr {
    /// Port of the fabric listener (on the address ssh connected to).
    pub port: u32,
    /// [`PersistMethod`] as its wire value; 0 in failed responses.
    pub persist_method: u32,
    /// Remote key of the registered pool.
    pub rkey: u64,
    /// Address of the pool in the daemon: persist messages and RMA target
    /// `raddr + offset`.
    pub raddr: u64,
    /// Lanes granted. PMDK leaves this one field in host byte order.
    pub nlanes: u32,
}

impl IbcAttr {
    /// The persistency method, if the value names one.
    pub fn persist_method(&self) -> Option<PersistMethod> {
        PersistMethod::from_wire(self.persist_method)
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.be_u32(self.port);
        w.be_u32(self.persist_method);
        w.be_u64(self.rkey);
        w.be_u64(self.raddr);
        w.u32(self.nlanes);
    }

    fn read(r: &mut Reader<'_>) -> Result<IbcAttr, DecodeError> {
        Ok(IbcAttr {
            port: r.be_u32()?,
            persist_method: r.be_u32()?,
            rkey: r.be_u64()?,
            raddr: r.be_u64()?,
            nlanes: r.u32()?,
        })
    }
}

/// A response from PMDK's rpmemd. Failed responses have the same size as
/// successful ones, with zeroed connection attributes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Answer to [`Request::Create`].
    Create {
        /// Outcome.
        status: Status,
        /// Where to connect.
        ibc: IbcAttr,
    },
    /// Answer to [`Request::Open`].
    Open {
        /// Outcome.
        status: Status,
        /// Where to connect.
        ibc: IbcAttr,
        /// The attributes stored in the pool header.
        attr: PoolAttr,
    },
    /// Answer to [`Request::Close`].
    Close {
        /// Outcome.
        status: Status,
    },
    /// Answer to [`Request::SetAttr`].
    SetAttr {
        /// Outcome.
        status: Status,
    },
}

/// Validates a response header; returns the status, the type and the total
/// size, which PMDK fixes per type.
pub fn response_len(hdr: [u8; RESP_HDR_LEN]) -> Result<(Status, MsgType, usize), DecodeError> {
    let mut r = Reader::new(&hdr);
    let status = r.be_u32()?;
    let ty = r.be_u32()?;
    let size = r.be_u64()?;
    let (ty, want) = match MsgType::from_wire(ty) {
        Some(t @ MsgType::CreateResp) => (t, CREATE_RESP_LEN),
        Some(t @ MsgType::OpenResp) => (t, OPEN_RESP_LEN),
        Some(t @ (MsgType::CloseResp | MsgType::SetAttrResp)) => (t, BARE_RESP_LEN),
        _ => {
            return Err(DecodeError::Unknown {
                what: "PMDK response type",
                value: ty.into(),
            })
        }
    };
    if size != want as u64 {
        return Err(DecodeError::Malformed(
            "PMDK response size does not match its type",
        ));
    }
    let status = Status::from_wire(status).ok_or(DecodeError::Unknown {
        what: "PMDK status",
        value: status.into(),
    })?;
    Ok((status, ty, want))
}

impl Response {
    /// The outcome.
    pub fn status(&self) -> Status {
        match self {
            Response::Create { status, .. }
            | Response::Open { status, .. }
            | Response::Close { status }
            | Response::SetAttr { status } => *status,
        }
    }

    /// The message type.
    pub fn msg_type(&self) -> MsgType {
        match self {
            Response::Create { .. } => MsgType::CreateResp,
            Response::Open { .. } => MsgType::OpenResp,
            Response::Close { .. } => MsgType::CloseResp,
            Response::SetAttr { .. } => MsgType::SetAttrResp,
        }
    }

    /// The complete message, header included.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(OPEN_RESP_LEN);
        let mut w = Writer(&mut out);
        w.be_u32(self.status() as u32);
        w.be_u32(self.msg_type() as u32);
        w.be_u64(0); // patched below
        match self {
            Response::Create { ibc, .. } => ibc.write(&mut w),
            Response::Open { ibc, attr, .. } => {
                ibc.write(&mut w);
                write_attr(&mut w, attr);
            }
            Response::Close { .. } | Response::SetAttr { .. } => {}
        }
        let size = out.len() as u64;
        out[8..16].copy_from_slice(&size.to_be_bytes());
        out
    }

    /// Decodes one complete response (header included).
    pub fn decode(buf: &[u8]) -> Result<Response, DecodeError> {
        let hdr: [u8; RESP_HDR_LEN] = buf
            .get(..RESP_HDR_LEN)
            .ok_or_else(|| DecodeError::Truncated {
                needed: RESP_HDR_LEN - buf.len(),
            })?
            .try_into()
            .expect("sliced to the header size");
        let (status, ty, _) = response_len(hdr)?;
        let mut r = Reader::new(&buf[RESP_HDR_LEN..]);
        let resp = match ty {
            MsgType::CreateResp => Response::Create {
                status,
                ibc: IbcAttr::read(&mut r)?,
            },
            MsgType::OpenResp => Response::Open {
                status,
                ibc: IbcAttr::read(&mut r)?,
                attr: read_attr(&mut r)?,
            },
            MsgType::CloseResp => Response::Close { status },
            MsgType::SetAttrResp => Response::SetAttr { status },
            _ => unreachable!("response_len accepts only response types"),
        };
        r.finish()?;
        Ok(resp)
    }
}

/// Splits what a client wrote on the ssh channel into its requests; fails on
/// the first that does not decode or is cut short.
pub fn decode_requests(mut stream: &[u8]) -> Result<Vec<Request>, DecodeError> {
    let mut out = Vec::new();
    while !stream.is_empty() {
        let hdr = stream
            .get(..MSG_HDR_LEN)
            .ok_or_else(|| DecodeError::Truncated {
                needed: MSG_HDR_LEN - stream.len(),
            })?;
        let (_, size) = request_len(hdr.try_into().expect("sliced to the header size"))?;
        let msg = stream.get(..size).ok_or_else(|| DecodeError::Truncated {
            needed: size - stream.len(),
        })?;
        out.push(Request::decode(msg)?);
        stream = &stream[size..];
    }
    Ok(out)
}

/// Splits what a daemon wrote on the ssh channel into its startup status
/// and its responses (a final 4-byte failure status, if any, is left over
/// and returned as the third element).
pub fn decode_responses(stream: &[u8]) -> Result<(u32, Vec<Response>, Option<u32>), DecodeError> {
    let status = stream
        .get(..STATUS_LEN)
        .ok_or_else(|| DecodeError::Truncated {
            needed: STATUS_LEN - stream.len(),
        })?;
    let status = decode_startup_status(status.try_into().expect("sliced to the status size"));
    let mut rest = &stream[STATUS_LEN..];
    let mut out = Vec::new();
    while rest.len() > STATUS_LEN {
        let hdr = rest
            .get(..RESP_HDR_LEN)
            .ok_or_else(|| DecodeError::Truncated {
                needed: RESP_HDR_LEN - rest.len(),
            })?;
        let (_, _, size) = response_len(hdr.try_into().expect("sliced to the header size"))?;
        let msg = rest.get(..size).ok_or_else(|| DecodeError::Truncated {
            needed: size - rest.len(),
        })?;
        out.push(Response::decode(msg)?);
        rest = &rest[size..];
    }
    let last = match rest.len() {
        0 => None,
        STATUS_LEN => Some(decode_startup_status(rest.try_into().expect("4 bytes"))),
        n => {
            return Err(DecodeError::Truncated {
                needed: STATUS_LEN - n,
            })
        }
    };
    Ok((status, out, last))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn common() -> Common {
        Common::sample(4)
    }

    #[test]
    fn sizes_match_pmdks_packed_structs() {
        assert_eq!(CREATE_LEN, 148);
        assert_eq!(OPEN_LEN, 44);
        assert_eq!(CLOSE_LEN, 16);
        assert_eq!(SET_ATTR_LEN, 116);
        assert_eq!(CREATE_RESP_LEN, 44);
        assert_eq!(OPEN_RESP_LEN, 148);
        let open = Request::Open {
            common: common(),
            pool_desc: "a.set".into(),
        }
        .encode();
        assert_eq!(open.len(), OPEN_LEN + 6);
        assert_eq!(&open[..12], &[0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 50]);
        assert!(is_request_start(open[..4].try_into().unwrap()));
        assert_eq!(&open[open.len() - 10..], b"\0\0\0\x06a.set\0");
    }

    #[test]
    fn our_frames_never_look_like_pmdk_requests() {
        for len in 1..=crate::control::MAX_FRAME as u32 {
            assert!(!is_request_start(len.to_le_bytes()));
        }
    }

    #[test]
    fn bad_descriptors_are_refused() {
        let mut open = Request::Open {
            common: common(),
            pool_desc: "ab".into(),
        }
        .encode();
        let n = open.len();
        open[n - 1] = b'x';
        assert!(Request::decode(&open).is_err(), "no NUL");
        open[n - 1] = 0;
        open[n - 2] = 0;
        assert!(Request::decode(&open).is_err(), "inner NUL");
        open[n - 2] = b'b';
        open[n - 4] = 9;
        assert!(Request::decode(&open).is_err(), "size mismatch");
        let huge = [0, 0, 0, 1, 0, 0, 0, 0, 0xff, 0, 0, 0];
        assert!(matches!(
            request_len(huge),
            Err(DecodeError::TooLong { .. })
        ));
    }

    fn attr() -> impl Strategy<Value = PoolAttr> {
        (any::<[u8; 8]>(), any::<[u32; 4]>(), any::<[[u8; 16]; 5]>()).prop_map(|(s, n, u)| {
            PoolAttr {
                signature: s,
                major: n[0],
                compat_features: n[1],
                incompat_features: n[2],
                ro_compat_features: n[3],
                poolset_uuid: u[0],
                uuid: u[1],
                next_uuid: u[2],
                prev_uuid: u[3],
                user_flags: u[4],
            }
        })
    }

    fn request() -> impl Strategy<Value = Request> {
        let common = any::<(u16, u16, u64, u32, u32, u64)>().prop_map(|c| Common {
            major: c.0,
            minor: c.1,
            pool_size: c.2,
            nlanes: c.3,
            provider: c.4,
            buff_size: c.5,
        });
        let desc = "[a-zA-Z0-9./_-]{1,64}";
        prop_oneof![
            (common.clone(), attr(), desc).prop_map(|(common, attr, pool_desc)| {
                Request::Create {
                    common,
                    attr,
                    pool_desc,
                }
            }),
            (common, desc).prop_map(|(common, pool_desc)| Request::Open { common, pool_desc }),
            any::<u32>().prop_map(|flags| Request::Close { flags }),
            attr().prop_map(|attr| Request::SetAttr { attr }),
        ]
    }

    fn response() -> impl Strategy<Value = Response> {
        let status = (0u32..14).prop_map(|s| Status::from_wire(s).unwrap());
        let ibc = any::<(u32, u32, u64, u64, u32)>().prop_map(|i| IbcAttr {
            port: i.0,
            persist_method: i.1,
            rkey: i.2,
            raddr: i.3,
            nlanes: i.4,
        });
        prop_oneof![
            (status.clone(), ibc.clone())
                .prop_map(|(status, ibc)| Response::Create { status, ibc }),
            (status.clone(), ibc, attr()).prop_map(|(status, ibc, attr)| Response::Open {
                status,
                ibc,
                attr
            }),
            status.clone().prop_map(|status| Response::Close { status }),
            status.prop_map(|status| Response::SetAttr { status }),
        ]
    }

    proptest! {
        #[test]
        fn requests_round_trip(req in request()) {
            let bytes = req.encode();
            prop_assert_eq!(Request::decode(&bytes).unwrap(), req);
            let (_, size) = request_len(bytes[..MSG_HDR_LEN].try_into().unwrap()).unwrap();
            prop_assert_eq!(size, bytes.len());
        }

        #[test]
        fn responses_round_trip(resp in response()) {
            let bytes = resp.encode();
            prop_assert_eq!(Response::decode(&bytes).unwrap(), resp);
        }

        #[test]
        fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(r) = Request::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes.clone());
            }
            if let Ok(r) = Response::decode(&bytes) {
                prop_assert_eq!(r.encode(), bytes);
            }
        }

        #[test]
        fn mutated_messages_never_panic(
            req in request(),
            resp in response(),
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..4),
            cut in any::<usize>(),
        ) {
            for mut bytes in [req.encode(), resp.encode()] {
                for (i, v) in &flips {
                    let n = bytes.len();
                    bytes[i % n] ^= v;
                }
                let cut = cut % (bytes.len() + 1);
                for b in [&bytes[..], &bytes[..cut]] {
                    if let Ok(r) = Request::decode(b) {
                        prop_assert_eq!(r.encode(), b.to_vec());
                    }
                    if let Ok(r) = Response::decode(b) {
                        prop_assert_eq!(r.encode(), b.to_vec());
                    }
                }
            }
        }
    }
}
