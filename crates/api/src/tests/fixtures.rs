//! One instance of every domain command and every domain event, with values chosen so that
//! every optional field is exercised both set and unset somewhere.

use domain::budget::{Allocation, BudgetCommand, BudgetEvent, Scheme, Share};
use domain::contract::{ContractCommand, ContractEvent, PaymentModel};
use domain::fund::{
    Condition, ConditionKind, ConditionOutcome, Evidence, Figures, FundCommand, FundEvent,
    Recipient,
};
use domain::position::{AobOptions, AobScope, AobThresholds, ConsolidationScope, ReportKind};
use domain::system::{
    CounterpartyBalance, FiledReturn, Filer, Metric, MonthlyReturn, SystemCommand, SystemEvent,
};
use domain::{
    BasisPoints, Code, Command, Event, FinancialYear, MemberCode, MemberKind, Pence, Period,
    Quarter, SystemId, Text,
};

pub fn member(code: &str) -> MemberCode {
    MemberCode::parse(code).expect("valid member code")
}

pub fn code(code: &str) -> Code {
    Code::new(code).expect("valid code")
}

pub fn text(text: &str) -> Text {
    Text::new(text).expect("valid text")
}

pub fn year(year: u32) -> FinancialYear {
    FinancialYear::new(year).expect("valid year")
}

pub fn period(text: &str) -> Period {
    text.parse().expect("valid period")
}

pub fn quarter(q: u32) -> Quarter {
    Quarter::new(q).expect("valid quarter")
}

pub fn gbp(pounds: i64) -> Pence {
    Pence::new(pounds * 100)
}

pub fn bp(bp: u32) -> BasisPoints {
    BasisPoints::new(bp)
}

fn monthly_return() -> MonthlyReturn {
    MonthlyReturn {
        member: member("KHFT"),
        period: period("2018/19-M5"),
        income: gbp(30_000_000),
        expenditure: gbp(31_000_000),
        balances: vec![
            CounterpartyBalance {
                counterparty: member("KCCG"),
                income: gbp(25_000_000),
                expenditure: Pence::ZERO,
                receivables: gbp(1_200_000),
                payables: Pence::new(5),
            },
            CounterpartyBalance {
                counterparty: member("15N"),
                income: Pence::ZERO,
                expenditure: gbp(300_000),
                receivables: Pence::ZERO,
                payables: gbp(40_000),
            },
        ],
    }
}

fn schemes() -> Vec<Scheme> {
    vec![
        Scheme {
            scheme: code("REABLE"),
            name: text("Reablement"),
            ring_fenced: false,
        },
        Scheme {
            scheme: code("DFG"),
            name: text("Disabled Facilities Grant"),
            ring_fenced: true,
        },
    ]
}

fn shares(first: u32) -> Vec<Share> {
    vec![
        Share {
            member: member("KCC"),
            share: bp(first),
        },
        Share {
            member: member("KCCG"),
            share: bp(10_000 - first),
        },
    ]
}

fn conditions() -> Vec<Condition> {
    vec![
        Condition {
            condition: code("FIN"),
            kind: ConditionKind::SystemFinance,
            weight: bp(7_000),
        },
        Condition {
            condition: code("AE"),
            kind: ConditionKind::AeFourHour {
                threshold: bp(9_000),
            },
            weight: bp(3_000),
        },
    ]
}

fn aligned() -> PaymentModel {
    PaymentModel::AlignedPayment {
        fixed: gbp(200_000_000),
        planned_units: 120_000,
        unit_price: gbp(1_500),
        marginal_rate: bp(7_500),
    }
}

/// One of every payment model.
pub fn models() -> Vec<PaymentModel> {
    vec![
        PaymentModel::Block {
            annual_value: gbp(72_000_000),
        },
        PaymentModel::ActivityTariff {
            planned_units: 12_000,
            unit_price: Pence::new(34_567),
        },
        aligned(),
        PaymentModel::Capitation {
            per_head: gbp(1_200),
            population: 250_000,
            gain_share: bp(5_000),
            loss_share: bp(2_500),
        },
        PaymentModel::Cquin {
            base_value: gbp(312_000_000),
            rate: bp(125),
        },
    ]
}

