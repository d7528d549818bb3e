//! The ICS finance domain, pure.
//!
//! Everything the ledger knows about money, periods, members and the four event families
//! (system, pooled budget, sustainability fund, contract), and the rules that decide whether a
//! command is accepted. Shape: for each family a `decide(state, command) -> events` and an
//! `apply(state, event)`; [`Ledger`] holds the state of one ICS and routes commands and
//! events to the right aggregate.
//!
//! **Architecture invariant:** this crate does no I/O, reads no clock, draws no random numbers
//! and never panics on input. Replaying the same events gives the same state, byte for byte.

pub mod budget;
pub mod contract;
pub mod error;
pub mod fund;
pub mod ids;
pub mod money;
pub mod oversight;
pub mod period;
pub mod position;
pub mod system;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod testing;

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

pub use budget::{BudgetCommand, BudgetEvent, BudgetState};
pub use contract::{ContractCommand, ContractEvent, ContractState};
pub use error::{DomainError, Rule};
pub use fund::{FundCommand, FundEvent, FundState};
pub use ids::{Code, IdError, MemberCode, MemberKind, SystemId, Text};
pub use money::{BasisPoints, MoneyError, Pence};
pub use period::{FinancialYear, Month, Period, PeriodError, Quarter};
pub use system::{SystemCommand, SystemEvent, SystemState};

/// A command to one aggregate of the ledger.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    System(SystemCommand),
    Budget {
        budget: Code,
        command: BudgetCommand,
    },
    Fund {
        fund: Code,
        command: FundCommand,
    },
    Contract {
        contract: Code,
        command: ContractCommand,
    },
}

/// A fact recorded in the ledger, with the aggregate it belongs to.
///
/// Stored as the payload of the event store's envelope, so variants are only ever appended
/// (bincode identifies a variant by its index).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    System(SystemEvent),
    Budget {
        budget: Code,
        event: BudgetEvent,
    },
    Fund {
        fund: Code,
        event: FundEvent,
    },
    Contract {
        contract: Code,
        event: ContractEvent,
    },
}

/// The four event families, which are also the third token of NATS subjects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Family {
    System,
    Budget,
    Funding,
    Contract,
}

