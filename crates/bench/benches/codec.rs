//! `cargo bench -p bench --bench codec`: what reading one stored event costs — decode, hash,
//! fold, and sled's scan from disk and from its cache (README.md, "Reading one event"), on a
//! synthetic ICS of 1,000,000 events. `BENCH_QUICK=1` runs it small; `BENCH_EVENTS=n` sets the
//! size. `--features system-allocator` measures the same on glibc's allocator. With
//! `BENCH_ONLY` set to anything but `codec` it does nothing.

use bench::codec::{self, CodecScale};
use bench::report;

/// The allocator the binaries run with (see `crates/ledgerd/src/main.rs`), so that what is
/// measured here is what they do — unless asked to measure glibc's.
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; this harness takes no filters.
    let only = std::env::var("BENCH_ONLY").unwrap_or_default();
    if !only.is_empty() && only != "codec" {
        return Ok(());
    }
    let scale = CodecScale::from_env()?;
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}");
    println!(
        "allocator: {}\n",
        if cfg!(feature = "system-allocator") {
            "glibc (the system's)"
        } else {
            "mimalloc (the binaries')"
        }
    );
    let run = codec::run(scale)?;
    println!(
        "log: {} events, {:.1} MiB stored (body ‖ hash)\n",
        report::rate(run.events as f64),
        run.bytes as f64 / f64::from(1 << 20)
    );
    println!("{}", report::codec_table(&run));
    Ok(())
}
