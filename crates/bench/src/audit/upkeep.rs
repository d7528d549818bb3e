//! The synthetic log appended to the event store as ledgerd appends it — one request per
//! command, up to `window` requests in flight, each acknowledged after its flush — into three
//! stores side by side, in rounds: one with no audit task, one followed by ledgerd's audit
//! task keeping the Merkle tree only, one by the same task also signing checkpoints (ledgerd's
//! configuration). Each round appends the next slice of the log to each store in turn (the
//! order rotating), so the three see the same events under the same load from elsewhere.

use std::collections::VecDeque;
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use domain::Event;
use domain::position::Recorded;
use ledgerd::audit::{AuditLog, CheckpointSettings};
use ledgerd::ledger::Store;
use store::{AppendRequest, EventStore, StoreConfig};
use tempfile::TempDir;
use tokio::runtime::Runtime;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// What follows the store while it is appended to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upkeep {
    /// Nothing: the store alone.
    None,
    /// `ledgerd::audit::run` without checkpoint settings: the tree kept up to date.
    Tree,
    /// `ledgerd::audit::run` with checkpoint settings, as ledgerd runs it: the tree, and a
    /// checkpoint signed and stored (flushed) every `checkpoint_every` events.
    TreeAndCheckpoints,
}

impl Upkeep {
    pub const ALL: [Upkeep; 3] = [Upkeep::None, Upkeep::Tree, Upkeep::TreeAndCheckpoints];

    pub fn describe(self) -> &'static str {
        match self {
            Upkeep::None => "none (the store alone)",
            Upkeep::Tree => "ledgerd's audit task, Merkle tree only",
            Upkeep::TreeAndCheckpoints => {
                "ledgerd's audit task, tree + signed checkpoints (as ledgerd runs)"
            }
        }
    }
}

/// One store's appends, summed over the rounds.
#[derive(Clone, Debug)]
pub struct UpkeepRun {
    pub upkeep: Upkeep,
    pub events: u64,
    pub requests: u64,
    pub rounds: usize,
    /// From each round's first request to its last acknowledgement, summed.
    pub acknowledged: Duration,
    /// Plus, after each round, the wait until the tree (and the checkpoints due) covered it.
    pub settled: Duration,
    /// The longest such wait.
    pub max_lag: Duration,
    /// Checkpoints stored by the end.
    pub checkpoints: usize,
}

impl UpkeepRun {
    pub fn acknowledged_per_second(&self) -> f64 {
        crate::per_second(self.events, self.acknowledged)
    }

    pub fn settled_per_second(&self) -> f64 {
        crate::per_second(self.events, self.settled)
    }
}

/// The store the rest of the audit benchmark reads: the log, its tree's root, and the
/// checkpoints ledgerd's audit task signed.
pub struct Built {
    pub dir: TempDir,
    pub root: [u8; 32],
    pub hashes: Vec<[u8; 32]>,
}

/// A store being appended to, and its follower.
struct Appending {
    upkeep: Upkeep,
    dir: TempDir,
    store: Store,
    log: Option<AuditLog>,
    stop: CancellationToken,
    task: Option<tokio::task::JoinHandle<()>>,
    run: UpkeepRun,
}

impl Appending {
    fn start(
        upkeep: Upkeep,
        runtime: &Runtime,
        settings: &CheckpointSettings,
        rounds: usize,
    ) -> anyhow::Result<Appending> {
        let dir = tempfile::Builder::new().prefix("bench-audit-").tempdir()?;
        // ledgerd's store settings (its default batch_events_max is the store's).
        let store = EventStore::open(StoreConfig::new(dir.path()))?;
        let stop = CancellationToken::new();
        let (log, task) = match upkeep {
            Upkeep::None => (None, None),
            Upkeep::Tree | Upkeep::TreeAndCheckpoints => {
                // What ledgerd::server::run does: build the tree, spawn the task.
                let log = AuditLog::build(&store)?;
                let checkpoints = (upkeep == Upkeep::TreeAndCheckpoints).then(|| settings.clone());
                let task = runtime.spawn(ledgerd::audit::run(
                    store.clone(),
                    log.clone(),
                    checkpoints,
                    Arc::new(Notify::new()),
                    stop.clone(),
                ));
                (Some(log), Some(task))
            }
        };
        Ok(Appending {
            upkeep,
            dir,
            store,
            log,
            stop,
            task,
            run: UpkeepRun {
                upkeep,
                events: 0,
                requests: 0,
                rounds,
                acknowledged: Duration::ZERO,
                settled: Duration::ZERO,
                max_lag: Duration::ZERO,
                checkpoints: 0,
            },
        })
    }

