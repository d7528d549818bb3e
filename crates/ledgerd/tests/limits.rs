//! ledgerd's request limits over real gRPC on loopback, with the limits set in its
//! configuration: a bulk submission that outlives the request deadline is refused with the
//! limit named and — if nothing of it had arrived — records nothing; what did arrive before the
//! deadline was recorded once, and resending it records nothing more. One connection over its
//! concurrent-call limit is refused while another connection is served.

use std::time::Duration;

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use futures::StreamExt;
use tonic::Code;
use tonic::transport::Channel;

struct Server {
    ledgerd: ledgerd::server::Spawned,
    _data: tempfile::TempDir,
}

async fn start(limits: serving::Limits) -> anyhow::Result<Server> {
    let data = tempfile::tempdir()?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: data.path().to_path_buf(),
        limits,
        ..ledgerd::config::Config::default()
    })
    .await?;
    Ok(Server {
        ledgerd,
        _data: data,
    })
}

impl Server {
    /// A new connection.
    async fn client(&self) -> anyhow::Result<LedgerServiceClient<Channel>> {
        let channel = Channel::from_shared(self.ledgerd.url())?.connect().await?;
        Ok(LedgerServiceClient::new(channel))
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.ledgerd.stop().await
    }
}

async fn head(client: &mut LedgerServiceClient<Channel>) -> anyhow::Result<u64> {
    Ok(client.head(pb::HeadRequest {}).await?.into_inner().sequence)
}

fn establish(request_id: &str) -> pb::Command {
    pb::Command {
        command: Some(pb::command::Command::EstablishSystem(
            pb::EstablishSystemRequest {
                meta: Some(pb::CommandMeta {
                    request_id: request_id.to_string(),
                    ..Default::default()
                }),
                system: "kav".to_string(),
                name: "Kingsmere & Alder Valley ICS".to_string(),
                first_year: 2018,
            },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulk_submission_over_the_deadline_is_refused_naming_the_limit() -> anyhow::Result<()> {
    let server = start(serving::Limits {
        grpc_request_deadline_ms: 400,
        ..serving::Limits::default()
    })
    .await?;
    let mut client = server.client().await?;

    // Nothing sent, the request stream left open.
    let refused = client
        .submit_bulk(futures::stream::pending::<pb::Command>())
        .await
        .expect_err("a bulk call that never ends");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("400 ms")
            && refused.message().contains("grpc_request_deadline_ms"),
        "the limit and its key are named: {}",
        refused.message()
    );
    assert_eq!(head(&mut client).await?, 0, "nothing recorded");

    // One command sent, then the stream left open: that command is recorded once; sending it
    // again (same request id) after the refusal records nothing more.
    let request_id = "5d1f0c8e-8a43-4a8e-9d55-3f2c1b7a0e11";
    let first = futures::stream::iter([establish(request_id)]).chain(futures::stream::pending());
    let refused = client
        .submit_bulk(first)
        .await
        .expect_err("a bulk call that never ends");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    let recorded = head(&mut client).await?;
    assert_eq!(recorded, 1, "the command that arrived was recorded");
    let resent = client
        .submit_bulk(futures::stream::iter([establish(request_id)]))
        .await?
        .into_inner();
    assert_eq!((resent.accepted, resent.duplicates), (0, 1));
    assert_eq!(head(&mut client).await?, recorded);

    server.stop().await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_connection_over_its_concurrent_calls_is_refused() -> anyhow::Result<()> {
    let server = start(serving::Limits {
        grpc_streams_per_connection_max: 2,
        ..serving::Limits::default()
    })
    .await?;
    let mut client = server.client().await?;
    assert_eq!(head(&mut client).await?, 0, "serving");

    // Three bulk calls held open on one connection: whichever reaches the server last is
    // refused, the other two stay open.
    let mut open = Vec::new();
    for _ in 0..3 {
        let mut bulk = client.clone();
        open.push(tokio::spawn(async move {
            bulk.submit_bulk(futures::stream::pending::<pb::Command>())
                .await
        }));
    }
    let mut waited = Duration::ZERO;
    let ended = loop {
        if let Some(ended) = open.iter().position(|call| call.is_finished()) {
            break open.swap_remove(ended);
        }
        anyhow::ensure!(
            waited < Duration::from_secs(10),
            "no call on the connection was refused"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    };
    let refused = ended.await?.expect_err("the third call is refused");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("the limit is 2"),
        "{}",
        refused.message()
    );
    assert!(
        open.iter().all(|call| !call.is_finished()),
        "the other two stay open"
    );
    let mut other = server.client().await?;
    assert_eq!(head(&mut other).await?, 0, "another connection is served");

    for call in open {
        call.abort();
    }
    server.stop().await
}
