//! The *system* family: the ICS itself, its members, their plans (control totals), monthly
//! returns, operational metrics and period closes. One stream per ledger (`system`).
//!
//! Rules:
//! - the system is established once, before anything else;
//! - a member is admitted once; only NHS bodies may count toward the control total;
//! - a plan is agreed for an admitted member and a year not before the system's first year;
//!   it may be revised until the first period of that year is closed; it is phased evenly
//!   over the twelve months (largest remainder), and the phasing is recorded in the event;
//! - a return is for an admitted member and an open period; its amounts are not negative;
//!   each counterparty is another admitted member, named once; a later return for the same
//!   member and open period replaces the earlier one (its `revision` counts up);
//! - a metric is for an admitted member and an open period, counts are not negative and a
//!   percentage is at most 100.00%;
//! - periods close one at a time, in order, starting at M1 of the first year;
//! - a filed return (the record that a member, or the system itself, filed a report with
//!   the regulator) is filed by an admitted member or the system, for a report of a period of
//!   a year not before the system's first, taken at a sequence of 1 or more (the write side
//!   also refuses a sequence beyond its log's head, which the domain does not know); an
//!   Agreement of Balances' thresholds are not negative. Returns may be filed for closed
//!   periods (that is when they are filed) and filed again.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::error::{DomainError, Rule};
use crate::ids::{MemberCode, MemberKind, SystemId, Text};
use crate::limits;
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Period};
use crate::position::ReportKind;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemCommand {
    Establish {
        system: SystemId,
        name: Text,
        first_year: FinancialYear,
    },
    AdmitMember {
        member: MemberCode,
        name: Text,
        kind: MemberKind,
        in_control_total: bool,
    },
    AgreePlan {
        member: MemberCode,
        year: FinancialYear,
        income: Pence,
        expenditure: Pence,
    },
    SubmitReturn(MonthlyReturn),
    ReportMetric {
        member: MemberCode,
        period: Period,
        metric: Metric,
        value: i64,
    },
    ClosePeriod {
        period: Period,
    },
    FileReturn(FiledReturn),
}

/// Who filed a return.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Filer {
    /// The system itself: the ICB's system finance team, for the ICS as a whole.
    System,
    /// An admitted member.
    Member(MemberCode),
}

impl std::fmt::Display for Filer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Filer::System => f.write_str("the system"),
            Filer::Member(member) => write!(f, "{member}"),
        }
    }
}

/// That a report was filed (with the regulator): which report, for which year and month, as
/// the log stood at which sequence, and the report's fingerprint (SHA-256 of its canonical
/// bytes, see [`crate::position::canonical`]). An auditor replays the log to `as_of_sequence`,
/// takes the same report, and compares fingerprints.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct FiledReturn {
    pub filer: Filer,
    pub report: ReportKind,
    /// The year the report is for, and its last month: the report is year to date.
    pub period: Period,
    /// The report's `as_of_sequence`: the last event it counts.
    pub as_of_sequence: u64,
    pub fingerprint: [u8; 32],
}

/// A member's return for one month: its income and expenditure in that month, and what it
/// holds with each other member (the Agreement of Balances data).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct MonthlyReturn {
    pub member: MemberCode,
    pub period: Period,
    pub income: Pence,
    pub expenditure: Pence,
    pub balances: Vec<CounterpartyBalance>,
}

/// What a member's return states it holds with one counterparty member.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CounterpartyBalance {
    pub counterparty: MemberCode,
    /// Income from the counterparty in the month.
    pub income: Pence,
    /// Expenditure with the counterparty in the month.
    pub expenditure: Pence,
    /// Amount owed by the counterparty at month end.
    pub receivables: Pence,
    /// Amount owed to the counterparty at month end.
    pub payables: Pence,
}

/// Operational metrics regulators compare across systems.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Metric {
    /// Count of emergency admissions in the month.
    EmergencyAdmissions,
    /// Count of emergency bed days in the month.
    EmergencyBedDays,
    /// A&E attendances seen within four hours, in basis points (9,000 = 90.00%).
    AeFourHour,
}

impl Metric {
    pub const ALL: [Metric; 3] = [
        Metric::EmergencyAdmissions,
        Metric::EmergencyBedDays,
        Metric::AeFourHour,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Metric::EmergencyAdmissions => "emergency-admissions",
            Metric::EmergencyBedDays => "emergency-bed-days",
            Metric::AeFourHour => "ae-four-hour",
        }
    }

    pub fn from_name(name: &str) -> Option<Metric> {
        Metric::ALL.into_iter().find(|m| m.name() == name)
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum SystemEvent {
    Established {
        system: SystemId,
        name: Text,
        first_year: FinancialYear,
    },
    MemberAdmitted {
        member: MemberCode,
        name: Text,
        kind: MemberKind,
        in_control_total: bool,
    },
    /// `*_by_month` hold twelve amounts, M1 first, that sum exactly to the annual figures.
    /// `revision` is 1 for the first plan of a member and year.
    PlanAgreed {
        member: MemberCode,
        year: FinancialYear,
        income: Pence,
        expenditure: Pence,
        income_by_month: Vec<Pence>,
        expenditure_by_month: Vec<Pence>,
        revision: u32,
    },
    /// `revision` is 1 for the first return of a member and period.
    ReturnSubmitted {
        monthly_return: MonthlyReturn,
        revision: u32,
    },
    MetricReported {
        member: MemberCode,
        period: Period,
        metric: Metric,
        value: i64,
    },
    PeriodClosed {
        period: Period,
    },
    /// Appended after `PeriodClosed`: stored events name their variant by index.
    ReturnFiled(FiledReturn),
}

/// A member as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub code: MemberCode,
    pub name: Text,
    pub kind: MemberKind,
    pub in_control_total: bool,
}

