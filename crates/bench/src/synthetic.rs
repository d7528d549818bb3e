//! A synthetic ICS log of any length, for the read-side benchmarks: every event is one
//! `domain::Ledger::execute` accepted, so the projection folds it exactly as it would fold
//! ledgerd's log.
//!
//! The system has twenty members (three commissioners, five acute trusts, two community and
//! two mental-health trusts, six PCNs and two councils). Each financial year it agrees plans,
//! 24 contracts (block, activity at tariff, aligned payment, capitation and CQUIN), a pooled
//! budget with four partners and a sustainability fund for seven providers. Each month every
//! member files a return with counterparty balances, the acute trusts report metrics, activity
//! is counted on the contracts that plan units, partners pay into the pool and the pool
//! spends, and the period closes; each quarter the fund's tranche is assessed and then paid;
//! in the year, a contract is varied, one terminated, the pool varied, a payment clawed back,
//! CQUIN reconciled and the risk share settled. On top of that skeleton each month carries
//! its share of the volume: invoices (paid the month after, some in part), adjustments,
//! corrections naming earlier months, activity restated, returns resubmitted, pool spend,
//! disputes raised and resolved.
//!
//! The volume is spread so the log holds exactly `events` events over `years` years; the last
//! month is left open (not closed), as the latest month of a live ledger is. Deterministic:
//! amounts come from a fixed-seed SplitMix64, so the same arguments give the same log.
//! Recorded-at times start on 2018-04-01 and advance one (average) month per period, the
//! events of a month spread evenly over it.

use std::collections::VecDeque;

use anyhow::{Context, anyhow, ensure};
use domain::budget::{BudgetCommand, Scheme, Share};
use domain::contract::{ContractCommand, PaymentModel};
use domain::fund::{Condition, ConditionKind, Evidence, Figures, FundCommand, Recipient};
use domain::position::Recorded;
use domain::system::{CounterpartyBalance, Metric, MonthlyReturn, SystemCommand};
use domain::{
    BasisPoints, Code, Command, Event, FinancialYear, Ledger, MemberCode, MemberKind, Month, Pence,
    Period, Quarter, SystemId, Text,
};

/// 2018-04-01T00:00:00Z in microseconds since the Unix epoch: M1 of the first year.
pub const EPOCH_US: i64 = 1_522_540_800_000_000;
/// An average month (365.2425 / 12 days), in microseconds.
pub const MONTH_US: i64 = 2_629_746_000_000;
/// The first financial year of the synthetic system.
pub const FIRST_YEAR: u32 = 2018;
/// Years the full-size log spans.
pub const DEFAULT_YEARS: u32 = 5;
/// The system the synthetic log establishes.
pub const SYSTEM: &str = "synth";

use MemberKind::{
    AcuteTrust, Commissioner, CommunityTrust, LocalAuthority, MentalHealthTrust, PrimaryCareNetwork,
};

/// Code, name, kind, and annual plan (income, expenditure) in pounds for the first year.
#[rustfmt::skip]
const MEMBERS: [(&str, &str, MemberKind, i64, i64); 20] = [
    ("KCCG", "Kingsmere CCG", Commissioner, 900_000_000, 900_000_000),
    ("AVCCG", "Alder Valley CCG", Commissioner, 640_000_000, 641_000_000),
    ("NWCCG", "Northwold CCG", Commissioner, 520_000_000, 519_000_000),
    ("KHFT", "Kingsmere Hospitals", AcuteTrust, 420_000_000, 426_000_000),
    ("AVT", "Alder Valley Trust", AcuteTrust, 240_000_000, 243_600_000),
    ("RNGH", "Riverside General", AcuteTrust, 310_000_000, 309_000_000),
    ("STJH", "St John's Hospital", AcuteTrust, 180_000_000, 182_000_000),
    ("WVHT", "Westvale Hospitals", AcuteTrust, 205_000_000, 204_000_000),
    ("KCHT", "Kingsmere Community", CommunityTrust, 96_000_000, 95_040_000),
    ("AVCH", "Alder Valley Community", CommunityTrust, 71_000_000, 70_500_000),
    ("AKMH", "Alder & Kingsmere MH", MentalHealthTrust, 144_000_000, 142_560_000),
    ("NWMH", "Northwold MH", MentalHealthTrust, 98_000_000, 98_900_000),
    ("KNPCN", "Kingsmere North PCN", PrimaryCareNetwork, 2_400_000, 2_400_000),
    ("KSPCN", "Kingsmere South PCN", PrimaryCareNetwork, 2_100_000, 2_090_000),
    ("AVNPCN", "Alder Valley North PCN", PrimaryCareNetwork, 1_900_000, 1_910_000),
    ("AVSPCN", "Alder Valley South PCN", PrimaryCareNetwork, 2_000_000, 2_000_000),
    ("NWPCN", "Northwold PCN", PrimaryCareNetwork, 2_600_000, 2_580_000),
    ("RUPCN", "Rural PCN", PrimaryCareNetwork, 1_500_000, 1_500_000),
    ("KCC", "Kingsmere County Council", LocalAuthority, 240_000_000, 240_000_000),
    ("AVC", "Alder Valley Council", LocalAuthority, 160_000_000, 160_500_000),
];

