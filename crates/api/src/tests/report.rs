//! The position reports: requests checked (and refused naming the field), the statuses for
//! reports that cannot be given yet, and every domain report copied field by field into its
//! message with its fingerprint. Reports here are built by hand with a distinct value in every
//! field, so a field copied into the wrong place shows; positiond's tests check the reports of
//! the demo ledger end to end.

use domain::budget::{Allocation, Share};
use domain::fund::{Condition, ConditionKind, ConditionOutcome, Figures};
use domain::position::{
    AdjustmentsReport, AgreementOfBalances, AobLine, AobMeasure, AobOptions, AobScope,
    AobThresholds, AsOf, Basis, BudgetPartner, ConsolidatedMember, ConsolidationReport,
    ConsolidationScope, ContractSide, ContractStatement, ContractSummary, CorrectionKind,
    CquinOutcome, Elimination, FundStatement, FundSummary, LedgerTest, ListedCorrection,
    MemberPosition, MissingReturn, PooledBudget, PooledBudgetStatement, PositionFigures,
    PositionReport, RecipientSummary, Recorded, Report, ReportError, SchemeSpend, Settlement,
    TrancheAssessment, TranchePaid, TrancheSummary,
};
use domain::{DomainError, MemberKind, Month, Pence, StreamId, SystemId};
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic_types::StatusExt;

use super::fixtures::{bp, code, member, period, quarter, text, year};
use crate::pb;
use crate::position_pb as ppb;
use crate::report::{
    Question, ReportToProto, aob_question, check_as_of, consolidation_question,
    question_from_proto, question_to_proto, status_from_report,
};
use crate::status_from_domain;

fn month(m: u32) -> Month {
    Month::new(m).expect("valid month")
}

fn p(pence: i64) -> Pence {
    Pence::new(pence)
}

fn pb_period(year: u32, month: u32) -> Option<pb::Period> {
    Some(pb::Period { year, month })
}

fn request(year: u32, month: u32, as_of: Option<ppb::as_of::At>) -> ppb::ReportRequest {
    ppb::ReportRequest {
        year,
        month,
        as_of: as_of.map(|at| ppb::AsOf { at: Some(at) }),
    }
}

/// Asserts that `result` is Invalid naming `field`.
#[track_caller]
fn refused<T: std::fmt::Debug>(result: Result<T, DomainError>, field: &str) {
    match result {
        Err(DomainError::Invalid { field: got, reason }) => {
            assert_eq!(got, field, "reason: {reason}");
            assert!(!reason.is_empty());
        }
        other => panic!("expected Invalid naming {field}, got {other:?}"),
    }
}

/// The status as a client receives it (through the trailers).
fn over_the_wire(status: &tonic::Status) -> tonic::Status {
    let mut headers = MetadataMap::new().into_headers();
    status
        .add_header(&mut headers)
        .expect("status fits in headers");
    tonic::Status::from_header_map(&headers).expect("a status is in the headers")
}

// ---- requests ------------------------------------------------------------------------------

#[test]
fn a_report_request_is_a_year_a_month_and_a_point_in_the_log() {
    use ppb::as_of::At;
    let latest = question_from_proto(request(2018, 12, None)).expect("valid");
    assert_eq!(
        latest,
        Question {
            year: year(2018),
            month: month(12),
            as_of: AsOf::Latest,
        }
    );
    let at = question_from_proto(request(2018, 6, Some(At::Sequence(120)))).expect("valid");
    assert_eq!(at.as_of, AsOf::Sequence(120));
    assert_eq!(at.month, month(6));
    let by_time = question_from_proto(request(2019, 1, Some(At::RecordedAtUs(-5)))).expect("ok");
    assert_eq!(by_time.as_of, AsOf::RecordedAt(-5));
    for question in [latest, at, by_time] {
        assert_eq!(
            question_from_proto(question_to_proto(&question)).expect("round trip"),
            question
        );
    }
}

#[test]
fn malformed_report_requests_name_the_field() {
    use ppb::as_of::At;
    refused(question_from_proto(request(0, 6, None)), "year");
    refused(question_from_proto(request(1999, 6, None)), "year");
    refused(question_from_proto(request(3000, 6, None)), "year");
    refused(question_from_proto(request(2018, 0, None)), "month");
    refused(question_from_proto(request(2018, 13, None)), "month");
    refused(
        question_from_proto(ppb::ReportRequest {
            year: 2018,
            month: 6,
            as_of: Some(ppb::AsOf { at: None }),
        }),
        "as_of",
    );
    refused(
        question_from_proto(request(2018, 6, Some(At::Sequence(0)))),
        "as_of.sequence",
    );
}

