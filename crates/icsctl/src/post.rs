//! The commands a finance team posts, one subcommand each, parsed into `domain::Command`.
//!
//! The same definitions read scenario files: each line of a file given to `icsctl load` is one
//! of these subcommands, so a scenario is a script anyone can also type by hand.

use clap::{Args, Subcommand};
use domain::budget::{Scheme, Share};
use domain::contract::PaymentModel;
use domain::fund::{Condition, ConditionKind, Evidence, Figures, Recipient};
use domain::system::{CounterpartyBalance, FiledReturn, Filer, Metric, MonthlyReturn};
use domain::{
    BasisPoints, BudgetCommand, Code, Command, ContractCommand, FinancialYear, FundCommand,
    MemberCode, MemberKind, Pence, Period, Quarter, SystemCommand, SystemId, Text,
};

use crate::parse;

#[derive(Clone, Debug, Subcommand)]
pub enum Post {
    /// Establish the ICS (once).
    EstablishSystem {
        #[arg(long)]
        system: String,
        #[arg(long, value_parser = parse::text)]
        name: Text,
        #[arg(long, value_parser = parse::year)]
        first_year: FinancialYear,
    },
    /// Admit a member body by its ODS code.
    AdmitMember {
        #[arg(long, value_parser = parse::member)]
        member: MemberCode,
        #[arg(long, value_parser = parse::text)]
        name: Text,
        /// commissioner, acute-trust, community-trust, mental-health-trust, primary-care-network, local-authority
        #[arg(long, value_parser = member_kind)]
        kind: MemberKind,
        /// Counts toward the system control total (NHS bodies only).
        #[arg(long)]
        in_control_total: bool,
    },
    /// Agree a member's plan (control total) for a year; phased evenly over twelve months.
    AgreePlan {
        #[arg(long, value_parser = parse::member)]
        member: MemberCode,
        #[arg(long, value_parser = parse::year)]
        year: FinancialYear,
        /// Pounds, e.g. 420000000 or 1,234.56
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        income: Pence,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        expenditure: Pence,
    },
    /// Submit a member's monthly return.
    SubmitReturn {
        #[arg(long, value_parser = parse::member)]
        member: MemberCode,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        income: Pence,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        expenditure: Pence,
        /// MEMBER:income=..,expenditure=..,receivables=..,payables=.. (repeatable; missing keys are 0)
        #[arg(long = "balance", value_parser = balance)]
        balances: Vec<CounterpartyBalance>,
    },
    /// Report an operational metric (counts, or A&E four-hour performance as a percentage).
    ReportMetric {
        #[arg(long, value_parser = parse::member)]
        member: MemberCode,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        /// emergency-admissions, emergency-bed-days, ae-four-hour
        #[arg(long, value_parser = metric)]
        metric: Metric,
        /// A count, or for ae-four-hour a percentage like 91.00%
        #[arg(long, allow_hyphen_values = true)]
        value: String,
    },
    /// Close the next period (periods close in order).
    ClosePeriod {
        #[arg(long, value_parser = parse::period)]
        period: Period,
    },
    /// Record that a report was filed (with the regulator) by --member, or by the system
    /// itself (no --member): either the exported report (--file, from `icsctl audit replay
    /// --export`), whose kind, period, sequence and fingerprint are read from it, or all of
    /// --report, --period, --as-of-sequence and --fingerprint.
    FileReturn {
        /// The member filing; leave out for the system itself.
        #[arg(long, value_parser = parse::member)]
        member: Option<MemberCode>,
        /// The exported report that was filed.
        #[arg(long, conflicts_with_all = ["report", "period", "as_of_sequence", "fingerprint", "scope", "balance_threshold", "income_threshold"])]
        file: Option<std::path::PathBuf>,
        /// Which report: position, consolidation, budget, contract, fund, aob, adjustments.
        #[arg(long, value_enum, requires_all = ["period", "as_of_sequence", "fingerprint"])]
        report: Option<crate::audit::ReportName>,
        /// The year and last month the report covers (year to date), e.g. 2018/19-M6.
        #[arg(long, value_parser = parse::period)]
        period: Option<Period>,
        /// The sequence the report was taken at (its basis).
        #[arg(long)]
        as_of_sequence: Option<u64>,
        /// The report's fingerprint: 64 hex digits.
        #[arg(long, value_parser = fingerprint)]
        fingerprint: Option<[u8; 32]>,
        /// consolidation and aob: nhs (default) or all members.
        #[arg(long, value_enum)]
        scope: Option<crate::report::Scope>,
        /// aob: the receivables/payables threshold in pounds (default 300,000).
        #[arg(long, value_parser = parse::pounds)]
        balance_threshold: Option<Pence>,
        /// aob: the income/expenditure threshold in pounds (default 3,000,000).
        #[arg(long, value_parser = parse::pounds)]
        income_threshold: Option<Pence>,
    },
    /// Establish a pooled budget (Section 75).
    EstablishBudget {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::text)]
        name: Text,
        #[arg(long, value_parser = parse::member)]
        host: MemberCode,
        #[arg(long, value_parser = parse::year)]
        year: FinancialYear,
        #[arg(long = "partner", value_parser = parse::member)]
        partners: Vec<MemberCode>,
        /// CODE:Name[:ring-fenced] (repeatable)
        #[arg(long = "scheme", value_parser = scheme)]
        schemes: Vec<Scheme>,
        /// MEMBER:PERCENT (repeatable; must sum to 100%)
        #[arg(long = "overspend-share", value_parser = share)]
        overspend_shares: Vec<Share>,
        #[arg(long = "underspend-share", value_parser = share)]
        underspend_shares: Vec<Share>,
    },
    /// Pledge a partner's contribution to a pooled budget.
    Pledge {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::member)]
        partner: MemberCode,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        /// Pledge to this ring-fenced scheme instead of the revenue pool.
        #[arg(long, value_parser = parse::code)]
        ring_fenced: Option<Code>,
    },
    /// Record a partner's payment into a pooled budget.
    PayContribution {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::member)]
        partner: MemberCode,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
    },
    /// Record spend against a scheme of a pooled budget.
    RecordSpend {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::code)]
        scheme: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        #[arg(long, value_parser = parse::period)]
        corrects: Option<Period>,
    },
    /// Vary a pooled budget's agreement: new shares and/or new schemes.
    VaryBudget {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
        #[arg(long = "overspend-share", value_parser = share)]
        overspend_shares: Vec<Share>,
        #[arg(long = "underspend-share", value_parser = share)]
        underspend_shares: Vec<Share>,
        #[arg(long = "add-scheme", value_parser = scheme)]
        add_schemes: Vec<Scheme>,
    },
    /// Settle a pooled budget's risk share (computed exactly by the ledger).
    SettleRiskShare {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
    },
    /// Close a settled pooled budget.
    CloseBudget {
        #[arg(long, value_parser = parse::code)]
        budget: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
    },
    /// Allocate a sustainability fund.
    AllocateFund {
        #[arg(long, value_parser = parse::code)]
        fund: Code,
        #[arg(long, value_parser = parse::text)]
        name: Text,
        #[arg(long, value_parser = parse::year)]
        year: FinancialYear,
        /// MEMBER:AMOUNT (repeatable)
        #[arg(long = "recipient", value_parser = recipient)]
        recipients: Vec<Recipient>,
        /// CODE:system-finance:WEIGHT or CODE:ae-four-hour>=THRESHOLD:WEIGHT (repeatable)
        #[arg(long = "condition", value_parser = condition)]
        conditions: Vec<Condition>,
    },
    /// Assess a quarterly tranche against the evidence.
    AssessTranche {
        #[arg(long, value_parser = parse::code)]
        fund: Code,
        #[arg(long, value_parser = parse::quarter)]
        quarter: Quarter,
        /// CODE:actual=..,control-total=.. or CODE:performance=PERCENT (repeatable)
        #[arg(long = "evidence", value_parser = evidence, allow_hyphen_values = true)]
        evidence: Vec<Evidence>,
    },
    /// Pay an assessed tranche.
    PayTranche {
        #[arg(long, value_parser = parse::code)]
        fund: Code,
        #[arg(long, value_parser = parse::quarter)]
        quarter: Quarter,
        #[arg(long, value_parser = parse::period)]
        period: Period,
    },
    /// Claw back a paid tranche from a recipient.
    ClawBack {
        #[arg(long, value_parser = parse::code)]
        fund: Code,
        #[arg(long, value_parser = parse::quarter)]
        quarter: Quarter,
        #[arg(long, value_parser = parse::member)]
        member: MemberCode,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
    },
    /// Agree a contract between a commissioner and a provider.
    AgreeContract {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::member)]
        commissioner: MemberCode,
        #[arg(long, value_parser = parse::member)]
        provider: MemberCode,
        #[arg(long, value_parser = parse::year)]
        year: FinancialYear,
        #[command(flatten)]
        model: ModelArgs,
        #[arg(long, value_parser = parse::text)]
        description: Text,
    },
    /// Vary a contract's payment model from a period.
    VaryContract {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
        #[command(flatten)]
        model: ModelArgs,
    },
    /// Record a month's activity on a contract.
    RecordActivity {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::count)]
        units: u64,
        #[arg(long, value_parser = parse::period)]
        corrects: Option<Period>,
    },
    /// Raise an invoice on a contract (the provider).
    RaiseInvoice {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::code)]
        invoice: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        #[arg(long, value_parser = parse::period)]
        corrects: Option<Period>,
    },
    /// Record a payment against an invoice (the commissioner).
    RecordPayment {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::code)]
        invoice: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
    },
    /// Raise a dispute on a contract.
    RaiseDispute {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::code)]
        dispute: Code,
        #[arg(long, value_parser = parse::code)]
        invoice: Option<Code>,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
    },
    /// Resolve a dispute: what the provider keeps; the rest is written off.
    ResolveDispute {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::code)]
        dispute: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        provider_keeps: Pence,
        #[arg(long, value_parser = parse::text)]
        resolution: Text,
    },
    /// Reconcile a CQUIN contract against the achievement.
    ReconcileCquin {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::percent)]
        achievement: BasisPoints,
    },
    /// Record a signed adjustment to a contract's value (e.g. a gain share).
    RecordAdjustment {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::pounds, allow_hyphen_values = true)]
        amount: Pence,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
        #[arg(long, value_parser = parse::period)]
        corrects: Option<Period>,
    },
    /// Terminate a contract.
    TerminateContract {
        #[arg(long, value_parser = parse::code)]
        contract: Code,
        #[arg(long, value_parser = parse::period)]
        period: Period,
        #[arg(long, value_parser = parse::text)]
        reason: Text,
    },
}

