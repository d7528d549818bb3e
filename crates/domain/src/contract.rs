//! The *contract* family: an agreement between a commissioner and a provider for one year,
//! with its payment model, variations, activity, invoices, payments, disputes and termination.
//! One stream per contract (`contract/<code>`).
//!
//! Rules:
//! - agreed once, by code, between an admitted commissioner (kind `Commissioner`) and an
//!   admitted provider, for a year not before the system's first; amounts in the model are
//!   more than zero (shares and rates at most 100.00%, and at least one unit planned where the
//!   model plans units); the annual value must not overflow;
//! - the annual value ([`PaymentModel::annual_value`]) is: block, the annual sum; activity at
//!   tariff, planned units × unit price; aligned payment, the fixed element (which pays for the
//!   planned activity; activity away from plan moves the value at the marginal rate);
//!   capitation, per head × population; CQUIN, base × rate;
//! - every posting (variation, activity, invoice, payment, dispute, resolution, CQUIN
//!   reconciliation, adjustment, termination) is in an open period; it is in the contract's
//!   year unless it is a correction (`corrects`, on activity, invoices and adjustments), which
//!   is posted in a later open period and names the period of the contract's year it corrects;
//!   payments and dispute resolutions settle cash, which often happens after the year closes,
//!   so they may be posted in any open period from the contract's year on;
//! - a terminated contract takes only payments and dispute resolutions;
//! - activity is a count for one month (`for_period` = `corrects` or `period`); a later count
//!   for the same month replaces the earlier one and the event records the change in value:
//!   activity × tariff is (units − planned units for the month) × unit price; aligned payment
//!   is (units − planned units for the month) × unit price × marginal rate (rounded half away
//!   from zero); a replacement records the value of the new count less the value of the old
//!   one, both at the model in force when it is recorded; other models record activity with
//!   no change in value. Planned units are phased evenly over twelve months (largest
//!   remainder: the first `planned % 12` months get one more);
//! - an invoice has a new code and an amount more than zero; a payment is against an existing
//!   invoice, more than zero, and never more than the invoice's outstanding amount;
//! - a dispute has a new code, an amount more than zero and at most the invoice's amount when it
//!   names an invoice (which must exist); it is resolved once, with the amount the provider
//!   keeps (between zero and the disputed amount); the rest is written off the contract's
//!   value;
//! - CQUIN is reconciled once (a second reconciliation already exists), on a CQUIN contract,
//!   with the achievement (at most 100.00%):
//!   value = base × rate, earned = value × achievement, deduction = value − earned (each
//!   percentage rounded half away from zero);
//! - an adjustment is a signed, non-zero change to the contract's value with a reason;
//! - a variation replaces the payment model from a period of the contract's year, with a
//!   reason; the model's kind stays the same and follows the rules at agreement.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Rule};
use crate::ids::{Code, MemberCode, Text};
use crate::limits;
use crate::money::{BasisPoints, MoneyError, Pence};
use crate::period::{FinancialYear, Month, Period};
use crate::system::{SystemState, positive};

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
    /// `annual_value` is the model's value for the year ([`PaymentModel::annual_value`]; for
    /// aligned payment, the fixed element, which pays for the planned units).
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
    /// `value_change` is what this record changes the contract's value by. `previous_units` is
    /// the count this one replaces (0 if none); `planned_units` is the plan for `for_period`
    /// (0 for models that do not plan units).
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
    /// Named by disputes not yet resolved: withheld from payment until they are (the NHS
    /// Standard Contract's payment terms: the uncontested part is paid, the contested part
    /// waits for the dispute).
    pub disputed: Pence,
    /// Written off by resolved disputes: no longer owed.
    pub written_off: Pence,
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
    /// The annual value by month of the contract's year as the ledger phases it (see
    /// [`phase`], [`rephase`]): what a variation or termination changes month by month.
    pub phased: [Pence; 12],
}

/// Twelve even monthly parts of `amount` (largest remainder, earlier months first), as plans,
/// contract values and pledges are phased.
pub(crate) fn phase(amount: Pence) -> Result<[Pence; 12], MoneyError> {
    let parts = amount.split(&[1; 12])?;
    let mut months = [Pence::ZERO; 12];
    for (month, part) in months.iter_mut().zip(parts) {
        *month = part;
    }
    Ok(months)
}

/// The changes to a contract's phased value when a variation from `from` sets the annual
/// value to `annual_value`: the months of the contract's `year` before `from` keep what they
/// were phased; the rest share what is left evenly. If no month of the year is left, the
/// whole difference lands in `from`.
pub(crate) fn rephase(
    year: FinancialYear,
    phased: &[Pence; 12],
    from: Period,
    annual_value: Pence,
) -> Result<Vec<(Period, Pence)>, MoneyError> {
    let first_left = if from.year < year {
        0
    } else if from.year > year {
        12
    } else {
        from.month.index()
    };
    let (kept, left) = phased.split_at(first_left);
    let kept = Pence::checked_sum(kept.iter().copied())?;
    let remaining = annual_value.checked_sub(kept)?;
    if left.is_empty() {
        let phased = Pence::checked_sum(phased.iter().copied())?;
        return Ok(vec![(from, annual_value.checked_sub(phased)?)]);
    }
    let parts = remaining.split(&vec![1; left.len()])?;
    let mut changes = Vec::with_capacity(left.len());
    for ((month, old), new) in Month::all().skip(first_left).zip(left).zip(parts) {
        changes.push((year.period(month), new.checked_sub(*old)?));
    }
    Ok(changes)
}

/// Applies [`rephase`]'s changes to the phased months of `year` (a change outside it moves no
/// month).
pub(crate) fn apply_rephase(
    year: FinancialYear,
    phased: &mut [Pence; 12],
    changes: &[(Period, Pence)],
) {
    for (period, change) in changes {
        if period.year == year
            && let Some(month) = phased.get_mut(period.month.index())
        {
            *month = month.checked_add(*change).unwrap_or(*month);
        }
    }
}

/// What a termination in `period` takes off the phased value: each later month of `year`,
/// negated.
pub(crate) fn stopped_after(
    year: FinancialYear,
    phased: &[Pence; 12],
    period: Period,
) -> Vec<(Period, Pence)> {
    Month::all()
        .zip(phased)
        .map(|(month, amount)| (year.period(month), *amount))
        .filter(|(later, _)| *later > period)
        .map(|(later, amount)| (later, Pence::new(amount.get().saturating_neg())))
        .collect()
}

/// Twelve monthly amounts of `units`, M1 first, that sum to it: the first `units % 12` months
/// get one more (largest remainder with equal weights, ties to the earlier month).
pub fn phase_units(units: u64) -> [u64; 12] {
    let base = units / 12;
    let extra = units % 12;
    // `base` ≤ u64::MAX / 12, so adding one never overflows.
    std::array::from_fn(|i| base + u64::from(u64::try_from(i).is_ok_and(|i| i < extra)))
}

