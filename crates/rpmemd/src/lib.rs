//! The transport-agnostic data side of rpmemd, as a library so that its
//! tests can drive a lane without a process: [`lane_session`] is what a
//! lane's requests do to the pool, [`data_server`] runs one per admitted
//! lane of a transport's listener.

#![warn(missing_docs)]

pub mod data_server;
pub mod lane_session;
pub mod pool_memory;
