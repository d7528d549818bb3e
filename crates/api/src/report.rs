//! The position reports (`ics.position.v1`): report requests → the question the domain
//! answers ([`question_from_proto`], [`consolidation_question`], [`aob_question`]), domain
//! reports → their protobuf messages ([`ReportToProto`]), and why a report could not be given
//! → a gRPC status ([`check_as_of`], [`status_from_report`]); any one report by kind
//! ([`any_report_to_proto`]) for the audit replay.
//!
//! As for commands, a malformed request is [`DomainError::Invalid`] naming the field by its
//! path in the request (`month`, `as_of.sequence`, `report.month`,
//! `receivables_payables_threshold_pence`); [`crate::status_from_domain`] turns it into
//! `INVALID_ARGUMENT` with a `BadRequest` detail.
//!
//! Domain → proto copies every field (amounts as integer pence, rates as basis points) and
//! puts the report's fingerprint — SHA-256 of its canonical bytes, computed by
//! [`Report::fingerprint`] on the *domain* report — into its `Basis`, so a client compares it
//! with an audit replay. The mapping cannot fail; only the fingerprint can, in principle
//! ([`CanonicalError`]: the domain's reports never hit it).

use std::collections::HashMap;

use domain::position::{
    AdjustmentsReport, AgreementOfBalances, AnyReport, AobLine, AobMeasure, AobOptions, AobScope,
    AobThresholds, AsOf, Basis, BudgetPartner, CanonicalError, ConsolidatedMember,
    ConsolidationReport, ConsolidationScope, ContractSide, ContractStatement, ContractSummary,
    CorrectionKind, CquinOutcome, Elimination, FundStatement, FundSummary, LedgerTest,
    ListedCorrection, MemberPosition, MissingReturn, PooledBudget, PooledBudgetStatement,
    PositionFigures, PositionReport, RecipientSummary, Recorded, Report, ReportError, SchemeSpend,
    Settlement, TrancheAssessment, TranchePaid, TrancheSummary,
};
use domain::{DomainError, FinancialYear, Month, Pence};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::position_pb as ppb;
use crate::values::{self as v, invalid};

/// The `domain` of the `google.rpc.ErrorInfo` positiond sends.
pub const POSITION_ERROR_DOMAIN: &str = "ics.position.v1";
/// `ErrorInfo.reason` when `as_of` lies beyond what has been folded.
pub const REASON_NOT_YET_FOLDED: &str = "NOT_YET_FOLDED";
/// `ErrorInfo.reason` when the system was not established as of the point asked.
pub const REASON_NOT_ESTABLISHED: &str = "NOT_ESTABLISHED";

// ---- requests ------------------------------------------------------------------------------

/// What every report request asks: a financial year, year to date to a month, as the log
/// stood at a point.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Question {
    pub year: FinancialYear,
    pub month: Month,
    pub as_of: AsOf,
}

/// Checks a `ReportRequest`; errors name `year`, `month`, `as_of` or `as_of.sequence`.
pub fn question_from_proto(request: ppb::ReportRequest) -> Result<Question, DomainError> {
    question_at(request, "")
}

/// A `ReportRequest` found at `prefix` of a larger request (`report`).
fn question_at(request: ppb::ReportRequest, prefix: &str) -> Result<Question, DomainError> {
    let year = v::year(request.year, &v::path(prefix, "year"))?;
    let month =
        Month::new(request.month).map_err(|e| invalid(v::path(prefix, "month"), e.to_string()))?;
    let as_of = as_of_from_proto(request.as_of, &v::path(prefix, "as_of"))?;
    Ok(Question { year, month, as_of })
}