#[test]
fn consolidation_requests_name_the_field_and_default_to_the_control_total() {
    let asked = |report: Option<ppb::ReportRequest>, scope: i32| {
        consolidation_question(ppb::ConsolidationRequest { report, scope })
    };
    let (question, scope) =
        asked(Some(request(2018, 12, None)), 0).expect("unspecified is the control total");
    assert_eq!(question.month, month(12));
    assert_eq!(scope, ConsolidationScope::ControlTotal);
    assert_eq!(
        asked(
            Some(request(2018, 12, None)),
            ppb::ConsolidationScope::WiderIcs.into()
        )
        .expect("valid")
        .1,
        ConsolidationScope::WiderIcs
    );
    assert_eq!(
        asked(
            Some(request(2018, 12, None)),
            ppb::ConsolidationScope::ControlTotal.into()
        )
        .expect("valid")
        .1,
        ConsolidationScope::ControlTotal
    );
    refused(asked(None, 0), "report");
    refused(asked(Some(request(2018, 13, None)), 0), "report.month");
    refused(asked(Some(request(17, 1, None)), 0), "report.year");
    refused(
        asked(
            Some(ppb::ReportRequest {
                year: 2018,
                month: 1,
                as_of: Some(ppb::AsOf { at: None }),
            }),
            0,
        ),
        "report.as_of",
    );
    refused(asked(Some(request(2018, 12, None)), 9), "scope");
}

#[test]
fn agreement_of_balances_requests_name_the_field_and_default_to_the_brief() {
    let asked = |report: Option<ppb::ReportRequest>,
                 scope: i32,
                 receivables_payables: Option<i64>,
                 income_expenditure: Option<i64>| {
        aob_question(ppb::AgreementOfBalancesRequest {
            report,
            scope,
            receivables_payables_threshold_pence: receivables_payables,
            income_expenditure_threshold_pence: income_expenditure,
        })
    };
    let (question, options) = asked(Some(request(2018, 9, None)), 0, None, None).expect("valid");
    assert_eq!(question.month, month(9));
    assert_eq!(options, AobOptions::default());
    assert_eq!(options.scope, AobScope::NhsBodies);
    assert_eq!(
        options.thresholds.receivables_payables,
        p(300_000 * 100),
        "£300,000"
    );
    assert_eq!(
        options.thresholds.income_expenditure,
        p(3_000_000 * 100),
        "£3,000,000"
    );
    let (_, options) = asked(
        Some(request(2018, 12, None)),
        ppb::AobScope::AllMembers.into(),
        Some(0),
        Some(150_000),
    )
    .expect("valid");
    assert_eq!(
        options,
        AobOptions {
            thresholds: AobThresholds {
                receivables_payables: Pence::ZERO,
                income_expenditure: p(150_000),
            },
            scope: AobScope::AllMembers,
        }
    );
    refused(asked(None, 0, None, None), "report");
    refused(
        asked(Some(request(2018, 0, None)), 0, None, None),
        "report.month",
    );
    refused(asked(Some(request(2018, 6, None)), -1, None, None), "scope");
    refused(
        asked(Some(request(2018, 6, None)), 0, Some(-1), None),
        "receivables_payables_threshold_pence",
    );
    refused(
        asked(Some(request(2018, 6, None)), 0, None, Some(i64::MIN)),
        "income_expenditure_threshold_pence",
    );
}

#[test]
fn a_malformed_request_is_invalid_argument_naming_the_field() {
    let error = consolidation_question(ppb::ConsolidationRequest {
        report: Some(request(2018, 13, None)),
        scope: 0,
    })
    .expect_err("month 13");
    let status = over_the_wire(&status_from_domain(&error));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("report.month"), "{status:?}");
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "report.month");
}

// ---- what cannot be answered yet -------------------------------------------------------------

const FOLDED: Recorded = Recorded {
    sequence: 420,
    recorded_at_us: 1_600_000_000_000_000,
};

/// Asserts a FAILED_PRECONDITION with `reason`, saying how far positiond has got.
#[track_caller]
fn not_yet(status: &tonic::Status, reason: &str, subject: &str) {
    let status = over_the_wire(status);
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("sequence 420"),
        "says how far: {}",
        status.message()
    );
    let details = status.get_error_details();
    let info = details.error_info().expect("ErrorInfo");
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, "ics.position.v1");
    assert_eq!(
        info.metadata.get("folded_sequence").map(String::as_str),
        Some("420")
    );
    assert_eq!(
        info.metadata
            .get("folded_recorded_at_us")
            .map(String::as_str),
        Some("1600000000000000")
    );
    let failure = details.precondition_failure().expect("PreconditionFailure");
    assert_eq!(failure.violations[0].r#type, reason);
    assert_eq!(failure.violations[0].subject, subject);
}

