//! Fault trials against the real binaries, shared by the fault suite (`tests/tests/faults.rs`)
//! and the soak (`src/bin/soak.rs`). A trial counts what it finds — acknowledged commands lost
//! or recorded twice, a log served shorter than it was, a chain that does not verify — rather
//! than asserting, so a soak can add up many trials and still say which one went wrong and
//! how to repeat it (its seed; its directory is kept).

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use testkit::{NatsOptions, NatsServer};
use tokio::task::JoinHandle;
use tonic::transport::Channel;

use crate::{Ledgerd, Positiond, Published, Started};

/// How long the relay, positiond or the load may take to get somewhere before the trial
/// gives up on it (a liveness bound, not a speed requirement).
const PROGRESS_TIMEOUT: Duration = Duration::from_secs(120);
/// The contract every writer invoices.
const CONTRACT: &str = "N1";
/// At most this many problems are described in a tally; the counts stay exact.
const PROBLEMS_KEPT: usize = 40;
/// ledgerd's exit status for a store it refuses (`ledgerd::server::EXIT_STORE_REFUSED`).
const EXIT_STORE_REFUSED: i32 = ledgerd::server::EXIT_STORE_REFUSED as i32;

/// A kind of fault a trial injects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Kind {
    /// ledgerd killed with SIGKILL under concurrent writers, then restarted.
    Kill9,
    /// nats-server killed and its JetStream store directory removed under concurrent writers,
    /// then started again, empty, on the same port.
    NatsWipe,
    /// One byte changed in a copy of a stopped ledger's sled directory, at offsets spread over
    /// every file in it, each copy started on its own.
    ByteChange,
}

impl Kind {
    pub const ALL: [Kind; 3] = [Kind::Kill9, Kind::NatsWipe, Kind::ByteChange];

    pub fn name(self) -> &'static str {
        match self {
            Kind::Kill9 => "kill9",
            Kind::NatsWipe => "nats-wipe",
            Kind::ByteChange => "byte-change",
        }
    }

    /// What the fault is, for the soak's table.
    pub fn description(self) -> &'static str {
        match self {
            Kind::Kill9 => "ledgerd SIGKILLed under load",
            Kind::NatsWipe => "nats-server SIGKILLed, JetStream store wiped, under load",
            Kind::ByteChange => "one byte of a stopped store's file changed",
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kind {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Kind::ALL
            .into_iter()
            .find(|kind| kind.name() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Kind::ALL.iter().map(|k| k.name()).collect();
                format!("unknown fault kind {text:?}; one of {}", names.join(", "))
            })
    }
}

/// Runs one trial of `kind` with `seed` (which decides the load's shape, when the fault
/// strikes and which bytes change). `offsets_per_file` is for [`Kind::ByteChange`] only.
pub async fn run(kind: Kind, seed: u64, offsets_per_file: usize) -> anyhow::Result<Tally> {
    match kind {
        Kind::Kill9 => kill9_trial(seed).await,
        Kind::NatsWipe => nats_wipe_trial(seed).await,
        Kind::ByteChange => byte_change_trial(seed, offsets_per_file).await,
    }
}

/// What trials found, added up.
#[derive(Clone, Debug, Default)]
pub struct Tally {
    pub trials: u64,
    /// Faults injected: kills, wipes, changed copies.
    pub faults: u64,
    /// Commands a client was told were recorded.
    pub acknowledged: u64,
    /// Commands in flight when ledgerd was killed (sent, never answered), and how many of
    /// them the log held after the restart: evidence that the kill struck mid-write.
    pub unanswered: u64,
    pub unanswered_recorded: u64,
    /// Acknowledged but absent, or different, afterwards.
    pub lost: u64,
    /// A request id recorded twice, an event id twice in the log, or an event twice in
    /// JetStream.
    pub doubled: u64,
    /// A log served shorter than what was acknowledged, or than it was before the fault.
    pub truncations: u64,
    /// Chains checked (the log as served, event by event from its stored bytes) and how many
    /// of them did not verify.
    pub chains: u64,
    pub unverified: u64,
    /// Changed copies ledgerd refused (exit status 3 naming the store) and ones it served
    /// whole, as before.
    pub refused: u64,
    pub harmless: u64,
    /// Anything else wrong: an unexpected exit status, JetStream out of order or different
    /// from the log, a reader not at the head, a writer refused while ledgerd was up.
    pub other: u64,
    /// What each problem was, at most [`PROBLEMS_KEPT`] of them.
    pub problems: Vec<String>,
}

impl Tally {
    /// Whether nothing was lost, doubled, truncated, unverified or otherwise wrong.
    pub fn holds(&self) -> bool {
        self.lost == 0
            && self.doubled == 0
            && self.truncations == 0
            && self.unverified == 0
            && self.other == 0
    }

    pub fn add(&mut self, other: &Tally) {
        self.trials += other.trials;
        self.faults += other.faults;
        self.acknowledged += other.acknowledged;
        self.unanswered += other.unanswered;
        self.unanswered_recorded += other.unanswered_recorded;
        self.lost += other.lost;
        self.doubled += other.doubled;
        self.truncations += other.truncations;
        self.chains += other.chains;
        self.unverified += other.unverified;
        self.refused += other.refused;
        self.harmless += other.harmless;
        self.other += other.other;
        for problem in &other.problems {
            self.note(problem.clone());
        }
    }

    fn note(&mut self, problem: String) {
        if self.problems.len() < PROBLEMS_KEPT {
            self.problems.push(problem);
        }
    }

    fn lost(&mut self, problem: String) {
        self.lost += 1;
        self.note(format!("lost: {problem}"));
    }

    fn doubled(&mut self, problem: String) {
        self.doubled += 1;
        self.note(format!("doubled: {problem}"));
    }

