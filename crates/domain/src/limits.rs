//! The ledger's limits, in one place: the ceiling on any amount, the caps on counts and
//! collections, and what each member may post over the ledger's life. Every reader (positiond,
//! oversightd, an audit replay) folds whatever the ledger accepted in `i64` pence, so the
//! limits are what make "accepted" imply "readable": `decide` refuses what is over them
//! (`INVALID_ARGUMENT` for a command over a limit on its own, `FAILED_PRECONDITION`
//! [`Rule::LimitReached`] for one that would take a total over), naming the field and the limit.
//!
//! # Why no report can overflow
//!
//! A ceiling on each amount alone is not enough: running totals add up without end (a
//! contract's invoices in a month, what one member owes another over the years). So the ledger
//! keeps each member's *turnover*: the sum of the sizes of every amount its postings record or
//! make the fold post ([`charge`]: a contract's phased value, a re-phasing's changes, an
//! activity count's change in value, a settlement's figures…), charged to the member that acts
//! (the provider for activity and invoices, the commissioner for payments, disputes and CQUIN,
//! a partner for its pledges and payments, the host for spend, the member for its returns);
//! what only system finance posts (plans, agreements, variations, adjustments, terminations,
//! funds, settlements) is charged to the system. [`Ledger::decide`](crate::Ledger::decide)
//! refuses an event that would take its account past [`TURNOVER_MAX`]. With at most
//! [`MEMBERS_MAX`] members the whole ledger's turnover `T` is at most
//! `(MEMBERS_MAX + 1) × TURNOVER_MAX`.
//!
//! Every running total the fold keeps is a sum of postings, and each posting lands in at most
//! four running totals (a contract's line, the payer's expenditure, the payee's income, the
//! pair's flow), so all running totals together are at most `4T` in size and every fact the
//! fold keeps (a return, a plan, a tranche) at most `T`. Every figure a report computes is a
//! signed sum of running totals and facts (or a part of a largest-remainder split of one,
//! never larger than it) in which each appears at most twice (the consolidated net takes the
//! eliminations off income and off expenditure; the forecast variance counts later months'
//! plan in the forecast and in the plan), and each intermediate is a part of that sum: so
//! every figure and intermediate is at most `2 × (4T + T) = 10T`. [`REPORT_MULTIPLE`] (16)
//! covers that with room, and a compile-time assertion below checks
//! `(MEMBERS_MAX + 1) × REPORT_MULTIPLE × TURNOVER_MAX ≤ i64::MAX`. Counts (units, metric
//! values) are capped so that a year of them fits `u64`/`i64` with room.
//!
//! The bound is per member so that a member's finance team that posts absurd amounts uses up
//! its own allowance only: the system and the other members go on posting.

use std::fmt;

use crate::contract::{ContractEvent, stopped_after};
use crate::error::{DomainError, Rule};
use crate::ids::MemberCode;
use crate::money::Pence;
use crate::system::SystemEvent;
use crate::{BudgetEvent, Event, FundEvent, Ledger};

/// The most any one amount may be, and the most any total the ledger keeps of one aggregate
/// may be (a pool's pledges or spend, a fund's allocations, a contract's annual value, the
/// value of an activity count): £100bn. NHS England's whole budget is about £190bn a year and
/// an ICS's a few £bn (the largest trust or council spends about £3bn), so no figure of one
/// ICS comes near it; `i64::MAX` pence is about 900,000 times it.
pub const AMOUNT_CEILING: Pence = Pence::new(10_000_000_000_000);

/// The most units one count may be: activity (spells, attendances, contacts) in a month, the
/// units planned for a contract's year, a capitation population. One billion: more than a
/// year of all GP appointments in England (about 350m) and fifteen times its population, so a
/// year of counts summed stays far inside `u64`.
pub const UNITS_MAX: u64 = 1_000_000_000;

/// The most a count metric (emergency admissions, emergency bed days) one member reports for
/// a month may be: one billion, as [`UNITS_MAX`] (England has about 6.5m emergency admissions
/// and 40m emergency bed days a year).
pub const METRIC_COUNT_MAX: i64 = 1_000_000_000;

/// The most members a system may admit. The largest ICSs have a few dozen trusts and councils
/// and around a hundred primary care networks; 500 leaves room. It also bounds every list
/// that names each member at most once (a return's counterparty balances, a budget's partners
/// and shares, a fund's recipients).
pub const MEMBERS_MAX: usize = 500;

