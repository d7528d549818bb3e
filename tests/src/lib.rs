//! Support for the end-to-end tests in `tests/tests/`: a real `ledgerd` process on a free
//! loopback port with its own sled directory, a gRPC client to it, and the demo scenario;
//! [`faults`], the fault trials the fault suite and the soak (`src/bin/soak.rs`) run.
//!
//! Binaries must be built first (`cargo build --bins`; `make test` does it).

pub mod faults;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use anyhow::Context;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use testkit::ChildGuard;
use tonic::transport::Channel;

/// How long a freshly started ledgerd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `ledgerd` binary; killed on drop.
pub struct Ledgerd {
    process: ChildGuard,
    addr: SocketAddr,
    data_dir: PathBuf,
    nats_url: Option<String>,
    log_dir: PathBuf,
    starts: u32,
    /// Extra `LEDGERD_*` environment (configuration beyond the flags).
    env: Vec<(String, String)>,
}

impl Ledgerd {
    /// Starts ledgerd with its store in `data_dir`, relaying to `nats_url` if given.
    pub fn start(data_dir: &Path, nats_url: Option<&str>) -> anyhow::Result<Self> {
        Ledgerd::start_with(data_dir, nats_url, &[])
    }

    /// [`Ledgerd::start`] with more configuration as environment variables
    /// (`LEDGERD_CHECKPOINT_KEY`, …), kept for restarts.
    pub fn start_with(
        data_dir: &Path,
        nats_url: Option<&str>,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let log_dir = data_dir.with_extension("logs");
        std::fs::create_dir_all(&log_dir)?;
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let process = spawn(
            addr,
            data_dir,
            nats_url,
            &env,
            &log_dir.join("ledgerd-1.log"),
        )?;
        Ok(Ledgerd {
            process,
            addr,
            data_dir: data_dir.to_path_buf(),
            nats_url: nats_url.map(str::to_string),
            log_dir,
            starts: 1,
            env,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        let channel = Channel::from_shared(self.url())?
            .connect()
            .await
            .context("connecting to ledgerd")?;
        Ok(LedgerServiceClient::new(channel))
    }

    /// SIGKILL: no shutdown, no final flush.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill9().map(|_| ())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(20))
    }

    /// SIGINT (Ctrl-C) and wait for a clean exit.
    pub fn interrupt(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.process.interrupt(Duration::from_secs(20))
    }

    /// Starts it again on the same port and data directory (after a kill or terminate).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        let log = self.log_dir.join(format!("ledgerd-{}.log", self.starts));
        self.process = spawn(
            self.addr,
            &self.data_dir,
            self.nats_url.as_deref(),
            &self.env,
            &log,
        )?;
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Its exit status if it has exited (`None`: still running).
    pub fn exited(&mut self) -> anyhow::Result<Option<std::process::ExitStatus>> {
        self.process.try_wait()
    }

    /// The text of every log it wrote, each start's in turn.
    pub fn logs(&self) -> anyhow::Result<String> {
        let mut text = String::new();
        for start in 1..=self.starts {
            text.push_str(&std::fs::read_to_string(
                self.log_dir.join(format!("ledgerd-{start}.log")),
            )?);
        }
        Ok(text)
    }
}

fn spawn(
    addr: SocketAddr,
    data_dir: &Path,
    nats_url: Option<&str>,
    env: &[(String, String)],
    log: &Path,
) -> anyhow::Result<ChildGuard> {
    let binary = testkit::workspace_binary("ledgerd")?;
    let mut command = Command::new(binary);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(data_dir)
        .arg("--system")
        .arg("kav");
    if let Some(url) = nats_url {
        command.arg("--nats-url").arg(url);
    }
    command.env("RUST_LOG", "info");
    command.envs(env.iter().map(|(k, v)| (k, v)));
    let mut process = ChildGuard::spawn_logged("ledgerd", &mut command, log)?;
    process.wait_for_port(addr, START_TIMEOUT)?;
    Ok(process)
}

/// The demo scenario of BRIEF.md §8, as a path.
pub fn demo_scenario() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/demo/kingsmere-2018-19.ics")
}

