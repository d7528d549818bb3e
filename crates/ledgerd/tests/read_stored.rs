//! `ReadStored` over real gRPC from ledgerd on a real sled: the log as the bytes on disk, in
//! pages of consecutive events, each value decoding (hash checked against its content) and
//! linking to the one before, ending at the head; `from_sequence` and `limit` respected.

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use domain::Event;
use tonic::transport::Channel;

fn command(command: pb::command::Command) -> pb::Command {
    pb::Command {
        command: Some(command),
    }
}

fn meta() -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: uuid::Uuid::new_v4().to_string(),
        ..Default::default()
    })
}

/// Establishes the system, admits KHFT and reports `metrics` monthly figures: 2 + `metrics`
/// events.
fn commands(metrics: u32) -> Vec<pb::Command> {
    let mut commands = vec![
        command(pb::command::Command::EstablishSystem(
            pb::EstablishSystemRequest {
                meta: meta(),
                system: "kav".to_string(),
                name: "Kingsmere & Alder Valley ICS".to_string(),
                first_year: 2018,
            },
        )),
        command(pb::command::Command::AdmitMember(pb::AdmitMemberRequest {
            meta: meta(),
            member: "KHFT".to_string(),
            name: "Kingsmere Hospitals NHS FT".to_string(),
            kind: pb::MemberKind::AcuteTrust.into(),
            in_control_total: true,
        })),
    ];
    for n in 0..metrics {
        commands.push(command(pb::command::Command::ReportMetric(
            pb::ReportMetricRequest {
                meta: meta(),
                member: "KHFT".to_string(),
                period: Some(pb::Period {
                    year: 2018,
                    month: n % 12 + 1,
                }),
                metric: pb::Metric::EmergencyAdmissions.into(),
                value: i64::from(n),
            },
        )));
    }
    commands
}

/// The (sequence, value) pairs of one `ReadStored` call, checking each page's sequences.
async fn read_stored(
    client: &mut LedgerServiceClient<Channel>,
    from_sequence: u64,
    limit: u64,
) -> anyhow::Result<(Vec<(u64, bytes::Bytes)>, usize)> {
    let mut pages = client
        .read_stored(pb::ReadStoredRequest {
            from_sequence,
            limit,
        })
        .await?
        .into_inner();
    let mut values = Vec::new();
    let mut count = 0;
    while let Some(page) = pages.message().await? {
        anyhow::ensure!(!page.events.is_empty(), "an empty page");
        if let Some((last, _)) = values.last() {
            anyhow::ensure!(page.first_sequence == last + 1, "pages are consecutive");
        }
        values.extend((page.first_sequence..).zip(page.events));
        count += 1;
    }
    Ok((values, count))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_stored_sends_the_log_as_stored_in_consecutive_pages() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().to_path_buf(),
        // Small pages, so the log takes several.
        read_page_events: 100,
        ..ledgerd::config::Config::default()
    })
    .await?;
    let mut client = LedgerServiceClient::connect(ledgerd.url()).await?;
    let reply = client
        .submit_bulk(futures::stream::iter(commands(448)))
        .await?
        .into_inner();
    assert_eq!(reply.last_sequence, 450);
    let head = client.head(pb::HeadRequest {}).await?.into_inner();

    let (values, pages) = read_stored(&mut client, 0, 0).await?;
    assert_eq!(values.len(), 450, "from 0 is from 1, to the head");
    assert_eq!(pages, 5, "pages of read_page_events");
    let mut prev_hash = [0u8; 32];
    for (sequence, value) in &values {
        let recorded = store::codec::decode_value::<Event>(value)?;
        assert_eq!(recorded.sequence, *sequence);
        assert_eq!(recorded.prev_hash, prev_hash, "event {sequence} links");
        prev_hash = recorded.hash;
    }
    assert_eq!(prev_hash.to_vec(), head.hash, "it ends at the head");

    let (window, _) = read_stored(&mut client, 10, 5).await?;
    let sequences: Vec<u64> = window.iter().map(|(s, _)| *s).collect();
    assert_eq!(sequences, [10, 11, 12, 13, 14]);
    assert_eq!(window[0].1, values[9].1, "the same bytes");
    let (beyond, pages) = read_stored(&mut client, 451, 0).await?;
    assert!(beyond.is_empty() && pages == 0, "nothing past the head");

    ledgerd.stop().await
}
