//! A structure-aware fuzzer of a running `ledgerd` binary over real gRPC: requests of every
//! rpc of `LedgerService` and `AuditService`, built from valid ones (the demo scenario and a
//! request of every command it lacks) and changed field by field as the messages' own
//! descriptors allow ([`mutate`]), SubmitBulk streams of them, and random bytes as bodies.
//!
//! Seeded and reproducible: the requests depend only on the seed (printed first), so a
//! failure — which names the seed, the request's number, the rpc and the request itself —
//! comes back with `ICS_FUZZ_SEED`. After every request it checks that the answer is OK or a
//! status `ledger.proto` documents, with the details it documents (never INTERNAL, UNKNOWN or
//! UNAVAILABLE), that a refused request left the head where it was and an accepted one moved
//! it exactly as its reply says, and now and then that the process lives and reports
//! SERVING. At the end: the whole log reads back linked, ledgerd stops cleanly with nothing
//! panicked in its log, and its store's chain verifies from disk to the head it served.
//!
//! `tests/fuzz.rs` runs it bounded in `make test`; `benches/fuzz.rs` runs it long.

mod mutate;
mod wire;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::Context;
use api::pb;
use prost::Message;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::Channel;
use tonic::{Code, Status};
use tonic_types::StatusExt;

pub use mutate::{Mutator, Rng, Schema};

/// How long ledgerd may take to listen.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// A call not answered within this is a failure (a hung server).
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// A read stream that sends nothing for this long has stalled (unless it follows the log).
const STREAM_IDLE: Duration = Duration::from_secs(10);
/// A following read that has caught up is dropped after this much quiet.
const FOLLOW_IDLE: Duration = Duration::from_millis(200);
/// How often (in requests) the process and its health are checked.
const HEALTH_EVERY: u64 = 250;
/// Events ledgerd signs a checkpoint after, so the audit path runs while fuzzed.
const CHECKPOINT_EVERY_EVENTS: &str = "100";

/// How a run is made.
#[derive(Clone, Copy, Debug)]
pub struct Settings {
    pub seed: u64,
    pub requests: u64,
}

impl Settings {
    /// `ICS_FUZZ_SEED` (decimal or `0x` hex; a fresh random seed otherwise) and
    /// `ICS_FUZZ_REQUESTS` (`default_requests` otherwise).
    pub fn from_env(default_requests: u64) -> anyhow::Result<Settings> {
        let seed = match std::env::var("ICS_FUZZ_SEED") {
            Ok(text) => {
                let text = text.trim();
                match text.strip_prefix("0x") {
                    Some(hex) => u64::from_str_radix(hex, 16),
                    None => text.parse(),
                }
                .with_context(|| format!("ICS_FUZZ_SEED={text} is not a u64"))?
            }
            Err(_) => u64::from_le_bytes(
                uuid::Uuid::new_v4().as_bytes()[..8]
                    .try_into()
                    .context("eight bytes")?,
            ),
        };
        let requests = match std::env::var("ICS_FUZZ_REQUESTS") {
            Ok(text) => text
                .trim()
                .parse()
                .with_context(|| format!("ICS_FUZZ_REQUESTS={text} is not a count"))?,
            Err(_) => default_requests,
        };
        Ok(Settings { seed, requests })
    }
}

/// What a run did.
#[derive(Clone, Debug, Default)]
pub struct Run {
    pub seed: u64,
    pub requests: u64,
    /// Answers by kind of request and status code (`OK`, `INVALID_ARGUMENT`, …).
    pub answers: BTreeMap<(&'static str, &'static str), u64>,
    /// Events the fuzzed requests recorded (beyond the setup's).
    pub events_recorded: u64,
    /// The log's length at the end.
    pub head: u64,
    /// How long the requests took (not the setup or the final checks).
    pub elapsed: Duration,
}

impl Run {
    /// Requests a second.
    pub fn rate(&self) -> f64 {
        self.requests as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }

    /// The answers as a markdown table: a row per kind of request, a column per status.
    pub fn table(&self) -> String {
        let codes: Vec<&str> = CODES
            .iter()
            .copied()
            .filter(|c| self.answers.keys().any(|(_, code)| code == c))
            .collect();
        let kinds: Vec<&str> = KINDS
            .iter()
            .copied()
            .filter(|k| self.answers.keys().any(|(kind, _)| kind == k))
            .collect();
        let mut out = format!("| request | all | {} |\n", codes.join(" | "));
        out.push_str(&format!("|---|---:|{}\n", "---:|".repeat(codes.len())));
        let mut rows: Vec<(&str, Vec<u64>)> = kinds
            .iter()
            .map(|kind| {
                let counts = codes
                    .iter()
                    .map(|code| self.answers.get(&(*kind, *code)).copied().unwrap_or(0))
                    .collect();
                (*kind, counts)
            })
            .collect();
        let totals = (0..codes.len())
            .map(|i| rows.iter().map(|(_, counts)| counts[i]).sum())
            .collect();
        rows.push(("all", totals));
        for (kind, counts) in rows {
            let all: u64 = counts.iter().sum();
            let cells: Vec<String> = counts.iter().map(u64::to_string).collect();
            out.push_str(&format!("| {kind} | {all} | {} |\n", cells.join(" | ")));
        }
        out
    }
}

/// The kinds of request, in the order the table lists them.
const KINDS: [&str; 6] = [
    "command, changed",
    "command, as valid",
    "SubmitBulk",
    "read",
    "audit",
    "random bytes",
];

const CODES: [&str; 17] = [
    "OK",
    "INVALID_ARGUMENT",
    "FAILED_PRECONDITION",
    "NOT_FOUND",
    "ALREADY_EXISTS",
    "ABORTED",
    "RESOURCE_EXHAUSTED",
    "OUT_OF_RANGE",
    "PERMISSION_DENIED",
    "UNAUTHENTICATED",
    "UNIMPLEMENTED",
    "CANCELLED",
    "DEADLINE_EXCEEDED",
    "UNAVAILABLE",
    "INTERNAL",
    "UNKNOWN",
    "DATA_LOSS",
];

fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::Aborted => "ABORTED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unauthenticated => "UNAUTHENTICATED",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Cancelled => "CANCELLED",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::Unavailable => "UNAVAILABLE",
        Code::Internal => "INTERNAL",
        Code::DataLoss => "DATA_LOSS",
        _ => "UNKNOWN",
    }
}

