//! One changed byte on disk: refused or harmless, never a shorter log, never a panic.
//!
//! A store of ~1,500 events is written and closed; then for every file sled keeps in the
//! directory, one byte at offsets spread over the file is changed three ways, each in its own
//! copy. Opening the copy and reading it whole (as ledgerd does on starting: it replays the
//! log) must either refuse it (an error) or give back exactly the log that was written: the
//! same head, a chain that verifies.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use store::{AppendRequest, EventStore, Head, NewEvent, StoreConfig};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Payload {
    n: u64,
    note: String,
}

type Store = EventStore<Payload>;

const EVENTS: u64 = 1_506;

fn request(stream: u64, first: u64, count: u64, version: u64) -> AppendRequest<Payload> {
    let mut id = [0u8; 16];
    id[..8].copy_from_slice(&first.to_be_bytes());
    AppendRequest {
        request_id: id,
        command_hash: [first as u8; 32],
        stream: format!("stream-{stream}"),
        stream_version: version,
        actor: "tester".to_string(),
        correlation_id: id,
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
                        note: format!("event {n} of the corruption test"),
                    },
                }
            })
            .collect(),
    }
}

/// Writes [`EVENTS`] events in requests of 1 to 7 over 8 streams; returns the head.
fn write_log(dir: &Path) -> Head {
    let store = Store::open(StoreConfig::new(dir)).expect("opens");
    let mut versions = [0u64; 8];
    let mut next = 1;
    let mut pending = Vec::new();
    while next <= EVENTS {
        let stream = next % 8;
        let count = (next % 7 + 1).min(EVENTS - next + 1);
        let version = versions[stream as usize];
        pending.push(
            store
                .enqueue(request(stream, next, count, version))
                .expect("enqueued"),
        );
        versions[stream as usize] += count;
        next += count;
        if pending.len() == 16 {
            for append in pending.drain(..) {
                append.wait().expect("appended");
            }
        }
    }
    for append in pending {
        append.wait().expect("appended");
    }
    let head = store.head();
    assert_eq!(head.sequence, EVENTS);
    drop(store);
    head
}

fn files(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("lists") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            files.extend(self::files(&path));
        } else {
            files.push(path);
        }
    }
    files.sort();
    files
}

/// What opening a damaged copy gave.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Outcome {
    Refused,
    Whole,
    /// Opened, but not the log that was written (shorter, or not verifying, or unreadable).
    Served(String),
    Panicked(String),
}

fn open_and_judge(dir: &Path, written: Head) -> Outcome {
    let opened = catch_unwind(AssertUnwindSafe(|| {
        let store = match Store::open(StoreConfig::new(dir)) {
            Ok(store) => store,
            Err(_) => return Outcome::Refused,
        };
        let events = match store.read_all(1, usize::MAX) {
            Ok(events) => events,
            Err(_) => return Outcome::Refused,
        };
        let head = store.head();
        if head != written || events.len() as u64 != written.sequence {
            return Outcome::Served(format!(
                "head {} of {}, {} events read",
                head.sequence,
                written.sequence,
                events.len()
            ));
        }
        match store.verify_chain() {
            Ok(_) => Outcome::Whole,
            Err(error) => Outcome::Served(format!("chain: {error}")),
        }
    }));
    opened.unwrap_or_else(|panic| {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
            .unwrap_or_default();
        Outcome::Panicked(message)
    })
}

