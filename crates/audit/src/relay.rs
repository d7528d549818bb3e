//! Relay signatures: the ledger's word, on the bus, that an event is its own.
//!
//! A chain hash is no signature: whoever may publish into NATS can publish an event that links
//! to the chain. A reader that can ask the system's ledgerd has it vouch for what arrives; one
//! that follows a system from NATS alone (the regulator's oversightd, for a system it has no
//! ledgerd for) needs the ledger's signature. The relay signs, with the ledger's checkpoint
//! key, the last event of every run it publishes and every [`SIGN_EVERY`]-th event, and sends
//! the signature in the event's `Ics-Signature` header; by the chain, a signature on an event
//! vouches for every event before it back to the last one vouched for.
//!
//! Signed bytes: [`SIGNING_DOMAIN`] ‖ u16 len(system) ‖ system ‖ u64 sequence ‖ chain hash,
//! integers big-endian — no time, so the same event signed again gives the same signature.

use domain::SystemId;
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};

/// Prefix of the signed bytes, so a relay signature is never taken for a checkpoint's (or any
/// other) signature made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"ics-ledger/relay/v1\0";

/// The relay signs at least every this many events, so a reader following from NATS alone
/// holds at most this many unvouched (a run's last event is signed too).
pub const SIGN_EVERY: u64 = 64;

/// The bytes signed for the event at `sequence` with chain hash `hash` of `system`'s ledger.
pub fn signing_bytes(system: &SystemId, sequence: u64, hash: &[u8; 32]) -> Vec<u8> {
    let name = system.as_str().as_bytes();
    let mut bytes = Vec::with_capacity(SIGNING_DOMAIN.len() + 2 + name.len() + 40);
    bytes.extend_from_slice(SIGNING_DOMAIN);
    // A system id is a short subject token (at most 64 bytes), so its length fits.
    bytes.extend_from_slice(&u16::try_from(name.len()).unwrap_or(u16::MAX).to_be_bytes());
    bytes.extend_from_slice(name);
    bytes.extend_from_slice(&sequence.to_be_bytes());
    bytes.extend_from_slice(hash);
    bytes
}

/// The ledger's signature on its event at `sequence` with chain hash `hash`.
pub fn sign(key: &SigningKey, system: &SystemId, sequence: u64, hash: &[u8; 32]) -> [u8; 64] {
    key.sign(&signing_bytes(system, sequence, hash)).to_bytes()
}

/// Whether `signature` is the ledger's (`key`) on its event at `sequence` with `hash`
/// (strict: no malleable signatures).
pub fn verify(
    key: &VerifyingKey,
    system: &SystemId,
    sequence: u64,
    hash: &[u8; 32],
    signature: &[u8; 64],
) -> bool {
    key.verify_strict(
        &signing_bytes(system, sequence, hash),
        &Signature::from_bytes(signature),
    )
    .is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_vouches_for_its_event_of_its_system_only() {
        let key = SigningKey::from_bytes(&[7; 32]);
        let public = key.verifying_key();
        let kav = SystemId::new("kav").expect("id");
        let wes = SystemId::new("wes").expect("id");
        let signature = sign(&key, &kav, 42, &[1; 32]);
        assert!(verify(&public, &kav, 42, &[1; 32], &signature));
        assert!(!verify(&public, &kav, 43, &[1; 32], &signature));
        assert!(!verify(&public, &kav, 42, &[2; 32], &signature));
        assert!(!verify(&public, &wes, 42, &[1; 32], &signature));
        let other = SigningKey::from_bytes(&[8; 32]).verifying_key();
        assert!(!verify(&other, &kav, 42, &[1; 32], &signature));
        assert_eq!(sign(&key, &kav, 42, &[1; 32]), signature, "deterministic");
    }
}
