//! positiond against real parts: ledgerd in-process on a real sled store behind real gRPC, a
//! real nats-server, positiond's own sled on disk, and `PositionService` over loopback gRPC.
//! The ledger holds the demo ICS (`deploy/demo/kingsmere-2018-19.ics`, BRIEF.md §8), loaded
//! as `icsctl load` parses it. What positiond serves is checked against BRIEF §8's figures
//! and, message for message (fingerprints included), against the reports the domain crate
//! computes from the log read back from ledgerd — the audit replay.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use api::position_pb as ppb;
use api::position_pb::position_service_client::PositionServiceClient;
use api::report::ReportToProto;
use domain::fund::FundEvent;
use domain::position::{
    AobOptions, AobScope, AsOf, ConsolidationScope, Projection, Recorded, Report,
};
use domain::{Event, FinancialYear, Month};
use follow::checkpoint::CheckpointStore;
use follow::incoming::Incoming;
use follow::projection::Checkpointed;
use positiond::position::Position;
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;
use tonic_types::StatusExt;

const DEMO: &str = "kingsmere-2018-19.ics";

/// £ → pence.
fn pounds(pounds: i64) -> i64 {
    pounds * 100
}

// ---- ledgerd -------------------------------------------------------------------------------

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

impl Ledgerd {
    async fn client(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        for _ in 0..100 {
            if let Ok(client) = LedgerServiceClient::connect(self.url.clone()).await {
                return Ok(client.max_decoding_message_size(64 * 1024 * 1024));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("ledgerd did not come up")
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.ledgerd.stop().await
    }
}

/// The demo scenario's commands, as `icsctl load` parses and sends them.
fn demo_commands() -> anyhow::Result<Vec<pb::Command>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/demo")
        .join(DEMO);
    let text = std::fs::read_to_string(&path)?;
    Ok(icsctl::load::parse_scenario(DEMO, &text)?
        .into_iter()
        .map(|(_, command)| command)
        .collect())
}

/// Posts `commands` in one bulk call (as `icsctl load` does); the last sequence recorded.
async fn post(
    client: &mut LedgerServiceClient<Channel>,
    commands: Vec<pb::Command>,
) -> anyhow::Result<u64> {
    let count = commands.len() as u64;
    let reply = client
        .submit_bulk(futures::stream::iter(commands))
        .await?
        .into_inner();
    anyhow::ensure!(reply.accepted == count, "accepted {reply:?} of {count}");
    Ok(reply.last_sequence)
}

/// The whole log, read back from ledgerd.
async fn read_log(client: &mut LedgerServiceClient<Channel>) -> anyhow::Result<Vec<Incoming>> {
    let mut stream = client
        .read_all(pb::ReadAllRequest {
            from_sequence: 1,
            limit: 0,
            follow: false,
        })
        .await?
        .into_inner();
    let mut log = Vec::new();
    while let Some(recorded) = stream.message().await? {
        log.push(Incoming::from_proto(recorded)?);
    }
    Ok(log)
}

/// The audit replay: the domain's own fold of the log.
fn fold(log: &[Incoming]) -> anyhow::Result<Projection> {
    let mut projection = Projection::new();
    for incoming in log {
        let at = Recorded {
            sequence: incoming.sequence,
            recorded_at_us: incoming.recorded_at_us,
        };
        projection.apply(&at, &incoming.event)?;
    }
    Ok(projection)
}

/// The sequence of the assessment of `quarter`'s tranche.
fn assessment_of(log: &[Incoming], quarter: u8) -> anyhow::Result<&Incoming> {
    log.iter()
        .find(|i| {
            matches!(&i.event, Event::Fund { event: FundEvent::TrancheAssessed { quarter: q, .. }, .. }
                if q.number() == quarter)
        })
        .ok_or_else(|| anyhow::anyhow!("no assessment of Q{quarter}"))
}

// ---- positiond -----------------------------------------------------------------------------

struct Positiond {
    url: String,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    dir: PathBuf,
}

fn positiond_config(
    dir: &Path,
    nats: &testkit::NatsServer,
    ledgerd: &Ledgerd,
    consumer: &str,
) -> positiond::config::Config {
    positiond::config::Config {
        data_dir: dir.to_path_buf(),
        nats_url: nats.url(),
        ledgerd_url: ledgerd.url.clone(),
        consumer: consumer.to_string(),
        stream_name: bus::STREAM_NAME.to_string(),
        // Small, so that checkpoints happen while the demo streams in.
        checkpoint_events: 50,
        checkpoint_interval_ms: 50,
        ..positiond::config::Config::default()
    }
}

async fn start_positiond(config: positiond::config::Config) -> anyhow::Result<Positiond> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let dir = config.data_dir.clone();
    let stop = CancellationToken::new();
    let task = tokio::spawn(positiond::server::run(
        config,
        listener,
        stop.clone().cancelled_owned(),
    ));
    Ok(Positiond {
        url,
        stop,
        task,
        dir,
    })
}

