//! `icsctl audit …`: what an auditor runs without trusting the ledger's operator or positiond.
//!
//! - [`verify`]: `audit verify` — the whole log, its chain, its Merkle tree, every checkpoint;
//!   online (ledgerd's `ReadStored`: the bytes on its disk) or offline (`--data-dir`, a
//!   stopped ledgerd's sled).
//! - [`prove`]: `audit prove --seq N` — an inclusion proof from ledgerd checked against a
//!   checkpoint the regulator holds; `audit checkpoints` lists checkpoints.
//! - `replay`: rebuilds a report from the log with the domain crate's own position arithmetic
//!   (the code positiond runs), as of a sequence or a moment of transaction time, and prints
//!   it exactly as `icsctl position|budget|contract|fund|aob|…` prints positiond's — with its
//!   fingerprint — or exports it ([`export`]).
//! - `check-return`: takes a filed return (a `system.return_filed` event), replays the log to
//!   the sequence it names, takes the same report and compares fingerprints; with the filed
//!   file, shows what differs.
//! - `trail`: who posted what, and when, filtered by member, stream, period and actor.
//!
//! Each reads ledgerd's `ReadStored` (with the global `--server`, `--ca`, `--token`) or, with
//! `--data-dir`, a stopped ledgerd's sled directory ([`source`]).

mod ahead;
pub mod check;
pub mod export;
pub mod prove;
pub mod replay;
pub mod source;
pub mod trail;
pub mod verify;

use std::ops::ControlFlow;
use std::path::PathBuf;

use anyhow::Context;
use api::audit_pb;
use api::audit_pb::audit_service_client::AuditServiceClient;
use audit::checkpoint::LedgerKey;
use audit::{SignedCheckpoint, Source};
use clap::{Args, Subcommand, ValueEnum};
use domain::Pence;
use domain::SystemId;
use domain::position::{
    AobOptions, AobScope, AobThresholds, ConsolidationScope, Projection, ReportKind,
};
use tonic::transport::Channel;

use crate::Global;
use crate::report::Scope;

#[derive(Debug, Subcommand)]
pub enum Audit {
    /// Verify the whole log: recompute every event's hash and the chain, rebuild the Merkle
    /// tree, check every checkpoint's signature and the log against every checkpoint the
    /// ledger and the regulator hold. Names the first sequence that does not verify; exit
    /// status 0 only when everything verifies.
    Verify {
        #[command(flatten)]
        keys: AuditArgs,
        /// Read a stopped ledgerd's sled directory instead of asking ledgerd.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Prove that the event at a sequence is in the log: ledgerd's inclusion proof, checked
    /// against the latest checkpoint the regulator holds (signature included).
    Prove {
        #[command(flatten)]
        keys: AuditArgs,
        /// The event's global sequence.
        #[arg(long)]
        seq: u64,
    },
    /// List the signed checkpoints the ledger (default) or the regulator holds, with whether
    /// each signature verifies.
    Checkpoints {
        #[command(flatten)]
        keys: AuditArgs,
        /// The regulator's copies (oversightd) instead of the ledger's.
        #[arg(long)]
        regulator: bool,
    },
    /// Rebuild a report from the log with the domain's own code (no positiond): as of a
    /// sequence (--to-seq) or a time (--as-of), printed as positiond's is, with its
    /// fingerprint; --export writes it to a file that rebuilds its canonical bytes.
    #[command(subcommand)]
    Replay(replay::ReplayReport),
    /// Check a filed return (the system.return_filed event at --seq): replay the log to the
    /// sequence it names, take the same report, compare fingerprints. Exit status 0 when they
    /// match, 1 when they do not, 2 when it cannot check; with --file (the report that was
    /// filed), show what differs.
    CheckReturn(check::CheckReturn),
    /// Who posted what and when: sequence, time, actor, stream, event and period, filtered by
    /// member, stream, period and actor.
    Trail(trail::Trail),
}

pub async fn run(global: &Global, command: Audit) -> anyhow::Result<()> {
    match command {
        Audit::Replay(report) => replay::run(global, report).await,
        Audit::CheckReturn(args) => check::run(global, args).await,
        Audit::Trail(args) => trail::run(global, args).await,
        Audit::Verify {
            keys,
            data_dir,
            quiet,
        } => verify::run(global, &keys, data_dir.as_deref(), quiet).await,
        Audit::Prove { keys, seq } => prove::run(global, &keys, seq).await,
        Audit::Checkpoints { keys, regulator } => prove::list(global, &keys, regulator).await,
    }
}

/// What every audit needs: whose ledger, its public key, and the regulator's side.
#[derive(Clone, Debug, Args)]
pub struct AuditArgs {
    /// The system whose ledger is audited.
    #[arg(long, default_value = "kav")]
    pub system: String,
    /// The ledger's checkpoint public key (SPKI PEM), as given to auditors.
    #[arg(long, default_value = ".local/keys/ledger-checkpoint.pub.pem")]
    pub ledger_key: PathBuf,
    /// Bearer token for oversightd (the regulator's side), signed with the regulator's key;
    /// --token is the one for ledgerd.
    #[arg(long, env = "ICS_REGULATOR_TOKEN", hide_env_values = true)]
    pub regulator_token: Option<String>,
    /// Do not ask the regulator's side for its checkpoints (then a ledger rewritten with its
    /// own checkpoints re-signed cannot be caught; said so in the output).
    #[arg(long)]
    pub no_regulator: bool,
}

impl AuditArgs {
    pub fn system(&self) -> anyhow::Result<SystemId> {
        SystemId::new(self.system.clone()).map_err(|e| anyhow::anyhow!("--system: {e}"))
    }

