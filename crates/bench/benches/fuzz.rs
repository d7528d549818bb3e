//! `cargo bench -p bench --bench fuzz` (`make fuzz`): the fuzzer's long run against the
//! release ledgerd binary (`cargo build --release --bin ledgerd` first). `ICS_FUZZ_REQUESTS`
//! sets the length (default 100,000; `BENCH_QUICK=1`: 3,000), `ICS_FUZZ_SEED` repeats a run.
//! Prints the seed, the answers by kind of request and status, and the time (README.md,
//! "Fuzzing"). With `BENCH_ONLY` set to anything but `fuzz` it does nothing.

use bench::report;

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Requests in the long run.
const REQUESTS: u64 = 100_000;

fn main() -> anyhow::Result<()> {
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && only != "fuzz" {
        return Ok(());
    }
    let quick = std::env::var("BENCH_QUICK").is_ok_and(|v| v == "1");
    let settings = bench::fuzz::Settings::from_env(if quick { 3_000 } else { REQUESTS })?;
    println!("machine: {}", report::machine());
    println!(
        "seed: {} (ICS_FUZZ_SEED={} ICS_FUZZ_REQUESTS={} repeats it)\n",
        settings.seed, settings.seed, settings.requests
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let run = runtime.block_on(bench::fuzz::run(&settings))?;
    println!(
        "{} requests in {:.1} s ({} a second); {} events recorded, the log {} long; every \
         answer documented, every refusal left the head, the chain verifies\n",
        run.requests,
        run.elapsed.as_secs_f64(),
        report::rate(run.rate()),
        run.events_recorded,
        run.head
    );
    println!("{}", run.table());
    Ok(())
}
