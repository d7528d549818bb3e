//! Every figure of BRIEF §8, from folding the events the demo's scenario files record.

use super::scenario::{self, KINGSMERE, VARIANT_B};
use super::{fold, log_of};
use crate::fund::{ConditionKind, FundEvent};
use crate::position::{
    AgreementOfBalances, AobMeasure, AobOptions, AobScope, AobThresholds, AsOf, ConsolidationScope,
    CorrectionKind, MemberPosition, PositionReport, Projection, Recorded, Report, ReportError,
};
use crate::testing::{member, period, pounds, year};
use crate::{Command, Event, Month, Pence, StreamId};

fn commands(text: &str) -> Vec<Command> {
    scenario::parse(text).into_iter().map(|(_, c)| c).collect()
}

fn demo() -> (Vec<(Recorded, Event)>, Projection) {
    let log = log_of(&commands(KINGSMERE));
    let projection = fold(&log);
    (log, projection)
}

fn m(number: u32) -> Month {
    Month::new(number).expect("valid month")
}

fn row<'a>(report: &'a PositionReport, code: &str) -> &'a MemberPosition {
    report
        .members
        .iter()
        .find(|r| r.member == member(code))
        .unwrap_or_else(|| panic!("no row for {code}"))
}

/// The sequence of the event `find` picks.
fn sequence_of(log: &[(Recorded, Event)], find: impl Fn(&Event) -> bool) -> u64 {
    log.iter()
        .find(|(_, e)| find(e))
        .map(|(r, _)| r.sequence)
        .expect("the event is in the log")
}

fn assessment_of(quarter: u8) -> impl Fn(&Event) -> bool {
    move |e| {
        matches!(e, Event::Fund { event: FundEvent::TrancheAssessed { quarter: q, .. }, .. }
            if q.number() == quarter)
    }
}

#[test]
fn the_demo_scenarios_run_through_the_ledger() {
    for text in [KINGSMERE, VARIANT_B] {
        let commands = commands(text);
        assert!(commands.len() > 300, "{} commands", commands.len());
        let log = log_of(&commands);
        assert_eq!(log.len(), commands.len(), "one event per command");
    }
}

#[test]
fn the_system_control_total_and_the_year_end_by_member() {
    let (_, projection) = demo();
    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let report = snapshot.position(year(2018), m(12)).expect("report");
    let ct = &report.control_total;

    // System CT = 0 − 6,000,000 − 3,600,000 + 960,000 + 1,440,000.
    assert_eq!(ct.plan_annual, pounds(-7_200_000));
    assert_eq!(ct.plan_ytd, pounds(-7_200_000));
    let plans = [
        ("KCCG", 0),
        ("KHFT", -6_000_000),
        ("AVT", -3_600_000),
        ("KCHT", 960_000),
        ("AKMH", 1_440_000),
    ];
    for (code, plan) in plans {
        assert_eq!(
            row(&report, code).figures.plan_annual,
            pounds(plan),
            "{code}"
        );
        assert!(row(&report, code).in_control_total, "{code}");
    }
    assert!(!row(&report, "KCC").in_control_total);
    assert!(!row(&report, "KNPCN").in_control_total);

    // Year end, before the fund.
    let year_end = [
        ("KCCG", 900_000_000, 901_020_000, -1_020_000),
        ("KHFT", 420_120_000, 425_400_000, -5_280_000),
        ("AVT", 240_600_000, 244_200_000, -3_600_000),
        ("KCHT", 96_000_000, 94_500_000, 1_500_000),
        ("AKMH", 144_000_000, 142_560_000, 1_440_000),
    ];
    for (code, income, expenditure, net) in year_end {
        let f = &row(&report, code).figures;
        assert_eq!(f.actual_income_ytd, pounds(income), "{code} income");
        assert_eq!(
            f.actual_expenditure_ytd,
            pounds(expenditure),
            "{code} expenditure"
        );
        assert_eq!(f.actual_ytd, pounds(net), "{code}");
        assert!(row(&report, code).returns_missing.is_empty(), "{code}");
    }
    assert_eq!(ct.actual_ytd, pounds(-6_960_000));
    assert_eq!(ct.variance_ytd, pounds(240_000), "240,000 better than CT");

    // The fund: earned 5,400,000 (KHFT 3,600,000; AVT 1,800,000), forfeited 1,800,000.
    assert_eq!(ct.fund_earned_ytd, pounds(5_400_000));
    assert_eq!(ct.fund_forfeited_ytd, pounds(1_800_000));
    assert_eq!(
        row(&report, "KHFT").figures.fund_earned_ytd,
        pounds(3_600_000)
    );
    assert_eq!(
        row(&report, "AVT").figures.fund_earned_ytd,
        pounds(1_800_000)
    );
    assert_eq!(
        row(&report, "KHFT").figures.fund_forfeited_ytd,
        pounds(1_200_000)
    );
    assert_eq!(
        row(&report, "AVT").figures.fund_forfeited_ytd,
        pounds(600_000)
    );
    assert_eq!(
        row(&report, "KHFT").figures.after_fund_ytd,
        pounds(-1_680_000)
    );
    assert_eq!(
        row(&report, "AVT").figures.after_fund_ytd,
        pounds(-1_800_000)
    );

    // After the fund: −1,560,000 against a plan of 0.
    assert_eq!(ct.after_fund_ytd, pounds(-1_560_000));
    assert_eq!(ct.plan_after_fund_ytd, Pence::ZERO);
    // The wider ICS, with the council's −300,000.
    assert_eq!(row(&report, "KCC").figures.after_fund_ytd, pounds(-300_000));
    assert_eq!(row(&report, "KNPCN").figures.after_fund_ytd, Pence::ZERO);
    assert_eq!(report.wider_ics.after_fund_ytd, pounds(-1_860_000));
    // At year end the forecast is the actual.
    assert_eq!(ct.forecast_outturn, pounds(-6_960_000));
}

