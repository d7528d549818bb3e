//! Appends while the log is being read: how long ledgerd takes to acknowledge single commands
//! while other clients stream the whole log through `ReadStored`, again and again (positiond
//! replicas rebuilding, auditors verifying), against the same commands with nobody reading.
//!
//! ledgerd runs in-process on a tokio runtime of its own (`inproc`), on a store preloaded
//! with the synthetic ICS; the driver, on another runtime, sends `RaiseInvoice` commands on
//! an absolute schedule, each in its own task over one of several connections (so a slow
//! acknowledgement delays no send), and times each acknowledgement. Rounds alternate between
//! no readers and `readers` readers, after one unrecorded warm-up round (the first round
//! after the preload meets the kernel writing the preloaded store back to disk).

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::pb;
use tokio_util::sync::CancellationToken;

use crate::inproc::{self, Ledgerd};
use crate::position::Latency;
use crate::rebuild::StoredPass;
use crate::report::rate;
use crate::synthetic;

/// How much to do.
#[derive(Clone, Copy, Debug)]
pub struct ContentionScale {
    /// Events preloaded: the log the readers stream.
    pub events: u64,
    /// Commands sent a second.
    pub rate: u64,
    /// Commands sent in each round.
    pub commands: u64,
    /// Concurrent readers in the rounds with readers.
    pub readers: usize,
    /// Rounds of each kind (without readers, with them), alternating.
    pub rounds: usize,
}

impl ContentionScale {
    /// The figures in README.md.
    pub const FULL: ContentionScale = ContentionScale {
        events: 300_000,
        rate: 500,
        commands: 2_500,
        readers: 3,
        rounds: 3,
    };

    /// A smoke run.
    pub fn quick() -> ContentionScale {
        ContentionScale {
            events: 5_000,
            rate: 200,
            commands: 100,
            readers: 2,
            rounds: 1,
        }
    }

    /// `BENCH_QUICK=1` selects [`ContentionScale::quick`].
    pub fn from_env() -> ContentionScale {
        if crate::quick_requested() {
            ContentionScale::quick()
        } else {
            ContentionScale::FULL
        }
    }
}

/// One round.
pub struct ContentionRound {
    pub readers: usize,
    pub commands: u64,
    /// Acknowledgement latencies, one per command.
    pub ack: Latency,
    /// Whole-log `ReadStored` passes the readers finished during the round.
    pub passes: u64,
    pub elapsed: Duration,
}

/// Connections the commands are spread over (ledgerd takes 64 calls at once on one).
const CONNECTIONS: usize = 32;

/// Preloads the log, starts ledgerd and runs the warm-up and the rounds.
pub fn run(scale: ContentionScale) -> anyhow::Result<Vec<ContentionRound>> {
    ensure!(
        scale.rate > 0 && scale.commands > 0 && scale.readers > 0,
        "nothing to measure"
    );
    let log = synthetic::generate(scale.events, synthetic::DEFAULT_YEARS)?;
    let dir = tempfile::Builder::new()
        .prefix("bench-contention-")
        .tempdir()?;
    inproc::preload(dir.path(), &log.log, true)?;
    let (contract, period) = inproc::invoice_target(&log.log)?;
    drop(log);
    let ledgerd = Ledgerd::start(dir.path(), "synth", None)?;
    let driver = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("driver")
        .enable_all()
        .build()?;
    let measured = driver.block_on(async {
        let mut clients = Vec::with_capacity(CONNECTIONS);
        for _ in 0..CONNECTIONS {
            clients.push(ledgerd.client().await?);
        }
        let mut driver = Driver {
            ledgerd: &ledgerd,
            clients,
            contract: &contract,
            period,
            sent: 0,
            scale,
        };
        driver.round(scale.readers).await?;
        let mut rounds = Vec::with_capacity(2 * scale.rounds);
        for _ in 0..scale.rounds {
            rounds.push(driver.round(0).await?);
            rounds.push(driver.round(scale.readers).await?);
        }
        let head = ledgerd.client().await?.head(pb::HeadRequest {}).await?;
        let expected = scale.events + driver.sent;
        ensure!(
            head.get_ref().sequence == expected,
            "head {} after {expected} events",
            head.get_ref().sequence
        );
        anyhow::Ok(rounds)
    });
    drop(driver);
    let stopped = ledgerd.stop();
    let rounds = measured?;
    stopped?;
    Ok(rounds)
}

