//! The audit's costs on a log of N events (default 1,000,000; `cargo bench -p bench --bench
//! audit`), measured through the code icsctl and ledgerd run:
//!
//! - **the log**: the synthetic ICS ([`crate::synthetic`]) appended to a sled event store as
//!   ledgerd appends it — one request per command — while ledgerd's own audit task
//!   (`ledgerd::audit::run`) keeps the Merkle tree and signs a checkpoint every 10,000 events
//!   with an Ed25519 key made as `icsctl keys generate` makes one ([`upkeep`]);
//! - **Merkle upkeep**: in the same run, the same appends into two more stores, one with no
//!   audit task and one with the task keeping the tree only, round by round ([`upkeep`]);
//! - **replay**: what `icsctl audit replay --data-dir` does (`icsctl::audit::source::Log`
//!   and `icsctl::audit::fold` into `domain::position::Projection`), whole and in parts
//!   (opening the store, the sled scan, read + decode, the fold alone), and over gRPC;
//! - **verification**: `icsctl audit verify` online (`icsctl::audit::verify::online`: ledgerd
//!   in-process, `ReadAll` over real gRPC on loopback, every hash, link, the Merkle tree and
//!   every checkpoint — the ledger's and, as the regulator would hold them, the same again)
//!   and offline (`verify::offline`, the stopped store's sled directory); and `ReadAll` alone,
//!   the transport's ceiling;
//! - **proofs**: `GetInclusionProof` and `GetConsistencyProof` latency at three depths
//!   ([`proofs`]).
//!
//! Every figure checks itself: the counts replayed and verified are the log's, the
//! verification succeeded with every checkpoint checked from both sources, the Merkle roots
//! agree with one recomputed here from the stored hashes, the replayed position equals the
//! one folded from the synthetic log in memory, every proof verifies against the signed
//! checkpoints. A run that did less work fails instead of reporting a flattering rate.

pub mod proofs;
pub mod upkeep;

use std::net::SocketAddr;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ::audit::{SignedCheckpoint, Source};
use anyhow::{Context, anyhow, ensure};
use api::audit_pb;
use api::audit_pb::audit_service_server::AuditService;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use domain::position::{AsOf, PositionReport, Projection, Recorded};
use domain::{Event, FinancialYear, Month, SystemId};
use icsctl::audit::source::{Log, LogEvent};
use icsctl::audit::{Until, verify};
use ledgerd::audit::{AuditLog, CheckpointSettings};
use ledgerd::audit_service::AuditApi;
use ledgerd::ledger::Store;
use store::{EventStore, StoreConfig};
use tokio::runtime::Runtime;
use tokio_util::sync::CancellationToken;

use self::proofs::Expected;
use self::upkeep::UpkeepRun;
use crate::position::Latency;
use crate::synthetic;

/// How much work the audit benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct AuditScale {
    /// Events in the log.
    pub events: u64,
    /// Financial years the synthetic log spans.
    pub years: u32,
    /// A checkpoint every this many events (ledgerd's `checkpoint_every_events`).
    pub checkpoint_every: u64,
    /// Rounds of the upkeep measurement (each appends a slice of the log to each store).
    pub upkeep_rounds: usize,
    /// Requests in flight from the appender (ledgerd's bulk submit keeps up to 8,192).
    pub window: usize,
    /// Timed passes of each replay and verification (the median is reported).
    pub passes: usize,
    /// Proofs timed of each kind, at each depth.
    pub proofs: usize,
}

impl AuditScale {
    /// The figures in README.md.
    pub const FULL: AuditScale = AuditScale {
        events: 1_000_000,
        years: synthetic::DEFAULT_YEARS,
        checkpoint_every: 10_000,
        upkeep_rounds: 10,
        window: 8_192,
        passes: 3,
        proofs: 10_000,
    };

    /// Seconds, not minutes: proves the benchmark runs and checks itself.
    pub fn quick() -> AuditScale {
        AuditScale {
            events: 20_000,
            checkpoint_every: 1_000,
            upkeep_rounds: 4,
            passes: 1,
            proofs: 200,
            ..AuditScale::FULL
        }
    }

