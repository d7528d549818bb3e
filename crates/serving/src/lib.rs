//! How every ICS Ledger gRPC server is served — ledgerd, positiond and oversightd alike:
//!
//! - [`Perimeter`]: what stands between a client and the services — the tonic server builder
//!   with TLS from the service's configuration (or plaintext, logged as a warning) and its
//!   handshake timeout, the HTTP/2 windows, the [`limits`] checked on every call before its
//!   body is read (connection caps, the bearer token, calls per connection, the deadline), and
//!   the listener's connections counted against the caps ([`Perimeter::incoming`]);
//! - [`Limits`]: the limits, configured under the same keys in every service
//!   (`grpc_message_bytes_max`, `grpc_connections_max`, …). A request over any of them is
//!   `RESOURCE_EXHAUSTED` with the limit and its key in the message, and reaches no handler
//!   (or, for the deadline, its handler is stopped);
//! - [`health`] and [`reflection()`]: the services that answer without a token, with a small
//!   message limit; reflection advertises exactly the services a server answers;
//! - [`refusals`]: tonic's refusals of a request body, with the codes the contract documents;
//! - [`slots`]: caps on calls that stay open (follow streams) per principal and in total;
//! - [`beside`]: serving beside a read side's consumer, each stopping the other;
//! - [`shutdown_signal`]: SIGINT or SIGTERM.

pub mod connections;
mod gate;
pub mod limits;
pub mod reflection;
pub mod refusals;
pub mod slots;

pub use connections::{Connection, Incoming};
pub use limits::{Limits, PerimeterLayer};
pub use reflection::{HEALTH_SERVICE, REFLECTION_SERVICE, reflection};

use std::future::Future;
use std::pin::Pin;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Server, ServerTlsConfig};
use tower::layer::util::{Identity, Stack};

use crate::connections::Connections;
use crate::gate::Gate;

/// HTTP/2 flow-control window of one call's request body, in bytes: how much a client may
/// send that the service has not read yet.
///
/// h2 closes a connection (GOAWAY `ENHANCE_YOUR_CALM`, "too_many_data_frames") once the DATA
/// frames it holds unread cost more in framing than half the connection's window (its
/// defence against floods of tiny frames). A client streaming small messages — grpcio sends
/// each `SubmitBulk` command in a DATA frame of its own — fills a whole window with such
/// frames whenever ledgerd pauses reading (a group commit's flush). So one call's window is
/// kept small beside the connection's: a window full of frames of a valid command's size (a
/// few dozen bytes at least: its request id alone is 32 characters or more) stays well inside
/// the allowance, for a few such calls at once.
pub const STREAM_WINDOW_BYTES: u32 = 256 * 1024;

/// HTTP/2 flow-control window of a connection, in bytes (see [`STREAM_WINDOW_BYTES`]); h2
/// allows half of it in framing overhead.
pub const CONNECTION_WINDOW_BYTES: u32 = 8 * 1024 * 1024;

/// The perimeter of one server: its limits, the connections it holds and the token check.
#[derive(Clone)]
pub struct Perimeter {
    limits: Limits,
    connections: Connections,
    gate: Gate,
}

impl Perimeter {
    /// The perimeter for `limits`; with `verifier`, every call but health's and reflection's
    /// needs a valid bearer token before its body is read.
    pub fn new(limits: &Limits, verifier: Option<auth::Verifier>) -> Self {
        Perimeter {
            limits: limits.clone(),
            connections: Connections::new(
                limits.grpc_connections_max,
                limits.grpc_connections_per_peer_max,
            ),
            gate: Gate::new(verifier),
        }
    }

    /// A server builder: TLS when `tls` is given (plaintext otherwise, with a warning in the
    /// log), and the perimeter's checks on every call.
    pub fn server(
        &self,
        tls: Option<ServerTlsConfig>,
        mutual: bool,
    ) -> anyhow::Result<Server<Stack<PerimeterLayer, Identity>>> {
        let limits = &self.limits;
        let mut builder = Server::builder()
            .initial_stream_window_size(STREAM_WINDOW_BYTES)
            .initial_connection_window_size(CONNECTION_WINDOW_BYTES);
        match tls {
            Some(tls) => {
                tracing::info!(mutual, "gRPC over TLS");
                builder = builder
                    .tls_config(tls.timeout(limits.tls_handshake_timeout()))
                    .map_err(|error| anyhow::anyhow!("configuring TLS: {error}"))?;
            }
            None => tracing::warn!("gRPC in plaintext: set tls_cert and tls_key to encrypt"),
        }
        tracing::info!(?limits, "gRPC limits");
        Ok(builder.layer(PerimeterLayer::new(
            limits,
            self.connections.clone(),
            self.gate.clone(),
        )))
    }

    /// The connections `listener` accepts, counted against the connection caps, for
    /// `serve_with_incoming_shutdown`.
    pub fn incoming(&self, listener: tokio::net::TcpListener) -> Incoming {
        Incoming::new(
            listener,
            self.connections.clone(),
            self.limits.tls_handshake_timeout(),
        )
    }

    /// gRPC health, answering without a token: its messages are held to
    /// `grpc_unauthenticated_message_bytes_max`.
    pub fn health(
        &self,
    ) -> (
        tonic_health::server::HealthReporter,
        tonic_health::pb::health_server::HealthServer<impl tonic_health::pb::health_server::Health>,
    ) {
        let (reporter, service) = tonic_health::server::health_reporter();
        let service =
            service.max_decoding_message_size(self.limits.grpc_unauthenticated_message_bytes_max);
        (reporter, service)
    }

    /// gRPC reflection advertising `services` ([`reflection()`]), answering without a token:
    /// its messages are held to `grpc_unauthenticated_message_bytes_max`.
    pub fn reflection(
        &self,
        descriptor_set: &'static [u8],
        services: &[&str],
    ) -> anyhow::Result<
        tonic_reflection::pb::v1::server_reflection_server::ServerReflectionServer<
            impl tonic_reflection::pb::v1::server_reflection_server::ServerReflection,
        >,
    > {
        Ok(reflection(descriptor_set, services)?
            .max_decoding_message_size(self.limits.grpc_unauthenticated_message_bytes_max))
    }
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
