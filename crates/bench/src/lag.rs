//! How far positiond trails ledgerd: from the moment a command's acknowledgement reaches the
//! client (the events are flushed) to the moment positiond's `GetStatus` first reports a
//! sequence at or past it.
//!
//! ledgerd and positiond run in this process ([`crate::inproc`]), each on its own runtime,
//! with ledgerd's relay publishing to a real nats-server and positiond following it with its
//! durable JetStream consumer, all over loopback. A driver submits single `RaiseInvoice`
//! commands (unary gRPC) at a steady rate, each sent at its own instant of an absolute
//! schedule in its own task, so a slow acknowledgement never delays the sends after it; it
//! records each command's sequence and when its reply arrived. A watcher polls positiond's
//! `GetStatus` every [`LagScale::poll`] on its own connection and records when the sequence
//! moved; the visibility of a sequence is the end of the first poll that reported it, so a
//! lag is overstated by at most one poll period (reported beside the figures).
//!
//! Twice: on a fresh ledger, and on one preloaded with a long synthetic log
//! ([`crate::synthetic`], appended straight to ledgerd's store, relayed to JetStream by
//! ledgerd on start) that positiond has rebuilt from ledgerd's `ReadStored` (timed:
//! [`crate::rebuild`]) and whose JetStream backlog it has drained before the timed part, so
//! the projection is large and so is each checkpoint. Every run checks itself: every command
//! accepted and recorded once, every sequence seen by the watcher, and at the end positiond's
//! sequence and chain hash equal to ledgerd's head.

use std::fmt::Write as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use api::CommandMeta;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use api::position_pb as ppb;
use tonic::transport::{Channel, Endpoint};

use crate::inproc::{self, Ledgerd, Positiond, PositiondSetup};
use crate::position::Latency;
use crate::rebuild::{self, RebuildRun};
use crate::report::{millis, rate};
use crate::{synthetic, workload};

/// The lag target of issue 3.
pub const LAG_TARGET: Duration = Duration::from_millis(50);

/// Connections the driver spreads its calls over (ledgerd allows 64 calls open on each), so
/// that a stall of ledgerd shows as acknowledgements arriving late, not as calls refused.
const DRIVER_CONNECTIONS: usize = 64;

/// How long positiond may take to catch up (or drain JetStream) before a run fails.
const CATCH_UP_TIMEOUT: Duration = Duration::from_secs(1_800);

/// How much work the lag and rebuild benchmarks do.
#[derive(Clone, Copy, Debug)]
pub struct LagScale {
    /// Commands per second the driver submits.
    pub rate: u64,
    /// How long each timed run lasts.
    pub seconds: u64,
    /// Events in the preloaded ledger.
    pub events: u64,
    /// Fresh positionds timed rebuilding it (and passes of `ReadStored` alone).
    pub rebuilds: usize,
    /// The watcher's pause between `GetStatus` calls.
    pub poll: Duration,
    /// nats-server with `sync_interval: always`, as `deploy/nats/*.conf` ship.
    pub nats_sync_always: bool,
    /// ledgerd relays the preloaded log to JetStream before the runs (otherwise its relay
    /// cursor starts at the head: see [`inproc::preload`]).
    pub relay_preloaded: bool,
    /// ledgerd's `relay_batch_from` (a read of this many events or more goes to JetStream as
    /// atomic batches); `None`, the binary's default.
    pub relay_batch_from: Option<usize>,
}

impl LagScale {
    /// The figures in README.md.
    pub const FULL: LagScale = LagScale {
        rate: 1_000,
        seconds: 30,
        events: 1_000_000,
        rebuilds: 3,
        poll: Duration::from_millis(1),
        nats_sync_always: true,
        relay_preloaded: false,
        relay_batch_from: None,
    };

    /// Seconds, not minutes: proves the benchmark runs and checks itself.
    pub fn quick() -> LagScale {
        LagScale {
            seconds: 3,
            events: 20_000,
            rebuilds: 1,
            ..LagScale::FULL
        }
    }

