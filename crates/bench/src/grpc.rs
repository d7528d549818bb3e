//! ledgerd's throughput through gRPC bulk submit: ledgerd runs in this process (the same
//! `ledgerd::server::run` the binary runs, on a real sled store in a temp dir) behind real
//! gRPC over loopback; one client streams `commands` invoices in one `SubmitBulk` call. The
//! clock runs from the first command sent to the reply, which comes only after every command
//! is flushed. With a nats-server, the relay runs too, and a second figure times until
//! JetStream holds the last event.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::CommandMeta;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use tokio_util::sync::CancellationToken;

use crate::workload;

/// One run of the gRPC benchmark.
pub struct GrpcRun {
    pub commands: u64,
    /// From the first command sent to the bulk reply.
    pub elapsed: Duration,
    /// From the first command sent until JetStream held the last event, if relaying.
    pub relayed: Option<Duration>,
}

impl GrpcRun {
    pub fn commands_per_second(&self) -> f64 {
        crate::per_second(self.commands, self.elapsed)
    }

    pub fn relayed_per_second(&self) -> Option<f64> {
        self.relayed.map(|d| crate::per_second(self.commands, d))
    }
}

/// Starts ledgerd (relaying to `nats_url` if given), sets up a contract, then bulk-submits
/// `commands` invoices and checks every one was recorded.
pub async fn run(commands: u64, nats_url: Option<String>) -> anyhow::Result<GrpcRun> {
    let dir = tempfile::Builder::new()
        .prefix("bench-ledgerd-")
        .tempdir()?;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = ledgerd::config::Config {
        listen: address,
        data_dir: dir.path().to_path_buf(),
        system: workload::SYSTEM.to_string(),
        nats_url: nats_url.clone(),
        ..ledgerd::config::Config::default()
    };
    let stop = CancellationToken::new();
    let server = tokio::spawn(ledgerd::server::run(
        config,
        listener,
        stop.clone().cancelled_owned(),
    ));

    let result = measure(address, commands, nats_url).await;
    stop.cancel();
    server.await.context("ledgerd task")??;
    result
}

async fn measure(
    address: std::net::SocketAddr,
    commands: u64,
    nats_url: Option<String>,
) -> anyhow::Result<GrpcRun> {
    let mut client = LedgerServiceClient::connect(format!("http://{address}")).await?;
    let setup: Vec<pb::Command> = workload::setup_commands()
        .iter()
        .map(|c| api::command_to_proto(&CommandMeta::random(), c))
        .collect();
    let setup_count = setup.len() as u64;
    client.submit_bulk(futures::stream::iter(setup)).await?;

    let invoices: Vec<pb::Command> = (0..commands)
        .map(|n| api::command_to_proto(&CommandMeta::random(), &workload::invoice_command(n)))
        .collect();
    let started = Instant::now();
    let reply = client
        .submit_bulk(futures::stream::iter(invoices))
        .await?
        .into_inner();
    let elapsed = started.elapsed();
    ensure!(
        reply.accepted == commands && reply.duplicates == 0,
        "{} accepted, {} duplicates of {commands}",
        reply.accepted,
        reply.duplicates
    );
    ensure!(reply.last_sequence == setup_count + commands, "{reply:?}");

    let relayed = match nats_url {
        Some(url) => Some(wait_for_jetstream(&url, reply.last_sequence, started).await?),
        None => None,
    };
    Ok(GrpcRun {
        commands,
        elapsed,
        relayed,
    })
}

/// Waits until the system's JetStream subjects hold `sequence`; the time since `started`.
async fn wait_for_jetstream(
    url: &str,
    sequence: u64,
    started: Instant,
) -> anyhow::Result<Duration> {
    let js = bus::jetstream(bus::connect(url, "bench").await?);
    let system = domain::SystemId::new(workload::SYSTEM).map_err(|e| anyhow::anyhow!("{e}"))?;
    let deadline = Duration::from_secs(600);
    loop {
        // The relay creates the stream when it connects: until then, not there yet.
        if let Ok(Some(last)) = bus::last_published_sequence(&js, bus::STREAM_NAME, &system).await
            && last >= sequence
        {
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < deadline,
            "JetStream did not reach {sequence}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}
