//! A real `nats-server` with JetStream, private to one test.

use std::fs;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use tempfile::TempDir;

use crate::child::ChildGuard;
use crate::paths::nats_server_binary;
use crate::try_free_port;

/// How long a (re)start may take before it is an error.
const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long [`NatsServer::stop`] waits for a graceful shutdown before SIGKILL.
const STOP_GRACE: Duration = Duration::from_secs(10);
/// Fresh ports tried by [`NatsServer::start`] when the first pair was taken meanwhile.
const START_ATTEMPTS: usize = 3;
const POLL_INTERVAL: Duration = Duration::from_millis(20);
const HTTP_TIMEOUT: Duration = Duration::from_millis(500);

/// The shipped bus permissions: the users, their nkeys (from the environment) and what each
/// may do.
pub const SHIPPED_PERMISSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nats/permissions.conf"
);

/// The users of [`SHIPPED_PERMISSIONS`], one nkey each.
pub const SHIPPED_USERS: &[&str] = &["ledgerd", "positiond", "oversightd", "reader"];

/// How to run a [`NatsServer`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NatsOptions {
    /// `jetstream { sync_interval: always }`: fsync every write before acknowledging it, as the
    /// shipped configurations do where the bus must be durable on its own. Off (the server's
    /// default lazy fsync) unless a test needs to survive [`NatsServer::kill9`].
    pub sync_always: bool,
    /// A configuration file to `include` (copied beside the server's own), e.g. the shipped
    /// `deploy/nats/permissions.conf`, so a test runs against the real users and permissions.
    pub include: Option<&'static str>,
    /// Users to make a fresh user nkey for, in process: the server runs with each public key
    /// in `ICS_NATS_<USER>_NKEY` (as the shipped permissions read them) and the seed is in a
    /// file of the server's temp dir ([`NatsServer::user`]).
    pub nkey_users: &'static [&'static str],
}

impl NatsOptions {
    /// The shipped users and permissions ([`SHIPPED_PERMISSIONS`]), an nkey for each of
    /// [`SHIPPED_USERS`].
    pub fn shipped() -> Self {
        NatsOptions {
            include: Some(SHIPPED_PERMISSIONS),
            nkey_users: SHIPPED_USERS,
            ..NatsOptions::default()
        }
    }
}

/// A user nkey made for one test server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NkeyUser {
    pub name: String,
    /// `U…`: what the server knows the user by.
    pub public_key: String,
    /// The file holding the seed (`SU…`, mode 0600), for the service's `nats_nkey_seed_file`.
    pub seed_file: PathBuf,
    /// `_INBOX_<name>`: the reply prefix the shipped permissions let the user subscribe to.
    pub inbox_prefix: String,
}

impl NkeyUser {
    /// The environment that makes a service (`LEDGERD`, `POSITIOND`, `OVERSIGHTD`, `ICS` for
    /// icsctl) connect as this user: `<PREFIX>_NATS_NKEY_SEED_FILE` and
    /// `<PREFIX>_NATS_INBOX_PREFIX`.
    pub fn env(&self, prefix: &str) -> Vec<(String, String)> {
        vec![
            (
                format!("{prefix}_NATS_NKEY_SEED_FILE"),
                self.seed_file.display().to_string(),
            ),
            (
                format!("{prefix}_NATS_INBOX_PREFIX"),
                self.inbox_prefix.clone(),
            ),
        ]
    }
}

/// A `nats-server -js` on `127.0.0.1:<free port>` with its own temp store dir.
///
/// Killed and reaped on drop; the temp dir (store, config, log) is removed after.
/// [`NatsServer::restart`] keeps the port and the store, so clients reconnect to the same URL
/// and JetStream data survives. The server's stdout and stderr go to
/// [`NatsServer::log_path`]; errors quote its tail.
#[derive(Debug)]
pub struct NatsServer {
    // Declared first so it is dropped (killed) before the temp dir is removed.
    process: Option<ChildGuard>,
    binary: PathBuf,
    options: NatsOptions,
    port: u16,
    monitor_port: u16,
    store_dir: PathBuf,
    log: PathBuf,
    config: Option<PathBuf>,
    users: Vec<NkeyUser>,
    dir: TempDir,
}

