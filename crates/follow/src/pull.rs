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

/// When the next checkpoint is due: so many events folded since the last, or so long since
/// the first of them — and never more than a set share of the time spent checkpointing. A
/// checkpoint rewrites the whole projection (tens of MiB, a quarter of a second, at a million
/// events) and folding waits for it, so a fixed interval alone would have a large projection
/// checkpointing — and stalling — much of the time; after a checkpoint that took `d` the next
/// waits at least `rest_factor × d`, and small projections stay on their configured interval.
pub(crate) struct Schedule {
    events: u64,
    interval: Duration,
    /// How many times a checkpoint's own duration to wait after it.
    rest_factor: u32,
    /// Events folded since the last checkpoint.
    folded: u64,
    /// When the first of them was folded.
    since: Instant,
    /// When the last checkpoint ended and how long it took.
    last: Option<(Instant, Duration)>,
}

impl Schedule {
    /// Due after `events` or `interval`, resting `rest_factor` times a checkpoint's duration
    /// after it: checkpoints take at most `1 / (rest_factor + 1)` of the time.
    pub(crate) fn new(events: u64, interval: Duration, rest_factor: u32) -> Self {
        Schedule {
            events,
            interval,
            rest_factor,
            folded: 0,
            since: Instant::now(),
            last: None,
        }
    }

    /// `folded` more events await a checkpoint.
    pub(crate) fn folded(&mut self, folded: u64) {
        self.folded_at(Instant::now(), folded);
    }

    fn folded_at(&mut self, now: Instant, folded: u64) {
        if folded > 0 {
            if self.folded == 0 {
                self.since = now;
            }
            self.folded += folded;
        }
    }

    /// Whether anything folded awaits a checkpoint.
    pub(crate) fn pending(&self) -> bool {
        self.folded > 0
    }

    /// Whether a checkpoint is due now.
    pub(crate) fn due(&self) -> bool {
        self.due_at(Instant::now())
    }

    fn due_at(&self, now: Instant) -> bool {
        let since = |then: Instant| now.saturating_duration_since(then);
        let wanted =
            self.folded >= self.events || (self.folded > 0 && since(self.since) >= self.interval);
        let rested = self
            .last
            .is_none_or(|(ended, took)| since(ended) >= took * self.rest_factor);
        wanted && rested
    }

    /// A checkpoint that took `took` now covers everything folded.
    pub(crate) fn saved(&mut self, took: Duration) {
        self.saved_at(Instant::now(), took);
    }

    /// A snapshot of everything folded so far is being written behind the fold: what folds
    /// from now on awaits the next checkpoint. [`Schedule::written`] follows when it is done.
    pub(crate) fn snapshot(&mut self) {
        self.folded = 0;
    }

    /// The snapshot's checkpoint is written, `took` after the snapshot: rest after it.
    pub(crate) fn written(&mut self, took: Duration) {
        self.written_at(Instant::now(), took);
    }

    fn written_at(&mut self, now: Instant, took: Duration) {
        self.last = Some((now, took));
    }

    fn saved_at(&mut self, now: Instant, took: Duration) {
        self.folded = 0;
        self.last = Some((now, took));
    }
}

/// Messages handled but not yet acknowledged, because what they folded is not yet in a
/// checkpoint (oversightd: a system without a ledgerd has no other copy of its events).
/// Acknowledged only once it is: a crash before then redelivers them, and the projection
/// ignores what it already holds.
pub(crate) struct Unsaved {
    held: Vec<Message>,
    schedule: Schedule,
}

impl Unsaved {
    pub(crate) fn new(schedule: Schedule) -> Self {
        Unsaved {
            held: Vec::new(),
            schedule,
        }
    }

    /// Holds `message`, which folded `folded` events (0: nothing to save for it).
    pub(crate) fn hold(&mut self, message: Message, folded: u64) {
        self.schedule.folded(folded);
        self.held.push(message);
    }

    /// Whether a checkpoint is due (see [`Schedule`]).
    pub(crate) fn due(&self) -> bool {
        self.schedule.due()
    }

    /// A checkpoint that took `took` now covers everything folded.
    pub(crate) fn saved(&mut self, took: Duration) {
        self.schedule.saved(took);
    }

    /// Acknowledges every held message if nothing folded awaits a checkpoint.
    pub(crate) async fn ack_if_saved(&mut self) {
        if self.schedule.pending() {
            return;
        }
        for message in self.held.drain(..) {
            ack(&message).await;
        }
    }
}

/// Acknowledges `message`; a failure is logged (it comes again and is ignored then).
pub(crate) async fn ack(message: &Message) {
    if let Err(error) = message.ack().await {
        tracing::warn!(%error, "ack failed");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_checkpoint_is_due_by_events_or_time_but_never_more_than_a_tenth_of_the_time() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let mut schedule = Schedule::new(100, ms(30), 9);
        assert!(!schedule.due_at(start), "nothing folded");
        schedule.folded_at(start, 99);
        assert!(!schedule.due_at(start));
        schedule.folded_at(start, 1);
        assert!(schedule.due_at(start), "100 events");

        // A cheap checkpoint: due again as soon as wanted.
        schedule.saved_at(start, Duration::ZERO);
        schedule.folded_at(start, 100);
        assert!(schedule.due_at(start));

        // One that took 40 ms: the next waits 360 ms however many events come.
        schedule.saved_at(start, ms(40));
        schedule.folded_at(start, 1_000_000);
        assert!(
            !schedule.due_at(start + ms(359)),
            "resting after a costly checkpoint"
        );
        assert!(schedule.due_at(start + ms(360)));

        // By time: one event, then the interval since it.
        let later = start + ms(1_000);
        schedule.saved_at(later, Duration::ZERO);
        schedule.folded_at(later + ms(5), 1);
        assert!(!schedule.due_at(later + ms(34)));
        assert!(schedule.due_at(later + ms(35)));
    }

    #[test]
    fn a_checkpoint_written_behind_the_fold_counts_from_its_snapshot_and_rests_after_it() {
        let ms = Duration::from_millis;
        let start = Instant::now();
        let mut schedule = Schedule::new(100, ms(30), 9);
        schedule.folded_at(start, 100);
        assert!(schedule.due_at(start));
        schedule.snapshot();
        assert!(!schedule.pending(), "the snapshot holds everything folded");
        // Folding goes on while it is written: those events await the next checkpoint.
        schedule.folded_at(start + ms(10), 100);
        assert!(schedule.pending());
        schedule.written_at(start + ms(50), ms(50));
        assert!(!schedule.due_at(start + ms(499)), "resting 9 × 50 ms");
        assert!(schedule.due_at(start + ms(500)));
    }
}
