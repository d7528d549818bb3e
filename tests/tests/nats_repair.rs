//! NATS is a replica, repaired from the record; readers never wedge. Real `ledgerd`,
//! `positiond`, `oversightd` and `icsctl` binaries and a real nats-server:
//!
//! - nats-server loses its whole JetStream store (stopped, store directory deleted, started
//!   again on the same port): the relay publishes the whole log again, in order, once each;
//!   positiond creates its consumer again, catches up, follows what is recorded after, says
//!   what was wrong in its status meanwhile, and logs it a bounded number of times.
//! - a log holding an event the readers cannot fold (written straight into the store, as an
//!   older ledgerd that accepted it would have): positiond and oversightd keep serving the
//!   projection as of the event before, report the stuck sequence and why in their status
//!   and health, and come back the same after a restart.
//! - a store that comes back behind what the stream holds (here: empty): ledgerd refuses to
//!   start, naming what the stream holds and what an operator can do.

use std::path::Path;
use std::time::Duration;

use api::pb;
use api::position_pb as ppb;
use e2e::{Ledgerd, Oversightd, Positiond};
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const CATCH_UP: Duration = Duration::from_secs(40);

/// positiond's status, once `wanted` holds.
async fn status_when(
    positiond: &Positiond,
    what: &str,
    wanted: impl Fn(&ppb::StatusReply) -> bool,
) -> anyhow::Result<ppb::StatusReply> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(mut client) = positiond.client().await
            && let Ok(status) = client.get_status(ppb::StatusRequest {}).await
            && wanted(status.get_ref())
        {
            return Ok(status.into_inner());
        }
        if started.elapsed() > CATCH_UP {
            anyhow::bail!(
                "positiond's status never {what}; its log:\n{}",
                positiond.log_tail()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Waits until gRPC health of `service` at `url` is `wanted` (it follows the status a moment
/// later).
async fn health_becomes(url: &str, service: &str, wanted: ServingStatus) -> anyhow::Result<()> {
    let started = std::time::Instant::now();
    loop {
        let channel = Channel::from_shared(url.to_string())?.connect().await?;
        let status = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?
            .into_inner()
            .status();
        if status == wanted {
            return Ok(());
        }
        if started.elapsed() > Duration::from_secs(5) {
            anyhow::bail!("health of {service} is {status:?}, not {wanted:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Lines of positiond's logs (every start) that tell of trouble with its consumer.
fn consumer_trouble_lines(positiond_dir: &Path) -> anyhow::Result<usize> {
    let mut lines = 0;
    for entry in std::fs::read_dir(positiond_dir.with_extension("logs"))? {
        let text = std::fs::read_to_string(entry?.path())?;
        lines += text
            .lines()
            .filter(|line| {
                ["trouble", "503", "pull failed", "message error", "consumer"]
                    .iter()
                    .any(|word| line.contains(word))
            })
            .count();
    }
    Ok(lines)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wiped_jetstream_is_republished_from_the_ledger_and_positiond_follows_again()
-> anyhow::Result<()> {
    let mut nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;
    let positiond_dir = work.path().join("positiond");
    let positiond = Positiond::start(&positiond_dir, &nats.url(), &ledgerd.url(), "positiond")?;
    let (first, rest) = e2e::split_demo_scenario(work.path(), 250)?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &first.to_string_lossy()],
    )?;
    let mut ledger = ledgerd.client().await?;
    let before = e2e::head(&mut ledger).await?;
    e2e::wait_for_relay(&nats.url(), before.sequence, CATCH_UP).await?;
    positiond.wait_for(before.sequence, CATCH_UP).await?;

    // NATS goes, and its store with it. positiond says so while it lasts.
    nats.stop()?;
    let troubled = status_when(&positiond, "reported the consumer's trouble", |s| {
        !s.consumer_error.is_empty()
    })
    .await?;
    assert!(troubled.consumer_error_since_us > 0);
    assert_eq!(troubled.stuck_sequence, 0);
    health_becomes(
        &positiond.url(),
        "ics.position.v1.PositionService",
        ServingStatus::NotServing,
    )
    .await?;
    std::fs::remove_dir_all(nats.store_dir())?;
    std::fs::create_dir_all(nats.store_dir())?;
    // Down a few seconds: long enough for a consumer that retries without pause to log
    // thousands of lines.
    tokio::time::sleep(Duration::from_secs(3)).await;
    nats.restart()?;

    // Commands recorded after the wipe.
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &rest.to_string_lossy()],
    )?;
    let head = e2e::head(&mut ledger).await?;
    assert!(head.sequence > before.sequence);

    // The new stream gets the whole log again: 1..=head, in order, once each, as recorded.
    e2e::wait_for_relay(&nats.url(), head.sequence, CATCH_UP).await?;
    let published = e2e::jetstream_events(&nats.url()).await?;
    let sequences: Vec<u64> = published.iter().map(|m| m.sequence).collect();
    assert_eq!(
        sequences,
        (1..=head.sequence).collect::<Vec<_>>(),
        "every event once, in order"
    );
    let log = e2e::read_all(&mut ledger).await?;
    for (message, recorded) in published.iter().zip(&log) {
        assert_eq!(&message.event, recorded, "event {}", recorded.sequence);
        assert_eq!(message.hash.to_vec(), recorded.hash);
    }

    // positiond created its consumer again and follows: the head, the ledger's chain, no
    // trouble left.
    let status = positiond.wait_for(head.sequence, CATCH_UP).await?;
    assert_eq!(status.hash, head.hash);
    status_when(&positiond, "cleared the consumer's trouble", |s| {
        s.consumer_error.is_empty()
    })
    .await?;
    health_becomes(
        &positiond.url(),
        "ics.position.v1.PositionService",
        ServingStatus::Serving,
    )
    .await?;
    let js = bus::jetstream(bus::connect(&nats.url(), "e2e-repair").await?);
    js.get_stream(bus::STREAM_NAME)
        .await?
        .consumer_info("positiond")
        .await?;
    let lines = consumer_trouble_lines(&positiond_dir)?;
    assert!(
        (1..=20).contains(&lines),
        "{lines} lines about the consumer's trouble:\n{}",
        positiond.log_tail()
    );
    Ok(())
}

/// The first sequence of `log` the domain's projection refuses to fold.
fn first_unfoldable(log: &[pb::RecordedEvent]) -> anyhow::Result<u64> {
    let mut projection = domain::position::Projection::new();
    for recorded in log {
        let event = api::event_from_proto(recorded.event.clone().unwrap_or_default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let at = domain::position::Recorded {
            sequence: recorded.sequence,
            recorded_at_us: recorded.recorded_at_us,
        };
        if projection.apply(&at, &event).is_err() {
            return Ok(recorded.sequence);
        }
    }
    anyhow::bail!("every event of the log folds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readers_stuck_on_an_event_they_cannot_fold_keep_serving_and_say_where()
-> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd_dir = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start(&ledgerd_dir, Some(&nats.url()))?;
    let demo = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &demo])?;
    let log = e2e::read_all(&mut ledgerd.client().await?).await?;
    ledgerd.terminate()?;
    let written = e2e::write_unfoldable_invoices(&ledgerd_dir, &log).await?;
    ledgerd.restart()?;
    let mut ledger = ledgerd.client().await?;
    let log = e2e::read_all(&mut ledger).await?;
    let stuck = first_unfoldable(&log)?;
    assert!(
        (written..=written + 1).contains(&stuck),
        "the domain refuses one of the invoices written ({written}, {stuck})"
    );

    let positiond_dir = work.path().join("positiond");
    let mut positiond = Positiond::start(&positiond_dir, &nats.url(), &ledgerd.url(), "positiond")?;
    let oversightd = Oversightd::start(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
    )?;
    for start in 1..=2 {
        let status = status_when(&positiond, "reported the stuck event", |s| {
            s.stuck_sequence != 0
        })
        .await?;
        assert_eq!(status.stuck_sequence, stuck, "start {start}");
        assert_eq!(status.sequence, stuck - 1, "as of the event before");
        assert_eq!(
            status.hash,
            log[usize::try_from(stuck - 2)?].hash,
            "the ledger's chain up to it"
        );
        assert!(
            status.stuck_reason.contains("overflow"),
            "{}",
            status.stuck_reason
        );
        health_becomes(
            &positiond.url(),
            "ics.position.v1.PositionService",
            ServingStatus::NotServing,
        )
        .await?;
        // Still serving what it has.
        let report = positiond
            .client()
            .await?
            .get_position(ppb::ReportRequest {
                year: 2018,
                month: 12,
                as_of: None,
            })
            .await?
            .into_inner();
        assert_eq!(
            report.basis.map(|b| b.as_of_sequence),
            Some(stuck - 1),
            "start {start}"
        );
        // Restarted, it comes back to the same, serving (no crash loop).
        positiond.terminate()?;
        positiond.restart()?;
    }

    let started = std::time::Instant::now();
    let kav = loop {
        let reply = oversightd
            .client()
            .await?
            .list_systems(api::oversight_pb::ListSystemsRequest {})
            .await?
            .into_inner();
        if let Some(kav) = reply.systems.into_iter().find(|s| s.stuck_sequence != 0) {
            break kav;
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP,
            "oversightd never said kav is stuck"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(kav.system, "kav");
    assert_eq!(kav.stuck_sequence, stuck);
    assert_eq!(kav.folded.map(|f| f.sequence), Some(stuck - 1));
    assert!(
        kav.stuck_reason.contains("overflow"),
        "{}",
        kav.stuck_reason
    );
    health_becomes(
        &oversightd.url(),
        "ics.oversight.v1.OversightService",
        ServingStatus::NotServing,
    )
    .await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledgerd_refuses_to_start_on_a_store_behind_what_the_stream_holds() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let mut ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;
    let (first, _) = e2e::split_demo_scenario(work.path(), 40)?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &first.to_string_lossy()],
    )?;
    let head = e2e::head(&mut ledgerd.client().await?).await?;
    e2e::wait_for_relay(&nats.url(), head.sequence, CATCH_UP).await?;
    ledgerd.terminate()?;

    // The store comes back empty (lost, or restored from too old a backup): its next commands
    // would reuse sequences the stream already published.
    // (The binary binds its port before opening the store, so it may exit just after.)
    let refused = match Ledgerd::start(&work.path().join("lost"), Some(&nats.url())) {
        Err(error) => format!("{error:#}"),
        Ok(lost) => {
            let started = std::time::Instant::now();
            while !lost.log_tail().contains("refuses to start") {
                anyhow::ensure!(
                    started.elapsed() < Duration::from_secs(10),
                    "ledgerd started on a store behind the stream:\n{}",
                    lost.log_tail()
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
            let serving = match lost.client().await {
                Ok(mut client) => e2e::head(&mut client).await.is_ok(),
                Err(_) => false,
            };
            anyhow::ensure!(!serving, "it does not serve");
            std::fs::read_to_string(work.path().join("lost.logs/ledgerd-1.log"))?
        }
    };
    for expected in [
        "refuses to start",
        &format!("holds event {} of system kav", head.sequence),
        "beyond the store's head",
        "store ends at 0",
        "icsctl store restore",
        "nats stream purge ICS --subject 'ics.kav.>'",
    ] {
        assert!(refused.contains(expected), "{expected}:\n{refused}");
    }

    // What the error says an operator may do when the stream is the one that is wrong.
    let js = bus::jetstream(bus::connect(&nats.url(), "e2e-operator").await?);
    js.get_stream(bus::STREAM_NAME)
        .await?
        .purge()
        .filter("ics.kav.>")
        .await?;
    let fresh = Ledgerd::start(&work.path().join("lost"), Some(&nats.url()))?;
    assert_eq!(e2e::head(&mut fresh.client().await?).await?.sequence, 0);
    Ok(())
}
