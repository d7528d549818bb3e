//! The audit end to end, with real `ledgerd`, `positiond` and `icsctl` binaries and a real
//! nats-server: the demo ICS is loaded through ledgerd while positiond folds it; then
//!
//! - at the sequence of each quarterly tranche assessment, `icsctl audit replay --to-seq`
//!   prints the position and the fund statement byte for byte as `icsctl position|fund
//!   --as-of` prints positiond's (JSON and tables), its export rebuilds the canonical bytes
//!   the domain computes from the log and the fingerprint positiond serves, and `--as-of TIME`
//!   agrees with positiond's as-of query at that time;
//! - with ledgerd stopped, the same replays from its sled directory (`--data-dir`) agree too;
//! - returns are filed (`icsctl file-return`) and checked (`icsctl audit check-return`): the
//!   exported report checks out (exit 0); a report altered before filing does not (non-zero
//!   exit, the difference shown by member and field); so does a return filed by flags with
//!   positiond's own fingerprint; positiond folds the filed returns and serves on;
//! - the actor trail (`icsctl audit trail`) filtered by member, actor, stream and period.

use std::path::Path;
use std::time::Duration;

use api::pb;
use domain::position::{AnyReport, AsOf};
use e2e::{Ledgerd, Positiond};

const CATCH_UP: Duration = Duration::from_secs(60);

/// The report in an export file, as the domain reads it.
fn exported(path: &Path) -> anyhow::Result<(serde_json::Value, AnyReport)> {
    let value: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let report: AnyReport = serde_json::from_value(value["report"].clone())?;
    Ok((value, report))
}

/// Pounds as icsctl prints them: `(1,234.56)` for a negative, `1,234.56` otherwise.
fn money(pence: i64) -> String {
    let magnitude = pence.unsigned_abs();
    let whole = (magnitude / 100).to_string();
    let mut grouped = String::new();
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i).is_multiple_of(3) {
            grouped.push(',');
        }
        grouped.push(digit);
    }
    let text = format!("{grouped}.{:02}", magnitude % 100);
    if pence < 0 { format!("({text})") } else { text }
}

