//! Control channel: requests and responses carried over the ssh session.
//!
//! A frame is a little-endian `u32` body length followed by the body; the body
//! starts with a one-byte kind. [`MAX_FRAME`] bounds every body.

use crate::attr::PoolAttr;
use crate::codec::{Reader, Writer};
use crate::transport::{FabricSession, TransportChoice};
use crate::{DecodeError, Status, PROTO_VERSION};

/// Largest control frame body either side accepts.
pub const MAX_FRAME: usize = 64 * 1024;
/// Longest pool set name accepted (PATH_MAX).
pub const MAX_NAME: usize = 4096;
/// Longest error message accepted.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Length of the per-session secret that data connections must present.
pub const SECRET_LEN: usize = 32;

/// What a create and an open request both ask for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolRequest {
    /// The initiator's protocol version.
    pub version: u16,
    /// Pool set file name, relative to the daemon's poolset directory.
    pub pool_set: String,
    /// Size of the initiator's local region.
    pub pool_size: u64,
    /// Lanes wanted.
    pub nlanes: u32,
    /// The data transport wanted.
    pub transport: TransportChoice,
}

impl PoolRequest {
    /// A request in this protocol's version ([`PROTO_VERSION`]), for lanes
    /// over our TCP transport.
    pub fn new(pool_set: impl Into<String>, pool_size: u64, nlanes: u32) -> PoolRequest {
        PoolRequest {
            version: PROTO_VERSION,
            pool_set: pool_set.into(),
            pool_size,
            nlanes,
            transport: TransportChoice::Tcp,
        }
    }

    /// The same request, for lanes over `transport`.
    pub fn over(mut self, transport: TransportChoice) -> PoolRequest {
        self.transport = transport;
        self
    }

    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.version);
        w.str(&self.pool_set);
        w.u64(self.pool_size);
        w.u32(self.nlanes);
        self.transport.write(w);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(PoolRequest {
            version: r.u16()?,
            pool_set: r.str("pool set name", MAX_NAME)?,
            pool_size: r.u64()?,
            nlanes: r.u32()?,
            transport: TransportChoice::read(r)?,
        })
    }
}

/// A request from the initiator to the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Create a pool from a pool set file and open it.
    Create {
        /// The pool and the session wanted.
        pool: PoolRequest,
        /// Attributes to store in the header; `None` for a pool without headers.
        attr: Option<PoolAttr>,
    },
    /// Open an existing pool.
    Open {
        /// The pool and the session wanted.
        pool: PoolRequest,
    },
    /// Overwrite the attributes in the pool header.
    SetAttr {
        /// New attributes.
        attr: PoolAttr,
    },
    /// Close the pool and end the session.
    Close,
}

/// What the daemon reports once a pool is created or opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Session {
    /// The daemon's protocol version.
    pub version: u16,
    /// Lanes granted: at most the lanes asked for.
    pub nlanes: u32,
    /// Usable size of the remote pool.
    pub remote_size: u64,
    /// Whether the first 4096 bytes hold the pool header.
    pub has_header: bool,
    /// Stored attributes (zero for a pool without headers).
    pub attr: PoolAttr,
    /// IP address the daemon listens on for data connections.
    pub addr: String,
    /// TCP port of the data listener.
    pub port: u16,
    /// Secret every data connection of this session must present.
    pub secret: [u8; SECRET_LEN],
    /// For a libfabric session, what its lanes need (`None`: TCP; `addr`
    /// and `port` are then the TCP listener's, else the fabric listener's).
    pub fabric: Option<Box<FabricSession>>,
}

/// A response from the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Response {
    /// Create or Open succeeded.
    Opened(Session),
    /// SetAttr or Close succeeded.
    Ok,
    /// The request failed.
    Error {
        /// Why, as a protocol status.
        status: Status,
        /// A human-readable explanation.
        message: String,
    },
}

const REQ_CREATE: u8 = 1;
const REQ_OPEN: u8 = 2;
const REQ_SET_ATTR: u8 = 3;
const REQ_CLOSE: u8 = 4;
const RESP_OPENED: u8 = 0x81;
const RESP_OK: u8 = 0x82;
const RESP_ERROR: u8 = 0x83;

