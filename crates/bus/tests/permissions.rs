//! The shipped bus permissions (`deploy/nats/permissions.conf`) on a real nats-server: the
//! ledger's user publishes its system's events; consumers and readers cannot publish into
//! `ics.>` — the server refuses the message and the stream does not change — but can do
//! their own jobs; nobody without credentials gets in.

use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use bus::{OutboundEvent, Publisher, StreamSettings, ensure_stream};
use bytes::Bytes;
use domain::{Family, SystemId};
use futures::StreamExt;
use testkit::{NatsOptions, NatsServer};

const PERMISSIONS: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../deploy/nats/permissions.conf"
);

fn server() -> Result<NatsServer> {
    NatsServer::start_with(NatsOptions {
        include: Some(PERMISSIONS),
        ..NatsOptions::default()
    })
}

fn url(server: &NatsServer, user: &str, password: &str) -> String {
    format!("nats://{user}:{password}@127.0.0.1:{}", server.port())
}

/// A JetStream context that gives up on an acknowledgement after a second: a refused
/// publish is never acknowledged.
async fn js(url: &str) -> Result<async_nats::jetstream::Context> {
    let client = bus::connect(url, "permissions-test").await?;
    Ok(async_nats::jetstream::ContextBuilder::new()
        .timeout(Duration::from_secs(1))
        .build(client))
}

fn event(system: &str, sequence: u64) -> OutboundEvent {
    let system = SystemId::new(system).expect("id");
    OutboundEvent {
        subject: bus::subject(&system, Family::Contract, "invoice_raised"),
        event_id: format!("00000000-0000-4000-8000-{sequence:012}"),
        sequence,
        stream: "contract/C1".to_string(),
        version: sequence,
        hash: [7; 32],
        event_type: "contract.invoice_raised".to_string(),
        payload: Bytes::from_static(b"payload"),
        signature: None,
    }
}

async fn messages(js: &async_nats::jetstream::Context) -> Result<u64> {
    let mut stream = js.get_stream(bus::STREAM_NAME).await?;
    Ok(stream.info().await?.state.messages)
}

async fn publish(js: &async_nats::jetstream::Context, event: &OutboundEvent) -> Result<()> {
    Publisher::new(js.clone()).publish(event).await?.await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_ledger_publishes_its_systems_events() -> Result<()> {
    let server = server()?;
    let ledgerd = js(&url(&server, "ledgerd", "local-ledgerd")).await?;
    ensure_stream(&ledgerd, &StreamSettings::default()).await?;
    publish(&ledgerd, &event("kav", 1))
        .await
        .context("ledgerd publishes kav")?;
    ensure!(messages(&ledgerd).await? == 1);
    // And as an atomic batch, as the relay catches up a backlog.
    let batch = [event("kav", 2), event("kav", 3)];
    Publisher::new(ledgerd.clone())
        .publish_batch(&batch)
        .await?
        .await
        .context("ledgerd publishes a batch of kav's")?;
    ensure!(messages(&ledgerd).await? == 3);

    // Another system's subjects are not ledgerd's to publish.
    ensure!(publish(&ledgerd, &event("other", 4)).await.is_err());
    let theirs = [event("other", 4), event("other", 5)];
    ensure!(
        Publisher::new(ledgerd.clone())
            .publish_batch(&theirs)
            .await?
            .await
            .is_err()
    );

    for (user, password) in [
        ("positiond", "local-positiond"),
        ("oversightd", "local-oversightd"),
        ("reader", "local-reader"),
    ] {
        let them = js(&url(&server, user, password)).await?;
        // A forged event: refused by the server.
        ensure!(
            publish(&them, &event("kav", 4)).await.is_err(),
            "{user} must not publish into ics.>"
        );
        // A core publish, no acknowledgement asked: the server drops it all the same.
        let client = bus::connect(&url(&server, user, password), "core").await?;
        client
            .publish("ics.kav.contract.invoice_raised", "forged".into())
            .await?;
        client.flush().await?;
        // And they may not delete the stream.
        ensure!(
            them.delete_stream(bus::STREAM_NAME).await.is_err(),
            "{user} deleted the stream"
        );
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    ensure!(
        messages(&ledgerd).await? == 3,
        "nothing forged reached the stream"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_and_readers_do_their_own_jobs() -> Result<()> {
    let server = server()?;
    let ledgerd = js(&url(&server, "ledgerd", "local-ledgerd")).await?;
    ensure_stream(&ledgerd, &StreamSettings::default()).await?;
    for sequence in 1..=3 {
        publish(&ledgerd, &event("kav", sequence)).await?;
    }

    // positiond: a durable consumer, a pull, acknowledgements.
    let positiond = js(&url(&server, "positiond", "local-positiond")).await?;
    let stream = positiond.get_stream(bus::STREAM_NAME).await?;
    let consumer = stream
        .get_or_create_consumer(
            "positiond",
            pull::Config {
                durable_name: Some("positiond".to_string()),
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await?;
    let mut pulled = consumer
        .fetch()
        .max_messages(3)
        .expires(Duration::from_secs(2))
        .messages()
        .await?;
    let mut count = 0;
    while let Some(message) = pulled.next().await {
        message
            .map_err(|e| anyhow::anyhow!("{e}"))?
            .double_ack()
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        count += 1;
    }
    ensure!(count == 3, "positiond pulled {count} of 3");

    // reader: the head as icsctl bus-status reads it.
    let reader = js(&url(&server, "reader", "local-reader")).await?;
    let system = SystemId::new("kav").expect("id");
    let last = bus::last_published_sequence(&reader, bus::STREAM_NAME, &system).await?;
    ensure!(last == Some(3), "reader saw {last:?}");
    ensure!(bus::system_message_count(&reader, bus::STREAM_NAME, &system).await? == 3);
    // reader: every message, as `icsctl store restore` reads the log back.
    let mut read = Vec::new();
    let count = bus::read_subject(
        &reader,
        bus::STREAM_NAME,
        "ics.kav.>",
        bus::Read::Whole,
        |message| -> Result<()> {
            read.push(bus::decode_headers(&message.headers)?.sequence);
            Ok(())
        },
    )
    .await?;
    ensure!(count == 3 && read == [1, 2, 3], "reader read {read:?}");
    // ledgerd: every header, as its relay scans a stream it cannot otherwise judge.
    let mut scanned = Vec::new();
    bus::scan_system(
        &ledgerd,
        bus::STREAM_NAME,
        &system,
        |headers| -> Result<()> {
            scanned.push(headers.sequence);
            Ok(())
        },
    )
    .await?;
    ensure!(scanned == [1, 2, 3], "ledgerd scanned {scanned:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_gets_in_without_credentials() -> Result<()> {
    let server = server()?;
    for url in [
        server.url(),
        url(&server, "ledgerd", "wrong-password"),
        url(&server, "stranger", "local-ledgerd"),
    ] {
        let client = bus::connect(&url, "intruder").await?;
        // The client keeps retrying in the background; it never gets connected.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ensure!(
            client.connection_state() != async_nats::connection::State::Connected,
            "{} connected",
            bus::redacted(&url)
        );
    }
    Ok(())
}

#[test]
fn passwords_are_redacted_from_urls() {
    assert_eq!(
        bus::redacted("nats://ledgerd:s3cret@127.0.0.1:4222"),
        "nats://ledgerd:***@127.0.0.1:4222"
    );
    assert_eq!(
        bus::redacted("nats://127.0.0.1:4222"),
        "nats://127.0.0.1:4222"
    );
}
