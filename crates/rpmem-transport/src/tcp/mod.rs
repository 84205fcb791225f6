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

use std::fmt::Debug;
use std::io;
use std::net::{Shutdown, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

pub use initiator::{TcpConnector, TcpLane};
pub use target::{TcpListener, TcpTargetLane, HELLO_TIMEOUT, SPARE_UNAUTHENTICATED, STAGE_LEN};

/// A connected stream socket a lane runs on: TCP between hosts, or a Unix
/// socket pair (the engine's and the daemon's tests drive lanes over one).
pub trait StreamSocket: AsRawFd + Send + Debug + 'static {
    /// `shutdown(2)`.
    fn shutdown(&self, how: Shutdown) -> io::Result<()>;
    /// Sets the receive and send time limits (`None`: wait forever).
    fn set_timeouts(&self, limit: Option<Duration>) -> io::Result<()>;
}

macro_rules! stream_socket {
    ($($t:ty),*) => {$(
        impl StreamSocket for $t {
            fn shutdown(&self, how: Shutdown) -> io::Result<()> {
                <$t>::shutdown(self, how)
            }

            fn set_timeouts(&self, limit: Option<Duration>) -> io::Result<()> {
                self.set_read_timeout(limit)?;
                self.set_write_timeout(limit)
            }
        }
    )*};
}

stream_socket!(TcpStream, UnixStream);
