//! The *pooled budget* family: a Better Care Fund style pool under a Section 75 agreement.
//! One stream per budget (`budget/<code>`).
//!
//! Rules:
//! - established once, by code, for one year not before the system's first, with a host who
//!   is one of the partners; there is at least one partner, every partner is an admitted
//!   member, named once; schemes are named once; the overspend shares and the underspend
//!   shares each name only partners, each partner at most once, each share at most 100.00%,
//!   and each set sums to exactly 100.00%;
//! - a pledge is by a partner, more than zero, to the revenue pool or to a named ring-fenced
//!   scheme of the budget (which sits outside the risk share); all pledges together must not
//!   overflow;
//! - a payment is by a partner, more than zero, in an open period of the budget's year, and a
//!   partner's payments never exceed its pledges (revenue and ring-fenced together);
//! - spend is against a scheme of the pool, more than zero, in an open period of the budget's
//!   year (or, as a correction, in a later open period naming the period of the budget's year
//!   it corrects); all spend together must not overflow;
//! - a variation may replace either set of shares (same rules as at establishment) and add
//!   schemes (codes new to the budget); it needs a reason and must change something;
//! - the risk share is settled once, in an open period of the budget's year: the variance is
//!   revenue spend (spend on schemes that are not ring-fenced) minus revenue pledges; an
//!   overspend (positive variance) is split by the overspend shares, an underspend (negative)
//!   by the underspend shares, by largest remainder so the parts sum exactly to the variance
//!   (a zero variance is recorded with the underspend shares and zero parts);
//! - after settlement no pledge, spend or variation is accepted, and payments still never
//!   exceed pledges; closing needs the settlement (refused as `budget settled` otherwise, there
//!   being no separate rule) and is in an open period of the budget's year or later; after
//!   closing nothing is accepted.
//!
//! A member named by a command must have been admitted (`member not admitted`) and be a
//! partner of the budget (`not a partner`).

use std::collections::btree_map::Entry;
use std::collections::{BTreeMap, BTreeSet};

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Rule};
use crate::ids::{Code, MemberCode, Text};
use crate::limits;
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period};
use crate::system::{SystemState, positive};

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

impl BudgetState {
    /// All a partner has pledged: to the revenue pool and to ring-fenced schemes.
    pub fn pledged_by(&self, partner: &MemberCode) -> Pence {
        let revenue = self
            .revenue_pledged
            .get(partner)
            .copied()
            .unwrap_or_default();
        let ring_fenced = self
            .ring_fenced_pledged
            .get(partner)
            .copied()
            .unwrap_or_default();
        // The decide rules keep the sum of all pledges within range.
        revenue.checked_add(ring_fenced).unwrap_or(Pence::MAX)
    }

    /// What a partner has paid in.
    pub fn paid_by(&self, partner: &MemberCode) -> Pence {
        self.paid.get(partner).copied().unwrap_or_default()
    }

    /// Pledged to the revenue pool, by all partners.
    pub fn revenue_pledged_total(&self) -> Result<Pence, crate::money::MoneyError> {
        Pence::checked_sum(self.revenue_pledged.values().copied())
    }

    /// Spent on schemes that are not ring-fenced.
    pub fn revenue_spend_total(&self) -> Result<Pence, crate::money::MoneyError> {
        Pence::checked_sum(
            self.spend
                .iter()
                .filter(|(scheme, _)| !self.is_ring_fenced(scheme))
                .map(|(_, amount)| *amount),
        )
    }

    fn is_ring_fenced(&self, scheme: &Code) -> bool {
        self.schemes.get(scheme).is_some_and(|s| s.ring_fenced)
    }

    fn is_partner(&self, member: &MemberCode) -> bool {
        self.partners.contains(member)
    }

    /// The admitted member, which must be a partner of this budget.
    fn partner(
        &self,
        system: &SystemState,
        code: &Code,
        member: &MemberCode,
    ) -> Result<(), DomainError> {
        system.member(member)?;
        if !self.is_partner(member) {
            return Err(DomainError::rejected(
                Rule::NotAPartner,
                format!("{member} is not a partner of budget {code}"),
            ));
        }
        Ok(())
    }

    fn check_open_for_business(&self, code: &Code) -> Result<(), DomainError> {
        if self.closed {
            return Err(DomainError::rejected(
                Rule::BudgetClosed,
                format!("budget {code} is closed"),
            ));
        }
        Ok(())
    }

    fn check_not_settled(&self, code: &Code) -> Result<(), DomainError> {
        self.check_open_for_business(code)?;
        if self.settled {
            return Err(DomainError::rejected(
                Rule::BudgetSettled,
                format!("the risk share of budget {code} has been settled"),
            ));
        }
        Ok(())
    }

