//! Gaps, per system. The ledgerds here do not relay: the test decides which of their events
//! reach JetStream, so oversightd sees a system's messages with holes in them. Each system has
//! its own sequence, so `kav` and `wes` both hold events 1..=8 — a gap must be filled from the
//! ledgerd of the system it is in, and a system with no ledgerd must not be acknowledged past
//! its gap.

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use api::oversight_pb as opb;
use support::*;

/// Establishes `system`, admits one member, and reports `baseline` emergency admissions for
/// July–September 2019: five events.
fn setup(system: &str, member: &str, baseline: u64) -> String {
    format!(
        "establish-system --system {system} --name \"{system} ICS\" --first-year 2019/20\n\
         admit-member --member {member} --name \"{member} NHS FT\" --kind acute-trust --in-control-total\n{}",
        metric_lines(member, 2019, [4, 5, 6], "emergency-admissions", baseline)
    )
}

/// Three events: July–September 2020's admissions.
fn current(member: &str, total: u64) -> String {
    metric_lines(member, 2020, [4, 5, 6], "emergency-admissions", total)
}

async fn growth_of(oversightd: &Oversightd, system: &str) -> anyhow::Result<opb::CountComparison> {
    let mut client = oversightd.client().await?;
    performance(&mut client, system, 2020, 2, 2019)
        .await?
        .operational
        .and_then(|o| o.emergency_admissions)
        .ok_or_else(|| anyhow::anyhow!("{system}: no admissions comparison"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_gap_is_filled_from_its_own_systems_ledgerd() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    bus::ensure_stream(&js, &bus::StreamSettings::default()).await?;
    let kav = start_ledgerd("kav", None).await?;
    let wes = start_ledgerd("wes", None).await?;
    let nor = start_ledgerd("nor", None).await?;
    assert_eq!(
        kav.load("kav-setup", &setup("kav", "KHFT", 100_000))
            .await?,
        5
    );
    assert_eq!(
        wes.load("wes-setup", &setup("wes", "WHFT", 100_000))
            .await?,
        5
    );
    assert_eq!(
        nor.load("nor-setup", &setup("nor", "NHFT", 100_000))
            .await?,
        5
    );
    for ledgerd in [&kav, &wes, &nor] {
        publish(&js, &ledgerd.system, &ledgerd.read(1, 5).await?).await?;
    }

    let dir = tempfile::tempdir()?;
    // nor has no ledgerd configured.
    let oversightd = start_oversightd(&nats.url(), &[&kav, &wes], dir.path(), "oversightd").await?;
    oversightd
        .wait_for(&[("kav", 5), ("wes", 5), ("nor", 5)])
        .await?;

    // kav and wes record events 6..=8 each; only wes's 8 is published.
    assert_eq!(kav.load("kav-2020", &current("KHFT", 105_000)).await?, 8);
    assert_eq!(wes.load("wes-2020", &current("WHFT", 110_000)).await?, 8);
    publish(&js, "wes", &wes.read(8, 8).await?).await?;
    oversightd.wait_for(&[("wes", 8)]).await?;
    let folded = oversightd.systems().await?;
    let wes_folded = folded
        .iter()
        .find(|s| s.system == "wes")
        .and_then(|s| s.folded.clone())
        .expect("wes");
    assert_eq!(wes_folded.hash, wes.head().await?.hash, "wes's own chain");
    assert_eq!(
        oversightd.folded().await?.get("kav"),
        Some(&5),
        "kav's events 6..=8 were neither published nor asked for"
    );
    // wes's figures, not kav's: +10.00%, against kav and nor still at their baseline only.
    let wes_growth = growth_of(&oversightd, "wes").await?;
    assert_eq!(wes_growth.system.map(|g| g.growth_bp), Some(1_000));
    assert_eq!(wes_growth.rest_of_country, None);

    // Now kav's 8: filled from kav's ledgerd.
    publish(&js, "kav", &kav.read(8, 8).await?).await?;
    oversightd.wait_for(&[("kav", 8)]).await?;
    let kav_growth = growth_of(&oversightd, "kav").await?;
    assert_eq!(kav_growth.system.map(|g| g.growth_bp), Some(500));
    assert_eq!(
        kav_growth.rest_of_country.map(|g| g.growth_bp),
        Some(1_000),
        "wes alone: nor has no 2020 quarter yet"
    );

    // nor has no ledgerd: 6 and 8 published, 7 not. nor stops at 6 and 8 is not acknowledged.
    assert_eq!(nor.load("nor-2020", &current("NHFT", 120_000)).await?, 8);
    let nor_events = nor.read(6, 8).await?;
    publish(&js, "nor", &nor_events[0..1]).await?;
    publish(&js, "nor", &nor_events[2..3]).await?;
    oversightd.wait_for(&[("nor", 6)]).await?;
    // Other systems are not held up meanwhile.
    let kav_next = kav
        .load(
            "kav-correction",
            "report-metric --member KHFT --period 2020/21-M6 --metric emergency-admissions --value 45000\n",
        )
        .await?;
    publish(&js, "kav", &kav.read(kav_next, kav_next).await?).await?;
    oversightd.wait_for(&[("kav", kav_next)]).await?;
    // Several retry delays later nor is still at 6: the gap cannot be filled.
    tokio::time::sleep(Duration::from_millis(1_000)).await;
    assert_eq!(oversightd.folded().await?.get("nor"), Some(&6));
    // 7 arrives; 8, never acknowledged, is offered again and folds after it.
    publish(&js, "nor", &nor_events[1..2]).await?;
    oversightd.wait_for(&[("nor", 8)]).await?;
    assert_eq!(
        growth_of(&oversightd, "nor")
            .await?
            .system
            .map(|g| g.growth_bp),
        Some(2_000)
    );
    oversightd.stop().await?;

    // The checkpoint holds each system at its own sequence.
    let store = follow::fleet::FleetCheckpointStore::open(dir.path())?;
    let fleet = store.load::<oversightd::view::SystemView>()?;
    let sequences: BTreeMap<String, u64> = fleet
        .iter()
        .map(|(s, c)| (s.to_string(), c.sequence))
        .collect();
    assert_eq!(
        sequences,
        BTreeMap::from([
            ("kav".to_string(), kav_next),
            ("nor".to_string(), 8),
            ("wes".to_string(), 8),
        ])
    );
    drop(store);

    // A ledgerd configured under the wrong system is refused: its record establishes another
    // system, so oversightd folds nothing of it into "wes" — it reports "wes" stuck on its
    // first event, with why, and goes on serving.
    let wrong = tempfile::tempdir()?;
    let misconfigured = start_oversightd_with(
        &nats.url(),
        BTreeMap::from([("wes".to_string(), kav.url.clone())]),
        wrong.path(),
        "misconfigured",
    )
    .await?;
    let mut stuck = None;
    for _ in 0..400 {
        let reply = misconfigured
            .client()
            .await?
            .list_systems(opb::ListSystemsRequest {})
            .await?
            .into_inner();
        stuck = reply.systems.into_iter().find(|s| s.system == "wes");
        if stuck.as_ref().is_some_and(|s| s.stuck_sequence != 0) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let listed = stuck.expect("wes is listed");
    assert_eq!(listed.stuck_sequence, 1);
    assert!(
        listed.stuck_reason.contains("establishes system 'kav'"),
        "{}",
        listed.stuck_reason
    );
    assert_eq!(listed.folded.map(|f| f.sequence), Some(0), "nothing folded");
    assert!(!misconfigured.task.is_finished(), "oversightd goes on");
    misconfigured.stop().await?;

    for ledgerd in [kav, wes, nor] {
        ledgerd.stop().await?;
    }
    Ok(())
}
