//! Proto requests → [`domain::Command`] (what the server does with every command rpc and
//! every item of a bulk load), and back (what a client does to send a command it built from
//! domain types).
//!
//! Every malformed input becomes [`DomainError::Invalid`] naming the field by its path in the
//! request (`meta.request_id`, `period.month`, `balances[2].counterparty`,
//! `model.aligned_payment.marginal_rate_bp`). Checks here need no ledger state: presence of
//! required fields, codes and text the domain types accept, months, years and quarters in
//! range, known enum values, rates and shares at most 100.00%. Rules that depend on the
//! ledger (and sign rules on amounts) are the domain's.

use domain::budget::BudgetCommand;
use domain::contract::ContractCommand;
use domain::fund::FundCommand;
use domain::system::{FiledReturn, MonthlyReturn, SystemCommand};
use domain::{Command, DomainError};

use crate::meta::CommandMeta;
use crate::pb;
use crate::pb::command::Command as C;
use crate::values::{self as v, Check, invalid};

/// A request message that carries one domain command.
pub trait IntoCommand {
    /// Checks the request and turns it into its metadata and command.
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError>;
}

/// Checks a bulk-load item and turns it into its metadata and command. Field paths in errors
/// are relative to the request inside the `Command` (`meta.request_id`, not
/// `admit_member.meta.request_id`), as for the unary rpc; see [`with_field_prefix`] to place
/// them in a bulk load.
pub fn command_from_proto(command: pb::Command) -> Result<(CommandMeta, Command), DomainError> {
    command.into_command()
}

/// Places a field path inside a larger message: `period.month` with prefix `commands[41]`
/// becomes `commands[41].period.month`. Errors that name no field pass through unchanged.
pub fn with_field_prefix(error: DomainError, prefix: &str) -> DomainError {
    match error {
        DomainError::Invalid { field, reason } => DomainError::Invalid {
            field: v::path(prefix, &field),
            reason,
        },
        DomainError::Overflow { field } => DomainError::Overflow {
            field: v::path(prefix, &field),
        },
        other => other,
    }
}

impl IntoCommand for pb::Command {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        match self.command {
            None => Err(invalid("command", "is required: set one of the requests")),
            Some(C::EstablishSystem(r)) => r.into_command(),
            Some(C::AdmitMember(r)) => r.into_command(),
            Some(C::AgreePlan(r)) => r.into_command(),
            Some(C::SubmitReturn(r)) => r.into_command(),
            Some(C::ReportMetric(r)) => r.into_command(),
            Some(C::ClosePeriod(r)) => r.into_command(),
            Some(C::FileReturn(r)) => r.into_command(),
            Some(C::EstablishBudget(r)) => r.into_command(),
            Some(C::PledgeContribution(r)) => r.into_command(),
            Some(C::PayContribution(r)) => r.into_command(),
            Some(C::RecordSpend(r)) => r.into_command(),
            Some(C::VaryBudget(r)) => r.into_command(),
            Some(C::SettleRiskShare(r)) => r.into_command(),
            Some(C::CloseBudget(r)) => r.into_command(),
            Some(C::AllocateFund(r)) => r.into_command(),
            Some(C::AssessTranche(r)) => r.into_command(),
            Some(C::PayTranche(r)) => r.into_command(),
            Some(C::ClawBack(r)) => r.into_command(),
            Some(C::AgreeContract(r)) => r.into_command(),
            Some(C::VaryContract(r)) => r.into_command(),
            Some(C::RecordActivity(r)) => r.into_command(),
            Some(C::RaiseInvoice(r)) => r.into_command(),
            Some(C::RecordPayment(r)) => r.into_command(),
            Some(C::RaiseDispute(r)) => r.into_command(),
            Some(C::ResolveDispute(r)) => r.into_command(),
            Some(C::ReconcileCquin(r)) => r.into_command(),
            Some(C::RecordAdjustment(r)) => r.into_command(),
            Some(C::TerminateContract(r)) => r.into_command(),
        }
    }
}