/// Absent: the latest; present, it must say when.
fn as_of_from_proto(as_of: Option<ppb::AsOf>, field: &str) -> Result<AsOf, DomainError> {
    use ppb::as_of::At;
    let Some(as_of) = as_of else {
        return Ok(AsOf::Latest);
    };
    match as_of.at {
        None => Err(invalid(
            field,
            "is set without a value: set one of sequence, recorded_at_us (or leave as_of out for the latest)",
        )),
        Some(At::Sequence(0)) => Err(invalid(
            v::path(field, "sequence"),
            "sequences start at 1 (leave as_of out for the latest)",
        )),
        Some(At::Sequence(sequence)) => Ok(AsOf::Sequence(sequence)),
        Some(At::RecordedAtUs(time_us)) => Ok(AsOf::RecordedAt(time_us)),
    }
}

/// A `ReportRequest` for `question`: what a client sends.
pub fn question_to_proto(question: &Question) -> ppb::ReportRequest {
    use ppb::as_of::At;
    let at = match question.as_of {
        AsOf::Latest => None,
        AsOf::Sequence(sequence) => Some(At::Sequence(sequence)),
        AsOf::RecordedAt(time_us) => Some(At::RecordedAtUs(time_us)),
    };
    ppb::ReportRequest {
        year: v::year_to_pb(question.year),
        month: u32::from(question.month.number()),
        as_of: at.map(|at| ppb::AsOf { at: Some(at) }),
    }
}

/// Checks a `ConsolidationRequest`; errors name `report`, `report.month`, …, `scope`.
/// An unspecified scope is the control total.
pub fn consolidation_question(
    request: ppb::ConsolidationRequest,
) -> Result<(Question, ConsolidationScope), DomainError> {
    let question = question_at(v::required(request.report, "report")?, "report")?;
    let scope = match ppb::ConsolidationScope::try_from(request.scope) {
        Ok(ppb::ConsolidationScope::Unspecified | ppb::ConsolidationScope::ControlTotal) => {
            ConsolidationScope::ControlTotal
        }
        Ok(ppb::ConsolidationScope::WiderIcs) => ConsolidationScope::WiderIcs,
        Err(_) => {
            return Err(invalid(
                "scope",
                format!("{} is not a ConsolidationScope", request.scope),
            ));
        }
    };
    Ok((question, scope))
}

/// Checks an `AgreementOfBalancesRequest`; errors name `report`, `report.month`, …, `scope`,
/// `receivables_payables_threshold_pence`, `income_expenditure_threshold_pence`. An
/// unspecified scope is the NHS bodies; an absent threshold is the default (£300,000,
/// £3,000,000).
pub fn aob_question(
    request: ppb::AgreementOfBalancesRequest,
) -> Result<(Question, AobOptions), DomainError> {
    let question = question_at(v::required(request.report, "report")?, "report")?;
    let scope = match ppb::AobScope::try_from(request.scope) {
        Ok(ppb::AobScope::Unspecified | ppb::AobScope::NhsBodies) => AobScope::NhsBodies,
        Ok(ppb::AobScope::AllMembers) => AobScope::AllMembers,
        Err(_) => {
            return Err(invalid(
                "scope",
                format!("{} is not an AobScope", request.scope),
            ));
        }
    };
    let defaults = AobThresholds::default();
    let threshold = |value: Option<i64>, default: Pence, field: &str| match value {
        None => Ok(default),
        Some(pence) if pence < 0 => Err(invalid(
            field,
            format!("{pence} is negative; a threshold is a size, 0 or more"),
        )),
        Some(pence) => Ok(Pence::new(pence)),
    };
    let thresholds = AobThresholds {
        receivables_payables: threshold(
            request.receivables_payables_threshold_pence,
            defaults.receivables_payables,
            "receivables_payables_threshold_pence",
        )?,
        income_expenditure: threshold(
            request.income_expenditure_threshold_pence,
            defaults.income_expenditure,
            "income_expenditure_threshold_pence",
        )?,
    };
    Ok((question, AobOptions { thresholds, scope }))
}

// ---- why a report cannot be given ------------------------------------------------------------

