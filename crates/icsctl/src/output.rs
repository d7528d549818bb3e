//! What icsctl prints: tables for people, JSON for scripts, and errors with the field and rule
//! the server named.

use std::time::{Duration, Instant};

use api::pb;
use comfy_table::{Table, presets::UTF8_FULL_CONDENSED};
use futures::StreamExt;
use serde_json::json;
use tonic_types::StatusExt;

use crate::Global;

/// A gRPC status as a readable error: code, message, and the fields it names.
pub fn status_error(status: tonic::Status) -> anyhow::Error {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let details = status.get_error_details();
    if let Some(bad_request) = details.bad_request() {
        for violation in &bad_request.field_violations {
            text.push_str(&format!(
                "\n  field {}: {}",
                violation.field, violation.description
            ));
        }
    }
    anyhow::anyhow!(text)
}

fn hash_hex(hash: &[u8]) -> String {
    if hash.is_empty() {
        "-".to_string()
    } else {
        hex::encode(hash)
    }
}

fn time_text(recorded_at_us: i64) -> String {
    jiff::Timestamp::from_microsecond(recorded_at_us)
        .map_or_else(|_| recorded_at_us.to_string(), |t| t.to_string())
}

pub fn command_reply(global: &Global, reply: &pb::CommandReply) -> anyhow::Result<()> {
    if global.json {
        println!(
            "{}",
            json!({
                "stream": reply.stream, "first_version": reply.first_version, "last_version": reply.last_version,
                "first_sequence": reply.first_sequence, "last_sequence": reply.last_sequence,
                "hash": hash_hex(&reply.hash), "recorded_at": time_text(reply.recorded_at_us), "duplicate": reply.duplicate,
            })
        );
        return Ok(());
    }
    let what = if reply.duplicate {
        "already recorded"
    } else {
        "recorded"
    };
    println!(
        "{what}: {} v{}..{} at sequence {}..{} ({})",
        reply.stream,
        reply.first_version,
        reply.last_version,
        reply.first_sequence,
        reply.last_sequence,
        hash_hex(&reply.hash)
    );
    Ok(())
}

pub fn bulk_reply(global: &Global, name: &str, reply: &pb::BulkReply) -> anyhow::Result<()> {
    if global.json {
        println!(
            "{}",
            json!({
                "file": name, "accepted": reply.accepted, "duplicates": reply.duplicates,
                "first_sequence": reply.first_sequence, "last_sequence": reply.last_sequence,
                "head_hash": hash_hex(&reply.head_hash),
            })
        );
        return Ok(());
    }
    println!(
        "loaded {name}: {} commands recorded, {} already recorded; sequences {}..{}",
        reply.accepted, reply.duplicates, reply.first_sequence, reply.last_sequence
    );
    Ok(())
}

pub async fn head(global: &Global) -> anyhow::Result<()> {
    let mut client = crate::connect(global).await?;
    let head = client
        .head(crate::request(global, pb::HeadRequest {})?)
        .await
        .map_err(status_error)?
        .into_inner();
    if global.json {
        println!(
            "{}",
            json!({
                "sequence": head.sequence, "hash": hash_hex(&head.hash),
                "events": { "system": head.system_events, "budget": head.budget_events,
                            "funding": head.funding_events, "contract": head.contract_events },
                "stuck": (head.stuck_sequence != 0).then(|| json!({
                    "sequence": head.stuck_sequence, "reason": head.stuck_reason,
                })),
            })
        );
        return Ok(());
    }
    let mut table = Table::new();
    table
        .load_style(UTF8_FULL_CONDENSED)
        .set_header(vec!["ledger head", ""]);
    table.add_row(vec!["sequence".to_string(), head.sequence.to_string()]);
    table.add_row(vec!["hash".to_string(), hash_hex(&head.hash)]);
    table.add_row(vec![
        "system events".to_string(),
        head.system_events.to_string(),
    ]);
    table.add_row(vec![
        "budget events".to_string(),
        head.budget_events.to_string(),
    ]);
    table.add_row(vec![
        "funding events".to_string(),
        head.funding_events.to_string(),
    ]);
    table.add_row(vec![
        "contract events".to_string(),
        head.contract_events.to_string(),
    ]);
    if head.stuck_sequence != 0 {
        table.add_row(vec![
            "takes no commands: stuck at".to_string(),
            format!("event {}: {}", head.stuck_sequence, head.stuck_reason),
        ]);
    }
    println!("{table}");
    Ok(())
}

