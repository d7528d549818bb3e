//! oversightd with the regulator's key: only a valid token signed with it, for oversightd's
//! own `auth_system`, with a role that may read oversight (the regulator, auditors), gets an
//! answer — on every RPC.

use api::oversight_pb as opb;
use api::oversight_pb::oversight_service_client::OversightServiceClient;
use auth::{Principal, Role};
use tokio_util::sync::CancellationToken;
use tonic::Code;
use tonic::transport::Channel;

fn bearer<T>(message: T, token: Option<&str>) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    request
}

/// Every RPC with `token`; the status codes (OK or the error).
async fn codes(client: &mut OversightServiceClient<Channel>, token: Option<&str>) -> Vec<Code> {
    let code = |r: Result<(), tonic::Status>| r.map_or_else(|s| s.code(), |()| Code::Ok);
    vec![
        code(
            client
                .list_systems(bearer(opb::ListSystemsRequest {}, token))
                .await
                .map(|_| ()),
        ),
        // No system is followed, so an authorised caller is told NOT_FOUND.
        code(
            client
                .get_performance(bearer(
                    opb::PerformanceRequest {
                        system: "kav".to_string(),
                        year: 2018,
                        quarter: 2,
                        baseline_year: 2017,
                    },
                    token,
                ))
                .await
                .map(|_| ()),
        ),
        code(
            client
                .get_ranking(bearer(
                    opb::RankingRequest {
                        year: 2018,
                        quarter: 2,
                        baseline_year: 2017,
                        measure: opb::Measure::AeFourHour.into(),
                    },
                    token,
                ))
                .await
                .map(|_| ()),
        ),
        code(
            client
                .list_checkpoints(bearer(
                    opb::ListSystemCheckpointsRequest {
                        system: "kav".to_string(),
                        from_sequence: 0,
                        limit: 0,
                    },
                    token,
                ))
                .await
                .map(|_| ()),
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_regulator_and_auditors_read_oversight() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let (private, public) = auth::generate_key_pair()?;
    let key = dir.path().join("regulator.pub.pem");
    std::fs::write(&key, public)?;
    let regulator_key = auth::Issuer::from_pem(&private)?;
    let (ics_private, _) = auth::generate_key_pair()?;
    let ics_key = auth::Issuer::from_pem(&ics_private)?;

    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let stop = CancellationToken::new();
    let task = tokio::spawn(oversightd::server::run(
        oversightd::config::Config {
            listen: listener.local_addr()?,
            data_dir: dir.path().join("data"),
            nats_url: nats.url(),
            auth_public_key: Some(key),
            ..oversightd::config::Config::default()
        },
        listener,
        stop.clone().cancelled_owned(),
    ));
    let mut client = loop {
        if let Ok(client) = OversightServiceClient::connect(url.clone()).await {
            break client;
        }
        anyhow::ensure!(!task.is_finished(), "oversightd stopped");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    };

    let now = jiff::Timestamp::now().as_second();
    let national = domain::SystemId::new("national").expect("valid");
    let issue = |issuer: &auth::Issuer, system: &domain::SystemId, role: Role, at: i64| {
        issuer
            .issue(
                &Principal::new("someone", system.clone(), role, None).expect("valid"),
                at,
                3_600,
            )
            .expect("token")
    };
    let kav = domain::SystemId::new("kav").expect("valid");
    let allowed = [Code::Ok, Code::NotFound, Code::FailedPrecondition];
    for role in [Role::Regulator, Role::Auditor] {
        let token = issue(&regulator_key, &national, role, now);
        for code in codes(&mut client, Some(&token)).await {
            assert!(allowed.contains(&code), "{role}: {code:?}");
        }
    }
    for role in [Role::SystemFinance, Role::Admin] {
        let token = issue(&regulator_key, &national, role, now);
        assert_eq!(
            codes(&mut client, Some(&token)).await,
            [Code::PermissionDenied; 4],
            "{role}"
        );
    }
    let unauthenticated = [
        None,
        Some(issue(&ics_key, &national, Role::Regulator, now)), // another key
        Some(issue(&regulator_key, &kav, Role::Regulator, now)), // another system
        Some(issue(
            &regulator_key,
            &national,
            Role::Regulator,
            now - 7_200,
        )), // expired
    ];
    for token in unauthenticated {
        assert_eq!(
            codes(&mut client, token.as_deref()).await,
            [Code::Unauthenticated; 4]
        );
    }
    stop.cancel();
    task.await??;
    Ok(())
}
