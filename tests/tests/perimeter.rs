//! The gRPC perimeter of the real `ledgerd` binary (issue 17), tried as a stranger would over
//! real TLS and plaintext gRPC on loopback:
//!
//! - a caller with no token who opens calls declaring 4 MB messages and sends all but their
//!   last byte is refused `UNAUTHENTICATED` from the headers, nothing of the bodies is kept,
//!   and ledgerd's memory stays where it was (finding 1);
//! - connections over the per-peer and total caps are answered `RESOURCE_EXHAUSTED` naming
//!   the cap's key, and served again once there is room (finding 1);
//! - a TLS connection that never starts its handshake is closed (finding 10);
//! - `ReadAll` follow streams are capped per principal and in total, naming the keys, and a
//!   closed one makes room (finding 6);
//! - names and reasons with Unicode format or bidirectional control characters are
//!   `INVALID_ARGUMENT` naming the field, alone or in a bulk call (finding 9).
//!
//! Malformed protobuf (finding 7) is in `hostile_input.rs`; what a Python client sees (findings
//! 5 and 8) in `python_client.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::process::Command;
use std::task::{Context, Poll};
use std::time::Duration;

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use bytes::Bytes;
use futures::StreamExt;
use testkit::ChildGuard;
use tokio::io::AsyncReadExt;
use tokio_util::sync::CancellationToken;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use tower::{Service, ServiceExt};
use uuid::Uuid;

/// A real ledgerd binary, plaintext or TLS, with configuration from the environment.
struct Server {
    process: ChildGuard,
    addr: SocketAddr,
    /// The CA its certificate chains to, when it serves TLS.
    ca: Option<PathBuf>,
    _dir: tempfile::TempDir,
}

impl Server {
    fn start(env: &[(&str, String)], tls: bool) -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let addr = SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
        let mut command = Command::new(testkit::workspace_binary("ledgerd")?);
        command
            .args([
                "--listen",
                &addr.to_string(),
                "--system",
                "kav",
                "--data-dir",
            ])
            .arg(dir.path().join("ledgerd"))
            .env("RUST_LOG", "info")
            .envs(env.iter().map(|(k, v)| (k, v)));
        let mut ca = None;
        if tls {
            let certs = dir.path().join("certs");
            icsctl(&["dev", "certs", "--dir", &certs.to_string_lossy()])?;
            command
                .env("LEDGERD_TLS_CERT", certs.join("server.pem"))
                .env("LEDGERD_TLS_KEY", certs.join("server.key"));
            ca = Some(certs.join("ca.pem"));
        }
        let mut process =
            ChildGuard::spawn_logged("ledgerd", &mut command, &dir.path().join("ledgerd.log"))?;
        process.wait_for_port(addr, Duration::from_secs(20))?;
        Ok(Server {
            process,
            addr,
            ca,
            _dir: dir,
        })
    }

    fn endpoint(&self) -> anyhow::Result<Endpoint> {
        Ok(match &self.ca {
            Some(ca) => Endpoint::from_shared(format!("https://{}", self.addr))?.tls_config(
                ClientTlsConfig::new()
                    .ca_certificate(Certificate::from_pem(std::fs::read(ca)?))
                    .domain_name("localhost"),
            )?,
            None => Endpoint::from_shared(format!("http://{}", self.addr))?,
        })
    }

    /// A new connection.
    async fn channel(&self) -> anyhow::Result<Channel> {
        Ok(self.endpoint()?.connect().await?)
    }

    /// A new connection from the loopback address `ip` (127.0.0.0/8: one peer each).
    async fn channel_from(&self, ip: [u8; 4]) -> anyhow::Result<Channel> {
        let server = self.addr;
        let connector = tower::service_fn(move |_: tonic::codegen::http::Uri| async move {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((ip, 0)))?;
            let stream = socket.connect(server).await?;
            Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(stream))
        });
        Ok(self.endpoint()?.connect_with_connector(connector).await?)
    }

    /// ledgerd's resident memory, from /proc.
    fn rss_bytes(&self) -> anyhow::Result<u64> {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.process.id()))?;
        let kib: u64 = status
            .lines()
            .find_map(|line| line.strip_prefix("VmRSS:"))
            .and_then(|value| value.trim().strip_suffix("kB"))
            .ok_or_else(|| anyhow::anyhow!("no VmRSS in /proc/<pid>/status"))?
            .trim()
            .parse()?;
        Ok(kib * 1024)
    }
}

