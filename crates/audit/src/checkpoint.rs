//! Signed checkpoints: the message, its signature, its wire form.

use api::audit_pb;
use domain::SystemId;
use ed25519_dalek::pkcs8::{DecodePrivateKey, DecodePublicKey};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use prost::Message;

pub use ed25519_dalek::{SigningKey as LedgerSigningKey, VerifyingKey as LedgerKey};

/// Prefix of the signed bytes, so a checkpoint signature can never be taken for a signature
/// over anything else made with the same key.
pub const SIGNING_DOMAIN: &[u8] = b"ics-ledger/checkpoint/v1\0";

/// What a checkpoint asserts: the ledger of `system` held `sequence` events, the last with
/// chain hash `chain_hash`, whose Merkle tree has root `merkle_root`, at `signed_at_us`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoint {
    pub system: SystemId,
    pub sequence: u64,
    pub chain_hash: [u8; 32],
    pub merkle_root: [u8; 32],
    /// Unix microseconds.
    pub signed_at_us: i64,
}

/// A checkpoint and the ledger's Ed25519 signature over [`Checkpoint::signing_bytes`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedCheckpoint {
    pub checkpoint: Checkpoint,
    pub signature: [u8; 64],
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error(
        "the checkpoint at {sequence} (signed at {signed_at_us}) does not verify under the ledger's public key"
    )]
    BadSignature { sequence: u64, signed_at_us: i64 },
    #[error("checkpoint field {field}: {reason}")]
    Field { field: &'static str, reason: String },
    #[error("not a Checkpoint protobuf: {0}")]
    Decode(#[from] prost::DecodeError),
    #[error("key: {0}")]
    Key(String),
}

impl Checkpoint {
    /// `SIGNING_DOMAIN ‖ u16 len(system) ‖ system ‖ u64 sequence ‖ chain hash ‖ root ‖ i64
    /// signed_at_us`, integers big-endian: the exact bytes signed (documented in
    /// `proto/ics/audit/v1/audit.proto` for auditors with their own tools).
    pub fn signing_bytes(&self) -> Vec<u8> {
        let system = self.system.as_str().as_bytes();
        let mut bytes = Vec::with_capacity(SIGNING_DOMAIN.len() + 2 + system.len() + 80);
        bytes.extend_from_slice(SIGNING_DOMAIN);
        // A system id is a short subject token (at most 64 bytes), so its length fits.
        bytes.extend_from_slice(
            &u16::try_from(system.len())
                .unwrap_or(u16::MAX)
                .to_be_bytes(),
        );
        bytes.extend_from_slice(system);
        bytes.extend_from_slice(&self.sequence.to_be_bytes());
        bytes.extend_from_slice(&self.chain_hash);
        bytes.extend_from_slice(&self.merkle_root);
        bytes.extend_from_slice(&self.signed_at_us.to_be_bytes());
        bytes
    }

    pub fn sign(self, key: &SigningKey) -> SignedCheckpoint {
        let signature = key.sign(&self.signing_bytes()).to_bytes();
        SignedCheckpoint {
            checkpoint: self,
            signature,
        }
    }
}

impl SignedCheckpoint {
    /// Checks the signature under the ledger's public key (strict: no malleable signatures).
    pub fn verify(&self, key: &VerifyingKey) -> Result<(), CheckpointError> {
        let signature = Signature::from_bytes(&self.signature);
        key.verify_strict(&self.checkpoint.signing_bytes(), &signature)
            .map_err(|_| CheckpointError::BadSignature {
                sequence: self.checkpoint.sequence,
                signed_at_us: self.checkpoint.signed_at_us,
            })
    }

    pub fn to_proto(&self) -> audit_pb::Checkpoint {
        let c = &self.checkpoint;
        audit_pb::Checkpoint {
            system: c.system.to_string(),
            sequence: c.sequence,
            chain_hash: c.chain_hash.to_vec(),
            merkle_root: c.merkle_root.to_vec(),
            signed_at_us: c.signed_at_us,
            signature: self.signature.to_vec(),
        }
    }

    /// Reads a checkpoint off the wire; every field is checked for shape (not the signature).
    pub fn from_proto(pb: audit_pb::Checkpoint) -> Result<SignedCheckpoint, CheckpointError> {
        let field = |field, reason: &str| CheckpointError::Field {
            field,
            reason: reason.to_string(),
        };
        let system =
            SystemId::new(pb.system.clone()).map_err(|e| field("system", &e.to_string()))?;
        if pb.sequence == 0 {
            return Err(field("sequence", "must be at least 1"));
        }
        Ok(SignedCheckpoint {
            checkpoint: Checkpoint {
                system,
                sequence: pb.sequence,
                chain_hash: pb
                    .chain_hash
                    .as_slice()
                    .try_into()
                    .map_err(|_| field("chain_hash", "must be 32 bytes"))?,
                merkle_root: pb
                    .merkle_root
                    .as_slice()
                    .try_into()
                    .map_err(|_| field("merkle_root", "must be 32 bytes"))?,
                signed_at_us: pb.signed_at_us,
            },
            signature: pb
                .signature
                .as_slice()
                .try_into()
                .map_err(|_| field("signature", "must be 64 bytes"))?,
        })
    }

    /// The stored and published form: the protobuf `ics.audit.v1.Checkpoint`.
    pub fn encode(&self) -> Vec<u8> {
        self.to_proto().encode_to_vec()
    }

    pub fn decode(bytes: &[u8]) -> Result<SignedCheckpoint, CheckpointError> {
        SignedCheckpoint::from_proto(audit_pb::Checkpoint::decode(bytes)?)
    }
}

/// The ledger's signing key from a PKCS#8 PEM file's text (`icsctl keys generate`).
pub fn signing_key_from_pem(pem: &str) -> Result<SigningKey, CheckpointError> {
    SigningKey::from_pkcs8_pem(pem)
        .map_err(|e| CheckpointError::Key(format!("not an Ed25519 PKCS#8 private key: {e}")))
}

/// The ledger's public key from an SPKI PEM file's text (`icsctl keys generate`).
pub fn verifying_key_from_pem(pem: &str) -> Result<VerifyingKey, CheckpointError> {
    VerifyingKey::from_public_key_pem(pem)
        .map_err(|e| CheckpointError::Key(format!("not an Ed25519 public key: {e}")))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn keys() -> (SigningKey, VerifyingKey) {
        let (private, public) = auth::token::generate_key_pair().unwrap();
        (
            signing_key_from_pem(&private).unwrap(),
            verifying_key_from_pem(&public).unwrap(),
        )
    }

    fn checkpoint() -> Checkpoint {
        Checkpoint {
            system: SystemId::new("kav").unwrap(),
            sequence: 383,
            chain_hash: [7; 32],
            merkle_root: [9; 32],
            signed_at_us: 1_700_000_000_000_000,
        }
    }

    #[test]
    fn a_signed_checkpoint_verifies_under_its_key_and_survives_the_wire() {
        let (private, public) = keys();
        let signed = checkpoint().sign(&private);
        signed.verify(&public).unwrap();
        let decoded = SignedCheckpoint::decode(&signed.encode()).unwrap();
        assert_eq!(decoded, signed);
        decoded.verify(&public).unwrap();
    }

    #[test]
    fn signatures_fail_under_a_different_key() {
        let (private, _) = keys();
        let (_, other_public) = keys();
        let signed = checkpoint().sign(&private);
        let error = signed.verify(&other_public).unwrap_err();
        assert!(
            matches!(error, CheckpointError::BadSignature { sequence: 383, .. }),
            "{error}"
        );
    }

    #[test]
    fn any_changed_field_breaks_the_signature() {
        let (private, public) = keys();
        let signed = checkpoint().sign(&private);
        let mut changed = Vec::new();
        let mut c = signed.clone();
        c.checkpoint.sequence += 1;
        changed.push(c);
        let mut c = signed.clone();
        c.checkpoint.chain_hash[0] ^= 1;
        changed.push(c);
        let mut c = signed.clone();
        c.checkpoint.merkle_root[31] ^= 0x80;
        changed.push(c);
        let mut c = signed.clone();
        c.checkpoint.signed_at_us += 1;
        changed.push(c);
        let mut c = signed.clone();
        c.checkpoint.system = SystemId::new("kav2").unwrap();
        changed.push(c);
        let mut c = signed.clone();
        c.signature[10] ^= 1;
        changed.push(c);
        for c in changed {
            assert!(c.verify(&public).is_err(), "{c:?} verified");
        }
    }

    #[test]
    fn the_signed_bytes_have_the_documented_layout() {
        let bytes = checkpoint().signing_bytes();
        let mut expected = b"ics-ledger/checkpoint/v1\0".to_vec();
        expected.extend_from_slice(&[0, 3]);
        expected.extend_from_slice(b"kav");
        expected.extend_from_slice(&383u64.to_be_bytes());
        expected.extend_from_slice(&[7; 32]);
        expected.extend_from_slice(&[9; 32]);
        expected.extend_from_slice(&1_700_000_000_000_000i64.to_be_bytes());
        assert_eq!(bytes, expected);
    }

    #[test]
    fn malformed_wire_checkpoints_are_refused_by_field() {
        let (private, _) = keys();
        let good = checkpoint().sign(&private).to_proto();
        let cases: [(&str, audit_pb::Checkpoint); 5] = [
            (
                "system",
                audit_pb::Checkpoint {
                    system: "K A V".into(),
                    ..good.clone()
                },
            ),
            (
                "sequence",
                audit_pb::Checkpoint {
                    sequence: 0,
                    ..good.clone()
                },
            ),
            (
                "chain_hash",
                audit_pb::Checkpoint {
                    chain_hash: vec![1; 31],
                    ..good.clone()
                },
            ),
            (
                "merkle_root",
                audit_pb::Checkpoint {
                    merkle_root: vec![],
                    ..good.clone()
                },
            ),
            (
                "signature",
                audit_pb::Checkpoint {
                    signature: vec![0; 65],
                    ..good.clone()
                },
            ),
        ];
        for (name, pb) in cases {
            match SignedCheckpoint::from_proto(pb) {
                Err(CheckpointError::Field { field, .. }) => assert_eq!(field, name),
                other => panic!("{name}: {other:?}"),
            }
        }
        assert!(SignedCheckpoint::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
