//! The benchmark's printout: the machine, then one markdown table per benchmark, ready to
//! paste into README.md.

use std::fmt::Write as _;

use crate::append::AppendRun;
use crate::audit::upkeep::Upkeep;
use crate::audit::{AuditRun, Pass};
use crate::ceiling::CeilingRun;
use crate::grpc::GrpcRun;
use crate::position::PositionRun;

/// What this machine is, as far as the figures depend on it.
pub fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| l.strip_prefix("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map_or("unknown CPU".to_string(), |m| m.trim().to_string());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|l| l.split_whitespace().next()?.parse::<u64>().ok())
        .map_or("? GiB".to_string(), |kib| {
            format!("{} GiB", kib / (1024 * 1024))
        });
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    format!("{model}, {cores} cores, {memory}, Linux {kernel}")
}

/// Thousands separators for event rates.
pub fn rate(per_second: f64) -> String {
    let whole = per_second.round() as u64;
    let digits = whole.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// One round of the store benchmark: the store, and the raw ceiling of the same bytes in
/// the same batches laid out as the store lays them out and one key per event.
pub struct StoreRound {
    pub store: AppendRun,
    pub paged: CeilingRun,
    pub per_key: CeilingRun,
}

/// The store against its ceilings, one row per round.
pub fn store_table(rounds: &[StoreRound]) -> String {
    let mut out = String::from(
        "| events per request | appenders | events | events per flush (avg) | store events/s | raw sled events/s, same bytes and batches, the store's pages | store / raw | raw sled events/s, one key per event | store / raw |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for StoreRound {
        store,
        paged,
        per_key,
    } in rounds
    {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0}% | {} | {:.0}% |",
            store.request_events,
            store.appenders,
            rate(store.events as f64),
            store.events_per_flush(),
            rate(store.events_per_second()),
            rate(paged.events_per_second()),
            store_ratio(store, paged) * 100.0,
            rate(per_key.events_per_second()),
            store_ratio(store, per_key) * 100.0,
        );
    }
    out
}

/// The store's throughput as a share of a raw ceiling measured beside it.
pub fn store_ratio(store: &AppendRun, raw: &CeilingRun) -> f64 {
    store.events_per_second() / raw.events_per_second()
}

/// Per request size, over its rounds (in the order the sizes first appear): the median
/// store / raw ratio against each ceiling, the lowest and highest against the store's pages,
/// and the median store throughput.
pub fn store_summary(rounds: &[StoreRound]) -> String {
    let mut out = String::from(
        "| events per request | rounds | store / raw (the store's pages), median | lowest – highest | store / raw (one key per event), median | store events/s, median |\n\
         |---:|---:|---:|---:|---:|---:|\n",
    );
    let mut sizes: Vec<u64> = Vec::new();
    for round in rounds {
        if !sizes.contains(&round.store.request_events) {
            sizes.push(round.store.request_events);
        }
    }
    for size in sizes {
        let of_size = || {
            rounds
                .iter()
                .filter(|round| round.store.request_events == size)
        };
        let sorted = |mut values: Vec<f64>| {
            values.sort_by(f64::total_cmp);
            values
        };
        let paged = sorted(of_size().map(|r| store_ratio(&r.store, &r.paged)).collect());
        let per_key = sorted(
            of_size()
                .map(|r| store_ratio(&r.store, &r.per_key))
                .collect(),
        );
        let rates = sorted(of_size().map(|r| r.store.events_per_second()).collect());
        let _ = writeln!(
            out,
            "| {size} | {} | {:.0}% | {:.0}% – {:.0}% | {:.0}% | {} |",
            paged.len(),
            median(&paged) * 100.0,
            paged[0] * 100.0,
            paged[paged.len() - 1] * 100.0,
            median(&per_key) * 100.0,
            rate(median(&rates)),
        );
    }
    out
}

/// The middle of sorted, non-empty `values` (the mean of the middle two for an even count).
fn median(values: &[f64]) -> f64 {
    let middle = values.len() / 2;
    if values.len() % 2 == 1 {
        values[middle]
    } else {
        (values[middle - 1] + values[middle]) / 2.0
    }
}

