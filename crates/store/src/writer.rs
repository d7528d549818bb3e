//! The single writer thread: group commit.
//!
//! Why a dedicated `std::thread` rather than a task: sled's `apply_batch` and `flush` block
//! (the flush is an fsync), and the store must work whether or not the caller runs tokio. One
//! writer also makes sequencing trivial — it is the only code that assigns sequences, stream
//! versions, timestamps and hashes, so none of them need locks.
//!
//! One round of the loop:
//! 1. block for the first queued request, then drain whatever else is queued without waiting,
//!    up to `batch_events_max` events (a request that would overflow is carried to the next
//!    batch, so requests are never split or reordered);
//! 2. admit each request in queue order against the durable state *plus* the requests admitted
//!    earlier in the same batch: idempotency first (a known request id answers the original
//!    outcome, or `RequestIdReused`), then the expected version, then encode and chain;
//!    a rejected request changes nothing and does not affect the others;
//! 3. write everything admitted as ONE `sled::Batch` (atomic) — the events into the log's
//!    open page and the pages after it (`pages`) — flush ONCE, publish the new head, and
//!    only then answer every request of the batch.
//!
//! If a read, write or flush fails, every request of the batch fails and the store is
//! poisoned: what sled holds in memory (and the writer's open page) may then differ from disk,
//! so nothing more is written until a restart re-verifies the tip. When every handle is gone the queue disconnects; the
//! writer drains what is still queued (std `mpsc` delivers buffered messages before reporting
//! the disconnect) and returns.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, OnceLock, PoisonError, RwLock};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

use crate::codec::{self, Envelope, EventRecordV1, HASH_LEN, SCHEMA_VERSION_LATEST};
use crate::error::{AppendError, StoreError};
use crate::keys;
use crate::model::{AppendOutcome, AppendRequest, Head, IdempotencyRecord, StoreStats};
use crate::pages::OpenPage;
use crate::requests::{self, Index};

/// The answer channel of one request.
pub(crate) type Reply = oneshot::Sender<Result<AppendOutcome, AppendError>>;

/// A request waiting in the queue, with the channel its answer goes to.
pub(crate) struct Queued<E> {
    pub request: AppendRequest<E>,
    pub reply: Reply,
}

/// State shared by the handles and the writer.
#[derive(Debug, Default)]
pub(crate) struct Shared {
    /// Set once, by the first write failure (or a writer panic); never cleared.
    poison: OnceLock<String>,
    batches_committed: AtomicU64,
    requests_committed: AtomicU64,
    events_committed: AtomicU64,
    /// Where each durable request's record and each stream's events are (`requests`):
    /// extended by the writer after each flush, read by it and by the store's readers.
    index: RwLock<Index>,
}

impl Shared {
    pub(crate) fn new(index: Index) -> Self {
        Shared {
            index: RwLock::new(index),
            ..Shared::default()
        }
    }

    /// The index (nobody panics while holding it; if one did, it is still whole: it is only
    /// ever extended, a request at a time, each checked before it changes anything).
    pub(crate) fn index(&self) -> std::sync::RwLockReadGuard<'_, Index> {
        self.index.read().unwrap_or_else(PoisonError::into_inner)
    }

    pub(crate) fn stats(&self) -> StoreStats {
        StoreStats {
            batches_committed: self.batches_committed.load(Ordering::Relaxed),
            requests_committed: self.requests_committed.load(Ordering::Relaxed),
            events_committed: self.events_committed.load(Ordering::Relaxed),
        }
    }

    fn count_batch(&self, requests: usize, events: usize) {
        self.batches_committed.fetch_add(1, Ordering::Relaxed);
        self.requests_committed
            .fetch_add(requests as u64, Ordering::Relaxed);
        self.events_committed
            .fetch_add(events as u64, Ordering::Relaxed);
    }

    pub(crate) fn poison(&self, reason: String) {
        if self.poison.set(reason).is_ok() {
            tracing::error!(
                reason = self.poisoned().unwrap_or_default(),
                "event store poisoned: refusing appends until restart"
            );
        }
    }

    pub(crate) fn poisoned(&self) -> Option<&str> {
        self.poison.get().map(String::as_str)
    }
}

/// The durable end of the chain, as the writer continues it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Tip {
    pub sequence: u64,
    pub hash: [u8; HASH_LEN],
    pub recorded_at_us: i64,
}

impl Tip {
    pub(crate) const EMPTY: Tip = Tip {
        sequence: 0,
        hash: [0; HASH_LEN],
        recorded_at_us: 0,
    };

    pub(crate) fn head(self) -> Head {
        Head {
            sequence: self.sequence,
            hash: self.hash,
        }
    }
}

