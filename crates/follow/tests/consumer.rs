//! The consumer against real parts: ledgerd in-process on a real sled store behind real gRPC,
//! a real nats-server, positiond's own sled on disk. The projection here is a tally (the
//! sequences folded, in order, and the pence invoiced), so that double counting, gaps and
//! lost events all show.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use api::CommandMeta;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use domain::{ContractEvent, Event};
use follow::checkpoint::CheckpointStore;
use follow::consumer::{self, Settings, Shared};
use follow::incoming::Incoming;
use follow::projection::{Checkpointed, Projection};
use prost::Message;
use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

#[derive(Debug, Default, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Tally {
    sequences: Vec<u64>,
    invoiced_pence: i64,
}

/// An invoice of this many pence does not fold into a [`Tally`]: an event an older version
/// accepted and this one refuses.
const UNFOLDABLE_PENCE: i64 = 999_999;

impl Projection for Tally {
    fn apply(&mut self, event: &Incoming) -> Result<(), String> {
        if let Event::Contract {
            event: ContractEvent::InvoiceRaised { amount, .. },
            ..
        } = &event.event
        {
            if amount.get() == UNFOLDABLE_PENCE {
                return Err(format!("an invoice of {UNFOLDABLE_PENCE} pence"));
            }
            self.invoiced_pence = self
                .invoiced_pence
                .checked_add(amount.get())
                .ok_or("overflow")?;
        }
        self.sequences.push(event.sequence);
        Ok(())
    }
}

struct Ledgerd {
    url: String,
    ledgerd: ledgerd::server::Spawned,
    _dir: tempfile::TempDir,
}

async fn start_ledgerd(nats_url: Option<String>) -> anyhow::Result<Ledgerd> {
    let dir = tempfile::tempdir()?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        system: "kav".to_string(),
        nats_url,
        ..ledgerd::config::Config::default()
    })
    .await?;
    Ok(Ledgerd {
        url: ledgerd.url(),
        ledgerd,
        _dir: dir,
    })
}

async fn client(url: &str) -> anyhow::Result<LedgerServiceClient<Channel>> {
    for _ in 0..100 {
        if let Ok(client) = LedgerServiceClient::connect(url.to_string()).await {
            return Ok(client);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    anyhow::bail!("ledgerd did not come up")
}

fn invoice(n: u64) -> pb::Command {
    let command = bench_like_invoice(n);
    api::command_to_proto(&CommandMeta::random(), &command)
}

fn bench_like_invoice(n: u64) -> domain::Command {
    use domain::{Code, ContractCommand, FinancialYear, Month, Pence, Period};
    let month = u32::try_from(n % 12).expect("fits") + 1;
    domain::Command::Contract {
        contract: Code::new("C1").expect("code"),
        command: ContractCommand::RaiseInvoice {
            invoice: Code::new(format!("INV-{n}")).expect("code"),
            period: Period::new(
                FinancialYear::new(2018).expect("year"),
                Month::new(month).expect("month"),
            ),
            amount: Pence::new(100 + i64::try_from(n).expect("fits")),
            corrects: None,
        },
    }
}

fn setup() -> Vec<pb::Command> {
    use domain::contract::PaymentModel;
    use domain::{
        Code, Command, ContractCommand, FinancialYear, MemberCode, MemberKind, Pence,
        SystemCommand, SystemId, Text,
    };
    let year = FinancialYear::new(2018).expect("year");
    let text = |t: &str| Text::new(t).expect("text");
    let member = |c: &str| MemberCode::parse(c).expect("member");
    let admit = |c: &str, kind| {
        Command::System(SystemCommand::AdmitMember {
            member: member(c),
            name: text(c),
            kind,
            in_control_total: true,
        })
    };
    [
        Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("id"),
            name: text("Kingsmere"),
            first_year: year,
        }),
        admit("KCCG", MemberKind::Commissioner),
        admit("KHFT", MemberKind::AcuteTrust),
        Command::Contract {
            contract: Code::new("C1").expect("code"),
            command: ContractCommand::Agree {
                commissioner: member("KCCG"),
                provider: member("KHFT"),
                year,
                model: PaymentModel::Block {
                    annual_value: Pence::new(1_000_000),
                },
                description: text("Block"),
            },
        },
    ]
    .iter()
    .map(|c| api::command_to_proto(&CommandMeta::random(), c))
    .collect()
}

