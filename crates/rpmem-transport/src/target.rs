//! The target's side of the boundary: what rpmemd's session logic drives.
//!
//! The daemon decides what a request means for the pool (bounds, header
//! protection, pending ranges, durability, the answer). A transport admits
//! lanes, yields their requests in order, brings each request's payload
//! into pool memory (a TCP lane receives it; with RMA it is already there)
//! and carries the answers and read data back.

use std::fmt;
use std::io;
use std::net::IpAddr;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

pub use ipnet::IpNet;
use rpmem_proto::control::SECRET_LEN;
use rpmem_proto::data::{Hello, RequestHeader};
use rpmem_proto::{Status, PROTO_VERSION};

use crate::Result;

/// The pool's memory, as a transport reaches it.
///
/// # Safety
/// An implementation promises that every span [`PoolMemory::spans`] passes
/// to its callback is valid for reads and writes for the duration of that
/// call, lies inside memory the implementation owns, and is never
/// referenced by a Rust reference (so that concurrent lanes writing it
/// through system calls or volatile stores is sound).
pub unsafe trait PoolMemory: Sync {
    /// Size of the pool in bytes.
    fn size(&self) -> u64;

    /// Calls `f` with the memory of each piece of `offset..offset+len`, in
    /// order (a pool of several parts is not contiguous). Fails if the
    /// range is not inside the pool.
    fn spans(
        &self,
        offset: u64,
        len: u64,
        f: &mut dyn FnMut(NonNull<[u8]>) -> io::Result<()>,
    ) -> io::Result<()>;

    /// Copies `data` to `offset` with one 8-byte store for every aligned
    /// 8-byte word, so that no such word is ever seen half-written.
    fn write_atomic(&self, offset: u64, data: &[u8]) -> io::Result<()>;
}

/// What a lane brought next.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// A well-formed request; its payload, if any, is not yet received.
    Request(RequestHeader),
    /// A request that cannot be decoded; `tag` is as much of it as could be
    /// read, for the refusal.
    Malformed {
        /// The tag the request carried.
        tag: u64,
        /// Why it was refused.
        why: String,
    },
    /// The initiator ended the lane between requests.
    Closed,
}

/// One admitted lane on the target.
pub trait TargetLane: Send {
    /// The lane's number in the session.
    fn index(&self) -> u32;

    /// Waits for the next request.
    fn next(&mut self) -> Result<Incoming>;

    /// Brings the payload of `request` (just returned by
    /// [`TargetLane::next`], its range checked against the pool) into `mem`:
    /// straight into pool memory when `relaxed`, else so that no aligned
    /// 8-byte word is written in two pieces.
    fn receive_payload(
        &mut self,
        mem: &dyn PoolMemory,
        request: &RequestHeader,
        relaxed: bool,
    ) -> Result<()>;

    /// Answers the request tagged `tag`.
    fn answer(&mut self, tag: u64, status: Status) -> Result<()>;

    /// Sends `len` bytes at `offset` of `mem` (after a successful answer to
    /// a read).
    fn send_read(&mut self, mem: &dyn PoolMemory, offset: u64, len: u64) -> Result<()>;

    /// Ends the lane after a failure: the initiator sees the connection end.
    fn shutdown(&mut self);
}

/// Runs one admitted lane to its end; called on the lane's own thread.
pub type LaneHandler = Arc<dyn Fn(&mut dyn TargetLane) + Send + Sync>;

/// The addresses a session's lanes may come from: the initiator's own (for
/// rpmemd, the client address of the ssh session) and the networks the
/// target's administrator added. A connection from anywhere else is closed
/// before anything is read from it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedPeers {
    nets: Vec<IpNet>,
}

impl AllowedPeers {
    /// Only `peer`.
    pub fn only(peer: IpAddr) -> AllowedPeers {
        AllowedPeers {
            nets: vec![IpNet::from(peer.to_canonical())],
        }
    }