    /// `BENCH_QUICK=1` selects [`LagScale::quick`]; `BENCH_RATE` (commands/s),
    /// `BENCH_SECONDS`, `BENCH_EVENTS` (the preloaded ledger), `BENCH_POLL_US`,
    /// `BENCH_NATS_SYNC=lazy` (nats-server's default fsync), `BENCH_RELAY_PRELOADED=1` and
    /// `BENCH_RELAY_BATCH_FROM` (ledgerd's `relay_batch_from`; a large number: never batch)
    /// change it.
    pub fn from_env() -> anyhow::Result<LagScale> {
        let mut scale = if crate::quick_requested() {
            LagScale::quick()
        } else {
            LagScale::FULL
        };
        let number = crate::number_from_env;
        if let Some(rate) = number("BENCH_RATE")? {
            scale.rate = rate;
        }
        if let Some(seconds) = number("BENCH_SECONDS")? {
            scale.seconds = seconds;
        }
        if let Some(events) = number("BENCH_EVENTS")? {
            scale.events = events;
        }
        if let Some(us) = number("BENCH_POLL_US")? {
            scale.poll = Duration::from_micros(us);
        }
        if let Ok(sync) = std::env::var("BENCH_NATS_SYNC") {
            scale.nats_sync_always = match sync.as_str() {
                "always" => true,
                "lazy" => false,
                other => anyhow::bail!("BENCH_NATS_SYNC={other}: always or lazy"),
            };
        }
        if let Some(relay) = number("BENCH_RELAY_PRELOADED")? {
            scale.relay_preloaded = relay != 0;
        }
        if let Some(from) = number("BENCH_RELAY_BATCH_FROM")? {
            scale.relay_batch_from = Some(usize::try_from(from)?);
        }
        ensure!(
            scale.rate > 0 && scale.seconds > 0 && scale.rebuilds > 0,
            "nothing to measure: {scale:?}"
        );
        Ok(scale)
    }

    fn commands(&self) -> u64 {
        self.rate * self.seconds
    }
}

/// Episodes of lag over [`LAG_TARGET`].
#[derive(Clone, Debug, Default)]
pub struct Stalls {
    /// Commands whose lag was over the target.
    pub commands: u64,
    /// Runs of them (consecutive by acknowledgement time, less than 100 ms apart).
    pub episodes: u64,
    /// Median time between the starts of successive episodes.
    pub spacing: Option<Duration>,
}

/// One timed run.
#[derive(Clone, Debug)]
pub struct LagRun {
    /// The ledger, as the table names it.
    pub ledger: String,
    /// Events in the log when the timed part began.
    pub events_before: u64,
    /// Commands asked per second.
    pub rate: u64,
    /// Commands submitted (each one event).
    pub commands: u64,
    /// From the first scheduled send to the last acknowledgement.
    pub span: Duration,
    /// Acknowledgement → visible in positiond.
    pub lag: Latency,
    /// Send → acknowledgement (ledgerd's round trip, flush included).
    pub ack: Latency,
    /// How late each send was against its schedule.
    pub send_late: Latency,
    /// The watcher's time between successive `GetStatus` replies: the resolution.
    pub poll: Latency,
    /// Sequences the watcher saw before their acknowledgement arrived (lag counted as 0).
    pub visible_before_ack: u64,
    /// Most commands in flight at once.
    pub in_flight_max: usize,
    pub stalls: Stalls,
    /// From the warm-up command's acknowledgement to its visibility (positiond draining
    /// JetStream's backlog, on the preloaded ledger).
    pub warm_up: Duration,
}

impl LagRun {
    pub fn achieved_rate(&self) -> f64 {
        crate::per_second(self.commands, self.span)
    }
}

/// What it took to set up the preloaded ledger (not measurements of the target, reported
/// so a reader knows what ran before).
#[derive(Clone, Debug)]
pub struct Preparation {
    pub events: u64,
    pub generated: Duration,
    pub preloaded: Duration,
    /// ledgerd start → its first `Head` reply (it replays the log and builds its Merkle tree
    /// first).
    pub recovered: Duration,
    /// ledgerd start → JetStream holds the head, if it relayed the preloaded log.
    pub relayed: Option<Duration>,
}