/// A contract's model, in pounds for the first year.
#[derive(Clone, Copy)]
enum Model {
    Block(i64),
    Tariff { units: u64, price: i64 },
    Aligned { fixed: i64, units: u64, price: i64 },
    Capitation { per_head: i64, population: u64 },
    Cquin { base: i64 },
}

/// Commissioner, provider, model: the contracts agreed every year.
#[rustfmt::skip]
const CONTRACTS: [(&str, &str, Model); 24] = [
    ("KCCG", "KHFT", Model::Block(240_000_000)),
    ("AVCCG", "AVT", Model::Block(150_000_000)),
    ("NWCCG", "RNGH", Model::Block(190_000_000)),
    ("KCCG", "KCHT", Model::Block(84_000_000)),
    ("AVCCG", "AVCH", Model::Block(60_000_000)),
    ("KCCG", "AKMH", Model::Block(126_000_000)),
    ("NWCCG", "NWMH", Model::Block(88_000_000)),
    ("KCCG", "STJH", Model::Tariff { units: 24_000, price: 3_000 }),
    ("AVCCG", "WVHT", Model::Tariff { units: 18_000, price: 2_800 }),
    ("NWCCG", "KHFT", Model::Tariff { units: 9_000, price: 3_100 }),
    ("KCCG", "AVT", Model::Tariff { units: 6_000, price: 2_900 }),
    ("AVCCG", "RNGH", Model::Tariff { units: 12_000, price: 3_050 }),
    ("KCCG", "WVHT", Model::Aligned { fixed: 90_000_000, units: 36_000, price: 2_000 }),
    ("AVCCG", "STJH", Model::Aligned { fixed: 70_000_000, units: 30_000, price: 2_100 }),
    ("NWCCG", "AVT", Model::Aligned { fixed: 40_000_000, units: 16_000, price: 2_200 }),
    ("KCCG", "KNPCN", Model::Capitation { per_head: 48, population: 50_000 }),
    ("KCCG", "KSPCN", Model::Capitation { per_head: 47, population: 44_000 }),
    ("AVCCG", "AVNPCN", Model::Capitation { per_head: 49, population: 39_000 }),
    ("AVCCG", "AVSPCN", Model::Capitation { per_head: 48, population: 41_000 }),
    ("NWCCG", "NWPCN", Model::Capitation { per_head: 50, population: 52_000 }),
    ("NWCCG", "RUPCN", Model::Capitation { per_head: 52, population: 29_000 }),
    ("KCCG", "KHFT", Model::Cquin { base: 312_000_000 }),
    ("AVCCG", "AVT", Model::Cquin { base: 180_000_000 }),
    ("NWCCG", "RNGH", Model::Cquin { base: 230_000_000 }),
];

/// The contract varied in M7 (a block) and the one terminated in M9 (a capitation).
const VARIED: usize = 0;
const TERMINATED: usize = 20;

/// The pooled budget's partners: code, revenue pledge, ring-fenced (DFG) pledge, in pounds.
const PARTNERS: [(&str, i64, i64); 4] = [
    ("KCCG", 28_000_000, 0),
    ("AVCCG", 20_000_000, 0),
    ("KCC", 9_600_000, 2_400_000),
    ("AVC", 6_000_000, 1_200_000),
];
const HOST: &str = "KCC";
/// The pool's schemes (code, ring-fenced); `WINTER` is added by a variation in M6.
const SCHEMES: [(&str, bool); 4] = [
    ("COMMUNITY", false),
    ("REABLE", false),
    ("CARERS", false),
    ("DFG", true),
];

/// The fund's recipients and their allocations, in pounds.
const RECIPIENTS: [(&str, i64); 7] = [
    ("KHFT", 4_800_000),
    ("AVT", 2_400_000),
    ("RNGH", 3_100_000),
    ("STJH", 1_800_000),
    ("WVHT", 2_000_000),
    ("AKMH", 1_200_000),
    ("NWMH", 900_000),
];

/// Events a month's closing steps (assessment, CQUIN, risk share, closes) may take.
const MONTH_END_RESERVE: usize = 16;

/// The synthetic log and what it holds.
pub struct SyntheticLog {
    /// Events numbered 1..=N, recorded-at times increasing.
    pub log: Vec<(Recorded, Event)>,
    /// Commands executed, every one accepted.
    pub commands: u64,
    /// How many of the log's events each command produced, in order (the last command's
    /// may be cut short by the log's length): the requests ledgerd would have appended.
    pub command_events: Vec<u32>,
    pub members: usize,
    pub first_year: FinancialYear,
    /// The last year with events.
    pub last_year: FinancialYear,
}

