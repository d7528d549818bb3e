//! The position by member: plan, actual, variance, forecast and the sustainability fund, for
//! each member, for the members in the control total together (the system against its
//! control total) and for the wider ICS (the local authority and PCNs too).

use serde::{Deserialize, Serialize};

use crate::fund::Recipient;
use crate::ids::{MemberCode, MemberKind, Text};
use crate::money::{MoneyError, Pence};
use crate::period::{FinancialYear, Month};

use super::fold::{MemberFacts, Side};
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

/// One member's figures, or a sum of members'. Surpluses are positive, deficits negative.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionFigures {
    /// The plan for the whole year, income − expenditure: a member's control total.
    pub plan_annual: Pence,
    pub plan_income_ytd: Pence,
    pub plan_expenditure_ytd: Pence,
    /// The control total year to date.
    pub plan_ytd: Pence,
    /// From the monthly returns: before the sustainability fund.
    pub actual_income_ytd: Pence,
    pub actual_expenditure_ytd: Pence,
    pub actual_ytd: Pence,
    /// `actual_ytd − plan_ytd`: positive is better than plan.
    pub variance_ytd: Pence,
    /// The year's outturn before the fund if the rest goes to plan: each month's return up to
    /// the report's month, and the plan for every month without one and every later month.
    pub forecast_outturn: Pence,
    /// `forecast_outturn − plan_annual`.
    pub forecast_variance: Pence,
    /// The fund's tranches for the quarters ended by the month: this member's share by
    /// allocation.
    pub fund_available_ytd: Pence,
    /// What assessments recorded as earned, accrued in each quarter's last month.
    pub fund_earned_ytd: Pence,
    /// What assessments recorded as forfeited, split by allocation.
    pub fund_forfeited_ytd: Pence,
    pub fund_clawed_back_ytd: Pence,
    /// `plan_ytd + fund_available_ytd`.
    pub plan_after_fund_ytd: Pence,
    /// `actual_ytd + fund_earned_ytd − fund_clawed_back_ytd`.
    pub after_fund_ytd: Pence,
    /// `after_fund_ytd − plan_after_fund_ytd`.
    pub variance_after_fund_ytd: Pence,
    /// In-system income and expenditure the ledger holds (contracts, pooled budgets).
    pub ledger_income_ytd: Pence,
    pub ledger_expenditure_ytd: Pence,
}

/// One member's row.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MemberPosition {
    pub member: MemberCode,
    pub name: Text,
    pub kind: MemberKind,
    pub in_control_total: bool,
    /// The plan revision counted; `None` when the member has no plan for the year.
    pub plan_revision: Option<u32>,
    /// Months up to the report's month with no return as of the snapshot (counted as
    /// nothing).
    pub returns_missing: Vec<Month>,
    pub figures: PositionFigures,
}

/// The position of the system for a year, year to date.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PositionReport {
    pub basis: Basis,
    /// Every member admitted as of the snapshot, in code order.
    pub members: Vec<MemberPosition>,
    /// The members in the control total, summed: the system against its control total.
    pub control_total: PositionFigures,
    /// Every member, summed: the wider ICS.
    pub wider_ics: PositionFigures,
}

impl Report for PositionReport {
    const KIND: &'static str = "position/v1";
}

impl PositionReport {
    /// The report as member `member`'s finance team sees it: its own row and the system's
    /// totals (the control total and the wider ICS stay whole).
    pub fn limit_to(&mut self, member: MemberCode) {
        self.members.retain(|row| row.member == member);
    }
}

impl PositionFigures {
    /// Field-by-field sum.
    pub fn checked_add(&self, other: &PositionFigures) -> Result<PositionFigures, MoneyError> {
        macro_rules! sum {
            ($($field:ident),* $(,)?) => {
                PositionFigures { $($field: self.$field.checked_add(other.$field)?),* }
            };
        }
        Ok(sum!(
            plan_annual,
            plan_income_ytd,
            plan_expenditure_ytd,
            plan_ytd,
            actual_income_ytd,
            actual_expenditure_ytd,
            actual_ytd,
            variance_ytd,
            forecast_outturn,
            forecast_variance,
            fund_available_ytd,
            fund_earned_ytd,
            fund_forfeited_ytd,
            fund_clawed_back_ytd,
            plan_after_fund_ytd,
            after_fund_ytd,
            variance_after_fund_ytd,
            ledger_income_ytd,
            ledger_expenditure_ytd,
        ))
    }
}