fn text(output: &std::process::Output) -> (String, String) {
    (
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

/// The global sequence `icsctl --json <post>` reports it recorded.
fn recorded_at(json: &str) -> anyhow::Result<u64> {
    let reply: serde_json::Value = serde_json::from_str(json)?;
    reply["last_sequence"]
        .as_u64()
        .ok_or_else(|| anyhow::anyhow!("no last_sequence in {json}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_gives_positiond_reports_byte_for_byte_and_checks_filed_returns()
-> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start(&data_dir, Some(&nats.url()))?;
    let positiond = Positiond::start(
        &work.path().join("positiond"),
        &nats.url(),
        &ledgerd.url(),
        "positiond",
    )?;
    let demo = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&ledgerd.url(), &["load", "--quiet", &demo])?;
    let mut ledger = ledgerd.client().await?;
    let head = e2e::head(&mut ledger).await?;
    positiond.wait_for(head.sequence, CATCH_UP).await?;
    let events = e2e::read_all(&mut ledger).await?;
    let local = e2e::fold(&events)?;
    let quarters = e2e::assessments(&events);
    assert_eq!(quarters.len(), 4, "the demo assesses every quarter");

    let url = ledgerd.url();
    let position_server = positiond.url();
    // What icsctl prints of positiond's report, and of the replay.
    let served = |report: &str, month: &str, as_of: &str, extra: &[&str]| {
        let mut args = vec![
            "--position-server",
            position_server.as_str(),
            report,
            "--year",
            "2018/19",
            "--month",
            month,
            "--as-of",
            as_of,
        ];
        args.extend_from_slice(extra);
        e2e::icsctl(&url, &args)
    };
    let replayed = |server: &str, report: &str, month: &str, at: &[&str], extra: &[&str]| {
        let mut args = vec![
            "audit", "replay", report, "--year", "2018", "--month", month,
        ];
        args.extend_from_slice(at);
        args.extend_from_slice(extra);
        e2e::icsctl(server, &args)
    };
    let mut client = positiond.client().await?;
    for (index, &(sequence, recorded_at_us)) in quarters.iter().enumerate() {
        let month = ((index + 1) * 3).to_string();
        let seq = sequence.to_string();
        for report in ["position", "fund"] {
            let at = ["--to-seq", seq.as_str()];
            assert_eq!(
                replayed(&url, report, &month, &at, &["--json"])?,
                served(report, &month, &seq, &["--json"])?,
                "{report} M{month} at {sequence}: JSON"
            );
            assert_eq!(
                replayed(&url, report, &month, &at, &[])?,
                served(report, &month, &seq, &[])?,
                "{report} M{month} at {sequence}: table"
            );
            // The export rebuilds the canonical bytes the domain computes from the log, and
            // its fingerprint is the one positiond serves.
            let file = work.path().join(format!("{report}-q{}.json", index + 1));
            let file_text = file.to_string_lossy().to_string();
            replayed(&url, report, &month, &at, &["--export", &file_text])?;
            let (value, from_file) = exported(&file)?;
            let kind = from_file.kind();
            let m = domain::Month::new(u32::try_from(index + 1)? * 3)?;
            let expected = local.at(AsOf::Sequence(sequence))?.report(
                kind,
                domain::FinancialYear::new(2018)?,
                m,
            )?;
            assert_eq!(from_file.canonical_bytes()?, expected.canonical_bytes()?);
            let request = api::position_pb::ReportRequest {
                year: 2018,
                month: u32::from(m.number()),
                as_of: Some(api::position_pb::AsOf {
                    at: Some(api::position_pb::as_of::At::Sequence(sequence)),
                }),
            };
            let basis = match report {
                "position" => client.get_position(request).await?.into_inner().basis,
                _ => client.get_funds(request).await?.into_inner().basis,
            }
            .ok_or_else(|| anyhow::anyhow!("no basis"))?;
            assert_eq!(basis.fingerprint, from_file.fingerprint()?.to_vec());
            assert_eq!(value["fingerprint"], hex::encode(&basis.fingerprint));
        }
        // As of a moment of transaction time: the assessment's own.
        let time = jiff::Timestamp::from_microsecond(recorded_at_us)?.to_string();
        assert_eq!(
            replayed(&url, "position", &month, &["--as-of", &time], &["--json"])?,
            served("position", &month, &time, &["--json"])?,
            "position M{month} as of {time}"
        );
    }
    // Every other report, at the year end.
    let q4 = quarters[3].0.to_string();
    for report in ["budget", "contract", "consolidation", "aob", "adjustments"] {
        assert_eq!(
            replayed(&url, report, "12", &["--to-seq", &q4], &["--json"])?,
            served(report, "12", &q4, &["--json"])?,
            "{report} at {q4}"
        );
    }
    // Refusals say what is wrong.
    let beyond = (head.sequence + 1).to_string();
    let error =
        replayed(&url, "position", "6", &["--to-seq", &beyond], &[]).expect_err("beyond the head");
    assert!(error.to_string().contains("beyond"), "{error}");

    // ledgerd stopped: the same reports from its sled directory.
    ledgerd.terminate()?;
    let dir = data_dir.to_string_lossy().to_string();
    let nowhere = "http://127.0.0.1:9"; // no ledgerd: the data directory is all there is
    for (index, &(sequence, _)) in quarters.iter().enumerate() {
        let month = ((index + 1) * 3).to_string();
        let seq = sequence.to_string();
        for report in ["position", "fund"] {
            assert_eq!(
                replayed(
                    nowhere,
                    report,
                    &month,
                    &["--to-seq", &seq, "--data-dir", &dir],
                    &["--json"]
                )?,
                served(report, &month, &seq, &["--json"])?,
                "{report} M{month} at {sequence} from the data directory"
            );
        }
    }
    let error = replayed(
        nowhere,
        "position",
        "6",
        &["--data-dir", &work.path().join("absent").to_string_lossy()],
        &[],
    )
    .expect_err("no ledger there");
    assert!(
        error.to_string().contains("not a ledgerd data directory"),
        "{error}"
    );
    assert!(
        !work.path().join("absent").exists(),
        "nothing is created where no ledger was"
    );
    ledgerd.restart()?;
    let mut ledger = connect(&ledgerd).await?;

    // KHFT files its Q2 position as it is shown it (its own row and the system's totals,
    // as positiond limits a member's view), exported from the replay: it checks out.
    let (q2, _) = quarters[1];
    let q2_file = work.path().join("position-q2-khft.json");
    let q2_path = q2_file.to_string_lossy().to_string();
    let q2_seq = q2.to_string();
    replayed(
        &url,
        "position",
        "6",
        &["--to-seq", &q2_seq],
        &["--as-member", "KHFT", "--export", &q2_path],
    )?;
    let (_, khft_view) = exported(&q2_file)?;
    let (_, whole) = exported(&work.path().join("position-q2.json"))?;
    let (AnyReport::Position(khft_view), AnyReport::Position(whole)) = (khft_view, whole) else {
        anyhow::bail!("not position reports");
    };
    assert_eq!(
        khft_view
            .members
            .iter()
            .map(|m| m.member.as_str())
            .collect::<Vec<_>>(),
        ["KHFT"]
    );
    assert!(whole.members.len() > 1);
    assert_eq!(khft_view.control_total, whole.control_total);
    assert_eq!(khft_view.wider_ics, whole.wider_ics);
    // KHFT's finance team files the report in `path`; the sequence its return is recorded at.
    let khft_files = |path: &str| -> anyhow::Result<u64> {
        recorded_at(&e2e::icsctl(
            &url,
            &[
                "--json",
                "--actor",
                "khft-finance",
                "file-return",
                "--member",
                "KHFT",
                "--file",
                path,
            ],
        )?)
    };
    let filed = khft_files(&q2_path)?;
    let check = |args: &[&str]| {
        let mut all = vec!["audit", "check-return"];
        all.extend_from_slice(args);
        e2e::icsctl_output(&url, &all)
    };
    let filed_seq = filed.to_string();
    let good = check(&["--seq", &filed_seq, "--file", &q2_path])?;
    let (out, err) = text(&good);
    assert!(good.status.success(), "{out}\n{err}");
    assert!(out.contains("MATCHES"), "{out}");
    assert!(
        out.contains("the file is the report that was filed"),
        "{out}"
    );
    assert!(out.contains(&format!("taken at sequence {q2}")), "{out}");
    assert!(out.contains("the report as KHFT is shown it"), "{out}");
    let good = check(&["--seq", &filed_seq])?;
    assert!(good.status.success(), "{:?}", text(&good));

    // KHFT filing the whole report (every member's row: never what positiond shows it) does
    // not check out as KHFT's return.
    let whole_path = work.path().join("position-q2.json");
    let whole_seq = khft_files(&whole_path.to_string_lossy())?.to_string();
    let whole = check(&["--seq", &whole_seq])?;
    assert_eq!(whole.status.code(), Some(1), "{:?}", text(&whole));

    // An altered report (KHFT's actual £80,000 better than the log says), filed with its own
    // fingerprint: it does not check out, and the difference is shown.
    let (mut value, report) = exported(&q2_file)?;
    let AnyReport::Position(mut altered) = report else {
        anyhow::bail!("not a position report");
    };
    let khft = altered
        .members
        .iter_mut()
        .find(|m| m.member.as_str() == "KHFT")
        .ok_or_else(|| anyhow::anyhow!("no KHFT row"))?;
    let replay_actual = khft.figures.actual_ytd;
    khft.figures.actual_ytd = domain::Pence::new(replay_actual.get() + 8_000_000);
    let altered = AnyReport::Position(altered);
    value["report"] = serde_json::to_value(&altered)?;
    value["fingerprint"] = serde_json::json!(hex::encode(altered.fingerprint()?));
    let altered_file = work.path().join("position-q2-altered.json");
    let altered_path = altered_file.to_string_lossy().to_string();
    std::fs::write(&altered_file, serde_json::to_string_pretty(&value)?)?;
    let bad_seq = khft_files(&altered_path)?.to_string();
    let bad = check(&["--seq", &bad_seq, "--file", &altered_path])?;
    let (out, err) = text(&bad);
    assert_eq!(
        bad.status.code(),
        Some(1),
        "an altered return does not check out (exit 1: checked, and wrong)"
    );
    assert!(out.contains("DOES NOT MATCH"), "{out}");
    assert!(
        out.contains("members[KHFT].figures.actual_ytd_pence"),
        "{out}"
    );
    let (was, now) = (
        money(replay_actual.get() + 8_000_000),
        money(replay_actual.get()),
    );
    assert!(out.contains(&was), "the altered figure {was}: {out}");
    assert!(out.contains(&now), "the log's figure {now}: {out}");
    assert!(err.contains("does not match"), "{err}");
    let bad = check(&["--seq", &bad_seq])?;
    assert_eq!(bad.status.code(), Some(1));
    assert!(text(&bad).0.contains("--file"), "{:?}", text(&bad));
    // The genuine file against the altered return: the file is not what was filed.
    let crossed = check(&["--seq", &bad_seq, "--file", &q2_path])?;
    let (out, _) = text(&crossed);
    assert_eq!(crossed.status.code(), Some(1));
    // An event that is no filed return cannot be checked at all: exit 2.
    let not_a_return = check(&["--seq", "1"])?;
    assert_eq!(
        not_a_return.status.code(),
        Some(2),
        "{:?}",
        text(&not_a_return)
    );
    assert!(
        text(&not_a_return).1.contains("not a filed return"),
        "{:?}",
        text(&not_a_return)
    );
    assert!(out.contains("NOT the report that was filed"), "{out}");
    // As JSON, for scripts.
    let json = check(&["--seq", &bad_seq, "--file", &altered_path, "--json"])?;
    let json: serde_json::Value = serde_json::from_slice(&json.stdout)?;
    assert_eq!(json["matches"], false);
    assert_eq!(json["file"]["matches_filed"], true);
    assert!(
        json["differences"].as_array().is_some_and(|d| d
            .iter()
            .any(|d| d["where"] == "members[KHFT].figures.actual_ytd_pence"
                && d["replay"] == now.as_str())),
        "{json}"
    );

    // The system files the Q1 fund statement by flags with positiond's own fingerprint.
    let (q1, _) = quarters[0];
    let fund = client
        .get_funds(api::position_pb::ReportRequest {
            year: 2018,
            month: 3,
            as_of: Some(api::position_pb::AsOf {
                at: Some(api::position_pb::as_of::At::Sequence(q1)),
            }),
        })
        .await?
        .into_inner();
    let fingerprint = hex::encode(fund.basis.map(|b| b.fingerprint).unwrap_or_default());
    let by_flags = recorded_at(&e2e::icsctl(
        &url,
        &[
            "--json",
            "file-return",
            "--report",
            "fund",
            "--period",
            "2018/19-M3",
            "--as-of-sequence",
            &q1.to_string(),
            "--fingerprint",
            &fingerprint,
        ],
    )?)?;
    let checked = check(&["--seq", &by_flags.to_string()])?;
    let (out, err) = text(&checked);
    assert!(checked.status.success(), "{out}\n{err}");
    assert!(out.contains("by the system"), "{out}");
    // What is not a filed return, or not in the log, is refused clearly.
    let not_a_return = check(&["--seq", "1"])?;
    assert!(text(&not_a_return).1.contains("not a filed return"));
    let absent = check(&["--seq", "999999"])?;
    assert!(text(&absent).1.contains("no event 999999"));
    // ledgerd refuses a return taken beyond its head, naming the field.
    let head = e2e::head(&mut ledger).await?;
    let error = e2e::icsctl(
        &url,
        &[
            "file-return",
            "--report",
            "position",
            "--period",
            "2018/19-M6",
            "--as-of-sequence",
            &(head.sequence + 1).to_string(),
            "--fingerprint",
            &fingerprint,
        ],
    )
    .expect_err("beyond the head");
    assert!(error.to_string().contains("as_of_sequence"), "{error}");
    assert!(error.to_string().contains("InvalidArgument"), "{error}");

    // positiond folds the filed returns and serves on; they change no figure.
    let status = positiond.wait_for(head.sequence, CATCH_UP).await?;
    assert_eq!(status.hash, head.hash);
    let now = served("position", "12", &head.sequence.to_string(), &["--json"])?;
    let then = served("position", "12", &(filed - 1).to_string(), &["--json"])?;
    let figures = |json: &str| -> anyhow::Result<serde_json::Value> {
        let value: serde_json::Value = serde_json::from_str(json)?;
        Ok(serde_json::json!([
            value["members"],
            value["control_total"]
        ]))
    };
    assert_eq!(figures(&now)?, figures(&then)?);

    // Offline: the filed returns check out (or not) from the stopped ledger's directory.
    ledgerd.terminate()?;
    let offline = e2e::icsctl_output(
        nowhere,
        &[
            "audit",
            "check-return",
            "--seq",
            &filed_seq,
            "--data-dir",
            &dir,
            "--file",
            &q2_path,
        ],
    )?;
    assert!(offline.status.success(), "{:?}", text(&offline));
    let offline = e2e::icsctl_output(
        nowhere,
        &[
            "audit",
            "check-return",
            "--seq",
            &bad_seq,
            "--data-dir",
            &dir,
        ],
    )?;
    assert_eq!(offline.status.code(), Some(1));
    Ok(())
}

/// A client of a (re)started ledgerd, retrying briefly while it comes up.
async fn connect(
    ledgerd: &Ledgerd,
) -> anyhow::Result<pb::ledger_service_client::LedgerServiceClient<tonic::transport::Channel>> {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let attempt = match ledgerd.client().await {
            Ok(mut client) => e2e::head(&mut client).await.map(|_| client),
            Err(error) => Err(error),
        };
        match attempt {
            Ok(client) => return Ok(client),
            Err(_) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            Err(error) => return Err(error),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_trail_lists_who_posted_what_filtered_by_member_actor_stream_and_period()
-> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let data_dir = work.path().join("ledgerd");
    let mut ledgerd = Ledgerd::start(&data_dir, None)?;
    let url = ledgerd.url();
    let demo = e2e::demo_scenario().to_string_lossy().to_string();
    e2e::icsctl(&url, &["--actor", "icb-finance", "load", "--quiet", &demo])?;
    // KHFT's team reports a metric and files a return; AVT's reports one too.
    let khft = ["--actor", "khft-finance"];
    let post = |who: &[&str], args: &[&str]| {
        let mut all = who.to_vec();
        all.push("--json");
        all.extend_from_slice(args);
        e2e::icsctl(&url, &all).and_then(|json| recorded_at(&json))
    };
    let metric = post(
        &khft,
        &[
            "report-metric",
            "--member",
            "KHFT",
            "--period",
            "2019/20-M3",
            "--metric",
            "ae-four-hour",
            "--value",
            "91.50%",
        ],
    )?;
    let fingerprint = "ab".repeat(32);
    let filed = post(
        &khft,
        &[
            "file-return",
            "--member",
            "KHFT",
            "--report",
            "position",
            "--period",
            "2018/19-M12",
            "--as-of-sequence",
            "300",
            "--fingerprint",
            &fingerprint,
        ],
    )?;
    post(
        &["--actor", "avt-finance"],
        &[
            "report-metric",
            "--member",
            "AVT",
            "--period",
            "2019/20-M3",
            "--metric",
            "ae-four-hour",
            "--value",
            "88.00%",
        ],
    )?;

    let trail = |server: &str, args: &[&str]| -> anyhow::Result<Vec<serde_json::Value>> {
        let mut all = vec!["--json", "audit", "trail"];
        all.extend_from_slice(args);
        let rows: serde_json::Value = serde_json::from_str(&e2e::icsctl(server, &all)?)?;
        rows.as_array()
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("not a list: {rows}"))
    };
    let field = |rows: &[serde_json::Value], name: &str| -> Vec<String> {
        rows.iter()
            .map(|r| r[name].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let sequences = |rows: &[serde_json::Value]| -> Vec<u64> {
        rows.iter().filter_map(|r| r["sequence"].as_u64()).collect()
    };

    let all = trail(&url, &[])?;
    let mut ledger = ledgerd.client().await?;
    let head = e2e::head(&mut ledger).await?;
    assert_eq!(all.len() as u64, head.sequence);

    // By actor: exactly what KHFT's team posted.
    let by_khft = trail(&url, &["--actor", "khft-finance"])?;
    assert_eq!(sequences(&by_khft), [metric, filed]);
    assert_eq!(
        field(&by_khft, "event_type"),
        ["system.metric_reported", "system.return_filed"]
    );
    assert!(
        field(&by_khft, "recorded_at")
            .iter()
            .all(|t| t.ends_with('Z'))
    );

    // By member: what names KHFT or is on its contracts and the fund it receives from, and
    // nothing else (AVT's metric is not there).
    let about_khft = trail(&url, &["--member", "KHFT"])?;
    let streams: std::collections::BTreeSet<String> =
        field(&about_khft, "stream").into_iter().collect();
    for stream in [
        "system",
        "contract/C3",
        "contract/C4",
        "contract/CQ",
        "fund/SSF",
    ] {
        assert!(streams.contains(stream), "{stream} in {streams:?}");
    }
    for stream in ["contract/C1", "contract/C5", "budget/BCF"] {
        assert!(!streams.contains(stream), "{stream} in {streams:?}");
    }
    let khft_seqs = sequences(&about_khft);
    assert!(khft_seqs.contains(&metric) && khft_seqs.contains(&filed));
    assert!(!khft_seqs.contains(&(filed + 1)), "AVT's metric");

    // By stream: one stream, or every stream of a kind.
    let c3 = trail(&url, &["--stream", "contract/C3"])?;
    assert!(!c3.is_empty());
    assert!(field(&c3, "stream").iter().all(|s| s == "contract/C3"));
    let funds = trail(&url, &["--stream", "fund"])?;
    assert!(field(&funds, "stream").iter().all(|s| s == "fund/SSF"));
    assert!(
        funds.len() >= 9,
        "allocation, four assessments and four payments"
    );

    // By period, in either form: 2018/19-M6 is September 2018.
    let m6 = trail(&url, &["--period", "2018/19-M6"])?;
    assert!(!m6.is_empty());
    assert!(field(&m6, "period").iter().all(|p| p == "2018/19-M6"));
    assert_eq!(trail(&url, &["--period", "2018-09"])?, m6);
    // The filed return is for the period its report covers.
    let year_end = trail(
        &url,
        &["--period", "2018/19-M12", "--actor", "khft-finance"],
    )?;
    assert_eq!(sequences(&year_end), [filed]);

    // Filters combine, --from starts later, and the table says how many it listed.
    let combined = trail(
        &url,
        &[
            "--member",
            "KHFT",
            "--stream",
            "system",
            "--period",
            "2019/20-M3",
        ],
    )?;
    assert_eq!(sequences(&combined), [metric]);
    let later = trail(&url, &["--from", &filed.to_string()])?;
    assert_eq!(sequences(&later).first(), Some(&filed));
    let table = e2e::icsctl(&url, &["audit", "trail", "--actor", "khft-finance"])?;
    assert!(
        table.contains("khft-finance") && table.contains("system.return_filed"),
        "{table}"
    );
    assert!(
        table.contains(&format!("2 of {} events", head.sequence)),
        "{table}"
    );

    // The same trail from the stopped ledger's directory.
    ledgerd.terminate()?;
    let dir = data_dir.to_string_lossy().to_string();
    assert_eq!(
        trail(
            "http://127.0.0.1:9",
            &["--member", "KHFT", "--data-dir", &dir]
        )?,
        about_khft
    );
    let error =
        e2e::icsctl(&url, &["audit", "trail", "--period", "2018-13"]).expect_err("no month 13");
    assert!(error.to_string().contains("2018-13"), "{error}");
    Ok(())
}
