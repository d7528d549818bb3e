//! `icsctl store restore` end to end: a ledger whose disk is lost comes back from the
//! JetStream stream its relay published to — the same events to the same head hash, checked
//! against the signed checkpoints of the stream and of the regulator — and ledgerd starts on
//! it, knows its requests, and relays what comes next without publishing anything twice. The
//! bus runs with the shipped users, nkeys and permissions: the restore reads as `reader`.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use api::pb;
use e2e::{Ledgerd, Oversightd};

/// Checkpoints every 100 events (and 1 s after the last); JetStream forgets message ids after
/// a second, so anything the restored ledger published again would be stored twice.
const LEDGERD_ENV: [(&str, &str); 3] = [
    ("LEDGERD_CHECKPOINT_EVERY_EVENTS", "100"),
    ("LEDGERD_CHECKPOINT_EVERY_S", "1"),
    ("LEDGERD_DUPLICATE_WINDOW_S", "1"),
];

/// A command in an open year (the demo closes 2018/19), with a request id of our own.
fn agree_contract(code: &str) -> pb::AgreeContractRequest {
    pb::AgreeContractRequest {
        meta: Some(pb::CommandMeta {
            request_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_OID, code.as_bytes()).to_string(),
            expected_version: None,
            correlation_id: String::new(),
        }),
        contract: code.to_string(),
        commissioner: "KCCG".to_string(),
        provider: "KCHT".to_string(),
        year: 2019,
        model: Some(pb::PaymentModel {
            model: Some(pb::payment_model::Model::Block(pb::payment_model::Block {
                annual_value_pence: 1_200_000,
            })),
        }),
        description: format!("restore test {code}"),
    }
}

/// How many times the stream holds each event and each checkpoint of `kav`, by sequence
/// (read as the shipped `reader`).
async fn stream_counts(
    nats: &testkit::NatsServer,
) -> anyhow::Result<(BTreeMap<u64, usize>, BTreeMap<u64, usize>)> {
    let reader = e2e::nats_credentials(nats, "reader")?;
    let js = bus::jetstream(bus::connect_with(&nats.url(), "e2e-counts", &reader).await?);
    let (mut events, mut checkpoints) = (BTreeMap::new(), BTreeMap::new());
    bus::read_subject(
        &js,
        bus::STREAM_NAME,
        "ics.kav.>",
        bus::Read::HeadersOnly,
        |message| -> anyhow::Result<()> {
            let headers = &message.headers;
            let sequence: u64 = headers
                .get(bus::HEADER_SEQUENCE)
                .map(|s| s.as_str().parse())
                .transpose()?
                .unwrap_or(0);
            let checkpoint = headers
                .get(bus::HEADER_EVENT_TYPE)
                .is_some_and(|t| t.as_str() == bus::CHECKPOINT_EVENT_TYPE);
            let counts = if checkpoint {
                &mut checkpoints
            } else {
                &mut events
            };
            *counts.entry(sequence).or_default() += 1;
            Ok(())
        },
    )
    .await?;
    Ok((events, checkpoints))
}

