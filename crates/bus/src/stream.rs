//! The JetStream stream definition, and reading back how far the relay got.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, LastRawMessageErrorKind, RetentionPolicy, StorageType},
};
use domain::{Family, SystemId};

use crate::error::BusError;
use futures::StreamExt;

use crate::headers::{EventHeaders, decode_headers};
use crate::subjects::{STREAM_NAME, STREAM_SUBJECTS, family_filter};

/// How the deployment's stream is defined. Every field is explicit; [`Default`] gives the
/// single-server development values.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StreamSettings {
    /// The stream name ([`STREAM_NAME`]).
    pub name: String,
    /// The subjects it captures (`["ics.>"]`).
    pub subjects: Vec<String>,
    /// How long JetStream remembers a `Nats-Msg-Id` to drop a duplicate. Long enough to cover
    /// a relay restart; beyond it the relay relies on [`last_published_sequence`].
    pub duplicate_window: Duration,
    /// File (durable) or memory.
    pub storage: StorageType,
    /// 1 on a single server, 3 in a cluster.
    pub replicas: usize,
    /// How long messages are kept; zero keeps them forever (the ledger is the record, so a
    /// limit only bounds how far back a new consumer can start from NATS alone).
    pub max_age: Duration,
    /// Total size limit in bytes; -1 for none.
    pub max_bytes: i64,
    /// Message count limit; -1 for none.
    pub max_messages: i64,
    /// Largest single message in bytes; -1 for the server's `max_payload`.
    pub max_message_size: i32,
}

impl Default for StreamSettings {
    fn default() -> Self {
        StreamSettings {
            name: STREAM_NAME.to_string(),
            subjects: vec![STREAM_SUBJECTS.to_string()],
            duplicate_window: Duration::from_secs(120),
            storage: StorageType::File,
            replicas: 1,
            max_age: Duration::ZERO,
            max_bytes: -1,
            max_messages: -1,
            max_message_size: -1,
        }
    }
}

impl StreamSettings {
    /// The JetStream stream configuration: limits retention, discard old, direct get and atomic
    /// batch publishing allowed.
    pub fn to_config(&self) -> Config {
        Config {
            name: self.name.clone(),
            description: Some("ICS ledger events, published by the ledgerd relay".to_string()),
            subjects: self.subjects.clone(),
            retention: RetentionPolicy::Limits,
            storage: self.storage,
            num_replicas: self.replicas,
            duplicate_window: self.duplicate_window,
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            max_messages: self.max_messages,
            max_message_size: self.max_message_size,
            discard: DiscardPolicy::Old,
            allow_direct: true,
            allow_atomic_publish: true,
            ..Config::default()
        }
    }
}

/// Returns the stream, creating it from `settings` if it does not exist; an existing stream
/// is never changed.
///
/// ledgerd's NATS user may create the stream but not update, purge or delete it (the stream
/// is the regulator's copy and the replica a lost store is restored from), so differences are
/// reported, not repaired. If it captures other subjects than `settings` asks for, that is
/// [`BusError::StreamMismatch`] (publishing would fail or land elsewhere). Every other setting
/// that differs is logged once, field by field: an operator may have tuned limits or replicas
/// on purpose, and a stream without atomic batch publishing (created before the relay used
/// batches, or by a server older than 2.12) is published to one message at a time
/// ([`allows_batches`]).
pub async fn ensure_stream(
    js: &jetstream::Context,
    settings: &StreamSettings,
) -> Result<jetstream::stream::Stream, BusError> {
    let wanted = settings.to_config();
    let stream = js
        .get_or_create_stream(wanted.clone())
        .await
        .map_err(|source| BusError::CreateStream {
            stream: settings.name.clone(),
            source,
        })?;
    let existing = &stream.cached_info().config;
    let mut existing_subjects = existing.subjects.clone();
    let mut wanted_subjects = wanted.subjects.clone();
    existing_subjects.sort();
    wanted_subjects.sort();
    if existing_subjects != wanted_subjects {
        return Err(BusError::StreamMismatch {
            stream: settings.name.clone(),
            existing: existing.subjects.clone(),
            wanted: wanted.subjects,
        });
    }
    let differences = differences(existing, &wanted);
    if !differences.is_empty() {
        tracing::warn!(
            stream = %settings.name,
            differences = %differences.join("; "),
            "JetStream stream exists with other settings than configured; using it unchanged \
             (ledgerd may not update it: change it as the stream's administrator if need be)"
        );
    }
    Ok(stream)
}

