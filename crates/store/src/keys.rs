//! The key layout of the single sled tree.
//!
//! Everything lives in ONE tree so that a whole group-commit batch — event pages, the request
//! page and the meta head — is one `sled::Batch` applied with `apply_batch`, which sled
//! recovers atomically after a crash. (sled 0.34 can only make a multi-tree write atomic with a
//! transaction, whose closure may re-run and which cannot scan.)
//!
//! Each key starts with a one-byte prefix naming its family. Numbers are big-endian so that
//! sled's byte order is numeric order, which makes range scans over sequences work. (Stream
//! ids may not contain `0x00`, which terminated the stream id inside the stream-index keys of
//! formats 2 and 3.)
//!
//! | prefix | key                                   | value                                  |
//! |--------|---------------------------------------|----------------------------------------|
//! | `e`    | `e` ‖ first sequence u64 BE           | a page of up to 16 events (`pages`), each sequence u64 BE ‖ length u32 BE ‖ canonical body ‖ SHA-256 hash (32) |
//! | `m`    | `m` ‖ `head`                          | sequence u64 BE ‖ hash (32)            |
//! | `m`    | `m` ‖ `format`                        | [`FORMAT_MARKER`]                      |
//! | `m`    | `m` ‖ `cursor/` ‖ name                | u64 BE                                 |
//! | `r`    | `r` ‖ first sequence u64 BE           | a request page: the idempotency records of the requests one batch admitted (`requests`), each request id (16) ‖ length u32 BE ‖ bincode idempotency envelope |
//! | `c`    | `c` ‖ sequence u64 BE                 | a signed checkpoint (opaque to the store) |
//!
//! Formats 2 and 3 also kept, per request, an idempotency record under `i` ‖ request id and a
//! stream-index run under `s` ‖ stream ‖ `0x00` ‖ first version; both are in the request
//! pages now (`requests`), and the indexes built from them are kept in memory. With events in
//! pages and a request page per batch, a batch of `n` events is about `n / 16 + 2` sled
//! inserts (its pages, the request page, the meta head) where one key per event and two per
//! request took `n + 2r + 1` for `r` requests; sled's per-insert cost is most of an append's.

/// Name of the one sled tree the store uses.
pub(crate) const TREE_NAME: &[u8] = b"ics-ledger";

/// Written once when a store is created; a store without it (or with another value) is not
/// ours or is of a format this code does not know, and is refused.
pub(crate) const FORMAT_MARKER: &[u8] = b"ics-ledger-store/4";

pub(crate) const PREFIX_EVENT: u8 = b'e';
/// Formats 2 and 3 only: one idempotency record per request, under `i` ‖ request id.
pub(crate) const PREFIX_IDEMPOTENCY: u8 = b'i';
pub(crate) const PREFIX_META: u8 = b'm';
pub(crate) const PREFIX_REQUESTS: u8 = b'r';
/// Formats 2 and 3 only: a stream-index run per request, under `s` ‖ stream ‖ `0x00` ‖ first
/// version.
pub(crate) const PREFIX_STREAM_INDEX: u8 = b's';
pub(crate) const PREFIX_CHECKPOINT: u8 = b'c';

/// Separates the stream id from the version inside stream index keys (formats 2 and 3).
pub(crate) const STREAM_TERMINATOR: u8 = 0x00;

const META_HEAD: &[u8] = b"head";
const META_FORMAT: &[u8] = b"format";
const META_CURSOR: &[u8] = b"cursor/";

/// Length of an encoded meta head: sequence (8) ‖ hash (32).
pub(crate) const META_HEAD_LEN: usize = 8 + 32;

