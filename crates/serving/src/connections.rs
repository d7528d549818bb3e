//! What a server holds per client connection, and the caps on it: connections in total
//! (`grpc_connections_max`), connections from one peer address (`grpc_connections_per_peer_max`)
//! and calls open at once on one connection (`grpc_streams_per_connection_max`).
//!
//! Each connection costs memory before it has made a single call (its TLS session, its HTTP/2
//! buffers), so the caps are checked as it is accepted. A connection over one is not simply
//! closed — the client would only see a reset — but kept for a short while
//! (`grpc_tls_handshake_timeout_ms`) and every call on it answered `RESOURCE_EXHAUSTED` naming
//! the cap and its key, then closed. At most [`REFUSED_CONNECTIONS_MAX`] are kept so at once;
//! beyond that a connection over a cap is closed as soon as it is accepted.

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Sleep;
use tonic::Status;
use tonic::transport::server::{Connected, TcpConnectInfo};

/// Connections over a cap kept at once to be told so; more are closed when accepted.
pub const REFUSED_CONNECTIONS_MAX: usize = 64;

/// Which cap a connection is over, with its value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Over {
    Total { max: usize },
    Peer { max: usize, peer: IpAddr },
}

impl Over {
    pub(crate) fn status(self) -> Status {
        match self {
            Over::Total { max } => Status::resource_exhausted(format!(
                "too many connections to this server: the limit is {max} (grpc_connections_max); \
                 this connection is closed"
            )),
            Over::Peer { max, peer } => Status::resource_exhausted(format!(
                "too many connections from {peer}: the limit is {max} \
                 (grpc_connections_per_peer_max); this connection is closed — share one \
                 connection (channel) between calls"
            )),
        }
    }
}

/// Why a call is refused before it reaches a handler.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum CallRefused {
    /// Its connection is over a connection cap.
    Connection(Over),
    /// Its connection has `max` calls open already.
    Calls { max: usize },
}

impl CallRefused {
    pub(crate) fn status(&self) -> Status {
        match self {
            CallRefused::Connection(over) => over.status(),
            CallRefused::Calls { max } => Status::resource_exhausted(format!(
                "too many calls open on this connection: the limit is {max} \
                 (grpc_streams_per_connection_max)"
            )),
        }
    }
}

/// The caps, and what is open: shared by the listener's [`Incoming`] and the layer.
#[derive(Clone)]
pub(crate) struct Connections(Arc<Mutex<Table>>);

struct Table {
    total_max: usize,
    per_peer_max: usize,
    /// Connections admitted and open.
    admitted: usize,
    /// Connections over a cap kept to be told so.
    refused: usize,
    per_peer: HashMap<IpAddr, usize>,
    /// Every connection with something to know about it: accepted through [`Incoming`], or
    /// with calls open.
    open: HashMap<SocketAddr, Entry>,
}

#[derive(Default)]
struct Entry {
    /// Accepted through [`Incoming`]: forgotten when it closes, not when its calls end.
    accepted: bool,
    /// Over a cap: every call on it is refused.
    over: Option<Over>,
    calls: usize,
}

/// What [`Connections::admit`] decided.
pub(crate) enum Admission {
    /// Served.
    Admitted(ConnectionGuard),
    /// Served only to refuse its calls, then closed.
    Refused(ConnectionGuard),
    /// Closed at once.
    Closed(Over),
}

impl Connections {
    pub(crate) fn new(total_max: usize, per_peer_max: usize) -> Self {
        Connections(Arc::new(Mutex::new(Table {
            total_max,
            per_peer_max,
            admitted: 0,
            refused: 0,
            per_peer: HashMap::new(),
            open: HashMap::new(),
        })))
    }

    fn table(&self) -> std::sync::MutexGuard<'_, Table> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts a connection from `remote` just accepted.
    pub(crate) fn admit(&self, remote: SocketAddr) -> Admission {
        let mut table = self.table();
        let peer = remote.ip();
        let from_peer = table.per_peer.get(&peer).copied().unwrap_or(0);
        let over = if table.admitted >= table.total_max {
            Some(Over::Total {
                max: table.total_max,
            })
        } else if from_peer >= table.per_peer_max {
            Some(Over::Peer {
                max: table.per_peer_max,
                peer,
            })
        } else {
            None
        };
        match over {
            None => {
                table.admitted += 1;
                *table.per_peer.entry(peer).or_insert(0) += 1;
            }
            Some(over) if table.refused >= REFUSED_CONNECTIONS_MAX => {
                return Admission::Closed(over);
            }
            Some(_) => table.refused += 1,
        }
        let entry = table.open.entry(remote).or_default();
        entry.accepted = true;
        entry.over = over;
        let guard = ConnectionGuard {
            connections: self.clone(),
            remote,
        };
        match over {
            None => Admission::Admitted(guard),
            Some(_) => Admission::Refused(guard),
        }
    }