    pub fn key(&self) -> anyhow::Result<LedgerKey> {
        let pem = std::fs::read_to_string(&self.ledger_key)
            .with_context(|| format!("reading --ledger-key {}", self.ledger_key.display()))?;
        audit::checkpoint::verifying_key_from_pem(&pem)
            .with_context(|| format!("--ledger-key {}", self.ledger_key.display()))
    }
}

/// A client of ledgerd's `AuditService`.
pub async fn audit_client(global: &Global) -> anyhow::Result<AuditServiceClient<Channel>> {
    let channel = crate::channel(global)
        .await
        .with_context(|| format!("connecting to ledgerd at {}", global.server))?;
    Ok(AuditServiceClient::new(channel).max_decoding_message_size(64 * 1024 * 1024))
}

/// Every checkpoint ledgerd holds, in sequence order.
pub async fn ledger_checkpoints(global: &Global) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let mut client = audit_client(global).await?;
    all_pages("ledgerd", async |from| {
        let request = audit_pb::ListCheckpointsRequest {
            from_sequence: from,
            limit: 0,
        };
        Ok(client
            .list_checkpoints(crate::request(global, request)?)
            .await
            .map_err(crate::output::status_error)?
            .into_inner()
            .checkpoints)
    })
    .await
}

/// Every checkpoint the regulator's oversightd holds for `system`, in sequence order.
pub async fn regulator_checkpoints(
    global: &Global,
    args: &AuditArgs,
) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let regulator = Global {
        token: args
            .regulator_token
            .clone()
            .or_else(|| global.token.clone()),
        ..global.clone()
    };
    let mut client = crate::oversight::connect(&regulator).await?;
    all_pages("the regulator's oversightd", async |from| {
        let request = api::oversight_pb::ListSystemCheckpointsRequest {
            system: args.system.clone(),
            from_sequence: from,
            limit: 0,
        };
        Ok(client
            .list_checkpoints(crate::request(&regulator, request)?)
            .await
            .map_err(crate::output::status_error)?
            .into_inner()
            .checkpoints)
    })
    .await
}

/// The regulator's checkpoints for `args.system`, or `None` with `--no-regulator`.
pub async fn regulator_unless_skipped(
    global: &Global,
    args: &AuditArgs,
) -> anyhow::Result<Option<Vec<SignedCheckpoint>>> {
    if args.no_regulator {
        return Ok(None);
    }
    regulator_checkpoints(global, args)
        .await
        .context("fetching the regulator's checkpoints (--no-regulator to skip)")
        .map(Some)
}

