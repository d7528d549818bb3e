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
    quiet_on_a_closed_pipe();
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

/// A reader that stops early (`icsctl events | head`) closes icsctl's stdout, and the next print
/// then panics inside std. End quietly with status 0 instead, as a Unix tool whose reader has
/// gone does; any other panic is reported as before.
fn quiet_on_a_closed_pipe() {
    let report = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.contains("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(0);
        }
        report(info);
    }));
}
