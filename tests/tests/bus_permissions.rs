//! The real `ledgerd` binary under the shipped bus permissions (its own nkey; it may create
//! the stream but never change it) meeting a stream it would once have updated: one created
//! without atomic batch publishing and with another duplicate window. ledgerd uses it as it
//! is — says what differs in its log — and relays the whole demo, backlog included, one
//! message at a time: every event once, in order.

use std::time::Duration;

use e2e::Ledgerd;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_relays_to_a_stream_it_may_not_change() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start_with(testkit::NatsOptions::shipped())?;
    let ledgerd_user = e2e::nats_credentials(&nats, "ledgerd")?;
    let reader = e2e::nats_credentials(&nats, "reader")?;

    // The stream as an older deployment made it (created, as ledgerd may).
    let js = bus::jetstream(bus::connect_with(&nats.url(), "e2e-setup", &ledgerd_user).await?);
    let old = async_nats::jetstream::stream::Config {
        allow_atomic_publish: false,
        duplicate_window: Duration::from_secs(30),
        ..bus::StreamSettings::default().to_config()
    };
    js.create_stream(old).await?;

    let work = tempfile::tempdir()?;
    let env = nats.user("ledgerd")?.env("LEDGERD");
    let ledgerd = Ledgerd::start_with(
        &work.path().join("ledgerd"),
        Some(&nats.url()),
        &e2e::env_refs(&env),
    )?;
    // The demo in one bulk call: pages of the relay's window, far over `relay_batch_from`.
    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let head = e2e::head(&mut ledgerd.client().await?).await?;
    anyhow::ensure!(head.sequence > 100, "the demo is {} events", head.sequence);
    e2e::wait_for_relay_as(&nats.url(), &reader, head.sequence, Duration::from_secs(60))
        .await
        .map_err(|e| e.context(ledgerd.log_tail()))?;

    let js = bus::jetstream(bus::connect_with(&nats.url(), "e2e-read", &reader).await?);
    let mut sequences = Vec::new();
    bus::scan_system(
        &js,
        bus::STREAM_NAME,
        &domain::SystemId::new("kav").map_err(|e| anyhow::anyhow!("{e}"))?,
        |headers| -> anyhow::Result<()> {
            sequences.push(headers.sequence);
            Ok(())
        },
    )
    .await?;
    anyhow::ensure!(
        sequences == (1..=head.sequence).collect::<Vec<_>>(),
        "the stream holds {} events, not 1..={} once each in order",
        sequences.len(),
        head.sequence
    );
    let info = js.get_stream(bus::STREAM_NAME).await?.info().await?.clone();
    anyhow::ensure!(
        !info.config.allow_atomic_publish
            && info.config.duplicate_window == Duration::from_secs(30),
        "ledgerd changed the stream: {:?}",
        info.config
    );
    let log = ledgerd.log_tail();
    anyhow::ensure!(
        log.contains("allow_atomic_publish: is false, configured true")
            && log.contains("duplicate_window: is 30s, configured 120s"),
        "ledgerd did not say what differs:\n{log}"
    );
    anyhow::ensure!(
        !nats.log_tail().contains("Violation"),
        "ledgerd tried what it may not:\n{}",
        nats.log_tail()
    );
    Ok(())
}
