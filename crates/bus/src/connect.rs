//! The NATS connection and JetStream context, with every option explicit.

use std::time::Duration;

use async_nats::jetstream::{self, context::ContextBuilder};

use crate::error::BusError;

/// A TCP connect plus handshake attempt may take this long.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(5);
/// A core request (including JetStream API calls made through the client) times out after this.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// The first reconnect delay; it doubles on each failed attempt ...
pub const RECONNECT_DELAY_MIN: Duration = Duration::from_millis(50);
/// ... up to this cap, so a restarted server is found again within about this long.
pub const RECONNECT_DELAY_MAX: Duration = Duration::from_secs(2);
/// JetStream API requests (stream info, message get) time out after this.
pub const JETSTREAM_TIMEOUT: Duration = Duration::from_secs(10);
/// A publish acknowledgement that has not arrived after this is an error (the relay retries).
pub const JETSTREAM_ACK_TIMEOUT: Duration = Duration::from_secs(10);
/// At most this many publishes await acknowledgement per context; further publishes wait for
/// a permit (backpressure) rather than fail.
pub const JETSTREAM_MAX_ACK_INFLIGHT: usize = 4096;

/// The delay before reconnect attempt `attempts` (0-based): exponential from
/// [`RECONNECT_DELAY_MIN`], capped at [`RECONNECT_DELAY_MAX`].
pub fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = u32::try_from(attempts.min(16)).unwrap_or(16);
    RECONNECT_DELAY_MIN
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(RECONNECT_DELAY_MAX)
}

/// Connects to NATS at `url` (comma-separated for several servers) as `name` (shown by the
/// server's `/connz`).
///
/// Returns at once even when no server is up: the client keeps trying in the background
/// (`retry_on_initial_connect`) and reconnects forever after a disconnect, with
/// [`reconnect_delay`] between attempts. Publishes made while disconnected are buffered by the
/// client or fail with a timeout; either way the relay's cursor does not advance.
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    let connection = name.to_string();
    let shown = redacted(url);
    let address: async_nats::ServerAddr = url.parse().map_err(|source| BusError::Connect {
        url: shown.clone(),
        source: async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::ServerParse,
            source,
        ),
    })?;
    let mut options = async_nats::ConnectOptions::new();
    // `nats://user:password@host:port`: the credentials this service connects with.
    if let (Some(user), Some(password)) = (address.username(), address.password()) {
        options = options.user_and_password(user.to_string(), password.to_string());
    }
    options
        .name(name)
        .retry_on_initial_connect()
        .max_reconnects(None)
        .connection_timeout(CONNECTION_TIMEOUT)
        .request_timeout(Some(REQUEST_TIMEOUT))
        .reconnect_delay_callback(reconnect_delay)
        .event_callback(move |event| {
            let connection = connection.clone();
            async move {
                match event {
                    async_nats::Event::Connected => tracing::info!(%connection, "NATS connected"),
                    async_nats::Event::Disconnected => {
                        tracing::warn!(%connection, "NATS disconnected; reconnecting")
                    }
                    other => tracing::warn!(%connection, event = %other, "NATS connection event"),
                }
            }
        })
        .connect(address)
        .await
        .map_err(|source| BusError::Connect { url: shown, source })
}

/// `url` with any password replaced by `***`, for logs and errors.
pub fn redacted(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let userinfo = &url[scheme + 3..at];
            let user = userinfo.split(':').next().unwrap_or_default();
            format!("{}{user}:***{}", &url[..scheme + 3], &url[at..])
        }
        _ => url.to_string(),
    }
}

/// A JetStream context over `client` with explicit timeouts and a bounded, back-pressured
/// number of unacknowledged publishes.
pub fn jetstream(client: async_nats::Client) -> jetstream::Context {
    ContextBuilder::new()
        .timeout(JETSTREAM_TIMEOUT)
        .ack_timeout(JETSTREAM_ACK_TIMEOUT)
        .max_ack_inflight(JETSTREAM_MAX_ACK_INFLIGHT)
        .backpressure_on_inflight(true)
        .build(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconnect_delay_doubles_up_to_the_cap() {
        assert_eq!(reconnect_delay(0), RECONNECT_DELAY_MIN);
        assert_eq!(reconnect_delay(1), RECONNECT_DELAY_MIN * 2);
        assert_eq!(reconnect_delay(3), RECONNECT_DELAY_MIN * 8);
        assert_eq!(reconnect_delay(10), RECONNECT_DELAY_MAX);
        assert_eq!(reconnect_delay(usize::MAX), RECONNECT_DELAY_MAX);
    }
}
