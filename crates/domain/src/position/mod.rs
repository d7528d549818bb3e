//! The collective financial position: one fold of the ledger's events and the reports
//! computed from it, used alike by positiond, oversightd and the audit replay, so a replayed
//! report is byte-identical to the one served.
//!
//! # Shape
//!
//! - [`Projection`] folds recorded events ([`Projection::apply`], given the event's global
//!   sequence and recorded-at time as [`Recorded`]). It is plain serde data, so positiond can
//!   keep it in sled and resume folding after a restart: folding a log in one go, or a prefix,
//!   storing and loading the projection, then the rest, gives the same projection.
//! - [`Projection::at`] takes a [`Snapshot`] *as recorded at* a sequence or a time
//!   ([`AsOf`], transaction time), and each report is asked of a snapshot for a financial
//!   year and a month, year to date (valid time):
//!   [`PositionReport`], [`ConsolidationReport`], [`PooledBudgetStatement`],
//!   [`ContractStatement`], [`FundStatement`], [`AgreementOfBalances`] and
//!   [`AdjustmentsReport`].
//! - Each report is serde data in integer pence with deterministic order, and has canonical
//!   bytes and a SHA-256 fingerprint ([`Report`], [`canonical`]).
//! - [`ReportKind`] names a report (as a filed return does), [`Snapshot::report`] takes the
//!   report of a kind and [`AnyReport`] holds any one of them.
//!
//! # As of a sequence, without refolding
//!
//! Every fact is kept with the sequence that recorded it, append-only (see [`history`]): a
//! replaced fact (a return, a plan, a contract's model) as a list of `(sequence, value)`; an
//! amount that accumulates (a contract's value in a month, a partner's payments) as a list of
//! `(sequence, running total)`. The value as recorded at `S` is the last entry at or before
//! `S`: one binary search. Facts that appear once (a member, an assessment, a settlement)
//! carry the sequence that recorded them and are ignored by a snapshot taken before it.
//!
//! So a report as of `S` costs the same as the latest one: for the position, one lookup per
//! member per month (plan, return, ledger flows), each `O(log n)` in the number of times that
//! fact changed — `O(members × 12 × log n)` — and never a refold. A snapshot at `S` gives
//! exactly the report a projection folded only up to `S` would give (a property test checks
//! it).
//!
//! # Valid time
//!
//! A report for year `Y` and month `N` counts what lands in the periods `Y`-M1 ..= `Y`-M`N`
//! (balances and amounts outstanding: every period up to `Y`-M`N`), as recorded at the
//! snapshot. Facts without a period of their own (plans, pledges, allocations, contract
//! agreements) count once recorded. Every posting lands in the period it is posted in; a
//! correction naming an earlier period changes the period it is posted in and is listed
//! against the period it names ([`AdjustmentsReport`]) — so a closed period's figures never
//! change.
//!
//! # Where the figures come from
//!
//! - **Actual income and expenditure** are what each member's monthly returns state (its
//!   latest return for each month; a month without a return counts as nothing and is listed
//!   as missing). Returns state I&E *before* the sustainability fund, as the control-total
//!   test requires.
//! - **The sustainability fund** comes from the fund's own events: what each assessment
//!   recorded as earned (accrued in the quarter's last month), less claw-backs.
//! - **In-system flows** (eliminations, the Agreement of Balances' ledger column, the
//!   contract and pooled-budget statements) come from the ledger's postings, which both
//!   parties share: contract values (phased annual value, activity, CQUIN, adjustments,
//!   write-offs) and pooled-budget contributions and risk-share allocations. See [`fold`] for
//!   how they are phased.

pub mod canonical;
mod fold;
pub mod history;
mod kind;
mod snapshot;

mod adjustments;
mod aob;
mod budgets;
mod consolidation;
mod contracts;
mod funds;
mod members;

#[cfg(test)]
mod tests;

use serde::{Deserialize, Serialize};