/// Everything `cargo bench --bench lag` measures.
pub struct LagReport {
    pub fresh: LagRun,
    pub preloaded: LagRun,
    pub rebuild: RebuildRun,
    pub preparation: Preparation,
}

/// Runs both lag measurements and the rebuild.
pub fn run(scale: LagScale) -> anyhow::Result<LagReport> {
    let client = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("bench-client")
        .build()?;
    let fresh = fresh(scale, &client)?;
    eprintln!(
        "lag, fresh ledger: p50 {} ms, p99 {} ms, max {} ms",
        millis(fresh.lag.p50()),
        millis(fresh.lag.p99()),
        millis(fresh.lag.max())
    );
    let (preloaded, rebuild, preparation) = preloaded(scale, &client)?;
    Ok(LagReport {
        fresh,
        preloaded,
        rebuild,
        preparation,
    })
}

fn nats(scale: LagScale) -> anyhow::Result<testkit::NatsServer> {
    testkit::NatsServer::start_with(testkit::NatsOptions {
        sync_always: scale.nats_sync_always,
        ..testkit::NatsOptions::default()
    })
    .context("starting nats-server (NATS_SERVER_BIN or on PATH)")
}

/// The lag on a fresh ledger: the benchmarks' contract set up, then invoices on it.
fn start_ledgerd(
    scale: LagScale,
    dir: &Path,
    system: &str,
    nats: &testkit::NatsServer,
) -> anyhow::Result<Ledgerd> {
    Ledgerd::start_with(dir, system, Some(nats.url()), |config| {
        if let Some(from) = scale.relay_batch_from {
            config.relay_batch_from = from;
        }
    })
}

pub fn fresh(scale: LagScale, client: &tokio::runtime::Runtime) -> anyhow::Result<LagRun> {
    let nats = nats(scale)?;
    let ledger_dir = tempfile::Builder::new()
        .prefix("bench-lag-ledgerd-")
        .tempdir()?;
    let position_dir = tempfile::Builder::new()
        .prefix("bench-lag-positiond-")
        .tempdir()?;
    let ledgerd = start_ledgerd(scale, ledger_dir.path(), workload::SYSTEM, &nats)?;
    let positiond = Positiond::start(PositiondSetup {
        data_dir: position_dir.path(),
        system: workload::SYSTEM,
        nats_url: nats.url(),
        ledgerd_url: ledgerd.url.clone(),
        consumer: "positiond",
    })?;
    let measured = client.block_on(async {
        let mut ledger = ledgerd.client().await?;
        let setup: Vec<pb::Command> = workload::setup_commands()
            .iter()
            .map(|c| api::command_to_proto(&CommandMeta::random(), c))
            .collect();
        let count = setup.len() as u64;
        let reply = ledger
            .submit_bulk(futures::stream::iter(setup))
            .await?
            .into_inner();
        ensure!(reply.accepted == count, "set-up: {reply:?}");
        // Invoice numbers far from the bulk benchmark's, one of them the warm-up.
        let commands = (0..=scale.commands())
            .map(|n| raise_invoice(&workload::invoice_command(1_000_000_000 + n)))
            .collect::<anyhow::Result<Vec<_>>>()?;
        measure("fresh", &ledgerd, &positiond, commands, scale).await
    });
    let stopped = positiond.stop().and(ledgerd.stop());
    let run = measured?;
    stopped?;
    Ok(run)
}

