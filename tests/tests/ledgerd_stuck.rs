//! A sound log holding an event ledgerd's rules cannot apply (written straight into the store,
//! as an older ledgerd with other rules would have) does not stop ledgerd: through the real
//! binary, a real nats-server and real gRPC, it starts and stays up, serves every read of the
//! whole log and the audit calls, relays the whole log, refuses every command with
//! FAILED_PRECONDITION naming the event, why and what an operator can do, reports
//! `LedgerService` NOT_SERVING, says where it is stuck in `Head`, logs it once per start, and
//! comes back the same after a restart.

use std::time::Duration;

use api::audit_pb::audit_service_client::AuditServiceClient;
use api::pb;
use e2e::Ledgerd;
use futures::StreamExt;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// What ledgerd logs, once per start, when it is stuck.
const STUCK_LINE: &str = "ledgerd takes no commands";

async fn health(url: &str, service: &str) -> anyhow::Result<ServingStatus> {
    let channel = Channel::from_shared(url.to_string())?.connect().await?;
    Ok(HealthClient::new(channel)
        .check(HealthCheckRequest {
            service: service.to_string(),
        })
        .await?
        .into_inner()
        .status())
}

/// A new invoice on the contract and period of `invoice`: a command the rules would accept.
fn raise_invoice(invoice: &e2e::RaisedInvoice, code: &str) -> pb::RaiseInvoiceRequest {
    pb::RaiseInvoiceRequest {
        meta: Some(pb::CommandMeta {
            request_id: uuid::Uuid::new_v4().to_string(),
            ..Default::default()
        }),
        contract: invoice.contract.to_string(),
        invoice: code.to_string(),
        period: Some(api::period_to_proto(invoice.period)),
        amount_pence: 100,
        corrects: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_on_a_log_it_cannot_fold_serves_reads_and_refuses_commands() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let dir = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start(&dir, Some(&nats.url()))?;
    let (first, _) = e2e::split_demo_scenario(work.path(), 40)?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &first.to_string_lossy()],
    )?;
    let before = e2e::read_all(&mut ledgerd.client().await?).await?;
    ledgerd.terminate()?;

    // An older ledgerd let an invoice number be raised twice; today's rules refuse the second.
    // A valid invoice follows it, so the log goes on past the event that does not apply.
    let last = e2e::last_invoice(&before)?;
    let stuck = e2e::append_as_older_ledgerd(
        &dir,
        &last.stream,
        vec![
            last.again(last.invoice.clone(), domain::Pence::new(100)),
            last.again(e2e::code("OLD-NEXT-1")?, domain::Pence::new(100)),
        ],
    )
    .await?;
    assert_eq!(stuck, before.len() as u64 + 1);
    let end = stuck + 1;

    for start in 1..=2 {
        ledgerd.restart()?;
        let mut client = ledgerd.client().await?;

        // Head: the whole log, and where and why it is stuck.
        let head = e2e::head(&mut client).await?;
        assert_eq!(head.sequence, end, "start {start}");
        assert_eq!(head.stuck_sequence, stuck, "start {start}");
        assert!(
            head.stuck_reason
                .contains(&format!("invoice {} already exists", last.invoice)),
            "{}",
            head.stuck_reason
        );
        assert_eq!(
            head.system_events + head.budget_events + head.funding_events + head.contract_events,
            end,
            "every event counted, folded or not"
        );

        let shown: serde_json::Value =
            serde_json::from_str(&e2e::icsctl(&ledgerd.url(), &["head", "--json"])?)?;
        assert_eq!(shown["stuck"]["sequence"], stuck, "{shown}");

        // Every read, over the whole log, the event that does not apply and those after it.
        let log = e2e::read_all(&mut client).await?;
        assert_eq!(log.len() as u64, end);
        e2e::assert_chain_links(&log);
        assert_eq!(log[..before.len()], before[..], "the log as it was");
        let refused = &log[usize::try_from(stuck - 1)?];
        assert_eq!(refused.event_type, "contract.invoice_raised");
        assert_eq!(refused.actor, "ledgerd-older-version");
        let mut stream = Vec::new();
        let mut reading = client
            .read_stream(pb::ReadStreamRequest {
                stream: last.stream.clone(),
                from_version: 1,
                limit: 0,
            })
            .await?
            .into_inner();
        while let Some(event) = reading.next().await {
            stream.push(event?);
        }
        assert_eq!(
            stream
                .iter()
                .rev()
                .take(2)
                .map(|e| e.sequence)
                .collect::<Vec<_>>(),
            [end, stuck]
        );
        let mut stored = 0u64;
        let mut pages = client
            .read_stored(pb::ReadStoredRequest {
                from_sequence: 1,
                limit: 0,
            })
            .await?
            .into_inner();
        while let Some(page) = pages.next().await {
            stored += page?.events.len() as u64;
        }
        assert_eq!(stored, end);

        // The audit service: the tree covers the whole log, and proves the stuck event in it.
        let mut audit =
            AuditServiceClient::new(Channel::from_shared(ledgerd.url())?.connect().await?);
        let tree = audit
            .get_tree_head(api::audit_pb::TreeHeadRequest {})
            .await?
            .into_inner();
        assert_eq!(
            (tree.tree_size, &tree.chain_hash),
            (end, &head.hash),
            "start {start}"
        );
        let proof = audit
            .get_inclusion_proof(api::audit_pb::InclusionProofRequest {
                sequence: stuck,
                tree_size: 0,
            })
            .await?
            .into_inner();
        assert_eq!(proof.chain_hash, refused.hash);

        // Commands, one by one or in bulk: refused, naming the event, why, and the way out.
        let command = client.raise_invoice(raise_invoice(&last, "NEW-1")).await;
        let status = command.expect_err("a stuck ledgerd takes no command");
        assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
        for expected in [
            format!("event {stuck} of its log"),
            format!("invoice {} already exists", last.invoice),
            "serves reads only".to_string(),
            "run a ledgerd whose rules apply that event".to_string(),
            "restore the store from a backup".to_string(),
        ] {
            assert!(
                status.message().contains(&expected),
                "{expected}: {}",
                status.message()
            );
        }
        let bulk = e2e::icsctl(
            &ledgerd.url(),
            &["load", "--quiet", &first.to_string_lossy()],
        )
        .expect_err("a bulk load is refused too");
        assert!(
            format!("{bulk:#}").contains(&format!("event {stuck} of its log")),
            "{bulk:#}"
        );
        assert_eq!(
            e2e::head(&mut client).await?.sequence,
            end,
            "nothing written"
        );

        // Health: the ledger service is not serving (reads are answered all the same).
        assert_eq!(
            health(&ledgerd.url(), "ics.ledger.v1.LedgerService").await?,
            ServingStatus::NotServing
        );
        assert_eq!(
            health(&ledgerd.url(), "ics.audit.v1.AuditService").await?,
            ServingStatus::Serving
        );

        // The relay publishes the whole log, the stuck event and what follows it included.
        e2e::wait_for_relay(&nats.url(), end, Duration::from_secs(30)).await?;

        // It stays up, and said so once for this start.
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(ledgerd.exited()?.is_none(), "{}", ledgerd.log_tail());
        let logs = ledgerd.logs()?;
        assert_eq!(
            logs.matches(STUCK_LINE).count(),
            start,
            "one line per start:\n{logs}"
        );
        ledgerd.terminate()?;
    }
    Ok(())
}
