//! positiond's real rebuild: a fresh positiond (empty data directory) catching up a long log
//! from ledgerd's `ReadStored` over gRPC — step 1 of `follow::consumer::run` — timed from its
//! start until its `GetStatus` reports ledgerd's head (sequence and chain hash).
//!
//! And its parts, one at a time, on the same log from the same ledgerd:
//!
//! - **the store alone** (before ledgerd starts, in this process): the log read from ledgerd's
//!   sled in pages of 1,024 and decoded; then also converted to the protobuf `RecordedEvent`
//!   and encoded, as ledgerd's `ReadAll` does (for comparison: positiond no longer reads it);
//! - **ReadStored alone**: the whole log streamed over loopback gRPC as the stored bytes, in
//!   pages (what ledgerd's store read and HTTP/2 cost, with the client's protobuf decode);
//! - **convert**: each stored value turned into a `follow::incoming::Incoming` as positiond
//!   does — decoded with the store's codec and its chain hash recomputed and checked;
//! - **fold**: each offered to `Checkpointed<Position>` (the chain link checked, the domain
//!   projection folded) as positiond does, without the lock and without gRPC.
//!
//! Each checks itself: every event from 1 to the head, once, and the fold ends at the head's
//! sequence and hash.

use crate::median;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use anyhow::{Context, ensure};
use api::pb;
use follow::incoming::Incoming;
use follow::projection::{Checkpointed, Offer};
use positiond::position::Position;

use crate::inproc::{Ledgerd, Positiond, PositiondSetup};
use crate::report::rate;

/// How long a positiond may take to rebuild before the run fails.
const REBUILD_TIMEOUT: Duration = Duration::from_secs(1_800);

/// The rebuild and its parts.
#[derive(Clone, Debug)]
pub struct RebuildRun {
    pub events: u64,
    /// Each pass of `ReadStored` alone (stream + protobuf decode of the pages).
    pub stream: Vec<Duration>,
    /// Stored value → `Incoming` (decoded, hash recomputed) for the whole log.
    pub convert: Duration,
    /// `Checkpointed<Position>::offer` for the whole log.
    pub fold: Duration,
    /// Each fresh positiond: start → `GetStatus` at the head.
    pub positiond: Vec<Duration>,
    /// The store read alone, if measured.
    pub store: Option<StoreParts>,
}

/// Reading the log from ledgerd's store in this process, no gRPC.
#[derive(Clone, Copy, Debug)]
pub struct StoreParts {
    /// `EventStore::read_all` in pages of 1,024: sled scan and decode.
    pub read: Duration,
    /// The same, each event also converted to protobuf and encoded.
    pub read_encode: Duration,
    /// Bytes of the encoded messages.
    pub bytes: u64,
}

/// Reads the whole log of the store in `dir` (ledgerd not running), twice: as stored, then
/// converted and encoded as `ReadAll` sends it. Checks it holds `events` events.
pub fn store_parts(dir: &std::path::Path, events: u64) -> anyhow::Result<StoreParts> {
    use prost::Message as _;
    let store = store::EventStore::<domain::Event>::open(store::StoreConfig::new(dir))?;
    let page = ledgerd::config::Config::default().read_page_events;
    let timed = |encode: bool| -> anyhow::Result<(Duration, u64, u64)> {
        let started = Instant::now();
        let (mut next, mut count, mut bytes) = (1, 0u64, 0u64);
        loop {
            let events = store.read_all(next, page)?;
            let Some(last) = events.last() else { break };
            next = last.sequence + 1;
            count += events.len() as u64;
            if encode {
                for event in &events {
                    bytes += ledgerd::relay::recorded_to_proto(event)
                        .encode_to_vec()
                        .len() as u64;
                }
            }
        }
        Ok((started.elapsed(), count, bytes))
    };
    let (read, count, _) = timed(false)?;
    let (read_encode, again, bytes) = timed(true)?;
    ensure!(
        count == events && again == events,
        "the store holds {count} events, not {events}"
    );
    Ok(StoreParts {
        read,
        read_encode,
        bytes,
    })
}

impl RebuildRun {
    pub fn stream_per_second(&self) -> f64 {
        crate::per_second(self.events, median(&self.stream))
    }

    pub fn convert_per_second(&self) -> f64 {
        crate::per_second(self.events, self.convert)
    }

