//! Messages refused from JetStream, kept with the reason for an operator to look at.
//!
//! NATS is the distribution path, not the record, so a consumer treats what arrives on it as
//! untrusted: a message that does not decode, does not link to the chain or fold, claims a
//! sequence the ledger does not have, has a hash that differs from the ledger's event at its
//! sequence, or (oversightd) names no system or is not the checkpoint its subject says, is
//! parked here and the consumer goes on. Each is flushed before the message is acknowledged.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::checkpoint::CheckpointError;

/// The sled tree parked messages are kept in, in a service's own sled.
const TREE: &[u8] = b"parked";
/// Most payload bytes kept with a parked message.
const PAYLOAD_MAX: usize = 64 * 1024;

/// A JetStream message that was not folded or kept, and why.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Parked {
    pub subject: String,
    /// Its sequence in the JetStream stream (0 if unknown).
    pub stream_sequence: u64,
    pub reason: String,
    /// The payload as received (at most 64 KiB of it).
    pub payload: Vec<u8>,
}

impl Parked {
    /// A refused `message`, with its reason.
    pub fn message(message: &async_nats::jetstream::Message, reason: String) -> Self {
        let stream_sequence = message.info().map_or(0, |info| info.stream_sequence);
        tracing::warn!(subject = %message.subject, stream_sequence, %reason, "parked a message");
        Parked {
            subject: message.subject.to_string(),
            stream_sequence,
            reason,
            payload: message.payload.to_vec(),
        }
    }
}

/// The parked messages of one service. Cheap to clone: the status RPCs hold one.
#[derive(Clone)]
pub struct ParkedMessages {
    db: sled::Db,
    tree: sled::Tree,
    /// How many are parked: counted once at opening, then kept (sled's `len` walks the whole
    /// tree, and the status RPC that reports it is polled).
    count: Arc<AtomicU64>,
}

impl ParkedMessages {
    pub(crate) fn open(db: &sled::Db) -> Result<Self, CheckpointError> {
        let tree = db.open_tree(TREE)?;
        let count = Arc::new(AtomicU64::new(tree.len() as u64));
        Ok(ParkedMessages {
            db: db.clone(),
            tree,
            count,
        })
    }

    /// Keeps a refused message with its reason, flushed before returning (it is acknowledged
    /// next).
    pub fn park(&self, mut parked: Parked) -> Result<(), CheckpointError> {
        parked.payload.truncate(PAYLOAD_MAX);
        let key = self.db.generate_id()?.to_be_bytes();
        let bytes = bincode::serde::encode_to_vec(&parked, bincode::config::standard())?;
        self.tree.insert(key, bytes)?;
        self.db.flush()?;
        self.count.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    /// Every parked message, oldest first (entries that do not decode are skipped).
    pub fn all(&self) -> Result<Vec<Parked>, CheckpointError> {
        let mut all = Vec::new();
        for entry in &self.tree {
            let (_, bytes) = entry?;
            if let Ok((parked, _)) =
                bincode::serde::decode_from_slice(&bytes, bincode::config::standard())
            {
                all.push(parked);
            }
        }
        Ok(all)
    }

    /// How many messages are parked.
    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }
}
