//! `cargo bench -p bench --bench lag`: how far positiond trails ledgerd at a steady rate of
//! single commands (on a fresh ledger and on one preloaded with 1,000,000 events), and how
//! fast a fresh positiond rebuilds that log through ledgerd's `ReadStored`, with its parts. Needs
//! a nats-server (NATS_SERVER_BIN or on PATH). `BENCH_QUICK=1` runs it small; `BENCH_RATE`,
//! `BENCH_SECONDS`, `BENCH_EVENTS`, `BENCH_POLL_US`, `BENCH_NATS_SYNC=lazy` change it (see
//! `bench::lag::LagScale::from_env`). With `BENCH_ONLY` set to anything but `lag` it does
//! nothing.

use bench::{lag, rebuild, report};

/// The allocator the binaries run with (see `crates/ledgerd/src/main.rs`), so that what is
/// measured here is what they do — unless asked to measure glibc's.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this harness takes no filters.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && only != "lag" {
        return Ok(());
    }
    let scale = lag::LagScale::from_env()?;
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}\n");

    let report = lag::run(scale)?;
    let p = &report.preparation;
    let relayed = p.relayed.map_or(
        "its relay cursor set to the head (the log not relayed)".to_string(),
        |d| {
            format!(
                "JetStream held the head {:.1} s after its start",
                d.as_secs_f64()
            )
        },
    );
    println!(
        "preloaded ledger: {} synthetic events generated in {:.1} s, appended to ledgerd's store in {:.1} s; \
         ledgerd answered {:.1} s after its start; {relayed}\n",
        report::rate(p.events as f64),
        p.generated.as_secs_f64(),
        p.preloaded.as_secs_f64(),
        p.recovered.as_secs_f64(),
    );
    let runs = [&report.fresh, &report.preloaded];
    println!("### Lag: ledgerd's acknowledgement → visible in positiond's GetStatus\n");
    println!("{}", lag::lag_table(&runs));
    println!("{}", lag::driver_table(&runs));
    println!("### Rebuild through ledgerd's ReadStored\n");
    println!("{}", rebuild::rebuild_table(&report.rebuild));
    println!("{}", rebuild::read_table(&report.rebuild));
    Ok(())
}
