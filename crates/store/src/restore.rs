//! Rebuilding a lost or damaged store from a replica of its log — the JetStream stream its relay
//! published every event to — into a new directory.
//!
//! A replica carries every field of every event, so the canonical body each chain hash covers
//! is rebuilt from them ([`codec::canonical_body`]) and checked as the store checks its own
//! log: the hash it states, the link to the previous event, the next sequence, and that every
//! reader can decode it. What is written is therefore byte for byte what the lost store held,
//! up to the same head hash. The idempotency records are rebuilt from the events (a request's
//! events are consecutive and carry its id); only the fingerprint of the command that recorded
//! them is not in an event, so a restored record holds [`FINGERPRINT_UNKNOWN`] and a resend of
//! that request id is answered as the duplicate it is, whatever its command says.
//!
//! Like [`crate::upgrade`], it writes a new directory and only marks it as a store of this
//! format, and anchors it, once everything is flushed and synced: an interrupted restore leaves
//! a directory that ledgerd refuses, never a shorter log it would start on.

use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec;
use crate::durable::{DiskSync, sync_error};
use crate::error::StoreError;
use crate::keys;
use crate::model::{AppendOutcome, Head, IdempotencyRecord, RecordedEvent};
use crate::pages::OpenPage;
use crate::requests::{self, Index, Written};

/// The command fingerprint of an idempotency record rebuilt from a replica, which does not
/// carry it ([`IdempotencyRecord::matches`] accepts any command for it).
pub const FINGERPRINT_UNKNOWN: [u8; 32] = [0; 32];

/// The relay's cursor in a store's meta: the last sequence its stream acknowledged.
pub const RELAY_CURSOR: &str = "relay";

/// The relay's cursor of signed checkpoints: the last one its stream acknowledged.
pub const RELAY_CHECKPOINT_CURSOR: &str = "relay-checkpoints";

/// Events written per sled batch.
const BATCH_EVENTS: usize = 4_096;

/// Idempotency records per request page.
const PAGE_REQUESTS: usize = 64;

/// Why a restore stopped: the replica is not a whole, verifiable log, or storage failed.
#[derive(Debug, thiserror::Error)]
pub enum RestoreError {
    #[error("event {sequence} of the replica: {reason}")]
    Event { sequence: u64, reason: String },
    #[error("the checkpoint at {sequence}: {reason}")]
    Checkpoint { sequence: u64, reason: String },
    #[error("{} already exists and is not empty: a restore writes a new store", .0.display())]
    Occupied(PathBuf),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// What a finished restore wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Restored {
    pub head: Head,
    /// Idempotency records rebuilt (one per request).
    pub requests: u64,
    pub checkpoints: u64,
}

/// A store being rebuilt from a replica, one event at a time in sequence order.
pub struct Restore<E> {
    dir: PathBuf,
    tree: sled::Tree,
    page: OpenPage,
    /// Stored values (`body ‖ hash`) not yet in a sled batch.
    pending: Vec<(u64, Vec<u8>)>,
    batch: sled::Batch,
    head: Head,
    /// The request whose events are arriving.
    open: Option<OpenRequest>,
    /// Records of closed requests not yet in a request page: `(request id, encoded record)`.
    records: Vec<([u8; 16], Vec<u8>)>,
    /// The first sequence of the first request in `records` (the request page's key).
    records_from: u64,
    index: Index,
    requests: u64,
    checkpoints: u64,
    _event: PhantomData<E>,
}

/// One request's events, as far as they have arrived.
struct OpenRequest {
    request_id: [u8; 16],
    outcome: AppendOutcome,
    actor: String,
    correlation_id: [u8; 16],
}

