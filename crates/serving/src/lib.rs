//! How every ICS Ledger gRPC server is served — ledgerd, positiond and oversightd alike:
//!
//! - [`server`]: a tonic server builder with TLS from the service's configuration (or plaintext,
//!   logged as a warning) and the [`limits`] layer;
//! - [`Limits`]: the request limits, configured under the same keys in every service
//!   (`grpc_message_bytes_max`, `grpc_streams_per_connection_max`, `grpc_request_deadline_ms`).
//!   A request over any of them is `RESOURCE_EXHAUSTED` with the limit and its key in the
//!   message, and reaches no handler (or, for the deadline, its handler is stopped);
//! - [`shutdown_signal`]: SIGINT or SIGTERM.

pub mod limits;
pub mod oversize;

pub use limits::{Limits, LimitsLayer};

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