impl Family {
    pub const ALL: [Family; 4] = [
        Family::System,
        Family::Budget,
        Family::Funding,
        Family::Contract,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Family::System => "system",
            Family::Budget => "budget",
            Family::Funding => "funding",
            Family::Contract => "contract",
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The stream an aggregate's events are kept in: `system`, `budget/<code>`, `fund/<code>`,
/// `contract/<code>`.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct StreamId(String);

impl StreamId {
    pub const SYSTEM: &'static str = "system";

    pub fn system() -> Self {
        StreamId(Self::SYSTEM.to_string())
    }

    pub fn budget(code: &Code) -> Self {
        StreamId(format!("budget/{code}"))
    }

    pub fn fund(code: &Code) -> Self {
        StreamId(format!("fund/{code}"))
    }

    pub fn contract(code: &Code) -> Self {
        StreamId(format!("contract/{code}"))
    }

    /// Parses a stream id as written by the constructors above.
    pub fn parse(text: &str) -> Result<Self, DomainError> {
        if text == Self::SYSTEM {
            return Ok(Self::system());
        }
        let invalid = |reason: String| DomainError::invalid("stream", reason);
        let (kind, code) = text.split_once('/').ok_or_else(|| {
            invalid(format!(
                "'{text}' is not system, budget/<code>, fund/<code> or contract/<code>"
            ))
        })?;
        let code = Code::new(code).map_err(|e| invalid(e.to_string()))?;
        match kind {
            "budget" => Ok(Self::budget(&code)),
            "fund" => Ok(Self::fund(&code)),
            "contract" => Ok(Self::contract(&code)),
            _ => Err(invalid(format!("'{kind}' is not a kind of stream"))),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Command {
    /// The stream this command's events go to.
    pub fn stream(&self) -> StreamId {
        match self {
            Command::System(_) => StreamId::system(),
            Command::Budget { budget, .. } => StreamId::budget(budget),
            Command::Fund { fund, .. } => StreamId::fund(fund),
            Command::Contract { contract, .. } => StreamId::contract(contract),
        }
    }
}

impl Event {
    pub fn stream(&self) -> StreamId {
        match self {
            Event::System(_) => StreamId::system(),
            Event::Budget { budget, .. } => StreamId::budget(budget),
            Event::Fund { fund, .. } => StreamId::fund(fund),
            Event::Contract { contract, .. } => StreamId::contract(contract),
        }
    }

    pub fn family(&self) -> Family {
        match self {
            Event::System(_) => Family::System,
            Event::Budget { .. } => Family::Budget,
            Event::Fund { .. } => Family::Funding,
            Event::Contract { .. } => Family::Contract,
        }
    }

    /// The event's name within its family, snake_case; the last token of its NATS subject.
    pub fn name(&self) -> &'static str {
        match self {
            Event::System(e) => match e {
                SystemEvent::Established { .. } => "established",
                SystemEvent::MemberAdmitted { .. } => "member_admitted",
                SystemEvent::PlanAgreed { .. } => "plan_agreed",
                SystemEvent::ReturnSubmitted { .. } => "return_submitted",
                SystemEvent::MetricReported { .. } => "metric_reported",
                SystemEvent::PeriodClosed { .. } => "period_closed",
            },
            Event::Budget { event, .. } => match event {
                BudgetEvent::Established { .. } => "established",
                BudgetEvent::Pledged { .. } => "pledged",
                BudgetEvent::ContributionPaid { .. } => "contribution_paid",
                BudgetEvent::SpendRecorded { .. } => "spend_recorded",
                BudgetEvent::Varied { .. } => "varied",
                BudgetEvent::RiskShareSettled { .. } => "risk_share_settled",
                BudgetEvent::Closed { .. } => "closed",
            },
            Event::Fund { event, .. } => match event {
                FundEvent::Allocated { .. } => "allocated",
                FundEvent::TrancheAssessed { .. } => "tranche_assessed",
                FundEvent::TranchePaid { .. } => "tranche_paid",
                FundEvent::ClawedBack { .. } => "clawed_back",
            },
            Event::Contract { event, .. } => match event {
                ContractEvent::Agreed { .. } => "agreed",
                ContractEvent::Varied { .. } => "varied",
                ContractEvent::ActivityRecorded { .. } => "activity_recorded",
                ContractEvent::InvoiceRaised { .. } => "invoice_raised",
                ContractEvent::PaymentRecorded { .. } => "payment_recorded",
                ContractEvent::DisputeRaised { .. } => "dispute_raised",
                ContractEvent::DisputeResolved { .. } => "dispute_resolved",
                ContractEvent::CquinReconciled { .. } => "cquin_reconciled",
                ContractEvent::AdjustmentRecorded { .. } => "adjustment_recorded",
                ContractEvent::Terminated { .. } => "terminated",
            },
        }
    }

    /// The period the event is effective in (valid time), where it has one.
    pub fn effective_period(&self) -> Option<Period> {
        match self {
            Event::System(e) => match e {
                SystemEvent::ReturnSubmitted { monthly_return, .. } => Some(monthly_return.period),
                SystemEvent::MetricReported { period, .. }
                | SystemEvent::PeriodClosed { period } => Some(*period),
                SystemEvent::Established { .. }
                | SystemEvent::MemberAdmitted { .. }
                | SystemEvent::PlanAgreed { .. } => None,
            },
            Event::Budget { event, .. } => match event {
                BudgetEvent::ContributionPaid { period, .. }
                | BudgetEvent::SpendRecorded { period, .. }
                | BudgetEvent::RiskShareSettled { period, .. }
                | BudgetEvent::Closed { period } => Some(*period),
                BudgetEvent::Established { .. }
                | BudgetEvent::Pledged { .. }
                | BudgetEvent::Varied { .. } => None,
            },
            Event::Fund { event, .. } => match event {
                FundEvent::TrancheAssessed { period, .. }
                | FundEvent::TranchePaid { period, .. }
                | FundEvent::ClawedBack { period, .. } => Some(*period),
                FundEvent::Allocated { .. } => None,
            },
            Event::Contract { event, .. } => match event {
                ContractEvent::Agreed { .. } => None,
                ContractEvent::Varied { period, .. }
                | ContractEvent::ActivityRecorded { period, .. }
                | ContractEvent::InvoiceRaised { period, .. }
                | ContractEvent::PaymentRecorded { period, .. }
                | ContractEvent::DisputeRaised { period, .. }
                | ContractEvent::DisputeResolved { period, .. }
                | ContractEvent::CquinReconciled { period, .. }
                | ContractEvent::AdjustmentRecorded { period, .. }
                | ContractEvent::Terminated { period, .. } => Some(*period),
            },
        }
    }
}

/// Applying an event that does not fit the state: the log and the rules disagree. Events from
/// [`Ledger::decide`] never cause it; a stored log that does is corrupt or was written by
/// different rules.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("event {event} on {stream} does not fit the state: {reason}")]
pub struct ApplyError {
    pub stream: String,
    pub event: &'static str,
    pub reason: String,
}

/// The state of one ICS: every aggregate, as its events left it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub system: SystemState,
    pub budgets: BTreeMap<Code, BudgetState>,
    pub funds: BTreeMap<Code, FundState>,
    pub contracts: BTreeMap<Code, ContractState>,
}

impl Ledger {
    /// Decides a command against the current state: the events it records, or why not.
    pub fn decide(&self, command: &Command) -> Result<Vec<Event>, DomainError> {
        match command {
            Command::System(command) => Ok(self
                .system
                .decide(command)?
                .into_iter()
                .map(Event::System)
                .collect()),
            Command::Budget { budget, command } => {
                let events =
                    budget::decide(&self.system, budget, self.budgets.get(budget), command)?;
                Ok(events
                    .into_iter()
                    .map(|event| Event::Budget {
                        budget: budget.clone(),
                        event,
                    })
                    .collect())
            }
            Command::Fund { fund, command } => {
                let events = fund::decide(&self.system, fund, self.funds.get(fund), command)?;
                Ok(events
                    .into_iter()
                    .map(|event| Event::Fund {
                        fund: fund.clone(),
                        event,
                    })
                    .collect())
            }
            Command::Contract { contract, command } => {
                let events = contract::decide(
                    &self.system,
                    contract,
                    self.contracts.get(contract),
                    command,
                )?;
                Ok(events
                    .into_iter()
                    .map(|event| Event::Contract {
                        contract: contract.clone(),
                        event,
                    })
                    .collect())
            }
        }
    }

    /// Folds one event into the state.
    pub fn apply(&mut self, event: &Event) -> Result<(), ApplyError> {
        let fail = |reason: String| ApplyError {
            stream: event.stream().to_string(),
            event: event.name(),
            reason,
        };
        match event {
            Event::System(e) => {
                self.system.apply(e);
                Ok(())
            }
            Event::Budget { budget, event: e } => {
                budget::apply(self.budgets.entry(budget.clone()), e).map_err(fail)
            }
            Event::Fund { fund, event: e } => {
                fund::apply(self.funds.entry(fund.clone()), e).map_err(fail)
            }
            Event::Contract { contract, event: e } => {
                contract::apply(self.contracts.entry(contract.clone()), e).map_err(fail)
            }
        }
    }

    /// Decides and applies: what the write side does for each command.
    pub fn execute(&mut self, command: &Command) -> Result<Vec<Event>, DomainError> {
        let events = self.decide(command)?;
        for event in &events {
            if let Err(error) = self.apply(event) {
                // decide() produced an event its own apply() refuses: a bug in the rules.
                return Err(DomainError::invalid(
                    "command",
                    format!("internal: {error}"),
                ));
            }
        }
        Ok(events)
    }
}
