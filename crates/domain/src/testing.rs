//! Test support: the demo ICS of BRIEF §8 ("Kingsmere & Alder Valley ICS", FY 2018/19) and a
//! given/when/then harness. Each case is: *given* these events, *when* this command is
//! decided, *then* these events (which must also apply cleanly) or this error.

use crate::error::{DomainError, Rule};
use crate::ids::{Code, MemberCode, MemberKind, SystemId, Text};
use crate::money::{BasisPoints, Pence};
use crate::period::{FinancialYear, Month, Period, Quarter};
use crate::system::SystemEvent;
use crate::{Command, Event, Ledger};

pub fn code(text: &str) -> Code {
    Code::new(text).expect("valid code")
}

pub fn member(text: &str) -> MemberCode {
    MemberCode::parse(text).expect("valid member code")
}

pub fn text(text: &str) -> Text {
    Text::new(text).expect("valid text")
}

pub fn year(start: u32) -> FinancialYear {
    FinancialYear::new(start).expect("valid year")
}

pub fn month(number: u32) -> Month {
    Month::new(number).expect("valid month")
}

/// `period(2018, 5)` is 2018/19-M5.
pub fn period(start: u32, number: u32) -> Period {
    year(start).period(month(number))
}

pub fn quarter(number: u32) -> Quarter {
    Quarter::new(number).expect("valid quarter")
}

/// Whole pounds, in pence.
pub fn pounds(amount: i64) -> Pence {
    Pence::from_pounds(amount).expect("in range")
}

pub fn bp(points: u32) -> BasisPoints {
    BasisPoints::new(points)
}

/// 2018/19, the demo year and the system's first.
pub fn fy() -> FinancialYear {
    year(2018)
}

pub fn established() -> Event {
    Event::System(SystemEvent::Established {
        system: SystemId::new("kav").expect("valid id"),
        name: text("Kingsmere & Alder Valley ICS"),
        first_year: fy(),
    })
}

pub fn admitted(code: &str, kind: MemberKind, in_control_total: bool) -> Event {
    Event::System(SystemEvent::MemberAdmitted {
        member: member(code),
        name: text(code),
        kind,
        in_control_total,
    })
}

/// The system established for 2018/19 with the demo members admitted.
pub fn demo_system() -> Vec<Event> {
    vec![
        established(),
        admitted("KCCG", MemberKind::Commissioner, true),
        admitted("KHFT", MemberKind::AcuteTrust, true),
        admitted("AVT", MemberKind::AcuteTrust, true),
        admitted("KCHT", MemberKind::CommunityTrust, true),
        admitted("AKMH", MemberKind::MentalHealthTrust, true),
        admitted("KNPCN", MemberKind::PrimaryCareNetwork, false),
        admitted("KCC", MemberKind::LocalAuthority, false),
    ]
}

/// Period-close events from 2018/19-M1 up to and including `through`.
pub fn closed_through(through: Period) -> Vec<Event> {
    let mut events = Vec::new();
    let mut next = Some(period(2018, 1));
    while let Some(p) = next.filter(|p| *p <= through) {
        events.push(Event::System(SystemEvent::PeriodClosed { period: p }));
        next = p.next();
    }
    events
}

/// Joins lists of events into one history.
pub fn history<const N: usize>(parts: [Vec<Event>; N]) -> Vec<Event> {
    parts.into_iter().flatten().collect()
}

