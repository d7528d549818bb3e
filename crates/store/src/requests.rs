//! Idempotency records, kept a batch to a sled key, and the indexes built from them, kept in
//! memory.
//!
//! Why: sled's cost is per key, and a key named by a random request id is the dearest kind —
//! each lands in a leaf of its own. With a record per request under `i` ‖ request id and a
//! stream-index run per request under `s` ‖ stream ‖ version (format 3), a batch of twelve
//! single-event requests wrote twenty-four small keys and read twelve more to check for
//! resends; without them the same appends ran 41–72% faster (see `crates/bench/README.md`).
//!
//! So the writer puts the records of every request a batch admits into one **request page**,
//! `r` ‖ the first sequence the batch wrote, each entry `request id (16) ‖ length u32 BE ‖
//! record` (the record is [`codec`]'s idempotency envelope, unchanged). A record holds the
//! request's stream, versions and sequences, so the records also say where each stream's
//! events are: the [`Index`] — which page holds each request id, and each stream's runs of
//! consecutive versions at consecutive sequences — is built from them the first time the store
//! needs it (its first append, resend lookup or stream read; `writer::Shared::index`) and
//! extended by the writer after each flush. Building it reads and decodes every record,
//! checking that they tile the log (each request's events follow the last one's, and each
//! stream's versions follow on); its time and size per request are measured by `cargo bench -p
//! bench --bench audit` (`crates/bench/README.md`; less where a stream's requests follow one
//! another, as their runs merge).

use std::collections::HashMap;
use std::fmt;

use crate::codec;
use crate::error::StoreError;
use crate::frames::{self, Cut, Frames};
use crate::keys::{self, Run};
use crate::model::{AppendOutcome, IdempotencyRecord};

/// What the store's requests say, in memory: which request page holds each committed request
/// id, and where each stream's events are.
#[derive(Default)]
pub(crate) struct Index {
    pages: HashMap<[u8; 16], u64>,
    streams: HashMap<String, Vec<Run>>,
    /// The last sequence a request wrote.
    end: u64,
}

impl fmt::Debug for Index {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Index")
            .field("requests", &self.pages.len())
            .field("streams", &self.streams.len())
            .field("end", &self.end)
            .finish()
    }
}

impl Index {
    /// Reads and decodes every request page, in order.
    pub(crate) fn load(tree: &sled::Tree) -> Result<Self, StoreError> {
        let mut index = Index::default();
        for page in tree.scan_prefix([keys::PREFIX_REQUESTS]) {
            let (key, page) = page?;
            let first = keys::requests_sequence(&key)
                .ok_or_else(|| StoreError::Corrupt("a request page key".to_string()))?;
            for (n, entry) in Entries::new(&page).enumerate() {
                let (request_id, record) = entry.map_err(|e| corrupt_page(first, &e))?;
                let record = codec::decode_idempotency_view(record).map_err(|e| {
                    corrupt_page(
                        first,
                        &format!("the record of request {}: {e}", hex::encode(request_id)),
                    )
                })?;
                if n == 0 && record.first_sequence != first || index.pages.contains_key(&request_id)
                {
                    return Err(corrupt_page(
                        first,
                        &format!("request {} out of place", hex::encode(request_id)),
                    ));
                }
                index
                    .add(first, request_id, Written::from(&record))
                    .map_err(|e| corrupt_page(first, &e))?;
            }
        }
        Ok(index)
    }

    /// Records a committed request: its id, in the page of `first`, and its events' run.
    /// Refuses (changing nothing) a request that does not follow the last one in the log and
    /// in its stream.
    pub(crate) fn add(
        &mut self,
        first: u64,
        request_id: [u8; 16],
        outcome: Written<'_>,
    ) -> Result<(), String> {
        let count = outcome
            .last_sequence
            .checked_sub(outcome.first_sequence)
            .and_then(|n| n.checked_add(1))
            .filter(|&n| outcome.last_version.checked_sub(outcome.first_version) == Some(n - 1))
            .ok_or_else(|| format!("request {} is not a run", hex::encode(request_id)))?;
        if outcome.first_sequence != self.end + 1 {
            return Err(format!(
                "request {} writes from event {} where {} was next",
                hex::encode(request_id),
                outcome.first_sequence,
                self.end + 1
            ));
        }
        let version = self.stream_version(outcome.stream);
        if outcome.first_version != version + 1 {
            return Err(format!(
                "request {} writes {:?} from v{} where v{} was next",
                hex::encode(request_id),
                outcome.stream,
                outcome.first_version,
                version + 1
            ));
        }
        let run = Run {
            first_version: outcome.first_version,
            first_sequence: outcome.first_sequence,
            count,
        };
        let runs = match self.streams.get_mut(outcome.stream) {
            Some(runs) => runs,
            None => self.streams.entry(outcome.stream.to_string()).or_default(),
        };
        match runs.last_mut() {
            Some(last) if last.last_sequence() + 1 == run.first_sequence => last.count += count,
            _ => runs.push(run),
        }
        self.pages.insert(request_id, first);
        self.end = outcome.last_sequence;
        Ok(())
    }