    pub fn fold_per_second(&self) -> f64 {
        crate::per_second(self.events, self.fold)
    }

    /// The three parts one after the other (no overlap): what a rebuild would run at if
    /// nothing overlapped.
    pub fn serial_per_second(&self) -> f64 {
        crate::per_second(self.events, median(&self.stream) + self.convert + self.fold)
    }

    /// The median positiond rebuild.
    pub fn positiond_per_second(&self) -> f64 {
        crate::per_second(self.events, median(&self.positiond))
    }

    pub fn positiond_best_per_second(&self) -> f64 {
        let best = self.positiond.iter().min().copied().unwrap_or_default();
        crate::per_second(self.events, best)
    }
}

/// Measures the parts, then `rebuilds` fresh positionds against `ledgerd`, whose head is
/// `head`. The last positiond is left running (at the head, following JetStream) and
/// returned with its data directory.
pub fn measure(
    client: &tokio::runtime::Runtime,
    ledgerd: &Ledgerd,
    nats_url: &str,
    system: &str,
    head: &pb::HeadReply,
    rebuilds: usize,
) -> anyhow::Result<(RebuildRun, Positiond, tempfile::TempDir)> {
    ensure!(rebuilds > 0 && head.sequence > 0, "nothing to rebuild");
    let mut stream = Vec::with_capacity(rebuilds);
    let mut kept = Vec::new();
    for pass in 0..rebuilds {
        let (took, messages) = client.block_on(read_stored(ledgerd, head, pass + 1 == rebuilds))?;
        stream.push(took);
        kept = messages;
    }

    let started = Instant::now();
    let incoming = kept
        .iter()
        .map(|value| Incoming::from_stored(value))
        .collect::<Result<Vec<_>, _>>()
        .context("an event from ledgerd")?;
    let convert = started.elapsed();

    let started = Instant::now();
    let mut folded = Checkpointed::<Position>::default();
    for event in &incoming {
        ensure!(
            folded.offer(event)? == Offer::Applied,
            "event {} did not fold as the next",
            event.sequence
        );
    }
    let fold = started.elapsed();
    ensure!(
        folded.sequence == head.sequence && folded.hash.as_slice() == head.hash.as_slice(),
        "the fold ended at {}, not the head {}",
        folded.sequence,
        head.sequence
    );
    drop(incoming);
    drop(folded);

    let mut positiond = Vec::with_capacity(rebuilds);
    let mut last = None;
    for r in 0..rebuilds {
        let dir = tempfile::Builder::new()
            .prefix("bench-rebuild-positiond-")
            .tempdir()?;
        let service = Positiond::start(PositiondSetup {
            data_dir: dir.path(),
            system,
            nats_url: nats_url.to_string(),
            ledgerd_url: ledgerd.url.clone(),
            consumer: &format!("positiond-{r}"),
        })?;
        let took = client.block_on(wait_for_head(&service, head));
        match took {
            Ok(took) => positiond.push(took),
            Err(error) => {
                let _ = service.stop();
                return Err(error);
            }
        }
        eprintln!(
            "rebuild {}: {:.2} s",
            r + 1,
            positiond.last().map_or(0.0, Duration::as_secs_f64)
        );
        if r + 1 == rebuilds {
            last = Some((service, dir));
        } else {
            service.stop()?;
        }
    }
    let (service, dir) = last.context("no positiond")?;
    Ok((
        RebuildRun {
            events: head.sequence,
            stream,
            convert,
            fold,
            positiond,
            store: None,
        },
        service,
        dir,
    ))
}

/// One pass over the whole log through ledgerd's `ReadStored`, each page checked to follow the
/// one before it without a gap.
pub struct StoredPass {
    pages: tonic::Streaming<pb::StoredPage>,
    /// The sequence the next page must start at.
    expected: u64,
}

impl StoredPass {
    pub async fn start(
        client: &mut pb::ledger_service_client::LedgerServiceClient<tonic::transport::Channel>,
    ) -> anyhow::Result<StoredPass> {
        let request = pb::ReadStoredRequest {
            from_sequence: 1,
            limit: 0,
        };
        Ok(StoredPass {
            pages: client.read_stored(request).await?.into_inner(),
            expected: 1,
        })
    }

