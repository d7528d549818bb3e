//! `icsctl audit replay <report> --year Y [--month M] [--to-seq N | --as-of TIME]`: the report
//! positiond would serve, rebuilt here from the log with the domain crate's position
//! arithmetic — no positiond involved.
//!
//! The log is read from ledgerd's `ReadAll` or, with `--data-dir`, a stopped ledgerd's store;
//! it is folded from its first event to `--to-seq` (or every event recorded at or before
//! `--as-of`, transaction time; or the whole log), the report is taken from the projection as
//! positiond takes it, converted to the message positiond returns, and printed by the same
//! code that prints positiond's: tables, `--csv` or `--json` are byte for byte what
//! `icsctl position|fund|… --as-of N` prints. The fingerprint is in the table's heading and the
//! JSON's basis (and, with `--csv`, on standard error). `--export FILE` writes the domain
//! report itself ([`super::export`]), from which its canonical bytes are rebuilt.

use std::path::PathBuf;

use anyhow::Context;
use clap::{Args, Subcommand};
use domain::position::{AsOf, ReportKind};

use super::{LogArgs, ReportName, Until, fold, hex32, report_kind, source::Log};
use crate::Global;
use crate::report::Scope;

/// What every replay asks.
#[derive(Clone, Debug, Args)]
pub struct ReplayArgs {
    /// Financial year: `2018` or `2018/19`.
    #[arg(long, value_parser = crate::parse::year)]
    pub year: domain::FinancialYear,
    /// Month of the financial year, 1 (April) ..= 12 (March), or `M1` ..= `M12`: figures are
    /// year to date.
    #[arg(long, default_value = "12", value_parser = crate::report::month)]
    pub month: domain::Month,
    /// Replay the log up to and including this global sequence (default: to its head).
    #[arg(long, conflicts_with = "as_of")]
    pub to_seq: Option<u64>,
    /// Replay every event recorded at or before this moment (transaction time, RFC 3339:
    /// `2019-04-30T12:00:00Z`).
    #[arg(long, value_parser = rfc3339)]
    pub as_of: Option<jiff::Timestamp>,
    #[command(flatten)]
    pub log: LogArgs,
    /// Also write the report to FILE (JSON of the domain's report, from which its canonical
    /// bytes and fingerprint are rebuilt; `icsctl file-return --file` and `icsctl audit
    /// check-return --file` read it).
    #[arg(long)]
    pub export: Option<PathBuf>,
    /// Print CSV (pounds without separators) instead of tables.
    #[arg(long)]
    pub csv: bool,
    /// The report as this member's finance team is shown it (ODS code): positiond gives a
    /// member the position and the contract statement limited to what concerns it, and that
    /// is what a member files.
    #[arg(long, value_parser = crate::parse::member)]
    pub as_member: Option<domain::MemberCode>,
}

fn rfc3339(text: &str) -> Result<jiff::Timestamp, String> {
    text.parse()
        .map_err(|_| format!("'{text}' is not an RFC 3339 time like 2019-04-30T12:00:00Z"))
}

/// The report to replay, named as icsctl's report commands name it.
#[derive(Debug, Subcommand)]
pub enum ReplayReport {
    /// Each member and the system against the control total, with the wider ICS.
    Position(ReplayArgs),
    /// Gross income and expenditure, eliminations between members, consolidated figures.
    Consolidation {
        #[command(flatten)]
        args: ReplayArgs,
        #[arg(long, value_enum, default_value = "nhs")]
        scope: Scope,
    },
    /// Pooled budgets.
    Budget(ReplayArgs),
    /// Contracts, from both sides.
    Contract(ReplayArgs),
    /// Sustainability funds.
    Fund(ReplayArgs),
    /// Agreement of Balances.
    Aob {
        #[command(flatten)]
        args: ReplayArgs,
        #[arg(long, value_enum, default_value = "nhs")]
        scope: Scope,
        /// Flag receivables/payables differences over this many pounds (default 300,000).
        #[arg(long, value_parser = crate::parse::pounds)]
        balance_threshold: Option<domain::Pence>,
        /// Flag income/expenditure differences over this many pounds (default 3,000,000).
        #[arg(long, value_parser = crate::parse::pounds)]
        income_threshold: Option<domain::Pence>,
    },
    /// Corrections to earlier periods.
    Adjustments(ReplayArgs),
}

