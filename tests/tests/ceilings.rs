//! The domain's limits through the real binaries (issue 16, findings 1 and 2): a real
//! nats-server, `ledgerd` with bearer tokens on, and `positiond` folding what it relays.
//!
//! KHFT's member-finance token raising an invoice of `i64::MAX` pence (or one penny over the
//! ceiling) on a contract it provides, or submitting a return with `i64::MAX` income, is
//! `INVALID_ARGUMENT` naming the field and the ceiling; system finance varying a budget with
//! 100,000 schemes, establishing one with 60,000 or allocating a fund with 60,000 conditions
//! is `INVALID_ARGUMENT` naming the list and its cap. None of them moves the head. An invoice
//! at the ceiling is accepted, and positiond folds it and goes on serving the position.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use api::position_pb as ppb;
use api::position_pb::position_service_client::PositionServiceClient;
use domain::limits;
use e2e::Ledgerd;
use testkit::ChildGuard;
use tonic::transport::Channel;
use tonic::{Code, Request, Status};
use tonic_types::StatusExt;
use uuid::Uuid;

const CATCH_UP: Duration = Duration::from_secs(60);

fn meta() -> Option<pb::CommandMeta> {
    Some(pb::CommandMeta {
        request_id: Uuid::new_v4().to_string(),
        ..Default::default()
    })
}

fn s(text: &str) -> String {
    text.to_string()
}

/// `message` sent with `authorization: Bearer <token>`.
fn authed<T>(token: &str, message: T) -> anyhow::Result<Request<T>> {
    let mut request = Request::new(message);
    request
        .metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(request)
}

async fn head(
    ledger: &mut LedgerServiceClient<Channel>,
    token: &str,
) -> anyhow::Result<pb::HeadReply> {
    Ok(ledger
        .head(authed(token, pb::HeadRequest {})?)
        .await?
        .into_inner())
}

/// Signs a token with `icsctl token issue`.
fn token(key: &Path, role: &str, member: Option<&str>, subject: &str) -> anyhow::Result<String> {
    let key = key.to_string_lossy();
    let mut args = vec![
        "token",
        "issue",
        "--key",
        &key,
        "--role",
        role,
        "--subject",
        subject,
    ];
    if let Some(member) = member {
        args.extend(["--member", member]);
    }
    let (ok, output) = e2e::icsctl_outcome(&args)?;
    anyhow::ensure!(ok, "icsctl token issue failed: {output}");
    Ok(output.trim().to_string())
}

/// positiond following system `kav`, reading ledgerd's log with the token in `token_file`.
fn positiond(
    dir: &Path,
    nats_url: &str,
    ledgerd_url: &str,
    token_file: &Path,
) -> anyhow::Result<(ChildGuard, String)> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], testkit::free_port()));
    let mut command = Command::new(testkit::workspace_binary("positiond")?);
    command
        .arg("--listen")
        .arg(addr.to_string())
        .arg("--data-dir")
        .arg(dir.join("positiond"))
        .arg("--system")
        .arg("kav")
        .arg("--nats-url")
        .arg(nats_url)
        .arg("--ledgerd-url")
        .arg(ledgerd_url)
        .arg("--consumer")
        .arg("ceilings")
        .env("POSITIOND_LEDGERD_TOKEN_FILE", token_file)
        .env("RUST_LOG", "info");
    let mut process =
        ChildGuard::spawn_logged("positiond", &mut command, &dir.join("positiond.log"))?;
    process.wait_for_port(addr, Duration::from_secs(20))?;
    Ok((process, format!("http://{addr}")))
}

