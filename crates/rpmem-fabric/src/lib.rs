//! A libfabric binding for rpmem, loaded at run time.
//!
//! libfabric (`libfabric.so.1`) is opened with `dlopen` when [`Libfabric::load`]
//! is called, so programs using this crate start and work where it is absent;
//! the error then says so ([`Error::Load`], errno `ENOMEDIUM`). Only
//! connection-oriented endpoints (`FI_EP_MSG`) with `FI_MSG` and `FI_RMA` are
//! covered, which is what a replication lane needs:
//!
//! - [`Libfabric::getinfo`] lists what the providers offer for [`Hints`];
//! - a [`Fabric`] opened on one [`Info`] gives a [`Domain`] (memory
//!   registration, endpoints) and, on the listening side, a [`Listener`];
//! - the client makes an [`Endpoint`] with [`Domain::endpoint`] and
//!   [`Endpoint::connect`]s with private data; the server reads
//!   [`ConnRequest`]s from the listener, looks at their private data, and
//!   either [`Listener::reject`]s them or makes an endpoint with
//!   [`Domain::accept_endpoint`] and [`Endpoint::accept`]s;
//! - memory is registered as a [`MemoryRegion`]; its [`RemoteMemory`]
//!   (address, key, length) is what the peer needs to reach it with RMA;
//! - operations are posted with a caller-chosen token and complete through
//!   [`Endpoint::wait`] (spin briefly, then sleep in the kernel on the queues'
//!   file descriptors, up to a timeout).
//!
//! ```no_run
//! use rpmem_fabric::{Access, Hints, Libfabric};
//! # fn main() -> rpmem_fabric::Result<()> {
//! let lib = Libfabric::load()?;
//! let info = lib.getinfo(&Hints::connect("127.0.0.1", 7000).provider("tcp"))?.remove(0);
//! let domain = rpmem_fabric::Fabric::open(&info)?.domain()?;
//! let mr = domain.register(4096, Access::LOCAL)?;
//! let mut ep = domain.endpoint()?;
//! ep.connect(b"session secret", std::time::Duration::from_secs(5))?;
//! mr.write(0, b"hello")?;
//! ep.post_send(&mr, 0, 5, 1)?;
//! ep.wait(std::time::Duration::from_secs(5))?;
//! # Ok(()) }
//! ```

mod error;
mod fabric;
mod ffi;
mod sys;

pub use error::{Error, Result};
pub use fabric::{
    Access, Completion, ConnRequest, Domain, Endpoint, Fabric, Hints, Info, Libfabric, Listener,
    MemoryRegion, MrMode, RemoteMemory,
};
pub use sys::OpKind;