fn meta(meta: Option<pb::CommandMeta>) -> Result<CommandMeta, DomainError> {
    CommandMeta::from_proto(meta, "meta")
}

fn system(
    meta: CommandMeta,
    command: SystemCommand,
) -> Result<(CommandMeta, Command), DomainError> {
    Ok((meta, Command::System(command)))
}

// ---- system --------------------------------------------------------------------------------

impl IntoCommand for pb::EstablishSystemRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::Establish {
                system: v::system_id(self.system, "system")?,
                name: v::text(self.name, "name", Check::Ranges)?,
                first_year: v::year(self.first_year, "first_year")?,
            },
        )
    }
}

impl IntoCommand for pb::AdmitMemberRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::AdmitMember {
                member: v::member(self.member, "member")?,
                name: v::text(self.name, "name", Check::Ranges)?,
                kind: v::member_kind(self.kind, "kind")?,
                in_control_total: self.in_control_total,
            },
        )
    }
}

impl IntoCommand for pb::AgreePlanRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::AgreePlan {
                member: v::member(self.member, "member")?,
                year: v::year(self.year, "year")?,
                income: v::pence(self.income_pence),
                expenditure: v::pence(self.expenditure_pence),
            },
        )
    }
}

impl IntoCommand for pb::SubmitReturnRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::SubmitReturn(MonthlyReturn {
                member: v::member(self.member, "member")?,
                period: v::period(self.period, "period")?,
                income: v::pence(self.income_pence),
                expenditure: v::pence(self.expenditure_pence),
                balances: v::balances(self.balances, "balances")?,
            }),
        )
    }
}

impl IntoCommand for pb::ReportMetricRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::ReportMetric {
                member: v::member(self.member, "member")?,
                period: v::period(self.period, "period")?,
                metric: v::metric(self.metric, "metric")?,
                value: self.value,
            },
        )
    }
}

impl IntoCommand for pb::ClosePeriodRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::ClosePeriod {
                period: v::period(self.period, "period")?,
            },
        )
    }
}

impl IntoCommand for pb::FileReturnRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        system(
            meta,
            SystemCommand::FileReturn(FiledReturn {
                filer: v::filer(self.member, "member")?,
                report: v::report_spec(self.report, "report")?,
                period: v::period(self.period, "period")?,
                as_of_sequence: self.as_of_sequence,
                fingerprint: v::fingerprint(&self.fingerprint, "fingerprint")?,
            }),
        )
    }
}

// ---- budget --------------------------------------------------------------------------------

fn budget(
    meta: CommandMeta,
    budget: String,
    command: impl FnOnce() -> Result<BudgetCommand, DomainError>,
) -> Result<(CommandMeta, Command), DomainError> {
    let budget = v::code(budget, "budget")?;
    Ok((
        meta,
        Command::Budget {
            budget,
            command: command()?,
        },
    ))
}

impl IntoCommand for pb::EstablishBudgetRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::Establish {
                name: v::text(self.name, "name", Check::Ranges)?,
                host: v::member(self.host, "host")?,
                year: v::year(self.year, "year")?,
                partners: v::members(self.partners, "partners")?,
                schemes: v::schemes(self.schemes, "schemes", Check::Ranges)?,
                overspend_shares: v::shares(
                    self.overspend_shares,
                    "overspend_shares",
                    Check::Ranges,
                )?,
                underspend_shares: v::shares(
                    self.underspend_shares,
                    "underspend_shares",
                    Check::Ranges,
                )?,
            })
        })
    }
}

impl IntoCommand for pb::PledgeContributionRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::Pledge {
                partner: v::member(self.partner, "partner")?,
                amount: v::pence(self.amount_pence),
                ring_fenced_scheme: v::optional_code(
                    self.ring_fenced_scheme,
                    "ring_fenced_scheme",
                )?,
            })
        })
    }
}

impl IntoCommand for pb::PayContributionRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::PayContribution {
                partner: v::member(self.partner, "partner")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
            })
        })
    }
}