    fn truncated(&mut self, problem: String) {
        self.truncations += 1;
        self.note(format!("truncated: {problem}"));
    }

    fn wrong(&mut self, problem: String) {
        self.other += 1;
        self.note(format!("wrong: {problem}"));
    }
}

/// The soak's table: one row per kind, markdown.
pub fn table(rows: &[(Kind, Tally)]) -> String {
    let mut out = String::from(
        "| fault | trials | faults injected | acknowledged | lost | doubled | truncations | chains verified | other |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (kind, tally) in rows {
        let mut fault = kind.description().to_string();
        if *kind == Kind::ByteChange {
            fault.push_str(&format!(
                ": {} refused (exit 3), {} harmless",
                tally.refused, tally.harmless
            ));
        }
        out.push_str(&format!(
            "| {fault} | {} | {} | {} | {} | {} | {} | {}/{} | {} |\n",
            tally.trials,
            tally.faults,
            tally.acknowledged,
            tally.lost,
            tally.doubled,
            tally.truncations,
            tally.chains - tally.unverified,
            tally.chains,
            tally.other,
        ));
    }
    out
}

/// splitmix64: a trial's choices from its seed, so `--seed` repeats them.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `low..=high`.
    fn between(&mut self, low: u64, high: u64) -> u64 {
        low + self.next() % (high - low + 1)
    }
}

// ---------------------------------------------------------------------------------------------
// The load: concurrent writers, unary and bulk, remembering every acknowledgement.
// ---------------------------------------------------------------------------------------------

/// One invoice a writer sent.
#[derive(Clone, Debug)]
struct Sent {
    request: pb::RaiseInvoiceRequest,
}

impl Sent {
    fn new(load: u32, writer: u32, n: u32) -> Sent {
        Sent {
            request: pb::RaiseInvoiceRequest {
                meta: Some(pb::CommandMeta {
                    request_id: uuid::Uuid::new_v4().to_string(),
                    expected_version: None,
                    correlation_id: String::new(),
                }),
                contract: CONTRACT.to_string(),
                invoice: format!("L{load}-W{writer}-{n}"),
                period: Some(pb::Period {
                    year: 2018,
                    month: n % 12 + 1,
                }),
                amount_pence: 100 + i64::from((writer * 7_919 + n) % 10_000),
                corrects: None,
            },
        }
    }

    fn request_id(&self) -> &str {
        self.request
            .meta
            .as_ref()
            .map_or("", |meta| meta.request_id.as_str())
    }

    fn command(&self) -> pb::Command {
        pb::Command {
            command: Some(pb::command::Command::RaiseInvoice(self.request.clone())),
        }
    }

    /// Whether `event` is this invoice as it was sent.
    fn is_recorded_as(&self, event: &pb::RecordedEvent) -> bool {
        if event.request_id != self.request_id()
            || event.stream != format!("contract/{CONTRACT}")
            || event.event_type != "contract.invoice_raised"
        {
            return false;
        }
        let Ok(domain::Event::Contract {
            contract,
            event:
                domain::ContractEvent::InvoiceRaised {
                    invoice, amount, ..
                },
        }) = api::event_from_proto(event.event.clone().unwrap_or_default())
        else {
            return false;
        };
        contract.as_str() == CONTRACT
            && invoice.as_str() == self.request.invoice
            && amount.get() == self.request.amount_pence
    }
}

/// The reply that acknowledged some sent commands.
#[derive(Clone, Debug)]
enum Reply {
    Unary(pb::CommandReply),
    Bulk(pb::BulkReply),
}

#[derive(Clone, Debug)]
struct Ack {
    sent: Vec<Sent>,
    reply: Reply,
}

impl Ack {
    fn last_sequence(&self) -> u64 {
        match &self.reply {
            Reply::Unary(reply) => reply.last_sequence,
            Reply::Bulk(reply) => reply.last_sequence,
        }
    }
}

/// What one writer did.
#[derive(Debug, Default)]
struct WriterLog {
    acked: Vec<Ack>,
    /// Sent without an answer (the call failed): recorded or not, nobody was told.
    unsure: Vec<Sent>,
    /// Why it stopped, if a call failed, and when.
    error: Option<(Instant, String)>,
}

/// Writers posting invoices until stopped or until a call fails: `unary` of them one
/// `RaiseInvoice` at a time, `bulk` of them `SubmitBulk` calls of `bulk_size`. Invoice codes
/// are `L<load>-W<writer>-<n>`: loads on one ledger need numbers of their own.
struct Load {
    stop: Arc<AtomicBool>,
    tasks: Vec<JoinHandle<WriterLog>>,
    /// Why writers that stopped on their own stopped.
    errors: Arc<Mutex<Vec<String>>>,
}

impl Load {
    fn start(url: &str, load: u32, unary: u32, bulk: u32, bulk_size: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let errors = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..unary + bulk)
            .map(|writer| {
                let size = if writer < unary { 0 } else { bulk_size };
                let (stop, errors) = (stop.clone(), errors.clone());
                let url = url.to_string();
                tokio::spawn(async move {
                    let log = write(url, load, writer, size, stop).await;
                    if let Some((_, error)) = &log.error
                        && let Ok(mut errors) = errors.lock()
                    {
                        errors.push(format!("writer {writer}: {error}"));
                    }
                    log
                })
            })
            .collect();
        Load {
            stop,
            tasks,
            errors,
        }
    }

    /// Whether every writer has stopped on its own (each call failed).
    fn all_stopped(&self) -> bool {
        self.tasks.iter().all(JoinHandle::is_finished)
    }

    fn errors(&self) -> Vec<String> {
        self.errors.lock().map(|e| e.clone()).unwrap_or_default()
    }

    /// Stops the writers (those still writing) and returns what each did.
    async fn finish(self) -> anyhow::Result<Vec<WriterLog>> {
        self.stop.store(true, Ordering::Relaxed);
        let mut logs = Vec::new();
        for task in self.tasks {
            logs.push(task.await.context("a writer panicked")?);
        }
        Ok(logs)
    }
}

