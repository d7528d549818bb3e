//! `positiond` — see the library docs.

use clap::Parser;
use positiond::config::{Config, Flags};
use tracing_subscriber::EnvFilter;

/// mimalloc, not glibc's allocator: reading sled pages from disk allocates for every item on
/// the page, and glibc made that several times slower (crates/bench/README.md, "Reading one
/// event").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let flags = Flags::parse();
    let config = Config::load(&flags)?;
    let listener = tokio::net::TcpListener::bind(config.listen).await?;
    positiond::server::run(config, listener, positiond::server::shutdown_signal()).await
}