impl Positiond {
    async fn client(&self) -> anyhow::Result<PositionServiceClient<Channel>> {
        for _ in 0..100 {
            if let Ok(client) = PositionServiceClient::connect(self.url.clone()).await {
                return Ok(client.max_decoding_message_size(64 * 1024 * 1024));
            }
            anyhow::ensure!(!self.task.is_finished(), "positiond stopped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("positiond did not come up")
    }

    /// Waits until positiond says it has folded `sequence`.
    async fn wait_for(&self, sequence: u64) -> anyhow::Result<ppb::StatusReply> {
        let mut client = self.client().await?;
        let mut last = None;
        for _ in 0..1_200 {
            let status = client.get_status(ppb::StatusRequest {}).await?.into_inner();
            if status.sequence >= sequence {
                return Ok(status);
            }
            last = Some(status.sequence);
            anyhow::ensure!(!self.task.is_finished(), "positiond stopped");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("positiond not at {sequence} after 30 s: at {last:?}")
    }

    /// Stops it gracefully (it checkpoints); the checkpoint it left.
    async fn stop(self) -> anyhow::Result<Checkpointed<Position>> {
        self.stop.cancel();
        self.task.await??;
        Ok(CheckpointStore::open(&self.dir)?.load()?)
    }
}

// ---- reports -------------------------------------------------------------------------------

/// Every report for one question, as served or as computed locally.
#[derive(Debug, PartialEq)]
struct Reports {
    position: ppb::PositionReport,
    consolidation: ppb::ConsolidationReport,
    consolidation_wider: ppb::ConsolidationReport,
    budgets: ppb::PooledBudgetStatement,
    contracts: ppb::ContractStatement,
    funds: ppb::FundStatement,
    aob: ppb::AgreementOfBalances,
    aob_all: ppb::AgreementOfBalances,
    adjustments: ppb::AdjustmentsReport,
}

impl Reports {
    fn fingerprints(&self) -> Vec<Vec<u8>> {
        let f = |b: &Option<ppb::Basis>| b.as_ref().map(|b| b.fingerprint.clone());
        [
            f(&self.position.basis),
            f(&self.consolidation.basis),
            f(&self.consolidation_wider.basis),
            f(&self.budgets.basis),
            f(&self.contracts.basis),
            f(&self.funds.basis),
            f(&self.aob.basis),
            f(&self.aob_all.basis),
            f(&self.adjustments.basis),
        ]
        .into_iter()
        .map(|f| f.unwrap_or_default())
        .collect()
    }
}

fn request(year: u32, month: u32, as_of: Option<ppb::as_of::At>) -> ppb::ReportRequest {
    ppb::ReportRequest {
        year,
        month,
        as_of: as_of.map(|at| ppb::AsOf { at: Some(at) }),
    }
}

async fn served(
    client: &mut PositionServiceClient<Channel>,
    r: ppb::ReportRequest,
) -> anyhow::Result<Reports> {
    let consolidation = |scope: ppb::ConsolidationScope| ppb::ConsolidationRequest {
        report: Some(r),
        scope: scope.into(),
    };
    let aob = |scope: ppb::AobScope| ppb::AgreementOfBalancesRequest {
        report: Some(r),
        scope: scope.into(),
        ..Default::default()
    };
    Ok(Reports {
        position: client.get_position(r).await?.into_inner(),
        consolidation: client
            .get_consolidation(consolidation(ppb::ConsolidationScope::Unspecified))
            .await?
            .into_inner(),
        consolidation_wider: client
            .get_consolidation(consolidation(ppb::ConsolidationScope::WiderIcs))
            .await?
            .into_inner(),
        budgets: client.get_pooled_budgets(r).await?.into_inner(),
        contracts: client.get_contracts(r).await?.into_inner(),
        funds: client.get_funds(r).await?.into_inner(),
        aob: client
            .get_agreement_of_balances(aob(ppb::AobScope::Unspecified))
            .await?
            .into_inner(),
        aob_all: client
            .get_agreement_of_balances(aob(ppb::AobScope::AllMembers))
            .await?
            .into_inner(),
        adjustments: client.get_adjustments(r).await?.into_inner(),
    })
}

/// The same reports from the domain crate's own fold, converted the same way.
fn local(projection: &Projection, r: ppb::ReportRequest) -> anyhow::Result<Reports> {
    let question = api::report::question_from_proto(r)?;
    let (year, month): (FinancialYear, Month) = (question.year, question.month);
    let s = projection.at(question.as_of)?;
    let all = AobOptions {
        scope: AobScope::AllMembers,
        ..AobOptions::default()
    };
    Ok(Reports {
        position: s.position(year, month)?.to_proto()?,
        consolidation: s
            .consolidation(year, month, ConsolidationScope::ControlTotal)?
            .to_proto()?,
        consolidation_wider: s
            .consolidation(year, month, ConsolidationScope::WiderIcs)?
            .to_proto()?,
        budgets: s.pooled_budgets(year, month)?.to_proto()?,
        contracts: s.contracts_statement(year, month)?.to_proto()?,
        funds: s.funds_statement(year, month)?.to_proto()?,
        aob: s
            .agreement_of_balances(year, month, AobOptions::default())?
            .to_proto()?,
        aob_all: s.agreement_of_balances(year, month, all)?.to_proto()?,
        adjustments: s.adjustments(year, month)?.to_proto()?,
    })
}

/// The questions the tests compare on: the year end, Q2, and the next year's M2 (where the
/// post-close gain share is posted).
fn questions() -> Vec<ppb::ReportRequest> {
    vec![
        request(2018, 12, None),
        request(2018, 6, None),
        request(2019, 2, None),
    ]
}

fn figures(f: &Option<ppb::PositionFigures>) -> &ppb::PositionFigures {
    f.as_ref().expect("figures")
}

#[track_caller]
fn invalid_naming(result: Result<impl std::fmt::Debug, tonic::Status>, field: &str) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
    assert!(status.message().contains(field), "{}", status.message());
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations[0].field, field);
}

#[track_caller]
fn not_yet_folded(result: Result<impl std::fmt::Debug, tonic::Status>, folded: u64) {
    let status = result.expect_err("refused");
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status
            .message()
            .contains(&format!("folded the log to sequence {folded}")),
        "says how far it has got: {}",
        status.message()
    );
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, "NOT_YET_FOLDED");
    assert_eq!(
        info.metadata.get("folded_sequence"),
        Some(&folded.to_string())
    );
}