#[test]
fn as_of_beyond_what_is_folded_is_failed_precondition_saying_how_far() {
    for within in [
        AsOf::Latest,
        AsOf::Sequence(1),
        AsOf::Sequence(420),
        AsOf::RecordedAt(i64::MIN),
        AsOf::RecordedAt(FOLDED.recorded_at_us),
    ] {
        assert!(check_as_of(within, FOLDED).is_ok(), "{within:?}");
    }
    let status = check_as_of(AsOf::Sequence(421), FOLDED).expect_err("beyond");
    assert!(status.message().contains("421"));
    not_yet(&status, "NOT_YET_FOLDED", "as_of.sequence");
    let status = check_as_of(AsOf::RecordedAt(FOLDED.recorded_at_us + 1), FOLDED)
        .expect_err("recorded later than the last folded event");
    not_yet(&status, "NOT_YET_FOLDED", "as_of.recorded_at_us");
    // Nothing folded: any point is beyond it.
    let none = Recorded::default();
    let status = check_as_of(AsOf::Sequence(1), none).expect_err("nothing folded");
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("no events"),
        "{}",
        status.message()
    );
}

#[test]
fn a_report_the_domain_cannot_give_maps_to_its_status() {
    let status = status_from_report(
        &ReportError::NotYetApplied {
            asked: 500,
            last: 420,
        },
        FOLDED,
    );
    not_yet(&status, "NOT_YET_FOLDED", "as_of.sequence");
    let status = status_from_report(&ReportError::NotEstablished { sequence: 0 }, FOLDED);
    not_yet(&status, "NOT_ESTABLISHED", "as_of");
    assert!(status.message().contains("not established"));
    let status = status_from_report(
        &ReportError::Overflow {
            what: "consolidation",
        },
        FOLDED,
    );
    assert_eq!(status.code(), Code::Internal);
    assert!(status.message().contains("consolidation"));
}

// ---- reports -------------------------------------------------------------------------------

const FINGERPRINT_LEN: usize = 32;

fn basis() -> Basis {
    Basis {
        system: SystemId::new("kav").expect("id"),
        system_name: text("Kingsmere & Alder Valley ICS"),
        year: year(2018),
        month: month(6),
        as_of_sequence: 181,
        as_of_recorded_at_us: 1_538_352_000_000_001,
        closed_through: Some(period("2018/19-M5")),
    }
}

/// The expected proto basis of a report of `basis()` with `fingerprint`.
fn basis_pb(fingerprint: [u8; 32]) -> Option<ppb::Basis> {
    Some(ppb::Basis {
        system: "kav".to_string(),
        system_name: "Kingsmere & Alder Valley ICS".to_string(),
        year: 2018,
        month: 6,
        as_of_sequence: 181,
        as_of_recorded_at_us: 1_538_352_000_000_001,
        closed_through: pb_period(2018, 5),
        fingerprint: fingerprint.to_vec(),
    })
}

/// Converts `report`, checks the basis carries its fingerprint, and that the fingerprint moves
/// when the report does.
#[track_caller]
fn converted<R: ReportToProto + Clone>(report: &R, changed: impl FnOnce(&mut R)) -> R::Proto {
    let fingerprint = report.fingerprint().expect("canonical");
    assert_eq!(fingerprint.len(), FINGERPRINT_LEN);
    let mut other = report.clone();
    changed(&mut other);
    assert_ne!(
        other.fingerprint().expect("canonical"),
        fingerprint,
        "a different report has a different fingerprint"
    );
    report.to_proto().expect("converts")
}

fn figures(base: i64) -> PositionFigures {
    let n = |i: i64| p(base + i);
    PositionFigures {
        plan_annual: n(1),
        plan_income_ytd: n(2),
        plan_expenditure_ytd: n(3),
        plan_ytd: n(4),
        actual_income_ytd: n(5),
        actual_expenditure_ytd: n(6),
        actual_ytd: n(7),
        variance_ytd: n(8),
        forecast_outturn: n(9),
        forecast_variance: n(10),
        fund_available_ytd: n(11),
        fund_earned_ytd: n(12),
        fund_forfeited_ytd: n(13),
        fund_clawed_back_ytd: n(14),
        plan_after_fund_ytd: n(15),
        after_fund_ytd: n(16),
        variance_after_fund_ytd: n(17),
        ledger_income_ytd: n(18),
        ledger_expenditure_ytd: n(19),
    }
}

fn figures_pb(base: i64) -> Option<ppb::PositionFigures> {
    Some(ppb::PositionFigures {
        plan_annual_pence: base + 1,
        plan_income_ytd_pence: base + 2,
        plan_expenditure_ytd_pence: base + 3,
        plan_ytd_pence: base + 4,
        actual_income_ytd_pence: base + 5,
        actual_expenditure_ytd_pence: base + 6,
        actual_ytd_pence: base + 7,
        variance_ytd_pence: base + 8,
        forecast_outturn_pence: base + 9,
        forecast_variance_pence: base + 10,
        fund_available_ytd_pence: base + 11,
        fund_earned_ytd_pence: base + 12,
        fund_forfeited_ytd_pence: base + 13,
        fund_clawed_back_ytd_pence: base + 14,
        plan_after_fund_ytd_pence: base + 15,
        after_fund_ytd_pence: base + 16,
        variance_after_fund_ytd_pence: base + 17,
        ledger_income_ytd_pence: base + 18,
        ledger_expenditure_ytd_pence: base + 19,
    })
}

