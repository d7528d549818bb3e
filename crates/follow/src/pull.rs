//! The JetStream half both consumers share: the durable pull consumer, pulling, and
//! acknowledging only what a checkpoint covers.

use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::pull::{self, Batch};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

/// How long one pull waits for messages before it ends empty.
const PULL_EXPIRES: Duration = Duration::from_millis(500);

/// The durable consumer `name` of `filter_subject` on `stream_name`, once the stream exists
/// (ledgerd's relay creates it); `None` if asked to stop while waiting.
pub(crate) async fn durable_consumer(
    nats_url: &str,
    name: &str,
    stream_name: &str,
    filter_subject: String,
    stop: &CancellationToken,
) -> anyhow::Result<Option<PullConsumer>> {
    let client = bus::connect(nats_url, name).await?;
    let js = bus::jetstream(client);
    let stream = loop {
        match js.get_stream(stream_name).await {
            Ok(stream) => break stream,
            Err(error) => tracing::info!(%error, "waiting for the JetStream stream"),
        }
        tokio::select! {
            // Asked to stop while waiting: a clean stop, not a failure.
            () = stop.cancelled() => return Ok(None),
            () = tokio::time::sleep(Duration::from_millis(250)) => {}
        }
    };
    let consumer = stream
        .get_or_create_consumer(
            name,
            pull::Config {
                durable_name: Some(name.to_string()),
                filter_subject,
                ack_policy: AckPolicy::Explicit,
                ..Default::default()
            },
        )
        .await
        .map_err(|e| anyhow::anyhow!("creating consumer {name}: {e}"))?;
    Ok(Some(consumer))
}

/// The next pull of up to `max` messages, which arrive as the stream yields them; `None`
/// once `stop` is cancelled. A failed pull is logged and retried.
pub(crate) async fn next_batch(
    consumer: &PullConsumer,
    max: usize,
    stop: &CancellationToken,
) -> Option<Batch> {
    loop {
        let pulled = tokio::select! {
            () = stop.cancelled() => return None,
            pulled = consumer.fetch().max_messages(max).expires(PULL_EXPIRES).messages() => pulled,
        };
        match pulled {
            Ok(batch) => return Some(batch),
            Err(error) => {
                tracing::warn!(%error, "pull failed; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// The next message of `batch`; `None` at its end or on an error (logged: what was not
/// received comes again in a later pull).
pub(crate) async fn next_message(batch: &mut Batch) -> Option<Message> {
    match batch.next().await? {
        Ok(message) => Some(message),
        Err(error) => {
            tracing::warn!(%error, "message error");
            None
        }
    }
}

/// Messages handled but not yet acknowledged, because what they folded is not yet in a
/// checkpoint. Acknowledged only once it is: a crash before then redelivers them, and the
/// projection ignores what it already holds.
pub(crate) struct Unsaved {
    held: Vec<Message>,
    /// Events folded since the last checkpoint.
    folded: u64,
    /// When the first of them was folded.
    since: Instant,
}

impl Unsaved {
    pub(crate) fn new() -> Self {
        Unsaved {
            held: Vec::new(),
            folded: 0,
            since: Instant::now(),
        }
    }

    /// Holds `message`, which folded `folded` events (0: nothing to save for it).
    pub(crate) fn hold(&mut self, message: Message, folded: u64) {
        if folded > 0 {
            if self.folded == 0 {
                self.since = Instant::now();
            }
            self.folded += folded;
        }
        self.held.push(message);
    }

    /// Whether a checkpoint is due: `events` folded, or `interval` since the first unsaved.
    pub(crate) fn due(&self, events: u64, interval: Duration) -> bool {
        self.folded >= events || (self.folded > 0 && self.since.elapsed() >= interval)
    }

    /// A checkpoint now covers everything folded.
    pub(crate) fn saved(&mut self) {
        self.folded = 0;
    }

    /// Acknowledges every held message if nothing folded awaits a checkpoint.
    pub(crate) async fn ack_if_saved(&mut self) {
        if self.folded > 0 {
            return;
        }
        for message in self.held.drain(..) {
            if let Err(error) = message.ack().await {
                // Not acknowledged: it comes again and is ignored then.
                tracing::warn!(%error, "ack failed");
            }
        }
    }
}
