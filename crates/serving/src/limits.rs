//! The request limits of every gRPC server, and the tower layer that applies two of them.
//!
//! - **Message size** (`grpc_message_bytes_max`): tonic refuses a larger request while decoding
//!   it, before any handler runs; each service sets it on its generated server
//!   (`max_decoding_message_size`) and [`LimitsLayer`] renames tonic's refusal (see
//!   [`crate::oversize`]).
//! - **Concurrent streams per connection** (`grpc_streams_per_connection_max`): every gRPC
//!   call is an HTTP/2 stream, open from its request until the last byte of its reply. One
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

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::{Request, Response};
use serde::{Deserialize, Serialize};
use tonic::Status;
use tonic::body::Body;
use tonic::transport::server::{TcpConnectInfo, TlsConnectInfo};
use tower::{Layer, Service};

/// The limits, under the same configuration keys in every service.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// The largest gRPC message accepted, in bytes.
    pub grpc_message_bytes_max: usize,
    /// Calls one client connection may have open at once.
    pub grpc_streams_per_connection_max: usize,
    /// How long a call's handler may run, in milliseconds.
    pub grpc_request_deadline_ms: u64,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            grpc_message_bytes_max: 4 * 1024 * 1024,
            grpc_streams_per_connection_max: 64,
            grpc_request_deadline_ms: 60_000,
        }
    }
}

impl Limits {
    pub fn request_deadline(&self) -> Duration {
        Duration::from_millis(self.grpc_request_deadline_ms)
    }
}

/// Applies the streams-per-connection limit and the deadline to every call, and renames
/// tonic's refusal of an oversized message.
#[derive(Clone)]
pub struct LimitsLayer {
    streams_max: usize,
    deadline: Duration,
    open: OpenStreams,
}

impl LimitsLayer {
    pub fn new(limits: &Limits) -> Self {
        LimitsLayer {
            streams_max: limits.grpc_streams_per_connection_max,
            deadline: limits.request_deadline(),
            open: OpenStreams::default(),
        }
    }
}

impl<S> Layer<S> for LimitsLayer {
    type Service = LimitsService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        LimitsService {
            inner,
            streams_max: self.streams_max,
            deadline: self.deadline,
            open: self.open.clone(),
        }
    }
}

/// See [`LimitsLayer`].
#[derive(Clone)]
pub struct LimitsService<S> {
    inner: S,
    streams_max: usize,
    deadline: Duration,
    open: OpenStreams,
}

impl<S, B> Service<Request<B>> for LimitsService<S>
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

    fn call(&mut self, request: Request<B>) -> Self::Future {
        let stream = match connection_of(&request) {
            Some(connection) => match self.open.enter(connection, self.streams_max) {
                Some(stream) => Some(stream),
                None => {
                    let refusal = Status::resource_exhausted(format!(
                        "too many calls open on this connection: the limit is {} \
                         (grpc_streams_per_connection_max)",
                        self.streams_max
                    ));
                    return Box::pin(std::future::ready(Ok(refusal.into_http())));
                }
            },
            None => None,
        };
        // The clone that was not polled ready stays behind (tower's usual swap).
        let clone = self.inner.clone();
        let mut inner = std::mem::replace(&mut self.inner, clone);
        let deadline = self.deadline;
        Box::pin(async move {
            match tokio::time::timeout(deadline, inner.call(request)).await {
                Ok(Ok(response)) => {
                    let response = crate::oversize::rename_response(response);
                    Ok(response.map(|body| Body::new(Counted { body, stream })))
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

/// Open calls per connection.
#[derive(Clone, Default)]
struct OpenStreams(Arc<Mutex<HashMap<SocketAddr, usize>>>);

impl OpenStreams {
    /// Counts one more call on `connection`, or `None` if it already has `max` open.
    fn enter(&self, connection: SocketAddr, max: usize) -> Option<OpenStream> {
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let count = open.entry(connection).or_insert(0);
        if *count >= max {
            if *count == 0 {
                open.remove(&connection);
            }
            return None;
        }
        *count += 1;
        Some(OpenStream {
            open: self.clone(),
            connection,
        })
    }

    #[cfg(test)]
    fn count(&self, connection: SocketAddr) -> usize {
        let open = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        open.get(&connection).copied().unwrap_or(0)
    }
}

/// One open call; closes when dropped (when its reply's body is finished or abandoned).
struct OpenStream {
    open: OpenStreams,
    connection: SocketAddr,
}

impl Drop for OpenStream {
    fn drop(&mut self) {
        let mut open = self
            .open
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(count) = open.get_mut(&self.connection) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                open.remove(&self.connection);
            }
        }
    }
}

/// A reply body that holds its call open until it ends or is dropped.
struct Counted {
    body: Body,
    stream: Option<OpenStream>,
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
            self.stream = None;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn address(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn each_connection_has_its_own_count() {
        let open = OpenStreams::default();
        let first = open.enter(address(1), 2).expect("first call");
        let second = open.enter(address(1), 2).expect("second call");
        assert!(
            open.enter(address(1), 2).is_none(),
            "a third is over the limit"
        );
        let other = open.enter(address(2), 2).expect("another connection");
        drop(first);
        assert_eq!(open.count(address(1)), 1);
        let third = open.enter(address(1), 2).expect("room again");
        drop((second, third, other));
        assert_eq!(open.count(address(1)), 0);
        assert!(
            open.0.lock().expect("lock").is_empty(),
            "closed connections are forgotten"
        );
    }

    #[test]
    fn a_limit_of_zero_refuses_everything_and_remembers_nothing() {
        let open = OpenStreams::default();
        assert!(open.enter(address(1), 0).is_none());
        assert!(open.0.lock().expect("lock").is_empty());
    }
}