#[test]
fn the_four_quarter_rows_of_the_finance_test() {
    let (_, projection) = demo();
    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let statement = snapshot.funds_statement(year(2018), m(12)).expect("report");
    let [fund] = statement.funds.as_slice() else {
        panic!("one fund");
    };
    // quarter: plan, actual, finance met, A&E met, earned, YTD after the fund
    let rows = [
        (-1_800_000, -1_800_000, true, true, 1_800_000, 0),
        (-3_600_000, -6_000_000, false, true, 540_000, -3_660_000),
        (-5_400_000, -4_800_000, true, false, 1_260_000, -1_200_000),
        (-7_200_000, -6_960_000, true, true, 1_800_000, -1_560_000),
    ];
    for (tranche, (plan, actual, finance, ae, earned, after)) in fund.tranches.iter().zip(rows) {
        let q = tranche.quarter;
        let ledger = tranche.ledger_now.as_ref().expect("quarter ended");
        let assessment = tranche.assessment.as_ref().expect("assessed");
        assert_eq!(tranche.amount, pounds(1_800_000), "{q}");
        assert_eq!(ledger.control_total_ytd, pounds(plan), "{q} plan");
        assert_eq!(ledger.system_ytd_before_fund, pounds(actual), "{q} actual");
        assert_eq!(ledger.finance_met, finance, "{q} finance");
        let met = |finance_condition: bool| {
            assessment
                .outcomes
                .iter()
                .find(|o| matches!(o.kind, ConditionKind::SystemFinance) == finance_condition)
                .map(|o| o.met)
        };
        assert_eq!(met(true), Some(finance), "{q} finance outcome");
        assert_eq!(met(false), Some(ae), "{q} A&E outcome");
        assert_eq!(assessment.earned, pounds(earned), "{q} earned");
        assert_eq!(
            ledger.system_ytd_after_fund,
            pounds(after),
            "{q} after the fund"
        );
        assert_eq!(assessment.evidence_agrees, Some(true), "{q} evidence");
        assert_eq!(assessment.ledger_at_assessment.finance_met, finance, "{q}");
    }
    assert_eq!(fund.earned, pounds(5_400_000));
    assert_eq!(fund.forfeited, pounds(1_800_000));
    let by_member: Vec<_> = fund
        .recipients
        .iter()
        .map(|r| (r.member.as_str(), r.earned, r.forfeited))
        .collect();
    assert_eq!(
        by_member,
        [
            ("KHFT", pounds(3_600_000), pounds(1_200_000)),
            ("AVT", pounds(1_800_000), pounds(600_000)),
        ]
    );
    // Q4 is paid in 2019/20, so it is not paid in 2018/19's figures; it shows in 2019/20's.
    assert!(fund.tranches[3].paid.is_none());
    assert_eq!(fund.paid, pounds(3_600_000));
    let next = snapshot.funds_statement(year(2019), m(1)).expect("report");
    let [fund] = next.funds.as_slice() else {
        panic!("the 2018/19 fund, paid in 2019/20");
    };
    assert_eq!(fund.paid, pounds(5_400_000));
    assert_eq!(
        fund.tranches[3].paid.as_ref().map(|p| p.period),
        Some(period(2019, 1))
    );
}

