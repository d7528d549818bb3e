//! The limits of every gRPC server, and the tower layer that applies them to each call before
//! its body is read.
//!
//! - **Connections** (`grpc_connections_max`, `grpc_connections_per_peer_max`): checked as a
//!   connection is accepted (see [`crate::connections`]); a call on a connection over either
//!   is refused.
//! - **TLS handshake** (`grpc_tls_handshake_timeout_ms`): a connection that has not finished
//!   its handshake by then is closed. It is also how long a connection over a cap is kept to
//!   be told so.
//! - **Authentication** ([`crate::gate`]): with a token verifier, a call without a valid
//!   bearer token is refused `UNAUTHENTICATED` from its headers. Health and reflection answer
//!   anyone, with messages of at most `grpc_unauthenticated_message_bytes_max`.
//! - **Message size** (`grpc_message_bytes_max`): tonic refuses a larger request while decoding
//!   it, before any handler runs; each service sets it on its generated server
//!   (`max_decoding_message_size`) and the layer renames tonic's refusal (see
//!   [`crate::refusals`]).
//! - **Concurrent calls per connection** (`grpc_streams_per_connection_max`): every gRPC call
//!   is an HTTP/2 stream, open from its request until the last byte of its reply. One
//!   connection may hold this many open at once; the next call on it is refused at once, and
//!   the other connections are not affected. (The limit is not advertised as HTTP/2's
//!   `SETTINGS_MAX_CONCURRENT_STREAMS`: a client told of it would queue the call silently
//!   instead of hearing why it waits.)
//! - **Request deadline** (`grpc_request_deadline_ms`): how long a call's handler may run. That
//!   is the whole call for a unary RPC and for a client-streamed one (`SubmitBulk`: every
//!   command must arrive and be acknowledged in it); for a server-streamed reply (`ReadAll`,
//!   `ReadStream`) it bounds the time to start the reply, after which the stream runs as long
//!   as the client keeps reading — HTTP/2 flow control, not a clock, bounds what it holds. A
//!   handler over the deadline is stopped (dropped) and the call refused. A client's own
//!   shorter deadline (`grpc-timeout`) is honoured by tonic as usual.
//!
//! Over any of them: `RESOURCE_EXHAUSTED`, the limit and its configuration key in the message.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

use crate::connections::{CallGuard, Connections};
use crate::gate::Gate;

/// The limits, under the same configuration keys in every service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest gRPC message accepted, in bytes.
    pub grpc_message_bytes_max: usize,
    /// The largest message accepted without a token (health and reflection), in bytes.
    pub grpc_unauthenticated_message_bytes_max: usize,
    /// Calls one client connection may have open at once.
    pub grpc_streams_per_connection_max: usize,
    /// Client connections open at once.
    pub grpc_connections_max: usize,
    /// Client connections open at once from one IP address.
    pub grpc_connections_per_peer_max: usize,
    /// How long a client may take over its TLS handshake, in milliseconds.
    pub grpc_tls_handshake_timeout_ms: u64,
    /// How long a call's handler may run, in milliseconds.
    pub grpc_request_deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            grpc_message_bytes_max: 4 * 1024 * 1024,
            grpc_unauthenticated_message_bytes_max: 16 * 1024,
            grpc_streams_per_connection_max: 64,
            grpc_connections_max: 1024,
            grpc_connections_per_peer_max: 128,
            grpc_tls_handshake_timeout_ms: 10_000,
            grpc_request_deadline_ms: 60_000,
        }
    }
}

impl Limits {
    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.grpc_request_deadline_ms)
    }

    pub fn tls_handshake_timeout(&self) -> Duration {
        Duration::from_millis(self.grpc_tls_handshake_timeout_ms)
    }
}

/// Applies the connection caps, the gate, the calls-per-connection limit and the deadline to
/// every call, and renames tonic's refusals of a request's body.
#[derive(Clone)]
pub struct PerimeterLayer {
    calls_max: usize,
    deadline: Duration,
    connections: Connections,
    gate: Gate,
}

impl PerimeterLayer {
    pub(crate) fn new(limits: &Limits, connections: Connections, gate: Gate) -> Self {
        PerimeterLayer {
            calls_max: limits.grpc_streams_per_connection_max,
            deadline: limits.request_deadline(),
            connections,
            gate,
        }
    }
}

impl<S> Layer<S> for PerimeterLayer {
    type Service = PerimeterService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        PerimeterService {
            inner,
            layer: self.clone(),
        }
    }
}

/// See [`PerimeterLayer`].
#[derive(Clone)]
pub struct PerimeterService<S> {
    inner: S,
    layer: PerimeterLayer,
}

impl<S, B> Service<Request<B>> for PerimeterService<S>
where
    S: Service<Request<B>, Response = Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Send + 'static,
    B: Send + 'static,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Response<Body>, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: Request<B>) -> Self::Future {
        let call = match self.admit(&mut request) {
            Ok(call) => call,
            // Answered without reading the body: dropping it resets the request stream.
            Err(refusal) => return Box::pin(std::future::ready(Ok(refusal.into_http()))),
        };
        let limit_key = match crate::gate::answers_anyone(request.uri().path()) {
            true => crate::refusals::UNAUTHENTICATED_LIMIT_KEY,
            false => "grpc_message_bytes_max",
        };
        // The clone that was not polled ready stays behind (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let deadline = self.layer.deadline;
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(request)).await {
                Ok(Ok(response)) => {
                    let response = crate::refusals::rename_response(response, limit_key);
                    Ok(response.map(|body| Body::new(Counted { body, call })))
                }
                Ok(Err(error)) => Err(error),
                Err(_elapsed) => {
                    let refusal = Status::resource_exhausted(format!(
                        "the call ran over the server's deadline of {} ms \
                         (grpc_request_deadline_ms)",
                        deadline.as_millis()
                    ));
                    Ok(refusal.into_http())
                }
            }
        })
    }
}

impl<S> PerimeterService<S> {
    /// Everything checked from a call's headers, in order: its connection is not over a cap,
    /// its token (to tell a stranger nothing more), room for it on its connection.
    #[allow(clippy::result_large_err)] // a refusal is the response
    fn admit<B>(&self, request: &mut Request<B>) -> Result<Option<CallGuard>, Status> {
        let connection = connection_of(request);
        let layer = &self.layer;
        if let Some(connection) = connection {
            layer.connections.refused_connection(connection)?;
        }
        layer.gate.check(request)?;
        connection
            .map(|connection| {
                layer
                    .connections
                    .enter_call(connection, layer.calls_max)
                    .map_err(|refused| refused.status())
            })
            .transpose()
    }
}

/// The client's address: one per TCP connection, plaintext or TLS. `None` for a transport
/// without one, whose calls are not counted.
fn connection_of<B>(request: &Request<B>) -> Option<SocketAddr> {
    let extensions = request.extensions();
    if let Some(info) = extensions.get::<TcpConnectInfo>() {
        return info.remote_addr();
    }
    extensions
        .get::<TlsConnectInfo<TcpConnectInfo>>()
        .and_then(|info| info.get_ref().remote_addr())
}

/// A reply body that holds its call open until it ends or is dropped.
struct Counted {
    body: Body,
    call: Option<CallGuard>,
}

impl http_body::Body for Counted {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Status>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.call = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}
