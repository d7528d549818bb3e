//! Configuration: built-in defaults, then a TOML file, then `POSITIOND_*` environment
//! variables, then command-line flags — each layer overriding the one before.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// positiond: the collective financial position of one integrated care system.
#[derive(Clone, Debug, Default, Parser, Serialize)]
#[command(version, about)]
pub struct Flags {
    /// TOML configuration file (its keys are the long flag names with `_`).
    #[arg(long, env = "POSITIOND_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address the gRPC server listens on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory of positiond's own sled (created if missing).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// The ICS whose events it folds (`ics.<system>.>`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub system: Option<String>,
    /// NATS server URL.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// ledgerd's gRPC URL, for catching up and filling gaps (`http://host:port`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledgerd_url: Option<String>,
    /// Durable JetStream consumer name; give each replica its own.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

/// The resolved configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub system: String,
    pub nats_url: String,
    /// The file holding positiond's NATS user nkey seed (`SU…`; `icsctl dev nkeys` makes one):
    /// positiond proves itself with it, and the server, which holds only its public key, grants
    /// what `deploy/nats/permissions.conf` gives the positiond user. Unset: the URL's
    /// `user:password`, if any.
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// The subject prefix positiond takes NATS replies (and pulled messages) on; its user may
    /// subscribe under it alone, so no other user reads what it pulls
    /// (`_INBOX_positiond.>` in permissions.conf).
    pub nats_inbox_prefix: String,
    pub ledgerd_url: String,
    pub consumer: String,
    /// The JetStream stream the relay publishes to.
    pub stream_name: String,
    /// Messages per pull.
    pub fetch_max: usize,
    /// Checkpoint after this many new events…
    pub checkpoint_events: u64,
    /// …or this many milliseconds after the first unsaved one.
    pub checkpoint_interval_ms: u64,
    /// The gRPC limits (`grpc_message_bytes_max`, `grpc_connections_max`, … — see
    /// [`serving::Limits`]; over any: RESOURCE_EXHAUSTED), keys at the top level.
    #[serde(flatten)]
    pub limits: serving::Limits,
    /// PEM certificate chain of the gRPC server; with `tls_key`, the server speaks TLS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of `tls_cert`.
    pub tls_key: Option<PathBuf>,
    /// PEM CA certificate(s): when set, clients must present a certificate it signed (mTLS).
    pub tls_client_ca: Option<PathBuf>,
    /// PEM CA certificate to trust for ledgerd: positiond reaches it over TLS.
    pub ledgerd_ca: Option<PathBuf>,
    /// The name in ledgerd's certificate (default: the URL's host; `localhost` for an IP).
    pub ledgerd_tls_name: Option<String>,
    /// A file holding the bearer token positiond shows ledgerd (one that may read the log,
    /// e.g. `icsctl token issue --role auditor --subject positiond`), for a ledgerd with
    /// authentication on.
    pub ledgerd_token_file: Option<PathBuf>,
    /// The ICS's Ed25519 public key (SPKI PEM): when set, every RPC needs a bearer token it
    /// signed, and a member's finance team sees only its own member and contracts.
    pub auth_public_key: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50061)),
            data_dir: PathBuf::from(".local/positiond"),
            system: "kav".to_string(),
            nats_url: "nats://127.0.0.1:4222".to_string(),
            nats_nkey_seed_file: None,
            nats_inbox_prefix: "_INBOX_positiond".to_string(),
            ledgerd_url: "http://127.0.0.1:50051".to_string(),
            consumer: "positiond".to_string(),
            stream_name: "ICS".to_string(),
            fetch_max: 512,
            checkpoint_events: 10_000,
            checkpoint_interval_ms: 200,
            limits: serving::Limits::default(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            ledgerd_ca: None,
            ledgerd_tls_name: None,
            ledgerd_token_file: None,
            auth_public_key: None,
        }
    }
}

impl Config {
    /// Who positiond is on NATS: its nkey (read from `nats_nkey_seed_file`) and inbox prefix.
    pub fn nats_credentials(&self) -> anyhow::Result<bus::Credentials> {
        Ok(bus::credentials(
            self.nats_nkey_seed_file.as_deref(),
            &self.nats_inbox_prefix,
        )?)
    }

    /// How positiond reaches ledgerd: TLS and token, read from the configured files.
    pub fn ledgerd_access(&self) -> anyhow::Result<follow::ledgerd::Access> {
        use anyhow::Context;
        let token = self
            .ledgerd_token_file
            .as_ref()
            .map(|path| {
                std::fs::read_to_string(path)
                    .with_context(|| format!("reading ledgerd_token_file {}", path.display()))
                    .map(|t| t.trim().to_string())
            })
            .transpose()?;
        Ok(follow::ledgerd::Access {
            ca: self.ledgerd_ca.clone(),
            tls_name: self.ledgerd_tls_name.clone(),
            token,
        })
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

    /// Defaults ← file ← environment ← flags.
    pub fn load(flags: &Flags) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &flags.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        figment
            .merge(Env::prefixed("POSITIOND_"))
            .merge(Serialized::defaults(flags))
            .extract()
            .map_err(Box::new)
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint_interval_ms)
    }

    /// The server's TLS settings, read from the configured files; `None` for plaintext.
    pub fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        Ok(auth::files::server_tls(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )?)
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
                "positiond.toml",
                "system = \"from-file\"\nconsumer = \"replica-2\"\nfetch_max = 64\n",
            )?;
            jail.set_env("POSITIOND_SYSTEM", "from-env");
            let flags = Flags {
                config: Some("positiond.toml".into()),
                ledgerd_url: Some("http://10.0.0.1:50051".into()),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(config.system, "from-env");
            assert_eq!(config.consumer, "replica-2");
            assert_eq!(config.fetch_max, 64);
            assert_eq!(config.ledgerd_url, "http://10.0.0.1:50051");
            assert_eq!(config.checkpoint_events, 10_000);
            assert_eq!(config.tls_cert, None);
            assert!(config.server_tls().map_err(|e| e.to_string())?.is_none());
            Ok(())
        });
    }

    #[test]
    fn tls_needs_a_certificate_and_its_key() {
        let half = Config {
            tls_cert: Some("server.pem".into()),
            ..Config::default()
        };
        let error = half.server_tls().expect_err("no key");
        assert!(
            error.to_string().contains("both tls_cert and tls_key"),
            "{error}"
        );
        let missing = Config {
            tls_cert: Some("/nonexistent/server.pem".into()),
            tls_key: Some("/nonexistent/server-key.pem".into()),
            ..Config::default()
        };
        let error = missing.server_tls().expect_err("no files");
        assert!(
            error.to_string().contains("/nonexistent/server.pem"),
            "{error}"
        );
    }
}