impl SyntheticLog {
    /// How many events of each kind (`family.name`) the log holds, most first.
    pub fn mix(&self) -> Vec<(String, u64)> {
        let mut counts = std::collections::BTreeMap::<String, u64>::new();
        for (_, event) in &self.log {
            *counts
                .entry(format!("{}.{}", event.family(), event.name()))
                .or_default() += 1;
        }
        let mut mix: Vec<_> = counts.into_iter().collect();
        mix.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        mix
    }
}

/// SplitMix64: a tiny deterministic generator, enough to vary amounts.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// In `lo..=hi` (`lo <= hi`).
    fn between(&mut self, lo: i64, hi: i64) -> i64 {
        let span = u64::try_from(hi - lo).unwrap_or(0).saturating_add(1);
        lo + i64::try_from(self.next() % span).unwrap_or(0)
    }

    /// Pounds in `lo..=hi`, as pence with some pence.
    fn pounds(&mut self, lo: i64, hi: i64) -> Pence {
        Pence::new(self.between(lo * 100, hi * 100))
    }
}

fn code(text: impl Into<String>) -> anyhow::Result<Code> {
    let text = text.into();
    Code::new(text.clone()).map_err(|e| anyhow!("code {text}: {e}"))
}

fn member(text: &str) -> anyhow::Result<MemberCode> {
    MemberCode::parse(text).map_err(|e| anyhow!("member {text}: {e}"))
}

fn text(text: &str) -> anyhow::Result<Text> {
    Text::new(text).map_err(|e| anyhow!("text {text}: {e}"))
}

fn month(number: u32) -> anyhow::Result<Month> {
    Month::new(number).map_err(|e| anyhow!("{e}"))
}

fn quarter(number: u32) -> anyhow::Result<Quarter> {
    Quarter::new(number).map_err(|e| anyhow!("{e}"))
}

fn pounds(amount: i64) -> Pence {
    Pence::new(amount * 100)
}

/// `amount` grown by `percent`% a year for `years` years (integer arithmetic).
fn grown(amount: i64, years: u32, percent: i64) -> i64 {
    (0..years).fold(amount, |a, _| a / 100 * (100 + percent))
}

fn contract_code(year: FinancialYear, index: usize) -> anyhow::Result<Code> {
    code(format!("{}-C{:02}", year.start_year(), index + 1))
}

fn budget_code(year: FinancialYear) -> anyhow::Result<Code> {
    code(format!("BCF-{}", year.start_year()))
}

fn fund_code(year: FinancialYear) -> anyhow::Result<Code> {
    code(format!("SSF-{}", year.start_year()))
}

/// Builds a log of exactly `events` events over `years` financial years from 2018/19 (fewer
/// years' worth if `events` is too small to hold the skeleton of them all).
pub fn generate(events: u64, years: u32) -> anyhow::Result<SyntheticLog> {
    ensure!(events > 0 && years > 0, "nothing to generate");
    let mut generator = Generator {
        ledger: Ledger::default(),
        events: Vec::with_capacity(usize::try_from(events)?),
        stamps: Vec::with_capacity(usize::try_from(events)?),
        target: usize::try_from(events)?,
        commands: 0,
        command_events: Vec::new(),
        rng: SplitMix64(0x1C5_2018),
        next_code: 0,
        to_pay: VecDeque::new(),
        raised: Vec::new(),
        disputes: VecDeque::new(),
        new_disputes: Vec::new(),
    };
    let first_year = FinancialYear::new(FIRST_YEAR)?;
    let months = u128::from(years) * 12;
    let mut last_year = first_year;
    'years: for y in 0..years {
        let year = FinancialYear::new(FIRST_YEAR + y)?;
        for m in 1..=12u32 {
            if generator.full() {
                break 'years;
            }
            last_year = year;
            let index = u128::from(y * 12 + m - 1);
            let cumulative = u128::from(events) * (index + 1) / months;
            let final_month = index + 1 == months;
            generator.month(year, y, m, usize::try_from(cumulative)?, final_month)?;
            generator.stamp(i64::try_from(index)?);
        }
    }
    ensure!(
        generator.events.len() == generator.target,
        "generated {} events, not {}",
        generator.events.len(),
        generator.target
    );
    let log = generator
        .stamps
        .iter()
        .zip(generator.events)
        .enumerate()
        .map(|(i, (recorded_at_us, event))| {
            (
                Recorded {
                    sequence: i as u64 + 1,
                    recorded_at_us: *recorded_at_us,
                },
                event,
            )
        })
        .collect();
    Ok(SyntheticLog {
        log,
        commands: generator.commands,
        command_events: generator.command_events,
        members: MEMBERS.len(),
        first_year,
        last_year,
    })
}

/// What a month's volume draws on.
struct MonthWork {
    y: u32,
    m: u32,
    period: Period,
    /// Contracts of the year not terminated.
    live: Vec<Code>,
    /// Those of them that plan units.
    activity: Vec<Code>,
    budget: Code,
    schemes: Vec<Code>,
}

