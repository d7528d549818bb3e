//! The raw sled ceiling: the same event bytes the store wrote, inserted under the same kind
//! of key (`e` + big-endian sequence) with the same sled settings, in batches of the size the
//! store's group commit formed, one `apply_batch` and one `flush` per batch, from one thread.
//! The store does more per event than this (stream index, heads, idempotency records,
//! hashing, acknowledging callers); the ratio says what that costs.

use std::time::{Duration, Instant};

use anyhow::ensure;
use store::RawEvent;

/// One run of the ceiling.
pub struct CeilingRun {
    pub batch_events: u64,
    pub events: u64,
    pub bytes: u64,
    pub elapsed: Duration,
}

impl CeilingRun {
    pub fn events_per_second(&self) -> f64 {
        crate::per_second(self.events, self.elapsed)
    }
}

/// Writes `events` in batches of `batch_events`, each flushed before the next.
pub fn run(events: &[RawEvent], batch_events: u64) -> anyhow::Result<CeilingRun> {
    ensure!(batch_events > 0, "batches must hold at least one event");
    let dir = tempfile::Builder::new().prefix("bench-sled-").tempdir()?;
    let db = store::open_db(
        &sled::Config::new()
            .path(dir.path())
            .cache_capacity(store::config::CACHE_CAPACITY_BYTES_DEFAULT)
            .flush_every_ms(None)
            .mode(sled::Mode::HighThroughput),
    )?;
    let tree = db.open_tree("ceiling")?;
    // Values as the store keeps them: body ‖ hash, prepared before the clock starts.
    let records: Vec<(Vec<u8>, Vec<u8>)> = events
        .iter()
        .map(|event| {
            let key = store::event_key(event.sequence).to_vec();
            let mut value = Vec::with_capacity(event.body.len() + event.hash.len());
            value.extend_from_slice(&event.body);
            value.extend_from_slice(&event.hash);
            (key, value)
        })
        .collect();
    let bytes = records
        .iter()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum();

    let started = Instant::now();
    for chunk in records.chunks(usize::try_from(batch_events)?) {
        let mut batch = sled::Batch::default();
        for (key, value) in chunk {
            batch.insert(key.as_slice(), value.as_slice());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
    }
    let elapsed = started.elapsed();
    ensure!(
        tree.len() == records.len(),
        "{} of {} records stored",
        tree.len(),
        records.len()
    );
    Ok(CeilingRun {
        batch_events,
        events: records.len() as u64,
        bytes,
        elapsed,
    })
}