/// Whether `as_of` lies within what has been folded (`folded`: the last event folded; sequence
/// 0 for none). A sequence after it, or a time after it was recorded, is `FAILED_PRECONDITION`
/// (`NOT_YET_FOLDED`): recorded-at times increase strictly along the log, so every event
/// recorded at or before a time up to the last folded event's is folded, and of a later time
/// nothing can be said until an event recorded after it arrives.
#[allow(clippy::result_large_err)] // tonic::Status is what the service returns
pub fn check_as_of(as_of: AsOf, folded: Recorded) -> Result<(), Status> {
    let beyond = match as_of {
        AsOf::Latest => None,
        AsOf::Sequence(sequence) if sequence > folded.sequence => Some((
            "as_of.sequence",
            format!("as_of.sequence {sequence} is beyond what positiond has folded"),
        )),
        AsOf::RecordedAt(time_us) if time_us > folded.recorded_at_us => Some((
            "as_of.recorded_at_us",
            format!(
                "as_of.recorded_at_us {time_us} is after the last event positiond has folded \
                 was recorded, so events recorded by then may not have reached it"
            ),
        )),
        AsOf::Sequence(_) | AsOf::RecordedAt(_) => None,
    };
    match beyond {
        None => Ok(()),
        Some((subject, what)) => Err(precondition(
            REASON_NOT_YET_FOLDED,
            subject,
            format!("{what}; {}; retry later", folded_text(folded)),
            folded,
        )),
    }
}

/// The status for a report the domain could not produce; `folded` is how far positiond has
/// got, which the message and details say.
pub fn status_from_report(error: &ReportError, folded: Recorded) -> Status {
    match error {
        ReportError::NotYetApplied { asked, .. } => precondition(
            REASON_NOT_YET_FOLDED,
            "as_of.sequence",
            format!(
                "as_of.sequence {asked} is beyond what positiond has folded; {}; retry later",
                folded_text(folded)
            ),
            folded,
        ),
        ReportError::NotEstablished { sequence } => precondition(
            REASON_NOT_ESTABLISHED,
            "as_of",
            format!(
                "the system was not established as of sequence {sequence}; {}",
                folded_text(folded)
            ),
            folded,
        ),
        ReportError::Overflow { .. } => Status::internal(error.to_string()),
    }
}

fn folded_text(folded: Recorded) -> String {
    if folded.sequence == 0 {
        "positiond has folded no events yet".to_string()
    } else {
        format!(
            "positiond has folded the log to sequence {} (recorded at {} µs)",
            folded.sequence, folded.recorded_at_us
        )
    }
}

fn precondition(reason: &str, subject: &str, message: String, folded: Recorded) -> Status {
    let metadata = HashMap::from([
        ("folded_sequence".to_string(), folded.sequence.to_string()),
        (
            "folded_recorded_at_us".to_string(),
            folded.recorded_at_us.to_string(),
        ),
    ]);
    let mut details = ErrorDetails::with_error_info(reason, POSITION_ERROR_DOMAIN, metadata);
    details.add_precondition_failure_violation(reason, subject, message.as_str());
    Status::with_error_details(Code::FailedPrecondition, message, details)
}

// ---- reports -------------------------------------------------------------------------------

/// A domain report and its protobuf message.
pub trait ReportToProto: Report {
    type Proto;

    /// The message, its `Basis` carrying the report's fingerprint.
    fn to_proto(&self) -> Result<Self::Proto, CanonicalError>;
}

/// The proto `Basis` of a report with this basis and fingerprint.
pub fn basis_to_proto(basis: &Basis, fingerprint: [u8; 32]) -> ppb::Basis {
    ppb::Basis {
        system: basis.system.to_string(),
        system_name: basis.system_name.to_string(),
        year: v::year_to_pb(basis.year),
        month: month_to_pb(basis.month),
        as_of_sequence: basis.as_of_sequence,
        as_of_recorded_at_us: basis.as_of_recorded_at_us,
        closed_through: basis.closed_through.map(v::period_to_pb),
        fingerprint: fingerprint.to_vec(),
    }
}

