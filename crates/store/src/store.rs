//! [`EventStore`]: the handle, opening and recovery, and the read side.
//!
//! Reads never go past the durable head. sled makes each write of an `apply_batch` visible
//! as soon as it is applied, before the flush and even before the rest of the batch, so a
//! read that trusted the tree alone could return an event that is not yet on disk (and would
//! be lost with a crash) or half a batch. Every read therefore takes the head published by
//! the writer *after* its flush and ignores anything beyond it.

use std::collections::HashSet;
use std::fmt;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::sync::mpsc::{SyncSender, sync_channel};
use std::task::{Context, Poll};
use std::thread::JoinHandle;

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::{oneshot, watch};

use crate::anchor::{self, AnchorWriter};
use crate::codec::{self, HASH_LEN};
use crate::config::{
    ACTOR_BYTES_MAX, EVENT_TYPE_BYTES_MAX, StoreConfig, check_cursor_name, check_stream,
};
use crate::durable::{DiskSync, sync_error};
use crate::error::{AppendError, ChainError, StoreError};
use crate::keys;
use crate::model::{
    AppendOutcome, AppendRequest, Head, IdempotencyRecord, RawEvent, RecordedEvent, StoreStats,
};
use crate::pages::{self, OpenPage};
use crate::requests;
use crate::writer::{self, Queued, Shared, Tip};

/// The event store. Cheap to clone; all clones share one sled database and one writer.
/// Dropping the last clone stops the writer after it has answered everything queued.
pub struct EventStore<E> {
    inner: Arc<Inner<E>>,
}

struct Inner<E> {
    path: PathBuf,
    tree: sled::Tree,
    /// `None` only while dropping: taking it disconnects the queue, which stops the writer.
    queue: Option<SyncSender<Queued<E>>>,
    writer: Option<JoinHandle<()>>,
    head: watch::Receiver<Head>,
    shared: Arc<Shared>,
    batch_events_max: usize,
    sync: Arc<DiskSync>,
    /// Dropped after the writer: it writes the last head offered.
    anchor: Option<Arc<AnchorWriter>>,
}

impl<E> Clone for EventStore<E> {
    fn clone(&self) -> Self {
        EventStore {
            inner: Arc::clone(&self.inner),
        }
    }
}

impl<E> fmt::Debug for EventStore<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventStore")
            .field("path", &self.inner.path)
            .field("head", &*self.inner.head.borrow())
            .field("poisoned", &self.inner.shared.poisoned())
            .finish()
    }
}

impl<E> Drop for Inner<E> {
    fn drop(&mut self) {
        // Disconnect the queue: the writer answers what is still queued, then returns.
        drop(self.queue.take());
        if let Some(writer) = self.writer.take()
            && writer.join().is_err()
        {
            tracing::error!("the event store writer thread panicked");
        }
        drop(self.anchor.take());
    }
}

/// The answer to an enqueued append: resolves once the batch holding it is flushed (or
/// failed). Dropping it does not cancel the append.
#[derive(Debug)]
#[must_use = "the append happens anyway; await this to learn whether it is durable"]
pub struct PendingAppend {
    receiver: oneshot::Receiver<Result<AppendOutcome, AppendError>>,
}

impl PendingAppend {
    fn ready(result: Result<AppendOutcome, AppendError>) -> Self {
        let (sender, receiver) = oneshot::channel();
        // The receiver is alive right here, so this cannot fail.
        let _ = sender.send(result);
        PendingAppend { receiver }
    }

    /// Blocks the current thread until the append is durable (or failed), for callers
    /// outside an async runtime. Panics if called from inside one (like tokio's
    /// `blocking_recv`); await the `PendingAppend` there instead.
    pub fn wait(self) -> Result<AppendOutcome, AppendError> {
        self.receiver
            .blocking_recv()
            .unwrap_or(Err(AppendError::Store(StoreError::WriterStopped)))
    }
}

impl Future for PendingAppend {
    type Output = Result<AppendOutcome, AppendError>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        Pin::new(&mut self.receiver)
            .poll(cx)
            .map(|answer| answer.unwrap_or(Err(AppendError::Store(StoreError::WriterStopped))))
    }
}

