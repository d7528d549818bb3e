use bench::ceiling::Layout;
use bench::{append, ceiling};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> anyhow::Result<()> {
    let size: u64 = std::env::args().nth(1).expect("size").parse()?;
    let total: u64 = std::env::args().nth(2).expect("total").parse()?;
    let ceil = std::env::args().nth(3).is_some();
    let run = append::run(size, total, 16)?;
    println!(
        "store {size}: {:.0} ev/s, {} per flush, {:?}",
        run.events_per_second(),
        run.events_per_flush(),
        run.stats
    );
    if ceil {
        let raw = run.raw_events()?;
        let paged = ceiling::run(&raw, run.events_per_flush(), Layout::Paged)?;
        println!("paged ceiling: {:.0} ev/s", paged.events_per_second());
    }
    Ok(())
}