fn basis<R: Report>(report: &R, basis: &Basis) -> Result<Option<ppb::Basis>, CanonicalError> {
    Ok(Some(basis_to_proto(basis, report.fingerprint()?)))
}

fn month_to_pb(month: Month) -> u32 {
    u32::from(month.number())
}

impl ReportToProto for PositionReport {
    type Proto = ppb::PositionReport;

    fn to_proto(&self) -> Result<ppb::PositionReport, CanonicalError> {
        Ok(ppb::PositionReport {
            basis: basis(self, &self.basis)?,
            members: self.members.iter().map(member_position_to_pb).collect(),
            control_total: Some(figures_to_pb(&self.control_total)),
            wider_ics: Some(figures_to_pb(&self.wider_ics)),
        })
    }
}

fn figures_to_pb(f: &PositionFigures) -> ppb::PositionFigures {
    ppb::PositionFigures {
        plan_annual_pence: f.plan_annual.get(),
        plan_income_ytd_pence: f.plan_income_ytd.get(),
        plan_expenditure_ytd_pence: f.plan_expenditure_ytd.get(),
        plan_ytd_pence: f.plan_ytd.get(),
        actual_income_ytd_pence: f.actual_income_ytd.get(),
        actual_expenditure_ytd_pence: f.actual_expenditure_ytd.get(),
        actual_ytd_pence: f.actual_ytd.get(),
        variance_ytd_pence: f.variance_ytd.get(),
        forecast_outturn_pence: f.forecast_outturn.get(),
        forecast_variance_pence: f.forecast_variance.get(),
        fund_available_ytd_pence: f.fund_available_ytd.get(),
        fund_earned_ytd_pence: f.fund_earned_ytd.get(),
        fund_forfeited_ytd_pence: f.fund_forfeited_ytd.get(),
        fund_clawed_back_ytd_pence: f.fund_clawed_back_ytd.get(),
        plan_after_fund_ytd_pence: f.plan_after_fund_ytd.get(),
        after_fund_ytd_pence: f.after_fund_ytd.get(),
        variance_after_fund_ytd_pence: f.variance_after_fund_ytd.get(),
        ledger_income_ytd_pence: f.ledger_income_ytd.get(),
        ledger_expenditure_ytd_pence: f.ledger_expenditure_ytd.get(),
    }
}

fn member_position_to_pb(m: &MemberPosition) -> ppb::MemberPosition {
    ppb::MemberPosition {
        member: m.member.to_string(),
        name: m.name.to_string(),
        kind: v::member_kind_to_pb(m.kind).into(),
        in_control_total: m.in_control_total,
        plan_revision: m.plan_revision,
        returns_missing: m.returns_missing.iter().copied().map(month_to_pb).collect(),
        figures: Some(figures_to_pb(&m.figures)),
    }
}

/// The proto enum of a consolidation scope.
pub fn consolidation_scope_to_pb(scope: ConsolidationScope) -> ppb::ConsolidationScope {
    match scope {
        ConsolidationScope::ControlTotal => ppb::ConsolidationScope::ControlTotal,
        ConsolidationScope::WiderIcs => ppb::ConsolidationScope::WiderIcs,
    }
}

impl ReportToProto for ConsolidationReport {
    type Proto = ppb::ConsolidationReport;