impl PaymentModel {
    /// The model's kind, as its proto field is named.
    pub const fn kind_name(&self) -> &'static str {
        match self {
            PaymentModel::Block { .. } => "block",
            PaymentModel::ActivityTariff { .. } => "activity_tariff",
            PaymentModel::AlignedPayment { .. } => "aligned_payment",
            PaymentModel::Capitation { .. } => "capitation",
            PaymentModel::Cquin { .. } => "cquin",
        }
    }

    /// The model's value for the year: block, the annual sum; activity at tariff, planned
    /// units × unit price; aligned payment, the fixed element (it pays for the planned units);
    /// capitation, per head × population; CQUIN, base × rate (rounded half away from zero).
    pub fn annual_value(&self) -> Result<Pence, MoneyError> {
        match *self {
            PaymentModel::Block { annual_value } => Ok(annual_value),
            PaymentModel::ActivityTariff {
                planned_units,
                unit_price,
            } => unit_price.checked_mul(count(planned_units)?),
            PaymentModel::AlignedPayment { fixed, .. } => Ok(fixed),
            PaymentModel::Capitation {
                per_head,
                population,
                ..
            } => per_head.checked_mul(count(population)?),
            PaymentModel::Cquin { base_value, rate } => base_value.checked_mul_bp(rate),
        }
    }

    /// Units planned for the year, for the models that plan units.
    pub const fn planned_units(&self) -> Option<u64> {
        match *self {
            PaymentModel::ActivityTariff { planned_units, .. }
            | PaymentModel::AlignedPayment { planned_units, .. } => Some(planned_units),
            _ => None,
        }
    }

    /// Units planned for one month (the year's plan phased evenly); 0 for models that do not
    /// plan units.
    pub fn planned_units_for(&self, month: Month) -> u64 {
        self.planned_units()
            .and_then(|units| phase_units(units).get(month.index()).copied())
            .unwrap_or(0)
    }

    /// What `units` of activity in `month` add to the contract's value, relative to plan
    /// (negative below plan): activity at tariff, (units − planned) × unit price; aligned
    /// payment, that × the marginal rate; other models, nothing.
    pub fn activity_value(&self, month: Month, units: u64) -> Result<Pence, MoneyError> {
        let away_from_plan = || {
            let difference = i128::from(units) - i128::from(self.planned_units_for(month));
            i64::try_from(difference).map_err(|_| MoneyError::Overflow)
        };
        match *self {
            PaymentModel::ActivityTariff { unit_price, .. } => {
                unit_price.checked_mul(away_from_plan()?)
            }
            PaymentModel::AlignedPayment {
                unit_price,
                marginal_rate,
                ..
            } => unit_price
                .checked_mul(away_from_plan()?)?
                .checked_mul_bp(marginal_rate),
            PaymentModel::Block { .. }
            | PaymentModel::Capitation { .. }
            | PaymentModel::Cquin { .. } => Ok(Pence::ZERO),
        }
    }

    /// The rules at agreement and variation: amounts more than zero, shares and rates at most
    /// 100.00%, at least one unit planned, and the planned units priced without overflow;
    /// returns the annual value. Field paths name the proto's oneof case, such as
    /// `model.aligned_payment.unit_price_pence`.
    fn check(&self) -> Result<Pence, DomainError> {
        let kind = self.kind_name();
        let field = |name: &str| format!("model.{kind}.{name}");
        let positive = |name: &str, amount: Pence| {
            positive(&field(name), amount)?;
            limits::amount(&field(name), amount)
        };
        let rate = |name: &str, rate: BasisPoints| {
            if rate.is_share() {
                Ok(())
            } else {
                Err(DomainError::invalid(
                    field(name),
                    format!("{rate} is more than 100.00%"),
                ))
            }
        };
        let planned = |units: u64, unit_price: Pence| {
            if units == 0 {
                return Err(DomainError::invalid(
                    field("planned_units"),
                    "plan at least one unit",
                ));
            }
            positive("unit_price_pence", unit_price)?;
            limits::units(&field("planned_units"), units)?;
            within_ceiling(&field("planned_units"), units, unit_price)
        };
        match *self {
            PaymentModel::Block { annual_value } => {
                positive("annual_value_pence", annual_value)?;
            }
            PaymentModel::ActivityTariff {
                planned_units,
                unit_price,
            } => {
                planned(planned_units, unit_price)?;
            }
            PaymentModel::AlignedPayment {
                fixed,
                planned_units,
                unit_price,
                marginal_rate,
            } => {
                positive("fixed_pence", fixed)?;
                planned(planned_units, unit_price)?;
                rate("marginal_rate_bp", marginal_rate)?;
            }
            PaymentModel::Capitation {
                per_head,
                population,
                gain_share,
                loss_share,
            } => {
                positive("per_head_pence", per_head)?;
                limits::units(&field("population"), population)?;
                within_ceiling(&field("population"), population, per_head)?;
                rate("gain_share_bp", gain_share)?;
                rate("loss_share_bp", loss_share)?;
            }
            PaymentModel::Cquin {
                base_value,
                rate: r,
            } => {
                positive("base_value_pence", base_value)?;
                rate("rate_bp", r)?;
            }
        }
        self.annual_value()
            .map_err(|_| DomainError::overflow(format!("model.{kind}")))
    }
}

/// Refuses `units` at `price` a year over [`limits::AMOUNT_CEILING`], naming `field`.
fn within_ceiling(field: &str, units: u64, price: Pence) -> Result<(), DomainError> {
    let value = count(units).and_then(|units| price.checked_mul(units));
    match value {
        Ok(value) if value <= limits::AMOUNT_CEILING => Ok(()),
        _ => Err(DomainError::invalid(
            field,
            format!(
                "{units} units at {price} is over the ceiling of {} on a contract's annual value",
                limits::AMOUNT_CEILING
            ),
        )),
    }
}

/// Why folding an event whose amounts overflow pence fails.
fn overflow(_: MoneyError) -> String {
    "amounts overflow".to_string()
}

/// A count of units as a multiplier of pence.
fn count(units: u64) -> Result<i64, MoneyError> {
    i64::try_from(units).map_err(|_| MoneyError::Overflow)
}

impl Invoice {
    /// What is left to pay: the amount less payments and write-offs.
    pub fn outstanding(&self) -> Pence {
        // Payments and write-offs never exceed the invoice (a dispute names at most what is
        // payable, and what it names is not payable until it is resolved), so this cannot
        // underflow.
        self.amount
            .checked_sub(self.paid)
            .and_then(|left| left.checked_sub(self.written_off))
            .unwrap_or(Pence::ZERO)
    }

    /// What may be paid now: what is outstanding and not disputed.
    pub fn payable(&self) -> Pence {
        self.outstanding()
            .checked_sub(self.disputed)
            .unwrap_or(Pence::ZERO)
    }
}

impl ContractState {
    fn check_live(&self, code: &Code) -> Result<(), DomainError> {
        if self.terminated {
            return Err(DomainError::rejected(
                Rule::ContractTerminated,
                format!(
                    "contract {code} is terminated; it takes only payments and dispute resolutions"
                ),
            ));
        }
        Ok(())
    }

