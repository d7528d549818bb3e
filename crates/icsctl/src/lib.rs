//! icsctl: post commands to ledgerd, load scenario files, read the log, print reports, and
//! audit (`icsctl audit …`: replay reports, check filed returns, the actor trail).
//!
//! Tables for people, `--json` for scripts. Every command goes through `domain::Command` on
//! its way to the wire, so a malformed amount or period is caught here, before the network,
//! with the same rules the server applies.

pub mod audit;
pub mod keys;
pub mod load;
pub mod money;
pub mod nats;
pub mod output;
pub mod oversight;
pub mod parse;
pub mod post;
pub mod report;
pub mod storage;

use std::time::Duration;

use anyhow::Context;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use clap::{Args, Parser, Subcommand};
use tonic::transport::Channel;

use crate::post::Post;

/// Command-line client for ICS Ledger.
#[derive(Debug, Parser)]
#[command(version, about, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub global: Global,
    #[command(subcommand)]
    pub command: Cmd,
}

#[derive(Clone, Debug, Args)]
pub struct Global {
    /// ledgerd's gRPC address.
    #[arg(
        long,
        global = true,
        env = "ICS_SERVER",
        default_value = "http://127.0.0.1:50051"
    )]
    pub server: String,
    /// positiond's gRPC address (reports: position, budget, contract, fund, aob, …).
    #[arg(
        long,
        global = true,
        env = "ICS_POSITION_SERVER",
        default_value = "http://127.0.0.1:50061"
    )]
    pub position_server: String,
    /// oversightd's gRPC address (the regulator's view: `icsctl oversight …`).
    #[arg(
        long,
        global = true,
        env = "ICS_OVERSIGHT_SERVER",
        default_value = "http://127.0.0.1:50071"
    )]
    pub oversight_server: String,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// Who is posting (recorded on every event) when the server has authentication off; with
    /// it on, the token's subject is recorded instead. Default: $ICS_ACTOR, or `icsctl`.
    /// (`icsctl audit trail --actor A` lists what A posted.)
    // No clap `env`/default: `audit trail` shares this flag as its filter, and must see only
    // what was typed.
    #[arg(long, global = true)]
    pub actor: Option<String>,
    /// Bearer token (from `icsctl token issue`), sent as `authorization: Bearer <token>`.
    #[arg(long, global = true, env = "ICS_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Idempotency key (UUID) for a single command; random when not given.
    #[arg(long, global = true)]
    pub request_id: Option<String>,
    /// Refuse the command unless its stream is at this version (0: must not exist yet).
    #[arg(long, global = true)]
    pub expected_version: Option<u64>,
    /// PEM CA certificate to trust for the server: connect over TLS (the URL may say http or
    /// https).
    #[arg(long, global = true, env = "ICS_CA")]
    pub ca: Option<std::path::PathBuf>,
    /// PEM client certificate for mutual TLS (with --key).
    #[arg(long, global = true, env = "ICS_CERT", requires = "key")]
    pub cert: Option<std::path::PathBuf>,
    /// PEM private key of --cert.
    #[arg(long, global = true, env = "ICS_KEY", requires = "cert")]
    pub key: Option<std::path::PathBuf>,
    /// The server's name in its certificate (default: the URL's host, or `localhost` for an
    /// IP address).
    #[arg(long, global = true, env = "ICS_TLS_NAME")]
    pub tls_name: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum Dev {
    /// Create a local CA, a server certificate for localhost and 127.0.0.1, and a client
    /// certificate, as PEM files in DIR (ca.pem, server.pem/.key, client.pem/.key).
    Certs {
        #[arg(long, default_value = ".local/certs")]
        dir: std::path::PathBuf,
        /// Replace certificates already there.
        #[arg(long)]
        force: bool,
    },
    /// Create a NATS user nkey for each service of the local stack (ledgerd, positiond,
    /// oversightd, reader) in DIR: <user>.nk, the seed the service connects with (mode 0600),
    /// and <user>.pub, the public key nats-server is given. Existing ones are kept.
    Nkeys {
        #[arg(long, default_value = ".local/nkeys")]
        dir: std::path::PathBuf,
        /// Replace nkeys already there.
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum Cmd {
    #[command(flatten)]
    Post(Post),
    #[command(flatten)]
    Report(report::ReportCmd),
    /// Post every command of a scenario file (one icsctl subcommand per line) in one bulk call.
    Load {
        file: std::path::PathBuf,
        /// Hide the progress bar.
        #[arg(long)]
        quiet: bool,
    },
    /// Read the log.
    Events {
        /// First global sequence to read.
        #[arg(long, default_value_t = 1)]
        from: u64,
        /// Most events to read (0: all).
        #[arg(long, default_value_t = 0)]
        limit: u64,
        /// Keep reading new events as they are recorded (the whole log: not with --stream).
        #[arg(long, conflicts_with = "stream")]
        follow: bool,
        /// Read one stream (system, budget/<code>, fund/<code>, contract/<code>) instead.
        #[arg(long)]
        stream: Option<String>,
    },
    /// The ledger's head: sequence, chain hash and events per family.
    Head,
    /// Tools for running the stack on one machine.
    #[command(subcommand)]
    Dev(Dev),
    /// The regulator's view from oversightd: systems, performance, rankings.
    #[command(subcommand)]
    Oversight(oversight::Oversight),
    /// Check the ledger without trusting its operator: verify the log, prove an event is in
    /// it, list checkpoints, replay reports, check filed returns, the actor trail.
    #[command(subcommand)]
    Audit(audit::Audit),
    /// Ed25519 key pairs: the ICS's token-signing key, the ledger's checkpoint key.
    #[command(subcommand)]
    Keys(keys::Keys),
    /// Bearer tokens signed with the ICS's key.
    #[command(subcommand)]
    Token(keys::Token),
    /// A ledgerd's sled directory: upgrade it to this build's on-disk format, or restore it
    /// from the JetStream stream.
    #[command(subcommand)]
    Store(storage::Storage),
    /// The JetStream stream's message count and last message, checked against the ledger head.
    BusStatus {
        #[command(flatten)]
        nats: nats::NatsArgs,
        #[arg(long, default_value = "kav")]
        system: String,
        #[arg(long, default_value = "ICS")]
        stream_name: String,
        /// Wait (up to --timeout-s) until JetStream holds the ledger's head, then compare.
        #[arg(long)]
        wait: bool,
        #[arg(long, default_value_t = 30)]
        timeout_s: u64,
    },
}

pub async fn connect(global: &Global) -> anyhow::Result<LedgerServiceClient<Channel>> {
    let channel = channel(global)
        .await
        .with_context(|| format!("connecting to ledgerd at {}", global.server))?;
    Ok(LedgerServiceClient::new(channel).max_decoding_message_size(16 * 1024 * 1024))
}

/// A channel to `--server` (ledgerd), over TLS when `--ca` is given.
pub async fn channel(global: &Global) -> anyhow::Result<Channel> {
    channel_to(global, &global.server).await
}

/// A channel to `server`, over TLS when `--ca` is given.
pub async fn channel_to(global: &Global, server: &str) -> anyhow::Result<Channel> {
    use tonic::transport::{Certificate, ClientTlsConfig, Identity};
    let read = |path: &std::path::Path| {
        std::fs::read(path).with_context(|| format!("reading {}", path.display()))
    };
    let Some(ca) = &global.ca else {
        return Ok(Channel::from_shared(server.to_string())
            .context("--server is not a URL")?
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await?);
    };
    let url = server.replacen("http://", "https://", 1);
    let uri: tonic::codegen::http::Uri = url.parse().context("--server is not a URL")?;
    let host = uri.host().unwrap_or("localhost");
    let name = global.tls_name.clone().unwrap_or_else(|| {
        if host.parse::<std::net::IpAddr>().is_ok() {
            "localhost".to_string()
        } else {
            host.to_string()
        }
    });
    let mut tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read(ca)?))
        .domain_name(name);
    if let (Some(cert), Some(key)) = (&global.cert, &global.key) {
        tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
    }
    Ok(Channel::from_shared(url)
        .context("--server is not a URL")?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?)
}

