//! The verifier against a real sled event store on disk, tampered with the way an operator
//! could: a changed byte, a deleted event, two events swapped, a stored hash replaced, the
//! tail cut off, the whole log rewritten into a new self-consistent chain.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use audit::checkpoint::{
    LedgerKey, LedgerSigningKey, signing_key_from_pem, verifying_key_from_pem,
};
use audit::{Checkpoint, Finding, LogVerifier, SignedCheckpoint, Source};
use domain::{Event, SystemId};
use store::{ChainError, EventStore, NewEvent, RawLog, StoreConfig};

const EVENTS: u64 = 300;
const CHECKPOINT_EVERY: u64 = 100;

fn keys() -> (LedgerSigningKey, LedgerKey) {
    let (private, public) = auth::token::generate_key_pair().unwrap();
    (
        signing_key_from_pem(&private).unwrap(),
        verifying_key_from_pem(&public).unwrap(),
    )
}

fn kav() -> SystemId {
    SystemId::new("kav").unwrap()
}

fn invoice(n: u64, amount: i64) -> Event {
    let year = domain::FinancialYear::new(2018).unwrap();
    Event::Contract {
        contract: domain::Code::new("C1").unwrap(),
        event: domain::ContractEvent::InvoiceRaised {
            invoice: domain::Code::new(format!("INV-{n}")).unwrap(),
            period: domain::Period::new(year, domain::Month::new(3).unwrap()),
            amount: domain::Pence::new(amount),
            corrects: None,
        },
    }
}

/// Writes `EVENTS` events (amount `n * scale` pence each) to a store in `dir`, one request
/// each, and returns the checkpoints a ledger would have signed every `CHECKPOINT_EVERY`
/// events (also stored in the store, as ledgerd stores them).
fn write_log(dir: &Path, scale: i64, key: &LedgerSigningKey) -> Vec<SignedCheckpoint> {
    let store = EventStore::<Event>::open(StoreConfig::new(dir)).unwrap();
    let mut tree = merkle::Tree::new();
    let mut signed = Vec::new();
    for n in 1..=EVENTS {
        let mut id = [0u8; 16];
        id[8..].copy_from_slice(&n.to_be_bytes());
        let request = store::AppendRequest {
            request_id: id,
            command_hash: [0; 32],
            stream: "contract/C1".to_string(),
            stream_version: n - 1,
            actor: "KHFT:finance".to_string(),
            correlation_id: id,
            events: vec![NewEvent {
                event_id: id,
                event_type: "contract.InvoiceRaised".to_string(),
                effective_period: None,
                payload: invoice(n, i64::try_from(n).unwrap() * scale),
            }],
        };
        let outcome = store.enqueue(request).unwrap().wait().unwrap();
        tree.push_leaf_hash(audit::leaf(&outcome.hash));
        if n % CHECKPOINT_EVERY == 0 {
            let checkpoint = Checkpoint {
                system: kav(),
                sequence: n,
                chain_hash: outcome.hash,
                merkle_root: tree.root(),
                signed_at_us: 1_554_076_800_000_000 + i64::try_from(n).unwrap(),
            }
            .sign(key);
            store.put_checkpoint(n, &checkpoint.encode()).unwrap();
            signed.push(checkpoint);
        }
    }
    signed
}

/// Verifies a stopped store's directory offline, as `icsctl audit verify --data-dir` does.
fn verify_dir(
    dir: &Path,
    key: &LedgerKey,
    regulator: &[SignedCheckpoint],
) -> Result<audit::Verified, Finding> {
    let log = RawLog::open(dir).unwrap();
    let own = log
        .checkpoints()
        .unwrap()
        .into_iter()
        .map(|(_, bytes)| (Source::Ledger, SignedCheckpoint::decode(&bytes).unwrap()));
    let theirs = regulator.iter().cloned().map(|c| (Source::Regulator, c));
    let mut verifier = LogVerifier::new(&kav(), key, own.chain(theirs))?;
    for entry in log.events() {
        let (sequence, value) = entry.unwrap();
        verifier.feed_stored(sequence, &value)?;
    }
    verifier.finish(log.recorded_head().unwrap())
}

fn tamper(dir: &Path, change: impl FnOnce(&RawLog)) {
    let log = RawLog::open(dir).unwrap();
    change(&log);
    log.flush().unwrap();
}

fn stored(log: &RawLog, sequence: u64) -> Vec<u8> {
    log.value(sequence).unwrap().unwrap().to_vec()
}

struct Fixture {
    dir: tempfile::TempDir,
    public: LedgerKey,
    regulator: Vec<SignedCheckpoint>,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let (private, public) = keys();
    let regulator = write_log(dir.path(), 100, &private);
    Fixture {
        dir,
        public,
        regulator,
    }
}

#[test]
fn an_untouched_log_verifies_against_every_checkpoint() {
    let f = fixture();
    let verified = verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap();
    assert_eq!(verified.events, EVENTS);
    assert_eq!(verified.checkpoints.get(&Source::Ledger), Some(&3));
    assert_eq!(verified.checkpoints.get(&Source::Regulator), Some(&3));
    assert_eq!(
        verified.root,
        f.regulator.last().unwrap().checkpoint.merkle_root
    );
}