/// An agreed plan for one member and year.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    pub income: Pence,
    pub expenditure: Pence,
    pub income_by_month: Vec<Pence>,
    pub expenditure_by_month: Vec<Pence>,
    pub revision: u32,
}

/// Established system facts, present once [`SystemEvent::Established`] is applied.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Establishment {
    pub system: SystemId,
    pub name: Text,
    pub first_year: FinancialYear,
}

/// The state the system family's rules need (and other families consult).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemState {
    pub established: Option<Establishment>,
    pub members: BTreeMap<MemberCode, Member>,
    pub plans: BTreeMap<(MemberCode, FinancialYear), Plan>,
    /// Latest revision of each (member, period) return.
    pub return_revisions: BTreeMap<(MemberCode, Period), u32>,
    /// Every period up to and including this one is closed.
    pub closed_through: Option<Period>,
}

impl SystemState {
    /// The admitted member, or the rule it breaks.
    pub fn member(&self, code: &MemberCode) -> Result<&Member, DomainError> {
        self.members.get(code).ok_or_else(|| {
            DomainError::rejected(
                Rule::MemberNotAdmitted,
                format!("{code} has not been admitted to the system"),
            )
        })
    }

    /// The admitted member, which must be a commissioner.
    pub fn commissioner(&self, code: &MemberCode) -> Result<&Member, DomainError> {
        let member = self.member(code)?;
        if member.kind != MemberKind::Commissioner {
            return Err(DomainError::rejected(
                Rule::NotACommissioner,
                format!("{code} is a {}, not a commissioner", member.kind),
            ));
        }
        Ok(member)
    }

    /// The admitted member, which must be a provider.
    pub fn provider(&self, code: &MemberCode) -> Result<&Member, DomainError> {
        let member = self.member(code)?;
        if !member.kind.is_provider() {
            return Err(DomainError::rejected(
                Rule::NotAProvider,
                format!("{code} is a {}, not a provider", member.kind),
            ));
        }
        Ok(member)
    }

    pub fn establishment(&self) -> Result<&Establishment, DomainError> {
        self.established.as_ref().ok_or_else(|| {
            DomainError::rejected(Rule::SystemNotEstablished, "establish the system first")
        })
    }

    pub fn is_closed(&self, period: Period) -> bool {
        self.closed_through.is_some_and(|closed| period <= closed)
    }

    /// The period is one the ledger can post to: on or after the first year, and not closed.
    pub fn check_open(&self, period: Period, field: &str) -> Result<(), DomainError> {
        let first_year = self.establishment()?.first_year;
        if period.year < first_year {
            return Err(DomainError::invalid(
                field,
                format!("{period} is before the system's first year {first_year}"),
            ));
        }
        if self.is_closed(period) {
            return Err(DomainError::rejected(
                Rule::PeriodClosed,
                format!(
                    "{field} {period} is closed; post a correction in an open period that names {period}"
                ),
            ));
        }
        Ok(())
    }

    /// A posting to an aggregate of `year` (a budget, a contract): `period` is open and, unless
    /// the posting is a correction, in `year`; a correction (`corrects`) is posted in an open
    /// period later than the period of `year` it names. Returns the period the posting is for
    /// (`corrects`, or else `period`).
    pub(crate) fn check_posting(
        &self,
        year: FinancialYear,
        period: Period,
        corrects: Option<Period>,
    ) -> Result<Period, DomainError> {
        self.check_open(period, "period")?;
        match corrects {
            None if period.year != year => Err(DomainError::rejected(
                Rule::PeriodOutsideYear,
                format!(
                    "period {period} is not in {year}; post in {year}, or post a correction in a later open period that names the period of {year} it corrects"
                ),
            )),
            None => Ok(period),
            Some(corrected) if corrected.year != year => Err(DomainError::rejected(
                Rule::PeriodOutsideYear,
                format!("corrects {corrected} is not a period of {year}"),
            )),
            Some(corrected) if corrected >= period => Err(DomainError::invalid(
                "corrects",
                format!(
                    "{corrected} is not earlier than period {period}; a correction is posted in a later period than the one it corrects"
                ),
            )),
            Some(corrected) => Ok(corrected),
        }
    }

