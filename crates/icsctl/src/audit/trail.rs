//! `icsctl audit trail`: who posted what, and when — each event's sequence, recorded-at time,
//! actor, stream, type and period, and the members it concerns — as a table or `--json`,
//! filtered by member, stream, period and actor.
//!
//! An event concerns a member if it names the member ([`domain::Event::members`]: a return's
//! member and counterparties, a contract's parties as agreed, a budget's partners, a fund's
//! recipients, a filed return's filer, …) or if it is on the stream of a contract, pooled
//! budget or fund the member is a party to (an invoice on KHFT's contract concerns KHFT,
//! though the invoice itself names only the contract). Parties are learnt from the log
//! itself, so with `--member` the log is read from its first event whatever `--from` says.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::ControlFlow;

use clap::Args;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use domain::budget::BudgetEvent;
use domain::contract::ContractEvent;
use domain::fund::FundEvent;
use domain::{Event, FinancialYear, MemberCode, Month, Period, StreamId};
use serde_json::json;

use super::source::{Log, LogEvent};
use super::{LogArgs, time_text};
use crate::Global;

#[derive(Clone, Debug, Args)]
pub struct Trail {
    /// Only events concerning this member (ODS code): naming it, or on a contract, pooled
    /// budget or fund it is a party to.
    #[arg(long, value_parser = crate::parse::member)]
    pub member: Option<MemberCode>,
    /// Only this stream (`system`, `contract/C1`, `budget/BCF`, `fund/SSF`), or every stream of
    /// a kind (`contract`, `budget`, `fund`).
    #[arg(long, value_parser = stream_filter)]
    pub stream: Option<StreamFilter>,
    /// Only events effective in this period: a month of the financial year (`2018/19-M5`), a
    /// calendar month (`2018-08`, the same month), or a whole financial year (`2018/19`).
    #[arg(long, value_parser = period_filter)]
    pub period: Option<PeriodFilter>,
    /// Only events posted by this actor (the token's subject, or the poster's `--actor`).
    /// The global `--actor` (who is posting) is this flag here: the trail posts nothing.
    #[arg(long)]
    pub actor: Option<String>,
    /// First global sequence to list.
    #[arg(long, default_value_t = 1)]
    pub from: u64,
    #[command(flatten)]
    pub log: LogArgs,
}

/// Which streams to list.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StreamFilter {
    One(StreamId),
    /// Every `budget/…`, `fund/…` or `contract/…` stream.
    Kind(String),
}

/// Which periods to list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PeriodFilter {
    Month(Period),
    Year(FinancialYear),
}

fn stream_filter(text: &str) -> Result<StreamFilter, String> {
    match text {
        "budget" | "fund" | "contract" => Ok(StreamFilter::Kind(format!("{text}/"))),
        _ => StreamId::parse(text)
            .map(StreamFilter::One)
            .map_err(|e| e.to_string()),
    }
}

/// `2018/19-M5`, `2018-08` (August, which is M5 of 2018/19), `2018/19` or `2018`.
fn period_filter(text: &str) -> Result<PeriodFilter, String> {
    if let Ok(period) = text.parse::<Period>() {
        return Ok(PeriodFilter::Month(period));
    }
    if let Ok(year) = text.parse::<FinancialYear>() {
        return Ok(PeriodFilter::Year(year));
    }
    let bad = || {
        format!(
            "'{text}' is not a period like 2018/19-M5, a month like 2018-08, or a year like 2018/19"
        )
    };
    let (year, month) = text.split_once('-').ok_or_else(bad)?;
    let (year, month): (u32, u32) = (
        year.parse().map_err(|_| bad())?,
        month.parse().map_err(|_| bad())?,
    );
    if year.to_string().len() != 4 || !(1..=12).contains(&month) {
        return Err(bad());
    }
    // April is M1: January to March belong to the financial year that began the April before.
    let (start, number) = if month >= 4 {
        (year, month - 3)
    } else {
        (year.checked_sub(1).ok_or_else(bad)?, month + 9)
    };
    let year = FinancialYear::new(start).map_err(|e| e.to_string())?;
    let month = Month::new(number).map_err(|e| e.to_string())?;
    Ok(PeriodFilter::Month(year.period(month)))
}

