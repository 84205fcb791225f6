//! The TCP transport: one connection per lane.
//!
//! A lane's connection opens with a `Hello` carrying the session secret and
//! the lane number; the target answers with an ack of tag 0. Requests then
//! go out as a header followed by their payload, read straight from the
//! initiator's region with one `sendmsg`; flushes are sent with `MSG_MORE`
//! so a burst of them shares segments. The target receives a relaxed
//! payload straight into pool memory and an 8-byte-atomic one through a
//! small staging buffer. Both sides poll before blocking (see
//! [`crate::spin`]).

mod initiator;
mod sys;
mod target;

pub use initiator::{TcpConnector, TcpLane};
pub use target::{TcpListener, STAGE_LEN};
