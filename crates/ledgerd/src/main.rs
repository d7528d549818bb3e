//! `ledgerd` — see the library docs.
//!
//! Exit statuses: 0 after a clean stop (SIGTERM or SIGINT); 1 when it cannot start or serve
//! (configuration, address, NATS at start-up); 3 when its event store is damaged or is not the
//! log it recorded — restarting cannot help, restoring it from the JetStream stream
//! (`icsctl store restore`) can, so the systemd unit does not restart on it. A sound log
//! holding an event this version's rules cannot apply is neither: ledgerd runs, serving reads
//! and refusing commands (`ledger::Stuck`).

use std::process::ExitCode;

use clap::Parser;
use ledgerd::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

/// mimalloc, not glibc's allocator: reading sled pages from disk allocates for every item on
/// the page, and glibc made that several times slower (crates/bench/README.md, "Reading one
/// event").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    // sled panics on some damaged files; the store catches that and reports it as an error,
    // so the panic itself is logged as what it is, not printed as a crash.
    std::panic::set_hook(Box::new(|info| tracing::error!(%info, "panic")));
    match serve().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            let status = ledgerd::server::exit_status(&error);
            tracing::error!("{error:#}");
            eprintln!("ledgerd: {error:#}");
            ExitCode::from(status)
        }
    }
}

async fn serve() -> anyhow::Result<()> {
    let flags = Flags::parse();
    let config = Config::load(&flags)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    ledgerd::server::run(config, listener, ledgerd::server::shutdown_signal()).await
}
