//! `icsctl` against the real `ledgerd` binary over real gRPC: the commands the demo scenario
//! does not use (claw back, dispute and resolve, vary a budget and a contract, terminate),
//! each posted with its flags and amounts in pounds and recorded exactly in pence; `icsctl
//! events` reading the log and one stream; and following the log, by `icsctl events --follow`
//! and by `ReadAll` with `follow`, as new events are recorded.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use api::pb;
use domain::contract::PaymentModel;
use domain::{BudgetEvent, ContractEvent, Event, FundEvent};
use e2e::{Ledgerd, head};
use futures::StreamExt;

/// A small ledger for the commands to act on: a contract with an invoice, a pooled budget,
/// and a fund whose Q1 tranche was assessed and paid.
const SETUP: &str = r#"
establish-system --system kav --name "Kingsmere & Alder Valley ICS" --first-year 2018/19
admit-member --member KCCG --name "Kingsmere CCG" --kind commissioner --in-control-total
admit-member --member KHFT --name "Kingsmere Hospitals NHS FT" --kind acute-trust --in-control-total
admit-member --member KCC --name "Kingsmere County Council" --kind local-authority
agree-contract --contract C1 --commissioner KCCG --provider KHFT --year 2018/19 --block 1200000 --description "Community block"
raise-invoice --contract C1 --invoice C1-01 --period 2018/19-M1 --amount 100000
establish-budget --budget BCF --name "Better Care Fund" --host KCC --year 2018/19 --partner KCCG --partner KCC --scheme "COMMUNITY:Community health and social care" --overspend-share KCCG:50% --overspend-share KCC:50% --underspend-share KCCG:70% --underspend-share KCC:30%
allocate-fund --fund SSF --name "System sustainability fund" --year 2018/19 --recipient KHFT:4800000 --condition FIN:system-finance:70% --condition AE:ae-four-hour>=90%:30%
assess-tranche --fund SSF --quarter 1 --evidence FIN:actual=-1800000,control-total=-1800000 --evidence AE:performance=91.00%
pay-tranche --fund SSF --quarter 1 --period 2018/19-M4
"#;

/// Starts ledgerd (no NATS) and loads [`SETUP`] through `icsctl load`.
async fn set_up(dir: &std::path::Path) -> anyhow::Result<Ledgerd> {
    let ledgerd = Ledgerd::start(&dir.join("ledgerd"), None)?;
    let scenario = dir.join("setup.ics");
    std::fs::write(&scenario, SETUP)?;
    e2e::icsctl(
        &ledgerd.url(),
        &["load", "--quiet", &scenario.to_string_lossy()],
    )?;
    Ok(ledgerd)
}

/// Runs icsctl with the arguments of a command line, split as a shell would; whether it
/// succeeded, and what it printed.
fn icsctl_line(line: &str) -> anyhow::Result<(bool, String)> {
    let args = shlex::split(line).ok_or_else(|| anyhow::anyhow!("unbalanced quotes in {line}"))?;
    e2e::icsctl_outcome(&args.iter().map(String::as_str).collect::<Vec<_>>())
}

/// The domain event a recorded event carries.
fn event_of(recorded: &pb::RecordedEvent) -> anyhow::Result<Event> {
    let event = recorded
        .event
        .clone()
        .ok_or_else(|| anyhow::anyhow!("event {} has no payload", recorded.sequence))?;
    api::event_from_proto(event).map_err(|e| anyhow::anyhow!("event {}: {e}", recorded.sequence))
}

