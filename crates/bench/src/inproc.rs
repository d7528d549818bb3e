//! ledgerd and positiond in this process, each on its own tokio runtime (as two processes
//! would each have their own), behind real gRPC over loopback; and a ledger preloaded with a
//! long log appended straight to its event store.
//!
//! Both run the very `server::run` their binaries run, with the binaries' defaults except for
//! the addresses, data directories and system.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use api::pb::ledger_service_client::LedgerServiceClient;
use api::position_pb::position_service_client::PositionServiceClient;
use domain::Event;
use domain::position::Recorded;
use store::{AppendRequest, EventStore, StoreConfig};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

/// A runtime of its own for one service.
fn runtime(name: &str) -> anyhow::Result<Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name(name)
        .build()?)
}

/// A service running on its own runtime until [`Service::stop`].
struct Service {
    runtime: Runtime,
    stop: CancellationToken,
    task: JoinHandle<anyhow::Result<()>>,
}

impl Service {
    fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        let result = self.runtime.block_on(self.task);
        // Dropped here, outside any runtime: its worker threads end.
        drop(self.runtime);
        result.context("the service's task")?
    }

    fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

/// ledgerd in-process.
pub struct Ledgerd {
    service: Service,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
}

impl Ledgerd {
    /// Starts ledgerd on the store in `dir` for `system`, relaying to `nats_url` if given.
    pub fn start(dir: &Path, system: &str, nats_url: Option<String>) -> anyhow::Result<Ledgerd> {
        Self::start_with(dir, system, nats_url, |_| {})
    }

