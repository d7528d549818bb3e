//! Store configuration and every limit the store enforces.
//!
//! Limits are named constants so that they are visible, testable and documented in one place;
//! each bounds something that would otherwise grow with untrusted input (request size, field
//! lengths) or with load (queue depth, batch size).

use std::path::PathBuf;

use crate::error::StoreError;

/// Default for [`StoreConfig::batch_events_max`].
pub const BATCH_EVENTS_MAX_DEFAULT: usize = 4096;
/// Largest allowed [`StoreConfig::batch_events_max`].
pub const BATCH_EVENTS_MAX_LIMIT: usize = 1 << 20;
/// Default for [`StoreConfig::queue_requests_max`].
pub const QUEUE_REQUESTS_MAX_DEFAULT: usize = 65_536;
/// Largest allowed [`StoreConfig::queue_requests_max`].
pub const QUEUE_REQUESTS_MAX_LIMIT: usize = 1 << 24;
/// Default for [`StoreConfig::cache_capacity_bytes`]: 1 GiB of sled page cache, an upper
/// bound (sled holds what it has read), sized to hold a log of a million events with sled's
/// own overhead; a log bigger than the cache is read from disk on every whole scan, several
/// times slower than from the cache (`cargo bench -p bench --bench codec`, `crates/bench/README.md`).
pub const CACHE_CAPACITY_BYTES_DEFAULT: u64 = 1024 * 1024 * 1024;
/// Smallest allowed [`StoreConfig::cache_capacity_bytes`].
pub const CACHE_CAPACITY_BYTES_MIN: u64 = 1024 * 1024;

/// Longest stream id, in bytes. Stream ids may not be empty or contain `0x00`.
pub const STREAM_BYTES_MAX: usize = 256;
/// Longest actor, in bytes.
pub const ACTOR_BYTES_MAX: usize = 1024;
/// Longest event type, in bytes.
pub const EVENT_TYPE_BYTES_MAX: usize = 256;
/// Largest encoded event body, in bytes.
pub const EVENT_BODY_BYTES_MAX: usize = 1024 * 1024;
/// What decoding one event body may claim to allocate, in bytes: bincode's decode limit.
///
/// bincode counts a decoded value's native size, not its encoded one: a `u64` of one varint
/// byte claims 8, a `u128` 16, a string its length. No value of ours is encoded in fewer bytes
/// than a sixteenth of what it claims (zero-sized values claim nothing), so any body of at
/// most [`EVENT_BODY_BYTES_MAX`] decodes under sixteen times that. A limit equal to the body's
/// own (as before) refused bodies of small numbers well under it: written, then unreadable.
pub const EVENT_DECODE_CLAIM_MAX: usize = 16 * EVENT_BODY_BYTES_MAX;
/// Most bytes an event's envelope (every field but the payload) encodes to: the bounded
/// strings above, three ids, the hashes, a period and the integers, with room to spare.
pub const ENVELOPE_BYTES_MAX: usize = 4 * 1024;
/// Largest encoded payload, so that its event's body stays within [`EVENT_BODY_BYTES_MAX`].
pub const PAYLOAD_BYTES_MAX: usize = EVENT_BODY_BYTES_MAX - ENVELOPE_BYTES_MAX;
/// Longest cursor name, in bytes. Cursor names may not be empty.
pub const CURSOR_NAME_BYTES_MAX: usize = 128;

/// How to open an [`crate::EventStore`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreConfig {
    /// Directory of the sled database (created if missing). One process at a time.
    pub path: PathBuf,
    /// Most events the writer puts into one batch (one `apply_batch`, one flush). Also the
    /// most events one request may carry.
    pub batch_events_max: usize,
    /// Capacity of the bounded request queue; `enqueue` blocks while it is full.
    pub queue_requests_max: usize,
    /// sled page cache size.
    pub cache_capacity_bytes: u64,
}

impl StoreConfig {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        StoreConfig {
            path: path.into(),
            batch_events_max: BATCH_EVENTS_MAX_DEFAULT,
            queue_requests_max: QUEUE_REQUESTS_MAX_DEFAULT,
            cache_capacity_bytes: CACHE_CAPACITY_BYTES_DEFAULT,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), StoreError> {
        if !(1..=BATCH_EVENTS_MAX_LIMIT).contains(&self.batch_events_max) {
            return Err(StoreError::InvalidConfig(format!(
                "batch_events_max {} is outside 1..={BATCH_EVENTS_MAX_LIMIT}",
                self.batch_events_max
            )));
        }
        if !(1..=QUEUE_REQUESTS_MAX_LIMIT).contains(&self.queue_requests_max) {
            return Err(StoreError::InvalidConfig(format!(
                "queue_requests_max {} is outside 1..={QUEUE_REQUESTS_MAX_LIMIT}",
                self.queue_requests_max
            )));
        }
        if self.cache_capacity_bytes < CACHE_CAPACITY_BYTES_MIN {
            return Err(StoreError::InvalidConfig(format!(
                "cache_capacity_bytes {} is below {CACHE_CAPACITY_BYTES_MIN}",
                self.cache_capacity_bytes
            )));
        }
        Ok(())
    }
}

/// Checks a stream id: non-empty, at most [`STREAM_BYTES_MAX`] bytes, no `0x00`.
pub(crate) fn check_stream(stream: &str) -> Result<(), String> {
    if stream.is_empty() {
        return Err("stream id is empty".to_string());
    }
    if stream.len() > STREAM_BYTES_MAX {
        return Err(format!(
            "stream id is {} bytes, more than {STREAM_BYTES_MAX}",
            stream.len()
        ));
    }
    if stream.as_bytes().contains(&0) {
        return Err("stream id contains 0x00".to_string());
    }
    Ok(())
}

pub(crate) fn check_cursor_name(name: &str) -> Result<(), StoreError> {
    if name.is_empty() || name.len() > CURSOR_NAME_BYTES_MAX {
        return Err(StoreError::InvalidName(format!(
            "cursor name must be 1..={CURSOR_NAME_BYTES_MAX} bytes, got {}",
            name.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_valid() {
        let config = StoreConfig::new("/tmp/x");
        assert!(config.validate().is_ok());
        assert_eq!(config.batch_events_max, 4096);
        assert_eq!(config.queue_requests_max, 65_536);
    }

    #[test]
    fn zero_limits_are_refused() {
        let mut config = StoreConfig::new("/tmp/x");
        config.batch_events_max = 0;
        assert!(config.validate().is_err());
        let mut config = StoreConfig::new("/tmp/x");
        config.queue_requests_max = 0;
        assert!(config.validate().is_err());
    }

    #[test]
    fn stream_ids_are_checked() {
        assert!(check_stream("contract/ABC").is_ok());
        assert!(check_stream("").is_err());
        assert!(check_stream("a\0b").is_err());
        assert!(check_stream(&"x".repeat(STREAM_BYTES_MAX)).is_ok());
        assert!(check_stream(&"x".repeat(STREAM_BYTES_MAX + 1)).is_err());
    }
}
