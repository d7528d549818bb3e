//! The lag and rebuild benchmarks small, against a real nats-server: a fresh ledger and one
//! preloaded with 20,000 synthetic events, a few hundred commands each. Each run checks
//! itself (every command recorded once and seen by the watcher, positiond ending at
//! ledgerd's head and hash, every rebuild at the head); no timings are asserted.

use std::time::Duration;

use bench::lag::{self, LagScale};
use bench::rebuild;

#[test]
fn the_lag_and_rebuild_benchmarks_run_and_check_themselves() -> anyhow::Result<()> {
    let scale = LagScale {
        rate: 200,
        seconds: 2,
        events: 20_000,
        rebuilds: 2,
        poll: Duration::from_millis(1),
        nats_sync_always: false,
        relay_preloaded: true,
        relay_batch_from: None,
    };
    let report = lag::run(scale)?;
    for run in [&report.fresh, &report.preloaded] {
        assert_eq!(run.commands, 400);
        assert_eq!(run.lag.count(), 400);
        assert!(run.poll.count() > 0);
    }
    assert_eq!(
        report.fresh.events_before, 5,
        "set-up and the warm-up command"
    );
    assert_eq!(report.preloaded.events_before, 20_001);
    assert_eq!(report.rebuild.events, 20_000);
    assert_eq!(report.rebuild.positiond.len(), 2);
    assert_eq!(report.rebuild.stream.len(), 2);
    let runs = [&report.fresh, &report.preloaded];
    assert_eq!(lag::lag_table(&runs).lines().count(), 4);
    assert_eq!(lag::driver_table(&runs).lines().count(), 4);
    assert!(report.rebuild.store.is_some());
    assert_eq!(rebuild::rebuild_table(&report.rebuild).lines().count(), 3);
    assert_eq!(rebuild::read_table(&report.rebuild).lines().count(), 3);
    Ok(())
}
