//! The read side's costs, on `domain::position::Projection` alone (no store, no NATS):
//!
//! - **rebuild**: the whole log folded into a fresh projection (events already decoded, in
//!   memory), events per second;
//! - **queries**: the position report for the latest year at M12 as of the latest event, and
//!   as of sequences spread over the log (each for the period the log had reached by then),
//!   with p50, p99 and max; the other reports at the latest event, more briefly;
//! - **checkpoint**: positiond keeps the whole projection as one bincode value in sled and
//!   rewrites it at every checkpoint, so its size and the time to encode, decode and write it.
//!
//! Each run checks what it measured: the projection holds every event, each report
//! succeeds and covers what it should, the system total is the sum of its members, and the
//! checkpoint decodes to the same projection.

use crate::median;
use std::hint::black_box;
use std::time::{Duration, Instant};

use anyhow::{Context, anyhow, ensure};
use domain::position::{
    AobOptions, AobScope, AsOf, ConsolidationScope, PositionFigures, PositionReport, Projection,
    Recorded,
};
use domain::{Event, FinancialYear, Month, Period, SystemEvent};

/// How much work the position benchmark does.
#[derive(Clone, Copy, Debug)]
pub struct PositionScale {
    /// Events in the synthetic log.
    pub synthetic_events: u64,
    /// Financial years the synthetic log spans.
    pub years: u32,
    /// Folds of the whole log (and checkpoint round trips) timed.
    pub rebuilds: usize,
    /// Position queries timed, at the latest event and as of past sequences (each).
    pub queries: usize,
    /// Queries timed for each of the other reports.
    pub report_queries: usize,
}

impl PositionScale {
    /// The figures in README.md.
    pub const FULL: PositionScale = PositionScale {
        synthetic_events: 1_000_000,
        years: crate::synthetic::DEFAULT_YEARS,
        rebuilds: 3,
        queries: 10_000,
        report_queries: 200,
    };

    /// Seconds, not minutes: proves the benchmark runs and checks itself.
    pub fn quick() -> PositionScale {
        PositionScale {
            synthetic_events: 50_000,
            years: crate::synthetic::DEFAULT_YEARS,
            rebuilds: 1,
            queries: 500,
            report_queries: 20,
        }
    }

    /// `BENCH_QUICK=1` selects [`PositionScale::quick`]; `BENCH_EVENTS=n` sets the size of the
    /// synthetic log.
    pub fn from_env() -> anyhow::Result<PositionScale> {
        let mut scale = if crate::quick_requested() {
            PositionScale::quick()
        } else {
            PositionScale::FULL
        };
        if let Some(events) = crate::number_from_env("BENCH_EVENTS")? {
            scale.synthetic_events = events;
        }
        Ok(scale)
    }
}

/// Timings of one kind of query, sorted.
#[derive(Clone, Debug)]
pub struct Latency {
    samples: Vec<Duration>,
}

impl Latency {
    pub fn new(mut samples: Vec<Duration>) -> Latency {
        samples.sort_unstable();
        Latency { samples }
    }

    pub fn count(&self) -> usize {
        self.samples.len()
    }

    /// Nearest rank: the smallest sample with at least `percent`% of samples at or below it.
    pub fn percentile(&self, percent: f64) -> Duration {
        let n = self.samples.len();
        let rank = ((percent / 100.0) * n as f64).ceil() as usize;
        self.samples
            .get(rank.clamp(1, n.max(1)) - 1)
            .copied()
            .unwrap_or_default()
    }

    pub fn p50(&self) -> Duration {
        self.percentile(50.0)
    }

    pub fn p99(&self) -> Duration {
        self.percentile(99.0)
    }

    pub fn max(&self) -> Duration {
        self.samples.last().copied().unwrap_or_default()
    }
}

/// One timed query kind.
#[derive(Clone, Debug)]
pub struct Query {
    pub name: String,
    /// How big the answer is (members, lines, contracts…).
    pub answer: String,
    pub latency: Latency,
}

/// Checkpoint cost: the bincode value positiond rewrites at every checkpoint.
#[derive(Clone, Debug)]
pub struct CheckpointCost {
    pub bytes: u64,
    /// Of which the timeline (every event's sequence and recorded-at time), as encoded.
    pub timeline_bytes: u64,
    /// Medians over the runs. `snapshot`: the projection cloned, as positiond does under the
    /// lock before writing the clone behind the fold — the only pause a checkpoint causes.
    pub snapshot: Duration,
    pub encode: Duration,
    pub decode: Duration,
    /// One sled insert of the bytes and a flush, as `follow::CheckpointStore::save` does.
    pub write: Duration,
}