#[test]
fn the_position_report_converts_field_by_field() {
    let report = PositionReport {
        basis: basis(),
        members: vec![
            MemberPosition {
                member: member("AVT"),
                name: text("Alder Valley NHS Trust"),
                kind: MemberKind::AcuteTrust,
                in_control_total: true,
                plan_revision: Some(2),
                returns_missing: vec![month(5), month(6)],
                figures: figures(-100),
            },
            MemberPosition {
                member: member("KCC"),
                name: text("Kingsmere County Council"),
                kind: MemberKind::LocalAuthority,
                in_control_total: false,
                plan_revision: None,
                returns_missing: vec![],
                figures: figures(-200),
            },
        ],
        control_total: figures(1_000),
        wider_ics: figures(-720_000_000),
    };
    let proto = converted(&report, |r| {
        r.members[1].figures.ledger_expenditure_ytd = p(1)
    });
    assert_eq!(
        proto,
        ppb::PositionReport {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            members: vec![
                ppb::MemberPosition {
                    member: "AVT".to_string(),
                    name: "Alder Valley NHS Trust".to_string(),
                    kind: pb::MemberKind::AcuteTrust.into(),
                    in_control_total: true,
                    plan_revision: Some(2),
                    returns_missing: vec![5, 6],
                    figures: figures_pb(-100),
                },
                ppb::MemberPosition {
                    member: "KCC".to_string(),
                    name: "Kingsmere County Council".to_string(),
                    kind: pb::MemberKind::LocalAuthority.into(),
                    in_control_total: false,
                    plan_revision: None,
                    returns_missing: vec![],
                    figures: figures_pb(-200),
                },
            ],
            control_total: figures_pb(1_000),
            wider_ics: figures_pb(-720_000_000),
        }
    );
}

#[test]
fn the_consolidation_report_converts_field_by_field() {
    let report = ConsolidationReport {
        basis: basis(),
        scope: ConsolidationScope::WiderIcs,
        members: vec![ConsolidatedMember {
            member: member("KCCG"),
            income_ytd: p(11),
            expenditure_ytd: p(12),
        }],
        gross_income: p(1),
        gross_expenditure: p(2),
        gross_net: p(-3),
        eliminations: vec![Elimination {
            a: member("AKMH"),
            b: member("KCCG"),
            a_income_from_b: p(21),
            b_income_from_a: p(22),
            amount: p(43),
        }],
        eliminated: p(4),
        consolidated_income: p(5),
        consolidated_expenditure: p(6),
        consolidated_net: p(-7),
    };
    let proto = converted(&report, |r| r.scope = ConsolidationScope::ControlTotal);
    assert_eq!(
        proto,
        ppb::ConsolidationReport {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            scope: ppb::ConsolidationScope::WiderIcs.into(),
            members: vec![ppb::ConsolidatedMember {
                member: "KCCG".to_string(),
                income_ytd_pence: 11,
                expenditure_ytd_pence: 12,
            }],
            gross_income_pence: 1,
            gross_expenditure_pence: 2,
            gross_net_pence: -3,
            eliminations: vec![ppb::Elimination {
                a: "AKMH".to_string(),
                b: "KCCG".to_string(),
                a_income_from_b_pence: 21,
                b_income_from_a_pence: 22,
                amount_pence: 43,
            }],
            eliminated_pence: 4,
            consolidated_income_pence: 5,
            consolidated_expenditure_pence: 6,
            consolidated_net_pence: -7,
        }
    );
}