impl ReplayReport {
    /// The arguments and the kind of report they ask for.
    fn split(self) -> Result<(ReplayArgs, ReportKind), String> {
        let simple = |args, name| report_kind(name, None, None, None).map(|kind| (args, kind));
        match self {
            ReplayReport::Position(args) => simple(args, ReportName::Position),
            ReplayReport::Consolidation { args, scope } => {
                report_kind(ReportName::Consolidation, Some(scope), None, None)
                    .map(|kind| (args, kind))
            }
            ReplayReport::Budget(args) => simple(args, ReportName::Budget),
            ReplayReport::Contract(args) => simple(args, ReportName::Contract),
            ReplayReport::Fund(args) => simple(args, ReportName::Fund),
            ReplayReport::Aob {
                args,
                scope,
                balance_threshold,
                income_threshold,
            } => report_kind(
                ReportName::Aob,
                Some(scope),
                balance_threshold,
                income_threshold,
            )
            .map(|kind| (args, kind)),
            ReplayReport::Adjustments(args) => simple(args, ReportName::Adjustments),
        }
    }
}

pub async fn run(global: &Global, report: ReplayReport) -> anyhow::Result<()> {
    let (args, kind) = report.split().map_err(|e| anyhow::anyhow!(e))?;
    let mut log = Log::open(global, args.log.data_dir.as_deref()).await?;
    let head = log.head().await?;
    anyhow::ensure!(head > 0, "{} holds no events", log.describe());
    let (until, as_of) = match (args.to_seq, args.as_of) {
        (Some(0), _) => anyhow::bail!("--to-seq: sequences start at 1"),
        (Some(sequence), _) if sequence > head => anyhow::bail!(
            "--to-seq {sequence} is beyond the ledger's head {head} ({})",
            log.describe()
        ),
        (Some(sequence), _) => (Until::Sequence(sequence), AsOf::Sequence(sequence)),
        (None, Some(time)) => {
            anyhow::ensure!(
                time <= jiff::Timestamp::now(),
                "--as-of {time} is in the future: events recorded by then may not have been recorded yet"
            );
            let time_us = time.as_microsecond();
            (
                Until::RecordedAt { time_us, head },
                AsOf::RecordedAt(time_us),
            )
        }
        (None, None) => (Until::Sequence(head), AsOf::Sequence(head)),
    };
    let started = std::time::Instant::now();
    let (projection, folded) = fold(&mut log, until).await?;
    let mut report = projection
        .at(as_of)
        .and_then(|snapshot| snapshot.report(kind, args.year, args.month))
        .map_err(|e| anyhow::anyhow!("{kind}: {e}"))?;
    if let Some(member) = args.as_member {
        report.limit_to(member);
    }
    let proto =
        api::report::any_report_to_proto(&report).context("the report has no canonical bytes")?;
    let fingerprint = report
        .fingerprint()
        .context("the report has no canonical bytes")?;
    crate::report::print_any(global, args.csv, &proto)?;
    if !global.json && !args.csv {
        // The table ends without a newline, as `icsctl position` prints it.
        eprintln!();
    }
    eprintln!(
        "replayed {folded} events from {} in {:.1?}: {kind} {} {}, as recorded at sequence {}; fingerprint {}",
        log.describe(),
        started.elapsed(),
        args.year,
        args.month,
        report.basis().as_of_sequence,
        hex32(&fingerprint)
    );
    if let Some(path) = &args.export {
        super::export::write(path, &report)?;
        eprintln!("exported to {}", path.display());
    }
    Ok(())
}
