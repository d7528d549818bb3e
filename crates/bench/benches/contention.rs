//! `cargo bench -p bench --bench contention`: ledgerd's acknowledgements of single commands
//! while clients stream the whole log, against the same with nobody reading (README.md,
//! "Appends while the log is read"). `BENCH_QUICK=1` runs it small.

use bench::contention::{self, ContentionScale};
use bench::report;

#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let scale = ContentionScale::from_env();
    println!("machine: {}", report::machine());
    println!("scale: {scale:?}\n");
    let rounds = contention::run(scale)?;
    println!("### Acknowledgements while the log is read\n");
    println!("{}", contention::table(scale, &rounds));
    Ok(())
}