struct Driver<'a> {
    ledgerd: &'a Ledgerd,
    clients: Vec<pb::ledger_service_client::LedgerServiceClient<tonic::transport::Channel>>,
    contract: &'a domain::Code,
    period: domain::Period,
    /// Commands sent so far (each a new invoice).
    sent: u64,
    scale: ContentionScale,
}

impl Driver<'_> {
    async fn round(&mut self, readers: usize) -> anyhow::Result<ContentionRound> {
        let stop = CancellationToken::new();
        let mut reading = Vec::with_capacity(readers);
        for _ in 0..readers {
            let client = self.ledgerd.client().await?;
            reading.push(tokio::spawn(read_until(client, stop.clone())));
        }
        // Let the readers get going before the first command.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let every = Duration::from_secs(1) / u32::try_from(self.scale.rate)?;
        let started = tokio::time::Instant::now();
        let mut sends = Vec::with_capacity(usize::try_from(self.scale.commands)?);
        for n in 0..self.scale.commands {
            tokio::time::sleep_until(started + every * u32::try_from(n)?).await;
            self.sent += 1;
            let command = inproc::invoice_command(
                self.contract,
                self.period,
                &format!("CONTENTION-{}", self.sent),
            )?;
            let request = crate::lag::raise_invoice(&command)?;
            let mut client = self.clients[usize::try_from(n)? % self.clients.len()].clone();
            sends.push(tokio::spawn(async move {
                let sent = Instant::now();
                let reply = client.raise_invoice(request).await?.into_inner();
                let took = sent.elapsed();
                ensure!(
                    !reply.duplicate && reply.first_sequence == reply.last_sequence,
                    "{reply:?}"
                );
                anyhow::Ok(took)
            }));
        }
        let mut ack = Vec::with_capacity(sends.len());
        for send in sends {
            ack.push(send.await.context("a send task")??);
        }
        let elapsed = started.elapsed();
        stop.cancel();
        let mut passes = 0;
        for reader in reading {
            passes += reader.await.context("a reader task")??;
        }
        Ok(ContentionRound {
            readers,
            commands: self.scale.commands,
            ack: Latency::new(ack),
            passes,
            elapsed,
        })
    }
}

/// Streams the whole log through `ReadStored` until stopped, checking each pass is gapless;
/// returns the passes finished.
async fn read_until(
    mut client: pb::ledger_service_client::LedgerServiceClient<tonic::transport::Channel>,
    stop: CancellationToken,
) -> anyhow::Result<u64> {
    let mut passes = 0;
    while !stop.is_cancelled() {
        let mut pass = StoredPass::start(&mut client).await?;
        let mut finished = true;
        while pass.next().await?.is_some() {
            if stop.is_cancelled() {
                finished = false;
                break;
            }
        }
        if finished {
            passes += 1;
        }
    }
    Ok(passes)
}

/// One row per round.
pub fn table(scale: ContentionScale, rounds: &[ContentionRound]) -> String {
    use std::fmt::Write as _;
    let ms = |d: Duration| format!("{:.1}", d.as_secs_f64() * 1e3);
    let mut out = String::from(
        "| readers streaming the log | commands at /s | ack p50 ms | ack p90 ms | ack p99 ms | ack max ms | whole-log passes read | events read /s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for round in rounds {
        let read = (round.passes * scale.events) as f64 / round.elapsed.as_secs_f64();
        let _ = writeln!(
            out,
            "| {} | {} at {} | {} | {} | {} | {} | {} | {} |",
            round.readers,
            rate(round.commands as f64),
            rate(scale.rate as f64),
            ms(round.ack.p50()),
            ms(round.ack.percentile(90.0)),
            ms(round.ack.p99()),
            ms(round.ack.max()),
            round.passes,
            if round.readers == 0 {
                "—".to_string()
            } else {
                rate(read)
            },
        );
    }
    out
}
