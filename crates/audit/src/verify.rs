//! Verifying a log: the chain, the Merkle tree and the checkpoints, event by event.

use std::collections::BTreeMap;

use domain::SystemId;
use ed25519_dalek::VerifyingKey;
use store::{ChainError, Head};

use crate::checkpoint::SignedCheckpoint;

/// Where a checkpoint was obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Source {
    /// From the ledger itself (ledgerd's `ListCheckpoints`, or its sled directory).
    Ledger,
    /// From the regulator's side (oversightd's `ListCheckpoints`).
    Regulator,
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Source::Ledger => "the ledger",
            Source::Regulator => "the regulator",
        })
    }
}

/// The first thing that did not verify.
#[derive(Debug, thiserror::Error)]
pub enum Finding {
    /// The chain itself: a missing, altered or misplaced event, a broken link, a head that
    /// is not the chain's end.
    #[error(transparent)]
    Chain(#[from] ChainError),
    #[error("a checkpoint from {from} at {sequence}: {reason}")]
    Checkpoint {
        from: Source,
        sequence: u64,
        reason: String,
    },
    /// The log's chain hash at a checkpoint's sequence is not the one signed.
    #[error(
        "event {sequence}: the log's chain hash is {}, but the checkpoint from {from} (signed at {signed_at_us} µs) says {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    CheckpointHash {
        from: Source,
        sequence: u64,
        signed_at_us: i64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    /// The Merkle root of the log's first `sequence` events is not the one signed.
    #[error(
        "event {sequence}: the Merkle root of the log's first {sequence} events is {}, but the checkpoint from {from} (signed at {signed_at_us} µs) says {}",
        hex::encode(.found),
        hex::encode(.expected)
    )]
    CheckpointRoot {
        from: Source,
        sequence: u64,
        signed_at_us: i64,
        expected: [u8; 32],
        found: [u8; 32],
    },
    /// A checkpoint covers more events than the log holds: events were removed from the end.
    #[error(
        "event {missing}: missing — the log ends at {log_ends}, but the checkpoint from {from} says the ledger held {sequence} events"
    )]
    CheckpointBeyondLog {
        from: Source,
        sequence: u64,
        log_ends: u64,
        missing: u64,
    },
    /// The log ends before, or differs at, the head its store recorded in its anchor (kept
    /// outside the log: see `store::anchor`) — a store shortened or forked on disk.
    #[error("event {sequence}: {reason}")]
    Anchor { sequence: u64, reason: String },
}

impl Finding {
    /// The first sequence that did not verify, where there is one.
    pub fn sequence(&self) -> Option<u64> {
        match self {
            Finding::Chain(error) => error.sequence(),
            Finding::Checkpoint { sequence, .. }
            | Finding::CheckpointHash { sequence, .. }
            | Finding::CheckpointRoot { sequence, .. } => Some(*sequence),
            Finding::CheckpointBeyondLog { missing, .. } => Some(*missing),
            Finding::Anchor { sequence, .. } => Some(*sequence),
        }
    }
}

/// What a successful verification covered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Events verified (the log's last sequence).
    pub events: u64,
    /// The chain hash of the last event (zeroes for an empty log).
    pub hash: [u8; 32],
    /// The Merkle root of the whole log.
    pub root: [u8; 32],
    /// Checkpoints whose signature, chain hash and root were checked, by source.
    pub checkpoints: BTreeMap<Source, usize>,
}

/// Verifies a log fed to it in sequence order; stops at the first finding.
pub struct LogVerifier {
    checkpoints: BTreeMap<u64, Vec<(Source, SignedCheckpoint)>>,
    checked: BTreeMap<Source, usize>,
    tree: merkle::Tree,
    prev_hash: [u8; 32],
    next: u64,
}

