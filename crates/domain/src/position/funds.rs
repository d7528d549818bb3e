//! The sustainability fund statement: each fund of the year, each tranche, each condition
//! with the evidence the assessment recorded, earned or forfeited, paid and clawed back.
//!
//! Decisions are never recomputed: what was earned is what the assessment event recorded.
//! Beside each assessment the statement shows what the ledger held when it was recorded —
//! the system's year to date before the fund and its control total year to date, from the
//! returns as recorded at the assessment's sequence — and whether the evidence agrees. For
//! each quarter ended by the report's month it also shows the system as the ledger holds it
//! now (as of the snapshot): the quarter rows of the finance test.

use serde::{Deserialize, Serialize};

use crate::budget::Allocation;
use crate::fund::{Condition, ConditionOutcome, Figures};
use crate::ids::{Code, MemberCode, Text};
use crate::money::Pence;
use crate::period::{FinancialYear, Month, Period, Quarter};

use super::fold::{AssessmentFacts, FundFacts};
use super::members::share_of;
use super::snapshot::{Basis, Snapshot};
use super::{AsOf, Report, ReportError};

/// The finance test's figures as the ledger holds them: the members in the control total,
/// year to date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LedgerTest {
    pub control_total_ytd: Pence,
    pub system_ytd_before_fund: Pence,
    /// `system_ytd_before_fund ≥ control_total_ytd`.
    pub finance_met: bool,
    /// The system after every sustainability fund earned to then.
    pub system_ytd_after_fund: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrancheAssessment {
    pub period: Period,
    /// The sequence that recorded it.
    pub sequence: u64,
    /// Each condition: its weight, its part of the tranche, the evidence, met or not.
    pub outcomes: Vec<ConditionOutcome>,
    pub earned: Pence,
    pub forfeited: Pence,
    pub earned_by_recipient: Vec<Allocation>,
    /// What was forfeited, split by allocation.
    pub forfeited_by_recipient: Vec<Allocation>,
    /// The ledger's figures as recorded at the assessment's sequence.
    pub ledger_at_assessment: LedgerTest,
    /// Whether the finance evidence is what the ledger held; `None` with no finance condition.
    pub evidence_agrees: Option<bool>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranchePaid {
    pub period: Period,
    pub payments: Vec<Allocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrancheSummary {
    pub quarter: Quarter,
    pub amount: Pence,
    /// `None` until assessed (as of the snapshot, in a month up to the report's).
    pub assessment: Option<TrancheAssessment>,
    pub paid: Option<TranchePaid>,
    pub clawed_back: Pence,
    /// This fund's earnings up to and including this quarter.
    pub earned_to_date: Pence,
    /// The system at the quarter's end as the ledger holds it now; `None` for quarters that
    /// end after the report's month.
    pub ledger_now: Option<LedgerTest>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecipientSummary {
    pub member: MemberCode,
    pub allocation: Pence,
    pub earned: Pence,
    pub forfeited: Pence,
    pub paid: Pence,
    pub clawed_back: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundSummary {
    pub fund: Code,
    pub name: Text,
    pub year: FinancialYear,
    pub total: Pence,
    pub conditions: Vec<Condition>,
    pub recipients: Vec<RecipientSummary>,
    pub tranches: Vec<TrancheSummary>,
    pub earned: Pence,
    pub forfeited: Pence,
    pub paid: Pence,
    pub clawed_back: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundStatement {
    pub basis: Basis,
    pub funds: Vec<FundSummary>,
}

impl Report for FundStatement {
    const KIND: &'static str = "sustainability-funds/v1";
}

impl Snapshot<'_> {
    /// Every sustainability fund of `year`, or with payments or claw-backs posted in it, to
    /// `month`: assessments, payments and claw-backs posted up to then.
    pub fn funds_statement(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<FundStatement, ReportError> {
        let basis = self.basis(year, month)?;
        let mut funds = Vec::new();
        let (from, to) = Snapshot::ytd(year, month);
        let cash_in_year = |f: &FundFacts| {
            let landed = |recorded_at, period: Period| {
                self.is_visible(recorded_at) && period >= from && period <= to
            };
            f.payments.values().any(|p| landed(p.recorded_at, p.period))
                || f.clawbacks.iter().any(|c| landed(c.recorded_at, c.period))
        };
        for (code, facts) in self.funds() {
            if facts.year == year || cash_in_year(facts) {
                funds.push(self.fund_summary(code, facts, year, month)?);
            }
        }
        Ok(FundStatement { basis, funds })
    }

    /// The finance test as the ledger holds it at this snapshot.
    fn ledger_test(&self, year: FinancialYear, month: Month) -> Result<LedgerTest, ReportError> {
        let figures = self.control_total_figures(year, month)?;
        Ok(LedgerTest {
            control_total_ytd: figures.plan_ytd,
            system_ytd_before_fund: figures.actual_ytd,
            finance_met: figures.actual_ytd >= figures.plan_ytd,
            system_ytd_after_fund: figures.after_fund_ytd,
        })
    }

    fn fund_summary(
        &self,
        code: &Code,
        facts: &FundFacts,
        year: FinancialYear,
        month: Month,
    ) -> Result<FundSummary, ReportError> {
        let overflow = ReportError::overflow("sustainability fund");
        let to = year.period(month);
        let paid_by = |quarter: Quarter| {
            facts
                .payments
                .get(&quarter)
                .filter(|p| self.is_visible(p.recorded_at) && p.period <= to)
        };
        let clawbacks = || {
            facts
                .clawbacks
                .iter()
                .filter(|c| self.is_visible(c.recorded_at) && c.period <= to)
        };
        let mut tranches = Vec::with_capacity(4);
        let mut earned_to_date = Pence::ZERO;
        for (quarter, amount) in Quarter::all().zip(&facts.tranches) {
            let assessment = facts
                .assessments
                .get(&quarter)
                .filter(|a| self.is_visible(a.recorded_at) && a.period <= to);
            let assessment = match assessment {
                Some(a) => Some(self.tranche_assessment(facts, a)?),
                None => None,
            };
            if let Some(a) = &assessment {
                earned_to_date = earned_to_date.checked_add(a.earned).map_err(&overflow)?;
            }
            let clawed_back = Pence::checked_sum(
                clawbacks()
                    .filter(|c| c.quarter == quarter)
                    .map(|c| c.amount),
            )
            .map_err(&overflow)?;
            let ledger_now = if facts.year.period(quarter.last_month()) <= to {
                Some(self.ledger_test(facts.year, quarter.last_month())?)
            } else {
                None
            };
            tranches.push(TrancheSummary {
                quarter,
                amount: *amount,
                assessment,
                paid: paid_by(quarter).map(|p| TranchePaid {
                    period: p.period,
                    payments: p.payments.clone(),
                }),
                clawed_back,
                earned_to_date,
                ledger_now,
            });
        }
        let mut recipients = Vec::with_capacity(facts.recipients.len());
        for recipient in &facts.recipients {
            let member = &recipient.member;
            let mut row = RecipientSummary {
                member: *member,
                allocation: recipient.allocation,
                earned: Pence::ZERO,
                forfeited: Pence::ZERO,
                paid: Pence::ZERO,
                clawed_back: Pence::ZERO,
            };
            let part = |parts: &[Allocation]| {
                Pence::checked_sum(
                    parts
                        .iter()
                        .filter(|a| &a.member == member)
                        .map(|a| a.amount),
                )
            };
            for tranche in &tranches {
                if let Some(a) = &tranche.assessment {
                    let earned = part(&a.earned_by_recipient).map_err(&overflow)?;
                    let forfeited = part(&a.forfeited_by_recipient).map_err(&overflow)?;
                    row.earned = row.earned.checked_add(earned).map_err(&overflow)?;
                    row.forfeited = row.forfeited.checked_add(forfeited).map_err(&overflow)?;
                }
                if let Some(p) = &tranche.paid {
                    let paid = part(&p.payments).map_err(&overflow)?;
                    row.paid = row.paid.checked_add(paid).map_err(&overflow)?;
                }
            }
            row.clawed_back = Pence::checked_sum(
                clawbacks()
                    .filter(|c| &c.member == member)
                    .map(|c| c.amount),
            )
            .map_err(&overflow)?;
            recipients.push(row);
        }
        let sum = |f: fn(&RecipientSummary) -> Pence| {
            Pence::checked_sum(recipients.iter().map(f)).map_err(&overflow)
        };
        let (earned, forfeited, paid, clawed_back) = (
            Pence::checked_sum(
                tranches
                    .iter()
                    .filter_map(|t| t.assessment.as_ref().map(|a| a.earned)),
            )
            .map_err(&overflow)?,
            Pence::checked_sum(
                tranches
                    .iter()
                    .filter_map(|t| t.assessment.as_ref().map(|a| a.forfeited)),
            )
            .map_err(&overflow)?,
            sum(|r| r.paid)?,
            sum(|r| r.clawed_back)?,
        );
        Ok(FundSummary {
            fund: code.clone(),
            name: facts.name.clone(),
            year: facts.year,
            total: facts.total,
            conditions: facts.conditions.clone(),
            recipients,
            tranches,
            earned,
            forfeited,
            paid,
            clawed_back,
        })
    }

    fn tranche_assessment(
        &self,
        fund: &FundFacts,
        facts: &AssessmentFacts,
    ) -> Result<TrancheAssessment, ReportError> {
        let overflow = ReportError::overflow("sustainability fund");
        let then = self
            .projection
            .at(AsOf::Sequence(facts.recorded_at))?
            .ledger_test(facts.period.year, facts.period.month)?;
        let evidence_agrees = facts
            .outcomes
            .iter()
            .filter_map(|o| match o.figures {
                Figures::SystemFinance {
                    actual_ytd,
                    control_total_ytd,
                } => Some(
                    actual_ytd == then.system_ytd_before_fund
                        && control_total_ytd == then.control_total_ytd,
                ),
                Figures::AeFourHour { .. } => None,
            })
            .reduce(|a, b| a && b);
        let mut forfeited_by_recipient = Vec::with_capacity(fund.recipients.len());
        for recipient in &fund.recipients {
            forfeited_by_recipient.push(Allocation {
                member: recipient.member,
                amount: share_of(facts.forfeited, &fund.recipients, &recipient.member)
                    .map_err(&overflow)?,
            });
        }
        Ok(TrancheAssessment {
            period: facts.period,
            sequence: facts.recorded_at,
            outcomes: facts.outcomes.clone(),
            earned: facts.earned,
            forfeited: facts.forfeited,
            earned_by_recipient: facts.earned_by_recipient.clone(),
            forfeited_by_recipient,
            ledger_at_assessment: then,
            evidence_agrees,
        })
    }
}
