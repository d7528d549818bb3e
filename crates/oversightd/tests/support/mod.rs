//! Real parts for oversightd's tests: ledgerds in-process on real sled behind real gRPC, a
//! real nats-server, oversightd in-process on its own sled, read over real gRPC on loopback.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use api::oversight_pb as opb;
use api::oversight_pb::oversight_service_client::OversightServiceClient;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use prost::Message;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;

pub struct Ledgerd {
    pub system: String,
    pub url: String,
    ledgerd: ledgerd::server::Spawned,
    _dir: tempfile::TempDir,
}

/// The systems these tests use: each has a ledger checkpoint key ([`ledger_key`]) that its
/// ledgerd signs with and oversightd checks its checkpoints and relayed events under.
pub const SYSTEMS: [&str; 3] = ["kav", "wes", "nor"];

/// `system`'s ledger checkpoint key in these tests, derived from its name.
pub fn ledger_key(system: &str) -> ed25519_dalek::SigningKey {
    use sha2::Digest;
    ed25519_dalek::SigningKey::from_bytes(&sha2::Sha256::digest(system.as_bytes()).into())
}

/// The PEM files of `system`'s [`ledger_key`], private and public, written once per test
/// process.
pub fn ledger_key_files(system: &str) -> anyhow::Result<(PathBuf, PathBuf)> {
    use ed25519_dalek::pkcs8::{EncodePrivateKey, EncodePublicKey};
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let dir = DIR.get_or_init(|| tempfile::tempdir().expect("a temp dir for keys"));
    let (private, public) = (
        dir.path().join(format!("{system}.pem")),
        dir.path().join(format!("{system}.pub.pem")),
    );
    if !public.exists() {
        let key = ledger_key(system);
        let private_pem = key
            .to_pkcs8_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        let public_pem = key
            .verifying_key()
            .to_public_key_pem(Default::default())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        std::fs::write(&private, private_pem.as_bytes())?;
        std::fs::write(&public, public_pem)?;
    }
    Ok((private, public))
}

/// A ledgerd for `system`, signing with its [`ledger_key`]; it relays to NATS when given a URL.
pub async fn start_ledgerd(system: &str, nats_url: Option<String>) -> anyhow::Result<Ledgerd> {
    start_ledgerd_as(system, nats_url, None).await
}

/// [`start_ledgerd`], connecting to NATS as `user` (its nkey and inbox prefix) if given.
pub async fn start_ledgerd_as(
    system: &str,
    nats_url: Option<String>,
    user: Option<&testkit::NkeyUser>,
) -> anyhow::Result<Ledgerd> {
    let dir = tempfile::tempdir()?;
    let (private, _) = ledger_key_files(system)?;
    let defaults = ledgerd::config::Config::default();
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        system: system.to_string(),
        nats_url,
        checkpoint_key: Some(private),
        nats_nkey_seed_file: user.map(|u| u.seed_file.clone()),
        nats_inbox_prefix: user.map_or(defaults.nats_inbox_prefix.clone(), |u| {
            u.inbox_prefix.clone()
        }),
        ..defaults
    })
    .await?;
    Ok(Ledgerd {
        system: system.to_string(),
        url: ledgerd.url(),
        ledgerd,
        _dir: dir,
    })
}

