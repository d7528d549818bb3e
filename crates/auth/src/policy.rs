//! What each role may post and read.
//!
//! | role | posts | reads |
//! |---|---|---|
//! | member finance (member M) | a return, metric or filed return of M; activity, invoices on contracts M provides; payments, disputes and CQUIN reconciliation on contracts M commissions; resolving a dispute on a contract M is party to; pledging and paying M's own pooled-budget contributions; spend on a budget M hosts | the head and status; the position and contracts, limited to M (and the system totals) |
//! | system finance | every command of its system (returns filed for the system as a whole too) | everything in its system |
//! | regulator | nothing | the head and status, every report, oversight |
//! | auditor | nothing | the log, proofs and checkpoints, every report, oversight |
//! | admin | establishing the system, admitting members | the head and status |
//!
//! A token is for one system ([`crate::Verifier`] refuses others); these rules decide within
//! it.

use domain::system::Filer;
use domain::{BudgetCommand, Command, ContractCommand, Ledger, MemberCode, SystemCommand};

use crate::{Principal, Role};

/// Why a valid token may not do something: `PERMISSION_DENIED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{role} '{subject}' may not {what}")]
pub struct Denied {
    pub role: Role,
    pub subject: String,
    pub what: String,
}

fn denied(principal: &Principal, what: impl Into<String>) -> Denied {
    Denied {
        role: principal.role,
        subject: principal.subject.clone(),
        what: what.into(),
    }
}

/// What a read asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Read {
    /// The ledger's head, a service's status, health.
    Status,
    /// The events themselves (`ReadAll`, `ReadStream`) and the actor trail.
    Log,
    /// Inclusion and consistency proofs, signed checkpoints.
    Proofs,
    /// The position by member.
    Position,
    /// Contract statements.
    Contracts,
    /// Consolidation, pooled budgets, funds, the Agreement of Balances, adjustments.
    Statements,
    /// The regulator's view across systems.
    Oversight,
}

/// How much of a report a reader may see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Scope {
    Everything,
    /// Only what concerns this member (and system totals).
    Member(MemberCode),
}

/// Whether `principal` may make `read`, and how much it may see.
pub fn may_read(principal: &Principal, read: Read) -> Result<Scope, Denied> {
    use Read as R;
    use Role::*;
    let allowed = match (principal.role, read) {
        (_, R::Status) => true,
        (MemberFinance, R::Position | R::Contracts) => {
            let member = principal
                .member
                .ok_or_else(|| denied(principal, "read without naming its member"))?;
            return Ok(Scope::Member(member));
        }
        (MemberFinance, _) => false,
        (SystemFinance, R::Oversight) => false,
        (SystemFinance, _) => true,
        (Regulator, R::Log) => false,
        (Regulator, _) => true,
        (Auditor, _) => true,
        (Admin, _) => false,
    };
    if allowed {
        Ok(Scope::Everything)
    } else {
        Err(denied(principal, format!("read {}", read_name(read))))
    }
}

fn read_name(read: Read) -> &'static str {
    match read {
        Read::Status => "the status",
        Read::Log => "the event log",
        Read::Proofs => "proofs and checkpoints",
        Read::Position => "the position",
        Read::Contracts => "contract statements",
        Read::Statements => "these statements",
        Read::Oversight => "the regulator's oversight",
    }
}

/// Whether `principal` may post `command`, given the ledger as it stands (to know who the
/// parties of a contract or budget are).
pub fn may_post(principal: &Principal, command: &Command, ledger: &Ledger) -> Result<(), Denied> {
    let what = || format!("post {}", command_name(command));
    match principal.role {
        Role::SystemFinance => Ok(()),
        Role::Regulator | Role::Auditor => {
            Err(denied(principal, format!("{} (reads only)", what())))
        }
        Role::Admin => match command {
            Command::System(
                SystemCommand::Establish { .. } | SystemCommand::AdmitMember { .. },
            ) => Ok(()),
            _ => Err(denied(principal, what())),
        },
        Role::MemberFinance => {
            let member = principal
                .member
                .as_ref()
                .ok_or_else(|| denied(principal, what()))?;
            let parties = acting_parties(command, ledger);
            if parties.contains(member) {
                Ok(())
            } else if parties.is_empty() {
                Err(denied(
                    principal,
                    format!("{} (system finance only)", what()),
                ))
            } else {
                let names: Vec<&str> = parties.iter().map(MemberCode::as_str).collect();
                Err(denied(
                    principal,
                    format!(
                        "{} for {} (only {} may)",
                        what(),
                        member.as_str(),
                        names.join(" or ")
                    ),
                ))
            }
        }
    }
}

