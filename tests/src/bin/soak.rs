//! `make soak`: the fault suite's trials (`e2e::faults`) many times over, against a real
//! nats-server and the real binaries, each trial with its own seed. Prints a line a trial and
//! a table of what they add up to; exits 1 if any trial lost, doubled or truncated anything,
//! left a chain unverified, went otherwise wrong or failed to run. `--seed` and `--kinds`
//! repeat a trial's choices (not its timing). Latest figures: crates/bench/README.md, "Soak".
//!
//! The binaries must be built first, in the same profile (`make soak` does it).

use std::time::{Duration, Instant};

use clap::Parser;
use e2e::faults::{self, Kind, Tally};

#[derive(Parser)]
#[command(about = "Fault trials against the real binaries, many times over")]
struct Args {
    /// Fault kinds, comma-separated: kill9, nats-wipe, byte-change.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "kill9,nats-wipe,byte-change"
    )]
    kinds: Vec<Kind>,
    /// Trials of each kind, in rounds of one of each. Without it, trials run for `--minutes`,
    /// each kind given an equal share of the time (a kill -9 trial is much shorter than a
    /// byte-change sweep, so it runs more often).
    #[arg(long)]
    trials: Option<u64>,
    /// How long to run when `--trials` is not given.
    #[arg(long, default_value_t = 3.0)]
    minutes: f64,
    /// The first trial's seed; each next trial's is one more. Default: from the clock.
    #[arg(long)]
    seed: Option<u64>,
    /// Offsets changed in each file of the store by one byte-change trial.
    #[arg(long, default_value_t = 4)]
    offsets: usize,
}

/// One kind's trials so far.
struct Row {
    kind: Kind,
    tally: Tally,
    failed: u64,
    time: Duration,
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let args = Args::parse();
    let first_seed = args.seed.unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |since| since.as_secs())
    });
    let budget = Duration::from_secs_f64(args.minutes.max(0.0) * 60.0);
    eprintln!(
        "soak: {} from seed {first_seed}",
        match args.trials {
            Some(trials) => format!("{trials} trials of each kind"),
            None => format!("{} minutes shared equally by the kinds", args.minutes),
        }
    );
    let started = Instant::now();
    let mut rows: Vec<Row> = args
        .kinds
        .iter()
        .map(|kind| Row {
            kind: *kind,
            tally: Tally::default(),
            failed: 0,
            time: Duration::ZERO,
        })
        .collect();
    let mut trials = 0u64;
    while let Some(next) = next_kind(&rows, &args, started.elapsed() >= budget) {
        let row = &mut rows[next];
        let (kind, seed) = (row.kind, first_seed + trials);
        trials += 1;
        let began = Instant::now();
        let outcome = faults::run(kind, seed, args.offsets).await;
        row.time += began.elapsed();
        match outcome {
            Ok(tally) => {
                eprintln!(
                    "{kind} #{} (seed {seed}): {} faults, {} acknowledged, {} unanswered ({} of \
                     them recorded), {} lost, {} doubled, {} truncations, {}/{} chains \
                     verified, {} other [{:.1} s]",
                    row.tally.trials + 1,
                    tally.faults,
                    tally.acknowledged,
                    tally.unanswered,
                    tally.unanswered_recorded,
                    tally.lost,
                    tally.doubled,
                    tally.truncations,
                    tally.chains - tally.unverified,
                    tally.chains,
                    tally.other,
                    began.elapsed().as_secs_f64(),
                );
                for problem in &tally.problems {
                    eprintln!("    {problem}");
                }
                row.tally.add(&tally);
            }
            Err(error) => {
                row.failed += 1;
                eprintln!("{kind} (seed {seed}): the trial failed to run: {error:#}");
            }
        }
    }
    let failed: u64 = rows.iter().map(|row| row.failed).sum();
    println!(
        "\n{trials} trials in {:.1} minutes, seeds {first_seed}..={}; {failed} failed to run\n",
        started.elapsed().as_secs_f64() / 60.0,
        first_seed + trials.saturating_sub(1),
    );
    let totals: Vec<(Kind, Tally)> = rows
        .iter()
        .map(|row| (row.kind, row.tally.clone()))
        .collect();
    println!("{}", faults::table(&totals));
    if failed == 0 && totals.iter().all(|(_, total)| total.holds()) {
        std::process::ExitCode::SUCCESS
    } else {
        std::process::ExitCode::FAILURE
    }
}

/// The row to run a trial of next, or none when done: with `--trials`, round by round; else
/// the kind that has had the least time, until `out_of_time` (every kind once at least).
fn next_kind(rows: &[Row], args: &Args, out_of_time: bool) -> Option<usize> {
    let ran = |row: &Row| row.tally.trials + row.failed;
    match args.trials {
        Some(trials) => {
            let least = rows.iter().map(ran).min()?;
            (least < trials).then(|| rows.iter().position(|row| ran(row) == least))?
        }
        None => {
            if let Some(never) = rows.iter().position(|row| ran(row) == 0) {
                return Some(never);
            }
            if out_of_time {
                return None;
            }
            rows.iter()
                .enumerate()
                .min_by_key(|(_, row)| row.time)
                .map(|(index, _)| index)
        }
    }
}
