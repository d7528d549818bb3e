//! The JetStream half both consumers share: the durable pull consumer — recreated when it is
//! lost — pulling, and acknowledging only what a checkpoint covers.
//!
//! A consumer can be lost while its service runs: nats-server restarted on a wiped store, the
//! stream deleted and recreated, the consumer deleted by an operator. A pull then answers
//! `503` (no responders) at once, every time. [`Follower`] takes any failed pull as a sign that
//! the consumer may be gone: it waits (doubling from [`RETRY_MIN`] to [`RETRY_MAX`]), creates
//! the consumer again if it is missing, and tells its caller, who catches up from ledgerd as at
//! start. The trouble is published in the service's status and logged when it starts or
//! changes and then once a minute, never once per pull.

use std::time::{Duration, Instant};

use async_nats::jetstream::Message;
use async_nats::jetstream::consumer::pull::{self, Batch};
use async_nats::jetstream::consumer::{AckPolicy, PullConsumer};
use futures::StreamExt;
use tokio_util::sync::CancellationToken;

use crate::status::{StatusSender, set_consumer};

/// How long one pull waits for messages before it ends empty.
const PULL_EXPIRES: Duration = Duration::from_millis(500);
/// The first wait after a failed pull or a consumer that could not be created…
pub(crate) const RETRY_MIN: Duration = Duration::from_millis(100);
/// …doubling up to this.
pub(crate) const RETRY_MAX: Duration = Duration::from_secs(5);
/// A trouble shorter than this (the connection still being made at start-up, a server
/// restarting) is neither logged as a warning nor reported in the status.
const TROUBLE_GRACE: Duration = Duration::from_secs(1);

/// A durable pull consumer that is created again when it is lost.
pub(crate) struct Follower {
    js: async_nats::jetstream::Context,
    name: String,
    stream_name: String,
    filter_subject: String,
    consumer: Option<PullConsumer>,
    /// The wait before the next attempt, while failing.
    retry: Option<Duration>,
    /// When the current trouble started.
    troubled_since: Option<Instant>,
    alarm: bus::Alarm,
    status: StatusSender,
    /// Created (again) since last asked, after having been created once.
    recreated: bool,
    created_once: bool,
}

impl Follower {
    /// A follower of `filter_subject` on `stream_name` as the durable consumer `name`. Returns
    /// at once: NATS and the stream are waited for by [`Follower::next_batch`].
    pub(crate) async fn connect(
        nats_url: &str,
        credentials: &bus::Credentials,
        name: &str,
        stream_name: &str,
        filter_subject: String,
        status: StatusSender,
    ) -> anyhow::Result<Self> {
        let client = bus::connect_with(nats_url, name, credentials).await?;
        Ok(Follower {
            js: bus::jetstream(client),
            name: name.to_string(),
            stream_name: stream_name.to_string(),
            filter_subject,
            consumer: None,
            retry: None,
            troubled_since: None,
            alarm: bus::Alarm::new(format!("consumer {name}")),
            status,
            recreated: false,
            created_once: false,
        })
    }

    /// Whether the consumer was created again (after being lost) since last asked: the caller
    /// catches up from ledgerd, as at start.
    pub(crate) fn take_recreated(&mut self) -> bool {
        std::mem::take(&mut self.recreated)
    }