impl NatsServer {
    /// Starts a server with default [`NatsOptions`] and waits until JetStream is ready.
    pub fn start() -> anyhow::Result<Self> {
        Self::start_with(NatsOptions::default())
    }

    /// Starts a server and waits until it accepts clients and JetStream reports healthy.
    pub fn start_with(options: NatsOptions) -> anyhow::Result<Self> {
        let binary = nats_server_binary()?;
        let dir = tempfile::Builder::new()
            .prefix("testkit-nats-")
            .tempdir()
            .context("creating a temp dir for nats-server")?;
        let store_dir = dir.path().join("store");
        fs::create_dir_all(&store_dir)
            .with_context(|| format!("creating {}", store_dir.display()))?;
        let log = dir.path().join("nats-server.log");
        let config = if options.sync_always || options.include.is_some() {
            let path = dir.path().join("nats-server.conf");
            let mut text = String::new();
            if options.sync_always {
                text.push_str("jetstream {\n  sync_interval: always\n}\n");
            }
            if let Some(include) = options.include {
                // nats-server resolves includes relative to the including file only.
                let copy = dir.path().join("included.conf");
                fs::copy(include, &copy).with_context(|| format!("copying {include}"))?;
                text.push_str("include ./included.conf\n");
            }
            fs::write(&path, text).with_context(|| format!("writing {}", path.display()))?;
            Some(path)
        } else {
            None
        };
        let users = make_nkeys(dir.path(), options.nkey_users)?;
        let mut server = NatsServer {
            process: None,
            binary,
            options,
            port: 0,
            monitor_port: 0,
            store_dir,
            log,
            config,
            users,
            dir,
        };
        // The ports were free when picked, but another test may take one before the server
        // binds it; then the server exits at once and a fresh pair is tried.
        let mut last_error = None;
        for _ in 0..START_ATTEMPTS {
            server.port = try_free_port().context("picking a client port")?;
            server.monitor_port = try_free_port().context("picking a monitoring port")?;
            match server.spawn_and_wait() {
                Ok(()) => return Ok(server),
                Err(error) => {
                    server.kill_quietly();
                    last_error = Some(error);
                }
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("nats-server was never started")))
    }

