//! Shared harness of the end-to-end tests.
//!
//! Everything here drives real processes: the installed binaries and library
//! under [`prefix()`], a daemon reached through `rpmem-ssh-local`
//! ([`LocalTarget`]), or a real OpenSSH server on loopback ([`Sshd`]).
//!
//! Functions panic with a clear message on failure: they are meant for tests.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::io::AsRawFd;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::thread;
use std::time::{Duration, Instant};

use tempfile::TempDir;

pub mod faults;
pub mod pmdk;

/// Root of the cargo workspace (two levels above this crate).
pub fn workspace_root() -> &'static Path {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        let root = here
            .parent()
            .and_then(Path::parent)
            .expect("tests/e2e has a workspace two levels up");
        root.canonicalize().unwrap_or_else(|_| root.to_path_buf())
    })
}

/// The functions librpmem exports: the global symbols of its version
/// script, `crates/librpmem/librpmem.map` (the one list of exports).
pub fn exported_functions() -> Vec<String> {
    let map = workspace_root().join("crates/librpmem/librpmem.map");
    let text = std::fs::read_to_string(&map).unwrap_or_else(|e| panic!("{}: {e}", map.display()));
    text.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("rpmem_"))
        .map(|l| l.trim_end_matches(';').to_string())
        .collect()
}

/// The install prefix holding `bin/rpmemd`, `bin/rpmem`, `bin/rpmem-ssh-local`,
/// `lib/librpmem.so.1`, `include/librpmem.h` and `lib/pkgconfig/librpmem.pc`.
///
/// `RPMEM_PREFIX` if set (`make test` sets it); otherwise runs
/// `make install PREFIX=<workspace>/target/test-prefix` once per process,
/// serialised across processes with a file lock, and returns that prefix.
///
/// # Panics
/// If the build or install fails (with make's output).
pub fn prefix() -> &'static Path {
    static PREFIX: OnceLock<PathBuf> = OnceLock::new();
    PREFIX.get_or_init(|| {
        if let Some(p) = std::env::var_os("RPMEM_PREFIX").filter(|p| !p.is_empty()) {
            let p = PathBuf::from(p);
            let p = p
                .canonicalize()
                .unwrap_or_else(|e| panic!("RPMEM_PREFIX={} is not usable: {e}", p.display()));
            return p;
        }
        let root = workspace_root();
        let target = root.join("target");
        fs::create_dir_all(&target)
            .unwrap_or_else(|e| panic!("cannot create {}: {e}", target.display()));
        let prefix = target.join("test-prefix");
        let lock = lock_file(&target.join(".test-prefix.lock"));
        eprintln!("e2e: building and installing into {}", prefix.display());
        run_checked(
            Command::new("make")
                .arg("-C")
                .arg(root)
                .arg("--no-print-directory")
                .arg("install")
                .arg(format!("PREFIX={}", prefix.display()))
                .arg("DESTDIR="),
        );
        drop(lock);
        prefix
    })
}

/// Opens (creating) `path` and holds an exclusive `flock` on it until the
/// returned file is dropped: serialises one-time setup across test processes.
pub(crate) fn lock_file(path: &Path) -> fs::File {
    let lock = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .unwrap_or_else(|e| panic!("cannot open {}: {e}", path.display()));
    // SAFETY: flock on a file descriptor we own; released when `lock` is closed.
    let rc = unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX) };
    assert_eq!(
        rc,
        0,
        "flock {}: {}",
        path.display(),
        std::io::Error::last_os_error()
    );
    lock
}

/// Writes the shell script `#!/bin/sh` + `body` to `path`, executable.
///
/// # Panics
/// If it cannot be written.
pub fn write_script(path: &Path, body: &str) -> PathBuf {
    fs::write(path, format!("#!/bin/sh\n{body}"))
        .and_then(|()| fs::set_permissions(path, fs::Permissions::from_mode(0o755)))
        .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    path.to_path_buf()
}

/// Path of an installed program: `<prefix>/bin/<name>`.
pub fn bin(name: &str) -> PathBuf {
    prefix().join("bin").join(name)
}