#[test]
fn the_pooled_budget_statement_converts_field_by_field() {
    let settled = PooledBudget {
        budget: code("BCF"),
        name: text("Better Care Fund"),
        host: member("KCC"),
        year: year(2018),
        partners: vec![BudgetPartner {
            member: member("KCCG"),
            host: false,
            pledged_revenue: p(1),
            pledged_ring_fenced: p(2),
            pledged: p(3),
            paid_to_date: p(4),
            unpaid: p(-5),
            overspend_share: bp(5_000),
            underspend_share: bp(7_000),
            risk_share: p(6),
        }],
        schemes: vec![
            SchemeSpend {
                scheme: code("COMMUNITY"),
                name: text("Community health and social care"),
                ring_fenced: false,
                pledged: None,
                spend_ytd: p(7),
                variance_ytd: None,
            },
            SchemeSpend {
                scheme: code("DFG"),
                name: text("Disabled Facilities Grant"),
                ring_fenced: true,
                pledged: Some(p(8)),
                spend_ytd: p(9),
                variance_ytd: Some(p(-10)),
            },
        ],
        revenue_pool: p(11),
        revenue_pool_ytd: p(12),
        revenue_spend_ytd: p(13),
        revenue_variance_ytd: p(14),
        ring_fenced_pledged: p(15),
        ring_fenced_spend_ytd: p(16),
        pledged: p(17),
        paid_to_date: p(18),
        spend_ytd: p(19),
        settlement: Some(Settlement {
            period: period("2018/19-M12"),
            revenue_pledged: p(20),
            revenue_spend: p(21),
            variance: p(22),
            shares: vec![Share {
                member: member("KCCG"),
                share: bp(5_000),
            }],
            allocations: vec![Allocation {
                member: member("KCC"),
                amount: p(23),
            }],
        }),
        closed_in: Some(period("2018/19-M12")),
    };
    let open = PooledBudget {
        budget: code("BCF2"),
        partners: vec![],
        schemes: vec![],
        settlement: None,
        closed_in: None,
        ..settled.clone()
    };
    let report = PooledBudgetStatement {
        basis: basis(),
        budgets: vec![settled, open],
    };
    let proto = converted(&report, |r| r.budgets[0].schemes[1].pledged = None);
    let settled_pb = ppb::PooledBudget {
        budget: "BCF".to_string(),
        name: "Better Care Fund".to_string(),
        host: "KCC".to_string(),
        year: 2018,
        partners: vec![ppb::BudgetPartner {
            member: "KCCG".to_string(),
            host: false,
            pledged_revenue_pence: 1,
            pledged_ring_fenced_pence: 2,
            pledged_pence: 3,
            paid_to_date_pence: 4,
            unpaid_pence: -5,
            overspend_share_bp: 5_000,
            underspend_share_bp: 7_000,
            risk_share_pence: 6,
        }],
        schemes: vec![
            ppb::SchemeSpend {
                scheme: "COMMUNITY".to_string(),
                name: "Community health and social care".to_string(),
                ring_fenced: false,
                pledged_pence: None,
                spend_ytd_pence: 7,
                variance_ytd_pence: None,
            },
            ppb::SchemeSpend {
                scheme: "DFG".to_string(),
                name: "Disabled Facilities Grant".to_string(),
                ring_fenced: true,
                pledged_pence: Some(8),
                spend_ytd_pence: 9,
                variance_ytd_pence: Some(-10),
            },
        ],
        revenue_pool_pence: 11,
        revenue_pool_ytd_pence: 12,
        revenue_spend_ytd_pence: 13,
        revenue_variance_ytd_pence: 14,
        ring_fenced_pledged_pence: 15,
        ring_fenced_spend_ytd_pence: 16,
        pledged_pence: 17,
        paid_to_date_pence: 18,
        spend_ytd_pence: 19,
        settlement: Some(ppb::Settlement {
            period: pb_period(2018, 12),
            revenue_pledged_pence: 20,
            revenue_spend_pence: 21,
            variance_pence: 22,
            shares: vec![pb::Share {
                member: "KCCG".to_string(),
                share_bp: 5_000,
            }],
            allocations: vec![pb::Allocation {
                member: "KCC".to_string(),
                amount_pence: 23,
            }],
        }),
        closed_in: pb_period(2018, 12),
    };
    let open_pb = ppb::PooledBudget {
        budget: "BCF2".to_string(),
        partners: vec![],
        schemes: vec![],
        settlement: None,
        closed_in: None,
        ..settled_pb.clone()
    };
    assert_eq!(
        proto,
        ppb::PooledBudgetStatement {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            budgets: vec![settled_pb, open_pb],
        }
    );
}

#[test]
fn the_contract_statement_converts_field_by_field() {
    let side = |m: &str, base: i64| ContractSide {
        member: member(m),
        amount_ytd: p(base + 1),
        cash_ytd: p(base + 2),
        balance: p(base - 3),
    };
    let side_pb = |m: &str, base: i64| {
        Some(ppb::ContractSide {
            member: m.to_string(),
            amount_ytd_pence: base + 1,
            cash_ytd_pence: base + 2,
            balance_pence: base - 3,
        })
    };
    let cquin = ContractSummary {
        contract: code("CQ"),
        description: text("CQUIN"),
        year: year(2018),
        model: "cquin".to_string(),
        annual_value: p(1),
        terminated_in: Some(period("2018/19-M11")),
        phased_ytd: p(2),
        activity_value_ytd: p(3),
        cquin_ytd: p(-4),
        adjustments_ytd: p(5),
        written_off_ytd: p(6),
        value_ytd: p(7),
        planned_units_ytd: Some(8),
        activity_units_ytd: 9,
        invoiced_ytd: p(10),
        paid_ytd: p(11),
        invoices_outstanding: p(12),
        disputed_ytd: p(13),
        disputes_open: p(14),
        cquin: Some(CquinOutcome {
            period: period("2018/19-M12"),
            achievement: bp(9_000),
            value: p(15),
            earned: p(16),
            deduction: p(17),
        }),
        commissioner: side("KCCG", 100),
        provider: side("KHFT", 200),
    };
    let block = ContractSummary {
        contract: code("C1"),
        model: "block".to_string(),
        terminated_in: None,
        planned_units_ytd: None,
        cquin: None,
        ..cquin.clone()
    };
    let report = ContractStatement {
        basis: basis(),
        contracts: vec![block, cquin],
    };
    let proto = converted(&report, |r| r.contracts[1].activity_units_ytd = 10);
    let cquin_pb = ppb::ContractSummary {
        contract: "CQ".to_string(),
        description: "CQUIN".to_string(),
        year: 2018,
        model: "cquin".to_string(),
        annual_value_pence: 1,
        terminated_in: pb_period(2018, 11),
        phased_ytd_pence: 2,
        activity_value_ytd_pence: 3,
        cquin_ytd_pence: -4,
        adjustments_ytd_pence: 5,
        written_off_ytd_pence: 6,
        value_ytd_pence: 7,
        planned_units_ytd: Some(8),
        activity_units_ytd: 9,
        invoiced_ytd_pence: 10,
        paid_ytd_pence: 11,
        invoices_outstanding_pence: 12,
        disputed_ytd_pence: 13,
        disputes_open_pence: 14,
        cquin: Some(ppb::CquinOutcome {
            period: pb_period(2018, 12),
            achievement_bp: 9_000,
            value_pence: 15,
            earned_pence: 16,
            deduction_pence: 17,
        }),
        commissioner: side_pb("KCCG", 100),
        provider: side_pb("KHFT", 200),
    };
    let block_pb = ppb::ContractSummary {
        contract: "C1".to_string(),
        model: "block".to_string(),
        terminated_in: None,
        planned_units_ytd: None,
        cquin: None,
        ..cquin_pb.clone()
    };
    assert_eq!(
        proto,
        ppb::ContractStatement {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            contracts: vec![block_pb, cquin_pb],
        }
    );
}