    /// [`Ledgerd::start`] with the binary's defaults changed by `adjust`.
    pub fn start_with(
        dir: &Path,
        system: &str,
        nats_url: Option<String>,
        adjust: impl FnOnce(&mut ledgerd::config::Config),
    ) -> anyhow::Result<Ledgerd> {
        let runtime = runtime("ledgerd")?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let address = listener.local_addr()?;
        let mut config = ledgerd::config::Config {
            listen: address,
            data_dir: dir.to_path_buf(),
            system: system.to_string(),
            nats_url,
            ..ledgerd::config::Config::default()
        };
        adjust(&mut config);
        let stop = CancellationToken::new();
        let task = runtime.spawn(ledgerd::server::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        Ok(Ledgerd {
            service: Service {
                runtime,
                stop,
                task,
            },
            url: format!("http://{address}"),
        })
    }

    /// A client, once ledgerd answers (it first replays its whole log).
    pub async fn client(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        let started = Instant::now();
        loop {
            ensure!(!self.service.is_finished(), "ledgerd stopped");
            if let Ok(client) = LedgerServiceClient::connect(self.url.clone()).await {
                return Ok(client.max_decoding_message_size(64 * 1024 * 1024));
            }
            ensure!(
                started.elapsed() < Duration::from_secs(600),
                "ledgerd did not come up"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops it gracefully (it flushes its store).
    pub fn stop(self) -> anyhow::Result<()> {
        self.service.stop()
    }
}

/// How a positiond is set up.
pub struct PositiondSetup<'a> {
    pub data_dir: &'a Path,
    pub system: &'a str,
    pub nats_url: String,
    pub ledgerd_url: String,
    /// Its durable JetStream consumer.
    pub consumer: &'a str,
}

/// positiond in-process.
pub struct Positiond {
    service: Service,
    /// `http://127.0.0.1:<port>`.
    pub url: String,
    pub data_dir: PathBuf,
    /// When `positiond::server::run` was spawned.
    pub started: Instant,
}

impl Positiond {
    /// Starts positiond with the binary's defaults (checkpoint every 10,000 events or 200 ms,
    /// never more than a tenth of the time; pulls of 512).
    pub fn start(setup: PositiondSetup<'_>) -> anyhow::Result<Positiond> {
        let runtime = runtime("positiond")?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let address = listener.local_addr()?;
        let config = positiond::config::Config {
            listen: address,
            data_dir: setup.data_dir.to_path_buf(),
            system: setup.system.to_string(),
            nats_url: setup.nats_url,
            ledgerd_url: setup.ledgerd_url,
            consumer: setup.consumer.to_string(),
            stream_name: bus::STREAM_NAME.to_string(),
            ..positiond::config::Config::default()
        };
        let stop = CancellationToken::new();
        let started = Instant::now();
        let task = runtime.spawn(positiond::server::run(
            config,
            listener,
            stop.clone().cancelled_owned(),
        ));
        Ok(Positiond {
            service: Service {
                runtime,
                stop,
                task,
            },
            url: format!("http://{address}"),
            data_dir: setup.data_dir.to_path_buf(),
            started,
        })
    }

    /// A client, once positiond answers.
    pub async fn client(&self) -> anyhow::Result<PositionServiceClient<Channel>> {
        let started = Instant::now();
        loop {
            ensure!(!self.service.is_finished(), "positiond stopped");
            if let Ok(client) = PositionServiceClient::connect(self.url.clone()).await {
                return Ok(client);
            }
            ensure!(
                started.elapsed() < Duration::from_secs(60),
                "positiond did not come up"
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub fn is_running(&self) -> bool {
        !self.service.is_finished()
    }

    /// Stops it gracefully (it checkpoints).
    pub fn stop(self) -> anyhow::Result<()> {
        self.service.stop()
    }
}

/// Appends `log` to a new event store in `dir`, as ledgerd would have recorded it: each run
/// of consecutive events of one stream (at most 1,000) as one request, many requests in
/// flight so the store's group commit forms large batches. The store stamps its own
/// recorded-at times (now) and chains the events. Returns how long it took; checks the head.
///
/// With `relayed`, ledgerd's relay cursor is set to the head, as if the relay had already
/// published the whole log to JetStream: a ledgerd started on it relays only what comes
/// after (publishing a million events to a nats-server that fsyncs each one takes tens of
/// minutes on a small machine, and a positiond that follows the stream's tail does not read
/// what lies before it).
pub fn preload(dir: &Path, log: &[(Recorded, Event)], relayed: bool) -> anyhow::Result<Duration> {
    const RUN_MAX: usize = 1_000;
    const IN_FLIGHT: usize = 64;
    let started = Instant::now();
    let store = EventStore::<Event>::open(StoreConfig::new(dir))?;
    ensure!(store.head().sequence == 0, "{} is not empty", dir.display());
    let mut pending = std::collections::VecDeque::new();
    let mut versions = std::collections::HashMap::new();
    let mut rest = log;
    while let Some((_, first)) = rest.first() {
        let stream = first.stream();
        let run = rest
            .iter()
            .take(RUN_MAX)
            .take_while(|(_, event)| event.stream() == stream)
            .count();
        let (now, later) = rest.split_at(run);
        rest = later;
        let version = versions.entry(stream.clone()).or_insert(0u64);
        let stream_version = *version;
        *version += now.len() as u64;
        let request = AppendRequest {
            request_id: *uuid::Uuid::new_v4().as_bytes(),
            command_hash: [0; 32],
            stream: stream.to_string(),
            stream_version,
            actor: "bench-preload".to_string(),
            correlation_id: *uuid::Uuid::new_v4().as_bytes(),
            events: now
                .iter()
                .map(|(_, payload)| ledgerd::ledger::new_event(payload))
                .collect(),
        };
        pending.push_back(store.enqueue(request)?);
        if pending.len() >= IN_FLIGHT
            && let Some(oldest) = pending.pop_front()
        {
            oldest.wait()?;
        }
    }
    for append in pending {
        append.wait()?;
    }
    let head = store.head().sequence;
    if relayed {
        store.set_cursor(ledgerd::relay::CURSOR, head)?;
    }
    store.flush()?;
    ensure!(
        head == log.len() as u64,
        "preloaded {head} events of {}",
        log.len()
    );
    Ok(started.elapsed())
}

/// A domain command the preloaded synthetic ledger accepts, `RaiseInvoice` of invoice
/// `code` on a contract of the log's last year in its latest open month: found by replaying
/// the log into the domain's ledger and asking it.
pub fn invoice_target(log: &[(Recorded, Event)]) -> anyhow::Result<(domain::Code, domain::Period)> {
    let mut ledger = domain::Ledger::default();
    for (at, event) in log {
        ledger
            .apply(event)
            .map_err(|e| anyhow!("event {}: {e}", at.sequence))?;
    }
    let last_year = ledger
        .contracts
        .values()
        .map(|c| c.year)
        .max()
        .context("the log has no contract")?;
    for month in (1..=12).rev() {
        let period = domain::Period::new(last_year, domain::Month::new(month)?);
        for code in ledger.contracts.keys() {
            let probe = invoice_command(code, period, "LAG-PROBE")?;
            if ledger.decide(&probe).is_ok() {
                return Ok((code.clone(), period));
            }
        }
    }
    anyhow::bail!("no contract of {last_year} takes an invoice")
}

/// `RaiseInvoice` of `invoice` (£1,000.00) on `contract` for `period`.
pub fn invoice_command(
    contract: &domain::Code,
    period: domain::Period,
    invoice: &str,
) -> anyhow::Result<domain::Command> {
    Ok(domain::Command::Contract {
        contract: contract.clone(),
        command: domain::ContractCommand::RaiseInvoice {
            invoice: domain::Code::new(invoice).map_err(|e| anyhow!("{e}"))?,
            period,
            amount: domain::Pence::new(100_000),
            corrects: None,
        },
    })
}
