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
//!
//! Over each family's rules, every command keeps within [`limits`]: each amount at most a
//! ceiling far below `i64::MAX`, each list and collection capped, and each member's turnover
//! bounded, so that whatever is accepted every reader can fold and report without overflow.

pub mod budget;
pub mod contract;
pub mod error;
pub mod fund;
pub mod ids;
pub mod limits;
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
pub use ids::{Code, IdError, MemberCode, MemberKind, SystemId, Text, is_hidden_format};
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
                SystemEvent::ReturnFiled(_) => "return_filed",
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
                // The year and month the filed report covers.
                SystemEvent::ReturnFiled(filed) => Some(filed.period),
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

impl Event {
    /// Every member the event names, in code order, each once: the member a return, metric,
    /// plan or filed return is of; a contract's parties as agreed; a budget's host, partners
    /// and the members its shares and allocations name; a fund's recipients and the members
    /// its assessments, payments and claw-backs name; and the counterparties of a return.
    ///
    /// Only what the event itself says: an invoice names its contract, not the contract's
    /// parties (those are in the contract's `agreed` event, see [`Event::stream`]).
    pub fn members(&self) -> Vec<MemberCode> {
        let mut named: Vec<&MemberCode> = Vec::new();
        match self {
            Event::System(event) => match event {
                SystemEvent::Established { .. } | SystemEvent::PeriodClosed { .. } => {}
                SystemEvent::MemberAdmitted { member, .. }
                | SystemEvent::PlanAgreed { member, .. }
                | SystemEvent::MetricReported { member, .. } => named.push(member),
                SystemEvent::ReturnSubmitted { monthly_return, .. } => {
                    named.push(&monthly_return.member);
                    named.extend(monthly_return.balances.iter().map(|b| &b.counterparty));
                }
                SystemEvent::ReturnFiled(filed) => match &filed.filer {
                    system::Filer::System => {}
                    system::Filer::Member(member) => named.push(member),
                },
            },
            Event::Budget { event, .. } => match event {
                BudgetEvent::Established {
                    host,
                    partners,
                    overspend_shares,
                    underspend_shares,
                    ..
                } => {
                    named.push(host);
                    named.extend(partners);
                    named.extend(overspend_shares.iter().map(|s| &s.member));
                    named.extend(underspend_shares.iter().map(|s| &s.member));
                }
                BudgetEvent::Pledged { partner, .. }
                | BudgetEvent::ContributionPaid { partner, .. } => named.push(partner),
                BudgetEvent::Varied {
                    overspend_shares,
                    underspend_shares,
                    ..
                } => {
                    named.extend(overspend_shares.iter().flatten().map(|s| &s.member));
                    named.extend(underspend_shares.iter().flatten().map(|s| &s.member));
                }
                BudgetEvent::RiskShareSettled {
                    shares,
                    allocations,
                    ..
                } => {
                    named.extend(shares.iter().map(|s| &s.member));
                    named.extend(allocations.iter().map(|a| &a.member));
                }
                BudgetEvent::SpendRecorded { .. } | BudgetEvent::Closed { .. } => {}
            },
            Event::Fund { event, .. } => match event {
                FundEvent::Allocated { recipients, .. } => {
                    named.extend(recipients.iter().map(|r| &r.member));
                }
                FundEvent::TrancheAssessed {
                    earned_by_recipient,
                    ..
                } => named.extend(earned_by_recipient.iter().map(|a| &a.member)),
                FundEvent::TranchePaid { payments, .. } => {
                    named.extend(payments.iter().map(|a| &a.member));
                }
                FundEvent::ClawedBack { member, .. } => named.push(member),
            },
            Event::Contract { event, .. } => match event {
                ContractEvent::Agreed {
                    commissioner,
                    provider,
                    ..
                } => {
                    named.push(commissioner);
                    named.push(provider);
                }
                ContractEvent::Varied { .. }
                | ContractEvent::ActivityRecorded { .. }
                | ContractEvent::InvoiceRaised { .. }
                | ContractEvent::PaymentRecorded { .. }
                | ContractEvent::DisputeRaised { .. }
                | ContractEvent::DisputeResolved { .. }
                | ContractEvent::CquinReconciled { .. }
                | ContractEvent::AdjustmentRecorded { .. }
                | ContractEvent::Terminated { .. } => {}
            },
        }
        named.sort();
        named.dedup();
        named.into_iter().cloned().collect()
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
    /// Each member's turnover so far, in pence (see [`limits`]).
    pub turnover: BTreeMap<MemberCode, u64>,
    /// The turnover of what only system finance posts.
    pub system_turnover: u64,
}

impl Ledger {
    /// Decides a command against the current state: the events it records, or why not. Over
    /// the family's rules, the events must keep whoever they are charged to within its
    /// turnover (see [`limits`]).
    pub fn decide(&self, command: &Command) -> Result<Vec<Event>, DomainError> {
        let events = self.decide_family(command)?;
        limits::check_turnover(self, &events, amount_field(command))?;
        Ok(events)
    }

