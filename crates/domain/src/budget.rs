//! The *pooled budget* family: a Better Care Fund style pool under a Section 75 agreement.
//! One stream per budget (`budget/<code>`).
//!
//! Rules:
//! - established once, by code, for one year, with a host who is one of the partners; every
//!   partner is an admitted member, named once; schemes are named once; the overspend shares
//!   and the underspend shares each name only partners, each partner at most once, and each
//!   set sums to exactly 100.00%;
//! - a pledge is by a partner, not negative... (strictly more than zero), to the revenue pool
//!   or to a named ring-fenced scheme (which sits outside the risk share);
//! - a payment is by a partner, more than zero, in an open period of the budget's year, and a
//!   partner's payments never exceed its pledges;
//! - spend is against a scheme of the pool, more than zero, in an open period of the budget's
//!   year (or, as a correction, in a later open period naming the period of the budget's year
//!   it corrects);
//! - a variation may replace either set of shares (same rules as at establishment) and add
//!   schemes; it needs a reason;
//! - the risk share is settled once, in an open period of the budget's year: the variance is
//!   revenue spend (spend on schemes that are not ring-fenced) minus revenue pledges; an
//!   overspend (positive variance) is split by the overspend shares, an underspend by the
//!   underspend shares, by largest remainder so the parts sum exactly to the variance;
//! - after settlement no pledge, payment of more than pledged, or spend is accepted; after
//!   closing (which needs the settlement) nothing is.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Code, MemberCode, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Scheme {
    pub scheme: Code,
    pub name: Text,
    /// Ring-fenced money (e.g. the Disabled Facilities Grant) sits outside the risk share.
    pub ring_fenced: bool,
}

/// A partner's share of an overspend or underspend.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Share {
    pub member: MemberCode,
    pub share: BasisPoints,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetCommand {
    Establish {
        name: Text,
        host: MemberCode,
        year: FinancialYear,
        partners: Vec<MemberCode>,
        schemes: Vec<Scheme>,
        overspend_shares: Vec<Share>,
        underspend_shares: Vec<Share>,
    },
    /// `ring_fenced_scheme`: `None` pledges to the revenue pool inside the risk share.
    Pledge {
        partner: MemberCode,
        amount: Pence,
        ring_fenced_scheme: Option<Code>,
    },
    PayContribution {
        partner: MemberCode,
        period: Period,
        amount: Pence,
    },
    RecordSpend {
        scheme: Code,
        period: Period,
        amount: Pence,
        corrects: Option<Period>,
    },
    Vary {
        reason: Text,
        overspend_shares: Option<Vec<Share>>,
        underspend_shares: Option<Vec<Share>>,
        add_schemes: Vec<Scheme>,
    },
    SettleRiskShare {
        period: Period,
    },
    Close {
        period: Period,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BudgetEvent {
    Established {
        name: Text,
        host: MemberCode,
        year: FinancialYear,
        partners: Vec<MemberCode>,
        schemes: Vec<Scheme>,
        overspend_shares: Vec<Share>,
        underspend_shares: Vec<Share>,
    },
    Pledged {
        partner: MemberCode,
        amount: Pence,
        ring_fenced_scheme: Option<Code>,
    },
    ContributionPaid {
        partner: MemberCode,
        period: Period,
        amount: Pence,
    },
    SpendRecorded {
        scheme: Code,
        period: Period,
        amount: Pence,
        corrects: Option<Period>,
    },
    Varied {
        reason: Text,
        overspend_shares: Option<Vec<Share>>,
        underspend_shares: Option<Vec<Share>>,
        add_schemes: Vec<Scheme>,
    },
    /// `variance` = `revenue_spend` − `revenue_pledged`; `allocations` are each partner's part
    /// of it (positive: the partner pays more; negative: returned to the partner) and sum
    /// exactly to `variance`. `shares` are the shares that were applied.
    RiskShareSettled {
        period: Period,
        revenue_pledged: Pence,
        revenue_spend: Pence,
        variance: Pence,
        shares: Vec<Share>,
        allocations: Vec<Allocation>,
    },
    Closed {
        period: Period,
    },
}

/// One member's part of a split amount.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Allocation {
    pub member: MemberCode,
    pub amount: Pence,
}

/// What the rules need to know about one pooled budget.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetState {
    pub name: Text,
    pub host: MemberCode,
    pub year: FinancialYear,
    pub partners: Vec<MemberCode>,
    pub schemes: BTreeMap<Code, Scheme>,
    pub overspend_shares: Vec<Share>,
    pub underspend_shares: Vec<Share>,
    /// Pledged to the revenue pool, per partner.
    pub revenue_pledged: BTreeMap<MemberCode, Pence>,
    /// Pledged to ring-fenced schemes, per partner.
    pub ring_fenced_pledged: BTreeMap<MemberCode, Pence>,
    pub paid: BTreeMap<MemberCode, Pence>,
    /// Spend per scheme.
    pub spend: BTreeMap<Code, Pence>,
    pub settled: bool,
    pub closed: bool,
}

/// Decides a command for the budget `code` (`state` is `None` until it is created).
pub fn decide(
    system: &crate::system::SystemState,
    code: &Code,
    state: Option<&BudgetState>,
    command: &BudgetCommand,
) -> Result<Vec<BudgetEvent>, crate::error::DomainError> {
    let _ = (system, state, command);
    Err(crate::error::DomainError::NotFound {
        what: "budget",
        id: code.to_string(),
    }) // PLACEHOLDER: being implemented
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(
    entry: std::collections::btree_map::Entry<'_, Code, BudgetState>,
    event: &BudgetEvent,
) -> Result<(), String> {
    let _ = (entry, event);
    Err("PLACEHOLDER: being implemented".to_string())
}
