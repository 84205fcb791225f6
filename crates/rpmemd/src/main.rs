//! rpmemd: the rpmem target daemon.
//!
//! Started by sshd on behalf of librpmem, it serves one remote pool per
//! session: the control protocol on stdin/stdout, the data lanes on TCP
//! connections to the address of the ssh session. `--remove` removes a pool
//! instead. The exit status is 0 or the errno of the failure.
//!
//! Environment: `RPMEMD_FORCE_PMEM=1` makes every pool use the
//! persistent-memory durability path (CPU cache flush and fence) even on
//! ordinary files, for testing that path where there is no pmem.

mod bench_echo;
mod error;
mod logger;
mod options;
mod pmdk;
mod server;

use log::{error, info};

use crate::error::{DaemonError, Result};
use crate::options::{Cli, Settings};

/// The environment switch that forces the persistent-memory durability path.
const FORCE_PMEM_VAR: &str = "RPMEMD_FORCE_PMEM";

/// Whether `RPMEMD_FORCE_PMEM` is `1` (or `y`/`yes`/`true`).
fn force_pmem() -> bool {
    std::env::var(FORCE_PMEM_VAR)
        .map(|v| matches!(v.trim(), "1" | "y" | "yes" | "true"))
        .unwrap_or(false)
}

fn run() -> Result<()> {
    let cli = match Cli::try_parse_args(std::env::args_os()) {
        Ok(c) => c,
        Err(e) => {
            use clap::error::ErrorKind as K;
            let code = match e.kind() {
                K::DisplayHelp | K::DisplayVersion => 0,
                _ => libc::EINVAL,
            };
            let _ = e.print();
            std::process::exit(code);
        }
    };
    let settings = Settings::load(&cli)?;
    if let Some(set) = &cli.remove {
        // Remove mode: the one-line reason goes to stderr, not to syslog.
        let dir = settings.poolset_dir()?;
        let path = rpmem_storage::resolve_name(dir, set)?;
        rpmem_storage::remove(&path, cli.force, cli.pool_set)?;
        return Ok(());
    }
    let ssh = server::ssh_connection(std::env::var("SSH_CONNECTION").ok().as_deref())?;
    let addr = ssh.server;
    logger::init(&settings)?;
    if cli.bench_echo {
        return bench_echo::serve(addr);
    }
    info!(
        "rpmemd {} serving on {addr}; poolset dir {:?}, max lanes {}, lanes from {}",
        env!("CARGO_PKG_VERSION"),
        settings.poolset_dir,
        settings.max_lanes,
        settings.allowed_peers(ssh.client)
    );
    if force_pmem() {
        rpmem_storage::set_force_pmem(true);
        info!(
            "{FORCE_PMEM_VAR}=1: pools use the persistent-memory path ({})",
            rpmem_storage::Method::detect()
        );
    }
    if settings.persist_apm {
        info!(
            "persist-apm requested: used by fabric sessions on pools that are all persistent \
             memory; over TCP every byte passes through rpmemd, which makes it durable itself"
        );
    }
    if !settings.persist_general {
        info!("persist-general = no: rpmemd still makes every persisted range durable before acknowledging it");
    }
    server::serve(&settings, &ssh)
}

/// libfabric's `sockets` provider moves data on a progress thread that
/// otherwise sleeps up to 10 ms between polls of its sockets, which a lane
/// waiting in the kernel pays on every request (measured: 24 ms per 64-byte
/// persist, 60 µs with 0). Set before any thread exists; a value from the
/// environment wins.
const SOCKETS_WAIT_VAR: &str = "FI_SOCKETS_PE_WAITTIME";

fn main() {
    if std::env::var_os(SOCKETS_WAIT_VAR).is_none() {
        std::env::set_var(SOCKETS_WAIT_VAR, "0");
    }
    let code = match run() {
        Ok(()) => 0,
        Err(e) => {
            let code = e.exit_code();
            // Refusals were already logged and reported to the initiator;
            // an abandoned session was logged as it ended.
            if !matches!(e, DaemonError::Reported { .. } | DaemonError::Abandoned) {
                error!("{e}");
                if log::max_level() == log::LevelFilter::Off || !logger::writes_stderr() {
                    eprintln!("rpmemd: {e}");
                }
            }
            code
        }
    };
    log::logger().flush();
    std::process::exit(code);
}
