//! Which report, as a filed return names it, and any one report taken: [`ReportKind`] says
//! which of the seven reports (and, for consolidation and the Agreement of Balances, the
//! options that shape its figures), [`AnyReport`] holds one of them, and
//! [`Snapshot::report`] takes the report of a kind — the one way positiond's reports, the
//! audit replay and a return's check are asked for by kind.
//!
//! A report's year, month and the sequence it was taken at are in its [`Basis`]; together with
//! its kind they are everything needed to take it again from the log.

use serde::{Deserialize, Serialize};

use crate::ids::MemberCode;
use crate::period::{FinancialYear, Month};

use super::canonical::{self, CanonicalError};
use super::{
    AdjustmentsReport, AgreementOfBalances, AobOptions, AobScope, Basis, ConsolidationReport,
    ConsolidationScope, ContractStatement, FundStatement, PooledBudgetStatement, PositionReport,
    Report, ReportError, Snapshot,
};

/// One of the reports positiond serves, with what shapes its figures beyond the year and month.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReportKind {
    /// [`PositionReport`]: each member against its plan, the control total, the wider ICS.
    Position,
    /// [`ConsolidationReport`] of the members in `scope`.
    Consolidation(ConsolidationScope),
    /// [`PooledBudgetStatement`].
    PooledBudgets,
    /// [`ContractStatement`].
    Contracts,
    /// [`FundStatement`].
    Funds,
    /// [`AgreementOfBalances`] with these thresholds and scope.
    AgreementOfBalances(AobOptions),
    /// [`AdjustmentsReport`].
    Adjustments,
}

impl ReportKind {
    /// The name icsctl gives the report (`icsctl position`, `icsctl fund`, …).
    pub const fn name(self) -> &'static str {
        match self {
            ReportKind::Position => "position",
            ReportKind::Consolidation(_) => "consolidation",
            ReportKind::PooledBudgets => "budget",
            ReportKind::Contracts => "contract",
            ReportKind::Funds => "fund",
            ReportKind::AgreementOfBalances(_) => "aob",
            ReportKind::Adjustments => "adjustments",
        }
    }

    /// The kind and version its canonical bytes name ([`Report::KIND`]).
    pub const fn canonical_kind(self) -> &'static str {
        match self {
            ReportKind::Position => PositionReport::KIND,
            ReportKind::Consolidation(_) => ConsolidationReport::KIND,
            ReportKind::PooledBudgets => PooledBudgetStatement::KIND,
            ReportKind::Contracts => ContractStatement::KIND,
            ReportKind::Funds => FundStatement::KIND,
            ReportKind::AgreementOfBalances(_) => AgreementOfBalances::KIND,
            ReportKind::Adjustments => AdjustmentsReport::KIND,
        }
    }
}

impl std::fmt::Display for ReportKind {
    /// `position`, `consolidation (control total)`, `aob (NHS bodies; thresholds £300,000.00
    /// receivables/payables, £3,000,000.00 income/expenditure)`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ReportKind::Consolidation(scope) => {
                let scope = match scope {
                    ConsolidationScope::ControlTotal => "control total",
                    ConsolidationScope::WiderIcs => "wider ICS",
                };
                write!(f, "{} ({scope})", self.name())
            }
            ReportKind::AgreementOfBalances(options) => {
                let scope = match options.scope {
                    AobScope::NhsBodies => "NHS bodies",
                    AobScope::AllMembers => "every member",
                };
                write!(
                    f,
                    "{} ({scope}; thresholds {} receivables/payables, {} income/expenditure)",
                    self.name(),
                    options.thresholds.receivables_payables,
                    options.thresholds.income_expenditure
                )
            }
            _ => f.write_str(self.name()),
        }
    }
}

/// Any one report, as taken by [`Snapshot::report`]. Serde data: its JSON reads back into the
/// same report, with the same canonical bytes.
#[allow(clippy::large_enum_variant)] // one report at a time, taken once: boxing buys nothing
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AnyReport {
    Position(PositionReport),
    Consolidation(ConsolidationReport),
    PooledBudgets(PooledBudgetStatement),
    Contracts(ContractStatement),
    Funds(FundStatement),
    AgreementOfBalances(AgreementOfBalances),
    Adjustments(AdjustmentsReport),
}

