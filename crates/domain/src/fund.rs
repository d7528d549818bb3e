//! The *sustainability fund* family: an allocation to named providers, paid in four quarterly
//! tranches, each earned against weighted conditions and assessed in arrears. One stream per
//! fund (`fund/<code>`).
//!
//! Rules:
//! - allocated once, for one year not before the system's first, to at least one recipient;
//!   recipients are admitted NHS providers counted in the control total, each named once with
//!   an allocation more than zero; the fund's total is the sum of allocations (which must not
//!   overflow) and each quarter's tranche is a quarter of it (largest remainder);
//! - conditions have unique codes, weights of at most 100.00% each that sum to exactly
//!   100.00%, and an A&E threshold of at most 100.00%; each tranche's amount is split across
//!   conditions by weight (largest remainder, in the order the conditions were allocated);
//! - tranches are assessed in order (Q1 first), once each, in the quarter's last month, which
//!   must be open; the evidence names every condition once, with the kind of figures it needs
//!   (A&E performance at most 100.00%); a condition is met when *system YTD before the fund ≥
//!   system control total YTD* (finance) or *A&E four-hour performance ≥ threshold* (A&E);
//!   what is met is earned, the rest forfeited (no catch-up); what is earned is split between
//!   recipients in proportion to their allocations (largest remainder), and the event records
//!   all of it;
//! - a tranche is paid once, after assessment, in an open period of the fund's year or later
//!   and not before the month it was assessed in; it pays each recipient exactly what was
//!   earned;
//! - a claw-back is from an admitted recipient of the fund, more than zero, and takes back at
//!   most what the recipient was paid for that quarter, less what has already been clawed back
//!   (`over paid` otherwise, including for a quarter not yet paid), in an open period of the
//!   fund's year or later, with a reason.

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::budget::{Allocation, add_to};
use crate::error::{DomainError, Rule};
use crate::ids::{Code, MemberCode, Text};
use crate::limits;
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period, Quarter};
use crate::system::{SystemState, positive};

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

impl ConditionKind {
    pub const fn name(self) -> &'static str {
        match self {
            ConditionKind::SystemFinance => "system finance",
            ConditionKind::AeFourHour { .. } => "A&E four-hour",
        }
    }
}

impl Figures {
    /// Whether these figures meet a condition of `kind`; `None` when they are the wrong kind
    /// of figures for it.
    pub fn meet(self, kind: ConditionKind) -> Option<bool> {
        match (kind, self) {
            (
                ConditionKind::SystemFinance,
                Figures::SystemFinance {
                    actual_ytd,
                    control_total_ytd,
                },
            ) => Some(actual_ytd >= control_total_ytd),
            (ConditionKind::AeFourHour { threshold }, Figures::AeFourHour { performance }) => {
                Some(performance >= threshold)
            }
            _ => None,
        }
    }
}

impl FundState {
    /// The fund's total: the sum of the allocations.
    pub fn total(&self) -> Result<Pence, crate::money::MoneyError> {
        Pence::checked_sum(self.recipients.iter().map(|r| r.allocation))
    }

    /// The tranche of one quarter.
    pub fn tranche(&self, quarter: Quarter) -> Option<Pence> {
        self.tranches
            .get(usize::from(quarter.number()).saturating_sub(1))
            .copied()
    }

    /// What `member` was paid for `quarter`, less what has been clawed back.
    pub fn net_paid(&self, quarter: Quarter, member: &MemberCode) -> Pence {
        let paid = self
            .paid
            .get(&quarter)
            .and_then(|payments| payments.iter().find(|p| &p.member == member))
            .map_or(Pence::ZERO, |p| p.amount);
        let clawed = self
            .clawed_back
            .get(&(quarter, *member))
            .copied()
            .unwrap_or_default();
        // Claw-backs never exceed payments, so this cannot underflow.
        paid.checked_sub(clawed).unwrap_or(Pence::ZERO)
    }