#[test]
fn consolidation_eliminates_what_flows_between_the_nhs_bodies() {
    let (_, projection) = demo();
    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let report = snapshot
        .consolidation(year(2018), m(12), ConsolidationScope::ControlTotal)
        .expect("report");
    assert_eq!(report.gross_income, pounds(1_800_720_000));
    assert_eq!(report.gross_expenditure, pounds(1_807_680_000));
    let pairs: Vec<_> = report
        .eliminations
        .iter()
        .map(|e| (e.a.as_str(), e.b.as_str(), e.amount))
        .collect();
    assert_eq!(
        pairs,
        [
            ("AKMH", "KCCG", pounds(126_000_000)),
            ("AVT", "KCCG", pounds(204_600_000)),
            ("KCCG", "KCHT", pounds(84_000_000)),
            ("KCCG", "KHFT", pounds(319_920_000)),
        ]
    );
    assert_eq!(report.eliminated, pounds(734_520_000));
    assert_eq!(report.consolidated_income, pounds(1_066_200_000));
    assert_eq!(report.consolidated_expenditure, pounds(1_073_160_000));
    assert_eq!(report.consolidated_net, pounds(-6_960_000));
    assert_eq!(report.gross_net, report.consolidated_net);

    // The wider ICS also eliminates the PCN's capitation and the council's pooled budget.
    let wider = snapshot
        .consolidation(year(2018), m(12), ConsolidationScope::WiderIcs)
        .expect("report");
    let extra: Vec<_> = wider
        .eliminations
        .iter()
        .filter(|e| e.a == member("KCC") || e.b == member("KCC") || e.b == member("KNPCN"))
        .map(|e| (e.a.as_str(), e.b.as_str(), e.amount))
        .collect();
    // KCCG's 28,000,000 contribution and its 300,000 share of the overspend; C6 at 48 × 50,000.
    assert_eq!(
        extra,
        [
            ("KCC", "KCCG", pounds(28_300_000)),
            ("KCCG", "KNPCN", pounds(2_400_000)),
        ]
    );
}

#[test]
fn the_pooled_budget_overspends_600_000_split_300_000_each() {
    let (_, projection) = demo();
    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let statement = snapshot.pooled_budgets(year(2018), m(12)).expect("report");
    let [bcf] = statement.budgets.as_slice() else {
        panic!("one budget");
    };
    assert_eq!(bcf.host, member("KCC"));
    assert_eq!(bcf.pledged, pounds(40_000_000));
    assert_eq!(bcf.paid_to_date, pounds(40_000_000));
    assert_eq!(bcf.revenue_pool, pounds(37_600_000));
    assert_eq!(bcf.revenue_pool_ytd, pounds(37_600_000));
    assert_eq!(bcf.revenue_spend_ytd, pounds(38_200_000));
    assert_eq!(bcf.revenue_variance_ytd, pounds(600_000));
    assert_eq!(bcf.ring_fenced_pledged, pounds(2_400_000));
    assert_eq!(bcf.ring_fenced_spend_ytd, pounds(2_400_000));
    let dfg = bcf
        .schemes
        .iter()
        .find(|s| s.scheme.as_str() == "DFG")
        .expect("DFG");
    assert!(dfg.ring_fenced);
    assert_eq!(dfg.variance_ytd, Some(Pence::ZERO));
    let partners: Vec<_> = bcf
        .partners
        .iter()
        .map(|p| {
            (
                p.member.as_str(),
                p.pledged_revenue,
                p.pledged_ring_fenced,
                p.paid_to_date,
                p.risk_share,
            )
        })
        .collect();
    assert_eq!(
        partners,
        [
            (
                "KCCG",
                pounds(28_000_000),
                Pence::ZERO,
                pounds(28_000_000),
                pounds(300_000)
            ),
            (
                "KCC",
                pounds(9_600_000),
                pounds(2_400_000),
                pounds(12_000_000),
                pounds(300_000)
            ),
        ]
    );
    let settlement = bcf.settlement.as_ref().expect("settled");
    assert_eq!(settlement.variance, pounds(600_000));
    assert_eq!(settlement.period, period(2018, 12));
    assert_eq!(bcf.closed_in, Some(period(2018, 12)));
    // Before M12 it was on plan, and nothing was settled.
    let m11 = snapshot.pooled_budgets(year(2018), m(11)).expect("report");
    assert_eq!(m11.budgets[0].revenue_variance_ytd, Pence::ZERO);
    assert!(m11.budgets[0].settlement.is_none());
}

