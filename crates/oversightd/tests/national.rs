//! The regulator's view against real parts: three systems, each with its own ledgerd
//! (in-process, real sled, relaying to one real nats-server), and one oversightd following
//! them all over `ics.*.>`, read over gRPC.
//!
//! - `kav` is the demo ICS (deploy/demo/kingsmere-2018-19.ics, BRIEF §8), plus emergency
//!   admissions for July–September 2019 and 2020 (the demo reports only A&E);
//! - `wes` is a small system built here: two members, a plan, twelve returns with one
//!   overspend, A&E and admissions;
//! - `nor` reports only admissions, and oversightd has no ledgerd configured for it: it is
//!   followed from JetStream alone.
//!
//! Admissions are chosen so that kav's growth is the seeds' 2.6% against 4.9% for the rest
//! of the country (wes and nor together).

mod support;

use api::oversight_pb as opb;
use support::*;
use tonic::Code;

const DEMO: &str = include_str!("../../../deploy/demo/kingsmere-2018-19.ics");

fn kav_admissions() -> String {
    // 2019/20 Q2: 60,000 + 40,000 = 100,000; 2020/21 Q2: 61,560 + 41,040 = 102,600 (+2.60%).
    [
        metric_lines("KHFT", 2019, [4, 5, 6], "emergency-admissions", 60_000),
        metric_lines("AVT", 2019, [4, 5, 6], "emergency-admissions", 40_000),
        metric_lines("KHFT", 2020, [4, 5, 6], "emergency-admissions", 61_560),
        metric_lines("AVT", 2020, [4, 5, 6], "emergency-admissions", 41_040),
    ]
    .concat()
}

fn wes_scenario() -> String {
    let mut text = String::from(
        "establish-system --system wes --name \"Wessex Downs ICS\" --first-year 2018/19\n\
         admit-member --member WCCG --name \"Wessex CCG\" --kind commissioner --in-control-total\n\
         admit-member --member WHFT --name \"Wessex Hospitals NHS FT\" --kind acute-trust --in-control-total\n\
         agree-plan --member WCCG --year 2018/19 --income 24000000 --expenditure 24000000\n\
         agree-plan --member WHFT --year 2018/19 --income 12000000 --expenditure 13200000\n",
    );
    for month in 1..=12 {
        // WHFT plans −100,000 a month; it overspends by 300,000 in M3.
        let expenditure = if month == 3 { 1_400_000 } else { 1_100_000 };
        text.push_str(&format!(
            "submit-return --member WCCG --period 2018/19-M{month} --income 2000000 --expenditure 2000000\n\
             submit-return --member WHFT --period 2018/19-M{month} --income 1000000 --expenditure {expenditure}\n\
             report-metric --member WHFT --period 2018/19-M{month} --metric ae-four-hour --value 92.00%\n"
        ));
    }
    text.push_str(&metric_lines(
        "WHFT",
        2019,
        [4, 5, 6],
        "emergency-admissions",
        400_000,
    ));
    text.push_str(&metric_lines(
        "WHFT",
        2020,
        [4, 5, 6],
        "emergency-admissions",
        419_000,
    ));
    text
}

fn nor_scenario() -> String {
    let mut text = String::from(
        "establish-system --system nor --name \"Northmoor ICS\" --first-year 2019/20\n\
         admit-member --member NHFT --name \"Northmoor Hospitals NHS FT\" --kind acute-trust --in-control-total\n",
    );
    text.push_str(&metric_lines(
        "NHFT",
        2019,
        [4, 5, 6],
        "emergency-admissions",
        600_000,
    ));
    text.push_str(&metric_lines(
        "NHFT",
        2020,
        [4, 5, 6],
        "emergency-admissions",
        630_000,
    ));
    text
}

/// kav's tranche rows: (quarter, earned, forfeited, failed conditions).
fn tranches(financial: &opb::Financial) -> Vec<(u32, i64, i64, Vec<String>)> {
    financial
        .tranches
        .iter()
        .map(|t| {
            assert!(t.assessed, "tranche {} assessed", t.quarter);
            assert_eq!(t.fund, "SSF");
            assert_eq!(t.amount_pence, pounds(1_800_000));
            (
                t.quarter,
                t.earned_pence,
                t.forfeited_pence,
                t.failed_conditions.clone(),
            )
        })
        .collect()
}