    fn decide(
        &self,
        system: &SystemState,
        code: &Code,
        command: &FundCommand,
    ) -> Result<Vec<FundEvent>, DomainError> {
        match command {
            FundCommand::Allocate { .. } => Err(DomainError::AlreadyExists {
                what: "fund",
                id: code.to_string(),
            }),
            FundCommand::AssessTranche { quarter, evidence } => {
                self.decide_assessment(system, code, *quarter, evidence)
            }
            FundCommand::PayTranche { quarter, period } => {
                let Some(earned) = self.assessed.get(quarter) else {
                    return Err(DomainError::rejected(
                        Rule::TrancheNotAssessed,
                        format!("{quarter} of fund {code} has not been assessed"),
                    ));
                };
                if self.paid.contains_key(quarter) {
                    return Err(DomainError::rejected(
                        Rule::TrancheAlreadyPaid,
                        format!("{quarter} of fund {code} has already been paid"),
                    ));
                }
                system.check_open_from(self.year, *period, "period")?;
                let assessed_in = self.year.period(quarter.last_month());
                if *period < assessed_in {
                    return Err(DomainError::invalid(
                        "period",
                        format!(
                            "{period} is before {assessed_in}, when {quarter} was assessed; pay it then or later"
                        ),
                    ));
                }
                Ok(vec![FundEvent::TranchePaid {
                    quarter: *quarter,
                    period: *period,
                    payments: earned.clone(),
                }])
            }
            FundCommand::ClawBack {
                quarter,
                member,
                period,
                amount,
                reason,
            } => {
                system.member(member)?;
                if !self.recipients.iter().any(|r| &r.member == member) {
                    return Err(DomainError::rejected(
                        Rule::NotAPartner,
                        format!("{member} is not a recipient of fund {code}"),
                    ));
                }
                positive("amount_pence", *amount)?;
                system.check_open_from(self.year, *period, "period")?;
                // At most what was paid, so within the tranche's ceiling.
                let left = self.net_paid(*quarter, member);
                if *amount > left {
                    return Err(DomainError::rejected(
                        Rule::OverPaid,
                        format!(
                            "{member} has {left} of its {quarter} payment left to claw back, less than {amount}"
                        ),
                    ));
                }
                Ok(vec![FundEvent::ClawedBack {
                    quarter: *quarter,
                    member: *member,
                    period: *period,
                    amount: *amount,
                    reason: reason.clone(),
                }])
            }
        }
    }

    fn decide_assessment(
        &self,
        system: &SystemState,
        code: &Code,
        quarter: Quarter,
        evidence: &[Evidence],
    ) -> Result<Vec<FundEvent>, DomainError> {
        if self.assessed.contains_key(&quarter) {
            return Err(DomainError::rejected(
                Rule::TranchesInOrder,
                format!("{quarter} of fund {code} has already been assessed"),
            ));
        }
        let next = Quarter::all().find(|q| !self.assessed.contains_key(q));
        if next != Some(quarter) {
            let next = next.map_or_else(|| "none".to_string(), |q| q.to_string());
            return Err(DomainError::rejected(
                Rule::TranchesInOrder,
                format!("the next tranche of fund {code} to assess is {next}, not {quarter}"),
            ));
        }
        let period = self.year.period(quarter.last_month());
        if system.is_closed(period) {
            return Err(DomainError::rejected(
                Rule::PeriodClosed,
                format!("{quarter} is assessed in {period}, which is closed"),
            ));
        }
        limits::list("evidence", evidence.len(), limits::CONDITIONS_MAX)?;
        let mut figures: BTreeMap<&Code, Figures> = BTreeMap::new();
        for (i, item) in evidence.iter().enumerate() {
            let Some(condition) = self
                .conditions
                .iter()
                .find(|c| c.condition == item.condition)
            else {
                return Err(DomainError::rejected(
                    Rule::EvidenceMismatch,
                    format!(
                        "evidence[{i}].condition: {} is not a condition of fund {code}",
                        item.condition
                    ),
                ));
            };
            if figures.insert(&item.condition, item.figures).is_some() {
                return Err(DomainError::invalid(
                    format!("evidence[{i}].condition"),
                    format!("{} is named more than once", item.condition),
                ));
            }
            if let Figures::SystemFinance {
                actual_ytd,
                control_total_ytd,
            } = item.figures
            {
                let field = |name: &str| format!("evidence[{i}].figures.system_finance.{name}");
                limits::amount(&field("actual_ytd_pence"), actual_ytd)?;
                limits::amount(&field("control_total_ytd_pence"), control_total_ytd)?;
            }
            if let Figures::AeFourHour { performance } = item.figures
                && !performance.is_share()
            {
                return Err(DomainError::invalid(
                    format!("evidence[{i}].figures.ae_four_hour.performance_bp"),
                    format!("{performance} is more than 100.00%"),
                ));
            }
            if item.figures.meet(condition.kind).is_none() {
                return Err(DomainError::rejected(
                    Rule::EvidenceMismatch,
                    format!(
                        "evidence[{i}].figures: condition {} needs {} figures",
                        condition.condition,
                        condition.kind.name()
                    ),
                ));
            }
        }
        let tranche = self.tranche(quarter).ok_or_else(|| {
            DomainError::invalid(
                "quarter",
                format!("fund {code} has no tranche for {quarter}"),
            )
        })?;
        let overflow = |_| DomainError::overflow("tranche_pence");
        let weights: Vec<u64> = self
            .conditions
            .iter()
            .map(|c| u64::from(c.weight.get()))
            .collect();
        let amounts = tranche.split(&weights).map_err(overflow)?;
        let mut outcomes = Vec::with_capacity(self.conditions.len());
        for (condition, amount) in self.conditions.iter().zip(amounts) {
            let Some(figures) = figures.get(&condition.condition).copied() else {
                return Err(DomainError::rejected(
                    Rule::EvidenceMismatch,
                    format!("evidence: no figures for condition {}", condition.condition),
                ));
            };
            let met = figures.meet(condition.kind).unwrap_or(false);
            let earned = if met { amount } else { Pence::ZERO };
            outcomes.push(ConditionOutcome {
                condition: condition.condition.clone(),
                kind: condition.kind,
                weight: condition.weight,
                amount,
                figures,
                met,
                earned,
                forfeited: amount.checked_sub(earned).map_err(overflow)?,
            });
        }
        let earned = Pence::checked_sum(outcomes.iter().map(|o| o.earned)).map_err(overflow)?;
        let forfeited = tranche.checked_sub(earned).map_err(overflow)?;
        let earned_by_recipient =
            split_by_allocation(earned, &self.recipients).map_err(overflow)?;
        Ok(vec![FundEvent::TrancheAssessed {
            quarter,
            period,
            tranche,
            outcomes,
            earned,
            forfeited,
            earned_by_recipient,
        }])
    }