#[test]
fn contracts_read_the_same_from_both_sides() {
    let (_, projection) = demo();
    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let statement = snapshot
        .contracts_statement(year(2018), m(12))
        .expect("report");
    let values: Vec<_> = statement
        .contracts
        .iter()
        .map(|c| (c.contract.as_str(), c.value_ytd))
        .collect();
    assert_eq!(
        values,
        [
            ("C1", pounds(84_000_000)),
            ("C2", pounds(126_000_000)),
            ("C3", pounds(72_900_000)),
            ("C4", pounds(240_000_000)),
            ("C5", pounds(204_600_000)),
            ("C6", pounds(2_400_000)),
            ("CQ", pounds(7_020_000)),
        ]
    );
    for c in &statement.contracts {
        assert_eq!(
            c.commissioner.amount_ytd, c.provider.amount_ytd,
            "{}",
            c.contract
        );
        assert_eq!(
            c.commissioner.cash_ytd, c.provider.cash_ytd,
            "{}",
            c.contract
        );
        assert_eq!(c.commissioner.balance, c.provider.balance, "{}", c.contract);
        assert_eq!(
            c.invoiced_ytd, c.paid_ytd,
            "{}: every invoice paid",
            c.contract
        );
        assert_eq!(c.invoices_outstanding, Pence::ZERO);
        assert_eq!(c.disputes_open, Pence::ZERO);
    }
    let c3 = &statement.contracts[2];
    assert_eq!(c3.planned_units_ytd, Some(24_000));
    assert_eq!(c3.activity_units_ytd, 24_300);
    assert_eq!(c3.activity_value_ytd, pounds(900_000));
    let cq = &statement.contracts[6];
    assert_eq!(cq.cquin_ytd, pounds(-780_000));
    assert_eq!(cq.cquin.as_ref().map(|c| c.earned), Some(pounds(7_020_000)));
    // Paid 7,800,000 on account for 7,020,000 earned: KHFT owes KCCG 780,000.
    assert_eq!(cq.provider.balance, pounds(-780_000));
}

fn aob(projection: &Projection, month: u32, scope: AobScope) -> AgreementOfBalances {
    let options = AobOptions {
        scope,
        ..AobOptions::default()
    };
    projection
        .at(AsOf::Latest)
        .and_then(|s| s.agreement_of_balances(year(2018), m(month), options))
        .expect("report")
}

#[test]
fn the_agreement_of_balances_has_no_mismatches_between_nhs_bodies() {
    let (_, projection) = demo();
    for month in [6, 9, 12] {
        let report = aob(&projection, month, AobScope::NhsBodies);
        assert_eq!(report.mismatched_lines, 0, "M{month}: {:#?}", report.lines);
        assert!(report.returns_missing.is_empty());
        assert!(!report.lines.is_empty());
    }
    let m12 = aob(&projection, 12, AobScope::NhsBodies);
    let cquin = m12
        .lines
        .iter()
        .find(|l| l.measure == AobMeasure::ReceivablesPayables)
        .expect("the CQUIN owed back");
    assert_eq!(
        (cquin.creditor.as_str(), cquin.debtor.as_str(), cquin.ledger),
        ("KCCG", "KHFT", pounds(780_000))
    );
    // The council's returns state no balances, so with every member in, its side is missing:
    // KCCG's 28,300,000 with the pool's host is flagged, and the 300,000 payable is listed
    // (at, not over, the threshold).
    let all = aob(&projection, 12, AobScope::AllMembers);
    let council: Vec<_> = all
        .lines
        .iter()
        .filter(|l| l.mismatched)
        .map(|l| {
            (
                l.measure,
                l.creditor.as_str(),
                l.debtor_states,
                l.over_threshold,
            )
        })
        .collect();
    assert_eq!(
        council,
        [
            (
                AobMeasure::IncomeExpenditure,
                "KCC",
                pounds(28_300_000),
                true
            ),
            (
                AobMeasure::ReceivablesPayables,
                "KCC",
                pounds(300_000),
                false
            ),
        ]
    );
}

