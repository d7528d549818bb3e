//! The regulator's view end to end: real `ledgerd`, `icsctl` and `oversightd` binaries and a
//! real nats-server. The demo is loaded through ledgerd; oversightd (following `ics.*.>`)
//! serves BRIEF.md §8's system figures, the sustainability fund's failed conditions, and
//! A&E performance over gRPC; `icsctl oversight` prints them.

use std::time::Duration;

use api::oversight_pb as opb;
use e2e::{Ledgerd, Oversightd};

fn pounds(p: i64) -> i64 {
    p * 100
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversightd_serves_the_demo_system_to_the_regulator() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;
    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let mut ledger = ledgerd.client().await?;
    let head = e2e::head(&mut ledger).await?;

    let oversightd = Oversightd::start(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
    )?;
    oversightd
        .wait_for("kav", head.sequence, Duration::from_secs(60))
        .await?;
    let mut client = oversightd.client().await?;
    let systems = client
        .list_systems(opb::ListSystemsRequest {})
        .await?
        .into_inner()
        .systems;
    assert_eq!(systems.len(), 1);
    assert_eq!(
        systems[0].folded.as_ref().map(|f| f.hash.clone()),
        Some(head.hash.clone()),
        "oversightd folded the ledger's chain"
    );

    let performance = |quarter| opb::PerformanceRequest {
        system: "kav".to_string(),
        year: 2018,
        quarter,
        baseline_year: 2017,
    };
    let q4 = client.get_performance(performance(4)).await?.into_inner();
    let financial = q4.financial.expect("financial figures");
    assert_eq!(financial.control_total_ytd_pence, pounds(-7_200_000));
    assert_eq!(financial.actual_ytd_pence, pounds(-6_960_000));
    assert_eq!(financial.fund_earned_ytd_pence, pounds(5_400_000));
    assert_eq!(financial.fund_forfeited_ytd_pence, pounds(1_800_000));
    assert_eq!(financial.after_fund_ytd_pence, pounds(-1_560_000));
    let failed: Vec<(u32, Vec<String>)> = financial
        .tranches
        .iter()
        .map(|t| (t.quarter, t.failed_conditions.clone()))
        .filter(|(_, f)| !f.is_empty())
        .collect();
    assert_eq!(
        failed,
        [(2, vec!["FIN".to_string()]), (3, vec!["AE".to_string()])],
        "Q2 failed the finance test, Q3 the A&E test"
    );
    assert!(
        q4.operational
            .and_then(|o| o.ae_four_hour)
            .is_some_and(|a| a.performance_bp > 0),
        "A&E four-hour performance for the quarter"
    );

    let ranking = client
        .get_ranking(opb::RankingRequest {
            year: 2018,
            quarter: 4,
            baseline_year: 2017,
            measure: opb::Measure::VarianceYtd.into(),
        })
        .await?
        .into_inner();
    assert_eq!(ranking.ranked.len(), 1);
    assert_eq!(ranking.ranked[0].system, "kav");

    // icsctl prints the same to the regulator.
    let text = e2e::icsctl(
        &ledgerd.url(),
        &[
            "--oversight-server",
            &oversightd.url(),
            "oversight",
            "performance",
            "--system",
            "kav",
            "--year",
            "2018/19",
            "--quarter",
            "3",
        ],
    )?;
    assert!(
        text.contains("(4,800,000.00)"),
        "Q3 year to date before the fund:\n{text}"
    );
    assert!(text.contains("AE"), "the failed condition:\n{text}");

    let oversight_url = oversightd.url();
    let oversight = |args: &[&str]| {
        let mut all = vec!["--oversight-server", oversight_url.as_str(), "oversight"];
        all.extend_from_slice(args);
        e2e::icsctl(&ledgerd.url(), &all)
    };
    let systems = oversight(&["systems"])?;
    let row = systems
        .lines()
        .find(|l| l.contains(" kav "))
        .unwrap_or_else(|| panic!("no row for kav:\n{systems}"));
    for expected in [
        "Kingsmere & Alder Valley ICS",
        "2018/19",
        &head.sequence.to_string(),
    ] {
        assert!(row.contains(expected), "{expected} missing: {row}");
    }
    let ranking = oversight(&[
        "ranking",
        "--year",
        "2018",
        "--quarter",
        "4",
        "--measure",
        "variance",
    ])?;
    let row = ranking
        .lines()
        .find(|l| l.contains(" kav "))
        .unwrap_or_else(|| panic!("no row for kav:\n{ranking}"));
    assert!(
        row.contains(" 1 ") && row.contains("240,000.00"),
        "kav first, £240,000 better than its control total year to date: {row}"
    );
    Ok(())
}
