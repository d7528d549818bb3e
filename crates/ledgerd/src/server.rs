//! Start-up and shutdown: open the store, rebuild the state, start the relay, serve gRPC until
//! the shutdown signal, then drain and flush.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tonic::server::NamedService;

use anyhow::Context;
use api::audit_pb::audit_service_server::AuditServiceServer;
use api::pb::ledger_service_server::LedgerServiceServer;
use domain::SystemId;
use store::{EventStore, StoreConfig, StoreError};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::audit::{self, AuditLog, CheckpointSettings};
use crate::audit_service::AuditApi;
use crate::config::Config;
use crate::ledger::Ledger;
use crate::relay::{self, RelaySettings};
use crate::service::{LedgerApi, Limits};

/// A ledgerd serving in this process: for tests, benchmarks and tools that embed one.
pub struct Spawned {
    /// Where it listens (the port chosen when `listen` asked for port 0).
    pub address: std::net::SocketAddr,
    stop: CancellationToken,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl Spawned {
    /// `http://<address>` (a ledgerd configured with TLS is reached as
    /// `https://localhost:<port>`, the name in `icsctl dev certs`' certificates).
    pub fn url(&self) -> String {
        format!("http://{}", self.address)
    }

    /// Whether it has stopped on its own (`run` returned: start-up failed or serving did).
    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }

    /// Stops it as SIGTERM does (the last checkpoint, the relay's last pass, the flush) and
    /// returns how `run` ended.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await.context("the ledgerd task")?
    }
}

/// Binds `config.listen` (port 0: any free port, see [`Spawned::address`]) and runs ledgerd
/// on it in a task until [`Spawned::stop`]. The listener is bound before this returns, so a
/// client may connect at once.
pub async fn spawn(mut config: Config) -> anyhow::Result<Spawned> {
    let listener = TcpListener::bind(config.listen)
        .await
        .with_context(|| format!("binding {}", config.listen))?;
    let address = listener.local_addr()?;
    config.listen = address;
    let stop = CancellationToken::new();
    let task = tokio::spawn(run(config, listener, stop.clone().cancelled_owned()));
    Ok(Spawned {
        address,
        stop,
        task,
    })
}

