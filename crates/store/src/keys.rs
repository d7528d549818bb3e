//! The key layout of the single sled tree.
//!
//! Everything lives in ONE tree so that a whole group-commit batch — events, stream index,
//! stream heads, idempotency records and the meta head — is one `sled::Batch` applied with
//! `apply_batch`, which sled recovers atomically after a crash. (sled 0.34 can only make a
//! multi-tree write atomic with a transaction, whose closure may re-run and which cannot scan.)
//!
//! Each key starts with a one-byte prefix naming its family. Numbers are big-endian so that
//! sled's byte order is numeric order, which makes range scans over sequences and versions
//! work; stream ids may not contain `0x00` because it terminates the stream id inside index
//! keys (otherwise stream `a` and stream `a\0…` could share keys).
//!
//! | prefix | key                                   | value                                  |
//! |--------|---------------------------------------|----------------------------------------|
//! | `e`    | `e` ‖ sequence u64 BE                 | canonical body ‖ SHA-256 hash (32)     |
//! | `h`    | `h` ‖ stream                          | stream version u64 BE                  |
//! | `i`    | `i` ‖ request id (16)                 | bincode idempotency envelope           |
//! | `m`    | `m` ‖ `head`                          | sequence u64 BE ‖ hash (32)            |
//! | `m`    | `m` ‖ `format`                        | [`FORMAT_MARKER`]                      |
//! | `m`    | `m` ‖ `cursor/` ‖ name                | u64 BE                                 |
//! | `s`    | `s` ‖ stream ‖ `0x00` ‖ version u64 BE | sequence u64 BE                        |

/// Name of the one sled tree the store uses.
pub(crate) const TREE_NAME: &[u8] = b"ics-ledger";

/// Written once when a store is created; a store without it (or with another value) is not
/// ours or is of a format this code does not know, and is refused.
pub(crate) const FORMAT_MARKER: &[u8] = b"ics-ledger-store/1";

pub(crate) const PREFIX_EVENT: u8 = b'e';
pub(crate) const PREFIX_STREAM_HEAD: u8 = b'h';
pub(crate) const PREFIX_IDEMPOTENCY: u8 = b'i';
pub(crate) const PREFIX_META: u8 = b'm';
pub(crate) const PREFIX_STREAM_INDEX: u8 = b's';

/// Separates the stream id from the version inside stream index keys.
pub(crate) const STREAM_TERMINATOR: u8 = 0x00;

const META_HEAD: &[u8] = b"head";
const META_FORMAT: &[u8] = b"format";
const META_CURSOR: &[u8] = b"cursor/";

/// Length of an encoded meta head: sequence (8) ‖ hash (32).
pub(crate) const META_HEAD_LEN: usize = 8 + 32;

pub(crate) fn event(sequence: u64) -> [u8; 9] {
    let mut key = [0u8; 9];
    key[0] = PREFIX_EVENT;
    key[1..].copy_from_slice(&sequence.to_be_bytes());
    key
}

/// The sequence in an event key, or `None` if `key` is not an event key.
pub(crate) fn event_sequence(key: &[u8]) -> Option<u64> {
    match key {
        [PREFIX_EVENT, rest @ ..] => Some(u64::from_be_bytes(rest.try_into().ok()?)),
        _ => None,
    }
}

pub(crate) fn stream_head(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.len());
    key.push(PREFIX_STREAM_HEAD);
    key.extend_from_slice(stream.as_bytes());
    key
}

/// `s` ‖ stream ‖ `0x00`: the prefix all of a stream's index keys share.
pub(crate) fn stream_index_prefix(stream: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(1 + stream.len() + 1 + 8);
    key.push(PREFIX_STREAM_INDEX);
    key.extend_from_slice(stream.as_bytes());
    key.push(STREAM_TERMINATOR);
    key
}

pub(crate) fn stream_index(stream: &str, version: u64) -> Vec<u8> {
    let mut key = stream_index_prefix(stream);
    key.extend_from_slice(&version.to_be_bytes());
    key
}

/// The version at the end of a stream index key (the caller scanned the stream's prefix).
pub(crate) fn stream_index_version(key: &[u8]) -> Option<u64> {
    let start = key.len().checked_sub(8)?;
    Some(u64::from_be_bytes(key[start..].try_into().ok()?))
}

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
        fn stream_index_keys_sort_numerically(a: u64, b: u64, stream in "[a-z/]{1,12}") {
            prop_assert_eq!(
                stream_index(&stream, a).cmp(&stream_index(&stream, b)),
                a.cmp(&b)
            );
        }

        #[test]
        fn event_keys_round_trip(a: u64) {
            prop_assert_eq!(event_sequence(&event(a)), Some(a));
        }

        #[test]
        fn stream_index_keys_stay_inside_their_prefix(
            version: u64,
            stream in "[a-z/]{1,12}",
            other in "[a-z/]{1,12}",
        ) {
            let key = stream_index(&other, version);
            prop_assert_eq!(key.starts_with(&stream_index_prefix(&stream)), stream == other);
            prop_assert_eq!(stream_index_version(&key), Some(version));
        }
    }

    #[test]
    fn prefixes_are_distinct_and_event_keys_sort_first() {
        let prefixes = [
            PREFIX_EVENT,
            PREFIX_STREAM_HEAD,
            PREFIX_IDEMPOTENCY,
            PREFIX_META,
            PREFIX_STREAM_INDEX,
        ];
        for (i, a) in prefixes.iter().enumerate() {
            for b in &prefixes[i + 1..] {
                assert!(a < b, "prefixes must be distinct and ordered");
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
}