/// The raw ceiling at fixed batch sizes.
pub fn ceiling_table(rows: &[CeilingRun]) -> String {
    let mut out = String::from(
        "| layout | events per batch (one flush each) | events | MiB | raw sled events/s |\n|---|---:|---:|---:|---:|\n",
    );
    for raw in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {:.1} | {} |",
            raw.layout.describe(),
            raw.batch_events,
            rate(raw.events as f64),
            raw.bytes as f64 / (1024.0 * 1024.0),
            rate(raw.events_per_second())
        );
    }
    out
}

/// ledgerd through gRPC.
pub fn grpc_table(rows: &[(&str, GrpcRun)]) -> String {
    let mut out = String::from(
        "| ledgerd | commands in one SubmitBulk | commands/s acknowledged (flushed) | commands/s until JetStream holds the last |\n|---|---:|---:|---:|\n",
    );
    for (name, run) in rows {
        let relayed = run.relayed_per_second().map_or("—".to_string(), rate);
        let _ = writeln!(
            out,
            "| {name} | {} | {} | {relayed} |",
            rate(run.commands as f64),
            rate(run.commands_per_second())
        );
    }
    out
}

/// The relay's two ways of publishing a read, on one nats-server setting.
pub fn publish_table(fsync: &str, rows: &[crate::publish::PublishRow]) -> String {
    let mut out = String::from(
        "| nats-server fsync | events in the read | reads | one by one, ms (median) | one atomic batch, ms (median) | batch / one by one |\n|---|---:|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let ratio = row.batch.as_secs_f64() / row.one_by_one.as_secs_f64().max(1e-9);
        let _ = writeln!(
            out,
            "| {fsync} | {} | {} | {:.2} | {:.2} | {ratio:.2} |",
            row.events_per_read,
            row.reads,
            row.one_by_one.as_secs_f64() * 1e3,
            row.batch.as_secs_f64() * 1e3,
        );
    }
    out
}

/// A duration in microseconds: one decimal below 100 µs, whole (with separators) above.
pub fn micros(duration: std::time::Duration) -> String {
    let us = duration.as_secs_f64() * 1e6;
    if us < 100.0 {
        format!("{us:.1}")
    } else {
        rate(us)
    }
}

/// A duration in milliseconds, one decimal.
pub fn millis(duration: std::time::Duration) -> String {
    format!("{:.1}", duration.as_secs_f64() * 1e3)
}

fn mib(bytes: u64) -> String {
    format!("{:.1}", bytes as f64 / (1024.0 * 1024.0))
}

/// The logs measured and how fast each folds.
pub fn position_rebuild_table(runs: &[PositionRun]) -> String {
    let mut out = String::from(
        "| ICS | events | years posted in | reports for | members | folds | rebuild events/s (median) | rebuild events/s (best) | resident memory of the projection (MiB) |\n\
         |---|---:|---|---|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let years = if run.first_year == run.last_year {
            run.first_year.to_string()
        } else {
            format!("{}–{}", run.first_year, run.last_year)
        };
        let _ = writeln!(
            out,
            "| {} | {} | {years} | {} M12 | {} | {} | {} | {} | {} |",
            run.ics,
            rate(run.events as f64),
            run.report_year,
            run.members,
            run.rebuilds.len(),
            rate(run.rebuild_per_second()),
            rate(run.rebuild_best_per_second()),
            run.resident_growth_bytes.map_or("—".to_string(), mib),
        );
    }
    out
}

/// Query latencies, one row per log and query.
pub fn position_query_table(runs: &[PositionRun]) -> String {
    let mut out = String::from(
        "| ICS | query (at the latest event for the report year at M12; as of a past sequence for the year and month reached then) | answer | queries | p50 µs | p99 µs | max µs |\n\
         |---|---|---|---:|---:|---:|---:|\n",
    );
    for run in runs {
        for query in &run.queries {
            let latency = &query.latency;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} | {} |",
                run.ics,
                query.name,
                query.answer,
                rate(latency.count() as f64),
                micros(latency.p50()),
                micros(latency.p99()),
                micros(latency.max()),
            );
        }
    }
    out
}