    /// A posting that may come after its aggregate's `year` but not before it (a payment, a
    /// close): `period` is open and in `year` or a later one.
    pub(crate) fn check_open_from(
        &self,
        year: FinancialYear,
        period: Period,
        field: &str,
    ) -> Result<(), DomainError> {
        self.check_open(period, field)?;
        if period.year < year {
            return Err(DomainError::rejected(
                Rule::PeriodOutsideYear,
                format!("{field} {period} is before {year}"),
            ));
        }
        Ok(())
    }

    pub fn decide(&self, command: &SystemCommand) -> Result<Vec<SystemEvent>, DomainError> {
        match command {
            SystemCommand::Establish {
                system,
                name,
                first_year,
            } => {
                if let Some(existing) = &self.established {
                    return Err(DomainError::AlreadyExists {
                        what: "system",
                        id: existing.system.to_string(),
                    });
                }
                Ok(vec![SystemEvent::Established {
                    system: system.clone(),
                    name: name.clone(),
                    first_year: *first_year,
                }])
            }
            SystemCommand::AdmitMember {
                member,
                name,
                kind,
                in_control_total,
            } => {
                self.establishment()?;
                if self.members.contains_key(member) {
                    return Err(DomainError::AlreadyExists {
                        what: "member",
                        id: member.to_string(),
                    });
                }
                if self.members.len() >= limits::MEMBERS_MAX {
                    return Err(DomainError::rejected(
                        Rule::LimitReached,
                        format!(
                            "member: the system has {} members, the most it may admit",
                            self.members.len()
                        ),
                    ));
                }
                if *in_control_total && !kind.is_nhs_body() {
                    return Err(DomainError::invalid(
                        "in_control_total",
                        format!(
                            "a {kind} is not an NHS body and cannot count toward the control total"
                        ),
                    ));
                }
                Ok(vec![SystemEvent::MemberAdmitted {
                    member: *member,
                    name: name.clone(),
                    kind: *kind,
                    in_control_total: *in_control_total,
                }])
            }
            SystemCommand::AgreePlan {
                member,
                year,
                income,
                expenditure,
            } => self.decide_plan(member, *year, *income, *expenditure),
            SystemCommand::SubmitReturn(monthly_return) => self.decide_return(monthly_return),
            SystemCommand::ReportMetric {
                member,
                period,
                metric,
                value,
            } => {
                self.member(member)?;
                self.check_open(*period, "period")?;
                match metric {
                    Metric::AeFourHour
                        if !(0..=i64::from(BasisPoints::WHOLE.get())).contains(value) =>
                    {
                        Err(DomainError::invalid(
                            "value",
                            format!("{value} bp is not a percentage between 0 and 10000 bp"),
                        ))
                    }
                    _ if *value < 0 => Err(DomainError::invalid(
                        "value",
                        format!("a count cannot be negative ({value})"),
                    )),
                    _ if *value > limits::METRIC_COUNT_MAX => Err(DomainError::invalid(
                        "value",
                        format!(
                            "{value} is more than the most one member's count for a month may be, {}",
                            limits::METRIC_COUNT_MAX
                        ),
                    )),
                    _ => Ok(vec![SystemEvent::MetricReported {
                        member: *member,
                        period: *period,
                        metric: *metric,
                        value: *value,
                    }]),
                }
            }
            SystemCommand::ClosePeriod { period } => {
                let first_year = self.establishment()?.first_year;
                let next = match self.closed_through {
                    Some(closed) => closed.next(),
                    None => Some(
                        first_year.period(
                            crate::period::Month::new(1)
                                .map_err(|e| DomainError::invalid("period", e.to_string()))?,
                        ),
                    ),
                };
                if next != Some(*period) {
                    let expected = next.map_or_else(|| "none".to_string(), |p| p.to_string());
                    return Err(DomainError::rejected(
                        Rule::PeriodsCloseInOrder,
                        format!("the next period to close is {expected}, not {period}"),
                    ));
                }
                Ok(vec![SystemEvent::PeriodClosed { period: *period }])
            }
            SystemCommand::FileReturn(filed) => self.decide_filed_return(filed),
        }
    }

    fn decide_filed_return(&self, filed: &FiledReturn) -> Result<Vec<SystemEvent>, DomainError> {
        let first_year = self.establishment()?.first_year;
        if let Filer::Member(member) = &filed.filer {
            self.member(member)?;
        }
        if filed.period.year < first_year {
            return Err(DomainError::invalid(
                "period",
                format!(
                    "{} is before the system's first year {first_year}",
                    filed.period
                ),
            ));
        }
        if filed.as_of_sequence == 0 {
            return Err(DomainError::invalid(
                "as_of_sequence",
                "sequences start at 1: give the sequence the report was taken at (its as_of_sequence)",
            ));
        }
        if let ReportKind::AgreementOfBalances(options) = filed.report {
            non_negative(
                "report.receivables_payables_threshold_pence",
                options.thresholds.receivables_payables,
            )?;
            non_negative(
                "report.income_expenditure_threshold_pence",
                options.thresholds.income_expenditure,
            )?;
            limits::amount(
                "report.receivables_payables_threshold_pence",
                options.thresholds.receivables_payables,
            )?;
            limits::amount(
                "report.income_expenditure_threshold_pence",
                options.thresholds.income_expenditure,
            )?;
        }
        Ok(vec![SystemEvent::ReturnFiled(filed.clone())])
    }