/// Everything measured on one log.
#[derive(Clone, Debug)]
pub struct PositionRun {
    pub ics: String,
    pub events: u64,
    pub members: usize,
    /// The years the log's postings span.
    pub first_year: FinancialYear,
    pub last_year: FinancialYear,
    /// The year the latest-event reports are for: the latest with plans.
    pub report_year: FinancialYear,
    /// Each fold of the whole log, in order.
    pub rebuilds: Vec<Duration>,
    /// How much the process's resident memory grew while the first projection was built.
    pub resident_growth_bytes: Option<u64>,
    pub queries: Vec<Query>,
    pub checkpoint: CheckpointCost,
}

impl PositionRun {
    /// The median fold, as events per second.
    pub fn rebuild_per_second(&self) -> f64 {
        crate::per_second(self.events, median(&self.rebuilds))
    }

    /// The fastest fold, as events per second.
    pub fn rebuild_best_per_second(&self) -> f64 {
        let best = self.rebuilds.iter().min().copied().unwrap_or_default();
        crate::per_second(self.events, best)
    }

    /// How many events a fold gets through in the time one checkpoint takes (encode + write).
    pub fn checkpoint_in_events(&self) -> f64 {
        let checkpoint = self.checkpoint.encode + self.checkpoint.write;
        self.rebuild_per_second() * checkpoint.as_secs_f64()
    }

    pub fn query(&self, name: &str) -> Option<&Latency> {
        self.queries
            .iter()
            .find(|q| q.name == name)
            .map(|q| &q.latency)
    }
}

/// Names of the queries, as the tables print them.
pub const POSITION_LATEST: &str = "position, latest";
pub const POSITION_AS_OF: &str = "position, as of a past sequence";

/// Folds `log` into a fresh projection; every event must fold.
pub fn fold(log: &[(Recorded, Event)]) -> anyhow::Result<Projection> {
    let mut projection = Projection::new();
    for (at, event) in log {
        projection
            .apply(at, event)
            .with_context(|| format!("event {} does not fold", at.sequence))?;
    }
    ensure!(
        projection.events() == log.len(),
        "{} of {} events folded",
        projection.events(),
        log.len()
    );
    Ok(projection)
}

/// The period the log had reached at each sequence: the latest period any event up to it
/// was posted in (the first year's M1 before any). `periods[s - 1]` is for sequence `s`.
pub fn reached_periods(log: &[(Recorded, Event)]) -> anyhow::Result<Vec<Period>> {
    let first_year = log
        .iter()
        .find_map(|(_, event)| match event {
            Event::System(SystemEvent::Established { first_year, .. }) => Some(*first_year),
            _ => None,
        })
        .context("the log does not establish the system")?;
    let mut reached = Period::new(first_year, Month::new(1)?);
    Ok(log
        .iter()
        .map(|(_, event)| {
            if let Some(period) = event.effective_period() {
                reached = reached.max(period);
            }
            reached
        })
        .collect())
}

/// The latest financial year any plan was agreed for: the year a reader of the latest
/// position asks about (a log may already hold postings of the next year, such as payments
/// of last year's invoices, before its plans).
pub fn report_year(log: &[(Recorded, Event)]) -> Option<FinancialYear> {
    log.iter()
        .filter_map(|(_, event)| match event {
            Event::System(SystemEvent::PlanAgreed { year, .. }) => Some(*year),
            _ => None,
        })
        .max()
}

/// The process's resident memory, from /proc (Linux only).
pub fn resident_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kib: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kib * 1024)
}

fn sum<'a>(mut rows: impl Iterator<Item = &'a PositionFigures>) -> anyhow::Result<PositionFigures> {
    rows.try_fold(PositionFigures::default(), |total, row| {
        total
            .checked_add(row)
            .map_err(|e| anyhow!("summing members: {e}"))
    })
}

/// The report's totals are the sums of its members: the control total over the members in
/// it, the wider ICS over all. Used to check every benchmark's answer.
pub fn check_totals(report: &PositionReport) -> anyhow::Result<()> {
    let in_control_total = sum(report
        .members
        .iter()
        .filter(|m| m.in_control_total)
        .map(|m| &m.figures))?;
    ensure!(
        report.control_total == in_control_total,
        "control total {:?} is not the sum of its members {in_control_total:?}",
        report.control_total
    );
    let all = sum(report.members.iter().map(|m| &m.figures))?;
    ensure!(
        report.wider_ics == all,
        "wider ICS {:?} is not the sum of its members {all:?}",
        report.wider_ics
    );
    Ok(())
}

