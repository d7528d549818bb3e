//! `icsctl audit …`: checking the ledger without trusting its operator.
//!
//! - [`verify`]: `audit verify` — the whole log, its chain, its Merkle tree, every checkpoint;
//!   online (ledgerd's `ReadAll`) or offline (`--data-dir`, a stopped ledgerd's sled).
//! - [`prove`]: `audit prove --seq N` — an inclusion proof from ledgerd checked against a
//!   checkpoint the regulator holds; `audit checkpoints` lists checkpoints.

pub mod prove;
pub mod verify;

use std::path::PathBuf;

use anyhow::Context;
use api::audit_pb;
use api::audit_pb::audit_service_client::AuditServiceClient;
use audit::checkpoint::LedgerKey;
use audit::{SignedCheckpoint, Source};
use clap::{Args, Subcommand};
use domain::SystemId;
use tonic::transport::Channel;

use crate::Global;

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

pub async fn run(global: &Global, command: Audit) -> anyhow::Result<()> {
    match command {
        Audit::Verify {
            keys,
            data_dir,
            quiet,
        } => verify::run(global, &keys, data_dir.as_deref(), quiet).await,
        Audit::Prove { keys, seq } => prove::run(global, &keys, seq).await,
        Audit::Checkpoints { keys, regulator } => prove::list(global, &keys, regulator).await,
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
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let page = client
            .list_checkpoints(crate::request(
                global,
                audit_pb::ListCheckpointsRequest {
                    from_sequence: from,
                    limit: 0,
                },
            )?)
            .await
            .map_err(crate::output::status_error)?
            .into_inner()
            .checkpoints;
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        for checkpoint in page {
            all.push(
                SignedCheckpoint::from_proto(checkpoint).context("a checkpoint from ledgerd")?,
            );
        }
    }
    Ok(all)
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
    let mut all = Vec::new();
    let mut from = 0;
    loop {
        let page = client
            .list_checkpoints(crate::request(
                &regulator,
                api::oversight_pb::ListSystemCheckpointsRequest {
                    system: args.system.clone(),
                    from_sequence: from,
                    limit: 0,
                },
            )?)
            .await
            .map_err(crate::output::status_error)?
            .into_inner()
            .checkpoints;
        let Some(last) = page.last() else { break };
        from = last.sequence + 1;
        for checkpoint in page {
            all.push(
                SignedCheckpoint::from_proto(checkpoint)
                    .context("a checkpoint from the regulator's oversightd")?,
            );
        }
    }
    Ok(all)
}

/// Tags checkpoints with where they came from.
pub fn tagged(
    source: Source,
    checkpoints: Vec<SignedCheckpoint>,
) -> impl Iterator<Item = (Source, SignedCheckpoint)> {
    checkpoints.into_iter().map(move |c| (source, c))
}

/// `2019-04-01T09:00:00Z` for unix microseconds.
pub fn time(us: i64) -> String {
    jiff::Timestamp::from_microsecond(us).map_or_else(|_| format!("{us} µs"), |t| t.to_string())
}
