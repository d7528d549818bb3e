//! `icsctl audit verify`.

use std::ops::ControlFlow;
use std::path::Path;

use anyhow::Context;
use api::pb;
use audit::{Finding, LogVerifier, Source, Verified};
use indicatif::{ProgressBar, ProgressStyle};

use super::ahead::PAGE_EVENTS;
use super::{AuditArgs, ledger_checkpoints, regulator_unless_skipped, tagged};
use crate::Global;

pub async fn run(
    global: &Global,
    args: &AuditArgs,
    data_dir: Option<&Path>,
    quiet: bool,
) -> anyhow::Result<()> {
    let system = args.system()?;
    let key = args.key()?;
    // The regulator's checkpoints are fetched BEFORE ledgerd is asked for its head: the
    // regulator only receives a checkpoint after ledgerd committed what it covers, so none can
    // lie beyond an honest head read afterwards. Fetched after, a live ledger's newer
    // checkpoint would look like a truncated log.
    let regulator = regulator_unless_skipped(global, args).await?;
    let outcome = match data_dir {
        Some(dir) => offline(&system, &key, dir, regulator.clone(), quiet)?,
        None => online(global, &system, &key, regulator.clone(), quiet).await?,
    };
    report(global, &outcome, regulator.is_some())
}

/// Either what verified or the first finding.
pub type Outcome = Result<Verified, Finding>;

fn report(global: &Global, outcome: &Outcome, asked_regulator: bool) -> anyhow::Result<()> {
    if global.json {
        let json = match outcome {
            Ok(v) => serde_json::json!({
                "verified": true,
                "events": v.events,
                "chain_hash": hex::encode(v.hash),
                "merkle_root": hex::encode(v.root),
                "checkpoints_ledger": v.checkpoints.get(&Source::Ledger).copied().unwrap_or(0),
                "checkpoints_regulator": v.checkpoints.get(&Source::Regulator).copied().unwrap_or(0),
                "regulator_consulted": asked_regulator,
            }),
            Err(finding) => serde_json::json!({
                "verified": false,
                "sequence": finding.sequence(),
                "finding": finding.to_string(),
            }),
        };
        println!("{}", serde_json::to_string_pretty(&json)?);
    }
    match outcome {
        Ok(v) => {
            if !global.json {
                println!("verified {} events", v.events);
                println!("  chain hash   {}", hex::encode(v.hash));
                println!("  Merkle root  {}", hex::encode(v.root));
                println!(
                    "  checkpoints  {} from the ledger, {} from the regulator — signatures, chain hashes and roots all match",
                    v.checkpoints.get(&Source::Ledger).copied().unwrap_or(0),
                    v.checkpoints.get(&Source::Regulator).copied().unwrap_or(0)
                );
                if !asked_regulator {
                    println!(
                        "  NOT checked against the regulator's checkpoints (--no-regulator): a ledger rewritten with re-signed checkpoints would pass"
                    );
                }
            }
            Ok(())
        }
        Err(finding) => match finding.sequence() {
            Some(sequence) => Err(super::refuted(format!(
                "verification FAILED at event {sequence}: {finding}"
            ))),
            None => Err(super::refuted(format!("verification FAILED: {finding}"))),
        },
    }
}

fn bar(quiet: bool, len: u64) -> ProgressBar {
    if quiet {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(len);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} events {per_sec}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    bar
}

/// Updating the bar per event would cost more than verifying it.
const BAR_STEP: u64 = 4_096;

/// A stopped ledgerd's sled directory, read as it is.
pub fn offline(
    system: &domain::SystemId,
    key: &audit::checkpoint::LedgerKey,
    dir: &Path,
    regulator: Option<Vec<audit::SignedCheckpoint>>,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    // A private copy: sled writes to a directory it opens, and this one is evidence.
    let log = store::RawLog::open_copy(dir)
        .with_context(|| format!("opening the event store in {}", dir.display()))?;
    let anchor = log.anchor()?;
    let mut own = Vec::new();
    for (sequence, bytes) in log.checkpoints()? {
        match audit::SignedCheckpoint::decode(&bytes) {
            Ok(checkpoint) if checkpoint.checkpoint.sequence == sequence => own.push(checkpoint),
            Ok(checkpoint) => {
                return Ok(Err(Finding::Checkpoint {
                    from: Source::Ledger,
                    sequence,
                    reason: format!(
                        "stored under {sequence} but says {}",
                        checkpoint.checkpoint.sequence
                    ),
                }));
            }
            Err(error) => {
                return Ok(Err(Finding::Checkpoint {
                    from: Source::Ledger,
                    sequence,
                    reason: error.to_string(),
                }));
            }
        }
    }
    let checkpoints =
        tagged(Source::Ledger, own).chain(tagged(Source::Regulator, regulator.unwrap_or_default()));
    let mut verifier = match LogVerifier::new(system, key, checkpoints) {
        Ok(verifier) => verifier,
        Err(finding) => return Ok(Err(finding)),
    };
    let recorded_head = log.recorded_head()?;
    // The bar's length is what the store says it holds, not a count (a count is a whole scan
    // of its own); only the verification below trusts nothing.
    let bar = bar(quiet, recorded_head.map_or(0, |head| head.sequence));
    let read = || pages(log.events());
    let flow = super::ahead::read_ahead(read, |page| {
        for (sequence, value) in page {
            if let Err(finding) = verifier.feed_stored(sequence, &value) {
                return Ok(ControlFlow::Break(finding));
            }
            if let Some(finding) =
                anchor.and_then(|anchor| differs_at_anchor(anchor, sequence, &value))
            {
                return Ok(ControlFlow::Break(finding));
            }
            if sequence % BAR_STEP == 0 {
                bar.set_position(sequence);
            }
        }
        Ok(ControlFlow::Continue(()))
    })?;
    if let ControlFlow::Break(finding) = flow {
        bar.abandon();
        return Ok(Err(finding));
    }
    bar.finish_and_clear();
    let verified = verifier.finish(recorded_head);
    match (verified, anchor) {
        (Ok(verified), Some(anchor)) if verified.events < anchor.sequence => {
            Ok(Err(Finding::Anchor {
                sequence: verified.events + 1,
                reason: format!(
                    "missing — the log ends at {}, but its store's anchor says events up to {} were recorded",
                    verified.events, anchor.sequence
                ),
            }))
        }
        (verified, _) => Ok(verified),
    }
}