/// Exactly one payment model.
#[derive(Clone, Debug, Args)]
#[group(required = true, multiple = false)]
pub struct ModelArgs {
    /// Block: annual value in pounds.
    #[arg(long, value_parser = parse::pounds)]
    block: Option<Pence>,
    /// Activity at tariff: units=N,price=POUNDS
    #[arg(long)]
    activity_tariff: Option<String>,
    /// Aligned payment: fixed=POUNDS,units=N,price=POUNDS,rate=PERCENT
    #[arg(long)]
    aligned: Option<String>,
    /// Capitation: per-head=POUNDS,population=N,gain-share=PERCENT,loss-share=PERCENT
    #[arg(long)]
    capitation: Option<String>,
    /// CQUIN: base=POUNDS,rate=PERCENT
    #[arg(long)]
    cquin: Option<String>,
}

impl ModelArgs {
    fn model(&self) -> Result<PaymentModel, String> {
        if let Some(annual_value) = self.block {
            return Ok(PaymentModel::Block { annual_value });
        }
        if let Some(text) = &self.activity_tariff {
            let kv = parse::key_values(text, &["units", "price"])?;
            return Ok(PaymentModel::ActivityTariff {
                planned_units: parse::count(parse::required(&kv, "units")?)?,
                unit_price: parse::pounds(parse::required(&kv, "price")?)?,
            });
        }
        if let Some(text) = &self.aligned {
            let kv = parse::key_values(text, &["fixed", "units", "price", "rate"])?;
            return Ok(PaymentModel::AlignedPayment {
                fixed: parse::pounds(parse::required(&kv, "fixed")?)?,
                planned_units: parse::count(parse::required(&kv, "units")?)?,
                unit_price: parse::pounds(parse::required(&kv, "price")?)?,
                marginal_rate: parse::percent(parse::required(&kv, "rate")?)?,
            });
        }
        if let Some(text) = &self.capitation {
            let kv = parse::key_values(
                text,
                &["per-head", "population", "gain-share", "loss-share"],
            )?;
            return Ok(PaymentModel::Capitation {
                per_head: parse::pounds(parse::required(&kv, "per-head")?)?,
                population: parse::count(parse::required(&kv, "population")?)?,
                gain_share: parse::percent(parse::required(&kv, "gain-share")?)?,
                loss_share: parse::percent(parse::required(&kv, "loss-share")?)?,
            });
        }
        if let Some(text) = &self.cquin {
            let kv = parse::key_values(text, &["base", "rate"])?;
            return Ok(PaymentModel::Cquin {
                base_value: parse::pounds(parse::required(&kv, "base")?)?,
                rate: parse::percent(parse::required(&kv, "rate")?)?,
            });
        }
        Err("give one payment model: --block, --activity-tariff, --aligned, --capitation or --cquin".to_string())
    }
}