    fn to_proto(&self) -> Result<ppb::ConsolidationReport, CanonicalError> {
        Ok(ppb::ConsolidationReport {
            basis: basis(self, &self.basis)?,
            scope: consolidation_scope_to_pb(self.scope).into(),
            members: self
                .members
                .iter()
                .map(|m: &ConsolidatedMember| ppb::ConsolidatedMember {
                    member: m.member.to_string(),
                    income_ytd_pence: m.income_ytd.get(),
                    expenditure_ytd_pence: m.expenditure_ytd.get(),
                })
                .collect(),
            gross_income_pence: self.gross_income.get(),
            gross_expenditure_pence: self.gross_expenditure.get(),
            gross_net_pence: self.gross_net.get(),
            eliminations: self
                .eliminations
                .iter()
                .map(|e: &Elimination| ppb::Elimination {
                    a: e.a.to_string(),
                    b: e.b.to_string(),
                    a_income_from_b_pence: e.a_income_from_b.get(),
                    b_income_from_a_pence: e.b_income_from_a.get(),
                    amount_pence: e.amount.get(),
                })
                .collect(),
            eliminated_pence: self.eliminated.get(),
            consolidated_income_pence: self.consolidated_income.get(),
            consolidated_expenditure_pence: self.consolidated_expenditure.get(),
            consolidated_net_pence: self.consolidated_net.get(),
        })
    }
}

impl ReportToProto for PooledBudgetStatement {
    type Proto = ppb::PooledBudgetStatement;

    fn to_proto(&self) -> Result<ppb::PooledBudgetStatement, CanonicalError> {
        Ok(ppb::PooledBudgetStatement {
            basis: basis(self, &self.basis)?,
            budgets: self.budgets.iter().map(pooled_budget_to_pb).collect(),
        })
    }
}

fn pooled_budget_to_pb(b: &PooledBudget) -> ppb::PooledBudget {
    ppb::PooledBudget {
        budget: b.budget.to_string(),
        name: b.name.to_string(),
        host: b.host.to_string(),
        year: v::year_to_pb(b.year),
        partners: b
            .partners
            .iter()
            .map(|p: &BudgetPartner| ppb::BudgetPartner {
                member: p.member.to_string(),
                host: p.host,
                pledged_revenue_pence: p.pledged_revenue.get(),
                pledged_ring_fenced_pence: p.pledged_ring_fenced.get(),
                pledged_pence: p.pledged.get(),
                paid_to_date_pence: p.paid_to_date.get(),
                unpaid_pence: p.unpaid.get(),
                overspend_share_bp: p.overspend_share.get(),
                underspend_share_bp: p.underspend_share.get(),
                risk_share_pence: p.risk_share.get(),
            })
            .collect(),
        schemes: b
            .schemes
            .iter()
            .map(|s: &SchemeSpend| ppb::SchemeSpend {
                scheme: s.scheme.to_string(),
                name: s.name.to_string(),
                ring_fenced: s.ring_fenced,
                pledged_pence: s.pledged.map(Pence::get),
                spend_ytd_pence: s.spend_ytd.get(),
                variance_ytd_pence: s.variance_ytd.map(Pence::get),
            })
            .collect(),
        revenue_pool_pence: b.revenue_pool.get(),
        revenue_pool_ytd_pence: b.revenue_pool_ytd.get(),
        revenue_spend_ytd_pence: b.revenue_spend_ytd.get(),
        revenue_variance_ytd_pence: b.revenue_variance_ytd.get(),
        ring_fenced_pledged_pence: b.ring_fenced_pledged.get(),
        ring_fenced_spend_ytd_pence: b.ring_fenced_spend_ytd.get(),
        pledged_pence: b.pledged.get(),
        paid_to_date_pence: b.paid_to_date.get(),
        spend_ytd_pence: b.spend_ytd.get(),
        settlement: b.settlement.as_ref().map(|s: &Settlement| ppb::Settlement {
            period: Some(v::period_to_pb(s.period)),
            revenue_pledged_pence: s.revenue_pledged.get(),
            revenue_spend_pence: s.revenue_spend.get(),
            variance_pence: s.variance.get(),
            shares: v::shares_to_pb(&s.shares),
            allocations: v::allocations_to_pb(&s.allocations),
        }),
        closed_in: b.closed_in.map(v::period_to_pb),
    }
}

impl ReportToProto for ContractStatement {
    type Proto = ppb::ContractStatement;