pub async fn events(
    global: &Global,
    from: u64,
    limit: u64,
    follow: bool,
    stream: Option<String>,
) -> anyhow::Result<()> {
    let mut client = crate::connect(global).await?;
    let mut events = match stream {
        Some(stream) => {
            let request = pb::ReadStreamRequest {
                stream,
                from_version: from,
                limit,
            };
            client
                .read_stream(crate::request(global, request)?)
                .await
                .map_err(status_error)?
                .into_inner()
        }
        None => {
            let request = pb::ReadAllRequest {
                from_sequence: from,
                limit,
                follow,
            };
            client
                .read_all(crate::request(global, request)?)
                .await
                .map_err(status_error)?
                .into_inner()
        }
    };
    // Followed logs print line by line; finite reads print one table.
    let mut table = (!global.json && !follow).then(|| {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            "seq",
            "recorded at",
            "stream",
            "ver",
            "event",
            "period",
            "actor",
        ]);
        table
    });
    while let Some(event) = events.next().await {
        let event = event.map_err(status_error)?;
        let row = event_row(&event);
        if global.json {
            println!("{}", event_json(event)?);
        } else if let Some(table) = table.as_mut() {
            table.add_row(row);
        } else {
            println!("{}", row.join("  "));
        }
    }
    if let Some(table) = table {
        println!("{table}");
    }
    Ok(())
}

fn event_row(event: &pb::RecordedEvent) -> Vec<String> {
    vec![
        event.sequence.to_string(),
        time_text(event.recorded_at_us),
        event.stream.clone(),
        event.version.to_string(),
        event.event_type.clone(),
        event
            .effective_period
            .as_ref()
            .map_or_else(String::new, |p| {
                api::period_from_proto(Some(*p), "effective_period")
                    .map_or_else(|_| format!("{p:?}"), |p| p.to_string())
            }),
        event.actor.clone(),
    ]
}

/// One event as a JSON object: the envelope, and the payload in the domain's own shape.
fn event_json(event: pb::RecordedEvent) -> anyhow::Result<serde_json::Value> {
    let payload = match event.event {
        Some(e) => serde_json::to_value(
            api::event_from_proto(e).map_err(|e| anyhow::anyhow!("undecodable event: {e}"))?,
        )?,
        None => serde_json::Value::Null,
    };
    Ok(json!({
        "sequence": event.sequence, "stream": event.stream, "version": event.version,
        "event_id": event.event_id, "request_id": event.request_id, "correlation_id": event.correlation_id,
        "recorded_at": time_text(event.recorded_at_us), "actor": event.actor, "event_type": event.event_type,
        "schema_version": event.schema_version, "prev_hash": hash_hex(&event.prev_hash), "hash": hash_hex(&event.hash),
        "event": payload,
    }))
}

/// Compares what JetStream holds with the ledger head.
pub async fn bus_status(
    global: &Global,
    nats: &crate::nats::NatsArgs,
    system: &str,
    stream_name: &str,
    wait: bool,
    timeout: Duration,
) -> anyhow::Result<()> {
    let system = domain::SystemId::new(system).map_err(|e| anyhow::anyhow!("--system {e}"))?;
    let mut ledger = crate::connect(global).await?;
    let head = ledger
        .head(crate::request(global, pb::HeadRequest {})?)
        .await
        .map_err(status_error)?
        .into_inner();
    let client = nats.connect("icsctl").await?;
    let js = async_nats::jetstream::new(client);
    let started = Instant::now();
    let (messages, last) = loop {
        let messages = bus::system_message_count(&js, stream_name, &system).await?;
        let last = bus::last_published(&js, stream_name, &system).await?;
        let caught_up =
            messages >= head.sequence && last.as_ref().is_some_and(|l| l.sequence >= head.sequence);
        if caught_up || !wait || started.elapsed() > timeout {
            break (messages, last);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let (last_sequence, last_hash) =
        last.map_or((0, String::new()), |l| (l.sequence, hex::encode(l.hash)));
    let agrees = last_sequence == head.sequence
        && (head.sequence == 0 || last_hash == hex::encode(&head.hash));
    if global.json {
        println!(
            "{}",
            json!({
                "stream": stream_name, "messages": messages, "last_sequence": last_sequence, "last_hash": last_hash,
                "ledger_sequence": head.sequence, "ledger_hash": hash_hex(&head.hash), "agrees": agrees,
            })
        );
    } else {
        let mut table = Table::new();
        table.load_style(UTF8_FULL_CONDENSED).set_header(vec![
            format!("JetStream stream {stream_name}"),
            String::new(),
        ]);
        table.add_row(vec![
            format!("messages on ics.{system}.>"),
            messages.to_string(),
        ]);
        table.add_row(vec![
            "last message's ledger sequence".to_string(),
            last_sequence.to_string(),
        ]);
        table.add_row(vec!["last message's hash".to_string(), last_hash]);
        table.add_row(vec![
            "agrees with the ledger head".to_string(),
            if agrees { "yes" } else { "NO" }.to_string(),
        ]);
        println!("{table}");
    }
    if !agrees {
        anyhow::bail!(
            "JetStream does not hold the ledger head (sequence {})",
            head.sequence
        );
    }
    Ok(())
}
