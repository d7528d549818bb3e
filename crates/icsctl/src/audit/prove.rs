//! `icsctl audit prove` and `icsctl audit checkpoints`.

use anyhow::Context;
use api::{audit_pb, pb};
use comfy_table::Table;

use super::time_text as time;
use super::{AuditArgs, audit_client, ledger_checkpoints, regulator_checkpoints};
use crate::Global;

/// Proves the event at `seq` is in the log the regulator's latest checkpoint covers.
pub async fn run(global: &Global, args: &AuditArgs, seq: u64) -> anyhow::Result<()> {
    let key = args.key()?;
    let system = args.system()?;
    if seq == 0 {
        anyhow::bail!("--seq: sequences start at 1");
    }
    // The checkpoint comes from the regulator's side, not from ledgerd.
    let checkpoints = regulator_checkpoints(global, args).await?;
    let checkpoint = checkpoints
        .iter()
        .rev()
        .find(|c| c.checkpoint.sequence >= seq && c.checkpoint.system == system)
        .with_context(|| {
            format!("the regulator holds no checkpoint of {system} covering event {seq} yet")
        })?;
    checkpoint.verify(&key).map_err(|error| {
        super::refuted(format!(
            "the regulator's checkpoint at {} does not verify under {}: {error}",
            checkpoint.checkpoint.sequence,
            args.ledger_key.display()
        ))
    })?;
    let c = &checkpoint.checkpoint;

    let mut audit = audit_client(global).await?;
    let status = crate::output::status_error;
    let proof = audit
        .get_inclusion_proof(crate::request(
            global,
            audit_pb::InclusionProofRequest {
                sequence: seq,
                tree_size: c.sequence,
            },
        )?)
        .await
        .map_err(status)?
        .into_inner();
    // The event as ledgerd stores it, its hash recomputed from those bytes rather than taken
    // on trust — the same bytes `audit verify` hashes.
    let mut ledger = crate::connect(global).await?;
    let page = ledger
        .read_stored(crate::request(
            global,
            pb::ReadStoredRequest {
                from_sequence: seq,
                limit: 1,
            },
        )?)
        .await
        .map_err(status)?
        .into_inner()
        .message()
        .await
        .map_err(status)?;
    let value = page
        .and_then(|page| page.events.into_iter().next())
        .with_context(|| format!("ledgerd sent no event {seq}"))?;
    let record = match store::codec::decode_value::<domain::Event>(&value) {
        Ok(record) => record,
        Err(store::codec::CodecError::Hash { stored, computed }) => {
            return Err(super::refuted(format!(
                "event {seq} as ledgerd stores it hashes to {}, not the {} stored with it",
                hex::encode(computed),
                hex::encode(stored)
            )));
        }
        Err(error) => return Err(error).context(format!("event {seq} as ledgerd stores it")),
    };
    let content_hash = record.hash;
    if record.sequence != seq || content_hash.as_slice() != proof.chain_hash.as_slice() {
        return Err(super::refuted(format!(
            "event {seq} as ledgerd stores it hashes to {}, but its proof is for {}",
            hex::encode(content_hash),
            hex::encode(&proof.chain_hash)
        )));
    }
    let path: Vec<merkle::Hash> = proof
        .path
        .iter()
        .map(|h| h.as_slice().try_into())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow::anyhow!("a proof hash is not 32 bytes"))?;
    merkle::verify_inclusion(
        &audit::leaf(&content_hash),
        seq - 1,
        c.sequence,
        &path,
        &c.merkle_root,
    )
    .map_err(|error| {
        super::refuted(format!(
            "event {seq} is NOT proven to be in the log of {} events the regulator's checkpoint covers: {error}",
            c.sequence
        ))
    })?;
    if global.json {
        let json = serde_json::json!({
            "proven": true,
            "sequence": seq,
            "chain_hash": hex::encode(content_hash),
            "event_type": record.event_type,
            "stream": record.stream,
            "actor": record.actor,
            "recorded_at": time(record.recorded_at_us),
            "tree_size": c.sequence,
            "merkle_root": hex::encode(c.merkle_root),
            "checkpoint_signed_at": time(c.signed_at_us),
            "path": proof.path.iter().map(hex::encode).collect::<Vec<_>>(),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!(
        "event {seq} ({} on {}, by {}, recorded {}) is in the log",
        record.event_type,
        record.stream,
        record.actor,
        time(record.recorded_at_us)
    );
    println!("  chain hash   {}", hex::encode(content_hash));
    println!(
        "  proven by a {}-hash audit path into the tree of {} events, root {}",
        path.len(),
        c.sequence,
        hex::encode(c.merkle_root)
    );
    println!(
        "  that root is signed by the ledger's key (checkpoint of {}) and held by the regulator",
        time(c.signed_at_us)
    );
    Ok(())
}

/// Lists the ledger's or the regulator's checkpoints, each with its signature checked.
pub async fn list(global: &Global, args: &AuditArgs, regulator: bool) -> anyhow::Result<()> {
    let key = args.key()?;
    let checkpoints = if regulator {
        regulator_checkpoints(global, args).await?
    } else {
        ledger_checkpoints(global).await?
    };
    if global.json {
        let rows: Vec<_> = checkpoints
            .iter()
            .map(|s| {
                let mut json = serde_json::to_value(s.to_proto()).unwrap_or_default();
                json["signature_valid"] = serde_json::Value::Bool(s.verify(&key).is_ok());
                json
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(comfy_table::presets::UTF8_FULL_CONDENSED);
    table.set_header([
        "sequence",
        "signed at",
        "chain hash",
        "Merkle root",
        "signature",
    ]);
    let mut bad = 0;
    for s in &checkpoints {
        let valid = s.verify(&key).is_ok();
        if !valid {
            bad += 1;
        }
        let c = &s.checkpoint;
        table.add_row([
            c.sequence.to_string(),
            time(c.signed_at_us),
            hex::encode(c.chain_hash),
            hex::encode(c.merkle_root),
            if valid { "valid" } else { "INVALID" }.to_string(),
        ]);
    }
    println!("{table}");
    println!(
        "{} checkpoints from {}",
        checkpoints.len(),
        if regulator {
            "the regulator"
        } else {
            "the ledger"
        }
    );
    if bad > 0 {
        return Err(super::refuted(format!(
            "{bad} checkpoint signatures do not verify under {}",
            args.ledger_key.display()
        )));
    }
    Ok(())
}