/// The preloaded ledger: generate and append the log, start ledgerd (relaying it all to
/// JetStream), time the rebuild, then the lag with the last rebuilt positiond.
pub fn preloaded(
    scale: LagScale,
    client: &tokio::runtime::Runtime,
) -> anyhow::Result<(LagRun, RebuildRun, Preparation)> {
    let started = Instant::now();
    let log = synthetic::generate(scale.events, synthetic::DEFAULT_YEARS)?;
    let generated = started.elapsed();
    // The synthetic log's system (ledgerd refuses a log of another).
    let system = "synth";
    let ledger_dir = tempfile::Builder::new()
        .prefix("bench-lag-ledgerd-")
        .tempdir()?;
    let preloaded = inproc::preload(ledger_dir.path(), &log.log, !scale.relay_preloaded)?;
    let (contract, period) = inproc::invoice_target(&log.log)?;
    drop(log);
    let store_parts = rebuild::store_parts(ledger_dir.path(), scale.events)?;
    eprintln!(
        "preloaded {} events (generated in {:.1} s, appended in {:.1} s); invoices on {contract} for {period:?}",
        rate(scale.events as f64),
        generated.as_secs_f64(),
        preloaded.as_secs_f64()
    );

    let nats = nats(scale)?;
    let ledger_started = Instant::now();
    let ledgerd = start_ledgerd(scale, ledger_dir.path(), system, &nats)?;
    let mut preparation = Preparation {
        events: scale.events,
        generated,
        preloaded,
        recovered: Duration::ZERO,
        relayed: None,
    };
    let result = on_preloaded(
        scale,
        client,
        (&ledgerd, ledger_started),
        &nats,
        (&contract, period),
        &mut preparation,
    );
    let stopped = ledgerd.stop();
    let (run, mut rebuild) = result?;
    stopped?;
    rebuild.store = Some(store_parts);
    Ok((run, rebuild, preparation))
}

