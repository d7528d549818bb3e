//! Benchmarks of the write path, as one program (`cargo bench -p bench --bench write_path`,
//! see README.md):
//!
//! - [`ceiling`]: raw sled — insert the very bytes the event store wrote, in batches of the
//!   same size its group commit formed, one flush per batch. The ceiling for the store.
//! - [`append`]: the event store's append throughput, requests of 1, 100 and 1,000 events
//!   from concurrent appenders, each acknowledged only after its flush.
//! - [`grpc`]: ledgerd in-process behind real gRPC over loopback, a bulk submit of invoices;
//!   with a nats-server available, again with the relay on, timed until JetStream holds the
//!   last event.
//!
//! Every measurement checks what it measured (the count of events stored, the chain), so a
//! run that did less work than it claims fails instead of reporting a flattering figure.
//! [`Scale::quick`] runs the same code small, for the test that keeps it working.
//!
//! And of the read side, on the position projection alone (`--bench position`):
//!
//! - [`synthetic`]: a deterministic synthetic ICS log of any length, every event accepted by
//!   the domain's rules; [`demo`]: the demo scenario as a log;
//! - [`position`]: rebuild throughput, position and other report latencies at the latest
//!   event and as of past sequences, and the size and cost of positiond's checkpoint.
//!
//! And of the audit (`--bench audit`): [`audit`] — replay and verification throughput
//! through icsctl's own code, proof latency, and what ledgerd's Merkle upkeep costs appends.
//!
//! And of positiond against ledgerd, both running (`--bench lag`):
//!
//! - [`inproc`]: ledgerd and positiond in this process on runtimes of their own, a ledger
//!   preloaded with a synthetic log;
//! - [`lag`]: ledgerd's acknowledgement → visible in positiond at a steady rate of commands;
//! - [`rebuild`]: a fresh positiond catching up a long log through ledgerd's `ReadAll`, and
//!   its parts (the stream, the conversion, the fold).
//!
//! And not a measurement but a long run (`--bench fuzz`): [`fuzz`], a structure-aware fuzzer
//! of the real ledgerd binary over gRPC, reporting what it sent and how it was answered.

pub mod append;
pub mod audit;
pub mod ceiling;
pub mod codec;
pub mod contention;
pub mod demo;
pub mod fuzz;
pub mod grpc;
pub mod inproc;
pub mod lag;
pub mod position;
pub mod publish;
pub mod rebuild;
pub mod report;
pub mod synthetic;
pub mod workload;

/// How much work each measurement does.
#[derive(Clone, Copy, Debug)]
pub struct Scale {
    /// Events appended per run of the store benchmark, for each request size.
    pub store_events: u64,
    /// Events appended when each request holds one event (fsync bound, so fewer).
    pub store_single_events: u64,
    /// Rounds of each store run and its ceiling: the disk's fsync latency moves from one
    /// second to the next, so one round is one sample; the summary gives the median.
    pub store_rounds: usize,
    /// Concurrent appenders.
    pub appenders: usize,
    /// Commands in the gRPC bulk submission.
    pub bulk_commands: u64,
    /// Reads of each size published each way in the relay's publish benchmark.
    pub publish_reads: usize,
}

impl Scale {
    /// The figures in README.md.
    pub const FULL: Scale = Scale {
        store_events: 200_000,
        store_single_events: 50_000,
        store_rounds: 3,
        appenders: 16,
        bulk_commands: 100_000,
        publish_reads: 200,
    };

    /// A few seconds in debug builds: proves every benchmark runs and checks itself.
    pub fn quick() -> Scale {
        Scale {
            store_events: 2_000,
            store_single_events: 200,
            store_rounds: 2,
            appenders: 4,
            bulk_commands: 500,
            publish_reads: 3,
        }
    }

    /// `BENCH_QUICK=1` selects [`Scale::quick`].
    pub fn from_env() -> Scale {
        if quick_requested() {
            Scale::quick()
        } else {
            Scale::FULL
        }
    }
}

/// Whether `BENCH_QUICK` asks for a smoke run: set, and neither empty nor `0`.
pub fn quick_requested() -> bool {
    std::env::var("BENCH_QUICK").is_ok_and(|value| !value.is_empty() && value != "0")
}

/// The number in the environment variable `name` (`1_000_000` or `1000000`), if it is set.
pub fn number_from_env(name: &str) -> anyhow::Result<Option<u64>> {
    use anyhow::Context as _;
    std::env::var(name)
        .ok()
        .map(|value| {
            value
                .replace('_', "")
                .parse()
                .with_context(|| format!("{name}={value}"))
        })
        .transpose()
}

/// The median of `samples` (the upper one of an even count); zero for none.
pub fn median(samples: &[std::time::Duration]) -> std::time::Duration {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    sorted.get(sorted.len() / 2).copied().unwrap_or_default()
}

/// Events per second, for reporting.
pub fn per_second(events: u64, elapsed: std::time::Duration) -> f64 {
    events as f64 / elapsed.as_secs_f64().max(f64::MIN_POSITIVE)
}