    fn decide(
        &self,
        system: &SystemState,
        code: &Code,
        command: &BudgetCommand,
    ) -> Result<Vec<BudgetEvent>, DomainError> {
        match command {
            BudgetCommand::Establish { .. } => Err(DomainError::AlreadyExists {
                what: "budget",
                id: code.to_string(),
            }),
            BudgetCommand::Pledge {
                partner,
                amount,
                ring_fenced_scheme,
            } => {
                self.check_not_settled(code)?;
                self.partner(system, code, partner)?;
                positive("amount_pence", *amount)?;
                limits::amount("amount_pence", *amount)?;
                if let Some(scheme) = ring_fenced_scheme {
                    let found = self
                        .schemes
                        .get(scheme)
                        .ok_or_else(|| DomainError::NotFound {
                            what: "scheme",
                            id: format!("{code}/{scheme}"),
                        })?;
                    if !found.ring_fenced {
                        return Err(DomainError::invalid(
                            "ring_fenced_scheme",
                            format!(
                                "scheme {scheme} is not ring-fenced; pledge to the revenue pool instead"
                            ),
                        ));
                    }
                }
                limits::total(
                    "amount_pence",
                    &format!("the pledges to budget {code}"),
                    Pence::checked_sum(
                        self.revenue_pledged
                            .values()
                            .chain(self.ring_fenced_pledged.values())
                            .copied()
                            .chain([*amount]),
                    ),
                )?;
                Ok(vec![BudgetEvent::Pledged {
                    partner: *partner,
                    amount: *amount,
                    ring_fenced_scheme: ring_fenced_scheme.clone(),
                }])
            }
            BudgetCommand::PayContribution {
                partner,
                period,
                amount,
            } => {
                self.check_open_for_business(code)?;
                self.partner(system, code, partner)?;
                positive("amount_pence", *amount)?;
                limits::amount("amount_pence", *amount)?;
                system.check_posting(self.year, *period, None)?;
                let pledged = self.pledged_by(partner);
                let paid = self.paid_by(partner);
                let after = paid
                    .checked_add(*amount)
                    .map_err(|_| DomainError::overflow("amount_pence"))?;
                if after > pledged {
                    return Err(DomainError::rejected(
                        Rule::OverPaid,
                        format!(
                            "{partner} has pledged {pledged} and paid {paid}; a payment of {amount} would exceed its pledges"
                        ),
                    ));
                }
                Ok(vec![BudgetEvent::ContributionPaid {
                    partner: *partner,
                    period: *period,
                    amount: *amount,
                }])
            }
            BudgetCommand::RecordSpend {
                scheme,
                period,
                amount,
                corrects,
            } => {
                self.check_not_settled(code)?;
                if !self.schemes.contains_key(scheme) {
                    return Err(DomainError::NotFound {
                        what: "scheme",
                        id: format!("{code}/{scheme}"),
                    });
                }
                positive("amount_pence", *amount)?;
                limits::amount("amount_pence", *amount)?;
                system.check_posting(self.year, *period, *corrects)?;
                limits::total(
                    "amount_pence",
                    &format!("the spend of budget {code}"),
                    Pence::checked_sum(self.spend.values().copied().chain([*amount])),
                )?;
                Ok(vec![BudgetEvent::SpendRecorded {
                    scheme: scheme.clone(),
                    period: *period,
                    amount: *amount,
                    corrects: *corrects,
                }])
            }
            BudgetCommand::Vary {
                reason,
                overspend_shares,
                underspend_shares,
                add_schemes,
            } => {
                self.check_not_settled(code)?;
                if overspend_shares.is_none()
                    && underspend_shares.is_none()
                    && add_schemes.is_empty()
                {
                    return Err(DomainError::invalid(
                        "add_schemes",
                        "a variation must replace a set of shares or add at least one scheme",
                    ));
                }
                limits::list("add_schemes", add_schemes.len(), limits::SCHEMES_MAX)?;
                if let Some(shares) = overspend_shares {
                    check_shares(system, "overspend_shares.shares", shares, &self.partners)?;
                }
                if let Some(shares) = underspend_shares {
                    check_shares(system, "underspend_shares.shares", shares, &self.partners)?;
                }
                check_schemes("add_schemes", add_schemes)?;
                if let Some(existing) = add_schemes
                    .iter()
                    .find(|s| self.schemes.contains_key(&s.scheme))
                {
                    return Err(DomainError::AlreadyExists {
                        what: "scheme",
                        id: format!("{code}/{}", existing.scheme),
                    });
                }
                if self.schemes.len() + add_schemes.len() > limits::SCHEMES_MAX {
                    return Err(DomainError::rejected(
                        Rule::LimitReached,
                        format!(
                            "add_schemes: budget {code} has {} schemes; {} more would be over the \
                             most a budget may have, {}",
                            self.schemes.len(),
                            add_schemes.len(),
                            limits::SCHEMES_MAX
                        ),
                    ));
                }
                Ok(vec![BudgetEvent::Varied {
                    reason: reason.clone(),
                    overspend_shares: overspend_shares.clone(),
                    underspend_shares: underspend_shares.clone(),
                    add_schemes: add_schemes.clone(),
                }])
            }
            BudgetCommand::SettleRiskShare { period } => {
                self.check_not_settled(code)?;
                system.check_posting(self.year, *period, None)?;
                let overflow = |_| DomainError::overflow("variance_pence");
                let revenue_pledged = self.revenue_pledged_total().map_err(overflow)?;
                let revenue_spend = self.revenue_spend_total().map_err(overflow)?;
                let variance = revenue_spend
                    .checked_sub(revenue_pledged)
                    .map_err(overflow)?;
                let shares = if variance.is_positive() {
                    &self.overspend_shares
                } else {
                    &self.underspend_shares
                };
                let allocations = split_by_shares(variance, shares).map_err(overflow)?;
                Ok(vec![BudgetEvent::RiskShareSettled {
                    period: *period,
                    revenue_pledged,
                    revenue_spend,
                    variance,
                    shares: shares.clone(),
                    allocations,
                }])
            }
            BudgetCommand::Close { period } => {
                self.check_open_for_business(code)?;
                if !self.settled {
                    return Err(DomainError::rejected(
                        Rule::BudgetSettled,
                        format!(
                            "budget {code} cannot close before its risk share is settled; settle it first"
                        ),
                    ));
                }
                system.check_open_from(self.year, *period, "period")?;
                Ok(vec![BudgetEvent::Closed { period: *period }])
            }
        }
    }

