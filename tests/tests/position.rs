//! The collective position end to end: real `ledgerd`, `positiond` and `icsctl` binaries and a
//! real nats-server. The demo ICS is loaded through ledgerd; positiond folds what the relay
//! publishes and serves BRIEF.md §8's figures over gRPC — across `kill -9`, redelivery of
//! every message, and a replica started late — and the reports it serves are byte for byte
//! (by fingerprint) the ones the domain crate computes from the log read back from ledgerd.

use std::time::Duration;

use api::position_pb as ppb;
use api::position_pb::position_service_client::PositionServiceClient;
use domain::position::{AsOf, Report};
use e2e::{Ledgerd, Positiond};
use tonic::transport::Channel;

const CATCH_UP: Duration = Duration::from_secs(60);

/// £ → pence.
fn pounds(p: i64) -> i64 {
    p * 100
}

fn request(month: u32, as_of: Option<u64>) -> ppb::ReportRequest {
    ppb::ReportRequest {
        year: 2018,
        month,
        as_of: as_of.map(|s| ppb::AsOf {
            at: Some(ppb::as_of::At::Sequence(s)),
        }),
    }
}

/// The fingerprints of every report positiond serves for 2018/19 M12 (and 2019/20 M1).
async fn fingerprints(
    client: &mut PositionServiceClient<Channel>,
) -> anyhow::Result<Vec<(String, Vec<u8>)>> {
    let basis = |b: Option<ppb::Basis>| b.map(|b| b.fingerprint).unwrap_or_default();
    let mut all = Vec::new();
    for (year, month) in [(2018, 12), (2019, 1)] {
        let r = ppb::ReportRequest {
            year,
            month,
            as_of: None,
        };
        let position = client.get_position(r).await?.into_inner();
        all.push((format!("position {year}"), basis(position.basis)));
        let consolidation = client
            .get_consolidation(ppb::ConsolidationRequest {
                report: Some(r),
                scope: ppb::ConsolidationScope::ControlTotal.into(),
            })
            .await?
            .into_inner();
        all.push((format!("consolidation {year}"), basis(consolidation.basis)));
        let budgets = client.get_pooled_budgets(r).await?.into_inner();
        all.push((format!("budgets {year}"), basis(budgets.basis)));
        let contracts = client.get_contracts(r).await?.into_inner();
        all.push((format!("contracts {year}"), basis(contracts.basis)));
        let funds = client.get_funds(r).await?.into_inner();
        all.push((format!("funds {year}"), basis(funds.basis)));
        let aob = client
            .get_agreement_of_balances(ppb::AgreementOfBalancesRequest {
                report: Some(r),
                ..Default::default()
            })
            .await?
            .into_inner();
        all.push((format!("aob {year}"), basis(aob.basis)));
        let adjustments = client.get_adjustments(r).await?.into_inner();
        all.push((format!("adjustments {year}"), basis(adjustments.basis)));
    }
    for (name, fingerprint) in &all {
        assert_eq!(fingerprint.len(), 32, "{name} has a fingerprint");
    }
    Ok(all)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positiond_serves_the_demo_figures_across_kill_redelivery_and_a_late_replica()
-> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;

    // Replica A runs from the start and is killed (-9) twice: while the first part of the
    // demo loads, once it has folded some of it; and once it has folded that part, the rest
    // then recorded while it is down — so its restart has the rest of the stream to fold.
    let mut a = Positiond::start(
        &work.path().join("positiond-a"),
        &nats.url(),
        &ledgerd.url(),
        "replica-a",
    )?;
    let (first, rest) = e2e::split_demo_scenario(work.path(), 250)?;
    let load = {
        let url = ledgerd.url();
        let path = first.to_string_lossy().to_string();
        tokio::task::spawn_blocking(move || e2e::icsctl(&url, &["load", "--quiet", &path]))
    };
    let mut ledger = ledgerd.client().await?;
    a.wait_for(100, CATCH_UP).await?;
    a.kill9()?;
    load.await??;
    let first_head = e2e::head(&mut ledger).await?;
    a.restart()?;
    a.wait_for(first_head.sequence, CATCH_UP).await?;
    a.kill9()?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &rest.to_string_lossy()],
    )?;
    a.restart()?;
    let head = e2e::head(&mut ledger).await?;
    assert!(
        first_head.sequence < head.sequence,
        "the rest of the demo was recorded while positiond was down"
    );
    let status = a.wait_for(head.sequence, CATCH_UP).await?;
    assert_eq!(status.sequence, head.sequence);
    assert_eq!(
        status.hash, head.hash,
        "positiond folded the ledger's chain"
    );

    // BRIEF.md §8 over gRPC.
    let mut client = a.client().await?;
    let position = client.get_position(request(12, None)).await?.into_inner();
    let ct = position.control_total.expect("control total");
    assert_eq!(ct.plan_annual_pence, pounds(-7_200_000));
    assert_eq!(ct.actual_ytd_pence, pounds(-6_960_000));
    assert_eq!(ct.fund_earned_ytd_pence, pounds(5_400_000));
    assert_eq!(ct.fund_forfeited_ytd_pence, pounds(1_800_000));
    assert_eq!(ct.after_fund_ytd_pence, pounds(-1_560_000));
    let wider = position.wider_ics.expect("wider ICS");
    assert_eq!(wider.after_fund_ytd_pence, pounds(-1_860_000));
    let member = |code: &str| {
        position
            .members
            .iter()
            .find(|m| m.member == code)
            .and_then(|m| m.figures)
            .unwrap_or_else(|| panic!("{code}"))
    };
    assert_eq!(member("KHFT").actual_ytd_pence, pounds(-5_280_000));
    assert_eq!(member("KHFT").fund_earned_ytd_pence, pounds(3_600_000));
    assert_eq!(member("AVT").fund_earned_ytd_pence, pounds(1_800_000));
    assert_eq!(member("KCC").after_fund_ytd_pence, pounds(-300_000));

    let consolidation = client
        .get_consolidation(ppb::ConsolidationRequest {
            report: Some(request(12, None)),
            scope: ppb::ConsolidationScope::ControlTotal.into(),
        })
        .await?
        .into_inner();
    assert_eq!(
        consolidation.consolidated_income_pence,
        pounds(1_066_200_000)
    );
    assert_eq!(
        consolidation.consolidated_expenditure_pence,
        pounds(1_073_160_000)
    );
    let budgets = client
        .get_pooled_budgets(request(12, None))
        .await?
        .into_inner();
    let settlement = budgets.budgets[0].settlement.clone().expect("settled");
    // Spend − pledged: positive is an overspend.
    assert_eq!(settlement.variance_pence, pounds(600_000));
    let split: Vec<i64> = settlement
        .allocations
        .iter()
        .map(|a| a.amount_pence)
        .collect();
    assert_eq!(split, [pounds(300_000), pounds(300_000)]);

    // As recorded at the Q2 assessment: the Q2 figures, Q3 not yet assessed.
    let events = e2e::read_all(&mut ledger).await?;
    let q2 = e2e::assessments(&events)[1].0;
    let funds = client.get_funds(request(6, Some(q2))).await?.into_inner();
    let basis = funds.basis.clone().expect("basis");
    assert_eq!(basis.as_of_sequence, q2);
    let tranches = &funds.funds[0].tranches;
    let q2_tranche = tranches[1].assessment.clone().expect("Q2 assessed");
    assert_eq!(q2_tranche.earned_pence, pounds(540_000));
    assert!(tranches[2].assessment.is_none(), "Q3 not assessed yet");
    let at_q2 = client
        .get_position(request(6, Some(q2)))
        .await?
        .into_inner();
    let ct_q2 = at_q2.control_total.expect("control total");
    assert_eq!(ct_q2.plan_ytd_pence, pounds(-3_600_000));
    assert_eq!(ct_q2.actual_ytd_pence, pounds(-6_000_000));
    assert_eq!(ct_q2.after_fund_ytd_pence, pounds(-3_660_000));

    // What positiond serves is what the domain computes from the log itself.
    let local = e2e::fold(&events)?;
    let year = domain::FinancialYear::new(2018)?;
    let m12 = domain::Month::new(12)?;
    let local_position = local.at(AsOf::Latest)?.position(year, m12)?;
    assert_eq!(
        position.basis.clone().expect("basis").fingerprint,
        local_position.fingerprint()?.to_vec()
    );
    let local_q2 = local
        .at(AsOf::Sequence(q2))?
        .funds_statement(year, domain::Month::new(6)?)?;
    assert_eq!(basis.fingerprint, local_q2.fingerprint()?.to_vec());

    let reference = fingerprints(&mut client).await?;

    // Redelivery: stop A, delete its durable consumer so JetStream delivers every message
    // again, restart — nothing is counted twice.
    a.terminate()?;
    {
        let js = bus::jetstream(bus::connect(&nats.url(), "e2e-admin").await?);
        let stream = js.get_stream(bus::STREAM_NAME).await?;
        // A consumer not created yet (A may have reached the head from ledgerd alone) would
        // deliver everything from the start all the same.
        if let Err(error) = stream.delete_consumer("replica-a").await
            && !error.to_string().contains("consumer not found")
        {
            return Err(error.into());
        }
    }
    a.restart()?;
    a.wait_for(head.sequence, CATCH_UP).await?;
    // Give the redelivered messages time to arrive and be offered.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut client = a.client().await?;
    assert_eq!(
        fingerprints(&mut client).await?,
        reference,
        "after redelivery"
    );

    // A replica started late, from nothing, converges to the same reports.
    let b = Positiond::start(
        &work.path().join("positiond-b"),
        &nats.url(),
        &ledgerd.url(),
        "replica-b",
    )?;
    b.wait_for(head.sequence, CATCH_UP).await?;
    let mut client_b = b.client().await?;
    assert_eq!(
        fingerprints(&mut client_b).await?,
        reference,
        "late replica"
    );

    // Bad questions change nothing and say what is wrong.
    let bad = client_b
        .get_position(ppb::ReportRequest {
            year: 2018,
            month: 13,
            as_of: None,
        })
        .await
        .expect_err("month 13");
    assert_eq!(bad.code(), tonic::Code::InvalidArgument);
    assert!(bad.message().contains("month"), "{}", bad.message());
    let ahead = client_b
        .get_position(request(12, Some(head.sequence + 1)))
        .await
        .expect_err("beyond the head");
    assert_eq!(ahead.code(), tonic::Code::FailedPrecondition);
    Ok(())
}

