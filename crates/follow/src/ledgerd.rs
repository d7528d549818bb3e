//! Reaching a ledgerd: over TLS when it serves TLS (trusting a configured CA), with a bearer
//! token when it requires one.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use api::pb::ledger_service_client::LedgerServiceClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How to reach a ledgerd besides its URL.
#[derive(Clone, Debug, Default)]
pub struct Access {
    /// PEM CA certificate to trust: connect over TLS (an `http://` URL is taken as `https://`).
    pub ca: Option<PathBuf>,
    /// The name in ledgerd's certificate (default: the URL's host; `localhost` for an IP).
    pub tls_name: Option<String>,
    /// Bearer token (an auditor's, say: it reads the log) for a ledgerd with authentication on.
    pub token: Option<String>,
}

/// A ledgerd client that sends the bearer token on every call.
pub type LedgerdClient = LedgerServiceClient<InterceptedService<Channel, Bearer>>;

/// Adds `authorization: Bearer <token>` to every request (nothing without a token).
#[derive(Clone, Debug)]
pub struct Bearer(Option<MetadataValue<Ascii>>);

impl Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// The endpoint for `url` with `access`'s TLS settings (not connected).
pub fn endpoint(url: &str, access: &Access) -> anyhow::Result<Endpoint> {
    let Some(ca) = &access.ca else {
        return Endpoint::from_shared(url.to_string())
            .with_context(|| format!("ledgerd URL '{url}'"))
            .map(|e| e.connect_timeout(Duration::from_secs(2)));
    };
    let url = url.replacen("http://", "https://", 1);
    let uri: tonic::codegen::http::Uri = url
        .parse()
        .with_context(|| format!("ledgerd URL '{url}'"))?;
    let host = uri.host().unwrap_or("localhost");
    let name = access.tls_name.clone().unwrap_or_else(|| {
        if host.parse::<std::net::IpAddr>().is_ok() {
            "localhost".to_string()
        } else {
            host.to_string()
        }
    });
    let pem = std::fs::read(ca).with_context(|| format!("reading {}", ca.display()))?;
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(pem))
        .domain_name(name);
    Ok(Endpoint::from_shared(url.clone())
        .with_context(|| format!("ledgerd URL '{url}'"))?
        .tls_config(tls)?
        .connect_timeout(Duration::from_secs(2)))
}

/// A client on `channel` sending `access`'s token.
pub fn client(channel: Channel, access: &Access) -> anyhow::Result<LedgerdClient> {
    let value = access
        .token
        .as_ref()
        .map(|token| format!("Bearer {}", token.trim()).parse())
        .transpose()
        .context("the ledgerd token is not printable ASCII")?;
    Ok(
        LedgerServiceClient::with_interceptor(channel, Bearer(value))
            .max_decoding_message_size(16 * 1024 * 1024),
    )
}

/// The chain hash of ledgerd's event at `sequence` (its stored copy, its hash checked against
/// its content), or `None` when ledgerd has no such event: what vouches for an event that
/// arrived over NATS (`crate::pending`).
pub async fn hash_at(
    ledger: &mut LedgerdClient,
    sequence: u64,
) -> Result<Option<[u8; 32]>, tonic::Status> {
    let mut pages = ledger
        .read_stored(api::pb::ReadStoredRequest {
            from_sequence: sequence,
            limit: 1,
        })
        .await?
        .into_inner();
    while let Some(page) = pages.message().await? {
        if let Some(value) = page.events.first() {
            let stored = crate::incoming::Incoming::from_stored(value).map_err(|e| {
                tonic::Status::data_loss(format!("ledgerd's event {sequence}: {e}"))
            })?;
            return Ok((stored.sequence == sequence).then_some(stored.hash));
        }
    }
    Ok(None)
}