/// The most schemes a pooled budget may have, those it was established with and those its
/// variations added together. A Better Care Fund plan lists tens of schemes, the largest a
/// few hundred lines; 500 keeps the largest budget event well inside what a reader decodes.
pub const SCHEMES_MAX: usize = 500;

/// The most conditions a sustainability fund's tranches may be earned against. Real funds
/// had two or three (finance, A&E; CQUIN has at most five indicators); 20 leaves room.
pub const CONDITIONS_MAX: usize = 20;

/// The most turnover one member's postings (or the system's own) may add up to over the
/// ledger's life: £10 trillion, some 50 years of NHS England's whole budget, or thousands of
/// years of the largest ICB's flows posted several times over. See the module doc for why it
/// keeps every report in range.
pub const TURNOVER_MAX: Pence = Pence::new(1_000_000_000_000_000);

/// How many times over a report may count the ledger's turnover: at most 10 (see the module
/// doc), with room.
pub const REPORT_MULTIPLE: i128 = 16;

const _: () = assert!(
    (MEMBERS_MAX as i128 + 1) * REPORT_MULTIPLE * (TURNOVER_MAX.get() as i128) <= i64::MAX as i128,
    "every member's turnover at its limit, counted REPORT_MULTIPLE times, must fit in pence"
);
const _: () = assert!(AMOUNT_CEILING.get() <= TURNOVER_MAX.get());
const _: () = assert!(12 * (UNITS_MAX as u128) * 1000 <= u64::MAX as u128);

/// Whose turnover a posting counts in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Account {
    /// What only system finance posts.
    System,
    Member(MemberCode),
}

impl fmt::Display for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Account::System => f.write_str("the system"),
            Account::Member(member) => write!(f, "{member}"),
        }
    }
}

/// Refuses an amount over [`AMOUNT_CEILING`] in size, naming the field.
pub(crate) fn amount(field: &str, amount: Pence) -> Result<(), DomainError> {
    if amount.get().unsigned_abs() > AMOUNT_CEILING.get().unsigned_abs() {
        return Err(DomainError::invalid(
            field,
            format!("{amount} is over the ceiling of {AMOUNT_CEILING} on any one amount"),
        ));
    }
    Ok(())
}

/// Refuses a total of an aggregate (`what`) that would be over [`AMOUNT_CEILING`] (or
/// overflow on the way): `FAILED_PRECONDITION`, naming the field that would take it there.
pub(crate) fn total(
    field: &str,
    what: &str,
    total: Result<Pence, crate::money::MoneyError>,
) -> Result<Pence, DomainError> {
    match total {
        Ok(total) if total.get().unsigned_abs() <= AMOUNT_CEILING.get().unsigned_abs() => Ok(total),
        Ok(total) => Err(DomainError::rejected(
            Rule::LimitReached,
            format!("{field}: {what} would be {total}, over the ceiling of {AMOUNT_CEILING}"),
        )),
        Err(_) => Err(DomainError::rejected(
            Rule::LimitReached,
            format!("{field}: {what} would be over the ceiling of {AMOUNT_CEILING}"),
        )),
    }
}

/// Refuses a count of units over [`UNITS_MAX`], naming the field.
pub(crate) fn units(field: &str, units: u64) -> Result<(), DomainError> {
    if units > UNITS_MAX {
        return Err(DomainError::invalid(
            field,
            format!("{units} units is more than the most one count may be, {UNITS_MAX}"),
        ));
    }
    Ok(())
}

/// Refuses a list of more than `max` entries, naming the field.
pub(crate) fn list(field: &str, len: usize, max: usize) -> Result<(), DomainError> {
    if len > max {
        return Err(DomainError::invalid(
            field,
            format!("{len} entries; at most {max} are allowed"),
        ));
    }
    Ok(())
}

fn size(amount: Pence) -> u64 {
    amount.get().unsigned_abs()
}

fn sizes(amounts: impl IntoIterator<Item = Pence>) -> u64 {
    amounts
        .into_iter()
        .fold(0u64, |total, amount| total.saturating_add(size(amount)))
}

