//! The pooled budget statement: for each pool of the year, what each partner pledged and
//! paid, spend by scheme, the ring-fenced parts outside the risk share, the revenue pool's
//! variance, and the risk-share settlement per partner.

use serde::{Deserialize, Serialize};

use crate::budget::{Allocation, Share};
use crate::ids::{Code, MemberCode, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Month, Period};

use super::fold::{BudgetFacts, BudgetLine, phase};
use super::snapshot::{Basis, Snapshot};
use super::{Report, ReportError};

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BudgetPartner {
    pub member: MemberCode,
    pub host: bool,
    /// Pledged to the revenue pool (inside the risk share).
    pub pledged_revenue: Pence,
    /// Pledged to ring-fenced schemes (outside it).
    pub pledged_ring_fenced: Pence,
    pub pledged: Pence,
    /// Paid in, in every period up to the report's month.
    pub paid_to_date: Pence,
    /// `pledged − paid_to_date`.
    pub unpaid: Pence,
    pub overspend_share: BasisPoints,
    pub underspend_share: BasisPoints,
    /// The partner's part of the settled variance (positive: it pays more; negative: money
    /// returned to it); zero until settled.
    pub risk_share: Pence,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchemeSpend {
    pub scheme: Code,
    pub name: Text,
    pub ring_fenced: bool,
    /// For a ring-fenced scheme, what was pledged to it; `None` for the revenue pool's schemes.
    pub pledged: Option<Pence>,
    pub spend_ytd: Pence,
    /// For a ring-fenced scheme, `spend_ytd − pledged`.
    pub variance_ytd: Option<Pence>,
}

/// The settlement of the risk share, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Settlement {
    pub period: Period,
    pub revenue_pledged: Pence,
    pub revenue_spend: Pence,
    /// `revenue_spend − revenue_pledged`: positive is an overspend.
    pub variance: Pence,
    pub shares: Vec<Share>,
    pub allocations: Vec<Allocation>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledBudget {
    pub budget: Code,
    pub name: Text,
    pub host: MemberCode,
    pub year: FinancialYear,
    pub partners: Vec<BudgetPartner>,
    pub schemes: Vec<SchemeSpend>,
    /// The revenue pool: every partner's revenue pledge.
    pub revenue_pool: Pence,
    /// The revenue pool phased evenly to the report's month.
    pub revenue_pool_ytd: Pence,
    pub revenue_spend_ytd: Pence,
    /// `revenue_spend_ytd − revenue_pool_ytd`: positive is an overspend.
    pub revenue_variance_ytd: Pence,
    pub ring_fenced_pledged: Pence,
    pub ring_fenced_spend_ytd: Pence,
    pub pledged: Pence,
    pub paid_to_date: Pence,
    pub spend_ytd: Pence,
    pub settlement: Option<Settlement>,
    pub closed_in: Option<Period>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PooledBudgetStatement {
    pub basis: Basis,
    /// The pools of the report's year, in code order.
    pub budgets: Vec<PooledBudget>,
}

impl Report for PooledBudgetStatement {
    const KIND: &'static str = "pooled-budgets/v1";
}

impl Snapshot<'_> {
    /// The statement of every pooled budget of `year`, year to date.
    pub fn pooled_budgets(
        &self,
        year: FinancialYear,
        month: Month,
    ) -> Result<PooledBudgetStatement, ReportError> {
        let basis = self.basis(year, month)?;
        let mut budgets = Vec::new();
        for (code, facts) in self.budgets().filter(|(_, b)| b.year == year) {
            budgets.push(self.pooled_budget(code, facts, year, month)?);
        }
        Ok(PooledBudgetStatement { basis, budgets })
    }

    fn pooled_budget(
        &self,
        code: &Code,
        facts: &BudgetFacts,
        year: FinancialYear,
        month: Month,
    ) -> Result<PooledBudget, ReportError> {
        let overflow = ReportError::overflow("pooled budget");
        let add = |total: &mut Pence, amount: Pence| -> Result<(), ReportError> {
            *total = total.checked_add(amount).map_err(&overflow)?;
            Ok(())
        };
        let (from, to) = Snapshot::ytd(year, month);
        let lines = self.budget_lines(code);
        let settlement = facts
            .settlement
            .as_ref()
            .filter(|s| self.is_visible(s.recorded_at) && s.period <= to);
        let overspend = facts.overspend_shares.at(self.sequence());
        let underspend = facts.underspend_shares.at(self.sequence());
        let share = |shares: Option<&Vec<Share>>, member: &MemberCode| {
            shares
                .and_then(|s| s.iter().find(|s| &s.member == member))
                .map_or(BasisPoints::ZERO, |s| s.share)
        };

        let mut partners = Vec::with_capacity(facts.partners.len());
        for member in &facts.partners {
            let (mut revenue, mut ring_fenced, mut paid) = (Pence::ZERO, Pence::ZERO, Pence::ZERO);
            for (line, amount) in &lines {
                match line {
                    BudgetLine::Pledged(m, None) if m == member => add(&mut revenue, *amount)?,
                    BudgetLine::Pledged(m, Some(_)) if m == member => {
                        add(&mut ring_fenced, *amount)?;
                    }
                    BudgetLine::Paid(m, p) if m == member && *p <= to => add(&mut paid, *amount)?,
                    _ => {}
                }
            }
            let pledged = revenue.checked_add(ring_fenced).map_err(&overflow)?;
            let risk_share = settlement
                .and_then(|s| s.allocations.iter().find(|a| &a.member == member))
                .map_or(Pence::ZERO, |a| a.amount);
            partners.push(BudgetPartner {
                member: *member,
                host: *member == facts.host,
                pledged_revenue: revenue,
                pledged_ring_fenced: ring_fenced,
                pledged,
                paid_to_date: paid,
                unpaid: pledged.checked_sub(paid).map_err(&overflow)?,
                overspend_share: share(overspend, member),
                underspend_share: share(underspend, member),
                risk_share,
            });
        }

        let mut schemes = Vec::new();
        let (mut revenue_spend, mut ring_fenced_spend) = (Pence::ZERO, Pence::ZERO);
        for (_, scheme) in facts.schemes.iter().filter(|(s, _)| self.is_visible(*s)) {
            let (mut pledged, mut spend) = (Pence::ZERO, Pence::ZERO);
            for (line, amount) in &lines {
                match line {
                    BudgetLine::Pledged(_, Some(s)) if *s == scheme.scheme => {
                        add(&mut pledged, *amount)?;
                    }
                    BudgetLine::Spend(s, p) if *s == scheme.scheme && *p >= from && *p <= to => {
                        add(&mut spend, *amount)?;
                    }
                    _ => {}
                }
            }
            if scheme.ring_fenced {
                add(&mut ring_fenced_spend, spend)?;
            } else {
                add(&mut revenue_spend, spend)?;
            }
            schemes.push(SchemeSpend {
                scheme: scheme.scheme.clone(),
                name: scheme.name.clone(),
                ring_fenced: scheme.ring_fenced,
                pledged: scheme.ring_fenced.then_some(pledged),
                spend_ytd: spend,
                variance_ytd: if scheme.ring_fenced {
                    Some(spend.checked_sub(pledged).map_err(&overflow)?)
                } else {
                    None
                },
            });
        }

        let sum = |f: fn(&BudgetPartner) -> Pence| {
            Pence::checked_sum(partners.iter().map(f)).map_err(&overflow)
        };
        let revenue_pool = sum(|p| p.pledged_revenue)?;
        let revenue_pool_ytd = Pence::checked_sum(
            phase(revenue_pool)
                .map_err(&overflow)?
                .into_iter()
                .take(month.index() + 1),
        )
        .map_err(&overflow)?;
        Ok(PooledBudget {
            budget: code.clone(),
            name: facts.name.clone(),
            host: facts.host,
            year: facts.year,
            revenue_pool,
            revenue_pool_ytd,
            revenue_spend_ytd: revenue_spend,
            revenue_variance_ytd: revenue_spend
                .checked_sub(revenue_pool_ytd)
                .map_err(&overflow)?,
            ring_fenced_pledged: sum(|p| p.pledged_ring_fenced)?,
            ring_fenced_spend_ytd: ring_fenced_spend,
            pledged: sum(|p| p.pledged)?,
            paid_to_date: sum(|p| p.paid_to_date)?,
            spend_ytd: revenue_spend
                .checked_add(ring_fenced_spend)
                .map_err(&overflow)?,
            settlement: settlement.map(|s| Settlement {
                period: s.period,
                revenue_pledged: s.revenue_pledged,
                revenue_spend: s.revenue_spend,
                variance: s.variance,
                shares: s.shares.clone(),
                allocations: s.allocations.clone(),
            }),
            closed_in: facts
                .closed
                .filter(|(s, p)| self.is_visible(*s) && *p <= to)
                .map(|(_, p)| p),
            partners,
            schemes,
        })
    }
}