/// A target served on this machine: a temporary poolset directory (removed on
/// drop) and the environment that makes the library reach a daemon on it
/// through `rpmem-ssh-local`.
pub struct LocalTarget {
    dir: TempDir,
    transport: Transport,
}

/// The data transport a test's sessions use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    /// Our TCP transport (`RPMEM_TRANSPORT=tcp`).
    Tcp,
    /// libfabric with this provider (`RPMEM_TRANSPORT=fabric
    /// RPMEM_FABRIC_PROVIDER=...`).
    Fabric(&'static str),
}

impl Transport {
    /// The environment that selects it.
    pub fn env(self) -> Vec<(String, String)> {
        match self {
            Transport::Tcp => vec![("RPMEM_TRANSPORT".into(), "tcp".into())],
            Transport::Fabric(p) => vec![
                ("RPMEM_TRANSPORT".into(), "fabric".into()),
                ("RPMEM_FABRIC_PROVIDER".into(), p.into()),
            ],
        }
    }

    /// Whether it can run here: libfabric must be installed for a fabric
    /// transport (in CI it must be; elsewhere the test says it skips).
    pub fn available(self) -> bool {
        if let Transport::Fabric(_) = self {
            if let Err(e) = rpmem_fabric::Libfabric::load() {
                assert!(
                    std::env::var_os("CI").is_none(),
                    "CI must install libfabric1: {e}"
                );
                eprintln!("skipping: needs libfabric (apt-get install libfabric1): {e}");
                return false;
            }
        }
        true
    }
}

impl Default for LocalTarget {
    fn default() -> Self {
        Self::new()
    }
}

impl LocalTarget {
    /// Creates a fresh, empty poolset directory.
    pub fn new() -> LocalTarget {
        let dir = tempfile::Builder::new()
            .prefix("rpmem-target-")
            .tempdir()
            .expect("create temporary poolset directory");
        LocalTarget {
            dir,
            transport: Transport::Tcp,
        }
    }

    /// A fresh target whose sessions use `transport`.
    pub fn with_transport(transport: Transport) -> LocalTarget {
        LocalTarget {
            transport,
            ..LocalTarget::new()
        }
    }

    /// The transport this target's sessions use.
    pub fn transport(&self) -> Transport {
        self.transport
    }