pub(crate) struct Writer<E> {
    pub tree: sled::Tree,
    pub queue: Receiver<Queued<E>>,
    pub head: watch::Sender<Head>,
    pub shared: Arc<Shared>,
    pub batch_events_max: usize,
    pub tip: Tip,
    /// The log's last page, which the next events go into until it is full.
    pub page: OpenPage,
    /// A request taken from the queue that did not fit in the previous batch.
    pub carry: Option<Queued<E>>,
}

/// Poisons the store if the writer thread unwinds, so handles refuse appends at once instead
/// of queueing requests nobody will answer.
struct PoisonOnPanic(Arc<Shared>);

impl Drop for PoisonOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.0.poison("the writer thread panicked".to_string());
        }
    }
}

impl<E: Serialize> Writer<E> {
    pub(crate) fn run(mut self) {
        let _guard = PoisonOnPanic(Arc::clone(&self.shared));
        while let Some(batch) = self.next_batch() {
            self.process(batch);
        }
        tracing::debug!(head = %self.tip.head(), "event store writer stopped");
    }

    /// Blocks for one request, then takes what else is queued, up to the batch limit.
    /// `None` when the queue is disconnected and empty.
    fn next_batch(&mut self) -> Option<Vec<Queued<E>>> {
        let first = match self.carry.take() {
            Some(queued) => queued,
            None => self.queue.recv().ok()?,
        };
        let mut events = first.request.events.len();
        let mut batch = vec![first];
        while events < self.batch_events_max {
            let Ok(queued) = self.queue.try_recv() else {
                break;
            };
            let count = queued.request.events.len();
            if events + count > self.batch_events_max {
                self.carry = Some(queued);
                break;
            }
            events += count;
            batch.push(queued);
        }
        debug_assert!(events <= self.batch_events_max || batch.len() == 1);
        Some(batch)
    }

    fn process(&mut self, batch: Vec<Queued<E>>) {
        if let Some(reason) = self.shared.poisoned() {
            let error = StoreError::Poisoned(reason.to_string());
            for queued in batch {
                // The caller may have stopped waiting; nothing to do then.
                let _ = queued.reply.send(Err(AppendError::Store(error.clone())));
            }
            return;
        }
        let mut plan = Plan::new(self.tip);
        let mut replies = Vec::with_capacity(batch.len());
        let mut failure: Option<StoreError> = None;
        let durable = self.shared.index();
        for Queued { request, reply } in batch {
            let result = match &failure {
                Some(error) => Err(AppendError::Store(error.clone())),
                None => plan.admit(&self.tree, &durable, request),
            };
            if let (None, Err(AppendError::Store(error))) = (&failure, &result) {
                failure = Some(error.clone());
            }
            replies.push((reply, result));
        }
        drop(durable);
        let failure = match failure {
            Some(error) => Some(error),
            None => self.commit(plan).err(),
        };
        match failure {
            None => {
                for (reply, result) in replies {
                    let _ = reply.send(result);
                }
            }
            Some(error) => {
                self.shared.poison(error.to_string());
                for (reply, _) in replies {
                    let _ = reply.send(Err(AppendError::Store(error.clone())));
                }
            }
        }
    }

    /// Writes the batch atomically and flushes it; on success the plan's tip is durable and
    /// published.
    fn commit(&mut self, plan: Plan) -> Result<(), StoreError> {
        let events = plan.values.len();
        if events == 0 {
            // Only rejections and resends of already durable requests: nothing to write.
            return Ok(());
        }
        let tip = plan.tip();
        let first = self.tip.sequence + 1;
        assert!(tip.sequence == self.tip.sequence + events as u64);
        let mut batch = plan.batch;
        batch.insert(&keys::requests(first), plan.request_page);
        let values = plan.values.iter();
        self.page.append(
            values.map(|(sequence, body, hash)| (*sequence, [body.as_slice(), hash.as_slice()])),
            &mut batch,
        );
        batch.insert(
            keys::meta_head(),
            keys::encode_meta_head(tip.sequence, &tip.hash).to_vec(),
        );
        self.tree.apply_batch(batch)?;
        self.tree.flush()?;
        let requests = plan.admitted.len();
        let mut index = self
            .shared
            .index
            .write()
            .unwrap_or_else(PoisonError::into_inner);
        for (request_id, outcome) in &plan.admitted {
            index
                .add(first, *request_id, outcome)
                .map_err(StoreError::Corrupt)?;
        }
        drop(index);
        self.tip = tip;
        self.head.send_replace(tip.head());
        self.shared.count_batch(requests, events);
        Ok(())
    }
}

