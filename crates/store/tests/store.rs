//! The event store against real sled databases in temporary directories.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use store::{
    AppendError, AppendOutcome, AppendRequest, ChainError, EventStore, Head, NewEvent,
    RecordedEvent, StoreConfig, StoreError, codec,
};
use tempfile::TempDir;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Payload {
    writer: u32,
    n: u32,
    note: String,
}

type Store = EventStore<Payload>;

/// Unique request and event ids across a test.
static NEXT_ID: AtomicU64 = AtomicU64::new(1);

fn fresh_id() -> [u8; 16] {
    let n = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    let mut id = [0u8; 16];
    id[8..].copy_from_slice(&n.to_be_bytes());
    id
}

fn hash_of(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

fn payload(writer: u32, n: u32) -> Payload {
    Payload {
        writer,
        n,
        note: format!("writer {writer} item {n}"),
    }
}

/// A request with a new id appending `payloads` to `stream` after `version`.
fn request(stream: &str, version: u64, payloads: Vec<Payload>) -> AppendRequest<Payload> {
    let request_id = fresh_id();
    AppendRequest {
        request_id,
        command_hash: hash_of(&format!("{request_id:?}")),
        stream: stream.to_string(),
        stream_version: version,
        actor: "KHFT:tester".to_string(),
        correlation_id: fresh_id(),
        events: payloads
            .into_iter()
            .map(|payload| NewEvent {
                event_id: fresh_id(),
                event_type: "test.posted".to_string(),
                effective_period: None,
                payload,
            })
            .collect(),
    }
}

/// The streams' versions as the store's caller keeps them: each request follows the ones
/// made before it (share it behind a lock held while enqueueing, as ledgerd does).
#[derive(Default)]
struct Versions(HashMap<String, u64>);

impl Versions {
    fn request(&mut self, stream: &str, payloads: Vec<Payload>) -> AppendRequest<Payload> {
        let version = self.0.entry(stream.to_string()).or_default();
        let request = request(stream, *version, payloads);
        *version += request.events.len() as u64;
        request
    }
}

/// Whether `answer` is the store stopping on a broken contract that says `what`.
fn stopped(answer: &Result<AppendOutcome, AppendError>, what: &str) -> bool {
    matches!(answer, Err(AppendError::Store(StoreError::ContractBroken(why))) if why.contains(what))
}

fn open(dir: &TempDir) -> Store {
    EventStore::open(StoreConfig::new(dir.path())).expect("store opens")
}

fn tempdir() -> TempDir {
    tempfile::tempdir().expect("tempdir")
}

/// Checks that `events` are exactly what `request` asked for, where `outcome` put them.
fn assert_recorded(
    events: &[RecordedEvent<Payload>],
    request: &AppendRequest<Payload>,
    outcome: &AppendOutcome,
) {
    assert_eq!(events.len(), request.events.len());
    for (offset, (event, new)) in events.iter().zip(&request.events).enumerate() {
        let offset = offset as u64;
        assert_eq!(event.sequence, outcome.first_sequence + offset);
        assert_eq!(event.version, outcome.first_version + offset);
        assert_eq!(event.stream, request.stream);
        assert_eq!(event.event_id, new.event_id);
        assert_eq!(event.event_type, new.event_type);
        assert_eq!(event.payload, new.payload);
        assert_eq!(event.request_id, request.request_id);
        assert_eq!(event.correlation_id, request.correlation_id);
        assert_eq!(event.actor, request.actor);
        assert_eq!(event.recorded_at_us, outcome.recorded_at_us);
        assert_eq!(event.schema_version, codec::SCHEMA_VERSION_V1);
    }
    assert_eq!(events.last().map(|e| e.hash), Some(outcome.hash));
}

/// Every stream's versions are gapless from 1 and match its index.
fn assert_streams_gapless(store: &Store, all: &[RecordedEvent<Payload>]) {
    let mut by_stream: BTreeMap<&str, Vec<u64>> = BTreeMap::new();
    for event in all {
        by_stream
            .entry(&event.stream)
            .or_default()
            .push(event.version);
    }
    for (stream, versions) in by_stream {
        let expected: Vec<u64> = (1..=versions.len() as u64).collect();
        assert_eq!(versions, expected, "stream {stream}");
        assert_eq!(
            store.stream_version(stream).expect("version"),
            versions.len() as u64
        );
        let read = store
            .read_stream(stream, 1, usize::MAX)
            .expect("read_stream");
        assert_eq!(read.len(), versions.len());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 8)]
async fn concurrent_appenders_get_a_gapless_verified_log() {
    const TASKS: u32 = 16;
    const APPENDS: u32 = 200;
    let dir = tempdir();
    let store = open(&dir);

    // The shared stream's version is kept as ledgerd keeps every version: under a lock held
    // while the request is enqueued, and released before its acknowledgement is awaited.
    let shared = Arc::new(Mutex::new(Versions::default()));
    let mut tasks = Vec::new();
    for writer in 0..TASKS {
        let store = store.clone();
        let shared = Arc::clone(&shared);
        tasks.push(tokio::spawn(async move {
            let own = format!("own-{writer}");
            let mut own_version = 0u64;
            let mut acknowledged = Vec::new();
            for n in 0..APPENDS {
                // Alternate between the task's own stream and a shared one; requests carry one
                // to three events.
                let count = 1 + (n % 3);
                let payloads = (0..count).map(|k| payload(writer, n * 10 + k)).collect();
                let (request, pending) = if n % 2 == 0 {
                    let request = request(&own, own_version, payloads);
                    let pending = store.enqueue(request.clone()).expect("enqueue");
                    (request, pending)
                } else {
                    let mut versions = shared.lock().expect("versions");
                    let request = versions.request("shared", payloads);
                    let pending = store.enqueue(request.clone()).expect("enqueue");
                    (request, pending)
                };
                let outcome = pending.await.expect("append");
                assert!(!outcome.duplicate);
                if n % 2 == 0 {
                    assert_eq!(outcome.first_version, own_version + 1);
                    own_version = outcome.last_version;
                }
                acknowledged.push((request, outcome));
            }
            acknowledged
        }));
    }
    let mut acknowledged = Vec::new();
    for task in tasks {
        acknowledged.extend(task.await.expect("task"));
    }

    let total: u64 = acknowledged
        .iter()
        .map(|(r, _)| r.events.len() as u64)
        .sum();
    let head = store.head();
    assert_eq!(head.sequence, total);

    let all = store.read_all(1, usize::MAX).expect("read_all");
    let sequences: Vec<u64> = all.iter().map(|e| e.sequence).collect();
    assert_eq!(sequences, (1..=total).collect::<Vec<_>>());
    assert_eq!(all.last().map(|e| e.hash), Some(head.hash));
    for pair in all.windows(2) {
        assert_eq!(pair[1].prev_hash, pair[0].hash);
        assert!(pair[1].recorded_at_us >= pair[0].recorded_at_us);
        if pair[1].request_id != pair[0].request_id {
            assert!(pair[1].recorded_at_us > pair[0].recorded_at_us);
        }
    }

    for (request, outcome) in &acknowledged {
        let first = usize::try_from(outcome.first_sequence - 1).expect("index");
        let last = usize::try_from(outcome.last_sequence).expect("index");
        assert_recorded(&all[first..last], request, outcome);
        let record = store
            .lookup_request(&request.request_id)
            .expect("lookup")
            .expect("committed");
        assert_eq!(&record.outcome, outcome);
        assert_eq!(record.command_hash, request.command_hash);
    }
    assert_streams_gapless(&store, &all);
    assert_eq!(store.verify_chain().expect("chain verifies"), head);

    // Group commit: concurrent requests shared batches (and flushes).
    let stats = store.stats();
    println!("{stats:?}");
    assert_eq!(stats.requests_committed, u64::from(TASKS * APPENDS));
    assert_eq!(stats.events_committed, total);
    assert!(
        stats.batches_committed < stats.requests_committed,
        "{stats:?}"
    );
}

/// The caller keeps the stream versions; a request whose version does not follow on — behind
/// or ahead — means it and the store no longer agree on the log: the store stops, writes
/// nothing more, and a reopened store goes on from what is durable.
#[tokio::test]
async fn a_stream_version_that_does_not_follow_on_stops_the_store() {
    for (version, case) in [(1, "behind"), (3, "ahead")] {
        let dir = tempdir();
        let head = {
            let store = open(&dir);
            let created = store
                .append(request("s", 0, vec![payload(0, 1), payload(0, 2)]))
                .await
                .expect("created");
            assert_eq!((created.first_version, created.last_version), (1, 2));
            let head = store.head();

            let broken = store
                .append(request("s", version, vec![payload(0, 3)]))
                .await;
            let what = format!("after version {version}, but the stream is at version 2");
            assert!(stopped(&broken, &what), "{case}: {broken:?}");
            assert!(
                store.poisoned().is_some_and(|why| why.contains(&what)),
                "{case}"
            );
            // Stopped: even a request that keeps the contract is refused now.
            let refused = store.enqueue(request("s", 2, vec![payload(0, 4)]));
            assert!(
                matches!(refused, Err(StoreError::Poisoned(ref why)) if why.contains(&what)),
                "{case}: {refused:?}"
            );
            assert_eq!(store.head(), head, "{case}: nothing written");
            head
        };
        let store = open(&dir);
        assert_eq!(store.head(), head);
        let next = store
            .append(request("s", 2, vec![payload(0, 3)]))
            .await
            .expect("the version that follows on");
        assert_eq!((next.first_version, next.first_sequence), (3, 3));
    }

    // A new stream is at version 0.
    let dir = tempdir();
    let store = open(&dir);
    let broken = store.append(request("new", 1, vec![payload(0, 1)])).await;
    assert!(
        stopped(&broken, "after version 1, but the stream is at version 0"),
        "{broken:?}"
    );
}

/// The caller answers resends (from [`EventStore::lookup_request`] once a request is
/// durable); a request id appended before — durable, or still in flight — reaching the store
/// means the caller lost track of it: the store stops rather than write it twice, before and
/// after reopening, and what it recorded stays readable and looked up.
#[tokio::test]
async fn a_request_id_appended_before_stops_the_store() {
    let dir = tempdir();
    let original = request("s", 0, vec![payload(0, 1), payload(0, 2)]);
    let outcome = {
        let store = open(&dir);
        let outcome = store.append(original.clone()).await.expect("append");
        assert!(!outcome.duplicate);
        let record = store
            .lookup_request(&original.request_id)
            .expect("lookup")
            .expect("found");
        assert_eq!(record.outcome, outcome);
        assert_eq!(record.command_hash, original.command_hash);
        assert_eq!(store.lookup_request(&[0xEE; 16]).expect("lookup"), None);

        // Durable: sent again (its version made to follow on), it stops the store.
        let mut again = original.clone();
        again.stream_version = 2;
        let what = format!("request {} was appended before", hex(&original.request_id));
        assert!(stopped(&store.append(again).await, &what));
        assert!(store.poisoned().is_some());
        assert_eq!(store.head().sequence, 2, "nothing written");
        outcome
    };

    let store = open(&dir);
    assert_eq!(store.head().sequence, 2);
    let record = store
        .lookup_request(&original.request_id)
        .expect("lookup")
        .expect("found after reopening");
    assert_eq!(record.outcome, outcome);
    // Reopened, the store still knows the id (from its request pages).
    let mut other = request("t", 0, vec![payload(1, 1)]);
    other.request_id = original.request_id;
    assert!(stopped(&store.append(other).await, "was appended before"));
    drop(store);

    // In flight: a burst holding a request and then the same request again. Whatever the
    // burst's first requests were told, the log holds the request once and verifies.
    let store = open(&dir);
    let first = request("s", 2, vec![payload(2, 1)]);
    let mut twice = first.clone();
    twice.stream_version = 3;
    let pending = [
        store.enqueue(first.clone()).expect("enqueue"),
        store.enqueue(twice).expect("enqueue"),
    ];
    let [a, b] = pending;
    let (a, b) = (a.await, b.await);
    assert!(stopped(&b, "was appended before"), "{b:?}");
    assert!(
        matches!(a, Ok(_) | Err(AppendError::Store(_))),
        "acknowledged, or failed with the batch: {a:?}"
    );
    drop(store);
    let store = open(&dir);
    let all = store.read_all(1, 100).expect("read");
    let held = all
        .iter()
        .filter(|event| event.request_id == first.request_id)
        .count();
    assert!(held <= 1, "{held} copies");
    if let Ok(outcome) = a {
        assert_eq!(held, 1, "what was acknowledged is durable");
        let record = store.lookup_request(&first.request_id).expect("lookup");
        assert_eq!(record.map(|r| r.outcome), Some(outcome));
    }
    store.verify_chain().expect("verifies");
    assert_eq!(
        store.stream_version("s").expect("the index reads"),
        all.iter().filter(|e| e.stream == "s").count() as u64
    );
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test]
async fn malformed_requests_are_invalid_and_write_nothing() {
    let dir = tempdir();
    let mut config = StoreConfig::new(dir.path());
    config.batch_events_max = 8;
    let store: Store = EventStore::open(config).expect("open");

    let cases = [
        request("s", 0, vec![]),
        request("", 0, vec![payload(0, 1)]),
        request("a\0b", 0, vec![payload(0, 1)]),
        request(&"x".repeat(257), 0, vec![payload(0, 1)]),
        request("s", 0, (0..9).map(|n| payload(0, n)).collect()),
        {
            let mut r = request("s", 0, vec![payload(0, 1), payload(0, 2)]);
            r.events[1].event_id = r.events[0].event_id;
            r
        },
        {
            let mut r = request("s", 0, vec![payload(0, 1)]);
            r.events[0].event_type = String::new();
            r
        },
        {
            let mut r = request("s", 0, vec![payload(0, 1)]);
            r.actor = "a".repeat(1025);
            r
        },
    ];
    for case in cases {
        let result = store.append(case).await;
        assert!(matches!(result, Err(AppendError::Invalid(_))), "{result:?}");
    }
    assert_eq!(store.head(), Head::EMPTY);

    // A batch-sized request is fine.
    let full = request("s", 0, (0..8).map(|n| payload(0, n)).collect());
    assert_eq!(store.append(full).await.expect("append").last_sequence, 8);
}

#[tokio::test]
async fn reopening_keeps_everything_and_continues_the_chain() {
    let dir = tempdir();
    let (head, last_time, outcomes) = {
        let store = open(&dir);
        let mut versions = Versions::default();
        let mut outcomes = Vec::new();
        for n in 0..10 {
            let stream = if n % 2 == 0 { "even" } else { "odd" };
            let r = versions.request(stream, vec![payload(0, n)]);
            outcomes.push((r.clone(), store.append(r).await.expect("append")));
        }
        store.set_cursor("relay", 7).expect("cursor");
        let last = store.get(10).expect("get").expect("event 10");
        (store.head(), last.recorded_at_us, outcomes)
    };

    let store = open(&dir);
    assert_eq!(store.head(), head);
    assert_eq!(store.verify_chain().expect("verifies"), head);
    assert_eq!(store.cursor("relay").expect("cursor"), 7, "flushed by drop");
    for (r, outcome) in &outcomes {
        let events = store.read_all(outcome.first_sequence, 1).expect("read");
        assert_recorded(&events, r, outcome);
        let record = store
            .lookup_request(&r.request_id)
            .expect("lookup after reopen");
        assert_eq!(record.map(|record| record.outcome).as_ref(), Some(outcome));
    }
    assert_eq!(store.head(), head);
    assert_eq!(store.stream_version("even").expect("version"), 5);

    let next = store
        .append(request("even", 5, vec![payload(0, 10)]))
        .await
        .expect("append after reopen");
    assert_eq!((next.first_sequence, next.first_version), (11, 6));
    assert!(next.recorded_at_us > last_time);
    let event = store.get(11).expect("get").expect("event 11");
    assert_eq!(event.prev_hash, head.hash);
    assert_eq!(store.verify_chain().expect("verifies").sequence, 11);
}

#[tokio::test]
async fn reads_page_through_streams_and_the_log() {
    let dir = tempdir();
    let store = open(&dir);
    let mut versions = Versions::default();
    for n in 0..25u32 {
        let stream = ["a", "b", "c"][(n % 3) as usize];
        store
            .append(versions.request(stream, vec![payload(0, n)]))
            .await
            .expect("append");
    }

    let mut paged = Vec::new();
    let mut from = 1;
    loop {
        let page = store.read_all(from, 4).expect("page");
        assert!(page.len() <= 4);
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        paged.extend(page);
    }
    assert_eq!(paged, store.read_all(0, usize::MAX).expect("all"));
    assert_eq!(paged.len(), 25);

    let mut stream_a = Vec::new();
    let mut from_version = 0;
    loop {
        let page = store.read_stream("a", from_version, 3).expect("page");
        let Some(last) = page.last() else { break };
        from_version = last.version + 1;
        stream_a.extend(page);
    }
    let versions: Vec<u64> = stream_a.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=9).collect::<Vec<_>>());
    assert!(
        stream_a
            .iter()
            .all(|e| e.stream == "a" && e.payload.n % 3 == 0)
    );
    assert_eq!(store.read_stream("a", 9, 10).expect("tail").len(), 1);
    assert!(store.read_stream("a", 10, 10).expect("past end").is_empty());
    assert!(
        store
            .read_stream("nope", 1, 10)
            .expect("no stream")
            .is_empty()
    );
    assert!(store.read_stream("a", 1, 0).expect("limit 0").is_empty());
    assert!(matches!(
        store.read_stream("a\0", 1, 1),
        Err(StoreError::InvalidName(_))
    ));
    assert_eq!(store.stream_version("b").expect("version"), 8);
    assert_eq!(store.stream_version("nope").expect("version"), 0);

    assert!(store.read_all(26, 10).expect("past head").is_empty());
    assert!(store.read_all(5, 0).expect("limit 0").is_empty());
    assert_eq!(store.get(0).expect("get"), None);
    assert_eq!(store.get(26).expect("get"), None);
    assert_eq!(store.get(25).expect("get").map(|e| e.sequence), Some(25));

    let raw = store.read_raw(10, 5).expect("raw");
    let decoded = store.read_all(10, 5).expect("all");
    assert_eq!(raw.len(), 5);
    for (raw, event) in raw.iter().zip(&decoded) {
        assert_eq!(raw.sequence, event.sequence);
        assert_eq!(raw.hash, event.hash);
        assert_eq!(codec::chain_hash(&event.prev_hash, &raw.body), raw.hash);
        assert_eq!(&codec::decode_raw::<Payload>(raw).expect("decodes"), event);
    }
}