    /// The poolset directory (absolute).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `contents` to `<dir>/<name>` and returns its path.
    pub fn write_poolset(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.dir().join(name);
        if let Some(parent) = path.parent() {
            fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("create {}: {e}", parent.display()));
        }
        fs::write(&path, contents).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        path
    }

    /// Writes `<name>.set`: one part `<dir>/<name>.part` of `size` (a poolset
    /// size such as `8M`) with `OPTION NOHDRS`; returns the part's path.
    pub fn write_nohdrs_set(&self, name: &str, size: &str) -> PathBuf {
        let part = self.dir().join(format!("{name}.part"));
        self.write_poolset(
            &format!("{name}.set"),
            &format!("PMEMPOOLSET\nOPTION NOHDRS\n{size} {}\n", part.display()),
        );
        part
    }

    /// Writes `<name>.set` as [`LocalTarget::write_nohdrs_set`] does, of
    /// `size` bytes, and creates its pool with `nlanes` lanes through the
    /// Rust API ([`LocalTarget::config`]); returns the part's path and the
    /// open pool.
    ///
    /// # Panics
    /// If the pool cannot be created, with the daemon's log.
    pub fn create_nohdrs(&self, name: &str, size: usize, nlanes: u32) -> (PathBuf, rpmem::Pool) {
        let part = self.write_nohdrs_set(name, &size.to_string());
        let set = format!("{name}.set");
        let pool = rpmem::Pool::create(&self.config(), "localhost", &set, size, nlanes, None)
            .unwrap_or_else(|e| panic!("create {set}: {e}; log:\n{}", self.log()));
        (part, pool)
    }

    /// Path of the daemon's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir().join("rpmemd.log")
    }

    /// Engine settings that reach this target's daemon through the installed
    /// `rpmem-ssh-local`, for tests of the Rust API.
    pub fn config(&self) -> rpmem::Config {
        let (transport, fabric_provider) = match self.transport {
            Transport::Tcp => ("tcp", None),
            Transport::Fabric(p) => ("fabric", Some(p.to_string())),
        };
        rpmem::Config {
            ssh: bin("rpmem-ssh-local").display().to_string(),
            cmd: self.rpmem_cmd(),
            transport: Some(transport.into()),
            fabric_provider,
            ..rpmem::Config::default()
        }
    }

    /// The installed rpmemd's arguments for this target.
    fn rpmemd_args(&self) -> [String; 3] {
        [
            format!("--poolset-dir={}", self.dir().display()),
            format!("--log-file={}", self.log_path().display()),
            "--log-level=debug".to_string(),
        ]
    }

    /// The `RPMEM_CMD` value for this target.
    pub fn rpmem_cmd(&self) -> String {
        format!(
            "{} {}",
            bin("rpmemd").display(),
            self.rpmemd_args().join(" ")
        )
    }

    /// The installed rpmemd serving this target, to be run directly as sshd
    /// would run it (`SSH_CONNECTION` says the peer is 127.0.0.1).
    pub fn rpmemd_command(&self) -> Command {
        let mut c = Command::new(bin("rpmemd"));
        c.args(self.rpmemd_args())
            .env("SSH_CONNECTION", "127.0.0.1 1 127.0.0.1 22");
        c
    }

    /// `[("RPMEM_SSH", <prefix>/bin/rpmem-ssh-local), ("RPMEM_CMD", <prefix>/bin/rpmemd
    /// --poolset-dir=<dir> --log-file=<dir>/rpmemd.log --log-level=debug)]`
    /// and the variables that select the target's transport.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env = vec![
            (
                "RPMEM_SSH".to_string(),
                bin("rpmem-ssh-local").display().to_string(),
            ),
            ("RPMEM_CMD".to_string(), self.rpmem_cmd()),
        ];
        env.extend(self.transport.env());
        env
    }

    /// Contents of the daemon's log; empty if there is none.
    pub fn log(&self) -> String {
        fs::read(self.log_path())
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    /// The daemon's log lines written by process `pid`.
    pub fn log_of(&self, pid: u32) -> String {
        let tag = format!("rpmemd[{pid}]");
        self.log()
            .lines()
            .filter(|l| l.starts_with(&tag))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    /// The daemon that last opened or created pool set `set`, from its
    /// "… pool set 'SET': … data on ADDR:PORT" log line.
    ///
    /// # Panics
    /// If the log has no such line.
    pub fn served(&self, set: &str) -> Served {
        let log = self.log();
        let needle = format!("pool set '{set}':");
        let line = log
            .lines()
            .rev()
            .find(|l| l.contains(&needle) && l.contains("data on "))
            .unwrap_or_else(|| panic!("no 'data on' line for {set} in the daemon log:\n{log}"));
        let pid = line
            .split_once("rpmemd[")
            .and_then(|(_, r)| r.split_once(']'))
            .and_then(|(p, _)| p.parse().ok())
            .unwrap_or_else(|| panic!("no pid in {line:?}"));
        let (_, at) = line.rsplit_once("data on ").expect("data on");
        let (addr, port) = at.trim().rsplit_once(':').expect("addr:port");
        Served {
            pid,
            addr: addr.to_string(),
            port: port.parse().expect("port"),
        }
    }
}

/// A daemon serving a session, as its log says: its pid and data address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Served {
    /// The daemon's process id.
    pub pid: u32,
    /// The address its data connections go to.
    pub addr: String,
    /// The port its data connections go to.
    pub port: u16,
}

/// The bytes of file `path` (a pool part).
///
/// # Panics
/// If it cannot be read.
pub fn read_file(path: &Path) -> Vec<u8> {
    fs::read(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
}

static UNIQUE: AtomicUsize = AtomicUsize::new(0);

fn scratch_dir() -> PathBuf {
    let dir = workspace_root().join("target").join("e2e-scratch");
    fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("create {}: {e}", dir.display()));
    dir
}