/// The turnover `event` adds and whose it is, judged against the state it is decided on (or,
/// replaying, applied to). Deterministic, so deciding and replaying agree; never fails (what
/// cannot be computed counts as `u64::MAX`, which no account has room for).
pub fn charge(ledger: &Ledger, event: &Event) -> (Account, u64) {
    match event {
        Event::System(event) => match event {
            SystemEvent::PlanAgreed {
                income,
                expenditure,
                ..
            } => (Account::System, sizes([*income, *expenditure])),
            SystemEvent::ReturnSubmitted { monthly_return, .. } => {
                let balances = monthly_return
                    .balances
                    .iter()
                    .flat_map(|b| [b.income, b.expenditure, b.receivables, b.payables].into_iter());
                let amounts = [monthly_return.income, monthly_return.expenditure];
                (
                    Account::Member(monthly_return.member),
                    sizes(amounts.into_iter().chain(balances)),
                )
            }
            // Counts and thresholds: no amount any report adds up.
            SystemEvent::Established { .. }
            | SystemEvent::MemberAdmitted { .. }
            | SystemEvent::MetricReported { .. }
            | SystemEvent::PeriodClosed { .. }
            | SystemEvent::ReturnFiled(_) => (Account::System, 0),
        },
        Event::Budget { budget, event } => {
            let state = ledger.budgets.get(budget);
            match event {
                BudgetEvent::Pledged {
                    partner, amount, ..
                } => {
                    // The pledge, and the re-phasing of the partner's contribution over the
                    // year that the fold posts (each month moves by its share of the pledge).
                    let before = state.map_or(Pence::ZERO, |s| s.pledged_by(partner));
                    let rephased = before
                        .checked_add(*amount)
                        .and_then(|after| {
                            let (old, new) = (
                                crate::contract::phase(before)?,
                                crate::contract::phase(after)?,
                            );
                            Ok(sizes(
                                old.iter()
                                    .zip(new)
                                    .map(|(o, n)| n.checked_sub(*o).unwrap_or(Pence::MAX)),
                            ))
                        })
                        .unwrap_or(u64::MAX);
                    (
                        Account::Member(*partner),
                        size(*amount).saturating_add(rephased),
                    )
                }
                BudgetEvent::ContributionPaid {
                    partner, amount, ..
                } => (Account::Member(*partner), size(*amount)),
                BudgetEvent::SpendRecorded { amount, .. } => (
                    state.map_or(Account::System, |s| Account::Member(s.host)),
                    size(*amount),
                ),
                BudgetEvent::RiskShareSettled {
                    revenue_pledged,
                    revenue_spend,
                    variance,
                    allocations,
                    ..
                } => (
                    Account::System,
                    sizes([*revenue_pledged, *revenue_spend, *variance])
                        .saturating_add(sizes(allocations.iter().map(|a| a.amount))),
                ),
                BudgetEvent::Established { .. }
                | BudgetEvent::Varied { .. }
                | BudgetEvent::Closed { .. } => (Account::System, 0),
            }
        }
        Event::Fund { event, .. } => (Account::System, fund_turnover(event)),
        Event::Contract { contract, event } => {
            let state = ledger.contracts.get(contract);
            let commissioner = state.map_or(Account::System, |s| Account::Member(s.commissioner));
            let provider = state.map_or(Account::System, |s| Account::Member(s.provider));
            match event {
                // The fact and its twelve phased months (which sum to it).
                ContractEvent::Agreed { annual_value, .. } => {
                    (Account::System, size(*annual_value).saturating_mul(2))
                }
                ContractEvent::Varied {
                    period,
                    annual_value_before,
                    annual_value_after,
                    ..
                } => {
                    let rephased = state
                        .map(|s| {
                            crate::contract::rephase(
                                s.year,
                                &s.phased,
                                *period,
                                *annual_value_after,
                            )
                            .map_or(u64::MAX, |changes| {
                                sizes(changes.into_iter().map(|(_, c)| c))
                            })
                        })
                        .unwrap_or(u64::MAX);
                    (
                        Account::System,
                        sizes([*annual_value_before, *annual_value_after]).saturating_add(rephased),
                    )
                }
                ContractEvent::Terminated { period, .. } => (
                    Account::System,
                    state.map_or(u64::MAX, |s| {
                        sizes(
                            stopped_after(s.year, &s.phased, *period)
                                .into_iter()
                                .map(|(_, a)| a),
                        )
                    }),
                ),
                ContractEvent::ActivityRecorded { value_change, .. } => {
                    (provider, size(*value_change))
                }
                ContractEvent::InvoiceRaised { amount, .. } => (provider, size(*amount)),
                ContractEvent::PaymentRecorded { amount, .. }
                | ContractEvent::DisputeRaised { amount, .. } => (commissioner, size(*amount)),
                // What is resolved, what is written off the value and what is credited.
                ContractEvent::DisputeResolved {
                    provider_keeps,
                    written_off,
                    ..
                } => (
                    commissioner,
                    sizes([*provider_keeps, *written_off, *written_off, *written_off]),
                ),
                ContractEvent::CquinReconciled {
                    value,
                    earned,
                    deduction,
                    ..
                } => (
                    commissioner,
                    sizes([*value, *earned, *deduction, *deduction]),
                ),
                ContractEvent::AdjustmentRecorded { amount, .. } => {
                    (Account::System, size(*amount))
                }
            }
        }
    }
}