struct Generator {
    ledger: Ledger,
    events: Vec<Event>,
    /// Recorded-at times of the events of the months done so far.
    stamps: Vec<i64>,
    target: usize,
    commands: u64,
    /// Events each command produced (see [`SyntheticLog::command_events`]).
    command_events: Vec<u32>,
    rng: SplitMix64,
    /// For invoice and dispute codes.
    next_code: u64,
    /// (contract, invoice) raised last month, paid this month.
    to_pay: VecDeque<(Code, Code)>,
    raised: Vec<(Code, Code)>,
    /// (contract, dispute) raised in earlier months, resolved this month.
    disputes: VecDeque<(Code, Code)>,
    new_disputes: Vec<(Code, Code)>,
}

impl Generator {
    fn full(&self) -> bool {
        self.events.len() >= self.target
    }

    /// Executes `command` against the ledger (which must accept it) and keeps its events;
    /// once the log is full, does nothing.
    fn exec(&mut self, command: Command) -> anyhow::Result<()> {
        if self.full() {
            return Ok(());
        }
        let events = self.ledger.execute(&command).map_err(|e| {
            anyhow!(
                "synthetic command {} refused: {e}\n{command:?}",
                self.commands + 1
            )
        })?;
        self.commands += 1;
        let before = self.events.len();
        self.events.extend(events);
        self.events.truncate(self.target);
        let kept = u32::try_from(self.events.len() - before)?;
        if kept > 0 {
            self.command_events.push(kept);
        }
        Ok(())
    }

    fn next_code(&mut self, prefix: &str) -> anyhow::Result<Code> {
        self.next_code += 1;
        code(format!("{prefix}{}", self.next_code))
    }

    /// Recorded-at times for the events of month `index` (0 = M1 of the first year).
    fn stamp(&mut self, index: i64) {
        let start = EPOCH_US + index * MONTH_US;
        let count = self.events.len() - self.stamps.len();
        let count_i = i128::try_from(count).unwrap_or(i128::MAX).max(1);
        for j in 0..count {
            let offset = i128::try_from(j).unwrap_or(0) * i128::from(MONTH_US) / count_i;
            self.stamps
                .push(start + i64::try_from(offset).unwrap_or(MONTH_US - 1));
        }
    }

    fn month(
        &mut self,
        year: FinancialYear,
        y: u32,
        m: u32,
        cumulative: usize,
        final_month: bool,
    ) -> anyhow::Result<()> {
        let period = Period::new(year, month(m)?);
        if y == 0 && m == 1 {
            self.establish()?;
        }
        if m == 1 {
            self.year_setup(year, y)?;
            if let Some(previous) = y.checked_sub(1) {
                // Last year's Q4 tranche, assessed in its M12, is paid now.
                let previous = FinancialYear::new(FIRST_YEAR + previous)?;
                self.exec(Command::Fund {
                    fund: fund_code(previous)?,
                    command: FundCommand::PayTranche {
                        quarter: quarter(4)?,
                        period,
                    },
                })?;
            }
        }
        self.skeleton(year, y, m, period)?;

        // The month's volume, up to its share of the log.
        let live = self.live_contracts(year)?;
        let activity: Vec<Code> = live
            .iter()
            .filter(|c| {
                self.ledger
                    .contracts
                    .get(*c)
                    .is_some_and(|s| s.model.planned_units().is_some())
            })
            .cloned()
            .collect();
        let budget = budget_code(year)?;
        let schemes: Vec<Code> = self
            .ledger
            .budgets
            .get(&budget)
            .map(|b| b.schemes.keys().cloned().collect())
            .unwrap_or_default();
        let work = MonthWork {
            y,
            m,
            period,
            live,
            activity,
            budget,
            schemes,
        };
        let mut round = 0u64;
        while self.events.len() + MONTH_END_RESERVE < cumulative {
            self.round(round, &work)?;
            round += 1;
        }
        let live = work.live;

        self.month_end(year, m, period)?;
        if final_month {
            // Fill to exactly the target with invoices.
            let mut n = 0usize;
            while !self.full() {
                let contract = live
                    .get(n % live.len().max(1))
                    .cloned()
                    .context("no live contract")?;
                self.invoice(&contract, period, None)?;
                n += 1;
            }
        } else {
            self.exec(Command::System(SystemCommand::ClosePeriod { period }))?;
        }
        self.to_pay.extend(self.raised.drain(..));
        self.disputes.extend(self.new_disputes.drain(..));
        Ok(())
    }

    fn establish(&mut self) -> anyhow::Result<()> {
        self.exec(Command::System(SystemCommand::Establish {
            system: SystemId::new(SYSTEM).map_err(|e| anyhow!("{e}"))?,
            name: text("Synthetic ICS")?,
            first_year: FinancialYear::new(FIRST_YEAR)?,
        }))?;
        for (m, name, kind, _, _) in MEMBERS {
            self.exec(Command::System(SystemCommand::AdmitMember {
                member: member(m)?,
                name: text(name)?,
                kind,
                in_control_total: kind.is_nhs_body(),
            }))?;
        }
        Ok(())
    }

