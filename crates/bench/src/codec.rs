//! What reading one stored event costs, step by step: decoding it (the store's codec, its hash
//! recomputed and checked), folding it into the position projection, and sled reading it —
//! from disk (the first scan after opening) and from sled's page cache (the scans after) — with
//! a cache that holds the log and one that does not, and with the same values one to a sled
//! key, as the store kept them before it paged them: what sled costs per key, measured.
//!
//! Every replay, verification and rebuild is these steps over the whole log, so this is where
//! their ceilings come from. Run with `--features system-allocator` it measures the same on
//! glibc's allocator instead of mimalloc (the binaries' choice; see README.md, "Reading one
//! event").

use std::time::Instant;

use anyhow::ensure;
use domain::Event;
use domain::position::{Projection, Recorded};
use store::RecordedEvent;
use store::codec;

use crate::audit::Pass;
use crate::ceiling::Layout;
use crate::synthetic;

/// How big a run is.
#[derive(Clone, Copy, Debug)]
pub struct CodecScale {
    pub events: u64,
    pub years: u32,
    pub passes: usize,
}

impl CodecScale {
    /// `BENCH_QUICK=1`: 20,000 events; `BENCH_EVENTS=n` sets the log's size.
    pub fn from_env() -> anyhow::Result<CodecScale> {
        let quick = crate::quick_requested();
        let mut scale = CodecScale {
            events: if quick { 20_000 } else { 1_000_000 },
            years: 5,
            passes: 3,
        };
        if let Some(events) = crate::number_from_env("BENCH_EVENTS")? {
            scale.events = events;
        }
        Ok(scale)
    }
}

/// sled cache sizes the scans run with: the store's default, and the one it had before.
const CACHES: [(u64, &str); 2] = [
    (
        store::config::CACHE_CAPACITY_BYTES_DEFAULT,
        "the store's default",
    ),
    (256 << 20, "the default until 2026-11-23"),
];

/// Everything measured.
pub struct CodecRun {
    pub events: u64,
    /// Stored bytes (body ‖ hash) of the whole log.
    pub bytes: u64,
    pub steps: Vec<Pass>,
}

/// The synthetic log, encoded as the store stores it, then read back step by step.
pub fn run(scale: CodecScale) -> anyhow::Result<CodecRun> {
    let synthetic = synthetic::generate(scale.events, scale.years)?;
    let values = stored_values(&synthetic.log)?;
    let events = values.len() as u64;
    let bytes = values.iter().map(|v| v.len() as u64).sum();
    let mut reference = Projection::new();
    for (recorded, event) in &synthetic.log {
        reference
            .apply(recorded, event)
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    drop(synthetic);

    let mut decode = Pass::new(
        "decode (`store::codec::decode_value`: decoded, hash checked)",
        events,
        "every sequence",
    );
    let mut hash = Pass::new("… of which the hash (`chain_hash` of the body)", events, "");
    let mut fold = Pass::new(
        "decode + fold (`Projection::apply`)",
        events,
        "the projection equals the log folded in memory",
    );
    for _ in 0..scale.passes {
        let started = Instant::now();
        let mut sequences = 0;
        for value in &values {
            sequences += codec::decode_value::<Event>(value)?.sequence;
        }
        decode.times.push(started.elapsed());
        ensure!(
            sequences == events * (events + 1) / 2,
            "decoded the wrong events"
        );

        let started = Instant::now();
        let mut mixed = 0u8;
        for value in &values {
            let (body, _) = codec::split_value(value)?;
            mixed ^= codec::chain_hash(&[0; 32], body)[0];
        }
        hash.times.push(started.elapsed());
        std::hint::black_box(mixed);

        let started = Instant::now();
        let mut projection = Projection::new();
        for value in &values {
            let event = codec::decode_value::<Event>(value)?;
            let recorded = Recorded {
                sequence: event.sequence,
                recorded_at_us: event.recorded_at_us,
            };
            projection
                .apply(&recorded, &event.payload)
                .map_err(|e| anyhow::anyhow!("event {}: {e}", event.sequence))?;
        }
        fold.times.push(started.elapsed());
        ensure!(projection == reference, "the decoded log folds differently");
    }
    let mut steps = vec![decode, hash, fold];
    for (cache, why) in CACHES {
        let named = format!("cache {} MiB ({why})", cache >> 20);
        steps.extend(scans(
            &values,
            bytes,
            Layout::Paged,
            cache,
            &named,
            scale.passes,
        )?);
    }
    let cache = CACHES[0].0;
    let named = format!(
        "cache {} MiB, one event to a sled key (the store's layout until pages)",
        cache >> 20
    );
    let layout = Layout::OnePerKey;
    steps.extend(scans(&values, bytes, layout, cache, &named, scale.passes)?);
    Ok(CodecRun {
        events,
        bytes,
        steps,
    })
}

/// Each event as the store keeps it: its canonical body and chain hash, chained from zero.
fn stored_values(log: &[(Recorded, Event)]) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut prev_hash = [0; 32];
    let mut values = Vec::with_capacity(log.len());
    for (recorded, event) in log {
        let stored = RecordedEvent {
            sequence: recorded.sequence,
            stream: event.stream().as_str().to_string(),
            version: 1,
            event_id: [1; 16],
            request_id: [2; 16],
            correlation_id: [3; 16],
            recorded_at_us: recorded.recorded_at_us,
            effective_period: None,
            actor: "khft-finance".to_string(),
            schema_version: codec::SCHEMA_VERSION_LATEST,
            event_type: api::event_type(event),
            payload: event.clone(),
            prev_hash,
            hash: [0; 32],
        };
        let mut value = codec::canonical_body(&stored)?;
        prev_hash = codec::chain_hash(&prev_hash, &value);
        value.extend_from_slice(&prev_hash);
        values.push(value);
    }
    Ok(values)
}