/// What a checkpoint of the whole projection costs.
pub fn checkpoint_table(runs: &[PositionRun]) -> String {
    let mut out = String::from(
        "| ICS | events | checkpoint (bincode) MiB | of which the timeline MiB | snapshot (clone: positiond's fold waits) ms | encode ms | decode ms | sled insert + flush ms | one checkpoint (encode + write) = events folded |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for run in runs {
        let c = &run.checkpoint;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            run.ics,
            rate(run.events as f64),
            mib(c.bytes),
            mib(c.timeline_bytes),
            millis(c.snapshot),
            millis(c.encode),
            millis(c.decode),
            millis(c.write),
            rate(run.checkpoint_in_events()),
        );
    }
    out
}

/// Paths over the whole log: replay or verification.
fn passes_table(what: &str, passes: &[Pass]) -> String {
    let mut out = format!(
        "| {what} | events | also checked | passes | s (median) | events/s (median) | events/s (best) |\n\
         |---|---:|---|---:|---:|---:|---:|\n"
    );
    for pass in passes {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {:.2} | {} | {} |",
            pass.name,
            rate(pass.events as f64),
            if pass.note.is_empty() {
                "—"
            } else {
                &pass.note
            },
            pass.times.len(),
            pass.median().as_secs_f64(),
            rate(pass.median_per_second()),
            rate(pass.best_per_second()),
        );
    }
    out
}

/// Replay, whole and in parts.
pub fn audit_replay_table(run: &AuditRun) -> String {
    passes_table("replay", &run.replay)
}

/// Verification, online and offline.
pub fn audit_verify_table(run: &AuditRun) -> String {
    passes_table("verification", &run.verify)
}

/// Reading one event, step by step.
pub fn codec_table(run: &crate::codec::CodecRun) -> String {
    passes_table("step", &run.steps)
}

/// Proof latencies.
pub fn audit_proof_table(run: &AuditRun) -> String {
    let mut out = format!(
        "| proof, on the log of {} events | served by | proofs | p50 µs | p99 µs | max µs |\n\
         |---|---|---:|---:|---:|---:|\n",
        rate(run.events as f64)
    );
    for proof in &run.proofs {
        let latency = &proof.latency;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} |",
            proof.proof,
            proof.served_by,
            rate(latency.count() as f64),
            micros(latency.p50()),
            micros(latency.p99()),
            micros(latency.max()),
        );
    }
    out
}

/// Appends with and without ledgerd's audit task following the store.
pub fn audit_upkeep_table(run: &AuditRun) -> String {
    let mut out = String::from(
        "| following the store | events | requests | rounds | checkpoints | events/s acknowledged | cost against none | events/s until the tree (and checkpoints) caught up | cost against none | longest catch-up after a round's last ack (ms) |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let bare = run.upkeep.iter().find(|u| u.upkeep == Upkeep::None);
    let cost = |with: f64, without: Option<f64>| {
        without.map_or("—".to_string(), |without| {
            format!("{:.1}%", (1.0 - with / without) * 100.0)
        })
    };
    for upkeep in &run.upkeep {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
            upkeep.upkeep.describe(),
            rate(upkeep.events as f64),
            rate(upkeep.requests as f64),
            upkeep.rounds,
            upkeep.checkpoints,
            rate(upkeep.acknowledged_per_second()),
            cost(
                upkeep.acknowledged_per_second(),
                bare.map(|b| b.acknowledged_per_second())
            ),
            rate(upkeep.settled_per_second()),
            cost(
                upkeep.settled_per_second(),
                bare.map(|b| b.settled_per_second())
            ),
            millis(upkeep.max_lag),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn rates_have_thousands_separators() {
        assert_eq!(super::rate(0.4), "0");
        assert_eq!(super::rate(999.0), "999");
        assert_eq!(super::rate(1_000.0), "1,000");
        assert_eq!(super::rate(1_234_567.0), "1,234,567");
    }

    #[test]
    fn micros_keep_a_decimal_only_when_small() {
        use std::time::Duration;
        assert_eq!(super::micros(Duration::from_nanos(12_340)), "12.3");
        assert_eq!(super::micros(Duration::from_micros(1_234)), "1,234");
    }

    #[test]
    fn the_median_is_the_middle_or_the_mean_of_the_middle_two() {
        use super::median;
        assert_eq!(median(&[0.4, 0.5, 0.9]), 0.5);
        assert_eq!(median(&[0.25, 0.5, 0.75, 1.0]), 0.625);
        assert_eq!(median(&[0.55]), 0.55);
    }
}