    /// Plans, contracts, the pooled budget and the fund of `year`.
    fn year_setup(&mut self, year: FinancialYear, y: u32) -> anyhow::Result<()> {
        for (i, (m, _, _, income, expenditure)) in MEMBERS.iter().enumerate() {
            let scale = |a: i64| grown(a, y, 3) / 1_000 * (1_000 + i as i64);
            self.exec(Command::System(SystemCommand::AgreePlan {
                member: member(m)?,
                year,
                income: pounds(scale(*income)),
                expenditure: pounds(scale(*expenditure)),
            }))?;
        }
        // Two plans revised before the year's first period closes.
        for (m, _, _, income, expenditure) in MEMBERS.iter().skip(3).take(2) {
            self.exec(Command::System(SystemCommand::AgreePlan {
                member: member(m)?,
                year,
                income: pounds(grown(*income, y, 3)),
                expenditure: pounds(grown(*expenditure, y, 3) / 100 * 101),
            }))?;
        }
        for (i, (commissioner, provider, model)) in CONTRACTS.iter().enumerate() {
            self.exec(Command::Contract {
                contract: contract_code(year, i)?,
                command: ContractCommand::Agree {
                    commissioner: member(commissioner)?,
                    provider: member(provider)?,
                    year,
                    model: payment_model(*model, y, 0),
                    description: text("Synthetic services")?,
                },
            })?;
        }
        let share = |m: &str, bp: u32| -> anyhow::Result<Share> {
            Ok(Share {
                member: member(m)?,
                share: BasisPoints::new(bp),
            })
        };
        let budget = budget_code(year)?;
        self.exec(Command::Budget {
            budget: budget.clone(),
            command: BudgetCommand::Establish {
                name: text("Better Care Fund")?,
                host: member(HOST)?,
                year,
                partners: PARTNERS
                    .iter()
                    .map(|(m, _, _)| member(m))
                    .collect::<anyhow::Result<_>>()?,
                schemes: SCHEMES
                    .iter()
                    .map(|(s, ring_fenced)| {
                        Ok(Scheme {
                            scheme: code(*s)?,
                            name: text(s)?,
                            ring_fenced: *ring_fenced,
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
                overspend_shares: vec![
                    share("KCCG", 3_500)?,
                    share("AVCCG", 2_500)?,
                    share("KCC", 2_500)?,
                    share("AVC", 1_500)?,
                ],
                underspend_shares: vec![
                    share("KCCG", 4_000)?,
                    share("AVCCG", 3_000)?,
                    share("KCC", 2_000)?,
                    share("AVC", 1_000)?,
                ],
            },
        })?;
        for (partner, revenue, ring_fenced) in PARTNERS {
            self.exec(Command::Budget {
                budget: budget.clone(),
                command: BudgetCommand::Pledge {
                    partner: member(partner)?,
                    amount: pounds(grown(revenue, y, 2)),
                    ring_fenced_scheme: None,
                },
            })?;
            if ring_fenced > 0 {
                self.exec(Command::Budget {
                    budget: budget.clone(),
                    command: BudgetCommand::Pledge {
                        partner: member(partner)?,
                        amount: pounds(grown(ring_fenced, y, 2)),
                        ring_fenced_scheme: Some(code("DFG")?),
                    },
                })?;
            }
        }
        self.exec(Command::Fund {
            fund: fund_code(year)?,
            command: FundCommand::Allocate {
                name: text("System sustainability fund")?,
                year,
                recipients: RECIPIENTS
                    .iter()
                    .map(|(m, amount)| {
                        Ok(Recipient {
                            member: member(m)?,
                            allocation: pounds(*amount),
                        })
                    })
                    .collect::<anyhow::Result<_>>()?,
                conditions: vec![
                    Condition {
                        condition: code("FIN")?,
                        kind: ConditionKind::SystemFinance,
                        weight: BasisPoints::new(7_000),
                    },
                    Condition {
                        condition: code("AE")?,
                        kind: ConditionKind::AeFourHour {
                            threshold: BasisPoints::new(9_000),
                        },
                        weight: BasisPoints::new(3_000),
                    },
                ],
            },
        })?;
        Ok(())
    }

    /// What happens every month regardless of volume.
    fn skeleton(
        &mut self,
        year: FinancialYear,
        y: u32,
        m: u32,
        period: Period,
    ) -> anyhow::Result<()> {
        // The tranche assessed last quarter is paid.
        if m > 1 && m % 3 == 1 {
            self.exec(Command::Fund {
                fund: fund_code(year)?,
                command: FundCommand::PayTranche {
                    quarter: quarter(m / 3)?,
                    period,
                },
            })?;
        }
        if m == 6 {
            self.exec(Command::Budget {
                budget: budget_code(year)?,
                command: BudgetCommand::Vary {
                    reason: text("Winter pressures scheme added")?,
                    overspend_shares: None,
                    underspend_shares: None,
                    add_schemes: vec![Scheme {
                        scheme: code("WINTER")?,
                        name: text("Winter pressures")?,
                        ring_fenced: false,
                    }],
                },
            })?;
        }
        if m == 7 {
            self.exec(Command::Contract {
                contract: contract_code(year, VARIED)?,
                command: ContractCommand::Vary {
                    period,
                    reason: text("In-year variation")?,
                    model: payment_model(CONTRACTS[VARIED].2, y, 2),
                },
            })?;
        }
        if m == 9 {
            self.exec(Command::Contract {
                contract: contract_code(year, TERMINATED)?,
                command: ContractCommand::Terminate {
                    period,
                    reason: text("Service transferred")?,
                },
            })?;
        }
        if m == 10 {
            // Part of Q1's payment to the first recipient is clawed back.
            let fund = fund_code(year)?;
            let recipient = member(RECIPIENTS[0].0)?;
            let q1 = quarter(1)?;
            let left = self
                .ledger
                .funds
                .get(&fund)
                .map_or(Pence::ZERO, |f| f.net_paid(q1, &recipient));
            let amount = Pence::new(left.get().min(2_500_000));
            if amount.is_positive() {
                self.exec(Command::Fund {
                    fund,
                    command: FundCommand::ClawBack {
                        quarter: q1,
                        member: recipient,
                        period,
                        amount,
                        reason: text("Restated Q1 position")?,
                    },
                })?;
            }
        }
        // Activity on the contracts that plan units.
        for i in 0..CONTRACTS.len() {
            let contract = contract_code(year, i)?;
            let planned = match self.ledger.contracts.get(&contract) {
                Some(state) if !state.terminated => state.model.planned_units_for(period.month),
                _ => continue,
            };
            if planned == 0 {
                continue;
            }
            let units = planned / 100 * u64::try_from(self.rng.between(85, 115))?;
            self.exec(Command::Contract {
                contract,
                command: ContractCommand::RecordActivity {
                    period,
                    units,
                    corrects: None,
                },
            })?;
        }
        // Partners pay their pledges in twelve parts; the pool spends.
        let budget = budget_code(year)?;
        for (partner, _, _) in PARTNERS {
            let partner = member(partner)?;
            let pledged = self
                .ledger
                .budgets
                .get(&budget)
                .map_or(Pence::ZERO, |b| b.pledged_by(&partner));
            let part = pledged
                .split(&[1; 12])
                .ok()
                .and_then(|parts| parts.get(period.month.index()).copied())
                .unwrap_or_default();
            if part.is_positive() {
                self.exec(Command::Budget {
                    budget: budget.clone(),
                    command: BudgetCommand::PayContribution {
                        partner,
                        period,
                        amount: part,
                    },
                })?;
            }
        }
        for (scheme, ring_fenced) in SCHEMES {
            let amount = if ring_fenced {
                self.rng.pounds(100_000, 400_000)
            } else {
                self.rng.pounds(800_000, 1_800_000)
            };
            self.exec(Command::Budget {
                budget: budget.clone(),
                command: BudgetCommand::RecordSpend {
                    scheme: code(scheme)?,
                    period,
                    amount,
                    corrects: None,
                },
            })?;
        }
        // Metrics from the acute trusts.
        for (m, _, kind, _, _) in MEMBERS {
            if kind != AcuteTrust {
                continue;
            }
            for (metric, lo, hi) in [
                (Metric::AeFourHour, 8_400, 9_700),
                (Metric::EmergencyAdmissions, 2_000, 4_000),
                (Metric::EmergencyBedDays, 10_000, 20_000),
            ] {
                let value = self.rng.between(lo, hi);
                self.exec(Command::System(SystemCommand::ReportMetric {
                    member: member(m)?,
                    period,
                    metric,
                    value,
                }))?;
            }
        }
        // Every member's return.
        for i in 0..MEMBERS.len() {
            let monthly_return = self.monthly_return(i, y, period)?;
            self.exec(Command::System(SystemCommand::SubmitReturn(monthly_return)))?;
        }
        Ok(())
    }

    /// Member `i`'s return for `period`: its plan's month, give or take 3%, and balances with
    /// three other members.
    fn monthly_return(
        &mut self,
        i: usize,
        y: u32,
        period: Period,
    ) -> anyhow::Result<MonthlyReturn> {
        let (code, _, _, income, expenditure) = MEMBERS[i];
        let mut month_of = |annual: i64| {
            let monthly = grown(annual, y, 3) / 12;
            pounds(monthly / 1_000 * self.rng.between(970, 1_030))
        };
        let (income, expenditure) = (month_of(income), month_of(expenditure));
        let mut balances = Vec::new();
        for offset in [1, 5, 11] {
            let (counterparty, ..) = MEMBERS[(i + offset) % MEMBERS.len()];
            balances.push(CounterpartyBalance {
                counterparty: member(counterparty)?,
                income: self.rng.pounds(0, 2_000_000),
                expenditure: self.rng.pounds(0, 2_000_000),
                receivables: self.rng.pounds(0, 500_000),
                payables: self.rng.pounds(0, 500_000),
            });
        }
        Ok(MonthlyReturn {
            member: member(code)?,
            period,
            income,
            expenditure,
            balances,
        })
    }

    /// Contracts of `year` not terminated.
    fn live_contracts(&self, year: FinancialYear) -> anyhow::Result<Vec<Code>> {
        let mut live = Vec::new();
        for i in 0..CONTRACTS.len() {
            let contract = contract_code(year, i)?;
            if self
                .ledger
                .contracts
                .get(&contract)
                .is_some_and(|c| !c.terminated)
            {
                live.push(contract);
            }
        }
        Ok(live)
    }

    fn invoice(
        &mut self,
        contract: &Code,
        period: Period,
        corrects: Option<Period>,
    ) -> anyhow::Result<Code> {
        let invoice = self.next_code("I")?;
        let amount = self.rng.pounds(5_000, 400_000);
        self.exec(Command::Contract {
            contract: contract.clone(),
            command: ContractCommand::RaiseInvoice {
                invoice: invoice.clone(),
                period,
                amount,
                corrects,
            },
        })?;
        self.raised.push((contract.clone(), invoice.clone()));
        Ok(invoice)
    }

    /// An earlier month of the same year, if there is one.
    fn earlier(&mut self, period: Period, m: u32) -> anyhow::Result<Option<Period>> {
        if m < 2 {
            return Ok(None);
        }
        let earlier = u32::try_from(self.rng.between(1, i64::from(m) - 1))?;
        Ok(Some(Period::new(period.year, month(earlier)?)))
    }

    /// One unit of a month's volume: a payment of last month's invoice and a new invoice,
    /// and every so often an adjustment, pool spend, restated activity, a resubmitted return,
    /// a dispute raised and one resolved.
    fn round(&mut self, r: u64, work: &MonthWork) -> anyhow::Result<()> {
        let MonthWork {
            y,
            m,
            period,
            live,
            activity,
            budget,
            schemes,
        } = work;
        let (y, m, period) = (*y, *m, *period);
        let pick = |list: &[Code], n: u64| -> Option<Code> {
            let len = u64::try_from(list.len()).ok()?;
            list.get(usize::try_from(n.checked_rem(len)?).ok()?)
                .cloned()
        };
        if let Some((contract, invoice)) = self.to_pay.pop_front() {
            let payable = self
                .ledger
                .contracts
                .get(&contract)
                .and_then(|c| c.invoices.get(&invoice))
                .map_or(Pence::ZERO, domain::contract::Invoice::payable);
            // What is disputed is withheld. One in seven is paid only in part (and stays
            // part-paid).
            let amount = if self.next_code.is_multiple_of(7) {
                Pence::new(payable.get() / 2)
            } else {
                payable
            };
            if amount.is_positive() {
                self.exec(Command::Contract {
                    contract,
                    command: ContractCommand::RecordPayment {
                        invoice,
                        period,
                        amount,
                    },
                })?;
            }
        }
        let Some(contract) = pick(live, r) else {
            return Ok(());
        };
        let corrects = if r % 12 == 11 {
            self.earlier(period, m)?
        } else {
            None
        };
        let invoice = self.invoice(&contract, period, corrects)?;

        if r % 8 == 3
            && let Some(contract) = pick(live, r / 8 + 5)
        {
            let mut amount = self.rng.between(-5_000_000, 5_000_000);
            if amount == 0 {
                amount = 1;
            }
            let corrects = if (r / 8) % 2 == 1 {
                self.earlier(period, m)?
            } else {
                None
            };
            self.exec(Command::Contract {
                contract,
                command: ContractCommand::RecordAdjustment {
                    period,
                    amount: Pence::new(amount),
                    reason: text("Synthetic adjustment")?,
                    corrects,
                },
            })?;
        }
        if r % 10 == 5
            && let Some(scheme) = pick(schemes, r / 10)
        {
            let amount = self.rng.pounds(10_000, 200_000);
            self.exec(Command::Budget {
                budget: budget.clone(),
                command: BudgetCommand::RecordSpend {
                    scheme,
                    period,
                    amount,
                    corrects: None,
                },
            })?;
        }
        if r % 16 == 7
            && let Some(contract) = pick(activity, r / 16)
            && let Some(corrects) = self.earlier(period, m)?
        {
            let planned = self
                .ledger
                .contracts
                .get(&contract)
                .map_or(0, |c| c.model.planned_units_for(corrects.month));
            let units = planned / 100 * u64::try_from(self.rng.between(80, 120))?;
            self.exec(Command::Contract {
                contract,
                command: ContractCommand::RecordActivity {
                    period,
                    units,
                    corrects: Some(corrects),
                },
            })?;
        }
        if r % 20 == 9 {
            let i = usize::try_from((r / 20) % MEMBERS.len() as u64)?;
            let monthly_return = self.monthly_return(i, y, period)?;
            self.exec(Command::System(SystemCommand::SubmitReturn(monthly_return)))?;
        }
        if r % 50 == 20 {
            let dispute = self.next_code("D")?;
            let amount = self
                .ledger
                .contracts
                .get(&contract)
                .and_then(|c| c.invoices.get(&invoice))
                .map_or(Pence::ZERO, |i| Pence::new(i.amount.get() / 10));
            if amount.is_positive() {
                self.exec(Command::Contract {
                    contract: contract.clone(),
                    command: ContractCommand::RaiseDispute {
                        dispute: dispute.clone(),
                        invoice: Some(invoice),
                        period,
                        amount,
                        reason: text("Activity challenged")?,
                    },
                })?;
                self.new_disputes.push((contract, dispute));
            }
            if let Some((contract, dispute)) = self.disputes.pop_front() {
                let keeps = self
                    .ledger
                    .contracts
                    .get(&contract)
                    .and_then(|c| c.disputes.get(&dispute))
                    .map_or(Pence::ZERO, |d| Pence::new(d.amount.get() / 2));
                self.exec(Command::Contract {
                    contract,
                    command: ContractCommand::ResolveDispute {
                        dispute,
                        period,
                        provider_keeps: keeps,
                        resolution: text("Agreed half")?,
                    },
                })?;
            }
        }
        Ok(())
    }

    /// The month's closing steps: the quarter's assessment, and at the year end CQUIN and the
    /// pool's risk share (then the pool closes).
    fn month_end(&mut self, year: FinancialYear, m: u32, period: Period) -> anyhow::Result<()> {
        if m.is_multiple_of(3) {
            let actual = self.rng.between(-2_000_000, 6_000_000);
            let performance = u32::try_from(self.rng.between(8_600, 9_600))?;
            self.exec(Command::Fund {
                fund: fund_code(year)?,
                command: FundCommand::AssessTranche {
                    quarter: quarter(m / 3)?,
                    evidence: vec![
                        Evidence {
                            condition: code("FIN")?,
                            figures: Figures::SystemFinance {
                                actual_ytd: pounds(actual),
                                control_total_ytd: Pence::ZERO,
                            },
                        },
                        Evidence {
                            condition: code("AE")?,
                            figures: Figures::AeFourHour {
                                performance: BasisPoints::new(performance),
                            },
                        },
                    ],
                },
            })?;
        }
        if m == 12 {
            for (i, (_, _, model)) in CONTRACTS.iter().enumerate() {
                if matches!(model, Model::Cquin { .. }) {
                    let achievement = u32::try_from(self.rng.between(7_500, 10_000))?;
                    self.exec(Command::Contract {
                        contract: contract_code(year, i)?,
                        command: ContractCommand::ReconcileCquin {
                            period,
                            achievement: BasisPoints::new(achievement),
                        },
                    })?;
                }
            }
            let budget = budget_code(year)?;
            self.exec(Command::Budget {
                budget: budget.clone(),
                command: BudgetCommand::SettleRiskShare { period },
            })?;
            self.exec(Command::Budget {
                budget,
                command: BudgetCommand::Close { period },
            })?;
        }
        Ok(())
    }
}

/// The payment model of a contract in year `y` (0 = the first), its value grown `extra`%
/// more (a variation).
fn payment_model(model: Model, y: u32, extra: i64) -> PaymentModel {
    let value = |pounds_a_year: i64| pounds(grown(pounds_a_year, y, 2) / 100 * (100 + extra));
    match model {
        Model::Block(annual) => PaymentModel::Block {
            annual_value: value(annual),
        },
        Model::Tariff { units, price } => PaymentModel::ActivityTariff {
            planned_units: units,
            unit_price: value(price),
        },
        Model::Aligned {
            fixed,
            units,
            price,
        } => PaymentModel::AlignedPayment {
            fixed: value(fixed),
            planned_units: units,
            unit_price: pounds(price),
            marginal_rate: BasisPoints::new(5_000),
        },
        Model::Capitation {
            per_head,
            population,
        } => PaymentModel::Capitation {
            per_head: pounds(per_head),
            population,
            gain_share: BasisPoints::new(5_000),
            loss_share: BasisPoints::new(5_000),
        },
        Model::Cquin { base } => PaymentModel::Cquin {
            base_value: value(base),
            rate: BasisPoints::new(250),
        },
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_generator_is_deterministic_and_exact() -> anyhow::Result<()> {
        let a = super::generate(3_000, 2)?;
        let b = super::generate(3_000, 2)?;
        assert_eq!(a.log.len(), 3_000);
        assert_eq!(a.log, b.log);
        Ok(())
    }
}