impl IntoCommand for pb::RecordSpendRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::RecordSpend {
                scheme: v::code(self.scheme, "scheme")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
                corrects: v::optional_period(self.corrects, "corrects")?,
            })
        })
    }
}

impl IntoCommand for pb::VaryBudgetRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::Vary {
                reason: v::text(self.reason, "reason", Check::Ranges)?,
                overspend_shares: v::share_list(
                    self.overspend_shares,
                    "overspend_shares",
                    Check::Ranges,
                )?,
                underspend_shares: v::share_list(
                    self.underspend_shares,
                    "underspend_shares",
                    Check::Ranges,
                )?,
                add_schemes: v::schemes(self.add_schemes, "add_schemes", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::SettleRiskShareRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::SettleRiskShare {
                period: v::period(self.period, "period")?,
            })
        })
    }
}

impl IntoCommand for pb::CloseBudgetRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        budget(meta, self.budget, || {
            Ok(BudgetCommand::Close {
                period: v::period(self.period, "period")?,
            })
        })
    }
}

// ---- fund ----------------------------------------------------------------------------------

fn fund(
    meta: CommandMeta,
    fund: String,
    command: impl FnOnce() -> Result<FundCommand, DomainError>,
) -> Result<(CommandMeta, Command), DomainError> {
    let fund = v::code(fund, "fund")?;
    Ok((
        meta,
        Command::Fund {
            fund,
            command: command()?,
        },
    ))
}

impl IntoCommand for pb::AllocateFundRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        fund(meta, self.fund, || {
            Ok(FundCommand::Allocate {
                name: v::text(self.name, "name", Check::Ranges)?,
                year: v::year(self.year, "year")?,
                recipients: v::recipients(self.recipients, "recipients")?,
                conditions: v::conditions(self.conditions, "conditions", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::AssessTrancheRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        fund(meta, self.fund, || {
            Ok(FundCommand::AssessTranche {
                quarter: v::quarter(self.quarter, "quarter")?,
                evidence: v::evidence(self.evidence, "evidence", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::PayTrancheRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        fund(meta, self.fund, || {
            Ok(FundCommand::PayTranche {
                quarter: v::quarter(self.quarter, "quarter")?,
                period: v::period(self.period, "period")?,
            })
        })
    }
}

impl IntoCommand for pb::ClawBackRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        fund(meta, self.fund, || {
            Ok(FundCommand::ClawBack {
                quarter: v::quarter(self.quarter, "quarter")?,
                member: v::member(self.member, "member")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
                reason: v::text(self.reason, "reason", Check::Ranges)?,
            })
        })
    }
}

// ---- contract ------------------------------------------------------------------------------

fn contract(
    meta: CommandMeta,
    contract: String,
    command: impl FnOnce() -> Result<ContractCommand, DomainError>,
) -> Result<(CommandMeta, Command), DomainError> {
    let contract = v::code(contract, "contract")?;
    Ok((
        meta,
        Command::Contract {
            contract,
            command: command()?,
        },
    ))
}

impl IntoCommand for pb::AgreeContractRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::Agree {
                commissioner: v::member(self.commissioner, "commissioner")?,
                provider: v::member(self.provider, "provider")?,
                year: v::year(self.year, "year")?,
                model: v::payment_model(self.model, "model", Check::Ranges)?,
                description: v::text(self.description, "description", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::VaryContractRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::Vary {
                period: v::period(self.period, "period")?,
                reason: v::text(self.reason, "reason", Check::Ranges)?,
                model: v::payment_model(self.model, "model", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::RecordActivityRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::RecordActivity {
                period: v::period(self.period, "period")?,
                units: self.units,
                corrects: v::optional_period(self.corrects, "corrects")?,
            })
        })
    }
}

impl IntoCommand for pb::RaiseInvoiceRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::RaiseInvoice {
                invoice: v::code(self.invoice, "invoice")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
                corrects: v::optional_period(self.corrects, "corrects")?,
            })
        })
    }
}