impl Ledgerd {
    pub async fn client(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        for _ in 0..200 {
            if let Ok(client) = LedgerServiceClient::connect(self.url.clone()).await {
                return Ok(client);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("ledgerd {} did not come up", self.system)
    }

    pub async fn head(&self) -> anyhow::Result<pb::HeadReply> {
        Ok(self
            .client()
            .await?
            .head(pb::HeadRequest::default())
            .await?
            .into_inner())
    }

    /// Posts a scenario (icsctl's syntax, one command a line) in one bulk call; the last
    /// sequence recorded.
    pub async fn load(&self, name: &str, text: &str) -> anyhow::Result<u64> {
        let commands: Vec<pb::Command> = icsctl::load::parse_scenario(name, text)?
            .into_iter()
            .map(|(_, command)| command)
            .collect();
        let reply = self
            .client()
            .await?
            .submit_bulk(futures::stream::iter(commands))
            .await?
            .into_inner();
        Ok(reply.last_sequence)
    }

    /// Events `from..=to` as ledgerd holds them.
    pub async fn read(&self, from: u64, to: u64) -> anyhow::Result<Vec<pb::RecordedEvent>> {
        let mut stream = self
            .client()
            .await?
            .read_all(pb::ReadAllRequest {
                from_sequence: from,
                limit: to + 1 - from,
                follow: false,
            })
            .await?
            .into_inner();
        let mut events = Vec::new();
        while let Some(event) = stream.message().await? {
            events.push(event);
        }
        Ok(events)
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.ledgerd.stop().await
    }
}

/// Publishes ledgerd's events to JetStream as its relay would (subject, headers, payload, and
/// the ledger's signature — here on every event).
pub async fn publish(
    js: &async_nats::jetstream::Context,
    system: &str,
    events: &[pb::RecordedEvent],
) -> anyhow::Result<()> {
    let publisher = bus::Publisher::new(js.clone());
    for recorded in events {
        let outbound = bus::OutboundEvent {
            subject: format!("ics.{system}.{}", recorded.event_type),
            event_id: recorded.event_id.clone(),
            sequence: recorded.sequence,
            stream: recorded.stream.clone(),
            version: recorded.version,
            hash: recorded
                .hash
                .clone()
                .try_into()
                .map_err(|_| anyhow::anyhow!("a hash of 32 bytes"))?,
            event_type: recorded.event_type.clone(),
            payload: recorded.encode_to_vec().into(),
            signature: None,
        };
        let system_id = domain::SystemId::new(system).map_err(|e| anyhow::anyhow!("{e}"))?;
        let signature = audit::relay::sign(
            &ledger_key(system),
            &system_id,
            outbound.sequence,
            &outbound.hash,
        );
        let outbound = bus::OutboundEvent {
            signature: Some(signature),
            ..outbound
        };
        publisher.publish(&outbound).await?.await?;
    }
    Ok(())
}

pub struct Oversightd {
    pub url: String,
    pub stop: CancellationToken,
    pub task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// oversightd on its own sled in `dir`, following every system on `nats_url`, with a ledgerd
/// for each of `ledgerds`.
pub async fn start_oversightd(
    nats_url: &str,
    ledgerds: &[&Ledgerd],
    dir: &Path,
    consumer: &str,
) -> anyhow::Result<Oversightd> {
    let map = ledgerds
        .iter()
        .map(|l| (l.system.clone(), l.url.clone()))
        .collect();
    start_oversightd_with(nats_url, map, dir, consumer).await
}

/// oversightd with the ledgerd map as given (system → URL).
pub async fn start_oversightd_with(
    nats_url: &str,
    ledgerds: BTreeMap<String, String>,
    dir: &Path,
    consumer: &str,
) -> anyhow::Result<Oversightd> {
    start_oversightd_as(nats_url, None, ledgerds, dir, consumer).await
}

/// [`start_oversightd_with`], connecting to NATS as `user` (its nkey and inbox prefix) if
/// given.
pub async fn start_oversightd_as(
    nats_url: &str,
    user: Option<&testkit::NkeyUser>,
    ledgerds: BTreeMap<String, String>,
    dir: &Path,
    consumer: &str,
) -> anyhow::Result<Oversightd> {
    let defaults = oversightd::config::Config::default();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?;
    let config = oversightd::config::Config {
        listen: address,
        data_dir: dir.to_path_buf(),
        nats_url: nats_url.to_string(),
        nats_nkey_seed_file: user.map(|u| u.seed_file.clone()),
        nats_inbox_prefix: user.map_or(defaults.nats_inbox_prefix.clone(), |u| {
            u.inbox_prefix.clone()
        }),
        ledgerds,
        consumer: consumer.to_string(),
        fetch_max: 64,
        checkpoint_events: 50,
        checkpoint_interval_ms: 50,
        retry_delay_ms: 200,
        checkpoint_keys: SYSTEMS
            .iter()
            .map(|system| Ok((system.to_string(), ledger_key_files(system)?.1)))
            .collect::<anyhow::Result<_>>()?,
        ..defaults
    };
    let stop = CancellationToken::new();
    let task = tokio::spawn(oversightd::server::run(
        config,
        listener,
        stop.clone().cancelled_owned(),
    ));
    Ok(Oversightd {
        url: format!("http://{address}"),
        stop,
        task,
    })
}

impl Oversightd {
    pub async fn client(&self) -> anyhow::Result<OversightServiceClient<Channel>> {
        for _ in 0..200 {
            if let Ok(client) = OversightServiceClient::connect(self.url.clone()).await {
                return Ok(client);
            }
            anyhow::ensure!(!self.task.is_finished(), "oversightd stopped");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        anyhow::bail!("oversightd did not come up")
    }

    pub async fn systems(&self) -> anyhow::Result<Vec<opb::SystemSummary>> {
        Ok(self
            .client()
            .await?
            .list_systems(opb::ListSystemsRequest {})
            .await?
            .into_inner()
            .systems)
    }

    /// The folded sequence of each system.
    pub async fn folded(&self) -> anyhow::Result<BTreeMap<String, u64>> {
        Ok(self
            .systems()
            .await?
            .into_iter()
            .map(|s| (s.system, s.folded.map_or(0, |f| f.sequence)))
            .collect())
    }

    /// Waits until every system in `heads` is folded exactly to its head.
    pub async fn wait_for(&self, heads: &[(&str, u64)]) -> anyhow::Result<()> {
        let want: BTreeMap<String, u64> = heads.iter().map(|(s, h)| (s.to_string(), *h)).collect();
        let mut now = BTreeMap::new();
        for _ in 0..600 {
            now = self.folded().await?;
            if want.iter().all(|(s, h)| now.get(s) == Some(h)) {
                return Ok(());
            }
            anyhow::ensure!(!self.task.is_finished(), "oversightd stopped");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
        anyhow::bail!("not at {want:?} after 15 s: {now:?}")
    }

    pub async fn stop(self) -> anyhow::Result<()> {
        self.stop.cancel();
        self.task.await?
    }
}

pub async fn performance(
    client: &mut OversightServiceClient<Channel>,
    system: &str,
    year: u32,
    quarter: u32,
    baseline_year: u32,
) -> Result<opb::PerformanceReport, tonic::Status> {
    client
        .get_performance(opb::PerformanceRequest {
            system: system.to_string(),
            year,
            quarter,
            baseline_year,
        })
        .await
        .map(tonic::Response::into_inner)
}

pub async fn ranking(
    client: &mut OversightServiceClient<Channel>,
    measure: opb::Measure,
    year: u32,
    quarter: u32,
    baseline_year: u32,
) -> Result<opb::RankingReport, tonic::Status> {
    client
        .get_ranking(opb::RankingRequest {
            year,
            quarter,
            baseline_year,
            measure: measure.into(),
        })
        .await
        .map(tonic::Response::into_inner)
}

/// `(rank, system, value)` of a ranking.
pub fn places(report: &opb::RankingReport) -> Vec<(u32, String, i64)> {
    report
        .ranked
        .iter()
        .map(|r| {
            let value = match r.value {
                Some(opb::ranked::Value::ValuePence(v) | opb::ranked::Value::ValueBp(v)) => v,
                None => i64::MIN,
            };
            (r.rank, r.system.clone(), value)
        })
        .collect()
}

/// Pence in `pounds` whole pounds.
pub const fn pounds(pounds: i64) -> i64 {
    pounds * 100
}

/// `report-metric` lines spreading `total` over `member`'s three months of a quarter.
pub fn metric_lines(member: &str, year: u32, months: [u32; 3], metric: &str, total: u64) -> String {
    let mut text = String::new();
    for (i, month) in months.iter().enumerate() {
        let share = total / 3 + if i == 0 { total % 3 } else { 0 };
        text.push_str(&format!(
            "report-metric --member {member} --period {year}/{:02}-M{month} --metric {metric} --value {share}\n",
            (year + 1) % 100
        ));
    }
    text
}
