//! The *contract* family: an agreement between a commissioner and a provider for one year,
//! with its payment model, variations, activity, invoices, payments, disputes and termination.
//! One stream per contract (`contract/<code>`).
//!
//! Rules:
//! - agreed once, by code, between an admitted commissioner (kind `Commissioner`) and an
//!   admitted provider, for a year not before the system's first; amounts in the model are
//!   more than zero (shares and rates at most 100.00%, and at least one unit planned where the
//!   model plans units); the annual value must not overflow;
//! - every posting (variation, activity, invoice, payment, dispute, resolution, CQUIN
//!   reconciliation, adjustment, termination) is in an open period; it is in the contract's
//!   year unless it is a correction (`corrects`), which is posted in a later open period and
//!   names the period of the contract's year it corrects;
//! - a terminated contract takes only payments and dispute resolutions;
//! - activity is a count for one month (`for_period` = `corrects` or `period`); a later count
//!   for the same month replaces the earlier one and the event records the change in value:
//!   activity × tariff is (units − planned units for the month) × unit price; aligned payment
//!   is (units − planned units for the month) × unit price × marginal rate; other models
//!   record activity with no change in value. Planned units are phased evenly over twelve
//!   months (largest remainder);
//! - an invoice has a new code and an amount more than zero; a payment is against an existing
//!   invoice, more than zero, and never more than the invoice's outstanding amount;
//! - a dispute has a new code, an amount more than zero and at most the invoice's amount when it
//!   names an invoice; it is resolved once, with the amount the provider keeps (between zero
//!   and the disputed amount); the rest is written off the contract's value;
//! - CQUIN is reconciled once, on a CQUIN contract, with the achievement (at most 100.00%):
//!   value = base × rate, earned = value × achievement, deduction = value − earned;
//! - an adjustment is a signed, non-zero change to the contract's value with a reason;
//! - a variation replaces the payment model from a period of the contract's year, with a
//!   reason; the model's kind stays the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{Code, MemberCode, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum PaymentModel {
    /// A fixed annual sum.
    Block { annual_value: Pence },
    /// Payment by results: units × national tariff price.
    ActivityTariff {
        planned_units: u64,
        unit_price: Pence,
    },
    /// A fixed element plus a variable element around planned activity at a marginal rate.
    AlignedPayment {
        fixed: Pence,
        planned_units: u64,
        unit_price: Pence,
        marginal_rate: BasisPoints,
    },
    /// Per head × registered population, with a share of gains and losses.
    Capitation {
        per_head: Pence,
        population: u64,
        gain_share: BasisPoints,
        loss_share: BasisPoints,
    },
    /// A quality incentive: `rate` × `base_value`, paid monthly on account and reconciled.
    Cquin {
        base_value: Pence,
        rate: BasisPoints,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum DisputeOutcome {
    /// The provider keeps this much of the disputed amount; the rest is written off.
    ProviderKeeps(Pence),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractCommand {
    Agree {
        commissioner: MemberCode,
        provider: MemberCode,
        year: FinancialYear,
        model: PaymentModel,
        description: Text,
    },
    Vary {
        period: Period,
        reason: Text,
        model: PaymentModel,
    },
    RecordActivity {
        period: Period,
        units: u64,
        corrects: Option<Period>,
    },
    RaiseInvoice {
        invoice: Code,
        period: Period,
        amount: Pence,
        corrects: Option<Period>,
    },
    RecordPayment {
        invoice: Code,
        period: Period,
        amount: Pence,
    },
    RaiseDispute {
        dispute: Code,
        invoice: Option<Code>,
        period: Period,
        amount: Pence,
        reason: Text,
    },
    ResolveDispute {
        dispute: Code,
        period: Period,
        provider_keeps: Pence,
        resolution: Text,
    },
    ReconcileCquin {
        period: Period,
        achievement: BasisPoints,
    },
    RecordAdjustment {
        period: Period,
        amount: Pence,
        reason: Text,
        corrects: Option<Period>,
    },
    Terminate {
        period: Period,
        reason: Text,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ContractEvent {
    /// `annual_value` is the model's value for the year (for aligned payment, the fixed part
    /// plus planned units at the unit price).
    Agreed {
        commissioner: MemberCode,
        provider: MemberCode,
        year: FinancialYear,
        model: PaymentModel,
        description: Text,
        annual_value: Pence,
    },
    Varied {
        period: Period,
        reason: Text,
        model: PaymentModel,
        annual_value_before: Pence,
        annual_value_after: Pence,
    },
    /// `value_change` is what this record changes the contract's value by.
    ActivityRecorded {
        period: Period,
        for_period: Period,
        units: u64,
        previous_units: u64,
        planned_units: u64,
        value_change: Pence,
    },
    InvoiceRaised {
        invoice: Code,
        period: Period,
        amount: Pence,
        corrects: Option<Period>,
    },
    PaymentRecorded {
        invoice: Code,
        period: Period,
        amount: Pence,
    },
    DisputeRaised {
        dispute: Code,
        invoice: Option<Code>,
        period: Period,
        amount: Pence,
        reason: Text,
    },
    DisputeResolved {
        dispute: Code,
        period: Period,
        provider_keeps: Pence,
        written_off: Pence,
        resolution: Text,
    },
    CquinReconciled {
        period: Period,
        achievement: BasisPoints,
        value: Pence,
        earned: Pence,
        deduction: Pence,
    },
    AdjustmentRecorded {
        period: Period,
        amount: Pence,
        reason: Text,
        corrects: Option<Period>,
    },
    Terminated {
        period: Period,
        reason: Text,
    },
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Invoice {
    pub amount: Pence,
    pub paid: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Dispute {
    pub invoice: Option<Code>,
    pub amount: Pence,
    pub resolved: bool,
}

/// What the rules need to know about one contract.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractState {
    pub commissioner: MemberCode,
    pub provider: MemberCode,
    pub year: FinancialYear,
    pub model: PaymentModel,
    pub annual_value: Pence,
    /// Units recorded per month of the contract's year.
    pub activity: BTreeMap<Period, u64>,
    pub invoices: BTreeMap<Code, Invoice>,
    pub disputes: BTreeMap<Code, Dispute>,
    pub cquin_reconciled: bool,
    pub terminated: bool,
}

/// Decides a command for the contract `code` (`state` is `None` until it is created).
pub fn decide(
    system: &crate::system::SystemState,
    code: &Code,
    state: Option<&ContractState>,
    command: &ContractCommand,
) -> Result<Vec<ContractEvent>, crate::error::DomainError> {
    let _ = (system, state, command);
    Err(crate::error::DomainError::NotFound {
        what: "contract",
        id: code.to_string(),
    }) // PLACEHOLDER: being implemented
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(
    entry: std::collections::btree_map::Entry<'_, Code, ContractState>,
    event: &ContractEvent,
) -> Result<(), String> {
    let _ = (entry, event);
    Err("PLACEHOLDER: being implemented".to_string())
}
