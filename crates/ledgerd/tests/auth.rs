//! Who may do what, against ledgerd in-process on a real sled over real gRPC: with an
//! `auth_public_key` configured, every RPC without a valid token for this system is
//! `UNAUTHENTICATED`; each role posts exactly what its rules allow and is otherwise
//! `PERMISSION_DENIED`; a refusal never moves the head; the token's subject is the actor
//! recorded on the events it posts. The reads — the log and, on `AuditService`, the tree head,
//! proofs and checkpoints — are in the same tables.

use api::audit_pb;
use api::audit_pb::audit_service_client::AuditServiceClient;
use api::pb;
use api::pb::ledger_service_client::LedgerServiceClient;
use auth::{Principal, Role};
use domain::budget::{Scheme, Share};
use domain::contract::PaymentModel;
use domain::position::ReportKind;
use domain::system::{FiledReturn, Filer, Metric, MonthlyReturn};
use domain::{
    BasisPoints, BudgetCommand, Code, Command, ContractCommand, FinancialYear, MemberCode,
    MemberKind, Month, Pence, Period, SystemCommand, SystemId, Text,
};
use futures::StreamExt;
use tonic::transport::Channel;
use tonic::{Code as Status, Request};

struct Server {
    client: LedgerServiceClient<Channel>,
    audit: AuditServiceClient<Channel>,
    ledgerd: ledgerd::server::Spawned,
    issuer: auth::Issuer,
    _dir: tempfile::TempDir,
}

async fn start() -> anyhow::Result<Server> {
    let dir = tempfile::tempdir()?;
    let (private, public) = auth::generate_key_pair()?;
    let key = dir.path().join("ics-signing.pub.pem");
    std::fs::write(&key, public)?;
    let ledgerd = ledgerd::server::spawn(ledgerd::config::Config {
        listen: "127.0.0.1:0".parse()?,
        data_dir: dir.path().join("data"),
        auth_public_key: Some(key),
        ..ledgerd::config::Config::default()
    })
    .await?;
    let url = ledgerd.url();
    let client = LedgerServiceClient::connect(url.clone()).await?;
    let audit = AuditServiceClient::connect(url).await?;
    Ok(Server {
        client,
        audit,
        ledgerd,
        issuer: auth::Issuer::from_pem(&private)?,
        _dir: dir,
    })
}

fn now() -> i64 {
    jiff::Timestamp::now().as_second()
}

fn kav() -> SystemId {
    SystemId::new("kav").expect("valid")
}

fn principal(role: Role, member: Option<&str>) -> Principal {
    let subject = match member {
        Some(m) => format!("{}-finance", m.to_lowercase()),
        None => role.to_string(),
    };
    Principal::new(subject, kav(), role, member).expect("valid")
}

fn token(server: &Server, role: Role, member: Option<&str>) -> String {
    server
        .issuer
        .issue(&principal(role, member), now(), 3600)
        .expect("token")
}

fn m(code: &str) -> MemberCode {
    MemberCode::parse(code).expect("valid")
}
fn c(code: &str) -> Code {
    Code::new(code).expect("valid")
}
fn t(text: &str) -> Text {
    Text::new(text).expect("valid")
}
fn year() -> FinancialYear {
    FinancialYear::new(2018).expect("valid")
}
fn p(month: u32) -> Period {
    year().period(Month::new(month).expect("valid"))
}
fn shares() -> Vec<Share> {
    vec![
        Share {
            member: m("KCCG"),
            share: BasisPoints::new(5_000),
        },
        Share {
            member: m("KCC"),
            share: BasisPoints::new(5_000),
        },
    ]
}

/// The system, four members, contract C1 (KCCG commissions from KHFT), budget BCF (hosted
/// by KCC with KCCG).
fn setup() -> Vec<Command> {
    let mut commands = vec![Command::System(SystemCommand::Establish {
        system: kav(),
        name: t("Kingsmere"),
        first_year: year(),
    })];
    for (code, kind) in [
        ("KCCG", MemberKind::Commissioner),
        ("KHFT", MemberKind::AcuteTrust),
        ("AVT", MemberKind::AcuteTrust),
        ("KCC", MemberKind::LocalAuthority),
    ] {
        commands.push(Command::System(SystemCommand::AdmitMember {
            member: m(code),
            name: t(code),
            kind,
            in_control_total: kind != MemberKind::LocalAuthority,
        }));
    }
    commands.push(Command::Contract {
        contract: c("C1"),
        command: ContractCommand::Agree {
            commissioner: m("KCCG"),
            provider: m("KHFT"),
            year: year(),
            model: PaymentModel::Block {
                annual_value: Pence::new(120_000_000),
            },
            description: t("acute"),
        },
    });
    commands.push(Command::Budget {
        budget: c("BCF"),
        command: BudgetCommand::Establish {
            name: t("BCF"),
            host: m("KCC"),
            year: year(),
            partners: vec![m("KCCG"), m("KCC")],
            schemes: vec![Scheme {
                scheme: c("CARE"),
                name: t("care"),
                ring_fenced: false,
            }],
            overspend_shares: shares(),
            underspend_shares: shares(),
        },
    });
    commands
}

