//! The raw sled ceiling: the same event bytes the store wrote, with the same sled settings, in
//! batches of the size the store's group commit formed, one `apply_batch`, one `flush` and one
//! `fdatasync` of sled's log per batch (durable as the store must be: sled's flush alone is
//! not), from one thread — laid out two ways ([`Layout`]): in the store's pages, and one sled
//! key per event (sled used directly, and the store's own layout until it paged its events).
//! The store does more per event than this (a request page and the meta head per batch,
//! hashing, acknowledging callers); the ratio says what that costs.

use std::time::{Duration, Instant};

use anyhow::ensure;
use store::RawEvent;

/// How the ceiling lays the events' bytes out in sled.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// As the store does: each batch's events in pages (`store::pages::paginate`), each under
    /// `e` + the first one's sequence. (The store also rewrites its last page, left open, in
    /// the next batch; the ceiling never does, so it never writes more than the store's pages.)
    Paged,
    /// Each event's bytes under its own key, `e` + its sequence.
    OnePerKey,
}

impl Layout {
    pub fn describe(self) -> &'static str {
        match self {
            Layout::Paged => "the store's pages",
            Layout::OnePerKey => "one key per event",
        }
    }

    /// `events` (consecutive sequences, each with its stored value) as this layout stores
    /// them: `(the sequence in the key, value)`, one per event or one per page.
    pub fn lay_out<'a>(
        self,
        events: impl IntoIterator<Item = (u64, &'a [u8])>,
    ) -> Vec<(u64, Vec<u8>)> {
        match self {
            Layout::OnePerKey => events
                .into_iter()
                .map(|(sequence, value)| (sequence, value.to_vec()))
                .collect(),
            Layout::Paged => store::pages::paginate(events),
        }
    }
}

/// One run of the ceiling.
pub struct CeilingRun {
    pub layout: Layout,
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

/// Writes `events` in batches of `batch_events`, each flushed and synced before the next.
pub fn run(events: &[RawEvent], batch_events: u64, layout: Layout) -> anyhow::Result<CeilingRun> {
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
    // sled's flush is `sync_file_range`; durability takes an fdatasync of its log, as the store
    // does after every flush.
    let log = std::fs::File::open(dir.path().join("db"))?;
    // Each batch's keys and values, prepared before the clock starts.
    let batches: Vec<Vec<(Vec<u8>, Vec<u8>)>> = events
        .chunks(usize::try_from(batch_events)?)
        .map(|batch| records(batch, layout))
        .collect();
    let keys: usize = batches.iter().map(Vec::len).sum();
    let bytes = batches
        .iter()
        .flatten()
        .map(|(k, v)| (k.len() + v.len()) as u64)
        .sum();

    let started = Instant::now();
    for records in &batches {
        let mut batch = sled::Batch::default();
        for (key, value) in records {
            batch.insert(key.as_slice(), value.as_slice());
        }
        tree.apply_batch(batch)?;
        db.flush()?;
        log.sync_data()?;
    }
    let elapsed = started.elapsed();
    ensure!(
        tree.len() == keys,
        "{} of {keys} records stored",
        tree.len()
    );
    Ok(CeilingRun {
        layout,
        batch_events,
        events: events.len() as u64,
        bytes,
        elapsed,
    })
}

/// One batch's sled records: a value per event (body ‖ hash, as the store keeps it) or per
/// page of them.
fn records(batch: &[RawEvent], layout: Layout) -> Vec<(Vec<u8>, Vec<u8>)> {
    let values: Vec<(u64, Vec<u8>)> = batch
        .iter()
        .map(|event| {
            (
                event.sequence,
                [event.body.as_slice(), &event.hash].concat(),
            )
        })
        .collect();
    layout
        .lay_out(values.iter().map(|(s, v)| (*s, v.as_slice())))
        .into_iter()
        .map(|(first, value)| (store::event_key(first).to_vec(), value))
        .collect()
}
