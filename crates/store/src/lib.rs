//! The ledger's event store: append-only, hash-chained, on sled 0.34, with group commit,
//! idempotent appends and optimistic concurrency. Generic over the payload type (the ledger
//! uses `domain::Event`).
//!
//! # Shape, and why
//!
//! - **One sequencer, group commit** (`writer`): callers [`EventStore::enqueue`] into a
//!   bounded queue; one `std::thread` decides each request in order as it comes (sequences,
//!   versions, hashes) into the batch being filled, and a second writes that batch (up to
//!   [`StoreConfig::batch_events_max`] events) with one atomic `apply_batch` and one flush as
//!   soon as the one before is durable, and only then answers. Throughput comes from sharing
//!   the fsync and from deciding the next batch while the last is flushed, correctness from
//!   having a single sequencer.
//! - **One sled tree** (`keys`), with one-byte key prefixes, so that a whole batch —
//!   event pages, the batch's request page (its idempotency records), meta head — is
//!   atomic.
//! - **One codec** ([`codec`]): canonical bincode 2 bytes of a versioned envelope;
//!   `hash = SHA-256(prev_hash ‖ body)`; golden-bytes tests freeze the format.
//! - **Durable reads only**: reads never return an event past [`EventStore::head`], which the
//!   writer publishes after the flush.
//! - **Fail stop**: a storage error fails the whole batch and poisons the store; reopening
//!   (which verifies the tip) is the only way back.
//!
//! # Layout
//!
//! - [`config`]: [`StoreConfig`] and every limit.
//! - [`model`]: the public request, outcome and event types.
//! - [`error`]: [`StoreError`], [`AppendError`], [`ChainError`].
//! - `store`: [`EventStore`]: open and recovery, enqueue, reads, chain verification.
//! - `writer`: the admitting and the committing thread.
//! - [`codec`], `keys`, [`pages`], `requests`: the on-disk format (events sixteen to a sled
//!   key; a batch's idempotency records under one key, indexed in memory).
//! - [`offline`]: [`RawLog`], a stopped store's raw values for an auditor.
//! - [`upgrade`]: a stopped store of an earlier format copied into this one.
//! - [`restore`]: a lost or damaged store rebuilt from a replica of its log.

pub mod anchor;
pub mod codec;
pub mod config;
pub mod copy;
mod durable;
pub mod error;
mod frames;
mod keys;
pub mod model;
pub mod offline;
mod open;
pub mod pages;
mod requests;
pub mod restore;
mod store;
pub mod upgrade;
mod writer;

pub use config::StoreConfig;
pub use copy::PrivateCopy;
pub use error::{AppendError, ChainError, StoreError};
pub use keys::event as event_key;
pub use model::{
    AppendOutcome, AppendRequest, ExpectedVersion, Head, IdempotencyRecord, NewEvent, RawEvent,
    RecordedEvent, StoreStats,
};
pub use offline::RawLog;
pub use open::{LOCK_WAIT, open_db, open_dir};
pub use restore::{RELAY_CHECKPOINT_CURSOR, RELAY_CURSOR};
pub use store::{EventStore, PendingAppend};