    /// `RESOURCE_EXHAUSTED` if the connection from `remote` is over a connection cap.
    #[allow(clippy::result_large_err)] // a refusal is the response
    pub(crate) fn refused_connection(&self, remote: SocketAddr) -> Result<(), Status> {
        match self.table().open.get(&remote).and_then(|entry| entry.over) {
            Some(over) => Err(over.status()),
            None => Ok(()),
        }
    }

    /// Counts one more call on the connection from `remote`, or says why it is refused.
    pub(crate) fn enter_call(
        &self,
        remote: SocketAddr,
        calls_max: usize,
    ) -> Result<CallGuard, CallRefused> {
        let mut table = self.table();
        let entry = table.open.entry(remote).or_default();
        if let Some(over) = entry.over {
            return Err(CallRefused::Connection(over));
        }
        if entry.calls >= calls_max {
            if !entry.accepted && entry.calls == 0 {
                table.open.remove(&remote);
            }
            return Err(CallRefused::Calls { max: calls_max });
        }
        entry.calls += 1;
        Ok(CallGuard {
            connections: self.clone(),
            remote,
        })
    }

    #[cfg(test)]
    fn calls(&self, remote: SocketAddr) -> usize {
        self.table()
            .open
            .get(&remote)
            .map_or(0, |entry| entry.calls)
    }

    #[cfg(test)]
    fn is_empty(&self) -> bool {
        let table = self.table();
        table.open.is_empty() && table.per_peer.is_empty() && table.admitted + table.refused == 0
    }
}

/// One accepted connection, counted until it is dropped (closed).
pub(crate) struct ConnectionGuard {
    connections: Connections,
    remote: SocketAddr,
}

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let mut table = self.connections.table();
        let Some(entry) = table.open.remove(&self.remote) else {
            return;
        };
        if entry.over.is_some() {
            table.refused = table.refused.saturating_sub(1);
            return;
        }
        table.admitted = table.admitted.saturating_sub(1);
        let peer = self.remote.ip();
        if let Some(count) = table.per_peer.get_mut(&peer) {
            *count = count.saturating_sub(1);
            if *count == 0 {
                table.per_peer.remove(&peer);
            }
        }
    }
}

/// One open call; closes when dropped (when its reply's body is finished or abandoned).
pub(crate) struct CallGuard {
    connections: Connections,
    remote: SocketAddr,
}

impl Drop for CallGuard {
    fn drop(&mut self) {
        let mut table = self.connections.table();
        if let Some(entry) = table.open.get_mut(&self.remote) {
            entry.calls = entry.calls.saturating_sub(1);
            if entry.calls == 0 && !entry.accepted {
                table.open.remove(&self.remote);
            }
        }
    }
}

/// The connections a listener accepts, counted against the caps, each with `TCP_NODELAY`
/// set: a gRPC reply goes out in small writes, and with Nagle's algorithm on each waits for the
/// client's delayed acknowledgement: tens of milliseconds per unary call on Linux.
pub struct Incoming {
    listener: TcpListener,
    connections: Connections,
    /// How long a connection over a cap is kept to be told so.
    linger: Duration,
}

impl Incoming {
    pub(crate) fn new(listener: TcpListener, connections: Connections, linger: Duration) -> Self {
        Incoming {
            listener,
            connections,
            linger,
        }
    }
}

impl futures::Stream for Incoming {
    type Item = io::Result<Connection>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            let (stream, remote) = match ready!(this.listener.poll_accept(cx)) {
                Ok(accepted) => accepted,
                Err(error) => return Poll::Ready(Some(Err(error))),
            };
            if let Err(error) = stream.set_nodelay(true) {
                tracing::debug!(%error, %remote, "could not set TCP_NODELAY");
            }
            let info = TcpConnectInfo {
                local_addr: stream.local_addr().ok(),
                remote_addr: Some(remote),
            };
            let (guard, closes) = match this.connections.admit(remote) {
                Admission::Admitted(guard) => (guard, None),
                Admission::Refused(guard) => {
                    tracing::debug!(%remote, "connection over a cap: refusing its calls");
                    (guard, Some(Box::pin(tokio::time::sleep(this.linger))))
                }
                Admission::Closed(over) => {
                    tracing::debug!(%remote, ?over, "connection over a cap: closed");
                    continue;
                }
            };
            return Poll::Ready(Some(Ok(Connection {
                stream,
                info,
                closes,
                _guard: guard,
            })));
        }
    }
}