/// `prefix` ‖ sequence, big-endian: the key of an event page, a request page or a checkpoint.
fn sequence_key(prefix: u8, sequence: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = prefix;
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The sequence in a key made by [`sequence_key`] with `prefix`, or `None` if `key` is not one.
fn key_sequence(prefix: u8, key: &[u8]) -> Option<u64> {
    match key {
        [first, rest @ ..] if *first == prefix => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

/// The key of the page whose first event is `sequence`: `e` ‖ sequence, big-endian. Public
/// for benchmarks that write sled under the store's kind of key (`store::event_key`).
pub fn event(sequence: u64) -> [u8; 9] {
    sequence_key(PREFIX_EVENT, sequence)
}

/// The first sequence of a page key, or `None` if `key` is not one.
pub(crate) fn event_sequence(key: &[u8]) -> Option<u64> {
    key_sequence(PREFIX_EVENT, key)
}

pub(crate) fn checkpoint(sequence: u64) -> [u8; 9] {
    sequence_key(PREFIX_CHECKPOINT, sequence)
}

/// The sequence in a checkpoint key, or `None` if `key` is not one.
pub(crate) fn checkpoint_sequence(key: &[u8]) -> Option<u64> {
    key_sequence(PREFIX_CHECKPOINT, key)
}

/// The key of the request page whose first request wrote `sequence` first: `r` ‖ sequence.
pub(crate) fn requests(sequence: u64) -> [u8; 9] {
    sequence_key(PREFIX_REQUESTS, sequence)
}

/// The sequence of a request page key, or `None` if `key` is not one.
pub(crate) fn requests_sequence(key: &[u8]) -> Option<u64> {
    key_sequence(PREFIX_REQUESTS, key)
}

/// `s` ‖ stream ‖ `0x00`: the prefix all of a stream's run keys share.
pub(crate) fn stream_index_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.len() + 1 + 8);
    key.push(PREFIX_STREAM_INDEX);
    key.extend_from_slice(stream.as_bytes());
    key.push(STREAM_TERMINATOR);
    key
}

/// The key of the run of `stream` that starts at `first_version` (formats 2 and 3).
pub(crate) fn stream_run(stream: &str, first_version: u64) -> Vec<u8> {
    let mut key = stream_index_prefix(stream);
    key.extend_from_slice(&first_version.to_be_bytes());
    key
}

/// `count` consecutive versions of one stream, from `first_version`, stored at consecutive
/// global sequences from `first_sequence`: where a stream's events are (`requests::Index`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Run {
    pub first_version: u64,
    pub first_sequence: u64,
    pub count: u64,
}

impl Run {
    /// The value of the run's key in formats 2 and 3.
    pub(crate) fn value(&self) -> [u8; 16] {
        let mut value = [0u8; 16];
        value[..8].copy_from_slice(&self.first_sequence.to_be_bytes());
        value[8..].copy_from_slice(&self.count.to_be_bytes());
        value
    }

    pub(crate) fn last_version(&self) -> u64 {
        self.first_version + (self.count - 1)
    }

    pub(crate) fn last_sequence(&self) -> u64 {
        self.first_sequence + (self.count - 1)
    }

    /// The global sequence of `version`, which must lie in this run.
    pub(crate) fn sequence_of(&self, version: u64) -> u64 {
        debug_assert!((self.first_version..=self.last_version()).contains(&version));
        self.first_sequence + (version - self.first_version)
    }

    /// The last version of this run at or below `head` (`None` if the run starts past it).
    pub(crate) fn durable_version(&self, head: u64) -> Option<u64> {
        let durable = head.checked_sub(self.first_sequence)?.checked_add(1)?;
        Some(self.first_version + durable.min(self.count) - 1)
    }
}

/// The key of a request's idempotency record in formats 2 and 3.
pub(crate) fn idempotency(request_id: &[u8; 16]) -> [u8; 17] {
    let mut key = [0u8; 17];
    key[0] = PREFIX_IDEMPOTENCY;
    key[1..].copy_from_slice(request_id);
    key
}

fn meta(name: &[u8]) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + name.len());
    key.push(PREFIX_META);
    key.extend_from_slice(name);
    key
}

pub(crate) fn meta_head() -> Vec<u8> {
    meta(META_HEAD)
}

