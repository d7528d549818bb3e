//! Configuration: built-in defaults, then a TOML file, then `OVERSIGHTD_*` environment
//! variables, then command-line flags — each layer overriding the one before.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use domain::SystemId;
use figment::Figment;
use figment::providers::{Env, Format, Serialized, Toml};
use serde::{Deserialize, Serialize};

/// oversightd: the regulator's view of every integrated care system.
#[derive(Clone, Debug, Default, Parser, Serialize)]
#[command(version, about)]
pub struct Flags {
    /// TOML configuration file (its keys are the long flag names with `_`).
    #[arg(long, env = "OVERSIGHTD_CONFIG")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
    /// Address the gRPC server listens on.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<SocketAddr>,
    /// Directory of oversightd's own sled (created if missing).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_dir: Option<PathBuf>,
    /// NATS server URL (the user: `nats_nkey_seed_file`).
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub nats_url: Option<String>,
    /// A system's ledgerd, `<system>=<gRPC URL>` (e.g. `kav=http://10.0.0.1:50051`); repeat
    /// for each system. Flags replace the file's and environment's whole map.
    #[arg(long = "ledgerd", value_parser = parse_ledgerd)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ledgerds: Option<Vec<(String, String)>>,
    /// Durable JetStream consumer name; give each replica its own.
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<String>,
}

fn parse_ledgerd(text: &str) -> Result<(String, String), String> {
    let (system, url) = text
        .split_once('=')
        .ok_or_else(|| format!("'{text}' is not <system>=<url>"))?;
    SystemId::new(system).map_err(|e| format!("'{system}': {e}"))?;
    Ok((system.to_string(), url.to_string()))
}

/// The resolved configuration.
#[derive(Clone, Debug, Deserialize, Serialize)]
pub struct Config {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub nats_url: String,
    /// The file holding oversightd's NATS user nkey seed (`SU…`; `icsctl dev nkeys` makes one):
    /// oversightd proves itself with it, and the server, which holds only its public key, grants
    /// what `deploy/nats/permissions.conf` gives the oversightd user. Unset: the URL's
    /// `user:password`, if any.
    pub nats_nkey_seed_file: Option<PathBuf>,
    /// The subject prefix oversightd takes NATS replies (and pulled messages) on; its user may
    /// subscribe under it alone, so no other user reads what it pulls
    /// (`_INBOX_oversightd.>` in permissions.conf).
    pub nats_inbox_prefix: String,
    /// Each system's ledgerd gRPC URL, by system id.
    pub ledgerds: BTreeMap<String, String>,
    pub consumer: String,
    /// The JetStream stream the relays publish to.
    pub stream_name: String,
    /// The subjects followed.
    pub filter_subject: String,
    /// Messages per pull.
    pub fetch_max: usize,
    /// Checkpoint after this many new events…
    pub checkpoint_events: u64,
    /// …or this many milliseconds after the first unsaved one.
    pub checkpoint_interval_ms: u64,
    /// How long before a message whose gap could not be filled is offered again.
    pub retry_delay_ms: u64,
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
    /// PEM CA certificate to trust for every ledgerd: oversightd reaches them over TLS.
    pub ledgerd_ca: Option<PathBuf>,
    /// Per system, a file holding the bearer token oversightd shows that system's ledgerd
    /// (tokens are signed by each ICS's own key), for ledgerds with authentication on.
    pub ledgerd_token_files: BTreeMap<String, PathBuf>,
    /// Per system, the ledger's checkpoint public key (SPKI PEM, from `icsctl keys generate`):
    /// a checkpoint received for the system is kept (the regulator's copy) only if its
    /// signature verifies under it. A system without one has no checkpoint kept.
    pub checkpoint_keys: BTreeMap<String, PathBuf>,
    /// The regulator's Ed25519 public key (SPKI PEM): when set, every RPC needs a bearer
    /// token it signed for `auth_system`, with a role that may read oversight (regulator,
    /// auditor).
    pub auth_public_key: Option<PathBuf>,
    /// The `sys` claim oversightd's tokens carry (its own, not an ICS's).
    pub auth_system: String,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 50071)),
            data_dir: PathBuf::from(".local/oversightd"),
            nats_url: "nats://127.0.0.1:4222".to_string(),
            nats_nkey_seed_file: None,
            nats_inbox_prefix: "_INBOX_oversightd".to_string(),
            ledgerds: BTreeMap::new(),
            consumer: "oversightd".to_string(),
            stream_name: "ICS".to_string(),
            filter_subject: follow::fleet::ALL_SYSTEMS.to_string(),
            fetch_max: 512,
            checkpoint_events: 10_000,
            checkpoint_interval_ms: 200,
            retry_delay_ms: 1_000,
            limits: serving::Limits::default(),
            tls_cert: None,
            tls_key: None,
            tls_client_ca: None,
            ledgerd_ca: None,
            ledgerd_token_files: BTreeMap::new(),
            checkpoint_keys: BTreeMap::new(),
            auth_public_key: None,
            auth_system: "national".to_string(),
        }
    }
}