    /// Appends `requests` (up to `window` in flight) and waits for every acknowledgement;
    /// then until the follower has caught up.
    fn round(
        &mut self,
        requests: Vec<AppendRequest<Event>>,
        window: usize,
        checkpoint_every: u64,
    ) -> anyhow::Result<()> {
        let count = requests.len() as u64;
        let events: u64 = requests.iter().map(|r| r.events.len() as u64).sum();
        let expected = self.store.head().sequence + events;

        let started = Instant::now();
        let mut pending = VecDeque::with_capacity(window);
        for request in requests {
            if pending.len() >= window
                && let Some(oldest) = pending.pop_front()
            {
                acknowledged(oldest)?;
            }
            pending.push_back(self.store.enqueue(request)?);
        }
        for append in pending {
            acknowledged(append)?;
        }
        let elapsed = started.elapsed();

        let head = self.store.head().sequence;
        ensure!(
            head == expected,
            "head {head} after appending to {expected}"
        );
        let lag = self.settle(checkpoint_every)?;
        self.run.events += events;
        self.run.requests += count;
        self.run.acknowledged += elapsed;
        self.run.settled += elapsed + lag;
        self.run.max_lag = self.run.max_lag.max(lag);
        Ok(())
    }

    /// Waits until the tree covers the head and, with checkpoints, the last one due is stored.
    fn settle(&self, checkpoint_every: u64) -> anyhow::Result<Duration> {
        let Some(log) = &self.log else {
            return Ok(Duration::ZERO);
        };
        let head = self.store.head().sequence;
        let due = match self.upkeep {
            Upkeep::TreeAndCheckpoints => head - head % checkpoint_every,
            _ => 0,
        };
        let started = Instant::now();
        while log.size() < head || log.checkpointed() < due {
            ensure!(
                started.elapsed() < Duration::from_secs(300),
                "the audit task did not catch up with {head} ({} in the tree, checkpointed {})",
                log.size(),
                log.checkpointed()
            );
            std::thread::sleep(Duration::from_micros(100));
        }
        Ok(started.elapsed())
    }

    /// Stops the follower and checks the store: the chain verifies to `events`, the tree
    /// holds them all with the root recomputed here from the stored hashes, and the
    /// checkpoints due were signed.
    fn finish(
        mut self,
        runtime: &Runtime,
        events: u64,
        checkpoint_every: u64,
    ) -> anyhow::Result<(UpkeepRun, Built)> {
        self.stop.cancel();
        if let Some(task) = self.task.take() {
            runtime.block_on(task).context("the audit task")?;
        }
        let head = self
            .store
            .verify_chain()
            .context("the log does not verify")?;
        ensure!(
            head.sequence == events && self.run.events == events,
            "{} events stored, {} appended, of {events}",
            head.sequence,
            self.run.events
        );
        let hashes = read_hashes(&self.store)?;
        ensure!(hashes.len() as u64 == events, "{} hashes", hashes.len());
        let root = merkle::Tree::from_leaf_hashes(hashes.iter().map(::audit::leaf)).root();
        if let Some(log) = &self.log {
            let tree = log.head();
            ensure!(
                tree.size == events && tree.root == root && tree.chain_hash == head.hash,
                "the audit task's tree ({} events) is not the log's",
                tree.size
            );
        }
        self.run.checkpoints = self.store.checkpoints(0, usize::MAX)?.len();
        if self.upkeep == Upkeep::TreeAndCheckpoints {
            // Every `checkpoint_every`-th event, and one at shutdown for the rest.
            let due = events.div_ceil(checkpoint_every);
            ensure!(
                self.run.checkpoints as u64 >= due,
                "{} checkpoints, {due} due",
                self.run.checkpoints
            );
            ensure!(
                self.store.last_checkpoint()? == events,
                "the last checkpoint is not at the head"
            );
        }
        drop(self.log);
        drop(self.store);
        let built = Built {
            dir: self.dir,
            root,
            hashes,
        };
        Ok((self.run, built))
    }
}

fn acknowledged(append: store::PendingAppend) -> anyhow::Result<()> {
    let outcome = append.wait()?;
    ensure!(!outcome.duplicate, "a request was taken for a resend");
    Ok(())
}

