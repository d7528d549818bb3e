//! A child process that cannot outlive the test that started it.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};

/// How often readiness and exit are polled.
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// How long a TCP connect attempt may take while polling a port.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(200);
/// How much of a log file error messages quote.
const LOG_TAIL_BYTES: u64 = 4096;

/// A child process that is killed (SIGKILL) and reaped when dropped, so a failed test never
/// leaves a stray process behind.
///
/// Its stdout and stderr can go to a log file ([`ChildGuard::spawn_logged`]) whose tail is
/// quoted in error messages.
#[derive(Debug)]
pub struct ChildGuard {
    name: String,
    child: Child,
    log: Option<PathBuf>,
    exit: Option<ExitStatus>,
}

impl ChildGuard {
    /// Guards an already spawned child. `name` is used in error messages.
    pub fn new(name: impl Into<String>, child: Child) -> Self {
        ChildGuard {
            name: name.into(),
            child,
            log: None,
            exit: None,
        }
    }

    /// Spawns `command` with stdin closed and stdout and stderr appended to `log`.
    pub fn spawn_logged(
        name: impl Into<String>,
        command: &mut Command,
        log: &Path,
    ) -> anyhow::Result<Self> {
        let name = name.into();
        let stdout = OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .with_context(|| format!("opening the log file {} for {name}", log.display()))?;
        let stderr = stdout
            .try_clone()
            .with_context(|| format!("duplicating the log file handle for {name}"))?;
        let child = command
            .stdin(Stdio::null())
            .stdout(Stdio::from(stdout))
            .stderr(Stdio::from(stderr))
            .spawn()
            .with_context(|| format!("spawning {name}: {command:?}"))?;
        Ok(ChildGuard {
            name,
            child,
            log: Some(log.to_path_buf()),
            exit: None,
        })
    }

    /// The process id.
    pub fn id(&self) -> u32 {
        self.child.id()
    }

    /// The name given at construction.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The log file, when spawned with [`ChildGuard::spawn_logged`].
    pub fn log_path(&self) -> Option<&Path> {
        self.log.as_deref()
    }

    /// The underlying child, e.g. to take a piped stdout.
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// The exit status if the process has exited (and reaps it), else `None`.
    pub fn try_wait(&mut self) -> anyhow::Result<Option<ExitStatus>> {
        if let Some(status) = self.exit {
            return Ok(Some(status));
        }
        let status = self
            .child
            .try_wait()
            .with_context(|| format!("checking whether {} has exited", self.name))?;
        self.exit = status;
        Ok(status)
    }

    /// Waits up to `timeout` for the process to exit by itself.
    pub fn wait_timeout(&mut self, timeout: Duration) -> anyhow::Result<Option<ExitStatus>> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                return Ok(Some(status));
            }
            if Instant::now() >= deadline {
                return Ok(None);
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// Kills the process with SIGKILL (a crash: no shutdown code runs) and reaps it.
    /// Returns the exit status; calling it again, or on a process that already exited, is fine.
    pub fn kill9(&mut self) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        // `Child::kill` sends SIGKILL on unix.
        // An error here means it exited between `try_wait` and `kill`; `wait` below tells.
        let _ = self.child.kill();
        let status = self
            .child
            .wait()
            .with_context(|| format!("waiting for {} after SIGKILL", self.name))?;
        self.exit = Some(status);
        Ok(status)
    }

    /// Asks the process to shut down (SIGTERM, through the `kill` command) and waits up to
    /// `grace` for it to exit; then SIGKILLs it. Returns the exit status.
    pub fn terminate(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        self.signal("TERM", grace)
    }

    /// As [`ChildGuard::terminate`], with SIGINT: what Ctrl-C in a terminal sends.
    pub fn interrupt(&mut self, grace: Duration) -> anyhow::Result<ExitStatus> {
        self.signal("INT", grace)
    }

    fn signal(&mut self, signal: &str, grace: Duration) -> anyhow::Result<ExitStatus> {
        if let Some(status) = self.try_wait()? {
            return Ok(status);
        }
        let sent = Command::new("kill")
            .args([&format!("-{signal}"), &self.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .map(|status| status.success())
            .unwrap_or(false);
        if sent && let Some(status) = self.wait_timeout(grace)? {
            return Ok(status);
        }
        self.kill9()
    }

    /// Waits until `addr` accepts TCP connections; fails early, quoting the log, if the
    /// process exits first, and after `timeout` otherwise.
    pub fn wait_for_port(&mut self, addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.try_wait()? {
                bail!(
                    "{} exited ({status}) before listening on {addr}{}",
                    self.name,
                    self.log_tail_section()
                );
            }
            if TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT).is_ok() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!(
                    "{} did not listen on {addr} within {timeout:?}{}",
                    self.name,
                    self.log_tail_section()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// The last few KiB of the log file (empty without one).
    pub fn log_tail(&self) -> String {
        self.log.as_deref().map(log_tail).unwrap_or_default()
    }

    /// `"\n--- tail of <log> ---\n…"` for error messages, or nothing.
    pub(crate) fn log_tail_section(&self) -> String {
        match &self.log {
            Some(path) => format!("\n--- tail of {} ---\n{}", path.display(), log_tail(path)),
            None => String::new(),
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if self.exit.is_none() {
            // Best effort; nothing useful can be done with an error while dropping.
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Waits until `addr` accepts TCP connections, or fails after `timeout`.
pub fn wait_for_port(addr: SocketAddr, timeout: Duration) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(_) => return Ok(()),
            Err(error) if Instant::now() >= deadline => {
                bail!("nothing listened on {addr} within {timeout:?} (last error: {error})")
            }
            Err(_) => thread::sleep(POLL_INTERVAL),
        }
    }
}

/// The last [`LOG_TAIL_BYTES`] of a file, lossily decoded; a note if it cannot be read.
pub(crate) fn log_tail(path: &Path) -> String {
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(LOG_TAIL_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    read().unwrap_or_else(|error| format!("(cannot read {}: {error})", path.display()))
}