    /// `nats://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// The client port (the same across restarts).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The client address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, self.port))
    }

    /// The HTTP monitoring port (`/varz`, `/jsz`, `/healthz`).
    pub fn monitor_port(&self) -> u16 {
        self.monitor_port
    }

    /// `http://127.0.0.1:<monitor port>`.
    pub fn monitor_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.monitor_port)
    }

    /// The server's temp dir, holding the store dir, the log and the config file; removed on
    /// drop.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The JetStream store dir (`-sd`); the server keeps its data under `jetstream/` in it.
    pub fn store_dir(&self) -> &Path {
        &self.store_dir
    }

    /// The server's combined stdout and stderr, appended to across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log
    }

    /// The last few KiB of the server's log.
    pub fn log_tail(&self) -> String {
        crate::child::log_tail(&self.log)
    }

    /// The nkey made for `name` ([`NatsOptions::nkey_users`]).
    pub fn user(&self, name: &str) -> anyhow::Result<&NkeyUser> {
        self.users
            .iter()
            .find(|user| user.name == name)
            .with_context(|| format!("no nkey was made for NATS user {name:?}"))
    }

    /// The options it runs with.
    pub fn options(&self) -> NatsOptions {
        self.options
    }

    /// The process id while running.
    pub fn pid(&self) -> Option<u32> {
        self.process.as_ref().map(ChildGuard::id)
    }

    /// Whether the process is running (started and not exited).
    pub fn is_running(&mut self) -> bool {
        match self.process.as_mut() {
            Some(process) => matches!(process.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Shuts the server down gracefully (SIGTERM, then SIGKILL after a grace period) and reaps
    /// it. The port and store dir are kept for [`NatsServer::restart`]. A no-op when stopped.
    pub fn stop(&mut self) -> anyhow::Result<()> {
        if let Some(mut process) = self.process.take() {
            process.terminate(STOP_GRACE)?;
        }
        Ok(())
    }

    /// Kills the server with SIGKILL (a crash: no flush on the way out) and reaps it.
    /// A no-op when stopped.
    pub fn kill9(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        match self.process.take() {
            Some(mut process) => process.kill9().map(Some),
            None => Ok(None),
        }
    }

    /// Stops the server if running, then starts it again on the same port with the same store
    /// dir, and waits until JetStream is ready (its streams recovered).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop()?;
        self.spawn_and_wait().inspect_err(|_| self.kill_quietly())
    }

    fn spawn_and_wait(&mut self) -> anyhow::Result<()> {
        let mut command = Command::new(&self.binary);
        command
            .arg("-js")
            .arg("-sd")
            .arg(&self.store_dir)
            .args(["-a", "127.0.0.1"])
            .args(["-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .args(["-n", &format!("testkit-{}", self.port)]);
        if let Some(config) = &self.config {
            command.arg("-c").arg(config);
        }
        for user in &self.users {
            command.env(nkey_variable(&user.name), &user.public_key);
        }
        let name = format!("nats-server :{}", self.port);
        let process = ChildGuard::spawn_logged(name, &mut command, &self.log)?;
        let process = self.process.insert(process);
        wait_ready(process, self.port, self.monitor_port)
    }

    fn kill_quietly(&mut self) {
        if let Some(mut process) = self.process.take() {
            let _ = process.kill9();
        }
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.kill_quietly();
    }
}

/// `ICS_NATS_<USER>_NKEY`: where the shipped permissions read a user's public key.
fn nkey_variable(user: &str) -> String {
    format!(
        "ICS_NATS_{}_NKEY",
        user.to_ascii_uppercase().replace('-', "_")
    )
}

/// A fresh user nkey for each of `names`, its seed written (mode 0600) under `dir/nkeys`.
fn make_nkeys(dir: &Path, names: &[&str]) -> anyhow::Result<Vec<NkeyUser>> {
    if names.is_empty() {
        return Ok(Vec::new());
    }
    let keys = dir.join("nkeys");
    fs::create_dir_all(&keys).with_context(|| format!("creating {}", keys.display()))?;
    names
        .iter()
        .map(|name| {
            let pair = nkeys::KeyPair::new_user();
            let seed = pair
                .seed()
                .map_err(|e| anyhow::anyhow!("encoding an nkey seed: {e}"))?;
            let seed_file = keys.join(format!("{name}.nk"));
            write_secret(&seed_file, &seed)?;
            Ok(NkeyUser {
                name: name.to_string(),
                public_key: pair.public_key(),
                seed_file,
                inbox_prefix: format!("_INBOX_{name}"),
            })
        })
        .collect()
}

fn write_secret(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    writeln!(file, "{text}").with_context(|| format!("writing {}", path.display()))
}

/// Waits until the client port accepts TCP and `/healthz` (which includes JetStream's health)
/// answers 200.
fn wait_ready(process: &mut ChildGuard, port: u16, monitor_port: u16) -> anyhow::Result<()> {
    let deadline = Instant::now() + READY_TIMEOUT;
    let client = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let monitor = SocketAddr::from((Ipv4Addr::LOCALHOST, monitor_port));
    process.wait_for_port(client, READY_TIMEOUT)?;
    loop {
        if let Some(status) = process.try_wait()? {
            bail!(
                "nats-server exited ({status}) before JetStream was ready{}",
                process.log_tail_section()
            );
        }
        let last = match http_get(monitor, "/healthz") {
            Ok((200, _)) => return Ok(()),
            Ok((code, body)) => format!("HTTP {code}: {body}"),
            Err(error) => error.to_string(),
        };
        if Instant::now() >= deadline {
            bail!(
                "nats-server's JetStream was not healthy within {READY_TIMEOUT:?} (last /healthz: {last}){}",
                process.log_tail_section()
            );
        }
        thread::sleep(POLL_INTERVAL);
    }
}

/// A minimal HTTP/1.0 GET: the status code and body.
fn http_get(addr: SocketAddr, path: &str) -> anyhow::Result<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, HTTP_TIMEOUT)?;
    stream.set_read_timeout(Some(HTTP_TIMEOUT))?;
    stream.set_write_timeout(Some(HTTP_TIMEOUT))?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n")?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("malformed HTTP response: {head:?}"))?;
    Ok((code, body.trim().to_string()))
}