fn fund_turnover(event: &FundEvent) -> u64 {
    use crate::fund::Figures;
    match event {
        FundEvent::Allocated {
            recipients,
            total,
            tranches,
            ..
        } => sizes(
            recipients
                .iter()
                .map(|r| r.allocation)
                .chain([*total])
                .chain(tranches.iter().copied()),
        ),
        FundEvent::TrancheAssessed {
            tranche,
            outcomes,
            earned,
            forfeited,
            earned_by_recipient,
            ..
        } => {
            let outcomes = outcomes.iter().flat_map(|o| {
                let figures = match o.figures {
                    Figures::SystemFinance {
                        actual_ytd,
                        control_total_ytd,
                    } => [actual_ytd, control_total_ytd],
                    Figures::AeFourHour { .. } => [Pence::ZERO; 2],
                };
                [o.amount, o.earned, o.forfeited].into_iter().chain(figures)
            });
            sizes(
                [*tranche, *earned, *forfeited]
                    .into_iter()
                    .chain(outcomes)
                    .chain(earned_by_recipient.iter().map(|a| a.amount)),
            )
        }
        FundEvent::TranchePaid { payments, .. } => sizes(payments.iter().map(|a| a.amount)),
        FundEvent::ClawedBack { amount, .. } => size(*amount),
    }
}

