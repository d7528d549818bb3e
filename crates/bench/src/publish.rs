//! What the relay pays nats-server for one read of the log: `k` events published one by one
//! (pipelined, the acknowledgements awaited in order — the relay's path for a few events) or
//! as one JetStream atomic batch (its path for a backlog), each way timed from the first send
//! to the last acknowledgement. Where the two cross is where `relay_batch_from` belongs.

use crate::median;
use std::collections::VecDeque;
use std::time::{Duration, Instant};

use anyhow::ensure;
use bus::{OutboundEvent, Publisher, StreamSettings};
use bytes::Bytes;
use domain::{Family, SystemId};

/// How a read is published.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Way {
    /// One message each, pipelined.
    OneByOne,
    /// One atomic batch.
    Batch,
}

/// One size of read, both ways.
#[derive(Clone, Debug)]
pub struct PublishRow {
    pub events_per_read: usize,
    pub reads: usize,
    /// Median time from the first send to the last acknowledgement, one by one.
    pub one_by_one: Duration,
    /// The same as one atomic batch.
    pub batch: Duration,
}

/// A payload the size of a relayed `RecordedEvent` of the demo's invoices (~300 bytes).
const PAYLOAD_BYTES: usize = 300;

fn event(system: &SystemId, sequence: u64) -> OutboundEvent {
    OutboundEvent {
        subject: bus::subject(system, Family::Contract, "invoice_raised"),
        event_id: format!("00000000-0000-4000-8000-{sequence:012}"),
        sequence,
        stream: "contract/2022-C01".to_string(),
        version: sequence,
        hash: [7; 32],
        event_type: "contract.invoice_raised".to_string(),
        payload: Bytes::from(vec![b'x'; PAYLOAD_BYTES]),
        signature: None,
    }
}

/// Publishes `reads` reads of each size in `sizes`, both ways, into a fresh stream on the
/// nats-server at `url`; checks the stream holds every event once.
pub async fn run(url: &str, sizes: &[usize], reads: usize) -> anyhow::Result<Vec<PublishRow>> {
    let js = bus::jetstream(bus::connect(url, "bench-publish").await?);
    bus::ensure_stream(&js, &StreamSettings::default()).await?;
    let publisher = Publisher::new(js.clone());
    let system = SystemId::new("bench").map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut next = 1u64;
    let mut rows = Vec::new();
    for &size in sizes {
        let mut times = [Vec::with_capacity(reads), Vec::with_capacity(reads)];
        for _ in 0..reads {
            // Alternating, so both ways see the same moments of the disk.
            for (way, spent) in [Way::OneByOne, Way::Batch].into_iter().zip(&mut times) {
                let events: Vec<OutboundEvent> = (next..next + size as u64)
                    .map(|sequence| event(&system, sequence))
                    .collect();
                next += size as u64;
                spent.push(publish(&publisher, &events, way).await?);
            }
        }
        let [one_by_one, batch] = times;
        rows.push(PublishRow {
            events_per_read: size,
            reads,
            one_by_one: median(&one_by_one),
            batch: median(&batch),
        });
    }
    let held = bus::system_message_count(&js, bus::STREAM_NAME, &system).await?;
    ensure!(
        held == next - 1,
        "the stream holds {held} events, {} were published",
        next - 1
    );
    Ok(rows)
}

async fn publish(
    publisher: &Publisher,
    events: &[OutboundEvent],
    way: Way,
) -> anyhow::Result<Duration> {
    let started = Instant::now();
    match way {
        Way::OneByOne => {
            let mut acks = VecDeque::with_capacity(events.len());
            for event in events {
                acks.push_back(publisher.publish(event).await?);
            }
            while let Some(ack) = acks.pop_front() {
                ensure!(!ack.await?.duplicate, "a fresh event taken as a duplicate");
            }
        }
        Way::Batch => {
            let ack = publisher.publish_batch(events).await?.await?;
            ensure!(
                ack.last - ack.first + 1 == events.len() as u64,
                "batch acknowledged {}..={}",
                ack.first,
                ack.last
            );
        }
    }
    Ok(started.elapsed())
}