/// Validates a frame's length prefix before anything is allocated for it.
pub fn frame_len(prefix: [u8; 4]) -> Result<usize, DecodeError> {
    let len = u32::from_le_bytes(prefix) as usize;
    if len == 0 {
        return Err(DecodeError::Malformed("empty frame"));
    }
    if len > MAX_FRAME {
        return Err(DecodeError::TooLong {
            what: "control frame",
            len: len as u64,
            max: MAX_FRAME as u64,
        });
    }
    Ok(len)
}

/// How reading a frame from a byte stream failed.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The stream ended inside a frame; `in_body`: after its length prefix.
    #[error("control channel closed mid-frame")]
    Cut {
        /// Whether the length prefix had been read.
        in_body: bool,
    },
    /// The length prefix is not acceptable.
    #[error(transparent)]
    Bad(#[from] DecodeError),
    /// Reading failed.
    #[error("reading the control channel: {0}")]
    Io(#[source] std::io::Error),
}

/// Reads one frame from `input` and returns its body (without the length
/// prefix), for [`Request::decode`] or [`Response::decode`]. `Ok(None)`:
/// the stream ended cleanly before a frame. The length is checked with
/// [`frame_len`] before anything is allocated.
pub fn read_frame(input: &mut impl std::io::Read) -> Result<Option<Vec<u8>>, FrameError> {
    let mut prefix = [0u8; 4];
    let mut got = 0;
    while got < prefix.len() {
        match input.read(&mut prefix[got..]) {
            Ok(0) if got == 0 => return Ok(None),
            Ok(0) => return Err(FrameError::Cut { in_body: false }),
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FrameError::Io(e)),
        }
    }
    read_body(prefix, input).map(Some)
}

/// Reads the body of the frame whose length prefix `prefix` has been read
/// (e.g. to tell the protocol by the first bytes).
pub fn read_body(prefix: [u8; 4], input: &mut impl std::io::Read) -> Result<Vec<u8>, FrameError> {
    let mut body = vec![0u8; frame_len(prefix)?];
    input.read_exact(&mut body).map_err(|e| {
        if e.kind() == std::io::ErrorKind::UnexpectedEof {
            FrameError::Cut { in_body: true }
        } else {
            FrameError::Io(e)
        }
    })?;
    Ok(body)
}

/// What a legal response means for the request it answers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// Create or open succeeded: the session to join.
    Opened(Session),
    /// Set-attributes or close succeeded.
    Done,
    /// The daemon refused the request.
    Refused {
        /// Why, as a protocol status.
        status: Status,
        /// The daemon's explanation.
        message: String,
    },
}

/// Frames `body` as it is: its length prefix, then its bytes, whatever they
/// say (tests use it to send malformed requests).
pub fn encode_frame(body: &[u8]) -> Vec<u8> {
    frame(|w| w.bytes(body))
}