/// `icsctl dev certs`: writes a new local PKI unless one is there (or `force`).
fn dev_certs(dir: &std::path::Path, force: bool) -> anyhow::Result<()> {
    let files = devpki::Files::in_dir(dir);
    if files.ca_cert.exists() && !force {
        println!(
            "certificates already in {} (--force to replace)",
            dir.display()
        );
        return Ok(());
    }
    let bundle = devpki::generate("ICS Ledger local CA", &["localhost", "127.0.0.1"], "icsctl")?;
    let files = devpki::write(&bundle, dir)?;
    println!(
        "wrote {}, {} and {} (and keys) in {}",
        files.ca_cert.display(),
        files.server_cert.display(),
        files.client_cert.display(),
        dir.display()
    );
    Ok(())
}

/// A request carrying the bearer token (`--token`) and the actor metadata (which servers
/// with authentication on ignore: there the actor is the token's subject).
pub fn request<T>(global: &Global, message: T) -> anyhow::Result<tonic::Request<T>> {
    let mut request = tonic::Request::new(message);
    let actor = global
        .actor
        .clone()
        .or_else(|| std::env::var("ICS_ACTOR").ok())
        .unwrap_or_else(|| "icsctl".to_string())
        .parse()
        .context("--actor must be printable ASCII")?;
    request.metadata_mut().insert("x-ics-actor", actor);
    if let Some(token) = &global.token {
        let value = format!("Bearer {}", token.trim())
            .parse()
            .context("--token must be printable ASCII")?;
        request.metadata_mut().insert("authorization", value);
    }
    Ok(request)
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let global = cli.global;
    match cli.command {
        Cmd::Post(post) => post_one(&global, &post).await,
        Cmd::Report(report) => report::run(&global, report).await,
        Cmd::Load { file, quiet } => load::load(&global, &file, quiet).await,
        Cmd::Events {
            from,
            limit,
            follow,
            stream,
        } => output::events(&global, from, limit, follow, stream).await,
        Cmd::Head => output::head(&global).await,
        Cmd::Dev(Dev::Certs { dir, force }) => dev_certs(&dir, force),
        Cmd::Dev(Dev::Nkeys { dir, force }) => nats::dev_nkeys(&dir, force),
        Cmd::Oversight(command) => oversight::run(&global, command).await,
        Cmd::Audit(command) => audit::run(&global, command).await,
        Cmd::Keys(command) => keys::keys(command),
        Cmd::Token(command) => keys::token(command),
        Cmd::Store(command) => storage::run(&global, command).await,
        Cmd::BusStatus {
            nats,
            system,
            stream_name,
            wait,
            timeout_s,
        } => {
            output::bus_status(
                &global,
                &nats,
                &system,
                &stream_name,
                wait,
                Duration::from_secs(timeout_s),
            )
            .await
        }
    }
}