async fn post(
    client: &mut LedgerServiceClient<Channel>,
    commands: Vec<pb::Command>,
) -> anyhow::Result<u64> {
    let reply = client
        .submit_bulk(futures::stream::iter(commands))
        .await?
        .into_inner();
    Ok(reply.last_sequence)
}

fn settings(nats: &testkit::NatsServer, ledgerd: &Ledgerd, consumer: &str) -> Settings {
    Settings {
        system: domain::SystemId::new("kav").expect("id"),
        nats_url: nats.url(),
        nats_credentials: bus::Credentials::default(),
        ledgerd_url: ledgerd.url.clone(),
        ledgerd_access: follow::ledgerd::Access::default(),
        consumer: consumer.to_string(),
        stream_name: bus::STREAM_NAME.to_string(),
        fetch_max: 64,
        checkpoint_events: 10,
        checkpoint_interval: Duration::from_millis(50),
    }
}

struct Running {
    shared: Shared<Tally>,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    status: follow::status::StatusReceiver,
}

fn start_consumer(settings: Settings, dir: &std::path::Path) -> anyhow::Result<Running> {
    start_on(settings, CheckpointStore::open(dir)?)
}

fn start_on(settings: Settings, checkpoints: CheckpointStore) -> anyhow::Result<Running> {
    let shared: Shared<Tally> = Arc::new(RwLock::new(checkpoints.load()?));
    let stop = CancellationToken::new();
    let (sender, status) = follow::status::channel();
    let task = tokio::spawn(consumer::run(
        settings,
        checkpoints,
        shared.clone(),
        sender,
        stop.clone(),
    ));
    Ok(Running {
        shared,
        stop,
        task,
        status,
    })
}

impl Running {
    fn snapshot(&self) -> Checkpointed<Tally> {
        self.shared.read().expect("lock").clone()
    }

