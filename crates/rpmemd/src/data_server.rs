//! The data side of a session: a transport admits the lanes, each lane is
//! served by its own [`LaneSession`] on the pool.

use std::io;
use std::sync::Arc;

use rpmem_proto::control::SECRET_LEN;
use rpmem_storage::Pool;
use rpmem_transport::target::{AllowedPeers, LaneAdmission, RunningListener, TargetListener};

use crate::lane_session::LaneSession;

/// The running data side of a session.
pub struct DataServer {
    pool: Arc<Pool>,
    running: Box<dyn RunningListener>,
}

impl DataServer {
    /// Starts admitting the `nlanes` lanes of the session authenticated by
    /// `secret`, connecting from `peers`, through `listener`.
    pub fn start(
        listener: Box<dyn TargetListener>,
        pool: Pool,
        secret: [u8; SECRET_LEN],
        nlanes: u32,
        peers: AllowedPeers,
    ) -> io::Result<DataServer> {
        let pool = Arc::new(pool);
        let p2 = Arc::clone(&pool);
        let running = listener.start(
            LaneAdmission::new(secret, nlanes, peers),
            Arc::new(move |lane| LaneSession::new(&p2).serve(lane)),
        )?;
        Ok(DataServer { pool, running })
    }

    /// The open pool (for set_attr).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stops admitting, ends every lane, waits for the lane threads (each
    /// makes its pending ranges durable on the way out) and returns the
    /// pool, still locked, once nothing else references it.
    pub fn stop(self) -> Option<Pool> {
        self.running.stop();
        Arc::try_unwrap(self.pool).ok()
    }
}