async fn wait_for(url: &str, sequence: u64) -> anyhow::Result<PositionServiceClient<Channel>> {
    let started = std::time::Instant::now();
    loop {
        if let Ok(mut client) = PositionServiceClient::connect(url.to_string()).await
            && let Ok(status) = client.get_status(ppb::StatusRequest {}).await
            && status.get_ref().sequence >= sequence
        {
            return Ok(client);
        }
        anyhow::ensure!(
            started.elapsed() < CATCH_UP,
            "positiond did not fold {sequence}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// INVALID_ARGUMENT with one BadRequest violation naming `field`, whose description names
/// `limit`.
fn invalid(outcome: Result<tonic::Response<pb::CommandReply>, Status>, field: &str, limit: &str) {
    let status = match outcome {
        Ok(reply) => panic!("{field}: accepted: {reply:?}"),
        Err(status) => status,
    };
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    let details = status.get_error_details();
    let violations = details
        .bad_request()
        .map(|b| b.field_violations.clone())
        .unwrap_or_default();
    assert_eq!(violations.len(), 1, "{field}: {status:?}");
    assert_eq!(violations[0].field, field, "{status:?}");
    assert!(
        violations[0].description.contains(limit),
        "{field}: the refusal names the limit {limit}: {}",
        violations[0].description
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn amounts_over_the_ceiling_and_lists_over_their_caps_are_refused_and_readers_go_on()
-> anyhow::Result<()> {
    let nats = testkit::NatsServer::start()?;
    let work = tempfile::tempdir()?;
    let keys = work.path().join("keys");
    let (ok, output) =
        e2e::icsctl_outcome(&["keys", "generate", "--dir", &keys.to_string_lossy()])?;
    anyhow::ensure!(ok, "icsctl keys generate: {output}");
    let private = keys.join("ics-signing.pem");
    let public = keys.join("ics-signing.pub.pem");
    let system = token(&private, "system-finance", None, "system-finance")?;
    let khft = token(&private, "member-finance", Some("KHFT"), "khft-finance")?;
    let auditor = token(&private, "auditor", None, "positiond")?;
    let token_file = work.path().join("positiond.token");
    std::fs::write(&token_file, &auditor)?;

    let ledgerd = Ledgerd::start_with(
        &work.path().join("ledgerd"),
        Some(&nats.url()),
        &[("LEDGERD_AUTH_PUBLIC_KEY", &public.to_string_lossy())],
    )?;
    let mut ledger: LedgerServiceClient<Channel> = ledgerd.client().await?;

    // The system, KCCG commissioning C3 (tariff) from KHFT, a pool and KHFT's M1 return.
    ledger
        .establish_system(authed(
            &system,
            pb::EstablishSystemRequest {
                meta: meta(),
                system: s("kav"),
                name: s("Kingsmere & Alder Valley ICS"),
                first_year: 2018,
            },
        )?)
        .await?;
    for (member, kind, in_control_total) in [
        ("KCCG", pb::MemberKind::Commissioner, true),
        ("KHFT", pb::MemberKind::AcuteTrust, true),
        ("KCC", pb::MemberKind::LocalAuthority, false),
    ] {
        ledger
            .admit_member(authed(
                &system,
                pb::AdmitMemberRequest {
                    meta: meta(),
                    member: s(member),
                    name: s(member),
                    kind: kind.into(),
                    in_control_total,
                },
            )?)
            .await?;
    }
    ledger
        .agree_contract(authed(
            &system,
            pb::AgreeContractRequest {
                meta: meta(),
                contract: s("C3"),
                commissioner: s("KCCG"),
                provider: s("KHFT"),
                year: 2018,
                model: Some(pb::PaymentModel {
                    model: Some(pb::payment_model::Model::ActivityTariff(
                        pb::payment_model::ActivityTariff {
                            planned_units: 24_000,
                            unit_price_pence: 300_000,
                        },
                    )),
                }),
                description: s("Elective activity at tariff"),
            },
        )?)
        .await?;
    let share = |member: &str, share_bp| pb::Share {
        member: s(member),
        share_bp,
    };
    let halves = || vec![share("KCCG", 5_000), share("KCC", 5_000)];
    let schemes = |prefix: &str, n: usize| -> Vec<pb::Scheme> {
        (0..n)
            .map(|i| pb::Scheme {
                scheme: format!("{prefix}{i}"),
                name: s("Scheme"),
                ring_fenced: false,
            })
            .collect()
    };
    let establish = |budget: &str, schemes: Vec<pb::Scheme>| pb::EstablishBudgetRequest {
        meta: meta(),
        budget: s(budget),
        name: s("Better Care Fund"),
        host: s("KCC"),
        year: 2018,
        partners: vec![s("KCCG"), s("KCC")],
        schemes,
        overspend_shares: halves(),
        underspend_shares: halves(),
    };
    ledger
        .establish_budget(authed(&system, establish("BCF", schemes("S", 2)))?)
        .await?;
    let khft_return = |income_pence| pb::SubmitReturnRequest {
        meta: meta(),
        member: s("KHFT"),
        period: Some(pb::Period {
            year: 2018,
            month: 1,
        }),
        income_pence,
        expenditure_pence: 3_550_000_000,
        balances: vec![],
    };
    ledger
        .submit_return(authed(&khft, khft_return(3_500_000_000))?)
        .await?;
    let before = head(&mut ledger, &system).await?;
    let (_positiond, position_url) =
        positiond(work.path(), &nats.url(), &ledgerd.url(), &token_file)?;
    wait_for(&position_url, before.sequence).await?;

    // KHFT's own finance team, on a contract it provides: over the ceiling is refused.
    let ceiling = limits::AMOUNT_CEILING.get();
    let ceiling_words = limits::AMOUNT_CEILING.to_string();
    let invoice = |invoice: &str, amount_pence| pb::RaiseInvoiceRequest {
        meta: meta(),
        contract: s("C3"),
        invoice: s(invoice),
        period: Some(pb::Period {
            year: 2018,
            month: 5,
        }),
        amount_pence,
        corrects: None,
    };
    for amount in [i64::MAX, ceiling + 1] {
        let outcome = ledger
            .raise_invoice(authed(&khft, invoice("HUGE", amount))?)
            .await;
        invalid(outcome, "amount_pence", &ceiling_words);
    }
    let outcome = ledger
        .submit_return(authed(&khft, khft_return(i64::MAX))?)
        .await;
    invalid(outcome, "income_pence", &ceiling_words);

    // System finance: lists over their caps (what no reader could decode).
    let outcome = ledger
        .vary_budget(authed(
            &system,
            pb::VaryBudgetRequest {
                meta: meta(),
                budget: s("BCF"),
                reason: s("Every scheme there is"),
                overspend_shares: None,
                underspend_shares: None,
                add_schemes: schemes("N", 100_000),
            },
        )?)
        .await;
    invalid(outcome, "add_schemes", &limits::SCHEMES_MAX.to_string());
    let outcome = ledger
        .establish_budget(authed(&system, establish("BCF2", schemes("S", 60_000)))?)
        .await;
    invalid(outcome, "schemes", &limits::SCHEMES_MAX.to_string());
    let conditions = (0..60_000)
        .map(|i| pb::Condition {
            condition: format!("K{i}"),
            kind: pb::ConditionKind::SystemFinance.into(),
            weight_bp: if i == 0 { 10_000 } else { 0 },
            threshold_bp: None,
        })
        .collect();
    let outcome = ledger
        .allocate_fund(authed(
            &system,
            pb::AllocateFundRequest {
                meta: meta(),
                fund: s("SSF"),
                name: s("Sustainability fund"),
                year: 2018,
                recipients: vec![pb::Recipient {
                    member: s("KHFT"),
                    allocation_pence: 720_000_000,
                }],
                conditions,
            },
        )?)
        .await;
    invalid(outcome, "conditions", &limits::CONDITIONS_MAX.to_string());

    let after = head(&mut ledger, &system).await?;
    assert_eq!(
        (after.sequence, &after.hash),
        (before.sequence, &before.hash),
        "no refusal recorded anything"
    );

    // At the ceiling is accepted; positiond folds it and serves the position to everyone.
    let reply = ledger
        .raise_invoice(authed(&khft, invoice("C3-05", ceiling))?)
        .await?
        .into_inner();
    let mut position = wait_for(&position_url, reply.last_sequence).await?;
    let report = ppb::ReportRequest {
        year: 2018,
        month: 12,
        as_of: None,
    };
    let served = position.get_position(report).await?.into_inner();
    let khft_row = served
        .members
        .iter()
        .find(|m| m.member == "KHFT")
        .and_then(|m| m.figures)
        .expect("KHFT's row");
    assert_eq!(khft_row.actual_income_ytd_pence, 3_500_000_000);
    let contracts = position.get_contracts(report).await?.into_inner();
    let c3 = contracts
        .contracts
        .iter()
        .find(|c| c.contract == "C3")
        .expect("C3");
    assert_eq!(c3.invoiced_ytd_pence, ceiling);
    Ok(())
}
