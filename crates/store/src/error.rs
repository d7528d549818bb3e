//! Errors, split by who has to act on them.
//!
//! - [`StoreError`]: the store itself failed or was misused (I/O, corruption, bad config, a
//!   caller that broke the append contract).
//! - [`AppendError`]: one append was refused; the store is fine unless it is `Store(..)`.
//! - [`ChainError`]: the hash chain does not verify; names the first bad sequence.
//!
//! All are `Clone` because one storage failure fails every request of a batch.

/// The store failed, or was asked something it cannot answer.
#[derive(Clone, Debug, thiserror::Error)]
pub enum StoreError {
    /// sled failed: I/O (a full or failing disk, permissions), which a restart may cure. sled's
    /// own reports of damage are [`StoreError::Corrupt`] (see the `From` impl).
    #[error("sled: {0}")]
    Sled(sled::Error),
    /// Stored data contradicts itself: a record does not decode, a hash does not verify, the
    /// meta head disagrees with the last event.
    #[error("the event store is corrupt: {0}")]
    Corrupt(String),
    /// The log on disk is not the one this store recorded: it ends before the anchor (the
    /// committed head kept outside sled, see [`crate::anchor`]) or holds another event at the
    /// anchor's sequence. The store must not be opened: that would serve, and extend, a
    /// shortened or forked log.
    #[error(
        "the event store in {dir} is not the log it recorded: {reason}. Do not start on it: \
         move it aside and rebuild it from the JetStream stream with `icsctl store restore`"
    )]
    Diverged { dir: String, reason: String },
    /// `fdatasync` of what a flush wrote failed: nothing of that flush is acknowledged.
    #[error("syncing the event store to disk: {0}")]
    Sync(String),
    /// A write or flush failed earlier, or a caller broke the append contract; nothing may be
    /// appended until the process restarts and reopening verifies the tip.
    #[error("the event store refuses appends after an earlier failure: {0}")]
    Poisoned(String),
    /// An append broke the contract its caller keeps (a request id already appended, or a
    /// stream version that does not follow on): the caller's view of the log is not the
    /// store's, so the store stops — it is poisoned — rather than write on either view.
    #[error("the event store stopped: its caller broke the append contract: {0}")]
    ContractBroken(String),
    /// The writer thread is gone (it panicked, or the store is shutting down).
    #[error("the event store's writer thread has stopped")]
    WriterStopped,
    #[error("invalid store configuration: {0}")]
    InvalidConfig(String),
    /// A stream id or cursor name that cannot be stored.
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("could not start the writer thread: {0}")]
    Spawn(String),
    /// A store that cannot be upgraded (see [`crate::upgrade`]).
    #[error("cannot upgrade the store: {0}")]
    Upgrade(String),
}

/// sled's errors as the store reports them: what sled says is damage — data it cannot read
/// back (`Corruption`), a file it does not understand (`Unsupported`), a state it calls a bug
/// (`ReportableBug`, also how a panic inside sled's recovery is reported: `crate::open`) — is
/// a damaged store, which restarting cannot mend; the rest stays sled's.
impl From<sled::Error> for StoreError {
    fn from(error: sled::Error) -> Self {
        match error {
            sled::Error::Corruption { .. }
            | sled::Error::Unsupported(_)
            | sled::Error::ReportableBug(_) => StoreError::Corrupt(format!(
                "sled cannot read it: {error}. Do not start on it: move it aside and rebuild it \
                 from the JetStream stream with `icsctl store restore`"
            )),
            other => StoreError::Sled(other),
        }
    }
}

/// Why an append was not committed.
#[derive(Clone, Debug, thiserror::Error)]
pub enum AppendError {
    /// The request is malformed: no events, too many events, a bad stream id, an oversized
    /// field, or a payload that cannot be encoded.
    #[error("invalid append: {0}")]
    Invalid(String),
    /// Storage failed, or the request broke the caller's contract: the store is poisoned and
    /// refuses further appends.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The hash chain does not verify.
#[derive(Clone, Debug, thiserror::Error)]
pub enum ChainError {
    /// The log skips a sequence (or an event sits under the wrong key).
    #[error("event {sequence}: missing (found {found:?} instead)")]
    Missing { sequence: u64, found: Option<u64> },
    /// The stored hash is not `SHA-256(prev_hash ‖ body)`.
    #[error(
        "event {sequence}: hash mismatch: recomputed {}, stored {}",
        hex::encode(.expected),
        hex::encode(.found)
    )]
    HashMismatch {
        sequence: u64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    /// The event's `prev_hash` is not the previous event's hash.
    #[error(
        "event {sequence}: prev_hash mismatch: previous event's hash {}, recorded {}",
        hex::encode(.expected),
        hex::encode(.found)
    )]
    PrevHashMismatch {
        sequence: u64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    /// The stored bytes hash correctly but do not decode, or contradict their key.
    #[error("event {sequence}: {reason}")]
    Malformed { sequence: u64, reason: String },
    /// The chain verifies up to the durable head, but its hash is not the head's.
    #[error(
        "event {sequence}: the chain's hash {} is not the durable head's {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    HeadMismatch {
        sequence: u64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl ChainError {
    /// The first sequence that failed to verify, where there is one.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            ChainError::Missing { sequence, .. }
            | ChainError::HashMismatch { sequence, .. }
            | ChainError::PrevHashMismatch { sequence, .. }
            | ChainError::Malformed { sequence, .. }
            | ChainError::HeadMismatch { sequence, .. } => Some(*sequence),
            ChainError::Store(_) => None,
        }
    }
}