// ---- tests ---------------------------------------------------------------------------------

/// positiond folds the demo ledger and serves BRIEF §8's figures; every report it serves is
/// the one the domain computes from the log read back from ledgerd (fingerprints included);
/// as of the Q2 assessment it serves the Q2 figures; malformed requests and points beyond the
/// head are refused with the field named and how far it has got.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_the_demo_position_as_the_audit_replay_computes_it() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = ledgerd.client().await?;
    let last = post(&mut ledger, demo_commands()?).await?;
    let head = ledger.head(pb::HeadRequest {}).await?.into_inner();
    assert_eq!(head.sequence, last);

    let dir = tempfile::tempdir()?;
    let positiond = start_positiond(positiond_config(dir.path(), &nats, &ledgerd, "p1")).await?;
    let status = positiond.wait_for(last).await?;
    assert_eq!(status.system, "kav");
    assert_eq!(status.sequence, last);
    assert_eq!(
        status.hash, head.hash,
        "positiond folded the ledger's chain"
    );
    let mut client = positiond.client().await?;

    // BRIEF §8, the year end.
    let year_end = served(&mut client, request(2018, 12, None)).await?;
    let basis = year_end.position.basis.clone().expect("basis");
    assert_eq!(basis.as_of_sequence, last);
    assert_eq!(
        (basis.system.as_str(), basis.year, basis.month),
        ("kav", 2018, 12)
    );
    assert_eq!(basis.fingerprint.len(), 32);
    let ct = figures(&year_end.position.control_total);
    assert_eq!(
        ct.plan_annual_pence,
        pounds(-7_200_000),
        "system control total"
    );
    assert_eq!(ct.actual_ytd_pence, pounds(-6_960_000), "before the fund");
    assert_eq!(ct.fund_earned_ytd_pence, pounds(5_400_000), "fund earned");
    assert_eq!(
        ct.fund_forfeited_ytd_pence,
        pounds(1_800_000),
        "fund forfeited"
    );
    assert_eq!(
        ct.after_fund_ytd_pence,
        pounds(-1_560_000),
        "after the fund"
    );
    assert_eq!(
        figures(&year_end.position.wider_ics).after_fund_ytd_pence,
        pounds(-1_860_000),
        "the wider ICS"
    );
    let c = &year_end.consolidation;
    assert_eq!(c.scope, i32::from(ppb::ConsolidationScope::ControlTotal));
    assert_eq!(c.consolidated_income_pence, pounds(1_066_200_000));
    assert_eq!(c.consolidated_expenditure_pence, pounds(1_073_160_000));
    assert_eq!(c.eliminated_pence, pounds(734_520_000));
    let [bcf] = year_end.budgets.budgets.as_slice() else {
        panic!("one pooled budget: {:?}", year_end.budgets.budgets);
    };
    assert_eq!(bcf.revenue_variance_ytd_pence, pounds(600_000), "overspend");
    let settlement = bcf.settlement.as_ref().expect("settled");
    assert_eq!(settlement.variance_pence, pounds(600_000));
    let shares: Vec<_> = bcf
        .partners
        .iter()
        .map(|p| (p.member.as_str(), p.risk_share_pence))
        .collect();
    assert_eq!(
        shares,
        [("KCCG", pounds(300_000)), ("KCC", pounds(300_000))],
        "split 300,000 each"
    );
    let [fund] = year_end.funds.funds.as_slice() else {
        panic!("one fund");
    };
    assert_eq!(fund.earned_pence, pounds(5_400_000));
    assert_eq!(fund.forfeited_pence, pounds(1_800_000));
    assert_eq!(
        year_end.aob.mismatched_lines, 0,
        "no mismatches by construction"
    );
    let [gain_share] = year_end.adjustments.naming_this_year.as_slice() else {
        panic!("one correction names 2018/19");
    };
    assert_eq!(gain_share.stream, "contract/C6");
    assert_eq!(gain_share.amount_pence, pounds(50_000));

    // The audit replay: the log read back from ledgerd, folded by the domain crate, gives the
    // same reports message for message, fingerprints included.
    let log = read_log(&mut ledger).await?;
    assert_eq!(log.len() as u64, last);
    let replay = fold(&log)?;
    for r in questions() {
        assert_eq!(served(&mut client, r).await?, local(&replay, r)?, "{r:?}");
    }
    let local_position = replay
        .at(AsOf::Latest)?
        .position(FinancialYear::new(2018)?, Month::new(12)?)?;
    assert_eq!(
        basis.fingerprint,
        local_position.fingerprint()?.to_vec(),
        "the served fingerprint is the replay's"
    );

    // As of the Q2 assessment: the Q2 figures, the same as a fold of the log only that far,
    // and the same asked by the time it was recorded.
    let q2 = assessment_of(&log, 2)?;
    let at_q2 = request(2018, 6, Some(ppb::as_of::At::Sequence(q2.sequence)));
    let then = served(&mut client, at_q2).await?;
    let basis = then.position.basis.clone().expect("basis");
    assert_eq!(basis.as_of_sequence, q2.sequence);
    assert_eq!(
        basis.closed_through,
        Some(pb::Period {
            year: 2018,
            month: 5
        })
    );
    let ct = figures(&then.position.control_total);
    assert_eq!(ct.plan_ytd_pence, pounds(-3_600_000));
    assert_eq!(ct.actual_ytd_pence, pounds(-6_000_000));
    assert_eq!(ct.fund_earned_ytd_pence, pounds(2_340_000));
    assert_eq!(ct.fund_forfeited_ytd_pence, pounds(1_260_000));
    assert_eq!(ct.after_fund_ytd_pence, pounds(-3_660_000));
    let assessed: Vec<bool> = then.funds.funds[0]
        .tranches
        .iter()
        .map(|t| t.assessment.is_some())
        .collect();
    assert_eq!(assessed, [true, true, false, false]);
    let prefix = usize::try_from(q2.sequence)?;
    let folded_then = fold(&log[..prefix])?;
    assert_eq!(then, local(&folded_then, request(2018, 6, None))?);
    assert_eq!(then, local(&replay, at_q2)?);
    let by_time = served(
        &mut client,
        request(
            2018,
            6,
            Some(ppb::as_of::At::RecordedAtUs(q2.recorded_at_us)),
        ),
    )
    .await?;
    assert_eq!(by_time, then);

    // Malformed requests: INVALID_ARGUMENT naming the field.
    invalid_naming(client.get_position(request(2018, 13, None)).await, "month");
    invalid_naming(client.get_funds(request(1999, 12, None)).await, "year");
    invalid_naming(
        client
            .get_contracts(ppb::ReportRequest {
                as_of: Some(ppb::AsOf { at: None }),
                ..request(2018, 12, None)
            })
            .await,
        "as_of",
    );
    invalid_naming(
        client
            .get_consolidation(ppb::ConsolidationRequest {
                report: Some(request(2018, 0, None)),
                scope: 0,
            })
            .await,
        "report.month",
    );
    invalid_naming(
        client
            .get_consolidation(ppb::ConsolidationRequest {
                report: Some(request(2018, 12, None)),
                scope: 42,
            })
            .await,
        "scope",
    );
    invalid_naming(
        client
            .get_agreement_of_balances(ppb::AgreementOfBalancesRequest {
                report: Some(request(2018, 12, None)),
                receivables_payables_threshold_pence: Some(-1),
                ..Default::default()
            })
            .await,
        "receivables_payables_threshold_pence",
    );
    invalid_naming(
        client
            .get_agreement_of_balances(ppb::AgreementOfBalancesRequest::default())
            .await,
        "report",
    );

    // Beyond the head: FAILED_PRECONDITION saying how far positiond has got.
    let after_head = request(2018, 12, Some(ppb::as_of::At::Sequence(last + 1)));
    not_yet_folded(client.get_position(after_head).await, last);
    not_yet_folded(client.get_pooled_budgets(after_head).await, last);
    let recorded_last = log.last().map_or(0, |i| i.recorded_at_us);
    not_yet_folded(
        client
            .get_adjustments(request(
                2018,
                12,
                Some(ppb::as_of::At::RecordedAtUs(recorded_last + 1)),
            ))
            .await,
        last,
    );
    // Before the system was established: FAILED_PRECONDITION too.
    let before = client
        .get_position(request(
            2018,
            12,
            Some(ppb::as_of::At::RecordedAtUs(log[0].recorded_at_us - 1)),
        ))
        .await
        .expect_err("not established");
    assert_eq!(before.code(), Code::FailedPrecondition);
    assert_eq!(
        before
            .get_error_details()
            .error_info()
            .map(|i| i.reason.clone()),
        Some("NOT_ESTABLISHED".to_string())
    );

    positiond.stop().await?;
    ledgerd.stop().await?;
    Ok(())
}