    fn decide_plan(
        &self,
        member: &MemberCode,
        year: FinancialYear,
        income: Pence,
        expenditure: Pence,
    ) -> Result<Vec<SystemEvent>, DomainError> {
        let first_year = self.establishment()?.first_year;
        self.member(member)?;
        if year < first_year {
            return Err(DomainError::invalid(
                "year",
                format!("{year} is before the system's first year {first_year}"),
            ));
        }
        non_negative("income_pence", income)?;
        non_negative("expenditure_pence", expenditure)?;
        limits::amount("income_pence", income)?;
        limits::amount("expenditure_pence", expenditure)?;
        let first_period = year.periods().next();
        if first_period.is_some_and(|p| self.is_closed(p)) {
            return Err(DomainError::rejected(
                Rule::PlanFrozen,
                format!("{year} has closed periods; its plans can no longer change"),
            ));
        }
        let even = [1u64; 12];
        let income_by_month = income
            .split(&even)
            .map_err(|_| DomainError::overflow("income_pence"))?;
        let expenditure_by_month = expenditure
            .split(&even)
            .map_err(|_| DomainError::overflow("expenditure_pence"))?;
        let revision = self
            .plans
            .get(&(*member, year))
            .map_or(1, |p| p.revision.saturating_add(1));
        Ok(vec![SystemEvent::PlanAgreed {
            member: *member,
            year,
            income,
            expenditure,
            income_by_month,
            expenditure_by_month,
            revision,
        }])
    }

    fn decide_return(&self, r: &MonthlyReturn) -> Result<Vec<SystemEvent>, DomainError> {
        self.member(&r.member)?;
        self.check_open(r.period, "period")?;
        non_negative("income_pence", r.income)?;
        non_negative("expenditure_pence", r.expenditure)?;
        limits::amount("income_pence", r.income)?;
        limits::amount("expenditure_pence", r.expenditure)?;
        limits::list("balances", r.balances.len(), limits::MEMBERS_MAX)?;
        let mut seen = std::collections::BTreeSet::new();
        for (i, balance) in r.balances.iter().enumerate() {
            let field = |name: &str| format!("balances[{i}].{name}");
            if balance.counterparty == r.member {
                return Err(DomainError::invalid(
                    field("counterparty"),
                    "a member cannot hold a balance with itself",
                ));
            }
            if !seen.insert(&balance.counterparty) {
                return Err(DomainError::invalid(
                    field("counterparty"),
                    format!("{} is named more than once", balance.counterparty),
                ));
            }
            self.member(&balance.counterparty)?;
            non_negative(&field("income_pence"), balance.income)?;
            non_negative(&field("expenditure_pence"), balance.expenditure)?;
            non_negative(&field("receivables_pence"), balance.receivables)?;
            non_negative(&field("payables_pence"), balance.payables)?;
            limits::amount(&field("income_pence"), balance.income)?;
            limits::amount(&field("expenditure_pence"), balance.expenditure)?;
            limits::amount(&field("receivables_pence"), balance.receivables)?;
            limits::amount(&field("payables_pence"), balance.payables)?;
        }
        let revision = self
            .return_revisions
            .get(&(r.member, r.period))
            .map_or(1, |n| n.saturating_add(1));
        Ok(vec![SystemEvent::ReturnSubmitted {
            monthly_return: r.clone(),
            revision,
        }])
    }

