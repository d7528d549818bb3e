//! Configuration: built-in defaults, then a TOML file, then `LEDGERD_*` environment variables,
//! then command-line flags — each layer overriding the one before.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// ledgerd: the write side of one integrated care system's ledger.
#[derive(Clone, Debug, Default, Parser, Serialize)]
#[command(version, about)]
pub struct Flags {
    /// TOML configuration file (its keys are the long flag names with `_`).
    #[arg(long, env = "LEDGERD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address the gRPC server listens on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory of the sled event store (created if missing).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The ICS this ledger records (lowercase letters, digits, '-'); one token of NATS subjects.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// NATS server URL; events are relayed to JetStream when set.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// Turn the NATS relay off even if a URL is configured.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_relay: bool,
}

/// The resolved configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub system: String,
    pub nats_url: Option<String>,
    /// The file holding ledgerd's NATS user nkey seed (`SU…`; `icsctl dev nkeys` makes one):
    /// ledgerd proves itself with it, and the server, which holds only its public key, grants
    /// what `deploy/nats/permissions.conf` gives the ledgerd user. Unset: the URL's
    /// `user:password`, if any.
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// The subject prefix ledgerd takes NATS replies on; its user may subscribe under it
    /// alone, so no other user reads its replies (`_INBOX_ledgerd.>` in permissions.conf).
    pub nats_inbox_prefix: String,
    pub no_relay: bool,
    /// JetStream stream capturing `ics.>`.
    pub stream_name: String,
    /// JetStream's de-duplication window for `Nats-Msg-Id`, in seconds.
    pub duplicate_window_s: u64,
    /// Events the relay reads from the store and publishes before awaiting acknowledgements.
    pub relay_window_events: usize,
    /// The relay publishes a read of this many events or more as JetStream atomic batches
    /// (one fsync each in nats-server), fewer one by one.
    pub relay_batch_from: usize,
    /// The gRPC limits (`grpc_message_bytes_max`, `grpc_connections_max`, … — see
    /// [`serving::Limits`]; over any: RESOURCE_EXHAUSTED), keys at the top level.
    #[serde(flatten)]
    pub limits: serving::Limits,
    /// Most commands accepted in one bulk submission (more: RESOURCE_EXHAUSTED).
    pub bulk_commands_max: u64,
    /// `ReadAll` calls with `follow` open at once (more: RESOURCE_EXHAUSTED). Each holds a
    /// reader and up to a page of events however slowly its client reads.
    pub follow_streams_max: usize,
    /// …of which one principal (one client address with authentication off) may hold.
    pub follow_streams_per_principal_max: usize,
    /// Most events one command may produce or one group commit may hold.
    pub batch_events_max: usize,
    /// Page size of ReadAll/ReadStream reads from the store.
    pub read_page_events: usize,
    /// sled's page cache, in MiB. A log bigger than the cache is read from disk again on
    /// every whole read (a positiond rebuild, an audit): 4× slower than from the cache.
    pub store_cache_mib: u64,
    /// PEM certificate chain of the gRPC server; with `tls_key`, the server speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): when set, clients must present a certificate it signed (mTLS).
    pub tls_client_ca: Option<PathBuf>,
    /// The ICS's Ed25519 public key (SPKI PEM, from `icsctl keys generate`): when set, every
    /// RPC needs a bearer token it signed, and roles decide what each caller may post and
    /// read. Unset: authentication is off and the actor is whatever `x-ics-actor` says.
    pub auth_public_key: Option<PathBuf>,
    /// The ledger's Ed25519 checkpoint signing key (PKCS#8 PEM, from `icsctl keys generate
    /// --name ledger-checkpoint`): when set, ledgerd signs checkpoints of its log, stores them
    /// and publishes them on `ics.<system>.audit.checkpoint`. Its public half is what
    /// auditors and the regulator are given. Unset: no checkpoints (proofs are still served).
    pub checkpoint_key: Option<PathBuf>,
    /// Sign a checkpoint after this many events since the last one…
    pub checkpoint_every_events: u64,
    /// …or this many seconds after the first event not yet covered (and on shutdown).
    pub checkpoint_every_s: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50051)),
            data_dir: PathBuf::from(".local/ledgerd"),
            system: "kav".to_string(),
            nats_url: None,
            nats_nkey_seed_file: None,
            nats_inbox_prefix: "_INBOX_ledgerd".to_string(),
            no_relay: false,
            stream_name: "ICS".to_string(),
            duplicate_window_s: 120,
            relay_window_events: 512,
            relay_batch_from: 16,
            limits: serving::Limits::default(),
            bulk_commands_max: 1_000_000,
            follow_streams_max: 64,
            follow_streams_per_principal_max: 8,
            batch_events_max: 4_096,
            read_page_events: 1_024,
            store_cache_mib: store::config::CACHE_CAPACITY_BYTES_DEFAULT >> 20,
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            auth_public_key: None,
            checkpoint_key: None,
            checkpoint_every_events: 10_000,
            checkpoint_every_s: 60,
        }
    }
}

