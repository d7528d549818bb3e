//! The shipped bus permissions (`deploy/nats/permissions.conf`) on a real nats-server, one
//! test per permission: each proves the allowed side (the service's own call works) and the
//! refused side (the server logs a permissions violation for exactly that subject and user,
//! and nothing changed). Every user connects with a fresh nkey, as the services do; nobody
//! connects without one.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use async_nats::jetstream::consumer::{AckPolicy, pull};
use async_nats::jetstream::{self, stream::Config};
use bus::{Credentials, OutboundEvent, Publisher, StreamSettings, ensure_stream};
use bytes::Bytes;
use domain::{Family, SystemId};
use futures::StreamExt;
use serde_json::{Value, json};
use testkit::{NatsOptions, NatsServer};

/// How long a refused request is given before it counts as unanswered: the refusal itself
/// is proven by the server's log, not by the wait.
const REFUSED_WAIT: Duration = Duration::from_millis(300);
/// How long the server has to log a violation, or a client to connect.
const SETTLE: Duration = Duration::from_secs(10);

fn server() -> Result<NatsServer> {
    NatsServer::start_with(NatsOptions::shipped())
}

/// A connection as one of the shipped users.
struct Who {
    name: &'static str,
    public_key: String,
    client: async_nats::Client,
    js: jetstream::Context,
}

impl Who {
    async fn connect(server: &NatsServer, name: &'static str) -> Result<Who> {
        let user = server.user(name)?;
        let credentials =
            Credentials::nkey_seed_file(&user.seed_file)?.with_inbox_prefix(&user.inbox_prefix)?;
        let client = bus::connect_with(&server.url(), name, &credentials).await?;
        wait_until("connected", || {
            client.connection_state() == async_nats::connection::State::Connected
        })
        .await
        .with_context(|| format!("{name} never connected:\n{}", server.log_tail()))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(Duration::from_secs(5))
            .build(client.clone());
        Ok(Who {
            name,
            public_key: user.public_key.clone(),
            client,
            js,
        })
    }

    /// A JetStream context that gives up on a publish acknowledgement after
    /// [`REFUSED_WAIT`]: for publishes the server refuses (and so never acknowledges).
    fn quick(&self) -> jetstream::Context {
        jetstream::ContextBuilder::new()
            .timeout(REFUSED_WAIT)
            .ack_timeout(REFUSED_WAIT)
            .build(self.client.clone())
    }

    /// A raw JetStream API request (`$JS.API.<api>`), answered within `wait`.
    async fn api(&self, api: &str, body: Value, wait: Duration) -> Result<Value> {
        let subject = format!("$JS.API.{api}");
        let reply = tokio::time::timeout(
            wait,
            self.client
                .request(subject.clone(), body.to_string().into()),
        )
        .await
        .with_context(|| format!("{subject}: no answer within {wait:?}"))??;
        let answer: Value = serde_json::from_slice(&reply.payload)?;
        if let Some(error) = answer.get("error") {
            bail!("{subject}: {error}");
        }
        Ok(answer)
    }

    /// The API request is refused by the server: no answer, and a publish violation logged
    /// for `$JS.API.<api>` and this user.
    async fn api_refused(&self, server: &NatsServer, api: &str, body: Value) -> Result<()> {
        let answer = self.api(api, body, REFUSED_WAIT).await;
        ensure!(
            answer.is_err(),
            "{} was answered {answer:?} on $JS.API.{api}",
            self.name
        );
        violation(server, "Publish", &format!("$JS.API.{api}"), self).await
    }
}

