//! `icsctl` — the command-line client of ICS Ledger. See `icsctl --help`.
//!
//! Exit status: 0 done; 1 an audit found something that does not hold up
//! ([`icsctl::audit::Refuted`]: verification failed, a proof or signature does not verify, a
//! filed return does not match); 2 any other failure (and clap's usage errors).

use std::process::ExitCode;

use clap::Parser;

/// mimalloc, not glibc's allocator: reading sled pages from disk allocates for every item on
/// the page, and glibc made that several times slower (crates/bench/README.md, "Reading one
/// event").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = icsctl::Cli::parse();
    match icsctl::run(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            if error.downcast_ref::<icsctl::audit::Refuted>().is_some() {
                ExitCode::from(1)
            } else {
                ExitCode::from(2)
            }
        }
    }
}