/// The members who may post `command` themselves; empty: only system finance may.
fn acting_parties(command: &Command, ledger: &Ledger) -> Vec<MemberCode> {
    match command {
        Command::System(SystemCommand::SubmitReturn(r)) => vec![r.member],
        Command::System(SystemCommand::ReportMetric { member, .. }) => vec![*member],
        // A member files its own returns; a return of the system as a whole is system finance's.
        Command::System(SystemCommand::FileReturn(filed)) => match &filed.filer {
            Filer::Member(member) => vec![*member],
            Filer::System => Vec::new(),
        },
        Command::System(_) | Command::Fund { .. } => Vec::new(),
        Command::Budget { budget, command } => {
            let Some(state) = ledger.budgets.get(budget) else {
                return Vec::new();
            };
            match command {
                BudgetCommand::Pledge { partner, .. }
                | BudgetCommand::PayContribution { partner, .. } => {
                    // Only a partner of the budget acts for itself.
                    if state.partners.contains(partner) {
                        vec![*partner]
                    } else {
                        Vec::new()
                    }
                }
                BudgetCommand::RecordSpend { .. } => vec![state.host],
                _ => Vec::new(),
            }
        }
        Command::Contract { contract, command } => {
            let Some(state) = ledger.contracts.get(contract) else {
                return Vec::new();
            };
            match command {
                ContractCommand::RecordActivity { .. } | ContractCommand::RaiseInvoice { .. } => {
                    vec![state.provider]
                }
                ContractCommand::RecordPayment { .. }
                | ContractCommand::RaiseDispute { .. }
                | ContractCommand::ReconcileCquin { .. } => vec![state.commissioner],
                ContractCommand::ResolveDispute { .. } => {
                    vec![state.commissioner, state.provider]
                }
                _ => Vec::new(),
            }
        }
    }
}

/// A command's name as people say it.
fn command_name(command: &Command) -> &'static str {
    match command {
        Command::System(c) => match c {
            SystemCommand::Establish { .. } => "EstablishSystem",
            SystemCommand::AdmitMember { .. } => "AdmitMember",
            SystemCommand::AgreePlan { .. } => "AgreePlan",
            SystemCommand::SubmitReturn(_) => "SubmitReturn",
            SystemCommand::ReportMetric { .. } => "ReportMetric",
            SystemCommand::ClosePeriod { .. } => "ClosePeriod",
            SystemCommand::FileReturn(_) => "FileReturn",
        },
        Command::Budget { command, .. } => match command {
            BudgetCommand::Establish { .. } => "EstablishBudget",
            BudgetCommand::Pledge { .. } => "PledgeContribution",
            BudgetCommand::PayContribution { .. } => "PayContribution",
            BudgetCommand::RecordSpend { .. } => "RecordSpend",
            BudgetCommand::Vary { .. } => "VaryBudget",
            BudgetCommand::SettleRiskShare { .. } => "SettleRiskShare",
            BudgetCommand::Close { .. } => "CloseBudget",
        },
        Command::Fund { command, .. } => match command {
            domain::FundCommand::Allocate { .. } => "AllocateFund",
            domain::FundCommand::AssessTranche { .. } => "AssessTranche",
            domain::FundCommand::PayTranche { .. } => "PayTranche",
            domain::FundCommand::ClawBack { .. } => "ClawBack",
        },
        Command::Contract { command, .. } => match command {
            ContractCommand::Agree { .. } => "AgreeContract",
            ContractCommand::Vary { .. } => "VaryContract",
            ContractCommand::RecordActivity { .. } => "RecordActivity",
            ContractCommand::RaiseInvoice { .. } => "RaiseInvoice",
            ContractCommand::RecordPayment { .. } => "RecordPayment",
            ContractCommand::RaiseDispute { .. } => "RaiseDispute",
            ContractCommand::ResolveDispute { .. } => "ResolveDispute",
            ContractCommand::ReconcileCquin { .. } => "ReconcileCquin",
            ContractCommand::RecordAdjustment { .. } => "RecordAdjustment",
            ContractCommand::Terminate { .. } => "TerminateContract",
        },
    }
}