fn icsctl(args: &[&str]) -> anyhow::Result<String> {
    let (ok, output) = e2e::icsctl_outcome(args)?;
    anyhow::ensure!(ok, "icsctl {args:?}: {output}");
    Ok(output)
}

/// An ICS signing key pair in `dir`: (private key path, public key path).
fn keys(dir: &Path) -> anyhow::Result<(PathBuf, PathBuf)> {
    icsctl(&["keys", "generate", "--dir", &dir.to_string_lossy()])?;
    Ok((dir.join("ics-signing.pem"), dir.join("ics-signing.pub.pem")))
}

fn token(private: &Path, role: &str, subject: &str) -> anyhow::Result<String> {
    let key = private.to_string_lossy();
    let token = icsctl(&[
        "token",
        "issue",
        "--key",
        &key,
        "--role",
        role,
        "--subject",
        subject,
    ])?;
    Ok(token.trim().to_string())
}

fn authed<T>(token: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

fn meta() -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: Uuid::new_v4().to_string(),
        ..Default::default()
    })
}

fn assert_exhausted(status: &Status, key: &str) {
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(
        status.message().contains(key),
        "the refusal names {key}: {}",
        status.message()
    );
}

/// Retries `attempt` until it succeeds: for room a closed connection or call makes, which the
/// server sees a moment after the client closes it.
async fn eventually<T, F>(what: &str, mut attempt: impl FnMut() -> F) -> anyhow::Result<T>
where
    F: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut waited = Duration::ZERO;
    loop {
        match attempt().await {
            Ok(value) => return Ok(value),
            Err(error) if waited < Duration::from_secs(20) => {
                let _ = error;
                tokio::time::sleep(Duration::from_millis(50)).await;
                waited += Duration::from_millis(50);
            }
            Err(error) => return Err(error.context(format!("{what}: still refused"))),
        }
    }
}

// ---- finding 1: no token, 4 MB bodies that never end -----------------------------------------

/// The probe: each declared message is this long.
const DECLARED_BYTES: usize = 4_194_000;
/// Calls opened on each connection (the default `grpc_streams_per_connection_max`).
const CALLS_PER_CONNECTION: usize = 64;
/// Connections the probe opens (as in the issue), unless `ICS_PROBE_CONNECTIONS` says how
/// many — for measuring, up to the per-peer cap's default of 64.
const PROBE_CONNECTIONS: usize = 4;

fn probe_connections() -> usize {
    std::env::var("ICS_PROBE_CONNECTIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(PROBE_CONNECTIONS)
}
/// What ledgerd's resident memory may grow by under the probe: README "Security".
const PROBE_RSS_GROWTH_MAX: u64 = 32 * 1024 * 1024;

static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// A gRPC request body declaring a [`DECLARED_BYTES`] message and sending all of it but the
/// last byte, then waiting for ever.
struct Withheld {
    prefix_sent: bool,
    left: usize,
}

impl http_body::Body for Withheld {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        if !self.prefix_sent {
            self.prefix_sent = true;
            let mut prefix = vec![0u8];
            prefix.extend_from_slice(&(DECLARED_BYTES as u32).to_be_bytes());
            return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from(prefix)))));
        }
        if self.left > 0 {
            let n = self.left.min(ZEROS.len());
            self.left -= n;
            return Poll::Ready(Some(Ok(http_body::Frame::data(Bytes::from_static(
                &ZEROS[..n],
            )))));
        }
        Poll::Pending
    }
}

/// How one probe call went.
#[derive(Debug)]
enum Probed {
    /// The server answered with this gRPC status.
    Answered(Status),
    /// The call failed in the transport.
    Failed(String),
}

