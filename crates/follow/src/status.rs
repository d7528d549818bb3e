//! What a read-side service says about itself beyond its projection: whether its JetStream
//! consumer is delivering, and which systems' logs hold an event it cannot fold.
//!
//! A reader must never wedge silently. JetStream can lose the consumer (a wiped store, a
//! recreated stream) or be unreachable: the consumer is recreated with a backoff and the
//! service catches up from ledgerd meanwhile, and says so here until it delivers again. And a
//! log may hold an event the reader's fold refuses (written by an older version that accepted
//! it): the service keeps serving the projection as of the event before, stops folding that
//! system there, and says which sequence and why here — the same again after a restart, never
//! a crash loop. The gRPC status and health of positiond and oversightd are read from this.

use std::collections::BTreeMap;

use domain::SystemId;
use tokio::sync::watch;

/// Why the consumer is not delivering, since when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConsumerTrouble {
    pub reason: String,
    /// Microseconds since the Unix epoch.
    pub since_us: i64,
}

/// A system's log holds, at `sequence`, an event that does not fold: its projection stands at
/// the event before.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Stuck {
    pub sequence: u64,
    pub reason: String,
    /// Microseconds since the Unix epoch.
    pub since_us: i64,
}

impl Stuck {
    pub fn new(sequence: u64, reason: impl Into<String>) -> Self {
        Stuck {
            sequence,
            reason: reason.into(),
            since_us: now_us(),
        }
    }
}

/// The service's own state, published by the consumer task.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Status {
    /// `None` while JetStream delivers as it should.
    pub consumer: Option<ConsumerTrouble>,
    /// The systems stuck on an event that does not fold.
    pub stuck: BTreeMap<SystemId, Stuck>,
}

impl Status {
    /// Whether nothing is wrong: what gRPC health reports as SERVING.
    pub fn healthy(&self) -> bool {
        self.consumer.is_none() && self.stuck.is_empty()
    }
}

/// The consumer's end: it publishes changes.
pub type StatusSender = watch::Sender<Status>;
/// The services' end: they read the current status (and health waits for changes).
pub type StatusReceiver = watch::Receiver<Status>;

/// Keeps service `S`'s gRPC health in step with `status`: SERVING while it is
/// [`Status::healthy`], NOT_SERVING while a system is stuck or the consumer is not delivering
/// (the service's status RPC says which and why). Ends when the consumer does.
pub async fn report_health<S: tonic::server::NamedService>(
    reporter: tonic_health::server::HealthReporter,
    mut status: StatusReceiver,
) {
    loop {
        if status.borrow_and_update().healthy() {
            reporter.set_serving::<S>().await;
        } else {
            reporter.set_not_serving::<S>().await;
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// A fresh status (nothing wrong) and its two ends.
pub fn channel() -> (StatusSender, StatusReceiver) {
    watch::channel(Status::default())
}

/// Microseconds since the Unix epoch, now.
pub(crate) fn now_us() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
}

/// Records that `system` is stuck (once: a later report of the same sequence keeps the first
/// `since`) and logs it as an error when it is new.
pub(crate) fn set_stuck(status: &StatusSender, system: &SystemId, stuck: Stuck) {
    status.send_if_modified(|current| match current.stuck.get(system) {
        Some(known) if known.sequence == stuck.sequence => false,
        _ => {
            tracing::error!(
                %system,
                sequence = stuck.sequence,
                reason = %stuck.reason,
                "the ledger holds an event this service cannot fold: serving the projection as of \
                 the event before, folding no further for this system (an upgrade that folds it, \
                 or a corrected log, is needed; a restart alone stops here again)"
            );
            current.stuck.insert(system.clone(), stuck);
            true
        }
    });
}

/// Records the consumer's trouble (`None`: none), keeping the first `since` while it lasts.
pub(crate) fn set_consumer(status: &StatusSender, reason: Option<String>) {
    status.send_if_modified(|current| match (&mut current.consumer, reason) {
        (None, None) => false,
        (Some(_), None) => {
            current.consumer = None;
            true
        }
        (Some(trouble), Some(reason)) => {
            if trouble.reason == reason {
                false
            } else {
                trouble.reason = reason;
                true
            }
        }
        (None, Some(reason)) => {
            current.consumer = Some(ConsumerTrouble {
                reason,
                since_us: now_us(),
            });
            true
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn troubles_are_kept_with_when_they_started_and_health_follows_them() {
        let (sender, receiver) = channel();
        assert!(receiver.borrow().healthy());
        set_consumer(&sender, Some("consumer lost".to_string()));
        let since = receiver
            .borrow()
            .consumer
            .clone()
            .expect("trouble")
            .since_us;
        set_consumer(&sender, Some("consumer lost".to_string()));
        assert_eq!(
            receiver.borrow().consumer.as_ref().map(|t| t.since_us),
            Some(since)
        );
        assert!(!receiver.borrow().healthy());
        set_consumer(&sender, None);
        assert!(receiver.borrow().healthy());

        let kav = SystemId::new("kav").expect("id");
        set_stuck(&sender, &kav, Stuck::new(7, "amounts overflow"));
        set_stuck(&sender, &kav, Stuck::new(7, "amounts overflow"));
        let status = receiver.borrow().clone();
        assert_eq!(status.stuck.get(&kav).map(|s| s.sequence), Some(7));
        assert!(!status.healthy());
    }
}
