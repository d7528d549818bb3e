//! `cargo bench -p bench --bench audit`: the audit's figures of README.md — replay and
//! verification throughput, proof latency and the Merkle upkeep's cost to appends — on a
//! synthetic ICS of 1,000,000 events. `BENCH_QUICK=1` runs it small; `BENCH_EVENTS=n` sets
//! the size of the log. With `BENCH_ONLY` set to anything but `audit` it does nothing.

use bench::audit::{self, AuditScale};
use bench::report;

/// The allocator the binaries run with (see `crates/ledgerd/src/main.rs`), so that what is
/// measured here is what they do — unless asked to measure glibc's.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this harness takes no filters.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && only != "audit" {
        return Ok(());
    }
    let scale = AuditScale::from_env()?;
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}\n");

    let run = audit::run(scale)?;
    println!(
        "log: {} synthetic events from {} commands (one append request each), {} checkpoints signed by ledgerd's audit task (every {} events)\n",
        report::rate(run.events as f64),
        report::rate(run.commands as f64),
        run.checkpoints,
        report::rate(run.checkpoint_every as f64),
    );
    println!("### Replay\n");
    println!("{}", report::audit_replay_table(&run));
    println!("### Verification\n");
    println!("{}", report::audit_verify_table(&run));
    println!("### Proofs\n");
    println!("{}", report::audit_proof_table(&run));
    println!("### Merkle upkeep\n");
    println!("{}", report::audit_upkeep_table(&run));
    println!(
        "tree rebuilt from the stored hashes (`AuditLog::build`, ledgerd's start-up): {:.2} s ({:.2} µs/event); ledgerd start-up on the log (the domain replayed + the tree): {:.1} s",
        run.tree_build.as_secs_f64(),
        run.tree_build.as_secs_f64() * 1e6 / run.events.max(1) as f64,
        run.ledgerd_startup.as_secs_f64()
    );
    Ok(())
}