impl AnyReport {
    /// The kind of this report, with the options it was taken with.
    pub fn kind(&self) -> ReportKind {
        match self {
            AnyReport::Position(_) => ReportKind::Position,
            AnyReport::Consolidation(r) => ReportKind::Consolidation(r.scope),
            AnyReport::PooledBudgets(_) => ReportKind::PooledBudgets,
            AnyReport::Contracts(_) => ReportKind::Contracts,
            AnyReport::Funds(_) => ReportKind::Funds,
            AnyReport::AgreementOfBalances(r) => ReportKind::AgreementOfBalances(r.options),
            AnyReport::Adjustments(_) => ReportKind::Adjustments,
        }
    }

    /// The report as member `member`'s finance team is shown it: the position and the
    /// contract statement limited to what concerns it; the other reports are not shown to a
    /// member at all, and stay as they are.
    pub fn limit_to(&mut self, member: MemberCode) {
        match self {
            AnyReport::Position(report) => report.limit_to(member),
            AnyReport::Contracts(report) => report.limit_to(member),
            AnyReport::Consolidation(_)
            | AnyReport::PooledBudgets(_)
            | AnyReport::Funds(_)
            | AnyReport::AgreementOfBalances(_)
            | AnyReport::Adjustments(_) => {}
        }
    }

    /// What it was taken from and for.
    pub fn basis(&self) -> &Basis {
        match self {
            AnyReport::Position(r) => &r.basis,
            AnyReport::Consolidation(r) => &r.basis,
            AnyReport::PooledBudgets(r) => &r.basis,
            AnyReport::Contracts(r) => &r.basis,
            AnyReport::Funds(r) => &r.basis,
            AnyReport::AgreementOfBalances(r) => &r.basis,
            AnyReport::Adjustments(r) => &r.basis,
        }
    }

    /// The report's canonical bytes ([`Report::canonical_bytes`] of the report it holds; the
    /// wrapper adds nothing).
    pub fn canonical_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        match self {
            AnyReport::Position(r) => r.canonical_bytes(),
            AnyReport::Consolidation(r) => r.canonical_bytes(),
            AnyReport::PooledBudgets(r) => r.canonical_bytes(),
            AnyReport::Contracts(r) => r.canonical_bytes(),
            AnyReport::Funds(r) => r.canonical_bytes(),
            AnyReport::AgreementOfBalances(r) => r.canonical_bytes(),
            AnyReport::Adjustments(r) => r.canonical_bytes(),
        }
    }

    /// SHA-256 of [`AnyReport::canonical_bytes`]: the report's fingerprint.
    pub fn fingerprint(&self) -> Result<[u8; 32], CanonicalError> {
        Ok(canonical::sha256(&self.canonical_bytes()?))
    }
}

impl Snapshot<'_> {
    /// The report of `kind` for `year`, year to date to `month`.
    pub fn report(
        &self,
        kind: ReportKind,
        year: FinancialYear,
        month: Month,
    ) -> Result<AnyReport, ReportError> {
        Ok(match kind {
            ReportKind::Position => AnyReport::Position(self.position(year, month)?),
            ReportKind::Consolidation(scope) => {
                AnyReport::Consolidation(self.consolidation(year, month, scope)?)
            }
            ReportKind::PooledBudgets => {
                AnyReport::PooledBudgets(self.pooled_budgets(year, month)?)
            }
            ReportKind::Contracts => AnyReport::Contracts(self.contracts_statement(year, month)?),
            ReportKind::Funds => AnyReport::Funds(self.funds_statement(year, month)?),
            ReportKind::AgreementOfBalances(options) => {
                AnyReport::AgreementOfBalances(self.agreement_of_balances(year, month, options)?)
            }
            ReportKind::Adjustments => AnyReport::Adjustments(self.adjustments(year, month)?),
        })
    }
}
