//! oversightd under the shipped bus permissions (`deploy/nats/permissions.conf`): as the
//! `oversightd` user (its own nkey and inbox prefix) it creates its durable consumer on
//! `ics.*.>`, pulls and acknowledges — with no ledgerd configured, so everything it folds
//! came through JetStream.

mod support;

use std::collections::BTreeMap;

use support::*;
use testkit::{NatsOptions, NatsServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_oversightd_user_follows_every_system() -> anyhow::Result<()> {
    let nats = NatsServer::start_with(NatsOptions::shipped())?;
    // The shipped ledgerd user may publish ics.kav.> only.
    let kav = start_ledgerd_as("kav", Some(nats.url()), Some(nats.user("ledgerd")?)).await?;
    let first = kav
        .load(
            "kav",
            &format!(
                "establish-system --system kav --name \"Kingsmere\" --first-year 2019/20\n\
                 admit-member --member KHFT --name \"Kingsmere Hospitals\" --kind acute-trust --in-control-total\n{}",
                metric_lines("KHFT", 2019, [4, 5, 6], "emergency-admissions", 30_000)
            ),
        )
        .await?;

    let dir = tempfile::tempdir()?;
    let oversightd = start_oversightd_as(
        &nats.url(),
        Some(nats.user("oversightd")?),
        BTreeMap::new(),
        dir.path(),
        "oversightd",
    )
    .await?;
    oversightd.wait_for(&[("kav", first)]).await?;
    let last = kav
        .load(
            "kav-2020",
            &metric_lines("KHFT", 2020, [4, 5, 6], "emergency-admissions", 31_500),
        )
        .await?;
    oversightd.wait_for(&[("kav", last)]).await?;
    let mut client = oversightd.client().await?;
    let growth = performance(&mut client, "kav", 2020, 2, 2019)
        .await?
        .operational
        .and_then(|o| o.emergency_admissions)
        .and_then(|c| c.system)
        .map(|g| g.growth_bp);
    assert_eq!(growth, Some(500));
    oversightd.stop().await?;
    kav.stop().await?;
    Ok(())
}