/// [`preloaded`] once ledgerd is started.
fn on_preloaded(
    scale: LagScale,
    client: &tokio::runtime::Runtime,
    (ledgerd, ledger_started): (&Ledgerd, Instant),
    nats: &testkit::NatsServer,
    (contract, period): (&domain::Code, domain::Period),
    preparation: &mut Preparation,
) -> anyhow::Result<(LagRun, RebuildRun)> {
    let system = "synth";
    let head = client.block_on(async {
        let mut ledger = ledgerd.client().await?;
        let head = ledger.head(pb::HeadRequest {}).await?.into_inner();
        preparation.recovered = ledger_started.elapsed();
        ensure!(head.sequence == scale.events, "head {head:?}");
        if scale.relay_preloaded {
            wait_for_jetstream(&nats.url(), system, head.sequence).await?;
            preparation.relayed = Some(ledger_started.elapsed());
        }
        anyhow::Ok(head)
    })?;
    eprintln!(
        "ledgerd answering after {:.1} s",
        preparation.recovered.as_secs_f64(),
    );

    let (rebuild, positiond, _position_dir) =
        rebuild::measure(client, ledgerd, &nats.url(), system, &head, scale.rebuilds)?;
    eprintln!(
        "rebuild: positiond {} events/s; ReadStored alone {} events/s; fold alone {} events/s",
        rate(rebuild.positiond_per_second()),
        rate(rebuild.stream_per_second()),
        rate(rebuild.fold_per_second())
    );
    let measured = client.block_on(async {
        let commands = (0..=scale.commands())
            .map(|n| {
                raise_invoice(&inproc::invoice_command(
                    contract,
                    period,
                    &format!("LAG-{n}"),
                )?)
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        let name = format!("preloaded, {} events", rate(scale.events as f64));
        measure(&name, ledgerd, &positiond, commands, scale).await
    });
    let stopped = positiond.stop();
    let run = measured?;
    stopped?;
    Ok((run, rebuild))
}

/// The unary request of a `RaiseInvoice` command, with a fresh request id.
pub fn raise_invoice(command: &domain::Command) -> anyhow::Result<pb::RaiseInvoiceRequest> {
    match api::command_to_proto(&CommandMeta::random(), command).command {
        Some(pb::command::Command::RaiseInvoice(request)) => Ok(request),
        other => Err(anyhow!("not a RaiseInvoice: {other:?}")),
    }
}

/// Waits until the system's JetStream subjects hold `sequence`.
async fn wait_for_jetstream(url: &str, system: &str, sequence: u64) -> anyhow::Result<()> {
    let js = bus::jetstream(bus::connect(url, "bench").await?);
    let system = domain::SystemId::new(system).map_err(|e| anyhow!("{e}"))?;
    let started = Instant::now();
    loop {
        // The relay creates the stream when it connects: until then, not there yet.
        if let Ok(Some(last)) = bus::last_published_sequence(&js, bus::STREAM_NAME, &system).await
            && last >= sequence
        {
            return Ok(());
        }
        ensure!(
            started.elapsed() < CATCH_UP_TIMEOUT,
            "JetStream did not reach {sequence}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One command as the driver saw it.
struct Submitted {
    sequence: u64,
    scheduled: Instant,
    sent: Instant,
    acked: Instant,
}

/// What the watcher saw: when positiond's sequence moved, and the time between polls.
struct Watched {
    /// (end of the poll, sequence it reported), the sequence strictly increasing.
    moves: Vec<(Instant, u64)>,
    intervals: Vec<Duration>,
}

/// Submits `commands[0]` and waits for positiond to show it (warm-up, untimed), then the rest
/// at `scale.rate` while watching positiond; checks and measures.
async fn measure(
    name: &str,
    ledgerd: &Ledgerd,
    positiond: &Positiond,
    mut commands: Vec<pb::RaiseInvoiceRequest>,
    scale: LagScale,
) -> anyhow::Result<LagRun> {
    ensure!(commands.len() >= 2, "no commands to time");
    let mut ledger = ledgerd.client().await?;
    let mut position = positiond.client().await?;

    // Warm-up: positiond has caught up, followed JetStream to the end of what it held before
    // (a preloaded ledger relays its whole log), and folded one live event.
    let probe = ledger
        .raise_invoice(commands.remove(0))
        .await
        .context("the warm-up command")?
        .into_inner();
    let acked = Instant::now();
    wait_for(
        positiond,
        &mut position,
        probe.last_sequence,
        CATCH_UP_TIMEOUT,
    )
    .await?;
    let warm_up = acked.elapsed();
    let events_before = probe.last_sequence;

    // The watcher, on its own connection.
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let mut client = positiond.client().await?;
        let stop = Arc::clone(&stop);
        let poll = scale.poll;
        tokio::spawn(async move {
            let mut watched = Watched {
                moves: Vec::new(),
                intervals: Vec::new(),
            };
            let mut last_poll = Instant::now();
            let mut last_sequence = 0;
            while !stop.load(Ordering::Acquire) {
                let status = client.get_status(ppb::StatusRequest {}).await?.into_inner();
                let now = Instant::now();
                watched.intervals.push(now - last_poll);
                last_poll = now;
                if status.sequence > last_sequence {
                    last_sequence = status.sequence;
                    watched.moves.push((now, status.sequence));
                }
                if !poll.is_zero() {
                    tokio::time::sleep(poll).await;
                }
            }
            anyhow::Ok(watched)
        })
    };

    // The driver: each command at its instant of an absolute schedule, in its own task.
    let clients = connections(&ledgerd.url).await?;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let in_flight_max = Arc::new(AtomicUsize::new(0));
    let start = Instant::now() + Duration::from_millis(100);
    let mut tasks = Vec::with_capacity(commands.len());
    for (i, request) in commands.into_iter().enumerate() {
        let offset = u128::try_from(i)? * 1_000_000_000 / u128::from(scale.rate);
        let scheduled = start + Duration::from_nanos(u64::try_from(offset)?);
        tokio::time::sleep_until(scheduled.into()).await;
        let mut client = clients[i % clients.len()].clone();
        let in_flight = Arc::clone(&in_flight);
        let in_flight_max = Arc::clone(&in_flight_max);
        tasks.push(tokio::spawn(async move {
            let sent = Instant::now();
            let now = in_flight.fetch_add(1, Ordering::AcqRel) + 1;
            in_flight_max.fetch_max(now, Ordering::AcqRel);
            let reply = client.raise_invoice(request).await;
            let acked = Instant::now();
            in_flight.fetch_sub(1, Ordering::AcqRel);
            let reply = reply.context("RaiseInvoice")?.into_inner();
            ensure!(
                !reply.duplicate && reply.first_sequence == reply.last_sequence,
                "{reply:?}"
            );
            anyhow::Ok(Submitted {
                sequence: reply.last_sequence,
                scheduled,
                sent,
                acked,
            })
        }));
    }
    let mut submitted = Vec::with_capacity(tasks.len());
    for task in tasks {
        submitted.push(task.await??);
    }
    let last = submitted.iter().map(|s| s.sequence).max().unwrap_or(0);
    let head = ledger.head(pb::HeadRequest {}).await?.into_inner();
    let wait = wait_for(positiond, &mut position, last, Duration::from_secs(120)).await;
    // One more poll after positiond shows the last: the watcher has seen it too.
    tokio::time::sleep(scale.poll * 4 + Duration::from_millis(20)).await;
    stop.store(true, Ordering::Release);
    let watched = watcher.await??;
    let status = wait?;

    // Checks: every command recorded once, in one gapless run after the warm-up; positiond
    // at ledgerd's head with its hash.
    let count = submitted.len() as u64;
    let mut sequences: Vec<u64> = submitted.iter().map(|s| s.sequence).collect();
    sequences.sort_unstable();
    ensure!(
        sequences
            .iter()
            .enumerate()
            .all(|(i, s)| *s == events_before + 1 + i as u64),
        "the {count} commands were not recorded as {}..={}",
        events_before + 1,
        events_before + count
    );
    ensure!(
        head.sequence == last && status.sequence == head.sequence && status.hash == head.hash,
        "positiond at {} ({}), ledgerd's head {} ({})",
        status.sequence,
        hex(&status.hash),
        head.sequence,
        hex(&head.hash)
    );
    ensure!(
        status.parked == 0,
        "positiond parked {} messages",
        status.parked
    );

    let mut lags = Vec::with_capacity(submitted.len());
    let mut visible_before_ack = 0;
    for s in &submitted {
        let seen = watched.moves.partition_point(|(_, q)| *q < s.sequence);
        let (visible, _) = watched
            .moves
            .get(seen)
            .copied()
            .with_context(|| format!("the watcher never saw sequence {}", s.sequence))?;
        if visible < s.acked {
            visible_before_ack += 1;
        }
        lags.push((s.acked, visible.saturating_duration_since(s.acked)));
    }
    if let Ok(dir) = std::env::var("BENCH_LAG_CSV") {
        write_csv(Path::new(&dir), name, start, &submitted, &watched)?;
    }
    let first = submitted.iter().map(|s| s.scheduled).min().unwrap_or(start);
    let last_ack = submitted.iter().map(|s| s.acked).max().unwrap_or(start);
    let stalls = stalls(&mut lags);
    Ok(LagRun {
        ledger: name.to_string(),
        events_before,
        rate: scale.rate,
        commands: count,
        span: last_ack - first,
        lag: Latency::new(lags.into_iter().map(|(_, lag)| lag).collect()),
        ack: Latency::new(submitted.iter().map(|s| s.acked - s.sent).collect()),
        send_late: Latency::new(
            submitted
                .iter()
                .map(|s| s.sent.saturating_duration_since(s.scheduled))
                .collect(),
        ),
        poll: Latency::new(watched.intervals),
        visible_before_ack,
        in_flight_max: in_flight_max.load(Ordering::Acquire),
        stalls,
        warm_up,
    })
}

/// `BENCH_LAG_CSV=dir`: each command of a run as a line of `dir/lag-<run>.csv` (times in ms
/// from the schedule's start), for plotting.
fn write_csv(
    dir: &Path,
    name: &str,
    start: Instant,
    submitted: &[Submitted],
    watched: &Watched,
) -> anyhow::Result<()> {
    let ms = |t: Instant| {
        if t >= start {
            (t - start).as_secs_f64() * 1e3
        } else {
            -(start - t).as_secs_f64() * 1e3
        }
    };
    let mut out = String::from("sequence,scheduled_ms,sent_ms,acked_ms,visible_ms\n");
    for s in submitted {
        let seen = watched.moves.partition_point(|(_, q)| *q < s.sequence);
        let visible = watched.moves.get(seen).map_or(f64::NAN, |(t, _)| ms(*t));
        let _ = writeln!(
            out,
            "{},{:.3},{:.3},{:.3},{visible:.3}",
            s.sequence,
            ms(s.scheduled),
            ms(s.sent),
            ms(s.acked)
        );
    }
    let slug: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    std::fs::create_dir_all(dir)?;
    std::fs::write(dir.join(format!("lag-{slug}.csv")), out)?;
    Ok(())
}

/// Episodes of lag over the target among `lags` (acknowledged at, lag), sorted here by
/// acknowledgement.
fn stalls(lags: &mut [(Instant, Duration)]) -> Stalls {
    lags.sort_unstable_by_key(|(acked, _)| *acked);
    let mut out = Stalls::default();
    let mut starts = Vec::new();
    let mut previous: Option<Instant> = None;
    for (acked, lag) in lags.iter() {
        if *lag <= LAG_TARGET {
            continue;
        }
        out.commands += 1;
        if previous.is_none_or(|p| *acked - p > Duration::from_millis(100)) {
            starts.push(*acked);
        }
        previous = Some(*acked);
    }
    out.episodes = starts.len() as u64;
    let mut spacing: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    spacing.sort_unstable();
    out.spacing = spacing.get(spacing.len() / 2).copied();
    out
}

/// Waits until positiond's status reaches `sequence`.
async fn wait_for(
    positiond: &Positiond,
    client: &mut api::position_pb::position_service_client::PositionServiceClient<Channel>,
    sequence: u64,
    timeout: Duration,
) -> anyhow::Result<ppb::StatusReply> {
    let started = Instant::now();
    loop {
        let status = client.get_status(ppb::StatusRequest {}).await?.into_inner();
        if status.sequence >= sequence {
            return Ok(status);
        }
        ensure!(positiond.is_running(), "positiond stopped");
        ensure!(
            started.elapsed() < timeout,
            "positiond at {} after {:.0} s, not {sequence}",
            status.sequence,
            timeout.as_secs_f64()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Separate connections to ledgerd for the driver.
async fn connections(url: &str) -> anyhow::Result<Vec<LedgerServiceClient<Channel>>> {
    let mut clients = Vec::with_capacity(DRIVER_CONNECTIONS);
    for _ in 0..DRIVER_CONNECTIONS {
        let channel = Endpoint::from_shared(url.to_string())?.connect().await?;
        clients.push(LedgerServiceClient::new(channel));
    }
    Ok(clients)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// The lag runs, one row each.
pub fn lag_table(runs: &[&LagRun]) -> String {
    let mut out = String::from(
        "| ledger before the run | rate asked /s | commands | achieved /s | ack p50 / p99 ms | lag p50 ms | lag p90 ms | lag p99 ms | lag max ms | watcher poll p50 / p99 ms | over 50 ms: commands, episodes, median spacing |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
    );
    for run in runs {
        let spacing = run
            .stalls
            .spacing
            .map_or("—".to_string(), |s| format!("{:.2} s", s.as_secs_f64()));
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} / {} | {} | {} | {} | {} | {} / {} | {}, {}, {spacing} |",
            run.ledger,
            rate(run.rate as f64),
            rate(run.commands as f64),
            rate(run.achieved_rate()),
            millis(run.ack.p50()),
            millis(run.ack.p99()),
            millis(run.lag.p50()),
            millis(run.lag.percentile(90.0)),
            millis(run.lag.p99()),
            millis(run.lag.max()),
            millis(run.poll.p50()),
            millis(run.poll.p99()),
            rate(run.stalls.commands as f64),
            run.stalls.episodes,
        );
    }
    out
}

/// The driver's own figures: how well it kept to the schedule.
pub fn driver_table(runs: &[&LagRun]) -> String {
    let mut out = String::from(
        "| ledger before the run | events before | warm-up (ack → visible) s | send late p50 / p99 / max ms | commands in flight (max) | seen before their ack |\n\
         |---|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} / {} / {} | {} | {} |",
            run.ledger,
            rate(run.events_before as f64),
            run.warm_up.as_secs_f64(),
            millis(run.send_late.p50()),
            millis(run.send_late.p99()),
            millis(run.send_late.max()),
            run.in_flight_max,
            rate(run.visible_before_ack as f64),
        );
    }
    out
}