#[test]
fn the_fund_statement_converts_field_by_field() {
    let ledger = |base: i64, met: bool| LedgerTest {
        control_total_ytd: p(base - 1),
        system_ytd_before_fund: p(base - 2),
        finance_met: met,
        system_ytd_after_fund: p(base - 3),
    };
    let ledger_pb = |base: i64, met: bool| {
        Some(ppb::LedgerTest {
            control_total_ytd_pence: base - 1,
            system_ytd_before_fund_pence: base - 2,
            finance_met: met,
            system_ytd_after_fund_pence: base - 3,
        })
    };
    let allocation = |m: &str, amount: i64| Allocation {
        member: member(m),
        amount: p(amount),
    };
    let allocation_pb = |m: &str, amount: i64| pb::Allocation {
        member: m.to_string(),
        amount_pence: amount,
    };
    let outcome = ConditionOutcome {
        condition: code("FIN"),
        kind: ConditionKind::SystemFinance,
        weight: bp(7_000),
        amount: p(31),
        figures: Figures::SystemFinance {
            actual_ytd: p(-32),
            control_total_ytd: p(-33),
        },
        met: true,
        earned: p(34),
        forfeited: p(35),
    };
    let q1 = TrancheSummary {
        quarter: quarter(1),
        amount: p(1),
        assessment: Some(TrancheAssessment {
            period: period("2018/19-M4"),
            sequence: 77,
            outcomes: vec![outcome],
            earned: p(2),
            forfeited: p(3),
            earned_by_recipient: vec![allocation("KHFT", 4)],
            forfeited_by_recipient: vec![allocation("AVT", 5)],
            ledger_at_assessment: ledger(100, true),
            evidence_agrees: Some(false),
        }),
        paid: Some(TranchePaid {
            period: period("2018/19-M5"),
            payments: vec![allocation("KHFT", 6)],
        }),
        clawed_back: p(7),
        earned_to_date: p(8),
        ledger_now: Some(ledger(200, false)),
    };
    let q2 = TrancheSummary {
        quarter: quarter(2),
        assessment: None,
        paid: None,
        ledger_now: None,
        ..q1.clone()
    };
    let report = FundStatement {
        basis: basis(),
        funds: vec![FundSummary {
            fund: code("SSF"),
            name: text("System sustainability fund"),
            year: year(2018),
            total: p(9),
            conditions: vec![Condition {
                condition: code("AE"),
                kind: ConditionKind::AeFourHour {
                    threshold: bp(9_000),
                },
                weight: bp(3_000),
            }],
            recipients: vec![RecipientSummary {
                member: member("KHFT"),
                allocation: p(10),
                earned: p(11),
                forfeited: p(12),
                paid: p(13),
                clawed_back: p(14),
            }],
            tranches: vec![q1, q2],
            earned: p(15),
            forfeited: p(16),
            paid: p(17),
            clawed_back: p(18),
        }],
    };
    let proto = converted(&report, |r| {
        if let Some(a) = r.funds[0].tranches[0].assessment.as_mut() {
            a.evidence_agrees = None;
        }
    });
    let q1_pb = ppb::TrancheSummary {
        quarter: 1,
        amount_pence: 1,
        assessment: Some(ppb::TrancheAssessment {
            period: pb_period(2018, 4),
            sequence: 77,
            outcomes: vec![pb::ConditionOutcome {
                condition: "FIN".to_string(),
                kind: pb::ConditionKind::SystemFinance.into(),
                weight_bp: 7_000,
                threshold_bp: None,
                amount_pence: 31,
                figures: Some(pb::Figures {
                    figures: Some(pb::figures::Figures::SystemFinance(
                        pb::figures::SystemFinance {
                            actual_ytd_pence: -32,
                            control_total_ytd_pence: -33,
                        },
                    )),
                }),
                met: true,
                earned_pence: 34,
                forfeited_pence: 35,
            }],
            earned_pence: 2,
            forfeited_pence: 3,
            earned_by_recipient: vec![allocation_pb("KHFT", 4)],
            forfeited_by_recipient: vec![allocation_pb("AVT", 5)],
            ledger_at_assessment: ledger_pb(100, true),
            evidence_agrees: Some(false),
        }),
        paid: Some(ppb::TranchePaid {
            period: pb_period(2018, 5),
            payments: vec![allocation_pb("KHFT", 6)],
        }),
        clawed_back_pence: 7,
        earned_to_date_pence: 8,
        ledger_now: ledger_pb(200, false),
    };
    let q2_pb = ppb::TrancheSummary {
        quarter: 2,
        assessment: None,
        paid: None,
        ledger_now: None,
        ..q1_pb.clone()
    };
    assert_eq!(
        proto,
        ppb::FundStatement {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            funds: vec![ppb::FundSummary {
                fund: "SSF".to_string(),
                name: "System sustainability fund".to_string(),
                year: 2018,
                total_pence: 9,
                conditions: vec![pb::Condition {
                    condition: "AE".to_string(),
                    kind: pb::ConditionKind::AeFourHour.into(),
                    weight_bp: 3_000,
                    threshold_bp: Some(9_000),
                }],
                recipients: vec![ppb::RecipientSummary {
                    member: "KHFT".to_string(),
                    allocation_pence: 10,
                    earned_pence: 11,
                    forfeited_pence: 12,
                    paid_pence: 13,
                    clawed_back_pence: 14,
                }],
                tranches: vec![q1_pb, q2_pb],
                earned_pence: 15,
                forfeited_pence: 16,
                paid_pence: 17,
                clawed_back_pence: 18,
            }],
        }
    );
}