impl IntoCommand for pb::RecordPaymentRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::RecordPayment {
                invoice: v::code(self.invoice, "invoice")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
            })
        })
    }
}

impl IntoCommand for pb::RaiseDisputeRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::RaiseDispute {
                dispute: v::code(self.dispute, "dispute")?,
                invoice: v::optional_code(self.invoice, "invoice")?,
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
                reason: v::text(self.reason, "reason", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::ResolveDisputeRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::ResolveDispute {
                dispute: v::code(self.dispute, "dispute")?,
                period: v::period(self.period, "period")?,
                provider_keeps: v::pence(self.provider_keeps_pence),
                resolution: v::text(self.resolution, "resolution", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::ReconcileCquinRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::ReconcileCquin {
                period: v::period(self.period, "period")?,
                achievement: v::bp(self.achievement_bp, "achievement_bp", Check::Ranges)?,
            })
        })
    }
}

impl IntoCommand for pb::RecordAdjustmentRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::RecordAdjustment {
                period: v::period(self.period, "period")?,
                amount: v::pence(self.amount_pence),
                reason: v::text(self.reason, "reason", Check::Ranges)?,
                corrects: v::optional_period(self.corrects, "corrects")?,
            })
        })
    }
}

impl IntoCommand for pb::TerminateContractRequest {
    fn into_command(self) -> Result<(CommandMeta, Command), DomainError> {
        let meta = meta(self.meta)?;
        contract(meta, self.contract, || {
            Ok(ContractCommand::Terminate {
                period: v::period(self.period, "period")?,
                reason: v::text(self.reason, "reason", Check::Ranges)?,
            })
        })
    }
}

// ---- domain → proto ------------------------------------------------------------------------

/// The request for a domain command, as a bulk-load item (`pb::Command`). A client that built
/// the command from domain types (icsctl, scenario files) sends this through `SubmitBulk`, or
/// takes the request out of the oneof for the unary rpc.
pub fn command_to_proto(meta: &CommandMeta, command: &Command) -> pb::Command {
    let m = Some(meta.to_proto());
    let command = match command {
        Command::System(c) => system_to_proto(m, c),
        Command::Budget { budget, command } => budget_to_proto(m, budget.to_string(), command),
        Command::Fund { fund, command } => fund_to_proto(m, fund.to_string(), command),
        Command::Contract { contract, command } => {
            contract_to_proto(m, contract.to_string(), command)
        }
    };
    pb::Command {
        command: Some(command),
    }
}

fn system_to_proto(meta: Option<pb::CommandMeta>, command: &SystemCommand) -> C {
    match command {
        SystemCommand::Establish {
            system,
            name,
            first_year,
        } => C::EstablishSystem(pb::EstablishSystemRequest {
            meta,
            system: system.to_string(),
            name: name.to_string(),
            first_year: v::year_to_pb(*first_year),
        }),
        SystemCommand::AdmitMember {
            member,
            name,
            kind,
            in_control_total,
        } => C::AdmitMember(pb::AdmitMemberRequest {
            meta,
            member: member.to_string(),
            name: name.to_string(),
            kind: v::member_kind_to_pb(*kind).into(),
            in_control_total: *in_control_total,
        }),
        SystemCommand::AgreePlan {
            member,
            year,
            income,
            expenditure,
        } => C::AgreePlan(pb::AgreePlanRequest {
            meta,
            member: member.to_string(),
            year: v::year_to_pb(*year),
            income_pence: income.get(),
            expenditure_pence: expenditure.get(),
        }),
        SystemCommand::SubmitReturn(r) => C::SubmitReturn(pb::SubmitReturnRequest {
            meta,
            member: r.member.to_string(),
            period: Some(v::period_to_pb(r.period)),
            income_pence: r.income.get(),
            expenditure_pence: r.expenditure.get(),
            balances: v::balances_to_pb(&r.balances),
        }),
        SystemCommand::ReportMetric {
            member,
            period,
            metric,
            value,
        } => C::ReportMetric(pb::ReportMetricRequest {
            meta,
            member: member.to_string(),
            period: Some(v::period_to_pb(*period)),
            metric: v::metric_to_pb(*metric).into(),
            value: *value,
        }),
        SystemCommand::ClosePeriod { period } => C::ClosePeriod(pb::ClosePeriodRequest {
            meta,
            period: Some(v::period_to_pb(*period)),
        }),
        SystemCommand::FileReturn(filed) => C::FileReturn(pb::FileReturnRequest {
            meta,
            member: v::filer_to_pb(&filed.filer),
            report: Some(v::report_spec_to_pb(filed.report)),
            period: Some(v::period_to_pb(filed.period)),
            as_of_sequence: filed.as_of_sequence,
            fingerprint: filed.fingerprint.to_vec(),
        }),
    }
}

