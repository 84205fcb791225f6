//! The data side of a session: a transport admits the lanes, each lane is
//! served by its own [`LaneSession`] on the pool.

use std::io;
use std::sync::{Arc, Mutex};

use rpmem_proto::control::SECRET_LEN;
use rpmem_storage::Pool;
use rpmem_transport::target::{AllowedPeers, LaneAdmission, RunningListener, TargetListener};

use crate::lane_session::LaneSession;

/// The running data side of a session.
pub struct DataServer {
    pool: Arc<Pool>,
    running: Box<dyn RunningListener>,
    unreported: Arc<Mutex<Vec<String>>>,
}

/// What a stopped data side leaves.
pub struct Stopped {
    /// The pool, still locked; None if something still referenced it.
    pub pool: Option<Pool>,
    /// Durability failures no drain or persist reported, one per lane that
    /// ended with one: the close of the pool reports them.
    pub unreported: Vec<String>,
}

impl DataServer {
    /// Starts admitting the `nlanes` lanes of the session authenticated by
    /// `secret`, connecting from `peers`, through `listener`.
    pub fn start(
        listener: Box<dyn TargetListener>,
        pool: Arc<Pool>,
        secret: [u8; SECRET_LEN],
        nlanes: u32,
        peers: AllowedPeers,
    ) -> io::Result<DataServer> {
        let p2 = Arc::clone(&pool);
        let unreported = Arc::new(Mutex::new(Vec::new()));
        let u2 = Arc::clone(&unreported);
        let running = listener.start(
            LaneAdmission::new(secret, nlanes, peers),
            Arc::new(move |lane| {
                if let Some(why) = LaneSession::new(&p2).serve(lane) {
                    u2.lock().unwrap_or_else(|e| e.into_inner()).push(why);
                }
            }),
        )?;
        Ok(DataServer {
            pool,
            running,
            unreported,
        })
    }

    /// The open pool (for set_attr).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Stops admitting, ends every lane, waits for the lane threads (each
    /// makes its pending ranges durable on the way out) and returns the
    /// pool, still locked, once nothing else references it, with the
    /// durability failures no answer reported.
    pub fn stop(self) -> Stopped {
        self.running.stop();
        let unreported =
            std::mem::take(&mut *self.unreported.lock().unwrap_or_else(|e| e.into_inner()));
        Stopped {
            pool: Arc::try_unwrap(self.pool).ok(),
            unreported,
        }
    }
}