pub use adjustments::{AdjustmentsReport, ListedCorrection};
pub use aob::{
    AOB_MONTHS, AgreementOfBalances, AobLine, AobMeasure, AobOptions, AobScope, AobThresholds,
    MissingReturn,
};
pub use budgets::{BudgetPartner, PooledBudget, PooledBudgetStatement, SchemeSpend, Settlement};
pub use canonical::CanonicalError;
pub use consolidation::{ConsolidatedMember, ConsolidationReport, ConsolidationScope, Elimination};
pub use contracts::{ContractSide, ContractStatement, ContractSummary, CquinOutcome};
pub use fold::{Correction, CorrectionKind, Projection};
pub use funds::{
    FundStatement, FundSummary, LedgerTest, RecipientSummary, TrancheAssessment, TranchePaid,
    TrancheSummary,
};
pub use kind::{AnyReport, ReportKind};
pub use members::{MemberPosition, PositionFigures, PositionReport};
pub use snapshot::{Basis, Snapshot};

use crate::ids::MemberCode;
use crate::period::Period;

/// Where an event sits in the log: its global sequence and when it was recorded
/// (transaction time, microseconds since the Unix epoch — an opaque value the caller gives;
/// the domain reads no clock).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recorded {
    pub sequence: u64,
    pub recorded_at_us: i64,
}

/// Which state of the log a report is taken from (transaction time).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AsOf {
    /// Everything applied.
    Latest,
    /// As recorded at this global sequence (which must have been applied).
    Sequence(u64),
    /// As recorded at this time: every event recorded at or before it (microseconds since the
    /// Unix epoch).
    RecordedAt(i64),
}

/// Why an event could not be folded. The projection is unchanged; a consumer must not go past
/// the event.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProjectionError {
    #[error("event {sequence} is not after the last event applied, {last}")]
    OutOfOrder { last: u64, sequence: u64 },
    #[error(
        "event {sequence} was recorded at {recorded_at_us} µs, before event {last} ({last_recorded_at_us} µs)"
    )]
    TimeWentBackwards {
        sequence: u64,
        recorded_at_us: i64,
        last: u64,
        last_recorded_at_us: i64,
    },
    #[error("event {sequence} ({event}) does not fit the projection: {reason}")]
    DoesNotFit {
        sequence: u64,
        event: &'static str,
        reason: String,
    },
    #[error("event {sequence} ({event}): amounts overflow the range of pence")]
    Overflow { sequence: u64, event: &'static str },
}

/// Why a report could not be produced.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReportError {
    #[error("sequence {asked} has not been applied yet (last applied: {last})")]
    NotYetApplied { asked: u64, last: u64 },
    #[error("the system was not established as of sequence {sequence}")]
    NotEstablished { sequence: u64 },
    #[error("{what}: amounts overflow the range of pence")]
    Overflow { what: &'static str },
}

impl ReportError {
    pub(crate) fn overflow(what: &'static str) -> impl Fn(crate::money::MoneyError) -> Self {
        move |_| ReportError::Overflow { what }
    }
}

/// A report with canonical bytes (see [`canonical`]) and a SHA-256 fingerprint of them.
pub trait Report: Serialize {
    /// The report's kind and version, the first thing its canonical bytes name.
    const KIND: &'static str;

    fn canonical_bytes(&self) -> Result<Vec<u8>, CanonicalError> {
        canonical::to_bytes(Self::KIND, self)
    }

    /// SHA-256 of [`Report::canonical_bytes`].
    fn fingerprint(&self) -> Result<[u8; 32], CanonicalError> {
        Ok(canonical::sha256(&self.canonical_bytes()?))
    }
}

/// An unordered pair of members, the smaller code first.
pub(crate) fn pair(a: &MemberCode, b: &MemberCode) -> (MemberCode, MemberCode) {
    if a <= b { (*a, *b) } else { (*b, *a) }
}

/// Months M1 ..= `month` of `period`'s year.
pub(crate) fn year_to_date(year: crate::FinancialYear, month: crate::Month) -> (Period, Period) {
    (
        year.period(crate::Month::all().next().unwrap_or(month)),
        year.period(month),
    )
}
