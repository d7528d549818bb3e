//! `cargo bench -p bench --bench position`: the position projection's figures of README.md —
//! rebuild throughput, report latencies (latest and as of past sequences) and checkpoint cost,
//! on the demo ICS and on a synthetic ICS of 1,000,000 events. `BENCH_QUICK=1` runs it small;
//! `BENCH_EVENTS=n` sets the size of the synthetic log. With `BENCH_ONLY` set to anything
//! but `position` (`store`, `grpc`: the write path's parts) it does nothing.

use std::time::Instant;

use bench::position::{self, PositionScale};
use bench::{demo, report, synthetic};

/// The allocator the binaries run with (see `crates/ledgerd/src/main.rs`), so that what is
/// measured here is what they do — unless asked to measure glibc's.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this harness takes no filters.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && only != "position" {
        return Ok(());
    }
    let scale = PositionScale::from_env()?;
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}\n");

    let demo_log = demo::log()?;
    let demo_run = position::measure(
        &format!("demo ({})", demo::KINGSMERE_NAME),
        &demo_log,
        scale,
    )?;
    eprintln!(
        "demo: {} events, rebuild {} events/s",
        demo_run.events,
        report::rate(demo_run.rebuild_per_second())
    );

    let started = Instant::now();
    let synthetic = synthetic::generate(scale.synthetic_events, scale.years)?;
    let generated = started.elapsed();
    println!(
        "synthetic log: {} events from {} commands (every one accepted), {} members, {}–{}, generated in {:.1} s\n",
        report::rate(synthetic.log.len() as f64),
        report::rate(synthetic.commands as f64),
        synthetic.members,
        synthetic.first_year,
        synthetic.last_year,
        generated.as_secs_f64()
    );
    let mix: Vec<String> = synthetic
        .mix()
        .iter()
        .map(|(kind, n)| format!("{kind} {}", report::rate(*n as f64)))
        .collect();
    println!("event mix: {}\n", mix.join(", "));
    let synthetic_run = position::measure(
        &format!(
            "synthetic, {} events",
            report::rate(synthetic.log.len() as f64)
        ),
        &synthetic.log,
        scale,
    )?;
    let runs = [demo_run, synthetic_run];

    println!("### Rebuild\n");
    println!("{}", report::position_rebuild_table(&runs));
    println!("### Queries\n");
    println!("{}", report::position_query_table(&runs));
    println!("### Checkpoint\n");
    println!("{}", report::checkpoint_table(&runs));
    Ok(())
}
