//! What any gRPC tool sees of the three servers — the real `ledgerd`, `positiond` and
//! `oversightd` binaries: the standard health service reports each served service (and the
//! server as a whole) SERVING and knows no other; reflection lists exactly the services the
//! server answers, and describes each of them.

use std::time::Duration;

use e2e::{Ledgerd, Oversightd, Positiond};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

/// One reflection request, its one answer.
async fn reflect(channel: &Channel, request: MessageRequest) -> anyhow::Result<MessageResponse> {
    use futures::StreamExt;
    let mut client = ServerReflectionClient::new(channel.clone());
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(request),
    };
    let mut answers = client
        .server_reflection_info(futures::stream::iter([request]))
        .await?
        .into_inner();
    let answer = answers
        .next()
        .await
        .ok_or_else(|| anyhow::anyhow!("reflection answered nothing"))??;
    answer
        .message_response
        .ok_or_else(|| anyhow::anyhow!("an empty reflection answer"))
}

/// Checks health and reflection of the server at `url`, which serves `services`.
async fn check_server(name: &str, url: &str, services: &[&str]) -> anyhow::Result<()> {
    let channel = Channel::from_shared(url.to_string())?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await?;
    let mut health = HealthClient::new(channel.clone());
    for service in std::iter::once(&"").chain(services) {
        let status = health
            .check(HealthCheckRequest {
                service: service.to_string(),
            })
            .await?
            .into_inner()
            .status();
        assert_eq!(
            status,
            ServingStatus::Serving,
            "{name}: health of '{service}'"
        );
    }
    let unknown = health
        .check(HealthCheckRequest {
            service: "ics.ledger.v1.NoSuchService".to_string(),
        })
        .await
        .expect_err("health of a service nobody serves");
    assert_eq!(unknown.code(), Code::NotFound, "{name}: {unknown:?}");

    let MessageResponse::ListServicesResponse(list) =
        reflect(&channel, MessageRequest::ListServices(String::new())).await?
    else {
        anyhow::bail!("{name}: ListServices answered something else");
    };
    let mut listed: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    listed.sort();
    let mut expected: Vec<String> = services
        .iter()
        .chain(&[serving::HEALTH_SERVICE, serving::REFLECTION_SERVICE])
        .map(|s| s.to_string())
        .collect();
    expected.sort();
    assert_eq!(listed, expected, "{name}: the services reflection lists");

    for service in services.iter().chain(&[serving::HEALTH_SERVICE]) {
        let answer = reflect(
            &channel,
            MessageRequest::FileContainingSymbol(service.to_string()),
        )
        .await?;
        let MessageResponse::FileDescriptorResponse(files) = answer else {
            anyhow::bail!("{name}: no descriptor for {service}: {answer:?}");
        };
        let short = service.rsplit('.').next().unwrap_or(service);
        let described = files.file_descriptor_proto.iter().any(|file| {
            // The service's name is in its file's descriptor as a plain string.
            file.windows(short.len()).any(|w| w == short.as_bytes())
        });
        assert!(
            described,
            "{name}: the descriptor of {service} does not name it"
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_answers_health_checks_and_reflection_for_what_it_serves() -> anyhow::Result<()>
{
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let ledgerd = Ledgerd::start(&work.path().join("ledgerd"), Some(&nats.url()))?;
    let positiond = Positiond::start(
        &work.path().join("positiond"),
        &nats.url(),
        &ledgerd.url(),
        "positiond-services",
    )?;
    let oversightd = Oversightd::start(
        &work.path().join("oversightd"),
        &nats.url(),
        &[("kav", ledgerd.url())],
    )?;
    check_server(
        "ledgerd",
        &ledgerd.url(),
        &["ics.ledger.v1.LedgerService", "ics.audit.v1.AuditService"],
    )
    .await?;
    check_server(
        "positiond",
        &positiond.url(),
        &["ics.position.v1.PositionService"],
    )
    .await?;
    check_server(
        "oversightd",
        &oversightd.url(),
        &["ics.oversight.v1.OversightService"],
    )
    .await?;
    Ok(())
}