    /// The first sequence (the key) of the page holding `request_id`'s record.
    pub(crate) fn page_of(&self, request_id: &[u8; 16]) -> Option<u64> {
        self.pages.get(request_id).copied()
    }

    /// The version of `stream`'s last committed event; 0 if it has none.
    pub(crate) fn stream_version(&self, stream: &str) -> u64 {
        self.streams
            .get(stream)
            .and_then(|runs| runs.last())
            .map_or(0, Run::last_version)
    }

    /// The version of `stream`'s last event at or below sequence `head`; 0 if it has none.
    pub(crate) fn stream_version_at(&self, stream: &str, head: u64) -> u64 {
        self.streams
            .get(stream)
            .and_then(|runs| runs.iter().rev().find_map(|run| run.durable_version(head)))
            .unwrap_or(0)
    }

    /// Up to `most` runs of `stream`, from the one holding `from_version` (each run holds at
    /// least one version, so a read of `most` versions needs no more).
    pub(crate) fn runs_from(&self, stream: &str, from_version: u64, most: usize) -> Vec<Run> {
        let Some(runs) = self.streams.get(stream) else {
            return Vec::new();
        };
        let start = runs.partition_point(|run| run.last_version() < from_version);
        runs[start..].iter().take(most).copied().collect()
    }

    /// The last sequence a committed request wrote (0 if none).
    pub(crate) fn end(&self) -> u64 {
        self.end
    }

    pub(crate) fn requests(&self) -> usize {
        self.pages.len()
    }

    pub(crate) fn streams(&self) -> usize {
        self.streams.len()
    }

    /// The heap bytes the index holds, counted from its tables' capacities (hashbrown keeps
    /// a power of two of buckets, each an entry and a control byte, at most 7/8 full) and the
    /// strings and vectors they own: a deterministic figure, where the process's resident size
    /// moves with whatever the allocator kept from earlier work.
    pub(crate) fn heap_bytes(&self) -> usize {
        fn table<K, V>(map: &HashMap<K, V>) -> usize {
            let buckets = match map.capacity() {
                0 => 0,
                small @ 1..8 => (small + 1).next_power_of_two(),
                capacity => (capacity * 8 / 7).next_power_of_two(),
            };
            buckets * (std::mem::size_of::<(K, V)>() + 1)
        }
        let owned: usize = self
            .streams
            .iter()
            .map(|(stream, runs)| stream.capacity() + runs.capacity() * std::mem::size_of::<Run>())
            .sum();
        table(&self.pages) + table(&self.streams) + owned
    }
}

/// Where one request's events are: what the index keeps of its record.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Written<'a> {
    pub stream: &'a str,
    pub first_version: u64,
    pub last_version: u64,
    pub first_sequence: u64,
    pub last_sequence: u64,
}

impl<'a> From<&'a AppendOutcome> for Written<'a> {
    fn from(outcome: &'a AppendOutcome) -> Self {
        Written {
            stream: &outcome.stream,
            first_version: outcome.first_version,
            last_version: outcome.last_version,
            first_sequence: outcome.first_sequence,
            last_sequence: outcome.last_sequence,
        }
    }
}

impl<'a> From<&codec::IdempotencyRecordV1<'a>> for Written<'a> {
    fn from(record: &codec::IdempotencyRecordV1<'a>) -> Self {
        Written {
            stream: record.stream,
            first_version: record.first_version,
            last_version: record.last_version,
            first_sequence: record.first_sequence,
            last_sequence: record.last_sequence,
        }
    }
}

/// Appends one entry to a request page (`frames`).
pub(crate) fn push_entry(page: &mut Vec<u8>, request_id: &[u8; 16], record: &[u8]) {
    frames::push(page, request_id, &[record]);
}

