//! A projection as recorded at one sequence, and the lookups every report shares.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Code, MemberCode, SystemId, Text};
use crate::money::Pence;
use crate::period::{FinancialYear, Month, Period};

use super::fold::{
    BudgetFacts, BudgetLine, ContractFacts, ContractLine, FundFacts, MemberFacts, PairLine,
    PlanFacts, Projection, ReturnFacts, Side, SystemFacts,
};
use super::{AsOf, ReportError, year_to_date};

/// The projection as recorded at one sequence. Cheap to take: it borrows the projection and
/// remembers the sequence; every lookup it makes is a binary search at that sequence.
#[derive(Clone, Copy, Debug)]
pub struct Snapshot<'a> {
    pub(super) projection: &'a Projection,
    sequence: u64,
    recorded_at_us: i64,
}

/// What a report was taken from and for: the first field of every report.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Basis {
    pub system: SystemId,
    pub system_name: Text,
    pub year: FinancialYear,
    /// The report is year to date, M1 ..= `month`.
    pub month: Month,
    /// The last event the report counts, and when it was recorded.
    pub as_of_sequence: u64,
    pub as_of_recorded_at_us: i64,
    /// Every period up to and including this one was closed as of the snapshot.
    pub closed_through: Option<Period>,
}

impl Projection {
    /// The projection as recorded at `as_of`. A sequence (or time) between two applied events
    /// is the earlier one; one after the last applied is an error.
    pub fn at(&self, as_of: AsOf) -> Result<Snapshot<'_>, ReportError> {
        let last = self.last();
        let index = match as_of {
            AsOf::Latest => self.timeline.len(),
            AsOf::Sequence(sequence) => {
                let last_sequence = last.map_or(0, |r| r.sequence);
                if sequence > last_sequence {
                    return Err(ReportError::NotYetApplied {
                        asked: sequence,
                        last: last_sequence,
                    });
                }
                self.timeline.partition_point(|r| r.sequence <= sequence)
            }
            AsOf::RecordedAt(time_us) => self
                .timeline
                .partition_point(|r| r.recorded_at_us <= time_us),
        };
        let at = index.checked_sub(1).and_then(|i| self.timeline.get(i));
        Ok(Snapshot {
            projection: self,
            sequence: at.map_or(0, |r| r.sequence),
            recorded_at_us: at.map_or(0, |r| r.recorded_at_us),
        })
    }
}

