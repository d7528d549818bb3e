//! The NATS connection and JetStream context, with every option explicit, and who a
//! connection is: a service proves itself with its own nkey (the server holds only the public
//! half) and takes its replies on its own inbox prefix, so that a user allowed to subscribe to
//! its replies cannot read another user's (JetStream delivers pulled messages and API answers
//! to the requester's inbox).

use std::fmt;
use std::path::Path;
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

/// The inbox prefix of a connection that names none: NATS's own.
pub const DEFAULT_INBOX_PREFIX: &str = "_INBOX";

/// Who a connection is on the bus: the nkey it signs the server's challenge with (none: the
/// URL's `user:password`, or anonymous) and the prefix of the subjects its replies come back
/// on. Never shows the seed (`Debug` gives the public key).
#[derive(Clone, Default)]
pub struct Credentials {
    nkey: Option<Nkey>,
    inbox_prefix: Option<String>,
}

#[derive(Clone)]
struct Nkey {
    seed: String,
    public_key: String,
    /// Where the seed was read from, for errors and logs.
    source: String,
}

impl Credentials {
    /// The user nkey whose seed (`SU…`, as `nk -gen user` or `icsctl dev nkeys` writes it) is
    /// the content of `path`, surrounding whitespace ignored.
    pub fn nkey_seed_file(path: &Path) -> Result<Self, BusError> {
        let invalid = |reason: String| BusError::Credentials {
            source_name: path.display().to_string(),
            reason,
        };
        let text = std::fs::read_to_string(path).map_err(|e| invalid(e.to_string()))?;
        warn_if_readable_by_others(path);
        Self::nkey_seed(text.trim(), &path.display().to_string())
    }

    /// The user nkey of `seed`; `source` names where it came from in errors.
    pub fn nkey_seed(seed: &str, source: &str) -> Result<Self, BusError> {
        let invalid = |reason: &str| BusError::Credentials {
            source_name: source.to_string(),
            reason: reason.to_string(),
        };
        let pair =
            nkeys::KeyPair::from_seed(seed).map_err(|_| invalid("not an nkey seed (SU…)"))?;
        if pair.key_pair_type() != nkeys::KeyPairType::User {
            return Err(invalid("not a user nkey seed (SU…)"));
        }
        Ok(Credentials {
            nkey: Some(Nkey {
                seed: seed.to_string(),
                public_key: pair.public_key(),
                source: source.to_string(),
            }),
            inbox_prefix: None,
        })
    }

    /// The same, taking replies on subjects under `prefix` (one or more tokens, no
    /// wildcards) rather than `_INBOX`: what the user's subscribe permission allows.
    pub fn with_inbox_prefix(mut self, prefix: &str) -> Result<Self, BusError> {
        let valid = !prefix.is_empty()
            && prefix
                .split('.')
                .all(|token| !token.is_empty() && token.bytes().all(|b| b.is_ascii_graphic()))
            && !prefix.contains(['*', '>']);
        if !valid {
            return Err(BusError::Credentials {
                source_name: "the inbox prefix".to_string(),
                reason: format!("{prefix:?} is not a subject without wildcards"),
            });
        }
        self.inbox_prefix = Some(prefix.to_string());
        Ok(self)
    }

    /// The nkey's public key (`U…`), the name the server knows the user by.
    pub fn public_key(&self) -> Option<&str> {
        self.nkey.as_ref().map(|n| n.public_key.as_str())
    }

    /// The prefix replies come back on.
    pub fn inbox_prefix(&self) -> &str {
        self.inbox_prefix.as_deref().unwrap_or(DEFAULT_INBOX_PREFIX)
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("nkey", &self.nkey.as_ref().map(|n| &n.public_key))
            .field("seed_from", &self.nkey.as_ref().map(|n| &n.source))
            .field("inbox_prefix", &self.inbox_prefix())
            .finish()
    }
}

/// A seed anyone else on the machine can read is logged (not refused: the operator may
/// have reasons, e.g. a group of service accounts).
fn warn_if_readable_by_others(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if let Ok(meta) = std::fs::metadata(path)
            && meta.permissions().mode() & 0o077 != 0
        {
            tracing::warn!(
                file = %path.display(),
                mode = format_args!("{:o}", meta.permissions().mode() & 0o777),
                "the NATS nkey seed file is readable by other users; chmod 600 it"
            );
        }
    }
}

/// Where a service's seed comes from, for its configuration: `Credentials` from an optional
/// seed file and the inbox prefix.
pub fn credentials(
    nkey_seed_file: Option<&Path>,
    inbox_prefix: &str,
) -> Result<Credentials, BusError> {
    let credentials = match nkey_seed_file {
        Some(path) => Credentials::nkey_seed_file(path)?,
        None => Credentials::default(),
    };
    credentials.with_inbox_prefix(inbox_prefix)
}

/// Connects to NATS at `url` (comma-separated for several servers) as `name` (shown by the
/// server's `/connz`), with no credentials beyond what the URL carries: [`connect_with`].
pub async fn connect(url: &str, name: &str) -> Result<async_nats::Client, BusError> {
    connect_with(url, name, &Credentials::default()).await
}

/// Connects to NATS at `url` (comma-separated for several servers) as `name` (shown by the
/// server's `/connz`), proving itself with `credentials`' nkey, else with the URL's
/// `user:password` if it has one.
///
/// Returns at once even when no server is up: the client keeps trying in the background
/// (`retry_on_initial_connect`) and reconnects forever after a disconnect, with
/// [`reconnect_delay`] between attempts. Publishes made while disconnected are buffered by the
/// client or fail with a timeout; either way the relay's cursor does not advance.
pub async fn connect_with(
    url: &str,
    name: &str,
    credentials: &Credentials,
) -> Result<async_nats::Client, BusError> {
    let connection = name.to_string();
    let shown = redacted(url);
    let address: async_nats::ServerAddr = url.parse().map_err(|source| BusError::Connect {
        url: shown.clone(),
        source: async_nats::ConnectError::with_source(
            async_nats::ConnectErrorKind::ServerParse,
            source,
        ),
    })?;
    tracing::info!(
        %connection,
        url = %shown,
        nkey = credentials.public_key().unwrap_or("none"),
        inbox_prefix = credentials.inbox_prefix(),
        "connecting to NATS"
    );
    let mut options = async_nats::ConnectOptions::new();
    if let Some(nkey) = &credentials.nkey {
        options = options.nkey(nkey.seed.clone());
    } else if let (Some(user), Some(password)) = (address.username(), address.password()) {
        // `nats://user:password@host:port`: kept for deployments that still use passwords.
        options = options.user_and_password(user.to_string(), password.to_string());
    }
    options
        .name(name)
        .custom_inbox_prefix(credentials.inbox_prefix())
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
