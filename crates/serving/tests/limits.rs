//! The limits over real gRPC on loopback: a server built by `serving::server` with tonic's
//! health service, whose `Watch` call stays open until the client drops it.

use std::time::Duration;

use serving::{Limits, Perimeter};
use tokio::net::TcpListener;
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_client::HealthClient;

/// Serves health with `limits` on a free loopback port; the address and the stop switch.
async fn serve(limits: Limits) -> anyhow::Result<(String, tokio::sync::oneshot::Sender<()>)> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let perimeter = Perimeter::new(&limits, None);
    let (_reporter, health) = perimeter.health();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = perimeter
        .server(None, false)?
        .add_service(health)
        .serve_with_incoming_shutdown(perimeter.incoming(listener), async {
            let _ = stopped.await;
        });
    tokio::spawn(server);
    Ok((url, stop))
}

/// One connection: a channel and its clones share it.
async fn connect(url: &str) -> anyhow::Result<HealthClient<Channel>> {
    Ok(HealthClient::new(
        Channel::from_shared(url.to_string())?.connect().await?,
    ))
}

fn everything() -> HealthCheckRequest {
    HealthCheckRequest {
        service: String::new(),
    }
}

#[tokio::test]
async fn one_call_over_the_streams_per_connection_limit_is_refused_and_others_go_on()
-> anyhow::Result<()> {
    let limits = Limits {
        grpc_streams_per_connection_max: 3,
        ..Limits::default()
    };
    let (url, _stop) = serve(limits).await?;
    let mut client = connect(&url).await?;

    let mut watches = Vec::new();
    for _ in 0..3 {
        let mut watch = client.watch(everything()).await?.into_inner();
        watch.message().await?.expect("the first health status");
        watches.push(watch);
    }
    let refused = client
        .check(everything())
        .await
        .expect_err("a fourth call on the connection");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused.message().contains("the limit is 3")
            && refused
                .message()
                .contains("grpc_streams_per_connection_max"),
        "the limit and its key are named: {}",
        refused.message()
    );

    // Another connection has its own allowance.
    let mut other = connect(&url).await?;
    other.check(everything()).await?;

    // Closing one call makes room on the first connection (the reset reaches the server a
    // moment later).
    watches.pop();
    let mut waited = Duration::ZERO;
    loop {
        match client.check(everything()).await {
            Ok(_) => break,
            Err(status) if status.code() == Code::ResourceExhausted => {
                anyhow::ensure!(
                    waited < Duration::from_secs(10),
                    "no room after closing a call"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
                waited += Duration::from_millis(20);
            }
            Err(status) => return Err(status.into()),
        }
    }
    // Finished unary calls do not stay counted.
    for _ in 0..20 {
        client.check(everything()).await?;
    }
    Ok(())
}

#[tokio::test]
async fn health_answers_without_a_token_but_only_small_messages() -> anyhow::Result<()> {
    let limits = Limits {
        grpc_unauthenticated_message_bytes_max: 1024,
        ..Limits::default()
    };
    let (url, _stop) = serve(limits).await?;
    let mut client = connect(&url).await?;
    client.check(everything()).await?;
    let refused = client
        .check(HealthCheckRequest {
            service: "x".repeat(2048),
        })
        .await
        .expect_err("a 2 KiB health check");
    assert_eq!(refused.code(), Code::ResourceExhausted, "{refused:?}");
    assert!(
        refused
            .message()
            .contains("grpc_unauthenticated_message_bytes_max"),
        "the limit's key is named: {}",
        refused.message()
    );
    client.check(everything()).await?;
    Ok(())
}