/// Stopped while the demo streams in and restarted from its checkpoint, positiond resumes
/// where it stopped and ends with the same reports; a second positiond started late, with its
/// own sled and durable consumer, converges to the same fingerprints; both are the replay's.
/// Also measures the demo projection's checkpoint (printed; run with `--nocapture`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restarts_from_its_checkpoint_and_a_late_replica_converges() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = ledgerd.client().await?;
    let commands = demo_commands()?;
    let chunks: Vec<Vec<pb::Command>> = commands.chunks(40).map(<[_]>::to_vec).collect();
    let (first, rest) = chunks.split_first().expect("chunks");
    let (second, rest) = rest.split_first().expect("chunks");
    let first_last = post(&mut ledger, first.clone()).await?;

    let dir_a = tempfile::tempdir()?;
    let config_a = positiond_config(dir_a.path(), &nats, &ledgerd, "replica-a");
    let a = start_positiond(config_a.clone()).await?;
    a.wait_for(first_last).await?;

    // More arrives through JetStream while it runs; stop it with the demo half loaded.
    let second_last = post(&mut ledger, second.clone()).await?;
    a.wait_for(second_last).await?;
    let (half, rest) = rest.split_at(rest.len() / 2);
    let posting = {
        let mut ledger = ledger.clone();
        let half = half.concat();
        tokio::spawn(async move { post(&mut ledger, half).await })
    };
    let stopped = a.stop().await?;
    let half_last = posting.await??;
    assert!(
        stopped.sequence >= second_last && stopped.sequence <= half_last,
        "stopped at {} (between {second_last} and {half_last})",
        stopped.sequence
    );
    let rest_last = post(&mut ledger, rest.concat()).await?;
    assert_eq!(rest_last, commands.len() as u64, "one event per command");

    // Restarted on its checkpoint: it says where it stopped, then catches up.
    let a = start_positiond(config_a.clone()).await?;
    let mut client_a = a.client().await?;
    let resumed = client_a
        .get_status(ppb::StatusRequest {})
        .await?
        .into_inner();
    assert!(
        resumed.sequence >= stopped.sequence,
        "resumed at {} from the checkpoint at {}",
        resumed.sequence,
        stopped.sequence
    );
    let status_a = a.wait_for(rest_last).await?;

    // A second replica, started late with its own sled and consumer.
    let dir_b = tempfile::tempdir()?;
    let b = start_positiond(positiond_config(dir_b.path(), &nats, &ledgerd, "replica-b")).await?;
    let status_b = b.wait_for(rest_last).await?;
    assert_eq!(status_a, status_b);
    let mut client_b = b.client().await?;

    let log = read_log(&mut ledger).await?;
    let replay = fold(&log)?;
    let stopped_at = usize::try_from(stopped.sequence)?;
    assert_eq!(
        stopped.projection.0,
        fold(&log[..stopped_at])?,
        "the checkpoint left mid-stream is the fold of the log to its sequence"
    );
    for r in questions() {
        let from_a = served(&mut client_a, r).await?;
        let from_b = served(&mut client_b, r).await?;
        assert_eq!(from_a.fingerprints(), from_b.fingerprints(), "{r:?}");
        assert_eq!(from_a, from_b, "{r:?}");
        assert_eq!(from_a, local(&replay, r)?, "{r:?}");
    }
    let year_end = served(&mut client_a, request(2018, 12, None)).await?;
    let ct = figures(&year_end.position.control_total);
    assert_eq!(ct.after_fund_ytd_pence, pounds(-1_560_000));

    // What a checkpoint of the whole demo weighs, and takes.
    let checkpoint = a.stop().await?;
    assert_eq!(checkpoint.sequence, rest_last);
    assert_eq!(
        checkpoint.projection.0, replay,
        "the checkpoint is the replay's fold"
    );
    measure_checkpoint(&checkpoint)?;
    b.stop().await?;
    ledgerd.stop().await?;
    Ok(())
}