#[test]
fn one_changed_byte_of_one_event_names_that_event() {
    let f = fixture();
    for offset in [0usize, 7, 40] {
        tamper(f.dir.path(), |log| {
            let mut value = stored(log, 120);
            let at = value.len() - 1 - offset;
            value[at] ^= 0x01;
            log.tamper_replace(120, &value).unwrap();
        });
        let finding = verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap_err();
        assert_eq!(finding.sequence(), Some(120), "{finding}");
        // Undo, so the next offset starts from the real log.
        tamper(f.dir.path(), |log| {
            let mut value = stored(log, 120);
            let at = value.len() - 1 - offset;
            value[at] ^= 0x01;
            log.tamper_replace(120, &value).unwrap();
        });
    }
    verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap();
}

#[test]
fn a_deleted_event_is_named_as_missing() {
    let f = fixture();
    tamper(f.dir.path(), |log| {
        log.tamper_remove(150).unwrap();
    });
    let finding = verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap_err();
    assert!(
        matches!(
            finding,
            Finding::Chain(ChainError::Missing {
                sequence: 150,
                found: Some(151)
            })
        ),
        "{finding}"
    );
}

#[test]
fn two_swapped_events_name_the_first() {
    let f = fixture();
    tamper(f.dir.path(), |log| {
        let (a, b) = (stored(log, 50), stored(log, 51));
        log.tamper_replace(50, &b).unwrap();
        log.tamper_replace(51, &a).unwrap();
    });
    let finding = verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap_err();
    assert_eq!(finding.sequence(), Some(50), "{finding}");
}

#[test]
fn a_cut_tail_is_caught_by_the_head_and_the_checkpoints() {
    let f = fixture();
    tamper(f.dir.path(), |log| {
        for sequence in 281..=EVENTS {
            log.tamper_remove(sequence).unwrap();
        }
    });
    let finding = verify_dir(f.dir.path(), &f.public, &f.regulator).unwrap_err();
    assert_eq!(finding.sequence(), Some(281), "{finding}");
    assert!(
        matches!(finding, Finding::CheckpointBeyondLog { sequence: 300, .. }),
        "{finding}"
    );
}

#[test]
fn a_log_rewritten_into_a_new_consistent_chain_with_re_signed_checkpoints_contradicts_the_regulator()
 {
    let (private, public) = keys();
    let real = tempfile::tempdir().unwrap();
    let regulator = write_log(real.path(), 100, &private);
    let rewritten = tempfile::tempdir().unwrap();
    write_log(rewritten.path(), 99, &private);
    // Self-consistent, and its own checkpoints are validly signed…
    verify_dir(rewritten.path(), &public, &[]).unwrap();
    // …but the regulator's copies say otherwise at the first checkpoint.
    let finding = verify_dir(rewritten.path(), &public, &regulator).unwrap_err();
    assert!(
        matches!(
            finding,
            Finding::CheckpointHash {
                from: Source::Regulator,
                sequence: 100,
                ..
            }
        ),
        "{finding}"
    );
}

#[test]
fn checkpoints_under_another_key_are_refused() {
    let f = fixture();
    let (_, stranger) = keys();
    let finding = verify_dir(f.dir.path(), &stranger, &[]).unwrap_err();
    assert!(
        matches!(
            finding,
            Finding::Checkpoint {
                from: Source::Ledger,
                sequence: 100,
                ..
            }
        ),
        "{finding}"
    );
}

#[test]
fn a_forged_root_in_a_validly_signed_checkpoint_is_named() {
    let (private, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let real = write_log(dir.path(), 100, &private);
    let mut forged = real[1].checkpoint.clone();
    forged.merkle_root[0] ^= 1;
    let forged = forged.sign(&private);
    let finding = verify_dir(dir.path(), &public, &[forged]).unwrap_err();
    assert!(
        matches!(
            finding,
            Finding::CheckpointRoot {
                from: Source::Regulator,
                sequence: 200,
                ..
            }
        ),
        "{finding}"
    );
}

#[test]
fn bodies_rebuilt_from_decoded_events_verify_and_an_altered_one_does_not() {
    let (private, public) = keys();
    let dir = tempfile::tempdir().unwrap();
    let regulator = write_log(dir.path(), 100, &private);
    let store = EventStore::<Event>::open(StoreConfig::new(dir.path())).unwrap();
    let events = store.read_all(1, usize::MAX).unwrap();
    let feed = |alter: Option<u64>| {
        let mut verifier = LogVerifier::new(
            &kav(),
            &public,
            regulator.iter().cloned().map(|c| (Source::Regulator, c)),
        )
        .unwrap();
        for event in &events {
            let mut event = event.clone();
            if Some(event.sequence) == alter {
                event.actor = "someone else".to_string();
            }
            let body = store::codec::canonical_body(&event).unwrap();
            verifier.feed_body(&body, event.hash)?;
        }
        verifier.finish(Some(store.head()))
    };
    assert_eq!(feed(None).unwrap().events, EVENTS);
    let finding = feed(Some(77)).unwrap_err();
    assert!(
        matches!(
            finding,
            Finding::Chain(ChainError::HashMismatch { sequence: 77, .. })
        ),
        "{finding}"
    );
}