/// Opens one probe call on `channel`, and reports on `report` how the server answered it. A
/// call the server does not answer is held open, its body withheld, until `stop`.
fn probe_call(
    mut channel: Channel,
    uri: String,
    report: tokio::sync::mpsc::UnboundedSender<Probed>,
    stop: CancellationToken,
) {
    tokio::spawn(async move {
        let body = Withheld {
            prefix_sent: false,
            left: DECLARED_BYTES - 1,
        };
        let request = http::Request::post(uri)
            .header("content-type", "application/grpc")
            .header("te", "trailers")
            .body(tonic::body::Body::new(body))
            .expect("a request");
        let probed = match channel.ready().await {
            Ok(ready) => tokio::select! {
                response = ready.call(request) => match response {
                    Ok(response) => Probed::Answered(
                        Status::from_header_map(response.headers())
                            .unwrap_or_else(|| Status::unknown("a reply without a status")),
                    ),
                    Err(error) => Probed::Failed(error.to_string()),
                },
                () = stop.cancelled() => return,
            },
            Err(error) => Probed::Failed(error.to_string()),
        };
        let _ = report.send(probed);
    });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_without_a_token_are_refused_before_their_bodies_are_read() -> anyhow::Result<()> {
    let keys_dir = tempfile::tempdir()?;
    let (private, public) = keys(keys_dir.path())?;
    let server = Server::start(
        &[(
            "LEDGERD_AUTH_PUBLIC_KEY",
            public.to_string_lossy().into_owned(),
        )],
        true,
    )?;
    let system = token(&private, "system-finance", "system-finance")?;
    let mut ledger = LedgerServiceClient::new(server.channel().await?);
    ledger
        .head(authed(&system, pb::HeadRequest {})?)
        .await
        .map_err(|status| anyhow::anyhow!("a token's call is served: {status:?}"))?;
    let before = server.rss_bytes()?;

    let uri = format!(
        "https://localhost:{}/ics.ledger.v1.LedgerService/AdmitMember",
        server.addr.port()
    );
    let (report, mut reports) = tokio::sync::mpsc::unbounded_channel();
    let stop = CancellationToken::new();
    let mut connections = Vec::new();
    let probe_connections = probe_connections();
    for _ in 0..probe_connections {
        let channel = server.channel().await?;
        for _ in 0..CALLS_PER_CONNECTION {
            probe_call(channel.clone(), uri.clone(), report.clone(), stop.clone());
        }
        connections.push(channel);
    }
    let calls = probe_connections * CALLS_PER_CONNECTION;
    let mut outcomes = Vec::new();
    // Before the fix, tonic buffers each body and no call is ever answered: the bound keeps
    // such a run from hanging, and what ledgerd holds by then is measured all the same.
    let _ = tokio::time::timeout(Duration::from_secs(60), async {
        while outcomes.len() < calls {
            outcomes.push(reports.recv().await.expect("every call reports"));
        }
    })
    .await;
    let during = server.rss_bytes()?;
    stop.cancel();
    let growth = during.saturating_sub(before);
    eprintln!(
        "probe: {probe_connections} TLS connections × {CALLS_PER_CONNECTION} calls declaring \
         {DECLARED_BYTES} bytes, no token: ledgerd RSS {} MiB before, {} MiB during (+{} KiB)",
        before >> 20,
        during >> 20,
        growth >> 10
    );

    let wrong: Vec<String> = outcomes
        .iter()
        .filter_map(|probed| match probed {
            Probed::Answered(status)
                if status.code() == Code::Unauthenticated
                    && status.message().contains("no bearer token") =>
            {
                None
            }
            Probed::Answered(status) => Some(format!("answered {status:?}")),
            Probed::Failed(error) => Some(format!("failed: {error}")),
        })
        .collect();
    assert!(
        outcomes.len() == calls && wrong.is_empty(),
        "every call is refused UNAUTHENTICATED before its body is read: {} of {calls} \
         answered; not as expected: {:?}",
        outcomes.len(),
        wrong.first()
    );
    assert!(
        growth < PROBE_RSS_GROWTH_MAX,
        "ledgerd grew by {} MiB under the probe (bound {} MiB)",
        growth >> 20,
        PROBE_RSS_GROWTH_MAX >> 20
    );
    // And it goes on serving those with a token.
    drop(connections);
    ledger.head(authed(&system, pb::HeadRequest {})?).await?;
    Ok(())
}

// ---- finding 1: connection caps ------------------------------------------------------------

async fn head(channel: Channel) -> Result<pb::HeadReply, Status> {
    LedgerServiceClient::new(channel)
        .head(pb::HeadRequest {})
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_a_cap_are_told_which_and_served_once_there_is_room() -> anyhow::Result<()>
{
    let server = Server::start(
        &[
            ("LEDGERD_GRPC_CONNECTIONS_PER_PEER_MAX", "2".to_string()),
            ("LEDGERD_GRPC_CONNECTIONS_MAX", "4".to_string()),
        ],
        false,
    )?;
    // Two peers (loopback addresses) with two connections each; the harness's own probe of
    // the port came from 127.0.0.1 and may take a moment to close.
    let a1 = server.channel_from([127, 0, 0, 2]).await?;
    let a2 = server.channel_from([127, 0, 0, 2]).await?;
    head(a1.clone()).await?;
    head(a2.clone()).await?;
    let a3 = server.channel_from([127, 0, 0, 2]).await?;
    let refused = head(a3)
        .await
        .expect_err("a third connection from one peer");
    assert_exhausted(&refused, "grpc_connections_per_peer_max");
    assert!(refused.message().contains("127.0.0.2"), "{refused:?}");

    let b1 = server.channel_from([127, 0, 0, 3]).await?;
    head(b1.clone()).await?;
    let b2 = eventually("a fourth connection in all", || async {
        let channel = server.channel_from([127, 0, 0, 3]).await?;
        head(channel.clone()).await?;
        Ok(channel)
    })
    .await?;
    let c1 = server.channel_from([127, 0, 0, 4]).await?;
    let refused = head(c1).await.expect_err("a fifth connection in all");
    assert_exhausted(&refused, "grpc_connections_max");

    // Served connections go on being served; a closed one makes room for another peer.
    head(a1.clone()).await?;
    drop(a2);
    eventually("a connection after one closed", || async {
        Ok(head(server.channel_from([127, 0, 0, 4]).await?).await?)
    })
    .await?;
    head(b2).await?;
    Ok(())
}

// ---- finding 10: TLS handshakes that never start -------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_connection_that_never_says_hello_is_closed() -> anyhow::Result<()> {
    let server = Server::start(
        &[("LEDGERD_GRPC_TLS_HANDSHAKE_TIMEOUT_MS", "300".to_string())],
        true,
    )?;
    let mut silent = tokio::net::TcpStream::connect(server.addr).await?;
    let mut byte = [0u8; 1];
    // The bound only keeps a failing run from hanging: ledgerd closes it after 300 ms.
    let read = tokio::time::timeout(Duration::from_secs(60), silent.read(&mut byte)).await;
    match read {
        Ok(Ok(0)) | Ok(Err(_)) => {}
        Ok(Ok(n)) => panic!("ledgerd sent {n} bytes to a client that sent none"),
        Err(_) => panic!("a connection that never started its TLS handshake was kept open"),
    }
    // A client that does say hello is served.
    head(server.channel().await?).await?;
    Ok(())
}

// ---- finding 6: follow streams -------------------------------------------------------------

async fn follow(
    channel: &Channel,
    token: &str,
) -> Result<tonic::Streaming<pb::RecordedEvent>, Status> {
    let request = authed(
        token,
        pb::ReadAllRequest {
            from_sequence: 1,
            limit: 0,
            follow: true,
        },
    )
    .map_err(|e| Status::internal(e.to_string()))?;
    LedgerServiceClient::new(channel.clone())
        .read_all(request)
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_streams_are_capped_per_principal_and_in_all() -> anyhow::Result<()> {
    let keys_dir = tempfile::tempdir()?;
    let (private, public) = keys(keys_dir.path())?;
    let server = Server::start(
        &[
            (
                "LEDGERD_AUTH_PUBLIC_KEY",
                public.to_string_lossy().into_owned(),
            ),
            ("LEDGERD_FOLLOW_STREAMS_PER_PRINCIPAL_MAX", "2".to_string()),
            ("LEDGERD_FOLLOW_STREAMS_MAX", "3".to_string()),
        ],
        false,
    )?;
    let alice = token(&private, "auditor", "alice")?;
    let bob = token(&private, "auditor", "bob")?;
    let channel = server.channel().await?;

    let a1 = follow(&channel, &alice).await?;
    let a2 = follow(&channel, &alice).await?;
    let refused = follow(&channel, &alice)
        .await
        .expect_err("alice's third follow stream");
    assert_exhausted(&refused, "follow_streams_per_principal_max");
    // Another connection is the same principal.
    let refused = follow(&server.channel().await?, &alice)
        .await
        .expect_err("alice's third follow stream, on another connection");
    assert_exhausted(&refused, "follow_streams_per_principal_max");

    let _b1 = follow(&channel, &bob).await?;
    let refused = follow(&channel, &bob)
        .await
        .expect_err("a fourth follow stream in all");
    assert_exhausted(&refused, "follow_streams_max");

    // A read that does not follow is not counted.
    let mut read = LedgerServiceClient::new(channel.clone())
        .read_all(authed(
            &bob,
            pb::ReadAllRequest {
                from_sequence: 1,
                limit: 0,
                follow: false,
            },
        )?)
        .await?
        .into_inner();
    assert!(read.next().await.is_none(), "an empty log, read to its end");

    // A follow stream closed by its client makes room.
    drop(a1);
    let _b2 = eventually("bob's second follow stream", || async {
        Ok(follow(&channel, &bob).await?)
    })
    .await?;
    drop(a2);
    Ok(())
}

// ---- finding 9: invisible characters in free text ------------------------------------------

fn invalid_field(status: &Status) -> Option<String> {
    (status.code() == Code::InvalidArgument)
        .then(|| status.get_error_details().bad_request().cloned())
        .flatten()
        .and_then(|bad| bad.field_violations.first().map(|v| v.field.clone()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn names_with_bidi_or_zero_width_characters_are_refused_naming_the_field()
-> anyhow::Result<()> {
    let server = Server::start(&[], false)?;
    let mut ledger = LedgerServiceClient::new(server.channel().await?);
    let establish = |name: &str| pb::EstablishSystemRequest {
        meta: meta(),
        system: "kav".to_string(),
        name: name.to_string(),
        first_year: 2018,
    };
    let refused = ledger
        .establish_system(establish("Kingsmere\u{200B} ICS"))
        .await
        .expect_err("a zero-width space");
    assert_eq!(
        invalid_field(&refused).as_deref(),
        Some("name"),
        "{refused:?}"
    );
    assert!(refused.message().contains("U+200B"), "{refused:?}");
    ledger
        .establish_system(establish("Kingsmere & Alder Valley ICS"))
        .await?;

    let admit = |name: &str| pb::AdmitMemberRequest {
        meta: meta(),
        member: "KHFT".to_string(),
        name: name.to_string(),
        kind: pb::MemberKind::AcuteTrust.into(),
        in_control_total: true,
    };
    for name in [
        "Kingsmere Hospitals \u{202E}TFHK",
        "\u{2067}Kingsmere\u{2069}",
        "Kings\u{AD}mere",
    ] {
        let refused = ledger
            .admit_member(admit(name))
            .await
            .expect_err("a format character");
        assert_eq!(
            invalid_field(&refused).as_deref(),
            Some("name"),
            "{name:?}: {refused:?}"
        );
        assert!(
            !refused.message().contains(name),
            "the refusal does not echo the text: {refused:?}"
        );
    }
    let bulk = vec![
        pb::Command {
            command: Some(pb::command::Command::AdmitMember(admit(
                "Kingsmere Hospitals",
            ))),
        },
        pb::Command {
            command: Some(pb::command::Command::AdmitMember(pb::AdmitMemberRequest {
                member: "KCCG".to_string(),
                kind: pb::MemberKind::Commissioner.into(),
                ..admit("Kingsmere \u{200D}CCG")
            })),
        },
    ];
    let refused = ledger
        .submit_bulk(futures::stream::iter(bulk))
        .await
        .expect_err("a format character in a bulk call");
    assert_eq!(
        invalid_field(&refused).as_deref(),
        Some("commands[1].name"),
        "{refused:?}"
    );
    let head = ledger.head(pb::HeadRequest {}).await?.into_inner();
    assert_eq!(
        head.sequence, 2,
        "the system and the member before the refusal"
    );
    Ok(())
}
