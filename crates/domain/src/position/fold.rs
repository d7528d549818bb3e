//! The fold: [`Projection::apply`] turns each recorded event into facts with their
//! transaction time.
//!
//! Two kinds of state are kept, both append-only:
//!
//! - **facts** that are replaced or appear once — a member, a plan revision, a monthly
//!   return, a contract's model, a fund's assessments — each with the sequence that recorded
//!   it ([`History`] or a `recorded_at` field);
//! - **running totals** of money, keyed by what they are and the period they land in (valid
//!   time): what a contract is worth in a month by line (phased value, activity, CQUIN,
//!   adjustments, write-offs), what was invoiced and paid, what each partner pledged and paid
//!   into a pool, what each member owes each other member through the ledger
//!   ([`Running`]).
//!
//! An event is applied all or nothing: the money it moves is worked out and checked for
//! overflow first, and only then is anything changed.
//!
//! Where money lands: every amount lands in the period the event is posted in. A correction
//! (an event naming an earlier period it corrects) is no exception — it changes the period it
//! is posted in, and is also listed against the period it names ([`Correction`]), so a
//! closed period's figures never change.
//!
//! How the ledger phases money that has no month of its own:
//! - a contract's annual value is phased evenly over the twelve months of its year (largest
//!   remainder, earlier months first — as plans are). A variation re-phases the months from
//!   its period on so the year adds up to the new annual value; a termination stops the
//!   phased value after its period;
//! - a pooled-budget partner's pledges (revenue and ring-fenced) are its expenditure with the
//!   host, phased evenly over the budget's year; a risk-share allocation is expenditure with
//!   the host in the settlement period. The host's own contribution and share are internal to
//!   it.

use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::budget::{Allocation, BudgetEvent, Scheme, Share};
use crate::contract::{ContractEvent, PaymentModel, apply_rephase, rephase};
use crate::fund::{Condition, ConditionOutcome, FundEvent, Recipient};
use crate::ids::{Code, MemberCode, MemberKind, SystemId, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Month, Period, Quarter};
use crate::system::{CounterpartyBalance, SystemEvent};
use crate::{Event, StreamId};

use super::history::{History, Running};
use super::{ProjectionError, Recorded};