impl LogVerifier {
    /// A verifier for `system`'s log that checks it against `checkpoints`. Every checkpoint's
    /// signature is checked under `key` (the ledger's public key) here, first: a checkpoint
    /// that is not the ledger's, or not of this system, is a finding in itself.
    pub fn new(
        system: &SystemId,
        key: &VerifyingKey,
        checkpoints: impl IntoIterator<Item = (Source, SignedCheckpoint)>,
    ) -> Result<LogVerifier, Finding> {
        let mut by_sequence: BTreeMap<u64, Vec<(Source, SignedCheckpoint)>> = BTreeMap::new();
        for (source, checkpoint) in checkpoints {
            let sequence = checkpoint.checkpoint.sequence;
            if &checkpoint.checkpoint.system != system {
                return Err(Finding::Checkpoint {
                    from: source,
                    sequence,
                    reason: format!(
                        "it is of system '{}', not '{system}'",
                        checkpoint.checkpoint.system
                    ),
                });
            }
            checkpoint.verify(key).map_err(|e| Finding::Checkpoint {
                from: source,
                sequence,
                reason: e.to_string(),
            })?;
            by_sequence
                .entry(sequence)
                .or_default()
                .push((source, checkpoint));
        }
        Ok(LogVerifier {
            checkpoints: by_sequence,
            checked: BTreeMap::new(),
            tree: merkle::Tree::new(),
            prev_hash: [0; 32],
            next: 1,
        })
    }

    /// The sequence expected next.
    pub fn next_sequence(&self) -> u64 {
        self.next
    }

    /// Feeds a stored sled value found under the event key of `key_sequence` (offline).
    pub fn feed_stored(&mut self, key_sequence: u64, value: &[u8]) -> Result<(), Finding> {
        self.expect(key_sequence)?;
        let hash =
            store::codec::verify_stored_link::<domain::Event>(self.next, &self.prev_hash, value)?;
        self.accept(hash)
    }

    /// Feeds the canonical body of the next event and the hash it is said to have (online:
    /// the body rebuilt from `ReadAll`'s fields with `store::codec::canonical_body`).
    pub fn feed_body(&mut self, body: &[u8], stated_hash: [u8; 32]) -> Result<(), Finding> {
        let hash = store::codec::verify_link::<domain::Event>(
            self.next,
            &self.prev_hash,
            body,
            stated_hash,
        )?;
        self.accept(hash)
    }

    /// Ends the log. `head` is what the ledger says its head is (its meta record offline,
    /// `Head` online); the chain must end exactly there, and no checkpoint may lie beyond it.
    pub fn finish(self, head: Option<Head>) -> Result<Verified, Finding> {
        let last = self.next - 1;
        if let Some((&sequence, held)) = self.checkpoints.range(self.next..).next()
            && let Some((source, _)) = held.first()
        {
            return Err(Finding::CheckpointBeyondLog {
                from: *source,
                sequence,
                log_ends: last,
                missing: self.next,
            });
        }
        if let Some(head) = head {
            if head.sequence > last {
                return Err(ChainError::Missing {
                    sequence: self.next,
                    found: None,
                }
                .into());
            }
            if head.sequence != last || head.hash != self.prev_hash {
                return Err(ChainError::HeadMismatch {
                    sequence: head.sequence,
                    expected: head.hash,
                    found: self.prev_hash,
                }
                .into());
            }
        }
        Ok(Verified {
            events: last,
            hash: self.prev_hash,
            root: self.tree.root(),
            checkpoints: self.checked,
        })
    }

    fn expect(&self, sequence: u64) -> Result<(), Finding> {
        if sequence != self.next {
            return Err(ChainError::Missing {
                sequence: self.next,
                found: Some(sequence),
            }
            .into());
        }
        Ok(())
    }

    fn accept(&mut self, hash: [u8; 32]) -> Result<(), Finding> {
        self.tree.push_leaf_hash(crate::leaf(&hash));
        let sequence = self.next;
        if let Some(held) = self.checkpoints.get(&sequence) {
            let root = self.tree.root();
            for (source, signed) in held {
                let c = &signed.checkpoint;
                if c.chain_hash != hash {
                    return Err(Finding::CheckpointHash {
                        from: *source,
                        sequence,
                        signed_at_us: c.signed_at_us,
                        expected: c.chain_hash,
                        found: hash,
                    });
                }
                if c.merkle_root != root {
                    return Err(Finding::CheckpointRoot {
                        from: *source,
                        sequence,
                        signed_at_us: c.signed_at_us,
                        expected: c.merkle_root,
                        found: root,
                    });
                }
                *self.checked.entry(*source).or_default() += 1;
            }
        }
        self.prev_hash = hash;
        self.next += 1;
        Ok(())
    }
}