/// Compiles one C source against the installed library:
/// `cc -Wall -Werror -O1 SRC -I<prefix>/include -L<prefix>/lib
/// -Wl,-rpath,<prefix>/lib -lrpmem -lpthread -o OUT`, and returns OUT.
///
/// # Panics
/// With the compiler's output if compilation fails.
pub fn compile_c(src: &Path) -> PathBuf {
    compile(src, prefix(), &[])
}

/// [`compile_c`] against the `librpmem` installed under another prefix `p`
/// (for instance PMDK's, see [`pmdk::prefix`]), with `extra` compiler
/// arguments. The header may mark its functions deprecated (PMDK 1.12's
/// does): that warning is off.
pub fn compile_c_with(src: &Path, p: &Path, extra: &[&str]) -> PathBuf {
    let mut args = vec!["-Wno-deprecated-declarations"];
    args.extend_from_slice(extra);
    compile(src, p, &args)
}

fn compile(src: &Path, p: &Path, extra: &[&str]) -> PathBuf {
    let stem = src
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "prog".into());
    let out = scratch_dir().join(format!(
        "{stem}-{}-{}",
        std::process::id(),
        UNIQUE.fetch_add(1, Ordering::Relaxed)
    ));
    run_checked(
        Command::new("cc")
            .args(["-Wall", "-Werror", "-O1"])
            .args(extra)
            .arg(src)
            .arg(format!("-I{}", p.join("include").display()))
            .arg(format!("-L{}", p.join("lib").display()))
            .arg(format!("-Wl,-rpath,{}", p.join("lib").display()))
            .args(["-lrpmem", "-lpthread", "-o"])
            .arg(&out),
    );
    out
}

fn reader<R: Read + Send + 'static>(mut r: R) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let mut buf = Vec::new();
        let _ = r.read_to_end(&mut buf);
        let _ = tx.send(buf);
    });
    rx
}

fn kill_group(child: &mut Child) {
    // SAFETY: signalling the process group we created for the child.
    unsafe {
        libc::kill(-(child.id() as libc::pid_t), libc::SIGKILL);
    }
    let _ = child.kill();
}

/// Runs `cmd` with stdin from /dev/null and stdout/stderr captured, in its own
/// process group; returns its output. If it (or a descendant holding its
/// output open) is still running after `limit`, the whole group is killed and
/// the call panics saying the command hung, with whatever it printed.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let start = Instant::now();
    let deadline = start + limit;
    let desc = format!("{cmd:?}");
    // The child is reaped by `try_wait` on success and by `wait` after a kill.
    #[allow(clippy::zombie_processes)]
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {desc}: {e}"));
    let out_rx = reader(child.stdout.take().expect("piped stdout"));
    let err_rx = reader(child.stderr.take().expect("piped stderr"));
    let mut status: Option<ExitStatus> = None;
    let mut stdout: Option<Vec<u8>> = None;
    let mut stderr: Option<Vec<u8>> = None;
    loop {
        if status.is_none() {
            status = child
                .try_wait()
                .unwrap_or_else(|e| panic!("wait {desc}: {e}"));
        }
        if stdout.is_none() {
            stdout = out_rx.try_recv().ok();
        }
        if stderr.is_none() {
            stderr = err_rx.try_recv().ok();
        }
        if let (Some(status), Some(stdout), Some(stderr)) = (status, &stdout, &stderr) {
            return Output {
                status,
                stdout: stdout.clone(),
                stderr: stderr.clone(),
            };
        }
        if Instant::now() >= deadline {
            kill_group(&mut child);
            let _ = child.wait();
            let grab = |rx: &mpsc::Receiver<Vec<u8>>, got: Option<Vec<u8>>| {
                got.or_else(|| rx.recv_timeout(Duration::from_secs(2)).ok())
                    .map(|b| String::from_utf8_lossy(&b).into_owned())
                    .unwrap_or_default()
            };
            let so = grab(&out_rx, stdout);
            let se = grab(&err_rx, stderr);
            let what = if status.is_some() {
                "exited but a descendant kept its output open"
            } else {
                "did not exit"
            };
            panic!(
                "command hung ({what} within {limit:?}), killed: {desc}\n--- stdout:\n{so}\n--- stderr:\n{se}"
            );
        }
        thread::sleep(Duration::from_millis(5));
    }
}

