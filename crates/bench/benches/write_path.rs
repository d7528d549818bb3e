//! `cargo bench -p bench` (or `make bench`): the write-path figures of README.md.
//! `BENCH_QUICK=1` runs everything small. A nats-server (NATS_SERVER_BIN or on PATH) adds
//! the relay measurements; without one they are skipped and say so. `BENCH_ONLY=store`,
//! `BENCH_ONLY=grpc` or `BENCH_ONLY=relay` runs one part.

use bench::ceiling::Layout;
use bench::{Scale, append, ceiling, grpc, publish, report};

/// The allocator the binaries run with (see `crates/ledgerd/src/main.rs`), so that what is
/// measured here is what they do — unless asked to measure glibc's.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this harness takes no filters.
    let scale = Scale::from_env();
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}\n");

    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if only.is_empty() || only == "store" {
        store(scale)?;
    }
    if only.is_empty() || only == "grpc" {
        grpc(scale)?;
    }
    if only.is_empty() || only == "relay" {
        relay(scale)?;
    }
    Ok(())
}

fn store(scale: Scale) -> anyhow::Result<()> {
    let mut store_rows = Vec::new();
    for request_events in [1, 100, 1_000] {
        let total = if request_events == 1 {
            scale.store_single_events
        } else {
            scale.store_events
        };
        for round in 1..=scale.store_rounds {
            let run = append::run(request_events, total, scale.appenders)?;
            let raw = run.raw_events()?;
            let paged = ceiling::run(&raw, run.events_per_flush(), Layout::Paged)?;
            let per_key = ceiling::run(&raw, run.events_per_flush(), Layout::OnePerKey)?;
            eprintln!(
                "store: {request_events} per request, round {round}: {} events/s; raw {} events/s paged, {} one key per event",
                report::rate(run.events_per_second()),
                report::rate(paged.events_per_second()),
                report::rate(per_key.events_per_second())
            );
            store_rows.push(report::StoreRound {
                store: run,
                paged,
                per_key,
            });
        }
    }

    // The ceiling at fixed batch sizes, on the bytes of the largest run.
    let largest = &store_rows.last().expect("at least one round").store;
    let raw = largest.raw_events()?;
    let mut ceiling_rows = Vec::new();
    for (batch, events) in [
        (1, scale.store_single_events),
        (100, scale.store_events),
        (1_000, scale.store_events),
    ] {
        let take = usize::try_from(events)?.min(raw.len());
        for layout in [Layout::Paged, Layout::OnePerKey] {
            ceiling_rows.push(ceiling::run(&raw[..take], batch, layout)?);
        }
    }
    println!("### Event store against the raw sled ceiling\n");
    println!("{}", report::store_summary(&store_rows));
    println!("Every round:\n");
    println!("{}", report::store_table(&store_rows));
    println!("### Raw sled at fixed batch sizes\n");
    println!("{}", report::ceiling_table(&ceiling_rows));
    Ok(())
}

fn grpc(scale: Scale) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut grpc_rows = vec![(
        "no relay",
        runtime.block_on(grpc::run(scale.bulk_commands, None))?,
    )];
    for (name, sync_always) in [
        ("relaying to nats-server (sync_interval: always)", true),
        ("relaying to nats-server (default lazy fsync)", false),
    ] {
        match testkit::NatsServer::start_with(testkit::NatsOptions {
            sync_always,
            ..testkit::NatsOptions::default()
        }) {
            Ok(nats) => grpc_rows.push((
                name,
                runtime.block_on(grpc::run(scale.bulk_commands, Some(nats.url())))?,
            )),
            Err(error) => {
                println!("relay not measured: no nats-server ({error:#})\n");
                break;
            }
        }
    }

    println!("### ledgerd over gRPC\n");
    println!("{}", report::grpc_table(&grpc_rows));
    Ok(())
}

/// A read of k events published one by one or as one atomic batch, both fsync settings.
fn relay(scale: Scale) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let sizes = [1, 2, 4, 8, 16, 32, 64, 128, 512];
    println!("### The relay's read of k events: one by one or one atomic batch\n");
    for (fsync, sync_always) in [("always", true), ("lazy (default)", false)] {
        let nats = match testkit::NatsServer::start_with(testkit::NatsOptions {
            sync_always,
            ..testkit::NatsOptions::default()
        }) {
            Ok(nats) => nats,
            Err(error) => {
                println!("not measured: no nats-server ({error:#})\n");
                return Ok(());
            }
        };
        let rows = runtime.block_on(publish::run(&nats.url(), &sizes, scale.publish_reads))?;
        println!("{}", report::publish_table(fsync, &rows));
    }
    Ok(())
}