/// Starts ledgerd, records the demo and the extra setup, then sends `settings.requests`
/// requests and checks each; then the final checks. An `Err` is a failure report.
pub async fn run(settings: &Settings) -> anyhow::Result<Run> {
    let schema = Schema::load()?;
    let mut target = Target::start()?;
    let (corpus, dictionary) = setup(&mut target, &schema).await?;
    let mutator = Mutator::new(&schema, &dictionary);
    let mut fuzz = Fuzz {
        schema: &schema,
        mutator,
        corpus: &corpus,
        target: &mut target,
        seed: settings.seed,
    };
    let setup_head = fuzz.target.head().await?;
    let mut run = Run {
        seed: settings.seed,
        requests: settings.requests,
        ..Run::default()
    };
    let mut rng = Rng::new(settings.seed);
    let mut head = setup_head.clone();
    let started = Instant::now();
    for index in 0..settings.requests {
        let case = fuzz.case(&mut rng);
        let (code, after) = fuzz.send_and_check(index, &case, &head).await?;
        *run.answers.entry((case.kind, code)).or_default() += 1;
        head = after;
        if (index + 1) % HEALTH_EVERY == 0 {
            fuzz.target
                .healthy()
                .await
                .map_err(|e| fuzz.failure(index, &case, &e.to_string()))?;
        }
    }
    run.elapsed = started.elapsed();
    run.events_recorded = head.sequence - setup_head.sequence;
    run.head = head.sequence;
    target.finish(&head).await?;
    Ok(run)
}

// ---- the ledgerd under test --------------------------------------------------------------

struct Target {
    process: testkit::ChildGuard,
    data_dir: PathBuf,
    grpc: tonic::client::Grpc<Channel>,
    channel: Channel,
    _dir: tempfile::TempDir,
}

impl Target {
    fn start() -> anyhow::Result<Target> {
        let dir = tempfile::Builder::new().prefix("ics-fuzz-").tempdir()?;
        let key = dir.path().join("ledger-checkpoint.pem");
        let (private, _public) = auth::generate_key_pair()?;
        std::fs::write(&key, private)?;
        let data_dir = dir.path().join("ledgerd");
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let mut command = Command::new(testkit::workspace_binary("ledgerd")?);
        command
            .arg("--listen")
            .arg(addr.to_string())
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("--system")
            .arg("kav")
            .env("RUST_LOG", "info")
            .env("LEDGERD_CHECKPOINT_KEY", &key)
            .env("LEDGERD_CHECKPOINT_EVERY_EVENTS", CHECKPOINT_EVERY_EVENTS);
        let mut process = testkit::ChildGuard::spawn_logged(
            "ledgerd",
            &mut command,
            &dir.path().join("ledgerd.log"),
        )?;
        process.wait_for_port(addr, START_TIMEOUT)?;
        let channel = Channel::from_shared(format!("http://{addr}"))?.connect_lazy();
        let grpc = tonic::client::Grpc::new(channel.clone()).max_decoding_message_size(64 << 20);
        Ok(Target {
            process,
            data_dir,
            grpc,
            channel,
            _dir: dir,
        })
    }

    async fn head(&self) -> anyhow::Result<pb::HeadReply> {
        let mut client = pb::ledger_service_client::LedgerServiceClient::new(self.channel.clone());
        let reply = tokio::time::timeout(CALL_TIMEOUT, client.head(pb::HeadRequest {}))
            .await
            .context("Head was not answered")??;
        Ok(reply.into_inner())
    }

    /// The process runs and both services report SERVING.
    async fn healthy(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.process.try_wait()? {
            anyhow::bail!("ledgerd exited ({status}):\n{}", self.process.log_tail());
        }
        let mut health = tonic_health::pb::health_client::HealthClient::new(self.channel.clone());
        for service in [
            "",
            "ics.ledger.v1.LedgerService",
            "ics.audit.v1.AuditService",
        ] {
            let reply = tokio::time::timeout(
                CALL_TIMEOUT,
                health.check(tonic_health::pb::HealthCheckRequest {
                    service: service.to_string(),
                }),
            )
            .await
            .context("the health check was not answered")??
            .into_inner();
            anyhow::ensure!(
                reply.status
                    == tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
                "health of {service:?} is {}",
                reply.status
            );
        }
        Ok(())
    }

    /// The final checks: healthy, the log reads back whole and linked, a clean stop with no
    /// panic logged, and the chain on disk verifies to `head`.
    async fn finish(mut self, head: &pb::HeadReply) -> anyhow::Result<()> {
        self.healthy().await?;
        let mut client = pb::ledger_service_client::LedgerServiceClient::new(self.channel.clone())
            .max_decoding_message_size(64 << 20);
        let mut stream = client
            .read_all(pb::ReadAllRequest {
                from_sequence: 1,
                limit: 0,
                follow: false,
            })
            .await?
            .into_inner();
        let mut previous: Vec<u8> = vec![0; 32];
        let mut count = 0;
        while let Some(event) = stream.message().await? {
            count += 1;
            anyhow::ensure!(
                event.sequence == count,
                "ReadAll skipped to {}",
                event.sequence
            );
            anyhow::ensure!(event.prev_hash == previous, "event {count} does not link");
            previous = event.hash;
        }
        anyhow::ensure!(
            count == head.sequence && previous == head.hash,
            "ReadAll gave {count} events, the head is {}",
            head.sequence
        );
        drop(client);
        let status = self.process.terminate(Duration::from_secs(30))?;
        anyhow::ensure!(status.success(), "ledgerd stopped with {status}");
        let log = self.process.log_tail();
        anyhow::ensure!(
            !log.contains("panicked"),
            "ledgerd's log has a panic:\n{log}"
        );
        let store =
            store::EventStore::<domain::Event>::open(store::StoreConfig::new(&self.data_dir))
                .context("opening the fuzzed store")?;
        let verified = store.verify_chain().context("the chain does not verify")?;
        anyhow::ensure!(
            verified.sequence == head.sequence && verified.hash.as_slice() == head.hash,
            "the chain verifies to {} but ledgerd served {}",
            verified.sequence,
            head.sequence
        );
        Ok(())
    }
}