    /// The next pull of up to `max` messages, which arrive as the stream yields them; `None`
    /// once `stop` is cancelled. Waits for NATS, the stream and the consumer, creating the
    /// consumer when it is missing.
    pub(crate) async fn next_batch(
        &mut self,
        max: usize,
        stop: &CancellationToken,
    ) -> Option<Batch> {
        loop {
            if let Some(wait) = self.retry {
                tokio::select! {
                    () = stop.cancelled() => return None,
                    () = tokio::time::sleep(wait) => {}
                }
            }
            if stop.is_cancelled() {
                return None;
            }
            if self.js.client().connection_state() != async_nats::connection::State::Connected {
                self.trouble("NATS unreachable", &"not connected; reconnecting");
                continue;
            }
            let consumer = match &self.consumer {
                Some(consumer) => consumer.clone(),
                None => match self.create().await {
                    Ok(consumer) => consumer,
                    Err(error) => {
                        self.trouble("consumer cannot be created", &error);
                        continue;
                    }
                },
            };
            let pulled = tokio::select! {
                () = stop.cancelled() => return None,
                pulled = consumer.fetch().max_messages(max).expires(PULL_EXPIRES).messages() => pulled,
            };
            match pulled {
                Ok(batch) => return Some(batch),
                Err(error) => self.lost("pull failed", &error),
            }
        }
    }

    /// The next message of `batch`; `None` at its end or on an error (what was not received
    /// comes again in a later pull). An error means the consumer may be lost: the next pull
    /// waits, and creates it again if it is.
    pub(crate) async fn next_message(&mut self, batch: &mut Batch) -> Option<Message> {
        match batch.next().await {
            Some(Ok(message)) => {
                self.delivering();
                Some(message)
            }
            None => {
                // A pull that ended (full or expired) on a connected client: the consumer is
                // there. On a disconnected one nothing can be told.
                if self.js.client().connection_state() == async_nats::connection::State::Connected {
                    self.delivering();
                }
                None
            }
            Some(Err(error)) => {
                self.lost("pull answered with an error", &error);
                None
            }
        }
    }

    /// The consumer is there (looked up or created).
    async fn create(&mut self) -> anyhow::Result<PullConsumer> {
        let stream = self
            .js
            .get_stream(&self.stream_name)
            .await
            .map_err(|e| anyhow::anyhow!("JetStream stream {}: {e}", self.stream_name))?;
        let consumer = stream
            .get_or_create_consumer(
                &self.name,
                pull::Config {
                    durable_name: Some(self.name.clone()),
                    filter_subject: self.filter_subject.clone(),
                    ack_policy: AckPolicy::Explicit,
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| anyhow::anyhow!("creating consumer {}: {e}", self.name))?;
        if self.created_once {
            tracing::info!(consumer = %self.name, "JetStream consumer created again: catching up from ledgerd");
            self.recreated = true;
        }
        self.created_once = true;
        self.consumer = Some(consumer.clone());
        Ok(consumer)
    }

    /// A pull failed: the consumer is looked up (and created if missing) before the next one.
    fn lost(&mut self, state: &str, error: &dyn std::fmt::Display) {
        self.consumer = None;
        self.trouble(state, error);
    }

    /// Something keeps the consumer from delivering: waited out, published, logged on change.
    fn trouble(&mut self, state: &str, error: &dyn std::fmt::Display) {
        let wait = self
            .retry
            .map_or(RETRY_MIN, |wait| (wait * 2).min(RETRY_MAX));
        self.retry = Some(wait);
        let since = *self.troubled_since.get_or_insert_with(Instant::now);
        if since.elapsed() < TROUBLE_GRACE {
            tracing::debug!(state, %error, "consumer trouble (within the grace period)");
            return;
        }
        self.alarm.raise(
            state,
            &format_args!("{error}; trying again in {} ms", wait.as_millis()),
        );
        set_consumer(&self.status, Some(format!("{state}: {error}")));
    }

    /// Messages arrive (or a pull ended as pulls do): no trouble.
    /// Called for every message: touches the shared status only after a trouble.
    fn delivering(&mut self) {
        let troubled = self.troubled_since.take().is_some();
        if self.retry.take().is_some() || self.alarm.is_raised() {
            self.alarm.clear("the consumer delivers again");
        }
        // The status only says so after a trouble (set_consumer(Some) is only ever called
        // while one lasts), so a delivering consumer leaves the watch alone.
        if troubled {
            set_consumer(&self.status, None);
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
