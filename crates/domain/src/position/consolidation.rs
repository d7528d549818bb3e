//! Consolidation: the members' gross income and expenditure (from their returns, before the
//! sustainability fund), less what flows between them (from the ledger, which both sides
//! share), gives the system's consolidated income and expenditure. Each elimination takes the
//! same amount off income and expenditure, so the consolidated net equals the gross net.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::MemberCode;
use crate::money::Pence;
use crate::period::{FinancialYear, Month};

use super::fold::PairLine;
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

/// Which members are consolidated.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ConsolidationScope {
    /// The members counted in the control total (the NHS bodies of the system).
    ControlTotal,
    /// Every member, the local authority and PCNs too.
    WiderIcs,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsolidatedMember {
    pub member: MemberCode,
    pub income_ytd: Pence,
    pub expenditure_ytd: Pence,
}

/// What flows between two members in the year to date, eliminated from both sides.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Elimination {
    /// The pair, the smaller code first.
    pub a: MemberCode,
    pub b: MemberCode,
    /// `a`'s income from `b` (and `b`'s expenditure with `a`).
    pub a_income_from_b: Pence,
    /// `b`'s income from `a` (and `a`'s expenditure with `b`).
    pub b_income_from_a: Pence,
    /// Taken off consolidated income, and off consolidated expenditure.
    pub amount: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsolidationReport {
    pub basis: Basis,
    pub scope: ConsolidationScope,
    pub members: Vec<ConsolidatedMember>,
    pub gross_income: Pence,
    pub gross_expenditure: Pence,
    pub gross_net: Pence,
    /// Pairs with anything to eliminate, in order.
    pub eliminations: Vec<Elimination>,
    pub eliminated: Pence,
    pub consolidated_income: Pence,
    pub consolidated_expenditure: Pence,
    pub consolidated_net: Pence,
}

impl Report for ConsolidationReport {
    const KIND: &'static str = "consolidation/v1";
}

impl Snapshot<'_> {
    /// Consolidated income and expenditure of the members in `scope`, year to date.
    pub fn consolidation(
        &self,
        year: FinancialYear,
        month: Month,
        scope: ConsolidationScope,
    ) -> Result<ConsolidationReport, ReportError> {
        let basis = self.basis(year, month)?;
        let overflow = ReportError::overflow("consolidation");
        let in_scope: BTreeMap<&MemberCode, _> = self
            .members()
            .filter(|(_, m)| scope == ConsolidationScope::WiderIcs || m.in_control_total)
            .collect();
        let mut members = Vec::with_capacity(in_scope.len());
        let (mut gross_income, mut gross_expenditure) = (Pence::ZERO, Pence::ZERO);
        for (code, facts) in &in_scope {
            let figures = self.member_position(code, facts, year, month)?.figures;
            gross_income = gross_income
                .checked_add(figures.actual_income_ytd)
                .map_err(&overflow)?;
            gross_expenditure = gross_expenditure
                .checked_add(figures.actual_expenditure_ytd)
                .map_err(&overflow)?;
            members.push(ConsolidatedMember {
                member: *(*code),
                income_ytd: figures.actual_income_ytd,
                expenditure_ytd: figures.actual_expenditure_ytd,
            });
        }
        let (from, to) = Snapshot::ytd(year, month);
        let mut flows: BTreeMap<(MemberCode, MemberCode), (Pence, Pence)> = BTreeMap::new();
        for (payer, payee) in self.flow_pairs() {
            if !in_scope.contains_key(payer) || !in_scope.contains_key(payee) {
                continue;
            }
            let amount = self.pair_ledger(payer, payee, PairLine::Accrued, from, to)?;
            let (a, b) = super::pair(payer, payee);
            let entry = flows.entry((a, b)).or_default();
            // The payee has the income: `a`'s income from `b` when `a` is the payee.
            let side = if *payee == a {
                &mut entry.0
            } else {
                &mut entry.1
            };
            *side = side.checked_add(amount).map_err(&overflow)?;
        }
        let mut eliminations = Vec::new();
        let mut eliminated = Pence::ZERO;
        for ((a, b), (a_income_from_b, b_income_from_a)) in flows {
            let amount = a_income_from_b
                .checked_add(b_income_from_a)
                .map_err(&overflow)?;
            if a_income_from_b == Pence::ZERO && b_income_from_a == Pence::ZERO {
                continue;
            }
            eliminated = eliminated.checked_add(amount).map_err(&overflow)?;
            eliminations.push(Elimination {
                a,
                b,
                a_income_from_b,
                b_income_from_a,
                amount,
            });
        }
        let consolidated_income = gross_income.checked_sub(eliminated).map_err(&overflow)?;
        let consolidated_expenditure = gross_expenditure
            .checked_sub(eliminated)
            .map_err(&overflow)?;
        Ok(ConsolidationReport {
            basis,
            scope,
            members,
            gross_income,
            gross_expenditure,
            gross_net: gross_income
                .checked_sub(gross_expenditure)
                .map_err(&overflow)?,
            eliminations,
            eliminated,
            consolidated_income,
            consolidated_expenditure,
            consolidated_net: consolidated_income
                .checked_sub(consolidated_expenditure)
                .map_err(&overflow)?,
        })
    }
}