/// NATS is untrusted: a message that is not an event is parked, counted in the status, and
/// positiond goes on folding what comes after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_message_that_is_not_an_event_is_parked_and_counted() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let mut ledger = ledgerd.client().await?;
    let commands = demo_commands()?;
    let first_last = post(&mut ledger, commands[..20].to_vec()).await?;
    let dir = tempfile::tempdir()?;
    let positiond = start_positiond(positiond_config(dir.path(), &nats, &ledgerd, "p")).await?;
    let before = positiond.wait_for(first_last).await?;
    assert_eq!(before.parked, 0);

    let js = bus::jetstream(bus::connect(&nats.url(), "intruder").await?);
    js.publish("ics.kav.contract.invoice_raised", vec![0xff, 0x00].into())
        .await?
        .await?;
    let last = post(&mut ledger, commands[20..40].to_vec()).await?;
    let after = positiond.wait_for(last).await?;
    assert_eq!(after.sequence, last, "it went on past the parked message");
    assert_eq!(after.parked, 1, "{after:?}");
    positiond.stop().await?;
    let parked = CheckpointStore::open(dir.path())?.parked().all()?;
    assert_eq!(parked.len(), 1);
    assert_eq!(parked[0].subject, "ics.kav.contract.invoice_raised");
    assert_eq!(parked[0].payload, vec![0xff, 0x00]);
    assert!(
        parked[0].reason.starts_with("not a RecordedEvent protobuf"),
        "{parked:?}"
    );
    ledgerd.stop().await?;
    Ok(())
}