#[test]
fn the_agreement_of_balances_converts_field_by_field() {
    let line = AobLine {
        measure: AobMeasure::ReceivablesPayables,
        creditor: member("KCCG"),
        debtor: member("KHFT"),
        creditor_states: p(1),
        debtor_states: p(2),
        ledger: p(3),
        difference: p(-1),
        creditor_vs_ledger: p(-2),
        debtor_vs_ledger: p(-4),
        threshold: p(5),
        mismatched: true,
        over_threshold: false,
    };
    let report = AgreementOfBalances {
        basis: basis(),
        options: AobOptions {
            thresholds: AobThresholds {
                receivables_payables: p(6),
                income_expenditure: p(7),
            },
            scope: AobScope::AllMembers,
        },
        returns_missing: vec![MissingReturn {
            member: member("KCC"),
            month: month(6),
        }],
        lines: vec![
            AobLine {
                measure: AobMeasure::IncomeExpenditure,
                mismatched: false,
                over_threshold: true,
                ..line.clone()
            },
            line,
        ],
        mismatched_lines: 8,
        lines_over_threshold: 9,
    };
    let proto = converted(&report, |r| r.options.scope = AobScope::NhsBodies);
    let line_pb = ppb::AobLine {
        measure: ppb::AobMeasure::ReceivablesPayables.into(),
        creditor: "KCCG".to_string(),
        debtor: "KHFT".to_string(),
        creditor_states_pence: 1,
        debtor_states_pence: 2,
        ledger_pence: 3,
        difference_pence: -1,
        creditor_vs_ledger_pence: -2,
        debtor_vs_ledger_pence: -4,
        threshold_pence: 5,
        mismatched: true,
        over_threshold: false,
    };
    assert_eq!(
        proto,
        ppb::AgreementOfBalances {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            scope: ppb::AobScope::AllMembers.into(),
            receivables_payables_threshold_pence: 6,
            income_expenditure_threshold_pence: 7,
            returns_missing: vec![ppb::MissingReturn {
                member: "KCC".to_string(),
                month: 6,
            }],
            lines: vec![
                ppb::AobLine {
                    measure: ppb::AobMeasure::IncomeExpenditure.into(),
                    mismatched: false,
                    over_threshold: true,
                    ..line_pb.clone()
                },
                line_pb,
            ],
            mismatched_lines: 8,
            lines_over_threshold: 9,
        }
    );
}