/// Times `query` `count` times (after a tenth as many untimed, to warm up).
fn time<T>(
    count: usize,
    mut query: impl FnMut(usize) -> anyhow::Result<T>,
) -> anyhow::Result<Latency> {
    for i in 0..count / 10 {
        black_box(query(i)?);
    }
    let mut samples = Vec::with_capacity(count);
    for i in 0..count {
        let started = Instant::now();
        let answer = query(i)?;
        samples.push(started.elapsed());
        black_box(answer);
    }
    Ok(Latency::new(samples))
}

/// "1 line", "278 lines".
fn counted(n: usize, what: &str) -> String {
    let plural = if n == 1 { "" } else { "s" };
    format!("{} {what}{plural}", crate::report::rate(n as f64))
}

/// Asks `query` once (untimed) to describe its answer, then times it.
fn timed<T>(
    name: &str,
    count: usize,
    mut query: impl FnMut(usize) -> anyhow::Result<T>,
    describe: impl Fn(&T) -> String,
) -> anyhow::Result<Query> {
    let answer = describe(&query(0)?);
    Ok(Query {
        name: name.to_string(),
        answer,
        latency: time(count, query)?,
    })
}

/// The `i`th of a spread of sequences over `1..=n`: the golden-ratio sequence, so the
/// queries cover the log evenly but do not walk it in order.
pub fn spread_sequence(i: usize, n: u64) -> u64 {
    const GOLDEN: u128 = 0x9E37_79B9_7F4A_7C15; // 2^64 / φ
    let fraction = (i as u128).wrapping_mul(GOLDEN) & u128::from(u64::MAX);
    let s = (fraction * u128::from(n)) >> 64;
    u64::try_from(s).unwrap_or(0).min(n.saturating_sub(1)) + 1
}

/// Measures everything on `log` (named `ics` in the tables). The reports at the latest
/// event are for [`report_year`] at M12.
pub fn measure(
    ics: &str,
    log: &[(Recorded, Event)],
    scale: PositionScale,
) -> anyhow::Result<PositionRun> {
    let events = log.len() as u64;
    ensure!(events > 0, "an empty log");
    let periods = reached_periods(log)?;
    let latest_period = *periods.last().context("an empty log")?;
    let year = report_year(log).unwrap_or(latest_period.year);
    let m12 = Month::new(12)?;

    // Rebuild: the first fold is kept; the rest are timed and dropped.
    let before = resident_bytes();
    let started = Instant::now();
    let projection = fold(log)?;
    let mut rebuilds = vec![started.elapsed()];
    let resident_growth_bytes = before
        .zip(resident_bytes())
        .map(|(b, a)| a.saturating_sub(b));
    for _ in 1..scale.rebuilds {
        let started = Instant::now();
        let again = fold(log)?;
        rebuilds.push(started.elapsed());
        ensure!(again.last() == projection.last(), "a second fold differs");
    }

    let latest = projection.at(AsOf::Latest)?;
    let report = latest.position(year, m12)?;
    check_totals(&report)?;
    let members = report.members.len();
    ensure!(members > 0, "no members in the latest position");
    let first_year = periods.first().map_or(year, |p| p.year);
    let last_year = latest_period.year;

    let mut queries = vec![
        timed(
            POSITION_LATEST,
            scale.queries,
            |_| {
                let report = projection.at(AsOf::Latest)?.position(year, m12)?;
                ensure!(report.members.len() == members, "members went missing");
                Ok(report)
            },
            |r| counted(r.members.len(), "member"),
        )?,
        timed(
            POSITION_AS_OF,
            scale.queries,
            |i| {
                let sequence = spread_sequence(i, events);
                let snapshot = projection.at(AsOf::Sequence(sequence))?;
                ensure!(snapshot.sequence() == sequence, "snapshot at {sequence}");
                let period = periods
                    .get(usize::try_from(sequence - 1)?)
                    .copied()
                    .context("sequence beyond the log")?;
                let report = snapshot.position(period.year, period.month)?;
                ensure!(report.basis.as_of_sequence == sequence);
                Ok(report)
            },
            |_| "members admitted by then".to_string(),
        )?,
    ];

    // The other reports, at the latest event, for the report year at M12.
    let n = scale.report_queries;
    let all_members = AobOptions {
        scope: AobScope::AllMembers,
        ..AobOptions::default()
    };
    queries.push(timed(
        "consolidation (wider ICS)",
        n,
        |_| Ok(latest.consolidation(year, m12, ConsolidationScope::WiderIcs)?),
        |r| {
            format!(
                "{}, {}",
                counted(r.members.len(), "member"),
                counted(r.eliminations.len(), "elimination")
            )
        },
    )?);
    queries.push(timed(
        "agreement of balances (all members)",
        n,
        |_| Ok(latest.agreement_of_balances(year, m12, all_members)?),
        |r| counted(r.lines.len(), "line"),
    )?);
    queries.push(timed(
        "fund statement",
        n,
        |_| Ok(latest.funds_statement(year, m12)?),
        |r| counted(r.funds.len(), "fund"),
    )?);
    queries.push(timed(
        "pooled budget statement",
        n,
        |_| Ok(latest.pooled_budgets(year, m12)?),
        |r| counted(r.budgets.len(), "budget"),
    )?);
    queries.push(timed(
        "contract statement",
        n,
        |_| Ok(latest.contracts_statement(year, m12)?),
        |r| counted(r.contracts.len(), "contract"),
    )?);
    queries.push(timed(
        "adjustments report",
        n,
        |_| Ok(latest.adjustments(year, m12)?),
        |r| {
            format!(
                "{} naming the year + {} posted in it",
                counted(r.naming_this_year.len(), "correction"),
                crate::report::rate(r.posted_this_year.len() as f64)
            )
        },
    )?);

    let mut checkpoint = checkpoint_cost(&projection, scale.rebuilds.max(1))?;
    let timeline: Vec<Recorded> = log.iter().map(|(at, _)| *at).collect();
    checkpoint.timeline_bytes =
        bincode::serde::encode_to_vec(&timeline, bincode::config::standard())?.len() as u64;
    Ok(PositionRun {
        ics: ics.to_string(),
        events,
        members,
        first_year,
        last_year,
        report_year: year,
        rebuilds,
        resident_growth_bytes,
        queries,
        checkpoint,
    })
}