    fn decide(
        &self,
        system: &SystemState,
        code: &Code,
        command: &ContractCommand,
    ) -> Result<Vec<ContractEvent>, DomainError> {
        match command {
            ContractCommand::Agree { .. } => Err(DomainError::AlreadyExists {
                what: "contract",
                id: code.to_string(),
            }),
            ContractCommand::Vary {
                period,
                reason,
                model,
            } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, None)?;
                if std::mem::discriminant(model) != std::mem::discriminant(&self.model) {
                    return Err(DomainError::rejected(
                        Rule::WrongPaymentModel,
                        format!(
                            "contract {code} pays by {}; a variation cannot change it to {}",
                            self.model.kind_name(),
                            model.kind_name()
                        ),
                    ));
                }
                let annual_value_after = model.check()?;
                Ok(vec![ContractEvent::Varied {
                    period: *period,
                    reason: reason.clone(),
                    model: model.clone(),
                    annual_value_before: self.annual_value,
                    annual_value_after,
                }])
            }
            ContractCommand::RecordActivity {
                period,
                units,
                corrects,
            } => {
                self.check_live(code)?;
                limits::units("units", *units)?;
                let for_period = system.check_posting(self.year, *period, *corrects)?;
                let overflow = |_| DomainError::overflow("units");
                let previous = self.activity.get(&for_period).copied();
                let over_ceiling = || {
                    DomainError::invalid(
                        "units",
                        format!(
                            "{units} units away from the plan for {for_period} are worth more than \
                             the ceiling of {} on any one amount",
                            limits::AMOUNT_CEILING
                        ),
                    )
                };
                let value = self
                    .model
                    .activity_value(for_period.month, *units)
                    .map_err(|_| over_ceiling())?;
                limits::amount("units", value).map_err(|_| over_ceiling())?;
                let previous_value = match previous {
                    Some(previous) => self
                        .model
                        .activity_value(for_period.month, previous)
                        .map_err(overflow)?,
                    None => Pence::ZERO,
                };
                let value_change = value.checked_sub(previous_value).map_err(overflow)?;
                Ok(vec![ContractEvent::ActivityRecorded {
                    period: *period,
                    for_period,
                    units: *units,
                    previous_units: previous.unwrap_or(0),
                    planned_units: self.model.planned_units_for(for_period.month),
                    value_change,
                }])
            }
            ContractCommand::RaiseInvoice {
                invoice,
                period,
                amount,
                corrects,
            } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, *corrects)?;
                if self.invoices.contains_key(invoice) {
                    return Err(DomainError::AlreadyExists {
                        what: "invoice",
                        id: format!("{code}/{invoice}"),
                    });
                }
                positive("amount_pence", *amount)?;
                limits::amount("amount_pence", *amount)?;
                Ok(vec![ContractEvent::InvoiceRaised {
                    invoice: invoice.clone(),
                    period: *period,
                    amount: *amount,
                    corrects: *corrects,
                }])
            }
            ContractCommand::RecordPayment {
                invoice,
                period,
                amount,
            } => {
                system.check_open_from(self.year, *period, "period")?;
                let found = self.invoice(code, invoice)?;
                positive("amount_pence", *amount)?;
                // At most what is payable, so within the invoice's ceiling.
                let payable = found.payable();
                if *amount > payable {
                    let outstanding = found.outstanding();
                    let disputed = found.disputed;
                    return Err(DomainError::rejected(
                        Rule::OverPaid,
                        if disputed.is_positive() {
                            format!(
                                "invoice {invoice} has {outstanding} outstanding, {disputed} of it \
                                 disputed: {payable} may be paid, less than {amount}"
                            )
                        } else {
                            format!(
                                "invoice {invoice} has {outstanding} outstanding, less than {amount}"
                            )
                        },
                    ));
                }
                Ok(vec![ContractEvent::PaymentRecorded {
                    invoice: invoice.clone(),
                    period: *period,
                    amount: *amount,
                }])
            }
            ContractCommand::RaiseDispute {
                dispute,
                invoice,
                period,
                amount,
                reason,
            } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, None)?;
                if self.disputes.contains_key(dispute) {
                    return Err(DomainError::AlreadyExists {
                        what: "dispute",
                        id: format!("{code}/{dispute}"),
                    });
                }
                positive("amount_pence", *amount)?;
                limits::amount("amount_pence", *amount)?;
                if let Some(invoice) = invoice {
                    // What was paid is settled and what is disputed already is withheld: a
                    // dispute names what is still payable (a claim on what was paid is a
                    // dispute of the contract, naming no invoice).
                    let payable = self.invoice(code, invoice)?.payable();
                    if *amount > payable {
                        return Err(DomainError::invalid(
                            "amount_pence",
                            format!(
                                "{amount} is more than the {payable} of invoice {invoice} \
                                 unpaid and not already disputed"
                            ),
                        ));
                    }
                }
                Ok(vec![ContractEvent::DisputeRaised {
                    dispute: dispute.clone(),
                    invoice: invoice.clone(),
                    period: *period,
                    amount: *amount,
                    reason: reason.clone(),
                }])
            }
            ContractCommand::ResolveDispute {
                dispute,
                period,
                provider_keeps,
                resolution,
            } => {
                system.check_open_from(self.year, *period, "period")?;
                let found = self
                    .disputes
                    .get(dispute)
                    .ok_or_else(|| DomainError::NotFound {
                        what: "dispute",
                        id: format!("{code}/{dispute}"),
                    })?;
                if found.resolved {
                    return Err(DomainError::rejected(
                        Rule::DisputeResolved,
                        format!("dispute {dispute} has already been resolved"),
                    ));
                }
                if provider_keeps.is_negative() || *provider_keeps > found.amount {
                    return Err(DomainError::invalid(
                        "provider_keeps_pence",
                        format!(
                            "{provider_keeps} is not between £0.00 and the disputed {}",
                            found.amount
                        ),
                    ));
                }
                let written_off = found
                    .amount
                    .checked_sub(*provider_keeps)
                    .map_err(|_| DomainError::overflow("provider_keeps_pence"))?;
                Ok(vec![ContractEvent::DisputeResolved {
                    dispute: dispute.clone(),
                    period: *period,
                    provider_keeps: *provider_keeps,
                    written_off,
                    resolution: resolution.clone(),
                }])
            }
            ContractCommand::ReconcileCquin {
                period,
                achievement,
            } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, None)?;
                let PaymentModel::Cquin { base_value, rate } = self.model else {
                    return Err(DomainError::rejected(
                        Rule::WrongPaymentModel,
                        format!(
                            "contract {code} pays by {}, not cquin",
                            self.model.kind_name()
                        ),
                    ));
                };
                if self.cquin_reconciled {
                    return Err(DomainError::AlreadyExists {
                        what: "CQUIN reconciliation",
                        id: code.to_string(),
                    });
                }
                if !achievement.is_share() {
                    return Err(DomainError::invalid(
                        "achievement_bp",
                        format!("{achievement} is more than 100.00%"),
                    ));
                }
                let overflow = |_| DomainError::overflow("achievement_bp");
                let value = base_value.checked_mul_bp(rate).map_err(overflow)?;
                let earned = value.checked_mul_bp(*achievement).map_err(overflow)?;
                let deduction = value.checked_sub(earned).map_err(overflow)?;
                Ok(vec![ContractEvent::CquinReconciled {
                    period: *period,
                    achievement: *achievement,
                    value,
                    earned,
                    deduction,
                }])
            }
            ContractCommand::RecordAdjustment {
                period,
                amount,
                reason,
                corrects,
            } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, *corrects)?;
                if *amount == Pence::ZERO {
                    return Err(DomainError::invalid(
                        "amount_pence",
                        "an adjustment changes the value: it cannot be zero",
                    ));
                }
                limits::amount("amount_pence", *amount)?;
                Ok(vec![ContractEvent::AdjustmentRecorded {
                    period: *period,
                    amount: *amount,
                    reason: reason.clone(),
                    corrects: *corrects,
                }])
            }
            ContractCommand::Terminate { period, reason } => {
                self.check_live(code)?;
                system.check_posting(self.year, *period, None)?;
                Ok(vec![ContractEvent::Terminated {
                    period: *period,
                    reason: reason.clone(),
                }])
            }
        }
    }

    fn invoice(&self, code: &Code, invoice: &Code) -> Result<&Invoice, DomainError> {
        self.invoices
            .get(invoice)
            .ok_or_else(|| DomainError::NotFound {
                what: "invoice",
                id: format!("{code}/{invoice}"),
            })
    }

    /// An invoice the events raised, for folding the next one.
    fn invoice_mut(&mut self, invoice: &Code) -> Result<&mut Invoice, String> {
        self.invoices
            .get_mut(invoice)
            .ok_or_else(|| format!("no invoice {invoice}"))
    }

    /// Folds one event into an existing contract; computes every new value before changing
    /// anything.
    fn apply(&mut self, event: &ContractEvent) -> Result<(), String> {
        match event {
            ContractEvent::Agreed { .. } => Err("the contract already exists".to_string()),
            ContractEvent::Varied {
                period,
                model,
                annual_value_after,
                ..
            } => {
                if let Ok(changes) = rephase(self.year, &self.phased, *period, *annual_value_after)
                {
                    apply_rephase(self.year, &mut self.phased, &changes);
                }
                self.model = model.clone();
                self.annual_value = *annual_value_after;
                Ok(())
            }
            ContractEvent::ActivityRecorded {
                for_period, units, ..
            } => {
                self.activity.insert(*for_period, *units);
                Ok(())
            }
            ContractEvent::InvoiceRaised {
                invoice, amount, ..
            } => match self.invoices.entry(invoice.clone()) {
                Entry::Occupied(_) => Err(format!("invoice {invoice} already exists")),
                Entry::Vacant(vacant) => {
                    vacant.insert(Invoice {
                        amount: *amount,
                        paid: Pence::ZERO,
                        disputed: Pence::ZERO,
                        written_off: Pence::ZERO,
                    });
                    Ok(())
                }
            },
            ContractEvent::PaymentRecorded {
                invoice, amount, ..
            } => {
                let found = self.invoice_mut(invoice)?;
                found.paid = found.paid.checked_add(*amount).map_err(overflow)?;
                Ok(())
            }
            ContractEvent::DisputeRaised {
                dispute,
                invoice,
                amount,
                ..
            } => {
                if self.disputes.contains_key(dispute) {
                    return Err(format!("dispute {dispute} already exists"));
                }
                if let Some(invoice) = invoice {
                    // What it names is withheld from payment until it is resolved.
                    let found = self.invoice_mut(invoice)?;
                    found.disputed = found.disputed.checked_add(*amount).map_err(overflow)?;
                }
                self.disputes.insert(
                    dispute.clone(),
                    Dispute {
                        invoice: invoice.clone(),
                        amount: *amount,
                        resolved: false,
                    },
                );
                Ok(())
            }
            ContractEvent::DisputeResolved {
                dispute,
                written_off,
                ..
            } => {
                let found = self
                    .disputes
                    .get(dispute)
                    .ok_or_else(|| format!("no dispute {dispute}"))?;
                let (invoice, amount) = (found.invoice.clone(), found.amount);
                if let Some(invoice) = invoice {
                    // No longer withheld; what was written off no longer owed.
                    let on = self.invoice_mut(&invoice)?;
                    let disputed = on.disputed.checked_sub(amount).map_err(overflow)?;
                    let off = on.written_off.checked_add(*written_off).map_err(overflow)?;
                    (on.disputed, on.written_off) = (disputed, off);
                }
                if let Some(found) = self.disputes.get_mut(dispute) {
                    found.resolved = true;
                }
                Ok(())
            }
            ContractEvent::CquinReconciled { .. } => {
                self.cquin_reconciled = true;
                Ok(())
            }
            ContractEvent::AdjustmentRecorded { .. } => Ok(()),
            ContractEvent::Terminated { period, .. } => {
                for (month, phased) in Month::all().zip(self.phased.iter_mut()) {
                    if self.year.period(month) > *period {
                        *phased = Pence::ZERO;
                    }
                }
                self.terminated = true;
                Ok(())
            }
        }
    }
}

