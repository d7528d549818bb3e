//! `icsctl store`: a stopped ledger's sled directory copied into this build's on-disk format
//! (`upgrade`), or a lost or damaged one rebuilt from the JetStream stream that replicates it
//! (`restore`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::Context;
use api::pb;
use audit::{LogVerifier, SignedCheckpoint, Source, Verified};
use clap::Subcommand;
use domain::{Event, SystemId};
use store::restore::{Restore, RestoreError};
use store::{EventStore, StoreConfig};

use crate::Global;
use crate::audit::{AuditArgs, refuted, regulator_unless_skipped, tagged};

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
    /// Rebuild a ledger's store from the JetStream stream its relay published to: every event
    /// checked (its hash against its content, its link, its sequence), every signed
    /// checkpoint checked (signature, chain hash, Merkle root) — the stream's and, unless
    /// --no-regulator, the regulator's — then written byte for byte as ledgerd stored it, to
    /// the same head hash. For a store whose disk was lost or that ledgerd refuses as damaged
    /// (exit status 3): move the old directory aside, restore into its place, start ledgerd.
    Restore {
        /// Where the restored store goes: a new or empty directory.
        #[arg(long)]
        to: PathBuf,
        /// The NATS server holding the stream, and the user to read it as.
        #[command(flatten)]
        nats: crate::nats::NatsArgs,
        #[arg(long, default_value = bus::STREAM_NAME)]
        stream_name: String,
        #[command(flatten)]
        keys: AuditArgs,
    },
}

pub async fn run(global: &Global, command: Storage) -> anyhow::Result<()> {
    match command {
        Storage::Upgrade { from, to } => upgrade(&from, &to),
        Storage::Restore {
            to,
            nats,
            stream_name,
            keys,
        } => restore(global, &to, &nats, &stream_name, &keys).await,
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

async fn restore(
    global: &Global,
    to: &Path,
    nats: &crate::nats::NatsArgs,
    stream_name: &str,
    args: &AuditArgs,
) -> anyhow::Result<()> {
    let system = args.system()?;
    let key = args.key()?;
    let regulator = regulator_unless_skipped(global, args).await?;
    let client = nats.connect("icsctl-restore").await?;
    let js = bus::jetstream(client);
    if !bus::stream_exists(&js, stream_name).await? {
        anyhow::bail!("NATS has no stream {stream_name}: there is nothing to restore from");
    }
    let published = published_checkpoints(&js, stream_name, &system, &key).await?;
    let last_checkpoint = published.keys().next_back().copied().unwrap_or(0);
    let checkpoints = published
        .values()
        .map(|(_, signed)| (Source::Ledger, signed.clone()))
        .chain(tagged(
            Source::Regulator,
            regulator.clone().unwrap_or_default(),
        ));
    let verifier = LogVerifier::new(&system, &key, checkpoints)
        .map_err(|finding| refused(finding.to_string()))?;
    let mut restore = Restore::<Event>::create(to)?;
    let rebuilt = rebuild(&js, stream_name, &system, &mut restore, verifier).await;
    let written = rebuilt.and_then(|(verified, repeats)| {
        for (sequence, (bytes, _)) in &published {
            restore.put_checkpoint(*sequence, bytes)?;
        }
        Ok((restore.finish(last_checkpoint)?, verified, repeats))
    });
    let (restored, verified, repeats) = match written {
        Ok(written) => written,
        Err(error) => {
            // What was written is no store; leave the directory as it was found (empty).
            clear(to).with_context(|| format!("removing what was written to {}", to.display()))?;
            return Err(error);
        }
    };

    // Opened as ledgerd will open it: the tip, the anchor, the whole chain.
    let store = EventStore::<Event>::open(StoreConfig::new(to))
        .with_context(|| format!("opening the restored store in {}", to.display()))?;
    let opened = store
        .verify_chain()
        .with_context(|| format!("verifying the restored store in {}", to.display()))?;
    anyhow::ensure!(
        opened == restored.head,
        "the restored store opens at {opened}, not {}",
        restored.head
    );
    println!(
        "restored {} events ({} requests) of system {system} from stream {stream_name} into {}",
        restored.head.sequence,
        restored.requests,
        to.display()
    );
    println!("  head        {}", restored.head);
    println!("  merkle root {}", hex::encode(verified.root));
    println!(
        "  checkpoints {} from the stream, {} from the regulator — signatures, chain hashes and \
         roots all match",
        verified
            .checkpoints
            .get(&Source::Ledger)
            .copied()
            .unwrap_or(0),
        verified
            .checkpoints
            .get(&Source::Regulator)
            .copied()
            .unwrap_or(0)
    );
    if regulator.is_none() {
        println!(
            "  NOT checked against the regulator's checkpoints (--no-regulator): a stream \
             rewritten with re-signed checkpoints would pass"
        );
    }
    let signed_to = last_checkpoint.max(
        regulator
            .iter()
            .flatten()
            .map(|c| c.checkpoint.sequence)
            .max()
            .unwrap_or(0),
    );
    if signed_to < restored.head.sequence {
        println!(
            "  events {}..={} are after the last signed checkpoint: their chain verifies, no \
             signature covers them yet",
            signed_to + 1,
            restored.head.sequence
        );
    }
    if repeats > 0 {
        println!("  {repeats} messages the stream held twice were read once");
    }
    println!(
        "  request ids of restored commands: a resend is answered as a duplicate (the stream \
         does not carry command fingerprints)"
    );
    println!("point ledgerd's data_dir at {} and start it", to.display());
    Ok(())
}

/// Reads `system`'s events from the stream into `restore`, each checked by `verifier`; the
/// verification of the whole log, and how many messages the stream held twice.
async fn rebuild(
    js: &async_nats::jetstream::Context,
    stream_name: &str,
    system: &SystemId,
    restore: &mut Restore<Event>,
    mut verifier: LogVerifier,
) -> anyhow::Result<(Verified, u64)> {
    let mut hashes: Vec<[u8; 32]> = Vec::new();
    let mut repeats = 0u64;
    let filter = bus::system_filter(system);
    bus::read_subject(js, stream_name, &filter, bus::Read::Whole, |message| {
        if message
            .headers
            .get(bus::HEADER_EVENT_TYPE)
            .is_some_and(|t| t.as_str() == bus::CHECKPOINT_EVENT_TYPE)
        {
            return Ok(());
        }
        let recorded: pb::RecordedEvent = prost::Message::decode(message.payload.as_ref())
            .map_err(|e| refused(format!("a message on {}: {e}", message.subject)))?;
        let sequence = recorded.sequence;
        let event = follow::incoming::stored(recorded)
            .map_err(|e| refused(format!("event {sequence} in the stream: {e}")))?;
        // A message published twice (once more after JetStream forgot its id) is the same
        // event again: skipped, as long as it is.
        if let Some(index) = sequence.checked_sub(1)
            && let Some(known) = hashes.get(usize::try_from(index).unwrap_or(usize::MAX))
        {
            if *known != event.hash {
                return Err(refused(format!(
                    "the stream holds two different events {sequence}: hashes {} and {}",
                    hex::encode(known),
                    hex::encode(event.hash)
                )));
            }
            repeats += 1;
            return Ok(());
        }
        let body = store::codec::canonical_body(&event)
            .map_err(|e| refused(format!("event {sequence} in the stream: {e}")))?;
        verifier
            .feed_body(&body, event.hash)
            .map_err(|finding| refused(finding.to_string()))?;
        restore.push(&event).map_err(|error| match error {
            RestoreError::Store(_) => anyhow::Error::new(error),
            replica => refused(replica.to_string()),
        })?;
        hashes.push(event.hash);
        Ok(())
    })
    .await?;
    let head = restore.head();
    let verified = verifier
        .finish(Some(head))
        .map_err(|finding| refused(finding.to_string()))?;
    Ok((verified, repeats))
}

/// Removes everything in `dir`, keeping the directory.
fn clear(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            std::fs::remove_dir_all(path)?;
        } else {
            std::fs::remove_file(path)?;
        }
    }
    Ok(())
}