impl<E: Serialize + DeserializeOwned + Clone> Restore<E> {
    /// Starts a store in `dir`, which must not exist or be empty.
    pub fn create(dir: &Path) -> Result<Self, RestoreError> {
        if dir.exists() && std::fs::read_dir(dir).map_or(true, |mut d| d.next().is_some()) {
            return Err(RestoreError::Occupied(dir.to_path_buf()));
        }
        let db = crate::open::open_db(
            &sled::Config::new()
                .path(dir)
                .flush_every_ms(None)
                .mode(sled::Mode::HighThroughput),
        )
        .map_err(StoreError::from)?;
        let tree = db.open_tree(keys::TREE_NAME).map_err(StoreError::from)?;
        tree.insert(keys::meta_restoring(), b"in progress")
            .and_then(|_| tree.flush())
            .map_err(StoreError::from)?;
        Ok(Restore {
            dir: dir.to_path_buf(),
            tree,
            page: OpenPage::empty(1),
            pending: Vec::with_capacity(BATCH_EVENTS),
            batch: sled::Batch::default(),
            head: Head::EMPTY,
            open: None,
            records: Vec::new(),
            records_from: 1,
            index: Index::default(),
            requests: 0,
            checkpoints: 0,
            _event: PhantomData,
        })
    }

    /// The head restored so far.
    pub fn head(&self) -> Head {
        self.head
    }

    /// Adds the next event of the log, as the replica holds it, after checking that its hash
    /// is the one its content gives, that it links to the last event and that it is the next.
    pub fn push(&mut self, event: &RecordedEvent<E>) -> Result<(), RestoreError> {
        let sequence = self.head.sequence + 1;
        let refuse = |reason: String| RestoreError::Event {
            sequence: event.sequence,
            reason,
        };
        if event.sequence != sequence {
            return Err(refuse(format!(
                "it comes after event {}, where event {sequence} belongs (the replica lacks \
                 events or holds them out of order)",
                self.head.sequence
            )));
        }
        let body = codec::canonical_body(event).map_err(|e| refuse(e.to_string()))?;
        codec::verify_link::<E>(sequence, &self.head.hash, &body, event.hash)
            .map_err(|e| refuse(e.to_string()))?;
        self.join_request(event).map_err(refuse)?;
        let mut value = body;
        value.extend_from_slice(&event.hash);
        self.pending.push((sequence, value));
        self.head = Head {
            sequence,
            hash: event.hash,
        };
        if self.pending.len() == BATCH_EVENTS {
            self.write_pending()?;
        }
        Ok(())
    }

    /// Keeps a signed checkpoint (opaque bytes, checked by the caller) of an event already
    /// pushed.
    pub fn put_checkpoint(&mut self, sequence: u64, bytes: &[u8]) -> Result<(), RestoreError> {
        if sequence == 0 || sequence > self.head.sequence {
            return Err(RestoreError::Checkpoint {
                sequence,
                reason: format!("the log restored so far ends at {}", self.head.sequence),
            });
        }
        self.batch.insert(&keys::checkpoint(sequence), bytes);
        self.checkpoints += 1;
        Ok(())
    }

    /// Writes what is left, marks the relay as having published everything (the replica holds
    /// it), flushes and syncs, then marks the directory as a store and anchors it at its head.
    pub fn finish(mut self, last_checkpoint: u64) -> Result<Restored, RestoreError> {
        if self.head.sequence == 0 {
            return Err(RestoreError::Event {
                sequence: 1,
                reason: "the replica holds no events: there is nothing to restore".to_string(),
            });
        }
        self.close_request().map_err(|reason| RestoreError::Event {
            sequence: self.head.sequence,
            reason,
        })?;
        self.write_records();
        self.write_pending()?;
        let mut batch = std::mem::take(&mut self.batch);
        let head = self.head;
        batch.insert(
            keys::meta_head(),
            keys::encode_meta_head(head.sequence, &head.hash).to_vec(),
        );
        batch.insert(
            keys::cursor(RELAY_CURSOR),
            keys::encode_u64(head.sequence).to_vec(),
        );
        batch.insert(
            keys::cursor(RELAY_CHECKPOINT_CURSOR),
            keys::encode_u64(last_checkpoint).to_vec(),
        );
        self.tree.apply_batch(batch).map_err(StoreError::from)?;
        self.durable()?;
        let mut done = sled::Batch::default();
        done.remove(keys::meta_restoring());
        done.insert(keys::meta_format(), keys::FORMAT_MARKER);
        self.tree.apply_batch(done).map_err(StoreError::from)?;
        self.durable()?;
        crate::anchor::write(&self.dir, head).map_err(sync_error)?;
        Ok(Restored {
            head,
            requests: self.requests,
            checkpoints: self.checkpoints,
        })
    }

