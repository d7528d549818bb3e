//! Whoever holds ledgerd's NATS credentials cannot make the readers fold what ledgerd did not
//! record (issue "Hostile peers", finding 2). Real `ledgerd`, `positiond` and `oversightd`
//! binaries and a real nats-server with the shipped users and permissions: a chain-valid event
//! (its hash is what its content hashes to, and it links to the ledger's last event) published
//! as ledgerd at the next sequence — a contract invoiced £1m more — is held, found not to be
//! the ledger's, and parked; the ledger's own next events are folded, and neither reader stops.

use std::time::Duration;

use api::oversight_pb as opb;
use api::pb;
use e2e::{Ledgerd, Oversightd, Positiond};

const PERMISSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../deploy/nats/permissions.conf"
);
const CATCH_UP: Duration = Duration::from_secs(60);

/// `nats`'s URL as `user` of the shipped permissions (password `local-<user>`).
fn as_user(nats: &testkit::NatsServer, user: &str) -> String {
    format!("nats://{user}:local-{user}@127.0.0.1:{}", nats.port())
}

fn invoice(number: &str, pence: i64) -> pb::RaiseInvoiceRequest {
    pb::RaiseInvoiceRequest {
        meta: Some(pb::CommandMeta {
            request_id: uuid::Uuid::new_v4().to_string(),
            expected_version: None,
            correlation_id: String::new(),
        }),
        contract: "N1".to_string(),
        invoice: number.to_string(),
        period: Some(pb::Period {
            year: 2019,
            month: 3,
        }),
        amount_pence: pence,
        corrects: None,
    }
}

/// What oversightd has folded of kav, and how many messages it parked.
async fn oversight_kav(oversightd: &Oversightd) -> anyhow::Result<(opb::SystemSummary, u64)> {
    let reply = oversightd
        .client()
        .await?
        .list_systems(opb::ListSystemsRequest {})
        .await?
        .into_inner();
    let kav = reply
        .systems
        .into_iter()
        .find(|s| s.system == "kav")
        .ok_or_else(|| anyhow::anyhow!("oversightd has no kav"))?;
    Ok((kav, reply.parked))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_event_on_the_bus_is_never_folded() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions {
        include: Some(PERMISSIONS),
        ..Default::default()
    })?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(
        &work.path().join("ledgerd"),
        Some(&as_user(&nats, "ledgerd")),
    )?;
    let positiond = Positiond::start(
        &work.path().join("positiond"),
        &as_user(&nats, "positiond"),
        &ledgerd.url(),
        "positiond",
    )?;
    let oversightd = Oversightd::start(
        &work.path().join("oversightd"),
        &as_user(&nats, "oversightd"),
        &[("kav", ledgerd.url())],
    )?;
    let setup = work.path().join("setup.ics");
    let demo = std::fs::read_to_string(e2e::demo_scenario())?;
    std::fs::write(
        &setup,
        format!(
            "{demo}\nagree-contract --contract N1 --commissioner KCCG --provider KCHT \
             --year 2019/20 --block 1000 --description x\n"
        ),
    )?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &setup.to_string_lossy()],
    )?;
    let mut ledger = ledgerd.client().await?;
    ledger.raise_invoice(invoice("REAL-1", 100)).await?;
    let head = e2e::head(&mut ledger).await?;
    positiond.wait_for(head.sequence, CATCH_UP).await?;
    oversightd.wait_for("kav", head.sequence, CATCH_UP).await?;

    // The forgery: the ledger's last event (an invoice) as the next one, for £1m, linked to
    // the ledger's chain and hashed as its content says — published as ledgerd may publish.
    let log = e2e::read_all(&mut ledger).await?;
    let last = log
        .last()
        .cloned()
        .ok_or_else(|| anyhow::anyhow!("no log"))?;
    let mut forged = last.clone();
    forged.sequence = head.sequence + 1;
    forged.version += 1;
    forged.event_id = uuid::Uuid::new_v4().to_string();
    forged.prev_hash = head.hash.clone();
    if let Some(pb::Event {
        event: Some(pb::event::Event::InvoiceRaised(raised)),
    }) = forged.event.as_mut()
    {
        raised.invoice = "FORGED".to_string();
        raised.amount_pence = 100_000_000;
    } else {
        anyhow::bail!("the last event is not an invoice: {last:?}");
    }
    forged.hash = follow::incoming::Incoming::content_hash(&forged)?.to_vec();
    let js = bus::jetstream(bus::connect(&as_user(&nats, "ledgerd"), "forger").await?);
    let message = bus::OutboundEvent {
        subject: "ics.kav.contract.invoice_raised".to_string(),
        event_id: forged.event_id.clone(),
        sequence: forged.sequence,
        stream: forged.stream.clone(),
        version: forged.version,
        hash: forged.hash.as_slice().try_into()?,
        event_type: forged.event_type.clone(),
        payload: prost::Message::encode_to_vec(&forged).into(),
    };
    bus::Publisher::new(js).publish(&message).await?.await?;

    // Both readers refuse it: parked, not folded; they stay at the ledger's head.
    let started = std::time::Instant::now();
    loop {
        let status = positiond
            .client()
            .await?
            .get_status(api::position_pb::StatusRequest {})
            .await?
            .into_inner();
        let (_, parked) = oversight_kav(&oversightd).await?;
        if status.parked >= 1 && parked >= 1 {
            assert_eq!(
                status.sequence, head.sequence,
                "positiond folded the forgery"
            );
            break;
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP,
            "the forgery was not refused: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // The ledger's own next events fold, and nothing stops.
    ledger.raise_invoice(invoice("REAL-2", 200)).await?;
    ledger.raise_invoice(invoice("REAL-3", 300)).await?;
    let now = e2e::head(&mut ledger).await?;
    positiond.wait_for(now.sequence, CATCH_UP).await?;
    oversightd.wait_for("kav", now.sequence, CATCH_UP).await?;
    let status = positiond
        .client()
        .await?
        .get_status(api::position_pb::StatusRequest {})
        .await?
        .into_inner();
    assert_eq!((status.sequence, &status.hash), (now.sequence, &now.hash));
    assert_eq!(status.stuck_sequence, 0, "{status:?}");
    let (kav, _) = oversight_kav(&oversightd).await?;
    assert_eq!(kav.stuck_sequence, 0, "{kav:?}");
    let folded = kav
        .folded
        .ok_or_else(|| anyhow::anyhow!("nothing folded"))?;
    assert_eq!((folded.sequence, &folded.hash), (now.sequence, &now.hash));
    Ok(())
}