/// `out`'s stdout as text, after checking that the program succeeded.
///
/// # Panics
/// Unless it did, showing `what` ran, its status, stdout and stderr, and
/// `context` (a daemon's log, say; empty for none).
pub fn expect_success(out: &Output, what: &dyn std::fmt::Display, context: &str) -> String {
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    assert!(
        out.status.success(),
        "{what} failed ({}):\n--- stdout:\n{}--- stderr:\n{}{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr),
        if context.is_empty() {
            String::new()
        } else {
            format!("--- context:\n{context}")
        }
    );
    text(&out.stdout)
}

/// Runs `cmd` to its end with stdin from /dev/null; returns its stdout.
///
/// # Panics
/// If it cannot start or fails (see [`expect_success`]).
pub fn run_checked(cmd: &mut Command) -> String {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
    expect_success(&out, &format!("{cmd:?}"), "")
}

/// The library's environment variables, which [`run_rpmem`] clears.
const LIBRARY_ENV: [&str; 7] = [
    "RPMEM_SSH",
    "RPMEM_CMD",
    "RPMEM_LOG_LEVEL",
    "RPMEM_LOG_FILE",
    "RPMEM_ENABLE_SOCKETS",
    "RPMEM_ENABLE_VERBS",
    "RPMEM_MAX_NLANES",
];

/// Runs the installed `rpmem` tool with `args` (see [`run_with_timeout`];
/// two minutes) in an environment without the library's variables, then
/// `t`'s ([`LocalTarget::env`]) if given, then `env`.
pub fn run_rpmem<S: AsRef<std::ffi::OsStr>>(
    t: Option<&LocalTarget>,
    args: impl IntoIterator<Item = S>,
    env: &[(&str, &str)],
) -> Output {
    let mut cmd = Command::new(bin("rpmem"));
    cmd.args(args);
    for v in LIBRARY_ENV {
        cmd.env_remove(v);
    }
    if let Some(t) = t {
        cmd.envs(t.env());
    }
    cmd.envs(env.iter().copied());
    run_with_timeout(&mut cmd, Duration::from_secs(120))
}

/// Whether the tests run as root (effective uid 0).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

const SSHD: &str = "/usr/sbin/sshd";

fn in_path(prog: &str) -> bool {
    std::env::var_os("PATH")
        .is_some_and(|paths| std::env::split_paths(&paths).any(|d| d.join(prog).is_file()))
}

/// Whether the program `prog` (a test's tool, such as `man` or `zsh`) is on
/// PATH. Without it the caller skips, saying so; under CI (`CI` set), where
/// `.ci/run` installs every tool, a missing one fails the test instead.
///
/// # Panics
/// Under CI, when `prog` is missing.
pub fn have_tool(prog: &str) -> bool {
    if in_path(prog) {
        return true;
    }
    if std::env::var_os("CI").is_some() {
        panic!("{prog} is not installed: .ci/run must install it");
    }
    eprintln!("skipping: needs {prog}");
    false
}

/// An OpenSSH server on 127.0.0.1 with generated keys, run as a child and
/// killed on drop. Only usable as root.
pub struct Sshd {
    child: Child,
    port: u16,
    wrapper: PathBuf,
    dir: TempDir,
}

fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    l.local_addr().expect("local address").port()
}

