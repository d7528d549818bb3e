//! Stopping ledgerd signs a last checkpoint covering the head and publishes it — with anything
//! the relay had not yet published — before ledgerd exits, so the regulator holds it now
//! rather than at the next start. Real nats-server, real gRPC on loopback, real sled.

use std::time::Duration;

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use ed25519_dalek::SigningKey;
use ed25519_dalek::pkcs8::EncodePrivateKey;

fn command(command: pb::command::Command) -> pb::Command {
    pb::Command {
        command: Some(command),
    }
}

fn meta(n: u8) -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: format!("00000000-0000-4000-8000-0000000000{n:02}"),
        ..Default::default()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_checkpoint_reaches_jetstream_before_ledgerd_exits() -> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let dir = tempfile::tempdir()?;
    let key = SigningKey::from_bytes(&[7; 32]);
    let key_path = dir.path().join("ledger-checkpoint.pem");
    std::fs::write(&key_path, key.to_pkcs8_pem(Default::default())?.as_bytes())?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().join("ledgerd"),
        nats_url: Some(nats.url()),
        checkpoint_key: Some(key_path),
        // Neither by count nor by time during the test: only the one on stopping.
        checkpoint_every_events: 1_000,
        checkpoint_every_s: 3_600,
        ..ledgerd::config::Config::default()
    })
    .await?;
    let url = ledgerd.url();
    let mut client = LedgerServiceClient::connect(url).await?;
    let commands = vec![
        command(pb::command::Command::EstablishSystem(
            pb::EstablishSystemRequest {
                meta: meta(1),
                system: "kav".to_string(),
                name: "Kingsmere & Alder Valley ICS".to_string(),
                first_year: 2018,
            },
        )),
        command(pb::command::Command::AdmitMember(pb::AdmitMemberRequest {
            meta: meta(2),
            member: "KHFT".to_string(),
            name: "Kingsmere Hospitals NHS FT".to_string(),
            kind: pb::MemberKind::AcuteTrust.into(),
            in_control_total: true,
        })),
    ];
    let reply = client
        .submit_bulk(futures::stream::iter(commands))
        .await?
        .into_inner();
    assert_eq!(reply.last_sequence, 2);
    let head = client.head(pb::HeadRequest {}).await?.into_inner();

    tokio::time::timeout(Duration::from_secs(30), ledgerd.stop()).await??;

    let js = bus::jetstream(bus::connect(&nats.url(), "test").await?);
    let stream = js.get_stream(bus::STREAM_NAME).await?;
    let message = stream
        .get_last_raw_message_by_subject("ics.kav.audit.checkpoint")
        .await?;
    let signed = audit::SignedCheckpoint::decode(&message.payload)?;
    signed.verify(&key.verifying_key())?;
    assert_eq!(signed.checkpoint.sequence, 2);
    assert_eq!(signed.checkpoint.chain_hash.to_vec(), head.hash);
    Ok(())
}