impl Post {
    /// The domain command this subcommand posts.
    pub fn command(&self) -> Result<Command, String> {
        let system = |c| Ok(Command::System(c));
        let budget = |code: &Code, command| {
            Ok(Command::Budget {
                budget: code.clone(),
                command,
            })
        };
        let fund = |code: &Code, command| {
            Ok(Command::Fund {
                fund: code.clone(),
                command,
            })
        };
        let contract = |code: &Code, command| {
            Ok(Command::Contract {
                contract: code.clone(),
                command,
            })
        };
        match self.clone() {
            Post::EstablishSystem {
                system: id,
                name,
                first_year,
            } => {
                let id = SystemId::new(id).map_err(|e| format!("system {e}"))?;
                system(SystemCommand::Establish {
                    system: id,
                    name,
                    first_year,
                })
            }
            Post::AdmitMember {
                member,
                name,
                kind,
                in_control_total,
            } => system(SystemCommand::AdmitMember {
                member,
                name,
                kind,
                in_control_total,
            }),
            Post::AgreePlan {
                member,
                year,
                income,
                expenditure,
            } => system(SystemCommand::AgreePlan {
                member,
                year,
                income,
                expenditure,
            }),
            Post::SubmitReturn {
                member,
                period,
                income,
                expenditure,
                balances,
            } => system(SystemCommand::SubmitReturn(MonthlyReturn {
                member,
                period,
                income,
                expenditure,
                balances,
            })),
            Post::ReportMetric {
                member,
                period,
                metric,
                value,
            } => {
                let value = match metric {
                    Metric::AeFourHour => i64::from(parse::percent(&value)?.get()),
                    _ => i64::try_from(parse::count(&value)?)
                        .map_err(|_| format!("'{value}' is too large"))?,
                };
                system(SystemCommand::ReportMetric {
                    member,
                    period,
                    metric,
                    value,
                })
            }
            Post::ClosePeriod { period } => system(SystemCommand::ClosePeriod { period }),
            Post::FileReturn {
                member,
                file,
                report,
                period,
                as_of_sequence,
                fingerprint,
                scope,
                balance_threshold,
                income_threshold,
            } => {
                let filer = member.map_or(Filer::System, Filer::Member);
                let filed = match (file, report, period, as_of_sequence, fingerprint) {
                    (Some(file), ..) => {
                        let exported =
                            crate::audit::export::read(&file).map_err(|e| format!("{e:#}"))?;
                        let basis = exported.report.basis();
                        if !exported.is_as_exported() {
                            return Err(format!(
                                "{}: its content does not give the fingerprint it states, so it was changed after it was exported; file the report as exported, or, to file this content as it now is, give --report {} --period {} --as-of-sequence {} --fingerprint {}",
                                file.display(),
                                exported.report.kind().name(),
                                basis.year.period(basis.month),
                                basis.as_of_sequence,
                                crate::audit::hex32(&exported.fingerprint),
                            ));
                        }
                        FiledReturn {
                            filer,
                            report: exported.report.kind(),
                            period: basis.year.period(basis.month),
                            as_of_sequence: basis.as_of_sequence,
                            fingerprint: exported.fingerprint,
                        }
                    }
                    (None, Some(name), Some(period), Some(as_of_sequence), Some(fingerprint)) => {
                        FiledReturn {
                            filer,
                            report: crate::audit::report_kind(
                                name,
                                scope,
                                balance_threshold,
                                income_threshold,
                            )?,
                            period,
                            as_of_sequence,
                            fingerprint,
                        }
                    }
                    _ => {
                        return Err("give --file, or all of --report, --period, --as-of-sequence and --fingerprint".to_string());
                    }
                };
                system(SystemCommand::FileReturn(filed))
            }
            Post::EstablishBudget {
                budget: code,
                name,
                host,
                year,
                partners,
                schemes,
                overspend_shares,
                underspend_shares,
            } => budget(
                &code,
                BudgetCommand::Establish {
                    name,
                    host,
                    year,
                    partners,
                    schemes,
                    overspend_shares,
                    underspend_shares,
                },
            ),
            Post::Pledge {
                budget: code,
                partner,
                amount,
                ring_fenced,
            } => budget(
                &code,
                BudgetCommand::Pledge {
                    partner,
                    amount,
                    ring_fenced_scheme: ring_fenced,
                },
            ),
            Post::PayContribution {
                budget: code,
                partner,
                period,
                amount,
            } => budget(
                &code,
                BudgetCommand::PayContribution {
                    partner,
                    period,
                    amount,
                },
            ),
            Post::RecordSpend {
                budget: code,
                scheme,
                period,
                amount,
                corrects,
            } => budget(
                &code,
                BudgetCommand::RecordSpend {
                    scheme,
                    period,
                    amount,
                    corrects,
                },
            ),
            Post::VaryBudget {
                budget: code,
                reason,
                overspend_shares,
                underspend_shares,
                add_schemes,
            } => budget(
                &code,
                BudgetCommand::Vary {
                    reason,
                    overspend_shares: (!overspend_shares.is_empty()).then_some(overspend_shares),
                    underspend_shares: (!underspend_shares.is_empty()).then_some(underspend_shares),
                    add_schemes,
                },
            ),
            Post::SettleRiskShare {
                budget: code,
                period,
            } => budget(&code, BudgetCommand::SettleRiskShare { period }),
            Post::CloseBudget {
                budget: code,
                period,
            } => budget(&code, BudgetCommand::Close { period }),
            Post::AllocateFund {
                fund: code,
                name,
                year,
                recipients,
                conditions,
            } => fund(
                &code,
                FundCommand::Allocate {
                    name,
                    year,
                    recipients,
                    conditions,
                },
            ),
            Post::AssessTranche {
                fund: code,
                quarter,
                evidence,
            } => fund(&code, FundCommand::AssessTranche { quarter, evidence }),
            Post::PayTranche {
                fund: code,
                quarter,
                period,
            } => fund(&code, FundCommand::PayTranche { quarter, period }),
            Post::ClawBack {
                fund: code,
                quarter,
                member,
                period,
                amount,
                reason,
            } => fund(
                &code,
                FundCommand::ClawBack {
                    quarter,
                    member,
                    period,
                    amount,
                    reason,
                },
            ),
            Post::AgreeContract {
                contract: code,
                commissioner,
                provider,
                year,
                model,
                description,
            } => contract(
                &code,
                ContractCommand::Agree {
                    commissioner,
                    provider,
                    year,
                    model: model.model()?,
                    description,
                },
            ),
            Post::VaryContract {
                contract: code,
                period,
                reason,
                model,
            } => contract(
                &code,
                ContractCommand::Vary {
                    period,
                    reason,
                    model: model.model()?,
                },
            ),
            Post::RecordActivity {
                contract: code,
                period,
                units,
                corrects,
            } => contract(
                &code,
                ContractCommand::RecordActivity {
                    period,
                    units,
                    corrects,
                },
            ),
            Post::RaiseInvoice {
                contract: code,
                invoice,
                period,
                amount,
                corrects,
            } => contract(
                &code,
                ContractCommand::RaiseInvoice {
                    invoice,
                    period,
                    amount,
                    corrects,
                },
            ),
            Post::RecordPayment {
                contract: code,
                invoice,
                period,
                amount,
            } => contract(
                &code,
                ContractCommand::RecordPayment {
                    invoice,
                    period,
                    amount,
                },
            ),
            Post::RaiseDispute {
                contract: code,
                dispute,
                invoice,
                period,
                amount,
                reason,
            } => contract(
                &code,
                ContractCommand::RaiseDispute {
                    dispute,
                    invoice,
                    period,
                    amount,
                    reason,
                },
            ),
            Post::ResolveDispute {
                contract: code,
                dispute,
                period,
                provider_keeps,
                resolution,
            } => contract(
                &code,
                ContractCommand::ResolveDispute {
                    dispute,
                    period,
                    provider_keeps,
                    resolution,
                },
            ),
            Post::ReconcileCquin {
                contract: code,
                period,
                achievement,
            } => contract(
                &code,
                ContractCommand::ReconcileCquin {
                    period,
                    achievement,
                },
            ),
            Post::RecordAdjustment {
                contract: code,
                period,
                amount,
                reason,
                corrects,
            } => contract(
                &code,
                ContractCommand::RecordAdjustment {
                    period,
                    amount,
                    reason,
                    corrects,
                },
            ),
            Post::TerminateContract {
                contract: code,
                period,
                reason,
            } => contract(&code, ContractCommand::Terminate { period, reason }),
        }
    }
}

