//! The fault suite (issue 16, "the record holds"): a few trials of each fault of
//! `e2e::faults`, against a real nats-server and the real `ledgerd` and `positiond` binaries,
//! each required to find nothing lost, doubled or truncated and every chain verifying. The
//! soak (`make soak`) runs the same trials many times over. The domain's own limits
//! (oversized collections, overflowing amounts) are `ceilings.rs`.
//!
//! - ledgerd SIGKILLed under concurrent unary and bulk writers, three trials at different
//!   points of the load: every acknowledged command is there once after the restart, resends
//!   are duplicates, JetStream holds each event once, in order;
//! - nats-server SIGKILLed and its store wiped under load: nothing acknowledged lost, the
//!   whole log republished once, in order, positiond at the head;
//! - one byte changed in every file of a stopped store, at spread offsets: refused (exit 3,
//!   naming the store) or harmless, never a shorter log.

use e2e::faults::{self, Kind, Tally};

/// Runs `trials` trials of `kind` from `seed` and requires them to hold.
async fn trials(kind: Kind, seed: u64, trials: u64, offsets_per_file: usize) -> Tally {
    let mut total = Tally::default();
    for trial in 0..trials {
        let tally = faults::run(kind, seed + trial, offsets_per_file)
            .await
            .unwrap_or_else(|error| panic!("{kind} trial {trial}: {error:#}"));
        total.add(&tally);
    }
    eprintln!("{}", faults::table(&[(kind, total.clone())]));
    assert!(total.holds(), "{kind}: {:#?}", total.problems);
    assert_eq!(total.trials, trials);
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_commands_survive_kill_9_under_load_once_each() {
    let total = trials(Kind::Kill9, 1, 3, 0).await;
    assert_eq!(total.faults, 3);
    // Each trial's load recorded a hundred events or more before the kill, each acknowledged
    // or in flight; and the kill cut the writers off.
    assert!(
        total.acknowledged + total.unanswered_recorded >= 300,
        "{total:?}"
    );
    assert!(total.unanswered > 0, "{total:?}");
    assert_eq!(total.chains, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_killed_and_wiped_under_load_is_republished_whole() {
    let total = trials(Kind::NatsWipe, 11, 1, 0).await;
    assert_eq!(total.faults, 1);
    // The load recorded two hundred events or more across the fault, each answered.
    assert!(total.acknowledged >= 200, "{total:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_byte_in_any_store_file_is_refused_or_harmless() {
    let offsets = 3;
    let total = trials(Kind::ByteChange, 21, 1, offsets).await;
    // db, conf, a snapshot, a blob and the anchor, each at every offset.
    assert!(total.faults >= 5 * offsets as u64, "{total:?}");
    assert_eq!(total.refused + total.harmless, total.faults);
    // Some bytes matter (every one of `conf` does): the sweep reached what is read, and each
    // damage it found was refused as a damaged store (exit status 3).
    assert!(total.refused > 0, "{total:?}");
}
