//! The event store's append throughput: `appenders` threads each append requests of
//! `request_events` events to their own stream and wait for each acknowledgement (which
//! comes only after the batch holding it is flushed) before sending the next. The writer
//! thread groups whatever is queued into one sled batch and one flush.

use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use domain::Event;
use store::{EventStore, RawEvent, StoreConfig, StoreStats};
use tempfile::TempDir;

use crate::workload;

/// One run of the store benchmark, and the store it left behind (for the ceiling to reuse
/// its bytes).
pub struct AppendRun {
    pub request_events: u64,
    pub appenders: usize,
    pub events: u64,
    pub elapsed: Duration,
    pub stats: StoreStats,
    pub dir: TempDir,
}

impl AppendRun {
    pub fn events_per_second(&self) -> f64 {
        crate::per_second(self.events, self.elapsed)
    }

    /// The average number of events the writer put in one batch (one flush).
    pub fn events_per_flush(&self) -> u64 {
        self.stats
            .events_committed
            .checked_div(self.stats.batches_committed)
            .unwrap_or(0)
            .max(1)
    }

    /// Every event the run stored, as the bytes the store keeps for it.
    pub fn raw_events(&self) -> anyhow::Result<Vec<RawEvent>> {
        let store = EventStore::<Event>::open(StoreConfig::new(self.dir.path()))?;
        let mut events = Vec::with_capacity(usize::try_from(self.events)?);
        let mut next = 1;
        loop {
            let page = store.read_raw(next, 4_096)?;
            let Some(last) = page.last() else { break };
            next = last.sequence + 1;
            events.extend(page);
        }
        ensure!(
            events.len() as u64 == self.events,
            "read back {} events",
            events.len()
        );
        Ok(events)
    }
}

/// Appends at least `total_events` (rounded up to whole requests per appender) and checks
/// that all of them, and only them, are stored and chained.
pub fn run(request_events: u64, total_events: u64, appenders: usize) -> anyhow::Result<AppendRun> {
    ensure!(request_events > 0 && appenders > 0, "nothing to append");
    let dir = tempfile::Builder::new().prefix("bench-store-").tempdir()?;
    let store = EventStore::<Event>::open(StoreConfig::new(dir.path()))?;
    let per_round = request_events * appenders as u64;
    let requests_each = total_events.div_ceil(per_round);
    let events = requests_each * per_round;

    // Build every request first so the timed part is only the append path.
    let work: Vec<Vec<_>> = (0..appenders as u64)
        .map(|appender| {
            (0..requests_each)
                .map(|r| {
                    let first = (appender * requests_each + r) * request_events;
                    workload::append_request(
                        &format!("contract/C{appender}"),
                        r * request_events,
                        first,
                        request_events,
                    )
                })
                .collect()
        })
        .collect();

    let started = Instant::now();
    std::thread::scope(|scope| -> anyhow::Result<()> {
        let handles: Vec<_> = work
            .into_iter()
            .map(|requests| {
                let store = store.clone();
                scope.spawn(move || -> anyhow::Result<()> {
                    for request in requests {
                        store.enqueue(request)?.wait()?;
                    }
                    Ok(())
                })
            })
            .collect();
        for handle in handles {
            handle
                .join()
                .map_err(|_| anyhow::anyhow!("an appender panicked"))??;
        }
        Ok(())
    })?;
    let elapsed = started.elapsed();

    let stats = store.stats();
    ensure!(
        store.head().sequence == events,
        "head {} after {events} events",
        store.head().sequence
    );
    ensure!(
        stats.events_committed == events,
        "{stats:?} after {events} events"
    );
    store
        .verify_chain()
        .context("the benchmark's log does not verify")?;
    drop(store);
    Ok(AppendRun {
        request_events,
        appenders,
        events,
        elapsed,
        stats,
        dir,
    })
}
