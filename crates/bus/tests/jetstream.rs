//! The bus against a real nats-server (from testkit, one per test): stream definition,
//! publishing with headers, de-duplication, the resume point, and server restarts.

#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use async_nats::jetstream::{self, consumer::DeliverPolicy, consumer::pull::OrderedConfig};
use bus::{
    BusError, EventHeaders, OutboundCheckpoint, OutboundEvent, Publisher, StreamSettings,
    decode_headers, ensure_stream, last_published_sequence,
};
use bytes::Bytes;
use domain::{Family, SystemId};
use futures::StreamExt;
use testkit::{NatsOptions, NatsServer};

const WAIT: Duration = Duration::from_secs(20);

fn system(name: &str) -> SystemId {
    SystemId::new(name).unwrap()
}

fn event_id(system: &SystemId, sequence: u64) -> String {
    // Distinct per system and sequence, shaped like a UUID.
    let tag: u32 = system
        .as_str()
        .bytes()
        .fold(0, |acc, b| acc.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("{tag:08x}-0000-4000-8000-{sequence:012}")
}

fn event(system: &SystemId, family: Family, sequence: u64) -> OutboundEvent {
    let event_type = format!("Event{}", sequence % 7);
    OutboundEvent {
        subject: bus::subject(system, family, &event_type),
        event_id: event_id(system, sequence),
        sequence,
        stream: format!("{}/C{}", family.name(), sequence % 3),
        version: sequence / 3 + 1,
        hash: [u8::try_from(sequence % 256).unwrap(); 32],
        event_type,
        payload: Bytes::from(format!("payload {sequence}")),
        signature: None,
    }
}

async fn connect(server: &NatsServer) -> Result<jetstream::Context> {
    let client = bus::connect(&server.url(), "bus-test").await?;
    // retry_on_initial_connect returns before the handshake; wait for it so the first request
    // does not race the connection.
    tokio::time::timeout(WAIT, async {
        while client.connection_state() != async_nats::connection::State::Connected {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .context("client never connected")?;
    Ok(bus::jetstream(client))
}

/// Publishes `events` pipelined and awaits the acks in order.
async fn publish_all(publisher: &Publisher, events: &[OutboundEvent]) -> Result<Vec<bus::Ack>> {
    let mut pending = VecDeque::new();
    for event in events {
        pending.push_back(publisher.publish(event).await?);
    }
    let mut acks = Vec::new();
    while let Some(ack) = pending.pop_front() {
        acks.push(ack.await?);
    }
    Ok(acks)
}

/// Reads every message on `filter` from the start with an ordered consumer.
async fn read_back(
    js: &jetstream::Context,
    filter: &str,
    count: usize,
) -> Result<Vec<jetstream::Message>> {
    let stream = js.get_stream(bus::STREAM_NAME).await?;
    let consumer = stream
        .create_consumer(OrderedConfig {
            filter_subject: filter.to_string(),
            deliver_policy: DeliverPolicy::All,
            ..Default::default()
        })
        .await?;
    let mut messages = consumer.messages().await?;
    let mut read = Vec::with_capacity(count);
    while read.len() < count {
        let message = tokio::time::timeout(WAIT, messages.next())
            .await
            .with_context(|| format!("only {} of {count} messages on {filter}", read.len()))?
            .context("consumer ended")??;
        read.push(message);
    }
    Ok(read)
}

async fn stream_messages(js: &jetstream::Context) -> Result<u64> {
    Ok(js
        .get_stream(bus::STREAM_NAME)
        .await?
        .get_info()
        .await?
        .state
        .messages)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_stream_is_idempotent_and_refuses_other_subjects() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    let settings = StreamSettings::default();

    let first = ensure_stream(&js, &settings).await?;
    let config = &first.cached_info().config;
    assert_eq!(config.name, "ICS");
    assert_eq!(config.subjects, vec!["ics.>".to_string()]);
    assert_eq!(config.duplicate_window, Duration::from_secs(120));
    assert_eq!(config.storage, jetstream::stream::StorageType::File);
    assert_eq!(config.num_replicas, 1);
    let created = first.cached_info().created;

    let second = ensure_stream(&js, &settings).await?;
    assert_eq!(
        second.cached_info().created,
        created,
        "stream was recreated"
    );
    assert_eq!(second.cached_info().config, *config);

    let other = StreamSettings {
        subjects: vec!["other.>".to_string()],
        ..StreamSettings::default()
    };
    match ensure_stream(&js, &other).await {
        Err(BusError::StreamMismatch {
            existing, wanted, ..
        }) => {
            assert_eq!(existing, vec!["ics.>".to_string()]);
            assert_eq!(wanted, vec!["other.>".to_string()]);
        }
        result => panic!("expected StreamMismatch, got {result:?}"),
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishes_100_events_with_headers_and_reads_them_back_in_order() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");

    let events: Vec<_> = (1..=100u64)
        .map(|sequence| {
            event(
                &kav,
                Family::ALL[usize::try_from(sequence % 4).unwrap()],
                sequence,
            )
        })
        .collect();
    let acks = publish_all(&publisher, &events).await?;
    for (index, ack) in acks.iter().enumerate() {
        let expected = u64::try_from(index).unwrap() + 1;
        assert_eq!(ack.sequence, expected);
        assert_eq!(ack.stream_sequence, expected);
        assert!(!ack.duplicate);
    }

    let messages = read_back(&js, &bus::system_filter(&kav), 100).await?;
    for (message, event) in messages.iter().zip(&events) {
        assert_eq!(message.subject.as_str(), event.subject);
        assert_eq!(message.payload, event.payload);
        let headers = decode_headers(message.headers.as_ref().context("no headers")?)?;
        assert_eq!(
            headers,
            EventHeaders {
                event_id: event.event_id.clone(),
                sequence: event.sequence,
                stream: event.stream.clone(),
                version: event.version,
                hash: event.hash,
                event_type: event.event_type.clone(),
                signature: event.signature,
            }
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_same_msg_id_twice_is_stored_once() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    let once = event(&kav, Family::Contract, 1);

    let first = publisher.publish(&once).await?.await?;
    let again = publisher.publish(&once).await?.await?;
    assert!(!first.duplicate);
    assert!(again.duplicate);
    assert_eq!(again.stream_sequence, first.stream_sequence);
    assert_eq!(stream_messages(&js).await?, 1);
    Ok(())
}

fn events(system: &SystemId, sequences: std::ops::RangeInclusive<u64>) -> Vec<OutboundEvent> {
    sequences
        .map(|sequence| {
            event(
                system,
                Family::ALL[usize::try_from(sequence % 4).unwrap()],
                sequence,
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_is_stored_whole_in_order_with_its_headers() -> Result<()> {
    let server = NatsServer::start_with(NatsOptions {
        sync_always: true,
        ..NatsOptions::default()
    })?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");

    let first = events(&kav, 1..=3);
    let ack = publisher.publish_batch(&first).await?.await?;
    assert_eq!(
        ack,
        bus::BatchAck {
            first: 1,
            last: 3,
            stream_sequence: 3
        }
    );
    let second = events(&kav, 4..=250);
    let ack = publisher.publish_batch(&second).await?.await?;
    assert_eq!((ack.first, ack.last, ack.stream_sequence), (4, 250, 250));

    let messages = read_back(&js, &bus::system_filter(&kav), 250).await?;
    let mut batch_ids = Vec::new();
    for (message, event) in messages.iter().zip(first.iter().chain(&second)) {
        assert_eq!(message.subject.as_str(), event.subject);
        assert_eq!(message.payload, event.payload);
        let raw = message.headers.as_ref().context("no headers")?;
        let headers = decode_headers(raw)?;
        assert_eq!(headers.sequence, event.sequence);
        assert_eq!(headers.event_id, event.event_id);
        assert_eq!(headers.hash, event.hash);
        // JetStream keeps the batch headers: each message says which batch stored it.
        let header = |name| raw.get(name).map(|value| value.as_str().to_string());
        let (first_of_batch, size) = if event.sequence <= 3 {
            (1, 3)
        } else {
            (4, 247)
        };
        let place = event.sequence - first_of_batch + 1;
        assert_eq!(header(bus::HEADER_BATCH_SEQUENCE), Some(place.to_string()));
        let commit = header(bus::HEADER_BATCH_COMMIT);
        assert_eq!(
            commit.is_some(),
            place == size,
            "commit on {}",
            event.sequence
        );
        batch_ids.push(header(bus::HEADER_BATCH_ID).context("no batch id")?);
    }
    batch_ids.dedup();
    assert_eq!(batch_ids.len(), 2, "two batches: {batch_ids:?}");
    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &kav).await?,
        Some(250)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_holding_an_event_the_stream_holds_is_refused_whole() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    publisher
        .publish_batch(&events(&kav, 1..=10))
        .await?
        .await?;

    // Sent again whole (its acknowledgement lost), and overlapping the stored tail (a stale
    // cursor): both refused, nothing stored.
    for again in [1..=10, 8..=15, 10..=10] {
        match publisher
            .publish_batch(&events(&kav, again.clone()))
            .await?
            .await
        {
            Err(BusError::BatchHeld { first, last, .. }) => {
                assert_eq!((first, last), (*again.start(), *again.end()));
            }
            result => panic!("expected BatchHeld for {again:?}, got {result:?}"),
        }
        assert_eq!(stream_messages(&js).await?, 10);
    }
    // A single message sent again is a duplicate, as before batches.
    let single = publisher
        .publish(&event(&kav, Family::ALL[2], 2))
        .await?
        .await?;
    assert!(single.duplicate);
    // Resuming after what the stream holds goes on.
    let ack = publisher
        .publish_batch(&events(&kav, 11..=15))
        .await?
        .await?;
    assert_eq!((ack.first, ack.last, ack.stream_sequence), (11, 15, 15));
    assert_eq!(stream_messages(&js).await?, 15);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_takes_one_to_a_thousand_events() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    for count in [0, bus::BATCH_MESSAGES_MAX + 1] {
        let too_many = events(&kav, 1..=u64::try_from(count).unwrap());
        match publisher.publish_batch(&too_many[..count]).await {
            Err(BusError::BatchSize { count: refused }) => assert_eq!(refused, count),
            result => panic!("expected BatchSize for {count}, got {result:?}"),
        }
    }
    assert_eq!(stream_messages(&js).await?, 0);
    let most = events(&kav, 1..=u64::try_from(bus::BATCH_MESSAGES_MAX).unwrap());
    let ack = publisher.publish_batch(&most).await?.await?;
    assert_eq!(ack.last, 1000);
    assert_eq!(stream_messages(&js).await?, 1000);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_stream_leaves_a_stream_without_batches_as_it_is() -> Result<()> {
    // Even where the user could update it (no permissions here): ledgerd never changes the
    // stream, and the relay publishes one by one to a stream without atomic batches.
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    let settings = StreamSettings::default();
    let mut before = settings.to_config();
    before.allow_atomic_publish = false;
    let created = js.create_stream(before.clone()).await?;

    let stream = ensure_stream(&js, &settings).await?;
    assert_eq!(
        bus::differences(&stream.cached_info().config, &before),
        Vec::<String>::new()
    );
    assert_eq!(stream.cached_info().created, created.cached_info().created);
    assert!(!bus::allows_batches(&stream.cached_info().config));
    let kav = system("kav");
    let publisher = Publisher::new(js.clone());
    assert!(
        publisher
            .publish_batch(&events(&kav, 1..=2))
            .await?
            .await
            .is_err(),
        "a stream without atomic publishing took a batch"
    );
    publish_all(&publisher, &events(&kav, 1..=2)).await?;
    assert_eq!(stream_messages(&js).await?, 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_published_sequence_is_per_system_and_ignores_checkpoints() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let (kav, nel, empty) = (system("kav"), system("nel"), system("empty"));

    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &kav).await?,
        None
    );

    // kav: 1..=5 spread over every family, the highest in a family that is not the last
    // published; then a checkpoint claiming a higher sequence.
    let kav_events = [
        event(&kav, Family::Contract, 1),
        event(&kav, Family::Budget, 2),
        event(&kav, Family::System, 3),
        event(&kav, Family::Funding, 4),
        event(&kav, Family::Contract, 5),
        event(&kav, Family::Budget, 6),
        event(&kav, Family::System, 7),
    ];
    publish_all(&publisher, &kav_events).await?;
    publisher
        .publish_checkpoint(&OutboundCheckpoint {
            system: kav.clone(),
            sequence: 99,
            hash: [9; 32],
            payload: Bytes::from_static(b"signed"),
        })
        .await?
        .await?;
    // Another system, later and higher.
    publish_all(
        &publisher,
        &[
            event(&nel, Family::Contract, 1000),
            event(&nel, Family::Budget, 1001),
        ],
    )
    .await?;

    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &kav).await?,
        Some(7)
    );
    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &nel).await?,
        Some(1001)
    );
    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &empty).await?,
        None
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn last_published_sequence_fails_without_the_stream() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    let result = last_published_sequence(&js, "NOPE", &system("kav")).await;
    assert!(
        matches!(result, Err(BusError::LastMessage { .. })),
        "{result:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_reconnects_after_a_restart_and_the_data_survives() -> Result<()> {
    let mut server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    let events: Vec<_> = (1..=20u64)
        .map(|sequence| event(&kav, Family::Contract, sequence))
        .collect();

    publish_all(&publisher, &events[..10]).await?;
    tokio::task::block_in_place(|| server.restart())?;

    // Same client, same context: the first publishes may fail while it reconnects.
    let deadline = tokio::time::Instant::now() + WAIT;
    let mut next = 10;
    while next < 20 {
        let result: Result<bus::Ack, BusError> =
            async { publisher.publish(&events[next]).await?.await }.await;
        match result {
            Ok(ack) => {
                // A publish that timed out may still have been stored; then this is its duplicate.
                assert_eq!(ack.stream_sequence, u64::try_from(next).unwrap() + 1);
                next += 1;
            }
            Err(error) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no reconnect within {WAIT:?}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }

    assert_eq!(stream_messages(&js).await?, 20);
    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &kav).await?,
        Some(20)
    );
    let messages = read_back(&js, &bus::system_filter(&kav), 20).await?;
    let sequences: Vec<u64> = messages
        .iter()
        .map(|message| {
            decode_headers(message.headers.as_ref().unwrap())
                .unwrap()
                .sequence
        })
        .collect();
    assert_eq!(sequences, (1..=20).collect::<Vec<_>>());

    // The duplicate window survives the restart too.
    let again = publisher.publish(&events[3]).await?.await?;
    assert!(again.duplicate);
    assert_eq!(stream_messages(&js).await?, 20);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_sync_always_acknowledged_events_survive_sigkill() -> Result<()> {
    let mut server = NatsServer::start_with(NatsOptions {
        sync_always: true,
        ..NatsOptions::default()
    })?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    let events: Vec<_> = (1..=50u64)
        .map(|sequence| event(&kav, Family::Funding, sequence))
        .collect();
    publish_all(&publisher, &events).await?;

    tokio::task::block_in_place(|| -> Result<()> {
        server.kill9()?;
        server.restart()
    })?;

    let deadline = tokio::time::Instant::now() + WAIT;
    let found = loop {
        match last_published_sequence(&js, bus::STREAM_NAME, &kav).await {
            Ok(found) => break found,
            Err(error) => {
                ensure!(
                    tokio::time::Instant::now() < deadline,
                    "no reconnect within {WAIT:?}: {error}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert_eq!(found, Some(50));
    assert_eq!(stream_messages(&js).await?, 50);
    Ok(())
}

/// What the relay sees during an outage: a publish made while the server is down fails or is
/// acknowledged once the server is back; retrying it after an error never stores it twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_publish_during_an_outage_is_stored_at_most_once_when_retried() -> Result<()> {
    let mut server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let kav = system("kav");
    let events: Vec<_> = (1..=11u64)
        .map(|sequence| event(&kav, Family::Budget, sequence))
        .collect();
    publish_all(&publisher, &events[..10]).await?;

    tokio::task::block_in_place(|| server.stop())?;
    let restarted = tokio::task::spawn_blocking(move || -> Result<NatsServer> {
        std::thread::sleep(Duration::from_millis(500));
        server.restart()?;
        Ok(server)
    });
    // Sent while down: the client buffers it; the ack arrives after the restart or times out.
    let during = async { publisher.publish(&events[10]).await?.await }.await;
    let _server = restarted.await??;

    let deadline = tokio::time::Instant::now() + WAIT;
    let ack = match during {
        Ok(ack) => ack,
        Err(_) => loop {
            match async { publisher.publish(&events[10]).await?.await }.await {
                Ok(ack) => break ack,
                Err(error) => {
                    ensure!(
                        tokio::time::Instant::now() < deadline,
                        "no reconnect within {WAIT:?}: {error}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        },
    };
    assert_eq!(ack.stream_sequence, 11);
    assert_eq!(stream_messages(&js).await?, 11);
    assert_eq!(
        last_published_sequence(&js, bus::STREAM_NAME, &kav).await?,
        Some(11)
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_subject_reads_one_systems_messages_whole_and_in_order_across_batches() -> Result<()> {
    let server = NatsServer::start()?;
    let js = connect(&server).await?;
    ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let (kav, other) = (system("kav"), system("other"));
    // Two systems interleaved: more of kav's than one batched direct get returns.
    let mut events = Vec::new();
    for sequence in 1..=2_500u64 {
        events.push(event(&kav, Family::ALL[(sequence % 4) as usize], sequence));
        if sequence % 3 == 0 {
            events.push(event(&other, Family::Contract, sequence / 3));
        }
    }
    publish_all(&publisher, &events).await?;

    let mut read = Vec::new();
    let count = bus::read_subject(
        &js,
        bus::STREAM_NAME,
        &bus::system_filter(&kav),
        bus::Read::Whole,
        |message| -> Result<()> {
            let headers = decode_headers(&message.headers)?;
            ensure!(message.payload == format!("payload {}", headers.sequence).as_bytes());
            ensure!(
                message.subject.starts_with("ics.kav."),
                "{}",
                message.subject
            );
            read.push(headers.sequence);
            Ok(())
        },
    )
    .await?;
    ensure!(count == 2_500, "read {count}");
    ensure!(read == (1..=2_500).collect::<Vec<_>>(), "out of order");

    let nothing = bus::read_subject(
        &js,
        bus::STREAM_NAME,
        "ics.nobody.>",
        bus::Read::HeadersOnly,
        |_| -> Result<()> { anyhow::bail!("a message on a subject nothing was published to") },
    )
    .await?;
    ensure!(nothing == 0);
    Ok(())
}