impl Config {
    /// Who oversightd is on NATS: its nkey (read from `nats_nkey_seed_file`) and inbox prefix.
    pub fn nats_credentials(&self) -> anyhow::Result<bus::Credentials> {
        Ok(bus::credentials(
            self.nats_nkey_seed_file.as_deref(),
            &self.nats_inbox_prefix,
        )?)
    }

    /// Defaults ← file ← environment ← flags.
    pub fn load(flags: &Flags) -> Result<Config, Box<figment::Error>> {
        let mut figment = Figment::from(Serialized::defaults(Config::default()));
        if let Some(path) = &flags.config {
            figment = figment.merge(Toml::file_exact(path));
        }
        // The ledgerd list is not a layer figment can merge (it would join the maps): flags
        // replace the map from the file and the environment.
        let without_list = Flags {
            ledgerds: None,
            ..flags.clone()
        };
        let mut config: Config = figment
            .merge(Env::prefixed("OVERSIGHTD_").ignore(&["config"]))
            .merge(Serialized::defaults(without_list))
            .extract()
            .map_err(Box::new)?;
        if let Some(list) = &flags.ledgerds {
            config.ledgerds = list.iter().cloned().collect();
        }
        Ok(config)
    }

    pub fn checkpoint_interval(&self) -> Duration {
        Duration::from_millis(self.checkpoint_interval_ms)
    }

    pub fn retry_delay(&self) -> Duration {
        Duration::from_millis(self.retry_delay_ms)
    }

    /// The ledgerd map with its keys checked as system ids.
    /// The server's TLS settings, read from the configured files; `None` for plaintext.
    pub fn server_tls(&self) -> anyhow::Result<Option<tonic::transport::ServerTlsConfig>> {
        Ok(auth::files::server_tls(
            self.tls_cert.as_deref(),
            self.tls_key.as_deref(),
            self.tls_client_ca.as_deref(),
        )?)
    }

    /// The token verifier, if `auth_public_key` is set.
    pub fn verifier(&self) -> anyhow::Result<Option<auth::Verifier>> {
        let system = SystemId::new(self.auth_system.clone())
            .map_err(|e| anyhow::anyhow!("auth_system '{}': {e}", self.auth_system))?;
        Ok(auth::files::verifier(
            self.auth_public_key.as_deref(),
            system,
        )?)
    }