/// A filed return of `report` for 2018/19 M6 as of sequence 212.
pub fn filed_return(filer: Filer, report: ReportKind) -> FiledReturn {
    FiledReturn {
        filer,
        report,
        period: period("2018/19-M6"),
        as_of_sequence: 212,
        fingerprint: std::array::from_fn(|i| u8::try_from(i).unwrap_or(0)),
    }
}

/// One of every report kind, each option both ways.
pub fn report_kinds() -> Vec<ReportKind> {
    vec![
        ReportKind::Position,
        ReportKind::Consolidation(ConsolidationScope::ControlTotal),
        ReportKind::Consolidation(ConsolidationScope::WiderIcs),
        ReportKind::PooledBudgets,
        ReportKind::Contracts,
        ReportKind::Funds,
        ReportKind::AgreementOfBalances(AobOptions::default()),
        ReportKind::AgreementOfBalances(AobOptions {
            thresholds: AobThresholds {
                receivables_payables: Pence::new(1),
                income_expenditure: gbp(5_000_000),
            },
            scope: AobScope::AllMembers,
        }),
        ReportKind::Adjustments,
    ]
}

/// Every domain command, once (and a few twice, to cover optional fields both ways).
pub fn commands() -> Vec<Command> {
    let sys = Command::System;
    let budget = |command| Command::Budget {
        budget: code("BCF-2018"),
        command,
    };
    let fund = |command| Command::Fund {
        fund: code("PSF-2018"),
        command,
    };
    let contract = |command| Command::Contract {
        contract: code("C1"),
        command,
    };
    let mut commands = vec![
        sys(SystemCommand::Establish {
            system: SystemId::new("kav").expect("valid system id"),
            name: text("Kent and Medway ICS"),
            first_year: year(2018),
        }),
        sys(SystemCommand::AdmitMember {
            member: member("KHFT"),
            name: text("Kent Hospitals NHS FT"),
            kind: MemberKind::AcuteTrust,
            in_control_total: true,
        }),
        sys(SystemCommand::AgreePlan {
            member: member("KHFT"),
            year: year(2018),
            income: gbp(360_000_000),
            expenditure: gbp(372_000_000),
        }),
        sys(SystemCommand::SubmitReturn(monthly_return())),
        sys(SystemCommand::ReportMetric {
            member: member("KHFT"),
            period: period("2018/19-M5"),
            metric: Metric::AeFourHour,
            value: 8_850,
        }),
        sys(SystemCommand::ClosePeriod {
            period: period("2018/19-M1"),
        }),
        sys(SystemCommand::FileReturn(filed_return(
            Filer::Member(member("KHFT")),
            ReportKind::Position,
        ))),
        budget(BudgetCommand::Establish {
            name: text("Better Care Fund 2018/19"),
            host: member("KCC"),
            year: year(2018),
            partners: vec![member("KCC"), member("KCCG")],
            schemes: schemes(),
            overspend_shares: shares(5_000),
            underspend_shares: shares(4_000),
        }),
        budget(BudgetCommand::Pledge {
            partner: member("KCCG"),
            amount: gbp(54_000_000),
            ring_fenced_scheme: None,
        }),
        budget(BudgetCommand::Pledge {
            partner: member("KCC"),
            amount: gbp(6_000_000),
            ring_fenced_scheme: Some(code("DFG")),
        }),
        budget(BudgetCommand::PayContribution {
            partner: member("KCCG"),
            period: period("2018/19-M1"),
            amount: gbp(4_500_000),
        }),
        budget(BudgetCommand::RecordSpend {
            scheme: code("REABLE"),
            period: period("2018/19-M3"),
            amount: gbp(1_000_000),
            corrects: None,
        }),
        budget(BudgetCommand::RecordSpend {
            scheme: code("REABLE"),
            period: period("2018/19-M4"),
            amount: gbp(20_000),
            corrects: Some(period("2018/19-M2")),
        }),
        budget(BudgetCommand::Vary {
            reason: text("Section 75 variation 1"),
            overspend_shares: Some(shares(6_000)),
            underspend_shares: None,
            add_schemes: schemes(),
        }),
        budget(BudgetCommand::Vary {
            reason: text("Variation with an empty list"),
            overspend_shares: None,
            underspend_shares: Some(Vec::new()),
            add_schemes: Vec::new(),
        }),
        budget(BudgetCommand::SettleRiskShare {
            period: period("2018/19-M12"),
        }),
        budget(BudgetCommand::Close {
            period: period("2018/19-M12"),
        }),
        fund(FundCommand::Allocate {
            name: text("Provider Sustainability Fund"),
            year: year(2018),
            recipients: vec![Recipient {
                member: member("KHFT"),
                allocation: gbp(24_000_000),
            }],
            conditions: conditions(),
        }),
        fund(FundCommand::AssessTranche {
            quarter: quarter(1),
            evidence: vec![
                Evidence {
                    condition: code("FIN"),
                    figures: Figures::SystemFinance {
                        actual_ytd: gbp(-3_000_000),
                        control_total_ytd: gbp(-3_500_000),
                    },
                },
                Evidence {
                    condition: code("AE"),
                    figures: Figures::AeFourHour {
                        performance: bp(8_850),
                    },
                },
            ],
        }),
        fund(FundCommand::PayTranche {
            quarter: quarter(1),
            period: period("2018/19-M4"),
        }),
        fund(FundCommand::ClawBack {
            quarter: quarter(1),
            member: member("KHFT"),
            period: period("2018/19-M6"),
            amount: gbp(100_000),
            reason: text("Restated Q1 position"),
        }),
        contract(ContractCommand::Vary {
            period: period("2018/19-M7"),
            reason: text("Activity re-based"),
            model: aligned(),
        }),
        contract(ContractCommand::RecordActivity {
            period: period("2018/19-M5"),
            units: 10_250,
            corrects: None,
        }),
        contract(ContractCommand::RecordActivity {
            period: period("2018/19-M6"),
            units: 10_100,
            corrects: Some(period("2018/19-M4")),
        }),
        contract(ContractCommand::RaiseInvoice {
            invoice: code("INV-C1-M5"),
            period: period("2018/19-M5"),
            amount: gbp(6_000_000),
            corrects: None,
        }),
        contract(ContractCommand::RecordPayment {
            invoice: code("INV-C1-M5"),
            period: period("2018/19-M6"),
            amount: gbp(5_000_000),
        }),
        contract(ContractCommand::RaiseDispute {
            dispute: code("D1"),
            invoice: Some(code("INV-C1-M5")),
            period: period("2018/19-M6"),
            amount: gbp(1_000_000),
            reason: text("Coding challenge"),
        }),
        contract(ContractCommand::RaiseDispute {
            dispute: code("D2"),
            invoice: None,
            period: period("2018/19-M6"),
            amount: gbp(50_000),
            reason: text("General"),
        }),
        contract(ContractCommand::ResolveDispute {
            dispute: code("D1"),
            period: period("2018/19-M7"),
            provider_keeps: gbp(600_000),
            resolution: text("Agreed at 60%"),
        }),
        contract(ContractCommand::ReconcileCquin {
            period: period("2018/19-M12"),
            achievement: bp(8_000),
        }),
        contract(ContractCommand::RecordAdjustment {
            period: period("2018/19-M8"),
            amount: gbp(-250_000),
            reason: text("Readmissions"),
            corrects: Some(period("2018/19-M2")),
        }),
        contract(ContractCommand::Terminate {
            period: period("2018/19-M11"),
            reason: text("Service moved"),
        }),
    ];
    for (i, model) in models().into_iter().enumerate() {
        commands.push(contract(ContractCommand::Agree {
            commissioner: member("KCCG"),
            provider: member("KHFT"),
            year: year(2018 + u32::try_from(i).expect("few models")),
            model,
            description: text("Acute services"),
        }));
    }
    for (i, report) in report_kinds().into_iter().enumerate() {
        let filer = if i % 2 == 0 {
            Filer::System
        } else {
            Filer::Member(member("AVT"))
        };
        commands.push(sys(SystemCommand::FileReturn(filed_return(filer, report))));
    }
    commands
}

