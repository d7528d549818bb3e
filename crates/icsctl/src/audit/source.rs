//! Where an audit reads the log: ledgerd's `ReadStored` over gRPC — the events as stored,
//! decoded here with the `store` crate's codec, each hash checked against its content —
//! (honouring `--server`, `--ca`, `--token` like every other command), or with `--data-dir` a
//! stopped ledgerd's sled directory, opened with the `store` crate and never appended to.
//!
//! Either way the events come in global-sequence order, each checked to be the next one (a
//! gap or a repeat is an error naming the sequence), with what the trail shows of them: when
//! they were recorded, by whom, on which stream, of which type and period.

use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use anyhow::Context;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use domain::{Event, Period};
use futures::StreamExt;
use store::{EventStore, StoreConfig};
use tonic::transport::Channel;

use super::ahead::PAGE_EVENTS;
use crate::Global;

/// One event of the log, with its place and provenance.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogEvent {
    pub sequence: u64,
    /// Transaction time, microseconds since the Unix epoch.
    pub recorded_at_us: i64,
    pub stream: String,
    /// Who posted it.
    pub actor: String,
    /// `<family>.<name>`.
    pub event_type: String,
    /// Valid time, where the event has one.
    pub effective_period: Option<Period>,
    pub event: Event,
}

impl LogEvent {
    /// The place the position projection folds it at.
    pub fn recorded(&self) -> domain::position::Recorded {
        domain::position::Recorded {
            sequence: self.sequence,
            recorded_at_us: self.recorded_at_us,
        }
    }
}

/// The log an audit reads.
pub enum Log {
    Ledgerd {
        client: LedgerServiceClient<Channel>,
        global: Box<Global>,
    },
    DataDir {
        store: EventStore<Event>,
        path: PathBuf,
        /// The copy `store` reads (removed when dropped, after `store`).
        _copy: store::PrivateCopy,
    },
}

impl Log {
    /// ledgerd at `--server`, or the stopped ledgerd's directory `data_dir`.
    pub async fn open(global: &Global, data_dir: Option<&Path>) -> anyhow::Result<Log> {
        match data_dir {
            None => Ok(Log::Ledgerd {
                client: crate::connect(global).await?,
                global: Box::new(global.clone()),
            }),
            Some(path) => open_data_dir(path),
        }
    }

    /// Where the events come from, for messages.
    pub fn describe(&self) -> String {
        match self {
            Log::Ledgerd { global, .. } => format!("ledgerd at {}", global.server),
            Log::DataDir { path, .. } => format!("the ledger directory {}", path.display()),
        }
    }

    /// The last sequence the log holds (0: empty).
    pub async fn head(&mut self) -> anyhow::Result<u64> {
        match self {
            Log::Ledgerd { client, global } => Ok(client
                .head(crate::request(global, pb::HeadRequest {})?)
                .await
                .map_err(crate::output::status_error)?
                .into_inner()
                .sequence),
            Log::DataDir { store, .. } => Ok(store.head().sequence),
        }
    }

    /// Visits the events `from ..= to` in order until `visit` breaks; returns how many it
    /// visited. Fails if the log does not hold them all, or holds them out of order.
    pub async fn each(
        &mut self,
        from: u64,
        to: u64,
        mut visit: impl FnMut(LogEvent) -> anyhow::Result<ControlFlow<()>>,
    ) -> anyhow::Result<u64> {
        let from = from.max(1);
        if to < from {
            return Ok(0);
        }
        let mut expected = from;
        match self {
            Log::Ledgerd { client, global } => {
                let request = pb::ReadStoredRequest {
                    from_sequence: from,
                    limit: to - from + 1,
                };
                let mut pages = client
                    .read_stored(crate::request(global, request)?)
                    .await
                    .map_err(crate::output::status_error)?
                    .into_inner();
                while let Some(page) = pages.next().await {
                    let page = page.map_err(crate::output::status_error)?;
                    let values = page.events.iter().map(|value| &value[..]);
                    let events = decoded(page.first_sequence, values);
                    let flow = visit_all(events, &mut expected, &mut visit)?;
                    if flow.is_break() {
                        return Ok(expected - from);
                    }
                }
            }
            Log::DataDir { store, .. } => {
                let store = &*store;
                // Pages the reading thread has sent and the visiting one not yet taken.
                let waiting = AtomicUsize::new(0);
                let waiting = &waiting;
                let read = move || {
                    let mut next = Some(from);
                    std::iter::from_fn(move || {
                        let first = next.filter(|next| *next <= to)?;
                        let want = usize::try_from(to - first)
                            .map_or(PAGE_EVENTS, |rest| rest.saturating_add(1).min(PAGE_EVENTS));
                        let page = match store.read_values(first, want, usize::MAX) {
                            Ok(values) if values.is_empty() => {
                                next = None;
                                return None;
                            }
                            Ok(values) => {
                                next = first.checked_add(values.len() as u64);
                                Ok(StoredPage::read(first, values, waiting))
                            }
                            Err(error) => {
                                next = None;
                                Err(anyhow::Error::new(error)
                                    .context(format!("reading event {first} from the store")))
                            }
                        };
                        waiting.fetch_add(1, Ordering::Relaxed);
                        Some(page)
                    })
                };
                let flow = super::ahead::read_ahead(read, |page: StoredPage| {
                    waiting.fetch_sub(1, Ordering::Relaxed);
                    match page {
                        StoredPage::Decoded(events) => visit_all(events, &mut expected, &mut visit),
                        StoredPage::Stored { first, values } => {
                            let values = values.iter().map(|value| &value[..]);
                            visit_all(decoded(first, values), &mut expected, &mut visit)
                        }
                    }
                })?;
                if flow.is_break() {
                    return Ok(expected - from);
                }
            }
        }
        anyhow::ensure!(
            expected > to,
            "{} ends at event {}, before event {to}",
            self.describe(),
            expected - 1
        );
        Ok(expected - from)
    }

