//! Proof latency: `GetInclusionProof` and `GetConsistencyProof` at three depths — ledgerd's
//! `AuditLog` method, its `AuditService` handler called in-process (the method plus reading
//! the event's chain hash from sled and building the reply), and the same over real gRPC on
//! loopback through the client icsctl uses. Every answer is verified with the `merkle`
//! crate's RFC 9162 verifiers against what the benchmark knows independently (the stored
//! chain hashes, the signed checkpoints, the root recomputed from the stored hashes), outside
//! the clock.
//!
//! The requests are those icsctl makes: inclusion of an event in the tree of the first
//! checkpoint covering it (`icsctl audit prove` asks for the tree size of the regulator's
//! checkpoint), and consistency of a past tree with the current one (`icsctl audit verify`
//! asks that of its own). Sequences and old sizes are spread over the whole log by the
//! golden-ratio sequence (deterministic, even cover, not in order).

use std::future::Future;
use std::time::Instant;

use anyhow::{Context, anyhow, ensure};
use api::audit_pb;
use audit::SignedCheckpoint;

use crate::position::{Latency, spread_sequence};

/// What the answers are checked against.
pub struct Expected {
    /// Chain hash of every event, `hashes[s - 1]` for sequence `s`.
    pub hashes: Vec<[u8; 32]>,
    /// The checkpoints ledgerd signed, in sequence order (signatures already verified).
    pub checkpoints: Vec<SignedCheckpoint>,
    /// The root of the whole log, recomputed from the stored hashes.
    pub root: [u8; 32],
}

impl Expected {
    pub fn events(&self) -> u64 {
        self.hashes.len() as u64
    }

    /// The `i`th inclusion request: a sequence and the first checkpoint covering it.
    pub fn inclusion_case(&self, i: usize) -> anyhow::Result<(u64, &SignedCheckpoint)> {
        let sequence = spread_sequence(i, self.events());
        let at = self
            .checkpoints
            .partition_point(|c| c.checkpoint.sequence < sequence);
        let checkpoint = self
            .checkpoints
            .get(at)
            .with_context(|| format!("no checkpoint covers {sequence}"))?;
        Ok((sequence, checkpoint))
    }

    /// The `i`th consistency request: an old size; the new size is the whole log.
    pub fn consistency_case(&self, i: usize) -> u64 {
        spread_sequence(i, self.events())
    }

    /// Checks an inclusion proof of `sequence` into the tree of `size` with `root`.
    pub fn check_inclusion(
        &self,
        i: usize,
        sequence: u64,
        size: u64,
        path: &[[u8; 32]],
        root: &[u8; 32],
    ) -> anyhow::Result<()> {
        let (asked, checkpoint) = self.inclusion_case(i)?;
        let c = &checkpoint.checkpoint;
        ensure!(
            sequence == asked && size == c.sequence,
            "a proof of {sequence} in {size}, asked {asked} in {}",
            c.sequence
        );
        ensure!(
            *root == c.merkle_root,
            "the proof's root of {size} is not the signed one"
        );
        let chain_hash = self
            .hashes
            .get(usize::try_from(sequence - 1)?)
            .context("beyond the log")?;
        merkle::verify_inclusion(&audit::leaf(chain_hash), sequence - 1, size, path, root)
            .map_err(|e| anyhow!("inclusion of {sequence} in {size}: {e}"))
    }

    /// Checks a consistency proof of the tree of `old` events with the whole log.
    pub fn check_consistency(
        &self,
        i: usize,
        old: u64,
        new: u64,
        path: &[[u8; 32]],
        old_root: &[u8; 32],
        new_root: &[u8; 32],
    ) -> anyhow::Result<()> {
        ensure!(
            old == self.consistency_case(i) && new == self.events(),
            "a proof of {old} → {new}"
        );
        ensure!(*new_root == self.root, "the new root is not the log's");
        if let Some(c) = self
            .checkpoints
            .iter()
            .find(|c| c.checkpoint.sequence == old)
        {
            ensure!(
                *old_root == c.checkpoint.merkle_root,
                "the old root of {old} is not the signed one"
            );
        }
        merkle::verify_consistency(old, new, old_root, new_root, path)
            .map_err(|e| anyhow!("consistency of {old} with {new}: {e}"))
    }
}

/// A proof's hashes off the wire.
pub fn hashes(wire: &[Vec<u8>]) -> anyhow::Result<Vec<[u8; 32]>> {
    wire.iter().map(|h| hash(h)).collect()
}

pub fn hash(wire: &[u8]) -> anyhow::Result<[u8; 32]> {
    wire.try_into()
        .map_err(|_| anyhow!("a hash of {} bytes", wire.len()))
}

/// Times `count` calls after a tenth as many untimed; each answer is checked after its
/// clock stops.
pub fn time_sync<T>(
    count: usize,
    mut call: impl FnMut(usize) -> anyhow::Result<T>,
    mut check: impl FnMut(usize, T) -> anyhow::Result<()>,
) -> anyhow::Result<Latency> {
    for i in 0..count / 10 {
        let answer = call(i)?;
        check(i, answer)?;
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        let answer = call(i)?;
        samples.push(started.elapsed());
        check(i, answer)?;
    }
    Ok(Latency::new(samples))
}

/// [`time_sync`] for calls that are futures: the request is built (the closure runs)
/// before the clock starts; the clock covers awaiting the answer.
pub async fn time_async<T, F, Fut>(
    count: usize,
    mut call: F,
    mut check: impl FnMut(usize, T) -> anyhow::Result<()>,
) -> anyhow::Result<Latency>
where
    F: FnMut(usize) -> anyhow::Result<Fut>,
    Fut: Future<Output = anyhow::Result<T>>,
{
    for i in 0..count / 10 {
        let answer = call(i)?.await?;
        check(i, answer)?;
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let pending = call(i)?;
        let started = Instant::now();
        let answer = pending.await?;
        samples.push(started.elapsed());
        check(i, answer)?;
    }
    Ok(Latency::new(samples))
}

/// Checks a wire inclusion proof.
pub fn check_inclusion_reply(
    expected: &Expected,
    i: usize,
    reply: &audit_pb::InclusionProof,
) -> anyhow::Result<()> {
    let chain_hash = hash(&reply.chain_hash)?;
    let known = expected
        .hashes
        .get(usize::try_from(reply.sequence.max(1) - 1)?)
        .context("beyond the log")?;
    ensure!(
        chain_hash == *known,
        "the chain hash of {} is not the stored one",
        reply.sequence
    );
    expected.check_inclusion(
        i,
        reply.sequence,
        reply.tree_size,
        &hashes(&reply.path)?,
        &hash(&reply.root)?,
    )
}

/// Checks a wire consistency proof.
pub fn check_consistency_reply(
    expected: &Expected,
    i: usize,
    reply: &audit_pb::ConsistencyProof,
) -> anyhow::Result<()> {
    expected.check_consistency(
        i,
        reply.old_size,
        reply.new_size,
        &hashes(&reply.path)?,
        &hash(&reply.old_root)?,
        &hash(&reply.new_root)?,
    )
}
