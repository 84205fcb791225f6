//! The libfabric transport: one `FI_EP_MSG` endpoint per lane, through the
//! runtime-loaded binding of `rpmem-fabric`.
//!
//! A lane connects with its [`rpmem_proto::data::Hello`] (session secret,
//! lane number) as the connection request's private data; the daemon
//! refuses a request that does not prove the secret, so such a peer never
//! reaches the pool. The daemon registers the pool's memory (the header,
//! if any, for reads only) and a staging area per lane, and describes them
//! in its control-channel answer ([`rpmem_proto::transport::FabricSession`]).
//!
//! Requests are messages: a [`rpmem_proto::data::RequestHeader`], followed by
//! the payload when it is small ([`INLINE_MAX`]). A larger payload is
//! written by RMA first, straight into the pool for a relaxed transfer, or
//! into the lane's staging area for an 8-byte-atomic one (the daemon then
//! copies it with 8-byte stores); the provider delivers the message only
//! after those writes (`FI_ORDER_SAW`). The daemon answers persist and drain
//! with an [`rpmem_proto::data::Ack`]; flushes are not answered. Reads are
//! RMA reads. With the appliance method a relaxed persist is RMA writes
//! followed by an RMA read on the same endpoint, which completes only once
//! the writes reached the pool (`FI_ORDER_RAW`), with no message to the
//! daemon.

mod initiator;
mod target;

pub use initiator::FabricConnector;
pub use target::{FabricListener, FabricOptions, StablePool};

use rpmem_proto::data::HEADER_LEN;

/// Largest payload carried inside a request message.
pub const INLINE_MAX: usize = 4096;
/// Receive buffers the daemon keeps posted per lane.
pub const RECV_SLOTS: usize = 16;
/// Size of one receive buffer: a header and an inline payload.
pub const SLOT_LEN: usize = HEADER_LEN + INLINE_MAX;
/// Size of each lane's staging area on the daemon.
pub const STAGE_LEN: usize = 256 << 10;

/// How long a lane of `provider` busy-polls before sleeping: `spin` for
/// verbs (the NIC moves the data; polling its completion queue is what
/// RDMA lanes do), none for the software providers, which move data on
/// their own progress thread that a polling lane would compete with for the
/// CPU (measured on 2 cores: 12 µs per round trip over `tcp` without
/// polling, 200 µs polling 100 µs, 4 ms polling 1 ms).
fn lane_spin(provider: &str, spin: std::time::Duration) -> std::time::Duration {
    if provider == "verbs" {
        spin
    } else {
        std::time::Duration::ZERO
    }
}

/// Turns a binding error on lane `lane` while doing `what` into the
/// transport's words.
fn lane_error(lane: u32, what: &str, e: rpmem_fabric::Error) -> crate::TransportError {
    use crate::TransportError as T;
    use rpmem_fabric::Error as E;
    match e {
        E::Timeout(_) => T::Failed(format!(
            "lane {lane}: the target did not answer in time ({what})"
        )),
        E::Disconnected(why) => {
            T::Closed(format!("lane {lane}: the connection ended ({what}): {why}"))
        }
        E::InvalidArgument(m) => T::Invalid(format!("lane {lane}: {m}")),
        e => T::Failed(format!("lane {lane}: {what}: {e}")),
    }
}