/// The values written to a sled tree under the store's event keys (as `layout` says), the
/// database closed and opened again with a `cache`-byte page cache, then scanned `1 + passes`
/// times: the first from disk, the rest from the cache (if the log fits in it). `named` ends
/// the passes' names.
fn scans(
    values: &[Vec<u8>],
    bytes: u64,
    layout: Layout,
    cache: u64,
    named: &str,
    passes: usize,
) -> anyhow::Result<[Pass; 2]> {
    let dir = tempfile::Builder::new().prefix("bench-codec-").tempdir()?;
    // `store::open_db` waits while the closed database's background threads still hold the
    // lock, as the store itself does on reopening.
    let open = || store::open_db(&sled::Config::new().path(dir.path()).cache_capacity(cache));
    {
        let db = open()?;
        let tree = db.open_tree("events")?;
        for (first, chunk) in (1u64..).step_by(10_000).zip(values.chunks(10_000)) {
            let mut batch = sled::Batch::default();
            let events = (first..).zip(chunk.iter().map(Vec::as_slice));
            for (key, value) in layout.lay_out(events) {
                batch.insert(&store::event_key(key), value);
            }
            tree.apply_batch(batch)?;
        }
        db.flush()?;
    }
    let db = open()?;
    let tree = db.open_tree("events")?;
    let events = values.len() as u64;
    let mut cold = Pass::new(
        &format!("sled scan, the first after opening (from disk), {named}"),
        events,
        "every value, every byte",
    );
    let mut warm = Pass::new(
        &format!("sled scan, the next ones, {named}"),
        events,
        "every value, every byte",
    );
    for pass in 0..=passes {
        let started = Instant::now();
        let (mut count, mut read) = (0u64, 0u64);
        for entry in tree.range(store::event_key(1)..) {
            let (_, value) = entry?;
            match layout {
                Layout::OnePerKey => {
                    count += 1;
                    read += value.len() as u64;
                }
                Layout::Paged => {
                    for entry in store::pages::Entries::new(&value) {
                        let (_, range) = entry.map_err(anyhow::Error::msg)?;
                        count += 1;
                        read += range.len() as u64;
                    }
                }
            }
        }
        let took = started.elapsed();
        ensure!(
            count == values.len() as u64 && read == bytes,
            "the scan read {count} values, {read} bytes"
        );
        if pass == 0 { &mut cold } else { &mut warm }
            .times
            .push(took);
    }
    Ok([cold, warm])
}
