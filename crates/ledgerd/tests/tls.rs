//! TLS on ledgerd's gRPC server, over real loopback connections: with a certificate
//! configured the server speaks TLS only — a plaintext client and a client that does not
//! trust the CA are refused; with a client CA configured, a client without a certificate
//! signed by it is refused too.

use std::path::Path;
use std::time::Duration;

use api::pb::HeadRequest;
use api::pb::ledger_service_client::LedgerServiceClient;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

struct Server {
    port: u16,
    ledgerd: ledgerd::server::Spawned,
    _data: tempfile::TempDir,
}

async fn start(files: &devpki::Files, mutual: bool) -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data.path().to_path_buf(),
        tls_cert: Some(files.server_cert.clone()),
        tls_key: Some(files.server_key.clone()),
        tls_client_ca: mutual.then(|| files.ca_cert.clone()),
        ..ledgerd::config::Config::default()
    })
    .await?;
    Ok(Server {
        port: ledgerd.address.port(),
        ledgerd,
        _data: data,
    })
}

fn pem(path: &Path) -> Vec<u8> {
    std::fs::read(path).expect("pem file")
}

/// Connects and asks for the head; `Err` if the connection or the call is refused.
async fn head(
    port: u16,
    ca: Option<&Path>,
    identity: Option<(&Path, &Path)>,
) -> anyhow::Result<u64> {
    let scheme = if ca.is_some() { "https" } else { "http" };
    let mut endpoint = Channel::from_shared(format!("{scheme}://127.0.0.1:{port}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(5));
    if let Some(ca) = ca {
        let mut tls = ClientTlsConfig::new()
            .ca_certificate(Certificate::from_pem(pem(ca)))
            .domain_name("localhost");
        if let Some((cert, key)) = identity {
            tls = tls.identity(Identity::from_pem(pem(cert), pem(key)));
        }
        endpoint = endpoint.tls_config(tls)?;
    }
    let channel = endpoint.connect().await?;
    let reply = LedgerServiceClient::new(channel)
        .head(HeadRequest {})
        .await?
        .into_inner();
    Ok(reply.sequence)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_refuses_plaintext_and_untrusted_clients() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ours = devpki::write(
        &devpki::generate("ICS test CA", &["localhost", "127.0.0.1"], "finance")?,
        &dir.path().join("ours"),
    )?;
    let theirs = devpki::write(
        &devpki::generate("Another CA", &["localhost"], "stranger")?,
        &dir.path().join("theirs"),
    )?;
    let server = start(&ours, false).await?;
    let mut trusted = Err(anyhow::anyhow!("not tried"));
    for _ in 0..100 {
        trusted = head(server.port, Some(&ours.ca_cert), None).await;
        if trusted.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(trusted?, 0, "a client trusting the CA is served");
    assert!(
        head(server.port, None, None).await.is_err(),
        "a plaintext client is refused"
    );
    assert!(
        head(server.port, Some(&theirs.ca_cert), None)
            .await
            .is_err(),
        "a client that does not trust the server's CA refuses it"
    );
    server.ledgerd.stop().await?;

    // Mutual TLS: the client must present a certificate the configured CA signed.
    let server = start(&ours, true).await?;
    let mut with_cert = Err(anyhow::anyhow!("not tried"));
    for _ in 0..100 {
        with_cert = head(
            server.port,
            Some(&ours.ca_cert),
            Some((&ours.client_cert, &ours.client_key)),
        )
        .await;
        if with_cert.is_ok() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(with_cert?, 0, "a client with our certificate is served");
    assert!(
        head(server.port, Some(&ours.ca_cert), None).await.is_err(),
        "a client without a certificate is refused"
    );
    assert!(
        head(
            server.port,
            Some(&ours.ca_cert),
            Some((&theirs.client_cert, &theirs.client_key))
        )
        .await
        .is_err(),
        "a client certificate from another CA is refused"
    );
    server.ledgerd.stop().await?;
    Ok(())
}

#[test]
fn half_a_tls_configuration_is_refused() {
    let config = ledgerd::config::Config {
        tls_cert: Some("server.pem".into()),
        ..ledgerd::config::Config::default()
    };
    let error = config
        .server_tls()
        .expect_err("a certificate without a key");
    assert!(error.to_string().contains("tls_key"), "{error}");
}