#[test]
fn variant_b_flags_a_150_000_mismatch_below_the_threshold() {
    let log = log_of(&commands(VARIANT_B));
    let projection = fold(&log);
    let report = aob(&projection, 12, AobScope::NhsBodies);
    let mismatched: Vec<_> = report.lines.iter().filter(|l| l.mismatched).collect();
    let [line] = mismatched.as_slice() else {
        panic!("one mismatch: {mismatched:#?}");
    };
    assert_eq!(line.measure, AobMeasure::IncomeExpenditure);
    assert_eq!(
        (line.creditor.as_str(), line.debtor.as_str()),
        ("AVT", "KCCG")
    );
    assert_eq!(line.creditor_states, pounds(204_600_000));
    assert_eq!(line.debtor_states, pounds(204_450_000));
    assert_eq!(line.ledger, pounds(204_600_000));
    assert_eq!(line.difference, pounds(150_000));
    assert_eq!(line.creditor_vs_ledger, Pence::ZERO);
    assert_eq!(line.debtor_vs_ledger, pounds(-150_000));
    assert_eq!(line.threshold, pounds(3_000_000));
    assert!(!line.over_threshold);
    assert_eq!(report.lines_over_threshold, 0);

    let snapshot = projection.at(AsOf::Latest).expect("snapshot");
    let position = snapshot.position(year(2018), m(12)).expect("report");
    assert_eq!(position.control_total.actual_ytd, pounds(-6_810_000));
    // The Q4 evidence states −6,960,000 (as in the base scenario); the ledger held −6,810,000.
    let funds = snapshot.funds_statement(year(2018), m(12)).expect("report");
    let q4 = funds.funds[0].tranches[3]
        .assessment
        .as_ref()
        .expect("assessed");
    assert_eq!(q4.evidence_agrees, Some(false));
    assert_eq!(
        q4.ledger_at_assessment.system_ytd_before_fund,
        pounds(-6_810_000)
    );
}

/// Variant B's year-end Agreement of Balances between the NHS bodies, against `thresholds`.
fn variant_b_aob(projection: &Projection, thresholds: AobThresholds) -> AgreementOfBalances {
    let options = AobOptions {
        thresholds,
        scope: AobScope::NhsBodies,
    };
    projection
        .at(AsOf::Latest)
        .and_then(|s| s.agreement_of_balances(year(2018), m(12), options))
        .expect("report")
}

#[test]
fn a_threshold_below_150_000_flags_variant_b_s_mismatch_and_one_at_150_000_does_not() {
    let projection = fold(&log_of(&commands(VARIANT_B)));
    let income_expenditure = |threshold: Pence| AobThresholds {
        income_expenditure: threshold,
        ..AobThresholds::default()
    };
    // (threshold on the line, over it, lines over threshold in the report)
    let flagged = |thresholds: AobThresholds| {
        let report = variant_b_aob(&projection, thresholds);
        assert_eq!(report.options.thresholds, thresholds);
        assert_eq!(report.mismatched_lines, 1, "{thresholds:?}");
        let mismatched: Vec<_> = report.lines.iter().filter(|l| l.mismatched).collect();
        let [line] = mismatched.as_slice() else {
            panic!("one mismatch: {mismatched:#?}");
        };
        assert_eq!(
            (line.measure, line.creditor.as_str(), line.debtor.as_str()),
            (AobMeasure::IncomeExpenditure, "AVT", "KCCG")
        );
        assert_eq!(line.difference, pounds(150_000));
        assert_eq!(line.debtor_vs_ledger, pounds(-150_000));
        (
            line.threshold,
            line.over_threshold,
            report.lines_over_threshold,
        )
    };

    // The defaults: £3,000,000 for income and expenditure.
    assert_eq!(
        flagged(AobThresholds::default()),
        (pounds(3_000_000), false, 0)
    );
    // Lowered to £100,000, the same £150,000 must be agreed.
    assert_eq!(
        flagged(income_expenditure(pounds(100_000))),
        (pounds(100_000), true, 1)
    );
    // A difference is flagged when it is *over* the threshold: at exactly £150,000 it is not,
    // a penny less and it is.
    assert_eq!(
        flagged(income_expenditure(pounds(150_000))),
        (pounds(150_000), false, 0)
    );
    let a_penny_under = Pence::new(150_000 * 100 - 1);
    assert_eq!(
        flagged(income_expenditure(a_penny_under)),
        (a_penny_under, true, 1)
    );
    // Each measure has its own threshold: even a zero threshold for receivables and payables
    // flags nothing, as the mismatch is in income and expenditure.
    let receivables_zero = AobThresholds {
        receivables_payables: Pence::ZERO,
        ..AobThresholds::default()
    };
    assert_eq!(flagged(receivables_zero), (pounds(3_000_000), false, 0));
}

