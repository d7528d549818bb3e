//! NATS is untrusted (issue 5): every kind of message oversightd cannot take is parked with
//! its reason, counted in `ListSystems`, and acknowledged, and oversightd goes on following
//! every system. The ledgerd here does not relay: the test decides what reaches JetStream.

mod support;

use std::time::Duration;

use api::oversight_pb as opb;
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