/// Present while a restore (`restore`) writes the store, so that a store left by one that
/// stopped is refused rather than opened as a new, empty one.
pub(crate) fn meta_restoring() -> Vec<u8> {
    meta(b"restoring")
}

pub(crate) fn meta_format() -> Vec<u8> {
    meta(META_FORMAT)
}

pub(crate) fn cursor(name: &str) -> Vec<u8> {
    let mut key = meta(META_CURSOR);
    key.extend_from_slice(name.as_bytes());
    key
}

pub(crate) fn encode_u64(value: u64) -> [u8; 8] {
    value.to_be_bytes()
}

/// A big-endian u64 value, or `None` if `bytes` is not exactly 8 bytes long.
pub(crate) fn decode_u64(bytes: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

pub(crate) fn encode_meta_head(sequence: u64, hash: &[u8; 32]) -> [u8; META_HEAD_LEN] {
    let mut value = [0u8; META_HEAD_LEN];
    value[..8].copy_from_slice(&sequence.to_be_bytes());
    value[8..].copy_from_slice(hash);
    value
}

pub(crate) fn decode_meta_head(bytes: &[u8]) -> Option<(u64, [u8; 32])> {
    if bytes.len() != META_HEAD_LEN {
        return None;
    }
    let sequence = u64::from_be_bytes(bytes[..8].try_into().ok()?);
    let hash = bytes[8..].try_into().ok()?;
    Some((sequence, hash))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn event_keys_sort_numerically(a: u64, b: u64) {
            prop_assert_eq!(event(a).cmp(&event(b)), a.cmp(&b));
        }

        #[test]
        fn stream_run_keys_sort_numerically(a: u64, b: u64, stream in "[a-z/]{1,12}") {
            prop_assert_eq!(
                stream_run(&stream, a).cmp(&stream_run(&stream, b)),
                a.cmp(&b)
            );
        }

        #[test]
        fn event_keys_round_trip(a: u64) {
            prop_assert_eq!(event_sequence(&event(a)), Some(a));
        }

        #[test]
        fn request_page_keys_round_trip_and_sort_numerically(a: u64, b: u64) {
            prop_assert_eq!(requests_sequence(&requests(a)), Some(a));
            prop_assert_eq!(requests_sequence(&event(a)), None);
            prop_assert_eq!(requests(a).cmp(&requests(b)), a.cmp(&b));
        }

        #[test]
        fn stream_run_keys_stay_inside_their_prefix(
            version in 1..u64::MAX,
            stream in "[a-z/]{1,12}",
            other in "[a-z/]{1,12}",
        ) {
            let key = stream_run(&other, version);
            prop_assert_eq!(key.starts_with(&stream_index_prefix(&stream)), stream == other);
        }
    }

    #[test]
    fn prefixes_are_distinct() {
        let prefixes = [
            PREFIX_CHECKPOINT,
            PREFIX_EVENT,
            PREFIX_IDEMPOTENCY,
            PREFIX_META,
            PREFIX_REQUESTS,
            PREFIX_STREAM_INDEX,
        ];
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert!(a < b, "prefixes must be distinct (listed in order)");
            }
        }
    }

    #[test]
    fn meta_head_round_trips() {
        let hash = [7u8; 32];
        let value = encode_meta_head(42, &hash);
        assert_eq!(decode_meta_head(&value), Some((42, hash)));
        assert_eq!(decode_meta_head(&value[1..]), None);
    }

    #[test]
    fn a_run_locates_its_versions() {
        let run = Run {
            first_version: 5,
            first_sequence: 100,
            count: 3,
        };
        assert_eq!((run.last_version(), run.last_sequence()), (7, 102));
        assert_eq!(run.sequence_of(6), 101);
        assert_eq!(run.durable_version(99), None);
        assert_eq!(run.durable_version(100), Some(5));
        assert_eq!(run.durable_version(500), Some(7));
        let mut value = [0u8; 16];
        value[7] = 100;
        value[15] = 3;
        assert_eq!(run.value(), value, "as formats 2 and 3 stored it");
    }
}