    /// The event at `sequence`.
    pub async fn get(&mut self, sequence: u64) -> anyhow::Result<LogEvent> {
        let head = self.head().await?;
        anyhow::ensure!(sequence >= 1, "sequences start at 1");
        anyhow::ensure!(
            sequence <= head,
            "there is no event {sequence}: the log ends at {head}"
        );
        let mut found = None;
        self.each(sequence, sequence, |event| {
            found = Some(event);
            Ok(ControlFlow::Break(()))
        })
        .await?;
        found.with_context(|| format!("{} did not return event {sequence}", self.describe()))
    }
}

/// [`step`]s through `events` in order, stopping at the first that is an error (one that did
/// not decode) or that the visitor stops at.
fn visit_all(
    events: impl IntoIterator<Item = anyhow::Result<LogEvent>>,
    expected: &mut u64,
    visit: &mut impl FnMut(LogEvent) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<ControlFlow<()>> {
    for event in events {
        if step(expected, event?, visit)?.is_break() {
            return Ok(ControlFlow::Break(()));
        }
    }
    Ok(ControlFlow::Continue(()))
}

/// A page read from a stopped ledger's store, on its way from the reading thread to the one
/// visiting the events. Decoding costs more than reading, and visiting (a fold, say) about as
/// much as decoding, so which thread decodes a page is decided page by page: the reader decodes
/// it while the visitor still has pages waiting, and hands it over as stored when the visitor
/// has run dry. Both threads then stay busy, whichever side is slower on the machine.
enum StoredPage {
    Decoded(Vec<anyhow::Result<LogEvent>>),
    Stored { first: u64, values: Vec<sled::IVec> },
}

impl StoredPage {
    /// The page of `values` from `first`, decoded unless the visitor has none `waiting`.
    fn read(first: u64, values: Vec<sled::IVec>, waiting: &AtomicUsize) -> StoredPage {
        if waiting.load(Ordering::Relaxed) == 0 {
            StoredPage::Stored { first, values }
        } else {
            StoredPage::Decoded(decoded(first, values.iter().map(|v| &v[..])).collect())
        }
    }
}

/// Stored values (`body ‖ hash`, the first at sequence `first`) decoded as they are taken:
/// each event, or why it does not decode (in order, so the events before a bad one are still
/// visited).
fn decoded<'a>(
    first: u64,
    values: impl Iterator<Item = &'a [u8]>,
) -> impl Iterator<Item = anyhow::Result<LogEvent>> {
    (first..)
        .zip(values)
        .map(|(sequence, value)| decode(sequence, value))
}

/// One stored value (`body ‖ hash`) decoded, its hash checked against its content.
fn decode(sequence: u64, value: &[u8]) -> anyhow::Result<LogEvent> {
    let recorded = store::codec::decode_value::<Event>(value)
        .map_err(|e| anyhow::anyhow!("event {sequence} does not decode: {e}"))?;
    Ok(from_store(recorded))
}

/// Checks `event` is the `expected` one, counts it, and visits it.
fn step(
    expected: &mut u64,
    event: LogEvent,
    visit: &mut impl FnMut(LogEvent) -> anyhow::Result<ControlFlow<()>>,
) -> anyhow::Result<ControlFlow<()>> {
    anyhow::ensure!(
        event.sequence == *expected,
        "the log gave event {} where event {expected} was expected",
        event.sequence
    );
    *expected += 1;
    visit(event)
}

/// Opens a private copy of a stopped ledgerd's sled directory (sled writes to whatever it
/// opens; the directory is evidence, left exactly as it was). A directory that is not a
/// ledger's is refused; so is one a running ledgerd has open.
fn open_data_dir(path: &Path) -> anyhow::Result<Log> {
    let is_sled = ["conf", "db"].iter().all(|f| path.join(f).is_file());
    anyhow::ensure!(
        is_sled,
        "{} is not a ledgerd data directory (no sled database in it)",
        path.display()
    );
    let copy = store::PrivateCopy::of(path)
        .map_err(|error| anyhow::anyhow!("reading {}: {error}", path.display()))?;
    let store = EventStore::<Event>::open(StoreConfig::new(copy.path()))
        .map_err(|error| anyhow::anyhow!("opening the store in {}: {error}", path.display()))?;
    Ok(Log::DataDir {
        store,
        path: path.to_path_buf(),
        _copy: copy,
    })
}

fn from_store(recorded: store::RecordedEvent<Event>) -> LogEvent {
    LogEvent {
        sequence: recorded.sequence,
        recorded_at_us: recorded.recorded_at_us,
        stream: recorded.stream,
        actor: recorded.actor,
        event_type: recorded.event_type,
        effective_period: recorded.effective_period,
        event: recorded.payload,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reader_decodes_while_the_visitor_has_pages_waiting_and_hands_them_over_when_not() {
        let values = vec![sled::IVec::from(&b"not an event"[..])];
        let idle = AtomicUsize::new(0);
        assert!(matches!(
            StoredPage::read(7, values.clone(), &idle),
            StoredPage::Stored { first: 7, ref values } if values.len() == 1
        ));
        let busy = AtomicUsize::new(2);
        let StoredPage::Decoded(events) = StoredPage::read(7, values, &busy) else {
            panic!("decoded by the reader");
        };
        // Either way a value that is not an event is named by its sequence.
        let error = events
            .into_iter()
            .next()
            .expect("one")
            .expect_err("garbage");
        assert!(
            error.to_string().contains("event 7 does not decode"),
            "{error}"
        );
    }
}