fn frame(body: impl FnOnce(&mut Writer<'_>)) -> Vec<u8> {
    let mut out = vec![0u8; 4];
    body(&mut Writer(&mut out));
    let len = (out.len() - 4) as u32;
    out[..4].copy_from_slice(&len.to_le_bytes());
    out
}

impl Request {
    /// The request's name, for messages.
    pub fn name(&self) -> &'static str {
        match self {
            Request::Create { .. } => "create",
            Request::Open { .. } => "open",
            Request::SetAttr { .. } => "set_attr",
            Request::Close => "close",
        }
    }

    /// Whether this request opens a pool: the first request of a session
    /// must, and no later one may.
    pub fn opens_pool(&self) -> bool {
        self.pool().is_some()
    }

    /// What a create or open request asks for; `None` for the others.
    pub fn pool(&self) -> Option<&PoolRequest> {
        match self {
            Request::Create { pool, .. } | Request::Open { pool } => Some(pool),
            Request::SetAttr { .. } | Request::Close => None,
        }
    }

    /// The legal answers: create and open are answered by `Opened` or
    /// `Error`, set-attributes and close by `Ok` or `Error`. Any other
    /// response is a protocol violation.
    pub fn answer(&self, resp: Response) -> Result<Answer, DecodeError> {
        match (self.opens_pool(), resp) {
            (_, Response::Error { status, message }) => Ok(Answer::Refused { status, message }),
            (true, Response::Opened(s)) => Ok(Answer::Opened(s)),
            (false, Response::Ok) => Ok(Answer::Done),
            _ => Err(DecodeError::Unexpected {
                what: "response",
                to: self.name(),
            }),
        }
    }

    /// Encodes the request as a complete frame (length prefix included).
    pub fn encode(&self) -> Vec<u8> {
        frame(|w| match self {
            Request::Create { pool, attr } => {
                w.u8(REQ_CREATE);
                pool.write(w);
                match attr {
                    Some(a) => {
                        w.u8(1);
                        w.bytes(&a.to_bytes());
                    }
                    None => w.u8(0),
                }
            }
            Request::Open { pool } => {
                w.u8(REQ_OPEN);
                pool.write(w);
            }
            Request::SetAttr { attr } => {
                w.u8(REQ_SET_ATTR);
                w.bytes(&attr.to_bytes());
            }
            Request::Close => w.u8(REQ_CLOSE),
        })
    }

    /// Decodes a frame body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let req = match r.u8()? {
            REQ_CREATE => Request::Create {
                pool: PoolRequest::read(&mut r)?,
                attr: match r.u8()? {
                    0 => None,
                    1 => Some(PoolAttr::read(&mut r)?),
                    _ => return Err(DecodeError::Malformed("bad attr presence flag")),
                },
            },
            REQ_OPEN => Request::Open {
                pool: PoolRequest::read(&mut r)?,
            },
            REQ_SET_ATTR => Request::SetAttr {
                attr: PoolAttr::read(&mut r)?,
            },
            REQ_CLOSE => Request::Close,
            k => {
                return Err(DecodeError::Unknown {
                    what: "request kind",
                    value: k.into(),
                })
            }
        };
        r.finish()?;
        Ok(req)
    }
}

impl Response {
    /// Encodes the response as a complete frame (length prefix included).
    pub fn encode(&self) -> Vec<u8> {
        frame(|w| match self {
            Response::Opened(s) => {
                w.u8(RESP_OPENED);
                w.u16(s.version);
                w.u32(s.nlanes);
                w.u64(s.remote_size);
                w.u8(s.has_header.into());
                w.bytes(&s.attr.to_bytes());
                w.str(&s.addr);
                w.u16(s.port);
                w.bytes(&s.secret);
                FabricSession::write_opt(&s.fabric, w);
            }
            Response::Ok => w.u8(RESP_OK),
            Response::Error { status, message } => {
                w.u8(RESP_ERROR);
                w.u32(*status as u32);
                // Messages are ours; still never exceed what the peer accepts.
                let mut end = message.len().min(MAX_MESSAGE);
                while !message.is_char_boundary(end) {
                    end -= 1;
                }
                w.str(&message[..end]);
            }
        })
    }

