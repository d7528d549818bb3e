//! The Agreement of Balances: for each pair of members and a month (the exercise runs at M6,
//! M9 and M12), what each side's return states it holds with the other — income and
//! expenditure year to date, receivables and payables at the month's end — against the other
//! side's statement and against what the ledger holds between them.
//!
//! Both sides of an in-system contract post from the same ledger event, so the ledger
//! column is the same for both and agrees by construction; the mismatches left are between
//! what members *report* and each other or the ledger. A difference is flagged when its size
//! is over the threshold for its measure (BRIEF §5: agreement is required over £300,000 for
//! receivables and payables and over £3,000,000 for income and expenditure); smaller
//! differences are listed, not flagged.
//!
//! By default the exercise covers the NHS bodies (the Department's accounting boundary);
//! the local authority and PCNs can be included.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::MemberCode;
use crate::money::Pence;
use crate::period::{FinancialYear, Month};

use super::fold::PairLine;
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

/// The months the exercise runs at: Q2 (M6), Q3 (M9) and year end (M12).
pub const AOB_MONTHS: [u8; 3] = [6, 9, 12];

/// Differences over these amounts must be agreed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AobThresholds {
    pub receivables_payables: Pence,
    pub income_expenditure: Pence,
}

impl Default for AobThresholds {
    /// £300,000 receivables and payables; £3,000,000 income and expenditure.
    fn default() -> Self {
        AobThresholds {
            receivables_payables: Pence::new(300_000 * 100),
            income_expenditure: Pence::new(3_000_000 * 100),
        }
    }
}

/// Which members take part.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum AobScope {
    /// The commissioner and the trusts.
    #[default]
    NhsBodies,
    /// Every member, the local authority and PCNs too.
    AllMembers,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AobOptions {
    pub thresholds: AobThresholds,
    pub scope: AobScope,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum AobMeasure {
    /// The creditor's income from the debtor against the debtor's expenditure with it, year
    /// to date.
    IncomeExpenditure,
    /// The creditor's receivables from the debtor against the debtor's payables to it, at the
    /// month's end.
    ReceivablesPayables,
}

/// One measure between two members, in one direction.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AobLine {
    pub measure: AobMeasure,
    /// The member with the income or the receivable.
    pub creditor: MemberCode,
    /// The member with the expenditure or the payable.
    pub debtor: MemberCode,
    pub creditor_states: Pence,
    pub debtor_states: Pence,
    /// What the ledger holds (contracts and pooled budgets).
    pub ledger: Pence,
    /// `creditor_states − debtor_states`.
    pub difference: Pence,
    /// `creditor_states − ledger`.
    pub creditor_vs_ledger: Pence,
    /// `debtor_states − ledger`.
    pub debtor_vs_ledger: Pence,
    pub threshold: Pence,
    /// Any of the three differences is not zero.
    pub mismatched: bool,
    /// Any of them is over the threshold in size: it must be agreed.
    pub over_threshold: bool,
}

/// A month with no return from a member taking part (its statements count as nothing).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MissingReturn {
    pub member: MemberCode,
    pub month: Month,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgreementOfBalances {
    pub basis: Basis,
    pub options: AobOptions,
    pub returns_missing: Vec<MissingReturn>,
    /// Every line with anything stated or held, by pair (smaller code first), measure and
    /// direction.
    pub lines: Vec<AobLine>,
    pub mismatched_lines: u64,
    pub lines_over_threshold: u64,
}

impl Report for AgreementOfBalances {
    const KIND: &'static str = "agreement-of-balances/v1";
}

/// What one member's returns state it holds with one counterparty.
#[derive(Clone, Copy, Default)]
struct Stated {
    income_ytd: Pence,
    expenditure_ytd: Pence,
    receivables: Pence,
    payables: Pence,
}