/// Prints the checkpoint's size (the bytes `CheckpointStore::save` stores: a format byte and
/// the bincode encoding) and how long saving it takes (encode, insert, flush), and checks it
/// loads back equal. No timed assertion: the figures are for the record.
fn measure_checkpoint(checkpoint: &Checkpointed<Position>) -> anyhow::Result<()> {
    let encoded = bincode::serde::encode_to_vec(checkpoint, bincode::config::standard())?;
    let dir = tempfile::tempdir()?;
    let store = CheckpointStore::open(dir.path())?;
    const RUNS: u32 = 20;
    let started = Instant::now();
    for _ in 0..RUNS {
        store.save(checkpoint)?;
    }
    let per_save = started.elapsed() / RUNS;
    let started = Instant::now();
    let loaded: Checkpointed<Position> = store.load()?;
    let load = started.elapsed();
    assert_eq!(&loaded, checkpoint);
    let started = Instant::now();
    for _ in 0..RUNS {
        let _ = bincode::serde::encode_to_vec(checkpoint, bincode::config::standard())?;
    }
    let per_encode = started.elapsed() / RUNS;
    eprintln!(
        "checkpoint of the demo projection ({} events): {} bytes; save (encode + sled insert + \
         flush) {per_save:?} each over {RUNS}; encode alone {per_encode:?}; load {load:?}",
        checkpoint.sequence,
        encoded.len() + 1,
    );
    Ok(())
}