    /// Folds one event into an existing fund; computes every new value before changing
    /// anything.
    fn apply(&mut self, event: &FundEvent) -> Result<(), String> {
        match event {
            FundEvent::Allocated { .. } => Err("the fund already exists".to_string()),
            FundEvent::TrancheAssessed {
                quarter,
                earned_by_recipient,
                ..
            } => {
                if self.assessed.contains_key(quarter) {
                    return Err(format!("{quarter} is already assessed"));
                }
                self.assessed.insert(*quarter, earned_by_recipient.clone());
                Ok(())
            }
            FundEvent::TranchePaid {
                quarter, payments, ..
            } => {
                if self.paid.contains_key(quarter) {
                    return Err(format!("{quarter} is already paid"));
                }
                self.paid.insert(*quarter, payments.clone());
                Ok(())
            }
            FundEvent::ClawedBack {
                quarter,
                member,
                amount,
                ..
            } => add_to(&mut self.clawed_back, (*quarter, *member), *amount)
                .map_err(|_| "amounts overflow".to_string()),
        }
    }
}

/// Splits `amount` between recipients in proportion to their allocations (largest remainder).
fn split_by_allocation(
    amount: Pence,
    recipients: &[Recipient],
) -> Result<Vec<Allocation>, crate::money::MoneyError> {
    let weights: Vec<u64> = recipients
        .iter()
        .map(|r| u64::try_from(r.allocation.get()).unwrap_or(0))
        .collect();
    let parts = amount.split(&weights)?;
    Ok(recipients
        .iter()
        .zip(parts)
        .map(|(recipient, amount)| Allocation {
            member: recipient.member,
            amount,
        })
        .collect())
}

fn decide_allocation(
    system: &SystemState,
    name: &Text,
    year: FinancialYear,
    recipients: &[Recipient],
    conditions: &[Condition],
) -> Result<Vec<FundEvent>, DomainError> {
    let first_year = system.establishment()?.first_year;
    if year < first_year {
        return Err(DomainError::invalid(
            "year",
            format!("{year} is before the system's first year {first_year}"),
        ));
    }
    if recipients.is_empty() {
        return Err(DomainError::invalid(
            "recipients",
            "a fund needs at least one recipient",
        ));
    }
    limits::list("recipients", recipients.len(), limits::MEMBERS_MAX)?;
    limits::list("conditions", conditions.len(), limits::CONDITIONS_MAX)?;
    let mut seen = BTreeSet::new();
    let mut total = Pence::ZERO;
    for (i, recipient) in recipients.iter().enumerate() {
        let field = |name: &str| format!("recipients[{i}].{name}");
        if !seen.insert(&recipient.member) {
            return Err(DomainError::invalid(
                field("member"),
                format!("{} is named more than once", recipient.member),
            ));
        }
        let member = system.provider(&recipient.member)?;
        if !member.in_control_total {
            return Err(DomainError::rejected(
                Rule::NotInControlTotal,
                format!(
                    "{}: {} is not an NHS provider counted in the control total",
                    field("member"),
                    recipient.member
                ),
            ));
        }
        positive(&field("allocation_pence"), recipient.allocation)?;
        limits::amount(&field("allocation_pence"), recipient.allocation)?;
        total = total
            .checked_add(recipient.allocation)
            .map_err(|_| DomainError::overflow(field("allocation_pence")))?;
        if total > limits::AMOUNT_CEILING {
            return Err(DomainError::invalid(
                field("allocation_pence"),
                format!(
                    "the allocations would total {total}, over the ceiling of {} on a fund",
                    limits::AMOUNT_CEILING
                ),
            ));
        }
    }
    let mut codes = BTreeSet::new();
    for (i, condition) in conditions.iter().enumerate() {
        let field = |name: &str| format!("conditions[{i}].{name}");
        if !codes.insert(&condition.condition) {
            return Err(DomainError::invalid(
                field("condition"),
                format!("{} is named more than once", condition.condition),
            ));
        }
        if !condition.weight.is_share() {
            return Err(DomainError::invalid(
                field("weight_bp"),
                format!("{} is more than 100.00%", condition.weight),
            ));
        }
        if let ConditionKind::AeFourHour { threshold } = condition.kind
            && !threshold.is_share()
        {
            return Err(DomainError::invalid(
                field("threshold_bp"),
                format!("{threshold} is more than 100.00%"),
            ));
        }
    }
    let weights = BasisPoints::checked_sum(conditions.iter().map(|c| c.weight));
    if weights != Some(BasisPoints::WHOLE) {
        let weights = weights.map_or_else(|| "more than 100.00%".to_string(), |w| w.to_string());
        return Err(DomainError::rejected(
            Rule::SharesMustSumToWhole,
            format!("conditions: weights sum to {weights}, not 100.00%"),
        ));
    }
    let tranches = total
        .split(&[1, 1, 1, 1])
        .map_err(|_| DomainError::overflow("recipients"))?;
    Ok(vec![FundEvent::Allocated {
        name: name.clone(),
        year,
        recipients: recipients.to_vec(),
        conditions: conditions.to_vec(),
        total,
        tranches,
    }])
}

