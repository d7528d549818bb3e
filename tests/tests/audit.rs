//! Audit end to end, with the real `ledgerd`, `oversightd` and `icsctl` binaries and a real
//! nats-server: ledgerd signs checkpoints and publishes them, the regulator's oversightd
//! keeps them, and `icsctl audit verify` / `prove` / `checkpoints` check the ledger against
//! them — online over gRPC and offline from a stopped ledgerd's sled directory, which is
//! then copied into the format before request pages (3) and upgraded back (`icsctl store upgrade`),
//! tampered with (one byte, a deleted event, two swapped events) and rewritten wholesale into
//! a new chain.

use std::path::Path;
use std::time::Duration;

use api::oversight_pb as opb;
use e2e::{Ledgerd, Oversightd};

/// Checkpoints every 100 events (and 1 s after the last): the demo's 383 events give 100,
/// 200, 300 and 383.
const CHECKPOINT_ENV: [(&str, &str); 2] = [
    ("LEDGERD_CHECKPOINT_EVERY_EVENTS", "100"),
    ("LEDGERD_CHECKPOINT_EVERY_S", "1"),
];

/// A copy of the stopped ledger's data, changed by `change` (and flushed).
fn tampered_copy(
    original: &Path,
    to: &Path,
    change: impl FnOnce(&store::RawLog) -> anyhow::Result<()>,
) -> anyhow::Result<()> {
    store::copy::copy_tree(original, to)?;
    let log = store::RawLog::open(to)?;
    change(&log)?;
    log.flush()?;
    Ok(())
}

fn stored(log: &store::RawLog, sequence: u64) -> anyhow::Result<Vec<u8>> {
    let value = log.value(sequence)?;
    Ok(value
        .ok_or_else(|| anyhow::anyhow!("event {sequence} is not stored"))?
        .to_vec())
}