    /// `BENCH_QUICK=1` selects [`AuditScale::quick`]; `BENCH_EVENTS=n` sets the log's size.
    pub fn from_env() -> anyhow::Result<AuditScale> {
        let mut scale = if crate::quick_requested() {
            AuditScale::quick()
        } else {
            AuditScale::FULL
        };
        if let Some(events) = crate::number_from_env("BENCH_EVENTS")? {
            scale.events = events;
        }
        Ok(scale)
    }
}

/// One timed path over the whole log, possibly several times.
#[derive(Clone, Debug)]
pub struct Pass {
    pub name: String,
    pub events: u64,
    /// What else it checked, for the table.
    pub note: String,
    pub times: Vec<Duration>,
}

impl Pass {
    /// A path over `events` events, not yet timed; `note` says what else it checks.
    pub fn new(name: &str, events: u64, note: impl Into<String>) -> Pass {
        Pass {
            name: name.to_string(),
            events,
            note: note.into(),
            times: Vec::new(),
        }
    }

    pub fn median(&self) -> Duration {
        crate::median(&self.times)
    }

    pub fn best(&self) -> Duration {
        self.times.iter().min().copied().unwrap_or_default()
    }

    pub fn median_per_second(&self) -> f64 {
        crate::per_second(self.events, self.median())
    }

    pub fn best_per_second(&self) -> f64 {
        crate::per_second(self.events, self.best())
    }
}

/// One kind of proof at one depth.
#[derive(Clone, Debug)]
pub struct ProofRun {
    pub proof: &'static str,
    pub served_by: &'static str,
    pub latency: Latency,
}

/// Everything the audit benchmark measured.
#[derive(Clone, Debug)]
pub struct AuditRun {
    pub events: u64,
    pub commands: u64,
    pub checkpoints: usize,
    pub checkpoint_every: u64,
    pub upkeep: Vec<UpkeepRun>,
    /// `AuditLog::build` on the whole stored log (ledgerd's start-up).
    pub tree_build: Duration,
    /// From spawning ledgerd on the stored log to its first answer (the domain rebuilt from
    /// the log and the tree built).
    pub ledgerd_startup: Duration,
    pub replay: Vec<Pass>,
    pub verify: Vec<Pass>,
    pub proofs: Vec<ProofRun>,
}

impl AuditRun {
    /// The replay rows whose name starts with `name` (a row name, without the suffix of how
    /// ledgerd served it).
    pub fn replay(&self, name: &str) -> Vec<&Pass> {
        self.replay
            .iter()
            .filter(|p| p.name.starts_with(name))
            .collect()
    }

    /// The verification rows whose name starts with `name`.
    pub fn verification(&self, name: &str) -> Vec<&Pass> {
        self.verify
            .iter()
            .filter(|p| p.name.starts_with(name))
            .collect()
    }
}

/// Names of the rows, as the tables print them.
pub const REPLAY_DATA_DIR: &str = "`icsctl audit replay --data-dir`: open + read + decode + fold";
pub const REPLAY_OPEN: &str = "… open the store (`EventStore::open`: recovery checks the tip)";
pub const REPLAY_SCAN: &str = "… sled scan alone (`read_raw`: values copied, not decoded)";
pub const REPLAY_INDEX: &str = "(not part of a replay) the store's request index, read at the \
     first append, resend lookup or stream read; per request";
pub const REPLAY_DECODE: &str = "… read + decode (`Log::each`, nothing done with the events)";
pub const REPLAY_FOLD: &str = "… fold alone (`Projection::apply` on the decoded events)";
pub const REPLAY_GRPC: &str =
    "`icsctl audit replay` over gRPC (`ReadStored` from ledgerd in-process)";
pub const VERIFY_ONLINE: &str = "`icsctl audit verify` over gRPC (ledgerd in-process, loopback)";
pub const VERIFY_READ_STORED: &str = "… `ReadStored` alone (received, counted)";
pub const VERIFY_OFFLINE: &str = "`icsctl audit verify --data-dir` (the stopped store's sled)";

/// A stream id to ask the version of, to make the store read its request index.
const INDEX_STREAM: &str = "contract/none";