// ---- the valid requests mutations start from ---------------------------------------------

/// A valid request of one rpc.
#[derive(Clone, Debug)]
struct Base {
    service: &'static str,
    rpc: String,
    /// The request message's full name (`.ics.ledger.v1.RaiseInvoiceRequest`).
    message: String,
    body: Vec<u8>,
    /// The `Command` oneof field it goes in for SubmitBulk; 0 for reads.
    command_number: u32,
}

const LEDGER: &str = "ics.ledger.v1.LedgerService";
const AUDIT: &str = "ics.audit.v1.AuditService";
/// Valid requests kept of each command rpc (the demo has 84 invoices and one budget).
const BASES_PER_RPC: usize = 6;

struct Corpus {
    commands: Vec<Base>,
    /// Those of them in the open year 2019/20, which can be accepted.
    open: Vec<Base>,
    reads: Vec<Base>,
    audits: Vec<Base>,
}

/// Records the demo and the extra setup (an open year's contract, an invoice, a dispute);
/// returns the valid requests to mutate and the codes and names seen in them.
async fn setup(target: &mut Target, schema: &Schema) -> anyhow::Result<(Corpus, Vec<Vec<u8>>)> {
    let mut commands: Vec<pb::Command> =
        icsctl::load::parse_scenario(crate::demo::KINGSMERE_NAME, crate::demo::KINGSMERE)?
            .into_iter()
            .map(|(_, command)| command)
            .collect();
    commands.extend(extra_setup());
    let mut client = pb::ledger_service_client::LedgerServiceClient::new(target.channel.clone());
    let reply = client
        .submit_bulk(futures::stream::iter(commands.clone()))
        .await
        .context("recording the demo")?
        .into_inner();
    anyhow::ensure!(
        reply.accepted as usize == commands.len(),
        "setup: {reply:?}"
    );
    commands.extend(extra_corpus());
    let open = extra_setup()
        .iter()
        .chain(&extra_corpus())
        .map(|command| command_base(schema, command))
        .collect::<anyhow::Result<Vec<_>>>()?;

    let mut per_rpc: BTreeMap<String, usize> = BTreeMap::new();
    let mut bases = Vec::new();
    for command in &commands {
        let base = command_base(schema, command)?;
        let kept = per_rpc.entry(base.rpc.clone()).or_default();
        if *kept < BASES_PER_RPC {
            *kept += 1;
            bases.push(base);
        }
    }
    anyhow::ensure!(
        per_rpc.len() == 28,
        "the corpus has {} command rpcs, not 28: {:?}",
        per_rpc.len(),
        per_rpc.keys()
    );
    let mut dictionary = Vec::new();
    for base in &bases {
        collect_strings(schema, &base.message, &base.body, &mut dictionary);
    }
    dictionary.sort();
    dictionary.dedup();
    Ok((
        Corpus {
            commands: bases,
            open,
            reads: read_bases(),
            audits: audit_bases(),
        },
        dictionary,
    ))
}

/// `command`'s rpc and request body, through the `Command` message's descriptor.
fn command_base(schema: &Schema, command: &pb::Command) -> anyhow::Result<Base> {
    let bytes = command.encode_to_vec();
    let fields = wire::parse(&bytes).context("a Command that does not parse")?;
    let [
        wire::Field {
            number,
            value: wire::Value::Len(body),
        },
    ] = fields.as_slice()
    else {
        anyhow::bail!("a Command that is not one request: {fields:?}");
    };
    let (name, Some(message)) = schema
        .field(".ics.ledger.v1.Command", *number)
        .context("a Command field the descriptor lacks")?
    else {
        anyhow::bail!("Command field {number} is not a message");
    };
    Ok(Base {
        service: LEDGER,
        rpc: camel(name),
        message: message.to_string(),
        body: body.clone(),
        command_number: *number,
    })
}

/// `raise_invoice` → `RaiseInvoice`.
fn camel(snake: &str) -> String {
    snake
        .split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// Every string field's value in `body` (and nested messages), for the dictionary.
fn collect_strings(schema: &Schema, message: &str, body: &[u8], out: &mut Vec<Vec<u8>>) {
    for field in wire::parse(body).unwrap_or_default() {
        if let wire::Value::Len(inner) = &field.value {
            match schema.field(message, field.number) {
                Some((_, Some(nested))) => collect_strings(schema, nested, inner, out),
                Some(("request_id", None)) => {}
                Some(_) if !inner.is_empty() && inner.len() <= 80 => out.push(inner.clone()),
                _ => {}
            }
        }
    }
}

fn meta(request_id: &str) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: request_id.to_string(),
        expected_version: None,
        correlation_id: String::new(),
    })
}

fn period(year: u32, month: u32) -> Option<pb::Period> {
    Some(pb::Period { year, month })
}

/// Recorded after the demo: a contract, an invoice and a dispute in the open year 2019/20, so
/// commands against them can be accepted.
fn extra_setup() -> Vec<pb::Command> {
    use pb::command::Command as C;
    let command = |c| pb::Command { command: Some(c) };
    vec![
        command(C::AgreeContract(pb::AgreeContractRequest {
            meta: meta("00000000-0000-4000-8000-00000000f001"),
            contract: "N1".to_string(),
            commissioner: "KCCG".to_string(),
            provider: "KCHT".to_string(),
            year: 2019,
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::Block(pb::payment_model::Block {
                    annual_value_pence: 1_200_000,
                })),
            }),
            description: "fuzzing".to_string(),
        })),
        command(C::RaiseInvoice(pb::RaiseInvoiceRequest {
            meta: meta("00000000-0000-4000-8000-00000000f002"),
            contract: "N1".to_string(),
            invoice: "N1-01".to_string(),
            period: period(2019, 3),
            amount_pence: 100_000,
            corrects: None,
        })),
        command(C::RaiseDispute(pb::RaiseDisputeRequest {
            meta: meta("00000000-0000-4000-8000-00000000f003"),
            contract: "N1".to_string(),
            dispute: "D1".to_string(),
            invoice: Some("N1-01".to_string()),
            period: period(2019, 3),
            amount_pence: 5_000,
            reason: "quantity".to_string(),
        })),
    ]
}