/// The members party to each contract, pooled budget and fund, learnt from the log.
#[derive(Clone, Debug, Default)]
pub struct Parties(BTreeMap<String, BTreeSet<MemberCode>>);

impl Parties {
    /// Learns the parties an event makes: a contract's commissioner and provider, a budget's
    /// host and partners, a fund's recipients.
    pub fn learn(&mut self, stream: &str, event: &Event) {
        let joining = match event {
            Event::Contract {
                event: ContractEvent::Agreed { .. },
                ..
            }
            | Event::Budget {
                event: BudgetEvent::Established { .. },
                ..
            }
            | Event::Fund {
                event: FundEvent::Allocated { .. },
                ..
            } => event.members(),
            _ => return,
        };
        self.0
            .entry(stream.to_string())
            .or_default()
            .extend(joining);
    }

    /// Whether `event` on `stream` concerns `member`.
    pub fn concerns(&self, member: &MemberCode, stream: &str, event: &Event) -> bool {
        self.0.get(stream).is_some_and(|p| p.contains(member)) || event.members().contains(member)
    }
}

impl Trail {
    /// Whether the trail lists `event`, given the parties learnt so far.
    pub fn keeps(&self, event: &LogEvent, parties: &Parties) -> bool {
        if event.sequence < self.from {
            return false;
        }
        if let Some(actor) = &self.actor
            && event.actor != *actor
        {
            return false;
        }
        let stream_kept = match &self.stream {
            None => true,
            Some(StreamFilter::One(stream)) => event.stream == stream.as_str(),
            Some(StreamFilter::Kind(prefix)) => event.stream.starts_with(prefix.as_str()),
        };
        let period_kept = match (self.period, event.effective_period) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(PeriodFilter::Month(want)), Some(p)) => p == want,
            (Some(PeriodFilter::Year(want)), Some(p)) => p.year == want,
        };
        let member_kept = self
            .member
            .as_ref()
            .is_none_or(|m| parties.concerns(m, &event.stream, &event.event));
        stream_kept && period_kept && member_kept
    }
}

/// One line of the trail.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Line {
    pub sequence: u64,
    pub recorded_at_us: i64,
    pub actor: String,
    pub stream: String,
    pub event_type: String,
    pub period: Option<Period>,
    pub members: Vec<MemberCode>,
}

/// The trail of `events` (in log order) under `trail`'s filters.
pub fn lines(trail: &Trail, events: impl IntoIterator<Item = LogEvent>) -> Vec<Line> {
    let mut parties = Parties::default();
    let mut out = Vec::new();
    for event in events {
        parties.learn(&event.stream, &event.event);
        if trail.keeps(&event, &parties) {
            out.push(line(&event));
        }
    }
    out
}

fn line(event: &LogEvent) -> Line {
    Line {
        sequence: event.sequence,
        recorded_at_us: event.recorded_at_us,
        actor: event.actor.clone(),
        stream: event.stream.clone(),
        event_type: event.event_type.clone(),
        period: event.effective_period,
        members: event.event.members(),
    }
}