    /// Every address (for tests and tools that have no session peer).
    pub fn any() -> AllowedPeers {
        AllowedPeers {
            nets: vec![IpNet::V4(Default::default()), IpNet::V6(Default::default())],
        }
    }

    /// These peers and `nets` too.
    pub fn and(mut self, nets: &[IpNet]) -> AllowedPeers {
        self.nets
            .extend(nets.iter().map(|n| match n.addr().to_canonical() {
                IpAddr::V4(a) if n.addr().is_ipv6() => {
                    // ::ffff:a.b.c.d/n names IPv4 addresses a.b.c.d/(n - 96).
                    IpNet::new(IpAddr::V4(a), n.prefix_len().saturating_sub(96)).unwrap_or(*n)
                }
                _ => *n,
            }));
        self
    }

    /// Parses one entry of an allow list: an address (`10.0.0.5`, `fd00::1`)
    /// or a network in CIDR notation (`10.0.0.0/8`, `fd00::/16`).
    pub fn parse_entry(s: &str) -> Result<IpNet, String> {
        let s = s.trim();
        if let Ok(a) = s.parse::<IpAddr>() {
            return Ok(IpNet::from(a));
        }
        s.parse::<IpNet>().map(|n| n.trunc()).map_err(|_| {
            format!("'{s}' is neither an IP address nor a network (ADDRESS/PREFIX-LENGTH)")
        })
    }

    /// Whether a connection from `peer` may become a lane. IPv4 peers seen
    /// on an IPv6 socket (`::ffff:a.b.c.d`) count as IPv4.
    pub fn allows(&self, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        self.nets.iter().any(|n| n.contains(&peer))
    }
}

impl fmt::Display for AllowedPeers {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, n) in self.nets.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            if n.prefix_len() == n.max_prefix_len() {
                write!(f, "{}", n.addr())?;
            } else {
                write!(f, "{n}")?;
            }
        }
        Ok(())
    }
}

/// Who may open the lanes of a session: the holders of its secret, each
/// lane number once at a time, connecting from an allowed address.
#[derive(Debug)]
pub struct LaneAdmission {
    secret: [u8; SECRET_LEN],
    connected: Vec<AtomicBool>,
    peers: AllowedPeers,
}

/// A lane number taken by one connection; freed on drop.
#[derive(Debug)]
pub struct AdmittedLane {
    admission: Arc<LaneAdmission>,
    index: u32,
}

impl AdmittedLane {
    /// The lane's number.
    pub fn index(&self) -> u32 {
        self.index
    }
}

impl Drop for AdmittedLane {
    fn drop(&mut self) {
        self.admission.connected[self.index as usize].store(false, Ordering::SeqCst);
    }
}

/// Compares in time independent of where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl LaneAdmission {
    /// Admission for a session of `nlanes` lanes authenticated by `secret`,
    /// connecting from `peers`.
    pub fn new(secret: [u8; SECRET_LEN], nlanes: u32, peers: AllowedPeers) -> Arc<LaneAdmission> {
        Arc::new(LaneAdmission {
            secret,
            connected: (0..nlanes).map(|_| AtomicBool::new(false)).collect(),
            peers,
        })
    }

    /// The addresses lanes may connect from. A transport checks a
    /// connection against them before it reads anything from it.
    pub fn peers(&self) -> &AllowedPeers {
        &self.peers
    }

    /// Lanes in the session.
    pub fn nlanes(&self) -> u32 {
        self.connected.len() as u32
    }

    /// Admits the lane a [`Hello`] asks for, or says with which status and
    /// why it is refused.
    pub fn admit(self: &Arc<Self>, hello: &Hello) -> Result<AdmittedLane, (Status, String)> {
        if !ct_eq(&hello.secret, &self.secret) {
            return Err((Status::Unauthenticated, "wrong session secret".into()));
        }
        if hello.version != PROTO_VERSION {
            return Err((
                Status::BadProtocol,
                format!("protocol version {}", hello.version),
            ));
        }
        let index = hello.lane;
        let Some(slot) = self.connected.get(index as usize) else {
            return Err((
                Status::BadNlanes,
                format!("lane {index} of {}", self.nlanes()),
            ));
        };
        if slot
            .compare_exchange(false, true, Ordering::SeqCst, Ordering::SeqCst)
            .is_err()
        {
            return Err((
                Status::BadNlanes,
                format!("lane {index} is already connected"),
            ));
        }
        Ok(AdmittedLane {
            admission: Arc::clone(self),
            index,
        })
    }
}