/// An event the projection refuses stops the fold, not positiond, and is never skipped: here
/// its checkpoint claims the last event it folded was recorded far in the future, so the next
/// event from ledgerd goes back in time. positiond keeps serving the projection as of the event
/// before, reports the stuck sequence and why in its status and NOT_SERVING in its health, and
/// the checkpoint does not move past it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_the_projection_refuses_stops_the_fold_not_positiond() -> anyhow::Result<()> {
    // No relay: positiond is stuck while catching up from ledgerd, before it needs NATS.
    let ledgerd = start_ledgerd(None).await?;
    let mut ledger = ledgerd.client().await?;
    let last = post(&mut ledger, demo_commands()?[..20].to_vec()).await?;
    let log = read_log(&mut ledger).await?;

    let dir = tempfile::tempdir()?;
    let mut seeded = Checkpointed::<Position>::default();
    for incoming in &log[..10] {
        let mut incoming = incoming.clone();
        if incoming.sequence == 10 {
            incoming.recorded_at_us = i64::MAX / 2;
        }
        seeded.offer(&incoming)?;
    }
    assert_eq!(seeded.sequence, 10);
    CheckpointStore::open(dir.path())?.save(&seeded)?;

    let config = positiond::config::Config {
        data_dir: dir.path().to_path_buf(),
        ledgerd_url: ledgerd.url.clone(),
        consumer: "refuses".to_string(),
        ..positiond::config::Config::default()
    };
    let positiond = start_positiond(config).await?;
    let mut client = positiond.client().await?;
    let mut status = client.get_status(ppb::StatusRequest {}).await?.into_inner();
    for _ in 0..600 {
        if status.stuck_sequence != 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = client.get_status(ppb::StatusRequest {}).await?.into_inner();
    }
    assert_eq!(status.stuck_sequence, 11, "{status:?}");
    assert_eq!(status.sequence, 10, "serving as of the event before");
    assert!(
        status.stuck_reason.contains("event 11 could not be folded")
            && status.stuck_reason.contains("before event 10"),
        "{}",
        status.stuck_reason
    );
    // Health follows the status a moment later.
    let channel = Channel::from_shared(positiond.url.clone())?
        .connect()
        .await?;
    let mut health = tonic_health::pb::health_client::HealthClient::new(channel);
    let mut serving = None;
    for _ in 0..100 {
        serving = Some(
            health
                .check(tonic_health::pb::HealthCheckRequest {
                    service: "ics.position.v1.PositionService".to_string(),
                })
                .await?
                .into_inner()
                .status(),
        );
        if serving == Some(tonic_health::pb::health_check_response::ServingStatus::NotServing) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        serving,
        Some(tonic_health::pb::health_check_response::ServingStatus::NotServing)
    );
    assert!(!positiond.task.is_finished(), "positiond goes on");
    let stopped = positiond.stop().await?;
    assert_eq!(
        stopped, seeded,
        "the checkpoint did not move past the event"
    );
    assert!(last > 11);
    ledgerd.stop().await?;
    Ok(())
}

