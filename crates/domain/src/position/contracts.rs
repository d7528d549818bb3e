//! The contract statement: for each contract of the year (or with postings landing in it),
//! its value and how it was made up, activity against plan, what was invoiced, paid, is
//! outstanding and disputed — seen from the commissioner's side and the provider's, which
//! agree by construction because both are read from the same postings.

use serde::{Deserialize, Serialize};

use crate::ids::{Code, MemberCode, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Month, Period};

use super::fold::{ContractFacts, ContractLine};
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

/// One party's view of a contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractSide {
    pub member: MemberCode,
    /// The commissioner's expenditure, or the provider's income, year to date.
    pub amount_ytd: Pence,
    /// Paid by the commissioner, or received by the provider, year to date.
    pub cash_ytd: Pence,
    /// What the commissioner owes the provider at the report's month (value to date less
    /// cash to date): the commissioner's payable, the provider's receivable; negative when
    /// the provider owes money back.
    pub balance: Pence,
}

/// The outcome of a CQUIN reconciliation.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CquinOutcome {
    pub period: Period,
    pub achievement: BasisPoints,
    pub value: Pence,
    pub earned: Pence,
    pub deduction: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractSummary {
    pub contract: Code,
    pub description: Text,
    pub year: FinancialYear,
    /// The payment model's kind (`block`, `activity_tariff`, …).
    pub model: String,
    /// The annual value as of the snapshot.
    pub annual_value: Pence,
    pub terminated_in: Option<Period>,
    /// The value landing in the year to date, by line, and in all.
    pub phased_ytd: Pence,
    pub activity_value_ytd: Pence,
    pub cquin_ytd: Pence,
    pub adjustments_ytd: Pence,
    pub written_off_ytd: Pence,
    pub value_ytd: Pence,
    /// Units planned and recorded for the months of the contract's year to date (`None` for
    /// models that do not plan units).
    pub planned_units_ytd: Option<u64>,
    pub activity_units_ytd: u64,
    pub invoiced_ytd: Pence,
    pub paid_ytd: Pence,
    /// Invoiced less paid and less what resolved disputes wrote off the invoices they named,
    /// over every period to the report's month.
    pub invoices_outstanding: Pence,
    pub disputed_ytd: Pence,
    /// Disputed and not yet resolved, over every period to the report's month.
    pub disputes_open: Pence,
    pub cquin: Option<CquinOutcome>,
    pub commissioner: ContractSide,
    pub provider: ContractSide,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractStatement {
    pub basis: Basis,
    pub contracts: Vec<ContractSummary>,
}

impl Report for ContractStatement {
    const KIND: &'static str = "contracts/v1";
}

impl ContractStatement {
    /// The statement as member `member`'s finance team sees it: the contracts it commissions
    /// or provides.
    pub fn limit_to(&mut self, member: MemberCode) {
        self.contracts
            .retain(|c| c.commissioner.member == member || c.provider.member == member);
    }
}

impl Snapshot<'_> {
    /// Every contract of `year`, or with postings landing in it, year to date.
    pub fn contracts_statement(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<ContractStatement, ReportError> {
        let basis = self.basis(year, month)?;
        let (from, to) = Snapshot::ytd(year, month);
        let mut contracts = Vec::new();
        for (code, facts) in self.contracts() {
            if facts.year == year || self.contract_has_postings(code, from, to) {
                contracts.push(self.contract_summary(code, facts, year, month)?);
            }
        }
        Ok(ContractStatement { basis, contracts })
    }

    fn contract_summary(
        &self,
        code: &Code,
        facts: &ContractFacts,
        year: FinancialYear,
        month: Month,
    ) -> Result<ContractSummary, ReportError> {
        let overflow = ReportError::overflow("contract");
        let (from, to) = Snapshot::ytd(year, month);
        let ytd = |line| self.contract_line(code, line, from, to);
        let to_date = |line| self.contract_line_to(code, line, to);
        let mut value_ytd = Pence::ZERO;
        let mut value_to_date = Pence::ZERO;
        for line in ContractLine::VALUE {
            value_ytd = value_ytd.checked_add(ytd(line)?).map_err(&overflow)?;
            value_to_date = value_to_date
                .checked_add(to_date(line)?)
                .map_err(&overflow)?;
        }
        let paid_ytd = ytd(ContractLine::Paid)?;
        let balance = value_to_date
            .checked_sub(to_date(ContractLine::Paid)?)
            .map_err(&overflow)?;
        let model = facts.model.at(self.sequence());
        let mut planned_units_ytd = None;
        if facts.year == year
            && let Some(model) = model.filter(|m| m.planned_units().is_some())
        {
            let mut planned = 0u64;
            for m in Month::all().take(month.index() + 1) {
                planned = planned
                    .checked_add(model.planned_units_for(m))
                    .ok_or(ReportError::Overflow { what: "units" })?;
            }
            planned_units_ytd = Some(planned);
        }
        let mut activity_units_ytd = 0u64;
        for (_, units) in facts.activity.range(from..=to) {
            if let Some(units) = units.at(self.sequence()) {
                activity_units_ytd = activity_units_ytd
                    .checked_add(*units)
                    .ok_or(ReportError::Overflow { what: "units" })?;
            }
        }
        let side = |member: &MemberCode| ContractSide {
            member: *member,
            amount_ytd: value_ytd,
            cash_ytd: paid_ytd,
            balance,
        };
        Ok(ContractSummary {
            contract: code.clone(),
            description: facts.description.clone(),
            year: facts.year,
            model: model.map_or("", |m| m.kind_name()).to_string(),
            annual_value: facts
                .annual_value
                .at(self.sequence())
                .copied()
                .unwrap_or_default(),
            terminated_in: facts
                .terminated
                .filter(|(s, p)| self.is_visible(*s) && *p <= to)
                .map(|(_, p)| p),
            phased_ytd: ytd(ContractLine::Phased)?,
            activity_value_ytd: ytd(ContractLine::Activity)?,
            cquin_ytd: ytd(ContractLine::Cquin)?,
            adjustments_ytd: ytd(ContractLine::Adjustment)?,
            written_off_ytd: ytd(ContractLine::WrittenOff)?,
            value_ytd,
            planned_units_ytd,
            activity_units_ytd,
            invoiced_ytd: ytd(ContractLine::Invoiced)?,
            paid_ytd,
            invoices_outstanding: to_date(ContractLine::Invoiced)?
                .checked_sub(to_date(ContractLine::Paid)?)
                .map_err(&overflow)?
                .checked_sub(to_date(ContractLine::Credited)?)
                .map_err(&overflow)?,
            disputed_ytd: ytd(ContractLine::Disputed)?,
            disputes_open: to_date(ContractLine::Disputed)?
                .checked_sub(to_date(ContractLine::DisputeResolved)?)
                .map_err(&overflow)?,
            cquin: facts
                .cquin
                .as_ref()
                .filter(|c| self.is_visible(c.recorded_at) && c.period <= to)
                .map(|c| CquinOutcome {
                    period: c.period,
                    achievement: c.achievement,
                    value: c.value,
                    earned: c.earned,
                    deduction: c.deduction,
                }),
            commissioner: side(&facts.commissioner),
            provider: side(&facts.provider),
        })
    }
}