impl Snapshot<'_> {
    /// The Agreement of Balances at `month` of `year`.
    pub fn agreement_of_balances(
        &self,
        year: FinancialYear,
        month: Month,
        options: AobOptions,
    ) -> Result<AgreementOfBalances, ReportError> {
        let basis = self.basis(year, month)?;
        let overflow = ReportError::overflow("agreement of balances");
        let members: Vec<&MemberCode> = self
            .members()
            .filter(|(_, m)| options.scope == AobScope::AllMembers || m.kind.is_nhs_body())
            .map(|(code, _)| code)
            .collect();
        let (from, to) = Snapshot::ytd(year, month);

        let mut stated: BTreeMap<(&MemberCode, &MemberCode), Stated> = BTreeMap::new();
        let mut returns_missing = Vec::new();
        for member in &members {
            for period in year.periods().take(month.index() + 1) {
                if self.monthly_return(member, period).is_none() {
                    returns_missing.push(MissingReturn {
                        member: *(*member),
                        month: period.month,
                    });
                }
                for (counterparty, balance) in self.stated_balances(member, period) {
                    let entry = stated.entry((*member, counterparty)).or_default();
                    entry.income_ytd = entry
                        .income_ytd
                        .checked_add(balance.income)
                        .map_err(&overflow)?;
                    entry.expenditure_ytd = entry
                        .expenditure_ytd
                        .checked_add(balance.expenditure)
                        .map_err(&overflow)?;
                    if period == to {
                        entry.receivables = balance.receivables;
                        entry.payables = balance.payables;
                    }
                }
            }
        }
        let states = |member: &MemberCode, counterparty: &MemberCode| {
            stated
                .get(&(member, counterparty))
                .copied()
                .unwrap_or_default()
        };

        let mut lines = Vec::new();
        for (i, a) in members.iter().enumerate() {
            for b in members.iter().skip(i + 1) {
                // What `debtor` owes `creditor` through the ledger at the month's end.
                let owed = |creditor: &MemberCode, debtor: &MemberCode| {
                    let accrued = self.pair_ledger_to(debtor, creditor, PairLine::Accrued, to)?;
                    let paid = self.pair_ledger_to(debtor, creditor, PairLine::Paid, to)?;
                    accrued.checked_sub(paid).map_err(&overflow)
                };
                let net_owed_to_a = owed(a, b)?.checked_sub(owed(b, a)?).map_err(&overflow)?;
                let zero = Pence::ZERO;
                for measure in [
                    AobMeasure::IncomeExpenditure,
                    AobMeasure::ReceivablesPayables,
                ] {
                    for (creditor, debtor) in [(*a, *b), (*b, *a)] {
                        let (c, d) = (states(creditor, debtor), states(debtor, creditor));
                        let (creditor_states, debtor_states, ledger, threshold) = match measure {
                            AobMeasure::IncomeExpenditure => (
                                c.income_ytd,
                                d.expenditure_ytd,
                                self.pair_ledger(debtor, creditor, PairLine::Accrued, from, to)?,
                                options.thresholds.income_expenditure,
                            ),
                            AobMeasure::ReceivablesPayables => {
                                let owed = if creditor == *a {
                                    net_owed_to_a
                                } else {
                                    net_owed_to_a.checked_neg().map_err(&overflow)?
                                };
                                (
                                    c.receivables,
                                    d.payables,
                                    owed.max(zero),
                                    options.thresholds.receivables_payables,
                                )
                            }
                        };
                        if creditor_states == zero && debtor_states == zero && ledger == zero {
                            continue;
                        }
                        lines.push(aob_line(
                            measure,
                            creditor,
                            debtor,
                            [creditor_states, debtor_states, ledger],
                            threshold,
                        )?);
                    }
                }
            }
        }
        let count = |f: fn(&AobLine) -> bool| lines.iter().filter(|l| f(l)).count() as u64;
        Ok(AgreementOfBalances {
            basis,
            options,
            returns_missing,
            mismatched_lines: count(|l| l.mismatched),
            lines_over_threshold: count(|l| l.over_threshold),
            lines,
        })
    }
}

fn aob_line(
    measure: AobMeasure,
    creditor: &MemberCode,
    debtor: &MemberCode,
    [creditor_states, debtor_states, ledger]: [Pence; 3],
    threshold: Pence,
) -> Result<AobLine, ReportError> {
    let overflow = ReportError::overflow("agreement of balances");
    let difference = creditor_states
        .checked_sub(debtor_states)
        .map_err(&overflow)?;
    let creditor_vs_ledger = creditor_states.checked_sub(ledger).map_err(&overflow)?;
    let debtor_vs_ledger = debtor_states.checked_sub(ledger).map_err(&overflow)?;
    let differences = [difference, creditor_vs_ledger, debtor_vs_ledger];
    let over = |d: Pence| d.get().unsigned_abs() > threshold.get().unsigned_abs();
    Ok(AobLine {
        measure,
        creditor: *creditor,
        debtor: *debtor,
        creditor_states,
        debtor_states,
        ledger,
        difference,
        creditor_vs_ledger,
        debtor_vs_ledger,
        threshold,
        mismatched: differences.iter().any(|d| *d != Pence::ZERO),
        over_threshold: differences.into_iter().any(over),
    })
}