    /// The next page; `None` at the end of the pass.
    pub async fn next(&mut self) -> anyhow::Result<Option<pb::StoredPage>> {
        let Some(page) = self.pages.message().await? else {
            return Ok(None);
        };
        ensure!(
            page.first_sequence == self.expected && !page.events.is_empty(),
            "ReadStored sent a page from {} for {}",
            page.first_sequence,
            self.expected
        );
        self.expected += page.events.len() as u64;
        Ok(Some(page))
    }

    /// Events received so far.
    pub fn events(&self) -> u64 {
        self.expected - 1
    }
}

/// Streams the whole log through `ReadStored`; how long it took, and the stored values if
/// `keep`.
async fn read_stored(
    ledgerd: &Ledgerd,
    head: &pb::HeadReply,
    keep: bool,
) -> anyhow::Result<(Duration, Vec<bytes::Bytes>)> {
    let mut client = ledgerd.client().await?;
    let mut kept = Vec::with_capacity(if keep {
        usize::try_from(head.sequence)?
    } else {
        0
    });
    let started = Instant::now();
    let mut pass = StoredPass::start(&mut client).await?;
    let mut last = bytes::Bytes::new();
    while let Some(page) = pass.next().await? {
        if keep {
            kept.extend(page.events);
        } else if let Some(value) = page.events.into_iter().last() {
            last = value;
        }
    }
    let took = started.elapsed();
    if let Some(value) = kept.last() {
        last = value.clone();
    }
    let (_, last_hash) = store::codec::split_value(&last)?;
    ensure!(
        pass.events() == head.sequence && last_hash.as_slice() == head.hash.as_slice(),
        "ReadStored ended at {}, not the head {}",
        pass.events(),
        head.sequence
    );
    Ok((took, kept))
}

/// Polls positiond's status every 2 ms until it is at `head`: the time since its start.
async fn wait_for_head(positiond: &Positiond, head: &pb::HeadReply) -> anyhow::Result<Duration> {
    let mut client = positiond.client().await?;
    loop {
        let status = client
            .get_status(api::position_pb::StatusRequest {})
            .await?
            .into_inner();
        if status.sequence >= head.sequence {
            let took = positiond.started.elapsed();
            ensure!(
                status.sequence == head.sequence && status.hash == head.hash,
                "positiond at {}, ledgerd's head {}",
                status.sequence,
                head.sequence
            );
            return Ok(took);
        }
        ensure!(positiond.is_running(), "positiond stopped");
        ensure!(
            positiond.started.elapsed() < REBUILD_TIMEOUT,
            "positiond at {} after {} s",
            status.sequence,
            REBUILD_TIMEOUT.as_secs()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// The parts of reading the log, one row.
pub fn read_table(run: &RebuildRun) -> String {
    let mut out = String::from(
        "| events | store read + decode (in-process) events/s | + to protobuf + encode (ReadAll's path) events/s | encoded MiB | ReadStored over gRPC, received events/s |\n\
         |---:|---:|---:|---:|---:|\n",
    );
    let (read, encode, mib) = run.store.map_or(
        ("—".to_string(), "—".to_string(), "—".to_string()),
        |s| {
            (
                rate(crate::per_second(run.events, s.read)),
                rate(crate::per_second(run.events, s.read_encode)),
                format!("{:.1}", s.bytes as f64 / (1024.0 * 1024.0)),
            )
        },
    );
    let _ = writeln!(
        out,
        "| {} | {read} | {encode} | {mib} | {} |",
        rate(run.events as f64),
        rate(run.stream_per_second()),
    );
    out
}

/// The rebuild and its parts, one row.
pub fn rebuild_table(run: &RebuildRun) -> String {
    let mut out = String::from(
        "| events | positiond rebuilds | positiond: start → status at the head, s (median) | positiond events/s (median) | (best) | ReadStored alone events/s | decode + hash check events/s | fold alone events/s | the three one after another events/s |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let _ = writeln!(
        out,
        "| {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
        rate(run.events as f64),
        run.positiond.len(),
        median(&run.positiond).as_secs_f64(),
        rate(run.positiond_per_second()),
        rate(run.positiond_best_per_second()),
        rate(run.stream_per_second()),
        rate(run.convert_per_second()),
        rate(run.fold_per_second()),
        rate(run.serial_per_second()),
    );
    out
}