    fn to_proto(&self) -> Result<ppb::ContractStatement, CanonicalError> {
        Ok(ppb::ContractStatement {
            basis: basis(self, &self.basis)?,
            contracts: self.contracts.iter().map(contract_to_pb).collect(),
        })
    }
}

fn contract_side_to_pb(side: &ContractSide) -> ppb::ContractSide {
    ppb::ContractSide {
        member: side.member.to_string(),
        amount_ytd_pence: side.amount_ytd.get(),
        cash_ytd_pence: side.cash_ytd.get(),
        balance_pence: side.balance.get(),
    }
}

fn contract_to_pb(c: &ContractSummary) -> ppb::ContractSummary {
    ppb::ContractSummary {
        contract: c.contract.to_string(),
        description: c.description.to_string(),
        year: v::year_to_pb(c.year),
        model: c.model.clone(),
        annual_value_pence: c.annual_value.get(),
        terminated_in: c.terminated_in.map(v::period_to_pb),
        phased_ytd_pence: c.phased_ytd.get(),
        activity_value_ytd_pence: c.activity_value_ytd.get(),
        cquin_ytd_pence: c.cquin_ytd.get(),
        adjustments_ytd_pence: c.adjustments_ytd.get(),
        written_off_ytd_pence: c.written_off_ytd.get(),
        value_ytd_pence: c.value_ytd.get(),
        planned_units_ytd: c.planned_units_ytd,
        activity_units_ytd: c.activity_units_ytd,
        invoiced_ytd_pence: c.invoiced_ytd.get(),
        paid_ytd_pence: c.paid_ytd.get(),
        invoices_outstanding_pence: c.invoices_outstanding.get(),
        disputed_ytd_pence: c.disputed_ytd.get(),
        disputes_open_pence: c.disputes_open.get(),
        cquin: c.cquin.as_ref().map(|q: &CquinOutcome| ppb::CquinOutcome {
            period: Some(v::period_to_pb(q.period)),
            achievement_bp: q.achievement.get(),
            value_pence: q.value.get(),
            earned_pence: q.earned.get(),
            deduction_pence: q.deduction.get(),
        }),
        commissioner: Some(contract_side_to_pb(&c.commissioner)),
        provider: Some(contract_side_to_pb(&c.provider)),
    }
}

impl ReportToProto for FundStatement {
    type Proto = ppb::FundStatement;

    fn to_proto(&self) -> Result<ppb::FundStatement, CanonicalError> {
        Ok(ppb::FundStatement {
            basis: basis(self, &self.basis)?,
            funds: self.funds.iter().map(fund_to_pb).collect(),
        })
    }
}

fn ledger_test_to_pb(t: &LedgerTest) -> ppb::LedgerTest {
    ppb::LedgerTest {
        control_total_ytd_pence: t.control_total_ytd.get(),
        system_ytd_before_fund_pence: t.system_ytd_before_fund.get(),
        finance_met: t.finance_met,
        system_ytd_after_fund_pence: t.system_ytd_after_fund.get(),
    }
}

fn tranche_to_pb(t: &TrancheSummary) -> ppb::TrancheSummary {
    ppb::TrancheSummary {
        quarter: v::quarter_to_pb(t.quarter),
        amount_pence: t.amount.get(),
        assessment: t
            .assessment
            .as_ref()
            .map(|a: &TrancheAssessment| ppb::TrancheAssessment {
                period: Some(v::period_to_pb(a.period)),
                sequence: a.sequence,
                outcomes: v::outcomes_to_pb(&a.outcomes),
                earned_pence: a.earned.get(),
                forfeited_pence: a.forfeited.get(),
                earned_by_recipient: v::allocations_to_pb(&a.earned_by_recipient),
                forfeited_by_recipient: v::allocations_to_pb(&a.forfeited_by_recipient),
                ledger_at_assessment: Some(ledger_test_to_pb(&a.ledger_at_assessment)),
                evidence_agrees: a.evidence_agrees,
            }),
        paid: t.paid.as_ref().map(|p: &TranchePaid| ppb::TranchePaid {
            period: Some(v::period_to_pb(p.period)),
            payments: v::allocations_to_pb(&p.payments),
        }),
        clawed_back_pence: t.clawed_back.get(),
        earned_to_date_pence: t.earned_to_date.get(),
        ledger_now: t.ledger_now.as_ref().map(ledger_test_to_pb),
    }
}

