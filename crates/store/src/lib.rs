//! The ledger's event store: append-only, hash-chained, on sled 0.34, with group commit.
//! Generic over the payload type (the ledger uses `domain::Event`).
//!
//! # Shape, and why
//!
//! - **Its caller decides, the store records**: idempotency and expected versions are decided
//!   once, by the caller (ledgerd, under its lock, against its state): every request it
//!   enqueues has a new request id and the stream version that follows on. The store encodes,
//!   chains and writes; it checks that contract where it is cheap (the versions it tracks, the
//!   request ids it holds) and, if it is broken, stops ([`StoreError::ContractBroken`], then
//!   poisoned) rather than answer an error — two deciders that disagree cannot both be right.
//!   It keeps each request's outcome, so the caller can answer a resend from it
//!   ([`EventStore::lookup_request`]).
//! - **Group commit on two threads** (`writer`): callers [`EventStore::enqueue`] into a
//!   bounded queue; the admitting thread takes each request in order as it comes and gives
//!   its events their sequences, versions and hashes in the batch being filled, and the
//!   committing thread writes that batch (up to [`StoreConfig::batch_events_max`] events) with
//!   one atomic `apply_batch` and one flush as soon as the one before is durable, and only
//!   then answers. Throughput comes from sharing the fsync and from chaining the next batch
//!   while the last is flushed; a single thread assigns sequences, versions and hashes.
//! - **One sled tree** (`keys`), with one-byte key prefixes, so that a whole batch —
//!   event pages, the batch's request page (its idempotency records), meta head — is
//!   atomic.
//! - **One codec** ([`codec`]): canonical bincode 2 bytes of a versioned envelope;
//!   `hash = SHA-256(prev_hash ‖ body)`; golden-bytes tests freeze the format.
//! - **Durable reads only**: reads never return an event past [`EventStore::head`], which the
//!   writer publishes after the flush.
//! - **Fail stop**: a storage error, or a broken contract, fails the whole batch and poisons
//!   the store; reopening (which verifies the tip) is the only way back.
//!
//! # Layout
//!
//! - [`config`]: [`StoreConfig`] and every limit.
//! - [`model`]: the public request, outcome and event types.
//! - [`error`]: [`StoreError`], [`AppendError`], [`ChainError`].
//! - `store`: [`EventStore`]: open and recovery, enqueue, reads, chain verification.
//! - `writer`: the admitting and the committing thread, and the contract's checks.
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
    AppendOutcome, AppendRequest, Head, IdempotencyRecord, NewEvent, RawEvent, RecordedEvent,
    StoreStats,
};
pub use offline::RawLog;
pub use open::{LOCK_WAIT, open_db, open_dir};
pub use restore::{RELAY_CHECKPOINT_CURSOR, RELAY_CURSOR};
pub use store::{EventStore, PendingAppend};
