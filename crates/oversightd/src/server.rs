//! Start-up and shutdown: open oversightd's sled, load every system's checkpoint, run the
//! fleet consumer, serve gRPC until the shutdown signal (or until the consumer fails), then
//! checkpoint. A system stuck on an event that does not fold, or a lost consumer, does not
//! stop it: `ListSystems` and gRPC health say so (see `follow::status`).

use std::future::Future;
use std::sync::{Arc, RwLock};
use tonic::server::NamedService;

use anyhow::Context;
use api::oversight_pb::oversight_service_server::OversightServiceServer;
use follow::fleet::{self, FleetCheckpointStore, FleetSettings, SharedFleet};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::Config;
use crate::service::OversightApi;
use crate::view::SystemView;

/// Runs oversightd on `listener` until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> anyhow::Result<()> {
    let ledgerds = config.ledgerd_map()?;
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("creating {}", config.data_dir.display()))?;
    let checkpoints = FleetCheckpointStore::open(&config.data_dir)
        .with_context(|| format!("opening {}", config.data_dir.display()))?;
    let loaded = checkpoints.load::<SystemView>()?;
    for (system, checkpointed) in &loaded {
        tracing::info!(%system, sequence = checkpointed.sequence, "checkpoint loaded");
    }
    let shared: SharedFleet<SystemView> = Arc::new(RwLock::new(loaded));
    let received = checkpoints
        .received()
        .context("opening the kept checkpoints")?;
    let parked = checkpoints.parked().clone();

    let stop = CancellationToken::new();
    let (status_sender, status) = follow::status::channel();
    let settings = FleetSettings {
        nats_url: config.nats_url.clone(),
        nats_credentials: config.nats_credentials()?,
        ledgerds,
        ledgerd_access: config.ledgerd_access()?,
        checkpoint_keys: config.checkpoint_keys()?,
        consumer: config.consumer.clone(),
        stream_name: config.stream_name.clone(),
        filter_subject: config.filter_subject.clone(),
        fetch_max: config.fetch_max,
        checkpoint_events: config.checkpoint_events,
        checkpoint_interval: config.checkpoint_interval(),
        retry_delay: config.retry_delay(),
    };
    let consumer_task = tokio::spawn(fleet::run(
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
        .set_serving::<OversightServiceServer<OversightApi>>()
        .await;
    tokio::spawn(follow::status::report_health::<
        OversightServiceServer<OversightApi>,
    >(health_reporter, status.clone()));
    let reflection = perimeter.reflection(
        api::FILE_DESCRIPTOR_SET,
        &[OversightServiceServer::<OversightApi>::NAME],
    )?;
    let mut api = OversightApi::new(shared, received, parked, status);
    match verifier {
        Some(verifier) => api = api.with_auth(verifier),
        None => tracing::warn!("authentication is off: no auth_public_key configured"),
    }
    let service = OversightServiceServer::new(api)
        .max_decoding_message_size(config.limits.grpc_message_bytes_max);
    let address = listener.local_addr()?;
    tracing::info!(%address, filter = %config.filter_subject, "oversightd serving");

    let router = perimeter
        .server(config.server_tls()?, config.tls_client_ca.is_some())?
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
    tracing::info!("oversightd stopped");
    Ok(())
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    serving::shutdown_signal("oversightd").await;
}