impl Config {
    /// Defaults ← file ← environment ← flags.
    pub fn load(flags: &Flags) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &flags.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("LEDGERD_"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)
    }

    /// The server's TLS settings, read from the configured files; `None` for plaintext.
    pub fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        Ok(auth::files::server_tls(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )?)
    }

    /// The token verifier for this system, if `auth_public_key` is set.
    pub fn verifier(&self) -> anyhow::Result<Option<auth::Verifier>> {
        let system = domain::SystemId::new(self.system.clone())
            .map_err(|e| anyhow::anyhow!("system '{}': {e}", self.system))?;
        Ok(auth::files::verifier(
            self.auth_public_key.as_deref(),
            system,
        )?)
    }

    /// The checkpoint signing key, if `checkpoint_key` is set.
    pub fn checkpoint_signing_key(&self) -> anyhow::Result<Option<ed25519_dalek::SigningKey>> {
        use anyhow::Context;
        let Some(path) = &self.checkpoint_key else {
            return Ok(None);
        };
        let pem = std::fs::read_to_string(path)
            .with_context(|| format!("reading checkpoint_key {}", path.display()))?;
        let key = audit::checkpoint::signing_key_from_pem(&pem)
            .with_context(|| format!("checkpoint_key {}", path.display()))?;
        Ok(Some(key))
    }

    /// Who ledgerd is on NATS: its nkey (read from `nats_nkey_seed_file`) and inbox prefix.
    pub fn nats_credentials(&self) -> anyhow::Result<bus::Credentials> {
        Ok(bus::credentials(
            self.nats_nkey_seed_file.as_deref(),
            &self.nats_inbox_prefix,
        )?)
    }

    pub fn duplicate_window(&self) -> Duration {
        Duration::from_secs(self.duplicate_window_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    #[allow(clippy::result_large_err)] // figment's Jail API returns its own large error
    fn layers_override_in_order() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ledgerd.toml",
                "system = \"from-file\"\nlisten = \"127.0.0.1:7000\"\nrelay_window_events = 64\n",
            )?;
            jail.set_env("LEDGERD_SYSTEM", "from-env");
            let flags = Flags {
                config: Some("ledgerd.toml".into()),
                data_dir: Some("/tmp/x".into()),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(config.system, "from-env");
            assert_eq!(config.listen, SocketAddr::from(([127, 0, 0, 1], 7000)));
            assert_eq!(config.relay_window_events, 64);
            assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
            assert_eq!(config.duplicate_window_s, 120);
            assert_eq!(config.limits, serving::Limits::default());
            assert_eq!(config.store_cache_mib, 1024);
            jail.set_env("LEDGERD_STORE_CACHE_MIB", "64");
            assert_eq!(Config::load(&flags).map_err(|e| *e)?.store_cache_mib, 64);
            let flags = Flags {
                system: Some("from-flag".into()),
                ..flags
            };
            assert_eq!(Config::load(&flags).map_err(|e| *e)?.system, "from-flag");
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn limits_are_top_level_keys_in_every_layer() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "ledgerd.toml",
                "grpc_request_deadline_ms = 5000\ngrpc_message_bytes_max = 1024\n",
            )?;
            jail.set_env("LEDGERD_GRPC_STREAMS_PER_CONNECTION_MAX", "8");
            jail.set_env("LEDGERD_GRPC_CONNECTIONS_PER_PEER_MAX", "3");
            let flags = Flags {
                config: Some("ledgerd.toml".into()),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(
                config.limits,
                serving::Limits {
                    grpc_message_bytes_max: 1024,
                    grpc_streams_per_connection_max: 8,
                    grpc_connections_per_peer_max: 3,
                    grpc_request_deadline_ms: 5000,
                    ..serving::Limits::default()
                }
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_shipped_example_file_loads() {
        // Inside a jail too: the jail's lock keeps the other test's
        // LEDGERD_SYSTEM out of this process's environment meanwhile.
        figment::Jail::expect_with(|_jail| {
            let path =
                PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../deploy/ledgerd/ledgerd.toml");
            let flags = Flags {
                config: Some(path),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(config.system, "kav");
            assert_eq!(config.nats_url.as_deref(), Some("nats://127.0.0.1:4222"));
            assert!(config.nats_nkey_seed_file.is_some());
            assert_eq!(config.nats_inbox_prefix, "_INBOX_ledgerd");
            assert_eq!(config.limits, serving::Limits::default());
            Ok(())
        });
    }
}