    /// The turnover charged to `account` so far.
    pub fn turnover_of(&self, account: limits::Account) -> u64 {
        match account {
            limits::Account::System => self.system_turnover,
            limits::Account::Member(member) => self.turnover.get(&member).copied().unwrap_or(0),
        }
    }

    fn decide_family(&self, command: &Command) -> Result<Vec<Event>, DomainError> {
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

    /// Folds one event into the state. The turnover it adds is counted saturating, so a log
    /// written before the limits (an amount near `i64::MAX`) still replays: the account it
    /// charged is then full.
    pub fn apply(&mut self, event: &Event) -> Result<(), ApplyError> {
        let (account, turnover) = limits::charge(self, event);
        self.apply_family(event)?;
        let total = match account {
            limits::Account::System => &mut self.system_turnover,
            limits::Account::Member(member) => self.turnover.entry(member).or_default(),
        };
        *total = total.saturating_add(turnover);
        Ok(())
    }

    fn apply_family(&mut self, event: &Event) -> Result<(), ApplyError> {
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

/// The field of `command` that carries the money its events are charged for, to name in a
/// refusal over the turnover limit.
fn amount_field(command: &Command) -> &'static str {
    match command {
        Command::System(SystemCommand::SubmitReturn(_) | SystemCommand::AgreePlan { .. }) => {
            "income_pence"
        }
        Command::Contract {
            command: ContractCommand::Agree { .. } | ContractCommand::Vary { .. },
            ..
        } => "model",
        Command::Contract {
            command: ContractCommand::RecordActivity { .. },
            ..
        } => "units",
        Command::Contract {
            command: ContractCommand::ReconcileCquin { .. },
            ..
        } => "achievement_bp",
        Command::Contract {
            command: ContractCommand::ResolveDispute { .. },
            ..
        } => "provider_keeps_pence",
        Command::Contract {
            command: ContractCommand::Terminate { .. },
            ..
        } => "period",
        Command::Fund {
            command: FundCommand::Allocate { .. },
            ..
        } => "recipients",
        Command::Fund {
            command: FundCommand::AssessTranche { .. },
            ..
        } => "evidence",
        Command::Fund {
            command: FundCommand::PayTranche { .. },
            ..
        }
        | Command::Budget {
            command: BudgetCommand::SettleRiskShare { .. },
            ..
        } => "period",
        _ => "amount_pence",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{Allocation, Share};
    use crate::contract::PaymentModel;
    use crate::fund::Recipient;
    use crate::position::ReportKind;
    use crate::system::{CounterpartyBalance, FiledReturn, Filer, MonthlyReturn};
    use crate::testing::*;

    fn codes(event: &Event) -> Vec<String> {
        event.members().iter().map(ToString::to_string).collect()
    }

    fn share(code: &str) -> Share {
        Share {
            member: member(code),
            share: bp(5_000),
        }
    }

    fn allocation(code: &str) -> Allocation {
        Allocation {
            member: member(code),
            amount: pounds(1),
        }
    }

    #[test]
    fn an_event_names_its_members_in_code_order_once_each() {
        let budget = |event| Event::Budget {
            budget: code("BCF"),
            event,
        };
        let fund = |event| Event::Fund {
            fund: code("SSF"),
            event,
        };
        let contract = |event| Event::Contract {
            contract: code("C1"),
            event,
        };
        let cases: Vec<(Event, &[&str])> = vec![
            (established(), &[]),
            (admitted("KHFT", MemberKind::AcuteTrust, true), &["KHFT"]),
            (
                Event::System(SystemEvent::ReturnSubmitted {
                    monthly_return: MonthlyReturn {
                        member: member("KHFT"),
                        period: period(2018, 1),
                        income: pounds(1),
                        expenditure: pounds(1),
                        balances: ["KCCG", "AVT"]
                            .map(|c| CounterpartyBalance {
                                counterparty: member(c),
                                income: Pence::ZERO,
                                expenditure: Pence::ZERO,
                                receivables: Pence::ZERO,
                                payables: Pence::ZERO,
                            })
                            .to_vec(),
                    },
                    revision: 1,
                }),
                &["AVT", "KCCG", "KHFT"],
            ),
            (
                Event::System(SystemEvent::ReturnFiled(FiledReturn {
                    filer: Filer::Member(member("AVT")),
                    report: ReportKind::Position,
                    period: period(2018, 6),
                    as_of_sequence: 7,
                    fingerprint: [0; 32],
                })),
                &["AVT"],
            ),
            (
                Event::System(SystemEvent::ReturnFiled(FiledReturn {
                    filer: Filer::System,
                    report: ReportKind::Funds,
                    period: period(2018, 6),
                    as_of_sequence: 7,
                    fingerprint: [0; 32],
                })),
                &[],
            ),
            (
                Event::System(SystemEvent::PeriodClosed {
                    period: period(2018, 1),
                }),
                &[],
            ),
            (
                budget(BudgetEvent::Established {
                    name: text("BCF"),
                    host: member("KCC"),
                    year: fy(),
                    partners: vec![member("KCCG"), member("KCC")],
                    schemes: vec![],
                    overspend_shares: vec![share("KCCG"), share("KCC")],
                    underspend_shares: vec![share("KCCG"), share("KCC")],
                }),
                &["KCC", "KCCG"],
            ),
            (
                budget(BudgetEvent::Varied {
                    reason: text("r"),
                    overspend_shares: Some(vec![share("KHFT")]),
                    underspend_shares: None,
                    add_schemes: vec![],
                }),
                &["KHFT"],
            ),
            (
                budget(BudgetEvent::SpendRecorded {
                    scheme: code("CARE"),
                    period: period(2018, 1),
                    amount: pounds(1),
                    corrects: None,
                }),
                &[],
            ),
            (
                budget(BudgetEvent::RiskShareSettled {
                    period: period(2018, 12),
                    revenue_pledged: pounds(2),
                    revenue_spend: pounds(4),
                    variance: pounds(2),
                    shares: vec![share("KCCG"), share("KCC")],
                    allocations: vec![allocation("KCCG"), allocation("KCC")],
                }),
                &["KCC", "KCCG"],
            ),
            (
                fund(FundEvent::Allocated {
                    name: text("SSF"),
                    year: fy(),
                    recipients: ["KHFT", "AVT"]
                        .map(|c| Recipient {
                            member: member(c),
                            allocation: pounds(1),
                        })
                        .to_vec(),
                    conditions: vec![],
                    total: pounds(2),
                    tranches: vec![],
                }),
                &["AVT", "KHFT"],
            ),
            (
                fund(FundEvent::ClawedBack {
                    quarter: quarter(1),
                    member: member("KHFT"),
                    period: period(2018, 4),
                    amount: pounds(1),
                    reason: text("r"),
                }),
                &["KHFT"],
            ),
            (
                fund(FundEvent::TranchePaid {
                    quarter: quarter(1),
                    period: period(2018, 4),
                    payments: vec![allocation("KHFT")],
                }),
                &["KHFT"],
            ),
            (
                contract(ContractEvent::Agreed {
                    commissioner: member("KCCG"),
                    provider: member("KHFT"),
                    year: fy(),
                    model: PaymentModel::Block {
                        annual_value: pounds(12),
                    },
                    description: text("acute"),
                    annual_value: pounds(12),
                }),
                &["KCCG", "KHFT"],
            ),
            (
                contract(ContractEvent::InvoiceRaised {
                    invoice: code("I1"),
                    period: period(2018, 1),
                    amount: pounds(1),
                    corrects: None,
                }),
                &[],
            ),
        ];
        for (event, expected) in cases {
            assert_eq!(codes(&event), expected, "{}", event.name());
        }
    }
}