#[test]
fn the_post_close_gain_share_leaves_2018_19_as_it_was() {
    let all = commands(KINGSMERE);
    let Some((Command::Contract { .. }, before_it)) = all.split_last() else {
        panic!("the scenario ends with the gain share");
    };
    let before = fold(&log_of(before_it));
    let log = log_of(&all);
    let after = fold(&log);
    let (b, a) = (
        before.at(AsOf::Latest).expect("snapshot"),
        after.at(AsOf::Latest).expect("snapshot"),
    );
    assert_eq!(a.sequence(), b.sequence() + 1);
    let fy = year(2018);
    for month in 1..=12 {
        let month = m(month);
        let same = |x: &dyn Fn(&crate::position::Snapshot<'_>) -> Vec<u8>| {
            assert_eq!(x(&b), x(&a), "{month}");
        };
        // Reports name the sequence they were taken at; compare everything else.
        fn bytes<R: Report>(mut report: R, basis: impl FnOnce(&mut R)) -> Vec<u8> {
            basis(&mut report);
            report.canonical_bytes().expect("encodes")
        }
        same(&|s| {
            bytes(s.position(fy, month).expect("report"), |r| {
                r.basis.as_of_sequence = 0;
                r.basis.as_of_recorded_at_us = 0;
            })
        });
        same(&|s| {
            bytes(
                s.consolidation(fy, month, ConsolidationScope::WiderIcs)
                    .expect("report"),
                |r| {
                    r.basis.as_of_sequence = 0;
                    r.basis.as_of_recorded_at_us = 0;
                },
            )
        });
        same(&|s| {
            bytes(s.contracts_statement(fy, month).expect("report"), |r| {
                r.basis.as_of_sequence = 0;
                r.basis.as_of_recorded_at_us = 0;
            })
        });
        same(&|s| {
            bytes(s.pooled_budgets(fy, month).expect("report"), |r| {
                r.basis.as_of_sequence = 0;
                r.basis.as_of_recorded_at_us = 0;
            })
        });
        same(&|s| {
            bytes(s.funds_statement(fy, month).expect("report"), |r| {
                r.basis.as_of_sequence = 0;
                r.basis.as_of_recorded_at_us = 0;
            })
        });
        same(&|s| {
            bytes(
                s.agreement_of_balances(fy, month, AobOptions::default())
                    .expect("report"),
                |r| {
                    r.basis.as_of_sequence = 0;
                    r.basis.as_of_recorded_at_us = 0;
                },
            )
        });
    }
    let position = a.position(fy, m(12)).expect("report");
    assert_eq!(position.control_total.actual_ytd, pounds(-6_960_000));
    assert_eq!(
        row(&position, "KNPCN").figures.ledger_income_ytd,
        pounds(2_400_000)
    );

    // It is listed against the period it names…
    let adjustments = a.adjustments(fy, m(12)).expect("report");
    assert!(adjustments.posted_this_year.is_empty());
    let [listed] = adjustments.naming_this_year.as_slice() else {
        panic!("one correction names 2018/19");
    };
    assert_eq!(listed.sequence, a.sequence());
    assert_eq!(
        listed.stream,
        StreamId::contract(&crate::testing::code("C6"))
    );
    assert_eq!(listed.kind, CorrectionKind::ContractAdjustment);
    assert_eq!(listed.posted_in, period(2019, 2));
    assert_eq!(listed.corrects, period(2018, 12));
    assert_eq!(listed.amount, pounds(50_000));
    assert_eq!(listed.payer, Some(member("KCCG")));
    assert_eq!(listed.payee, Some(member("KNPCN")));
    assert!(
        b.adjustments(fy, m(12))
            .expect("report")
            .naming_this_year
            .is_empty()
    );

    // …and changes the period it is posted in.
    let now = a.adjustments(year(2019), m(2)).expect("report");
    assert_eq!(now.posted_this_year, adjustments.naming_this_year);
    let position = a.position(year(2019), m(2)).expect("report");
    assert_eq!(
        row(&position, "KCCG").figures.ledger_expenditure_ytd,
        pounds(50_000)
    );
    assert_eq!(
        row(&position, "KNPCN").figures.ledger_income_ytd,
        pounds(50_000)
    );
    let contracts = a.contracts_statement(year(2019), m(2)).expect("report");
    let [c6] = contracts.contracts.as_slice() else {
        panic!("C6 has a posting in 2019/20");
    };
    assert_eq!(c6.contract.as_str(), "C6");
    assert_eq!(c6.adjustments_ytd, pounds(50_000));
    assert_eq!(c6.value_ytd, pounds(50_000));
    assert_eq!(c6.provider.balance, pounds(50_000), "owed to the PCN");
    let m1 = a.position(year(2019), m(1)).expect("report");
    assert_eq!(row(&m1, "KCCG").figures.ledger_expenditure_ytd, Pence::ZERO);
}

