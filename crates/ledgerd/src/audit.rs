//! The ledger's audit side: the Merkle tree over the log, kept up to date as events are
//! committed, and the signed checkpoints.
//!
//! - [`AuditLog`] holds the RFC 6962 tree ([`merkle::Tree`]) of every committed event's chain
//!   hash, in memory. It is rebuilt at start-up from the stored hashes (reading only the last
//!   32 bytes of each value, no decoding) and then extended by [`run`] whenever the store's
//!   durable head moves — off the write path: an append never waits for the tree, and a
//!   proof is served from stored subtree hashes, never a full recomputation.
//! - [`run`] also signs a checkpoint (see `audit::Checkpoint`) every `every_events` events or
//!   `every` after the first unsigned event, whichever comes first, and once more when asked
//!   to stop; each is stored in the event store (`put_checkpoint`, flushed) and the relay is
//!   woken to publish it on `ics.<system>.audit.checkpoint`.

use std::sync::{Arc, RwLock};
use std::time::Duration;

use audit::{Checkpoint, SignedCheckpoint};
use domain::SystemId;
use ed25519_dalek::SigningKey;
use store::StoreError;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::ledger::Store;

/// Hashes read per page when rebuilding or extending the tree.
const PAGE: usize = 16_384;

/// The tree and the chain hash of its last event.
struct State {
    tree: merkle::Tree,
    last_hash: [u8; 32],
    /// The sequence of the last stored checkpoint (0: none).
    checkpointed: u64,
}

/// The Merkle tree over the committed log. Cheap to clone.
#[derive(Clone)]
pub struct AuditLog {
    state: Arc<RwLock<State>>,
}

/// The tree's current size, root and last chain hash.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TreeHead {
    pub size: u64,
    pub root: [u8; 32],
    pub chain_hash: [u8; 32],
}

/// An audit path and the tree it leads into.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Inclusion {
    pub path: Vec<[u8; 32]>,
    pub root: [u8; 32],
    pub size: u64,
}