/// Every figure the test reads, so a restart can be compared with it.
async fn answers(
    oversightd: &Oversightd,
) -> anyhow::Result<(
    Vec<opb::SystemSummary>,
    Vec<opb::PerformanceReport>,
    Vec<opb::RankingReport>,
)> {
    let mut client = oversightd.client().await?;
    let mut reports = Vec::new();
    for (system, year, quarter, baseline) in [
        ("kav", 2018, 4, 2017),
        ("kav", 2018, 2, 2017),
        ("kav", 2020, 2, 2019),
        ("wes", 2018, 4, 2017),
        ("nor", 2020, 2, 2019),
    ] {
        reports.push(performance(&mut client, system, year, quarter, baseline).await?);
    }
    let mut rankings = Vec::new();
    for (measure, year, quarter, baseline) in [
        (opb::Measure::VarianceYtd, 2018, 4, 0),
        (opb::Measure::ForecastVariance, 2018, 2, 0),
        (opb::Measure::EmergencyAdmissionsGrowth, 2020, 2, 2019),
        (opb::Measure::AeFourHour, 2018, 3, 0),
    ] {
        rankings.push(ranking(&mut client, measure, year, quarter, baseline).await?);
    }
    Ok((oversightd.systems().await?, reports, rankings))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regulator_reads_every_system_from_one_oversightd() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let kav = start_ledgerd("kav", Some(nats.url())).await?;
    let wes = start_ledgerd("wes", Some(nats.url())).await?;
    let nor = start_ledgerd("nor", Some(nats.url())).await?;
    kav.load("kingsmere-2018-19.ics", DEMO).await?;
    let kav_head = kav.load("kav-admissions", &kav_admissions()).await?;
    let wes_head = wes.load("wes", &wes_scenario()).await?;
    let nor_head = nor.load("nor", &nor_scenario()).await?;

    let dir = tempfile::tempdir()?;
    // No ledgerd for nor: it is followed from JetStream alone.
    let oversightd = start_oversightd(&nats.url(), &[&kav, &wes], dir.path(), "oversightd").await?;
    oversightd
        .wait_for(&[("kav", kav_head), ("wes", wes_head), ("nor", nor_head)])
        .await?;

    // ListSystems: every system, each folded to its own ledgerd's head, chain hash included.
    let systems = oversightd.systems().await?;
    let listed: Vec<(&str, &str, u32, u32)> = systems
        .iter()
        .map(|s| (s.system.as_str(), s.name.as_str(), s.first_year, s.members))
        .collect();
    assert_eq!(
        listed,
        [
            ("kav", "Kingsmere & Alder Valley ICS", 2018, 7),
            ("nor", "Northmoor ICS", 2019, 1),
            ("wes", "Wessex Downs ICS", 2018, 2),
        ]
    );
    for (summary, ledgerd) in systems.iter().zip([&kav, &nor, &wes]) {
        let head = ledgerd.head().await?;
        let folded = summary.folded.clone().expect("folded");
        assert_eq!(
            (folded.sequence, folded.hash),
            (head.sequence, head.hash),
            "{}",
            summary.system
        );
    }

    let mut client = oversightd.client().await?;

    // The demo at Q4 (year to date at M12), BRIEF §8.
    let q4 = performance(&mut client, "kav", 2018, 4, 2017).await?;
    assert_eq!(q4.name, "Kingsmere & Alder Valley ICS");
    let financial = q4.financial.clone().expect("kav has plans for 2018/19");
    assert_eq!(financial.month, 12);
    assert_eq!(financial.control_total_pence, pounds(-7_200_000));
    assert_eq!(financial.control_total_ytd_pence, pounds(-7_200_000));
    assert_eq!(
        financial.actual_ytd_pence,
        pounds(-6_960_000),
        "before the fund"
    );
    assert_eq!(financial.variance_ytd_pence, pounds(240_000));
    assert_eq!(financial.forecast_outturn_pence, pounds(-6_960_000));
    assert_eq!(financial.forecast_variance_pence, pounds(240_000));
    assert_eq!(financial.fund_available_ytd_pence, pounds(7_200_000));
    assert_eq!(financial.fund_earned_ytd_pence, pounds(5_400_000));
    assert_eq!(financial.fund_forfeited_ytd_pence, pounds(1_800_000));
    assert_eq!(financial.after_fund_ytd_pence, pounds(-1_560_000));
    assert_eq!(financial.wider_ics_actual_ytd_pence, pounds(-7_260_000));
    assert!(financial.returns_missing.is_empty());
    assert_eq!(financial.position_fingerprint.len(), 32);
    assert_eq!(
        tranches(&financial),
        [
            (1, pounds(1_800_000), 0, vec![]),
            (
                2,
                pounds(540_000),
                pounds(1_260_000),
                vec!["FIN".to_string()]
            ),
            (
                3,
                pounds(1_260_000),
                pounds(540_000),
                vec!["AE".to_string()]
            ),
            (4, pounds(1_800_000), 0, vec![]),
        ]
    );
    // The evidence the assessment recorded: Q3's A&E was 88.50%, below 90%.
    let q3_ae = financial.tranches[2]
        .conditions
        .iter()
        .find(|c| c.condition == "AE")
        .and_then(|c| c.figures)
        .and_then(|f| f.figures);
    assert_eq!(
        q3_ae,
        Some(api::pb::figures::Figures::AeFourHour(
            api::pb::figures::AeFourHour {
                performance_bp: 8_850
            }
        ))
    );
    let operational = q4.operational.clone().expect("operational");
    assert_eq!(
        operational.ae_four_hour.map(|a| a.performance_bp),
        Some(9_020)
    );
    assert_eq!(
        operational.emergency_admissions, None,
        "no 2017/18 baseline"
    );
    assert!(
        q4.missing
            .iter()
            .any(|m| m.contains("emergency admissions") && m.contains("2017/18 Q4")),
        "{:?}",
        q4.missing
    );

    // At Q2: the forecast is the returns to M6 and the plan after; Q2's finance test failed.
    let q2 = performance(&mut client, "kav", 2018, 2, 2017).await?;
    let financial = q2.financial.clone().expect("plans");
    assert_eq!(financial.month, 6);
    assert_eq!(financial.control_total_ytd_pence, pounds(-3_600_000));
    assert_eq!(financial.actual_ytd_pence, pounds(-6_000_000));
    assert_eq!(financial.forecast_outturn_pence, pounds(-9_600_000));
    assert_eq!(financial.forecast_variance_pence, pounds(-2_400_000));
    assert_eq!(financial.fund_earned_ytd_pence, pounds(2_340_000));
    assert_eq!(financial.fund_forfeited_ytd_pence, pounds(1_260_000));
    assert_eq!(
        tranches(&financial),
        [
            (1, pounds(1_800_000), 0, vec![]),
            (
                2,
                pounds(540_000),
                pounds(1_260_000),
                vec!["FIN".to_string()]
            ),
        ]
    );
    assert_eq!(
        q2.operational
            .and_then(|o| o.ae_four_hour)
            .map(|a| a.performance_bp),
        Some(9_040)
    );

    // Emergency admissions, July–September 2020 against 2019: kav 2.6%, the rest 4.9%.
    let admissions = performance(&mut client, "kav", 2020, 2, 2019).await?;
    assert_eq!(admissions.financial, None, "no plan for 2020/21");
    let comparison = admissions
        .operational
        .clone()
        .and_then(|o| o.emergency_admissions)
        .expect("both quarters reported");
    assert_eq!(
        comparison.system,
        Some(opb::Growth {
            current: 102_600,
            baseline: 100_000,
            growth_bp: 260
        })
    );
    assert_eq!(
        comparison.rest_of_country,
        Some(opb::Growth {
            current: 1_049_000,
            baseline: 1_000_000,
            growth_bp: 490
        })
    );
    assert_eq!(comparison.rest_systems, ["nor", "wes"]);
    let missing = admissions.missing.join("; ");
    assert!(missing.contains("financial"), "{missing}");
    assert!(missing.contains("emergency bed days"), "{missing}");
    assert!(missing.contains("A&E"), "{missing}");

    // wes from the other side: +4.75% against kav and nor together,
    // (102,600 + 630,000) / (100,000 + 600,000) − 1 = +4.657% → 466 bp.
    let wes_admissions = performance(&mut client, "wes", 2020, 2, 2019).await?;
    let comparison = wes_admissions
        .operational
        .and_then(|o| o.emergency_admissions)
        .expect("reported");
    assert_eq!(comparison.system.map(|g| g.growth_bp), Some(475));
    assert_eq!(
        comparison.rest_of_country,
        Some(opb::Growth {
            current: 732_600,
            baseline: 700_000,
            growth_bp: 466
        })
    );
    assert_eq!(comparison.rest_systems, ["kav", "nor"]);

    // Rankings.
    let variance = ranking(&mut client, opb::Measure::VarianceYtd, 2018, 4, 0).await?;
    assert!(variance.higher_is_better);
    assert_eq!(
        places(&variance),
        [
            (1, "kav".to_string(), pounds(240_000)),
            (2, "wes".to_string(), pounds(-300_000)),
        ]
    );
    assert!(matches!(
        variance.ranked[0].value,
        Some(opb::ranked::Value::ValuePence(_))
    ));
    assert_eq!(variance.unranked, ["nor"], "no plan for 2018/19");
    let growth = ranking(
        &mut client,
        opb::Measure::EmergencyAdmissionsGrowth,
        2020,
        2,
        2019,
    )
    .await?;
    assert!(!growth.higher_is_better);
    assert_eq!(
        places(&growth),
        [
            (1, "kav".to_string(), 260),
            (2, "wes".to_string(), 475),
            (3, "nor".to_string(), 500),
        ]
    );
    let ae = ranking(&mut client, opb::Measure::AeFourHour, 2018, 3, 0).await?;
    assert_eq!(
        places(&ae),
        [(1, "wes".to_string(), 9_200), (2, "kav".to_string(), 8_850)]
    );
    assert_eq!(ae.unranked, ["nor"]);
    let forecast = ranking(&mut client, opb::Measure::ForecastVariance, 2018, 2, 0).await?;
    assert_eq!(
        places(&forecast),
        [
            (1, "wes".to_string(), pounds(-300_000)),
            (2, "kav".to_string(), pounds(-2_400_000)),
        ]
    );

    // Status codes over the wire.
    let unknown = performance(&mut client, "nowhere", 2018, 4, 2017)
        .await
        .expect_err("unknown");
    assert_eq!(unknown.code(), Code::NotFound, "{unknown:?}");
    let bad = performance(&mut client, "kav", 2018, 5, 2017)
        .await
        .expect_err("quarter 5");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("quarter"), "{}", bad.message());
    let bad = performance(&mut client, "kav", 2018, 4, 2018)
        .await
        .expect_err("baseline not before");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(
        bad.message().starts_with("baseline_year"),
        "{}",
        bad.message()
    );
    let bad = ranking(&mut client, opb::Measure::Unspecified, 2018, 4, 0)
        .await
        .expect_err("no measure");
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert!(bad.message().starts_with("measure"), "{}", bad.message());
    let nothing = performance(&mut client, "nor", 2018, 1, 2017)
        .await
        .expect_err("nor has nothing for 2018/19");
    assert_eq!(nothing.code(), Code::FailedPrecondition);
    assert!(
        nothing.message().contains("plan for 2018/19"),
        "{}",
        nothing.message()
    );
    let nothing = ranking(
        &mut client,
        opb::Measure::EmergencyBedDaysGrowth,
        2020,
        2,
        2019,
    )
    .await
    .expect_err("no system reports bed days");
    assert_eq!(nothing.code(), Code::FailedPrecondition);
    assert!(
        nothing.message().contains("emergency bed days"),
        "{}",
        nothing.message()
    );

    // Restart from the checkpoint: the same answers, and what is recorded meanwhile (a
    // correction of wes's admissions) is folded once.
    let before = answers(&oversightd).await?;
    oversightd.stop().await?;
    {
        // The checkpoint on disk is the fold the service answered from.
        let store = follow::fleet::FleetCheckpointStore::open(dir.path())?;
        let fleet = store.load::<oversightd::view::SystemView>()?;
        let heads: Vec<(String, u64)> = fleet
            .iter()
            .map(|(s, c)| (s.to_string(), c.sequence))
            .collect();
        assert_eq!(
            heads,
            [
                ("kav".to_string(), kav_head),
                ("nor".to_string(), nor_head),
                ("wes".to_string(), wes_head)
            ]
        );
        let query = oversightd::report::PerformanceQuery::from_proto(&opb::PerformanceRequest {
            system: "kav".into(),
            year: 2018,
            quarter: 4,
            baseline_year: 2017,
        })
        .map_err(|e| anyhow::anyhow!("{e}"))?;
        let from_disk =
            oversightd::report::performance(&fleet, &query).map_err(|e| anyhow::anyhow!("{e}"))?;
        assert_eq!(from_disk, before.1[0]);
    }
    let oversightd = start_oversightd(&nats.url(), &[&kav, &wes], dir.path(), "oversightd").await?;
    assert_eq!(answers(&oversightd).await?, before);

    // wes resubmits September 2020: 139,666 → 149,666, so 429,000 in the quarter (+7.25%).
    let corrected = wes
        .load(
            "wes-correction",
            "report-metric --member WHFT --period 2020/21-M6 --metric emergency-admissions --value 149666\n",
        )
        .await?;
    oversightd
        .wait_for(&[("kav", kav_head), ("wes", corrected), ("nor", nor_head)])
        .await?;
    let mut client = oversightd.client().await?;
    let growth = ranking(
        &mut client,
        opb::Measure::EmergencyAdmissionsGrowth,
        2020,
        2,
        2019,
    )
    .await?;
    assert_eq!(
        places(&growth),
        [
            (1, "kav".to_string(), 260),
            (2, "nor".to_string(), 500),
            (3, "wes".to_string(), 725),
        ]
    );
    let admissions = performance(&mut client, "kav", 2020, 2, 2019).await?;
    assert_eq!(
        admissions
            .operational
            .and_then(|o| o.emergency_admissions)
            .and_then(|c| c.rest_of_country),
        Some(opb::Growth {
            current: 1_059_000,
            baseline: 1_000_000,
            growth_bp: 590
        })
    );
    oversightd.stop().await?;

    for ledgerd in [kav, wes, nor] {
        ledgerd.stop().await?;
    }
    Ok(())
}