fn fund_to_pb(f: &FundSummary) -> ppb::FundSummary {
    ppb::FundSummary {
        fund: f.fund.to_string(),
        name: f.name.to_string(),
        year: v::year_to_pb(f.year),
        total_pence: f.total.get(),
        conditions: v::conditions_to_pb(&f.conditions),
        recipients: f
            .recipients
            .iter()
            .map(|r: &RecipientSummary| ppb::RecipientSummary {
                member: r.member.to_string(),
                allocation_pence: r.allocation.get(),
                earned_pence: r.earned.get(),
                forfeited_pence: r.forfeited.get(),
                paid_pence: r.paid.get(),
                clawed_back_pence: r.clawed_back.get(),
            })
            .collect(),
        tranches: f.tranches.iter().map(tranche_to_pb).collect(),
        earned_pence: f.earned.get(),
        forfeited_pence: f.forfeited.get(),
        paid_pence: f.paid.get(),
        clawed_back_pence: f.clawed_back.get(),
    }
}

/// The proto enum of an Agreement of Balances scope.
pub fn aob_scope_to_pb(scope: AobScope) -> ppb::AobScope {
    match scope {
        AobScope::NhsBodies => ppb::AobScope::NhsBodies,
        AobScope::AllMembers => ppb::AobScope::AllMembers,
    }
}

fn aob_measure_to_pb(measure: AobMeasure) -> ppb::AobMeasure {
    match measure {
        AobMeasure::IncomeExpenditure => ppb::AobMeasure::IncomeExpenditure,
        AobMeasure::ReceivablesPayables => ppb::AobMeasure::ReceivablesPayables,
    }
}

impl ReportToProto for AgreementOfBalances {
    type Proto = ppb::AgreementOfBalances;

    fn to_proto(&self) -> Result<ppb::AgreementOfBalances, CanonicalError> {
        Ok(ppb::AgreementOfBalances {
            basis: basis(self, &self.basis)?,
            scope: aob_scope_to_pb(self.options.scope).into(),
            receivables_payables_threshold_pence: self
                .options
                .thresholds
                .receivables_payables
                .get(),
            income_expenditure_threshold_pence: self.options.thresholds.income_expenditure.get(),
            returns_missing: self
                .returns_missing
                .iter()
                .map(|m: &MissingReturn| ppb::MissingReturn {
                    member: m.member.to_string(),
                    month: month_to_pb(m.month),
                })
                .collect(),
            lines: self
                .lines
                .iter()
                .map(|l: &AobLine| ppb::AobLine {
                    measure: aob_measure_to_pb(l.measure).into(),
                    creditor: l.creditor.to_string(),
                    debtor: l.debtor.to_string(),
                    creditor_states_pence: l.creditor_states.get(),
                    debtor_states_pence: l.debtor_states.get(),
                    ledger_pence: l.ledger.get(),
                    difference_pence: l.difference.get(),
                    creditor_vs_ledger_pence: l.creditor_vs_ledger.get(),
                    debtor_vs_ledger_pence: l.debtor_vs_ledger.get(),
                    threshold_pence: l.threshold.get(),
                    mismatched: l.mismatched,
                    over_threshold: l.over_threshold,
                })
                .collect(),
            mismatched_lines: self.mismatched_lines,
            lines_over_threshold: self.lines_over_threshold,
        })
    }
}

impl ReportToProto for AdjustmentsReport {
    type Proto = ppb::AdjustmentsReport;

