//! `icsctl store upgrade`: a stopped ledger's sled directory copied into this build's
//! on-disk format.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Subcommand;
use domain::Event;
use store::{EventStore, StoreConfig};

#[derive(Debug, Subcommand)]
pub enum Storage {
    /// Copy a stopped ledgerd's store written in an earlier format (2: before events were
    /// kept in pages; 3: before idempotency records were kept a batch to a key) into a new
    /// directory in this build's format, then open it and verify its chain. The old directory
    /// is only read; point ledgerd's data_dir at the new one afterwards.
    Upgrade {
        /// The old data directory (ledgerd stopped).
        #[arg(long)]
        from: PathBuf,
        /// Where the upgraded store goes: a new or empty directory.
        #[arg(long)]
        to: PathBuf,
    },
}

pub fn run(command: Storage) -> anyhow::Result<()> {
    match command {
        Storage::Upgrade { from, to } => upgrade(&from, &to),
    }
}

fn upgrade(from: &Path, to: &Path) -> anyhow::Result<()> {
    let upgraded = store::upgrade::upgrade(from, to)?;
    let store = EventStore::<Event>::open(StoreConfig::new(to))
        .with_context(|| format!("opening the upgraded store in {}", to.display()))?;
    let head = store
        .verify_chain()
        .with_context(|| format!("verifying the upgraded store in {}", to.display()))?;
    println!(
        "upgraded {} events, {} idempotency records and {} other records from {} into {}; the \
         chain verifies to {head}",
        upgraded.events,
        upgraded.requests,
        upgraded.records,
        from.display(),
        to.display(),
    );
    println!("point ledgerd's data_dir at {}", to.display());
    Ok(())
}