async fn post_one(global: &Global, post: &Post) -> anyhow::Result<()> {
    let command = post.command().map_err(|e| anyhow::anyhow!(e))?;
    let mut meta = match &global.request_id {
        Some(id) => api::CommandMeta::new(
            api::parse_uuid(id, "--request-id").map_err(|e| anyhow::anyhow!("{e}"))?,
        ),
        None => api::CommandMeta::random(),
    };
    meta.expected_version = global.expected_version;
    let pb::Command {
        command: Some(command),
    } = api::command_to_proto(&meta, &command)
    else {
        anyhow::bail!("internal: the command did not convert");
    };
    let mut client = connect(global).await?;
    let reply = send(&mut client, global, command)
        .await
        .map_err(output::status_error)?;
    output::command_reply(global, &reply.into_inner())
}

/// Sends one command to its RPC.
async fn send(
    client: &mut LedgerServiceClient<Channel>,
    global: &Global,
    command: pb::command::Command,
) -> Result<tonic::Response<pb::CommandReply>, tonic::Status> {
    use pb::command::Command as C;
    fn with_actor<T>(global: &Global, message: T) -> Result<tonic::Request<T>, tonic::Status> {
        request(global, message).map_err(|e| tonic::Status::invalid_argument(format!("{e:#}")))
    }
    match command {
        C::EstablishSystem(m) => client.establish_system(with_actor(global, m)?).await,
        C::AdmitMember(m) => client.admit_member(with_actor(global, m)?).await,
        C::AgreePlan(m) => client.agree_plan(with_actor(global, m)?).await,
        C::SubmitReturn(m) => client.submit_return(with_actor(global, m)?).await,
        C::ReportMetric(m) => client.report_metric(with_actor(global, m)?).await,
        C::ClosePeriod(m) => client.close_period(with_actor(global, m)?).await,
        C::FileReturn(m) => client.file_return(with_actor(global, m)?).await,
        C::EstablishBudget(m) => client.establish_budget(with_actor(global, m)?).await,
        C::PledgeContribution(m) => client.pledge_contribution(with_actor(global, m)?).await,
        C::PayContribution(m) => client.pay_contribution(with_actor(global, m)?).await,
        C::RecordSpend(m) => client.record_spend(with_actor(global, m)?).await,
        C::VaryBudget(m) => client.vary_budget(with_actor(global, m)?).await,
        C::SettleRiskShare(m) => client.settle_risk_share(with_actor(global, m)?).await,
        C::CloseBudget(m) => client.close_budget(with_actor(global, m)?).await,
        C::AllocateFund(m) => client.allocate_fund(with_actor(global, m)?).await,
        C::AssessTranche(m) => client.assess_tranche(with_actor(global, m)?).await,
        C::PayTranche(m) => client.pay_tranche(with_actor(global, m)?).await,
        C::ClawBack(m) => client.claw_back(with_actor(global, m)?).await,
        C::AgreeContract(m) => client.agree_contract(with_actor(global, m)?).await,
        C::VaryContract(m) => client.vary_contract(with_actor(global, m)?).await,
        C::RecordActivity(m) => client.record_activity(with_actor(global, m)?).await,
        C::RaiseInvoice(m) => client.raise_invoice(with_actor(global, m)?).await,
        C::RecordPayment(m) => client.record_payment(with_actor(global, m)?).await,
        C::RaiseDispute(m) => client.raise_dispute(with_actor(global, m)?).await,
        C::ResolveDispute(m) => client.resolve_dispute(with_actor(global, m)?).await,
        C::ReconcileCquin(m) => client.reconcile_cquin(with_actor(global, m)?).await,
        C::RecordAdjustment(m) => client.record_adjustment(with_actor(global, m)?).await,
        C::TerminateContract(m) => client.terminate_contract(with_actor(global, m)?).await,
    }
}