fn contract(command: ContractCommand) -> Command {
    Command::Contract {
        contract: c("C1"),
        command,
    }
}

fn budget(command: BudgetCommand) -> Command {
    Command::Budget {
        budget: c("BCF"),
        command,
    }
}

/// Writes with the members who may post them themselves.
fn writes() -> Vec<(Command, &'static [&'static str])> {
    let money = Pence::new(10_000);
    vec![
        (
            Command::System(SystemCommand::SubmitReturn(MonthlyReturn {
                member: m("KHFT"),
                period: p(1),
                income: money,
                expenditure: money,
                balances: Vec::new(),
            })),
            &["KHFT"],
        ),
        (
            Command::System(SystemCommand::ReportMetric {
                member: m("AVT"),
                period: p(1),
                metric: Metric::EmergencyAdmissions,
                value: 10,
            }),
            &["AVT"],
        ),
        (
            Command::System(SystemCommand::AgreePlan {
                member: m("AVT"),
                year: year(),
                income: money,
                expenditure: money,
            }),
            &[],
        ),
        (
            contract(ContractCommand::RecordActivity {
                period: p(1),
                units: 5,
                corrects: None,
            }),
            &["KHFT"],
        ),
        (
            contract(ContractCommand::RaiseInvoice {
                invoice: c("I1"),
                period: p(1),
                amount: money,
                corrects: None,
            }),
            &["KHFT"],
        ),
        (
            contract(ContractCommand::RecordPayment {
                invoice: c("I1"),
                period: p(1),
                amount: money,
            }),
            &["KCCG"],
        ),
        (
            contract(ContractCommand::RecordAdjustment {
                period: p(1),
                amount: money,
                reason: t("x"),
                corrects: None,
            }),
            &[],
        ),
        (
            budget(BudgetCommand::Pledge {
                partner: m("KCCG"),
                amount: Pence::new(1_000_000),
                ring_fenced_scheme: None,
            }),
            &["KCCG"],
        ),
        (
            budget(BudgetCommand::PayContribution {
                partner: m("KCCG"),
                period: p(1),
                amount: money,
            }),
            &["KCCG"],
        ),
        (
            budget(BudgetCommand::RecordSpend {
                scheme: c("CARE"),
                period: p(1),
                amount: money,
                corrects: None,
            }),
            &["KCC"],
        ),
        (
            Command::System(SystemCommand::FileReturn(FiledReturn {
                filer: Filer::Member(m("KHFT")),
                report: ReportKind::Position,
                period: p(1),
                as_of_sequence: 1,
                fingerprint: [3; 32],
            })),
            &["KHFT"],
        ),
        (
            Command::System(SystemCommand::FileReturn(FiledReturn {
                filer: Filer::System,
                report: ReportKind::Funds,
                period: p(1),
                as_of_sequence: 1,
                fingerprint: [3; 32],
            })),
            &[],
        ),
        (
            Command::System(SystemCommand::ClosePeriod { period: p(1) }),
            &[],
        ),
    ]
}

fn with_token<T>(message: T, token: Option<&str>) -> Request<T> {
    let mut request = Request::new(message);
    if let Some(token) = token {
        request.metadata_mut().insert(
            "authorization",
            format!("Bearer {token}").parse().expect("ascii"),
        );
    }
    request
}

/// Sends `command` to its own RPC.
async fn post(
    client: &mut LedgerServiceClient<Channel>,
    command: &Command,
    token: Option<&str>,
) -> Result<pb::CommandReply, tonic::Status> {
    use pb::command::Command as C;
    let Some(command) = api::command_to_proto(&api::CommandMeta::random(), command).command else {
        return Err(tonic::Status::internal("did not convert"));
    };
    macro_rules! rpc {
        ($($variant:ident => $method:ident),* $(,)?) => {
            match command {
                $(C::$variant(m) => client.$method(with_token(m, token)).await,)*
            }
        };
    }
    rpc! {
        EstablishSystem => establish_system, AdmitMember => admit_member, AgreePlan => agree_plan,
        SubmitReturn => submit_return, ReportMetric => report_metric, ClosePeriod => close_period,
        FileReturn => file_return,
        EstablishBudget => establish_budget, PledgeContribution => pledge_contribution,
        PayContribution => pay_contribution, RecordSpend => record_spend, VaryBudget => vary_budget,
        SettleRiskShare => settle_risk_share, CloseBudget => close_budget,
        AllocateFund => allocate_fund, AssessTranche => assess_tranche, PayTranche => pay_tranche,
        ClawBack => claw_back, AgreeContract => agree_contract, VaryContract => vary_contract,
        RecordActivity => record_activity, RaiseInvoice => raise_invoice,
        RecordPayment => record_payment, RaiseDispute => raise_dispute,
        ResolveDispute => resolve_dispute, ReconcileCquin => reconcile_cquin,
        RecordAdjustment => record_adjustment, TerminateContract => terminate_contract,
    }
    .map(tonic::Response::into_inner)
}