/// The position projection of one ICS: every fact the reports need, with the sequence that
/// recorded it. Serializable, so positiond can keep it in sled and resume folding.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Projection {
    /// Every event applied, in order: its sequence and recorded-at time.
    pub(crate) timeline: Vec<Recorded>,
    pub(crate) system: Option<SystemFacts>,
    pub(crate) members: BTreeMap<MemberCode, MemberFacts>,
    pub(crate) plans: BTreeMap<(MemberCode, FinancialYear), History<PlanFacts>>,
    /// Each member's latest return for each month.
    pub(crate) returns: BTreeMap<(MemberCode, Period), History<ReturnFacts>>,
    pub(crate) closes: Vec<(u64, Period)>,
    /// In-system income and expenditure per member, as the ledger holds it.
    pub(crate) member_ledger: BTreeMap<(MemberCode, Side, Period), Running>,
    /// What flows from a payer to a payee member through the ledger: accrued and paid.
    pub(crate) pair_ledger: BTreeMap<(MemberCode, MemberCode, PairLine, Period), Running>,
    pub(crate) contracts: BTreeMap<Code, ContractFacts>,
    pub(crate) contract_lines: BTreeMap<(Code, ContractLine, Period), Running>,
    pub(crate) budgets: BTreeMap<Code, BudgetFacts>,
    pub(crate) budget_lines: BTreeMap<Code, BTreeMap<BudgetLine, Running>>,
    pub(crate) funds: BTreeMap<Code, FundFacts>,
    /// Corrections, in log order.
    pub(crate) corrections: Vec<Correction>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SystemFacts {
    pub recorded_at: u64,
    pub system: SystemId,
    pub name: Text,
    pub first_year: FinancialYear,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct MemberFacts {
    pub recorded_at: u64,
    pub name: Text,
    pub kind: MemberKind,
    pub in_control_total: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PlanFacts {
    pub income_by_month: [Pence; 12],
    pub expenditure_by_month: [Pence; 12],
    pub revision: u32,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ReturnFacts {
    pub income: Pence,
    pub expenditure: Pence,
    pub balances: Vec<CounterpartyBalance>,
    pub revision: u32,
}

/// Which side of a member's I&E.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum Side {
    Income,
    Expenditure,
}

/// A flow between two members: what the payer has accrued to the payee, and what it paid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum PairLine {
    Accrued,
    Paid,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ContractFacts {
    pub recorded_at: u64,
    pub commissioner: MemberCode,
    pub provider: MemberCode,
    pub year: FinancialYear,
    pub description: Text,
    pub model: History<PaymentModel>,
    pub annual_value: History<Pence>,
    /// The phased annual value by month as it stands now (needed to re-phase on variation).
    pub phased: [Pence; 12],
    /// Units recorded for each month of the contract's year (a later count replaces).
    pub activity: BTreeMap<Period, History<u64>>,
    pub cquin: Option<CquinFacts>,
    pub terminated: Option<(u64, Period)>,
    /// The disputes that named an invoice: their write-offs are credited to it.
    pub disputes_on_invoices: BTreeSet<Code>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CquinFacts {
    pub recorded_at: u64,
    pub period: Period,
    pub achievement: BasisPoints,
    pub value: Pence,
    pub earned: Pence,
    pub deduction: Pence,
}

/// The lines of a contract's money, each a running total per period.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum ContractLine {
    /// The annual value, phased.
    Phased,
    /// Activity away from plan, as each count recorded it.
    Activity,
    /// CQUIN reconciliation (the deduction, negative).
    Cquin,
    /// Adjustments (signed).
    Adjustment,
    /// Disputed amounts written off at resolution (negative).
    WrittenOff,
    Invoiced,
    Paid,
    /// Amounts disputed.
    Disputed,
    /// Disputed amounts resolved (kept or written off).
    DisputeResolved,
    /// Written off an invoice by the resolution of a dispute that named it: no longer owed.
    Credited,
}

impl ContractLine {
    /// The lines that make up the contract's value.
    pub const VALUE: [ContractLine; 5] = [
        ContractLine::Phased,
        ContractLine::Activity,
        ContractLine::Cquin,
        ContractLine::Adjustment,
        ContractLine::WrittenOff,
    ];
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct BudgetFacts {
    pub recorded_at: u64,
    pub name: Text,
    pub host: MemberCode,
    pub year: FinancialYear,
    pub partners: Vec<MemberCode>,
    /// Schemes, with the sequence that added each.
    pub schemes: Vec<(u64, Scheme)>,
    pub overspend_shares: History<Vec<Share>>,
    pub underspend_shares: History<Vec<Share>>,
    pub settlement: Option<SettlementFacts>,
    pub closed: Option<(u64, Period)>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct SettlementFacts {
    pub recorded_at: u64,
    pub period: Period,
    pub revenue_pledged: Pence,
    pub revenue_spend: Pence,
    pub variance: Pence,
    pub shares: Vec<Share>,
    pub allocations: Vec<Allocation>,
}

/// The money lines of a pooled budget.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub(crate) enum BudgetLine {
    /// Pledged by a partner, to the revenue pool (`None`) or a ring-fenced scheme.
    Pledged(MemberCode, Option<Code>),
    /// Paid in by a partner in a period.
    Paid(MemberCode, Period),
    /// Spent on a scheme in a period.
    Spend(Code, Period),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FundFacts {
    pub recorded_at: u64,
    pub name: Text,
    pub year: FinancialYear,
    pub recipients: Vec<Recipient>,
    pub conditions: Vec<Condition>,
    pub total: Pence,
    pub tranches: Vec<Pence>,
    pub assessments: BTreeMap<Quarter, AssessmentFacts>,
    pub payments: BTreeMap<Quarter, PaymentFacts>,
    pub clawbacks: Vec<ClawbackFacts>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct AssessmentFacts {
    pub recorded_at: u64,
    pub period: Period,
    pub tranche: Pence,
    pub outcomes: Vec<ConditionOutcome>,
    pub earned: Pence,
    pub forfeited: Pence,
    pub earned_by_recipient: Vec<Allocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct PaymentFacts {
    pub recorded_at: u64,
    pub period: Period,
    pub payments: Vec<Allocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ClawbackFacts {
    pub recorded_at: u64,
    pub quarter: Quarter,
    pub member: MemberCode,
    pub period: Period,
    pub amount: Pence,
    pub reason: Text,
}

/// A posting that names an earlier period it corrects.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Correction {
    pub sequence: u64,
    pub stream: StreamId,
    pub kind: CorrectionKind,
    /// The period it is posted in, whose figures it changes.
    pub posted_in: Period,
    /// The period it names.
    pub corrects: Period,
    /// What it changes the value by (for an invoice, the amount invoiced).
    pub amount: Pence,
    /// Who pays and who is paid, for postings between members.
    pub payer: Option<MemberCode>,
    pub payee: Option<MemberCode>,
    pub reason: Option<Text>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum CorrectionKind {
    /// A month's activity count restated.
    Activity { units: u64, previous_units: u64 },
    /// An invoice for an earlier month.
    Invoice,
    /// An adjustment to a contract's value.
    ContractAdjustment,
    /// Spend on a pooled-budget scheme for an earlier month.
    BudgetSpend,
}

/// Where a posting goes; the key of one running total.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Target {
    Member(MemberCode, Side, Period),
    Pair(MemberCode, MemberCode, PairLine, Period),
    Contract(Code, ContractLine, Period),
    Budget(Code, BudgetLine),
}

/// The money an event moves, worked out before anything changes.
#[derive(Default)]
struct Postings {
    amounts: BTreeMap<Target, Pence>,
    /// Set when adding up the postings themselves overflowed.
    overflow: bool,
}

impl Postings {
    fn add(&mut self, target: Target, amount: Pence) {
        if amount == Pence::ZERO {
            return;
        }
        let entry = self.amounts.entry(target).or_default();
        match entry.checked_add(amount) {
            Ok(total) => *entry = total,
            Err(_) => self.overflow = true,
        }
    }

    /// `amount` accrued by `payer` to `payee` in `period`: the payer's expenditure, the
    /// payee's income, and the pair's flow.
    fn accrue(&mut self, payer: &MemberCode, payee: &MemberCode, period: Period, amount: Pence) {
        if payer == payee {
            return;
        }
        self.add(Target::Member(*payer, Side::Expenditure, period), amount);
        self.add(Target::Member(*payee, Side::Income, period), amount);
        self.add(
            Target::Pair(*payer, *payee, PairLine::Accrued, period),
            amount,
        );
    }

    /// Cash from `payer` to `payee` in `period`.
    fn pay(&mut self, payer: &MemberCode, payee: &MemberCode, period: Period, amount: Pence) {
        if payer == payee {
            return;
        }
        self.add(Target::Pair(*payer, *payee, PairLine::Paid, period), amount);
    }

    fn contract(&mut self, code: &Code, line: ContractLine, period: Period, amount: Pence) {
        self.add(Target::Contract(code.clone(), line, period), amount);
    }
}

/// Twelve even monthly parts (the domain's own phasing, so deciding and folding agree).
pub(crate) use crate::contract::phase;

fn twelve(amounts: &[Pence]) -> Option<[Pence; 12]> {
    <[Pence; 12]>::try_from(amounts).ok()
}

impl Projection {
    /// An empty projection (nothing applied).
    pub fn new() -> Self {
        Projection::default()
    }

    /// The last event applied, if any.
    pub fn last(&self) -> Option<Recorded> {
        self.timeline.last().copied()
    }

    /// How many events have been applied.
    pub fn events(&self) -> usize {
        self.timeline.len()
    }

    /// Folds one event, recorded at `at`. Sequences must increase and recorded-at times must
    /// not go backwards. On error nothing has changed, and the event was not applied.
    pub fn apply(&mut self, at: &Recorded, event: &Event) -> Result<(), ProjectionError> {
        if let Some(last) = self.last() {
            if at.sequence <= last.sequence {
                return Err(ProjectionError::OutOfOrder {
                    last: last.sequence,
                    sequence: at.sequence,
                });
            }
            if at.recorded_at_us < last.recorded_at_us {
                return Err(ProjectionError::TimeWentBackwards {
                    sequence: at.sequence,
                    recorded_at_us: at.recorded_at_us,
                    last: last.sequence,
                    last_recorded_at_us: last.recorded_at_us,
                });
            }
        }
        let fail = |reason: String| ProjectionError::DoesNotFit {
            sequence: at.sequence,
            event: event.name(),
            reason,
        };
        let overflow = || ProjectionError::Overflow {
            sequence: at.sequence,
            event: event.name(),
        };
        let postings = self.postings(event).map_err(|e| match e {
            Refused::Overflow => overflow(),
            Refused::DoesNotFit(reason) => fail(reason),
        })?;
        if postings.overflow {
            return Err(overflow());
        }
        let mut totals = Vec::with_capacity(postings.amounts.len());
        for (target, amount) in postings.amounts {
            let total = self
                .running(&target)
                .map_or(Ok(amount), |r| r.after_adding(amount))
                .map_err(|_| overflow())?;
            totals.push((target, total));
        }
        // Nothing below can fail: the facts were checked by `postings`, and the totals above.
        self.record_facts(at.sequence, event);
        for (target, total) in totals {
            self.running_mut(target).record_total(at.sequence, total);
        }
        self.timeline.push(*at);
        Ok(())
    }

    fn running(&self, target: &Target) -> Option<&Running> {
        match target {
            Target::Member(m, s, p) => self.member_ledger.get(&(*m, *s, *p)),
            Target::Pair(a, b, l, p) => self.pair_ledger.get(&(*a, *b, *l, *p)),
            Target::Contract(c, l, p) => self.contract_lines.get(&(c.clone(), *l, *p)),
            Target::Budget(b, l) => self.budget_lines.get(b).and_then(|lines| lines.get(l)),
        }
    }

    fn running_mut(&mut self, target: Target) -> &mut Running {
        match target {
            Target::Member(m, s, p) => self.member_ledger.entry((m, s, p)).or_default(),
            Target::Pair(a, b, l, p) => self.pair_ledger.entry((a, b, l, p)).or_default(),
            Target::Contract(c, l, p) => self.contract_lines.entry((c, l, p)).or_default(),
            Target::Budget(b, l) => self
                .budget_lines
                .entry(b)
                .or_default()
                .entry(l)
                .or_default(),
        }
    }

    /// The money `event` moves, or why it cannot be applied. Changes nothing.
    fn postings(&self, event: &Event) -> Result<Postings, Refused> {
        let mut postings = Postings::default();
        match event {
            Event::System(event) => self.check_system(event)?,
            Event::Budget { budget, event } => {
                self.budget_postings(budget, event, &mut postings)?;
            }
            Event::Fund { fund, event } => self.check_fund(fund, event)?,
            Event::Contract { contract, event } => {
                self.contract_postings(contract, event, &mut postings)?;
            }
        }
        Ok(postings)
    }

    fn check_system(&self, event: &SystemEvent) -> Result<(), Refused> {
        match event {
            SystemEvent::Established { .. } if self.system.is_some() => Err(Refused::DoesNotFit(
                "the system is already established".into(),
            )),
            SystemEvent::MemberAdmitted { member, .. } if self.members.contains_key(member) => {
                Err(Refused::DoesNotFit(format!("{member} is already admitted")))
            }
            SystemEvent::PlanAgreed {
                income_by_month,
                expenditure_by_month,
                ..
            } if twelve(income_by_month).is_none() || twelve(expenditure_by_month).is_none() => {
                Err(Refused::DoesNotFit(
                    "a plan is phased over exactly twelve months".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    fn check_fund(&self, code: &Code, event: &FundEvent) -> Result<(), Refused> {
        let fund = match (self.funds.get(code), event) {
            (Some(_), FundEvent::Allocated { .. }) => {
                return Err(Refused::DoesNotFit(format!("fund {code} already exists")));
            }
            (None, FundEvent::Allocated { .. }) => return Ok(()),
            (None, _) => return Err(Refused::DoesNotFit(format!("no fund {code}"))),
            (Some(fund), _) => fund,
        };
        match event {
            FundEvent::TrancheAssessed { quarter, .. }
                if fund.assessments.contains_key(quarter) =>
            {
                Err(Refused::DoesNotFit(format!(
                    "{quarter} is already assessed"
                )))
            }
            FundEvent::TranchePaid { quarter, .. } if fund.payments.contains_key(quarter) => {
                Err(Refused::DoesNotFit(format!("{quarter} is already paid")))
            }
            _ => Ok(()),
        }
    }

    fn budget_postings(
        &self,
        code: &Code,
        event: &BudgetEvent,
        postings: &mut Postings,
    ) -> Result<(), Refused> {
        let budget = match (self.budgets.get(code), event) {
            (Some(_), BudgetEvent::Established { .. }) => {
                return Err(Refused::DoesNotFit(format!("budget {code} already exists")));
            }
            (None, BudgetEvent::Established { .. }) => return Ok(()),
            (None, _) => return Err(Refused::DoesNotFit(format!("no budget {code}"))),
            (Some(budget), _) => budget,
        };
        let host = &budget.host;
        match event {
            BudgetEvent::Established { .. } | BudgetEvent::Varied { .. } => {}
            BudgetEvent::Pledged {
                partner,
                amount,
                ring_fenced_scheme,
            } => {
                postings.add(
                    Target::Budget(
                        code.clone(),
                        BudgetLine::Pledged(*partner, ring_fenced_scheme.clone()),
                    ),
                    *amount,
                );
                if partner != host {
                    // The partner's contribution is phased over the year as a whole, so a new
                    // pledge re-phases it: post the difference month by month.
                    let before = self.pledged_by(code, partner)?;
                    let after = before.checked_add(*amount).map_err(|_| Refused::Overflow)?;
                    let (before, after) = (phase(before)?, phase(after)?);
                    for (month, (old, new)) in Month::all().zip(before.iter().zip(after)) {
                        let change = new.checked_sub(*old).map_err(|_| Refused::Overflow)?;
                        postings.accrue(partner, host, budget.year.period(month), change);
                    }
                }
            }
            BudgetEvent::ContributionPaid {
                partner,
                period,
                amount,
            } => {
                postings.add(
                    Target::Budget(code.clone(), BudgetLine::Paid(*partner, *period)),
                    *amount,
                );
                postings.pay(partner, host, *period, *amount);
            }
            BudgetEvent::SpendRecorded {
                scheme,
                period,
                amount,
                ..
            } => {
                if !budget.schemes.iter().any(|(_, s)| &s.scheme == scheme) {
                    return Err(Refused::DoesNotFit(format!("no scheme {scheme}")));
                }
                postings.add(
                    Target::Budget(code.clone(), BudgetLine::Spend(scheme.clone(), *period)),
                    *amount,
                );
            }
            BudgetEvent::RiskShareSettled {
                period,
                allocations,
                ..
            } => {
                if budget.settlement.is_some() {
                    return Err(Refused::DoesNotFit(
                        "the risk share is already settled".into(),
                    ));
                }
                for allocation in allocations {
                    postings.accrue(&allocation.member, host, *period, allocation.amount);
                }
            }
            BudgetEvent::Closed { .. } => {}
        }
        Ok(())
    }

    /// All `partner` has pledged to budget `code`, as it stands now.
    fn pledged_by(&self, code: &Code, partner: &MemberCode) -> Result<Pence, Refused> {
        let Some(lines) = self.budget_lines.get(code) else {
            return Ok(Pence::ZERO);
        };
        Pence::checked_sum(
            lines
                .range(BudgetLine::Pledged(*partner, None)..)
                .take_while(|(line, _)| matches!(line, BudgetLine::Pledged(p, _) if p == partner))
                .map(|(_, running)| running.latest()),
        )
        .map_err(|_| Refused::Overflow)
    }

    fn contract_postings(
        &self,
        code: &Code,
        event: &ContractEvent,
        postings: &mut Postings,
    ) -> Result<(), Refused> {
        if let ContractEvent::Agreed {
            commissioner,
            provider,
            year,
            annual_value,
            ..
        } = event
        {
            if self.contracts.contains_key(code) {
                return Err(Refused::DoesNotFit(format!(
                    "contract {code} already exists"
                )));
            }
            for (month, amount) in Month::all().zip(phase(*annual_value)?) {
                let period = year.period(month);
                postings.contract(code, ContractLine::Phased, period, amount);
                postings.accrue(commissioner, provider, period, amount);
            }
            return Ok(());
        }
        let Some(contract) = self.contracts.get(code) else {
            return Err(Refused::DoesNotFit(format!("no contract {code}")));
        };
        let (commissioner, provider) = (&contract.commissioner, &contract.provider);
        let mut value = |line, period, amount| {
            postings.contract(code, line, period, amount);
            postings.accrue(commissioner, provider, period, amount);
        };
        match event {
            ContractEvent::Agreed { .. } => {}
            ContractEvent::Varied {
                period,
                annual_value_after,
                ..
            } => {
                for (period, change) in rephase(
                    contract.year,
                    &contract.phased,
                    *period,
                    *annual_value_after,
                )? {
                    value(ContractLine::Phased, period, change);
                }
            }
            ContractEvent::ActivityRecorded {
                period,
                value_change,
                ..
            } => value(ContractLine::Activity, *period, *value_change),
            ContractEvent::CquinReconciled {
                period, deduction, ..
            } => {
                if contract.cquin.is_some() {
                    return Err(Refused::DoesNotFit("CQUIN is already reconciled".into()));
                }
                let deduction = deduction.checked_neg().map_err(|_| Refused::Overflow)?;
                value(ContractLine::Cquin, *period, deduction);
            }
            ContractEvent::AdjustmentRecorded { period, amount, .. } => {
                value(ContractLine::Adjustment, *period, *amount);
            }
            ContractEvent::DisputeResolved {
                dispute,
                period,
                provider_keeps,
                written_off,
                ..
            } => {
                let resolved = provider_keeps
                    .checked_add(*written_off)
                    .map_err(|_| Refused::Overflow)?;
                let credited = *written_off;
                let written_off = written_off.checked_neg().map_err(|_| Refused::Overflow)?;
                value(ContractLine::WrittenOff, *period, written_off);
                postings.contract(code, ContractLine::DisputeResolved, *period, resolved);
                if contract.disputes_on_invoices.contains(dispute) {
                    postings.contract(code, ContractLine::Credited, *period, credited);
                }
            }
            ContractEvent::Terminated { period, .. } => {
                for (month, phased) in Month::all().zip(contract.phased) {
                    let later = contract.year.period(month);
                    if later > *period {
                        let stop = phased.checked_neg().map_err(|_| Refused::Overflow)?;
                        value(ContractLine::Phased, later, stop);
                    }
                }
            }
            ContractEvent::InvoiceRaised { period, amount, .. } => {
                postings.contract(code, ContractLine::Invoiced, *period, *amount);
            }
            ContractEvent::PaymentRecorded { period, amount, .. } => {
                postings.contract(code, ContractLine::Paid, *period, *amount);
                postings.pay(commissioner, provider, *period, *amount);
            }
            ContractEvent::DisputeRaised { period, amount, .. } => {
                postings.contract(code, ContractLine::Disputed, *period, *amount);
            }
        }
        Ok(())
    }

    /// Records the event's facts. Called only after [`Projection::postings`] accepted the
    /// event, so every aggregate it names exists.
    fn record_facts(&mut self, sequence: u64, event: &Event) {
        match event {
            Event::System(event) => self.record_system(sequence, event),
            Event::Budget { budget, event } => self.record_budget(sequence, budget, event),
            Event::Fund { fund, event } => self.record_fund(sequence, fund, event),
            Event::Contract { contract, event } => {
                self.record_contract(sequence, contract, event);
            }
        }
    }

    fn record_system(&mut self, sequence: u64, event: &SystemEvent) {
        match event {
            SystemEvent::Established {
                system,
                name,
                first_year,
            } => {
                self.system = Some(SystemFacts {
                    recorded_at: sequence,
                    system: system.clone(),
                    name: name.clone(),
                    first_year: *first_year,
                });
            }
            SystemEvent::MemberAdmitted {
                member,
                name,
                kind,
                in_control_total,
            } => {
                self.members.insert(
                    *member,
                    MemberFacts {
                        recorded_at: sequence,
                        name: name.clone(),
                        kind: *kind,
                        in_control_total: *in_control_total,
                    },
                );
            }
            SystemEvent::PlanAgreed {
                member,
                year,
                income_by_month,
                expenditure_by_month,
                revision,
                ..
            } => {
                // `check_system` refused plans that are not phased over twelve months.
                if let (Some(income_by_month), Some(expenditure_by_month)) =
                    (twelve(income_by_month), twelve(expenditure_by_month))
                {
                    self.plans.entry((*member, *year)).or_default().record(
                        sequence,
                        PlanFacts {
                            income_by_month,
                            expenditure_by_month,
                            revision: *revision,
                        },
                    );
                }
            }
            SystemEvent::ReturnSubmitted {
                monthly_return,
                revision,
            } => {
                self.returns
                    .entry((monthly_return.member, monthly_return.period))
                    .or_default()
                    .record(
                        sequence,
                        ReturnFacts {
                            income: monthly_return.income,
                            expenditure: monthly_return.expenditure,
                            balances: monthly_return.balances.clone(),
                            revision: *revision,
                        },
                    );
            }
            // Operational metrics are the regulator's (see `oversight`), not the position's; a
            // filed return records that a report was filed and changes no figure.
            SystemEvent::MetricReported { .. } | SystemEvent::ReturnFiled(_) => {}
            SystemEvent::PeriodClosed { period } => self.closes.push((sequence, *period)),
        }
    }

    fn record_budget(&mut self, sequence: u64, code: &Code, event: &BudgetEvent) {
        if let BudgetEvent::Established {
            name,
            host,
            year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        } = event
        {
            self.budgets.insert(
                code.clone(),
                BudgetFacts {
                    recorded_at: sequence,
                    name: name.clone(),
                    host: *host,
                    year: *year,
                    partners: partners.clone(),
                    schemes: schemes.iter().map(|s| (sequence, s.clone())).collect(),
                    overspend_shares: History::new(sequence, overspend_shares.clone()),
                    underspend_shares: History::new(sequence, underspend_shares.clone()),
                    settlement: None,
                    closed: None,
                },
            );
            return;
        }
        let Some(budget) = self.budgets.get_mut(code) else {
            return;
        };
        match event {
            BudgetEvent::Varied {
                overspend_shares,
                underspend_shares,
                add_schemes,
                ..
            } => {
                if let Some(shares) = overspend_shares {
                    budget.overspend_shares.record(sequence, shares.clone());
                }
                if let Some(shares) = underspend_shares {
                    budget.underspend_shares.record(sequence, shares.clone());
                }
                budget
                    .schemes
                    .extend(add_schemes.iter().map(|s| (sequence, s.clone())));
            }
            BudgetEvent::RiskShareSettled {
                period,
                revenue_pledged,
                revenue_spend,
                variance,
                shares,
                allocations,
            } => {
                budget.settlement = Some(SettlementFacts {
                    recorded_at: sequence,
                    period: *period,
                    revenue_pledged: *revenue_pledged,
                    revenue_spend: *revenue_spend,
                    variance: *variance,
                    shares: shares.clone(),
                    allocations: allocations.clone(),
                });
            }
            BudgetEvent::Closed { period } => budget.closed = Some((sequence, *period)),
            BudgetEvent::SpendRecorded {
                scheme,
                period,
                amount,
                corrects: Some(corrects),
            } => {
                let host = budget.host;
                self.corrections.push(Correction {
                    sequence,
                    stream: StreamId::budget(code),
                    kind: CorrectionKind::BudgetSpend,
                    posted_in: *period,
                    corrects: *corrects,
                    amount: *amount,
                    payer: Some(host),
                    payee: None,
                    reason: Text::new(format!("spend on scheme {scheme}")).ok(),
                });
            }
            BudgetEvent::Established { .. }
            | BudgetEvent::Pledged { .. }
            | BudgetEvent::ContributionPaid { .. }
            | BudgetEvent::SpendRecorded { corrects: None, .. } => {}
        }
    }

    fn record_fund(&mut self, sequence: u64, code: &Code, event: &FundEvent) {
        if let FundEvent::Allocated {
            name,
            year,
            recipients,
            conditions,
            total,
            tranches,
        } = event
        {
            self.funds.insert(
                code.clone(),
                FundFacts {
                    recorded_at: sequence,
                    name: name.clone(),
                    year: *year,
                    recipients: recipients.clone(),
                    conditions: conditions.clone(),
                    total: *total,
                    tranches: tranches.clone(),
                    assessments: BTreeMap::new(),
                    payments: BTreeMap::new(),
                    clawbacks: Vec::new(),
                },
            );
            return;
        }
        let Some(fund) = self.funds.get_mut(code) else {
            return;
        };
        match event {
            FundEvent::Allocated { .. } => {}
            FundEvent::TrancheAssessed {
                quarter,
                period,
                tranche,
                outcomes,
                earned,
                forfeited,
                earned_by_recipient,
            } => {
                fund.assessments.insert(
                    *quarter,
                    AssessmentFacts {
                        recorded_at: sequence,
                        period: *period,
                        tranche: *tranche,
                        outcomes: outcomes.clone(),
                        earned: *earned,
                        forfeited: *forfeited,
                        earned_by_recipient: earned_by_recipient.clone(),
                    },
                );
            }
            FundEvent::TranchePaid {
                quarter,
                period,
                payments,
            } => {
                fund.payments.insert(
                    *quarter,
                    PaymentFacts {
                        recorded_at: sequence,
                        period: *period,
                        payments: payments.clone(),
                    },
                );
            }
            FundEvent::ClawedBack {
                quarter,
                member,
                period,
                amount,
                reason,
            } => fund.clawbacks.push(ClawbackFacts {
                recorded_at: sequence,
                quarter: *quarter,
                member: *member,
                period: *period,
                amount: *amount,
                reason: reason.clone(),
            }),
        }
    }

    fn record_contract(&mut self, sequence: u64, code: &Code, event: &ContractEvent) {
        if let ContractEvent::Agreed {
            commissioner,
            provider,
            year,
            model,
            description,
            annual_value,
        } = event
        {
            self.contracts.insert(
                code.clone(),
                ContractFacts {
                    recorded_at: sequence,
                    commissioner: *commissioner,
                    provider: *provider,
                    year: *year,
                    description: description.clone(),
                    model: History::new(sequence, model.clone()),
                    annual_value: History::new(sequence, *annual_value),
                    // `contract_postings` phased the same value without error.
                    phased: phase(*annual_value).unwrap_or([Pence::ZERO; 12]),
                    activity: BTreeMap::new(),
                    cquin: None,
                    terminated: None,
                    disputes_on_invoices: BTreeSet::new(),
                },
            );
            return;
        }
        let Some(contract) = self.contracts.get_mut(code) else {
            return;
        };
        let (payer, payee) = (contract.commissioner, contract.provider);
        let correction = |kind, posted_in, corrects, amount, reason: Option<&Text>| Correction {
            sequence,
            stream: StreamId::contract(code),
            kind,
            posted_in,
            corrects,
            amount,
            payer: Some(payer),
            payee: Some(payee),
            reason: reason.cloned(),
        };
        let mut corrected = None;
        match event {
            ContractEvent::Agreed { .. } => {}
            ContractEvent::Varied {
                period,
                model,
                annual_value_after,
                ..
            } => {
                if let Ok(changes) = rephase(
                    contract.year,
                    &contract.phased,
                    *period,
                    *annual_value_after,
                ) {
                    apply_rephase(contract.year, &mut contract.phased, &changes);
                }
                contract.model.record(sequence, model.clone());
                contract.annual_value.record(sequence, *annual_value_after);
            }
            ContractEvent::ActivityRecorded {
                period,
                for_period,
                units,
                previous_units,
                value_change,
                ..
            } => {
                contract
                    .activity
                    .entry(*for_period)
                    .or_default()
                    .record(sequence, *units);
                if for_period != period {
                    corrected = Some(correction(
                        CorrectionKind::Activity {
                            units: *units,
                            previous_units: *previous_units,
                        },
                        *period,
                        *for_period,
                        *value_change,
                        None,
                    ));
                }
            }
            ContractEvent::InvoiceRaised {
                period,
                amount,
                corrects: Some(corrects),
                ..
            } => {
                corrected = Some(correction(
                    CorrectionKind::Invoice,
                    *period,
                    *corrects,
                    *amount,
                    None,
                ));
            }
            ContractEvent::AdjustmentRecorded {
                period,
                amount,
                reason,
                corrects: Some(corrects),
            } => {
                corrected = Some(correction(
                    CorrectionKind::ContractAdjustment,
                    *period,
                    *corrects,
                    *amount,
                    Some(reason),
                ));
            }
            ContractEvent::CquinReconciled {
                period,
                achievement,
                value,
                earned,
                deduction,
            } => {
                contract.cquin = Some(CquinFacts {
                    recorded_at: sequence,
                    period: *period,
                    achievement: *achievement,
                    value: *value,
                    earned: *earned,
                    deduction: *deduction,
                });
            }
            ContractEvent::Terminated { period, .. } => {
                for (month, phased) in Month::all().zip(contract.phased.iter_mut()) {
                    if contract.year.period(month) > *period {
                        *phased = Pence::ZERO;
                    }
                }
                contract.terminated = Some((sequence, *period));
            }
            ContractEvent::DisputeRaised {
                dispute,
                invoice: Some(_),
                ..
            } => {
                contract.disputes_on_invoices.insert(dispute.clone());
            }
            ContractEvent::InvoiceRaised { corrects: None, .. }
            | ContractEvent::AdjustmentRecorded { corrects: None, .. }
            | ContractEvent::PaymentRecorded { .. }
            | ContractEvent::DisputeRaised { invoice: None, .. }
            | ContractEvent::DisputeResolved { .. } => {}
        }
        if let Some(correction) = corrected {
            self.corrections.push(correction);
        }
    }
}

/// Why an event cannot be applied (before the sequence is attached).
enum Refused {
    DoesNotFit(String),
    Overflow,
}

impl From<crate::money::MoneyError> for Refused {
    fn from(_: crate::money::MoneyError) -> Self {
        Refused::Overflow
    }
}