    async fn wait_for(&self, sequence: u64) -> anyhow::Result<Checkpointed<Tally>> {
        for _ in 0..400 {
            let now = self.snapshot();
            if now.sequence >= sequence {
                return Ok(now);
            }
            anyhow::ensure!(!self.task.is_finished(), "the consumer stopped");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!(
            "not at {sequence} after 10 s: {:?}",
            self.snapshot().sequence
        )
    }

    /// Waits until the status satisfies `wanted`; returns it.
    async fn wait_for_status(
        &self,
        what: &str,
        wanted: impl Fn(&follow::status::Status) -> bool,
    ) -> anyhow::Result<follow::status::Status> {
        for _ in 0..800 {
            let now = self.status.borrow().clone();
            if wanted(&now) {
                return Ok(now);
            }
            anyhow::ensure!(!self.task.is_finished(), "the consumer stopped");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("status not {what} after 20 s: {:?}", self.status.borrow())
    }

    async fn stop(self) -> anyhow::Result<Checkpointed<Tally>> {
        self.stop.cancel();
        self.task.await??;
        Ok(self.shared.read().expect("lock").clone())
    }
}

fn expected(last: u64, invoices: std::ops::Range<u64>) -> Tally {
    Tally {
        sequences: (1..=last).collect(),
        invoiced_pence: invoices
            .map(|n| 100 + i64::try_from(n).expect("fits"))
            .sum(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn folds_every_event_once_across_restarts_and_redelivery() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = client(&ledgerd.url).await?;
    post(&mut ledger, setup()).await?;
    let first = post(&mut ledger, (0..100).map(invoice).collect()).await?;

    let dir = tempfile::tempdir()?;
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    let seen = running.wait_for(first).await?;
    assert_eq!(seen.projection, expected(first, 0..100));

    // Events recorded while it runs arrive through JetStream.
    let second = post(&mut ledger, (100..150).map(invoice).collect()).await?;
    let seen = running.wait_for(second).await?;
    assert_eq!(seen.projection, expected(second, 0..150));
    let stopped = running.stop().await?;

    // Restarted on its checkpoint, with events recorded meanwhile: each counted once.
    let third = post(&mut ledger, (150..170).map(invoice).collect()).await?;
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    assert_eq!(
        running.snapshot(),
        stopped,
        "the checkpoint is what was folded"
    );
    let seen = running.wait_for(third).await?;
    assert_eq!(seen.projection, expected(third, 0..170));
    running.stop().await?;

    // A new durable consumer on the same checkpoint gets every message again: all ignored.
    let running = start_consumer(settings(&nats, &ledgerd, "p1-again"), dir.path())?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let again = running.stop().await?;
    assert_eq!(again.projection, expected(third, 0..170));

    ledgerd.ledgerd.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checkpoints_written_behind_the_fold_are_whole_snapshots() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = client(&ledgerd.url).await?;
    let set_up = post(&mut ledger, setup()).await?;

    let dir = tempfile::tempdir()?;
    let checkpoints = CheckpointStore::open(dir.path())?;
    let running = start_on(settings(&nats, &ledgerd, "behind"), checkpoints.clone())?;
    running.wait_for(set_up).await?;
    // Events arriving through JetStream, a few at a time: checkpoints are written while
    // folding goes on. Each stored one must be exactly the fold up to its sequence.
    let mut last = set_up;
    let mut stored = Vec::new();
    // At least 20 rounds, and on until a checkpoint has landed mid-stream: how soon one does
    // depends on how long the last took (positiond rests 99× that), i.e. on the disk.
    for round in 0..400 {
        last = post(
            &mut ledger,
            (round * 10..round * 10 + 10).map(invoice).collect(),
        )
        .await?;
        tokio::time::sleep(Duration::from_millis(40)).await;
        stored.push(checkpoints.load::<Tally>()?);
        let mid_stream = stored
            .iter()
            .any(|c| c.sequence > set_up && c.sequence < last);
        if round >= 19 && mid_stream {
            break;
        }
    }
    running.wait_for(last).await?;
    for _ in 0..400 {
        let checkpoint = checkpoints.load::<Tally>()?;
        let done = checkpoint.sequence == last;
        stored.push(checkpoint);
        if done {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let sequences: std::collections::BTreeSet<u64> = stored.iter().map(|c| c.sequence).collect();
    assert_eq!(
        sequences.last(),
        Some(&last),
        "a checkpoint reaches the last event without stopping the consumer"
    );
    assert!(
        sequences.iter().any(|s| *s > set_up && *s < last),
        "checkpoints are written while following, not only at the end: {sequences:?}"
    );
    for checkpoint in &stored {
        let invoices = checkpoint.sequence.saturating_sub(set_up);
        assert_eq!(
            checkpoint.projection,
            expected(checkpoint.sequence, 0..invoices),
            "the checkpoint at {} is the fold up to it",
            checkpoint.sequence
        );
    }
    running.stop().await?;
    ledgerd.ledgerd.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_gap_is_filled_from_ledgerd_and_a_forged_message_is_refused() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    // No relay: the test decides what reaches JetStream.
    let ledgerd = start_ledgerd(None).await?;
    let mut ledger = client(&ledgerd.url).await?;
    post(&mut ledger, setup()).await?;
    let first = post(&mut ledger, (0..20).map(invoice).collect()).await?;

    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    bus::ensure_stream(&js, &bus::StreamSettings::default()).await?;
    let dir = tempfile::tempdir()?;
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    running.wait_for(first).await?;

    // Ten more recorded, only the last published: positiond sees a gap and fills it.
    let last = post(&mut ledger, (20..30).map(invoice).collect()).await?;
    let recorded = event_at(&mut ledger, last).await?;
    let publisher = bus::Publisher::new(js.clone());
    publisher.publish(&outbound(&recorded)).await?.await?;
    let seen = running.wait_for(last).await?;
    assert_eq!(seen.projection, expected(last, 0..30));

    // A message claiming the next sequence that does not link to the chain: refused.
    let mut forged = recorded.clone();
    forged.sequence = last + 1;
    forged.event_id = "00000000-0000-4000-8000-000000000001".to_string();
    forged.prev_hash = vec![9; 32];
    // Self-consistent: its hash is what its content hashes to.
    forged.hash = Incoming::content_hash(&forged)?.to_vec();
    publisher.publish(&outbound(&forged)).await?.await?;
    // A copy of the last event, already folded: ignored (a redelivery), even with its hash
    // changed.
    let mut replayed = recorded.clone();
    replayed.hash = vec![7; 32];
    publisher.publish(&outbound(&replayed)).await?.await?;
    // Bytes that are no event at all.
    js.publish(
        "ics.kav.contract.invoice_raised",
        vec![0xff, 0x00, 0x13].into(),
    )
    .await?
    .await?;
    // The ledger's next event with a forged hash: refused (its content does not hash to it);
    // then the genuine copy is folded.
    let next = post(&mut ledger, (30..31).map(invoice).collect()).await?;
    let genuine = event_at(&mut ledger, next).await?;
    let mut forged_hash = genuine.clone();
    forged_hash.hash = vec![8; 32];
    // Under another Nats-Msg-Id, so JetStream does not drop the genuine copy as a duplicate.
    let mut message = outbound(&forged_hash);
    message.event_id = "00000000-0000-4000-8000-000000000002".to_string();
    publisher.publish(&message).await?.await?;
    publisher.publish(&outbound(&genuine)).await?.await?;
    running.wait_for(next).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = running.stop().await?;
    assert_eq!(after.sequence, next);
    assert_eq!(after.projection, expected(next, 0..31));

    // Each refused message is parked with its reason; the consumer went on.
    let parked = CheckpointStore::open(dir.path())?.parked().all()?;
    let reasons: Vec<&str> = parked.iter().map(|p| p.reason.as_str()).collect();
    assert_eq!(parked.len(), 3, "{reasons:#?}");
    // Checked against ledgerd's copy of its sequence: if the consumer reached it before the
    // ledger's genuine event `next` (= last + 1) was posted, ledgerd had no such event; if
    // after, ledgerd's event there has another hash. Either way it is refused as not the
    // ledger's.
    assert!(
        reasons[0].contains(&format!("does not link to event {last}"))
            && (reasons[0].contains(&format!("the ledger's log ends at {last}"))
                || reasons[0]
                    .contains(&format!("its hash differs from the ledger's event {next}"))),
        "{reasons:#?}"
    );
    assert!(
        reasons[1].starts_with("not a RecordedEvent protobuf"),
        "{reasons:#?}"
    );
    assert!(
        reasons[2].starts_with("its hash does not match its content"),
        "{reasons:#?}"
    );
    assert!(
        parked
            .iter()
            .all(|p| p.stream_sequence > 0 && !p.payload.is_empty())
    );

    ledgerd.ledgerd.stop().await?;
    Ok(())
}

/// The event at `sequence` as ledgerd's `ReadAll` serves it (what the relay publishes).
async fn event_at(
    ledger: &mut LedgerServiceClient<Channel>,
    sequence: u64,
) -> anyhow::Result<pb::RecordedEvent> {
    ledger
        .read_all(pb::ReadAllRequest {
            from_sequence: sequence,
            limit: 1,
            follow: false,
        })
        .await?
        .into_inner()
        .message()
        .await?
        .ok_or_else(|| anyhow::anyhow!("ledgerd has no event {sequence}"))
}

fn outbound(recorded: &pb::RecordedEvent) -> bus::OutboundEvent {
    bus::OutboundEvent {
        subject: "ics.kav.contract.invoice_raised".to_string(),
        event_id: recorded.event_id.clone(),
        sequence: recorded.sequence,
        stream: recorded.stream.clone(),
        version: recorded.version,
        hash: recorded.hash.clone().try_into().expect("32 bytes"),
        event_type: recorded.event_type.clone(),
        payload: recorded.encode_to_vec().into(),
        signature: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consumer_lost_with_the_stream_is_created_again_and_catches_up() -> anyhow::Result<()> {
    let mut nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = client(&ledgerd.url).await?;
    post(&mut ledger, setup()).await?;
    let first = post(&mut ledger, (0..50).map(invoice).collect()).await?;
    let dir = tempfile::tempdir()?;
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    running.wait_for(first).await?;
    running
        .wait_for_status("healthy", follow::status::Status::healthy)
        .await?;

    // NATS goes, and comes back without its store: no stream, no consumer.
    nats.stop()?;
    let down = running
        .wait_for_status("troubled", |s| s.consumer.is_some())
        .await?;
    assert!(down.stuck.is_empty());
    let second = post(&mut ledger, (50..80).map(invoice).collect()).await?;
    std::fs::remove_dir_all(nats.store_dir())?;
    std::fs::create_dir_all(nats.store_dir())?;
    nats.restart()?;

    // The consumer is created again, the fold catches up from ledgerd, and what is recorded
    // from now on arrives through JetStream.
    running.wait_for(second).await?;
    let third = post(&mut ledger, (80..90).map(invoice).collect()).await?;
    let seen = running.wait_for(third).await?;
    assert_eq!(seen.projection, expected(third, 0..90), "each event once");
    running
        .wait_for_status("healthy again", follow::status::Status::healthy)
        .await?;
    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    let stream = js.get_stream(bus::STREAM_NAME).await?;
    stream.consumer_info("p1").await?;
    running.stop().await?;
    ledgerd.ledgerd.stop().await?;
    Ok(())
}

/// An invoice the [`Tally`] refuses.
fn unfoldable_invoice() -> pb::Command {
    use domain::{Code, ContractCommand, FinancialYear, Month, Pence, Period};
    let command = domain::Command::Contract {
        contract: Code::new("C1").expect("code"),
        command: ContractCommand::RaiseInvoice {
            invoice: Code::new("OLD-1").expect("code"),
            period: Period::new(
                FinancialYear::new(2018).expect("year"),
                Month::new(1).expect("month"),
            ),
            amount: Pence::new(UNFOLDABLE_PENCE),
            corrects: None,
        },
    };
    api::command_to_proto(&CommandMeta::random(), &command)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_that_does_not_fold_stops_the_fold_not_the_consumer() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = client(&ledgerd.url).await?;
    post(&mut ledger, setup()).await?;
    let before = post(&mut ledger, (0..10).map(invoice).collect()).await?;
    let dir = tempfile::tempdir()?;
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    running.wait_for(before).await?;

    // Through JetStream: the unfoldable event, and more after it.
    let bad = post(&mut ledger, vec![unfoldable_invoice()]).await?;
    post(&mut ledger, (10..20).map(invoice).collect()).await?;
    let status = running
        .wait_for_status("stuck", |s| !s.stuck.is_empty())
        .await?;
    let kav = domain::SystemId::new("kav")?;
    let stuck = status.stuck.get(&kav).expect("kav is stuck");
    assert_eq!(stuck.sequence, bad);
    assert!(stuck.reason.contains("999999 pence"), "{}", stuck.reason);
    assert!(!status.healthy());
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!running.task.is_finished(), "the consumer did not stop");
    assert_eq!(running.snapshot().projection, expected(before, 0..10));
    let stopped = running.stop().await?;
    assert_eq!(
        stopped.sequence, before,
        "checkpointed as of the event before"
    );

    // Restarted: it catches up from ledgerd to the same event, and stays there, serving.
    let running = start_consumer(settings(&nats, &ledgerd, "p1"), dir.path())?;
    let status = running
        .wait_for_status("stuck again", |s| !s.stuck.is_empty())
        .await?;
    assert_eq!(status.stuck.get(&kav).map(|s| s.sequence), Some(bad));
    assert_eq!(running.snapshot().sequence, before);
    assert!(!running.task.is_finished());
    running.stop().await?;
    ledgerd.ledgerd.stop().await?;
    Ok(())
}