/// The signed checkpoints the stream holds for `system`, one per sequence, with their bytes:
/// those that do not verify under the ledger's key are not the ledger's, and are left out
/// (said so); two different genuine ones at one sequence refuse the restore.
async fn published_checkpoints(
    js: &async_nats::jetstream::Context,
    stream_name: &str,
    system: &SystemId,
    key: &audit::checkpoint::LedgerKey,
) -> anyhow::Result<BTreeMap<u64, (Vec<u8>, SignedCheckpoint)>> {
    let mut published: BTreeMap<u64, (Vec<u8>, SignedCheckpoint)> = BTreeMap::new();
    let mut left_out = 0;
    let subject = bus::checkpoint_subject(system);
    bus::read_subject(js, stream_name, &subject, bus::Read::Whole, |message| {
        let bytes = message.payload.to_vec();
        let signed = match SignedCheckpoint::decode(&bytes) {
            Ok(signed) if &signed.checkpoint.system == system && signed.verify(key).is_ok() => {
                signed
            }
            Ok(signed) => {
                left_out += 1;
                eprintln!(
                    "warning: left out a checkpoint at {} in the stream: not signed by the \
                     ledger's key for {system}",
                    signed.checkpoint.sequence
                );
                return Ok(());
            }
            Err(error) => {
                left_out += 1;
                eprintln!(
                    "warning: left out a message on {subject} that is no checkpoint: {error}"
                );
                return Ok(());
            }
        };
        let sequence = signed.checkpoint.sequence;
        match published.get(&sequence) {
            Some((_, held)) if held.checkpoint != signed.checkpoint => {
                return Err(refuted(format!(
                    "the stream holds two different checkpoints signed by the ledger at \
                     {sequence}"
                )));
            }
            Some(_) => {}
            None => {
                published.insert(sequence, (bytes, signed));
            }
        }
        Ok(())
    })
    .await?;
    if left_out > 0 && published.is_empty() {
        return Err(refuted(format!(
            "none of the {left_out} checkpoints in the stream is signed by --ledger-key for \
             system {system}: is it this ledger's public key?"
        )));
    }
    Ok(published)
}

/// What the stream holds is not the ledger's log: the error the command ends with (exit
/// status 1, like an audit that finds something).
fn refused(finding: String) -> anyhow::Error {
    refuted(format!(
        "the stream's log does not verify, nothing was restored: {finding}"
    ))
}
