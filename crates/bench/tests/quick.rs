//! The benchmarks at [`Scale::quick`]: each runs, does the work it claims (the runs check
//! their own counts and chains), and reports. No timings are asserted.

use bench::{Scale, append, ceiling, grpc, publish, report};

#[test]
fn the_store_and_ceiling_benchmarks_run_and_check_themselves() -> anyhow::Result<()> {
    let scale = Scale::quick();
    let mut rows = Vec::new();
    for request_events in [1, 100] {
        let run = append::run(request_events, scale.store_single_events, scale.appenders)?;
        assert!(run.events >= scale.store_single_events);
        assert_eq!(run.stats.events_committed, run.events);
        let raw = run.raw_events()?;
        let paged = ceiling::run(&raw, run.events_per_flush(), ceiling::Layout::Paged)?;
        let per_key = ceiling::run(&raw, run.events_per_flush(), ceiling::Layout::OnePerKey)?;
        assert_eq!(paged.events, run.events);
        assert_eq!(per_key.events, run.events);
        rows.push(report::StoreRound {
            store: run,
            paged,
            per_key,
        });
    }
    let table = report::store_table(&rows);
    assert_eq!(table.lines().count(), 2 + rows.len(), "{table}");
    let summary = report::store_summary(&rows);
    assert_eq!(
        summary.lines().count(),
        2 + 2,
        "one row per request size: {summary}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_grpc_benchmark_runs_with_the_relay() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let run = grpc::run(Scale::quick().bulk_commands, Some(nats.url())).await?;
    assert_eq!(run.commands, Scale::quick().bulk_commands);
    assert!(run.relayed.is_some(), "the relay was timed");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_relay_publish_benchmark_runs_both_ways() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let reads = Scale::quick().publish_reads;
    let rows = publish::run(&nats.url(), &[1, 16], reads).await?;
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|row| row.reads == reads));
    let table = report::publish_table("lazy", &rows);
    assert_eq!(table.lines().count(), 2 + rows.len(), "{table}");
    Ok(())
}