fn keygen(path: &Path) {
    let out = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| panic!("cannot run ssh-keygen: {e}"));
    assert!(
        out.status.success(),
        "ssh-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl Sshd {
    /// Starts sshd, or returns `None` (after printing why) when not root or
    /// `/usr/sbin/sshd` is absent.
    ///
    /// # Panics
    /// If sshd is present but cannot be brought up.
    pub fn start() -> Option<Sshd> {
        if !is_root() || !Path::new(SSHD).exists() {
            eprintln!("skipping: needs root and sshd");
            return None;
        }
        if !in_path("ssh") || !in_path("ssh-keygen") {
            eprintln!("skipping: needs root and sshd (the ssh client is not installed)");
            return None;
        }
        fs::create_dir_all("/run/sshd").expect("mkdir -p /run/sshd");
        let dir = tempfile::Builder::new()
            .prefix("rpmem-sshd-")
            .tempdir()
            .expect("temporary sshd directory");
        let d = dir.path();
        let host_key = d.join("host_key");
        let client_key = d.join("client_key");
        keygen(&host_key);
        keygen(&client_key);
        let pubkey = fs::read(d.join("client_key.pub")).expect("read client public key");
        let auth = d.join("authorized_keys");
        fs::write(&auth, pubkey).expect("write authorized_keys");
        let known = d.join("known_hosts");
        let wrapper = write_script(
            &d.join("ssh-wrap"),
            &format!(
                "exec ssh -F /dev/null -i '{}' -o IdentitiesOnly=yes \
                 -o UserKnownHostsFile='{}' -o StrictHostKeyChecking=no \
                 -o LogLevel=ERROR \"$@\"\n",
                client_key.display(),
                known.display()
            ),
        );

        let mut last_err = String::new();
        for _attempt in 0..3 {
            let port = free_port();
            let cfg = d.join("sshd_config");
            fs::write(
                &cfg,
                format!(
                    "ListenAddress 127.0.0.1\nPort {port}\nHostKey {}\nAuthorizedKeysFile {}\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\n\
                     StrictModes no\nPidFile {}\nUsePAM no\n\
                     PermitRootLogin prohibit-password\nAcceptEnv none\n",
                    host_key.display(),
                    auth.display(),
                    d.join("sshd.pid").display()
                ),
            )
            .expect("write sshd_config");
            let log = fs::File::create(d.join("sshd.log")).expect("create sshd log");
            let mut child = Command::new(SSHD)
                .arg("-D")
                .arg("-e")
                .arg("-f")
                .arg(&cfg)
                .stdin(Stdio::null())
                .stdout(log.try_clone().expect("dup log"))
                .stderr(log)
                .spawn()
                .unwrap_or_else(|e| panic!("cannot start {SSHD}: {e}"));
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(st)) = child.try_wait() {
                    last_err = format!(
                        "sshd exited ({st}): {}",
                        fs::read_to_string(d.join("sshd.log")).unwrap_or_default()
                    );
                    break;
                }
                if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                    return Some(Sshd {
                        child,
                        port,
                        wrapper,
                        dir,
                    });
                }
                if Instant::now() >= deadline {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_err = "sshd did not accept connections within 10 s".into();
                    break;
                }
                thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("cannot start sshd: {last_err}");
    }

    /// The port sshd listens on (on 127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// An executable that runs `ssh` with the generated client key and no host
    /// key checking; use it as `RPMEM_SSH`.
    pub fn ssh_wrapper(&self) -> &Path {
        &self.wrapper
    }

    /// The target address: `127.0.0.1:PORT`.
    pub fn target(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// What sshd has logged so far.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("sshd.log")).unwrap_or_default()
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_with_timeout_captures_output() {
        let out = run_with_timeout(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            Duration::from_secs(10),
        );
        assert_eq!(out.status.code(), Some(3));
        assert_eq!(out.stdout, b"out\n");
        assert_eq!(out.stderr, b"err\n");
    }

    #[test]
    fn run_with_timeout_kills_a_hung_command_or_lingering_descendant() {
        for (script, says) in [
            ("sleep 30", "did not exit"),
            ("sleep 30 & exit 0", "descendant"),
        ] {
            let hung = std::panic::catch_unwind(|| {
                run_with_timeout(
                    Command::new("sh").args(["-c", script]),
                    Duration::from_millis(300),
                )
            })
            .expect_err("a hang is a failure");
            let msg = hung.downcast_ref::<String>().expect("a message");
            assert!(msg.contains("command hung") && msg.contains(says), "{msg}");
        }
    }

    #[test]
    fn local_target_env_and_files() {
        let t = LocalTarget::new();
        let p = t.write_poolset("a.set", "PMEMPOOLSET\n");
        assert_eq!(fs::read_to_string(&p).unwrap(), "PMEMPOOLSET\n");
        assert!(p.starts_with(t.dir()));
        assert_eq!(t.log(), "");
        let dir = t.dir().to_path_buf();
        drop(t);
        assert!(!dir.exists());
    }
}