/// Valid requests of the commands the demo does not use (not recorded: mutations of them
/// are what is sent).
fn extra_corpus() -> Vec<pb::Command> {
    use pb::command::Command as C;
    let command = |c| pb::Command { command: Some(c) };
    let share = |member: &str, share_bp| pb::Share {
        member: member.to_string(),
        share_bp,
    };
    vec![
        command(C::FileReturn(pb::FileReturnRequest {
            meta: meta("00000000-0000-4000-8000-00000000e001"),
            member: String::new(),
            report: Some(pb::ReportSpec {
                kind: pb::ReportKind::Position.into(),
                scope: pb::ReportScope::System.into(),
                receivables_payables_threshold_pence: None,
                income_expenditure_threshold_pence: None,
            }),
            period: period(2018, 12),
            as_of_sequence: 383,
            fingerprint: vec![7; 32],
        })),
        command(C::VaryBudget(pb::VaryBudgetRequest {
            meta: meta("00000000-0000-4000-8000-00000000e002"),
            budget: "BCF".to_string(),
            reason: "new shares".to_string(),
            overspend_shares: Some(pb::ShareList {
                shares: vec![share("KCCG", 6_000), share("KCC", 4_000)],
            }),
            underspend_shares: None,
            add_schemes: vec![pb::Scheme {
                scheme: "REABLE".to_string(),
                name: "Reablement".to_string(),
                ring_fenced: false,
            }],
        })),
        command(C::ClawBack(pb::ClawBackRequest {
            meta: meta("00000000-0000-4000-8000-00000000e003"),
            fund: "SSF".to_string(),
            quarter: 1,
            member: "KHFT".to_string(),
            period: period(2019, 1),
            amount_pence: 10_000,
            reason: "overpaid".to_string(),
        })),
        command(C::VaryContract(pb::VaryContractRequest {
            meta: meta("00000000-0000-4000-8000-00000000e004"),
            contract: "N1".to_string(),
            period: period(2019, 4),
            reason: "more".to_string(),
            model: Some(pb::PaymentModel {
                model: Some(pb::payment_model::Model::Block(pb::payment_model::Block {
                    annual_value_pence: 2_400_000,
                })),
            }),
        })),
        command(C::ResolveDispute(pb::ResolveDisputeRequest {
            meta: meta("00000000-0000-4000-8000-00000000e005"),
            contract: "N1".to_string(),
            dispute: "D1".to_string(),
            period: period(2019, 4),
            provider_keeps_pence: 2_500,
            resolution: "split".to_string(),
        })),
        command(C::TerminateContract(pb::TerminateContractRequest {
            meta: meta("00000000-0000-4000-8000-00000000e006"),
            contract: "N1".to_string(),
            period: period(2019, 12),
            reason: "ended".to_string(),
        })),
        command(C::RaiseDispute(pb::RaiseDisputeRequest {
            meta: meta("00000000-0000-4000-8000-00000000e007"),
            contract: "N1".to_string(),
            dispute: "D2".to_string(),
            invoice: None,
            period: period(2019, 5),
            amount_pence: 1_000,
            reason: "late".to_string(),
        })),
        command(C::RaiseInvoice(pb::RaiseInvoiceRequest {
            meta: meta("00000000-0000-4000-8000-00000000e009"),
            contract: "N1".to_string(),
            invoice: "N1-02".to_string(),
            period: period(2019, 4),
            amount_pence: 100_000,
            corrects: None,
        })),
        command(C::RecordPayment(pb::RecordPaymentRequest {
            meta: meta("00000000-0000-4000-8000-00000000e00a"),
            contract: "N1".to_string(),
            invoice: "N1-01".to_string(),
            period: period(2019, 4),
            amount_pence: 10,
        })),
        command(C::SubmitReturn(pb::SubmitReturnRequest {
            meta: meta("00000000-0000-4000-8000-00000000e00b"),
            member: "KHFT".to_string(),
            period: period(2019, 3),
            income_pence: 1_000_000,
            expenditure_pence: 900_000,
            balances: Vec::new(),
        })),
        command(C::ReportMetric(pb::ReportMetricRequest {
            meta: meta("00000000-0000-4000-8000-00000000e008"),
            member: "KHFT".to_string(),
            period: period(2019, 3),
            metric: pb::Metric::EmergencyAdmissions.into(),
            value: 1_000,
        })),
    ]
}

fn read_bases() -> Vec<Base> {
    let base = |rpc: &str, message: &str, body: Vec<u8>| Base {
        service: LEDGER,
        rpc: rpc.to_string(),
        message: format!(".ics.ledger.v1.{message}"),
        body,
        command_number: 0,
    };
    let mut bases = vec![base("Head", "HeadRequest", Vec::new())];
    for stream in [
        "system",
        "budget/BCF",
        "fund/SSF",
        "contract/C1",
        "contract/N1",
    ] {
        let request = pb::ReadStreamRequest {
            stream: stream.to_string(),
            from_version: 1,
            limit: 20,
        };
        bases.push(base(
            "ReadStream",
            "ReadStreamRequest",
            request.encode_to_vec(),
        ));
    }
    for (from_sequence, limit) in [(1, 10), (380, 0), (1_000_000, 5)] {
        let all = pb::ReadAllRequest {
            from_sequence,
            limit,
            follow: false,
        };
        bases.push(base("ReadAll", "ReadAllRequest", all.encode_to_vec()));
        let stored = pb::ReadStoredRequest {
            from_sequence,
            limit,
        };
        bases.push(base(
            "ReadStored",
            "ReadStoredRequest",
            stored.encode_to_vec(),
        ));
    }
    bases
}

fn audit_bases() -> Vec<Base> {
    use api::audit_pb as a;
    let base = |rpc: &str, message: &str, body: Vec<u8>| Base {
        service: AUDIT,
        rpc: rpc.to_string(),
        message: format!(".ics.audit.v1.{message}"),
        body,
        command_number: 0,
    };
    vec![
        base("GetTreeHead", "TreeHeadRequest", Vec::new()),
        base(
            "GetInclusionProof",
            "InclusionProofRequest",
            a::InclusionProofRequest {
                sequence: 42,
                tree_size: 300,
            }
            .encode_to_vec(),
        ),
        base(
            "GetConsistencyProof",
            "ConsistencyProofRequest",
            a::ConsistencyProofRequest {
                old_size: 100,
                new_size: 383,
            }
            .encode_to_vec(),
        ),
        base(
            "ListCheckpoints",
            "ListCheckpointsRequest",
            a::ListCheckpointsRequest {
                from_sequence: 1,
                limit: 10,
            }
            .encode_to_vec(),
        ),
    ]
}