async fn write(
    url: String,
    load: u32,
    writer: u32,
    bulk_size: usize,
    stop: Arc<AtomicBool>,
) -> WriterLog {
    let mut log = WriterLog::default();
    let mut client = match connect(&url).await {
        Ok(client) => client,
        Err(error) => {
            log.error = Some((Instant::now(), format!("{error:#}")));
            return log;
        }
    };
    let mut n = 0;
    while !stop.load(Ordering::Relaxed) {
        let count = bulk_size.max(1);
        let sent: Vec<Sent> = (0..count)
            .map(|_| {
                n += 1;
                Sent::new(load, writer, n)
            })
            .collect();
        let outcome = if bulk_size == 0 {
            client
                .raise_invoice(sent[0].request.clone())
                .await
                .map(|reply| Reply::Unary(reply.into_inner()))
        } else {
            let commands: Vec<pb::Command> = sent.iter().map(Sent::command).collect();
            client
                .submit_bulk(futures::stream::iter(commands))
                .await
                .map(|reply| Reply::Bulk(reply.into_inner()))
        };
        match outcome {
            Ok(reply) => log.acked.push(Ack { sent, reply }),
            Err(status) => {
                log.unsure.extend(sent);
                log.error = Some((Instant::now(), status.to_string()));
                break;
            }
        }
    }
    log
}

async fn connect(url: &str) -> anyhow::Result<LedgerServiceClient<Channel>> {
    let channel = Channel::from_shared(url.to_string())?
        .connect()
        .await
        .with_context(|| format!("connecting to ledgerd at {url}"))?;
    Ok(LedgerServiceClient::new(channel))
}