/// Splits the demo scenario after `at` commands into two files in `dir`, to load in two parts.
pub fn split_demo_scenario(dir: &Path, at: usize) -> anyhow::Result<(PathBuf, PathBuf)> {
    let text = std::fs::read_to_string(demo_scenario())?;
    let (mut first, mut second) = (String::new(), String::new());
    let mut commands = 0;
    for line in text.lines() {
        let part = if commands < at {
            &mut first
        } else {
            &mut second
        };
        part.push_str(line);
        part.push('\n');
        if !line.trim().is_empty() && !line.trim_start().starts_with('#') {
            commands += 1;
        }
    }
    let (a, b) = (dir.join("part-1.ics"), dir.join("part-2.ics"));
    std::fs::write(&a, first)?;
    std::fs::write(&b, second)?;
    Ok((a, b))
}

/// Runs the real `icsctl` binary against `server`; returns its stdout, or the error with stderr.
pub fn icsctl(server: &str, args: &[&str]) -> anyhow::Result<String> {
    let binary = testkit::workspace_binary("icsctl")?;
    let output = Command::new(binary)
        .arg("--server")
        .arg(server)
        .args(args)
        .output()?;
    if !output.status.success() {
        anyhow::bail!(
            "icsctl {args:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(String::from_utf8(output.stdout)?)
}

/// Runs the real `icsctl` binary with `args` as given (no `--server` added); returns whether
/// it succeeded and its stdout and stderr together.
pub fn icsctl_outcome(args: &[&str]) -> anyhow::Result<(bool, String)> {
    let (code, text) = icsctl_exit(args)?;
    Ok((code == Some(0), text))
}

/// Like [`icsctl_outcome`], with the exit status itself: 0 done, 1 an audit refuted what it
/// checked, 2 any other failure (`None`: killed by a signal).
pub fn icsctl_exit(args: &[&str]) -> anyhow::Result<(Option<i32>, String)> {
    let binary = testkit::workspace_binary("icsctl")?;
    let output = Command::new(binary).args(args).output()?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok((output.status.code(), text))
}

/// Runs the real `icsctl` binary against `server` whatever its exit status: for commands whose
/// failure is the point (an audit that does not match).
pub fn icsctl_output(server: &str, args: &[&str]) -> anyhow::Result<std::process::Output> {
    let binary = testkit::workspace_binary("icsctl")?;
    Ok(Command::new(binary)
        .arg("--server")
        .arg(server)
        .args(args)
        .output()?)
}

pub async fn head(client: &mut LedgerServiceClient<Channel>) -> anyhow::Result<pb::HeadReply> {
    Ok(client.head(pb::HeadRequest {}).await?.into_inner())
}

/// Every event of the log, in order.
pub async fn read_all(
    client: &mut LedgerServiceClient<Channel>,
) -> anyhow::Result<Vec<pb::RecordedEvent>> {
    read_log(client, 1, 0).await
}

/// The events of the log from `from_sequence`, at most `limit` (0: all), in order.
pub async fn read_log(
    client: &mut LedgerServiceClient<Channel>,
    from_sequence: u64,
    limit: u64,
) -> anyhow::Result<Vec<pb::RecordedEvent>> {
    use futures::StreamExt;
    let mut stream = client
        .read_all(pb::ReadAllRequest {
            from_sequence,
            limit,
            follow: false,
        })
        .await?
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = stream.next().await {
        events.push(event?);
    }
    Ok(events)
}

/// Checks the chain of `events` (as served over gRPC): gapless sequences from 1 and each
/// event's `prev_hash` equal to the previous event's `hash`.
pub fn assert_chain_links(events: &[pb::RecordedEvent]) {
    let mut prev = vec![0u8; 32];
    for (index, event) in events.iter().enumerate() {
        assert_eq!(event.sequence, index as u64 + 1, "sequence gap");
        assert_eq!(
            event.prev_hash, prev,
            "chain broken at sequence {}",
            event.sequence
        );
        prev = event.hash.clone();
    }
}

/// One message JetStream holds.
#[derive(Clone, Debug)]
pub struct Published {
    /// `Ics-Sequence`.
    pub sequence: u64,
    /// `Ics-Hash`.
    pub hash: [u8; 32],
    /// `Nats-Msg-Id`.
    pub event_id: String,
    /// `Nats-Batch-Id`: the atomic batch that stored it, if the relay sent it in one.
    pub batch: Option<String>,
    /// `ics.<system>.<family>.<event>`.
    pub subject: String,
    /// The payload, decoded.
    pub event: pb::RecordedEvent,
}

/// Every message JetStream holds for system `kav`, in stream order.
pub async fn jetstream_events(nats_url: &str) -> anyhow::Result<Vec<Published>> {
    use futures::StreamExt;
    let client = bus::connect(nats_url, "e2e-reader").await?;
    let js = bus::jetstream(client);
    let stream = js.get_stream(bus::STREAM_NAME).await?;
    let info = stream.get_info().await?;
    let consumer = stream
        .create_consumer(async_nats::jetstream::consumer::pull::OrderedConfig {
            filter_subject: "ics.kav.>".to_string(),
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut events = Vec::new();
    let total = info.state.messages;
    while (events.len() as u64) < total {
        let message = tokio::time::timeout(Duration::from_secs(10), messages.next())
            .await
            .context("timed out reading JetStream")?
            .context("JetStream consumer ended")??;
        let raw = message
            .headers
            .as_ref()
            .context("message without headers")?;
        let headers = bus::decode_headers(raw)?;
        events.push(Published {
            sequence: headers.sequence,
            hash: headers.hash,
            event_id: headers.event_id,
            batch: raw
                .get(bus::HEADER_BATCH_ID)
                .map(|id| id.as_str().to_string()),
            subject: message.subject.to_string(),
            event: prost::Message::decode(message.payload.clone())
                .context("a payload that is not a RecordedEvent")?,
        });
    }
    Ok(events)
}

/// How `user` of the shipped permissions connects to `nats` (started with
/// `NatsOptions::shipped()`): its nkey and inbox prefix.
pub fn nats_credentials(
    nats: &testkit::NatsServer,
    user: &str,
) -> anyhow::Result<bus::Credentials> {
    let user = nats.user(user)?;
    Ok(bus::Credentials::nkey_seed_file(&user.seed_file)?.with_inbox_prefix(&user.inbox_prefix)?)
}

/// Pairs as the services' `start_with` take them.
pub fn env_refs(env: &[(String, String)]) -> Vec<(&str, &str)> {
    env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect()
}

/// Waits until JetStream holds `sequence` for system `kav`.
pub async fn wait_for_relay(
    nats_url: &str,
    sequence: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    wait_for_relay_as(nats_url, &bus::Credentials::default(), sequence, timeout).await
}

/// [`wait_for_relay`], connecting to NATS as `credentials` (e.g. the shipped `reader`).
pub async fn wait_for_relay_as(
    nats_url: &str,
    credentials: &bus::Credentials,
    sequence: u64,
    timeout: Duration,
) -> anyhow::Result<()> {
    let client = bus::connect_with(nats_url, "e2e-wait", credentials).await?;
    let js = bus::jetstream(client);
    let system = domain::SystemId::new("kav").map_err(|e| anyhow::anyhow!("{e}"))?;
    let started = std::time::Instant::now();
    loop {
        if let Ok(Some(last)) = bus::last_published_sequence(&js, bus::STREAM_NAME, &system).await
            && last >= sequence
        {
            return Ok(());
        }
        if started.elapsed() > timeout {
            anyhow::bail!("JetStream did not reach sequence {sequence} within {timeout:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A running `positiond` binary folding system `kav`; killed on drop.
pub struct Positiond {
    process: ChildGuard,
    addr: SocketAddr,
    args: PositiondArgs,
    starts: u32,
}

#[derive(Clone)]
struct PositiondArgs {
    data_dir: PathBuf,
    nats_url: String,
    ledgerd_url: String,
    consumer: String,
    /// Extra `POSITIOND_*` environment (configuration beyond the flags).
    env: Vec<(String, String)>,
}

impl Positiond {
    /// Starts positiond with its own sled in `data_dir` and durable consumer `consumer`.
    pub fn start(
        data_dir: &Path,
        nats_url: &str,
        ledgerd_url: &str,
        consumer: &str,
    ) -> anyhow::Result<Self> {
        Positiond::start_with(data_dir, nats_url, ledgerd_url, consumer, &[])
    }

    /// [`Positiond::start`] with more configuration as environment variables
    /// (`POSITIOND_NATS_NKEY_SEED_FILE`, …), kept for restarts.
    pub fn start_with(
        data_dir: &Path,
        nats_url: &str,
        ledgerd_url: &str,
        consumer: &str,
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let args = PositiondArgs {
            data_dir: data_dir.to_path_buf(),
            nats_url: nats_url.to_string(),
            ledgerd_url: ledgerd_url.to_string(),
            consumer: consumer.to_string(),
            env: env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let process = spawn_positiond(addr, &args, 1)?;
        Ok(Positiond {
            process,
            addr,
            args,
            starts: 1,
        })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(&self) -> anyhow::Result<PositionServiceClient<Channel>> {
        let channel = Channel::from_shared(self.url())?
            .connect()
            .await
            .context("connecting to positiond")?;
        Ok(PositionServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
    }

    /// SIGKILL: no final checkpoint.
    pub fn kill9(&mut self) -> anyhow::Result<()> {
        self.process.kill9().map(|_| ())
    }

    /// SIGTERM and wait for a clean exit.
    pub fn terminate(&mut self) -> anyhow::Result<std::process::ExitStatus> {
        self.process.terminate(Duration::from_secs(20))
    }

    /// Starts it again on the same port, data directory and consumer.
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.starts += 1;
        self.process = spawn_positiond(self.addr, &self.args, self.starts)?;
        Ok(())
    }

    pub fn log_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Waits until positiond has folded `sequence`; returns its status.
    pub async fn wait_for(
        &self,
        sequence: u64,
        timeout: Duration,
    ) -> anyhow::Result<api::position_pb::StatusReply> {
        let started = std::time::Instant::now();
        loop {
            if let Ok(mut client) = self.client().await
                && let Ok(status) = client.get_status(api::position_pb::StatusRequest {}).await
                && status.get_ref().sequence >= sequence
            {
                return Ok(status.into_inner());
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "positiond did not fold sequence {sequence} within {timeout:?}; its log:\n{}",
                    self.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

use api::position_pb::position_service_client::PositionServiceClient;

fn spawn_positiond(
    addr: SocketAddr,
    args: &PositiondArgs,
    start: u32,
) -> anyhow::Result<ChildGuard> {
    let binary = testkit::workspace_binary("positiond")?;
    let log_dir = args.data_dir.with_extension("logs");
    std::fs::create_dir_all(&log_dir)?;
    let mut command = Command::new(binary);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(&args.data_dir)
        .arg("--system")
        .arg("kav")
        .arg("--nats-url")
        .arg(&args.nats_url)
        .arg("--ledgerd-url")
        .arg(&args.ledgerd_url)
        .arg("--consumer")
        .arg(&args.consumer)
        .env("RUST_LOG", "info")
        .envs(args.env.iter().map(|(k, v)| (k, v)));
    let log = log_dir.join(format!("positiond-{start}.log"));
    let mut process = ChildGuard::spawn_logged("positiond", &mut command, &log)?;
    process.wait_for_port(addr, START_TIMEOUT)?;
    Ok(process)
}

/// A running `oversightd` binary following every system on a NATS server; killed on drop.
pub struct Oversightd {
    process: ChildGuard,
    addr: SocketAddr,
}

impl Oversightd {
    /// Starts oversightd with its own sled in `data_dir`, filling gaps from `ledgerds`
    /// (system, URL).
    pub fn start(
        data_dir: &Path,
        nats_url: &str,
        ledgerds: &[(&str, String)],
    ) -> anyhow::Result<Self> {
        Oversightd::start_with(data_dir, nats_url, ledgerds, &[])
    }

    /// [`Oversightd::start`] with more configuration as environment variables
    /// (`OVERSIGHTD_CHECKPOINT_KEYS`, …).
    pub fn start_with(
        data_dir: &Path,
        nats_url: &str,
        ledgerds: &[(&str, String)],
        env: &[(&str, &str)],
    ) -> anyhow::Result<Self> {
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let log_dir = data_dir.with_extension("logs");
        std::fs::create_dir_all(&log_dir)?;
        let binary = testkit::workspace_binary("oversightd")?;
        let mut command = Command::new(binary);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--nats-url")
            .arg(nats_url)
            .env("RUST_LOG", "info");
        for (system, url) in ledgerds {
            command.arg("--ledgerd").arg(format!("{system}={url}"));
        }
        command.envs(env.iter().copied());
        let mut process =
            ChildGuard::spawn_logged("oversightd", &mut command, &log_dir.join("oversightd.log"))?;
        process.wait_for_port(addr, START_TIMEOUT)?;
        Ok(Oversightd { process, addr })
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub async fn client(
        &self,
    ) -> anyhow::Result<api::oversight_pb::oversight_service_client::OversightServiceClient<Channel>>
    {
        let channel = Channel::from_shared(format!("http://{}", self.addr))?
            .connect()
            .await
            .context("connecting to oversightd")?;
        Ok(api::oversight_pb::oversight_service_client::OversightServiceClient::new(channel))
    }

    /// Waits until oversightd has folded `system` to `sequence`.
    pub async fn wait_for(
        &self,
        system: &str,
        sequence: u64,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let started = std::time::Instant::now();
        loop {
            if let Ok(mut client) = self.client().await
                && let Ok(reply) = client
                    .list_systems(api::oversight_pb::ListSystemsRequest {})
                    .await
                && reply.get_ref().systems.iter().any(|s| {
                    s.system == system && s.folded.as_ref().is_some_and(|f| f.sequence >= sequence)
                })
            {
                return Ok(());
            }
            if started.elapsed() > timeout {
                anyhow::bail!(
                    "oversightd did not fold {system} to {sequence} within {timeout:?}; its log:\n{}",
                    self.process.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// The domain's own fold of the log as ledgerd serves it: what positiond and `icsctl audit
/// replay` must agree with.
pub fn fold(events: &[pb::RecordedEvent]) -> anyhow::Result<domain::position::Projection> {
    let mut projection = domain::position::Projection::new();
    for recorded in events {
        let event = api::event_from_proto(recorded.event.clone().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("event {}: {e}", recorded.sequence))?;
        projection.apply(
            &domain::position::Recorded {
                sequence: recorded.sequence,
                recorded_at_us: recorded.recorded_at_us,
            },
            &event,
        )?;
    }
    Ok(projection)
}

/// The demo's quarterly tranche assessments in order: each one's sequence and when it was
/// recorded.
pub fn assessments(events: &[pb::RecordedEvent]) -> Vec<(u64, i64)> {
    events
        .iter()
        .filter(|e| e.event_type == "funding.tranche_assessed")
        .map(|e| (e.sequence, e.recorded_at_us))
        .collect()
}

/// What ledgerd did when started on a data directory.
pub enum Started {
    /// It exited: its status, and what it printed.
    Exited(Option<i32>, String),
    /// It answers gRPC: the process (killed when dropped), a client and its head.
    Serving(Box<Serving>),
}

/// A ledgerd that answered when started by [`start_on`].
pub struct Serving {
    pub process: ChildGuard,
    pub client: LedgerServiceClient<Channel>,
    pub head: pb::HeadReply,
}

/// Starts ledgerd (no NATS) on `dir` and waits until it exits or answers; its output goes to
/// `<dir>.log`. ledgerd listens before it opens its store, so serving means answering, not
/// accepting.
pub async fn start_on(dir: &Path) -> anyhow::Result<Started> {
    let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let mut command = Command::new(testkit::workspace_binary("ledgerd")?);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir)
        .args(["--system", "kav"])
        .env("RUST_LOG", "info");
    let log = dir.with_extension("log");
    let mut process = ChildGuard::spawn_logged("ledgerd", &mut command, &log)?;
    let started = std::time::Instant::now();
    loop {
        if let Some(status) = process.try_wait()? {
            return Ok(Started::Exited(
                status.code(),
                std::fs::read_to_string(&log)?,
            ));
        }
        if let Ok(channel) = Channel::from_shared(format!("http://{addr}"))?
            .connect()
            .await
        {
            let mut client = LedgerServiceClient::new(channel);
            if let Ok(head) = head(&mut client).await {
                return Ok(Started::Serving(Box::new(Serving {
                    process,
                    client,
                    head,
                })));
            }
        }
        anyhow::ensure!(
            started.elapsed() < START_TIMEOUT,
            "ledgerd on {} neither served nor exited within {START_TIMEOUT:?}",
            dir.display()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
/// The last invoice a log raised, as ledgerd served it.
pub struct RaisedInvoice {
    pub stream: String,
    pub event_type: String,
    pub contract: domain::Code,
    pub invoice: domain::Code,
    pub period: domain::Period,
}

impl RaisedInvoice {
    /// An invoice on the same contract and period, numbered `invoice`, for `amount`.
    pub fn again(
        &self,
        invoice: domain::Code,
        amount: domain::Pence,
    ) -> store::NewEvent<domain::Event> {
        store::NewEvent {
            event_id: *uuid::Uuid::new_v4().as_bytes(),
            event_type: self.event_type.clone(),
            effective_period: Some(self.period),
            payload: domain::Event::Contract {
                contract: self.contract.clone(),
                event: domain::ContractEvent::InvoiceRaised {
                    invoice,
                    period: self.period,
                    amount,
                    corrects: None,
                },
            },
        }
    }
}

/// The last invoice `log` raises.
pub fn last_invoice(log: &[pb::RecordedEvent]) -> anyhow::Result<RaisedInvoice> {
    let last = log
        .iter()
        .rev()
        .find(|e| e.event_type == "contract.invoice_raised")
        .context("the log raises no invoice")?;
    let event = api::event_from_proto(last.event.clone().unwrap_or_default())
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let domain::Event::Contract {
        contract,
        event: domain::ContractEvent::InvoiceRaised {
            invoice, period, ..
        },
    } = event
    else {
        anyhow::bail!("not an invoice: {event:?}");
    };
    Ok(RaisedInvoice {
        stream: last.stream.clone(),
        event_type: last.event_type.clone(),
        contract,
        invoice,
        period,
    })
}

/// A code for a test's events, or the error.
pub fn code(text: &str) -> anyhow::Result<domain::Code> {
    domain::Code::new(text).map_err(|e| anyhow::anyhow!("{e}"))
}

/// Appends `events` to `stream` of the stopped ledgerd's store in `dir`, as one request of an
/// older ledgerd that accepted them would have (whatever today's rules say of them), and
/// flushes. Returns the sequence of the first.
pub async fn append_as_older_ledgerd(
    dir: &Path,
    stream: &str,
    events: Vec<store::NewEvent<domain::Event>>,
) -> anyhow::Result<u64> {
    let store = store::EventStore::<domain::Event>::open(store::StoreConfig::new(dir))?;
    let version = store.stream_version(stream)?;
    let outcome = store
        .append(store::AppendRequest {
            request_id: *uuid::Uuid::new_v4().as_bytes(),
            command_hash: [0; 32],
            stream: stream.to_string(),
            stream_version: version,
            actor: "ledgerd-older-version".to_string(),
            correlation_id: *uuid::Uuid::new_v4().as_bytes(),
            events,
        })
        .await?;
    store.flush()?;
    Ok(outcome.first_sequence)
}

/// Appends to the stopped ledgerd's store in `dir`, as an older ledgerd that accepted them
/// would have, two invoices of `i64::MAX` pence on the contract and period of the log's last
/// invoice: ledgerd's rules apply them, the position fold overflows on one. Returns the
/// sequence of the first.
pub async fn write_unfoldable_invoices(
    dir: &Path,
    log: &[pb::RecordedEvent],
) -> anyhow::Result<u64> {
    let last = last_invoice(log)?;
    let events = vec![
        last.again(code("OLD-MAX-1")?, domain::Pence::MAX),
        last.again(code("OLD-MAX-2")?, domain::Pence::MAX),
    ];
    append_as_older_ledgerd(dir, &last.stream, events).await
}

/// A ledger checkpoint key pair made by `icsctl keys generate --name ledger-checkpoint` in
/// `dir`: the paths of the private key (ledgerd's `checkpoint_key`) and of the public one (what
/// auditors, oversightd and `icsctl store restore` check against).
pub fn ledger_checkpoint_keys(dir: &Path) -> anyhow::Result<(String, String)> {
    let (ok, out) = icsctl_outcome(&[
        "keys",
        "generate",
        "--dir",
        &dir.to_string_lossy(),
        "--name",
        "ledger-checkpoint",
    ])?;
    anyhow::ensure!(ok, "{out}");
    let path = |name: &str| dir.join(name).to_string_lossy().to_string();
    Ok((
        path("ledger-checkpoint.pem"),
        path("ledger-checkpoint.pub.pem"),
    ))
}