// ---- one request ---------------------------------------------------------------------------

/// A request to send.
#[derive(Clone, Debug)]
struct Case {
    kind: &'static str,
    service: &'static str,
    rpc: String,
    message: String,
    /// One body; several for SubmitBulk (each a `Command`).
    bodies: Vec<Vec<u8>>,
    /// An `x-ics-actor` of its own (authentication is off: it is recorded as given).
    actor: Option<String>,
}

struct Fuzz<'a> {
    schema: &'a Schema,
    mutator: Mutator<'a>,
    corpus: &'a Corpus,
    target: &'a mut Target,
    seed: u64,
}

impl Fuzz<'_> {
    fn case(&self, rng: &mut Rng) -> Case {
        match rng.below(100) {
            0..55 => self.command_case(rng, true),
            55..65 => self.command_case(rng, false),
            65..75 => self.bulk_case(rng),
            75..85 => self.other_case(rng, "read", &self.corpus.reads),
            85..90 => self.other_case(rng, "audit", &self.corpus.audits),
            _ => self.random_case(rng),
        }
    }

    /// A command request with a fresh request id (mostly), changed 1..=4 times if `change`.
    fn command_body(&self, rng: &mut Rng, base: &Base, change: bool) -> Vec<u8> {
        let mut body = if rng.percent(95) {
            with_request_id(self.schema, &base.message, &base.body, &rng.uuid())
        } else {
            base.body.clone()
        };
        if rng.percent(50) {
            body = fresh_code(self.schema, &base.message, &body, rng);
        }
        if change {
            let rounds = 1 + rng.below(4);
            for _ in 0..rounds {
                body = self.mutator.mutate(rng, &base.message, &body, 0);
            }
        }
        body
    }

    /// A valid command to start from: half the time one of the open year's.
    fn base<'b>(&'b self, rng: &mut Rng) -> &'b Base {
        if rng.percent(50) {
            rng.pick(&self.corpus.open)
        } else {
            rng.pick(&self.corpus.commands)
        }
    }

    fn command_case(&self, rng: &mut Rng, change: bool) -> Case {
        let base = self.base(rng);
        let body = self.command_body(rng, base, change);
        Case {
            kind: if change {
                "command, changed"
            } else {
                "command, as valid"
            },
            service: base.service,
            rpc: base.rpc.clone(),
            message: base.message.clone(),
            bodies: vec![body],
            actor: actor(rng),
        }
    }

    fn bulk_case(&self, rng: &mut Rng) -> Case {
        let count = 1 + rng.index(6);
        let bodies = (0..count)
            .map(|_| {
                let base = self.base(rng);
                let change = rng.percent(20);
                let body = self.command_body(rng, base, change);
                let command = wire::encode(&[wire::Field {
                    number: base.command_number,
                    value: wire::Value::Len(body),
                }]);
                if rng.percent(10) {
                    self.mutator
                        .mutate(rng, ".ics.ledger.v1.Command", &command, 0)
                } else {
                    command
                }
            })
            .collect();
        Case {
            kind: "SubmitBulk",
            service: LEDGER,
            rpc: "SubmitBulk".to_string(),
            message: ".ics.ledger.v1.Command".to_string(),
            bodies,
            actor: actor(rng),
        }
    }

    fn other_case(&self, rng: &mut Rng, kind: &'static str, bases: &[Base]) -> Case {
        let base = rng.pick(bases);
        let mut body = base.body.clone();
        for _ in 0..rng.below(4) {
            body = self.mutator.mutate(rng, &base.message, &body, 0);
        }
        Case {
            kind,
            service: base.service,
            rpc: base.rpc.clone(),
            message: base.message.clone(),
            bodies: vec![body],
            actor: None,
        }
    }

    /// Random bytes to any rpc.
    fn random_case(&self, rng: &mut Rng) -> Case {
        let all: Vec<&Base> = self
            .corpus
            .commands
            .iter()
            .chain(&self.corpus.reads)
            .chain(&self.corpus.audits)
            .collect();
        let base = *rng.pick(&all);
        let length = *rng.pick(&[0, 1, 2, 5, 16, 64, 300]);
        let (rpc, message, count) = if rng.percent(10) {
            (
                "SubmitBulk".to_string(),
                ".ics.ledger.v1.Command",
                1 + rng.index(3),
            )
        } else {
            (base.rpc.clone(), base.message.as_str(), 1)
        };
        Case {
            kind: "random bytes",
            service: if rpc == "SubmitBulk" {
                LEDGER
            } else {
                base.service
            },
            rpc,
            message: message.to_string(),
            bodies: (0..count).map(|_| rng.bytes(length)).collect(),
            actor: None,
        }
    }

    /// Sends `case`, checks the answer and the head; the status code's name and the head
    /// after.
    async fn send_and_check(
        &mut self,
        index: u64,
        case: &Case,
        before: &pb::HeadReply,
    ) -> anyhow::Result<(&'static str, pb::HeadReply)> {
        let answer = self.send(case).await;
        let after = match self.target.head().await {
            Ok(after) => after,
            Err(error) => {
                return Err(self.failure(index, case, &format!("Head failed after it: {error:#}")));
            }
        };
        let verdict = match &answer {
            Ok(reply) => check_reply(case, reply, before, &after),
            Err(status) => check_refusal(case, status, before, &after),
        };
        verdict.map_err(|problem| {
            let answered = match &answer {
                Ok(reply) => format!("OK {reply:?}"),
                Err(status) => format!(
                    "{} {:?} details {:?}",
                    code_name(status.code()),
                    status.message(),
                    status.get_error_details()
                ),
            };
            self.failure(index, case, &format!("{problem}\n  answered: {answered}"))
        })?;
        let code = answer
            .as_ref()
            .map_or_else(|s| code_name(s.code()), |_| "OK");
        Ok((code, after))
    }

    fn failure(&self, index: u64, case: &Case, problem: &str) -> anyhow::Error {
        let bodies: Vec<String> = case
            .bodies
            .iter()
            .map(|body| {
                format!(
                    "{} bytes 0x{}\n    as {}: {}",
                    body.len(),
                    body.iter()
                        .take(256)
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>(),
                    case.message,
                    self.schema.describe(&case.message, body)
                )
            })
            .collect();
        anyhow::anyhow!(
            "fuzz failure: seed {seed} (0x{seed:x}), request {index} ({kind}: {service}/{rpc}): \
             {problem}\n  actor: {actor:?}\n  request: {bodies}\n  ledgerd's log:\n{log}\n  \
             repeat with ICS_FUZZ_SEED={seed} ICS_FUZZ_REQUESTS={count}",
            seed = self.seed,
            kind = case.kind,
            service = case.service,
            rpc = case.rpc,
            actor = case.actor,
            bodies = bodies.join("\n  "),
            log = self.target.process.log_tail(),
            count = index + 1,
        )
    }

    async fn send(&mut self, case: &Case) -> Result<Reply, Status> {
        let path: tonic::codegen::http::uri::PathAndQuery =
            format!("/{}/{}", case.service, case.rpc)
                .parse()
                .map_err(|e| Status::data_loss(format!("fuzzer: a bad path: {e}")))?;
        let grpc = &mut self.target.grpc;
        tokio::time::timeout(CALL_TIMEOUT, grpc.ready())
            .await
            .map_err(|_| Status::deadline_exceeded("fuzzer: the connection was not ready"))?
            .map_err(|e| Status::unavailable(format!("fuzzer: connection: {e}")))?;
        let sent = async {
            match (case.service, case.rpc.as_str()) {
                (LEDGER, "SubmitBulk") => {
                    let request = request(
                        futures::stream::iter(case.bodies.clone()),
                        case.actor.as_deref(),
                    );
                    grpc.client_streaming(request, path, RawCodec::<pb::BulkReply>::default())
                        .await
                        .map(|r| Reply::Bulk(r.into_inner()))
                }
                (LEDGER, "Head") => {
                    let request = request(case.bodies[0].clone(), None);
                    grpc.unary(request, path, RawCodec::<pb::HeadReply>::default())
                        .await
                        .map(|r| Reply::Other(format!("{:?}", r.into_inner())))
                }
                (LEDGER, "ReadStream" | "ReadAll") => {
                    let follow = case.rpc == "ReadAll"
                        && pb::ReadAllRequest::decode(case.bodies[0].as_slice())
                            .is_ok_and(|r| r.follow);
                    let request = request(case.bodies[0].clone(), None);
                    let stream = grpc
                        .server_streaming(request, path, RawCodec::<pb::RecordedEvent>::default())
                        .await?
                        .into_inner();
                    drain(stream, follow).await
                }
                (LEDGER, "ReadStored") => {
                    let request = request(case.bodies[0].clone(), None);
                    let stream = grpc
                        .server_streaming(request, path, RawCodec::<pb::StoredPage>::default())
                        .await?
                        .into_inner();
                    drain(stream, false).await
                }
                (LEDGER, _) => {
                    let request = request(case.bodies[0].clone(), case.actor.as_deref());
                    grpc.unary(request, path, RawCodec::<pb::CommandReply>::default())
                        .await
                        .map(|r| Reply::Command(r.into_inner()))
                }
                (_, rpc) => {
                    let request = request(case.bodies[0].clone(), None);
                    let reply = match rpc {
                        "GetTreeHead" => grpc
                            .unary(
                                request,
                                path,
                                RawCodec::<api::audit_pb::TreeHead>::default(),
                            )
                            .await
                            .map(|r| format!("{:?}", r.into_inner())),
                        "GetInclusionProof" => grpc
                            .unary(
                                request,
                                path,
                                RawCodec::<api::audit_pb::InclusionProof>::default(),
                            )
                            .await
                            .map(|r| format!("{:?}", r.into_inner())),
                        "GetConsistencyProof" => grpc
                            .unary(
                                request,
                                path,
                                RawCodec::<api::audit_pb::ConsistencyProof>::default(),
                            )
                            .await
                            .map(|r| format!("{:?}", r.into_inner())),
                        _ => grpc
                            .unary(
                                request,
                                path,
                                RawCodec::<api::audit_pb::ListCheckpointsReply>::default(),
                            )
                            .await
                            .map(|r| format!("{} checkpoints", r.into_inner().checkpoints.len())),
                    };
                    reply.map(Reply::Other)
                }
            }
        };
        tokio::time::timeout(CALL_TIMEOUT, sent)
            .await
            .map_err(|_| Status::deadline_exceeded("fuzzer: no answer within the call timeout"))?
    }
}

