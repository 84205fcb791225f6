//! Which data transport a session uses, as carried on the control channel:
//! the initiator's choice in its create/open request, and for the libfabric
//! transport what the daemon answers so the lanes can reach the pool (the
//! provider, how persists are made durable, and the registered memory).

use crate::codec::{Reader, Writer};
use crate::DecodeError;

/// Longest libfabric provider name accepted.
pub const MAX_PROVIDER: usize = 64;
/// Most registered pieces of pool memory a fabric session may describe.
pub const MAX_PARTS: usize = 1024;

/// The transport the initiator asks the daemon to serve the lanes with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TransportChoice {
    /// Our TCP transport: one TCP connection per lane.
    #[default]
    Tcp,
    /// libfabric `FI_EP_MSG` endpoints of this provider, one per lane.
    Fabric {
        /// The libfabric provider (`verbs`, `tcp`, `sockets`).
        provider: String,
    },
}

/// How the initiator's fabric writes become durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersistMethod {
    /// General (GPSPM): the daemon makes each written range durable and
    /// answers.
    General,
    /// Appliance (APM): the initiator reads after its writes on the same
    /// connection; every part is persistent memory, so data that reached
    /// the target's memory is durable.
    Appliance,
}

/// Pool memory registered for RMA: pool offsets `offset..offset+len` are
/// reached at RMA address `addr` with `key`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RemotePart {
    /// First pool offset covered.
    pub offset: u64,
    /// Bytes covered.
    pub len: u64,
    /// RMA address of `offset`.
    pub addr: u64,
    /// Registration key.
    pub key: u64,
    /// Whether RMA writes are allowed (the pool header is read-only).
    pub writable: bool,
}

/// What a fabric session's lanes need, from the daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FabricSession {
    /// The provider the daemon listens with.
    pub provider: String,
    /// How persists become durable.
    pub persist: PersistMethod,
    /// Largest payload sent inside a request message.
    pub inline_max: u32,
    /// Receive buffers the daemon keeps posted per lane: the most requests
    /// a lane may have sent that the daemon has not yet taken.
    pub recv_slots: u32,
    /// Each lane's staging area (8-byte-atomic writes go there first):
    /// lane `i`'s starts at `stage.addr + i * stage.len`.
    pub stage: RemotePart,
    /// The pool's registered memory, ordered by offset.
    pub parts: Vec<RemotePart>,
}

impl TransportChoice {
    pub(crate) fn write(&self, w: &mut Writer<'_>) {
        match self {
            TransportChoice::Tcp => w.u8(0),
            TransportChoice::Fabric { provider } => {
                w.u8(1);
                w.str(provider);
            }
        }
    }

    pub(crate) fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        match r.u8()? {
            0 => Ok(TransportChoice::Tcp),
            1 => Ok(TransportChoice::Fabric {
                provider: r.str("provider name", MAX_PROVIDER)?,
            }),
            v => Err(DecodeError::Unknown {
                what: "transport",
                value: v.into(),
            }),
        }
    }
}

impl RemotePart {
    fn write(&self, w: &mut Writer<'_>) {
        w.u64(self.offset);
        w.u64(self.len);
        w.u64(self.addr);
        w.u64(self.key);
        w.u8(self.writable as u8);
    }

    fn read(r: &mut Reader<'_>) -> Result<Self, DecodeError> {
        Ok(RemotePart {
            offset: r.u64()?,
            len: r.u64()?,
            addr: r.u64()?,
            key: r.u64()?,
            writable: match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(DecodeError::Malformed("bad writable flag")),
            },
        })
    }
}

impl FabricSession {
    /// Encodes `Some`/`None` as the session answer's last field.
    pub(crate) fn write_opt(s: &Option<Box<FabricSession>>, w: &mut Writer<'_>) {
        let Some(s) = s else { return w.u8(0) };
        w.u8(1);
        w.str(&s.provider);
        w.u8(match s.persist {
            PersistMethod::General => 0,
            PersistMethod::Appliance => 1,
        });
        w.u32(s.inline_max);
        w.u32(s.recv_slots);
        s.stage.write(w);
        w.u32(s.parts.len() as u32);
        for p in &s.parts {
            p.write(w);
        }
    }

    pub(crate) fn read_opt(r: &mut Reader<'_>) -> Result<Option<Box<Self>>, DecodeError> {
        match r.u8()? {
            0 => return Ok(None),
            1 => {}
            v => {
                return Err(DecodeError::Unknown {
                    what: "session transport",
                    value: v.into(),
                })
            }
        }
        let provider = r.str("provider name", MAX_PROVIDER)?;
        let persist = match r.u8()? {
            0 => PersistMethod::General,
            1 => PersistMethod::Appliance,
            v => {
                return Err(DecodeError::Unknown {
                    what: "persistency method",
                    value: v.into(),
                })
            }
        };
        let inline_max = r.u32()?;
        let recv_slots = r.u32()?;
        let stage = RemotePart::read(r)?;
        let n = r.u32()? as usize;
        if n > MAX_PARTS {
            return Err(DecodeError::TooLong {
                what: "registered part list",
                len: n as u64,
                max: MAX_PARTS as u64,
            });
        }
        let parts = (0..n)
            .map(|_| RemotePart::read(r))
            .collect::<Result<_, _>>()?;
        Ok(Some(Box::new(FabricSession {
            provider,
            persist,
            inline_max,
            recv_slots,
            stage,
            parts,
        })))
    }
}
