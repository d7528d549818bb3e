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

const CATCH_UP: Duration = Duration::from_secs(60);

/// The environment that makes a service (`LEDGERD`, …) connect to `nats` as `user` of the
/// shipped permissions.
fn as_user(
    nats: &testkit::NatsServer,
    user: &str,
    service: &str,
) -> anyhow::Result<Vec<(String, String)>> {
    Ok(nats.user(user)?.env(service))
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
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions::shipped())?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start_with(
        &work.path().join("ledgerd"),
        Some(&nats.url()),
        &e2e::env_refs(&as_user(&nats, "ledgerd", "LEDGERD")?),
    )?;
    let positiond = Positiond::start_with(
        &work.path().join("positiond"),
        &nats.url(),
        &ledgerd.url(),
        "positiond",
        &e2e::env_refs(&as_user(&nats, "positiond", "POSITIOND")?),
    )?;
    let oversightd = Oversightd::start_with(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
        &e2e::env_refs(&as_user(&nats, "oversightd", "OVERSIGHTD")?),
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
    let ledgerd_user = e2e::nats_credentials(&nats, "ledgerd")?;
    let js = bus::jetstream(bus::connect_with(&nats.url(), "forger", &ledgerd_user).await?);
    let message = bus::OutboundEvent {
        subject: "ics.kav.contract.invoice_raised".to_string(),
        event_id: forged.event_id.clone(),
        sequence: forged.sequence,
        stream: forged.stream.clone(),
        version: forged.version,
        hash: forged.hash.as_slice().try_into()?,
        event_type: forged.event_type.clone(),
        payload: prost::Message::encode_to_vec(&forged).into(),
        signature: None,
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

/// Finding 3: a checkpoint published as ledgerd before the genuine one, under the message id
/// the genuine one would take, with a signature that is not the ledger's: oversightd does not
/// keep it, the genuine one still reaches the stream and the regulator, and an audit of the
/// untouched ledger against the regulator's copy passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forged_checkpoint_neither_stays_nor_displaces_the_genuine_one() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions::shipped())?;
    let work = tempfile::tempdir()?;
    let keys = work.path().join("keys");
    let (private, public) = e2e::ledger_checkpoint_keys(&keys)?;
    let mut ledgerd_env = as_user(&nats, "ledgerd", "LEDGERD")?;
    ledgerd_env.extend([
        ("LEDGERD_CHECKPOINT_KEY".to_string(), private),
        (
            "LEDGERD_CHECKPOINT_EVERY_EVENTS".to_string(),
            "100".to_string(),
        ),
        ("LEDGERD_CHECKPOINT_EVERY_S".to_string(), "1".to_string()),
    ]);
    let ledgerd = Ledgerd::start_with(
        &work.path().join("ledgerd"),
        Some(&nats.url()),
        &e2e::env_refs(&ledgerd_env),
    )?;
    let mut oversightd_env = as_user(&nats, "oversightd", "OVERSIGHTD")?;
    oversightd_env.push((
        "OVERSIGHTD_CHECKPOINT_KEYS".to_string(),
        format!("{{kav=\"{public}\"}}"),
    ));
    let oversightd = Oversightd::start_with(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
        &e2e::env_refs(&oversightd_env),
    )?;

    // Before the ledger reaches 100 events, a checkpoint at 100 that it did not sign, under
    // the message id a checkpoint at 100 took before ids named their content.
    let system = domain::SystemId::new("kav").map_err(|e| anyhow::anyhow!("{e}"))?;
    let forged = api::audit_pb::Checkpoint {
        system: "kav".to_string(),
        sequence: 100,
        chain_hash: vec![1; 32],
        merkle_root: vec![2; 32],
        signed_at_us: 1,
        signature: vec![3; 64],
    };
    let ledgerd_user = e2e::nats_credentials(&nats, "ledgerd")?;
    let js = bus::jetstream(bus::connect_with(&nats.url(), "forger", &ledgerd_user).await?);
    bus::ensure_stream(&js, &bus::StreamSettings::default()).await?;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(bus::HEADER_MSG_ID, "checkpoint.kav.100");
    headers.insert(bus::HEADER_SEQUENCE, "100");
    headers.insert(bus::HEADER_EVENT_TYPE, bus::CHECKPOINT_EVENT_TYPE);
    js.publish_with_headers(
        bus::checkpoint_subject(&system),
        headers,
        prost::Message::encode_to_vec(&forged).into(),
    )
    .await?
    .await?;

    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let head = e2e::head(&mut ledgerd.client().await?).await?;
    let started = std::time::Instant::now();
    let held = loop {
        let held = oversightd
            .client()
            .await?
            .list_checkpoints(opb::ListSystemCheckpointsRequest {
                system: "kav".to_string(),
                from_sequence: 0,
                limit: 0,
            })
            .await?
            .into_inner()
            .checkpoints;
        if held.last().is_some_and(|c| c.sequence == head.sequence) {
            break held;
        }
        anyhow::ensure!(started.elapsed() < CATCH_UP, "the regulator holds {held:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let at_100 = held
        .iter()
        .find(|c| c.sequence == 100)
        .ok_or_else(|| anyhow::anyhow!("no checkpoint at 100: {held:?}"))?;
    assert_ne!(at_100.signature, forged.signature, "the forgery was kept");
    let (_, parked) = oversight_kav(&oversightd).await?;
    assert!(parked >= 1, "the forgery was not parked");

    let (code, out) = e2e::icsctl_exit(&[
        "--server",
        &ledgerd.url(),
        "--oversight-server",
        &oversightd.url(),
        "audit",
        "verify",
        "--quiet",
        "--ledger-key",
        &public,
    ])?;
    assert_eq!(code, Some(0), "{out}");
    Ok(())
}

/// Finding 2, the relay's side: messages forged into the stream while ledgerd is down — one
/// claiming the ledger's next sequence, one far beyond its head — neither make ledgerd refuse
/// to start (as a stream genuinely ahead of the store does) nor make its relay skip the
/// ledger's own next event: the relay signs what it publishes, and these are not signed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_sequences_in_the_stream_neither_stop_ledgerd_nor_skip_an_event()
-> anyhow::Result<()> {
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions::shipped())?;
    let work = tempfile::tempdir()?;
    let keys = work.path().join("keys");
    let (private, _) = e2e::ledger_checkpoint_keys(&keys)?;
    let mut ledgerd_env = as_user(&nats, "ledgerd", "LEDGERD")?;
    ledgerd_env.push(("LEDGERD_CHECKPOINT_KEY".to_string(), private));
    let mut ledgerd = Ledgerd::start_with(
        &work.path().join("ledgerd"),
        Some(&nats.url()),
        &e2e::env_refs(&ledgerd_env),
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
    let head = e2e::head(&mut ledger).await?;
    let reader = e2e::nats_credentials(&nats, "reader")?;
    e2e::wait_for_relay_as(&nats.url(), &reader, head.sequence, CATCH_UP).await?;
    let last = e2e::read_all(&mut ledger)
        .await?
        .pop()
        .ok_or_else(|| anyhow::anyhow!("log"))?;
    let status = ledgerd.terminate()?;
    anyhow::ensure!(status.success(), "ledgerd stopped with {status}");

    let ledgerd_user = e2e::nats_credentials(&nats, "ledgerd")?;
    let js = bus::jetstream(bus::connect_with(&nats.url(), "forger", &ledgerd_user).await?);
    let publisher = bus::Publisher::new(js);
    for sequence in [head.sequence + 1, head.sequence + 50] {
        let mut forged = last.clone();
        forged.sequence = sequence;
        forged.event_id = uuid::Uuid::new_v4().to_string();
        let message = bus::OutboundEvent {
            subject: format!("ics.kav.{}", forged.event_type),
            event_id: forged.event_id.clone(),
            sequence,
            stream: forged.stream.clone(),
            version: forged.version + 1,
            hash: [7; 32],
            event_type: forged.event_type.clone(),
            payload: prost::Message::encode_to_vec(&forged).into(),
            signature: None,
        };
        publisher.publish(&message).await?.await?;
    }

    // ledgerd starts, and its own next event reaches the stream.
    ledgerd.restart()?;
    let mut ledger = ledgerd.client().await?;
    let next = ledger
        .raise_invoice(invoice("AFTER-FORGERY", 100))
        .await?
        .into_inner();
    assert_eq!(next.last_sequence, head.sequence + 1);
    let js = bus::jetstream(bus::connect_with(&nats.url(), "e2e-reader", &reader).await?);
    let started = std::time::Instant::now();
    loop {
        let mut found = false;
        bus::read_subject(
            &js,
            bus::STREAM_NAME,
            "ics.kav.>",
            bus::Read::HeadersOnly,
            |message| -> anyhow::Result<()> {
                if let Ok(headers) = bus::decode_headers(&message.headers) {
                    found |= headers.sequence == next.last_sequence
                        && headers.hash.as_slice() == next.hash.as_slice();
                }
                Ok(())
            },
        )
        .await?;
        if found {
            break;
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP,
            "the ledger's event {} never reached the stream:\n{}",
            next.last_sequence,
            ledgerd.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}