/// What a case expects: the events, or the kind of error with the field, rule or thing it
/// names.
#[derive(Debug)]
pub enum Then {
    Events(Vec<Event>),
    Invalid(&'static str),
    Rejected(Rule),
    NotFound(&'static str),
    AlreadyExists(&'static str),
}

pub struct Case {
    pub name: &'static str,
    pub given: Vec<Event>,
    pub when: Command,
    pub then: Then,
}

/// A ledger with `events` applied (they must fit).
pub fn ledger(events: &[Event]) -> Ledger {
    let mut ledger = Ledger::default();
    for (i, event) in events.iter().enumerate() {
        if let Err(error) = ledger.apply(event) {
            panic!("given[{i}] does not apply: {error}");
        }
    }
    ledger
}

fn matches(then: &Then, outcome: &Result<Vec<Event>, DomainError>) -> bool {
    match (then, outcome) {
        (Then::Events(expected), Ok(events)) => expected == events,
        (Then::Invalid(f), Err(DomainError::Invalid { field, .. })) => field == f,
        (Then::Rejected(r), Err(DomainError::Rejected { rule, .. })) => rule == r,
        (Then::NotFound(w), Err(DomainError::NotFound { what, .. })) => what == w,
        (Then::AlreadyExists(w), Err(DomainError::AlreadyExists { what, .. })) => what == w,
        _ => false,
    }
}

/// Runs every case and fails listing all that did not come out as expected. An accepted
/// command's events must also apply to the state they were decided against.
pub fn run(cases: Vec<Case>) {
    let mut failures = Vec::new();
    for case in &cases {
        let mut state = ledger(&case.given);
        let outcome = state.decide(&case.when);
        if !matches(&case.then, &outcome) {
            failures.push(format!(
                "{}:\n    expected {:?}\n    got      {:?}",
                case.name, case.then, outcome
            ));
            continue;
        }
        if let Ok(events) = &outcome {
            for event in events {
                if let Err(error) = state.apply(event) {
                    failures.push(format!(
                        "{}: decided event does not apply: {error}",
                        case.name
                    ));
                }
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// Executes commands in turn on top of `given`, each of which must be accepted; returns the
/// whole history.
pub fn after(given: Vec<Event>, commands: &[Command]) -> Vec<Event> {
    let mut state = ledger(&given);
    let mut events = given;
    for (i, command) in commands.iter().enumerate() {
        match state.execute(command) {
            Ok(new) => events.extend(new),
            Err(error) => panic!("command {i} refused: {error}\n{command:?}"),
        }
    }
    events
}

/// Folds `log` into the position projection (event `i` at sequence `i + 1`) and takes every
/// report, for 2017/18 to 2019/20 at M3, M6 and M12, latest and as of half-way: the first
/// fold or report that fails, if any.
pub fn every_report(log: &[Event]) -> Result<(), String> {
    use crate::position::{
        AobOptions, AobScope, AsOf, ConsolidationScope, Projection, Recorded, ReportError,
        ReportKind,
    };
    let mut projection = Projection::new();
    for (i, event) in (1u64..).zip(log) {
        let at = Recorded {
            sequence: i,
            recorded_at_us: i64::try_from(i).unwrap_or(i64::MAX),
        };
        projection
            .apply(&at, event)
            .map_err(|e| format!("folding: {e}"))?;
    }
    let half = u64::try_from(log.len() / 2).unwrap_or(0);
    let kinds = [
        ReportKind::Position,
        ReportKind::Consolidation(ConsolidationScope::ControlTotal),
        ReportKind::Consolidation(ConsolidationScope::WiderIcs),
        ReportKind::PooledBudgets,
        ReportKind::Contracts,
        ReportKind::Funds,
        ReportKind::AgreementOfBalances(AobOptions::default()),
        ReportKind::AgreementOfBalances(AobOptions {
            scope: AobScope::AllMembers,
            ..AobOptions::default()
        }),
        ReportKind::Adjustments,
    ];
    for as_of in [AsOf::Latest, AsOf::Sequence(half)] {
        let snapshot = projection.at(as_of).map_err(|e| e.to_string())?;
        for start in 2017..=2019 {
            for m in [3, 6, 12] {
                for kind in kinds {
                    match snapshot.report(kind, year(start), month(m)) {
                        Ok(_) | Err(ReportError::NotEstablished { .. }) => {}
                        Err(e) => return Err(format!("{kind:?} {start} M{m}: {e}")),
                    }
                }
            }
        }
    }
    Ok(())
}