    /// Folds one event into an existing budget; computes every new value before changing
    /// anything, so a refused event leaves the state as it was.
    fn apply(&mut self, event: &BudgetEvent) -> Result<(), String> {
        let overflow = |_| "amounts overflow".to_string();
        match event {
            BudgetEvent::Established { .. } => Err("the budget already exists".to_string()),
            BudgetEvent::Pledged {
                partner,
                amount,
                ring_fenced_scheme,
            } => {
                let pledges = if ring_fenced_scheme.is_some() {
                    &mut self.ring_fenced_pledged
                } else {
                    &mut self.revenue_pledged
                };
                add_to(pledges, *partner, *amount).map_err(overflow)
            }
            BudgetEvent::ContributionPaid {
                partner, amount, ..
            } => add_to(&mut self.paid, *partner, *amount).map_err(overflow),
            BudgetEvent::SpendRecorded { scheme, amount, .. } => {
                if !self.schemes.contains_key(scheme) {
                    return Err(format!("no scheme {scheme}"));
                }
                add_to(&mut self.spend, scheme.clone(), *amount).map_err(overflow)
            }
            BudgetEvent::Varied {
                overspend_shares,
                underspend_shares,
                add_schemes,
                ..
            } => {
                if let Some(shares) = overspend_shares {
                    self.overspend_shares = shares.clone();
                }
                if let Some(shares) = underspend_shares {
                    self.underspend_shares = shares.clone();
                }
                for scheme in add_schemes {
                    self.schemes.insert(scheme.scheme.clone(), scheme.clone());
                }
                Ok(())
            }
            BudgetEvent::RiskShareSettled { .. } => {
                if self.settled {
                    return Err("the risk share is already settled".to_string());
                }
                self.settled = true;
                Ok(())
            }
            BudgetEvent::Closed { .. } => {
                self.closed = true;
                Ok(())
            }
        }
    }
}

/// Adds `amount` to the running total under `key`, or leaves the map as it was on overflow.
pub(crate) fn add_to<K: Ord>(
    totals: &mut BTreeMap<K, Pence>,
    key: K,
    amount: Pence,
) -> Result<(), crate::money::MoneyError> {
    let total = totals
        .get(&key)
        .copied()
        .unwrap_or_default()
        .checked_add(amount)?;
    totals.insert(key, total);
    Ok(())
}

/// Splits `amount` by `shares` (largest remainder): the parts sum exactly to `amount`.
pub fn split_by_shares(
    amount: Pence,
    shares: &[Share],
) -> Result<Vec<Allocation>, crate::money::MoneyError> {
    let weights: Vec<u64> = shares.iter().map(|s| u64::from(s.share.get())).collect();
    let parts = amount.split(&weights)?;
    Ok(shares
        .iter()
        .zip(parts)
        .map(|(share, amount)| Allocation {
            member: share.member,
            amount,
        })
        .collect())
}

/// A set of shares names only partners, each at most once, each at most 100.00%, and sums to
/// exactly 100.00%.
fn check_shares(
    system: &SystemState,
    field: &str,
    shares: &[Share],
    partners: &[MemberCode],
) -> Result<(), DomainError> {
    limits::list(field, shares.len(), limits::MEMBERS_MAX)?;
    let mut seen = BTreeSet::new();
    for (i, share) in shares.iter().enumerate() {
        if !share.share.is_share() {
            return Err(DomainError::invalid(
                format!("{field}[{i}].share_bp"),
                format!("{} is more than 100.00%", share.share),
            ));
        }
        system.member(&share.member)?;
        if !partners.contains(&share.member) {
            return Err(DomainError::rejected(
                Rule::NotAPartner,
                format!(
                    "{field}[{i}].member: {} is not a partner of the budget",
                    share.member
                ),
            ));
        }
        if !seen.insert(&share.member) {
            return Err(DomainError::invalid(
                format!("{field}[{i}].member"),
                format!("{} is named more than once", share.member),
            ));
        }
    }
    let total = BasisPoints::checked_sum(shares.iter().map(|s| s.share));
    if total != Some(BasisPoints::WHOLE) {
        let total = total.map_or_else(|| "more than 100.00%".to_string(), |t| t.to_string());
        return Err(DomainError::rejected(
            Rule::SharesMustSumToWhole,
            format!("{field} sum to {total}, not 100.00%"),
        ));
    }
    Ok(())
}