#[tokio::test]
async fn subscribers_see_each_durable_head() {
    let dir = tempdir();
    let store = open(&dir);
    let mut heads = store.subscribe();
    assert_eq!(*heads.borrow_and_update(), Head::EMPTY);
    let outcome = store
        .append(request("s", 0, vec![payload(0, 1)]))
        .await
        .expect("append");
    heads.changed().await.expect("changed");
    let head = *heads.borrow_and_update();
    assert_eq!(
        head,
        Head {
            sequence: 1,
            hash: outcome.hash
        }
    );
    assert_eq!(store.head(), head);
}

#[test]
fn cursors_are_named_counters() {
    let dir = tempdir();
    let store = open(&dir);
    assert_eq!(store.cursor("relay").expect("cursor"), 0);
    store.set_cursor("relay", 42).expect("set");
    store.set_cursor("other", 1).expect("set");
    assert_eq!(store.cursor("relay").expect("cursor"), 42);
    assert_eq!(store.cursor("other").expect("cursor"), 1);
    store.flush().expect("flush");
    assert!(matches!(store.cursor(""), Err(StoreError::InvalidName(_))));
    assert!(matches!(
        store.set_cursor(&"n".repeat(129), 1),
        Err(StoreError::InvalidName(_))
    ));
    // Cursors are meta keys, not events.
    assert_eq!(store.head(), Head::EMPTY);
    assert!(store.read_all(1, 10).expect("read").is_empty());
}