#[cfg(test)]
mod tests {
    use domain::budget::{Scheme, Share};
    use domain::contract::PaymentModel;
    use domain::position::ReportKind;
    use domain::system::{FiledReturn, Metric, MonthlyReturn};
    use domain::{
        BasisPoints, Code, FinancialYear, MemberKind, Month, Pence, Period, SystemId, Text,
    };

    use super::*;

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

    /// KCCG commissions C1 from KHFT; KCC hosts BCF with KCCG.
    fn ledger() -> Ledger {
        let mut ledger = Ledger::default();
        let mut commands = vec![Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("valid"),
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
                    annual_value: Pence::new(1_200_000),
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
                overspend_shares: vec![
                    Share {
                        member: m("KCCG"),
                        share: BasisPoints::new(5_000),
                    },
                    Share {
                        member: m("KCC"),
                        share: BasisPoints::new(5_000),
                    },
                ],
                underspend_shares: vec![
                    Share {
                        member: m("KCCG"),
                        share: BasisPoints::new(5_000),
                    },
                    Share {
                        member: m("KCC"),
                        share: BasisPoints::new(5_000),
                    },
                ],
            },
        });
        for command in commands {
            ledger.execute(&command).expect("accepted");
        }
        ledger
    }

    fn principal(role: Role, member: Option<&str>) -> Principal {
        Principal::new(
            "someone",
            SystemId::new("kav").expect("valid"),
            role,
            member,
        )
        .expect("valid")
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

    /// Every kind of command, with the members (by code) that may post it themselves.
    fn commands() -> Vec<(Command, &'static [&'static str])> {
        let money = Pence::new(100);
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
                    member: m("KHFT"),
                    year: year(),
                    income: money,
                    expenditure: money,
                }),
                &[],
            ),
            (
                Command::System(SystemCommand::ClosePeriod { period: p(1) }),
                &[],
            ),
            (
                Command::System(SystemCommand::FileReturn(FiledReturn {
                    filer: Filer::Member(m("KHFT")),
                    report: ReportKind::Position,
                    period: p(6),
                    as_of_sequence: 5,
                    fingerprint: [1; 32],
                })),
                &["KHFT"],
            ),
            (
                Command::System(SystemCommand::FileReturn(FiledReturn {
                    filer: Filer::System,
                    report: ReportKind::Funds,
                    period: p(6),
                    as_of_sequence: 5,
                    fingerprint: [1; 32],
                })),
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
                contract(ContractCommand::RaiseDispute {
                    dispute: c("D1"),
                    invoice: None,
                    period: p(1),
                    amount: money,
                    reason: t("x"),
                }),
                &["KCCG"],
            ),
            (
                contract(ContractCommand::ResolveDispute {
                    dispute: c("D1"),
                    period: p(1),
                    provider_keeps: money,
                    resolution: t("x"),
                }),
                &["KCCG", "KHFT"],
            ),
            (
                contract(ContractCommand::Terminate {
                    period: p(1),
                    reason: t("x"),
                }),
                &[],
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
                budget(BudgetCommand::Pledge {
                    partner: m("KCC"),
                    amount: money,
                    ring_fenced_scheme: None,
                }),
                &["KCC"],
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
                budget(BudgetCommand::SettleRiskShare { period: p(12) }),
                &[],
            ),
            (
                Command::Fund {
                    fund: c("F1"),
                    command: domain::FundCommand::PayTranche {
                        quarter: domain::Quarter::new(1).expect("valid"),
                        period: p(4),
                    },
                },
                &[],
            ),
        ]
    }

    #[test]
    fn each_role_against_each_command() {
        let ledger = ledger();
        for (command, parties) in commands() {
            let name = command_name(&command);
            assert_eq!(
                may_post(&principal(Role::SystemFinance, None), &command, &ledger),
                Ok(()),
                "system finance posts {name}"
            );
            for role in [Role::Regulator, Role::Auditor, Role::Admin] {
                assert!(
                    may_post(&principal(role, None), &command, &ledger).is_err(),
                    "{role} may not post {name}"
                );
            }
            for member in ["KCCG", "KHFT", "AVT", "KCC"] {
                let result = may_post(
                    &principal(Role::MemberFinance, Some(member)),
                    &command,
                    &ledger,
                );
                assert_eq!(
                    result.is_ok(),
                    parties.contains(&member),
                    "{member} posting {name}: {result:?}"
                );
            }
        }
    }

    #[test]
    fn admin_sets_up_the_system_and_members_only() {
        let ledger = Ledger::default();
        let admin = principal(Role::Admin, None);
        let establish = Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("valid"),
            name: t("K"),
            first_year: year(),
        });
        assert_eq!(may_post(&admin, &establish, &ledger), Ok(()));
        let admit = Command::System(SystemCommand::AdmitMember {
            member: m("KHFT"),
            name: t("K"),
            kind: MemberKind::AcuteTrust,
            in_control_total: true,
        });
        assert_eq!(may_post(&admin, &admit, &ledger), Ok(()));
        // A member's team cannot admit itself.
        assert!(
            may_post(
                &principal(Role::MemberFinance, Some("KHFT")),
                &admit,
                &ledger
            )
            .is_err()
        );
    }

    #[test]
    fn commands_on_unknown_contracts_and_outsiders_to_a_budget_are_denied() {
        let ledger = ledger();
        let khft = principal(Role::MemberFinance, Some("KHFT"));
        let elsewhere = Command::Contract {
            contract: c("C9"),
            command: ContractCommand::RaiseInvoice {
                invoice: c("I1"),
                period: p(1),
                amount: Pence::new(1),
                corrects: None,
            },
        };
        assert!(may_post(&khft, &elsewhere, &ledger).is_err());
        // KHFT is not a partner of BCF, so it cannot pay into it even for itself.
        let pay = budget(BudgetCommand::PayContribution {
            partner: m("KHFT"),
            period: p(1),
            amount: Pence::new(1),
        });
        assert!(may_post(&khft, &pay, &ledger).is_err());
    }

    #[test]
    fn the_denial_says_who_may() {
        let ledger = ledger();
        let avt = principal(Role::MemberFinance, Some("AVT"));
        let invoice = contract(ContractCommand::RaiseInvoice {
            invoice: c("I1"),
            period: p(1),
            amount: Pence::new(1),
            corrects: None,
        });
        let denied = may_post(&avt, &invoice, &ledger).expect_err("not AVT's contract");
        assert_eq!(
            denied.to_string(),
            "member-finance 'someone' may not post RaiseInvoice for AVT (only KHFT may)"
        );
    }

    #[test]
    fn reads_by_role() {
        use Read::*;
        let table: [(Role, [bool; 7]); 4] = [
            // Status, Log, Proofs, Position, Contracts, Statements, Oversight
            (
                Role::SystemFinance,
                [true, true, true, true, true, true, false],
            ),
            (Role::Regulator, [true, false, true, true, true, true, true]),
            (Role::Auditor, [true, true, true, true, true, true, true]),
            (
                Role::Admin,
                [true, false, false, false, false, false, false],
            ),
        ];
        let reads = [
            Status, Log, Proofs, Position, Contracts, Statements, Oversight,
        ];
        for (role, allowed) in table {
            for (read, allowed) in reads.into_iter().zip(allowed) {
                let result = may_read(&principal(role, None), read);
                assert_eq!(result.is_ok(), allowed, "{role} {read:?}: {result:?}");
                if allowed {
                    assert_eq!(result, Ok(Scope::Everything));
                }
            }
        }
        let khft = principal(Role::MemberFinance, Some("KHFT"));
        assert_eq!(may_read(&khft, Position), Ok(Scope::Member(m("KHFT"))));
        assert_eq!(may_read(&khft, Contracts), Ok(Scope::Member(m("KHFT"))));
        assert_eq!(may_read(&khft, Status), Ok(Scope::Everything));
        for read in [Log, Proofs, Statements, Oversight] {
            assert!(may_read(&khft, read).is_err(), "{read:?}");
        }
    }
}