impl<'a> Snapshot<'a> {
    /// The last sequence this snapshot counts (0: none).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    pub fn recorded_at_us(&self) -> i64 {
        self.recorded_at_us
    }

    fn visible(&self, recorded_at: u64) -> bool {
        recorded_at <= self.sequence
    }

    pub(super) fn system(&self) -> Result<&'a SystemFacts, ReportError> {
        self.projection
            .system
            .as_ref()
            .filter(|s| self.visible(s.recorded_at))
            .ok_or(ReportError::NotEstablished {
                sequence: self.sequence,
            })
    }

    pub(super) fn basis(&self, year: FinancialYear, month: Month) -> Result<Basis, ReportError> {
        let system = self.system()?;
        Ok(Basis {
            system: system.system.clone(),
            system_name: system.name.clone(),
            year,
            month,
            as_of_sequence: self.sequence,
            as_of_recorded_at_us: self.recorded_at_us,
            closed_through: self.closed_through(),
        })
    }

    pub(super) fn closed_through(&self) -> Option<Period> {
        let closes = &self.projection.closes;
        let index = closes.partition_point(|(s, _)| *s <= self.sequence);
        index
            .checked_sub(1)
            .and_then(|i| closes.get(i))
            .map(|(_, p)| *p)
    }

    /// Members admitted as of the snapshot, in code order.
    pub(super) fn members(&self) -> impl Iterator<Item = (&'a MemberCode, &'a MemberFacts)> {
        let sequence = self.sequence;
        self.projection
            .members
            .iter()
            .filter(move |(_, m)| m.recorded_at <= sequence)
    }

    pub(super) fn plan(&self, member: &MemberCode, year: FinancialYear) -> Option<&'a PlanFacts> {
        self.projection
            .plans
            .get(&(*member, year))
            .and_then(|h| h.at(self.sequence))
    }

    /// The member's latest return for `period` as of the snapshot.
    pub(super) fn monthly_return(
        &self,
        member: &MemberCode,
        period: Period,
    ) -> Option<&'a ReturnFacts> {
        self.projection
            .returns
            .get(&(*member, period))
            .and_then(|h| h.at(self.sequence))
    }

    /// In-system income or expenditure of `member` over `from ..= to`, as the ledger holds it.
    pub(super) fn member_ledger(
        &self,
        member: &MemberCode,
        side: Side,
        from: Period,
        to: Period,
    ) -> Result<Pence, ReportError> {
        let range = (*member, side, from)..=(*member, side, to);
        Pence::checked_sum(
            self.projection
                .member_ledger
                .range(range)
                .map(|(_, r)| r.at(self.sequence)),
        )
        .map_err(ReportError::overflow("ledger income and expenditure"))
    }

    /// What `payer` accrued to or paid `payee` over `from ..= to`.
    pub(super) fn pair_ledger(
        &self,
        payer: &MemberCode,
        payee: &MemberCode,
        line: PairLine,
        from: Period,
        to: Period,
    ) -> Result<Pence, ReportError> {
        let key = |p| (*payer, *payee, line, p);
        Pence::checked_sum(
            self.projection
                .pair_ledger
                .range(key(from)..=key(to))
                .map(|(_, r)| r.at(self.sequence)),
        )
        .map_err(ReportError::overflow("flows between members"))
    }

    /// What `payer` accrued to or paid `payee` in every period up to and including `to`.
    pub(super) fn pair_ledger_to(
        &self,
        payer: &MemberCode,
        payee: &MemberCode,
        line: PairLine,
        to: Period,
    ) -> Result<Pence, ReportError> {
        let upto = (*payer, *payee, line, to);
        Pence::checked_sum(
            self.projection
                .pair_ledger
                .range(..=upto)
                .rev()
                .take_while(|((a, b, l, _), _)| a == payer && b == payee && *l == line)
                .map(|(_, r)| r.at(self.sequence)),
        )
        .map_err(ReportError::overflow("balances between members"))
    }

    /// Pairs `(payer, payee)` with any ledger flow, in order.
    pub(super) fn flow_pairs(&self) -> Vec<(&'a MemberCode, &'a MemberCode)> {
        let mut pairs: Vec<(&MemberCode, &MemberCode)> = self
            .projection
            .pair_ledger
            .keys()
            .map(|(a, b, _, _)| (a, b))
            .collect();
        pairs.dedup();
        pairs
    }

    pub(super) fn contracts(&self) -> impl Iterator<Item = (&'a Code, &'a ContractFacts)> {
        let sequence = self.sequence;
        self.projection
            .contracts
            .iter()
            .filter(move |(_, c)| c.recorded_at <= sequence)
    }

    /// A contract's line over `from ..= to`.
    pub(super) fn contract_line(
        &self,
        code: &Code,
        line: ContractLine,
        from: Period,
        to: Period,
    ) -> Result<Pence, ReportError> {
        let key = |p| (code.clone(), line, p);
        Pence::checked_sum(
            self.projection
                .contract_lines
                .range(key(from)..=key(to))
                .map(|(_, r)| r.at(self.sequence)),
        )
        .map_err(ReportError::overflow("contract lines"))
    }

    /// A contract's line in every period up to and including `to`.
    pub(super) fn contract_line_to(
        &self,
        code: &Code,
        line: ContractLine,
        to: Period,
    ) -> Result<Pence, ReportError> {
        Pence::checked_sum(
            self.projection
                .contract_lines
                .range(..=(code.clone(), line, to))
                .rev()
                .take_while(|((c, l, _), _)| c == code && *l == line)
                .map(|(_, r)| r.at(self.sequence)),
        )
        .map_err(ReportError::overflow("contract lines"))
    }

    /// Whether anything of the contract lands in `from ..= to`.
    pub(super) fn contract_has_postings(&self, code: &Code, from: Period, to: Period) -> bool {
        self.projection
            .contract_lines
            .range((code.clone(), ContractLine::Phased, from)..)
            .take_while(|((c, _, _), _)| c == code)
            .any(|((_, _, p), r)| *p >= from && *p <= to && r.at(self.sequence) != Pence::ZERO)
    }

    pub(super) fn budgets(&self) -> impl Iterator<Item = (&'a Code, &'a BudgetFacts)> {
        let sequence = self.sequence;
        self.projection
            .budgets
            .iter()
            .filter(move |(_, b)| b.recorded_at <= sequence)
    }

    /// Every line of budget `code` with its amount as of the snapshot.
    pub(super) fn budget_lines(&self, code: &Code) -> Vec<(&'a BudgetLine, Pence)> {
        self.projection
            .budget_lines
            .get(code)
            .map(|lines| {
                lines
                    .iter()
                    .map(|(line, r)| (line, r.at(self.sequence)))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub(super) fn funds(&self) -> impl Iterator<Item = (&'a Code, &'a FundFacts)> {
        let sequence = self.sequence;
        self.projection
            .funds
            .iter()
            .filter(move |(_, f)| f.recorded_at <= sequence)
    }

    pub(super) fn is_visible(&self, recorded_at: u64) -> bool {
        self.visible(recorded_at)
    }

    /// Months M1 ..= `month` of `year`.
    pub(super) fn ytd(year: FinancialYear, month: Month) -> (Period, Period) {
        year_to_date(year, month)
    }

    /// Stated balances of `member`'s return for `period`, by counterparty.
    pub(super) fn stated_balances(
        &self,
        member: &MemberCode,
        period: Period,
    ) -> BTreeMap<&'a MemberCode, &'a crate::system::CounterpartyBalance> {
        self.monthly_return(member, period)
            .map(|r| r.balances.iter().map(|b| (&b.counterparty, b)).collect())
            .unwrap_or_default()
    }
}