/// Measures everything at `scale`.
pub fn run(scale: AuditScale) -> anyhow::Result<AuditRun> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let started = Instant::now();
    let synthetic = synthetic::generate(scale.events, scale.years)?;
    let events = synthetic.log.len() as u64;
    eprintln!(
        "audit: synthetic log of {events} events from {} commands in {:.1} s",
        synthetic.commands,
        started.elapsed().as_secs_f64()
    );
    let system = SystemId::new(synthetic::SYSTEM).map_err(|e| anyhow!("{e}"))?;

    // The ledger's checkpoint key pair, as `icsctl keys generate` makes it.
    let keys = tempfile::Builder::new().prefix("bench-keys-").tempdir()?;
    let (private_pem, public_pem) = auth::generate_key_pair()?;
    let key_path = keys.path().join("ledger-checkpoint.pem");
    std::fs::write(&key_path, &private_pem)?;
    let settings = CheckpointSettings {
        system: system.clone(),
        key: ::audit::checkpoint::signing_key_from_pem(&private_pem)?,
        every_events: scale.checkpoint_every,
        every: Duration::from_secs(ledgerd::config::Config::default().checkpoint_every_s),
    };
    let key = ::audit::checkpoint::verifying_key_from_pem(&public_pem)?;

    let (upkeep, built) = upkeep::run(
        &runtime,
        &synthetic.log,
        &synthetic.command_events,
        &settings,
        scale.upkeep_rounds,
        scale.window,
    )?;
    let dir = built.dir.path().to_path_buf();
    let checkpoints = stored_checkpoints(&dir, &system, &key)?;
    eprintln!(
        "audit: the log stored, {} checkpoints signed",
        checkpoints.len()
    );
    let expected = Expected {
        hashes: built.hashes,
        checkpoints,
        root: built.root,
    };
    let reference = Reference::of(&synthetic.log)?;
    let commands = synthetic.command_events.len() as u64;
    drop(synthetic);

    let mut run = AuditRun {
        events,
        commands,
        checkpoints: expected.checkpoints.len(),
        checkpoint_every: scale.checkpoint_every,
        upkeep,
        tree_build: Duration::ZERO,
        ledgerd_startup: Duration::ZERO,
        replay: Vec::new(),
        verify: Vec::new(),
        proofs: Vec::new(),
    };
    ensure!(
        run.upkeep.iter().all(|u| u.requests == commands),
        "a store was not given one request per command"
    );

    offline(
        &runtime, &mut run, scale, &dir, &system, &key, &expected, &reference,
    )?;
    in_process_proofs(&runtime, &mut run, scale, &dir, &expected)?;
    online(
        &runtime, &mut run, scale, &dir, &key_path, &system, &key, &expected, &reference,
    )?;
    // Online first, in the order measured, then offline.
    run.verify
        .sort_by_key(|p| p.name.starts_with(VERIFY_OFFLINE));
    // Grouped by kind and depth for the table.
    run.proofs.sort_by_key(|p| {
        (
            p.proof != INCLUSION,
            p.served_by != BY_METHOD,
            p.served_by != BY_HANDLER,
        )
    });
    drop(keys);
    Ok(run)
}

/// The signed checkpoints of the stopped store in `dir`, each checked: in order, of
/// `system`, stored under its own sequence, signed by `key`.
fn stored_checkpoints(
    dir: &Path,
    system: &SystemId,
    key: &::audit::checkpoint::LedgerKey,
) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let raw = store::RawLog::open(dir)?;
    let mut checkpoints = Vec::new();
    for (sequence, bytes) in raw.checkpoints()? {
        let checkpoint = SignedCheckpoint::decode(&bytes)?;
        checkpoint.verify(key)?;
        ensure!(
            checkpoint.checkpoint.sequence == sequence && &checkpoint.checkpoint.system == system,
            "the checkpoint stored at {sequence} is of {} at {}",
            checkpoint.checkpoint.system,
            checkpoint.checkpoint.sequence
        );
        checkpoints.push(checkpoint);
    }
    ensure!(!checkpoints.is_empty(), "no checkpoints were signed");
    Ok(checkpoints)
}

/// What every replay must come to: the position at the latest event for the latest year
/// with plans, at M12, folded from the synthetic log in memory.
struct Reference {
    year: FinancialYear,
    report: PositionReport,
}

impl Reference {
    fn of(log: &[(Recorded, Event)]) -> anyhow::Result<Reference> {
        let year = crate::position::report_year(log).context("no plans in the log")?;
        let projection = crate::position::fold(log)?;
        Ok(Reference {
            year,
            report: position(&projection, year)?,
        })
    }