fn budget_to_proto(meta: Option<pb::CommandMeta>, budget: String, command: &BudgetCommand) -> C {
    match command {
        BudgetCommand::Establish {
            name,
            host,
            year,
            partners,
            schemes,
            overspend_shares,
            underspend_shares,
        } => C::EstablishBudget(pb::EstablishBudgetRequest {
            meta,
            budget,
            name: name.to_string(),
            host: host.to_string(),
            year: v::year_to_pb(*year),
            partners: partners.iter().map(ToString::to_string).collect(),
            schemes: v::schemes_to_pb(schemes),
            overspend_shares: v::shares_to_pb(overspend_shares),
            underspend_shares: v::shares_to_pb(underspend_shares),
        }),
        BudgetCommand::Pledge {
            partner,
            amount,
            ring_fenced_scheme,
        } => C::PledgeContribution(pb::PledgeContributionRequest {
            meta,
            budget,
            partner: partner.to_string(),
            amount_pence: amount.get(),
            ring_fenced_scheme: ring_fenced_scheme.as_ref().map(ToString::to_string),
        }),
        BudgetCommand::PayContribution {
            partner,
            period,
            amount,
        } => C::PayContribution(pb::PayContributionRequest {
            meta,
            budget,
            partner: partner.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
        }),
        BudgetCommand::RecordSpend {
            scheme,
            period,
            amount,
            corrects,
        } => C::RecordSpend(pb::RecordSpendRequest {
            meta,
            budget,
            scheme: scheme.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            corrects: corrects.map(v::period_to_pb),
        }),
        BudgetCommand::Vary {
            reason,
            overspend_shares,
            underspend_shares,
            add_schemes,
        } => C::VaryBudget(pb::VaryBudgetRequest {
            meta,
            budget,
            reason: reason.to_string(),
            overspend_shares: v::share_list_to_pb(overspend_shares.as_deref()),
            underspend_shares: v::share_list_to_pb(underspend_shares.as_deref()),
            add_schemes: v::schemes_to_pb(add_schemes),
        }),
        BudgetCommand::SettleRiskShare { period } => {
            C::SettleRiskShare(pb::SettleRiskShareRequest {
                meta,
                budget,
                period: Some(v::period_to_pb(*period)),
            })
        }
        BudgetCommand::Close { period } => C::CloseBudget(pb::CloseBudgetRequest {
            meta,
            budget,
            period: Some(v::period_to_pb(*period)),
        }),
    }
}