/// Every domain event, once (and a few twice, to cover optional fields both ways).
pub fn events() -> Vec<Event> {
    let sys = Event::System;
    let budget = |event| Event::Budget {
        budget: code("BCF-2018"),
        event,
    };
    let fund = |event| Event::Fund {
        fund: code("PSF-2018"),
        event,
    };
    let contract = |event| Event::Contract {
        contract: code("C1"),
        event,
    };
    let months = |annual: i64| vec![Pence::new(annual / 12); 12];
    let mut events = vec![
        sys(SystemEvent::Established {
            system: SystemId::new("kav").expect("valid system id"),
            name: text("Kent and Medway ICS"),
            first_year: year(2018),
        }),
        sys(SystemEvent::MemberAdmitted {
            member: member("KCC"),
            name: text("Kent County Council"),
            kind: MemberKind::LocalAuthority,
            in_control_total: false,
        }),
        sys(SystemEvent::PlanAgreed {
            member: member("KHFT"),
            year: year(2018),
            income: Pence::new(1_200),
            expenditure: Pence::new(2_400),
            income_by_month: months(1_200),
            expenditure_by_month: months(2_400),
            revision: 2,
        }),
        sys(SystemEvent::ReturnSubmitted {
            monthly_return: monthly_return(),
            revision: 1,
        }),
        sys(SystemEvent::MetricReported {
            member: member("KHFT"),
            period: period("2018/19-M5"),
            metric: Metric::EmergencyBedDays,
            value: 4_321,
        }),
        sys(SystemEvent::PeriodClosed {
            period: period("2018/19-M1"),
        }),
        sys(SystemEvent::ReturnFiled(filed_return(
            Filer::System,
            ReportKind::AgreementOfBalances(AobOptions {
                thresholds: AobThresholds {
                    receivables_payables: gbp(150_000),
                    income_expenditure: Pence::ZERO,
                },
                scope: AobScope::AllMembers,
            }),
        ))),
        budget(BudgetEvent::Established {
            name: text("Better Care Fund 2018/19"),
            host: member("KCC"),
            year: year(2018),
            partners: vec![member("KCC"), member("KCCG")],
            schemes: schemes(),
            overspend_shares: shares(5_000),
            underspend_shares: shares(4_000),
        }),
        budget(BudgetEvent::Pledged {
            partner: member("KCCG"),
            amount: gbp(54_000_000),
            ring_fenced_scheme: None,
        }),
        budget(BudgetEvent::Pledged {
            partner: member("KCC"),
            amount: gbp(6_000_000),
            ring_fenced_scheme: Some(code("DFG")),
        }),
        budget(BudgetEvent::ContributionPaid {
            partner: member("KCCG"),
            period: period("2018/19-M1"),
            amount: gbp(4_500_000),
        }),
        budget(BudgetEvent::SpendRecorded {
            scheme: code("REABLE"),
            period: period("2018/19-M4"),
            amount: gbp(20_000),
            corrects: Some(period("2018/19-M2")),
        }),
        budget(BudgetEvent::Varied {
            reason: text("Section 75 variation 1"),
            overspend_shares: None,
            underspend_shares: Some(shares(3_000)),
            add_schemes: Vec::new(),
        }),
        budget(BudgetEvent::RiskShareSettled {
            period: period("2018/19-M12"),
            revenue_pledged: gbp(54_000_000),
            revenue_spend: gbp(54_000_001),
            variance: gbp(1),
            shares: shares(5_000),
            allocations: vec![
                Allocation {
                    member: member("KCC"),
                    amount: Pence::new(50),
                },
                Allocation {
                    member: member("KCCG"),
                    amount: Pence::new(50),
                },
            ],
        }),
        budget(BudgetEvent::Closed {
            period: period("2018/19-M12"),
        }),
        fund(FundEvent::Allocated {
            name: text("Provider Sustainability Fund"),
            year: year(2018),
            recipients: vec![Recipient {
                member: member("KHFT"),
                allocation: gbp(24_000_000),
            }],
            conditions: conditions(),
            total: gbp(24_000_000),
            tranches: vec![gbp(6_000_000); 4],
        }),
        fund(FundEvent::TrancheAssessed {
            quarter: quarter(1),
            period: period("2018/19-M3"),
            tranche: gbp(6_000_000),
            outcomes: vec![
                ConditionOutcome {
                    condition: code("FIN"),
                    kind: ConditionKind::SystemFinance,
                    weight: bp(7_000),
                    amount: gbp(4_200_000),
                    figures: Figures::SystemFinance {
                        actual_ytd: gbp(-3_000_000),
                        control_total_ytd: gbp(-3_500_000),
                    },
                    met: true,
                    earned: gbp(4_200_000),
                    forfeited: Pence::ZERO,
                },
                ConditionOutcome {
                    condition: code("AE"),
                    kind: ConditionKind::AeFourHour {
                        threshold: bp(9_000),
                    },
                    weight: bp(3_000),
                    amount: gbp(1_800_000),
                    figures: Figures::AeFourHour {
                        performance: bp(8_850),
                    },
                    met: false,
                    earned: Pence::ZERO,
                    forfeited: gbp(1_800_000),
                },
            ],
            earned: gbp(4_200_000),
            forfeited: gbp(1_800_000),
            earned_by_recipient: vec![Allocation {
                member: member("KHFT"),
                amount: gbp(4_200_000),
            }],
        }),
        fund(FundEvent::TranchePaid {
            quarter: quarter(1),
            period: period("2018/19-M4"),
            payments: vec![Allocation {
                member: member("KHFT"),
                amount: gbp(4_200_000),
            }],
        }),
        fund(FundEvent::ClawedBack {
            quarter: quarter(1),
            member: member("KHFT"),
            period: period("2018/19-M6"),
            amount: gbp(100_000),
            reason: text("Restated Q1 position"),
        }),
        contract(ContractEvent::Varied {
            period: period("2018/19-M7"),
            reason: text("Activity re-based"),
            model: aligned(),
            annual_value_before: gbp(380_000_000),
            annual_value_after: gbp(390_000_000),
        }),
        contract(ContractEvent::ActivityRecorded {
            period: period("2018/19-M6"),
            for_period: period("2018/19-M4"),
            units: 10_100,
            previous_units: 9_900,
            planned_units: 10_000,
            value_change: gbp(225_000),
        }),
        contract(ContractEvent::InvoiceRaised {
            invoice: code("INV-C1-M5"),
            period: period("2018/19-M5"),
            amount: gbp(6_000_000),
            corrects: None,
        }),
        contract(ContractEvent::PaymentRecorded {
            invoice: code("INV-C1-M5"),
            period: period("2018/19-M6"),
            amount: gbp(5_000_000),
        }),
        contract(ContractEvent::DisputeRaised {
            dispute: code("D1"),
            invoice: Some(code("INV-C1-M5")),
            period: period("2018/19-M6"),
            amount: gbp(1_000_000),
            reason: text("Coding challenge"),
        }),
        contract(ContractEvent::DisputeRaised {
            dispute: code("D2"),
            invoice: None,
            period: period("2018/19-M6"),
            amount: gbp(50_000),
            reason: text("General"),
        }),
        contract(ContractEvent::DisputeResolved {
            dispute: code("D1"),
            period: period("2018/19-M7"),
            provider_keeps: gbp(600_000),
            written_off: gbp(400_000),
            resolution: text("Agreed at 60%"),
        }),
        contract(ContractEvent::CquinReconciled {
            period: period("2018/19-M12"),
            achievement: bp(8_000),
            value: gbp(3_900_000),
            earned: gbp(3_120_000),
            deduction: gbp(780_000),
        }),
        contract(ContractEvent::AdjustmentRecorded {
            period: period("2018/19-M8"),
            amount: gbp(-250_000),
            reason: text("Readmissions"),
            corrects: None,
        }),
        contract(ContractEvent::Terminated {
            period: period("2018/19-M11"),
            reason: text("Service moved"),
        }),
    ];
    for model in models() {
        events.push(contract(ContractEvent::Agreed {
            commissioner: member("KCCG"),
            provider: member("KHFT"),
            year: year(2018),
            model,
            description: text("Acute services"),
            annual_value: gbp(72_000_000),
        }));
    }
    for (i, report) in report_kinds().into_iter().enumerate() {
        let filer = if i % 2 == 1 {
            Filer::System
        } else {
            Filer::Member(member("15N"))
        };
        events.push(sys(SystemEvent::ReturnFiled(filed_return(filer, report))));
    }
    events
}
