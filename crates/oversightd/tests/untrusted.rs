//! NATS is untrusted (issue 5): every kind of message oversightd cannot take is parked with
//! its reason, counted in `ListSystems`, and acknowledged, and oversightd goes on following
//! every system. The ledgerd here does not relay: the test decides what reaches JetStream.

mod support;

use std::time::Duration;

use api::oversight_pb as opb;
use api::pb;
use support::*;

fn setup() -> String {
    format!(
        "establish-system --system kav --name \"kav ICS\" --first-year 2019/20\n\
         admit-member --member KHFT --name \"KHFT NHS FT\" --kind acute-trust --in-control-total\n{}",
        metric_lines("KHFT", 2019, [4, 5, 6], "emergency-admissions", 90_000)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_oversightd_cannot_take_is_parked_and_it_goes_on() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    bus::ensure_stream(&js, &bus::StreamSettings::default()).await?;
    let kav = start_ledgerd("kav", None).await?;
    assert_eq!(kav.load("kav-setup", &setup()).await?, 5);
    let log = kav.read(1, 5).await?;
    publish(&js, "kav", &log).await?;
    let dir = tempfile::tempdir()?;
    let oversightd = start_oversightd(&nats.url(), &[&kav], dir.path(), "oversightd").await?;
    oversightd.wait_for(&[("kav", 5)]).await?;

    // 1. Bytes that are no event, on an event subject.
    js.publish("ics.kav.contract.invoice_raised", vec![0xff, 0x13].into())
        .await?
        .await?;
    // 2. A subject that names no system (system ids are lowercase).
    publish_as(&js, "ics.KAV.system.system_established", &log[0]).await?;
    // 3. A self-consistent event claiming a sequence the ledger does not have: the gap before
    //    it is filled from ledgerd, which ends at 5.
    let mut beyond = log[4].clone();
    beyond.sequence = 9;
    beyond.event_id = "00000000-0000-4000-8000-000000000009".to_string();
    beyond.hash = follow::incoming::Incoming::content_hash(&beyond)?.to_vec();
    publish(&js, "kav", std::slice::from_ref(&beyond)).await?;
    // 4. Bytes that are no checkpoint, on the checkpoint subject.
    js.publish("ics.kav.audit.checkpoint", vec![1, 2, 3].into())
        .await?
        .await?;

    let mut client = oversightd.client().await?;
    let mut listed = opb::ListSystemsReply::default();
    for _ in 0..400 {
        listed = client
            .list_systems(opb::ListSystemsRequest {})
            .await?
            .into_inner();
        if listed.parked >= 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(listed.parked, 4, "{listed:?}");
    let systems: Vec<&str> = listed.systems.iter().map(|s| s.system.as_str()).collect();
    assert_eq!(
        systems,
        ["kav"],
        "nothing folded into a system the subject made up"
    );
    assert_eq!(oversightd.folded().await?.get("kav"), Some(&5));

    // Then the ledger's next events, which fold.
    let next = kav
        .load(
            "kav-next",
            &metric_lines("KHFT", 2020, [4, 5, 6], "emergency-admissions", 99_000),
        )
        .await?;
    publish(&js, "kav", &kav.read(6, next).await?).await?;
    oversightd.wait_for(&[("kav", next)]).await?;
    oversightd.stop().await?;

    let parked = follow::fleet::FleetCheckpointStore::open(dir.path())?
        .parked()
        .all()?;
    let seen: Vec<(&str, &str)> = parked
        .iter()
        .map(|p| (p.subject.as_str(), p.reason.as_str()))
        .collect();
    assert_eq!(parked.len(), 4, "{seen:#?}");
    let expect = [
        (
            "ics.kav.contract.invoice_raised",
            "not a RecordedEvent protobuf",
        ),
        (
            "ics.KAV.system.system_established",
            "its subject names no system",
        ),
        (
            "ics.kav.system.metric_reported",
            "it claims sequence 9, but the ledger's log ends at 5",
        ),
        ("ics.kav.audit.checkpoint", "not a signed checkpoint"),
    ];
    for ((subject, reason), (want_subject, want_reason)) in seen.iter().zip(expect) {
        assert!(
            *subject == want_subject && reason.contains(want_reason),
            "{seen:#?}"
        );
    }
    assert!(
        parked
            .iter()
            .all(|p| p.stream_sequence > 0 && !p.payload.is_empty())
    );
    kav.stop().await?;
    Ok(())
}

/// Publishes `recorded` on `subject`, whatever it is.
async fn publish_as(
    js: &async_nats::jetstream::Context,
    subject: &str,
    recorded: &api::pb::RecordedEvent,
) -> anyhow::Result<()> {
    use prost::Message;
    js.publish(subject.to_string(), recorded.encode_to_vec().into())
        .await?
        .await?;
    Ok(())
}

/// A system oversightd follows from NATS alone (no ledgerd configured for it) is vouched for by
/// the ledger's signatures: a chain-valid event forged at its next sequence — unsigned, or
/// signed with another key — is held, never folded, and parked once the ledger's own event
/// there arrives signed; the ledger's events fold after it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_system_followed_from_nats_alone_folds_only_what_its_ledger_signed() -> anyhow::Result<()>
{
    let nats = testkit::NatsServer::start()?;
    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    bus::ensure_stream(&js, &bus::StreamSettings::default()).await?;
    let nor = start_ledgerd("nor", None).await?;
    let setup = format!(
        "establish-system --system nor --name \"nor ICS\" --first-year 2019/20\n\
         admit-member --member NHFT --name \"NHFT NHS FT\" --kind acute-trust --in-control-total\n{}",
        metric_lines("NHFT", 2019, [4, 5, 6], "emergency-admissions", 90_000)
    );
    assert_eq!(nor.load("nor-setup", &setup).await?, 5);
    publish(&js, "nor", &nor.read(1, 5).await?).await?;
    let dir = tempfile::tempdir()?;
    let oversightd = start_oversightd(&nats.url(), &[], dir.path(), "oversightd").await?;
    oversightd.wait_for(&[("nor", 5)]).await?;

    // Forgeries at 6, linked to the ledger's 5 and hashed as their content says: one with no
    // signature, one signed with a key that is not the ledger's.
    let last = nor.read(5, 5).await?.remove(0);
    let forge = |n: u8| -> anyhow::Result<pb::RecordedEvent> {
        let mut forged = last.clone();
        forged.sequence = 6;
        forged.version += 1;
        forged.event_id = format!("00000000-0000-4000-8000-00000000000{n}");
        forged.prev_hash = last.hash.clone();
        forged.hash = follow::incoming::Incoming::content_hash(&forged)?.to_vec();
        Ok(forged)
    };
    let unsigned = forge(1)?;
    let publisher = bus::Publisher::new(js.clone());
    let message = |recorded: &pb::RecordedEvent, signature| -> anyhow::Result<bus::OutboundEvent> {
        Ok(bus::OutboundEvent {
            subject: format!("ics.nor.{}", recorded.event_type),
            event_id: recorded.event_id.clone(),
            sequence: recorded.sequence,
            stream: recorded.stream.clone(),
            version: recorded.version,
            hash: recorded
                .hash
                .clone()
                .try_into()
                .map_err(|_| anyhow::anyhow!("hash"))?,
            event_type: recorded.event_type.clone(),
            payload: prost::Message::encode_to_vec(recorded).into(),
            signature,
        })
    };
    publisher.publish(&message(&unsigned, None)?).await?.await?;
    let wrongly_signed = forge(2)?;
    let impostor = ed25519_dalek::SigningKey::from_bytes(&[9; 32]);
    let nor_id = domain::SystemId::new("nor").map_err(|e| anyhow::anyhow!("{e}"))?;
    let signature = audit::relay::sign(
        &impostor,
        &nor_id,
        6,
        &wrongly_signed
            .hash
            .clone()
            .try_into()
            .map_err(|_| anyhow::anyhow!("hash"))?,
    );
    publisher
        .publish(&message(&wrongly_signed, Some(signature))?)
        .await?
        .await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        oversightd.folded().await?.get("nor"),
        Some(&5),
        "a forgery was folded"
    );

    // The ledger's own 6..=8, signed: folded; the forgeries parked.
    let next = nor
        .load(
            "nor-next",
            &metric_lines("NHFT", 2020, [4, 5, 6], "emergency-admissions", 99_000),
        )
        .await?;
    publish(&js, "nor", &nor.read(6, next).await?).await?;
    oversightd.wait_for(&[("nor", next)]).await?;
    let folded = oversightd
        .systems()
        .await?
        .into_iter()
        .find(|s| s.system == "nor")
        .and_then(|s| s.folded)
        .ok_or_else(|| anyhow::anyhow!("nor"))?;
    assert_eq!(folded.hash, nor.head().await?.hash, "nor's own chain");
    let mut client = oversightd.client().await?;
    let mut parked = 0;
    for _ in 0..200 {
        parked = client
            .list_systems(opb::ListSystemsRequest {})
            .await?
            .into_inner()
            .parked;
        if parked >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The one held is parked when the ledger's own 6 shows it is not the ledger's; the other,
    // offered again once the projection is past 6, is passed over as behind it. Neither folded.
    assert!(parked >= 1, "the held forgery was not parked");
    oversightd.stop().await?;
    nor.stop().await?;
    Ok(())
}
