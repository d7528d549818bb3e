//! The *sustainability fund* family: an allocation to named providers, paid in four quarterly
//! tranches, each earned against weighted conditions and assessed in arrears. One stream per
//! fund (`fund/<code>`).
//!
//! Rules:
//! - allocated once, for one year, to recipients who are admitted NHS providers counted in
//!   the control total, each named once with an allocation more than zero; the fund's total is
//!   the sum of allocations and each quarter's tranche is a quarter of it (largest remainder);
//! - conditions have unique codes, weights that sum to exactly 100.00%, and an A&E threshold of
//!   at most 100.00%; each tranche's amount is split across conditions by weight;
//! - tranches are assessed in order (Q1 first), once each, in the quarter's last month, which
//!   must be open; the evidence names every condition once, with the kind of figures it needs;
//!   a condition is met when *system YTD before the fund ≥ system control total YTD* (finance)
//!   or *A&E four-hour performance ≥ threshold* (A&E); what is met is earned, the rest
//!   forfeited (no catch-up); what is earned is split between recipients in proportion to their
//!   allocations (largest remainder), and the event records all of it;
//! - a tranche is paid once, after assessment, in an open period of the fund's year or later;
//!   it pays each recipient exactly what was earned;
//! - a claw-back takes back from a recipient at most what it was paid for that quarter, less
//!   what has already been clawed back, in an open period, with a reason.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::budget::Allocation;
use crate::ids::{Code, MemberCode, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period, Quarter};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Recipient {
    pub member: MemberCode,
    pub allocation: Pence,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConditionKind {
    /// System year-to-date surplus/deficit before the fund ≥ system control total year to date.
    SystemFinance,
    /// A&E four-hour performance ≥ `threshold`.
    AeFourHour { threshold: BasisPoints },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Condition {
    pub condition: Code,
    pub kind: ConditionKind,
    pub weight: BasisPoints,
}

/// The figures an assessment tested for one condition.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Figures {
    SystemFinance {
        actual_ytd: Pence,
        control_total_ytd: Pence,
    },
    AeFourHour {
        performance: BasisPoints,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    pub condition: Code,
    pub figures: Figures,
}

/// How one condition of one tranche came out.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConditionOutcome {
    pub condition: Code,
    pub kind: ConditionKind,
    pub weight: BasisPoints,
    /// The condition's part of the tranche.
    pub amount: Pence,
    pub figures: Figures,
    pub met: bool,
    pub earned: Pence,
    pub forfeited: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundCommand {
    Allocate {
        name: Text,
        year: FinancialYear,
        recipients: Vec<Recipient>,
        conditions: Vec<Condition>,
    },
    AssessTranche {
        quarter: Quarter,
        evidence: Vec<Evidence>,
    },
    PayTranche {
        quarter: Quarter,
        period: Period,
    },
    ClawBack {
        quarter: Quarter,
        member: MemberCode,
        period: Period,
        amount: Pence,
        reason: Text,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum FundEvent {
    /// `tranches` holds the four quarterly amounts, Q1 first, summing to the total.
    Allocated {
        name: Text,
        year: FinancialYear,
        recipients: Vec<Recipient>,
        conditions: Vec<Condition>,
        total: Pence,
        tranches: Vec<Pence>,
    },
    TrancheAssessed {
        quarter: Quarter,
        period: Period,
        tranche: Pence,
        outcomes: Vec<ConditionOutcome>,
        earned: Pence,
        forfeited: Pence,
        earned_by_recipient: Vec<Allocation>,
    },
    TranchePaid {
        quarter: Quarter,
        period: Period,
        payments: Vec<Allocation>,
    },
    ClawedBack {
        quarter: Quarter,
        member: MemberCode,
        period: Period,
        amount: Pence,
        reason: Text,
    },
}

/// What the rules need to know about one fund.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FundState {
    pub name: Text,
    pub year: FinancialYear,
    pub recipients: Vec<Recipient>,
    pub conditions: Vec<Condition>,
    pub tranches: Vec<Pence>,
    /// Earned per recipient, per assessed quarter.
    pub assessed: BTreeMap<Quarter, Vec<Allocation>>,
    pub paid: BTreeMap<Quarter, Vec<Allocation>>,
    /// Clawed back per (quarter, member).
    pub clawed_back: BTreeMap<(Quarter, MemberCode), Pence>,
}

/// Decides a command for the fund `code` (`state` is `None` until it is created).
pub fn decide(
    system: &crate::system::SystemState,
    code: &Code,
    state: Option<&FundState>,
    command: &FundCommand,
) -> Result<Vec<FundEvent>, crate::error::DomainError> {
    let _ = (system, state, command);
    Err(crate::error::DomainError::NotFound {
        what: "fund",
        id: code.to_string(),
    }) // PLACEHOLDER: being implemented
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(
    entry: std::collections::btree_map::Entry<'_, Code, FundState>,
    event: &FundEvent,
) -> Result<(), String> {
    let _ = (entry, event);
    Err("PLACEHOLDER: being implemented".to_string())
}