/// Every page `page(from_sequence)` gives, from sequence 0 until an empty page, decoded.
async fn all_pages(
    source: &str,
    mut page: impl AsyncFnMut(u64) -> anyhow::Result<Vec<audit_pb::Checkpoint>>,
) -> anyhow::Result<Vec<SignedCheckpoint>> {
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let checkpoints = page(from).await?;
        let Some(last) = checkpoints.last() else {
            return Ok(all);
        };
        from = last.sequence + 1;
        for checkpoint in checkpoints {
            all.push(
                SignedCheckpoint::from_proto(checkpoint)
                    .with_context(|| format!("a checkpoint from {source}"))?,
            );
        }
    }
}

/// Tags checkpoints with where they came from.
pub fn tagged(
    source: Source,
    checkpoints: Vec<SignedCheckpoint>,
) -> impl Iterator<Item = (Source, SignedCheckpoint)> {
    checkpoints.into_iter().map(move |c| (source, c))
}

/// Where an audit command reads the log.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Read a stopped ledgerd's data directory (its sled store) instead of asking ledgerd at
    /// --server. Nothing is written to it.
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
}

/// The reports, named as icsctl's report commands name them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ReportName {
    Position,
    Consolidation,
    Budget,
    Contract,
    Fund,
    Aob,
    Adjustments,
}

/// The report kind of `name`: `scope` applies to consolidation and aob, the thresholds to aob
/// (absent: £300,000 and £3,000,000); giving them for another report is an error.
pub fn report_kind(
    name: ReportName,
    scope: Option<Scope>,
    balance_threshold: Option<Pence>,
    income_threshold: Option<Pence>,
) -> Result<ReportKind, String> {
    let all = matches!(scope, Some(Scope::All));
    if scope.is_some() && !matches!(name, ReportName::Consolidation | ReportName::Aob) {
        return Err("--scope is for consolidation and aob only".to_string());
    }
    if (balance_threshold.is_some() || income_threshold.is_some()) && name != ReportName::Aob {
        return Err("--balance-threshold and --income-threshold are for aob only".to_string());
    }
    Ok(match name {
        ReportName::Position => ReportKind::Position,
        ReportName::Consolidation => ReportKind::Consolidation(if all {
            ConsolidationScope::WiderIcs
        } else {
            ConsolidationScope::ControlTotal
        }),
        ReportName::Budget => ReportKind::PooledBudgets,
        ReportName::Contract => ReportKind::Contracts,
        ReportName::Fund => ReportKind::Funds,
        ReportName::Aob => {
            let defaults = AobThresholds::default();
            ReportKind::AgreementOfBalances(AobOptions {
                thresholds: AobThresholds {
                    receivables_payables: balance_threshold
                        .unwrap_or(defaults.receivables_payables),
                    income_expenditure: income_threshold.unwrap_or(defaults.income_expenditure),
                },
                scope: if all {
                    AobScope::AllMembers
                } else {
                    AobScope::NhsBodies
                },
            })
        }
        ReportName::Adjustments => ReportKind::Adjustments,
    })
}

/// Up to where a replay folds the log.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Until {
    /// Every event up to and including this sequence.
    Sequence(u64),
    /// Every event recorded at or before this time (µs since the Unix epoch), up to `head`.
    RecordedAt { time_us: i64, head: u64 },
}

/// Folds the log from its first event until `until` into the domain's position projection;
/// returns it with the number of events folded.
pub async fn fold(log: &mut source::Log, until: Until) -> anyhow::Result<(Projection, u64)> {
    let mut projection = Projection::new();
    let (to, time) = match until {
        Until::Sequence(sequence) => (sequence, None),
        Until::RecordedAt { time_us, head } => (head, Some(time_us)),
    };
    let mut folded = 0u64;
    log.each(1, to, |event| {
        if time.is_some_and(|t| event.recorded_at_us > t) {
            return Ok(ControlFlow::Break(()));
        }
        projection
            .apply(&event.recorded(), &event.event)
            .map_err(|e| anyhow::anyhow!("the log does not fold: {e}"))?;
        folded += 1;
        Ok(ControlFlow::Continue(()))
    })
    .await?;
    Ok((projection, folded))
}