/// `icsctl position` prints the table finance teams read, and `--csv` / `--json` the same
/// figures for spreadsheets and scripts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icsctl_prints_the_position_as_finance_teams_read_it() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;
    let path = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &path])?;
    let mut ledger = ledgerd.client().await?;
    let head = e2e::head(&mut ledger).await?;
    let positiond = Positiond::start(
        &work.path().join("positiond"),
        &nats.url(),
        &ledgerd.url(),
        "positiond",
    )?;
    positiond.wait_for(head.sequence, CATCH_UP).await?;

    let positiond_url = positiond.url();
    let ctl = |args: &[&str]| {
        let mut all = vec!["--position-server", positiond_url.as_str()];
        all.extend_from_slice(args);
        e2e::icsctl(&ledgerd.url(), &all)
    };
    let status = ctl(&["position-status"])?;
    assert!(status.contains("yes"), "{status}");
    let table = ctl(&["position", "--year", "2018/19", "--month", "12"])?;
    assert!(table.contains("(7,200,000.00)"), "{table}");
    assert!(table.contains("(6,960,000.00)"), "{table}");
    assert!(table.contains("(1,560,000.00)"), "{table}");
    assert!(table.contains("(1,860,000.00)"), "{table}");
    let csv = ctl(&["position", "--year", "2018", "--csv"])?;
    let system = csv
        .lines()
        .find(|l| l.starts_with("SYSTEM,"))
        .expect("a system row");
    assert!(system.contains(",-7200000.00,"), "{system}");
    let json: serde_json::Value =
        serde_json::from_str(&ctl(&["position", "--year", "2018", "--json"])?)?;
    assert_eq!(
        json["control_total"]["after_fund_ytd_pence"],
        serde_json::json!(pounds(-1_560_000))
    );
    let fund = ctl(&["fund", "--year", "2018"])?;
    assert!(fund.contains("FAILED"), "{fund}");
    assert!(fund.contains("5,400,000.00"), "{fund}");
    let budget = ctl(&["budget", "--year", "2018"])?;
    assert!(budget.contains("overspend of 600,000.00"), "{budget}");
    let aob = ctl(&["aob", "--year", "2018"])?;
    assert!(aob.contains("0 mismatched"), "{aob}");
    let consolidation = ctl(&["consolidation", "--year", "2018"])?;
    for figure in ["1,066,200,000.00", "1,073,160,000.00", "734,520,000.00"] {
        assert!(consolidation.contains(figure), "{figure}:\n{consolidation}");
    }
    let contracts = ctl(&["contract", "--year", "2018"])?;
    for figure in ["C1", "84,000,000.00", "C5", "CQ"] {
        assert!(contracts.contains(figure), "{figure}:\n{contracts}");
    }
    let adjustments = ctl(&["adjustments", "--year", "2018"])?;
    for expected in ["C6", "2019/20-M2", "2018/19-M12", "50,000.00"] {
        assert!(adjustments.contains(expected), "{expected}:\n{adjustments}");
    }
    let error = ctl(&["position", "--year", "2018", "--month", "13"]).expect_err("month 13");
    assert!(error.to_string().contains("13"), "{error}");
    Ok(())
}
