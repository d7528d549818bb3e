//! How every ICS Ledger gRPC server is served — ledgerd, positiond and oversightd alike:
//!
//! - [`server`]: a tonic server builder with TLS from the service's configuration (or plaintext,
//!   logged as a warning) and the [`limits`] layer;
//! - [`Limits`]: the request limits, configured under the same keys in every service
//!   (`grpc_message_bytes_max`, `grpc_streams_per_connection_max`, `grpc_request_deadline_ms`).
//!   A request over any of them is `RESOURCE_EXHAUSTED` with the limit and its key in the
//!   message, and reaches no handler (or, for the deadline, its handler is stopped);
//! - [`incoming`]: the connections a listener accepts, with Nagle's algorithm off;
//! - [`beside`]: serving beside a read side's consumer, each stopping the other;
//! - [`shutdown_signal`]: SIGINT or SIGTERM;
//! - [`reflection()`]: gRPC reflection advertising exactly the services a server answers.

pub mod limits;
pub mod oversize;
pub mod reflection;

pub use limits::{Limits, LimitsLayer};
pub use reflection::{HEALTH_SERVICE, REFLECTION_SERVICE, reflection};

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, ServerTlsConfig};
use tower::layer::util::{Identity, Stack};

/// A server builder for a service's configuration: TLS when `tls` is given (plaintext
/// otherwise, with a warning in the log), and `limits` on every call.
pub fn server(
    tls: Option<ServerTlsConfig>,
    mutual: bool,
    limits: &Limits,
) -> anyhow::Result<Server<Stack<LimitsLayer, Identity>>> {
    let mut builder = Server::builder();
    match tls {
        Some(tls) => {
            tracing::info!(mutual, "gRPC over TLS");
            builder = builder
                .tls_config(tls)
                .map_err(|error| anyhow::anyhow!("configuring TLS: {error}"))?;
        }
        None => tracing::warn!("gRPC in plaintext: set tls_cert and tls_key to encrypt"),
    }
    tracing::info!(
        message_bytes_max = limits.grpc_message_bytes_max,
        streams_per_connection_max = limits.grpc_streams_per_connection_max,
        request_deadline_ms = limits.grpc_request_deadline_ms,
        "gRPC limits"
    );
    Ok(builder.layer(LimitsLayer::new(limits)))
}

/// The connections `listener` accepts, for `serve_with_incoming_shutdown`, each with
/// `TCP_NODELAY` set. A gRPC reply goes out in small writes; with Nagle's algorithm on, each
/// waits for the client's delayed acknowledgement, ~40 ms per unary call on Linux (the audit
/// benchmark measured every proof at 44 ms over loopback before this).
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// When serving should stop, for `serve_with_incoming_shutdown`.
pub type Until = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Serves beside `worker` (positiond's or oversightd's consumer) until `shutdown`, then asks
/// the worker to stop (`stop`: it checkpoints) and returns how it ended. If the worker ends
/// first — it only does when it fails — serving stops too, rather than answer from a
/// projection that stopped short, and the worker's error is returned. `serve` starts the
/// server with the future that says when to stop.
pub async fn beside<F>(
    serve: impl FnOnce(Until) -> F,
    shutdown: impl Future<Output = ()> + Send + 'static,
    mut worker: JoinHandle<anyhow::Result<()>>,
    stop: CancellationToken,
) -> anyhow::Result<()>
where
    F: Future<Output = Result<(), tonic::transport::Error>>,
{
    let serving_stop = stop.clone();
    let until: Until = Box::pin(async move {
        tokio::select! {
            () = shutdown => {}
            () = serving_stop.cancelled() => {}
        }
    });
    let serving = serve(until);
    tokio::pin!(serving);
    let ended = tokio::select! {
        served = &mut serving => {
            served.map_err(|error| anyhow::anyhow!("serving gRPC: {error}"))?;
            tracing::info!("shutting down: checkpointing");
            stop.cancel();
            worker.await
        }
        ended = &mut worker => {
            stop.cancel();
            let _ = serving.await;
            ended
        }
    };
    ended.map_err(|error| anyhow::anyhow!("the consumer task: {error}"))?
}

/// Resolves on SIGINT or SIGTERM. `program` names the service in the log if SIGTERM cannot
/// be listened for.
pub async fn shutdown_signal(program: &'static str) {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate = match tokio::signal::unix::signal(
            tokio::signal::unix::SignalKind::terminate(),
        ) {
            Ok(signal) => signal,
            Err(error) => {
                tracing::error!(%error, "cannot listen for SIGTERM; only SIGINT stops {program}");
                let _ = interrupt.await;
                return;
            }
        };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = program;
        let _ = interrupt.await;
    }
}
