//! The position benchmark small: the synthetic log is exactly as long as asked, every command
//! was accepted, every event folds (into the projection and into a fresh ledger), the system
//! total is the sum of its members, and the benchmark runs and checks itself on it and on the
//! demo. No timings are asserted.

use bench::position::{self, PositionScale};
use bench::{demo, report, synthetic};
use domain::Ledger;
use domain::position::AsOf;

const EVENTS: u64 = 20_000;

#[test]
fn the_synthetic_log_is_valid_and_its_position_adds_up() -> anyhow::Result<()> {
    // `generate` fails if the ledger refuses any command it builds.
    let log = synthetic::generate(EVENTS, synthetic::DEFAULT_YEARS)?;
    assert_eq!(log.log.len() as u64, EVENTS);
    assert!(log.commands > 0 && log.commands <= EVENTS);
    assert_eq!(log.members, 20);
    assert!(
        log.last_year > log.first_year,
        "the log spans several years"
    );
    for (i, (at, _)) in log.log.iter().enumerate() {
        assert_eq!(at.sequence, i as u64 + 1);
    }
    assert!(
        log.log
            .windows(2)
            .all(|w| w[0].0.recorded_at_us <= w[1].0.recorded_at_us)
    );

    // The events fit the rules they were decided by, replayed from scratch.
    let mut ledger = Ledger::default();
    for (at, event) in &log.log {
        ledger
            .apply(event)
            .map_err(|e| anyhow::anyhow!("event {}: {e}", at.sequence))?;
    }

    let projection = position::fold(&log.log)?;
    let periods = position::reached_periods(&log.log)?;
    let latest = projection.at(AsOf::Latest)?;
    for year in [log.first_year, log.last_year] {
        for month in [3, 12] {
            let report = latest.position(year, domain::Month::new(month)?)?;
            assert_eq!(report.members.len(), 20);
            position::check_totals(&report)?;
        }
    }
    // And as of sequences spread over the log.
    for i in 0..50 {
        let sequence = position::spread_sequence(i, EVENTS);
        let period = periods[usize::try_from(sequence - 1)?];
        let report = projection
            .at(AsOf::Sequence(sequence))?
            .position(period.year, period.month)?;
        assert_eq!(report.basis.as_of_sequence, sequence);
        position::check_totals(&report)?;
    }
    Ok(())
}

#[test]
fn the_position_benchmark_runs_and_checks_itself() -> anyhow::Result<()> {
    let scale = PositionScale {
        synthetic_events: EVENTS,
        queries: 50,
        report_queries: 5,
        ..PositionScale::quick()
    };
    let demo_run = position::measure("demo", &demo::log()?, scale)?;
    assert_eq!(demo_run.members, 7);
    let log = synthetic::generate(scale.synthetic_events, scale.years)?;
    let run = position::measure("synthetic", &log.log, scale)?;
    assert_eq!(run.events, EVENTS);
    assert_eq!(run.rebuilds.len(), scale.rebuilds);
    assert!(run.checkpoint.bytes > 0);
    let runs = [demo_run, run];
    let queries = report::position_query_table(&runs);
    assert_eq!(
        queries.lines().count(),
        2 + runs.iter().map(|r| r.queries.len()).sum::<usize>(),
        "{queries}"
    );
    assert_eq!(report::checkpoint_table(&runs).lines().count(), 4);
    assert_eq!(report::position_rebuild_table(&runs).lines().count(), 4);
    Ok(())
}
