//! The benchmark's printout: the machine, then one markdown table per benchmark, ready to
//! paste into README.md.

use std::fmt::Write as _;

use crate::append::AppendRun;
use crate::ceiling::CeilingRun;
use crate::grpc::GrpcRun;

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

/// The store against its ceiling, one row per request size.
pub fn store_table(rows: &[(AppendRun, CeilingRun)]) -> String {
    let mut out = String::from(
        "| events per request | appenders | events | events per flush (avg) | store events/s | raw sled events/s, same bytes and batches | store / raw |\n\
         |---:|---:|---:|---:|---:|---:|---:|\n",
    );
    for (store, raw) in rows {
        let ratio = store.events_per_second() / raw.events_per_second();
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {:.0}% |",
            store.request_events,
            store.appenders,
            rate(store.events as f64),
            store.events_per_flush(),
            rate(store.events_per_second()),
            rate(raw.events_per_second()),
            ratio * 100.0
        );
    }
    out
}

/// The raw ceiling at fixed batch sizes.
pub fn ceiling_table(rows: &[CeilingRun]) -> String {
    let mut out = String::from(
        "| events per batch (one flush each) | events | MiB | raw sled events/s |\n|---:|---:|---:|---:|\n",
    );
    for raw in rows {
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} |",
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

#[cfg(test)]
mod tests {
    #[test]
    fn rates_have_thousands_separators() {
        assert_eq!(super::rate(0.4), "0");
        assert_eq!(super::rate(999.0), "999");
        assert_eq!(super::rate(1_000.0), "1,000");
        assert_eq!(super::rate(1_234_567.0), "1,234,567");
    }
}