    /// Folds one event in. Events come from [`SystemState::decide`] (or the log it wrote),
    /// so they always fit; applying cannot fail.
    pub fn apply(&mut self, event: &SystemEvent) {
        match event {
            SystemEvent::Established {
                system,
                name,
                first_year,
            } => {
                self.established = Some(Establishment {
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
                    Member {
                        code: *member,
                        name: name.clone(),
                        kind: *kind,
                        in_control_total: *in_control_total,
                    },
                );
            }
            SystemEvent::PlanAgreed {
                member,
                year,
                income,
                expenditure,
                income_by_month,
                expenditure_by_month,
                revision,
            } => {
                self.plans.insert(
                    (*member, *year),
                    Plan {
                        income: *income,
                        expenditure: *expenditure,
                        income_by_month: income_by_month.clone(),
                        expenditure_by_month: expenditure_by_month.clone(),
                        revision: *revision,
                    },
                );
            }
            SystemEvent::ReturnSubmitted {
                monthly_return,
                revision,
            } => {
                self.return_revisions
                    .insert((monthly_return.member, monthly_return.period), *revision);
            }
            // Metrics and filed returns change nothing the rules consult.
            SystemEvent::MetricReported { .. } | SystemEvent::ReturnFiled(_) => {}
            SystemEvent::PeriodClosed { period } => self.closed_through = Some(*period),
        }
    }
}

/// Refuses a negative amount, naming the field.
pub(crate) fn non_negative(field: &str, amount: Pence) -> Result<(), DomainError> {
    if amount.is_negative() {
        return Err(DomainError::invalid(
            field,
            format!("cannot be negative ({amount})"),
        ));
    }
    Ok(())
}

/// Refuses a zero or negative amount, naming the field.
pub(crate) fn positive(field: &str, amount: Pence) -> Result<(), DomainError> {
    if !amount.is_positive() {
        return Err(DomainError::invalid(
            field,
            format!("must be more than zero ({amount})"),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::*;
    use crate::{Command, Event};

    fn sys(event: SystemEvent) -> Event {
        Event::System(event)
    }

    fn when(command: SystemCommand) -> Command {
        Command::System(command)
    }

    fn establish() -> SystemCommand {
        SystemCommand::Establish {
            system: SystemId::new("kav").expect("valid"),
            name: text("Kingsmere & Alder Valley ICS"),
            first_year: fy(),
        }
    }

    fn admit(code: &str, kind: MemberKind, in_control_total: bool) -> SystemCommand {
        SystemCommand::AdmitMember {
            member: member(code),
            name: text(code),
            kind,
            in_control_total,
        }
    }

    fn plan(code: &str, start: u32, income: Pence, expenditure: Pence) -> SystemCommand {
        SystemCommand::AgreePlan {
            member: member(code),
            year: year(start),
            income,
            expenditure,
        }
    }

    fn plan_agreed(code: &str, income: Pence, expenditure: Pence, revision: u32) -> Event {
        let even = |amount: Pence| amount.split(&[1; 12]).expect("splits");
        sys(SystemEvent::PlanAgreed {
            member: member(code),
            year: fy(),
            income,
            expenditure,
            income_by_month: even(income),
            expenditure_by_month: even(expenditure),
            revision,
        })
    }

    fn monthly_return(code: &str, p: Period, balances: Vec<CounterpartyBalance>) -> MonthlyReturn {
        MonthlyReturn {
            member: member(code),
            period: p,
            income: pounds(35_000_000),
            expenditure: pounds(35_500_000),
            balances,
        }
    }

    fn balance(code: &str, receivables: Pence) -> CounterpartyBalance {
        CounterpartyBalance {
            counterparty: member(code),
            income: pounds(26_000_000),
            expenditure: Pence::ZERO,
            receivables,
            payables: Pence::ZERO,
        }
    }

    fn metric(code: &str, p: Period, metric: Metric, value: i64) -> SystemCommand {
        SystemCommand::ReportMetric {
            member: member(code),
            period: p,
            metric,
            value,
        }
    }

    fn close(p: Period) -> SystemCommand {
        SystemCommand::ClosePeriod { period: p }
    }

    #[test]
    fn the_system_is_established_once_before_anything_else() {
        run(vec![
            Case {
                name: "establish",
                given: vec![],
                when: when(establish()),
                then: Then::Events(vec![established()]),
            },
            Case {
                name: "establish twice",
                given: vec![established()],
                when: when(establish()),
                then: Then::AlreadyExists("system"),
            },
            Case {
                name: "admit before establishing",
                given: vec![],
                when: when(admit("KHFT", MemberKind::AcuteTrust, true)),
                then: Then::Rejected(Rule::SystemNotEstablished),
            },
            Case {
                name: "plan before establishing",
                given: vec![],
                when: when(plan("KHFT", 2018, pounds(1), pounds(1))),
                then: Then::Rejected(Rule::SystemNotEstablished),
            },
            Case {
                name: "close before establishing",
                given: vec![],
                when: when(close(period(2018, 1))),
                then: Then::Rejected(Rule::SystemNotEstablished),
            },
            Case {
                name: "return before establishing names the unadmitted member",
                given: vec![],
                when: when(SystemCommand::SubmitReturn(monthly_return(
                    "KHFT",
                    period(2018, 1),
                    vec![],
                ))),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
        ]);
    }

    #[test]
    fn members_are_admitted_once_and_only_nhs_bodies_count_toward_the_control_total() {
        run(vec![
            Case {
                name: "admit an acute trust in the CT",
                given: vec![established()],
                when: when(admit("KHFT", MemberKind::AcuteTrust, true)),
                then: Then::Events(vec![admitted("KHFT", MemberKind::AcuteTrust, true)]),
            },
            Case {
                name: "admit the council outside the CT",
                given: vec![established()],
                when: when(admit("KCC", MemberKind::LocalAuthority, false)),
                then: Then::Events(vec![admitted("KCC", MemberKind::LocalAuthority, false)]),
            },
            Case {
                name: "the council cannot count toward the CT",
                given: vec![established()],
                when: when(admit("KCC", MemberKind::LocalAuthority, true)),
                then: Then::Invalid("in_control_total"),
            },
            Case {
                name: "a PCN cannot count toward the CT",
                given: vec![established()],
                when: when(admit("KNPCN", MemberKind::PrimaryCareNetwork, true)),
                then: Then::Invalid("in_control_total"),
            },
            Case {
                name: "admit twice",
                given: demo_system(),
                when: when(admit("KHFT", MemberKind::AcuteTrust, true)),
                then: Then::AlreadyExists("member"),
            },
        ]);
    }

    #[test]
    fn plans_are_phased_evenly_and_frozen_once_the_year_has_closed_periods() {
        let khft = plan_agreed("KHFT", pounds(420_000_000), pounds(426_000_000), 1);
        run(vec![
            Case {
                name: "KHFT's plan, phased 35,000,000 / 35,500,000 a month",
                given: demo_system(),
                when: when(plan("KHFT", 2018, pounds(420_000_000), pounds(426_000_000))),
                then: Then::Events(vec![khft.clone()]),
            },
            Case {
                name: "a revision counts up",
                given: history([demo_system(), vec![khft.clone()]]),
                when: when(plan("KHFT", 2018, pounds(420_120_000), pounds(426_000_000))),
                then: Then::Events(vec![plan_agreed(
                    "KHFT",
                    pounds(420_120_000),
                    pounds(426_000_000),
                    2,
                )]),
            },
            Case {
                name: "odd pence go to the earliest months",
                given: demo_system(),
                when: when(plan("KCHT", 2018, Pence::new(100), Pence::new(11))),
                then: Then::Events(vec![sys(SystemEvent::PlanAgreed {
                    member: member("KCHT"),
                    year: fy(),
                    income: Pence::new(100),
                    expenditure: Pence::new(11),
                    income_by_month: [9, 9, 9, 9, 8, 8, 8, 8, 8, 8, 8, 8]
                        .map(Pence::new)
                        .to_vec(),
                    expenditure_by_month: [1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0]
                        .map(Pence::new)
                        .to_vec(),
                    revision: 1,
                })]),
            },
            Case {
                name: "an unadmitted member",
                given: demo_system(),
                when: when(plan("RXX", 2018, pounds(1), pounds(1))),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a year before the first",
                given: demo_system(),
                when: when(plan("KHFT", 2017, pounds(1), pounds(1))),
                then: Then::Invalid("year"),
            },
            Case {
                name: "negative income",
                given: demo_system(),
                when: when(plan("KHFT", 2018, pounds(-1), pounds(1))),
                then: Then::Invalid("income_pence"),
            },
            Case {
                name: "negative expenditure",
                given: demo_system(),
                when: when(plan("KHFT", 2018, pounds(1), pounds(-1))),
                then: Then::Invalid("expenditure_pence"),
            },
            Case {
                name: "frozen once M1 is closed",
                given: history([demo_system(), closed_through(period(2018, 1))]),
                when: when(plan("KHFT", 2018, pounds(1), pounds(1))),
                then: Then::Rejected(Rule::PlanFrozen),
            },
            Case {
                name: "next year's plan is still open",
                given: history([demo_system(), closed_through(period(2018, 12))]),
                when: when(plan("KHFT", 2019, Pence::ZERO, Pence::ZERO)),
                then: Then::Events(vec![sys(SystemEvent::PlanAgreed {
                    member: member("KHFT"),
                    year: year(2019),
                    income: Pence::ZERO,
                    expenditure: Pence::ZERO,
                    income_by_month: vec![Pence::ZERO; 12],
                    expenditure_by_month: vec![Pence::ZERO; 12],
                    revision: 1,
                })]),
            },
        ]);
    }

    #[test]
    fn returns_are_for_admitted_members_and_open_periods_and_later_ones_replace_earlier() {
        let r = |balances| monthly_return("KHFT", period(2018, 5), balances);
        let submitted = |balances, revision| {
            sys(SystemEvent::ReturnSubmitted {
                monthly_return: r(balances),
                revision,
            })
        };
        let submit = |balances| when(SystemCommand::SubmitReturn(r(balances)));
        run(vec![
            Case {
                name: "a return with a balance",
                given: demo_system(),
                when: submit(vec![balance("KCCG", pounds(300_000))]),
                then: Then::Events(vec![submitted(vec![balance("KCCG", pounds(300_000))], 1)]),
            },
            Case {
                name: "a second return for the month is revision 2",
                given: history([demo_system(), vec![submitted(vec![], 1)]]),
                when: submit(vec![]),
                then: Then::Events(vec![submitted(vec![], 2)]),
            },
            Case {
                name: "an unadmitted member",
                given: demo_system(),
                when: when(SystemCommand::SubmitReturn(monthly_return(
                    "RXX",
                    period(2018, 5),
                    vec![],
                ))),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a closed period",
                given: history([demo_system(), closed_through(period(2018, 5))]),
                when: submit(vec![]),
                then: Then::Rejected(Rule::PeriodClosed),
            },
            Case {
                name: "a period before the first year",
                given: demo_system(),
                when: when(SystemCommand::SubmitReturn(monthly_return(
                    "KHFT",
                    period(2017, 12),
                    vec![],
                ))),
                then: Then::Invalid("period"),
            },
            Case {
                name: "negative income",
                given: demo_system(),
                when: when(SystemCommand::SubmitReturn(MonthlyReturn {
                    income: pounds(-1),
                    ..r(vec![])
                })),
                then: Then::Invalid("income_pence"),
            },
            Case {
                name: "a balance with itself",
                given: demo_system(),
                when: submit(vec![balance("KHFT", Pence::ZERO)]),
                then: Then::Invalid("balances[0].counterparty"),
            },
            Case {
                name: "a counterparty named twice",
                given: demo_system(),
                when: submit(vec![
                    balance("KCCG", Pence::ZERO),
                    balance("KCCG", Pence::ZERO),
                ]),
                then: Then::Invalid("balances[1].counterparty"),
            },
            Case {
                name: "an unadmitted counterparty",
                given: demo_system(),
                when: submit(vec![balance("RXX", Pence::ZERO)]),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "negative receivables",
                given: demo_system(),
                when: submit(vec![balance("KCCG", pounds(-1))]),
                then: Then::Invalid("balances[0].receivables_pence"),
            },
        ]);
    }

    #[test]
    fn metrics_are_non_negative_counts_or_percentages_in_open_periods() {
        let reported = |metric, value| {
            sys(SystemEvent::MetricReported {
                member: member("KHFT"),
                period: period(2018, 6),
                metric,
                value,
            })
        };
        run(vec![
            Case {
                name: "A&E 90.40%",
                given: demo_system(),
                when: when(metric("KHFT", period(2018, 6), Metric::AeFourHour, 9_040)),
                then: Then::Events(vec![reported(Metric::AeFourHour, 9_040)]),
            },
            Case {
                name: "admissions count",
                given: demo_system(),
                when: when(metric(
                    "KHFT",
                    period(2018, 6),
                    Metric::EmergencyAdmissions,
                    4_100,
                )),
                then: Then::Events(vec![reported(Metric::EmergencyAdmissions, 4_100)]),
            },
            Case {
                name: "A&E above 100%",
                given: demo_system(),
                when: when(metric("KHFT", period(2018, 6), Metric::AeFourHour, 10_001)),
                then: Then::Invalid("value"),
            },
            Case {
                name: "a negative count",
                given: demo_system(),
                when: when(metric(
                    "KHFT",
                    period(2018, 6),
                    Metric::EmergencyBedDays,
                    -1,
                )),
                then: Then::Invalid("value"),
            },
            Case {
                name: "an unadmitted member",
                given: demo_system(),
                when: when(metric("RXX", period(2018, 6), Metric::AeFourHour, 9_000)),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "a closed period",
                given: history([demo_system(), closed_through(period(2018, 6))]),
                when: when(metric("KHFT", period(2018, 6), Metric::AeFourHour, 9_000)),
                then: Then::Rejected(Rule::PeriodClosed),
            },
        ]);
    }

    #[test]
    fn periods_close_one_at_a_time_in_order_from_the_first() {
        let closed = |p| vec![sys(SystemEvent::PeriodClosed { period: p })];
        run(vec![
            Case {
                name: "M1 of the first year first",
                given: demo_system(),
                when: when(close(period(2018, 1))),
                then: Then::Events(closed(period(2018, 1))),
            },
            Case {
                name: "not M2 first",
                given: demo_system(),
                when: when(close(period(2018, 2))),
                then: Then::Rejected(Rule::PeriodsCloseInOrder),
            },
            Case {
                name: "then M2",
                given: history([demo_system(), closed_through(period(2018, 1))]),
                when: when(close(period(2018, 2))),
                then: Then::Events(closed(period(2018, 2))),
            },
            Case {
                name: "not the same period twice",
                given: history([demo_system(), closed_through(period(2018, 1))]),
                when: when(close(period(2018, 1))),
                then: Then::Rejected(Rule::PeriodsCloseInOrder),
            },
            Case {
                name: "M12 then M1 of the next year",
                given: history([demo_system(), closed_through(period(2018, 12))]),
                when: when(close(period(2019, 1))),
                then: Then::Events(closed(period(2019, 1))),
            },
        ]);
    }

    fn filed(filer: Filer, report: ReportKind, p: Period, as_of_sequence: u64) -> FiledReturn {
        FiledReturn {
            filer,
            report,
            period: p,
            as_of_sequence,
            fingerprint: [0xab; 32],
        }
    }

    fn file(filed: FiledReturn) -> Command {
        when(SystemCommand::FileReturn(filed))
    }

    #[test]
    fn returns_are_filed_by_admitted_members_or_the_system_at_a_sequence_from_1() {
        use crate::position::{AobOptions, AobThresholds, ConsolidationScope};
        let khft = Filer::Member(member("KHFT"));
        let position = filed(khft.clone(), ReportKind::Position, period(2018, 6), 212);
        let aob = |receivables_payables: Pence| {
            ReportKind::AgreementOfBalances(AobOptions {
                thresholds: AobThresholds {
                    receivables_payables,
                    ..AobThresholds::default()
                },
                ..AobOptions::default()
            })
        };
        run(vec![
            Case {
                name: "KHFT files its Q2 position",
                given: demo_system(),
                when: file(position.clone()),
                then: Then::Events(vec![sys(SystemEvent::ReturnFiled(position.clone()))]),
            },
            Case {
                name: "the system files the consolidation",
                given: demo_system(),
                when: file(filed(
                    Filer::System,
                    ReportKind::Consolidation(ConsolidationScope::WiderIcs),
                    period(2018, 12),
                    1,
                )),
                then: Then::Events(vec![sys(SystemEvent::ReturnFiled(filed(
                    Filer::System,
                    ReportKind::Consolidation(ConsolidationScope::WiderIcs),
                    period(2018, 12),
                    1,
                )))]),
            },
            Case {
                name: "a closed period's return is filed after the close",
                given: history([demo_system(), closed_through(period(2018, 6))]),
                when: file(position.clone()),
                then: Then::Events(vec![sys(SystemEvent::ReturnFiled(position.clone()))]),
            },
            Case {
                name: "the same return filed again is recorded again",
                given: history([
                    demo_system(),
                    vec![sys(SystemEvent::ReturnFiled(position.clone()))],
                ]),
                when: file(position.clone()),
                then: Then::Events(vec![sys(SystemEvent::ReturnFiled(position.clone()))]),
            },
            Case {
                name: "before the system is established",
                given: vec![],
                when: file(position.clone()),
                then: Then::Rejected(Rule::SystemNotEstablished),
            },
            Case {
                name: "by a member not admitted",
                given: demo_system(),
                when: file(filed(
                    Filer::Member(member("RXX")),
                    ReportKind::Position,
                    period(2018, 6),
                    212,
                )),
                then: Then::Rejected(Rule::MemberNotAdmitted),
            },
            Case {
                name: "at sequence 0",
                given: demo_system(),
                when: file(filed(khft.clone(), ReportKind::Funds, period(2018, 6), 0)),
                then: Then::Invalid("as_of_sequence"),
            },
            Case {
                name: "for a year before the system's first",
                given: demo_system(),
                when: file(filed(khft.clone(), ReportKind::Funds, period(2017, 12), 9)),
                then: Then::Invalid("period"),
            },
            Case {
                name: "an Agreement of Balances with a negative threshold",
                given: demo_system(),
                when: file(filed(
                    Filer::System,
                    aob(Pence::new(-1)),
                    period(2018, 6),
                    9,
                )),
                then: Then::Invalid("report.receivables_payables_threshold_pence"),
            },
            Case {
                name: "an Agreement of Balances with a zero threshold",
                given: demo_system(),
                when: file(filed(Filer::System, aob(Pence::ZERO), period(2018, 6), 9)),
                then: Then::Events(vec![sys(SystemEvent::ReturnFiled(filed(
                    Filer::System,
                    aob(Pence::ZERO),
                    period(2018, 6),
                    9,
                )))]),
            },
        ]);
    }

    #[test]
    fn a_filed_return_changes_nothing_the_rules_consult() {
        let before = ledger(&demo_system());
        let mut after = before.clone();
        let filed = filed(
            Filer::Member(member("KHFT")),
            ReportKind::Position,
            period(2018, 6),
            3,
        );
        after
            .apply(&sys(SystemEvent::ReturnFiled(filed.clone())))
            .expect("applies");
        assert_eq!(after, before);
        let event = sys(SystemEvent::ReturnFiled(filed));
        assert_eq!(event.name(), "return_filed");
        assert_eq!(event.effective_period(), Some(period(2018, 6)));
        assert_eq!(event.stream(), crate::StreamId::system());
        assert_eq!(Filer::System.to_string(), "the system");
        assert_eq!(Filer::Member(member("KHFT")).to_string(), "KHFT");
    }

    #[test]
    fn postings_are_open_in_their_year_or_corrections_naming_it() {
        let state = ledger(&history([demo_system(), closed_through(period(2018, 3))])).system;
        let fy = fy();
        assert_eq!(
            state.check_posting(fy, period(2018, 4), None),
            Ok(period(2018, 4))
        );
        assert_eq!(
            state.check_posting(fy, period(2018, 4), Some(period(2018, 2))),
            Ok(period(2018, 2))
        );
        assert_eq!(
            state.check_posting(year(2019), period(2019, 2), None),
            Ok(period(2019, 2))
        );
        assert!(matches!(
            state.check_posting(fy, period(2018, 3), None),
            Err(DomainError::Rejected {
                rule: Rule::PeriodClosed,
                ..
            })
        ));
        assert!(matches!(
            state.check_posting(fy, period(2019, 1), None),
            Err(DomainError::Rejected {
                rule: Rule::PeriodOutsideYear,
                ..
            })
        ));
        assert!(matches!(
            state.check_posting(fy, period(2019, 1), Some(period(2019, 1))),
            Err(DomainError::Rejected {
                rule: Rule::PeriodOutsideYear,
                ..
            })
        ));
        assert!(matches!(
            state.check_posting(fy, period(2018, 4), Some(period(2018, 5))),
            Err(DomainError::Invalid { field, .. }) if field == "corrects"
        ));
        assert!(matches!(
            state.check_posting(fy, period(2017, 4), None),
            Err(DomainError::Invalid { field, .. }) if field == "period"
        ));
    }
}