/// Scheme codes are unique within a list.
fn check_schemes(field: &str, schemes: &[Scheme]) -> Result<(), DomainError> {
    let mut seen = BTreeSet::new();
    for (i, scheme) in schemes.iter().enumerate() {
        if !seen.insert(&scheme.scheme) {
            return Err(DomainError::invalid(
                format!("{field}[{i}].scheme"),
                format!("{} is named more than once", scheme.scheme),
            ));
        }
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
fn decide_establish(
    system: &SystemState,
    name: &Text,
    host: &MemberCode,
    year: FinancialYear,
    partners: &[MemberCode],
    schemes: &[Scheme],
    overspend_shares: &[Share],
    underspend_shares: &[Share],
) -> Result<Vec<BudgetEvent>, DomainError> {
    let first_year = system.establishment()?.first_year;
    if year < first_year {
        return Err(DomainError::invalid(
            "year",
            format!("{year} is before the system's first year {first_year}"),
        ));
    }
    if partners.is_empty() {
        return Err(DomainError::invalid(
            "partners",
            "a pooled budget needs at least one partner",
        ));
    }
    limits::list("partners", partners.len(), limits::MEMBERS_MAX)?;
    limits::list("schemes", schemes.len(), limits::SCHEMES_MAX)?;
    let mut seen = BTreeSet::new();
    for (i, partner) in partners.iter().enumerate() {
        if !seen.insert(partner) {
            return Err(DomainError::invalid(
                format!("partners[{i}]"),
                format!("{partner} is named more than once"),
            ));
        }
        system.member(partner)?;
    }
    if !partners.contains(host) {
        return Err(DomainError::invalid(
            "host",
            format!("the host {host} must be one of the partners"),
        ));
    }
    check_schemes("schemes", schemes)?;
    check_shares(system, "overspend_shares", overspend_shares, partners)?;
    check_shares(system, "underspend_shares", underspend_shares, partners)?;
    Ok(vec![BudgetEvent::Established {
        name: name.clone(),
        host: *host,
        year,
        partners: partners.to_vec(),
        schemes: schemes.to_vec(),
        overspend_shares: overspend_shares.to_vec(),
        underspend_shares: underspend_shares.to_vec(),
    }])
}

/// Decides a command for the budget `code` (`state` is `None` until it is created).
pub fn decide(
    system: &SystemState,
    code: &Code,
    state: Option<&BudgetState>,
    command: &BudgetCommand,
) -> Result<Vec<BudgetEvent>, DomainError> {
    match (state, command) {
        (Some(state), command) => state.decide(system, code, command),
        (
            None,
            BudgetCommand::Establish {
                name,
                host,
                year,
                partners,
                schemes,
                overspend_shares,
                underspend_shares,
            },
        ) => decide_establish(
            system,
            name,
            host,
            *year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        ),
        (None, _) => Err(DomainError::NotFound {
            what: "budget",
            id: code.to_string(),
        }),
    }
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(entry: Entry<'_, Code, BudgetState>, event: &BudgetEvent) -> Result<(), String> {
    match (entry, event) {
        (
            Entry::Vacant(vacant),
            BudgetEvent::Established {
                name,
                host,
                year,
                partners,
                schemes,
                overspend_shares,
                underspend_shares,
            },
        ) => {
            vacant.insert(BudgetState {
                name: name.clone(),
                host: *host,
                year: *year,
                partners: partners.clone(),
                schemes: schemes
                    .iter()
                    .map(|s| (s.scheme.clone(), s.clone()))
                    .collect(),
                overspend_shares: overspend_shares.clone(),
                underspend_shares: underspend_shares.clone(),
                revenue_pledged: BTreeMap::new(),
                ring_fenced_pledged: BTreeMap::new(),
                paid: BTreeMap::new(),
                spend: BTreeMap::new(),
                settled: false,
                closed: false,
            });
            Ok(())
        }
        (Entry::Vacant(_), _) => Err("the budget does not exist".to_string()),
        (Entry::Occupied(mut occupied), event) => occupied.get_mut().apply(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::{Command, Event};

    fn ev(event: BudgetEvent) -> Event {
        Event::Budget {
            budget: code("BCF"),
            event,
        }
    }

    fn when(command: BudgetCommand) -> Command {
        Command::Budget {
            budget: code("BCF"),
            command,
        }
    }

    fn share(code: &str, points: u32) -> Share {
        Share {
            member: member(code),
            share: bp(points),
        }
    }

    fn scheme(code_: &str, ring_fenced: bool) -> Scheme {
        Scheme {
            scheme: code(code_),
            name: text(code_),
            ring_fenced,
        }
    }

    /// BRIEF §8: hosted by KCC, KCCG and KCC partners, overspend 50:50, underspend 70:30.
    fn establish() -> BudgetCommand {
        BudgetCommand::Establish {
            name: text("Kingsmere Better Care Fund"),
            host: member("KCC"),
            year: fy(),
            partners: vec![member("KCC"), member("KCCG")],
            schemes: vec![
                scheme("CARE", false),
                scheme("REABLE", false),
                scheme("DFG", true),
            ],
            overspend_shares: vec![share("KCCG", 5_000), share("KCC", 5_000)],
            underspend_shares: vec![share("KCCG", 7_000), share("KCC", 3_000)],
        }
    }

    fn with_establish(f: impl FnOnce(&mut BudgetCommand)) -> Command {
        let mut command = establish();
        f(&mut command);
        when(command)
    }

    fn bcf_established() -> Event {
        let BudgetCommand::Establish {
            name,
            host,
            year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        } = establish()
        else {
            unreachable!()
        };
        ev(BudgetEvent::Established {
            name,
            host,
            year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        })
    }

    fn pledged(partner: &str, amount: Pence, ring_fenced: Option<&str>) -> Event {
        ev(BudgetEvent::Pledged {
            partner: member(partner),
            amount,
            ring_fenced_scheme: ring_fenced.map(code),
        })
    }

    fn pledge(partner: &str, amount: Pence, ring_fenced: Option<&str>) -> Command {
        when(BudgetCommand::Pledge {
            partner: member(partner),
            amount,
            ring_fenced_scheme: ring_fenced.map(code),
        })
    }

    fn paid(partner: &str, p: Period, amount: Pence) -> Event {
        ev(BudgetEvent::ContributionPaid {
            partner: member(partner),
            period: p,
            amount,
        })
    }

    fn pay(partner: &str, p: Period, amount: Pence) -> Command {
        when(BudgetCommand::PayContribution {
            partner: member(partner),
            period: p,
            amount,
        })
    }

    fn spent(scheme_: &str, p: Period, amount: Pence, corrects: Option<Period>) -> Event {
        ev(BudgetEvent::SpendRecorded {
            scheme: code(scheme_),
            period: p,
            amount,
            corrects,
        })
    }

    fn spend(scheme_: &str, p: Period, amount: Pence, corrects: Option<Period>) -> Command {
        when(BudgetCommand::RecordSpend {
            scheme: code(scheme_),
            period: p,
            amount,
            corrects,
        })
    }

    fn settle(p: Period) -> Command {
        when(BudgetCommand::SettleRiskShare { period: p })
    }

    fn vary(
        overspend_shares: Option<Vec<Share>>,
        underspend_shares: Option<Vec<Share>>,
        add_schemes: Vec<Scheme>,
    ) -> BudgetCommand {
        BudgetCommand::Vary {
            reason: text("annual review"),
            overspend_shares,
            underspend_shares,
            add_schemes,
        }
    }

    /// The BCF established with BRIEF §8's pledges: KCCG 28,000,000 revenue; KCC 9,600,000
    /// revenue and 2,400,000 to the ring-fenced DFG.
    fn bcf() -> Vec<Event> {
        history([
            demo_system(),
            vec![
                bcf_established(),
                pledged("KCCG", pounds(28_000_000), None),
                pledged("KCC", pounds(9_600_000), None),
                pledged("KCC", pounds(2_400_000), Some("DFG")),
            ],
        ])
    }

    /// ... and a year's spend: 38,200,000 on revenue schemes and 2,400,000 on the DFG.
    fn bcf_spent(revenue: Pence) -> Vec<Event> {
        history([
            bcf(),
            vec![
                spent("CARE", period(2018, 6), pounds(20_000_000), None),
                spent(
                    "REABLE",
                    period(2018, 12),
                    revenue.checked_sub(pounds(20_000_000)).expect("in range"),
                    None,
                ),
                spent("DFG", period(2018, 9), pounds(2_400_000), None),
            ],
        ])
    }

    fn settled(variance: Pence, shares: Vec<Share>, parts: [Pence; 2]) -> Event {
        let allocations = shares
            .iter()
            .zip(parts)
            .map(|(s, amount)| Allocation {
                member: s.member,
                amount,
            })
            .collect();
        ev(BudgetEvent::RiskShareSettled {
            period: period(2018, 12),
            revenue_pledged: pounds(37_600_000),
            revenue_spend: pounds(37_600_000).checked_add(variance).expect("in range"),
            variance,
            shares,
            allocations,
        })
    }

    fn bcf_settled() -> Vec<Event> {
        history([
            bcf_spent(pounds(38_200_000)),
            vec![settled(
                pounds(600_000),
                vec![share("KCCG", 5_000), share("KCC", 5_000)],
                [pounds(300_000), pounds(300_000)],
            )],
        ])
    }

    #[test]
    fn a_budget_is_established_once_by_admitted_partners_with_whole_shares() {
        run(vec![
            Case {
                name: "the BCF",
                given: demo_system(),
                when: when(establish()),
                then: Then::Events(vec![bcf_established()]),
            },
            Case {
                name: "established twice",
                given: bcf(),
                when: when(establish()),
                then: Then::AlreadyExists("budget"),
            },
            Case {
                name: "another command for a budget that does not exist",
                given: demo_system(),
                when: pledge("KCCG", pounds(1), None),
                then: Then::NotFound("budget"),
            },
            Case {
                name: "before the system is established",
                given: vec![],
                when: when(establish()),
                then: Then::Rejected(Rule::SystemNotEstablished),
            },
            Case {
                name: "a year before the system's first",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { year: y, .. } = c {
                        *y = year(2017);
                    }
                }),
                then: Then::Invalid("year"),
            },
            Case {
                name: "a partner that has not been admitted",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { partners, .. } = c {
                        partners.push(member("RXX"));
                    }
                }),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "no partners",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { partners, .. } = c {
                        partners.clear();
                    }
                }),
                then: Then::Invalid("partners"),
            },
            Case {
                name: "a partner named twice",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { partners, .. } = c {
                        partners.push(member("KCC"));
                    }
                }),
                then: Then::Invalid("partners[2]"),
            },
            Case {
                name: "a host who is not a partner",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { host, .. } = c {
                        *host = member("KHFT");
                    }
                }),
                then: Then::Invalid("host"),
            },
            Case {
                name: "a scheme named twice",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish { schemes, .. } = c {
                        schemes.push(scheme("CARE", true));
                    }
                }),
                then: Then::Invalid("schemes[3].scheme"),
            },
            Case {
                name: "overspend shares summing to 90%",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        overspend_shares, ..
                    } = c
                    {
                        *overspend_shares = vec![share("KCCG", 5_000), share("KCC", 4_000)];
                    }
                }),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "underspend shares summing to 110%",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        underspend_shares, ..
                    } = c
                    {
                        *underspend_shares = vec![share("KCCG", 8_000), share("KCC", 3_000)];
                    }
                }),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "no underspend shares",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        underspend_shares, ..
                    } = c
                    {
                        underspend_shares.clear();
                    }
                }),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "a share above 100%",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        overspend_shares, ..
                    } = c
                    {
                        *overspend_shares = vec![share("KCCG", 0), share("KCC", 10_001)];
                    }
                }),
                then: Then::Invalid("overspend_shares[1].share_bp"),
            },
            Case {
                name: "two whole shares sum to 200%",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        overspend_shares, ..
                    } = c
                    {
                        *overspend_shares = vec![share("KCCG", 10_000), share("KCC", 10_000)];
                    }
                }),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "a share for an admitted member who is not a partner",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        overspend_shares, ..
                    } = c
                    {
                        *overspend_shares = vec![share("KCCG", 5_000), share("KHFT", 5_000)];
                    }
                }),
                then: Then::Rejected(Rule::NotAPartner),
            },
            Case {
                name: "a partner's share named twice",
                given: demo_system(),
                when: with_establish(|c| {
                    if let BudgetCommand::Establish {
                        underspend_shares, ..
                    } = c
                    {
                        *underspend_shares = vec![share("KCC", 5_000), share("KCC", 5_000)];
                    }
                }),
                then: Then::Invalid("underspend_shares[1].member"),
            },
        ]);
    }

    #[test]
    fn partners_pledge_more_than_zero_to_the_pool_or_a_ring_fenced_scheme() {
        run(vec![
            Case {
                name: "KCCG pledges 28,000,000 to the revenue pool",
                given: history([demo_system(), vec![bcf_established()]]),
                when: pledge("KCCG", pounds(28_000_000), None),
                then: Then::Events(vec![pledged("KCCG", pounds(28_000_000), None)]),
            },
            Case {
                name: "KCC pledges 2,400,000 to the ring-fenced DFG",
                given: history([demo_system(), vec![bcf_established()]]),
                when: pledge("KCC", pounds(2_400_000), Some("DFG")),
                then: Then::Events(vec![pledged("KCC", pounds(2_400_000), Some("DFG"))]),
            },
            Case {
                name: "a negative pledge",
                given: bcf(),
                when: pledge("KCCG", pounds(-1), None),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a zero pledge",
                given: bcf(),
                when: pledge("KCCG", Pence::ZERO, None),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a pledge by an admitted member who is not a partner",
                given: bcf(),
                when: pledge("KHFT", pounds(1), None),
                then: Then::Rejected(Rule::NotAPartner),
            },
            Case {
                name: "a pledge by a member never admitted",
                given: bcf(),
                when: pledge("RXX", pounds(1), None),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a pledge to a scheme that is not ring-fenced",
                given: bcf(),
                when: pledge("KCC", pounds(1), Some("CARE")),
                then: Then::Invalid("ring_fenced_scheme"),
            },
            Case {
                name: "a pledge to a scheme that does not exist",
                given: bcf(),
                when: pledge("KCC", pounds(1), Some("NOPE")),
                then: Then::NotFound("scheme"),
            },
            Case {
                name: "pledges that would total more than the ceiling (even by overflowing)",
                given: history([
                    demo_system(),
                    vec![bcf_established(), pledged("KCCG", Pence::MAX, None)],
                ]),
                when: pledge("KCC", Pence::new(1), Some("DFG")),
                then: Then::Rejected(Rule::LimitReached),
            },
            Case {
                name: "no pledge after settlement",
                given: bcf_settled(),
                when: pledge("KCCG", pounds(1), None),
                then: Then::Rejected(Rule::BudgetSettled),
            },
        ]);
    }

    #[test]
    fn partners_pay_in_open_periods_of_the_year_and_never_more_than_they_pledged() {
        let q1 = period(2018, 1);
        run(vec![
            Case {
                name: "KCCG pays its first quarter, 7,000,000, in advance",
                given: bcf(),
                when: pay("KCCG", q1, pounds(7_000_000)),
                then: Then::Events(vec![paid("KCCG", q1, pounds(7_000_000))]),
            },
            Case {
                name: "KCC can pay its ring-fenced pledge too: 12,000,000 in all",
                given: history([bcf(), vec![paid("KCC", q1, pounds(9_000_000))]]),
                when: pay("KCC", period(2018, 10), pounds(3_000_000)),
                then: Then::Events(vec![paid("KCC", period(2018, 10), pounds(3_000_000))]),
            },
            Case {
                name: "but not a penny more",
                given: history([bcf(), vec![paid("KCC", q1, pounds(12_000_000))]]),
                when: pay("KCC", period(2018, 10), Pence::new(1)),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "a payment over the ceiling",
                given: history([bcf(), vec![paid("KCC", q1, pounds(1))]]),
                when: pay("KCC", period(2018, 10), Pence::MAX),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a zero payment",
                given: bcf(),
                when: pay("KCCG", q1, Pence::ZERO),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a payment by a non-partner",
                given: bcf(),
                when: pay("AVT", q1, pounds(1)),
                then: Then::Rejected(Rule::NotAPartner),
            },
            Case {
                name: "a payment in a closed period",
                given: history([bcf(), closed_through(q1)]),
                when: pay("KCCG", q1, pounds(1)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "a payment in the next year",
                given: bcf(),
                when: pay("KCCG", period(2019, 1), pounds(1)),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
            Case {
                name: "a payment up to the pledge after settlement",
                given: bcf_settled(),
                when: pay("KCCG", period(2018, 12), pounds(28_000_000)),
                then: Then::Events(vec![paid("KCCG", period(2018, 12), pounds(28_000_000))]),
            },
        ]);
    }

    #[test]
    fn spend_is_on_a_scheme_in_an_open_period_of_the_year_or_a_correction_naming_it() {
        let m5 = period(2018, 5);
        run(vec![
            Case {
                name: "spend on a revenue scheme",
                given: bcf(),
                when: spend("CARE", m5, pounds(3_000_000), None),
                then: Then::Events(vec![spent("CARE", m5, pounds(3_000_000), None)]),
            },
            Case {
                name: "spend on a scheme that does not exist",
                given: bcf(),
                when: spend("NOPE", m5, pounds(1), None),
                then: Then::NotFound("scheme"),
            },
            Case {
                name: "negative spend",
                given: bcf(),
                when: spend("CARE", m5, pounds(-1), None),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "spend in a closed period",
                given: history([bcf(), closed_through(m5)]),
                when: spend("CARE", m5, pounds(1), None),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "a correction in an open period naming the closed period",
                given: history([bcf(), closed_through(m5)]),
                when: spend("CARE", period(2018, 6), pounds(1), Some(m5)),
                then: Then::Events(vec![spent("CARE", period(2018, 6), pounds(1), Some(m5))]),
            },
            Case {
                name: "a correction after the year has closed, naming the year",
                given: history([bcf(), closed_through(period(2018, 12))]),
                when: spend("CARE", period(2019, 2), pounds(1), Some(period(2018, 12))),
                then: Then::Events(vec![spent(
                    "CARE",
                    period(2019, 2),
                    pounds(1),
                    Some(period(2018, 12)),
                )]),
            },
            Case {
                name: "a correction naming a period of another year",
                given: bcf(),
                when: spend("CARE", period(2019, 2), pounds(1), Some(period(2019, 1))),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
            Case {
                name: "a correction naming a later period",
                given: bcf(),
                when: spend("CARE", m5, pounds(1), Some(period(2018, 7))),
                then: Then::Invalid("corrects"),
            },
            Case {
                name: "spend in the next year that corrects nothing",
                given: bcf(),
                when: spend("CARE", period(2019, 1), pounds(1), None),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
            Case {
                name: "spend before the system's first year",
                given: bcf(),
                when: spend("CARE", period(2017, 12), pounds(1), None),
                then: Then::Invalid("period"),
            },
            Case {
                name: "spend that would total more than the ceiling (even by overflowing)",
                given: history([bcf(), vec![spent("DFG", m5, Pence::MAX, None)]]),
                when: spend("CARE", m5, Pence::new(1), None),
                then: Then::Rejected(Rule::LimitReached),
            },
            Case {
                name: "no spend after settlement",
                given: bcf_settled(),
                when: spend("CARE", period(2018, 12), pounds(1), None),
                then: Then::Rejected(Rule::BudgetSettled),
            },
        ]);
    }

    #[test]
    fn a_variation_replaces_shares_or_adds_schemes() {
        let sixty_forty = vec![share("KCCG", 6_000), share("KCC", 4_000)];
        let varied = |o: Option<Vec<Share>>, u: Option<Vec<Share>>, s: Vec<Scheme>| {
            let BudgetCommand::Vary {
                reason,
                overspend_shares,
                underspend_shares,
                add_schemes,
            } = vary(o, u, s)
            else {
                unreachable!()
            };
            ev(BudgetEvent::Varied {
                reason,
                overspend_shares,
                underspend_shares,
                add_schemes,
            })
        };
        run(vec![
            Case {
                name: "replace the overspend shares",
                given: bcf(),
                when: when(vary(Some(sixty_forty.clone()), None, vec![])),
                then: Then::Events(vec![varied(Some(sixty_forty.clone()), None, vec![])]),
            },
            Case {
                name: "add a scheme",
                given: bcf(),
                when: when(vary(None, None, vec![scheme("HOME", false)])),
                then: Then::Events(vec![varied(None, None, vec![scheme("HOME", false)])]),
            },
            Case {
                name: "a variation that changes nothing",
                given: bcf(),
                when: when(vary(None, None, vec![])),
                then: Then::Invalid("add_schemes"),
            },
            Case {
                name: "shares that do not sum to 100%",
                given: bcf(),
                when: when(vary(None, Some(vec![share("KCCG", 7_000)]), vec![])),
                then: Then::Rejected(Rule::SharesMustSumToWhole),
            },
            Case {
                name: "shares naming a non-partner",
                given: bcf(),
                when: when(vary(
                    Some(vec![share("KCCG", 5_000), share("AVT", 5_000)]),
                    None,
                    vec![],
                )),
                then: Then::Rejected(Rule::NotAPartner),
            },
            Case {
                name: "a partner named twice in the new shares",
                given: bcf(),
                when: when(vary(
                    Some(vec![share("KCC", 5_000), share("KCC", 5_000)]),
                    None,
                    vec![],
                )),
                then: Then::Invalid("overspend_shares.shares[1].member"),
            },
            Case {
                name: "adding a scheme the budget has",
                given: bcf(),
                when: when(vary(None, None, vec![scheme("DFG", true)])),
                then: Then::AlreadyExists("scheme"),
            },
            Case {
                name: "adding a scheme twice",
                given: bcf(),
                when: when(vary(
                    None,
                    None,
                    vec![scheme("HOME", false), scheme("HOME", true)],
                )),
                then: Then::Invalid("add_schemes[1].scheme"),
            },
            Case {
                name: "no variation after settlement",
                given: bcf_settled(),
                when: when(vary(Some(sixty_forty.clone()), None, vec![])),
                then: Then::Rejected(Rule::BudgetSettled),
            },
            Case {
                name: "the varied shares are the ones settled",
                given: history([
                    bcf_spent(pounds(38_200_000)),
                    vec![varied(Some(sixty_forty.clone()), None, vec![])],
                ]),
                when: settle(period(2018, 12)),
                then: Then::Events(vec![settled(
                    pounds(600_000),
                    sixty_forty.clone(),
                    [pounds(360_000), pounds(240_000)],
                )]),
            },
        ]);
    }

    #[test]
    fn the_risk_share_is_settled_once_splitting_the_revenue_variance_exactly() {
        let m12 = period(2018, 12);
        let fifty_fifty = vec![share("KCCG", 5_000), share("KCC", 5_000)];
        let seventy_thirty = vec![share("KCCG", 7_000), share("KCC", 3_000)];
        run(vec![
            Case {
                name: "BRIEF: revenue spend 38,200,000 against 37,600,000, 300,000 each",
                given: bcf_spent(pounds(38_200_000)),
                when: settle(m12),
                then: Then::Events(vec![settled(
                    pounds(600_000),
                    fifty_fifty.clone(),
                    [pounds(300_000), pounds(300_000)],
                )]),
            },
            Case {
                name: "an underspend of 600,000 is returned 70:30",
                given: bcf_spent(pounds(37_000_000)),
                when: settle(m12),
                then: Then::Events(vec![settled(
                    pounds(-600_000),
                    seventy_thirty.clone(),
                    [pounds(-420_000), pounds(-180_000)],
                )]),
            },
            Case {
                name: "no variance: zero parts under the underspend shares",
                given: bcf_spent(pounds(37_600_000)),
                when: settle(m12),
                then: Then::Events(vec![settled(
                    Pence::ZERO,
                    seventy_thirty.clone(),
                    [Pence::ZERO, Pence::ZERO],
                )]),
            },
            Case {
                name: "an odd penny goes to the earlier share",
                given: history([
                    bcf_spent(pounds(37_600_000)),
                    vec![spent("CARE", m12, Pence::new(1), None)],
                ]),
                when: settle(m12),
                then: Then::Events(vec![settled(
                    Pence::new(1),
                    fifty_fifty.clone(),
                    [Pence::new(1), Pence::ZERO],
                )]),
            },
            Case {
                name: "settled twice",
                given: bcf_settled(),
                when: settle(m12),
                then: Then::Rejected(Rule::BudgetSettled),
            },
            Case {
                name: "settled in a closed period",
                given: history([bcf_spent(pounds(38_200_000)), closed_through(m12)]),
                when: settle(m12),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "settled outside the budget's year",
                given: bcf_spent(pounds(38_200_000)),
                when: settle(period(2019, 1)),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
        ]);
    }

    #[test]
    fn a_budget_closes_after_settlement_and_then_takes_nothing() {
        let closed = history([
            bcf_settled(),
            vec![ev(BudgetEvent::Closed {
                period: period(2019, 1),
            })],
        ]);
        run(vec![
            Case {
                name: "close before settlement",
                given: bcf_spent(pounds(38_200_000)),
                when: when(BudgetCommand::Close {
                    period: period(2018, 12),
                }),
                then: Then::Rejected(Rule::BudgetSettled),
            },
            Case {
                name: "close after settlement, in the next year",
                given: bcf_settled(),
                when: when(BudgetCommand::Close {
                    period: period(2019, 1),
                }),
                then: Then::Events(vec![ev(BudgetEvent::Closed {
                    period: period(2019, 1),
                })]),
            },
            Case {
                name: "close in a closed period",
                given: history([bcf_settled(), closed_through(period(2018, 12))]),
                when: when(BudgetCommand::Close {
                    period: period(2018, 12),
                }),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "close twice",
                given: closed.clone(),
                when: when(BudgetCommand::Close {
                    period: period(2019, 1),
                }),
                then: Then::Rejected(Rule::BudgetClosed),
            },
            Case {
                name: "a payment to a closed budget",
                given: closed.clone(),
                when: pay("KCCG", period(2018, 12), pounds(1)),
                then: Then::Rejected(Rule::BudgetClosed),
            },
            Case {
                name: "a pledge to a closed budget",
                given: closed.clone(),
                when: pledge("KCCG", pounds(1), None),
                then: Then::Rejected(Rule::BudgetClosed),
            },
            Case {
                name: "a variation of a closed budget",
                given: closed.clone(),
                when: when(vary(None, None, vec![scheme("HOME", false)])),
                then: Then::Rejected(Rule::BudgetClosed),
            },
        ]);
    }

    #[test]
    fn apply_refuses_events_that_do_not_fit() {
        let mut budgets = BTreeMap::new();
        let pledge = BudgetEvent::Pledged {
            partner: member("KCCG"),
            amount: pounds(1),
            ring_fenced_scheme: None,
        };
        assert!(apply(budgets.entry(code("BCF")), &pledge).is_err());
        let Event::Budget { event, .. } = bcf_established() else {
            unreachable!()
        };
        assert_eq!(apply(budgets.entry(code("BCF")), &event), Ok(()));
        assert!(apply(budgets.entry(code("BCF")), &event).is_err());
        let huge = BudgetEvent::Pledged {
            partner: member("KCCG"),
            amount: Pence::MAX,
            ring_fenced_scheme: None,
        };
        assert_eq!(apply(budgets.entry(code("BCF")), &huge), Ok(()));
        let before = budgets.clone();
        assert!(apply(budgets.entry(code("BCF")), &pledge).is_err());
        assert_eq!(budgets, before, "a refused event changes nothing");
    }
}