/// Lowercase hex of a fingerprint.
pub fn hex32(fingerprint: &[u8; 32]) -> String {
    domain::position::canonical::hex(fingerprint)
}

/// A time for people: RFC 3339, UTC.
pub fn time_text(recorded_at_us: i64) -> String {
    jiff::Timestamp::from_microsecond(recorded_at_us)
        .map_or_else(|_| recorded_at_us.to_string(), |t| t.to_string())
}

/// What an audit found: the log, a proof, a checkpoint or a filed return does not hold up.
/// `icsctl` exits with status 1 for it — and 2 when it could not carry out the audit at all
/// (ledgerd unreachable, a file unreadable, bad arguments) — so a script can tell "checked:
/// it is wrong" from "could not check".
#[derive(Debug)]
pub struct Refuted(pub String);

impl std::fmt::Display for Refuted {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refuted {}

/// An error that is a [`Refuted`] finding.
pub fn refuted(finding: impl Into<String>) -> anyhow::Error {
    anyhow::Error::new(Refuted(finding.into()))
}

#[cfg(test)]
pub(crate) mod tests {
    //! The demo ICS folded in-process, for the audit's unit tests.

    use domain::position::{AsOf, Projection, Recorded};
    use domain::{Event, Ledger};

    use super::*;

    /// The demo scenario's events as the ledger records them (a second apart from
    /// 2018-04-01), and their projection.
    pub fn demo() -> (Vec<(Recorded, Event)>, Projection) {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../deploy/demo/kingsmere-2018-19.ics");
        let text = std::fs::read_to_string(path).expect("demo scenario");
        let commands = crate::load::parse_scenario("demo", &text).expect("parses");
        let mut ledger = Ledger::default();
        let mut log = Vec::new();
        let mut projection = Projection::new();
        for (line, command) in commands {
            let (_, command) = api::command_from_proto(command).expect("converts");
            let events = ledger
                .execute(&command)
                .unwrap_or_else(|e| panic!("line {line}: {e}"));
            for event in events {
                let sequence = log.len() as u64 + 1;
                let recorded = Recorded {
                    sequence,
                    recorded_at_us: 1_522_540_800_000_000
                        + i64::try_from(sequence).unwrap_or(0) * 1_000_000,
                };
                projection.apply(&recorded, &event).expect("folds");
                log.push((recorded, event));
            }
        }
        (log, projection)
    }

    /// Every kind of report, each option both ways.
    pub fn every_kind() -> Vec<ReportKind> {
        let mut kinds = Vec::new();
        for name in ReportName::value_variants() {
            for scope in [None, Some(Scope::Nhs), Some(Scope::All)] {
                if let Ok(kind) = report_kind(*name, scope, None, None)
                    && !kinds.contains(&kind)
                {
                    kinds.push(kind);
                }
            }
        }
        kinds.push(
            report_kind(
                ReportName::Aob,
                Some(Scope::All),
                Some(Pence::ZERO),
                Some(Pence::new(100)),
            )
            .expect("aob"),
        );
        kinds
    }

    #[test]
    fn report_names_make_every_kind_and_refuse_options_that_do_not_apply() {
        assert_eq!(every_kind().len(), 10);
        assert_eq!(
            report_kind(ReportName::Fund, Some(Scope::All), None, None),
            Err("--scope is for consolidation and aob only".to_string())
        );
        assert!(report_kind(ReportName::Consolidation, None, Some(Pence::ZERO), None).is_err());
        assert_eq!(
            report_kind(ReportName::Aob, None, None, None),
            Ok(ReportKind::AgreementOfBalances(AobOptions::default()))
        );
        assert_eq!(
            report_kind(ReportName::Consolidation, None, None, None),
            Ok(ReportKind::Consolidation(ConsolidationScope::ControlTotal))
        );
        let (_, projection) = demo();
        assert!(projection.at(AsOf::Latest).is_ok());
    }
}