    /// `projection` holds `events` events and gives the same position.
    fn check(&self, projection: &Projection, events: u64) -> anyhow::Result<()> {
        ensure!(
            projection.events() as u64 == events,
            "{} events folded of {events}",
            projection.events()
        );
        let report = position(projection, self.year)?;
        crate::position::check_totals(&report)?;
        ensure!(
            report.control_total == self.report.control_total
                && report.wider_ics == self.report.wider_ics
                && report.members.len() == self.report.members.len()
                && report
                    .members
                    .iter()
                    .zip(&self.report.members)
                    .all(|(a, b)| a.figures == b.figures),
            "the replayed position is not the one folded in memory"
        );
        Ok(())
    }
}

fn position(projection: &Projection, year: FinancialYear) -> anyhow::Result<PositionReport> {
    Ok(projection
        .at(AsOf::Latest)?
        .position(year, Month::new(12)?)?)
}

/// icsctl's global options, for a ledgerd at `server` with no TLS and no token.
pub fn global(server: &str) -> icsctl::Global {
    icsctl::Global {
        server: server.to_string(),
        position_server: "http://127.0.0.1:1".to_string(),
        oversight_server: "http://127.0.0.1:1".to_string(),
        json: false,
        actor: Some("bench".to_string()),
        token: None,
        request_id: None,
        expected_version: None,
        ca: None,
        cert: None,
        key: None,
        tls_name: None,
    }
}

/// Checks a verification outcome covered the whole log and every checkpoint, from both
/// sources.
fn check_verified(
    outcome: verify::Outcome,
    expected: &Expected,
) -> anyhow::Result<::audit::Verified> {
    let verified = outcome.map_err(|finding| anyhow!("verification FAILED: {finding}"))?;
    let checkpoints = expected.checkpoints.len();
    ensure!(
        verified.events == expected.events() && verified.root == expected.root,
        "verified {} events with root {}",
        verified.events,
        hex_head(&verified.root)
    );
    for source in [Source::Ledger, Source::Regulator] {
        ensure!(
            verified.checkpoints.get(&source) == Some(&checkpoints),
            "{:?} of {checkpoints} checkpoints from {source} checked",
            verified.checkpoints.get(&source)
        );
    }
    Ok(verified)
}

fn hex_head(hash: &[u8; 32]) -> String {
    hash.iter().take(4).map(|b| format!("{b:02x}")).collect()
}

fn checkpoints_note(expected: &Expected) -> String {
    format!(
        "{0} checkpoints from the ledger + the same {0} as the regulator's",
        expected.checkpoints.len()
    )
}

/// One `icsctl audit replay` (to the head) from `data_dir`, or from ledgerd at
/// `global.server`; checked against the reference.
async fn replay_once(
    global: &icsctl::Global,
    data_dir: Option<&Path>,
    events: u64,
    reference: &Reference,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let mut log = Log::open(global, data_dir).await?;
    let head = log.head().await?;
    let (projection, folded) = icsctl::audit::fold(&mut log, Until::Sequence(head)).await?;
    let elapsed = started.elapsed();
    drop(log);
    ensure!(
        head == events && folded == events,
        "replayed {folded} events to head {head}, of {events}"
    );
    reference.check(&projection, events)?;
    Ok(elapsed)
}