/// An accepted connection. One over a cap reads as closed by its client once its time is up,
/// which ends it (TLS handshake or HTTP/2 alike).
pub struct Connection {
    stream: TcpStream,
    info: TcpConnectInfo,
    closes: Option<Pin<Box<Sleep>>>,
    _guard: ConnectionGuard,
}

impl Connected for Connection {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.info.clone()
    }
}

impl AsyncRead for Connection {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if let Some(closes) = self.closes.as_mut()
            && closes.as_mut().poll(cx).is_ready()
        {
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for Connection {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn from(ip: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((ip, port))
    }

    fn admitted(admission: Admission) -> Option<ConnectionGuard> {
        match admission {
            Admission::Admitted(guard) => Some(guard),
            _ => None,
        }
    }

    #[test]
    fn each_connection_has_its_own_count_of_calls() {
        let connections = Connections::new(10, 10);
        let first = connections.enter_call(from([127, 0, 0, 1], 1), 2);
        let second = connections.enter_call(from([127, 0, 0, 1], 1), 2);
        assert!(first.is_ok() && second.is_ok());
        assert_eq!(
            connections.enter_call(from([127, 0, 0, 1], 1), 2).err(),
            Some(CallRefused::Calls { max: 2 }),
            "a third is over the limit"
        );
        let other = connections.enter_call(from([127, 0, 0, 1], 2), 2);
        assert!(other.is_ok(), "another connection");
        drop(first);
        assert_eq!(connections.calls(from([127, 0, 0, 1], 1)), 1);
        let third = connections.enter_call(from([127, 0, 0, 1], 1), 2);
        assert!(third.is_ok(), "room again");
        drop((second, third, other));
        assert!(connections.is_empty(), "closed calls are forgotten");
        assert!(connections.enter_call(from([127, 0, 0, 1], 1), 0).is_err());
        assert!(connections.is_empty(), "a limit of zero remembers nothing");
    }

    #[test]
    fn connections_over_a_cap_are_kept_to_be_refused_then_closed() {
        let connections = Connections::new(3, 2);
        let a1 = admitted(connections.admit(from([10, 0, 0, 1], 1))).expect("a's first");
        let a2 = admitted(connections.admit(from([10, 0, 0, 1], 2))).expect("a's second");
        let Admission::Refused(a3) = connections.admit(from([10, 0, 0, 1], 3)) else {
            panic!("a's third is over the per-peer cap");
        };
        let peer = IpAddr::from([10, 0, 0, 1]);
        assert_eq!(
            connections.enter_call(from([10, 0, 0, 1], 3), 8).err(),
            Some(CallRefused::Connection(Over::Peer { max: 2, peer }))
        );
        assert!(connections.enter_call(from([10, 0, 0, 1], 1), 8).is_ok());
        let b1 = admitted(connections.admit(from([10, 0, 0, 2], 1))).expect("b's first");
        let Admission::Refused(b2) = connections.admit(from([10, 0, 0, 2], 2)) else {
            panic!("over the total");
        };
        assert_eq!(
            connections.enter_call(from([10, 0, 0, 2], 2), 8).err(),
            Some(CallRefused::Connection(Over::Total { max: 3 }))
        );
        drop((a1, b2));
        let a4 = admitted(connections.admit(from([10, 0, 0, 1], 4))).expect("room again");
        drop((a2, a3, a4, b1));
        assert!(connections.is_empty(), "closed connections are forgotten");
    }

    #[test]
    fn beyond_the_refused_ones_kept_connections_are_closed_at_once() {
        let connections = Connections::new(0, 0);
        let kept: Vec<_> = (0..REFUSED_CONNECTIONS_MAX as u16)
            .map(|port| match connections.admit(from([127, 0, 0, 1], port)) {
                Admission::Refused(guard) => guard,
                _ => panic!("kept to be refused"),
            })
            .collect();
        assert!(matches!(
            connections.admit(from([127, 0, 0, 1], 9999)),
            Admission::Closed(Over::Total { max: 0 })
        ));
        drop(kept);
        assert!(connections.is_empty());
    }
}