/// Waits (up to [`SETTLE`]) until `done`.
async fn wait_until(what: &str, mut done: impl FnMut() -> bool) -> Result<()> {
    let started = Instant::now();
    while !done() {
        ensure!(started.elapsed() < SETTLE, "not {what} within {SETTLE:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    Ok(())
}

/// The server logged a `kind` ("Publish" or "Subscription") violation of `subject` by `who`.
async fn violation(server: &NatsServer, kind: &str, subject: &str, who: &Who) -> Result<()> {
    let needle = format!("{kind} Violation");
    let subject = format!("\"{subject}\"");
    let started = Instant::now();
    loop {
        let log = std::fs::read_to_string(server.log_path())?;
        if log.lines().any(|line| {
            line.contains(&needle) && line.contains(&subject) && line.contains(&who.public_key)
        }) {
            return Ok(());
        }
        if started.elapsed() > SETTLE {
            bail!(
                "no {needle} of {subject} by {} ({}) in the server's log:\n{}",
                who.name,
                who.public_key,
                server.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
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

async fn publish(who: &Who, event: &OutboundEvent) -> Result<()> {
    Publisher::new(who.js.clone()).publish(event).await?.await?;
    Ok(())
}

/// The publish of `event` by `who` is refused: not acknowledged, and the violation logged.
async fn publish_refused(server: &NatsServer, who: &Who, event: &OutboundEvent) -> Result<()> {
    let acknowledged = async { Publisher::new(who.quick()).publish(event).await?.await }.await;
    ensure!(
        acknowledged.is_err(),
        "{} published {}: {acknowledged:?}",
        who.name,
        event.subject
    );
    violation(server, "Publish", &event.subject, who).await
}

/// The stream as JetStream reports it (asked as ledgerd).
async fn stream_info(ledgerd: &Who) -> Result<jetstream::stream::Info> {
    Ok(ledgerd
        .js
        .get_stream(bus::STREAM_NAME)
        .await?
        .info()
        .await?
        .clone())
}

/// A server with the stream created by ledgerd and kav's events 1..=`events` in it.
async fn stream_with(events: u64) -> Result<(NatsServer, Who)> {
    let server = server()?;
    let ledgerd = Who::connect(&server, "ledgerd").await?;
    ensure_stream(&ledgerd.js, &StreamSettings::default()).await?;
    for sequence in 1..=events {
        publish(&ledgerd, &event("kav", sequence)).await?;
    }
    Ok((server, ledgerd))
}

/// The consumer config positiond (`ics.kav.>`) or oversightd (`ics.*.>`) creates.
fn consumer(name: &str, filter: &str) -> pull::Config {
    pull::Config {
        durable_name: Some(name.to_string()),
        filter_subject: filter.to_string(),
        ack_policy: AckPolicy::Explicit,
        ..Default::default()
    }
}

/// What `follow` does: look the consumer up, create it if missing.
async fn create_own(
    who: &Who,
    name: &str,
    filter: &str,
) -> Result<jetstream::consumer::PullConsumer> {
    let stream = who.js.get_stream(bus::STREAM_NAME).await?;
    stream
        .get_or_create_consumer(name, consumer(name, filter))
        .await
        .with_context(|| format!("{} creating its consumer {name}", who.name))
}

/// [`create_own`], then one pull.
async fn own_consumer(who: &Who, name: &str, filter: &str) -> Result<pull::Batch> {
    let consumer = create_own(who, name, filter).await?;
    Ok(consumer
        .fetch()
        .max_messages(100)
        .expires(Duration::from_millis(500))
        .messages()
        .await?)
}

/// Pulls everything `name` delivers (acknowledging each if `ack`); the stream sequences.
async fn pull_all(who: &Who, name: &str, filter: &str, ack: bool) -> Result<Vec<u64>> {
    let mut batch = own_consumer(who, name, filter).await?;
    let mut pulled = Vec::new();
    while let Some(message) = batch.next().await {
        let message = message.map_err(|e| anyhow::anyhow!("{e}"))?;
        pulled.push(
            message
                .info()
                .map_err(|e| anyhow::anyhow!("{e}"))?
                .stream_sequence,
        );
        if ack {
            message
                .double_ack()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
    }
    Ok(pulled)
}

/// A consumer's state, asked as its owner.
async fn consumer_info(who: &Who, name: &str) -> Result<Value> {
    who.api(
        &format!("CONSUMER.INFO.ICS.{name}"),
        json!({}),
        Duration::from_secs(5),
    )
    .await
}

/// Whether the stream has a consumer `name` (asked as its owner `who`).
async fn has_consumer(who: &Who, name: &str) -> Result<bool> {
    match consumer_info(who, name).await {
        Ok(_) => Ok(true),
        Err(error) if error.to_string().contains("10014") => Ok(false),
        Err(error) => Err(error),
    }
}

fn create_request(name: &str, filter: &str) -> Value {
    json!({
        "stream_name": bus::STREAM_NAME,
        "config": { "durable_name": name, "filter_subject": filter, "ack_policy": "explicit" },
        "action": "create",
    })
}

// ---- connecting --------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_listed_nkeys_connect() -> Result<()> {
    let server = server()?;
    // Allowed: every shipped user with its own seed.
    for name in testkit::SHIPPED_USERS {
        Who::connect(&server, name).await?;
    }
    // Refused: nobody, an nkey the server does not list, and the old passwords.
    let stranger = Credentials::nkey_seed(
        &nkeys::KeyPair::new_user().seed().expect("seed"),
        "a stranger",
    )?;
    let port = server.port();
    for (who, url, credentials) in [
        ("anonymous", server.url(), Credentials::default()),
        ("an unlisted nkey", server.url(), stranger),
        (
            "a password",
            format!("nats://ledgerd:local-ledgerd@127.0.0.1:{port}"),
            Credentials::default(),
        ),
    ] {
        let client = bus::connect_with(&url, "intruder", &credentials).await?;
        // The client keeps retrying in the background; it never gets connected.
        tokio::time::sleep(Duration::from_millis(500)).await;
        ensure!(
            client.connection_state() != async_nats::connection::State::Connected,
            "{who} connected"
        );
    }
    ensure!(
        server.log_tail().contains("Authorization Violation")
            || server.log_tail().contains("authentication error"),
        "the server did not log the refusals:\n{}",
        server.log_tail()
    );
    Ok(())
}

#[test]
fn a_seed_file_must_hold_a_user_seed() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("seed.nk");
    let account = nkeys::KeyPair::new_account().seed().expect("seed");
    for (text, valid) in [
        (nkeys::KeyPair::new_user().seed().expect("seed"), true),
        (account, false),
        ("SUnot-a-seed".to_string(), false),
        (String::new(), false),
    ] {
        std::fs::write(&path, format!("{text}\n"))?;
        let credentials = Credentials::nkey_seed_file(&path);
        ensure!(credentials.is_ok() == valid, "{text:?}: {credentials:?}");
        if let Ok(credentials) = credentials {
            // Debug names the public key, never the seed.
            ensure!(!format!("{credentials:?}").contains(&text));
            ensure!(format!("{credentials:?}").contains(credentials.public_key().expect("key")));
        }
    }
    ensure!(Credentials::nkey_seed_file(&dir.path().join("missing")).is_err());
    for prefix in ["", "_INBOX.>", "a..b", "has space"] {
        ensure!(
            Credentials::default().with_inbox_prefix(prefix).is_err(),
            "{prefix:?}"
        );
    }
    ensure!(
        Credentials::default()
            .with_inbox_prefix("_INBOX_reader")?
            .inbox_prefix()
            == "_INBOX_reader"
    );
    Ok(())
}

// ---- publishing into ics.> ---------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_publishes_its_systems_events_and_no_others() -> Result<()> {
    let (server, ledgerd) = stream_with(1).await?;
    // Allowed: one by one and as an atomic batch, as the relay does.
    let batch = [event("kav", 2), event("kav", 3)];
    Publisher::new(ledgerd.js.clone())
        .publish_batch(&batch)
        .await?
        .await
        .context("ledgerd publishes a batch of kav's")?;
    ensure!(stream_info(&ledgerd).await?.state.messages == 3);

    // Refused: another system's subjects.
    publish_refused(&server, &ledgerd, &event("nel", 4)).await?;
    ensure!(stream_info(&ledgerd).await?.state.messages == 3);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_but_ledgerd_publishes_into_the_stream() -> Result<()> {
    let (server, ledgerd) = stream_with(1).await?;
    for name in ["positiond", "oversightd", "reader"] {
        let them = Who::connect(&server, name).await?;
        // A forged event, acknowledgement awaited: refused.
        publish_refused(&server, &them, &event("kav", 2)).await?;
    }
    ensure!(
        stream_info(&ledgerd).await?.state.messages == 1,
        "something forged reached the stream"
    );
    Ok(())
}

// ---- the stream: created by ledgerd, changed by nobody -----------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_creates_the_stream_if_missing_and_nobody_else_does() -> Result<()> {
    let server = server()?;
    let config = serde_json::to_value(StreamSettings::default().to_config())?;
    for name in ["positiond", "oversightd", "reader"] {
        let them = Who::connect(&server, name).await?;
        them.api_refused(&server, "STREAM.CREATE.ICS", config.clone())
            .await?;
    }
    let ledgerd = Who::connect(&server, "ledgerd").await?;
    ensure!(!bus::stream_exists(&ledgerd.js, bus::STREAM_NAME).await?);
    // Allowed: ensure_stream creates it (and finds it the second time).
    let stream = ensure_stream(&ledgerd.js, &StreamSettings::default()).await?;
    let made = &stream.cached_info().config;
    ensure!(
        bus::differences(made, &StreamSettings::default().to_config()).is_empty()
            && made.subjects == ["ics.>"],
        "{made:?}"
    );
    ensure_stream(&ledgerd.js, &StreamSettings::default()).await?;
    // Creating it again with another configuration is no way round the missing update.
    let mut shrunk = StreamSettings::default().to_config();
    shrunk.max_messages = 5;
    ensure!(ledgerd.js.create_stream(shrunk).await.is_err());
    ensure!(stream_info(&ledgerd).await?.config.max_messages == -1);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nobody_updates_purges_or_deletes_the_stream() -> Result<()> {
    let (server, ledgerd) = stream_with(8).await?;
    let mut shrunk = StreamSettings::default().to_config();
    shrunk.max_messages = 5;
    let shrunk = serde_json::to_value(shrunk)?;
    for name in testkit::SHIPPED_USERS {
        let who = Who::connect(&server, name).await?;
        // The probe: STREAM.UPDATE max_msgs=5.
        who.api_refused(&server, "STREAM.UPDATE.ICS", shrunk.clone())
            .await?;
        who.api_refused(&server, "STREAM.PURGE.ICS", json!({}))
            .await?;
        who.api_refused(
            &server,
            "STREAM.PURGE.ICS",
            json!({ "filter": "ics.kav.>" }),
        )
        .await?;
        who.api_refused(&server, "STREAM.MSG.DELETE.ICS", json!({ "seq": 1 }))
            .await?;
        who.api_refused(&server, "STREAM.DELETE.ICS", json!({}))
            .await?;
    }
    let info = stream_info(&ledgerd).await?;
    ensure!(info.config.max_messages == -1, "{:?}", info.config);
    ensure!(info.state.messages == 8 && info.state.first_sequence == 1);
    // Allowed: what ledgerd does with it goes on as before.
    publish(&ledgerd, &event("kav", 9)).await?;
    ensure!(stream_info(&ledgerd).await?.state.messages == 9);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensure_stream_uses_a_stream_it_may_not_change_as_it_is() -> Result<()> {
    let server = server()?;
    let ledgerd = Who::connect(&server, "ledgerd").await?;
    // A stream made before the relay used batches, with a shorter duplicate window.
    let old = Config {
        allow_atomic_publish: false,
        duplicate_window: Duration::from_secs(5),
        ..StreamSettings::default().to_config()
    };
    let created = ledgerd.js.create_stream(old.clone()).await?;
    let stream = ensure_stream(&ledgerd.js, &StreamSettings::default()).await?;
    let kept = &stream.cached_info().config;
    ensure!(
        bus::differences(kept, &old).is_empty()
            && !kept.allow_atomic_publish
            && kept.duplicate_window == Duration::from_secs(5),
        "the stream was changed: {kept:?}"
    );
    ensure!(stream.cached_info().created == created.cached_info().created);
    ensure!(!bus::allows_batches(&stream.cached_info().config));
    let differences = bus::differences(
        &stream.cached_info().config,
        &StreamSettings::default().to_config(),
    );
    ensure!(
        differences.len() == 2
            && differences[0].starts_with("duplicate_window")
            && differences[1].starts_with("allow_atomic_publish"),
        "{differences:?}"
    );
    // One by one is what such a stream takes.
    publish(&ledgerd, &event("kav", 1)).await?;
    ensure!(
        Publisher::new(ledgerd.quick())
            .publish_batch(&[event("kav", 2), event("kav", 3)])
            .await?
            .await
            .is_err()
    );
    // Other subjects than configured: refused, not "repaired".
    let elsewhere = StreamSettings {
        subjects: vec!["other.>".to_string()],
        ..StreamSettings::default()
    };
    ensure!(matches!(
        ensure_stream(&ledgerd.js, &elsewhere).await,
        Err(bus::BusError::StreamMismatch { .. })
    ));
    Ok(())
}

// ---- reading the stream ------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_and_reader_read_messages_the_consumers_do_not() -> Result<()> {
    let (server, _ledgerd) = stream_with(3).await?;
    let system = SystemId::new("kav").expect("id");
    for name in ["ledgerd", "reader"] {
        let who = Who::connect(&server, name).await?;
        // Stream info and message get (to the leader), as the relay and bus-status look.
        let last = bus::last_published_sequence(&who.js, bus::STREAM_NAME, &system).await?;
        ensure!(last == Some(3), "{name} saw {last:?}");
        ensure!(bus::system_message_count(&who.js, bus::STREAM_NAME, &system).await? == 3);
        // Batched direct get with no subject suffix, as the relay's scan and `icsctl store
        // restore` read the log back.
        let mut read = Vec::new();
        let count = bus::read_subject(
            &who.js,
            bus::STREAM_NAME,
            "ics.kav.>",
            bus::Read::Whole,
            |message| -> Result<()> {
                read.push(bus::decode_headers(&message.headers)?.sequence);
                Ok(())
            },
        )
        .await?;
        ensure!(count == 3 && read == [1, 2, 3], "{name} read {read:?}");
        // Direct get of the last message on a subject.
        let stream = who.js.get_stream_no_info(bus::STREAM_NAME).await?;
        let last = stream
            .direct_get_last_for_subject("ics.kav.contract.invoice_raised")
            .await?;
        ensure!(last.sequence == 3);
    }
    for name in ["positiond", "oversightd"] {
        let them = Who::connect(&server, name).await?;
        them.api_refused(&server, "DIRECT.GET.ICS", json!({ "seq": 1 }))
            .await?;
        them.api_refused(
            &server,
            "DIRECT.GET.ICS.ics.kav.contract.invoice_raised",
            json!({}),
        )
        .await?;
        them.api_refused(&server, "STREAM.MSG.GET.ICS", json!({ "seq": 1 }))
            .await?;
        // Stream info they may read: follow looks the stream up before its consumer.
        ensure!(stream_info(&them).await?.state.messages == 3);
    }
    Ok(())
}

// ---- consumers: each user its own --------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positiond_creates_only_its_own_consumers_on_its_systems_subjects() -> Result<()> {
    let (server, _ledgerd) = stream_with(1).await?;
    let positiond = Who::connect(&server, "positiond").await?;
    // Allowed: its consumer and its replicas', on ics.kav.>.
    for name in ["positiond", "positiond-2", "positiond-3"] {
        create_own(&positiond, name, "ics.kav.>").await?;
        ensure!(has_consumer(&positiond, name).await?);
    }
    // Refused: oversightd's, an unlisted name, a wider filter, and the subjects without one.
    for (name, filter) in [
        ("oversightd", "ics.*.>"),
        ("oversightd", "ics.kav.>"),
        ("positiond-4", "ics.kav.>"),
        ("positiond-x", "ics.kav.>"),
        ("positiond-9", "ics.>"),
    ] {
        positiond
            .api_refused(
                &server,
                &format!("CONSUMER.CREATE.ICS.{name}.{filter}"),
                create_request(name, filter),
            )
            .await?;
    }
    for api in [
        "CONSUMER.CREATE.ICS.positiond",
        "CONSUMER.CREATE.ICS",
        "CONSUMER.DURABLE.CREATE.ICS.positiond",
    ] {
        positiond
            .api_refused(&server, api, create_request("positiond", "ics.>"))
            .await?;
    }
    positiond
        .api_refused(&server, "CONSUMER.INFO.ICS.oversightd", json!({}))
        .await?;
    // The one subject it may use with a wider filter than its own: JetStream refuses the
    // mismatch between subject and configuration.
    let wider = positiond
        .api(
            "CONSUMER.CREATE.ICS.positiond-2.ics.kav.>",
            create_request("positiond-2", "ics.>"),
            Duration::from_secs(5),
        )
        .await;
    ensure!(wider.is_err(), "positiond widened its filter: {wider:?}");
    let info = consumer_info(&positiond, "positiond-2").await?;
    ensure!(info["config"]["filter_subject"] == "ics.kav.>", "{info}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversightd_creates_only_its_own_consumers() -> Result<()> {
    let (server, _ledgerd) = stream_with(1).await?;
    let oversightd = Who::connect(&server, "oversightd").await?;
    for name in ["oversightd", "oversightd-2", "oversightd-3"] {
        create_own(&oversightd, name, "ics.*.>").await?;
        ensure!(has_consumer(&oversightd, name).await?);
    }
    for (name, filter) in [
        ("positiond", "ics.kav.>"),
        ("oversightd-4", "ics.*.>"),
        ("stranger", "ics.>"),
    ] {
        oversightd
            .api_refused(
                &server,
                &format!("CONSUMER.CREATE.ICS.{name}.{filter}"),
                create_request(name, filter),
            )
            .await?;
    }
    for api in [
        "CONSUMER.CREATE.ICS.oversightd",
        "CONSUMER.DURABLE.CREATE.ICS.oversightd",
    ] {
        oversightd
            .api_refused(&server, api, create_request("oversightd", "ics.>"))
            .await?;
    }
    oversightd
        .api_refused(&server, "CONSUMER.INFO.ICS.positiond", json!({}))
        .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_and_reader_create_no_consumers_and_nobody_deletes_one() -> Result<()> {
    let (server, ledgerd) = stream_with(1).await?;
    let reader = Who::connect(&server, "reader").await?;
    let positiond = Who::connect(&server, "positiond").await?;
    let oversightd = Who::connect(&server, "oversightd").await?;
    create_own(&positiond, "positiond", "ics.kav.>").await?;
    create_own(&oversightd, "oversightd", "ics.*.>").await?;
    for who in [&ledgerd, &reader] {
        who.api_refused(
            &server,
            "CONSUMER.CREATE.ICS.positiond.ics.kav.>",
            create_request("positiond", "ics.kav.>"),
        )
        .await?;
        who.api_refused(
            &server,
            "CONSUMER.CREATE.ICS.reader.ics.>",
            create_request("reader", "ics.>"),
        )
        .await?;
        who.api_refused(&server, "CONSUMER.CREATE.ICS", create_request("x", "ics.>"))
            .await?;
        who.api_refused(
            &server,
            "CONSUMER.MSG.NEXT.ICS.positiond",
            json!({ "batch": 1 }),
        )
        .await?;
    }
    for who in [&ledgerd, &reader, &positiond, &oversightd] {
        for name in ["positiond", "oversightd"] {
            who.api_refused(&server, &format!("CONSUMER.DELETE.ICS.{name}"), json!({}))
                .await?;
        }
    }
    ensure!(has_consumer(&positiond, "positiond").await?);
    ensure!(has_consumer(&oversightd, "oversightd").await?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_consumer_user_pulls_only_from_its_own_consumer() -> Result<()> {
    let (server, _ledgerd) = stream_with(3).await?;
    let positiond = Who::connect(&server, "positiond").await?;
    let oversightd = Who::connect(&server, "oversightd").await?;
    // Created by their owners, nothing pulled yet.
    create_own(&positiond, "positiond-2", "ics.kav.>").await?;
    create_own(&oversightd, "oversightd-2", "ics.*.>").await?;
    // Refused: a pull from the other's consumer.
    positiond
        .api_refused(
            &server,
            "CONSUMER.MSG.NEXT.ICS.oversightd-2",
            json!({ "batch": 3, "expires": 200_000_000 }),
        )
        .await?;
    oversightd
        .api_refused(
            &server,
            "CONSUMER.MSG.NEXT.ICS.positiond-2",
            json!({ "batch": 3, "expires": 200_000_000 }),
        )
        .await?;
    for (who, name) in [(&positiond, "positiond-2"), (&oversightd, "oversightd-2")] {
        let info = consumer_info(who, name).await?;
        ensure!(
            info["delivered"]["consumer_seq"] == 0 && info["num_waiting"] == 0,
            "{name} delivered to someone: {info}"
        );
    }
    // Allowed: each pulls its own, all three.
    ensure!(pull_all(&positiond, "positiond-2", "ics.kav.>", true).await? == [1, 2, 3]);
    ensure!(pull_all(&oversightd, "oversightd-2", "ics.*.>", true).await? == [1, 2, 3]);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_consumer_user_acknowledges_only_its_own_messages() -> Result<()> {
    let (server, _ledgerd) = stream_with(2).await?;
    let positiond = Who::connect(&server, "positiond").await?;
    let oversightd = Who::connect(&server, "oversightd").await?;
    for (owner, other, name, filter) in [
        (&oversightd, &positiond, "oversightd", "ics.*.>"),
        (&positiond, &oversightd, "positiond", "ics.kav.>"),
    ] {
        // The owner pulls both messages and holds them unacknowledged.
        let mut batch = own_consumer(owner, name, filter).await?;
        let mut held = Vec::new();
        while let Some(message) = batch.next().await {
            held.push(message.map_err(|e| anyhow::anyhow!("{e}"))?);
        }
        ensure!(held.len() == 2);
        // Refused: the other user acknowledges the first on the owner's ack subject.
        let ack_subject = held[0]
            .reply
            .clone()
            .context("a pulled message without a reply subject")?;
        ensure!(ack_subject.starts_with(&format!("$JS.ACK.ICS.{name}.")));
        other
            .client
            .publish(ack_subject.clone(), "+ACK".into())
            .await?;
        other.client.flush().await?;
        violation(&server, "Publish", &ack_subject, other).await?;
        let info = consumer_info(owner, name).await?;
        ensure!(
            info["num_ack_pending"] == 2,
            "{}'s ack counted: {info}",
            other.name
        );
        // Allowed: the owner acknowledges both.
        for message in &held {
            message
                .double_ack()
                .await
                .map_err(|e| anyhow::anyhow!("{e}"))?;
        }
        let info = consumer_info(owner, name).await?;
        ensure!(
            info["num_ack_pending"] == 0 && info["ack_floor"]["stream_seq"] == 2,
            "{info}"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replies_reach_only_their_own_user() -> Result<()> {
    let (server, ledgerd) = stream_with(3).await?;
    let positiond = Who::connect(&server, "positiond").await?;
    let oversightd = Who::connect(&server, "oversightd").await?;
    let reader = Who::connect(&server, "reader").await?;
    // Refused: every subscription outside the user's own inbox prefix — another user's
    // inbox, NATS's default one, and the events themselves.
    let mut snoops = Vec::new();
    for (who, subject) in [
        (&positiond, "_INBOX_oversightd.>"),
        (&positiond, "_INBOX.>"),
        (&positiond, "ics.>"),
        (&reader, "_INBOX_oversightd.>"),
        (&reader, "_INBOX_ledgerd.>"),
        (&ledgerd, "_INBOX_reader.>"),
        (&oversightd, "_INBOX_positiond.>"),
    ] {
        snoops.push((who, subject, who.client.subscribe(subject).await?));
        violation(&server, "Subscription", subject, who).await?;
    }
    // Allowed: what the owners ask for comes back to them.
    ensure!(pull_all(&oversightd, "oversightd", "ics.*.>", true).await? == [1, 2, 3]);
    ensure!(pull_all(&positiond, "positiond", "ics.kav.>", true).await? == [1, 2, 3]);
    let mut read = 0;
    bus::read_subject(
        &reader.js,
        bus::STREAM_NAME,
        "ics.kav.>",
        bus::Read::Whole,
        |_| -> Result<()> {
            read += 1;
            Ok(())
        },
    )
    .await?;
    ensure!(read == 3);
    publish(&ledgerd, &event("kav", 4)).await?;
    // …and reached no snoop.
    for (who, subject, mut subscription) in snoops {
        let seen = tokio::time::timeout(Duration::from_millis(200), subscription.next()).await;
        ensure!(
            !matches!(seen, Ok(Some(_))),
            "{} read {subject}: {seen:?}",
            who.name
        );
    }
    Ok(())
}