/// `icsctl store restore` as the shipped `reader`.
fn restore(
    to: &Path,
    nats: &testkit::NatsServer,
    public_key: &str,
    oversightd: &Oversightd,
    extra: &[&str],
) -> anyhow::Result<(Option<i32>, String)> {
    let to = to.to_string_lossy();
    let oversight = oversightd.url();
    let nats_url = nats.url();
    let seed = nats.user("reader")?.seed_file.to_string_lossy().to_string();
    let mut args = vec![
        "--oversight-server",
        &oversight,
        "store",
        "restore",
        "--to",
        &to,
        "--nats-url",
        &nats_url,
        "--nats-nkey-seed-file",
        &seed,
        "--ledger-key",
        public_key,
    ];
    args.extend(extra);
    e2e::icsctl_exit(&args)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_comes_back_from_the_stream_and_the_ledger_carries_on() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions::shipped())?;
    let reader = e2e::nats_credentials(&nats, "reader")?;
    let work = tempfile::tempdir()?;
    let keys = work.path().join("keys");
    let (private, public) = e2e::ledger_checkpoint_keys(&keys)?;
    let mut env = LEDGERD_ENV.to_vec();
    env.push(("LEDGERD_CHECKPOINT_KEY", &private));
    let ledgerd_nats = nats.user("ledgerd")?.env("LEDGERD");
    env.extend(e2e::env_refs(&ledgerd_nats));
    let mut oversightd_env = nats.user("oversightd")?.env("OVERSIGHTD");
    oversightd_env.push((
        "OVERSIGHTD_CHECKPOINT_KEYS".to_string(),
        format!("{{kav=\"{public}\"}}"),
    ));

    let data = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start_with(&data, Some(&nats.url()), &env)?;
    let oversightd = Oversightd::start_with(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
        &e2e::env_refs(&oversightd_env),
    )?;
    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let mut client = ledgerd.client().await?;
    let agreed = client
        .agree_contract(agree_contract("R1"))
        .await?
        .into_inner();
    let head = e2e::head(&mut client).await?;
    let before = e2e::read_all(&mut client).await?;
    assert_eq!(head.sequence, agreed.last_sequence);

    // Everything, checkpoints included, reaches the stream; then the disk is lost.
    e2e::wait_for_relay_as(&nats.url(), &reader, head.sequence, Duration::from_secs(30)).await?;
    let started = std::time::Instant::now();
    while stream_counts(&nats).await?.1.keys().next_back() != Some(&head.sequence) {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no last checkpoint"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = ledgerd.terminate()?;
    assert!(status.success(), "ledgerd stopped with {status}");
    std::fs::remove_dir_all(&data)?;

    // A wrong key restores nothing.
    let (other_keys, other) = (work.path().join("other"), work.path().join("elsewhere"));
    let (ok, out) = e2e::icsctl_outcome(&[
        "keys",
        "generate",
        "--dir",
        &other_keys.to_string_lossy(),
        "--name",
        "other",
    ])?;
    assert!(ok, "{out}");
    let wrong = other_keys
        .join("other.pub.pem")
        .to_string_lossy()
        .to_string();
    let (code, out) = restore(&other, &nats, &wrong, &oversightd, &[])?;
    assert_eq!(code, Some(1), "{out}");
    assert!(
        !other.join("db").exists(),
        "a refused restore wrote {other:?}"
    );

    let (code, out) = restore(&data, &nats, &public, &oversightd, &[])?;
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains(&format!("{}@{}", head.sequence, hex::encode(&head.hash))),
        "{out}"
    );
    assert!(out.contains("from the regulator"), "{out}");
    // Never over a store that is there.
    let (code, out) = restore(&data, &nats, &public, &oversightd, &[])?;
    assert_eq!(code, Some(2), "{out}");
    assert!(out.contains("not empty"), "{out}");

    // ledgerd starts on it (after JetStream forgot every id it published): the same log,
    // field for field, to the same head.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    ledgerd.restart()?;
    let mut client = ledgerd.client().await?;
    let restored = e2e::head(&mut client).await?;
    assert_eq!(
        (restored.sequence, &restored.hash),
        (head.sequence, &head.hash)
    );
    assert_eq!(e2e::read_all(&mut client).await?, before);

    // A resend of a command recorded before the loss is a duplicate, and writes nothing.
    let resent = client
        .agree_contract(agree_contract("R1"))
        .await?
        .into_inner();
    assert!(resent.duplicate, "{resent:?}");
    assert_eq!(resent.last_sequence, agreed.last_sequence);

    // What comes next is relayed once, and nothing published before goes again.
    let next = client
        .agree_contract(agree_contract("R2"))
        .await?
        .into_inner();
    assert_eq!(next.last_sequence, head.sequence + 1);
    e2e::wait_for_relay_as(
        &nats.url(),
        &reader,
        next.last_sequence,
        Duration::from_secs(30),
    )
    .await?;
    tokio::time::sleep(Duration::from_secs(2)).await; // a checkpoint is due 1 s after the last
    let (events, checkpoints) = stream_counts(&nats).await?;
    assert_eq!(
        events.keys().copied().collect::<Vec<_>>(),
        (1..=next.last_sequence).collect::<Vec<_>>()
    );
    assert!(
        events.values().all(|n| *n == 1),
        "events published twice: {:?}",
        events.iter().filter(|(_, n)| **n > 1).collect::<Vec<_>>()
    );
    assert!(
        checkpoints.values().all(|n| *n == 1),
        "checkpoints published twice: {checkpoints:?}"
    );
    assert_eq!(
        checkpoints.keys().next_back(),
        Some(&next.last_sequence),
        "the restored ledger signs and publishes checkpoints again"
    );

    // And an auditor verifies the restored ledger against the regulator.
    let (code, out) = e2e::icsctl_exit(&[
        "--server",
        &ledgerd.url(),
        "--oversight-server",
        &oversightd.url(),
        "audit",
        "verify",
        "--quiet",
        "--ledger-key",
        &public,
    ])?;
    assert_eq!(code, Some(0), "{out}");
    Ok(())
}