pub async fn run(global: &Global, trail: Trail) -> anyhow::Result<()> {
    let mut log = Log::open(global, trail.log.data_dir.as_deref()).await?;
    let head = log.head().await?;
    // Parties are learnt from the start; without --member nothing before --from is needed.
    let start = if trail.member.is_some() {
        1
    } else {
        trail.from
    };
    let mut parties = Parties::default();
    let mut found = Vec::new();
    log.each(start, head, |event| {
        parties.learn(&event.stream, &event.event);
        if trail.keeps(&event, &parties) {
            found.push(line(&event));
        }
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    if global.json {
        let rows: Vec<serde_json::Value> = found
            .iter()
            .map(|l| {
                json!({
                    "sequence": l.sequence,
                    "recorded_at": time_text(l.recorded_at_us),
                    "recorded_at_us": l.recorded_at_us,
                    "actor": l.actor,
                    "stream": l.stream,
                    "event_type": l.event_type,
                    "period": l.period.map(|p| p.to_string()),
                    "members": l.members.iter().map(ToString::to_string).collect::<Vec<_>>(),
                })
            })
            .collect();
        println!("{}", serde_json::to_string_pretty(&rows)?);
        return Ok(());
    }
    let mut table = Table::new();
    table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
        "seq",
        "recorded at",
        "actor",
        "stream",
        "event",
        "period",
        "members",
    ]);
    for l in &found {
        table.add_row(vec![
            l.sequence.to_string(),
            time_text(l.recorded_at_us),
            l.actor.clone(),
            l.stream.clone(),
            l.event_type.clone(),
            l.period.map_or_else(String::new, |p| p.to_string()),
            l.members
                .iter()
                .map(MemberCode::as_str)
                .collect::<Vec<_>>()
                .join(" "),
        ]);
    }
    println!("{table}");
    println!(
        "{} of {} events ({})",
        found.len(),
        head.saturating_sub(start.saturating_sub(1)),
        log.describe()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::tests::demo;

    fn trail() -> Trail {
        Trail {
            member: None,
            stream: None,
            period: None,
            actor: None,
            from: 1,
            log: LogArgs { data_dir: None },
        }
    }

    /// The demo's log, as if posted by three teams: KHFT's finance team posts its own
    /// returns, the ICB's system finance team everything else, and the admin set it up.
    fn log() -> Vec<LogEvent> {
        let (log, _) = demo();
        log.into_iter()
            .map(|(recorded, event)| {
                let actor = match &event {
                    Event::System(domain::SystemEvent::Established { .. })
                    | Event::System(domain::SystemEvent::MemberAdmitted { .. }) => "admin",
                    Event::System(domain::SystemEvent::ReturnSubmitted {
                        monthly_return, ..
                    }) if monthly_return.member.as_str() == "KHFT" => "khft-finance",
                    _ => "icb-finance",
                };
                LogEvent {
                    sequence: recorded.sequence,
                    recorded_at_us: recorded.recorded_at_us,
                    stream: event.stream().to_string(),
                    actor: actor.to_string(),
                    event_type: api::event_type(&event),
                    effective_period: event.effective_period(),
                    event,
                }
            })
            .collect()
    }

    fn m(code: &str) -> MemberCode {
        MemberCode::parse(code).expect("member")
    }

    #[test]
    fn with_no_filter_every_event_is_listed_in_order() {
        let log = log();
        let all = lines(&trail(), log.clone());
        assert_eq!(all.len(), log.len());
        assert!(all.windows(2).all(|w| w[0].sequence < w[1].sequence));
        let from = lines(
            &Trail {
                from: 100,
                ..trail()
            },
            log.clone(),
        );
        assert_eq!(from.first().map(|l| l.sequence), Some(100));
        assert_eq!(from.len(), log.len() - 99);
    }

    /// `--actor` is also the global flag naming who posts: the trail filters on it only when
    /// it was typed, before or after `audit trail`, never on a default.
    #[test]
    fn the_actor_filter_is_what_was_typed_and_nothing_else() {
        use clap::Parser;
        let actor = |args: &[&str]| {
            let cli = crate::Cli::try_parse_from(args).expect("parses");
            match cli.command {
                crate::Cmd::Audit(crate::audit::Audit::Trail(trail)) => trail.actor,
                other => panic!("not a trail: {other:?}"),
            }
        };
        assert_eq!(actor(&["icsctl", "audit", "trail"]), None);
        assert_eq!(
            actor(&["icsctl", "audit", "trail", "--actor", "khft-finance"]),
            Some("khft-finance".to_string())
        );
        assert_eq!(
            actor(&["icsctl", "--actor", "khft-finance", "audit", "trail"]),
            Some("khft-finance".to_string())
        );
    }

    #[test]
    fn the_actor_filter_lists_only_what_the_actor_posted() {
        let khft = lines(
            &Trail {
                actor: Some("khft-finance".to_string()),
                ..trail()
            },
            log(),
        );
        assert_eq!(khft.len(), 12, "KHFT's twelve monthly returns");
        assert!(
            khft.iter()
                .all(|l| l.event_type == "system.return_submitted" && l.actor == "khft-finance")
        );
        let nobody = lines(
            &Trail {
                actor: Some("nobody".to_string()),
                ..trail()
            },
            log(),
        );
        assert!(nobody.is_empty());
    }

    #[test]
    fn the_stream_filter_takes_one_stream_or_a_kind() {
        let log = log();
        let c1 = lines(
            &Trail {
                stream: Some(stream_filter("contract/C1").expect("stream")),
                ..trail()
            },
            log.clone(),
        );
        assert!(!c1.is_empty());
        assert!(c1.iter().all(|l| l.stream == "contract/C1"));
        assert_eq!(c1[0].event_type, "contract.agreed");
        let contracts = lines(
            &Trail {
                stream: Some(stream_filter("contract").expect("kind")),
                ..trail()
            },
            log.clone(),
        );
        assert!(contracts.len() > c1.len());
        assert!(contracts.iter().all(|l| l.stream.starts_with("contract/")));
        let streams: BTreeSet<&str> = contracts.iter().map(|l| l.stream.as_str()).collect();
        assert!(streams.len() > 1, "{streams:?}");
        assert!(stream_filter("ledger/X").is_err());
        assert!(stream_filter("contract/").is_err());
    }

    #[test]
    fn the_period_filter_takes_a_month_in_either_form_or_a_year() {
        let log = log();
        let m5 = period_filter("2018/19-M5").expect("period");
        assert_eq!(period_filter("2018-08"), Ok(m5), "August is M5");
        assert_eq!(
            period_filter("2019-03"),
            period_filter("2018/19-M12"),
            "March ends the year begun the April before"
        );
        assert!(period_filter("2018-13").is_err());
        assert!(period_filter("18-08").is_err());
        assert!(period_filter("May").is_err());
        let in_m5 = lines(
            &Trail {
                period: Some(m5),
                ..trail()
            },
            log.clone(),
        );
        assert!(!in_m5.is_empty());
        let PeriodFilter::Month(p5) = m5 else {
            panic!("a month");
        };
        assert!(in_m5.iter().all(|l| l.period == Some(p5)));
        let year = lines(
            &Trail {
                period: Some(period_filter("2018/19").expect("year")),
                ..trail()
            },
            log.clone(),
        );
        let with_period = log.iter().filter(|e| e.effective_period.is_some()).count();
        assert!(year.len() > in_m5.len());
        assert!(year.len() <= with_period);
        assert!(
            year.iter()
                .all(|l| l.period.is_some_and(|p| p.year == p5.year))
        );
    }

    #[test]
    fn the_member_filter_lists_what_names_the_member_or_its_contracts_budgets_and_funds() {
        let log = log();
        let khft = lines(
            &Trail {
                member: Some(m("KHFT")),
                ..trail()
            },
            log.clone(),
        );
        let kinds: BTreeSet<&str> = khft.iter().map(|l| l.event_type.as_str()).collect();
        for kind in [
            "system.member_admitted",
            "system.plan_agreed",
            "system.return_submitted",
            "contract.agreed",
            "funding.allocated",
            "funding.tranche_assessed",
        ] {
            assert!(kinds.contains(kind), "{kind} in {kinds:?}");
        }
        // On its contracts' streams even where the event names only the contract.
        let contract_lines: Vec<&Line> = khft
            .iter()
            .filter(|l| l.stream.starts_with("contract/") && l.members.is_empty())
            .collect();
        assert!(!contract_lines.is_empty(), "{kinds:?}");
        // Nothing that does not concern it: the council's own returns, other contracts.
        let mut parties = Parties::default();
        for event in &log {
            parties.learn(&event.stream, &event.event);
            let listed = khft.iter().any(|l| l.sequence == event.sequence);
            assert_eq!(
                listed,
                parties.concerns(&m("KHFT"), &event.stream, &event.event),
                "event {}",
                event.sequence
            );
        }
        assert!(khft.len() < log.len());
        // Filters combine: KHFT's returns in M5.
        let both = lines(
            &Trail {
                member: Some(m("KHFT")),
                period: Some(period_filter("2018/19-M5").expect("period")),
                stream: Some(stream_filter("system").expect("stream")),
                actor: Some("khft-finance".to_string()),
                ..trail()
            },
            log,
        );
        assert_eq!(both.len(), 1);
        assert_eq!(both[0].event_type, "system.return_submitted");
    }
}