/// Refuses `events` if they would take the turnover of whoever they are charged to past
/// [`TURNOVER_MAX`] (`FAILED_PRECONDITION`, [`Rule::LimitReached`], naming `field`).
pub(crate) fn check_turnover(
    ledger: &Ledger,
    events: &[Event],
    field: &str,
) -> Result<(), DomainError> {
    let mut charged: std::collections::BTreeMap<Account, u64> = std::collections::BTreeMap::new();
    for event in events {
        let (account, amount) = charge(ledger, event);
        let total = charged
            .entry(account)
            .or_insert_with(|| ledger.turnover_of(account));
        *total = total.saturating_add(amount);
        if *total > TURNOVER_MAX.get().unsigned_abs() {
            let so_far = Pence::new(i64::try_from(ledger.turnover_of(account)).unwrap_or(i64::MAX));
            return Err(DomainError::rejected(
                Rule::LimitReached,
                format!(
                    "{field}: {account} has posted {so_far} of turnover; this would take it past \
                     the {TURNOVER_MAX} one member (or the system) may post over the ledger's life"
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::budget::{BudgetCommand, Scheme, Share};
    use crate::contract::{ContractCommand, PaymentModel};
    use crate::fund::{Condition, ConditionKind, FundCommand, Recipient};
    use crate::ids::{Code, MemberKind};
    use crate::system::{CounterpartyBalance, Metric, MonthlyReturn, SystemCommand};
    use crate::testing::*;
    use crate::{BasisPoints, Command};

    const PENNY: Pence = Pence::new(1);

    fn over(amount: Pence) -> Pence {
        amount.checked_add(PENNY).expect("in range")
    }

    /// `at_limit` is accepted on `given`; `over_limit` is refused as `then` expects, and
    /// leaves the state as it was.
    fn limit(given: &[Event], at_limit: &Command, over_limit: &Command, then: &Then) {
        let state = ledger(given);
        if let Err(error) = state.clone().execute(at_limit) {
            panic!("at the limit, refused: {error}\n{at_limit:?}");
        }
        let mut refused = state.clone();
        let outcome = refused.execute(over_limit);
        let expected = match (then, &outcome) {
            (Then::Invalid(f), Err(DomainError::Invalid { field, reason })) => {
                field == f && !reason.is_empty()
            }
            (Then::Rejected(r), Err(DomainError::Rejected { rule, .. })) => rule == r,
            _ => false,
        };
        assert!(
            expected,
            "over the limit: expected {then:?}, got {outcome:?}"
        );
        assert_eq!(refused, state, "a refused command changed the state");
    }

    fn contract(code_: &str, command: ContractCommand) -> Command {
        Command::Contract {
            contract: code(code_),
            command,
        }
    }

    fn agree(provider: &str, model: PaymentModel) -> ContractCommand {
        ContractCommand::Agree {
            commissioner: member("KCCG"),
            provider: member(provider),
            year: fy(),
            model,
            description: text("services"),
        }
    }

    fn invoice(name: &str, amount: Pence) -> Command {
        contract(
            "C3",
            ContractCommand::RaiseInvoice {
                invoice: code(name),
                period: period(2018, 5),
                amount,
                corrects: None,
            },
        )
    }

    /// The demo system with C3 (KHFT, tariff) and C1 (KCHT, block) agreed.
    fn with_contracts() -> Vec<Event> {
        after(
            demo_system(),
            &[
                contract(
                    "C3",
                    agree(
                        "KHFT",
                        PaymentModel::ActivityTariff {
                            planned_units: 24_000,
                            unit_price: pounds(3_000),
                        },
                    ),
                ),
                contract(
                    "C1",
                    agree(
                        "KCHT",
                        PaymentModel::Block {
                            annual_value: pounds(84_000_000),
                        },
                    ),
                ),
            ],
        )
    }

    #[test]
    fn an_invoice_is_at_most_the_ceiling() {
        let given = with_contracts();
        let at = invoice("I1", AMOUNT_CEILING);
        let field = Then::Invalid("amount_pence");
        limit(&given, &at, &invoice("I1", over(AMOUNT_CEILING)), &field);
        limit(&given, &at, &invoice("I1", Pence::MAX), &field);
    }

    #[test]
    fn returns_and_plans_are_at_most_the_ceiling() {
        let given = demo_system();
        let submit = |income: Pence, balance: Pence| {
            Command::System(SystemCommand::SubmitReturn(MonthlyReturn {
                member: member("KHFT"),
                period: period(2018, 1),
                income,
                expenditure: Pence::ZERO,
                balances: vec![CounterpartyBalance {
                    counterparty: member("KCCG"),
                    income: balance,
                    expenditure: Pence::ZERO,
                    receivables: Pence::ZERO,
                    payables: Pence::ZERO,
                }],
            }))
        };
        let at = submit(AMOUNT_CEILING, AMOUNT_CEILING);
        limit(
            &given,
            &at,
            &submit(Pence::MAX, Pence::ZERO),
            &Then::Invalid("income_pence"),
        );
        limit(
            &given,
            &at,
            &submit(Pence::ZERO, over(AMOUNT_CEILING)),
            &Then::Invalid("balances[0].income_pence"),
        );
        let plan = |income: Pence| {
            Command::System(SystemCommand::AgreePlan {
                member: member("KHFT"),
                year: fy(),
                income,
                expenditure: Pence::ZERO,
            })
        };
        limit(
            &given,
            &plan(AMOUNT_CEILING),
            &plan(over(AMOUNT_CEILING)),
            &Then::Invalid("income_pence"),
        );
    }

    #[test]
    fn a_contract_is_worth_at_most_the_ceiling_and_counts_at_most_units_max() {
        let given = demo_system();
        let block =
            |annual_value| contract("C9", agree("KHFT", PaymentModel::Block { annual_value }));
        limit(
            &given,
            &block(AMOUNT_CEILING),
            &block(over(AMOUNT_CEILING)),
            &Then::Invalid("model.block.annual_value_pence"),
        );
        let tariff = |planned_units| {
            contract(
                "C9",
                agree(
                    "KHFT",
                    PaymentModel::ActivityTariff {
                        planned_units,
                        unit_price: Pence::new(10_000),
                    },
                ),
            )
        };
        limit(
            &given,
            &tariff(UNITS_MAX),
            &tariff(UNITS_MAX + 1),
            &Then::Invalid("model.activity_tariff.planned_units"),
        );
        // A count on a block contract changes no value: only the cap on units applies.
        let given = with_contracts();
        let count = |units| {
            contract(
                "C1",
                ContractCommand::RecordActivity {
                    period: period(2018, 5),
                    units,
                    corrects: None,
                },
            )
        };
        limit(
            &given,
            &count(UNITS_MAX),
            &count(UNITS_MAX + 1),
            &Then::Invalid("units"),
        );
    }

    #[test]
    fn a_metric_counts_at_most_metric_count_max() {
        let report = |value| {
            Command::System(SystemCommand::ReportMetric {
                member: member("KHFT"),
                period: period(2018, 1),
                metric: Metric::EmergencyAdmissions,
                value,
            })
        };
        limit(
            &demo_system(),
            &report(METRIC_COUNT_MAX),
            &report(METRIC_COUNT_MAX + 1),
            &Then::Invalid("value"),
        );
    }

    #[test]
    fn a_system_admits_at_most_members_max() {
        let admit = |i: usize| {
            let code = format!("M{i:04}");
            Command::System(SystemCommand::AdmitMember {
                member: member(&code),
                name: text(&code),
                kind: MemberKind::AcuteTrust,
                in_control_total: true,
            })
        };
        let mut given = vec![established()];
        given.extend((1..MEMBERS_MAX).map(|i| {
            let code = format!("M{i:04}");
            admitted(&code, MemberKind::AcuteTrust, true)
        }));
        // The 500th is admitted; with 500, the 501st is refused and nothing changes.
        let full = after(given, &[admit(MEMBERS_MAX)]);
        let mut state = ledger(&full);
        let before = state.clone();
        let refused = state.execute(&admit(MEMBERS_MAX + 1));
        assert!(
            matches!(&refused, Err(DomainError::Rejected { rule: Rule::LimitReached, detail }) if detail.starts_with("member:")),
            "{refused:?}"
        );
        assert_eq!(state, before);
    }

    fn schemes(n: usize) -> Vec<Scheme> {
        (0..n)
            .map(|i| Scheme {
                scheme: Code::new(format!("S{i}")).expect("code"),
                name: text("scheme"),
                ring_fenced: false,
            })
            .collect()
    }

    fn halves() -> Vec<Share> {
        ["KCC", "KCCG"]
            .map(|m| Share {
                member: member(m),
                share: BasisPoints::new(5_000),
            })
            .to_vec()
    }

    fn establish(n: usize) -> Command {
        Command::Budget {
            budget: code("BCF"),
            command: BudgetCommand::Establish {
                name: text("BCF"),
                host: member("KCC"),
                year: fy(),
                partners: vec![member("KCC"), member("KCCG")],
                schemes: schemes(n),
                overspend_shares: halves(),
                underspend_shares: halves(),
            },
        }
    }

    fn vary(add: Vec<Scheme>) -> Command {
        Command::Budget {
            budget: code("BCF"),
            command: BudgetCommand::Vary {
                reason: text("more schemes"),
                overspend_shares: None,
                underspend_shares: None,
                add_schemes: add,
            },
        }
    }

    #[test]
    fn a_budget_has_at_most_schemes_max_schemes() {
        let given = demo_system();
        limit(
            &given,
            &establish(SCHEMES_MAX),
            &establish(SCHEMES_MAX + 1),
            &Then::Invalid("schemes"),
        );
        limit(
            &given,
            &establish(SCHEMES_MAX),
            &establish(60_000),
            &Then::Invalid("schemes"),
        );
        // Variations add up: a budget established with all but one may add one more, not two.
        let given = after(demo_system(), &[establish(SCHEMES_MAX - 1)]);
        let new = |from: usize, n: usize| {
            (from..from + n)
                .map(|i| Scheme {
                    scheme: Code::new(format!("N{i}")).expect("code"),
                    name: text("new"),
                    ring_fenced: false,
                })
                .collect()
        };
        limit(
            &given,
            &vary(new(0, 1)),
            &vary(new(0, 2)),
            &Then::Rejected(Rule::LimitReached),
        );
        limit(
            &given,
            &vary(new(0, 1)),
            &vary(new(0, 100_000)),
            &Then::Invalid("add_schemes"),
        );
    }

    #[test]
    fn a_fund_has_at_most_conditions_max_conditions() {
        let allocate = |n: u32| {
            let conditions = (0..n)
                .map(|i| Condition {
                    condition: Code::new(format!("K{i}")).expect("code"),
                    kind: ConditionKind::SystemFinance,
                    weight: BasisPoints::new(if i == 0 { 10_000 } else { 0 }),
                })
                .collect();
            Command::Fund {
                fund: code("SSF"),
                command: FundCommand::Allocate {
                    name: text("SSF"),
                    year: fy(),
                    recipients: vec![Recipient {
                        member: member("KHFT"),
                        allocation: AMOUNT_CEILING,
                    }],
                    conditions,
                },
            }
        };
        let max = u32::try_from(CONDITIONS_MAX).expect("small");
        let given = demo_system();
        limit(
            &given,
            &allocate(max),
            &allocate(max + 1),
            &Then::Invalid("conditions"),
        );
        limit(
            &given,
            &allocate(max),
            &allocate(60_000),
            &Then::Invalid("conditions"),
        );
    }

    /// KHFT invoices up to its turnover limit; the next penny is refused, and the system and
    /// the other members post on. Every report of the full ledger computes.
    #[test]
    fn a_member_posts_at_most_turnover_max_and_every_report_still_computes() {
        let per_invoice = AMOUNT_CEILING.get();
        let invoices = TURNOVER_MAX.get() / per_invoice;
        assert_eq!(
            invoices * per_invoice,
            TURNOVER_MAX.get(),
            "whole invoices fill it"
        );
        let given = with_contracts();
        let khft_before = ledger(&given).turnover_of(Account::Member(member("KHFT")));
        assert_eq!(
            khft_before, 0,
            "agreeing a contract is the system's turnover"
        );
        let mut commands: Vec<Command> = (0..invoices)
            .map(|i| invoice(&format!("I{i}"), AMOUNT_CEILING))
            .collect();
        // KCCG pays them all: its own turnover, filled the same way.
        commands.extend((0..invoices).map(|i| {
            contract(
                "C3",
                ContractCommand::RecordPayment {
                    invoice: Code::new(format!("I{i}")).expect("code"),
                    period: period(2018, 6),
                    amount: AMOUNT_CEILING,
                },
            )
        }));
        let full = after(given, &commands);
        let state = ledger(&full);
        assert_eq!(
            state.turnover_of(Account::Member(member("KHFT"))),
            TURNOVER_MAX.get().unsigned_abs()
        );
        limit(
            &full,
            &contract(
                "C1",
                ContractCommand::RaiseInvoice {
                    invoice: code("K1"),
                    period: period(2018, 5),
                    amount: AMOUNT_CEILING,
                    corrects: None,
                },
            ),
            &invoice("ONE-MORE", PENNY),
            &Then::Rejected(Rule::LimitReached),
        );
        every_report(&full).expect("every report of a full ledger computes");
    }

    /// What the limits prevent: two invoices near `i64::MAX` on one contract and month
    /// overflow the fold (so [`every_report`] can fail).
    #[test]
    fn without_the_limits_a_fold_overflows() {
        let mut log = with_contracts();
        for name in ["HUGE1", "HUGE2"] {
            log.push(Event::Contract {
                contract: code("C3"),
                event: ContractEvent::InvoiceRaised {
                    invoice: code(name),
                    period: period(2018, 5),
                    amount: Pence::MAX,
                    corrects: None,
                },
            });
        }
        let failed = every_report(&log).expect_err("the fold overflows");
        assert!(failed.contains("overflow"), "{failed}");
    }

    #[test]
    fn a_log_from_before_the_limits_replays_with_its_account_full() {
        let mut given = with_contracts();
        given.push(Event::Contract {
            contract: code("C3"),
            event: ContractEvent::InvoiceRaised {
                invoice: code("HUGE"),
                period: period(2018, 5),
                amount: Pence::MAX,
                corrects: None,
            },
        });
        let state = ledger(&given);
        assert!(
            state.turnover_of(Account::Member(member("KHFT"))) > TURNOVER_MAX.get().unsigned_abs()
        );
        let refused = state.decide(&invoice("I2", PENNY));
        assert!(
            matches!(&refused, Err(DomainError::Rejected { rule: Rule::LimitReached, detail }) if detail.starts_with("amount_pence: KHFT")),
            "{refused:?}"
        );
    }
}