#[test]
fn the_adjustments_report_converts_field_by_field() {
    let activity = ListedCorrection {
        sequence: 300,
        recorded_at_us: 1_550_000_000_000_000,
        stream: StreamId::contract(&code("C3")),
        kind: CorrectionKind::Activity {
            units: 2_100,
            previous_units: 2_000,
        },
        posted_in: period("2018/19-M8"),
        corrects: period("2018/19-M7"),
        amount: p(300_000),
        payer: Some(member("KCCG")),
        payee: Some(member("KHFT")),
        reason: Some(text("late coding")),
    };
    let kinds = [
        CorrectionKind::Invoice,
        CorrectionKind::ContractAdjustment,
        CorrectionKind::BudgetSpend,
    ];
    let others: Vec<ListedCorrection> = kinds
        .into_iter()
        .enumerate()
        .map(|(i, kind)| ListedCorrection {
            sequence: 301 + i as u64,
            kind,
            payer: None,
            payee: None,
            reason: None,
            ..activity.clone()
        })
        .collect();
    let report = AdjustmentsReport {
        basis: basis(),
        naming_this_year: vec![activity],
        posted_this_year: others,
    };
    let proto = converted(&report, |r| r.naming_this_year[0].reason = None);
    let activity_pb = ppb::Correction {
        sequence: 300,
        recorded_at_us: 1_550_000_000_000_000,
        stream: "contract/C3".to_string(),
        kind: ppb::CorrectionKind::Activity.into(),
        units: Some(2_100),
        previous_units: Some(2_000),
        posted_in: pb_period(2018, 8),
        corrects: pb_period(2018, 7),
        amount_pence: 300_000,
        payer: Some("KCCG".to_string()),
        payee: Some("KHFT".to_string()),
        reason: Some("late coding".to_string()),
    };
    let kinds_pb = [
        ppb::CorrectionKind::Invoice,
        ppb::CorrectionKind::ContractAdjustment,
        ppb::CorrectionKind::BudgetSpend,
    ];
    let others_pb: Vec<ppb::Correction> = kinds_pb
        .into_iter()
        .enumerate()
        .map(|(i, kind)| ppb::Correction {
            sequence: 301 + i as u64,
            kind: kind.into(),
            units: None,
            previous_units: None,
            payer: None,
            payee: None,
            reason: None,
            ..activity_pb.clone()
        })
        .collect();
    assert_eq!(
        proto,
        ppb::AdjustmentsReport {
            basis: basis_pb(report.fingerprint().expect("canonical")),
            naming_this_year: vec![activity_pb],
            posted_this_year: others_pb,
        }
    );
}

#[test]
fn any_report_converts_to_the_message_of_its_kind() {
    use crate::report::{AnyReportProto, any_report_to_proto};
    use domain::position::AnyReport;
    let zero = Pence::ZERO;
    let reports = vec![
        AnyReport::Position(PositionReport {
            basis: basis(),
            members: vec![],
            control_total: figures(1),
            wider_ics: figures(2),
        }),
        AnyReport::Consolidation(ConsolidationReport {
            basis: basis(),
            scope: ConsolidationScope::WiderIcs,
            members: vec![],
            gross_income: p(3),
            gross_expenditure: zero,
            gross_net: p(3),
            eliminations: vec![],
            eliminated: zero,
            consolidated_income: p(3),
            consolidated_expenditure: zero,
            consolidated_net: p(3),
        }),
        AnyReport::PooledBudgets(PooledBudgetStatement {
            basis: basis(),
            budgets: vec![],
        }),
        AnyReport::Contracts(ContractStatement {
            basis: basis(),
            contracts: vec![],
        }),
        AnyReport::Funds(FundStatement {
            basis: basis(),
            funds: vec![],
        }),
        AnyReport::AgreementOfBalances(AgreementOfBalances {
            basis: basis(),
            options: AobOptions::default(),
            returns_missing: vec![],
            lines: vec![],
            mismatched_lines: 0,
            lines_over_threshold: 0,
        }),
        AnyReport::Adjustments(AdjustmentsReport {
            basis: basis(),
            naming_this_year: vec![],
            posted_this_year: vec![],
        }),
    ];
    let mut fingerprints = std::collections::BTreeSet::new();
    for report in &reports {
        let proto = any_report_to_proto(report).expect("converts");
        let fingerprint = report.fingerprint().expect("canonical");
        fingerprints.insert(fingerprint);
        assert_eq!(
            proto.basis().map(|b| b.fingerprint.clone()),
            Some(fingerprint.to_vec()),
            "{}",
            report.kind()
        );
        let same = match (report, &proto) {
            (AnyReport::Position(r), AnyReportProto::Position(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            (AnyReport::Consolidation(r), AnyReportProto::Consolidation(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            (AnyReport::PooledBudgets(r), AnyReportProto::PooledBudgets(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            (AnyReport::Contracts(r), AnyReportProto::Contracts(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            (AnyReport::Funds(r), AnyReportProto::Funds(m)) => r.to_proto().ok() == Some(m.clone()),
            (AnyReport::AgreementOfBalances(r), AnyReportProto::AgreementOfBalances(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            (AnyReport::Adjustments(r), AnyReportProto::Adjustments(m)) => {
                r.to_proto().ok() == Some(m.clone())
            }
            _ => false,
        };
        assert!(same, "{} converts to its own message", report.kind());
    }
    // Seven kinds with the same basis: the kind in the canonical bytes keeps them apart.
    assert_eq!(fingerprints.len(), 7);
}