    fn durable(&self) -> Result<(), StoreError> {
        self.tree.flush()?;
        DiskSync::open(&self.dir)
            .and_then(|sync| sync.sync())
            .map_err(sync_error)
    }

    /// Adds `event` to the open request, or closes that and opens its own.
    fn join_request(&mut self, event: &RecordedEvent<E>) -> Result<(), String> {
        if let Some(open) = &mut self.open
            && open.request_id == event.request_id
        {
            let outcome = &mut open.outcome;
            if event.stream != outcome.stream
                || event.version != outcome.last_version + 1
                || event.recorded_at_us != outcome.recorded_at_us
                || event.actor != open.actor
                || event.correlation_id != open.correlation_id
            {
                return Err(format!(
                    "it is of request {} but does not follow that request's last event {} \
                     (stream, version, time, actor or correlation differ)",
                    hex::encode(event.request_id),
                    outcome.last_sequence
                ));
            }
            outcome.last_version = event.version;
            outcome.last_sequence = event.sequence;
            outcome.hash = event.hash;
            return Ok(());
        }
        self.close_request()?;
        if self.index.page_of(&event.request_id).is_some() {
            return Err(format!(
                "request {} already recorded earlier events",
                hex::encode(event.request_id)
            ));
        }
        self.open = Some(OpenRequest {
            request_id: event.request_id,
            outcome: AppendOutcome {
                stream: event.stream.clone(),
                first_version: event.version,
                last_version: event.version,
                first_sequence: event.sequence,
                last_sequence: event.sequence,
                hash: event.hash,
                recorded_at_us: event.recorded_at_us,
                duplicate: false,
            },
            actor: event.actor.clone(),
            correlation_id: event.correlation_id,
        });
        Ok(())
    }

    /// Turns the open request into an idempotency record, checked to follow the log and its
    /// stream as the store's index will check it.
    fn close_request(&mut self) -> Result<(), String> {
        let Some(open) = self.open.take() else {
            return Ok(());
        };
        if self.records.is_empty() {
            self.records_from = open.outcome.first_sequence;
        }
        self.index.add(
            self.records_from,
            open.request_id,
            Written::from(&open.outcome),
        )?;
        let record = IdempotencyRecord {
            command_hash: FINGERPRINT_UNKNOWN,
            outcome: open.outcome,
        };
        let encoded = codec::encode_idempotency(&record).map_err(|e| e.to_string())?;
        self.records.push((open.request_id, encoded));
        self.requests += 1;
        if self.records.len() == PAGE_REQUESTS {
            self.write_records();
        }
        Ok(())
    }

    /// Puts the closed requests' records into the batch as one request page.
    fn write_records(&mut self) {
        if self.records.is_empty() {
            return;
        }
        let mut page = Vec::new();
        for (request_id, record) in self.records.drain(..) {
            requests::push_entry(&mut page, &request_id, &record);
        }
        self.batch.insert(&keys::requests(self.records_from), page);
    }

    /// Lays the pending events out in pages and applies the batch.
    fn write_pending(&mut self) -> Result<(), StoreError> {
        let values = self
            .pending
            .iter()
            .map(|(sequence, value)| (*sequence, [value.as_slice()]));
        self.page.append(values, &mut self.batch);
        self.pending.clear();
        self.tree.apply_batch(std::mem::take(&mut self.batch))?;
        Ok(())
    }
}