/// positiond serves over TLS when given a certificate and key: a client trusting the CA is
/// served, a plaintext client is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_over_tls_when_configured() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let ledgerd = start_ledgerd(Some(nats.url())).await?;
    let pki = tempfile::tempdir()?;
    let files = devpki::write(
        &devpki::generate("positiond test CA", &["localhost", "127.0.0.1"], "finance")?,
        pki.path(),
    )?;
    let dir = tempfile::tempdir()?;
    let config = positiond::config::Config {
        tls_cert: Some(files.server_cert.clone()),
        tls_key: Some(files.server_key.clone()),
        ..positiond_config(dir.path(), &nats, &ledgerd, "tls")
    };
    let positiond = start_positiond(config).await?;
    let https = positiond.url.replacen("http://", "https://", 1);
    let tls = tonic::transport::ClientTlsConfig::new()
        .ca_certificate(tonic::transport::Certificate::from_pem(std::fs::read(
            &files.ca_cert,
        )?))
        .domain_name("localhost");
    let mut status = Err(anyhow::anyhow!("not tried"));
    for _ in 0..100 {
        status = async {
            let channel = Channel::from_shared(https.clone())?
                .tls_config(tls.clone())?
                .connect()
                .await?;
            let reply = PositionServiceClient::new(channel)
                .get_status(ppb::StatusRequest {})
                .await?;
            anyhow::Ok(reply.into_inner())
        }
        .await;
        if status.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status?.system, "kav", "a client trusting the CA is served");
    let plaintext = async {
        let mut client = PositionServiceClient::connect(positiond.url.clone()).await?;
        anyhow::Ok(client.get_status(ppb::StatusRequest {}).await?)
    }
    .await;
    assert!(plaintext.is_err(), "a plaintext client is refused");
    positiond.stop().await?;
    ledgerd.stop().await?;
    Ok(())
}
