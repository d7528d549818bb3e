//! positiond against a ledgerd that serves TLS and requires tokens, as the local stack runs
//! it: positiond trusts the configured CA and shows its own token (an auditor's: it reads the
//! log) to catch up and fill gaps. A token whose role may not read the log stops it. With its
//! own `auth_public_key`, positiond serves each caller what its role may read: a member's
//! team its own row and the system totals, nobody without a valid token anything.

use std::path::Path;
use std::time::Duration;

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use api::position_pb as ppb;
use api::position_pb::position_service_client::PositionServiceClient;
use auth::{Principal, Role};
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

const DEMO: &str = "kingsmere-2018-19.ics";

/// Every `PositionService` RPC with `token` (none if `None`): OK or the error's code.
async fn every_rpc(
    client: &mut PositionServiceClient<Channel>,
    token: Option<&str>,
) -> Vec<(&'static str, tonic::Code)> {
    fn with<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
        match token {
            Some(token) => bearer(message, token),
            None => tonic::Request::new(message),
        }
    }
    fn code<R>(result: Result<R, tonic::Status>) -> tonic::Code {
        result.map_or_else(|status| status.code(), |_| tonic::Code::Ok)
    }
    let report = ppb::ReportRequest {
        year: 2018,
        month: 12,
        as_of: None,
    };
    vec![
        (
            "GetStatus",
            code(client.get_status(with(ppb::StatusRequest {}, token)).await),
        ),
        (
            "GetPosition",
            code(client.get_position(with(report, token)).await),
        ),
        (
            "GetConsolidation",
            code(
                client
                    .get_consolidation(with(
                        ppb::ConsolidationRequest {
                            report: Some(report),
                            scope: ppb::ConsolidationScope::WiderIcs.into(),
                        },
                        token,
                    ))
                    .await,
            ),
        ),
        (
            "GetPooledBudgets",
            code(client.get_pooled_budgets(with(report, token)).await),
        ),
        (
            "GetContracts",
            code(client.get_contracts(with(report, token)).await),
        ),
        (
            "GetFunds",
            code(client.get_funds(with(report, token)).await),
        ),
        (
            "GetAgreementOfBalances",
            code(
                client
                    .get_agreement_of_balances(with(
                        ppb::AgreementOfBalancesRequest {
                            report: Some(report),
                            scope: ppb::AobScope::AllMembers.into(),
                            receivables_payables_threshold_pence: None,
                            income_expenditure_threshold_pence: None,
                        },
                        token,
                    ))
                    .await,
            ),
        ),
        (
            "GetAdjustments",
            code(client.get_adjustments(with(report, token)).await),
        ),
    ]
}

fn token(issuer: &auth::Issuer, role: Role, member: Option<&str>, subject: &str) -> String {
    let system = domain::SystemId::new("kav").expect("valid");
    let principal = Principal::new(subject, system, role, member).expect("valid");
    issuer
        .issue(&principal, jiff::Timestamp::now().as_second(), 3_600)
        .expect("token")
}

fn bearer<T>(message: T, token: &str) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.metadata_mut().insert(
        "authorization",
        format!("Bearer {token}").parse().expect("ascii"),
    );
    request
}

fn demo() -> anyhow::Result<Vec<pb::Command>> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../deploy/demo")
        .join(DEMO);
    Ok(
        icsctl::load::parse_scenario(DEMO, &std::fs::read_to_string(path)?)?
            .into_iter()
            .map(|(_, command)| command)
            .collect(),
    )
}