async fn head(server: &mut Server) -> anyhow::Result<u64> {
    let token = token(server, Role::Auditor, None);
    Ok(server
        .client
        .head(with_token(pb::HeadRequest {}, Some(&token)))
        .await?
        .into_inner()
        .sequence)
}

/// The reads (the log's and `AuditService`'s), and the bulk submit, with `token`: the first
/// error of each.
async fn reads_and_bulk(
    server: &mut Server,
    token: Option<&str>,
) -> Vec<(&'static str, Result<(), tonic::Status>)> {
    let client = &mut server.client;
    let head = client
        .head(with_token(pb::HeadRequest {}, token))
        .await
        .map(|_| ());
    let read_all = match client
        .read_all(with_token(
            pb::ReadAllRequest {
                from_sequence: 1,
                limit: 0,
                follow: false,
            },
            token,
        ))
        .await
    {
        Ok(stream) => stream.into_inner().next().await.transpose().map(|_| ()),
        Err(status) => Err(status),
    };
    let read_stream = client
        .read_stream(with_token(
            pb::ReadStreamRequest {
                stream: "system".to_string(),
                from_version: 1,
                limit: 0,
            },
            token,
        ))
        .await
        .map(|_| ());
    let read_stored = match client
        .read_stored(with_token(
            pb::ReadStoredRequest {
                from_sequence: 1,
                limit: 0,
            },
            token,
        ))
        .await
    {
        Ok(stream) => stream.into_inner().next().await.transpose().map(|_| ()),
        Err(status) => Err(status),
    };
    let command = api::command_to_proto(&api::CommandMeta::random(), &setup()[1]);
    let bulk = client
        .submit_bulk(with_token(futures::stream::iter(vec![command]), token))
        .await
        .map(|_| ());
    let audit = &mut server.audit;
    let tree_head = audit
        .get_tree_head(with_token(audit_pb::TreeHeadRequest {}, token))
        .await
        .map(|_| ());
    let inclusion = audit
        .get_inclusion_proof(with_token(
            audit_pb::InclusionProofRequest {
                sequence: 1,
                tree_size: 0,
            },
            token,
        ))
        .await
        .map(|_| ());
    let consistency = audit
        .get_consistency_proof(with_token(
            audit_pb::ConsistencyProofRequest {
                old_size: 1,
                new_size: 0,
            },
            token,
        ))
        .await
        .map(|_| ());
    let checkpoints = audit
        .list_checkpoints(with_token(
            audit_pb::ListCheckpointsRequest {
                from_sequence: 0,
                limit: 0,
            },
            token,
        ))
        .await
        .map(|_| ());
    vec![
        ("Head", head),
        ("ReadAll", read_all),
        ("ReadStream", read_stream),
        ("ReadStored", read_stored),
        ("SubmitBulk", bulk),
        ("GetTreeHead", tree_head),
        ("GetInclusionProof", inclusion),
        ("GetConsistencyProof", consistency),
        ("ListCheckpoints", checkpoints),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_valid_token_gets_nothing_and_writes_nothing() -> anyhow::Result<()> {
    let mut server = start().await?;
    let admin = token(&server, Role::SystemFinance, None);
    for command in setup() {
        post(&mut server.client, &command, Some(&admin)).await?;
    }
    let before = head(&mut server).await?;

    let expired =
        server
            .issuer
            .issue(&principal(Role::SystemFinance, None), now() - 7_200, 3_600)?;
    let (other_private, _) = auth::generate_key_pair()?;
    let wrong_key = auth::Issuer::from_pem(&other_private)?.issue(
        &principal(Role::SystemFinance, None),
        now(),
        3_600,
    )?;
    let elsewhere = server.issuer.issue(
        &Principal::new(
            "x",
            SystemId::new("nwl").expect("valid"),
            Role::SystemFinance,
            None,
        )
        .expect("valid"),
        now(),
        3_600,
    )?;
    let cases: [(&str, Option<&str>); 5] = [
        ("no token", None),
        ("expired", Some(&expired)),
        ("wrong key", Some(&wrong_key)),
        ("wrong system", Some(&elsewhere)),
        ("garbage", Some("not-a-jwt")),
    ];
    let mut every_command = setup();
    every_command.extend(writes().into_iter().map(|(command, _)| command));
    for (case, token) in cases {
        for command in &every_command {
            let status = post(&mut server.client, command, token)
                .await
                .expect_err("refused");
            assert_eq!(status.code(), Status::Unauthenticated, "{case}: {status:?}");
        }
        for (rpc, result) in reads_and_bulk(&mut server, token).await {
            let status = result.expect_err("refused");
            assert_eq!(
                status.code(),
                Status::Unauthenticated,
                "{case} {rpc}: {status:?}"
            );
        }
    }
    assert_eq!(head(&mut server).await?, before, "nothing was written");
    server.ledgerd.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_role_posts_exactly_what_it_may() -> anyhow::Result<()> {
    let mut server = start().await?;
    let admin = token(&server, Role::Admin, None);
    let system = token(&server, Role::SystemFinance, None);
    // Admin establishes and admits; system finance sets up the rest.
    for command in setup() {
        let as_admin = matches!(
            command,
            Command::System(SystemCommand::Establish { .. } | SystemCommand::AdmitMember { .. })
        );
        let token = if as_admin { &admin } else { &system };
        post(&mut server.client, &command, Some(token)).await?;
    }

    let mut posted_by_members = 0;
    for (command, parties) in writes() {
        let mut callers: Vec<(String, Role, Option<&str>)> = ["KCCG", "KHFT", "AVT", "KCC"]
            .into_iter()
            .map(|member| (member.to_string(), Role::MemberFinance, Some(member)))
            .collect();
        for role in [Role::Regulator, Role::Auditor, Role::Admin] {
            callers.push((role.to_string(), role, None));
        }
        for (who, role, member) in callers {
            let token = token(&server, role, member);
            let before = head(&mut server).await?;
            let result = post(&mut server.client, &command, Some(&token)).await;
            let may = member.is_some_and(|m| parties.contains(&m));
            match result {
                Ok(_) => {
                    assert!(may, "{who} posted {command:?}");
                    posted_by_members += 1;
                }
                Err(status) if status.code() == Status::PermissionDenied => {
                    assert!(!may, "{who} was refused {command:?}: {status:?}");
                    assert_eq!(head(&mut server).await?, before, "a refusal writes nothing");
                }
                Err(status) => {
                    // Allowed to try; the domain's rules may still say no.
                    assert!(may, "{who}: {status:?}");
                    assert_ne!(status.code(), Status::Unauthenticated);
                }
            }
        }
        // System finance may post anything of its system (the domain may still refuse it).
        if let Err(status) = post(&mut server.client, &command, Some(&system)).await {
            assert!(
                !matches!(
                    status.code(),
                    Status::PermissionDenied | Status::Unauthenticated
                ),
                "{status:?}"
            );
        }
    }

    // Every member's own posting of the table went through (the domain accepted them all).
    assert_eq!(posted_by_members, 9);

    // Only the log's readers read it: a member's team, the regulator and the admin are
    // refused. Proofs and checkpoints are for system finance, the regulator and auditors.
    for (role, member, log, proofs) in [
        (Role::MemberFinance, Some("KHFT"), false, false),
        (Role::Regulator, None, false, true),
        (Role::Auditor, None, true, true),
        (Role::SystemFinance, None, true, true),
        (Role::Admin, None, false, false),
    ] {
        let token = token(&server, role, member);
        let results = reads_and_bulk(&mut server, Some(&token)).await;
        for (rpc, result) in results {
            let may = match rpc {
                "Head" => true,
                "ReadAll" | "ReadStream" | "ReadStored" => log,
                "GetTreeHead" | "GetInclusionProof" | "GetConsistencyProof" | "ListCheckpoints" => {
                    proofs
                }
                _ => continue,
            };
            if may {
                assert!(result.is_ok(), "{role} {rpc}: {result:?}");
            } else {
                let status = result.expect_err("refused");
                assert_eq!(status.code(), Status::PermissionDenied, "{role} {rpc}");
            }
        }
    }

    // The actor on the events is the token's subject.
    let auditor = token(&server, Role::Auditor, None);
    let mut events = server
        .client
        .read_all(with_token(
            pb::ReadAllRequest {
                from_sequence: 1,
                limit: 0,
                follow: false,
            },
            Some(&auditor),
        ))
        .await?
        .into_inner();
    let mut actors = Vec::new();
    while let Some(event) = events.next().await {
        let event = event?;
        actors.push((event.event_type, event.actor));
    }
    assert_eq!(
        actors[0],
        ("system.established".to_string(), "admin".to_string())
    );
    assert!(
        actors.contains(&(
            "system.return_submitted".to_string(),
            "khft-finance".to_string()
        )),
        "{actors:?}"
    );
    server.ledgerd.stop().await?;
    Ok(())
}