/// One batch being assembled: the sled batch plus what it changes, so later requests of the
/// same batch see earlier ones.
struct Plan {
    next_sequence: u64,
    prev_hash: [u8; HASH_LEN],
    recorded_at_us: i64,
    /// The versions of the streams this batch appends to, as it leaves them.
    stream_versions: HashMap<String, u64>,
    /// Requests admitted by this batch.
    requests: HashMap<[u8; 16], IdempotencyRecord>,
    /// The same, in order, for the index.
    admitted: Vec<([u8; 16], AppendOutcome)>,
    /// Their idempotency records, in order, as the batch's request page (`requests`).
    request_page: Vec<u8>,
    /// Everything but the events and the request page: the meta head.
    batch: sled::Batch,
    /// Events admitted by this batch, `(sequence, body, hash)`, in order: paged on commit.
    values: Vec<(u64, Vec<u8>, [u8; HASH_LEN])>,
}

/// A request's events, encoded and chained, not yet part of the plan.
struct Staged {
    /// `(sequence, body, hash)` per event.
    values: Vec<(u64, Vec<u8>, [u8; HASH_LEN])>,
    hash: [u8; HASH_LEN],
}

impl Plan {
    fn new(tip: Tip) -> Self {
        Plan {
            next_sequence: tip.sequence + 1,
            prev_hash: tip.hash,
            recorded_at_us: tip.recorded_at_us,
            stream_versions: HashMap::new(),
            requests: HashMap::new(),
            admitted: Vec::new(),
            request_page: Vec::new(),
            batch: sled::Batch::default(),
            values: Vec::new(),
        }
    }

    fn tip(&self) -> Tip {
        Tip {
            sequence: self.next_sequence - 1,
            hash: self.prev_hash,
            recorded_at_us: self.recorded_at_us,
        }
    }

    /// Decides one request. `Err(AppendError::Store(..))` means storage failed and the whole
    /// batch must fail; any other error rejects this request alone and changed nothing.
    fn admit<E: Serialize>(
        &mut self,
        tree: &sled::Tree,
        durable: &Index,
        request: AppendRequest<E>,
    ) -> Result<AppendOutcome, AppendError> {
        if let Some(record) = self.committed(tree, durable, &request.request_id)? {
            if record.command_hash != request.command_hash {
                return Err(AppendError::RequestIdReused {
                    request_id: request.request_id,
                });
            }
            return Ok(AppendOutcome {
                duplicate: true,
                ..record.outcome
            });
        }
        let actual = self.stream_version(durable, &request.stream);
        if !request.expected_version.admits(actual) {
            return Err(AppendError::WrongExpectedVersion {
                stream: request.stream,
                expected: request.expected_version,
                actual,
            });
        }
        let recorded_at_us = next_timestamp(self.recorded_at_us);
        let count = request.events.len() as u64;
        let outcome = AppendOutcome {
            stream: request.stream.clone(),
            first_version: actual + 1,
            last_version: actual + count,
            first_sequence: self.next_sequence,
            last_sequence: self.next_sequence + count - 1,
            hash: [0; HASH_LEN],
            recorded_at_us,
            duplicate: false,
        };
        let (request_id, command_hash) = (request.request_id, request.command_hash);
        let staged = self.stage(request, actual, recorded_at_us)?;
        let outcome = AppendOutcome {
            hash: staged.hash,
            ..outcome
        };
        let record = IdempotencyRecord {
            command_hash,
            outcome,
        };
        let encoded = codec::encode_idempotency(&record)
            .map_err(|e| AppendError::Invalid(format!("idempotency record: {e}")))?;
        self.accept(staged, &record, request_id, encoded);
        Ok(record.outcome)
    }

    /// Encodes and chains a request's events without changing the plan.
    fn stage<E: Serialize>(
        &self,
        request: AppendRequest<E>,
        actual: u64,
        recorded_at_us: i64,
    ) -> Result<Staged, AppendError> {
        let mut values = Vec::with_capacity(request.events.len());
        let mut prev_hash = self.prev_hash;
        for (index, event) in request.events.into_iter().enumerate() {
            let offset = index as u64;
            let (sequence, version) = (self.next_sequence + offset, actual + 1 + offset);
            let envelope = Envelope::V1(EventRecordV1 {
                sequence,
                stream: request.stream.clone(),
                version,
                event_id: event.event_id,
                request_id: request.request_id,
                correlation_id: request.correlation_id,
                recorded_at_us,
                effective_period: event.effective_period,
                actor: request.actor.clone(),
                schema_version: SCHEMA_VERSION_LATEST,
                event_type: event.event_type,
                payload: event.payload,
                prev_hash,
            });
            let body = codec::encode_body(&envelope)
                .map_err(|e| AppendError::Invalid(format!("event {index}: {e}")))?;
            let hash = codec::chain_hash(&prev_hash, &body);
            values.push((sequence, body, hash));
            prev_hash = hash;
        }
        Ok(Staged {
            values,
            hash: prev_hash,
        })
    }