/// Replay and verification of the stopped store in `dir`.
#[allow(clippy::too_many_arguments)]
fn offline(
    runtime: &Runtime,
    run: &mut AuditRun,
    scale: AuditScale,
    dir: &Path,
    system: &SystemId,
    key: &::audit::checkpoint::LedgerKey,
    expected: &Expected,
    reference: &Reference,
) -> anyhow::Result<()> {
    let events = run.events;
    let global = global("http://127.0.0.1:1");
    let mut whole = Pass::new(
        REPLAY_DATA_DIR,
        events,
        "position equals the in-memory fold",
    );
    let mut open = Pass::new(REPLAY_OPEN, events, "");
    let mut scan = Pass::new(REPLAY_SCAN, events, "");
    let requests = run.commands; // one append request per command
    let mut index = Pass::new(REPLAY_INDEX, requests, "");
    let mut decode = Pass::new(REPLAY_DECODE, events, "");
    let mut fold = Pass::new(REPLAY_FOLD, events, "position equals the in-memory fold");
    let mut offline = Pass::new(VERIFY_OFFLINE, events, checkpoints_note(expected));
    for _ in 0..scale.passes {
        whole
            .times
            .push(runtime.block_on(replay_once(&global, Some(dir), events, reference))?);

        let started = Instant::now();
        let log = runtime.block_on(Log::open(&global, Some(dir)))?;
        open.times.push(started.elapsed());
        drop(log);

        let store = EventStore::<Event>::open(StoreConfig::new(dir))?;
        let started = Instant::now();
        let mut next = 1;
        loop {
            let page = store.read_raw(next, 4_096)?;
            let Some(last) = page.last() else { break };
            next = last.sequence + 1;
        }
        scan.times.push(started.elapsed());
        drop(store);
        ensure!(next == events + 1, "the scan ended at {next}");

        let store = EventStore::<Event>::open(StoreConfig::new(dir))?;
        let started = Instant::now();
        store.stream_version(INDEX_STREAM)?; // needs the index: reads every request page
        index.times.push(started.elapsed());
        let bytes = store.request_index_bytes()?;
        index.note = format!(
            "{:.0} MiB of heap ({} bytes a request)",
            bytes as f64 / (1024.0 * 1024.0),
            bytes / usize::try_from(requests.max(1))?
        );
        drop(store);

        let (time, decoded) = runtime.block_on(read_decoded(&global, dir, events, false))?;
        decode.times.push(time);
        ensure!(decoded.is_empty());

        let (_, decoded) = runtime.block_on(read_decoded(&global, dir, events, true))?;
        let started = Instant::now();
        let mut projection = Projection::new();
        for event in &decoded {
            projection
                .apply(&event.recorded(), &event.event)
                .with_context(|| format!("event {} does not fold", event.sequence))?;
        }
        fold.times.push(started.elapsed());
        drop(decoded);
        reference.check(&projection, events)?;
        drop(projection);

        let started = Instant::now();
        let outcome = verify::offline(system, key, dir, Some(expected.checkpoints.clone()), true)?;
        offline.times.push(started.elapsed());
        check_verified(outcome, expected)?;
        eprintln!(
            "audit: replay --data-dir {} events/s, verify --data-dir {} events/s",
            crate::report::rate(crate::per_second(events, whole.best())),
            crate::report::rate(crate::per_second(events, offline.best()))
        );
    }
    run.replay.extend([whole, open, scan, decode, fold, index]);
    run.verify.push(offline);
    Ok(())
}

/// Reads and decodes the whole log from `dir` as `icsctl audit replay --data-dir` does,
/// timing only the reading (not the open); keeps the events if asked.
async fn read_decoded(
    global: &icsctl::Global,
    dir: &Path,
    events: u64,
    keep: bool,
) -> anyhow::Result<(Duration, Vec<LogEvent>)> {
    let mut log = Log::open(global, Some(dir)).await?;
    let head = log.head().await?;
    let mut kept = Vec::new();
    let started = Instant::now();
    let visited = log
        .each(1, head, |event| {
            if keep {
                kept.push(event);
            }
            Ok(ControlFlow::Continue(()))
        })
        .await?;
    let elapsed = started.elapsed();
    ensure!(
        head == events && visited == events,
        "read {visited} events to head {head}, of {events}"
    );
    Ok((elapsed, kept))
}