#[test]
fn works_without_an_async_runtime() {
    let dir = tempdir();
    let store = open(&dir);
    let versions = Arc::new(Mutex::new(Versions::default()));
    let threads: Vec<_> = (0..4u32)
        .map(|writer| {
            let store = store.clone();
            let versions = Arc::clone(&versions);
            std::thread::spawn(move || {
                (0..50u32)
                    .map(|n| {
                        let pending = {
                            let mut versions = versions.lock().expect("versions");
                            let r = versions.request("blocking", vec![payload(writer, n)]);
                            store.enqueue(r).expect("enqueue")
                        };
                        pending.wait().expect("append")
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut outcomes = Vec::new();
    for thread in threads {
        outcomes.extend(thread.join().expect("thread"));
    }
    assert_eq!(outcomes.len(), 200);
    assert_eq!(store.head().sequence, 200);
    assert_eq!(store.stream_version("blocking").expect("version"), 200);
    store.verify_chain().expect("verifies");
}

#[tokio::test]
async fn dropping_the_last_handle_drains_the_queue_then_stops_the_writer() {
    let dir = tempdir();
    let store = open(&dir);
    let mut versions = Versions::default();
    let requests: Vec<_> = (0..500u32)
        .map(|n| versions.request(&format!("s{}", n % 7), vec![payload(0, n)]))
        .collect();
    let pending: Vec<_> = requests
        .iter()
        .map(|r| store.enqueue(r.clone()).expect("enqueue"))
        .collect();
    drop(store); // joins the writer after it has answered everything queued

    let mut outcomes = Vec::new();
    for pending in pending {
        outcomes.push(pending.await.expect("answered before shutdown"));
    }
    let sequences: Vec<u64> = outcomes.iter().map(|o| o.first_sequence).collect();
    assert_eq!(
        sequences,
        (1..=500).collect::<Vec<_>>(),
        "sequenced in enqueue order"
    );

    // The writer released its sled handle: the database can be opened again at once.
    let store = open(&dir);
    assert_eq!(store.head().sequence, 500);
    store.verify_chain().expect("verifies");
    for (r, outcome) in requests.iter().zip(&outcomes) {
        let events = store.read_all(outcome.first_sequence, 1).expect("read");
        assert_recorded(&events, r, outcome);
    }
}

#[test]
fn a_second_open_of_the_same_directory_is_refused() {
    let dir = tempdir();
    let _store = open(&dir);
    let second: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
    assert!(matches!(second, Err(StoreError::Sled(_))));
}

/// Appends `count` single-event requests and closes the store; returns the head.
fn fill(dir: &TempDir, count: u32) -> Head {
    let store = open(dir);
    let version = store.stream_version("s").expect("version");
    for n in 0..count {
        let r = request("s", version + u64::from(n), vec![payload(0, n)]);
        store.enqueue(r).expect("enqueue").wait().expect("append");
    }
    store.head()
}

#[test]
fn reopening_again_and_again_fills_the_open_page_and_the_next() {
    // The writer keeps the log's last page open across restarts: 7 events per run, 5 runs;
    // the runs of 15–21 and 29–35 each start a new page (at 17 and 33) part-way.
    let dir = tempdir();
    let mut heads = Vec::new();
    for _ in 0..5 {
        heads.push(fill(&dir, 7));
    }
    assert_eq!(
        heads.iter().map(|h| h.sequence).collect::<Vec<_>>(),
        [7, 14, 21, 28, 35]
    );
    let store = open(&dir);
    assert_eq!(store.verify_chain().expect("verifies"), heads[4]);
    let all = store.read_all(1, 100).expect("read");
    assert_eq!(
        all.iter().map(|e| e.sequence).collect::<Vec<_>>(),
        (1..=35).collect::<Vec<_>>()
    );
    for from in [1, 15, 16, 17, 33, 35] {
        let page = store.read_all(from, 3).expect("read");
        let expected: Vec<u64> = (from..=35).take(3).collect();
        assert_eq!(
            page.iter().map(|e| e.sequence).collect::<Vec<_>>(),
            expected
        );
        assert_eq!(
            store.get(from).expect("get").map(|e| e.sequence),
            Some(from)
        );
    }
    assert_eq!(store.read_all(36, 3).expect("read past the head"), []);
    drop(store);
    let log = store::RawLog::open(dir.path()).expect("raw");
    assert_eq!(log.event_count(), 35);
    let named: Vec<u64> = log.events().map(|e| e.expect("event").0).collect();
    assert_eq!(named, (1..=35).collect::<Vec<_>>());
}

#[test]
fn a_store_whose_last_page_was_cut_is_refused() {
    // Event 34 cut out of the open page (33–35): the writer would append after a hole.
    let dir = tempdir();
    fill(&dir, 35);
    tamper(&dir, |log| log.tamper_remove(34).expect("remove"));
    let refused: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
    assert!(
        matches!(&refused, Err(StoreError::Corrupt(why)) if why.contains("34")),
        "{refused:?}"
    );
}

/// Edits the stored events directly, as an attacker or a bad disk would, with the store
/// closed.
fn tamper(dir: &TempDir, edit: impl FnOnce(&store::RawLog)) {
    let log = store::RawLog::open(dir.path()).expect("sled opens");
    edit(&log);
    log.flush().expect("flush");
}

fn stored(log: &store::RawLog, sequence: u64) -> Vec<u8> {
    log.value(sequence)
        .expect("read")
        .unwrap_or_else(|| panic!("event {sequence} is stored"))
        .to_vec()
}

#[test]
fn verify_chain_finds_a_flipped_byte_in_the_middle() {
    let dir = tempdir();
    let head = fill(&dir, 10);
    tamper(&dir, |log| {
        let mut value = stored(log, 5);
        value[30] ^= 0x01; // inside the body (a request id byte)
        log.tamper_replace(5, &value).expect("replace");
    });

    let store = open(&dir); // the tip is intact, so the store opens
    assert_eq!(store.head(), head);
    match store.verify_chain() {
        Err(ChainError::HashMismatch {
            sequence,
            expected,
            found,
        }) => {
            assert_eq!(sequence, 5);
            assert_ne!(expected, found);
        }
        other => panic!("expected a hash mismatch at 5, got {other:?}"),
    }
    assert_eq!(
        store.verify_chain().err().and_then(|e| e.sequence()),
        Some(5)
    );
    assert!(matches!(store.get(5), Err(StoreError::Corrupt(_))));
    assert!(matches!(store.read_all(1, 10), Err(StoreError::Corrupt(_))));
    assert_eq!(store.get(4).expect("get").map(|e| e.sequence), Some(4));
}

#[test]
fn verify_chain_finds_a_rehashed_event_and_a_missing_one() {
    let dir = tempdir();
    // 20 events: two pages (1–16, 17–20), so cutting event 2 out of the first leaves the
    // last page, which the store checks on opening, intact.
    fill(&dir, 20);
    // Rewrite event 3's payload AND recompute its own hash: it verifies alone, but event 4's
    // prev_hash no longer matches, and recomputing event 4 from the new chain fails.
    tamper(&dir, |log| {
        let value = stored(log, 3);
        let body = &value[..value.len() - 32];
        let mut forged = body.to_vec();
        let last = forged.len() - 33; // last byte of the payload, before the 32-byte prev_hash
        forged[last] ^= 0x01;
        let prev: [u8; 32] = forged[forged.len() - 32..].try_into().expect("prev hash");
        let hash = codec::chain_hash(&prev, &forged);
        forged.extend_from_slice(&hash);
        log.tamper_replace(3, &forged).expect("replace");
    });
    let store = open(&dir);
    let error = store.verify_chain().expect_err("tampered");
    assert!(
        matches!(error, ChainError::HashMismatch { sequence: 4, .. }),
        "{error:?}"
    );
    drop(store);

    tamper(&dir, |log| {
        log.tamper_remove(2).expect("remove");
    });
    let store = open(&dir);
    let error = store.verify_chain().expect_err("gap");
    assert!(
        matches!(
            error,
            ChainError::Missing {
                sequence: 2,
                found: Some(3)
            }
        ),
        "{error:?}"
    );
}

#[test]
fn a_store_whose_tip_does_not_verify_is_refused() {
    let dir = tempdir();
    fill(&dir, 3);
    tamper(&dir, |log| {
        let mut value = stored(log, 3);
        value[12] ^= 0x80;
        log.tamper_replace(3, &value).expect("replace");
    });
    let refused: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
}

#[test]
fn a_store_whose_meta_head_disagrees_is_refused() {
    let dir = tempdir();
    fill(&dir, 3);
    tamper(&dir, |log| {
        log.tamper_remove(3).expect("remove"); // a lost last event: meta says 3
    });
    let refused: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
}

#[test]
fn a_store_whose_last_request_page_is_lost_or_disagrees_is_refused() {
    // One request per batch here (each waits for the last): a request page per event,
    // under `r` ‖ the event's sequence.
    let dir = tempdir();
    fill(&dir, 3);
    let request_page = |sequence: u64| {
        let mut key = vec![b'r'];
        key.extend_from_slice(&sequence.to_be_bytes());
        key
    };
    let edit = |edit: &dyn Fn(&sled::Tree)| {
        let tree = store::open_dir(dir.path())
            .and_then(|db| db.open_tree("ics-ledger"))
            .expect("sled opens");
        edit(&tree);
        tree.flush().expect("flush");
    };
    let refused = |why: &str| {
        let refused: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
        assert!(
            matches!(&refused, Err(StoreError::Corrupt(what)) if what.contains(why)),
            "{refused:?}"
        );
    };

    // The tip's record answered by the request before it.
    let second = std::sync::Mutex::new(None);
    edit(&|tree| {
        let page = tree.get(request_page(2)).expect("get").expect("page 2");
        tree.insert(request_page(3), page.clone()).expect("insert");
        *second.lock().expect("lock") = Some(page);
    });
    refused("idempotency record disagrees");

    // The tip's record lost (the page before it still there).
    edit(&|tree| {
        tree.remove(request_page(3)).expect("remove");
    });
    refused("idempotency record disagrees");

    // Every record lost.
    edit(&|tree| {
        for sequence in 1..=2 {
            tree.remove(request_page(sequence)).expect("remove");
        }
    });
    refused("idempotency record missing");

    // Put back, but with a record cut short.
    let page = second.lock().expect("lock").take().expect("page 2");
    edit(&|tree| {
        tree.insert(request_page(1), &page[..page.len() - 1])
            .expect("insert");
    });
    refused("request page 1");
}

/// The request pages are read when first needed (an append, a resend lookup, a stream read),
/// not when the store opens: a store opened to read the log never pays for them. A hole in
/// them is found then, and refuses the write.
#[test]
fn a_hole_in_the_request_pages_is_found_when_first_needed() {
    let dir = tempdir();
    fill(&dir, 3);
    let tree = store::open_dir(dir.path())
        .and_then(|db| db.open_tree("ics-ledger"))
        .expect("sled opens");
    let mut key = vec![b'r'];
    key.extend_from_slice(&1u64.to_be_bytes());
    tree.remove(key).expect("remove the first request page");
    tree.flush().expect("flush");
    drop(tree);

    let store = open(&dir);
    assert_eq!(store.read_all(1, 10).expect("the log reads").len(), 3);
    let read = store
        .read_stream("s", 1, 10)
        .expect_err("the index has a hole");
    assert!(read.to_string().contains("where 1 was next"), "{read}");
    let append = store
        .enqueue(request("s", 3, vec![payload(1, 1)]))
        .expect("enqueued")
        .wait()
        .expect_err("refused");
    assert!(append.to_string().contains("where 1 was next"), "{append}");
    assert!(
        store.enqueue(request("s", 3, vec![payload(1, 2)])).is_err(),
        "poisoned"
    );
    assert_eq!(store.head().sequence, 3, "nothing written");
}

#[test]
fn a_foreign_database_is_refused() {
    let dir = tempdir();
    {
        let db = store::open_dir(dir.path()).expect("sled opens");
        let tree = db.open_tree("ics-ledger").expect("tree");
        tree.insert(b"something", b"else".to_vec()).expect("insert");
        tree.flush().expect("flush");
    }
    let refused: Result<Store, _> = EventStore::open(StoreConfig::new(dir.path()));
    assert!(
        matches!(refused, Err(StoreError::Corrupt(_))),
        "{refused:?}"
    );
}

#[test]
fn invalid_configuration_is_refused() {
    let dir = tempdir();
    let mut config = StoreConfig::new(dir.path());
    config.batch_events_max = 0;
    let refused: Result<Store, _> = EventStore::open(config);
    assert!(matches!(refused, Err(StoreError::InvalidConfig(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn small_batches_split_bursts_without_reordering() {
    let dir = tempdir();
    let mut config = StoreConfig::new(dir.path());
    config.batch_events_max = 5;
    config.queue_requests_max = 4;
    let store: Store = EventStore::open(config).expect("open");
    let store = Arc::new(store);
    let mut pending = Vec::new();
    let mut versions: HashMap<String, u64> = HashMap::new();
    for n in 0..60u32 {
        let stream = format!("s{}", n % 4);
        let count = 1 + n % 5;
        let version = versions.entry(stream.clone()).or_default();
        let r = request(
            &stream,
            *version,
            (0..count).map(|k| payload(n, k)).collect(),
        );
        *version += u64::from(count);
        pending.push(store.enqueue(r).expect("enqueue")); // blocks while the queue is full
    }
    let mut next = 1;
    for p in pending {
        let outcome = p.await.expect("versions follow on in enqueue order");
        assert_eq!(outcome.first_sequence, next);
        next = outcome.last_sequence + 1;
    }
    store.verify_chain().expect("verifies");
}

#[test]
fn handles_and_futures_can_cross_threads() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>(_: &T) {}
    send_sync::<Store>();
    send_sync::<store::PendingAppend>();
    let dir = tempdir();
    let store = open(&dir);
    let append = store.append(request("s", 0, vec![payload(0, 1)]));
    send(&append);
    drop(append);
    assert_eq!(
        store.head(),
        Head::EMPTY,
        "an append that is never polled is never queued"
    );
}

/// Requests of many sizes on interleaved streams: the stream index keeps one run per
/// request, and reading a stream from any version, in pages of any size, gives exactly the
/// stream's events in version order — across reopening too.
#[tokio::test]
async fn multi_event_requests_read_back_from_any_version() {
    let dir = tempdir();
    let store = open(&dir);
    let mut versions = Versions::default();
    let mut n = 0;
    for (i, size) in [1u32, 5, 2, 7, 1, 3, 4, 1, 6, 2].iter().enumerate() {
        let stream = ["x", "y"][i % 2];
        let payloads = (0..*size).map(|k| payload(i as u32, n + k)).collect();
        n += size;
        store
            .append(versions.request(stream, payloads))
            .await
            .expect("append");
    }
    let check = |store: &Store| {
        let all = store.read_all(0, usize::MAX).expect("all");
        for stream in ["x", "y"] {
            let expected: Vec<_> = all.iter().filter(|e| e.stream == stream).cloned().collect();
            let versions: Vec<u64> = expected.iter().map(|e| e.version).collect();
            assert_eq!(versions, (1..=expected.len() as u64).collect::<Vec<_>>());
            assert_eq!(
                store.stream_version(stream).expect("version"),
                expected.len() as u64
            );
            for from in 0..=expected.len() as u64 + 1 {
                for limit in [1, 2, 3, 5, usize::MAX] {
                    let page = store.read_stream(stream, from, limit).expect("page");
                    let skip = usize::try_from(from.max(1) - 1).expect("small");
                    let want: Vec<_> = expected.iter().skip(skip).take(limit).cloned().collect();
                    assert_eq!(page, want, "{stream} from {from} limit {limit}");
                }
            }
        }
    };
    check(&store);
    drop(store);
    check(&open(&dir));
}

/// Writes the stopped store in `from` into `to` as format 2 or 3 laid it out.
fn as_format(format: u8, from: &std::path::Path, to: &std::path::Path) {
    match format {
        2 => store::upgrade::write_format_2_copy(from, to),
        3 => store::upgrade::write_format_3_copy(from, to),
        _ => unreachable!("formats 2 and 3 are the earlier ones"),
    }
    .expect("a copy in an earlier format");
}

#[tokio::test]
async fn a_format_2_store_is_refused_and_upgraded_into_one_that_reads_the_same() {
    an_earlier_store_is_refused_and_upgraded_into_one_that_reads_the_same(2).await;
}

#[tokio::test]
async fn a_format_3_store_is_refused_and_upgraded_into_one_that_reads_the_same() {
    an_earlier_store_is_refused_and_upgraded_into_one_that_reads_the_same(3).await;
}

async fn an_earlier_store_is_refused_and_upgraded_into_one_that_reads_the_same(format: u8) {
    let dir = tempdir();
    let (current, old, upgraded) = (
        dir.path().join("current"),
        dir.path().join("old"),
        dir.path().join("upgraded"),
    );
    // 25 events over two pages, single- and multi-event requests, a cursor, a checkpoint.
    let (head, all, requests) = {
        let store = Store::open(StoreConfig::new(&current)).expect("store opens");
        let mut versions = Versions::default();
        let mut requests = Vec::new();
        for n in 0..13u32 {
            let payloads = (0..=n % 3).map(|i| payload(n, i)).collect();
            let r = versions.request(&format!("s{}", n % 4), payloads);
            let outcome = store.append(r.clone()).await.expect("append");
            requests.push((r, outcome));
        }
        store.set_cursor("relay", 20).expect("cursor");
        store.put_checkpoint(20, b"signed").expect("checkpoint");
        (
            store.head(),
            store.read_all(1, 1_000).expect("read"),
            requests,
        )
    };
    assert_eq!(head.sequence, 25);
    as_format(format, &current, &old);

    let refused = Store::open(StoreConfig::new(&old)).expect_err("an earlier format");
    assert!(
        refused.to_string().contains("icsctl store upgrade")
            && refused
                .to_string()
                .contains(&format!("ics-ledger-store/{format}")),
        "{refused}"
    );

    let done = store::upgrade::upgrade(&old, &upgraded).expect("upgrades");
    assert_eq!((done.events, done.requests, done.runs), (25, 13, 13));
    let store = Store::open(StoreConfig::new(&upgraded)).expect("the upgraded store opens");
    assert_eq!(store.head(), head);
    assert_eq!(store.verify_chain().expect("verifies"), head);
    assert_eq!(store.read_all(1, 1_000).expect("read"), all);
    assert_eq!(store.cursor("relay").expect("cursor"), 20);
    assert_eq!(
        store.checkpoints(1, 10).expect("checkpoints"),
        [(20, b"signed".to_vec())]
    );
    for (r, outcome) in &requests {
        let record = store.lookup_request(&r.request_id).expect("lookup");
        assert_eq!(record.map(|record| record.outcome).as_ref(), Some(outcome));
    }
    let s0 = store.stream_version("s0").expect("version");
    let next = store
        .append(request("s0", s0, vec![payload(99, 0)]))
        .await
        .expect("append after the upgrade");
    assert_eq!(next.first_sequence, 26);
    assert_eq!(store.verify_chain().expect("verifies").sequence, 26);
    drop(store);

    // The old directory is untouched; a gap in it is refused, not papered over.
    let gapped = dir.path().join("gapped");
    as_format(format, &current, &gapped);
    store::open_dir(&gapped)
        .and_then(|db| db.open_tree("ics-ledger"))
        .and_then(|tree| {
            match format {
                2 => tree.remove(store::event_key(7))?,
                // The second page, events 17 to 25, goes: the events stop short of the head.
                _ => tree.remove(store::event_key(17))?,
            };
            tree.flush()
        })
        .expect("cut an event");
    let again = dir.path().join("again");
    let refused = store::upgrade::upgrade(&gapped, &again).expect_err("a gap");
    let gap = if format == 2 {
        "skip from 6 to 8"
    } else {
        "end at 16 but its head is Some(25)"
    };
    assert!(refused.to_string().contains(gap), "{refused}");

    // A request's idempotency record lost: its events would be nobody's; refused.
    let unrecorded = dir.path().join("unrecorded");
    as_format(format, &current, &unrecorded);
    let (lost, _) = &requests[5];
    store::open_dir(&unrecorded)
        .and_then(|db| db.open_tree("ics-ledger"))
        .and_then(|tree| {
            let mut key = vec![b'i'];
            key.extend_from_slice(&lost.request_id);
            tree.remove(key).map(|removed| assert!(removed.is_some()))?;
            tree.flush()
        })
        .expect("lose a record");
    let refused = store::upgrade::upgrade(&unrecorded, &dir.path().join("unrecorded-4"))
        .expect_err("a record lost");
    assert!(refused.to_string().contains("was next"), "{refused}");

    let twice = store::upgrade::upgrade(&old, &dir.path().join("twice")).expect("again");
    assert_eq!(twice, done);
}