/// A finding if `sequence` is the anchor's and its stored hash is not the anchored one.
fn differs_at_anchor(anchor: store::Head, sequence: u64, value: &[u8]) -> Option<Finding> {
    if sequence != anchor.sequence {
        return None;
    }
    let hash = store::codec::split_value(value)
        .map(|(_, hash)| hash)
        .ok()?;
    (hash != anchor.hash).then(|| Finding::Anchor {
        sequence,
        reason: format!(
            "the log holds an event with hash {} here, but its store's anchor recorded {}",
            hex::encode(hash),
            hex::encode(anchor.hash)
        ),
    })
}

/// Stored events in pages of [`PAGE_EVENTS`]; a read that fails ends the page before it, and
/// comes next.
fn pages<T>(
    mut events: impl Iterator<Item = Result<T, store::StoreError>>,
) -> impl Iterator<Item = anyhow::Result<Vec<T>>> {
    let mut failed = None;
    std::iter::from_fn(move || {
        if let Some(error) = failed.take() {
            return Some(Err(error));
        }
        let mut page = Vec::with_capacity(PAGE_EVENTS);
        while page.len() < PAGE_EVENTS {
            match events.next() {
                None => break,
                Some(Ok(event)) => page.push(event),
                Some(Err(error)) => {
                    failed = Some(anyhow::Error::new(error).context("reading the store"));
                    break;
                }
            }
        }
        if page.is_empty() {
            failed.take().map(Err)
        } else {
            Some(Ok(page))
        }
    })
}

/// ledgerd's log over gRPC, up to the head it reports when asked.
pub async fn online(
    global: &Global,
    system: &domain::SystemId,
    key: &audit::checkpoint::LedgerKey,
    regulator: Option<Vec<audit::SignedCheckpoint>>,
    quiet: bool,
) -> anyhow::Result<Outcome> {
    let mut ledger = crate::connect(global).await?;
    let status = crate::output::status_error;
    let head = ledger
        .head(crate::request(global, pb::HeadRequest {})?)
        .await
        .map_err(status)?
        .into_inner();
    let head = store::Head {
        sequence: head.sequence,
        hash: head
            .hash
            .as_slice()
            .try_into()
            .map_err(|_| anyhow::anyhow!("ledgerd's head hash is not 32 bytes"))?,
    };
    let own: Vec<_> = ledger_checkpoints(global)
        .await?
        .into_iter()
        .filter(|c| c.checkpoint.sequence <= head.sequence)
        .collect();
    let checkpoints =
        tagged(Source::Ledger, own).chain(tagged(Source::Regulator, regulator.unwrap_or_default()));
    let mut verifier = match LogVerifier::new(system, key, checkpoints) {
        Ok(verifier) => verifier,
        Err(finding) => return Ok(Err(finding)),
    };
    let bar = bar(quiet, head.sequence);
    if head.sequence > 0 {
        // The stored bytes themselves (`ReadStored`): each hash recomputed from what is on
        // ledgerd's disk, as offline, with nothing decoded and re-encoded on the way.
        let mut pages = ledger
            .read_stored(crate::request(
                global,
                pb::ReadStoredRequest {
                    from_sequence: 1,
                    limit: head.sequence,
                },
            )?)
            .await
            .map_err(status)?
            .into_inner();
        while let Some(page) = pages.message().await.map_err(status)? {
            for (sequence, value) in (page.first_sequence..).zip(&page.events) {
                if let Err(finding) = verifier.feed_stored(sequence, value) {
                    bar.abandon();
                    return Ok(Err(finding));
                }
                if sequence % BAR_STEP == 0 {
                    bar.set_position(sequence);
                }
            }
        }
    }
    bar.finish_and_clear();
    let verified = match verifier.finish(Some(head)) {
        Ok(verified) => verified,
        Err(finding) => return Ok(Err(finding)),
    };
    // ledgerd's own Merkle tree must agree with the one rebuilt here.
    if verified.events > 0 {
        let mut audit = super::audit_client(global).await?;
        let proof = audit
            .get_consistency_proof(crate::request(
                global,
                api::audit_pb::ConsistencyProofRequest {
                    old_size: verified.events,
                    new_size: 0,
                },
            )?)
            .await
            .map_err(status)?
            .into_inner();
        if proof.old_root != verified.root {
            return Err(super::refuted(format!(
                "ledgerd's Merkle root of its first {} events is {}, but the log it sent gives {}",
                verified.events,
                hex::encode(&proof.old_root),
                hex::encode(verified.root)
            )));
        }
    }
    Ok(Ok(verified))
}