/// Every chain hash the store holds, in order.
pub fn read_hashes(store: &Store) -> anyhow::Result<Vec<[u8; 32]>> {
    let mut hashes = Vec::new();
    loop {
        let page = store.read_hashes(hashes.len() as u64 + 1, 16_384)?;
        if page.is_empty() {
            return Ok(hashes);
        }
        hashes.extend(page);
    }
}

/// The log's commands as index ranges into it.
pub fn commands(command_events: &[u32]) -> Vec<Range<usize>> {
    let mut start = 0;
    command_events
        .iter()
        .map(|&n| {
            let range = start..start + n as usize;
            start = range.end;
            range
        })
        .collect()
}

/// The append request ledgerd makes for a command's events (the command hash, which only
/// matters for resends, is the command's number; ids are random UUIDs, as ledgerd's are), its
/// stream at the version `versions` ([`versions_before`]) has for the command's first event.
pub fn request(
    log: &[(Recorded, Event)],
    command: Range<usize>,
    versions: &[u64],
) -> anyhow::Result<AppendRequest<Event>> {
    let events = log
        .get(command.clone())
        .context("a command beyond the log")?;
    let stream = events
        .first()
        .context("a command with no events")?
        .1
        .stream();
    ensure!(
        events.iter().all(|(_, e)| e.stream() == stream),
        "a command's events on several streams"
    );
    let mut command_hash = [0; 32];
    command_hash[..8].copy_from_slice(&(command.start as u64).to_be_bytes());
    Ok(AppendRequest {
        request_id: *uuid::Uuid::new_v4().as_bytes(),
        command_hash,
        stream: stream.to_string(),
        stream_version: versions[command.start],
        actor: "synthetic".to_string(),
        correlation_id: *uuid::Uuid::new_v4().as_bytes(),
        events: events
            .iter()
            .map(|(_, event)| ledgerd::ledger::new_event(event))
            .collect(),
    })
}

/// The version each event's stream is at before it: what its command's request states.
pub fn versions_before(log: &[(Recorded, Event)]) -> Vec<u64> {
    let mut versions = std::collections::HashMap::new();
    log.iter()
        .map(|(_, event)| {
            let version = versions.entry(event.stream()).or_insert(0u64);
            let before = *version;
            *version += 1;
            before
        })
        .collect()
}

/// Appends `log` (whose commands produced `command_events`) to three stores in `rounds`
/// rounds; returns the three runs and the store signed as ledgerd signs.
pub fn run(
    runtime: &Runtime,
    log: &[(Recorded, Event)],
    command_events: &[u32],
    settings: &CheckpointSettings,
    rounds: usize,
    window: usize,
) -> anyhow::Result<(Vec<UpkeepRun>, Built)> {
    let events = log.len() as u64;
    let commands = commands(command_events);
    ensure!(
        commands.last().map(|c| c.end) == Some(log.len()),
        "the commands do not cover the log"
    );
    let rounds = rounds.clamp(1, commands.len());
    // Round r takes the commands that start in its share of the log.
    let mut slices: Vec<Vec<Range<usize>>> = vec![Vec::new(); rounds];
    for command in commands {
        let r = (command.start as u128 * rounds as u128 / u128::from(events)) as usize;
        slices[r.min(rounds - 1)].push(command);
    }
    let versions = versions_before(log);
    let every = settings.every_events;
    let mut stores = Upkeep::ALL
        .iter()
        .map(|&upkeep| Appending::start(upkeep, runtime, settings, rounds))
        .collect::<anyhow::Result<Vec<_>>>()?;
    for (r, slice) in slices.iter().enumerate() {
        for k in 0..stores.len() {
            let i = (r + k) % stores.len();
            // Built before the clock starts.
            let requests = slice
                .iter()
                .map(|command| request(log, command.clone(), &versions))
                .collect::<anyhow::Result<Vec<_>>>()?;
            stores[i].round(requests, window, every)?;
        }
        eprintln!(
            "upkeep: round {}/{rounds}: {}",
            r + 1,
            stores
                .iter()
                .map(|s| format!(
                    "{:?} {} events/s",
                    s.upkeep,
                    crate::report::rate(s.run.acknowledged_per_second())
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
    }
    let mut runs = Vec::new();
    let mut built = None;
    for store in stores {
        let upkeep = store.upkeep;
        let (run, store) = store.finish(runtime, events, every)?;
        runs.push(run);
        if upkeep == Upkeep::TreeAndCheckpoints {
            built = Some(store);
        }
    }
    Ok((runs, built.context("no store signed checkpoints")?))
}