#[test]
fn as_of_the_q2_assessment_the_position_shows_the_q2_figures() {
    let (log, projection) = demo();
    let q2 = sequence_of(&log, assessment_of(2));
    let snapshot = projection.at(AsOf::Sequence(q2)).expect("snapshot");
    assert_eq!(snapshot.sequence(), q2);
    let report = snapshot.position(year(2018), m(6)).expect("report");
    let ct = &report.control_total;
    assert_eq!(ct.plan_ytd, pounds(-3_600_000));
    assert_eq!(ct.actual_ytd, pounds(-6_000_000));
    assert_eq!(ct.fund_earned_ytd, pounds(2_340_000));
    assert_eq!(ct.fund_forfeited_ytd, pounds(1_260_000));
    assert_eq!(ct.after_fund_ytd, pounds(-3_660_000));
    assert_eq!(report.basis.closed_through, Some(period(2018, 5)));
    // The year-end question asked then: M7 onwards had not been returned.
    let year_end = snapshot.position(year(2018), m(12)).expect("report");
    assert_eq!(
        row(&year_end, "KHFT").returns_missing,
        (7..=12).map(m).collect::<Vec<_>>()
    );
    assert_eq!(year_end.control_total.actual_ytd, pounds(-6_000_000));
    // KHFT's forecast then: the agency overspend, and the rest of the year on plan.
    assert_eq!(
        row(&year_end, "KHFT").figures.forecast_outturn,
        pounds(-8_400_000)
    );
    let funds = snapshot.funds_statement(year(2018), m(12)).expect("report");
    let assessed: Vec<_> = funds.funds[0]
        .tranches
        .iter()
        .map(|t| t.assessment.is_some())
        .collect();
    assert_eq!(assessed, [true, true, false, false]);

    // The same as a projection folded only that far, byte for byte; and the same by time.
    let prefix = fold(&log[..usize::try_from(q2).expect("small")]);
    let from_prefix = prefix
        .at(AsOf::Latest)
        .and_then(|s| s.position(year(2018), m(6)))
        .expect("report");
    assert_eq!(report.fingerprint(), from_prefix.fingerprint());
    let by_time = projection
        .at(AsOf::RecordedAt(
            log[usize::try_from(q2).expect("small") - 1]
                .0
                .recorded_at_us,
        ))
        .and_then(|s| s.position(year(2018), m(6)))
        .expect("report");
    assert_eq!(by_time, report);
    // A moment before it, Q2 was not assessed yet.
    let before = projection
        .at(AsOf::Sequence(q2 - 1))
        .and_then(|s| s.position(year(2018), m(6)))
        .expect("report");
    assert_eq!(before.control_total.fund_earned_ytd, pounds(1_800_000));
}

#[test]
fn reports_refuse_what_they_cannot_answer() {
    let (log, projection) = demo();
    let last = log.last().map(|(r, _)| r.sequence).expect("events");
    assert_eq!(
        projection
            .at(AsOf::Sequence(last + 1))
            .map(|s| s.sequence()),
        Err(ReportError::NotYetApplied {
            asked: last + 1,
            last
        })
    );
    let empty = projection.at(AsOf::Sequence(0)).expect("snapshot");
    assert_eq!(
        empty.position(year(2018), m(1)),
        Err(ReportError::NotEstablished { sequence: 0 })
    );
    assert_eq!(
        projection.at(AsOf::RecordedAt(0)).map(|s| s.sequence()),
        Ok(0)
    );
}

#[test]
fn a_report_has_stable_canonical_bytes() {
    let (_, first) = demo();
    let (_, second) = demo();
    let report = |p: &Projection| {
        p.at(AsOf::Latest)
            .and_then(|s| s.position(year(2018), m(12)))
            .expect("report")
    };
    let bytes = report(&first).canonical_bytes().expect("encodes");
    assert_eq!(bytes, report(&second).canonical_bytes().expect("encodes"));
    assert!(bytes.starts_with(crate::position::canonical::FORMAT));
    let fingerprint = report(&first).fingerprint().expect("encodes");
    assert_eq!(
        crate::position::canonical::hex(&fingerprint),
        crate::position::canonical::hex(&crate::position::canonical::sha256(&bytes))
    );
}

/// Every kind of report the demo has, as a filed return would name it.
fn every_kind() -> Vec<crate::position::ReportKind> {
    use crate::position::{AobThresholds, ReportKind};
    vec![
        ReportKind::Position,
        ReportKind::Consolidation(ConsolidationScope::ControlTotal),
        ReportKind::Consolidation(ConsolidationScope::WiderIcs),
        ReportKind::PooledBudgets,
        ReportKind::Contracts,
        ReportKind::Funds,
        ReportKind::AgreementOfBalances(AobOptions::default()),
        ReportKind::AgreementOfBalances(AobOptions {
            thresholds: AobThresholds {
                receivables_payables: Pence::ZERO,
                income_expenditure: pounds(1),
            },
            scope: AobScope::AllMembers,
        }),
        ReportKind::Adjustments,
    ]
}