    fn to_proto(&self) -> Result<ppb::AdjustmentsReport, CanonicalError> {
        Ok(ppb::AdjustmentsReport {
            basis: basis(self, &self.basis)?,
            naming_this_year: self.naming_this_year.iter().map(correction_to_pb).collect(),
            posted_this_year: self.posted_this_year.iter().map(correction_to_pb).collect(),
        })
    }
}

fn correction_to_pb(c: &ListedCorrection) -> ppb::Correction {
    let (kind, units, previous_units) = match c.kind {
        CorrectionKind::Activity {
            units,
            previous_units,
        } => (
            ppb::CorrectionKind::Activity,
            Some(units),
            Some(previous_units),
        ),
        CorrectionKind::Invoice => (ppb::CorrectionKind::Invoice, None, None),
        CorrectionKind::ContractAdjustment => (ppb::CorrectionKind::ContractAdjustment, None, None),
        CorrectionKind::BudgetSpend => (ppb::CorrectionKind::BudgetSpend, None, None),
    };
    ppb::Correction {
        sequence: c.sequence,
        recorded_at_us: c.recorded_at_us,
        stream: c.stream.to_string(),
        kind: kind.into(),
        units,
        previous_units,
        posted_in: Some(v::period_to_pb(c.posted_in)),
        corrects: Some(v::period_to_pb(c.corrects)),
        amount_pence: c.amount.get(),
        payer: c.payer.as_ref().map(ToString::to_string),
        payee: c.payee.as_ref().map(ToString::to_string),
        reason: c.reason.as_ref().map(ToString::to_string),
    }
}

/// Any one report's protobuf message: what positiond's RPC for its kind returns.
#[allow(clippy::large_enum_variant)] // one report at a time: boxing buys nothing
#[derive(Clone, Debug, PartialEq)]
pub enum AnyReportProto {
    Position(ppb::PositionReport),
    Consolidation(ppb::ConsolidationReport),
    PooledBudgets(ppb::PooledBudgetStatement),
    Contracts(ppb::ContractStatement),
    Funds(ppb::FundStatement),
    AgreementOfBalances(ppb::AgreementOfBalances),
    Adjustments(ppb::AdjustmentsReport),
}

impl AnyReportProto {
    /// The message's basis, with the fingerprint.
    pub fn basis(&self) -> Option<&ppb::Basis> {
        match self {
            AnyReportProto::Position(r) => r.basis.as_ref(),
            AnyReportProto::Consolidation(r) => r.basis.as_ref(),
            AnyReportProto::PooledBudgets(r) => r.basis.as_ref(),
            AnyReportProto::Contracts(r) => r.basis.as_ref(),
            AnyReportProto::Funds(r) => r.basis.as_ref(),
            AnyReportProto::AgreementOfBalances(r) => r.basis.as_ref(),
            AnyReportProto::Adjustments(r) => r.basis.as_ref(),
        }
    }
}

/// The message positiond would send for `report` (its `Basis` carrying the fingerprint): the
/// audit replay prints a report it took itself exactly as it prints positiond's.
pub fn any_report_to_proto(report: &AnyReport) -> Result<AnyReportProto, CanonicalError> {
    Ok(match report {
        AnyReport::Position(r) => AnyReportProto::Position(r.to_proto()?),
        AnyReport::Consolidation(r) => AnyReportProto::Consolidation(r.to_proto()?),
        AnyReport::PooledBudgets(r) => AnyReportProto::PooledBudgets(r.to_proto()?),
        AnyReport::Contracts(r) => AnyReportProto::Contracts(r.to_proto()?),
        AnyReport::Funds(r) => AnyReportProto::Funds(r.to_proto()?),
        AnyReport::AgreementOfBalances(r) => AnyReportProto::AgreementOfBalances(r.to_proto()?),
        AnyReport::Adjustments(r) => AnyReportProto::Adjustments(r.to_proto()?),
    })
}