/// Waits until `load` has taken the log's head to `sequence` or beyond; returns the head.
async fn wait_for_head(
    client: &mut LedgerServiceClient<Channel>,
    load: &Load,
    sequence: u64,
) -> anyhow::Result<u64> {
    let started = Instant::now();
    loop {
        let head = crate::head(client).await?.sequence;
        if head >= sequence {
            return Ok(head);
        }
        anyhow::ensure!(
            !load.all_stopped(),
            "every writer stopped at event {head}, short of {sequence}: {:?}",
            load.errors()
        );
        anyhow::ensure!(
            started.elapsed() < PROGRESS_TIMEOUT,
            "the load stalled at event {head}, short of {sequence}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// The system, three members and contract N1 (2018/19) the writers invoice; with `pool`, a
/// pooled budget of 500 schemes with long names too, an event big enough that sled keeps
/// its page in a blob file of its own.
async fn set_up(client: &mut LedgerServiceClient<Channel>, pool: bool) -> anyhow::Result<()> {
    let meta = || {
        Some(pb::CommandMeta {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        })
    };
    client
        .establish_system(pb::EstablishSystemRequest {
            meta: meta(),
            system: "kav".to_string(),
            name: "Kingsmere & Alder Valley ICS".to_string(),
            first_year: 2018,
        })
        .await?;
    for (member, kind, in_control_total) in [
        ("KCCG", pb::MemberKind::Commissioner, true),
        ("KHFT", pb::MemberKind::AcuteTrust, true),
        ("KCC", pb::MemberKind::LocalAuthority, false),
    ] {
        client
            .admit_member(pb::AdmitMemberRequest {
                meta: meta(),
                member: member.to_string(),
                name: member.to_string(),
                kind: kind.into(),
                in_control_total,
            })
            .await?;
    }
    client
        .agree_contract(pb::AgreeContractRequest {
            meta: meta(),
            contract: CONTRACT.to_string(),
            commissioner: "KCCG".to_string(),
            provider: "KHFT".to_string(),
            year: 2018,
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::Block(pb::payment_model::Block {
                    annual_value_pence: 100_000_000,
                })),
            }),
            description: "Community services".to_string(),
        })
        .await?;
    if pool {
        let halves = || {
            ["KCCG", "KCC"]
                .map(|member| pb::Share {
                    member: member.to_string(),
                    share_bp: 5_000,
                })
                .to_vec()
        };
        let schemes = (0..domain::limits::SCHEMES_MAX)
            .map(|i| pb::Scheme {
                scheme: format!("SCHEME-{i:04}"),
                name: format!(
                    "Scheme {i}: {}",
                    "reablement and hospital discharge ".repeat(12)
                ),
                ring_fenced: i % 10 == 0,
            })
            .collect();
        client
            .establish_budget(pb::EstablishBudgetRequest {
                meta: meta(),
                budget: "BCF".to_string(),
                name: "Better Care Fund".to_string(),
                host: "KCC".to_string(),
                year: 2018,
                partners: vec!["KCCG".to_string(), "KCC".to_string()],
                schemes,
                overspend_shares: halves(),
                underspend_shares: halves(),
            })
            .await?;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Checks of what is served against what was acknowledged.
// ---------------------------------------------------------------------------------------------

/// The log as ledgerd serves it.
struct Served {
    head: pb::HeadReply,
    events: Vec<pb::RecordedEvent>,
}

/// Reads the head and the whole log, and verifies the chain from the stored bytes
/// (`ReadStored`): each event's hash is SHA-256 of the one before and its body, the chain
/// ends at the head, and `ReadAll` serves the same hashes.
async fn read_served(
    client: &mut LedgerServiceClient<Channel>,
    tally: &mut Tally,
    what: &str,
) -> anyhow::Result<Served> {
    let head = crate::head(client).await?;
    let events = crate::read_all(client).await?;
    if (events.len() as u64) < head.sequence {
        tally.truncated(format!(
            "{what}: ReadAll served {} events under a head of {}",
            events.len(),
            head.sequence
        ));
    }
    tally.chains += 1;
    if let Err(reason) = verify_chain(client, &head, &events).await? {
        tally.unverified += 1;
        tally.note(format!("unverified: {what}: {reason}"));
    }
    Ok(Served { head, events })
}

/// `Ok(Err(reason))` when the chain does not verify.
async fn verify_chain(
    client: &mut LedgerServiceClient<Channel>,
    head: &pb::HeadReply,
    events: &[pb::RecordedEvent],
) -> anyhow::Result<Result<(), String>> {
    let mut pages = client
        .read_stored(pb::ReadStoredRequest {
            from_sequence: 1,
            limit: 0,
        })
        .await?
        .into_inner();
    let mut prev = [0u8; 32];
    let mut sequence = 0;
    while let Some(page) = pages.message().await? {
        if page.first_sequence != sequence + 1 {
            return Ok(Err(format!(
                "ReadStored went from event {sequence} to a page at {}",
                page.first_sequence
            )));
        }
        for value in page.events {
            sequence += 1;
            match store::codec::verify_stored_link::<domain::Event>(sequence, &prev, &value) {
                Ok(hash) => prev = hash,
                Err(error) => return Ok(Err(format!("event {sequence}: {error}"))),
            }
            let served = usize::try_from(sequence - 1)
                .ok()
                .and_then(|index| events.get(index));
            if served.is_none_or(|event| event.hash != prev) {
                return Ok(Err(format!(
                    "ReadAll's event {sequence} is not the stored one"
                )));
            }
        }
    }
    if sequence != head.sequence || (sequence > 0 && head.hash != prev) {
        return Ok(Err(format!(
            "the stored chain ends at event {sequence}, the head is {}",
            head.sequence
        )));
    }
    Ok(Ok(()))
}

/// Every acknowledged command is in `served` exactly once, as sent, where its reply said;
/// the log is no shorter than the last acknowledgement.
fn check_acknowledged(acks: &[Ack], served: &Served, tally: &mut Tally) {
    let mut index: HashMap<&str, Vec<usize>> = HashMap::new();
    for (at, event) in served.events.iter().enumerate() {
        index.entry(event.request_id.as_str()).or_default().push(at);
    }
    let mut last_acknowledged = 0;
    for ack in acks {
        last_acknowledged = last_acknowledged.max(ack.last_sequence());
        if let Reply::Bulk(reply) = &ack.reply
            && reply.accepted != ack.sent.len() as u64
        {
            tally.wrong(format!(
                "a bulk of {} new commands answered {} accepted, {} duplicates",
                ack.sent.len(),
                reply.accepted,
                reply.duplicates
            ));
        }
        for sent in &ack.sent {
            tally.acknowledged += 1;
            let invoice = &sent.request.invoice;
            let at = index.get(sent.request_id()).map_or(&[][..], Vec::as_slice);
            let [at] = at else {
                if at.is_empty() {
                    tally.lost(format!(
                        "invoice {invoice} (request {}) was acknowledged at event {} and is \
                         not in the log of {} events",
                        sent.request_id(),
                        ack.last_sequence(),
                        served.head.sequence
                    ));
                } else {
                    tally.doubled(format!(
                        "invoice {invoice} (request {}) is recorded {} times",
                        sent.request_id(),
                        at.len()
                    ));
                }
                continue;
            };
            let event = &served.events[*at];
            let where_told = match &ack.reply {
                Reply::Unary(reply) => {
                    event.sequence == reply.last_sequence && event.hash == reply.hash
                }
                Reply::Bulk(reply) => {
                    (reply.first_sequence..=reply.last_sequence).contains(&event.sequence)
                }
            };
            if !where_told || !sent.is_recorded_as(event) {
                tally.lost(format!(
                    "invoice {invoice} (request {}) acknowledged at event {} differs from \
                     event {} recorded under its request id",
                    sent.request_id(),
                    ack.last_sequence(),
                    event.sequence
                ));
            }
        }
    }
    if served.head.sequence < last_acknowledged {
        tally.truncated(format!(
            "the log ends at event {}, event {last_acknowledged} was acknowledged",
            served.head.sequence
        ));
    }
}

/// No command is recorded twice in `events`: each request id's events are one run of
/// consecutive sequences (one append), each invoice's exactly one event, each event id once.
fn check_recorded_once(events: &[pb::RecordedEvent], tally: &mut Tally) {
    let mut runs: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    let mut event_ids = HashSet::new();
    for event in events {
        runs.entry(event.request_id.as_str())
            .or_default()
            .push(event.sequence);
        if !event_ids.insert(event.event_id.as_str()) {
            tally.doubled(format!(
                "event id {} is in the log twice (again at {})",
                event.event_id, event.sequence
            ));
        }
    }
    for (request_id, sequences) in runs {
        let contiguous = sequences.windows(2).all(|pair| pair[1] == pair[0] + 1);
        let invoice = sequences.iter().any(|sequence| {
            usize::try_from(*sequence - 1)
                .ok()
                .and_then(|index| events.get(index))
                .is_some_and(|event| event.event_type == "contract.invoice_raised")
        });
        if !contiguous || (invoice && sequences.len() != 1) {
            tally.doubled(format!(
                "request {request_id} is recorded at events {sequences:?}"
            ));
        }
    }
}

/// JetStream holds `events` exactly: each sequence once, in order, with the ledger's event id,
/// hash and payload, under `ics.kav.<type>`.
fn check_jetstream(events: &[pb::RecordedEvent], published: &[Published], tally: &mut Tally) {
    let mut seen: HashMap<u64, usize> = HashMap::new();
    let mut previous = 0;
    let mut disordered = false;
    for message in published {
        *seen.entry(message.sequence).or_default() += 1;
        if message.sequence <= previous && !disordered {
            disordered = true;
            tally.wrong(format!(
                "JetStream holds event {} after event {previous}",
                message.sequence
            ));
        }
        previous = message.sequence;
        let recorded = usize::try_from(message.sequence)
            .ok()
            .and_then(|sequence| sequence.checked_sub(1))
            .and_then(|index| events.get(index));
        let same = recorded.is_some_and(|event| {
            // `Nats-Msg-Id` is the event id; an event published again after the stream lost it
            // carries the repair's token after a `.`.
            message.event_id.split('.').next() == Some(event.event_id.as_str())
                && message.hash.as_slice() == event.hash.as_slice()
                && message.subject == format!("ics.kav.{}", event.event_type)
                && &message.event == event
        });
        if !same {
            tally.wrong(format!(
                "JetStream's event {} is not the ledger's",
                message.sequence
            ));
        }
    }
    for (sequence, count) in &seen {
        if *count > 1 {
            tally.doubled(format!("JetStream holds event {sequence} {count} times"));
        }
    }
    let missing: Vec<u64> = events
        .iter()
        .map(|event| event.sequence)
        .filter(|sequence| !seen.contains_key(sequence))
        .collect();
    if !missing.is_empty() {
        tally.lost += missing.len() as u64;
        tally.note(format!(
            "lost: JetStream lacks {} events, the first {:?}",
            missing.len(),
            &missing[..missing.len().min(10)]
        ));
    }
}

/// Waits until the relay has published the whole log, then checks JetStream against it.
async fn check_relayed(
    nats_url: &str,
    events: &[pb::RecordedEvent],
    tally: &mut Tally,
) -> anyhow::Result<()> {
    let head = events.last().map_or(0, |event| event.sequence);
    crate::wait_for_relay(nats_url, head, PROGRESS_TIMEOUT).await?;
    let published = crate::jetstream_events(nats_url).await?;
    check_jetstream(events, &published, tally);
    Ok(())
}

/// Every writer's acknowledgements, and what was sent without an answer.
fn gather(logs: Vec<WriterLog>) -> (Vec<Ack>, Vec<Sent>) {
    let mut acks = Vec::new();
    let mut unsure = Vec::new();
    for log in logs {
        acks.extend(log.acked);
        unsure.extend(log.unsure);
    }
    (acks, unsure)
}

// ---------------------------------------------------------------------------------------------
// The trials.
// ---------------------------------------------------------------------------------------------

/// ledgerd SIGKILLed under concurrent writers (unary and bulk), at a point `seed` chooses,
/// then restarted: every acknowledged command is in the log once, as sent; the chain
/// verifies; resending every command — acknowledged or left without an answer — records
/// nothing twice; and the relay, restarted from its cursor, leaves JetStream holding each
/// event once, in order.
pub async fn kill9_trial(seed: u64) -> anyhow::Result<Tally> {
    in_work_dir("fault-kill9-", |work| kill9_in(work, seed)).await
}

async fn kill9_in(work: PathBuf, seed: u64) -> anyhow::Result<Tally> {
    let mut rng = Rng(seed);
    let mut tally = Tally {
        trials: 1,
        ..Tally::default()
    };
    let nats = NatsServer::start_with(NatsOptions {
        sync_always: true,
        ..NatsOptions::default()
    })?;
    let mut ledgerd = Ledgerd::start(&work.join("ledgerd"), Some(&nats.url()))?;
    let mut client = ledgerd.client().await?;
    set_up(&mut client, false).await?;
    let start = crate::head(&mut client).await?.sequence;

    let (unary, bulk) = (rng.between(2, 6) as u32, rng.between(1, 4) as u32);
    let bulk_size = rng.between(2, 64) as usize;
    let kill_at = start + rng.between(100, 1_500);
    let load = Load::start(&ledgerd.url(), 1, unary, bulk, bulk_size);
    wait_for_head(&mut client, &load, kill_at).await?;
    let killed = Instant::now();
    ledgerd.kill9()?;
    tally.faults += 1;
    let logs = load.finish().await?;
    for log in &logs {
        if let Some((at, error)) = &log.error
            && *at < killed
        {
            tally.wrong(format!("a writer was refused before the kill: {error}"));
        }
    }
    let (acks, unsure) = gather(logs);

    ledgerd.restart()?;
    let mut client = ledgerd.client().await?;
    let served = read_served(&mut client, &mut tally, "after the restart").await?;
    // Before anything is resent, so that a resend cannot stand in for a loss.
    check_acknowledged(&acks, &served, &mut tally);
    check_recorded_once(&served.events, &mut tally);
    let recorded: HashSet<&str> = served
        .events
        .iter()
        .map(|e| e.request_id.as_str())
        .collect();
    tally.unanswered = unsure.len() as u64;
    tally.unanswered_recorded = unsure
        .iter()
        .filter(|sent| recorded.contains(sent.request_id()))
        .count() as u64;

    // Everything again in one bulk: the acknowledged are duplicates; those left without an
    // answer are recorded now or were before, once either way.
    let all: Vec<pb::Command> = acks
        .iter()
        .flat_map(|ack| &ack.sent)
        .chain(&unsure)
        .map(Sent::command)
        .collect();
    let resent = client
        .submit_bulk(futures::stream::iter(all.clone()))
        .await?
        .into_inner();
    if resent.accepted > unsure.len() as u64 {
        tally.doubled(format!(
            "resending {} commands, {} of them acknowledged, recorded {}",
            all.len(),
            all.len() - unsure.len(),
            resent.accepted
        ));
    }
    if resent.accepted + resent.duplicates != all.len() as u64 {
        tally.wrong(format!(
            "resending {} commands: {} accepted, {} duplicates",
            all.len(),
            resent.accepted,
            resent.duplicates
        ));
    }
    // And the last acknowledged unary command the way it was sent: the original reply again.
    if let Some(ack) = acks
        .iter()
        .filter(|ack| matches!(ack.reply, Reply::Unary(_)))
        .max_by_key(|ack| ack.last_sequence())
        && let Reply::Unary(original) = &ack.reply
    {
        let again = client
            .raise_invoice(ack.sent[0].request.clone())
            .await?
            .into_inner();
        if !again.duplicate
            || (again.last_sequence, &again.hash) != (original.last_sequence, &original.hash)
        {
            tally.doubled(format!(
                "resending invoice {} (event {}) answered {again:?}",
                ack.sent[0].request.invoice, original.last_sequence
            ));
        }
    }
    let after = crate::read_all(&mut client).await?;
    check_recorded_once(&after, &mut tally);
    let recorded: HashSet<&str> = after.iter().map(|e| e.request_id.as_str()).collect();
    for sent in &unsure {
        if !recorded.contains(sent.request_id()) {
            tally.lost(format!(
                "invoice {} resent and acknowledged is not in the log",
                sent.request.invoice
            ));
        }
    }
    check_relayed(&nats.url(), &after, &mut tally).await?;
    ledgerd.terminate()?;
    Ok(tally)
}

/// nats-server SIGKILLed and its JetStream store directory removed while writers go on, kept
/// down while the ledger records more, then started again, empty, on the same port, with
/// writers still going: nothing acknowledged is lost, the relay publishes the whole log again
/// (each event once, in order), and positiond, started beside, folds to the head.
pub async fn nats_wipe_trial(seed: u64) -> anyhow::Result<Tally> {
    in_work_dir("fault-nats-wipe-", |work| nats_wipe_in(work, seed)).await
}

async fn nats_wipe_in(work: PathBuf, seed: u64) -> anyhow::Result<Tally> {
    let mut rng = Rng(seed);
    let mut tally = Tally {
        trials: 1,
        ..Tally::default()
    };
    let mut nats = NatsServer::start()?;
    let ledgerd = Ledgerd::start(&work.join("ledgerd"), Some(&nats.url()))?;
    let mut client = ledgerd.client().await?;
    set_up(&mut client, false).await?;
    let positiond = Positiond::start(
        &work.join("positiond"),
        &nats.url(),
        &ledgerd.url(),
        "positiond",
    )?;

    let (unary, bulk) = (rng.between(2, 5) as u32, rng.between(1, 3) as u32);
    let bulk_size = rng.between(2, 64) as usize;
    let load = Load::start(&ledgerd.url(), 1, unary, bulk, bulk_size);
    let head = crate::head(&mut client).await?.sequence;
    let head = wait_for_head(&mut client, &load, head + rng.between(100, 1_000)).await?;
    nats.kill9()?;
    std::fs::remove_dir_all(nats.store_dir())?;
    std::fs::create_dir_all(nats.store_dir())?;
    tally.faults += 1;
    // The ledger goes on recording while the bus is gone…
    let head = wait_for_head(&mut client, &load, head + rng.between(50, 500)).await?;
    nats.restart()?;
    // …and after it is back, empty.
    wait_for_head(&mut client, &load, head + rng.between(50, 500)).await?;
    let logs = load.finish().await?;
    for log in &logs {
        if let Some((_, error)) = &log.error {
            tally.wrong(format!("a writer was refused: {error}"));
        }
    }
    let (acks, _) = gather(logs);

    let served = read_served(&mut client, &mut tally, "after the wipe").await?;
    check_acknowledged(&acks, &served, &mut tally);
    check_recorded_once(&served.events, &mut tally);
    check_relayed(&nats.url(), &served.events, &mut tally).await?;
    let status = positiond
        .wait_for(served.head.sequence, PROGRESS_TIMEOUT)
        .await?;
    if (status.sequence, &status.hash) != (served.head.sequence, &served.head.hash) {
        tally.wrong(format!(
            "positiond folded to event {} (hash {}), the head is {} (hash {})",
            status.sequence,
            hex::encode(&status.hash),
            served.head.sequence,
            hex::encode(&served.head.hash)
        ));
    }
    Ok(tally)
}

/// A stopped ledger's directory — written by concurrent writers, reopened once (so sled has
/// written a snapshot), with a blob file, and stopped cleanly or, for odd seeds, by SIGKILL —
/// copied once per change: one byte of one file (`db`, `conf`, `snap.*`, `blobs/*`, the
/// anchor) changed at `offsets_per_file` offsets spread over each file. ledgerd started on
/// each copy either refuses it (exit status 3, naming the directory) or serves exactly the
/// log the undamaged directory serves: same head and hash, its chain verifying. Never a
/// shorter log, nor another one.
pub async fn byte_change_trial(seed: u64, offsets_per_file: usize) -> anyhow::Result<Tally> {
    in_work_dir("fault-byte-change-", |work| {
        byte_change_in(work, seed, offsets_per_file)
    })
    .await
}

async fn byte_change_in(
    work: PathBuf,
    seed: u64,
    offsets_per_file: usize,
) -> anyhow::Result<Tally> {
    let mut rng = Rng(seed);
    let mut tally = Tally {
        trials: 1,
        ..Tally::default()
    };
    let original = work.join("original");
    let mut ledgerd = Ledgerd::start(&original, None)?;
    let mut client = ledgerd.client().await?;
    set_up(&mut client, true).await?;
    let start = crate::head(&mut client).await?.sequence;
    let load = Load::start(&ledgerd.url(), 1, 3, 2, rng.between(2, 64) as usize);
    wait_for_head(&mut client, &load, start + rng.between(300, 1_500)).await?;
    let (mut acks, _) = gather(load.finish().await?);
    ledgerd.terminate()?;
    // Reopened: sled writes a snapshot; then more after it.
    ledgerd.restart()?;
    let mut client = ledgerd.client().await?;
    let start = crate::head(&mut client).await?.sequence;
    let load = Load::start(&ledgerd.url(), 2, 2, 1, rng.between(2, 64) as usize);
    wait_for_head(&mut client, &load, start + rng.between(50, 300)).await?;
    let (more, _) = gather(load.finish().await?);
    acks.extend(more);
    if seed % 2 == 1 {
        ledgerd.kill9()?;
    } else {
        ledgerd.terminate()?;
    }

    // What the undamaged directory serves (on a copy: sled's recovery writes to what it opens).
    let copy = work.join("undamaged");
    store::copy::copy_tree(&original, &copy)?;
    let Started::Serving(serving) = crate::start_on(&copy).await? else {
        anyhow::bail!(
            "ledgerd did not serve the undamaged store: {}",
            std::fs::read_to_string(copy.with_extension("log")).unwrap_or_default()
        );
    };
    let mut serving = *serving;
    let before = read_served(&mut serving.client, &mut tally, "the undamaged store").await?;
    check_acknowledged(&acks, &before, &mut tally);
    serving.process.terminate(Duration::from_secs(20))?;
    std::fs::remove_dir_all(&copy)?;

    let mut copies = 0;
    for file in files(&original)? {
        let relative = file.strip_prefix(&original)?.to_path_buf();
        let bytes = std::fs::read(&file)?;
        let len = bytes.len() as u64;
        if len == 0 {
            continue;
        }
        let offsets = offsets_per_file as u64;
        for k in 0..offsets {
            // One offset in each of `offsets` equal stretches of the file.
            let (low, high) = (len * k / offsets, (len * (k + 1) / offsets).max(1) - 1);
            let offset = rng.between(low, high.max(low));
            let change = rng.between(1, 255) as u8;
            let what = format!(
                "{} byte {offset} of {len} ^ {change:#04x} (seed {seed})",
                relative.display()
            );
            copies += 1;
            let copy = work.join(format!("copy-{copies}"));
            store::copy::copy_tree(&original, &copy)?;
            let mut damaged = bytes.clone();
            damaged[usize::try_from(offset)?] ^= change;
            std::fs::write(copy.join(&relative), &damaged)?;
            tally.faults += 1;
            judge_damaged(&copy, &before, &what, &mut tally).await;
            if tally.holds() {
                std::fs::remove_dir_all(&copy)?;
                let _ = std::fs::remove_file(copy.with_extension("log"));
            }
        }
    }
    Ok(tally)
}

/// Starts ledgerd on the damaged copy `dir` and counts what it did.
async fn judge_damaged(dir: &Path, before: &Served, what: &str, tally: &mut Tally) {
    let started = match crate::start_on(dir).await {
        Ok(started) => started,
        Err(error) => {
            tally.wrong(format!("{what}: {error:#}"));
            return;
        }
    };
    match started {
        Started::Exited(code, out) => {
            // The last line is ledgerd's own: `ledgerd: <why>`.
            let why = out.lines().last().unwrap_or_default().to_string();
            let names_store = why.contains(&dir.display().to_string());
            match code {
                Some(EXIT_STORE_REFUSED) if names_store => tally.refused += 1,
                _ => tally.wrong(format!("{what}: ledgerd exited {code:?}: {why}")),
            }
        }
        Started::Serving(serving) => {
            let mut serving = *serving;
            let head = &serving.head;
            if head.sequence < before.head.sequence {
                tally.truncated(format!(
                    "{what}: ledgerd served a log of {} events, not {}",
                    head.sequence, before.head.sequence
                ));
            } else if (head.sequence, &head.hash) != (before.head.sequence, &before.head.hash) {
                tally.lost(format!(
                    "{what}: ledgerd served another log: head {} {}, not {} {}",
                    head.sequence,
                    hex::encode(&head.hash),
                    before.head.sequence,
                    hex::encode(&before.head.hash)
                ));
            } else {
                let (unverified, truncations) = (tally.unverified, tally.truncations);
                match read_served(&mut serving.client, tally, what).await {
                    Ok(_) if (tally.unverified, tally.truncations) == (unverified, truncations) => {
                        tally.harmless += 1;
                    }
                    Ok(_) => {}
                    Err(error) => tally.wrong(format!("{what}: reading the log: {error:#}")),
                }
            }
            if let Err(error) = serving.process.terminate(Duration::from_secs(20)) {
                tally.wrong(format!("{what}: stopping ledgerd: {error:#}"));
            }
        }
    }
}

/// Runs `trial` in a temp dir of its own, removed afterwards unless the trial went wrong or
/// failed: then it is kept (its processes' logs, its stores) and its path given.
async fn in_work_dir<F, T>(prefix: &str, trial: F) -> anyhow::Result<Tally>
where
    F: FnOnce(PathBuf) -> T,
    T: std::future::Future<Output = anyhow::Result<Tally>>,
{
    let work = tempfile::Builder::new().prefix(prefix).tempdir()?;
    match trial(work.path().to_path_buf()).await {
        Ok(mut tally) => {
            if !tally.holds() {
                let kept = work.keep();
                tally.note(format!("kept {} for inspection", kept.display()));
            }
            Ok(tally)
        }
        Err(error) => {
            let kept = work.keep();
            Err(error.context(format!(
                "the trial's logs and stores are kept in {}",
                kept.display()
            )))
        }
    }
}

/// Every file under `dir`, sorted.
fn files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files.extend(self::files(&path)?);
        } else {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// The checks count what they claim to: each made to see one loss, doubling, truncation or
/// disorder, on logs built by hand.
#[cfg(test)]
mod tests {
    use super::*;

    fn recorded(sent: &Sent, sequence: u64) -> pb::RecordedEvent {
        let event = domain::Event::Contract {
            contract: domain::Code::new(CONTRACT).unwrap(),
            event: domain::ContractEvent::InvoiceRaised {
                invoice: domain::Code::new(sent.request.invoice.as_str()).unwrap(),
                period: domain::Period::new(
                    domain::FinancialYear::new(2018).unwrap(),
                    domain::Month::new(1).unwrap(),
                ),
                amount: domain::Pence::new(sent.request.amount_pence),
                corrects: None,
            },
        };
        pb::RecordedEvent {
            sequence,
            stream: format!("contract/{CONTRACT}"),
            event_id: uuid::Uuid::new_v4().to_string(),
            request_id: sent.request_id().to_string(),
            event_type: "contract.invoice_raised".to_string(),
            hash: vec![sequence as u8; 32],
            event: Some(api::event_to_proto(&event)),
            ..Default::default()
        }
    }

    /// Three unary acknowledgements at events 1..=3 and a bulk of two at 4..=5.
    fn acked() -> (Vec<Ack>, Vec<pb::RecordedEvent>) {
        let sent: Vec<Sent> = (1..=5).map(|n| Sent::new(1, 0, n)).collect();
        let events: Vec<pb::RecordedEvent> = sent
            .iter()
            .zip(1..)
            .map(|(sent, sequence)| recorded(sent, sequence))
            .collect();
        let mut acks: Vec<Ack> = (0..3)
            .map(|i| Ack {
                sent: vec![sent[i].clone()],
                reply: Reply::Unary(pb::CommandReply {
                    first_sequence: events[i].sequence,
                    last_sequence: events[i].sequence,
                    hash: events[i].hash.clone(),
                    ..Default::default()
                }),
            })
            .collect();
        acks.push(Ack {
            sent: sent[3..].to_vec(),
            reply: Reply::Bulk(pb::BulkReply {
                accepted: 2,
                first_sequence: 4,
                last_sequence: 5,
                ..Default::default()
            }),
        });
        (acks, events)
    }

    fn served(events: Vec<pb::RecordedEvent>) -> Served {
        let head = pb::HeadReply {
            sequence: events.last().map_or(0, |e| e.sequence),
            ..Default::default()
        };
        Served { head, events }
    }

    fn checked(acks: &[Ack], events: Vec<pb::RecordedEvent>) -> Tally {
        let mut tally = Tally::default();
        let served = served(events);
        check_acknowledged(acks, &served, &mut tally);
        check_recorded_once(&served.events, &mut tally);
        tally
    }

    #[test]
    fn the_whole_log_holds() {
        let (acks, events) = acked();
        let tally = checked(&acks, events);
        assert!(tally.holds(), "{:?}", tally.problems);
        assert_eq!(tally.acknowledged, 5);
    }

    #[test]
    fn a_missing_tail_is_lost_and_truncated() {
        let (acks, mut events) = acked();
        events.truncate(3);
        let tally = checked(&acks, events);
        assert_eq!(
            (tally.lost, tally.truncations),
            (2, 1),
            "{:?}",
            tally.problems
        );
    }

    #[test]
    fn a_different_amount_or_place_is_lost() {
        let (acks, mut events) = acked();
        let mut other = acks[1].sent[0].clone();
        other.request.amount_pence += 1;
        events[1] = recorded(&other, 2);
        events[4].sequence = 6;
        let tally = checked(&acks, events);
        assert_eq!(tally.lost, 2, "{:?}", tally.problems);
    }

    #[test]
    fn a_command_recorded_twice_is_doubled() {
        let (acks, mut events) = acked();
        events.push(recorded(&acks[0].sent[0], 6));
        let tally = checked(&acks, events);
        // Its acknowledgement finds two events, and the log holds its request twice.
        assert_eq!(tally.doubled, 2, "{:?}", tally.problems);
        assert_eq!(tally.lost, 0);
    }

    fn published(event: &pb::RecordedEvent) -> Published {
        Published {
            sequence: event.sequence,
            hash: event.hash.as_slice().try_into().unwrap(),
            event_id: event.event_id.clone(),
            batch: None,
            subject: format!("ics.kav.{}", event.event_type),
            event: event.clone(),
        }
    }

    #[test]
    fn jetstream_missing_doubled_or_out_of_order_is_counted() {
        let (_, events) = acked();
        let all: Vec<Published> = events.iter().map(published).collect();
        let mut tally = Tally::default();
        check_jetstream(&events, &all, &mut tally);
        assert!(tally.holds(), "{:?}", tally.problems);

        let mut tally = Tally::default();
        check_jetstream(&events, &all[..4], &mut tally);
        assert_eq!(tally.lost, 1);

        let mut twice = all.clone();
        twice.push(all[4].clone());
        let mut tally = Tally::default();
        check_jetstream(&events, &twice, &mut tally);
        assert_eq!((tally.doubled, tally.other), (1, 1), "{:?}", tally.problems);

        let mut swapped = all.clone();
        swapped.swap(1, 2);
        let mut tally = Tally::default();
        check_jetstream(&events, &swapped, &mut tally);
        assert_eq!((tally.other, tally.lost, tally.doubled), (1, 0, 0));
    }
}