#[test]
fn a_report_taken_by_kind_is_the_report_its_own_method_gives() {
    use crate::position::AnyReport;
    let (log, projection) = demo();
    let q2 = sequence_of(&log, assessment_of(2));
    let snapshot = projection.at(AsOf::Sequence(q2)).expect("snapshot");
    let (fy, month) = (year(2018), m(6));
    for kind in every_kind() {
        let report = snapshot.report(kind, fy, month).expect("report");
        assert_eq!(report.kind(), kind, "{kind}");
        assert_eq!(report.basis().as_of_sequence, q2);
        assert_eq!(report.basis().month, month);
        let direct = match kind {
            crate::position::ReportKind::Position => {
                AnyReport::Position(snapshot.position(fy, month).expect("report"))
            }
            crate::position::ReportKind::Consolidation(scope) => {
                AnyReport::Consolidation(snapshot.consolidation(fy, month, scope).expect("report"))
            }
            crate::position::ReportKind::PooledBudgets => {
                AnyReport::PooledBudgets(snapshot.pooled_budgets(fy, month).expect("report"))
            }
            crate::position::ReportKind::Contracts => {
                AnyReport::Contracts(snapshot.contracts_statement(fy, month).expect("report"))
            }
            crate::position::ReportKind::Funds => {
                AnyReport::Funds(snapshot.funds_statement(fy, month).expect("report"))
            }
            crate::position::ReportKind::AgreementOfBalances(options) => {
                AnyReport::AgreementOfBalances(
                    snapshot
                        .agreement_of_balances(fy, month, options)
                        .expect("report"),
                )
            }
            crate::position::ReportKind::Adjustments => {
                AnyReport::Adjustments(snapshot.adjustments(fy, month).expect("report"))
            }
        };
        assert_eq!(report, direct, "{kind}");
        assert_eq!(
            report.fingerprint().expect("encodes"),
            crate::position::canonical::sha256(&report.canonical_bytes().expect("encodes")),
        );
        assert!(
            report
                .canonical_bytes()
                .expect("encodes")
                .windows(kind.canonical_kind().len())
                .any(|w| w == kind.canonical_kind().as_bytes()),
            "{kind}: the canonical bytes name the kind"
        );
    }
}

#[test]
fn a_filed_return_folds_and_changes_no_figure() {
    use crate::system::{FiledReturn, Filer, SystemEvent};
    let (mut log, before) = demo();
    let last = log.last().map(|(r, _)| r.sequence).expect("a log");
    let filed = Event::System(SystemEvent::ReturnFiled(FiledReturn {
        filer: Filer::Member(member("KHFT")),
        report: crate::position::ReportKind::Position,
        period: period(2018, 12),
        as_of_sequence: last,
        fingerprint: [7; 32],
    }));
    log.push((super::recorded(last + 1), filed));
    let after = fold(&log);
    assert_eq!(after.events(), before.events() + 1);
    let (fy, month) = (year(2018), m(12));
    for kind in every_kind() {
        // As of the sequence before it: byte for byte the same report.
        let was = before
            .at(AsOf::Latest)
            .and_then(|s| s.report(kind, fy, month))
            .expect("report");
        let at_last = after
            .at(AsOf::Sequence(last))
            .and_then(|s| s.report(kind, fy, month))
            .expect("report");
        assert_eq!(at_last.canonical_bytes(), was.canonical_bytes(), "{kind}");
        // Counting it: only the basis moves on.
        let mut now = after
            .at(AsOf::Latest)
            .and_then(|s| s.report(kind, fy, month))
            .expect("report");
        assert_eq!(now.basis().as_of_sequence, last + 1);
        let rebased = |report: &mut crate::position::AnyReport| {
            let basis = match report {
                crate::position::AnyReport::Position(r) => &mut r.basis,
                crate::position::AnyReport::Consolidation(r) => &mut r.basis,
                crate::position::AnyReport::PooledBudgets(r) => &mut r.basis,
                crate::position::AnyReport::Contracts(r) => &mut r.basis,
                crate::position::AnyReport::Funds(r) => &mut r.basis,
                crate::position::AnyReport::AgreementOfBalances(r) => &mut r.basis,
                crate::position::AnyReport::Adjustments(r) => &mut r.basis,
            };
            basis.as_of_sequence = 0;
            basis.as_of_recorded_at_us = 0;
        };
        let mut was = was;
        rebased(&mut now);
        rebased(&mut was);
        assert_eq!(now, was, "{kind}");
    }
}