impl<E> EventStore<E>
where
    E: Serialize + DeserializeOwned + Clone + Send + Sync + 'static,
{
    /// Opens (or creates) the store, verifies the tip record against the meta head and its
    /// indexes, and starts the writer (its admitting and committing threads). Refuses a store
    /// whose tip does not verify.
    pub fn open(config: StoreConfig) -> Result<Self, StoreError> {
        config.validate()?;
        let db = crate::open::open_db(
            &sled::Config::new()
                .path(&config.path)
                .cache_capacity(config.cache_capacity_bytes)
                // Durability comes from the writer's explicit flush per batch; a timer flush
                // would only add background I/O.
                .flush_every_ms(None)
                .mode(sled::Mode::HighThroughput),
        )?;
        let tree = db.open_tree(keys::TREE_NAME)?;
        check_format(&tree, &config.path)?;
        let sync = Arc::new(DiskSync::open(&config.path).map_err(sync_error)?);
        let (tip, page) = recover_tip::<E>(&tree)?;
        check_anchor(&tree, &config.path, tip.head())?;
        let anchor = Arc::new(AnchorWriter::start(config.path.clone()).map_err(sync_error)?);
        tracing::info!(path = %config.path.display(), head = %tip.head(), "event store opened");

        let (head_sender, head) = watch::channel(tip.head());
        let (queue, receiver) = sync_channel(config.queue_requests_max);
        let shared = Arc::new(Shared::new(tree.clone(), tip.sequence));
        let writer = writer::start(writer::Start {
            tree: tree.clone(),
            queue: receiver,
            head: head_sender,
            shared: Arc::clone(&shared),
            batch_events_max: config.batch_events_max,
            tip,
            page,
            sync: Arc::clone(&sync),
            anchor: Arc::clone(&anchor),
        })?;
        Ok(EventStore {
            inner: Arc::new(Inner {
                path: config.path,
                tree,
                queue: Some(queue),
                writer: Some(writer),
                head,
                shared,
                batch_events_max: config.batch_events_max,
                sync,
                anchor: Some(anchor),
            }),
        })
    }

    /// Queues an append and returns at once with the future of its answer. Requests are
    /// sequenced in the order of `enqueue` calls. Blocks while the queue is full
    /// (backpressure; at most until the writer finishes its current batch).
    ///
    /// The caller keeps the contract of [`AppendRequest`] — a new request id, the stream
    /// version that follows the requests it enqueued before — which takes one caller deciding
    /// in `enqueue` order (ledgerd decides under one lock). A request that breaks it stops the
    /// store: it and every request after it fail with [`StoreError::ContractBroken`] or
    /// [`StoreError::Poisoned`], and so does the batch it would have joined.
    ///
    /// A malformed request is answered at once with `AppendError::Invalid` through the
    /// returned future. `Err` here means the store cannot take appends at all.
    pub fn enqueue(&self, request: AppendRequest<E>) -> Result<PendingAppend, StoreError> {
        if let Some(reason) = self.inner.shared.poisoned() {
            return Err(StoreError::Poisoned(reason.to_string()));
        }
        if let Err(reason) = check_request(&request, self.inner.batch_events_max) {
            return Ok(PendingAppend::ready(Err(AppendError::Invalid(reason))));
        }
        let queue = self.inner.queue.as_ref().ok_or(StoreError::WriterStopped)?;
        let (reply, receiver) = oneshot::channel();
        queue
            .send(Queued { request, reply })
            .map_err(|_| StoreError::WriterStopped)?;
        self.inner.shared.count_enqueued();
        Ok(PendingAppend { receiver })
    }

    /// Checks everything about `request` the store would refuse it for without looking at its
    /// state — and, beyond [`EventStore::enqueue`]'s checks, that each event's payload can be
    /// stored and read back by every reader ([`codec::check_payload`]). A writer that commits
    /// to a request before the store answers (ledgerd applies its events to its state) calls
    /// this first, so that nothing it commits to is refused or written unreadable. `Err` is the
    /// reason.
    pub fn check_request(&self, request: &AppendRequest<E>) -> Result<(), String> {
        check_request(request, self.inner.batch_events_max)?;
        for (index, event) in request.events.iter().enumerate() {
            codec::check_payload(&event.payload).map_err(|e| format!("event {index}: {e}"))?;
        }
        Ok(())
    }

    /// Enqueues and waits until the append is durable.
    pub async fn append(&self, request: AppendRequest<E>) -> Result<AppendOutcome, AppendError> {
        self.enqueue(request)?.await
    }

    /// The stored answer of a committed (durable) request: what the caller answers a resend
    /// with once the request is no longer in flight.
    pub fn lookup_request(
        &self,
        request_id: &[u8; 16],
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        let head = self.head();
        let Some(first) = self.inner.shared.index()?.page_of(request_id) else {
            return Ok(None);
        };
        let record = requests::find(&self.inner.tree, first, request_id)?;
        Ok((record.outcome.last_sequence <= head.sequence).then_some(record))
    }

    /// The heap bytes of the in-memory request index (which page holds each request's
    /// idempotency record, where each stream's events are), reading it first if nothing has
    /// needed it yet.
    pub fn request_index_bytes(&self) -> Result<usize, StoreError> {
        Ok(self.inner.shared.index()?.heap_bytes())
    }

    /// Why the store refuses appends, if it does: a write, flush or sync failed (only
    /// reopening the store, which verifies its tip, takes appends again).
    pub fn poisoned(&self) -> Option<String> {
        self.inner.shared.poisoned().map(str::to_string)
    }

    /// The last durable event's sequence and hash.
    pub fn head(&self) -> Head {
        *self.inner.head.borrow()
    }

    /// Counters of what was committed since open.
    pub fn stats(&self) -> StoreStats {
        self.inner.shared.stats()
    }

    /// A receiver of the head, updated after every durable batch.
    pub fn subscribe(&self) -> watch::Receiver<Head> {
        self.inner.head.clone()
    }

    /// The durable version of a stream; 0 if it has no events.
    pub fn stream_version(&self, stream: &str) -> Result<u64, StoreError> {
        check_stream(stream).map_err(StoreError::InvalidName)?;
        let head = self.head();
        // The index may already hold the batch the head is about to cover.
        Ok(self
            .inner
            .shared
            .index()?
            .stream_version_at(stream, head.sequence))
    }

    /// Up to `limit` durable events of `stream` from `from_version` (0 reads from 1).
    pub fn read_stream(
        &self,
        stream: &str,
        from_version: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent<E>>, StoreError> {
        check_stream(stream).map_err(StoreError::InvalidName)?;
        let head = self.head();
        let from = from_version.max(1);
        let runs = self.inner.shared.index()?.runs_from(stream, from, limit);
        let mut events = Vec::new();
        for run in runs {
            for version in run.first_version.max(from)..=run.last_version() {
                let sequence = run.sequence_of(version);
                if events.len() >= limit || sequence > head.sequence {
                    return Ok(events);
                }
                let event = self.load(sequence)?;
                if event.stream != stream || event.version != version {
                    return Err(StoreError::Corrupt(format!(
                        "the requests put {stream:?} v{version} at event {sequence}, which is \
                         {:?} v{}",
                        event.stream, event.version
                    )));
                }
                events.push(event);
            }
        }
        Ok(events)
    }

    /// Up to `limit` durable events from global sequence `from_sequence` (0 reads from 1).
    pub fn read_all(
        &self,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<RecordedEvent<E>>, StoreError> {
        let mut events = Vec::new();
        for entry in self.scan(from_sequence, limit) {
            let (sequence, value) = entry?;
            events.push(decode_event(sequence, &value)?);
        }
        Ok(events)
    }

    /// Up to `limit` durable events exactly as stored, from `from_sequence`; not verified
    /// (that is the auditor's job: see [`codec::chain_hash`] and [`codec::decode_raw`]).
    pub fn read_raw(&self, from_sequence: u64, limit: usize) -> Result<Vec<RawEvent>, StoreError> {
        let mut events = Vec::new();
        for entry in self.scan(from_sequence, limit) {
            let (sequence, value) = entry?;
            let (body, hash) = codec::split_value(&value)
                .map_err(|e| StoreError::Corrupt(format!("event {sequence}: {e}")))?;
            events.push(RawEvent {
                sequence,
                body: body.to_vec(),
                hash,
            });
        }
        Ok(events)
    }

    /// Up to `limit` durable events from `from_sequence` as the bytes stored under them
    /// (body ‖ hash, see [`codec::split_value`]), and at most about `bytes_max` of them (one
    /// event at least); not decoded, not verified. What `ReadStored` sends.
    pub fn read_values(
        &self,
        from_sequence: u64,
        limit: usize,
        bytes_max: usize,
    ) -> Result<Vec<sled::IVec>, StoreError> {
        let mut values = Vec::new();
        let mut bytes = 0;
        for entry in self.scan(from_sequence, limit) {
            let (_, value) = entry?;
            bytes += value.len();
            values.push(value);
            if bytes >= bytes_max {
                break;
            }
        }
        Ok(values)
    }

    /// The chain hashes of up to `limit` durable events from `from_sequence`, in order: what
    /// a Merkle tree over the log needs, without decoding the events.
    pub fn read_hashes(
        &self,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<[u8; 32]>, StoreError> {
        let mut hashes = Vec::new();
        for entry in self.scan(from_sequence, limit) {
            let (sequence, value) = entry?;
            let (_, hash) = codec::split_value(&value)
                .map_err(|e| StoreError::Corrupt(format!("event {sequence}: {e}")))?;
            hashes.push(hash);
        }
        Ok(hashes)
    }

    /// Stores a signed checkpoint of the log at `sequence` (opaque bytes: the store does not
    /// interpret them) and flushes it. A checkpoint already stored at `sequence` is replaced.
    pub fn put_checkpoint(&self, sequence: u64, bytes: &[u8]) -> Result<(), StoreError> {
        self.inner
            .tree
            .insert(keys::checkpoint(sequence), bytes.to_vec())?;
        self.flush()
    }

    /// The last stored checkpoint's sequence (0: none), without reading the others.
    pub fn last_checkpoint(&self) -> Result<u64, StoreError> {
        crate::offline::last_checkpoint(&self.inner.tree)
    }

    /// Up to `limit` stored checkpoints from `from_sequence`, in sequence order.
    pub fn checkpoints(
        &self,
        from_sequence: u64,
        limit: usize,
    ) -> Result<Vec<(u64, Vec<u8>)>, StoreError> {
        crate::offline::checkpoints(&self.inner.tree, from_sequence, limit)
    }

    /// One durable event by global sequence.
    pub fn get(&self, sequence: u64) -> Result<Option<RecordedEvent<E>>, StoreError> {
        if sequence == 0 || sequence > self.head().sequence {
            return Ok(None);
        }
        self.load(sequence).map(Some)
    }

    /// Recomputes every hash from the stored bytes, from sequence 1 to the durable head, and
    /// checks each event's `prev_hash`, its sequence and that the chain ends at the head.
    pub fn verify_chain(&self) -> Result<Head, ChainError> {
        let head = self.head();
        let mut prev_hash = [0u8; HASH_LEN];
        let mut expected = 1u64;
        for entry in self.scan_stored(1, head.sequence) {
            let (sequence, value) = entry?;
            if sequence != expected {
                return Err(ChainError::Missing {
                    sequence: expected,
                    found: Some(sequence),
                });
            }
            prev_hash = codec::verify_stored_link::<E>(sequence, &prev_hash, &value)?;
            expected += 1;
        }
        if expected != head.sequence + 1 {
            return Err(ChainError::Missing {
                sequence: expected,
                found: None,
            });
        }
        if prev_hash != head.hash {
            return Err(ChainError::HeadMismatch {
                sequence: head.sequence,
                expected: head.hash,
                found: prev_hash,
            });
        }
        Ok(head)
    }

    /// A named counter; 0 if never set.
    pub fn cursor(&self, name: &str) -> Result<u64, StoreError> {
        check_cursor_name(name)?;
        match self.inner.tree.get(keys::cursor(name))? {
            None => Ok(0),
            Some(bytes) => keys::decode_u64(&bytes)
                .ok_or_else(|| StoreError::Corrupt(format!("cursor {name:?}"))),
        }
    }

    /// Sets a named counter. Not flushed by itself: it becomes durable with the next append
    /// batch or [`EventStore::flush`] (a cursor that lags after a crash only repeats work).
    pub fn set_cursor(&self, name: &str, sequence: u64) -> Result<(), StoreError> {
        check_cursor_name(name)?;
        self.inner
            .tree
            .insert(keys::cursor(name), keys::encode_u64(sequence).to_vec())?;
        Ok(())
    }

    /// Flushes everything sled holds (cursors included) to stable storage.
    pub fn flush(&self) -> Result<(), StoreError> {
        self.inner.tree.flush()?;
        self.inner.sync.sync().map_err(sync_error)
    }

    /// Reads and decodes an event the caller knows is durable.
    fn load(&self, sequence: u64) -> Result<RecordedEvent<E>, StoreError> {
        let value = pages::value_of(&self.inner.tree, sequence)
            .map_err(|e| StoreError::Corrupt(format!("the page of event {sequence}: {e}")))?
            .ok_or_else(|| StoreError::Corrupt(format!("event {sequence} is missing")))?;
        decode_event(sequence, &value)
    }

    /// Stored events from `from_sequence` up to the durable head, at most `limit`, checking
    /// that sequences are gapless and that the pages do not end before the head (sled, on a
    /// damaged tree, can end a range scan early without an error).
    fn scan(
        &self,
        from_sequence: u64,
        limit: usize,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> {
        let from = from_sequence.max(1);
        let head = self.head().sequence;
        // The last event the scan must reach: the head, or the limit's worth before it.
        let last = head.min(from.saturating_add(limit as u64).saturating_sub(1));
        let mut stored = self.scan_stored(from, head).take(limit);
        let mut expected = from;
        let mut failed = false;
        std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let next = match stored.next() {
                Some(Ok((sequence, value))) if sequence == expected => {
                    expected += 1;
                    return Some(Ok((sequence, value)));
                }
                Some(Ok((sequence, _))) => StoreError::Corrupt(format!(
                    "expected event {expected}, found event {sequence}"
                )),
                Some(Err(error)) => error,
                None if expected <= last => StoreError::Corrupt(format!(
                    "the log's pages end before event {expected}, though the head is {head}"
                )),
                None => return None,
            };
            failed = true;
            Some(Err(next))
        })
    }

    /// Stored events named `from..=to`, as they are (gaps included): from the page holding
    /// `from` to the last page starting at or before `to`.
    fn scan_stored(
        &self,
        from: u64,
        to: u64,
    ) -> impl Iterator<Item = Result<(u64, sled::IVec), StoreError>> {
        let tree = &self.inner.tree;
        // The page holding `from` starts at or before it; the end bound is never below it.
        let (start, failed) = match pages::page_holding(tree, from) {
            Ok(Some((key, _))) => (key, None),
            Ok(None) => (sled::IVec::from(&keys::event(from)), None),
            Err(error) => (
                sled::IVec::from(&keys::event(from)),
                Some(Err(error.into())),
            ),
        };
        // sled refuses inverted bounds; an empty range takes nothing.
        let take = if from > to { 0 } else { usize::MAX };
        let pages = tree.range(start..=sled::IVec::from(&keys::event(to.max(from))));
        failed.into_iter().chain(
            pages::Events::new(pages)
                .skip_while(move |entry| matches!(entry, Ok((sequence, _)) if *sequence < from))
                .take_while(move |entry| !matches!(entry, Ok((sequence, _)) if *sequence > to))
                .take(take),
        )
    }
}

/// Decodes a stored event (verifying its hash against its recorded `prev_hash`) and checks
/// it is the event its page entry names.
fn decode_event<E: DeserializeOwned>(
    sequence: u64,
    value: &[u8],
) -> Result<RecordedEvent<E>, StoreError> {
    let event: RecordedEvent<E> = codec::decode_value(value)
        .map_err(|e| StoreError::Corrupt(format!("event {sequence}: {e}")))?;
    if event.sequence != sequence {
        return Err(StoreError::Corrupt(format!(
            "event {sequence} records sequence {}",
            event.sequence
        )));
    }
    Ok(event)
}

/// Checks what can be checked without the store's state. `Err` is the reason it is invalid.
fn check_request<E>(request: &AppendRequest<E>, batch_events_max: usize) -> Result<(), String> {
    check_stream(&request.stream)?;
    let count = request.events.len();
    if count == 0 {
        return Err("no events".to_string());
    }
    if count > batch_events_max {
        return Err(format!(
            "{count} events, more than the {batch_events_max} a batch can hold"
        ));
    }
    if request.actor.len() > ACTOR_BYTES_MAX {
        return Err(format!("actor is longer than {ACTOR_BYTES_MAX} bytes"));
    }
    let mut event_ids = HashSet::with_capacity(count);
    for (index, event) in request.events.iter().enumerate() {
        if event.event_type.is_empty() || event.event_type.len() > EVENT_TYPE_BYTES_MAX {
            return Err(format!(
                "event {index}: event type must be 1..={EVENT_TYPE_BYTES_MAX} bytes"
            ));
        }
        if !event_ids.insert(event.event_id) {
            return Err(format!(
                "event {index}: event id repeated within the request"
            ));
        }
    }
    Ok(())
}

/// Marks a new store with the format marker; refuses a tree that is not ours, or of another
/// format (one of an earlier format, at `path`, with how to upgrade it).
fn check_format(tree: &sled::Tree, path: &Path) -> Result<(), StoreError> {
    match tree.get(keys::meta_format())? {
        Some(marker) if marker.as_ref() == keys::FORMAT_MARKER => Ok(()),
        Some(marker) if crate::upgrade::is_earlier_format(&marker) => {
            Err(crate::upgrade::earlier_format_refused(path, &marker))
        }
        Some(marker) => Err(StoreError::Corrupt(format!(
            "store format {:?}, but this build reads {:?} only",
            String::from_utf8_lossy(&marker),
            String::from_utf8_lossy(keys::FORMAT_MARKER)
        ))),
        None if tree.is_empty() => {
            tree.insert(keys::meta_format(), keys::FORMAT_MARKER)?;
            tree.flush()?;
            Ok(())
        }
        None if tree.contains_key(keys::meta_restoring())? => Err(StoreError::Corrupt(format!(
            "{} holds a restore that did not finish: move it aside and run `icsctl store \
             restore` again into an empty directory",
            path.display()
        ))),
        None => Err(StoreError::Corrupt(
            "the tree holds data but no format marker".to_string(),
        )),
    }
}

/// Refuses a log that ends before the store's anchor, or holds another event at its
/// sequence; anchors a store that has none (a new one, or one written before anchors) at `tip`.
fn check_anchor(tree: &sled::Tree, dir: &Path, tip: Head) -> Result<(), StoreError> {
    let diverged = |reason: String| StoreError::Diverged {
        dir: dir.display().to_string(),
        reason,
    };
    let anchored = anchor::read(dir).map_err(|e| diverged(e.to_string()))?;
    let Some(anchored) = anchored else {
        if tip.sequence > 0 {
            tracing::warn!(
                dir = %dir.display(),
                head = tip.sequence,
                "the event store had no anchor: anchoring it at its head as found"
            );
        }
        return anchor::write(dir, tip).map_err(sync_error);
    };
    if tip.sequence < anchored.sequence {
        return Err(diverged(format!(
            "its log ends at event {}, but events up to {} were recorded (events {}..={} are \
             missing)",
            tip.sequence,
            anchored.sequence,
            tip.sequence + 1,
            anchored.sequence
        )));
    }
    if anchored.sequence == 0 {
        return Ok(());
    }
    let value = pages::value_of(tree, anchored.sequence)
        .map_err(|e| diverged(format!("event {}: {e}", anchored.sequence)))?
        .ok_or_else(|| diverged(format!("event {} is missing", anchored.sequence)))?;
    let (_, hash) = codec::split_value(&value)
        .map_err(|e| diverged(format!("event {}: {e}", anchored.sequence)))?;
    if hash != anchored.hash {
        return Err(diverged(format!(
            "event {} has hash {}, but the event recorded there had {}",
            anchored.sequence,
            hex::encode(hash),
            hex::encode(anchored.hash)
        )));
    }
    Ok(())
}

/// Finds the chain tip and checks that the last event, the meta head, the event before it and
/// the tip's idempotency record all agree. Also the last page,
/// which the writer goes on filling.
fn recover_tip<E: DeserializeOwned>(tree: &sled::Tree) -> Result<(Tip, OpenPage), StoreError> {
    let corrupt = |what: String| StoreError::Corrupt(what);
    let last = tree
        .scan_prefix([keys::PREFIX_EVENT])
        .next_back()
        .transpose()?;
    let meta = tree.get(keys::meta_head())?;
    let (key, page, meta) = match (last, meta) {
        (None, None) => return Ok((Tip::EMPTY, OpenPage::empty(1))),
        (None, Some(_)) => return Err(corrupt("a meta head but no events".to_string())),
        (Some(_), None) => return Err(corrupt("events but no meta head".to_string())),
        (Some((key, page)), Some(meta)) => (key, page, meta),
    };
    let first = keys::event_sequence(&key).ok_or_else(|| corrupt("last page key".into()))?;
    let open = OpenPage::stored(first, &page).map_err(corrupt)?;
    let (sequence, value) = pages::Events::new(std::iter::once(Ok((key, page))))
        .last()
        .ok_or_else(|| corrupt(format!("the last page (of event {first}) is empty")))??;
    let tip: RecordedEvent<E> = decode_event(sequence, &value)?;
    let (meta_sequence, meta_hash) =
        keys::decode_meta_head(&meta).ok_or_else(|| corrupt("meta head value".into()))?;
    if (meta_sequence, meta_hash) != (sequence, tip.hash) {
        return Err(corrupt(format!(
            "meta head {meta_sequence} does not match the last event {sequence}"
        )));
    }
    check_previous_link(tree, &tip)?;
    check_tip_indexes(tree, &tip)?;
    let tip = Tip {
        sequence,
        hash: tip.hash,
        recorded_at_us: tip.recorded_at_us,
    };
    Ok((tip, open))
}

/// The tip's `prev_hash` must be the stored hash of the event before it (zeroes for the first).
fn check_previous_link<E>(tree: &sled::Tree, tip: &RecordedEvent<E>) -> Result<(), StoreError> {
    let previous_hash = match tip.sequence {
        1 => [0u8; HASH_LEN],
        sequence => {
            let value = pages::value_of(tree, sequence - 1)
                .map_err(|e| {
                    StoreError::Corrupt(format!("the page of event {}: {e}", sequence - 1))
                })?
                .ok_or_else(|| {
                    StoreError::Corrupt(format!("event {} before the tip is missing", sequence - 1))
                })?;
            codec::split_value(&value)
                .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", sequence - 1)))?
                .1
        }
    };
    if previous_hash != tip.prev_hash {
        return Err(StoreError::Corrupt(format!(
            "tip {} does not chain to the event before it",
            tip.sequence
        )));
    }
    Ok(())
}

/// The tip is the last event of the last committed request: its idempotency record, the
/// last of the last request page, must end at it.
fn check_tip_indexes<E>(tree: &sled::Tree, tip: &RecordedEvent<E>) -> Result<(), StoreError> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("tip {}: {what}", tip.sequence));
    let (request_id, record) =
        requests::last(tree)?.ok_or_else(|| corrupt("idempotency record missing"))?;
    let outcome = record.outcome;
    if (outcome.last_sequence, outcome.hash, outcome.last_version)
        != (tip.sequence, tip.hash, tip.version)
        || outcome.stream != tip.stream
        || request_id != tip.request_id
    {
        return Err(corrupt("idempotency record disagrees"));
    }
    Ok(())
}