/// The entries of a request page: `(request id, record bytes)` each, or what is wrong with
/// the rest of the page.
pub(crate) struct Entries<'a> {
    frames: Frames<'a, 16>,
}

impl<'a> Entries<'a> {
    pub(crate) fn new(page: &'a [u8]) -> Self {
        Entries {
            frames: Frames::new(page),
        }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<([u8; 16], &'a [u8]), String>;

    fn next(&mut self) -> Option<Self::Item> {
        let page = self.frames.page;
        Some(match self.frames.next()? {
            Ok((request_id, range)) => Ok((request_id, &page[range])),
            Err(Cut::InHeader { at }) => Err(format!("an entry cut short in its header at {at}")),
            Err(Cut::InValue { tag, .. }) => Err(format!(
                "the record of request {} is cut short",
                hex::encode(tag)
            )),
        })
    }
}

/// The record of `request_id` in the page of `first`.
pub(crate) fn find(
    tree: &sled::Tree,
    first: u64,
    request_id: &[u8; 16],
) -> Result<IdempotencyRecord, StoreError> {
    let page = tree
        .get(keys::requests(first))?
        .ok_or_else(|| corrupt_page(first, "missing"))?;
    for entry in Entries::new(&page) {
        let (id, record) = entry.map_err(|e| corrupt_page(first, &e))?;
        if id == *request_id {
            return decode(first, request_id, record);
        }
    }
    Err(corrupt_page(
        first,
        &format!("no record of request {}", hex::encode(request_id)),
    ))
}

/// The last record of the last request page: the request that wrote the tip.
pub(crate) fn last(tree: &sled::Tree) -> Result<Option<([u8; 16], IdempotencyRecord)>, StoreError> {
    let Some(page) = tree.scan_prefix([keys::PREFIX_REQUESTS]).next_back() else {
        return Ok(None);
    };
    let (key, page) = page?;
    let first = keys::requests_sequence(&key)
        .ok_or_else(|| StoreError::Corrupt("a request page key".to_string()))?;
    let mut last = None;
    for entry in Entries::new(&page) {
        last = Some(entry.map_err(|e| corrupt_page(first, &e))?);
    }
    let (request_id, record) = last.ok_or_else(|| corrupt_page(first, "empty"))?;
    Ok(Some((request_id, decode(first, &request_id, record)?)))
}

fn decode(
    first: u64,
    request_id: &[u8; 16],
    record: &[u8],
) -> Result<IdempotencyRecord, StoreError> {
    codec::decode_idempotency(record).map_err(|e| {
        corrupt_page(
            first,
            &format!("the record of request {}: {e}", hex::encode(request_id)),
        )
    })
}

fn corrupt_page(first: u64, what: &str) -> StoreError {
    StoreError::Corrupt(format!("request page {first}: {what}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_page_is_bytes_that_never_change_by_accident() {
        let mut page = Vec::new();
        push_entry(&mut page, &[0xAA; 16], b"xyz");
        push_entry(&mut page, &[0xBB; 16], b"");
        let mut expected = vec![0xAA; 16];
        expected.extend_from_slice(&[0, 0, 0, 3]);
        expected.extend_from_slice(b"xyz");
        expected.extend_from_slice(&[0xBB; 16]);
        expected.extend_from_slice(&[0, 0, 0, 0]);
        assert_eq!(page, expected);
        let entries: Vec<_> = Entries::new(&page)
            .collect::<Result<_, _>>()
            .expect("parses");
        assert_eq!(
            entries,
            vec![
                ([0xAA; 16], b"xyz".as_slice()),
                ([0xBB; 16], b"".as_slice())
            ]
        );
    }

    #[test]
    fn a_page_cut_short_is_an_error_not_a_panic() {
        let mut page = Vec::new();
        push_entry(&mut page, &[1; 16], b"record");
        for cut in 1..page.len() {
            let entries: Vec<_> = Entries::new(&page[..cut]).collect();
            assert_eq!(entries.len(), 1, "cut at {cut}");
            assert!(entries[0].is_err(), "cut at {cut}");
        }
    }

    fn outcome(stream: &str, versions: (u64, u64), sequences: (u64, u64)) -> AppendOutcome {
        AppendOutcome {
            stream: stream.to_string(),
            first_version: versions.0,
            last_version: versions.1,
            first_sequence: sequences.0,
            last_sequence: sequences.1,
            hash: [0; 32],
            recorded_at_us: 1,
            duplicate: false,
        }
    }

    #[test]
    fn the_index_follows_streams_and_merges_their_runs() {
        let mut index = Index::default();
        index
            .add(1, [1; 16], Written::from(&outcome("a", (1, 2), (1, 2))))
            .expect("a");
        index
            .add(1, [2; 16], Written::from(&outcome("b", (1, 1), (3, 3))))
            .expect("b");
        index
            .add(4, [3; 16], Written::from(&outcome("a", (3, 3), (4, 4))))
            .expect("a again");
        index
            .add(4, [4; 16], Written::from(&outcome("a", (4, 6), (5, 7))))
            .expect("a follows on");
        assert_eq!((index.requests(), index.streams()), (4, 2));
        assert_eq!(index.page_of(&[3; 16]), Some(4));
        assert_eq!(index.page_of(&[9; 16]), None);
        assert_eq!(index.stream_version("a"), 6);
        assert_eq!(index.stream_version("c"), 0);
        let run = |first_version, first_sequence, count| Run {
            first_version,
            first_sequence,
            count,
        };
        assert_eq!(
            index.runs_from("a", 1, usize::MAX),
            [run(1, 1, 2), run(3, 4, 4)]
        );
        assert_eq!(index.runs_from("a", 3, usize::MAX), [run(3, 4, 4)]);
        assert_eq!(index.runs_from("a", 7, usize::MAX), []);
        assert_eq!(
            index.runs_from("a", 1, 1),
            [run(1, 1, 2)],
            "no more than asked"
        );
        // Versions as of a head that has not yet reached every indexed event.
        assert_eq!(index.stream_version_at("a", 0), 0);
        assert_eq!(index.stream_version_at("a", 3), 2);
        assert_eq!(index.stream_version_at("a", 6), 5);
        assert_eq!(index.stream_version_at("a", 7), 6);

        let gap = index.add(8, [5; 16], Written::from(&outcome("b", (2, 2), (9, 9))));
        assert!(gap.expect_err("a gap").contains("where 8 was next"));
        let skip = index.add(8, [5; 16], Written::from(&outcome("b", (3, 3), (8, 8))));
        assert!(
            skip.expect_err("a version skipped")
                .contains("where v2 was next")
        );
        let ragged = index.add(8, [5; 16], Written::from(&outcome("b", (2, 3), (8, 8))));
        assert!(ragged.expect_err("not a run").contains("not a run"));
        assert_eq!(index.stream_version("b"), 1, "nothing changed");
    }

    #[test]
    fn the_index_counts_its_heap_from_its_tables() {
        let mut index = Index::default();
        for n in 0..10_000u64 {
            let mut id = [0u8; 16];
            id[..8].copy_from_slice(&n.to_be_bytes());
            let stream = if n % 2 == 0 { "a" } else { "b" };
            let version = n / 2 + 1;
            index
                .add(
                    1,
                    id,
                    Written::from(&outcome(stream, (version, version), (n + 1, n + 1))),
                )
                .expect("follows on");
        }
        // 10,000 ids (24 bytes and a control byte each, in 16,384 buckets) and two streams
        // whose runs never merge (their requests interleave): 5,000 runs of 24 bytes each.
        let ids = 16_384 * 25;
        let runs = 2 * 5_000 * std::mem::size_of::<Run>();
        let bytes = index.heap_bytes();
        assert!(bytes >= ids + runs, "{bytes}");
        assert!(bytes <= ids + 2 * runs + 1_024, "{bytes}");
    }

    #[test]
    fn the_index_loads_every_record_and_refuses_one_out_of_place() {
        let dir = tempfile::tempdir().expect("tempdir");
        let db = sled::Config::new().path(dir.path()).open().expect("sled");
        let tree = db.open_tree("t").expect("tree");
        let page = |records: &[(u8, AppendOutcome)]| {
            let mut page = Vec::new();
            for (id, outcome) in records {
                let record = IdempotencyRecord {
                    command_hash: [0; 32],
                    outcome: outcome.clone(),
                };
                let bytes = codec::encode_idempotency(&record).expect("encodes");
                push_entry(&mut page, &[*id; 16], &bytes);
            }
            page
        };
        tree.insert(
            keys::requests(1),
            page(&[
                (1, outcome("a", (1, 1), (1, 1))),
                (2, outcome("b", (1, 3), (2, 4))),
            ]),
        )
        .expect("insert");
        tree.insert(
            keys::requests(5),
            page(&[(3, outcome("a", (2, 2), (5, 5)))]),
        )
        .expect("insert");
        let index = Index::load(&tree).expect("loads");
        assert_eq!((index.requests(), index.streams()), (3, 2));
        assert_eq!(index.page_of(&[2; 16]), Some(1));
        assert_eq!(index.stream_version("b"), 3);

        tree.insert(
            keys::requests(6),
            page(&[(2, outcome("b", (4, 4), (6, 6)))]),
        )
        .expect("insert");
        let twice = Index::load(&tree).expect_err("request 2 twice");
        assert!(twice.to_string().contains("out of place"), "{twice}");
        tree.remove(keys::requests(6)).expect("remove");
        tree.insert(
            keys::requests(7),
            page(&[(4, outcome("b", (4, 4), (7, 7)))]),
        )
        .expect("insert");
        let gap = Index::load(&tree).expect_err("event 6 written by nobody");
        assert!(gap.to_string().contains("where 6 was next"), "{gap}");
    }

    use proptest::prelude::*;

    proptest! {
        /// Any log of requests, cut into batches any way: the index read back from the
        /// request pages is the index kept as they were committed, and it places every
        /// version of every stream at the sequence that holds it.
        #[test]
        fn the_index_read_back_places_every_version(
            requests in proptest::collection::vec((0..3usize, 1..4u64), 1..40),
            cuts in proptest::collection::vec(any::<bool>(), 40),
        ) {
            let dir = tempfile::tempdir().expect("tempdir");
            let db = sled::Config::new().path(dir.path()).open().expect("sled");
            let tree = db.open_tree("t").expect("tree");
            let streams = ["a", "b", "c"];
            let mut kept = Index::default();
            // (stream, version) -> sequence, as the log holds them.
            let mut placed = std::collections::HashMap::new();
            let (mut next, mut versions) = (1u64, [0u64; 3]);
            let (mut page, mut first) = (Vec::new(), 1u64);
            for (n, (stream, count)) in requests.iter().enumerate() {
                let version = versions[*stream];
                let record = IdempotencyRecord {
                    command_hash: [0; 32],
                    outcome: outcome(
                        streams[*stream],
                        (version + 1, version + count),
                        (next, next + count - 1),
                    ),
                };
                for k in 0..*count {
                    placed.insert((streams[*stream], version + 1 + k), next + k);
                }
                let id = [u8::try_from(n).expect("fits"); 16];
                let bytes = codec::encode_idempotency(&record).expect("encodes");
                push_entry(&mut page, &id, &bytes);
                kept.add(first, id, Written::from(&record.outcome)).expect("follows on");
                versions[*stream] += count;
                next += count;
                if cuts[n] || n + 1 == requests.len() {
                    tree.insert(keys::requests(first), std::mem::take(&mut page)).expect("insert");
                    first = next;
                }
            }
            let read = Index::load(&tree).expect("loads");
            prop_assert_eq!(read.end(), next - 1);
            prop_assert_eq!(read.requests(), requests.len());
            for (n, stream) in streams.iter().enumerate() {
                prop_assert_eq!(read.stream_version(stream), versions[n]);
                prop_assert_eq!(read.runs_from(stream, 1, usize::MAX), kept.runs_from(stream, 1, usize::MAX));
                for from in 1..=versions[n] + 1 {
                    let runs = read.runs_from(stream, from, usize::MAX);
                    let held: Vec<(u64, u64)> = runs
                        .iter()
                        .flat_map(|run| {
                            (run.first_version..=run.last_version())
                                .map(move |v| (v, run.sequence_of(v)))
                        })
                        .filter(|(v, _)| *v >= from)
                        .collect();
                    let expected: Vec<(u64, u64)> = (from..=versions[n])
                        .map(|v| (v, placed[&(*stream, v)]))
                        .collect();
                    prop_assert_eq!(held, expected);
                }
            }
            for n in 0..requests.len() {
                let id = [u8::try_from(n).expect("fits"); 16];
                let first = read.page_of(&id).expect("indexed");
                let record = find(&tree, first, &id).expect("found");
                prop_assert_eq!(Some(first), kept.page_of(&id));
                prop_assert!(record.outcome.first_sequence >= first);
            }
        }
    }
}