/// Encodes, decodes and writes the projection as positiond checkpoints it, `runs` times.
fn checkpoint_cost(projection: &Projection, runs: usize) -> anyhow::Result<CheckpointCost> {
    let config = bincode::config::standard();
    let dir = tempfile::Builder::new()
        .prefix("bench-checkpoint-")
        .tempdir()?;
    let db = store::open_db(&sled::Config::new().path(dir.path()).flush_every_ms(None))?;
    let tree = db.open_tree("positiond")?;
    let (mut snapshots, mut encodes, mut decodes, mut writes) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut bytes = 0;
    for _ in 0..runs {
        let started = Instant::now();
        let snapshot = projection.clone();
        snapshots.push(started.elapsed());
        ensure!(&snapshot == projection, "the snapshot differs");
        drop(snapshot);

        let started = Instant::now();
        let encoded = bincode::serde::encode_to_vec(projection, config)?;
        encodes.push(started.elapsed());
        bytes = encoded.len() as u64;

        let started = Instant::now();
        let (decoded, _): (Projection, usize) =
            bincode::serde::decode_from_slice(&encoded, config)?;
        decodes.push(started.elapsed());
        ensure!(
            &decoded == projection,
            "the checkpoint decodes to another projection"
        );
        drop(decoded);

        let started = Instant::now();
        tree.insert(b"checkpoint", encoded)?;
        db.flush()?;
        writes.push(started.elapsed());
    }
    Ok(CheckpointCost {
        bytes,
        timeline_bytes: 0,
        snapshot: median(&snapshots),
        encode: median(&encodes),
        decode: median(&decodes),
        write: median(&writes),
    })
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::{Latency, spread_sequence};

    #[test]
    fn percentiles_are_nearest_rank() {
        let latency = Latency::new((1..=100).rev().map(Duration::from_micros).collect());
        assert_eq!(latency.p50(), Duration::from_micros(50));
        assert_eq!(latency.p99(), Duration::from_micros(99));
        assert_eq!(latency.max(), Duration::from_micros(100));
        assert_eq!(Latency::new(vec![]).p99(), Duration::ZERO);
    }

    #[test]
    fn spread_sequences_stay_in_the_log_and_cover_it() {
        let n = 1_000;
        let seen: std::collections::BTreeSet<u64> =
            (0..2_000).map(|i| spread_sequence(i, n)).collect();
        assert!(seen.iter().all(|s| (1..=n).contains(s)));
        assert!(seen.len() > 900, "{}", seen.len());
        assert_eq!(spread_sequence(0, 1), 1);
    }
}