    /// Decodes a frame body (without the length prefix).
    pub fn decode(body: &[u8]) -> Result<Self, DecodeError> {
        let mut r = Reader::new(body);
        let resp = match r.u8()? {
            RESP_OPENED => Response::Opened(Session {
                version: r.u16()?,
                nlanes: r.u32()?,
                remote_size: r.u64()?,
                has_header: match r.u8()? {
                    0 => false,
                    1 => true,
                    _ => return Err(DecodeError::Malformed("bad has_header flag")),
                },
                attr: PoolAttr::read(&mut r)?,
                addr: r.str("address", 256)?,
                port: r.u16()?,
                secret: r.array()?,
                fabric: FabricSession::read_opt(&mut r)?,
            }),
            RESP_OK => Response::Ok,
            RESP_ERROR => {
                let raw = r.u32()?;
                let status = Status::from_wire(raw).ok_or(DecodeError::Unknown {
                    what: "status",
                    value: raw.into(),
                })?;
                Response::Error {
                    status,
                    message: r.str("error message", MAX_MESSAGE)?,
                }
            }
            k => {
                return Err(DecodeError::Unknown {
                    what: "response kind",
                    value: k.into(),
                })
            }
        };
        r.finish()?;
        Ok(resp)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::{PersistMethod, RemotePart, MAX_PARTS};
    use proptest::prelude::*;

    fn body(frame: &[u8]) -> &[u8] {
        let len = frame_len(frame[..4].try_into().unwrap()).unwrap();
        assert_eq!(len, frame.len() - 4);
        &frame[4..]
    }

    #[test]
    fn frames_are_read_whole_or_refused() {
        let f = Request::Close.encode();
        let mut two = [f.clone(), f.clone()].concat();
        let mut input = &two[..];
        for _ in 0..2 {
            let b = read_frame(&mut input).unwrap().unwrap();
            assert_eq!(Request::decode(&b).unwrap(), Request::Close);
        }
        assert!(read_frame(&mut input).unwrap().is_none());
        two.truncate(f.len() + 2);
        let mut input = &two[f.len()..];
        assert!(matches!(
            read_frame(&mut input),
            Err(FrameError::Cut { in_body: false })
        ));
        let mut input = &f[..f.len() - 1];
        assert!(matches!(
            read_frame(&mut input),
            Err(FrameError::Cut { in_body: true })
        ));
        for bad in [[0u8, 0, 0, 0], [0xff, 0xff, 0xff, 0x7f]] {
            assert!(matches!(read_frame(&mut &bad[..]), Err(FrameError::Bad(_))));
        }
        // Any body frames as the encoders frame theirs.
        assert_eq!(encode_frame(&f[4..]), f);
        let raw = encode_frame(b"\x55 not a request");
        let body = read_frame(&mut &raw[..]).unwrap().unwrap();
        assert_eq!(body, b"\x55 not a request");
        assert!(Request::decode(&body).is_err());
    }

    #[test]
    fn only_legal_responses_answer_a_request() {
        let open = Request::Open {
            pool: PoolRequest::new("a", 1, 1),
        };
        let refused = Response::Error {
            status: Status::Busy,
            message: "m".into(),
        };
        for req in [
            &open,
            &Request::Close,
            &Request::SetAttr {
                attr: PoolAttr::default(),
            },
        ] {
            assert!(matches!(
                req.answer(refused.clone()),
                Ok(Answer::Refused {
                    status: Status::Busy,
                    ..
                })
            ));
        }
        assert_eq!(
            open.answer(Response::Ok),
            Err(DecodeError::Unexpected {
                what: "response",
                to: "open"
            })
        );
        assert_eq!(Request::Close.answer(Response::Ok), Ok(Answer::Done));
        assert!(open.opens_pool() && !Request::Close.opens_pool());
    }

    fn fabric_session() -> FabricSession {
        let part = |offset, writable| RemotePart {
            offset,
            len: 1 << 20,
            addr: 0x7f00_0000_0000 + offset,
            key: 42,
            writable,
        };
        FabricSession {
            provider: "tcp".into(),
            persist: PersistMethod::Appliance,
            inline_max: 4096,
            recv_slots: 16,
            stage: part(0, true),
            parts: vec![part(0, false), part(4096, true)],
        }
    }

    #[test]
    fn too_many_parts_are_refused() {
        let mut s = fabric_session();
        s.parts = vec![s.parts[0]; MAX_PARTS + 1];
        let mut v = Vec::new();
        FabricSession::write_opt(&Some(Box::new(s)), &mut Writer(&mut v));
        assert!(matches!(
            FabricSession::read_opt(&mut Reader::new(&v)),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn requests_round_trip() {
        let reqs = [
            Request::Create {
                pool: PoolRequest::new("a/b.set", 1 << 30, 1024),
                attr: Some(PoolAttr {
                    major: 3,
                    ..Default::default()
                }),
            },
            Request::Create {
                pool: PoolRequest::new("x.set", 8192, 1),
                attr: None,
            },
            Request::Open {
                pool: PoolRequest::new("x.set", 8192, 4),
            },
            Request::Create {
                pool: PoolRequest::new("a/b.set", 1 << 30, 1024).over(TransportChoice::Fabric {
                    provider: "verbs".into(),
                }),
                attr: None,
            },
            Request::SetAttr {
                attr: PoolAttr::default(),
            },
            Request::Close,
        ];
        for req in reqs {
            assert_eq!(Request::decode(body(&req.encode())).unwrap(), req);
        }
    }

    #[test]
    fn responses_round_trip() {
        let resps = [
            Response::Opened(Session {
                version: 1,
                nlanes: 4,
                remote_size: 1 << 26,
                has_header: true,
                attr: PoolAttr::default(),
                addr: "127.0.0.1".into(),
                port: 40000,
                secret: [9; SECRET_LEN],
                fabric: None,
            }),
            Response::Opened(Session {
                version: 1,
                nlanes: 2,
                remote_size: 1 << 26,
                has_header: false,
                attr: PoolAttr::default(),
                addr: "10.0.0.1".into(),
                port: 7471,
                secret: [3; SECRET_LEN],
                fabric: Some(Box::new(fabric_session())),
            }),
            Response::Ok,
            Response::Error {
                status: Status::Busy,
                message: "pool busy".into(),
            },
        ];
        for resp in resps {
            assert_eq!(Response::decode(body(&resp.encode())).unwrap(), resp);
        }
    }

    #[test]
    fn oversized_and_empty_frames_are_refused() {
        assert!(frame_len(((MAX_FRAME + 1) as u32).to_le_bytes()).is_err());
        assert!(frame_len(0u32.to_le_bytes()).is_err());
        assert!(frame_len(u32::MAX.to_le_bytes()).is_err());
    }

    #[test]
    fn long_name_is_refused_before_allocation() {
        let mut b = vec![REQ_OPEN, 1, 0];
        b.extend_from_slice(&u32::MAX.to_le_bytes());
        assert!(matches!(
            Request::decode(&b),
            Err(DecodeError::TooLong { .. })
        ));
    }

    #[test]
    fn trailing_bytes_are_refused() {
        let mut f = Request::Close.encode();
        f.push(0);
        assert_eq!(
            Request::decode(&f[4..]),
            Err(DecodeError::Malformed("trailing bytes after message"))
        );
    }

    proptest! {
        #[test]
        fn decoders_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = Request::decode(&bytes);
            let _ = Response::decode(&bytes);
        }

        #[test]
        fn mutated_frames_decode_or_fail_cleanly(which in 0usize..5, at in any::<usize>(), byte in any::<u8>(), cut in any::<usize>()) {
            let frames = [
                Request::Create { pool: PoolRequest::new("a.set", 1 << 20, 4), attr: Some(PoolAttr::default()) }.encode(),
                Request::Open { pool: PoolRequest::new("p.set", 1 << 20, 2) }.encode(),
                Request::SetAttr { attr: PoolAttr::default() }.encode(),
                Response::Opened(Session { version: 1, nlanes: 2, remote_size: 1 << 20, has_header: false, attr: PoolAttr::default(), addr: "127.0.0.1".into(), port: 1, secret: [7; SECRET_LEN], fabric: Some(Box::new(fabric_session())) }).encode(),
                Response::Error { status: Status::Busy, message: "busy".into() }.encode(),
            ];
            let mut body = frames[which][4..].to_vec();
            let i = at % body.len();
            body[i] = byte;
            body.truncate(body.len() - cut % 3);
            if let Ok(r) = Request::decode(&body) {
                prop_assert_eq!(&r.encode()[4..], &body[..]);
            }
            if let Ok(r) = Response::decode(&body) {
                prop_assert_eq!(&r.encode()[4..], &body[..]);
            }
        }

        #[test]
        fn every_truncation_is_an_error(cut in 0usize..64) {
            let f = Request::Open { pool: PoolRequest::new("p.set", 1 << 20, 2) }.encode();
            let b = &f[4..];
            if cut < b.len() {
                prop_assert!(Request::decode(&b[..cut]).is_err());
            }
        }
    }
}