/// Whether the stream takes JetStream atomic batches; without, the relay publishes one
/// message at a time.
pub fn allows_batches(config: &Config) -> bool {
    config.allow_atomic_publish
}

/// What differs between the stream as it is and as configured, one `field: is X, configured
/// Y` a difference (subjects apart).
pub fn differences(existing: &Config, wanted: &Config) -> Vec<String> {
    let mut found = Vec::new();
    let mut compare = |field: &str, is: String, configured: String| {
        if is != configured {
            found.push(format!("{field}: is {is}, configured {configured}"));
        }
    };
    compare(
        "duplicate_window",
        format!("{:?}", existing.duplicate_window),
        format!("{:?}", wanted.duplicate_window),
    );
    compare(
        "replicas",
        existing.num_replicas.to_string(),
        wanted.num_replicas.to_string(),
    );
    compare(
        "storage",
        format!("{:?}", existing.storage),
        format!("{:?}", wanted.storage),
    );
    compare(
        "retention",
        format!("{:?}", existing.retention),
        format!("{:?}", wanted.retention),
    );
    compare(
        "discard",
        format!("{:?}", existing.discard),
        format!("{:?}", wanted.discard),
    );
    compare(
        "max_age",
        format!("{:?}", existing.max_age),
        format!("{:?}", wanted.max_age),
    );
    compare(
        "max_bytes",
        existing.max_bytes.to_string(),
        wanted.max_bytes.to_string(),
    );
    compare(
        "max_messages",
        existing.max_messages.to_string(),
        wanted.max_messages.to_string(),
    );
    compare(
        "max_message_size",
        existing.max_message_size.to_string(),
        wanted.max_message_size.to_string(),
    );
    compare(
        "allow_direct",
        existing.allow_direct.to_string(),
        wanted.allow_direct.to_string(),
    );
    compare(
        "allow_atomic_publish",
        existing.allow_atomic_publish.to_string(),
        wanted.allow_atomic_publish.to_string(),
    );
    found
}

/// The highest ledger sequence (`Ics-Sequence`) of `system`'s events held in the stream, or
/// `None` if it holds none.
///
/// Reads the last message of each family (`ics.<system>.<family>.>`) and takes the largest
/// sequence; checkpoints (`ics.<system>.audit.checkpoint`) and other systems' messages are
/// not looked at. Events are published in sequence order, so the last message of a family is
/// that family's highest sequence. Four requests, to the stream leader (not direct get), so a
/// just-acknowledged message is seen.
pub async fn last_published_sequence(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
) -> Result<Option<u64>, BusError> {
    Ok(last_published(js, stream_name, system)
        .await?
        .map(|headers| headers.sequence))
}

/// The headers of `system`'s last event message in the stream (the one with the highest
/// `Ics-Sequence`), or `None` if it holds none. See [`last_published_sequence`].
pub async fn last_published(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
) -> Result<Option<EventHeaders>, BusError> {
    let stream = get_stream(js, stream_name).await?;
    let mut highest: Option<EventHeaders> = None;
    for family in Family::ALL {
        let filter = family_filter(system, family);
        let last = stream.get_last_raw_message_by_subject(&filter).await;
        if let Some(message) = found(last, stream_name, &filter)? {
            let headers = decode_headers(&message.headers)?;
            if highest
                .as_ref()
                .is_none_or(|h| headers.sequence > h.sequence)
            {
                highest = Some(headers);
            }
        }
    }
    Ok(highest)
}

/// How many of `system`'s event messages the stream holds (checkpoints not counted).
pub async fn system_message_count(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
) -> Result<u64, BusError> {
    let stream = get_stream(js, stream_name).await?;
    let mut total: u64 = 0;
    for family in Family::ALL {
        let filter = family_filter(system, family);
        let mut subjects =
            stream
                .info_with_subjects(&filter)
                .await
                .map_err(|source| BusError::Info {
                    stream: stream_name.to_string(),
                    source,
                })?;
        while let Some(entry) = subjects.next().await {
            let (_, count) = entry.map_err(|source| BusError::Info {
                stream: stream_name.to_string(),
                source,
            })?;
            total = total.saturating_add(count as u64);
        }
    }
    Ok(total)
}