/// A consistency proof and the two trees it relates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Consistency {
    pub path: Vec<[u8; 32]>,
    pub old_root: [u8; 32],
    pub new_root: [u8; 32],
    pub new_size: u64,
}

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ProofError {
    #[error("{field} must be between 1 and the tree's size {size}, not {value}")]
    OutOfRange {
        field: &'static str,
        value: u64,
        size: u64,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Tree(#[from] merkle::Error),
}

impl AuditLog {
    /// The tree of everything `store` holds.
    pub fn build(store: &Store) -> Result<AuditLog, StoreError> {
        let log = AuditLog {
            state: Arc::new(RwLock::new(State {
                tree: merkle::Tree::new(),
                last_hash: [0; 32],
                checkpointed: store.last_checkpoint()?,
            })),
        };
        log.catch_up(store)?;
        Ok(log)
    }

    /// Extends the tree to the store's durable head; returns the new size.
    pub fn catch_up(&self, store: &Store) -> Result<u64, StoreError> {
        loop {
            let from = self.size() + 1;
            let hashes = store.read_hashes(from, PAGE)?;
            let Some(last) = hashes.last().copied() else {
                return Ok(from - 1);
            };
            let mut state = write(&self.state);
            for hash in &hashes {
                state.tree.push_leaf_hash(audit::leaf(hash));
            }
            state.last_hash = last;
        }
    }

    /// The tree's size (its last sequence), without computing its root.
    pub fn size(&self) -> u64 {
        read(&self.state).tree.len()
    }

    pub fn head(&self) -> TreeHead {
        let state = read(&self.state);
        TreeHead {
            size: state.tree.len(),
            root: state.tree.root(),
            chain_hash: state.last_hash,
        }
    }

    /// The audit path of the event at `sequence` in the tree of `size` events (0: the current
    /// tree), and that tree's root and size.
    pub fn inclusion(&self, sequence: u64, size: u64) -> Result<Inclusion, ProofError> {
        let state = read(&self.state);
        let current = state.tree.len();
        let size = if size == 0 { current } else { size };
        if size == 0 || size > current {
            return Err(ProofError::OutOfRange {
                field: "tree_size",
                value: size,
                size: current,
            });
        }
        if sequence == 0 || sequence > size {
            return Err(ProofError::OutOfRange {
                field: "sequence",
                value: sequence,
                size,
            });
        }
        Ok(Inclusion {
            path: state.tree.inclusion_proof(sequence - 1, size)?,
            root: state.tree.root_at(size)?,
            size,
        })
    }

    /// The consistency proof between the trees of `old` and `new` events (`new` 0: the current
    /// tree), with both roots and the new size.
    pub fn consistency(&self, old: u64, new: u64) -> Result<Consistency, ProofError> {
        let state = read(&self.state);
        let current = state.tree.len();
        let new = if new == 0 { current } else { new };
        if new == 0 || new > current {
            return Err(ProofError::OutOfRange {
                field: "new_size",
                value: new,
                size: current,
            });
        }
        if old == 0 || old > new {
            return Err(ProofError::OutOfRange {
                field: "old_size",
                value: old,
                size: new,
            });
        }
        Ok(Consistency {
            path: state.tree.consistency_proof(old, new)?,
            old_root: state.tree.root_at(old)?,
            new_root: state.tree.root_at(new)?,
            new_size: new,
        })
    }

    /// Signs a checkpoint of the tree as it stands and stores it, unless the last stored
    /// checkpoint already covers it (or the log is empty). Returns what was signed.
    pub fn checkpoint(
        &self,
        store: &Store,
        system: &SystemId,
        key: &SigningKey,
    ) -> Result<Option<SignedCheckpoint>, ProofError> {
        let size = self.size();
        if size == 0 || self.checkpointed() >= size {
            return Ok(None);
        }
        self.checkpoint_at(store, system, key, size).map(Some)
    }

    /// Signs and stores a checkpoint of the tree of the first `sequence` events (which must
    /// not be more than the tree holds).
    pub fn checkpoint_at(
        &self,
        store: &Store,
        system: &SystemId,
        key: &SigningKey,
        sequence: u64,
    ) -> Result<SignedCheckpoint, ProofError> {
        let merkle_root = read(&self.state).tree.root_at(sequence)?;
        let chain_hash =
            store
                .read_hashes(sequence, 1)?
                .first()
                .copied()
                .ok_or(ProofError::OutOfRange {
                    field: "sequence",
                    value: sequence,
                    size: self.size(),
                })?;
        let signed = Checkpoint {
            system: system.clone(),
            sequence,
            chain_hash,
            merkle_root,
            signed_at_us: jiff::Timestamp::now().as_microsecond(),
        }
        .sign(key);
        store.put_checkpoint(sequence, &signed.encode())?;
        let mut state = write(&self.state);
        state.checkpointed = state.checkpointed.max(sequence);
        Ok(signed)
    }

    /// The sequence of the last stored checkpoint (0: none).
    pub fn checkpointed(&self) -> u64 {
        read(&self.state).checkpointed
    }
}

/// How checkpoints are signed.
#[derive(Clone)]
pub struct CheckpointSettings {
    pub system: SystemId,
    pub key: SigningKey,
    /// Sign after this many events since the last checkpoint…
    pub every_events: u64,
    /// …or this long after the first event not yet covered.
    pub every: Duration,
}

/// Keeps the tree up to date with the store and, with `checkpoints`, signs checkpoints;
/// `signed` is notified after each one is stored. On `stop`, catches up and signs a last
/// checkpoint. A storage error stops the task (logged): the tree then stays where it was and
/// proofs stay correct for the sizes it has.
pub async fn run(
    store: Store,
    log: AuditLog,
    checkpoints: Option<CheckpointSettings>,
    signed: Arc<Notify>,
    stop: CancellationToken,
) {
    if let Err(error) = follow(&store, &log, checkpoints.as_ref(), &signed, &stop).await {
        tracing::error!(%error, "the audit task stopped: no more tree updates or checkpoints");
    }
}

async fn follow(
    store: &Store,
    log: &AuditLog,
    settings: Option<&CheckpointSettings>,
    signed: &Notify,
    stop: &CancellationToken,
) -> Result<(), ProofError> {
    let mut head = store.subscribe();
    let announce = |checkpoint: &SignedCheckpoint, why: &str| {
        tracing::info!(
            sequence = checkpoint.checkpoint.sequence,
            root = %hex::encode(checkpoint.checkpoint.merkle_root),
            why,
            "signed a checkpoint"
        );
        signed.notify_one();
    };
    // A checkpoint of the whole tree, if it is not covered yet.
    let sign = |why: &str| -> Result<(), ProofError> {
        if let Some(settings) = settings
            && let Some(checkpoint) = log.checkpoint(store, &settings.system, &settings.key)?
        {
            announce(&checkpoint, why);
        }
        Ok(())
    };
    // Events committed before a restart and not yet covered are covered at once.
    log.catch_up(store)?;
    sign("start-up")?;
    let every = settings.map_or(Duration::from_secs(3600), |s| s.every);
    let mut deadline: Option<tokio::time::Instant> = None;
    loop {
        let timer = async {
            match deadline {
                Some(at) => tokio::time::sleep_until(at).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => break,
            () = timer => {
                deadline = None;
                sign("interval")?;
            }
            changed = head.changed() => {
                if changed.is_err() {
                    break;
                }
                let size = log.catch_up(store)?;
                if let Some(settings) = settings {
                    // Every `every_events`-th event exactly, however the commits batched
                    // them: checkpoints at 10,000, 20,000, … whatever the load.
                    while size - log.checkpointed() >= settings.every_events {
                        let at = log.checkpointed() + settings.every_events;
                        let checkpoint = log.checkpoint_at(store, &settings.system, &settings.key, at)?;
                        announce(&checkpoint, "events");
                        deadline = None;
                    }
                    if size > log.checkpointed() && deadline.is_none() {
                        deadline = Some(tokio::time::Instant::now() + every);
                    }
                }
            }
        }
    }
    log.catch_up(store)?;
    sign("shutdown")?;
    Ok(())
}

fn read(state: &RwLock<State>) -> std::sync::RwLockReadGuard<'_, State> {
    state
        .read()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write(state: &RwLock<State>) -> std::sync::RwLockWriteGuard<'_, State> {
    state
        .write()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