/// The events after `after`, read through gRPC.
async fn events_after(ledgerd: &Ledgerd, after: u64) -> anyhow::Result<Vec<pb::RecordedEvent>> {
    e2e::read_log(&mut ledgerd.client().await?, after + 1, 0).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_command_the_demo_does_not_use_is_recorded_exactly_as_posted() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = set_up(dir.path()).await?;
    let url = ledgerd.url();
    let before = head(&mut ledgerd.client().await?).await?.sequence;

    for line in [
        r#"claw-back --fund SSF --quarter 1 --member KHFT --period 2018/19-M5 --amount 12345.67 --reason "Q1 evidence restated""#,
        r#"raise-dispute --contract C1 --dispute D1 --invoice C1-01 --period 2018/19-M2 --amount 1000.01 --reason "Activity not evidenced""#,
        r#"resolve-dispute --contract C1 --dispute D1 --period 2018/19-M3 --provider-keeps 250.50 --resolution "Part evidenced""#,
        r#"vary-budget --budget BCF --reason "Grant joins the pool" --add-scheme "DFG:Disabled Facilities Grant:ring-fenced" --overspend-share KCCG:60% --overspend-share KCC:40%"#,
        r#"vary-contract --contract C1 --period 2018/19-M6 --reason "Re-based for winter" --block 1300000.99"#,
        r#"terminate-contract --contract C1 --period 2018/19-M12 --reason "Service moved to another provider""#,
    ] {
        let (ok, text) = icsctl_line(&format!("--server {url} {line}"))?;
        anyhow::ensure!(ok, "{line}: {text}");
    }

    let recorded = events_after(&ledgerd, before).await?;
    let events = recorded
        .iter()
        .map(event_of)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let [
        claw_back,
        raised,
        resolved,
        budget_varied,
        contract_varied,
        terminated,
    ] = events.as_slice()
    else {
        anyhow::bail!("expected six events, got {events:#?}");
    };

    let Event::Fund {
        fund,
        event:
            FundEvent::ClawedBack {
                quarter,
                member,
                period,
                amount,
                reason,
            },
    } = claw_back
    else {
        anyhow::bail!("not a claw-back: {claw_back:?}");
    };
    assert_eq!(
        (fund.as_str(), quarter.number(), member.as_str()),
        ("SSF", 1, "KHFT")
    );
    assert_eq!(period.to_string(), "2018/19-M5");
    assert_eq!(amount.get(), 1_234_567, "£12,345.67 in pence");
    assert_eq!(reason.as_str(), "Q1 evidence restated");

    let Event::Contract {
        contract,
        event:
            ContractEvent::DisputeRaised {
                dispute,
                invoice,
                period,
                amount,
                ..
            },
    } = raised
    else {
        anyhow::bail!("not a dispute: {raised:?}");
    };
    assert_eq!((contract.as_str(), dispute.as_str()), ("C1", "D1"));
    assert_eq!(invoice.as_ref().map(|i| i.as_str()), Some("C1-01"));
    assert_eq!(period.to_string(), "2018/19-M2");
    assert_eq!(amount.get(), 100_001, "£1,000.01 in pence");

    let Event::Contract {
        event:
            ContractEvent::DisputeResolved {
                dispute,
                provider_keeps,
                written_off,
                resolution,
                ..
            },
        ..
    } = resolved
    else {
        anyhow::bail!("not a resolution: {resolved:?}");
    };
    assert_eq!(dispute.as_str(), "D1");
    assert_eq!(provider_keeps.get(), 25_050, "£250.50 in pence");
    assert_eq!(written_off.get(), 100_001 - 25_050, "the rest written off");
    assert_eq!(resolution.as_str(), "Part evidenced");

    let Event::Budget {
        event:
            BudgetEvent::Varied {
                overspend_shares,
                underspend_shares,
                add_schemes,
                ..
            },
        ..
    } = budget_varied
    else {
        anyhow::bail!("not a budget variation: {budget_varied:?}");
    };
    let shares: Vec<(String, u32)> = overspend_shares
        .iter()
        .flatten()
        .map(|s| (s.member.as_str().to_string(), s.share.get()))
        .collect();
    assert_eq!(
        shares,
        [("KCCG".to_string(), 6_000), ("KCC".to_string(), 4_000)]
    );
    assert_eq!(*underspend_shares, None, "underspend shares unchanged");
    let schemes: Vec<(&str, bool)> = add_schemes
        .iter()
        .map(|s| (s.scheme.as_str(), s.ring_fenced))
        .collect();
    assert_eq!(schemes, [("DFG", true)]);

    let Event::Contract {
        event:
            ContractEvent::Varied {
                period,
                model,
                annual_value_before,
                annual_value_after,
                ..
            },
        ..
    } = contract_varied
    else {
        anyhow::bail!("not a contract variation: {contract_varied:?}");
    };
    assert_eq!(period.to_string(), "2018/19-M6");
    assert!(
        matches!(model, PaymentModel::Block { annual_value } if annual_value.get() == 130_000_099),
        "£1,300,000.99 a year in pence: {model:?}"
    );
    assert_eq!(annual_value_before.get(), 120_000_000);
    assert_eq!(annual_value_after.get(), 130_000_099);

    let Event::Contract {
        event: ContractEvent::Terminated { period, reason },
        ..
    } = terminated
    else {
        anyhow::bail!("not a termination: {terminated:?}");
    };
    assert_eq!(period.to_string(), "2018/19-M12");
    assert_eq!(reason.as_str(), "Service moved to another provider");

    // A refused command exits non-zero, says why, and records nothing.
    let refused = format!(
        r#"--server {url} claw-back --fund SSF --quarter 1 --member KHFT --period 2018/19-M5 --amount -1.00 --reason "negative""#
    );
    let (ok, text) = icsctl_line(&refused)?;
    assert!(!ok, "a negative claw-back was accepted: {text}");
    assert!(
        text.contains("amount"),
        "the refusal names the field: {text}"
    );
    let after = head(&mut ledgerd.client().await?).await?.sequence;
    assert_eq!(after, before + 6, "the refusal recorded nothing");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn icsctl_events_reads_the_log_and_one_stream() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = set_up(dir.path()).await?;
    let url = ledgerd.url();
    let all = events_after(&ledgerd, 0).await?;
    assert_eq!(all.len(), 10, "one event per setup command");

    // The log from sequence 3, four events, one JSON object a line.
    let text = e2e::icsctl(&url, &["--json", "events", "--from", "3", "--limit", "4"])?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let sequences: Vec<u64> = lines
        .iter()
        .filter_map(|l| l["sequence"].as_u64())
        .collect();
    assert_eq!(sequences, [3, 4, 5, 6]);
    for (line, event) in lines.iter().zip(&all[2..6]) {
        assert_eq!(line["event_id"], event.event_id.as_str());
        assert_eq!(line["event_type"], event.event_type.as_str());
        assert_eq!(line["hash"], hex::encode(&event.hash));
    }
    assert!(
        text.contains("10000000"),
        "the invoice of £100,000 is 10,000,000 pence in the payload:\n{text}"
    );

    // One stream: the contract's two events, versions 1 and 2.
    let text = e2e::icsctl(&url, &["--json", "events", "--stream", "contract/C1"])?;
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(serde_json::from_str)
        .collect::<Result<_, _>>()?;
    let read: Vec<(u64, &str)> = lines
        .iter()
        .map(|l| {
            (
                l["version"].as_u64().unwrap_or(0),
                l["event_type"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        read,
        [(1, "contract.agreed"), (2, "contract.invoice_raised")]
    );

    // The table for people: a header and a row per event.
    let table = e2e::icsctl(&url, &["events", "--stream", "fund/SSF"])?;
    for expected in ["seq", "stream", "funding.allocated", "funding.tranche_paid"] {
        assert!(table.contains(expected), "{expected} missing:\n{table}");
    }

    // A stream that does not exist, and one that cannot: refused, saying which.
    let (ok, text) = e2e::icsctl_outcome(&["--server", &url, "events", "--stream", "fund/NONE"])?;
    assert!(!ok && text.contains("fund/NONE"), "{text}");
    let (ok, text) = e2e::icsctl_outcome(&["--server", &url, "events", "--stream", "pool/X"])?;
    assert!(!ok && text.contains("stream"), "{text}");
    Ok(())
}

/// Reads lines of a child's stdout on a thread, so the test can wait with a timeout.
fn lines_of(stdout: std::process::ChildStdout) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { return };
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    rx
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn following_the_log_sees_each_event_as_it_is_recorded() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let ledgerd = set_up(dir.path()).await?;
    let url = ledgerd.url();
    let mut client = ledgerd.client().await?;
    let before = head(&mut client).await?.sequence;

    // Over gRPC: ReadAll with follow from the next sequence stays open and waits.
    let mut followed = client
        .read_all(pb::ReadAllRequest {
            from_sequence: before + 1,
            limit: 0,
            follow: true,
        })
        .await?
        .into_inner();
    // And icsctl, from the last recorded event.
    let mut child = testkit::ChildGuard::new(
        "icsctl events --follow",
        Command::new(testkit::workspace_binary("icsctl")?)
            .args(["--server", &url, "--json", "events", "--follow"])
            .args(["--from", &before.to_string()])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()?,
    );
    let stdout = child
        .child_mut()
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let lines = lines_of(stdout);
    let sequence_of = |line: &str| -> anyhow::Result<u64> {
        let value: serde_json::Value = serde_json::from_str(line)?;
        value["sequence"]
            .as_u64()
            .ok_or_else(|| anyhow::anyhow!("no sequence in {line}"))
    };
    let first = lines.recv_timeout(Duration::from_secs(20))?;
    assert_eq!(
        sequence_of(&first)?,
        before,
        "the recorded event it starts at"
    );
    assert!(
        lines.recv_timeout(Duration::from_millis(300)).is_err(),
        "nothing more before anything is recorded"
    );

    for (n, invoice) in ["C1-02", "C1-03"].into_iter().enumerate() {
        e2e::icsctl(
            &url,
            &[
                "raise-invoice",
                "--contract",
                "C1",
                "--invoice",
                invoice,
                "--period",
                &format!("2018/19-M{}", n + 2),
                "--amount",
                "100000",
            ],
        )?;
        let expected = before + 1 + n as u64;
        let event = tokio::time::timeout(Duration::from_secs(20), followed.next())
            .await?
            .ok_or_else(|| anyhow::anyhow!("the followed ReadAll ended"))??;
        assert_eq!(event.sequence, expected);
        assert_eq!(event.event_type, "contract.invoice_raised");
        let line = lines.recv_timeout(Duration::from_secs(20))?;
        assert_eq!(sequence_of(&line)?, expected, "icsctl printed it: {line}");
    }
    assert!(
        child.try_wait()?.is_none(),
        "icsctl events --follow is still following"
    );
    child.terminate(Duration::from_secs(5))?;

    // --follow reads the whole log: with --stream it is refused rather than ignored.
    let (ok, text) = e2e::icsctl_outcome(&[
        "--server",
        &url,
        "events",
        "--follow",
        "--stream",
        "contract/C1",
    ])?;
    assert!(!ok, "--follow with --stream was accepted: {text}");
    Ok(())
}

/// `icsctl events | head`: the reader takes a line and goes; icsctl ends quietly, status 0,
/// rather than panicking on the closed pipe.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reader_that_stops_early_ends_icsctl_quietly() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // The demo's log, as JSON: more than a pipe holds, so icsctl is still printing when its
    // reader goes.
    let ledgerd = Ledgerd::start(&dir.path().join("ledgerd"), None)?;
    let scenario = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &scenario])?;
    let mut child = Command::new(testkit::workspace_binary("icsctl")?)
        .args(["--server", &ledgerd.url(), "--json", "events"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let stdout = child
        .stdout
        .take()
        .ok_or_else(|| anyhow::anyhow!("no stdout"))?;
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first)?;
    assert!(!first.is_empty(), "icsctl printed nothing");
    // The reader is gone (its end of the pipe dropped with the BufReader).
    let output = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
    Ok(())
}
