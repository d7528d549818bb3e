//! Audit: what lets someone who does not trust the ledger's operator check its log.
//!
//! - [`checkpoint`]: a [`Checkpoint`] — system, global sequence, chain hash at that sequence,
//!   Merkle root of the tree of that many events, time — signed with the ledger's Ed25519
//!   key. ledgerd signs them; the regulator's oversightd keeps every one it receives, so a
//!   ledger later rewritten (even into a new, self-consistent chain) contradicts checkpoints
//!   it no longer controls.
//! - [`verify`]: a [`LogVerifier`] fed the log event by event — from a stopped ledger's sled
//!   values or from `ReadAll` over gRPC, with bodies rebuilt from the wire — that recomputes
//!   every chain hash independently, rebuilds the Merkle tree, checks every checkpoint it is
//!   given against both, and stops at the first sequence that does not verify, saying what
//!   was expected and what was found.
//!
//! - [`relay`]: the ledger's signature on events as the relay publishes them, for readers that
//!   follow a system from NATS alone.
//!
//! The Merkle tree is [`merkle`]'s RFC 6962 tree; leaf `i` is the event at sequence `i + 1`
//! and its leaf data is that event's chain hash.

pub mod checkpoint;
pub mod relay;
pub mod verify;

pub use checkpoint::{Checkpoint, CheckpointError, SignedCheckpoint};
pub use verify::{Finding, LogVerifier, Source, Verified};

/// The Merkle leaf of the event whose chain hash is `chain_hash`.
pub fn leaf(chain_hash: &[u8; 32]) -> merkle::Hash {
    merkle::leaf_hash(chain_hash)
}