/// An answer that was OK.
#[derive(Debug)]
enum Reply {
    Command(pb::CommandReply),
    Bulk(pb::BulkReply),
    /// A read's or an audit rpc's reply, decoded; streams: how many messages.
    Other(String),
}

/// A fresh request id in `body`'s `meta` (creating either if missing).
fn with_request_id(schema: &Schema, message: &str, body: &[u8], id: &str) -> Vec<u8> {
    let (Some(meta_number), Some(id_number)) = (
        schema.number(message, "meta"),
        schema.number(".ics.ledger.v1.CommandMeta", "request_id"),
    ) else {
        return body.to_vec();
    };
    let Some(mut fields) = wire::parse(body) else {
        return body.to_vec();
    };
    let mut meta = fields
        .iter()
        .find_map(|f| match (&f.value, f.number == meta_number) {
            (wire::Value::Len(inner), true) => wire::parse(inner),
            _ => None,
        })
        .unwrap_or_default();
    meta.retain(|f| f.number != id_number);
    meta.insert(
        0,
        wire::Field {
            number: id_number,
            value: wire::Value::Len(id.as_bytes().to_vec()),
        },
    );
    fields.retain(|f| f.number != meta_number);
    fields.insert(
        0,
        wire::Field {
            number: meta_number,
            value: wire::Value::Len(wire::encode(&meta)),
        },
    );
    wire::encode(&fields)
}

