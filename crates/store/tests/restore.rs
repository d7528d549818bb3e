//! A store rebuilt from a replica of its log (`store::restore`): the same bytes to the same
//! head, the requests known again, and a replica that is not the log refused with nothing
//! left that a ledger would start on.

use std::path::Path;

use serde::{Deserialize, Serialize};
use store::restore::{FINGERPRINT_UNKNOWN, Restore, RestoreError};
use store::{AppendRequest, EventStore, Head, NewEvent, RecordedEvent, StoreConfig};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Payload {
    n: u64,
    note: String,
}

type Store = EventStore<Payload>;

const EVENTS: u64 = 300;

fn request_id(first: u64) -> [u8; 16] {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&first.to_be_bytes());
    id
}

fn request(stream: u64, first: u64, count: u64, version: u64) -> AppendRequest<Payload> {
    AppendRequest {
        request_id: request_id(first),
        command_hash: [first as u8 | 1; 32],
        stream: format!("stream-{stream}"),
        stream_version: version,
        actor: "tester".to_string(),
        correlation_id: request_id(first),
        events: (first..first + count)
            .map(|n| {
                let mut event_id = [0u8; 16];
                event_id[8..].copy_from_slice(&n.to_be_bytes());
                NewEvent {
                    event_id,
                    event_type: "test.posted".to_string(),
                    effective_period: None,
                    payload: Payload {
                        n,
                        note: format!("event {n} of the restore test"),
                    },
                }
            })
            .collect(),
    }
}

/// Writes [`EVENTS`] events in requests of 1 to 5 over 4 streams, with a checkpoint at 100;
/// returns every event as a replica would carry it, and the head.
fn write_log(dir: &Path) -> (Vec<RecordedEvent<Payload>>, Head) {
    let store = Store::open(StoreConfig::new(dir)).expect("opens");
    let mut versions = [0u64; 4];
    let mut next = 1;
    while next <= EVENTS {
        let stream = next % 4;
        let count = (next % 5 + 1).min(EVENTS - next + 1);
        let version = versions[stream as usize];
        store
            .enqueue(request(stream, next, count, version))
            .expect("enqueued")
            .wait()
            .expect("appended");
        versions[stream as usize] += count;
        next += count;
    }
    store.put_checkpoint(100, b"signed at 100").expect("kept");
    let events = store.read_all(1, usize::MAX).expect("reads");
    (events, store.head())
}

fn restore_from(dir: &Path, events: &[RecordedEvent<Payload>]) -> Result<Head, RestoreError> {
    let mut restore = Restore::<Payload>::create(dir)?;
    for event in events {
        restore.push(event)?;
    }
    restore.put_checkpoint(100, b"signed at 100")?;
    Ok(restore.finish(100)?.head)
}

#[test]
fn a_replica_restores_the_same_bytes_and_the_same_requests() {
    let work = tempfile::tempdir().expect("tempdir");
    let (original, restored) = (work.path().join("original"), work.path().join("restored"));
    let (events, head) = write_log(&original);
    assert_eq!(restore_from(&restored, &events).expect("restores"), head);

    let (original, restored) = (
        Store::open(StoreConfig::new(&original)).expect("opens"),
        Store::open(StoreConfig::new(&restored)).expect("opens"),
    );
    assert_eq!(restored.head(), head);
    assert_eq!(restored.verify_chain().expect("verifies"), head);
    assert_eq!(
        restored.read_raw(1, usize::MAX).expect("reads"),
        original.read_raw(1, usize::MAX).expect("reads"),
        "the stored bytes differ"
    );
    assert_eq!(
        restored.checkpoints(0, usize::MAX).expect("reads"),
        original.checkpoints(0, usize::MAX).expect("reads")
    );
    assert_eq!(
        restored.cursor(store::RELAY_CURSOR).expect("reads"),
        head.sequence
    );
    assert_eq!(
        restored
            .cursor(store::RELAY_CHECKPOINT_CURSOR)
            .expect("reads"),
        100
    );
    for stream in 0..4 {
        let stream = format!("stream-{stream}");
        assert_eq!(
            restored.stream_version(&stream).expect("reads"),
            original.stream_version(&stream).expect("reads")
        );
    }
    // Every request is known again, with its outcome; its fingerprint is not in the replica.
    for event in original.read_all(1, usize::MAX).expect("reads") {
        let was = original
            .lookup_request(&event.request_id)
            .expect("reads")
            .expect("known");
        let is = restored
            .lookup_request(&event.request_id)
            .expect("reads")
            .expect("known again");
        assert_eq!(is.outcome, was.outcome);
        assert_eq!(is.command_hash, FINGERPRINT_UNKNOWN);
        assert!(is.matches(&was.command_hash) && is.matches(&[0xEE; 32]));
        assert!(!was.matches(&[0xEE; 32]));
    }
    // And the restored store takes the next append where the log left off.
    let version = restored.stream_version("stream-1").expect("reads");
    let outcome = restored
        .enqueue(request(1, EVENTS + 1, 2, version))
        .expect("enqueued")
        .wait()
        .expect("appended");
    assert_eq!(outcome.first_sequence, EVENTS + 1);
    assert_eq!(outcome.first_version, version + 1);
}

#[test]
fn a_replica_that_is_not_the_log_is_refused() {
    let work = tempfile::tempdir().expect("tempdir");
    let (events, _) = write_log(&work.path().join("original"));
    let refused = |name: &str, events: &[RecordedEvent<Payload>]| {
        let dir = work.path().join(name);
        let error = restore_from(&dir, events).expect_err("refused");
        // Nothing a store opens on is left behind.
        assert!(
            Store::open(StoreConfig::new(&dir)).is_err(),
            "{name}: a store opens after a refused restore"
        );
        error.to_string()
    };

    let mut changed = events.clone();
    changed[41].payload.n += 1;
    let error = refused("changed", &changed);
    assert!(
        error.contains("event 42") && error.contains("hash"),
        "{error}"
    );

    let mut gap = events.clone();
    gap.remove(9);
    let error = refused("gap", &gap);
    assert!(
        error.contains("event 11") && error.contains("event 10 belongs"),
        "{error}"
    );

    let mut relinked = events.clone();
    relinked[60].prev_hash = [1; 32];
    let error = refused("relinked", &relinked);
    assert!(error.contains("event 61"), "{error}");

    let empty = Restore::<Payload>::create(&work.path().join("empty")).expect("creates");
    let error = empty.finish(0).expect_err("nothing to restore").to_string();
    assert!(error.contains("no events"), "{error}");
    let Err(error) = Store::open(StoreConfig::new(work.path().join("empty"))) else {
        panic!("a store opened after a restore that did not finish");
    };
    let error = error.to_string();
    assert!(error.contains("restore that did not finish"), "{error}");

    // A checkpoint of an event the replica does not hold.
    let dir = work.path().join("beyond");
    let mut restore = Restore::<Payload>::create(&dir).expect("creates");
    for event in &events[..50] {
        restore.push(event).expect("pushed");
    }
    let error = restore
        .put_checkpoint(100, b"signed at 100")
        .expect_err("beyond the log");
    assert!(error.to_string().contains("ends at 50"), "{error}");
    drop(restore);
    assert!(Store::open(StoreConfig::new(&dir)).is_err());

    // A restore never writes over a directory that holds anything.
    let occupied = work.path().join("occupied");
    std::fs::create_dir(&occupied).expect("mkdir");
    std::fs::write(occupied.join("db"), b"something").expect("write");
    assert!(matches!(
        Restore::<Payload>::create(&occupied),
        Err(RestoreError::Occupied(_))
    ));
}