/// What the stream holds of one system's events, from a few requests (no scan): enough to
/// tell a stream that holds the ledger's log from one that lost part of it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holding {
    /// How many of the system's event messages it holds (checkpoints not counted).
    pub count: u64,
    /// The headers of the first of them in the stream (the lowest stream sequence).
    pub first: Option<EventHeaders>,
    /// The headers of the one with the highest `Ics-Sequence` among each family's last
    /// message (see [`last_published`]).
    pub last: Option<EventHeaders>,
}

/// What `stream_name` holds of `system`'s events: count, first and last ([`Holding`]).
pub async fn holding(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
) -> Result<Holding, BusError> {
    let count = system_message_count(js, stream_name, system).await?;
    if count == 0 {
        return Ok(Holding::default());
    }
    let stream = get_stream(js, stream_name).await?;
    let mut first: Option<(u64, EventHeaders)> = None;
    for family in Family::ALL {
        let filter = family_filter(system, family);
        let earliest = stream.get_first_raw_message_by_subject(&filter, 1).await;
        if let Some(message) = found(earliest, stream_name, &filter)?
            && first.as_ref().is_none_or(|(at, _)| message.sequence < *at)
        {
            first = Some((message.sequence, decode_headers(&message.headers)?));
        }
    }
    Ok(Holding {
        count,
        first: first.map(|(_, headers)| headers),
        last: last_published(js, stream_name, system).await?,
    })
}

/// Whether a stream of this configuration keeps every message until it is deleted (no age,
/// size or count limit), so that it must hold the whole log of every system publishing into
/// it. A stream with limits holds only what they leave: a suffix of each log.
pub fn keeps_everything(config: &Config) -> bool {
    config.max_age.is_zero()
        && config.max_bytes < 0
        && config.max_messages < 0
        && config.max_messages_per_subject < 0
}

/// Reads the headers of every event message of `system` the stream holds, in stream order
/// (headers only: no payload is sent), and hands each to `visit`; how many there were.
///
/// Costs one message per event in the stream, so it is for the rare case where [`holding`]
/// cannot tell whether the stream holds a log whole.
pub async fn scan_system<E: From<BusError>>(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
    mut visit: impl FnMut(EventHeaders) -> Result<(), E>,
) -> Result<u64, E> {
    let filter = crate::subjects::system_filter(system);
    let mut events = 0;
    read_subject(
        js,
        stream_name,
        &filter,
        Read::HeadersOnly,
        |message| -> Result<(), E> {
            if !matches!(
                message.subject.split('.').nth(2),
                Some(crate::subjects::AUDIT_FAMILY)
            ) {
                visit(decode_headers(&message.headers).map_err(E::from)?)?;
                events += 1;
            }
            Ok(())
        },
    )
    .await?;
    Ok(events)
}

/// A message as the stream holds it.
#[derive(Clone, Debug)]
pub struct StoredMessage {
    pub subject: String,
    pub headers: async_nats::HeaderMap,
    /// Empty when read with [`Read::HeadersOnly`].
    pub payload: bytes::Bytes,
}

/// Whether [`read_subject`] hands on payloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    Whole,
    /// Headers only (the payload is read, and dropped).
    HeadersOnly,
}

/// Messages asked for in one batched direct get.
const READ_BATCH: u64 = 1_024;