    /// Adds a staged request to the sled batch and to the plan's view of the state.
    fn accept(
        &mut self,
        staged: Staged,
        record: &IdempotencyRecord,
        request_id: [u8; 16],
        encoded_record: Vec<u8>,
    ) {
        let outcome = &record.outcome;
        let count = staged.values.len();
        self.admitted.push((request_id, outcome.clone()));
        debug_assert_eq!(outcome.first_sequence, self.next_sequence);
        debug_assert_eq!(
            outcome.last_sequence - outcome.first_sequence + 1,
            count as u64
        );
        self.values.extend(staged.values);
        requests::push_entry(&mut self.request_page, &request_id, &encoded_record);
        self.stream_versions
            .insert(outcome.stream.clone(), outcome.last_version);
        self.requests.insert(request_id, record.clone());
        self.next_sequence = outcome.last_sequence + 1;
        self.prev_hash = staged.hash;
        self.recorded_at_us = outcome.recorded_at_us;
    }

    /// The committed record of a request id: admitted earlier in this batch, or durable.
    fn committed(
        &self,
        tree: &sled::Tree,
        durable: &Index,
        request_id: &[u8; 16],
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        if let Some(record) = self.requests.get(request_id) {
            return Ok(Some(record.clone()));
        }
        durable
            .page_of(request_id)
            .map(|first| requests::find(tree, first, request_id))
            .transpose()
    }

    /// A stream's version including this batch's appends.
    fn stream_version(&self, durable: &Index, stream: &str) -> u64 {
        match self.stream_versions.get(stream) {
            Some(version) => *version,
            None => durable.stream_version(stream),
        }
    }
}

/// Unix microseconds now, forced strictly after `last` so that transaction time is
/// monotonic even if the wall clock steps back.
fn next_timestamp(last: i64) -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .ok()
        .and_then(|elapsed| i64::try_from(elapsed.as_micros()).ok())
        .unwrap_or(0);
    now.max(last.saturating_add(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{ExpectedVersion, NewEvent};

    fn request(id: u8, stream: &str, expected: ExpectedVersion, events: u8) -> AppendRequest<u32> {
        AppendRequest {
            request_id: [id; 16],
            command_hash: [id; 32],
            stream: stream.to_string(),
            expected_version: expected,
            actor: "tester".to_string(),
            correlation_id: [0; 16],
            events: (0..events)
                .map(|n| NewEvent {
                    event_id: [id, n, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0],
                    event_type: "test".to_string(),
                    effective_period: None,
                    payload: u32::from(n),
                })
                .collect(),
        }
    }

    /// Requests of one batch see the requests admitted before them in the same batch:
    /// duplicates, reused ids and expected versions. (Deterministic: no thread involved.)
    #[test]
    fn a_batch_sees_its_own_earlier_requests() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let mut plan = Plan::new(Tip::EMPTY);

        let first = plan
            .admit(
                &tree,
                &Index::default(),
                request(1, "a", ExpectedVersion::NoStream, 2),
            )
            .expect("admitted");
        assert_eq!((first.first_sequence, first.last_sequence), (1, 2));
        assert_eq!((first.first_version, first.last_version), (1, 2));

        let resend = plan
            .admit(
                &tree,
                &Index::default(),
                request(1, "a", ExpectedVersion::NoStream, 2),
            )
            .expect("duplicate");
        assert_eq!(
            resend,
            AppendOutcome {
                duplicate: true,
                ..first.clone()
            }
        );

        let mut reused = request(1, "a", ExpectedVersion::Any, 1);
        reused.command_hash = [9; 32];
        assert!(matches!(
            plan.admit(&tree, &Index::default(), reused),
            Err(AppendError::RequestIdReused { request_id }) if request_id == [1; 16]
        ));

        assert!(matches!(
            plan.admit(
                &tree,
                &Index::default(),
                request(2, "a", ExpectedVersion::NoStream, 1)
            ),
            Err(AppendError::WrongExpectedVersion { actual: 2, .. })
        ));
        let next = plan
            .admit(
                &tree,
                &Index::default(),
                request(3, "a", ExpectedVersion::Exact(2), 1),
            )
            .expect("admitted");
        assert_eq!((next.first_sequence, next.first_version), (3, 3));
        assert!(next.recorded_at_us > first.recorded_at_us);
        assert_eq!(plan.values.len(), 3);
        assert_eq!(plan.tip().sequence, 3);
        assert_eq!(plan.tip().hash, next.hash);
    }

    #[test]
    fn timestamps_are_strictly_monotonic() {
        let far_future = i64::MAX / 2;
        assert_eq!(next_timestamp(far_future), far_future + 1);
        let a = next_timestamp(0);
        let b = next_timestamp(a);
        assert!(b > a);
    }
}