/// Runs ledgerd on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let system = SystemId::new(config.system.clone())
        .map_err(|e| anyhow::anyhow!("system '{}': {e}", config.system))?;
    let tls = config.server_tls()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let mut store_config = StoreConfig::new(&config.data_dir);
    store_config.batch_events_max = config.batch_events_max;
    store_config.cache_capacity_bytes = config
        .store_cache_mib
        .checked_mul(1 << 20)
        .with_context(|| format!("store_cache_mib {} is too large", config.store_cache_mib))?;
    let store = EventStore::open(store_config)
        .with_context(|| format!("opening the event store in {}", config.data_dir.display()))?;
    let ledger = Ledger::recover(store.clone(), system.clone()).with_context(|| {
        format!(
            "rebuilding the ledger from its log in {} (if the log is damaged, restore the \
             store from a backup)",
            config.data_dir.display()
        )
    })?;
    let head = store.head();
    tracing::info!(sequence = head.sequence, hash = %hex::encode(head.hash), "ledger recovered");
    if let Some(stuck) = ledger.stuck() {
        // Once, here: the health and Head say it for as long as it lasts.
        tracing::error!(sequence = stuck.sequence, reason = %stuck.reason, "{stuck}");
    }
    let audit_log = AuditLog::build(&store).context("building the Merkle tree of the log")?;
    tracing::info!(root = %hex::encode(audit_log.head().root), "Merkle tree built");

    let stop = CancellationToken::new();
    let stop_audit = CancellationToken::new();
    let checkpoints_signed = Arc::new(Notify::new());
    let signing_key = config.checkpoint_signing_key()?;
    let checkpoint_settings = match &signing_key {
        Some(key) => Some(CheckpointSettings {
            system: system.clone(),
            key: key.clone(),
            every_events: config.checkpoint_every_events.max(1),
            every: Duration::from_secs(config.checkpoint_every_s.max(1)),
        }),
        None => {
            tracing::warn!("no checkpoint_key configured: the log's checkpoints are not signed");
            None
        }
    };
    let audit_task = tokio::spawn(audit::run(
        store.clone(),
        audit_log.clone(),
        checkpoint_settings,
        Arc::clone(&checkpoints_signed),
        stop_audit.clone(),
    ));
    let relay_task = match (&config.nats_url, config.no_relay) {
        (Some(url), false) => {
            let client = bus::connect_with(
                url,
                &format!("ledgerd-{system}"),
                &config.nats_credentials()?,
            )
            .await
            .context("connecting to NATS")?;
            let settings = RelaySettings {
                system: system.clone(),
                stream: bus::StreamSettings {
                    name: config.stream_name.clone(),
                    duplicate_window: config.duplicate_window(),
                    ..bus::StreamSettings::default()
                },
                window_events: config.relay_window_events,
                batch_from: config.relay_batch_from,
                checkpoints_signed: Arc::clone(&checkpoints_signed),
                signing_key: signing_key.clone(),
            };
            // A stream holding events of this system beyond the store's head: the store came
            // back shorter than what it published. Refuse to start rather than reuse sequences.
            relay::check_stream_at_start(&store, &client, &settings, relay::START_CHECK_WAIT)
                .await
                .inspect_err(|_| stop_audit.cancel())
                .context("ledgerd refuses to start")?;
            Some(tokio::spawn(relay::run(
                store.clone(),
                client,
                settings,
                stop.clone(),
            )))
        }
        _ => {
            tracing::warn!("no NATS URL configured: events are recorded but not relayed");
            None
        }
    };

    let verifier = config.verifier()?;
    let perimeter = serving::Perimeter::new(&config.limits, verifier.clone());
    let (health_reporter, health_service) = perimeter.health();
    if ledger.stuck().is_some() {
        // Reads are answered, commands are not: a load balancer routing writes must not pick it.
        health_reporter
            .set_not_serving::<LedgerServiceServer<LedgerApi>>()
            .await;
    } else {
        health_reporter
            .set_serving::<LedgerServiceServer<LedgerApi>>()
            .await;
    }
    health_reporter
        .set_serving::<AuditServiceServer<AuditApi>>()
        .await;
    let reflection = perimeter.reflection(
        api::FILE_DESCRIPTOR_SET,
        &[
            LedgerServiceServer::<LedgerApi>::NAME,
            AuditServiceServer::<AuditApi>::NAME,
        ],
    )?;
    let limits = Limits {
        bulk_commands_max: config.bulk_commands_max,
        read_page_events: config.read_page_events,
        follow_streams_max: config.follow_streams_max,
        follow_streams_per_principal_max: config.follow_streams_per_principal_max,
    };
    let mut api = LedgerApi::new(ledger, limits);
    match &verifier {
        Some(verifier) => api = api.with_auth(verifier.clone()),
        None => tracing::warn!(
            "authentication is off: no auth_public_key configured, so any caller may post and read"
        ),
    }
    let message_max = config.limits.grpc_message_bytes_max;
    let audit_service = AuditServiceServer::new(AuditApi::new(store.clone(), audit_log, verifier))
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);
    let service = LedgerServiceServer::new(api)
        .max_decoding_message_size(message_max)
        .max_encoding_message_size(message_max);

    let address = listener.local_addr()?;
    tracing::info!(%address, %system, "ledgerd serving");
    perimeter
        .server(tls, config.tls_client_ca.is_some())?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service)
        .add_service(audit_service)
        .serve_with_incoming_shutdown(perimeter.incoming(listener), shutdown)
        .await
        .context("serving gRPC")?;

    tracing::info!(
        "shutting down: signing a last checkpoint, stopping the relay, flushing the store"
    );
    // The last checkpoint is signed and stored first, so the relay's last pass publishes it.
    stop_audit.cancel();
    if let Err(error) = audit_task.await {
        tracing::error!(%error, "audit task failed");
    }
    stop.cancel();
    if let Some(task) = relay_task
        && let Err(error) = task.await
    {
        tracing::error!(%error, "relay task failed");
    }
    match store.flush() {
        Ok(()) => {}
        // Everything acknowledged was flushed and synced before it was acknowledged; what a
        // poisoned store cannot flush now (the relay's cursor) only repeats work after the
        // restart, which recovers the store from disk.
        Err(error) if store.poisoned().is_some() => tracing::warn!(
            %error,
            "the event store refused writes since an earlier failure; nothing acknowledged is \
             lost, restart ledgerd to recover it"
        ),
        Err(error) => return Err(error).context("flushing the event store"),
    }
    tracing::info!(sequence = store.head().sequence, "ledgerd stopped");
    Ok(())
}