/// An invoice or dispute raised under a code not used before, so that it can be accepted
/// again and again.
fn fresh_code(schema: &Schema, message: &str, body: &[u8], rng: &mut Rng) -> Vec<u8> {
    let name = match message {
        ".ics.ledger.v1.RaiseInvoiceRequest" => "invoice",
        ".ics.ledger.v1.RaiseDisputeRequest" => "dispute",
        _ => return body.to_vec(),
    };
    let (Some(number), Some(mut fields)) = (schema.number(message, name), wire::parse(body)) else {
        return body.to_vec();
    };
    let code = format!("F{:06X}", rng.below(1 << 24));
    for field in fields.iter_mut().filter(|f| f.number == number) {
        field.value = wire::Value::Len(code.clone().into_bytes());
    }
    wire::encode(&fields)
}

/// Now and then an actor of its own: long, with spaces, odd characters.
fn actor(rng: &mut Rng) -> Option<String> {
    if !rng.percent(10) {
        return None;
    }
    let length = *rng.pick(&[1, 8, 64, 300, 2_000]);
    Some(
        (0..length)
            .map(|_| char::from(b' ' + rng.below(95) as u8))
            .collect(),
    )
}

fn request<T>(message: T, actor: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    let actor = actor.unwrap_or("fuzz");
    if let Ok(value) = actor.parse() {
        request.metadata_mut().insert("x-ics-actor", value);
    }
    request
}

/// Reads a reply stream to its end (a following one until it is quiet); how many messages.
async fn drain<T: Message + Default + 'static>(
    mut stream: tonic::Streaming<T>,
    follow: bool,
) -> Result<Reply, Status> {
    let mut count = 0u64;
    let idle = if follow { FOLLOW_IDLE } else { STREAM_IDLE };
    loop {
        match tokio::time::timeout(idle, stream.message()).await {
            Ok(Ok(Some(_))) => count += 1,
            Ok(Ok(None)) => return Ok(Reply::Other(format!("{count} messages"))),
            Ok(Err(status)) => return Err(status),
            Err(_) if follow => return Ok(Reply::Other(format!("{count} messages, following"))),
            Err(_) => {
                return Err(Status::deadline_exceeded(format!(
                    "fuzzer: the stream stalled after {count} messages"
                )));
            }
        }
    }
}

// ---- what an answer must be ----------------------------------------------------------------

fn check_reply(
    case: &Case,
    reply: &Reply,
    before: &pb::HeadReply,
    after: &pb::HeadReply,
) -> Result<(), String> {
    let unchanged = before == after;
    match reply {
        Reply::Command(reply) if reply.duplicate || reply.last_sequence == 0 => unchanged
            .then_some(())
            .ok_or_else(|| "a duplicate moved the head".to_string()),
        Reply::Command(reply) => {
            let moved = reply.first_sequence == before.sequence + 1
                && reply.last_sequence >= reply.first_sequence
                && after.sequence == reply.last_sequence;
            moved.then_some(()).ok_or_else(|| {
                format!(
                    "accepted as events {}..={}, but the head went {} → {}",
                    reply.first_sequence, reply.last_sequence, before.sequence, after.sequence
                )
            })
        }
        Reply::Bulk(reply) => {
            if reply.accepted + reply.duplicates != case.bodies.len() as u64 {
                return Err(format!(
                    "{} commands sent, {} accepted and {} duplicates",
                    case.bodies.len(),
                    reply.accepted,
                    reply.duplicates
                ));
            }
            if reply.accepted == 0 {
                // All duplicates: last_sequence is where they were first recorded.
                let fine =
                    unchanged && reply.first_sequence == 0 && reply.last_sequence <= after.sequence;
                return fine.then_some(()).ok_or_else(|| {
                    "a bulk of duplicates moved the head or claims events".to_string()
                });
            }
            let moved = reply.first_sequence == before.sequence + 1
                && after.sequence == reply.last_sequence;
            moved.then_some(()).ok_or_else(|| {
                format!(
                    "the bulk recorded {}..={}, but the head went {} → {}",
                    reply.first_sequence, reply.last_sequence, before.sequence, after.sequence
                )
            })
        }
        Reply::Other(what) => unchanged
            .then_some(())
            .ok_or_else(|| format!("a read ({what}) moved the head")),
    }
}