/// Decides a command for the fund `code` (`state` is `None` until it is created).
pub fn decide(
    system: &SystemState,
    code: &Code,
    state: Option<&FundState>,
    command: &FundCommand,
) -> Result<Vec<FundEvent>, DomainError> {
    match (state, command) {
        (Some(state), command) => state.decide(system, code, command),
        (
            None,
            FundCommand::Allocate {
                name,
                year,
                recipients,
                conditions,
            },
        ) => decide_allocation(system, name, *year, recipients, conditions),
        (None, _) => Err(DomainError::NotFound {
            what: "fund",
            id: code.to_string(),
        }),
    }
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(entry: Entry<'_, Code, FundState>, event: &FundEvent) -> Result<(), String> {
    match (entry, event) {
        (
            Entry::Vacant(vacant),
            FundEvent::Allocated {
                name,
                year,
                recipients,
                conditions,
                tranches,
                ..
            },
        ) => {
            vacant.insert(FundState {
                name: name.clone(),
                year: *year,
                recipients: recipients.clone(),
                conditions: conditions.clone(),
                tranches: tranches.clone(),
                assessed: BTreeMap::new(),
                paid: BTreeMap::new(),
                clawed_back: BTreeMap::new(),
            });
            Ok(())
        }
        (Entry::Vacant(_), _) => Err("the fund does not exist".to_string()),
        (Entry::Occupied(mut occupied), event) => occupied.get_mut().apply(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::{Command, Event, Ledger};

    fn ev(event: FundEvent) -> Event {
        Event::Fund {
            fund: code("SSF"),
            event,
        }
    }

    fn when(command: FundCommand) -> Command {
        Command::Fund {
            fund: code("SSF"),
            command,
        }
    }

    fn recipient(code: &str, allocation: Pence) -> Recipient {
        Recipient {
            member: member(code),
            allocation,
        }
    }

    fn finance() -> Condition {
        Condition {
            condition: code("FIN"),
            kind: ConditionKind::SystemFinance,
            weight: bp(7_000),
        }
    }

    fn ae() -> Condition {
        Condition {
            condition: code("AE"),
            kind: ConditionKind::AeFourHour {
                threshold: bp(9_000),
            },
            weight: bp(3_000),
        }
    }

    /// BRIEF §8: KHFT 4,800,000 and AVT 2,400,000; 70% finance, 30% A&E at 90.00%.
    fn allocate(recipients: Vec<Recipient>, conditions: Vec<Condition>) -> Command {
        when(FundCommand::Allocate {
            name: text("System sustainability fund"),
            year: fy(),
            recipients,
            conditions,
        })
    }

    fn ssf_recipients() -> Vec<Recipient> {
        vec![
            recipient("KHFT", pounds(4_800_000)),
            recipient("AVT", pounds(2_400_000)),
        ]
    }

    fn ssf_allocated() -> Event {
        ev(FundEvent::Allocated {
            name: text("System sustainability fund"),
            year: fy(),
            recipients: ssf_recipients(),
            conditions: vec![finance(), ae()],
            total: pounds(7_200_000),
            tranches: vec![pounds(1_800_000); 4],
        })
    }

    fn ssf() -> Vec<Event> {
        history([demo_system(), vec![ssf_allocated()]])
    }

    fn finance_figures(actual_ytd: i64, control_total_ytd: i64) -> Evidence {
        Evidence {
            condition: code("FIN"),
            figures: Figures::SystemFinance {
                actual_ytd: pounds(actual_ytd),
                control_total_ytd: pounds(control_total_ytd),
            },
        }
    }

    fn ae_figures(performance: u32) -> Evidence {
        Evidence {
            condition: code("AE"),
            figures: Figures::AeFourHour {
                performance: bp(performance),
            },
        }
    }

    fn assess(q: u32, evidence: Vec<Evidence>) -> Command {
        when(FundCommand::AssessTranche {
            quarter: quarter(q),
            evidence,
        })
    }

    fn allocations(parts: [(&str, Pence); 2]) -> Vec<Allocation> {
        parts
            .into_iter()
            .map(|(m, amount)| Allocation {
                member: member(m),
                amount,
            })
            .collect()
    }

    /// The assessment BRIEF §8 gives for each quarter.
    fn assessed(q: u32) -> Event {
        let (fin, ae_figures, fin_met, ae_met) = match q {
            1 => ((-1_800_000, -1_800_000), 9_100, true, true),
            2 => ((-6_000_000, -3_600_000), 9_040, false, true),
            3 => ((-4_800_000, -5_400_000), 8_850, true, false),
            _ => ((-6_960_000, -7_200_000), 9_020, true, true),
        };
        let outcome = |condition: Condition, amount: Pence, figures: Figures, met: bool| {
            let earned = if met { amount } else { Pence::ZERO };
            ConditionOutcome {
                condition: condition.condition,
                kind: condition.kind,
                weight: condition.weight,
                amount,
                figures,
                met,
                earned,
                forfeited: amount.checked_sub(earned).expect("in range"),
            }
        };
        let outcomes = vec![
            outcome(
                finance(),
                pounds(1_260_000),
                Figures::SystemFinance {
                    actual_ytd: pounds(fin.0),
                    control_total_ytd: pounds(fin.1),
                },
                fin_met,
            ),
            outcome(
                ae(),
                pounds(540_000),
                Figures::AeFourHour {
                    performance: bp(ae_figures),
                },
                ae_met,
            ),
        ];
        let earned = Pence::checked_sum(outcomes.iter().map(|o| o.earned)).expect("in range");
        let third = earned.split(&[2, 1]).expect("splits");
        ev(FundEvent::TrancheAssessed {
            quarter: quarter(q),
            period: fy().period(quarter(q).last_month()),
            tranche: pounds(1_800_000),
            earned,
            forfeited: pounds(1_800_000).checked_sub(earned).expect("in range"),
            outcomes,
            earned_by_recipient: allocations([("KHFT", third[0]), ("AVT", third[1])]),
        })
    }

    fn evidence(q: u32) -> Vec<Evidence> {
        let Event::Fund {
            event: FundEvent::TrancheAssessed { outcomes, .. },
            ..
        } = assessed(q)
        else {
            unreachable!()
        };
        outcomes
            .into_iter()
            .map(|o| Evidence {
                condition: o.condition,
                figures: o.figures,
            })
            .collect()
    }

    fn paid(q: u32, p: Period) -> Event {
        let Event::Fund {
            event:
                FundEvent::TrancheAssessed {
                    earned_by_recipient,
                    ..
                },
            ..
        } = assessed(q)
        else {
            unreachable!()
        };
        ev(FundEvent::TranchePaid {
            quarter: quarter(q),
            period: p,
            payments: earned_by_recipient,
        })
    }

    fn pay(q: u32, p: Period) -> Command {
        when(FundCommand::PayTranche {
            quarter: quarter(q),
            period: p,
        })
    }

    fn claw_back(q: u32, m: &str, p: Period, amount: Pence) -> Command {
        when(FundCommand::ClawBack {
            quarter: quarter(q),
            member: member(m),
            period: p,
            amount,
            reason: text("restated accounts"),
        })
    }

    fn clawed_back(q: u32, m: &str, p: Period, amount: Pence) -> Event {
        ev(FundEvent::ClawedBack {
            quarter: quarter(q),
            member: member(m),
            period: p,
            amount,
            reason: text("restated accounts"),
        })
    }

    #[test]
    fn a_fund_is_allocated_once_to_nhs_providers_in_the_control_total() {
        let conditions = || vec![finance(), ae()];
        run(vec![
            Case {
                name: "BRIEF: 7,200,000 in four tranches of 1,800,000",
                given: demo_system(),
                when: allocate(ssf_recipients(), conditions()),
                then: Then::Events(vec![ssf_allocated()]),
            },
            Case {
                name: "odd pence go to the earliest tranches",
                given: demo_system(),
                when: allocate(vec![recipient("KHFT", Pence::new(7))], conditions()),
                then: Then::Events(vec![ev(FundEvent::Allocated {
                    name: text("System sustainability fund"),
                    year: fy(),
                    recipients: vec![recipient("KHFT", Pence::new(7))],
                    conditions: conditions(),
                    total: Pence::new(7),
                    tranches: [2, 2, 2, 1].map(Pence::new).to_vec(),
                })]),
            },
            Case {
                name: "allocated twice",
                given: ssf(),
                when: allocate(ssf_recipients(), conditions()),
                then: Then::AlreadyExists("fund"),
            },
            Case {
                name: "another command for a fund that does not exist",
                given: demo_system(),
                when: assess(1, evidence(1)),
                then: Then::NotFound("fund"),
            },
            Case {
                name: "a year before the system's first",
                given: demo_system(),
                when: when(FundCommand::Allocate {
                    name: text("old"),
                    year: year(2017),
                    recipients: ssf_recipients(),
                    conditions: conditions(),
                }),
                then: Then::Invalid("year"),
            },
            Case {
                name: "no recipients",
                given: demo_system(),
                when: allocate(vec![], conditions()),
                then: Then::Invalid("recipients"),
            },
            Case {
                name: "a recipient never admitted",
                given: demo_system(),
                when: allocate(vec![recipient("RXX", pounds(1))], conditions()),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "the commissioner is not a provider",
                given: demo_system(),
                when: allocate(vec![recipient("KCCG", pounds(1))], conditions()),
                then: Then::Rejected(Rule::NotAProvider),
            },
            Case {
                name: "a PCN is a provider outside the control total",
                given: demo_system(),
                when: allocate(vec![recipient("KNPCN", pounds(1))], conditions()),
                then: Then::Rejected(Rule::NotInControlTotal),
            },
            Case {
                name: "a recipient named twice",
                given: demo_system(),
                when: allocate(
                    vec![recipient("AVT", pounds(1)), recipient("AVT", pounds(1))],
                    conditions(),
                ),
                then: Then::Invalid("recipients[1].member"),
            },
            Case {
                name: "a zero allocation",
                given: demo_system(),
                when: allocate(vec![recipient("AVT", Pence::ZERO)], conditions()),
                then: Then::Invalid("recipients[0].allocation_pence"),
            },
            Case {
                name: "a negative allocation",
                given: demo_system(),
                when: allocate(vec![recipient("AVT", pounds(-1))], conditions()),
                then: Then::Invalid("recipients[0].allocation_pence"),
            },
            Case {
                name: "an allocation over the ceiling",
                given: demo_system(),
                when: allocate(
                    vec![
                        recipient("AVT", Pence::MAX),
                        recipient("KHFT", Pence::new(1)),
                    ],
                    conditions(),
                ),
                then: Then::Invalid("recipients[0].allocation_pence"),
            },
        ]);
    }

    #[test]
    fn conditions_have_unique_codes_and_weights_summing_to_the_whole() {
        let with_weights = |fin: u32, ae_weight: u32| {
            vec![
                Condition {
                    weight: bp(fin),
                    ..finance()
                },
                Condition {
                    weight: bp(ae_weight),
                    ..ae()
                },
            ]
        };
        run(vec![
            Case {
                name: "weights summing to 90%",
                given: demo_system(),
                when: allocate(ssf_recipients(), with_weights(6_000, 3_000)),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "no conditions",
                given: demo_system(),
                when: allocate(ssf_recipients(), vec![]),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "a weight above 100%",
                given: demo_system(),
                when: allocate(ssf_recipients(), with_weights(10_001, 0)),
                then: Then::Invalid("conditions[0].weight_bp"),
            },
            Case {
                name: "a condition code used twice",
                given: demo_system(),
                when: allocate(
                    ssf_recipients(),
                    vec![
                        finance(),
                        Condition {
                            condition: code("FIN"),
                            ..ae()
                        },
                    ],
                ),
                then: Then::Invalid("conditions[1].condition"),
            },
            Case {
                name: "an A&E threshold above 100%",
                given: demo_system(),
                when: allocate(
                    ssf_recipients(),
                    vec![
                        finance(),
                        Condition {
                            kind: ConditionKind::AeFourHour {
                                threshold: bp(10_001),
                            },
                            ..ae()
                        },
                    ],
                ),
                then: Then::Invalid("conditions[1].threshold_bp"),
            },
        ]);
    }

    #[test]
    fn tranches_are_assessed_in_order_against_evidence_for_every_condition() {
        run(vec![
            Case {
                name: "BRIEF Q1: both met, 1,800,000 earned, 1,200,000 / 600,000",
                given: ssf(),
                when: assess(1, evidence(1)),
                then: Then::Events(vec![assessed(1)]),
            },
            Case {
                name: "BRIEF Q2: finance missed, A&E met, 540,000 earned, 360,000 / 180,000",
                given: history([ssf(), vec![assessed(1)]]),
                when: assess(2, evidence(2)),
                then: Then::Events(vec![assessed(2)]),
            },
            Case {
                name: "BRIEF Q3: finance met, A&E 88.50% missed, 1,260,000 earned",
                given: history([ssf(), vec![assessed(1), assessed(2)]]),
                when: assess(3, evidence(3)),
                then: Then::Events(vec![assessed(3)]),
            },
            Case {
                name: "evidence in any order",
                given: ssf(),
                when: assess(1, evidence(1).into_iter().rev().collect()),
                then: Then::Events(vec![assessed(1)]),
            },
            Case {
                name: "Q2 before Q1",
                given: ssf(),
                when: assess(2, evidence(2)),
                then: Then::Rejected(Rule::TranchesInOrder),
            },
            Case {
                name: "Q1 twice",
                given: history([ssf(), vec![assessed(1)]]),
                when: assess(1, evidence(1)),
                then: Then::Rejected(Rule::TranchesInOrder),
            },
            Case {
                name: "the quarter's last month is closed",
                given: history([ssf(), closed_through(period(2018, 3))]),
                when: assess(1, evidence(1)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "evidence missing a condition",
                given: ssf(),
                when: assess(1, vec![finance_figures(0, 0)]),
                then: Then::Rejected(Rule::EvidenceMismatch),
            },
            Case {
                name: "evidence for a condition the fund does not have",
                given: ssf(),
                when: assess(
                    1,
                    vec![
                        finance_figures(0, 0),
                        ae_figures(9_100),
                        Evidence {
                            condition: code("RTT"),
                            figures: Figures::AeFourHour {
                                performance: bp(9_000),
                            },
                        },
                    ],
                ),
                then: Then::Rejected(Rule::EvidenceMismatch),
            },
            Case {
                name: "the wrong kind of figures",
                given: ssf(),
                when: assess(
                    1,
                    vec![
                        Evidence {
                            condition: code("FIN"),
                            figures: Figures::AeFourHour {
                                performance: bp(9_000),
                            },
                        },
                        ae_figures(9_100),
                    ],
                ),
                then: Then::Rejected(Rule::EvidenceMismatch),
            },
            Case {
                name: "a condition named twice",
                given: ssf(),
                when: assess(
                    1,
                    vec![finance_figures(0, 0), ae_figures(9_100), ae_figures(9_100)],
                ),
                then: Then::Invalid("evidence[2].condition"),
            },
            Case {
                name: "A&E performance above 100%",
                given: ssf(),
                when: assess(1, vec![finance_figures(0, 0), ae_figures(10_001)]),
                then: Then::Invalid("evidence[1].figures.ae_four_hour.performance_bp"),
            },
        ]);
    }

    #[test]
    fn a_tranche_is_paid_once_after_assessment_exactly_as_earned() {
        let m6 = period(2018, 6);
        run(vec![
            Case {
                name: "pay Q1 in M4",
                given: history([ssf(), vec![assessed(1)]]),
                when: pay(1, period(2018, 4)),
                then: Then::Events(vec![paid(1, period(2018, 4))]),
            },
            Case {
                name: "pay Q2 in M6: KHFT 360,000, AVT 180,000",
                given: history([ssf(), vec![assessed(1), assessed(2)]]),
                when: pay(2, m6),
                then: Then::Events(vec![ev(FundEvent::TranchePaid {
                    quarter: quarter(2),
                    period: m6,
                    payments: allocations([("KHFT", pounds(360_000)), ("AVT", pounds(180_000))]),
                })]),
            },
            Case {
                name: "pay Q4 in the next year",
                given: history([
                    ssf(),
                    vec![assessed(1), assessed(2), assessed(3), assessed(4)],
                ]),
                when: pay(4, period(2019, 1)),
                then: Then::Events(vec![paid(4, period(2019, 1))]),
            },
            Case {
                name: "pay before assessment",
                given: ssf(),
                when: pay(1, period(2018, 3)),
                then: Then::Rejected(Rule::TrancheNotAssessed),
            },
            Case {
                name: "pay twice",
                given: history([ssf(), vec![assessed(1), paid(1, period(2018, 4))]]),
                when: pay(1, period(2018, 5)),
                then: Then::Rejected(Rule::TrancheAlreadyPaid),
            },
            Case {
                name: "pay before the month it was assessed in",
                given: history([ssf(), vec![assessed(1)]]),
                when: pay(1, period(2018, 2)),
                then: Then::Invalid("period"),
            },
            Case {
                name: "pay in a closed period",
                given: history([ssf(), vec![assessed(1)], closed_through(period(2018, 4))]),
                when: pay(1, period(2018, 4)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "pay before the fund's year",
                given: history([
                    demo_system(),
                    vec![ev(FundEvent::Allocated {
                        name: text("next year"),
                        year: year(2019),
                        recipients: ssf_recipients(),
                        conditions: vec![finance(), ae()],
                        total: pounds(7_200_000),
                        tranches: vec![pounds(1_800_000); 4],
                    })],
                    vec![assessed(1)],
                ]),
                when: pay(1, period(2018, 12)),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
        ]);
    }

    #[test]
    fn a_claw_back_takes_at_most_what_is_left_of_a_payment() {
        let m7 = period(2018, 7);
        let q1_paid = || history([ssf(), vec![assessed(1), paid(1, period(2018, 4))]]);
        run(vec![
            Case {
                name: "claw back all of AVT's Q1 payment",
                given: q1_paid(),
                when: claw_back(1, "AVT", m7, pounds(600_000)),
                then: Then::Events(vec![clawed_back(1, "AVT", m7, pounds(600_000))]),
            },
            Case {
                name: "a penny more than was paid",
                given: q1_paid(),
                when: claw_back(1, "AVT", m7, Pence::new(60_000_001)),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "more than is left after an earlier claw-back",
                given: history([q1_paid(), vec![clawed_back(1, "AVT", m7, pounds(500_000))]]),
                when: claw_back(1, "AVT", m7, pounds(100_001)),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "exactly what is left after an earlier claw-back",
                given: history([q1_paid(), vec![clawed_back(1, "AVT", m7, pounds(500_000))]]),
                when: claw_back(1, "AVT", m7, pounds(100_000)),
                then: Then::Events(vec![clawed_back(1, "AVT", m7, pounds(100_000))]),
            },
            Case {
                name: "a quarter not paid",
                given: history([ssf(), vec![assessed(1)]]),
                when: claw_back(1, "AVT", m7, pounds(1)),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "from an admitted member who is not a recipient",
                given: q1_paid(),
                when: claw_back(1, "KCHT", m7, pounds(1)),
                then: Then::Rejected(Rule::NotAPartner),
            },
            Case {
                name: "from a member never admitted",
                given: q1_paid(),
                when: claw_back(1, "RXX", m7, pounds(1)),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a negative claw-back",
                given: q1_paid(),
                when: claw_back(1, "AVT", m7, pounds(-1)),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "in a closed period",
                given: history([q1_paid(), closed_through(m7)]),
                when: claw_back(1, "AVT", m7, pounds(1)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
        ]);
    }

    #[test]
    fn brief_year_earns_5_400_000_and_forfeits_1_800_000() {
        let mut ledger = ledger(&demo_system());
        let mut earned = BTreeMap::<MemberCode, Pence>::new();
        let mut forfeited = Pence::ZERO;
        let mut commands = vec![allocate(ssf_recipients(), vec![finance(), ae()])];
        for q in 1..=4 {
            commands.push(assess(q, evidence(q)));
            commands.push(pay(q, fy().period(quarter(q).last_month())));
        }
        for command in &commands {
            for event in ledger.execute(command).expect("accepted") {
                if let Event::Fund {
                    event:
                        FundEvent::TrancheAssessed {
                            earned_by_recipient,
                            forfeited: f,
                            ..
                        },
                    ..
                } = event
                {
                    forfeited = forfeited.checked_add(f).expect("in range");
                    for a in earned_by_recipient {
                        add_to(&mut earned, a.member, a.amount).expect("in range");
                    }
                }
            }
        }
        assert_eq!(earned.get(&member("KHFT")), Some(&pounds(3_600_000)));
        assert_eq!(earned.get(&member("AVT")), Some(&pounds(1_800_000)));
        assert_eq!(forfeited, pounds(1_800_000));
        let fund = &ledger.funds[&code("SSF")];
        assert_eq!(fund.net_paid(quarter(2), &member("KHFT")), pounds(360_000));
        assert_eq!(fund.total(), Ok(pounds(7_200_000)));
        assert_ne!(ledger, Ledger::default());
    }

    #[test]
    fn apply_refuses_events_that_do_not_fit() {
        let mut funds = BTreeMap::new();
        let Event::Fund { event: q1, .. } = assessed(1) else {
            unreachable!()
        };
        assert!(apply(funds.entry(code("SSF")), &q1).is_err());
        let Event::Fund {
            event: allocated, ..
        } = ssf_allocated()
        else {
            unreachable!()
        };
        assert_eq!(apply(funds.entry(code("SSF")), &allocated), Ok(()));
        assert!(apply(funds.entry(code("SSF")), &allocated).is_err());
        assert_eq!(apply(funds.entry(code("SSF")), &q1), Ok(()));
        assert!(apply(funds.entry(code("SSF")), &q1).is_err());
    }
}