/// The process's exit status for why `run` failed: [`EXIT_STORE_REFUSED`] when the event store
/// is damaged, or diverged from what it recorded or published, 1 otherwise. (A log holding an
/// event the rules cannot apply is neither: ledgerd runs on it, serving reads — see
/// [`Ledger::stuck`].)
pub fn exit_status(error: &anyhow::Error) -> u8 {
    use crate::ledger::RecoverError;
    let damaged =
        |store: &StoreError| matches!(store, StoreError::Corrupt(_) | StoreError::Diverged { .. });
    let refused = error.chain().any(|cause| {
        if let Some(store) = cause.downcast_ref::<StoreError>() {
            return damaged(store);
        }
        match cause.downcast_ref::<RecoverError>() {
            Some(RecoverError::Store(store)) => return damaged(store),
            Some(RecoverError::Short { .. }) => return true,
            _ => {}
        }
        matches!(
            cause.downcast_ref::<relay::StartError>(),
            Some(relay::StartError::Diverged(_))
        )
    });
    if refused { EXIT_STORE_REFUSED } else { 1 }
}

/// ledgerd's exit status when its store is damaged, or is not the log it recorded: restarting
/// cannot help; restore it.
pub const EXIT_STORE_REFUSED: u8 = 3;

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    serving::shutdown_signal("ledgerd").await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_damaged_or_diverged_store_is_exit_status_3_and_anything_else_1() {
        let diverged = StoreError::Diverged {
            dir: "/data".to_string(),
            reason: "its log ends at event 150".to_string(),
        };
        let refused = [
            anyhow::Error::new(diverged).context("opening the event store"),
            anyhow::Error::new(StoreError::Corrupt("event 7".to_string())),
            anyhow::Error::new(crate::ledger::RecoverError::Store(StoreError::Corrupt(
                "expected event 9".to_string(),
            )))
            .context("rebuilding the ledger"),
            anyhow::Error::new(crate::ledger::RecoverError::Short { next: 9, head: 12 }),
            anyhow::Error::new(relay::StartError::Diverged(relay::Diverged {
                stream: "ICS".to_string(),
                system: "kav".to_string(),
                sequence: 40,
                what: "beyond the store's head".to_string(),
                head: 0,
            }))
            .context("ledgerd refuses to start"),
        ];
        for error in &refused {
            assert_eq!(exit_status(error), EXIT_STORE_REFUSED, "{error:#}");
        }
        let other = [
            anyhow::anyhow!("binding 127.0.0.1:50051"),
            anyhow::Error::new(StoreError::InvalidConfig("cache".to_string())),
            anyhow::Error::new(StoreError::Poisoned("disk full".to_string())),
            anyhow::Error::new(StoreError::ContractBroken("request 01 twice".to_string())),
        ];
        for error in &other {
            assert_eq!(exit_status(error), 1, "{error:#}");
        }
    }
}
