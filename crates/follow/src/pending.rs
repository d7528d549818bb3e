//! Events from JetStream held until the record vouches for them.
//!
//! NATS is how events arrive quickly, not the record, and a chain hash is no signature: whoever
//! holds ledgerd's NATS credentials can publish an event that links to the chain. So an event
//! from JetStream is not folded when it arrives. Events that link to the projection, one after
//! another, are held here — unacknowledged — as a run; the run is folded once the record
//! vouches for its last event (ledgerd's own copy of that sequence has its hash: then every
//! event of the run is the ledger's, by the chain), and settled from ledgerd otherwise.

use async_nats::jetstream::Message;

use crate::incoming::Incoming;

/// The events held, in sequence order, each linked to the one before (the first to the
/// projection's last).
#[derive(Default)]
pub(crate) struct Pending {
    held: Vec<(Incoming, Message)>,
}

/// Where a chain ends: the last sequence and its hash.
pub(crate) type End = (u64, [u8; 32]);

impl Pending {
    pub(crate) fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    /// The end of the run held, or `tip` (the projection's) when none is.
    pub(crate) fn end(&self, tip: End) -> End {
        self.held
            .last()
            .map_or(tip, |(incoming, _)| (incoming.sequence, incoming.hash))
    }

    /// Whether `incoming` is the next event after the run (after `tip` when none is held).
    pub(crate) fn extends(&self, tip: End, incoming: &Incoming) -> bool {
        let (sequence, hash) = self.end(tip);
        incoming.sequence == sequence + 1 && (sequence == 0 || incoming.prev_hash == hash)
    }

    pub(crate) fn push(&mut self, incoming: Incoming, message: Message) {
        self.held.push((incoming, message));
    }

    /// The hash of the event held at `sequence`, if one is.
    pub(crate) fn hash_at(&self, sequence: u64) -> Option<[u8; 32]> {
        let first = self.held.first()?.0.sequence;
        let index = usize::try_from(sequence.checked_sub(first)?).ok()?;
        self.held.get(index).map(|(incoming, _)| incoming.hash)
    }

    pub(crate) fn len(&self) -> usize {
        self.held.len()
    }

    /// The events held from `sequence` on, leaving those before it.
    pub(crate) fn take_from(&mut self, sequence: u64) -> Vec<(Incoming, Message)> {
        let keep = self
            .held
            .iter()
            .take_while(|(incoming, _)| incoming.sequence < sequence)
            .count();
        self.held.split_off(keep)
    }

    /// Everything held, leaving nothing.
    pub(crate) fn take(&mut self) -> Vec<(Incoming, Message)> {
        std::mem::take(&mut self.held)
    }
}