/// 64 hex digits: a SHA-256 fingerprint.
fn fingerprint(text: &str) -> Result<[u8; 32], String> {
    hex::decode(text.trim())
        .ok()
        .and_then(|bytes| <[u8; 32]>::try_from(bytes).ok())
        .ok_or_else(|| format!("'{text}' is not a fingerprint (64 hex digits)"))
}

fn member_kind(text: &str) -> Result<MemberKind, String> {
    MemberKind::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = MemberKind::ALL.iter().map(|k| k.name()).collect();
        format!("'{text}' is not one of {}", names.join(", "))
    })
}

fn metric(text: &str) -> Result<Metric, String> {
    Metric::from_name(text).ok_or_else(|| {
        let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        format!("'{text}' is not one of {}", names.join(", "))
    })
}

/// `KCCG:income=7000000,payables=12.50`
fn balance(text: &str) -> Result<CounterpartyBalance, String> {
    let (member, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not MEMBER:key=value,…"))?;
    let kv = parse::key_values(rest, &["income", "expenditure", "receivables", "payables"])?;
    let amount = |key: &str| kv.get(key).map_or(Ok(Pence::ZERO), |v| parse::pounds(v));
    Ok(CounterpartyBalance {
        counterparty: parse::member(member)?,
        income: amount("income")?,
        expenditure: amount("expenditure")?,
        receivables: amount("receivables")?,
        payables: amount("payables")?,
    })
}

/// `DFG:Disabled Facilities Grant:ring-fenced`
fn scheme(text: &str) -> Result<Scheme, String> {
    let mut parts = text.splitn(3, ':');
    let code = parse::code(parts.next().unwrap_or_default())?;
    let name = parse::text(
        parts
            .next()
            .ok_or_else(|| format!("'{text}' is not CODE:Name[:ring-fenced]"))?,
    )?;
    let ring_fenced = match parts.next() {
        None => false,
        Some("ring-fenced") => true,
        Some(other) => return Err(format!("'{other}' should be 'ring-fenced' or left out")),
    };
    Ok(Scheme {
        scheme: code,
        name,
        ring_fenced,
    })
}

/// `KCCG:50%`
fn share(text: &str) -> Result<Share, String> {
    let (member, percent) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not MEMBER:PERCENT"))?;
    Ok(Share {
        member: parse::member(member)?,
        share: parse::percent(percent)?,
    })
}

/// `KHFT:4800000`
fn recipient(text: &str) -> Result<Recipient, String> {
    let (member, amount) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not MEMBER:AMOUNT"))?;
    Ok(Recipient {
        member: parse::member(member)?,
        allocation: parse::pounds(amount)?,
    })
}

/// `FIN:system-finance:70%` or `AE:ae-four-hour>=90%:30%`
fn condition(text: &str) -> Result<Condition, String> {
    let bad = || {
        format!("'{text}' is not CODE:system-finance:WEIGHT or CODE:ae-four-hour>=THRESHOLD:WEIGHT")
    };
    let mut parts = text.split(':');
    let (Some(code), Some(kind), Some(weight), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(bad());
    };
    let kind = if kind == "system-finance" {
        ConditionKind::SystemFinance
    } else if let Some(threshold) = kind.strip_prefix("ae-four-hour>=") {
        ConditionKind::AeFourHour {
            threshold: parse::percent(threshold)?,
        }
    } else {
        return Err(bad());
    };
    Ok(Condition {
        condition: parse::code(code)?,
        kind,
        weight: parse::percent(weight)?,
    })
}

/// `FIN:actual=-1800000,control-total=-1800000` or `AE:performance=91.00%`
fn evidence(text: &str) -> Result<Evidence, String> {
    let (code, rest) = text
        .split_once(':')
        .ok_or_else(|| format!("'{text}' is not CODE:key=value,…"))?;
    let kv = parse::key_values(rest, &["actual", "control-total", "performance"])?;
    let figures = if let Some(performance) = kv.get("performance") {
        Figures::AeFourHour {
            performance: parse::percent(performance)?,
        }
    } else {
        Figures::SystemFinance {
            actual_ytd: parse::pounds(parse::required(&kv, "actual")?)?,
            control_total_ytd: parse::pounds(parse::required(&kv, "control-total")?)?,
        }
    };
    Ok(Evidence {
        condition: parse::code(code)?,
        figures,
    })
}