fn fund_to_proto(meta: Option<pb::CommandMeta>, fund: String, command: &FundCommand) -> C {
    match command {
        FundCommand::Allocate {
            name,
            year,
            recipients,
            conditions,
        } => C::AllocateFund(pb::AllocateFundRequest {
            meta,
            fund,
            name: name.to_string(),
            year: v::year_to_pb(*year),
            recipients: v::recipients_to_pb(recipients),
            conditions: v::conditions_to_pb(conditions),
        }),
        FundCommand::AssessTranche { quarter, evidence } => {
            C::AssessTranche(pb::AssessTrancheRequest {
                meta,
                fund,
                quarter: v::quarter_to_pb(*quarter),
                evidence: v::evidence_to_pb(evidence),
            })
        }
        FundCommand::PayTranche { quarter, period } => C::PayTranche(pb::PayTrancheRequest {
            meta,
            fund,
            quarter: v::quarter_to_pb(*quarter),
            period: Some(v::period_to_pb(*period)),
        }),
        FundCommand::ClawBack {
            quarter,
            member,
            period,
            amount,
            reason,
        } => C::ClawBack(pb::ClawBackRequest {
            meta,
            fund,
            quarter: v::quarter_to_pb(*quarter),
            member: member.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
        }),
    }
}

fn contract_to_proto(
    meta: Option<pb::CommandMeta>,
    contract: String,
    command: &ContractCommand,
) -> C {
    match command {
        ContractCommand::Agree {
            commissioner,
            provider,
            year,
            model,
            description,
        } => C::AgreeContract(pb::AgreeContractRequest {
            meta,
            contract,
            commissioner: commissioner.to_string(),
            provider: provider.to_string(),
            year: v::year_to_pb(*year),
            model: Some(v::payment_model_to_pb(model)),
            description: description.to_string(),
        }),
        ContractCommand::Vary {
            period,
            reason,
            model,
        } => C::VaryContract(pb::VaryContractRequest {
            meta,
            contract,
            period: Some(v::period_to_pb(*period)),
            reason: reason.to_string(),
            model: Some(v::payment_model_to_pb(model)),
        }),
        ContractCommand::RecordActivity {
            period,
            units,
            corrects,
        } => C::RecordActivity(pb::RecordActivityRequest {
            meta,
            contract,
            period: Some(v::period_to_pb(*period)),
            units: *units,
            corrects: corrects.map(v::period_to_pb),
        }),
        ContractCommand::RaiseInvoice {
            invoice,
            period,
            amount,
            corrects,
        } => C::RaiseInvoice(pb::RaiseInvoiceRequest {
            meta,
            contract,
            invoice: invoice.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            corrects: corrects.map(v::period_to_pb),
        }),
        ContractCommand::RecordPayment {
            invoice,
            period,
            amount,
        } => C::RecordPayment(pb::RecordPaymentRequest {
            meta,
            contract,
            invoice: invoice.to_string(),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
        }),
        ContractCommand::RaiseDispute {
            dispute,
            invoice,
            period,
            amount,
            reason,
        } => C::RaiseDispute(pb::RaiseDisputeRequest {
            meta,
            contract,
            dispute: dispute.to_string(),
            invoice: invoice.as_ref().map(ToString::to_string),
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
        }),
        ContractCommand::ResolveDispute {
            dispute,
            period,
            provider_keeps,
            resolution,
        } => C::ResolveDispute(pb::ResolveDisputeRequest {
            meta,
            contract,
            dispute: dispute.to_string(),
            period: Some(v::period_to_pb(*period)),
            provider_keeps_pence: provider_keeps.get(),
            resolution: resolution.to_string(),
        }),
        ContractCommand::ReconcileCquin {
            period,
            achievement,
        } => C::ReconcileCquin(pb::ReconcileCquinRequest {
            meta,
            contract,
            period: Some(v::period_to_pb(*period)),
            achievement_bp: achievement.get(),
        }),
        ContractCommand::RecordAdjustment {
            period,
            amount,
            reason,
            corrects,
        } => C::RecordAdjustment(pb::RecordAdjustmentRequest {
            meta,
            contract,
            period: Some(v::period_to_pb(*period)),
            amount_pence: amount.get(),
            reason: reason.to_string(),
            corrects: corrects.map(v::period_to_pb),
        }),
        ContractCommand::Terminate { period, reason } => {
            C::TerminateContract(pb::TerminateContractRequest {
                meta,
                contract,
                period: Some(v::period_to_pb(*period)),
                reason: reason.to_string(),
            })
        }
    }
}