/// Decides a command for the contract `code` (`state` is `None` until it is created).
pub fn decide(
    system: &SystemState,
    code: &Code,
    state: Option<&ContractState>,
    command: &ContractCommand,
) -> Result<Vec<ContractEvent>, DomainError> {
    match (state, command) {
        (Some(state), command) => state.decide(system, code, command),
        (
            None,
            ContractCommand::Agree {
                commissioner,
                provider,
                year,
                model,
                description,
            },
        ) => {
            let first_year = system.establishment()?.first_year;
            system.commissioner(commissioner)?;
            system.provider(provider)?;
            if *year < first_year {
                return Err(DomainError::invalid(
                    "year",
                    format!("{year} is before the system's first year {first_year}"),
                ));
            }
            let annual_value = model.check()?;
            Ok(vec![ContractEvent::Agreed {
                commissioner: *commissioner,
                provider: *provider,
                year: *year,
                model: model.clone(),
                description: description.clone(),
                annual_value,
            }])
        }
        (None, _) => Err(DomainError::NotFound {
            what: "contract",
            id: code.to_string(),
        }),
    }
}

/// Folds one event in. `Err` (a reason) only when the event does not fit the state.
pub fn apply(entry: Entry<'_, Code, ContractState>, event: &ContractEvent) -> Result<(), String> {
    match (entry, event) {
        (
            Entry::Vacant(vacant),
            ContractEvent::Agreed {
                commissioner,
                provider,
                year,
                model,
                annual_value,
                ..
            },
        ) => {
            vacant.insert(ContractState {
                commissioner: *commissioner,
                provider: *provider,
                year: *year,
                model: model.clone(),
                annual_value: *annual_value,
                activity: BTreeMap::new(),
                invoices: BTreeMap::new(),
                disputes: BTreeMap::new(),
                cquin_reconciled: false,
                terminated: false,
                phased: phase(*annual_value).unwrap_or([Pence::ZERO; 12]),
            });
            Ok(())
        }
        (Entry::Vacant(_), _) => Err("the contract does not exist".to_string()),
        (Entry::Occupied(mut occupied), event) => occupied.get_mut().apply(event),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::{Command, Event};

    fn ev(contract: &str, event: ContractEvent) -> Event {
        Event::Contract {
            contract: code(contract),
            event,
        }
    }

    fn when(contract: &str, command: ContractCommand) -> Command {
        Command::Contract {
            contract: code(contract),
            command,
        }
    }

    fn c3_model() -> PaymentModel {
        PaymentModel::ActivityTariff {
            planned_units: 24_000,
            unit_price: pounds(3_000),
        }
    }

    fn c5_model() -> PaymentModel {
        PaymentModel::AlignedPayment {
            fixed: pounds(204_000_000),
            planned_units: 36_000,
            unit_price: pounds(2_000),
            marginal_rate: bp(5_000),
        }
    }

    fn cq_model() -> PaymentModel {
        PaymentModel::Cquin {
            base_value: pounds(312_000_000),
            rate: bp(250),
        }
    }

    fn c6_model() -> PaymentModel {
        PaymentModel::Capitation {
            per_head: pounds(48),
            population: 50_000,
            gain_share: bp(5_000),
            loss_share: bp(5_000),
        }
    }

    fn c1_model() -> PaymentModel {
        PaymentModel::Block {
            annual_value: pounds(84_000_000),
        }
    }

    fn agree(
        commissioner: &str,
        provider: &str,
        start: u32,
        model: PaymentModel,
    ) -> ContractCommand {
        ContractCommand::Agree {
            commissioner: member(commissioner),
            provider: member(provider),
            year: year(start),
            model,
            description: text("services"),
        }
    }

    fn agreed(provider: &str, model: PaymentModel, annual_value: Pence) -> ContractEvent {
        ContractEvent::Agreed {
            commissioner: member("KCCG"),
            provider: member(provider),
            year: fy(),
            model,
            description: text("services"),
            annual_value,
        }
    }

    /// BRIEF §8's contracts, all commissioned by KCCG.
    fn contracts() -> Vec<Event> {
        history([
            demo_system(),
            vec![
                ev("C1", agreed("KCHT", c1_model(), pounds(84_000_000))),
                ev("C3", agreed("KHFT", c3_model(), pounds(72_000_000))),
                ev("C5", agreed("AVT", c5_model(), pounds(204_000_000))),
                ev("CQ", agreed("KHFT", cq_model(), pounds(7_800_000))),
                ev("C6", agreed("KNPCN", c6_model(), pounds(2_400_000))),
            ],
        ])
    }

    fn activity(p: Period, units: u64, corrects: Option<Period>) -> ContractCommand {
        ContractCommand::RecordActivity {
            period: p,
            units,
            corrects,
        }
    }

    fn recorded(
        p: Period,
        for_period: Period,
        units: u64,
        previous_units: u64,
        planned_units: u64,
        value_change: Pence,
    ) -> ContractEvent {
        ContractEvent::ActivityRecorded {
            period: p,
            for_period,
            units,
            previous_units,
            planned_units,
            value_change,
        }
    }

    fn invoice(name: &str, p: Period, amount: Pence) -> ContractCommand {
        ContractCommand::RaiseInvoice {
            invoice: code(name),
            period: p,
            amount,
            corrects: None,
        }
    }

    fn invoiced(name: &str, p: Period, amount: Pence) -> ContractEvent {
        ContractEvent::InvoiceRaised {
            invoice: code(name),
            period: p,
            amount,
            corrects: None,
        }
    }

    fn payment(name: &str, p: Period, amount: Pence) -> ContractCommand {
        ContractCommand::RecordPayment {
            invoice: code(name),
            period: p,
            amount,
        }
    }

    fn payment_recorded(name: &str, p: Period, amount: Pence) -> ContractEvent {
        ContractEvent::PaymentRecorded {
            invoice: code(name),
            period: p,
            amount,
        }
    }

    fn dispute(name: &str, on: Option<&str>, amount: Pence) -> ContractCommand {
        ContractCommand::RaiseDispute {
            dispute: code(name),
            invoice: on.map(code),
            period: period(2018, 5),
            amount,
            reason: text("coding challenge"),
        }
    }

    fn disputed(name: &str, on: Option<&str>, amount: Pence) -> ContractEvent {
        ContractEvent::DisputeRaised {
            dispute: code(name),
            invoice: on.map(code),
            period: period(2018, 5),
            amount,
            reason: text("coding challenge"),
        }
    }

    fn resolve(name: &str, keeps: Pence) -> ContractCommand {
        ContractCommand::ResolveDispute {
            dispute: code(name),
            period: period(2018, 7),
            provider_keeps: keeps,
            resolution: text("agreed"),
        }
    }

    fn terminated() -> ContractEvent {
        ContractEvent::Terminated {
            period: period(2018, 9),
            reason: text("service decommissioned"),
        }
    }

    fn given_invoiced() -> Vec<Event> {
        history([
            contracts(),
            vec![ev(
                "C1",
                invoiced("INV-C1-M4", period(2018, 4), pounds(7_000_000)),
            )],
        ])
    }

    #[test]
    fn the_annual_value_of_each_model_matches_the_brief() {
        assert_eq!(c1_model().annual_value(), Ok(pounds(84_000_000)));
        assert_eq!(c3_model().annual_value(), Ok(pounds(72_000_000)));
        assert_eq!(c5_model().annual_value(), Ok(pounds(204_000_000)));
        assert_eq!(cq_model().annual_value(), Ok(pounds(7_800_000)));
        assert_eq!(c6_model().annual_value(), Ok(pounds(2_400_000)));
        assert_eq!(c3_model().planned_units_for(month(8)), 2_000);
        assert_eq!(c5_model().planned_units_for(month(10)), 3_000);
        assert_eq!(c1_model().planned_units_for(month(1)), 0);
        assert_eq!(
            phase_units(24_005)[..6],
            [2_001, 2_001, 2_001, 2_001, 2_001, 2_000]
        );
        assert_eq!(phase_units(24_005).iter().sum::<u64>(), 24_005);
        assert_eq!(
            phase_units(u64::MAX)
                .iter()
                .map(|u| u128::from(*u))
                .sum::<u128>(),
            u128::from(u64::MAX)
        );
        assert_eq!(
            c3_model().activity_value(month(8), 2_300),
            Ok(pounds(900_000))
        );
        assert_eq!(
            c5_model().activity_value(month(10), 3_600),
            Ok(pounds(600_000))
        );
        assert_eq!(
            c3_model().activity_value(month(1), u64::MAX),
            Err(MoneyError::Overflow)
        );
    }

    #[test]
    fn a_contract_is_agreed_once_by_a_commissioner_with_a_provider() {
        run(vec![
            Case {
                name: "C3: activity at tariff, 24,000 × 3,000 = 72,000,000",
                given: demo_system(),
                when: when("C3", agree("KCCG", "KHFT", 2018, c3_model())),
                then: Then::Events(vec![ev(
                    "C3",
                    agreed("KHFT", c3_model(), pounds(72_000_000)),
                )]),
            },
            Case {
                name: "C5: aligned payment, valued at its fixed 204,000,000",
                given: demo_system(),
                when: when("C5", agree("KCCG", "AVT", 2018, c5_model())),
                then: Then::Events(vec![ev(
                    "C5",
                    agreed("AVT", c5_model(), pounds(204_000_000)),
                )]),
            },
            Case {
                name: "CQ: 2.5% of 312,000,000 = 7,800,000",
                given: demo_system(),
                when: when("CQ", agree("KCCG", "KHFT", 2018, cq_model())),
                then: Then::Events(vec![ev(
                    "CQ",
                    agreed("KHFT", cq_model(), pounds(7_800_000)),
                )]),
            },
            Case {
                name: "C6: capitation 48 × 50,000 = 2,400,000 with a PCN",
                given: demo_system(),
                when: when("C6", agree("KCCG", "KNPCN", 2018, c6_model())),
                then: Then::Events(vec![ev(
                    "C6",
                    agreed("KNPCN", c6_model(), pounds(2_400_000)),
                )]),
            },
            Case {
                name: "agreed twice",
                given: contracts(),
                when: when("C3", agree("KCCG", "KHFT", 2018, c3_model())),
                then: Then::AlreadyExists("contract"),
            },
            Case {
                name: "another command for a contract that does not exist",
                given: contracts(),
                when: when("C9", activity(period(2018, 1), 1, None)),
                then: Then::NotFound("contract"),
            },
            Case {
                name: "a trust cannot commission",
                given: demo_system(),
                when: when("C9", agree("KHFT", "AVT", 2018, c1_model())),
                then: Then::Rejected(Rule::NotACommissioner),
            },
            Case {
                name: "the council cannot commission",
                given: demo_system(),
                when: when("C9", agree("KCC", "AVT", 2018, c1_model())),
                then: Then::Rejected(Rule::NotACommissioner),
            },
            Case {
                name: "a commissioner never admitted",
                given: demo_system(),
                when: when("C9", agree("RXX", "AVT", 2018, c1_model())),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "the council is not a provider",
                given: demo_system(),
                when: when("C9", agree("KCCG", "KCC", 2018, c1_model())),
                then: Then::Rejected(Rule::NotAProvider),
            },
            Case {
                name: "a provider never admitted",
                given: demo_system(),
                when: when("C9", agree("KCCG", "RXX", 2018, c1_model())),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a year before the system's first",
                given: demo_system(),
                when: when("C9", agree("KCCG", "AVT", 2017, c1_model())),
                then: Then::Invalid("year"),
            },
        ]);
    }

    #[test]
    fn a_payment_model_has_positive_amounts_whole_rates_and_planned_units() {
        let case = |name, model, then| Case {
            name,
            given: demo_system(),
            when: when("C9", agree("KCCG", "AVT", 2018, model)),
            then,
        };
        run(vec![
            case(
                "a zero block",
                PaymentModel::Block {
                    annual_value: Pence::ZERO,
                },
                Then::Invalid("model.block.annual_value_pence"),
            ),
            case(
                "a negative block",
                PaymentModel::Block {
                    annual_value: pounds(-1),
                },
                Then::Invalid("model.block.annual_value_pence"),
            ),
            case(
                "a zero unit price",
                PaymentModel::ActivityTariff {
                    planned_units: 1,
                    unit_price: Pence::ZERO,
                },
                Then::Invalid("model.activity_tariff.unit_price_pence"),
            ),
            case(
                "no units planned",
                PaymentModel::ActivityTariff {
                    planned_units: 0,
                    unit_price: pounds(1),
                },
                Then::Invalid("model.activity_tariff.planned_units"),
            ),
            case(
                "a negative fixed element",
                PaymentModel::AlignedPayment {
                    fixed: pounds(-1),
                    planned_units: 1,
                    unit_price: pounds(1),
                    marginal_rate: bp(5_000),
                },
                Then::Invalid("model.aligned_payment.fixed_pence"),
            ),
            case(
                "a marginal rate above 100%",
                PaymentModel::AlignedPayment {
                    fixed: pounds(1),
                    planned_units: 1,
                    unit_price: pounds(1),
                    marginal_rate: bp(10_001),
                },
                Then::Invalid("model.aligned_payment.marginal_rate_bp"),
            ),
            case(
                "a zero capitation",
                PaymentModel::Capitation {
                    per_head: Pence::ZERO,
                    population: 1,
                    gain_share: bp(0),
                    loss_share: bp(0),
                },
                Then::Invalid("model.capitation.per_head_pence"),
            ),
            case(
                "a loss share above 100%",
                PaymentModel::Capitation {
                    per_head: pounds(1),
                    population: 1,
                    gain_share: bp(0),
                    loss_share: bp(10_001),
                },
                Then::Invalid("model.capitation.loss_share_bp"),
            ),
            case(
                "a CQUIN rate above 100%",
                PaymentModel::Cquin {
                    base_value: pounds(1),
                    rate: bp(10_001),
                },
                Then::Invalid("model.cquin.rate_bp"),
            ),
            case(
                "a zero CQUIN base",
                PaymentModel::Cquin {
                    base_value: Pence::ZERO,
                    rate: bp(125),
                },
                Then::Invalid("model.cquin.base_value_pence"),
            ),
            case(
                "planned units × price over the ceiling",
                PaymentModel::ActivityTariff {
                    planned_units: 2,
                    unit_price: limits::AMOUNT_CEILING,
                },
                Then::Invalid("model.activity_tariff.planned_units"),
            ),
            case(
                "planned units beyond the most one count may be",
                PaymentModel::ActivityTariff {
                    planned_units: u64::MAX,
                    unit_price: Pence::new(1),
                },
                Then::Invalid("model.activity_tariff.planned_units"),
            ),
            case(
                "per head × population over the ceiling",
                PaymentModel::Capitation {
                    per_head: pounds(1_000),
                    population: limits::UNITS_MAX,
                    gain_share: bp(0),
                    loss_share: bp(0),
                },
                Then::Invalid("model.capitation.population"),
            ),
            case(
                "planned units that cannot be priced",
                PaymentModel::AlignedPayment {
                    fixed: pounds(1),
                    planned_units: 1 << 40,
                    unit_price: Pence::new(1 << 30),
                    marginal_rate: bp(5_000),
                },
                Then::Invalid("model.aligned_payment.planned_units"),
            ),
        ]);
    }

    #[test]
    fn activity_changes_the_value_by_its_distance_from_the_monthly_plan() {
        let m8 = period(2018, 8);
        let m10 = period(2018, 10);
        run(vec![
            Case {
                name: "BRIEF: C3 2,300 spells in M8 against 2,000 planned, +900,000",
                given: contracts(),
                when: when("C3", activity(m8, 2_300, None)),
                then: Then::Events(vec![ev(
                    "C3",
                    recorded(m8, m8, 2_300, 0, 2_000, pounds(900_000)),
                )]),
            },
            Case {
                name: "BRIEF: C5 3,600 spells in M10 against 3,000, at 50% of 2,000, +600,000",
                given: contracts(),
                when: when("C5", activity(m10, 3_600, None)),
                then: Then::Events(vec![ev(
                    "C5",
                    recorded(m10, m10, 3_600, 0, 3_000, pounds(600_000)),
                )]),
            },
            Case {
                name: "below plan gives value back",
                given: contracts(),
                when: when("C3", activity(m8, 1_900, None)),
                then: Then::Events(vec![ev(
                    "C3",
                    recorded(m8, m8, 1_900, 0, 2_000, pounds(-300_000)),
                )]),
            },
            Case {
                name: "a later count replaces the earlier: the change is the difference",
                given: history([
                    contracts(),
                    vec![ev("C3", recorded(m8, m8, 2_300, 0, 2_000, pounds(900_000)))],
                ]),
                when: when("C3", activity(m8, 2_100, None)),
                then: Then::Events(vec![ev(
                    "C3",
                    recorded(m8, m8, 2_100, 2_300, 2_000, pounds(-600_000)),
                )]),
            },
            Case {
                name: "a block records activity with no change in value",
                given: contracts(),
                when: when("C1", activity(m8, 5_000, None)),
                then: Then::Events(vec![ev("C1", recorded(m8, m8, 5_000, 0, 0, Pence::ZERO))]),
            },
            Case {
                name: "a correction in an open period names the closed month",
                given: history([contracts(), closed_through(m8)]),
                when: when("C3", activity(period(2018, 9), 2_300, Some(m8))),
                then: Then::Events(vec![ev(
                    "C3",
                    recorded(period(2018, 9), m8, 2_300, 0, 2_000, pounds(900_000)),
                )]),
            },
            Case {
                name: "a count in a closed month",
                given: history([contracts(), closed_through(m8)]),
                when: when("C3", activity(m8, 2_300, None)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "a count for the next year",
                given: contracts(),
                when: when("C3", activity(period(2019, 1), 2_000, None)),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
            Case {
                name: "a correction naming a later month",
                given: contracts(),
                when: when("C3", activity(m8, 2_000, Some(period(2018, 9)))),
                then: Then::Invalid("corrects"),
            },
            Case {
                name: "a count beyond the most one count may be",
                given: contracts(),
                when: when("C3", activity(m8, u64::MAX, None)),
                then: Then::Invalid("units"),
            },
            Case {
                name: "a count whose value is over the ceiling",
                given: contracts(),
                when: when("C3", activity(m8, limits::UNITS_MAX, None)),
                then: Then::Invalid("units"),
            },
        ]);
    }

    #[test]
    fn invoices_are_new_and_payments_never_exceed_what_is_outstanding() {
        let m4 = period(2018, 4);
        let m5 = period(2018, 5);
        run(vec![
            Case {
                name: "raise an invoice",
                given: contracts(),
                when: when("C1", invoice("INV-C1-M4", m4, pounds(7_000_000))),
                then: Then::Events(vec![ev("C1", invoiced("INV-C1-M4", m4, pounds(7_000_000)))]),
            },
            Case {
                name: "an invoice correcting a closed month",
                given: history([contracts(), closed_through(m4)]),
                when: when(
                    "C1",
                    ContractCommand::RaiseInvoice {
                        invoice: code("INV-C1-M4A"),
                        period: m5,
                        amount: pounds(1),
                        corrects: Some(m4),
                    },
                ),
                then: Then::Events(vec![ev(
                    "C1",
                    ContractEvent::InvoiceRaised {
                        invoice: code("INV-C1-M4A"),
                        period: m5,
                        amount: pounds(1),
                        corrects: Some(m4),
                    },
                )]),
            },
            Case {
                name: "an invoice code used twice",
                given: given_invoiced(),
                when: when("C1", invoice("INV-C1-M4", m5, pounds(1))),
                then: Then::AlreadyExists("invoice"),
            },
            Case {
                name: "a zero invoice",
                given: contracts(),
                when: when("C1", invoice("INV-C1-M4", m4, Pence::ZERO)),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "pay part of an invoice",
                given: given_invoiced(),
                when: when("C1", payment("INV-C1-M4", m5, pounds(4_000_000))),
                then: Then::Events(vec![ev(
                    "C1",
                    payment_recorded("INV-C1-M4", m5, pounds(4_000_000)),
                )]),
            },
            Case {
                name: "pay the rest",
                given: history([
                    given_invoiced(),
                    vec![ev(
                        "C1",
                        payment_recorded("INV-C1-M4", m5, pounds(4_000_000)),
                    )],
                ]),
                when: when("C1", payment("INV-C1-M4", m5, pounds(3_000_000))),
                then: Then::Events(vec![ev(
                    "C1",
                    payment_recorded("INV-C1-M4", m5, pounds(3_000_000)),
                )]),
            },
            Case {
                name: "pay more than is outstanding",
                given: history([
                    given_invoiced(),
                    vec![ev(
                        "C1",
                        payment_recorded("INV-C1-M4", m5, pounds(4_000_000)),
                    )],
                ]),
                when: when("C1", payment("INV-C1-M4", m5, Pence::new(300_000_001))),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "pay a 2018/19 invoice in 2019/20, after the year closed",
                given: history([given_invoiced(), closed_through(period(2018, 12))]),
                when: when(
                    "C1",
                    payment("INV-C1-M4", period(2019, 1), pounds(7_000_000)),
                ),
                then: Then::Events(vec![ev(
                    "C1",
                    payment_recorded("INV-C1-M4", period(2019, 1), pounds(7_000_000)),
                )]),
            },
            Case {
                name: "pay an invoice that does not exist",
                given: given_invoiced(),
                when: when("C1", payment("INV-NOPE", m5, pounds(1))),
                then: Then::NotFound("invoice"),
            },
            Case {
                name: "a negative payment",
                given: given_invoiced(),
                when: when("C1", payment("INV-C1-M4", m5, pounds(-1))),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a payment in a closed period",
                given: history([given_invoiced(), closed_through(m5)]),
                when: when("C1", payment("INV-C1-M4", m5, pounds(1))),
                then: Then::Rejected(Rule::PeriodClosed),
            },
        ]);
    }

    #[test]
    fn a_disputed_part_of_an_invoice_is_withheld_and_a_write_off_is_no_longer_owed() {
        let m5 = period(2018, 5);
        let inv = "INV-C1-M4";
        // 7,000,000 invoiced; D1 disputes 500,000 of it.
        let raised = || {
            history([
                given_invoiced(),
                vec![ev("C1", disputed("D1", Some(inv), pounds(500_000)))],
            ])
        };
        // D1 resolved: the provider keeps 200,000, 300,000 is written off the invoice.
        let resolved = || {
            history([
                raised(),
                vec![ev(
                    "C1",
                    ContractEvent::DisputeResolved {
                        dispute: code("D1"),
                        period: period(2018, 7),
                        provider_keeps: pounds(200_000),
                        written_off: pounds(300_000),
                        resolution: text("agreed"),
                    },
                )],
            ])
        };
        let paid = |amount| vec![ev("C1", payment_recorded(inv, m5, amount))];
        run(vec![
            Case {
                name: "pay what is not disputed",
                given: raised(),
                when: when("C1", payment(inv, m5, pounds(6_500_000))),
                then: Then::Events(vec![ev("C1", payment_recorded(inv, m5, pounds(6_500_000)))]),
            },
            Case {
                name: "pay a penny of what is disputed",
                given: raised(),
                when: when("C1", payment(inv, m5, Pence::new(650_000_001))),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "dispute what is still unpaid",
                given: history([given_invoiced(), paid(pounds(4_000_000))]),
                when: when("C1", dispute("D1", Some(inv), pounds(3_000_000))),
                then: Then::Events(vec![ev("C1", disputed("D1", Some(inv), pounds(3_000_000)))]),
            },
            Case {
                name: "dispute a penny of what was paid",
                given: history([given_invoiced(), paid(pounds(4_000_000))]),
                when: when("C1", dispute("D1", Some(inv), Pence::new(300_000_001))),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a second dispute of what is not disputed yet",
                given: raised(),
                when: when("C1", dispute("D2", Some(inv), pounds(6_500_000))),
                then: Then::Events(vec![ev("C1", disputed("D2", Some(inv), pounds(6_500_000)))]),
            },
            Case {
                name: "a second dispute of a penny already disputed",
                given: raised(),
                when: when("C1", dispute("D2", Some(inv), Pence::new(650_000_001))),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "once resolved, what the provider kept is payable",
                given: resolved(),
                when: when("C1", payment(inv, m5, pounds(6_700_000))),
                then: Then::Events(vec![ev("C1", payment_recorded(inv, m5, pounds(6_700_000)))]),
            },
            Case {
                name: "what was written off is not",
                given: resolved(),
                when: when("C1", payment(inv, m5, Pence::new(670_000_001))),
                then: Then::Rejected(Rule::OverPaid),
            },
            Case {
                name: "paid in full after the write-off: nothing is left",
                given: history([resolved(), paid(pounds(6_700_000))]),
                when: when("C1", payment(inv, m5, Pence::new(1))),
                then: Then::Rejected(Rule::OverPaid),
            },
        ]);
    }

    #[test]
    fn disputes_are_new_at_most_the_invoice_and_resolved_once() {
        let raised = || {
            history([
                given_invoiced(),
                vec![ev("C1", disputed("D1", Some("INV-C1-M4"), pounds(500_000)))],
            ])
        };
        run(vec![
            Case {
                name: "dispute part of an invoice",
                given: given_invoiced(),
                when: when("C1", dispute("D1", Some("INV-C1-M4"), pounds(500_000))),
                then: Then::Events(vec![ev(
                    "C1",
                    disputed("D1", Some("INV-C1-M4"), pounds(500_000)),
                )]),
            },
            Case {
                name: "a dispute about the contract in general",
                given: contracts(),
                when: when("C1", dispute("D2", None, pounds(50_000_000))),
                then: Then::Events(vec![ev("C1", disputed("D2", None, pounds(50_000_000)))]),
            },
            Case {
                name: "more than the invoice",
                given: given_invoiced(),
                when: when(
                    "C1",
                    dispute("D1", Some("INV-C1-M4"), Pence::new(700_000_001)),
                ),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "an invoice that does not exist",
                given: given_invoiced(),
                when: when("C1", dispute("D1", Some("INV-NOPE"), pounds(1))),
                then: Then::NotFound("invoice"),
            },
            Case {
                name: "a zero dispute",
                given: given_invoiced(),
                when: when("C1", dispute("D1", None, Pence::ZERO)),
                then: Then::Invalid("amount_pence"),
            },
            Case {
                name: "a dispute code used twice",
                given: raised(),
                when: when("C1", dispute("D1", None, pounds(1))),
                then: Then::AlreadyExists("dispute"),
            },
            Case {
                name: "resolved: the provider keeps 200,000, 300,000 written off",
                given: raised(),
                when: when("C1", resolve("D1", pounds(200_000))),
                then: Then::Events(vec![ev(
                    "C1",
                    ContractEvent::DisputeResolved {
                        dispute: code("D1"),
                        period: period(2018, 7),
                        provider_keeps: pounds(200_000),
                        written_off: pounds(300_000),
                        resolution: text("agreed"),
                    },
                )]),
            },
            Case {
                name: "keeps more than was disputed",
                given: raised(),
                when: when("C1", resolve("D1", Pence::new(50_000_001))),
                then: Then::Invalid("provider_keeps_pence"),
            },
            Case {
                name: "keeps less than nothing",
                given: raised(),
                when: when("C1", resolve("D1", pounds(-1))),
                then: Then::Invalid("provider_keeps_pence"),
            },
            Case {
                name: "a dispute that does not exist",
                given: raised(),
                when: when("C1", resolve("D9", Pence::ZERO)),
                then: Then::NotFound("dispute"),
            },
            Case {
                name: "resolved twice",
                given: history([
                    raised(),
                    vec![ev(
                        "C1",
                        ContractEvent::DisputeResolved {
                            dispute: code("D1"),
                            period: period(2018, 7),
                            provider_keeps: Pence::ZERO,
                            written_off: pounds(500_000),
                            resolution: text("agreed"),
                        },
                    )],
                ]),
                when: when("C1", resolve("D1", Pence::ZERO)),
                then: Then::Rejected(Rule::DisputeResolved),
            },
        ]);
    }

    #[test]
    fn cquin_is_reconciled_once_against_achievement() {
        let reconcile = |achievement| ContractCommand::ReconcileCquin {
            period: period(2018, 12),
            achievement: bp(achievement),
        };
        let reconciled = ev(
            "CQ",
            ContractEvent::CquinReconciled {
                period: period(2018, 12),
                achievement: bp(9_000),
                value: pounds(7_800_000),
                earned: pounds(7_020_000),
                deduction: pounds(780_000),
            },
        );
        run(vec![
            Case {
                name: "BRIEF: 90% of 7,800,000 earned, 780,000 deducted",
                given: contracts(),
                when: when("CQ", reconcile(9_000)),
                then: Then::Events(vec![reconciled.clone()]),
            },
            Case {
                name: "reconciled twice",
                given: history([contracts(), vec![reconciled]]),
                when: when("CQ", reconcile(9_000)),
                then: Then::AlreadyExists("CQUIN reconciliation"),
            },
            Case {
                name: "on a contract that is not CQUIN",
                given: contracts(),
                when: when("C3", reconcile(9_000)),
                then: Then::Rejected(Rule::WrongPaymentModel),
            },
            Case {
                name: "achievement above 100%",
                given: contracts(),
                when: when("CQ", reconcile(10_001)),
                then: Then::Invalid("achievement_bp"),
            },
        ]);
    }

    #[test]
    fn adjustments_are_signed_non_zero_and_may_correct_a_closed_year() {
        let adjust = |p, amount, corrects| ContractCommand::RecordAdjustment {
            period: p,
            amount,
            reason: text("gain share"),
            corrects,
        };
        let adjusted = |p, amount, corrects| {
            ev(
                "C6",
                ContractEvent::AdjustmentRecorded {
                    period: p,
                    amount,
                    reason: text("gain share"),
                    corrects,
                },
            )
        };
        let year_closed = || history([contracts(), closed_through(period(2019, 1))]);
        run(vec![
            Case {
                name: "BRIEF post-close: a 50,000 gain share in 2019/20 M2 for 2018/19",
                given: year_closed(),
                when: when(
                    "C6",
                    adjust(period(2019, 2), pounds(50_000), Some(period(2018, 12))),
                ),
                then: Then::Events(vec![adjusted(
                    period(2019, 2),
                    pounds(50_000),
                    Some(period(2018, 12)),
                )]),
            },
            Case {
                name: "but not in the closed year itself",
                given: year_closed(),
                when: when("C6", adjust(period(2018, 12), pounds(50_000), None)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "nor in the next year without naming the period corrected",
                given: year_closed(),
                when: when("C6", adjust(period(2019, 2), pounds(50_000), None)),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
            Case {
                name: "a negative adjustment",
                given: contracts(),
                when: when("C6", adjust(period(2018, 6), pounds(-10_000), None)),
                then: Then::Events(vec![adjusted(period(2018, 6), pounds(-10_000), None)]),
            },
            Case {
                name: "a zero adjustment",
                given: contracts(),
                when: when("C6", adjust(period(2018, 6), Pence::ZERO, None)),
                then: Then::Invalid("amount_pence"),
            },
        ]);
    }

    #[test]
    fn a_variation_keeps_the_model_kind() {
        let m7 = period(2018, 7);
        let vary = |model| ContractCommand::Vary {
            period: m7,
            reason: text("GC13 variation"),
            model,
        };
        let more = PaymentModel::ActivityTariff {
            planned_units: 25_200,
            unit_price: pounds(3_000),
        };
        run(vec![
            Case {
                name: "C3's plan rises to 25,200 spells",
                given: contracts(),
                when: when("C3", vary(more.clone())),
                then: Then::Events(vec![ev(
                    "C3",
                    ContractEvent::Varied {
                        period: m7,
                        reason: text("GC13 variation"),
                        model: more.clone(),
                        annual_value_before: pounds(72_000_000),
                        annual_value_after: pounds(75_600_000),
                    },
                )]),
            },
            Case {
                name: "activity after the variation is valued at the new plan",
                given: history([
                    contracts(),
                    vec![ev(
                        "C3",
                        ContractEvent::Varied {
                            period: m7,
                            reason: text("GC13 variation"),
                            model: more.clone(),
                            annual_value_before: pounds(72_000_000),
                            annual_value_after: pounds(75_600_000),
                        },
                    )],
                ]),
                when: when("C3", activity(period(2018, 8), 2_300, None)),
                then: Then::Events(vec![ev(
                    "C3",
                    recorded(
                        period(2018, 8),
                        period(2018, 8),
                        2_300,
                        0,
                        2_100,
                        pounds(600_000),
                    ),
                )]),
            },
            Case {
                name: "a block cannot become activity",
                given: contracts(),
                when: when("C1", vary(c3_model())),
                then: Then::Rejected(Rule::WrongPaymentModel),
            },
            Case {
                name: "the new model follows the rules at agreement",
                given: contracts(),
                when: when(
                    "C3",
                    vary(PaymentModel::ActivityTariff {
                        planned_units: 0,
                        unit_price: pounds(3_000),
                    }),
                ),
                then: Then::Invalid("model.activity_tariff.planned_units"),
            },
            Case {
                name: "from a period outside the year",
                given: contracts(),
                when: when(
                    "C3",
                    ContractCommand::Vary {
                        period: period(2019, 1),
                        reason: text("late"),
                        model: more.clone(),
                    },
                ),
                then: Then::Rejected(Rule::PeriodOutsideYear),
            },
        ]);
    }

    #[test]
    fn a_terminated_contract_takes_only_payments_and_dispute_resolutions() {
        let m10 = period(2018, 10);
        let ended = || {
            history([
                given_invoiced(),
                vec![
                    ev("C1", disputed("D1", Some("INV-C1-M4"), pounds(500_000))),
                    ev("C1", terminated()),
                ],
            ])
        };
        run(vec![
            Case {
                name: "terminate",
                given: contracts(),
                when: when(
                    "C1",
                    ContractCommand::Terminate {
                        period: period(2018, 9),
                        reason: text("service decommissioned"),
                    },
                ),
                then: Then::Events(vec![ev("C1", terminated())]),
            },
            Case {
                name: "terminate twice",
                given: ended(),
                when: when(
                    "C1",
                    ContractCommand::Terminate {
                        period: m10,
                        reason: text("again"),
                    },
                ),
                then: Then::Rejected(Rule::ContractTerminated),
            },
            Case {
                name: "a payment after termination",
                given: ended(),
                when: when("C1", payment("INV-C1-M4", m10, pounds(6_500_000))),
                then: Then::Events(vec![ev(
                    "C1",
                    payment_recorded("INV-C1-M4", m10, pounds(6_500_000)),
                )]),
            },
            Case {
                name: "a resolution after termination",
                given: ended(),
                when: when("C1", resolve("D1", Pence::ZERO)),
                then: Then::Events(vec![ev(
                    "C1",
                    ContractEvent::DisputeResolved {
                        dispute: code("D1"),
                        period: period(2018, 7),
                        provider_keeps: Pence::ZERO,
                        written_off: pounds(500_000),
                        resolution: text("agreed"),
                    },
                )]),
            },
            Case {
                name: "activity after termination",
                given: ended(),
                when: when("C1", activity(m10, 1, None)),
                then: Then::Rejected(Rule::ContractTerminated),
            },
            Case {
                name: "an invoice after termination",
                given: ended(),
                when: when("C1", invoice("INV-C1-M10", m10, pounds(1))),
                then: Then::Rejected(Rule::ContractTerminated),
            },
            Case {
                name: "a dispute after termination",
                given: ended(),
                when: when("C1", dispute("D2", None, pounds(1))),
                then: Then::Rejected(Rule::ContractTerminated),
            },
            Case {
                name: "a variation after termination",
                given: ended(),
                when: when(
                    "C1",
                    ContractCommand::Vary {
                        period: m10,
                        reason: text("late"),
                        model: c1_model(),
                    },
                ),
                then: Then::Rejected(Rule::ContractTerminated),
            },
            Case {
                name: "an adjustment after termination",
                given: ended(),
                when: when(
                    "C1",
                    ContractCommand::RecordAdjustment {
                        period: m10,
                        amount: pounds(1),
                        reason: text("late"),
                        corrects: None,
                    },
                ),
                then: Then::Rejected(Rule::ContractTerminated),
            },
        ]);
    }

    #[test]
    fn apply_refuses_events_that_do_not_fit() {
        let mut contracts = BTreeMap::new();
        assert!(apply(contracts.entry(code("C1")), &terminated()).is_err());
        let agreed = agreed("KCHT", c1_model(), pounds(84_000_000));
        assert_eq!(apply(contracts.entry(code("C1")), &agreed), Ok(()));
        assert!(apply(contracts.entry(code("C1")), &agreed).is_err());
        let paid = payment_recorded("INV", period(2018, 1), pounds(1));
        assert!(apply(contracts.entry(code("C1")), &paid).is_err());
        let raised = invoiced("INV", period(2018, 1), pounds(1));
        assert_eq!(apply(contracts.entry(code("C1")), &raised), Ok(()));
        assert!(apply(contracts.entry(code("C1")), &raised).is_err());
    }
}