async fn start_positiond(
    config: positiond::config::Config,
) -> anyhow::Result<(
    String,
    CancellationToken,
    tokio::task::JoinHandle<anyhow::Result<()>>,
)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let task = tokio::spawn(positiond::server::run(
        config,
        listener,
        stop.clone().cancelled_owned(),
    ));
    Ok((url, stop, task))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn positiond_follows_a_ledgerd_with_tls_and_tokens() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let pki = devpki::write(
        &devpki::generate("test CA", &["localhost", "127.0.0.1"], "client")?,
        &dir.path().join("certs"),
    )?;
    let (private, public) = auth::generate_key_pair()?;
    let public_key = dir.path().join("ics-signing.pub.pem");
    std::fs::write(&public_key, &public)?;
    let issuer = auth::Issuer::from_pem(&private)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let ledgerd_stop = CancellationToken::new();
    let ledgerd = tokio::spawn(ledgerd::server::run(
        ledgerd::config::Config {
            listen: listener.local_addr()?,
            data_dir: dir.path().join("ledgerd"),
            nats_url: Some(nats.url()),
            tls_cert: Some(pki.server_cert.clone()),
            tls_key: Some(pki.server_key.clone()),
            auth_public_key: Some(public_key),
            ..ledgerd::config::Config::default()
        },
        listener,
        ledgerd_stop.clone().cancelled_owned(),
    ));
    let channel = {
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{port}"))?.tls_config(
            ClientTlsConfig::new()
                .ca_certificate(Certificate::from_pem(std::fs::read(&pki.ca_cert)?))
                .domain_name("localhost"),
        )?;
        let mut connected = None;
        for _ in 0..100 {
            if let Ok(channel) = endpoint.connect().await {
                connected = Some(channel);
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        connected.ok_or_else(|| anyhow::anyhow!("ledgerd did not come up"))?
    };
    let mut ledger = LedgerServiceClient::new(channel);
    let finance = token(&issuer, Role::SystemFinance, None, "kav-finance");
    let reply = ledger
        .submit_bulk(bearer(futures::stream::iter(demo()?), &finance))
        .await?
        .into_inner();
    let head = ledger
        .head(bearer(pb::HeadRequest {}, &finance))
        .await?
        .into_inner();
    assert_eq!(reply.last_sequence, head.sequence);

    let config = |name: &str, token_text: &str| -> anyhow::Result<positiond::config::Config> {
        let token_file = dir.path().join(format!("{name}.token"));
        std::fs::write(&token_file, format!("{token_text}\n"))?;
        Ok(positiond::config::Config {
            auth_public_key: Some(dir.path().join("ics-signing.pub.pem")),
            data_dir: dir.path().join(name),
            nats_url: nats.url(),
            ledgerd_url: format!("https://127.0.0.1:{port}"),
            ledgerd_ca: Some(pki.ca_cert.clone()),
            ledgerd_token_file: Some(token_file),
            consumer: name.to_string(),
            ..positiond::config::Config::default()
        })
    };

    // An auditor's token reads the log: positiond catches up to the head.
    let auditor = token(&issuer, Role::Auditor, None, "positiond");
    let (url, stop, task) = start_positiond(config("positiond", &auditor)?).await?;
    let mut folded = None;
    for _ in 0..400 {
        if let Ok(mut client) = PositionServiceClient::connect(url.clone()).await
            && let Ok(status) = client
                .get_status(bearer(ppb::StatusRequest {}, &finance))
                .await
            && status.get_ref().sequence == head.sequence
        {
            folded = Some(status.into_inner());
            break;
        }
        anyhow::ensure!(!task.is_finished(), "positiond stopped: {:?}", task.await);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let folded = folded.ok_or_else(|| anyhow::anyhow!("positiond did not catch up"))?;
    assert_eq!(folded.hash, head.hash);

    // What each caller may read.
    let mut position = PositionServiceClient::connect(url.clone()).await?;
    let question = ppb::ReportRequest {
        year: 2018,
        month: 12,
        as_of: None,
    };
    let everyone = position
        .get_position(bearer(question, &finance))
        .await?
        .into_inner();
    assert_eq!(everyone.members.len(), 7);
    let khft_token = token(&issuer, Role::MemberFinance, Some("KHFT"), "khft-finance");
    let khft = position
        .get_position(bearer(question, &khft_token))
        .await?
        .into_inner();
    let rows: Vec<&str> = khft.members.iter().map(|m| m.member.as_str()).collect();
    assert_eq!(rows, ["KHFT"], "a member's team sees its own row");
    assert_eq!(
        khft.control_total, everyone.control_total,
        "and the system totals"
    );
    let contracts = position
        .get_contracts(bearer(question, &khft_token))
        .await?
        .into_inner();
    assert!(!contracts.contracts.is_empty());
    for c in &contracts.contracts {
        let parties = [&c.commissioner, &c.provider].map(|p| p.as_ref().map(|p| p.member.clone()));
        assert!(
            parties.contains(&Some("KHFT".to_string())),
            "{}",
            c.contract
        );
    }
    let refused = position
        .get_funds(bearer(question, &khft_token))
        .await
        .expect_err("a member's team does not read the fund statements");
    assert_eq!(refused.code(), tonic::Code::PermissionDenied);
    let regulator = token(&issuer, Role::Regulator, None, "regulator");
    position.get_funds(bearer(question, &regulator)).await?;

    // Every RPC, table-driven: who reads what (member finance its own row of the position
    // and its own contracts; the statements are for system finance, the regulator and
    // auditors; the admin reads only the status) ...
    use tonic::Code::{Ok as Allowed, PermissionDenied as Denied};
    let member_reads = [
        Allowed, Allowed, Denied, Denied, Allowed, Denied, Denied, Denied,
    ];
    let readers = [Allowed; 8];
    let admin_reads = [
        Allowed, Denied, Denied, Denied, Denied, Denied, Denied, Denied,
    ];
    for (role, member, expected) in [
        (Role::MemberFinance, Some("KHFT"), member_reads),
        (Role::SystemFinance, None, readers),
        (Role::Regulator, None, readers),
        (Role::Auditor, None, readers),
        (Role::Admin, None, admin_reads),
    ] {
        let caller = token(&issuer, role, member, "someone");
        let codes = every_rpc(&mut position, Some(&caller)).await;
        let got: Vec<tonic::Code> = codes.iter().map(|(_, code)| *code).collect();
        assert_eq!(got, expected, "{role}: {codes:?}");
    }
    // ... and nobody without a valid token for this system reads anything.
    let now = jiff::Timestamp::now().as_second();
    let kav = domain::SystemId::new("kav").expect("valid");
    let finance_of = |system: &domain::SystemId| {
        Principal::new("someone", system.clone(), Role::SystemFinance, None).expect("valid")
    };
    let expired = issuer.issue(&finance_of(&kav), now - 7_200, 3_600)?;
    let (other_private, _) = auth::generate_key_pair()?;
    let wrong_key = auth::Issuer::from_pem(&other_private)?.issue(&finance_of(&kav), now, 3_600)?;
    let elsewhere = issuer.issue(
        &finance_of(&domain::SystemId::new("nwl").expect("valid")),
        now,
        3_600,
    )?;
    for (case, caller) in [
        ("no token", None),
        ("expired", Some(expired.as_str())),
        ("wrong key", Some(wrong_key.as_str())),
        ("wrong system", Some(elsewhere.as_str())),
        ("garbage", Some("not-a-jwt")),
    ] {
        for (rpc, code) in every_rpc(&mut position, caller).await {
            assert_eq!(code, tonic::Code::Unauthenticated, "{case} {rpc}");
        }
    }
    stop.cancel();
    task.await??;

    // A member's token may not read the log: positiond stops and says why.
    let member = token(&issuer, Role::MemberFinance, Some("KHFT"), "khft-finance");
    let (_, _stop, task) = start_positiond(config("refused", &member)?).await?;
    let error = tokio::time::timeout(Duration::from_secs(30), task)
        .await??
        .expect_err("refused by ledgerd");
    assert!(
        format!("{error:#}").contains("may not read the event log"),
        "{error:#}"
    );

    ledgerd_stop.cancel();
    ledgerd.await??;
    Ok(())
}