#[test]
fn one_changed_byte_is_refused_or_harmless_never_a_shorter_log() {
    let root = tempfile::tempdir().expect("tempdir");
    let original = root.path().join("original");
    let written = write_log(&original);
    // sled lets go of its lock a moment after the last handle drops.
    std::thread::sleep(std::time::Duration::from_millis(200));

    let mut results = Vec::new();
    for file in files(&original) {
        let relative = file.strip_prefix(&original).expect("inside").to_path_buf();
        let bytes = std::fs::read(&file).expect("reads");
        if bytes.is_empty() {
            continue;
        }
        for tenth in 1..=9 {
            let offset = bytes.len() * tenth / 10;
            for (how, change) in [
                ("flipped", (|b: u8| b ^ 0x01) as fn(u8) -> u8),
                ("set to 0xFF", |_| 0xFF),
                ("zeroed", |_| 0x00),
            ] {
                let mut damaged = bytes.clone();
                damaged[offset] = change(damaged[offset]);
                if damaged == bytes {
                    continue;
                }
                let copy = root.path().join("copy");
                let _ = std::fs::remove_dir_all(&copy);
                store::copy::copy_tree(&original, &copy).expect("copies");
                std::fs::write(copy.join(&relative), &damaged).expect("writes");
                let outcome = open_and_judge(&copy, written);
                results.push((relative.display().to_string(), offset, how, outcome));
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
    }
    let bad: Vec<_> = results
        .iter()
        .filter(|(.., outcome)| !matches!(outcome, Outcome::Refused | Outcome::Whole))
        .collect();
    let refused = results
        .iter()
        .filter(|(.., o)| *o == Outcome::Refused)
        .count();
    eprintln!(
        "{} copies: {refused} refused, {} whole, {} bad",
        results.len(),
        results.len() - refused - bad.len(),
        bad.len()
    );
    assert!(bad.is_empty(), "served or panicked: {bad:#?}");
}

/// Appends `count` events to stream `fork-<tag>` of an open store.
fn append_more(store: &Store, tag: u64, count: u64) {
    let first = store.head().sequence + 1;
    let mut request = request(100 + tag, first, count, 0);
    request.stream = format!("fork-{tag}-{first}");
    store
        .enqueue(request)
        .expect("enqueued")
        .wait()
        .expect("appended");
}

#[test]
fn a_log_shorter_than_its_anchor_or_forked_from_it_is_refused() {
    let root = tempfile::tempdir().expect("tempdir");
    let (live, old_copy) = (root.path().join("live"), root.path().join("old"));
    let store = Store::open(StoreConfig::new(&live)).expect("opens");
    append_more(&store, 0, 100);
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(200));
    store::copy::copy_tree(&live, &old_copy).expect("copies");
    let store = Store::open(StoreConfig::new(&live)).expect("reopens");
    append_more(&store, 0, 100);
    let head = store.head();
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(store::anchor::read(&live).expect("anchor"), Some(head));

    // The old copy's log under the live anchor: 100 events where 200 were recorded.
    let anchor = std::fs::read(store::anchor::anchor_path(&live)).expect("anchor");
    let shortened = root.path().join("shortened");
    store::copy::copy_tree(&old_copy, &shortened).expect("copies");
    std::fs::write(store::anchor::anchor_path(&shortened), &anchor).expect("writes");
    let error = Store::open(StoreConfig::new(&shortened)).expect_err("refused");
    let message = error.to_string();
    assert!(
        message.contains("events 101..=200 are missing")
            && message.contains("icsctl store restore"),
        "{message}"
    );

    // The old copy extended with other events, under the live anchor: a fork at 101.
    let forked = root.path().join("forked");
    store::copy::copy_tree(&old_copy, &forked).expect("copies");
    let store = Store::open(StoreConfig::new(&forked)).expect("the old copy opens");
    append_more(&store, 1, 150);
    drop(store);
    std::thread::sleep(std::time::Duration::from_millis(200));
    std::fs::write(store::anchor::anchor_path(&forked), &anchor).expect("writes");
    let error = Store::open(StoreConfig::new(&forked)).expect_err("refused");
    assert!(error.to_string().contains("event 200 has hash"), "{error}");

    // The live store itself opens, whole.
    let store = Store::open(StoreConfig::new(&live)).expect("opens");
    assert_eq!(store.head(), head);
    store.verify_chain().expect("verifies");
}