/// A member's sustainability-fund figures for a year to date.
#[derive(Default)]
pub(super) struct FundIncome {
    pub available: Pence,
    pub earned: Pence,
    pub forfeited: Pence,
    pub clawed_back: Pence,
}

/// `member`'s part of `amount` split between `recipients` by allocation (largest remainder,
/// as the fund splits what is earned).
pub(super) fn share_of(
    amount: Pence,
    recipients: &[Recipient],
    member: &MemberCode,
) -> Result<Pence, MoneyError> {
    let Some(index) = recipients.iter().position(|r| &r.member == member) else {
        return Ok(Pence::ZERO);
    };
    let weights: Vec<u64> = recipients
        .iter()
        .map(|r| u64::try_from(r.allocation.get()).unwrap_or(0))
        .collect();
    if weights.iter().all(|w| *w == 0) {
        return Ok(Pence::ZERO);
    }
    Ok(amount
        .split(&weights)?
        .get(index)
        .copied()
        .unwrap_or_default())
}

impl Snapshot<'_> {
    /// The position by member for `year`, year to date to `month`.
    pub fn position(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<PositionReport, ReportError> {
        let basis = self.basis(year, month)?;
        let mut members = Vec::new();
        let mut control_total = PositionFigures::default();
        let mut wider_ics = PositionFigures::default();
        let overflow = ReportError::overflow("system totals");
        for (code, facts) in self.members() {
            let row = self.member_position(code, facts, year, month)?;
            if facts.in_control_total {
                control_total = control_total.checked_add(&row.figures).map_err(&overflow)?;
            }
            wider_ics = wider_ics.checked_add(&row.figures).map_err(&overflow)?;
            members.push(row);
        }
        Ok(PositionReport {
            basis,
            members,
            control_total,
            wider_ics,
        })
    }

    /// The members in the control total, summed (the fund's finance test).
    pub(super) fn control_total_figures(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<PositionFigures, ReportError> {
        let mut total = PositionFigures::default();
        for (code, facts) in self.members().filter(|(_, m)| m.in_control_total) {
            let row = self.member_position(code, facts, year, month)?;
            total = total
                .checked_add(&row.figures)
                .map_err(ReportError::overflow("system totals"))?;
        }
        Ok(total)
    }

    pub(super) fn member_position(
        &self,
        code: &MemberCode,
        facts: &MemberFacts,
        year: FinancialYear,
        month: Month,
    ) -> Result<MemberPosition, ReportError> {
        let overflow = ReportError::overflow("member position");
        let plan = self.plan(code, year);
        let months = month.index() + 1;
        let plan_month = |i: usize| {
            plan.map_or((Pence::ZERO, Pence::ZERO), |p| {
                (
                    p.income_by_month.get(i).copied().unwrap_or_default(),
                    p.expenditure_by_month.get(i).copied().unwrap_or_default(),
                )
            })
        };
        let add = |total: &mut Pence, amount: Pence| -> Result<(), ReportError> {
            *total = total.checked_add(amount).map_err(&overflow)?;
            Ok(())
        };
        let (mut plan_income, mut plan_expenditure) = (Pence::ZERO, Pence::ZERO);
        let (mut plan_annual_income, mut plan_annual_expenditure) = (Pence::ZERO, Pence::ZERO);
        let (mut actual_income, mut actual_expenditure) = (Pence::ZERO, Pence::ZERO);
        // The forecast takes each month's return where there is one in the year to date, and
        // the plan for every other month.
        let (mut forecast_income, mut forecast_expenditure) = (Pence::ZERO, Pence::ZERO);
        let mut returns_missing = Vec::new();
        for (i, period) in year.periods().enumerate() {
            let (income, expenditure) = plan_month(i);
            add(&mut plan_annual_income, income)?;
            add(&mut plan_annual_expenditure, expenditure)?;
            if i >= months {
                add(&mut forecast_income, income)?;
                add(&mut forecast_expenditure, expenditure)?;
                continue;
            }
            add(&mut plan_income, income)?;
            add(&mut plan_expenditure, expenditure)?;
            match self.monthly_return(code, period) {
                Some(r) => {
                    add(&mut actual_income, r.income)?;
                    add(&mut actual_expenditure, r.expenditure)?;
                    add(&mut forecast_income, r.income)?;
                    add(&mut forecast_expenditure, r.expenditure)?;
                }
                None => {
                    returns_missing.push(period.month);
                    add(&mut forecast_income, income)?;
                    add(&mut forecast_expenditure, expenditure)?;
                }
            }
        }
        let (from, to) = Snapshot::ytd(year, month);
        let fund = self.fund_income(code, year, month)?;
        let f = || -> Result<PositionFigures, MoneyError> {
            let plan_ytd = plan_income.checked_sub(plan_expenditure)?;
            let plan_annual = plan_annual_income.checked_sub(plan_annual_expenditure)?;
            let actual_ytd = actual_income.checked_sub(actual_expenditure)?;
            let forecast_outturn = forecast_income.checked_sub(forecast_expenditure)?;
            let plan_after_fund_ytd = plan_ytd.checked_add(fund.available)?;
            let after_fund_ytd = actual_ytd
                .checked_add(fund.earned)?
                .checked_sub(fund.clawed_back)?;
            Ok(PositionFigures {
                plan_annual,
                plan_income_ytd: plan_income,
                plan_expenditure_ytd: plan_expenditure,
                plan_ytd,
                actual_income_ytd: actual_income,
                actual_expenditure_ytd: actual_expenditure,
                actual_ytd,
                variance_ytd: actual_ytd.checked_sub(plan_ytd)?,
                forecast_outturn,
                forecast_variance: forecast_outturn.checked_sub(plan_annual)?,
                fund_available_ytd: fund.available,
                fund_earned_ytd: fund.earned,
                fund_forfeited_ytd: fund.forfeited,
                fund_clawed_back_ytd: fund.clawed_back,
                plan_after_fund_ytd,
                after_fund_ytd,
                variance_after_fund_ytd: after_fund_ytd.checked_sub(plan_after_fund_ytd)?,
                ledger_income_ytd: Pence::ZERO,
                ledger_expenditure_ytd: Pence::ZERO,
            })
        };
        let mut figures = f().map_err(&overflow)?;
        figures.ledger_income_ytd = self.member_ledger(code, Side::Income, from, to)?;
        figures.ledger_expenditure_ytd = self.member_ledger(code, Side::Expenditure, from, to)?;
        Ok(MemberPosition {
            member: *code,
            name: facts.name.clone(),
            kind: facts.kind,
            in_control_total: facts.in_control_total,
            plan_revision: plan.map(|p| p.revision),
            returns_missing,
            figures,
        })
    }

    /// `member`'s sustainability-fund figures for `year` to `month`: tranches of the year's
    /// funds for the quarters ended by then; what assessments in those months earned and
    /// forfeited; claw-backs posted in those months.
    pub(super) fn fund_income(
        &self,
        member: &MemberCode,
        year: FinancialYear,
        month: Month,
    ) -> Result<FundIncome, ReportError> {
        let overflow = ReportError::overflow("sustainability fund");
        let in_range = |p: crate::Period| p.year == year && p.month <= month;
        let mut income = FundIncome::default();
        for (_, fund) in self.funds() {
            if fund.year == year {
                for (quarter, tranche) in crate::Quarter::all().zip(&fund.tranches) {
                    if quarter.last_month() <= month {
                        let part =
                            share_of(*tranche, &fund.recipients, member).map_err(&overflow)?;
                        income.available = income.available.checked_add(part).map_err(&overflow)?;
                    }
                }
            }
            for assessment in fund.assessments.values() {
                if !self.is_visible(assessment.recorded_at) || !in_range(assessment.period) {
                    continue;
                }
                let earned = assessment
                    .earned_by_recipient
                    .iter()
                    .filter(|a| &a.member == member)
                    .map(|a| a.amount);
                let earned = Pence::checked_sum(earned).map_err(&overflow)?;
                let forfeited =
                    share_of(assessment.forfeited, &fund.recipients, member).map_err(&overflow)?;
                income.earned = income.earned.checked_add(earned).map_err(&overflow)?;
                income.forfeited = income.forfeited.checked_add(forfeited).map_err(&overflow)?;
            }
            for clawback in &fund.clawbacks {
                if self.is_visible(clawback.recorded_at)
                    && in_range(clawback.period)
                    && &clawback.member == member
                {
                    income.clawed_back = income
                        .clawed_back
                        .checked_add(clawback.amount)
                        .map_err(&overflow)?;
                }
            }
        }
        Ok(income)
    }
}
