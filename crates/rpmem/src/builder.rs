//! [`PoolBuilder`]: everything about reaching a pool, with the librpmem
//! environment as the defaults.

use std::time::Duration;

use rpmem_proto::PoolAttr;

use crate::config::Config;
use crate::error::Result;
use crate::region::Pool;
use crate::MIN_POOL;

/// How lanes move data to the target (`RPMEM_TRANSPORT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Transport {
    /// libfabric with verbs where a verbs device exists, else [`Transport::Tcp`]
    /// (`auto`, the default).
    Auto,
    /// Our TCP protocol: one TCP connection per lane to the address of the
    /// ssh session (`tcp`).
    Tcp,
    /// libfabric only (`fabric`), with the provider
    /// [`PoolBuilder::fabric_provider`] names or else the best one offered.
    Fabric,
}

/// Settings for creating or opening a remote pool; made by [`Pool::builder`].
///
/// Every setting starts from the environment librpmem reads
/// ([`Config::from_env`]: `RPMEM_SSH`, `RPMEM_CMD`, `RPMEM_TIMEOUT_MS`, ...),
/// so a program built on the builder obeys the same variables as a C program,
/// and a call here overrides them. The local region is 8 KiB and one lane
/// unless set.
///
/// ```
/// # let Some(_sandbox) = rpmem::doc_support::Sandbox::new() else { return Ok(()) };
/// use std::time::Duration;
/// use rpmem::{PersistFlags, Pool};
///
/// let mut pool = Pool::builder("localhost", "pool.set")
///     .size(4 << 20)
///     .lanes(4)
///     .timeout(Duration::from_secs(2))
///     .create(None)?;
/// pool.region_mut()[..5].copy_from_slice(b"hello");
/// pool.persist(0, 5, 0, PersistFlags::empty())?;
/// pool.close()?;
///
/// let pool = Pool::builder("localhost", "pool.set").size(4 << 20).open()?;
/// let mut back = [0u8; 5];
/// pool.read(&mut back, 0, 0)?;
/// assert_eq!(&back, b"hello");
/// # pool.close()?;
/// # Ok::<(), rpmem::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct PoolBuilder {
    config: Config,
    target: String,
    pool_set: String,
    size: usize,
    lanes: u32,
}

impl PoolBuilder {
    /// Settings for the pool set file `pool_set` (relative to the poolset
    /// directory of rpmemd) on `target` (`[user@]host[:port]`).
    pub fn new(target: impl Into<String>, pool_set: impl Into<String>) -> PoolBuilder {
        PoolBuilder {
            config: Config::from_env(),
            target: target.into(),
            pool_set: pool_set.into(),
            size: MIN_POOL,
            lanes: 1,
        }
    }

    /// Replaces every engine setting, environment defaults included.
    pub fn config(mut self, config: Config) -> PoolBuilder {
        self.config = config;
        self
    }

    /// The engine settings in effect.
    pub fn get_config(&self) -> &Config {
        &self.config
    }

    /// Size of the local region, a multiple of the page size and at least
    /// [`MIN_POOL`]; the remote pool must be at least as large.
    pub fn size(mut self, bytes: usize) -> PoolBuilder {
        self.size = bytes;
        self
    }

    /// Lanes to ask for; [`Pool::nlanes`] tells how many were granted
    /// (`RPMEM_MAX_NLANES` and the daemon's `--max-lanes` cap it).
    pub fn lanes(mut self, lanes: u32) -> PoolBuilder {
        self.lanes = lanes;
        self
    }

    /// The ssh client program (`RPMEM_SSH`).
    pub fn ssh(mut self, program: impl Into<String>) -> PoolBuilder {
        self.config.ssh = program.into();
        self
    }

    /// The command the target's shell runs to start the daemon (`RPMEM_CMD`).
    pub fn remote_command(mut self, command: impl Into<String>) -> PoolBuilder {
        self.config.cmd = command.into();
        self
    }

    /// How long a call on the open pool waits for the target before it fails
    /// with [`ErrorKind::ConnectionReset`](std::io::ErrorKind::ConnectionReset)
    /// (`RPMEM_TIMEOUT_MS`).
    pub fn timeout(mut self, timeout: Duration) -> PoolBuilder {
        self.config.io_timeout = timeout;
        self
    }

    /// How many flushes a lane may have in flight before a flush waits
    /// (`RPMEM_WORK_QUEUE_SIZE`).
    pub fn work_queue_size(mut self, flushes: usize) -> PoolBuilder {
        self.config.work_queue_size = flushes;
        self
    }

    /// How long a lane busy-polls for an answer before sleeping
    /// (`RPMEM_SPIN_US`; zero never polls).
    pub fn spin(mut self, window: Duration) -> PoolBuilder {
        self.config.spin = window;
        self
    }

    /// The transport the lanes use; [`Transport::Tcp`] is used even where
    /// `RPMEM_ENABLE_SOCKETS=0`.
    pub fn transport(mut self, transport: Transport) -> PoolBuilder {
        let name = match transport {
            Transport::Auto => "auto",
            Transport::Tcp => {
                self.config.enable_sockets = true;
                "tcp"
            }
            Transport::Fabric => "fabric",
        };
        self.config.transport = Some(name.into());
        self
    }

    /// The libfabric provider of [`Transport::Fabric`] (`RPMEM_FABRIC_PROVIDER`:
    /// `verbs`, `tcp`, `sockets`).
    pub fn fabric_provider(mut self, provider: impl Into<String>) -> PoolBuilder {
        self.config.fabric_provider = Some(provider.into());
        self
    }

    /// Creates the pool and opens it. With `attr` the pool gets a header
    /// holding them (the pool set must not say `OPTION NOHDRS`); with `None`
    /// it has none and all of it is usable (the pool set must say
    /// `OPTION NOHDRS`).
    pub fn create(&self, attr: Option<&PoolAttr>) -> Result<Pool> {
        Pool::create(
            &self.config,
            &self.target,
            &self.pool_set,
            self.size,
            self.lanes,
            attr,
        )
    }

    /// Opens an existing pool; [`Pool::attr`] then has its attributes.
    pub fn open(&self) -> Result<Pool> {
        Pool::open(
            &self.config,
            &self.target,
            &self.pool_set,
            self.size,
            self.lanes,
        )
        .map(|(pool, _)| pool)
    }
}