/// The tree rebuilt as ledgerd rebuilds it at start-up, and proofs from it in-process.
fn in_process_proofs(
    runtime: &Runtime,
    run: &mut AuditRun,
    scale: AuditScale,
    dir: &Path,
    expected: &Expected,
) -> anyhow::Result<()> {
    let store: Store = EventStore::open(StoreConfig::new(dir))?;
    let started = Instant::now();
    let log = AuditLog::build(&store)?;
    run.tree_build = started.elapsed();
    let head = log.head();
    ensure!(
        head.size == run.events && head.root == expected.root,
        "the tree rebuilt from the store is not the log's"
    );
    let Cases { inclusions, olds } = cases(expected, scale.proofs)?;

    let latency = proofs::time_sync(
        scale.proofs,
        |i| {
            let (sequence, size) = inclusions[i];
            Ok((sequence, size, log.inclusion(sequence, size)?))
        },
        |i, (sequence, size, proof)| {
            expected.check_inclusion(i, sequence, size, &proof.path, &proof.root)
        },
    )?;
    run.proofs.push(ProofRun {
        proof: INCLUSION,
        served_by: BY_METHOD,
        latency,
    });
    let latency = proofs::time_sync(
        scale.proofs,
        |i| Ok((olds[i], log.consistency(olds[i], 0)?)),
        |i, (old, proof)| {
            expected.check_consistency(
                i,
                old,
                proof.new_size,
                &proof.path,
                &proof.old_root,
                &proof.new_root,
            )
        },
    )?;
    run.proofs.push(ProofRun {
        proof: CONSISTENCY,
        served_by: BY_METHOD,
        latency,
    });

    let api = AuditApi::new(store.clone(), log.clone(), None);
    let latency = runtime.block_on(proofs::time_async(
        scale.proofs,
        |i| {
            let (sequence, tree_size) = inclusions[i];
            let api = api.clone();
            let request = tonic::Request::new(audit_pb::InclusionProofRequest {
                sequence,
                tree_size,
            });
            Ok(async move {
                Ok::<_, anyhow::Error>(api.get_inclusion_proof(request).await?.into_inner())
            })
        },
        |i, reply| proofs::check_inclusion_reply(expected, i, &reply),
    ))?;
    run.proofs.push(ProofRun {
        proof: INCLUSION,
        served_by: BY_HANDLER,
        latency,
    });
    let latency = runtime.block_on(proofs::time_async(
        scale.proofs,
        |i| {
            let api = api.clone();
            let request = tonic::Request::new(audit_pb::ConsistencyProofRequest {
                old_size: olds[i],
                new_size: 0,
            });
            Ok(async move {
                Ok::<_, anyhow::Error>(api.get_consistency_proof(request).await?.into_inner())
            })
        },
        |i, reply| proofs::check_consistency_reply(expected, i, &reply),
    ))?;
    run.proofs.push(ProofRun {
        proof: CONSISTENCY,
        served_by: BY_HANDLER,
        latency,
    });
    Ok(())
}

pub const INCLUSION: &str = "inclusion (event in the tree of the first checkpoint covering it)";
pub const CONSISTENCY: &str = "consistency (a past tree with the whole log)";
pub const BY_METHOD: &str = "`AuditLog` method";
pub const BY_HANDLER: &str = "`AuditService` handler, in-process";
pub const BY_GRPC: &str = "gRPC on loopback (icsctl's client), ledgerd as it serves";

/// The requests timed.
struct Cases {
    /// (sequence, tree size) for inclusion.
    inclusions: Vec<(u64, u64)>,
    /// Old sizes for consistency with the whole log.
    olds: Vec<u64>,
}