/// A refusal must have a documented code with its documented details, and must have left the
/// head where it was (for SubmitBulk: unless commands before the refused one were recorded).
fn check_refusal(
    case: &Case,
    status: &Status,
    before: &pb::HeadReply,
    after: &pb::HeadReply,
) -> Result<(), String> {
    let details = status.get_error_details();
    let command_path = case.service == LEDGER
        && !matches!(
            case.rpc.as_str(),
            "Head" | "ReadStream" | "ReadAll" | "ReadStored"
        );
    match status.code() {
        Code::InvalidArgument if case.service == LEDGER => {
            let violations = details
                .bad_request()
                .map(|b| b.field_violations.len())
                .unwrap_or(0);
            if violations != 1 {
                return Err(format!(
                    "INVALID_ARGUMENT with {violations} BadRequest violations, not 1"
                ));
            }
        }
        Code::InvalidArgument => {}
        Code::FailedPrecondition if command_path => {
            let reason = details
                .error_info()
                .filter(|i| i.domain == "ics.ledger.v1" && !i.reason.is_empty())
                .map(|i| i.reason.clone())
                .ok_or("FAILED_PRECONDITION without an ErrorInfo of ics.ledger.v1")?;
            let types: Vec<&str> = details
                .precondition_failure()
                .map(|p| p.violations.iter().map(|v| v.r#type.as_str()).collect())
                .unwrap_or_default();
            if types != [reason.as_str()] {
                return Err(format!(
                    "PreconditionFailure types {types:?}, ErrorInfo {reason}"
                ));
            }
        }
        Code::NotFound | Code::AlreadyExists if case.service == LEDGER => {
            let named = details.resource_info().is_some()
                || (status.code() == Code::AlreadyExists
                    && status.message().contains("meta.request_id"));
            if !named {
                return Err("no ResourceInfo naming what".to_string());
            }
        }
        Code::Aborted if command_path => {
            let reason = details.error_info().map(|i| i.reason.as_str());
            if reason != Some("VERSION_CONFLICT") {
                return Err(format!("ABORTED with ErrorInfo reason {reason:?}"));
            }
        }
        Code::ResourceExhausted => {
            if !status.message().contains("_max") {
                return Err("RESOURCE_EXHAUSTED not naming its limit's key".to_string());
            }
        }
        code => {
            return Err(format!(
                "{} is not a status ledger.proto documents",
                code_name(code)
            ));
        }
    }
    if before == after {
        return Ok(());
    }
    // SubmitBulk keeps what came before the refused command.
    let refused_at = details
        .bad_request()
        .and_then(|b| b.field_violations.first())
        .and_then(|v| v.field.strip_prefix("commands["))
        .or_else(|| status.message().strip_prefix("command "))
        .and_then(|rest| rest.split([']', ':']).next())
        .and_then(|n| n.parse::<u64>().ok());
    match (case.rpc.as_str(), refused_at) {
        ("SubmitBulk", Some(n)) if n > 0 => Ok(()),
        _ => Err(format!(
            "refused, yet the head went {} → {}",
            before.sequence, after.sequence
        )),
    }
}

// ---- bodies as given bytes ---------------------------------------------------------------

/// Sends request bodies as the bytes given and decodes replies as `T`; a reply that does not
/// decode is `DATA_LOSS` (never a status ledgerd sends, so it cannot pass for one).
struct RawCodec<T>(std::marker::PhantomData<T>);

impl<T> Default for RawCodec<T> {
    fn default() -> Self {
        RawCodec(std::marker::PhantomData)
    }
}

struct RawEncoder;

struct ReplyDecoder<T>(std::marker::PhantomData<T>);

impl<T: Message + Default + Send + 'static> Codec for RawCodec<T> {
    type Encode = Vec<u8>;
    type Decode = T;
    type Encoder = RawEncoder;
    type Decoder = ReplyDecoder<T>;

    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }

    fn decoder(&mut self) -> ReplyDecoder<T> {
        ReplyDecoder(std::marker::PhantomData)
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = Status;

    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl<T: Message + Default> Decoder for ReplyDecoder<T> {
    type Item = T;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<T>, Status> {
        T::decode(src)
            .map(Some)
            .map_err(|e| Status::data_loss(format!("fuzzer: the reply does not decode: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic_types::ErrorDetails;

    fn case(rpc: &str, bodies: usize) -> Case {
        Case {
            kind: "command, changed",
            service: LEDGER,
            rpc: rpc.to_string(),
            message: ".ics.ledger.v1.RaiseInvoiceRequest".to_string(),
            bodies: vec![Vec::new(); bodies],
            actor: None,
        }
    }

    fn head(sequence: u64) -> pb::HeadReply {
        pb::HeadReply {
            sequence,
            hash: vec![u8::try_from(sequence % 256).unwrap_or(0); 32],
            ..Default::default()
        }
    }

    #[test]
    fn only_documented_refusals_that_leave_the_head_pass() {
        let invoice = case("RaiseInvoice", 1);
        let invalid = Status::with_error_details(
            Code::InvalidArgument,
            "period.month: 13",
            ErrorDetails::with_bad_request_violation("period.month", "13 is not a month"),
        );
        assert_eq!(
            check_refusal(&invoice, &invalid, &head(5), &head(5)),
            Ok(())
        );
        // The head moved: a refusal must record nothing.
        assert!(check_refusal(&invoice, &invalid, &head(5), &head(6)).is_err());
        // Without its details, or with an undocumented code.
        assert!(
            check_refusal(&invoice, &Status::invalid_argument("x"), &head(5), &head(5)).is_err()
        );
        for status in [
            Status::internal("failed to decode Protobuf message"),
            Status::unknown("boom"),
            Status::unavailable("store down"),
            Status::out_of_range("x"),
        ] {
            assert!(
                check_refusal(&invoice, &status, &head(5), &head(5)).is_err(),
                "{status:?}"
            );
        }
        // SubmitBulk keeps what came before the refused command, and only that.
        let bulk = case("SubmitBulk", 3);
        let third = Status::with_error_details(
            Code::InvalidArgument,
            "command 2: commands[2].period.month: 13",
            ErrorDetails::with_bad_request_violation("commands[2].period.month", "13"),
        );
        assert_eq!(check_refusal(&bulk, &third, &head(5), &head(7)), Ok(()));
        let first = Status::with_error_details(
            Code::InvalidArgument,
            "command 0: commands[0].period.month: 13",
            ErrorDetails::with_bad_request_violation("commands[0].period.month", "13"),
        );
        assert!(check_refusal(&bulk, &first, &head(5), &head(7)).is_err());
    }

    #[test]
    fn an_accepted_command_moves_the_head_as_its_reply_says() {
        let invoice = case("RaiseInvoice", 1);
        let reply = |first, last, duplicate| {
            Reply::Command(pb::CommandReply {
                first_sequence: first,
                last_sequence: last,
                duplicate,
                ..Default::default()
            })
        };
        assert_eq!(
            check_reply(&invoice, &reply(6, 6, false), &head(5), &head(6)),
            Ok(())
        );
        assert!(check_reply(&invoice, &reply(6, 6, false), &head(5), &head(7)).is_err());
        assert!(check_reply(&invoice, &reply(3, 3, true), &head(5), &head(6)).is_err());
        assert_eq!(
            check_reply(&invoice, &reply(3, 3, true), &head(5), &head(5)),
            Ok(())
        );
        let read = Reply::Other("3 messages".to_string());
        assert!(check_reply(&case("ReadAll", 1), &read, &head(5), &head(6)).is_err());
    }

    #[test]
    fn a_fresh_request_id_replaces_or_makes_the_meta() -> anyhow::Result<()> {
        let schema = Schema::load()?;
        let message = ".ics.ledger.v1.RaiseInvoiceRequest";
        let with = pb::RaiseInvoiceRequest {
            meta: meta("00000000-0000-4000-8000-000000000001"),
            contract: "C1".to_string(),
            ..Default::default()
        };
        for request in [with.clone(), pb::RaiseInvoiceRequest { meta: None, ..with }] {
            let body = with_request_id(&schema, message, &request.encode_to_vec(), "new-id");
            let decoded = pb::RaiseInvoiceRequest::decode(body.as_slice())?;
            assert_eq!(
                decoded.meta.map(|m| m.request_id).as_deref(),
                Some("new-id")
            );
            assert_eq!(decoded.contract, "C1");
        }
        Ok(())
    }
}