async fn regulator_checkpoints(
    oversightd: &Oversightd,
) -> anyhow::Result<Vec<api::audit_pb::Checkpoint>> {
    Ok(oversightd
        .client()
        .await?
        .list_checkpoints(opb::ListSystemCheckpointsRequest {
            system: "kav".to_string(),
            from_sequence: 0,
            limit: 0,
        })
        .await?
        .into_inner()
        .checkpoints)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_auditor_verifies_the_ledger_and_catches_every_tampering() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let keys = work.path().join("keys");
    let (private, public) = e2e::ledger_checkpoint_keys(&keys)?;
    let mut env = CHECKPOINT_ENV.to_vec();
    env.push(("LEDGERD_CHECKPOINT_KEY", &private));

    let data = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start_with(&data, Some(&nats.url()), &env)?;
    let oversightd = Oversightd::start_with(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
        &[(
            "OVERSIGHTD_CHECKPOINT_KEYS",
            &format!("{{kav=\"{public}\"}}"),
        )],
    )?;
    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let head = e2e::head(&mut ledgerd.client().await?).await?;
    assert_eq!(head.sequence, 383);

    // The regulator receives every checkpoint, the last one covering the head.
    let started = std::time::Instant::now();
    let held = loop {
        let held = regulator_checkpoints(&oversightd).await?;
        if held.last().is_some_and(|c| c.sequence == head.sequence) {
            break held;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the regulator holds {held:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let sequences: Vec<u64> = held.iter().map(|c| c.sequence).collect();
    assert_eq!(sequences, [100, 200, 300, 383]);
    assert_eq!(held[3].chain_hash, head.hash);

    let ledgerd_url = ledgerd.url();
    let verify = |extra: &[&str]| {
        let mut args = vec![
            "--server".to_string(),
            ledgerd_url.clone(),
            "--oversight-server".to_string(),
            oversightd.url(),
            "audit".to_string(),
            "verify".to_string(),
            "--quiet".to_string(),
            "--ledger-key".to_string(),
            public.clone(),
        ];
        args.extend(extra.iter().map(|s| s.to_string()));
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        e2e::icsctl_exit(&args)
    };

    // Online: the whole log over gRPC against the ledger's and the regulator's checkpoints.
    let (code, out) = verify(&[])?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified 383 events"), "{out}");
    assert!(
        out.contains("4 from the ledger, 4 from the regulator"),
        "{out}"
    );
    assert!(out.contains(&hex::encode(&head.hash)), "{out}");

    // An inclusion proof, checked against the regulator's checkpoint.
    let (ok, out) = e2e::icsctl_outcome(&[
        "--server",
        &ledgerd.url(),
        "--oversight-server",
        &oversightd.url(),
        "audit",
        "prove",
        "--seq",
        "42",
        "--ledger-key",
        &public,
    ])?;
    assert!(ok, "{out}");
    assert!(
        out.contains("event 42 (") && out.contains("is in the log"),
        "{out}"
    );
    assert!(out.contains("tree of 383 events"), "{out}");
    let (ok, out) = e2e::icsctl_outcome(&[
        "--server",
        &ledgerd.url(),
        "--oversight-server",
        &oversightd.url(),
        "audit",
        "prove",
        "--seq",
        "384",
        "--ledger-key",
        &public,
    ])?;
    assert!(
        !ok,
        "a sequence beyond every checkpoint is not proven: {out}"
    );

    // Checkpoints under another key do not verify.
    let other = work.path().join("other");
    let other_arg = other.to_string_lossy().to_string();
    e2e::icsctl_outcome(&[
        "keys",
        "generate",
        "--dir",
        &other_arg,
        "--name",
        "ledger-checkpoint",
    ])?;
    let other_public = other
        .join("ledger-checkpoint.pub.pem")
        .to_string_lossy()
        .to_string();
    let (ok, out) = e2e::icsctl_outcome(&[
        "--server",
        &ledgerd.url(),
        "audit",
        "checkpoints",
        "--ledger-key",
        &other_public,
    ])?;
    assert!(!ok && out.contains("INVALID"), "{out}");
    let (ok, out) = e2e::icsctl_outcome(&[
        "--server",
        &ledgerd.url(),
        "audit",
        "checkpoints",
        "--ledger-key",
        &public,
    ])?;
    assert!(ok && out.contains("4 checkpoints from the ledger"), "{out}");

    // Offline: the stopped ledger's sled directory, as it is…
    ledgerd.terminate()?;
    let data_arg = data.to_string_lossy().to_string();
    let (code, out) = verify(&["--data-dir", &data_arg])?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified 383 events"), "{out}");

    // …as the build before this one kept it (format 3: a key per idempotency record): refused
    // with the way out, which is `icsctl store upgrade`; the upgraded copy verifies against the
    // same checkpoints.
    let old = work.path().join("format-3");
    store::upgrade::write_format_3_copy(&data, &old)?;
    let old_arg = old.to_string_lossy().to_string();
    let (code, out) = verify(&["--data-dir", &old_arg])?;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("icsctl store upgrade"), "{out}");
    let upgraded = work.path().join("upgraded");
    let upgraded_arg = upgraded.to_string_lossy().to_string();
    let (ok, out) = e2e::icsctl_outcome(&[
        "store",
        "upgrade",
        "--from",
        &old_arg,
        "--to",
        &upgraded_arg,
    ])?;
    assert!(ok && out.contains("upgraded 383 events"), "{out}");
    let (code, out) = verify(&["--data-dir", &upgraded_arg])?;
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("verified 383 events"), "{out}");

    // …and tampered with: each names the first sequence that does not verify.
    let byte = work.path().join("byte");
    tampered_copy(&data, &byte, |log| {
        let mut value = stored(log, 100)?;
        let middle = value.len() / 2;
        value[middle] ^= 0x20;
        log.tamper_replace(100, &value)?;
        Ok(())
    })?;
    let deleted = work.path().join("deleted");
    tampered_copy(&data, &deleted, |log| {
        log.tamper_remove(200)?;
        Ok(())
    })?;
    let swapped = work.path().join("swapped");
    tampered_copy(&data, &swapped, |log| {
        let (a, b) = (stored(log, 50)?, stored(log, 51)?);
        log.tamper_replace(50, &b)?;
        log.tamper_replace(51, &a)?;
        Ok(())
    })?;
    for (dir, sequence) in [(&byte, 100), (&deleted, 200), (&swapped, 50)] {
        let dir_arg = dir.to_string_lossy().to_string();
        let (code, out) = verify(&["--data-dir", &dir_arg, "--no-regulator"])?;
        assert_eq!(code, Some(1), "{} must be refuted: {out}", dir.display());
        assert!(
            out.contains(&format!("verification FAILED at event {sequence}:")),
            "{}: {out}",
            dir.display()
        );
    }

    // A ledger rewritten wholesale: the same demo posted again into a new store with the
    // same key gives a new, self-consistent chain with validly signed checkpoints of its own.
    let rewritten = work.path().join("rewritten");
    let mut forger = Ledgerd::start_with(&rewritten, None, &env)?;
    e2e::icsctl(&forger.url(), &["load", "--quiet", &scenario])?;
    forger.terminate()?;
    let rewritten_arg = rewritten.to_string_lossy().to_string();
    let (code, out) = verify(&["--data-dir", &rewritten_arg, "--no-regulator"])?;
    assert_eq!(code, Some(0), "alone, the rewritten ledger verifies: {out}");
    assert!(out.contains("NOT checked against the regulator"), "{out}");
    // The checkpoints the regulator holds catch it at the first one.
    let (code, out) = verify(&["--data-dir", &rewritten_arg])?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("verification FAILED at event 100:") && out.contains("the regulator"),
        "{out}"
    );
    Ok(())
}
