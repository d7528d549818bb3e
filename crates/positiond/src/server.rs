//! Start-up and shutdown: open positiond's sled, load the checkpoint, run the consumer, serve
//! gRPC until the shutdown signal (or until the consumer fails), then checkpoint.
//!
//! A log holding an event the projection refuses (written by an older version), or a lost
//! JetStream consumer, does not stop positiond: it serves the projection as it stands and says
//! what is wrong in `GetStatus` (the stuck sequence and why; the consumer's error) and in gRPC
//! health (NOT_SERVING for `PositionService` while anything is wrong, so a load balancer
//! prefers a healthy replica). Restarted, it comes back to the same state rather than
//! crash-loop. If the consumer fails otherwise — the checkpoint cannot be saved, ledgerd
//! cannot be read to catch up — positiond stops serving and `run` returns the consumer's
//! error.

use std::future::Future;
use std::sync::{Arc, RwLock};
use tonic::server::NamedService;

use anyhow::Context;
use api::position_pb::position_service_server::PositionServiceServer;
use domain::SystemId;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::position::Position;
use crate::service::PositionApi;
use follow::checkpoint::CheckpointStore;
use follow::consumer::{self, Settings, Shared};

/// Runs positiond on `listener` until `shutdown` resolves.
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
    let checkpoints = CheckpointStore::open(&config.data_dir)
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let shared: Shared<Position> = Arc::new(RwLock::new(checkpoints.load()?));
    let parked = checkpoints.parked().clone();
    tracing::info!(
        sequence = shared.read().map(|c| c.sequence).unwrap_or(0),
        "checkpoint loaded"
    );

    let stop = CancellationToken::new();
    let (status_sender, status) = follow::status::channel();
    let settings = Settings {
        system: system.clone(),
        nats_url: config.nats_url.clone(),
        nats_credentials: config.nats_credentials()?,
        ledgerd_url: config.ledgerd_url.clone(),
        ledgerd_access: config.ledgerd_access()?,
        consumer: config.consumer.clone(),
        stream_name: config.stream_name.clone(),
        fetch_max: config.fetch_max,
        checkpoint_events: config.checkpoint_events,
        checkpoint_interval: config.checkpoint_interval(),
    };
    let consumer_task = tokio::spawn(consumer::run(
        settings,
        checkpoints,
        shared.clone(),
        status_sender,
        stop.clone(),
    ));

    let verifier = config.verifier()?;
    let perimeter = serving::Perimeter::new(&config.limits, verifier.clone());
    let (health_reporter, health_service) = perimeter.health();
    health_reporter
        .set_serving::<PositionServiceServer<PositionApi>>()
        .await;
    tokio::spawn(follow::status::report_health::<
        PositionServiceServer<PositionApi>,
    >(health_reporter, status.clone()));
    let reflection = perimeter.reflection(
        api::FILE_DESCRIPTOR_SET,
        &[PositionServiceServer::<PositionApi>::NAME],
    )?;
    let mut api = PositionApi::new(system.to_string(), shared, parked, status);
    match verifier {
        Some(verifier) => api = api.with_auth(verifier),
        None => tracing::warn!("authentication is off: no auth_public_key configured"),
    }
    let service = PositionServiceServer::new(api)
        .max_decoding_message_size(config.limits.grpc_message_bytes_max);
    let address = listener.local_addr()?;
    tracing::info!(%address, %system, "positiond serving");

    let router = perimeter
        .server(tls, config.tls_client_ca.is_some())?
        .add_service(health_service)
        .add_service(reflection)
        .add_service(service);
    let incoming = perimeter.incoming(listener);
    serving::beside(
        |until| router.serve_with_incoming_shutdown(incoming, until),
        shutdown,
        consumer_task,
        stop,
    )
    .await?;
    tracing::info!("positiond stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    serving::shutdown_signal("positiond").await;
}