    /// TLS and token for each configured ledgerd.
    pub fn ledgerd_access(&self) -> anyhow::Result<BTreeMap<SystemId, follow::ledgerd::Access>> {
        let mut access = BTreeMap::new();
        for system in self.ledgerds.keys() {
            let id = SystemId::new(system.clone())
                .map_err(|e| anyhow::anyhow!("ledgerds: '{system}': {e}"))?;
            let token = self
                .ledgerd_token_files
                .get(system)
                .map(|path| {
                    std::fs::read_to_string(path)
                        .map(|t| t.trim().to_string())
                        .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))
                })
                .transpose()?;
            access.insert(
                id,
                follow::ledgerd::Access {
                    ca: self.ledgerd_ca.clone(),
                    tls_name: None,
                    token,
                },
            );
        }
        Ok(access)
    }

    /// Each system's checkpoint public key, read from its file.
    pub fn checkpoint_keys(
        &self,
    ) -> anyhow::Result<BTreeMap<SystemId, audit::checkpoint::LedgerKey>> {
        self.checkpoint_keys
            .iter()
            .map(|(system, path)| {
                let id = SystemId::new(system.clone())
                    .map_err(|e| anyhow::anyhow!("checkpoint_keys: '{system}': {e}"))?;
                let pem = std::fs::read_to_string(path)
                    .map_err(|e| anyhow::anyhow!("reading {}: {e}", path.display()))?;
                let key = audit::checkpoint::verifying_key_from_pem(&pem)
                    .map_err(|e| anyhow::anyhow!("checkpoint_keys: {}: {e}", path.display()))?;
                Ok((id, key))
            })
            .collect()
    }

    pub fn ledgerd_map(&self) -> anyhow::Result<BTreeMap<SystemId, String>> {
        self.ledgerds
            .iter()
            .map(|(system, url)| {
                let id = SystemId::new(system.clone())
                    .map_err(|e| anyhow::anyhow!("ledgerds: '{system}': {e}"))?;
                Ok((id, url.clone()))
            })
            .collect()
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
                "oversightd.toml",
                "consumer = \"replica-2\"\nfetch_max = 64\n\n[ledgerds]\nkav = \"http://file:50051\"\nwes = \"http://file:50052\"\n",
            )?;
            jail.set_env("OVERSIGHTD_CONSUMER", "from-env");
            jail.set_env("OVERSIGHTD_LEDGERDS", "{nor=\"http://env:50053\"}");
            let flags = Flags {
                config: Some("oversightd.toml".into()),
                nats_url: Some("nats://oversightd:secret@10.0.0.1:4222".into()),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(config.consumer, "from-env");
            assert_eq!(config.fetch_max, 64);
            assert_eq!(config.nats_url, "nats://oversightd:secret@10.0.0.1:4222");
            assert_eq!(config.checkpoint_events, 10_000);
            assert_eq!(config.filter_subject, "ics.*.>");
            let systems: Vec<&str> = config.ledgerds.keys().map(String::as_str).collect();
            assert_eq!(systems, ["kav", "nor", "wes"], "env joins the file's map");

            let flags = Flags {
                config: Some("oversightd.toml".into()),
                ledgerds: Some(vec![("kav".into(), "http://flag:1".into())]),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(
                config.ledgerds,
                BTreeMap::from([("kav".to_string(), "http://flag:1".to_string())]),
                "flags replace the map"
            );
            Ok(())
        });
    }

    #[test]
    #[allow(clippy::result_large_err)]
    fn the_shipped_example_loads() {
        figment::Jail::expect_with(|_| {
            let flags = Flags {
                config: Some(
                    concat!(
                        env!("CARGO_MANIFEST_DIR"),
                        "/../../deploy/oversightd/oversightd.toml"
                    )
                    .into(),
                ),
                ..Flags::default()
            };
            let config = Config::load(&flags).map_err(|e| *e)?;
            assert_eq!(config.filter_subject, "ics.*.>");
            // No password in the URL: the oversightd user's nkey and its own inbox.
            assert_eq!(config.nats_url, "nats://127.0.0.1:4222");
            assert!(config.nats_nkey_seed_file.is_some());
            assert_eq!(config.nats_inbox_prefix, "_INBOX_oversightd");
            let map = config.ledgerd_map().map_err(|e| e.to_string())?;
            assert_eq!(map.len(), 1);
            Ok(())
        });
    }

    #[test]
    fn a_ledgerd_flag_is_system_equals_url() {
        assert_eq!(
            parse_ledgerd("kav=http://h:1"),
            Ok(("kav".to_string(), "http://h:1".to_string()))
        );
        assert!(parse_ledgerd("kav").is_err());
        assert!(parse_ledgerd("KAV=http://h:1").is_err());
        let flags = Flags::try_parse_from([
            "oversightd",
            "--ledgerd",
            "kav=http://a:1",
            "--ledgerd",
            "wes=http://b:2",
        ])
        .expect("parses");
        assert_eq!(flags.ledgerds.map(|l| l.len()), Some(2));
    }
}