fn cases(expected: &Expected, count: usize) -> anyhow::Result<Cases> {
    let inclusions = (0..count)
        .map(|i| {
            expected
                .inclusion_case(i)
                .map(|(sequence, c)| (sequence, c.checkpoint.sequence))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    let olds = (0..count).map(|i| expected.consistency_case(i)).collect();
    Ok(Cases { inclusions, olds })
}

/// ledgerd on the stored log, in-process; verification, replay and proofs over gRPC.
#[allow(clippy::too_many_arguments)]
fn online(
    runtime: &Runtime,
    run: &mut AuditRun,
    scale: AuditScale,
    dir: &Path,
    key_path: &Path,
    system: &SystemId,
    key: &::audit::checkpoint::LedgerKey,
    expected: &Expected,
    reference: &Reference,
) -> anyhow::Result<()> {
    let listener = runtime.block_on(tokio::net::TcpListener::bind(SocketAddr::from((
        [127, 0, 0, 1],
        0,
    ))))?;
    let address = listener.local_addr()?;
    let config = ledgerd::config::Config {
        listen: address,
        data_dir: dir.to_path_buf(),
        system: system.to_string(),
        checkpoint_key: Some(PathBuf::from(key_path)),
        checkpoint_every_events: run.checkpoint_every,
        ..ledgerd::config::Config::default()
    };
    let stop = CancellationToken::new();
    let started = Instant::now();
    let server = runtime.spawn(ledgerd::server::run(
        config,
        listener,
        stop.clone().cancelled_owned(),
    ));
    let measured = runtime.block_on(async {
        run.ledgerd_startup = ready(address, run.events, started).await?;
        eprintln!(
            "audit: ledgerd started on the log in {:.1} s",
            run.ledgerd_startup.as_secs_f64()
        );
        over_grpc(run, scale, address, (system, key), expected, reference).await
    });
    stop.cancel();
    runtime
        .block_on(server)
        .context("the ledgerd task")?
        .context("ledgerd")?;
    measured
}

/// Waits for ledgerd at `address` to answer `Head` with `events`; the time since `started`.
async fn ready(address: SocketAddr, events: u64, started: Instant) -> anyhow::Result<Duration> {
    loop {
        if let Ok(mut client) = LedgerServiceClient::connect(format!("http://{address}")).await
            && let Ok(head) = client.head(pb::HeadRequest {}).await
        {
            let head = head.into_inner().sequence;
            ensure!(head == events, "ledgerd's head is {head}, not {events}");
            return Ok(started.elapsed());
        }
        ensure!(
            started.elapsed() < Duration::from_secs(600),
            "ledgerd did not start"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

async fn over_grpc(
    run: &mut AuditRun,
    scale: AuditScale,
    address: SocketAddr,
    (system, key): (&SystemId, &::audit::checkpoint::LedgerKey),
    expected: &Expected,
    reference: &Reference,
) -> anyhow::Result<()> {
    let events = run.events;
    let global = global(&format!("http://{address}"));
    let mut online = Pass::new(VERIFY_ONLINE, events, checkpoints_note(expected));
    let mut read_all = Pass::new(VERIFY_READ_STORED, events, "");
    let mut replay = Pass::new(REPLAY_GRPC, events, "position equals the in-memory fold");
    for _ in 0..scale.passes {
        let started = Instant::now();
        let outcome = verify::online(
            &global,
            system,
            key,
            Some(expected.checkpoints.clone()),
            true,
        )
        .await?;
        online.times.push(started.elapsed());
        check_verified(outcome, expected)?;

        let mut client = icsctl::connect(&global).await?;
        let request = icsctl::request(
            &global,
            pb::ReadStoredRequest {
                from_sequence: 1,
                limit: events,
            },
        )?;
        let started = Instant::now();
        let mut pages = client.read_stored(request).await?.into_inner();
        let (mut received, mut last) = (0u64, 0u64);
        while let Some(page) = pages.message().await? {
            received += page.events.len() as u64;
            last = page.first_sequence + page.events.len() as u64 - 1;
        }
        read_all.times.push(started.elapsed());
        ensure!(
            received == events && last == events,
            "ReadStored sent {received} events, the last {last}"
        );

        replay
            .times
            .push(replay_once(&global, None, events, reference).await?);
        eprintln!(
            "audit: verify over gRPC {} events/s, ReadStored {} events/s, replay over gRPC {} events/s",
            crate::report::rate(crate::per_second(events, online.best())),
            crate::report::rate(crate::per_second(events, read_all.best())),
            crate::report::rate(crate::per_second(events, replay.best()))
        );
    }
    run.verify.extend([online, read_all]);
    run.replay.push(replay);

    let count = scale.proofs;
    let Cases { inclusions, olds } = cases(expected, count)?;
    let client = icsctl::audit::audit_client(&global).await?;
    let latency = proofs::time_async(
        count,
        |i| {
            let (sequence, tree_size) = inclusions[i];
            let mut client = client.clone();
            let request = icsctl::request(
                &global,
                audit_pb::InclusionProofRequest {
                    sequence,
                    tree_size,
                },
            )?;
            Ok(async move {
                Ok::<_, anyhow::Error>(client.get_inclusion_proof(request).await?.into_inner())
            })
        },
        |i, reply| proofs::check_inclusion_reply(expected, i, &reply),
    )
    .await?;
    run.proofs.push(ProofRun {
        proof: INCLUSION,
        served_by: BY_GRPC,
        latency,
    });
    let latency = proofs::time_async(
        count,
        |i| {
            let mut client = client.clone();
            let request = icsctl::request(
                &global,
                audit_pb::ConsistencyProofRequest {
                    old_size: olds[i],
                    new_size: 0,
                },
            )?;
            Ok(async move {
                Ok::<_, anyhow::Error>(client.get_consistency_proof(request).await?.into_inner())
            })
        },
        |i, reply| proofs::check_consistency_reply(expected, i, &reply),
    )
    .await?;
    run.proofs.push(ProofRun {
        proof: CONSISTENCY,
        served_by: BY_GRPC,
        latency,
    });
    Ok(())
}