/// Accepts the lanes of one session for one transport.
pub trait TargetListener: Send {
    /// The transport's name, for logs.
    fn name(&self) -> &'static str;

    /// Starts admitting lanes with `admission`; each admitted lane runs
    /// `handler` on a thread of its own.
    fn start(
        self: Box<Self>,
        admission: Arc<LaneAdmission>,
        handler: LaneHandler,
    ) -> io::Result<Box<dyn RunningListener>>;
}

/// A listener admitting lanes.
pub trait RunningListener: Send {
    /// Stops admitting, ends every lane and waits until every handler has
    /// returned. Afterwards the listener holds no reference to the handler.
    fn stop(self: Box<Self>);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hello(lane: u32, secret: u8) -> Hello {
        Hello {
            version: PROTO_VERSION,
            lane,
            secret: [secret; SECRET_LEN],
        }
    }

    #[test]
    fn admits_each_lane_once_with_the_secret() {
        let a = LaneAdmission::new([7; SECRET_LEN], 2, AllowedPeers::any());
        let l0 = a.admit(&hello(0, 7)).unwrap();
        assert_eq!(l0.index(), 0);
        assert_eq!(a.admit(&hello(0, 7)).unwrap_err().0, Status::BadNlanes);
        assert_eq!(a.admit(&hello(2, 7)).unwrap_err().0, Status::BadNlanes);
        assert_eq!(
            a.admit(&hello(1, 8)).unwrap_err().0,
            Status::Unauthenticated
        );
        let mut old = hello(1, 7);
        old.version = PROTO_VERSION + 1;
        assert_eq!(a.admit(&old).unwrap_err().0, Status::BadProtocol);
        drop(l0);
        assert!(a.admit(&hello(0, 7)).is_ok());
    }

    #[test]
    fn allowed_peers_match_addresses_and_networks() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let only = AllowedPeers::only(ip("127.0.0.1"));
        assert!(only.allows(ip("127.0.0.1")));
        assert!(only.allows(ip("::ffff:127.0.0.1")));
        assert!(!only.allows(ip("127.0.0.2")));
        assert!(!only.allows(ip("::1")));
        let nets: Vec<IpNet> = [
            "10.1.0.0/16",
            "fd00::7",
            "::ffff:192.168.0.0/112",
            "10.9.9.9/24",
        ]
        .iter()
        .map(|s| AllowedPeers::parse_entry(s).unwrap())
        .collect();
        let wide = only.and(&nets);
        for yes in [
            "127.0.0.1",
            "10.1.200.3",
            "fd00::7",
            "192.168.44.1",
            "10.9.9.200",
        ] {
            assert!(wide.allows(ip(yes)), "{yes}");
        }
        for no in ["10.2.0.1", "fd00::8", "192.169.0.1", "11.0.0.1"] {
            assert!(!wide.allows(ip(no)), "{no}");
        }
        assert_eq!(
            wide.to_string(),
            "127.0.0.1, 10.1.0.0/16, fd00::7, 192.168.0.0/16, 10.9.9.0/24"
        );
        for bad in [
            "",
            "host",
            "10.0.0.0/33",
            "10.0.0.1/x",
            "1.2.3",
            "fd00::/129",
        ] {
            assert!(AllowedPeers::parse_entry(bad).is_err(), "{bad}");
        }
        let any = AllowedPeers::any();
        assert!(any.allows(ip("8.8.8.8")) && any.allows(ip("2001:db8::1")));
    }
}
