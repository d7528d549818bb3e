//! The fold and its position in the log.
//!
//! [`Checkpointed`] pairs a projection with the sequence and hash of the last event folded
//! into it, and accepts an event only if it is the next one: an older sequence is a
//! redelivery and changes nothing; a newer one is a gap the caller must fill first; the next
//! sequence must link to the last hash, so a message that does not belong to this chain is
//! refused instead of folded. Persisting the projection and its sequence as one value (see
//! `checkpoint`) is what makes redelivery after a crash harmless.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::incoming::Incoming;

/// A deterministic fold of the ledger's events. `Clone`: positiond's checkpoints are written from a snapshot, behind the fold.
pub trait Projection:
    Clone + Default + Serialize + DeserializeOwned + Send + Sync + 'static
{
    /// Folds one event (the next in the log). An error means the event could not be folded
    /// and the projection must not be used past it.
    fn apply(&mut self, event: &Incoming) -> Result<(), String>;
}

/// A projection and how far into the log it is.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpointed<P> {
    pub projection: P,
    /// The last sequence folded in (0: none).
    pub sequence: u64,
    /// Its chain hash.
    pub hash: [u8; 32],
    /// When it was recorded (microseconds since the Unix epoch; 0 for none).
    pub recorded_at_us: i64,
}

impl<P> Checkpointed<P> {
    /// Why `incoming` (from JetStream) is not the ledger's event at its sequence, once this
    /// projection has folded what ledgerd has up to it; `None` if it is.
    pub fn disagreement(&self, incoming: &Incoming) -> Option<String> {
        if self.sequence < incoming.sequence {
            Some(format!(
                "it claims sequence {}, but the ledger's log ends at {}",
                incoming.sequence, self.sequence
            ))
        } else if self.sequence == incoming.sequence && self.hash != incoming.hash {
            Some(format!(
                "its hash differs from the ledger's event {}",
                incoming.sequence
            ))
        } else {
            None
        }
    }
}

/// What offering an event did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offer {
    Applied,
    /// At or before the last sequence folded: a redelivery, ignored.
    AlreadyApplied,
    /// Past the next sequence: `next..event.sequence` must be folded first.
    Gap {
        next: u64,
    },
}

/// Why an event was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FoldError {
    #[error("event {sequence} does not link to event {}: its prev_hash is not that event's hash", sequence - 1)]
    ChainBroken { sequence: u64 },
    #[error("event {sequence} could not be folded: {reason}")]
    Apply { sequence: u64, reason: String },
}

impl<P: Projection> Checkpointed<P> {
    pub fn offer(&mut self, event: &Incoming) -> Result<Offer, FoldError> {
        if event.sequence <= self.sequence {
            return Ok(Offer::AlreadyApplied);
        }
        if event.sequence > self.sequence + 1 {
            return Ok(Offer::Gap {
                next: self.sequence + 1,
            });
        }
        if self.sequence > 0 && event.prev_hash != self.hash {
            return Err(FoldError::ChainBroken {
                sequence: event.sequence,
            });
        }
        self.projection
            .apply(event)
            .map_err(|reason| FoldError::Apply {
                sequence: event.sequence,
                reason,
            })?;
        self.sequence = event.sequence;
        self.hash = event.hash;
        self.recorded_at_us = event.recorded_at_us;
        Ok(Offer::Applied)
    }
}