/// Reads every message on `filter` the stream holds, in stream order, and hands each to
/// `visit`; how many there were.
///
/// With JetStream's batched direct get (ADR-31; nats-server 2.11 or later): a thousand messages
/// a request, read by whoever may get messages (`$JS.API.DIRECT.GET.<stream>`), with no consumer
/// to create, acknowledge or leave behind. Stops at the message that had none after it when it
/// was sent.
pub async fn read_subject<E: From<BusError>>(
    js: &jetstream::Context,
    stream_name: &str,
    filter: &str,
    read: Read,
    mut visit: impl FnMut(StoredMessage) -> Result<(), E>,
) -> Result<u64, E> {
    let scan_error = |reason: String| BusError::Scan {
        stream: stream_name.to_string(),
        reason,
    };
    let client = js.client();
    let subject = format!("$JS.API.DIRECT.GET.{stream_name}");
    let mut next = 1;
    let mut read_count = 0;
    loop {
        let inbox = client.new_inbox();
        let mut replies = client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| scan_error(e.to_string()))?;
        let request = serde_json::json!({
            "seq": next,
            "next_by_subj": filter,
            "batch": READ_BATCH,
        });
        client
            .publish_with_reply(subject.clone(), inbox, request.to_string().into())
            .await
            .map_err(|e| scan_error(e.to_string()))?;
        let mut pending = None;
        loop {
            let reply = tokio::time::timeout(crate::JETSTREAM_TIMEOUT, replies.next())
                .await
                .map_err(|_| scan_error("no reply within the JetStream timeout".to_string()))?
                .ok_or_else(|| scan_error("the reply subscription ended".to_string()))?;
            match reply.status {
                None => {}
                // The end of a batch.
                Some(status) if status.as_u16() == 204 => break,
                // Nothing (more) on the subject from `next`.
                Some(async_nats::StatusCode::NOT_FOUND) => return Ok(read_count),
                Some(status) => {
                    return Err(scan_error(format!(
                        "direct get answered {status} {}",
                        reply.description.unwrap_or_default()
                    ))
                    .into());
                }
            }
            let headers = reply
                .headers
                .ok_or_else(|| scan_error("a message without headers".to_string()))?;
            let number = |name: &str| {
                headers
                    .get(name)
                    .and_then(|value| value.as_str().parse::<u64>().ok())
                    .ok_or_else(|| scan_error(format!("a reply without {name}")))
            };
            let sequence = number("Nats-Sequence")?;
            pending = Some(number("Nats-Num-Pending")?);
            next = sequence + 1;
            let message_subject = headers
                .get("Nats-Subject")
                .map(|s| s.as_str().to_string())
                .ok_or_else(|| scan_error("a reply without Nats-Subject".to_string()))?;
            visit(StoredMessage {
                subject: message_subject,
                payload: match read {
                    Read::Whole => reply.payload,
                    Read::HeadersOnly => bytes::Bytes::new(),
                },
                headers,
            })?;
            read_count += 1;
        }
        // `Nats-Num-Pending` counts the matching messages after each one when the batch was
        // read; the last one's says whether there is more.
        if pending.is_none_or(|pending| pending == 0) {
            return Ok(read_count);
        }
    }
}

/// Whether the stream exists (`false` when JetStream says it does not; an error when it
/// cannot be asked).
pub async fn stream_exists(js: &jetstream::Context, stream_name: &str) -> Result<bool, BusError> {
    match js.get_stream(stream_name).await {
        Ok(_) => Ok(true),
        Err(error)
            if matches!(
                error.kind(),
                jetstream::context::GetStreamErrorKind::JetStream(ref e)
                    if e.error_code() == jetstream::ErrorCode::STREAM_NOT_FOUND
            ) =>
        {
            Ok(false)
        }
        Err(source) => Err(BusError::GetStream {
            stream: stream_name.to_string(),
            source,
        }),
    }
}

/// The sequence of `system`'s last signed checkpoint in the stream, or `None` if it holds
/// none.
pub async fn last_checkpoint_sequence(
    js: &jetstream::Context,
    stream_name: &str,
    system: &SystemId,
) -> Result<Option<u64>, BusError> {
    let stream = get_stream(js, stream_name).await?;
    let subject = crate::subjects::checkpoint_subject(system);
    let last = stream.get_last_raw_message_by_subject(&subject).await;
    let Some(message) = found(last, stream_name, &subject)? else {
        return Ok(None);
    };
    let sequence = message
        .headers
        .get(crate::HEADER_SEQUENCE)
        .ok_or(BusError::MissingHeader {
            name: crate::HEADER_SEQUENCE,
        })?
        .as_str();
    sequence
        .parse()
        .map(Some)
        .map_err(|_| BusError::InvalidHeader {
            name: crate::HEADER_SEQUENCE,
            value: sequence.to_string(),
            reason: "not a decimal u64",
        })
}

/// A message JetStream found on `filter`, `None` where it holds none, or the error.
fn found(
    result: Result<jetstream::message::StreamMessage, jetstream::stream::LastRawMessageError>,
    stream_name: &str,
    filter: &str,
) -> Result<Option<jetstream::message::StreamMessage>, BusError> {
    match result {
        Ok(message) => Ok(Some(message)),
        Err(error) if error.kind() == LastRawMessageErrorKind::NoMessageFound => Ok(None),
        Err(source) => Err(BusError::LastMessage {
            stream: stream_name.to_string(),
            filter: filter.to_string(),
            source,
        }),
    }
}

async fn get_stream(
    js: &jetstream::Context,
    stream_name: &str,
) -> Result<jetstream::stream::Stream<()>, BusError> {
    js.get_stream_no_info(stream_name)
        .await
        .map_err(|source| BusError::GetStream {
            stream: stream_name.to_string(),
            source,
        })
}
