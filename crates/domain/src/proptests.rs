//! Properties of the whole ledger: the risk share always splits the variance exactly, and any
//! history of commands replays from its events to the same state.

use proptest::prelude::*;
use proptest::sample::select;

use crate::budget::{BudgetCommand, BudgetEvent, Scheme, Share};
use crate::contract::{ContractCommand, PaymentModel};
use crate::fund::{Condition, ConditionKind, Evidence, Figures, FundCommand, Recipient};
use crate::position::ReportKind;
use crate::system::{
    CounterpartyBalance, FiledReturn, Filer, Metric, MonthlyReturn, SystemCommand,
};
use crate::testing::*;
use crate::{BasisPoints, Code, Command, DomainError, Event, Ledger, MemberKind, Pence, Period};

/// `n` shares that sum to exactly 10,000 bp: the gaps between sorted cut points.
fn whole_shares(n: usize) -> impl Strategy<Value = Vec<u32>> {
    prop::collection::vec(0u32..=10_000, n.saturating_sub(1)).prop_map(|mut cuts| {
        cuts.sort_unstable();
        let mut shares = Vec::with_capacity(cuts.len() + 1);
        let mut previous = 0;
        for cut in cuts.into_iter().chain([10_000]) {
            shares.push(cut - previous);
            previous = cut;
        }
        shares
    })
}

/// Amounts up to the ceiling, so that up to eight of them stay within it together.
const CEILING: i64 = crate::limits::AMOUNT_CEILING.get();

const PARTNERS: [&str; 5] = ["KCC", "KCCG", "KHFT", "AVT", "KCHT"];

fn shares_of(points: &[u32]) -> Vec<Share> {
    points
        .iter()
        .zip(PARTNERS)
        .map(|(p, m)| Share {
            member: member(m),
            share: bp(*p),
        })
        .collect()
}

fn budget(command: BudgetCommand) -> Command {
    Command::Budget {
        budget: code("POOL"),
        command,
    }
}

proptest! {
    #[test]
    fn risk_share_allocations_sum_exactly_to_the_variance(
        (n, over, under) in (1usize..=5).prop_flat_map(|n| (Just(n), whole_shares(n), whole_shares(n))),
        pledges in prop::collection::vec((0usize..5, 1i64..=CEILING / 8, any::<bool>()), 0..8),
        spend in prop::collection::vec((0usize..3, 1i64..=CEILING / 8), 0..8),
    ) {
        let partners: Vec<_> = PARTNERS[..n].iter().map(|m| member(m)).collect();
        let schemes = ["S0", "S1", "RF"].map(|s| Scheme {
            scheme: code(s),
            name: text(s),
            ring_fenced: s == "RF",
        });
        let mut commands = vec![budget(BudgetCommand::Establish {
            name: text("pool"),
            host: partners[0],
            year: fy(),
            partners: partners.clone(),
            schemes: schemes.to_vec(),
            overspend_shares: shares_of(&over),
            underspend_shares: shares_of(&under),
        })];
        let mut revenue_pledged = 0i128;
        for (who, amount, ring_fenced) in &pledges {
            if !ring_fenced {
                revenue_pledged += i128::from(*amount);
            }
            commands.push(budget(BudgetCommand::Pledge {
                partner: partners[who % n],
                amount: Pence::new(*amount),
                ring_fenced_scheme: ring_fenced.then(|| code("RF")),
            }));
        }
        let mut revenue_spend = 0i128;
        for (scheme, amount) in &spend {
            if *scheme < 2 {
                revenue_spend += i128::from(*amount);
            }
            commands.push(budget(BudgetCommand::RecordSpend {
                scheme: schemes[*scheme].scheme.clone(),
                period: period(2018, 6),
                amount: Pence::new(*amount),
                corrects: None,
            }));
        }
        commands.push(budget(BudgetCommand::SettleRiskShare { period: period(2018, 12) }));
        let events = after(demo_system(), &commands);
        let Some(Event::Budget { event: BudgetEvent::RiskShareSettled {
            revenue_pledged: pledged, revenue_spend: spent, variance, shares, allocations, ..
        }, .. }) = events.last() else {
            panic!("the last event is the settlement");
        };
        prop_assert_eq!(i128::from(pledged.get()), revenue_pledged);
        prop_assert_eq!(i128::from(spent.get()), revenue_spend);
        prop_assert_eq!(i128::from(variance.get()), revenue_spend - revenue_pledged);
        let sum: i128 = allocations.iter().map(|a| i128::from(a.amount.get())).sum();
        prop_assert_eq!(sum, i128::from(variance.get()));
        let expected = if variance.is_positive() { shares_of(&over) } else { shares_of(&under) };
        prop_assert_eq!(shares, &expected);
        prop_assert_eq!(allocations.len(), shares.len());
        for (allocation, share) in allocations.iter().zip(shares) {
            prop_assert_eq!(&allocation.member, &share.member);
            // Each part is within a penny of its exact share, on the variance's side of zero.
            let exact = i128::from(variance.get()) * i128::from(share.share.get());
            let part = i128::from(allocation.amount.get()) * 10_000;
            prop_assert!((part - exact).abs() < 10_000, "{allocation:?} of {variance:?} at {share:?}");
            prop_assert!(allocation.amount.get().signum() * variance.get().signum() >= 0);
        }
    }
}

// ---- replay -------------------------------------------------------------------------------

const MEMBERS: [&str; 8] = ["KCCG", "KHFT", "AVT", "KCHT", "AKMH", "KNPCN", "KCC", "RXX"];

/// One step of a generated history: a command, or "close the next period" (which depends on
/// the state, so is resolved when it runs).
#[derive(Clone, Debug)]
enum Step {
    Run(Command),
    CloseNext,
    /// Assess the fund's first unassessed quarter.
    AssessNext(Code, Vec<Evidence>),
    /// Pay the fund's first assessed, unpaid quarter.
    PayNext(Code, Period),
}

fn a_member() -> impl Strategy<Value = crate::MemberCode> {
    select(MEMBERS.to_vec()).prop_map(member)
}

fn a_code(codes: &'static [&'static str]) -> impl Strategy<Value = Code> + Clone {
    select(codes.to_vec()).prop_map(code)
}

fn a_period() -> impl Strategy<Value = Period> {
    (
        prop_oneof![16 => Just(2018u32), 2 => Just(2019u32), 1 => Just(2017u32)],
        1u32..=12,
    )
        .prop_map(|(y, m)| period(y, m))
}

fn maybe_corrects() -> impl Strategy<Value = Option<Period>> {
    prop_oneof![4 => Just(None), 1 => a_period().prop_map(Some)]
}

/// Mostly ordinary amounts, sometimes zero, negative or enormous.
fn an_amount() -> impl Strategy<Value = Pence> {
    prop_oneof![
        12 => (1i64..=50_000_000).prop_map(Pence::new),
        1 => Just(Pence::ZERO),
        1 => (i64::MIN..0).prop_map(Pence::new),
        1 => Just(Pence::MAX),
        1 => Just(crate::limits::AMOUNT_CEILING),
        1 => Just(Pence::new(CEILING + 1)),
    ]
}

fn a_share() -> impl Strategy<Value = BasisPoints> {
    prop_oneof![8 => (0u32..=10_000).prop_map(bp), 1 => any::<u32>().prop_map(bp)]
}

fn some_shares() -> BoxedStrategy<Vec<Share>> {
    prop_oneof![
        4 => whole_shares(2).prop_map(|p| shares_of(&p)),
        1 => prop::collection::vec((a_member(), a_share()), 0..3).prop_map(|v| {
            v.into_iter().map(|(member, share)| Share { member, share }).collect()
        }),
    ]
    .boxed()
}

fn a_scheme() -> BoxedStrategy<Scheme> {
    (a_code(&["CARE", "DFG", "HOME"]), any::<bool>())
        .prop_map(|(scheme, ring_fenced)| Scheme {
            name: text(scheme.as_str()),
            scheme,
            ring_fenced,
        })
        .boxed()
}

fn a_model() -> BoxedStrategy<PaymentModel> {
    let units = prop_oneof![8 => 1u64..=100_000, 1 => Just(0u64), 1 => any::<u64>()];
    prop_oneof![
        an_amount().prop_map(|annual_value| PaymentModel::Block { annual_value }),
        (units.clone(), an_amount()).prop_map(|(planned_units, unit_price)| {
            PaymentModel::ActivityTariff {
                planned_units,
                unit_price,
            }
        }),
        (an_amount(), units, an_amount(), a_share()).prop_map(
            |(fixed, planned_units, unit_price, marginal_rate)| PaymentModel::AlignedPayment {
                fixed,
                planned_units,
                unit_price,
                marginal_rate,
            }
        ),
        (an_amount(), 0u64..=1_000_000, a_share(), a_share()).prop_map(
            |(per_head, population, gain_share, loss_share)| PaymentModel::Capitation {
                per_head,
                population,
                gain_share,
                loss_share,
            }
        ),
        (an_amount(), a_share())
            .prop_map(|(base_value, rate)| PaymentModel::Cquin { base_value, rate }),
    ]
    .boxed()
}

fn system_command() -> BoxedStrategy<Command> {
    let kind = select(MemberKind::ALL.to_vec());
    let balance =
        (a_member(), an_amount(), an_amount()).prop_map(|(counterparty, income, receivables)| {
            CounterpartyBalance {
                counterparty,
                income,
                expenditure: Pence::ZERO,
                receivables,
                payables: Pence::ZERO,
            }
        });
    prop_oneof![
        1 => Just(SystemCommand::Establish {
            system: crate::SystemId::new("kav").expect("valid"),
            name: text("again"),
            first_year: fy(),
        }),
        1 => (a_member(), kind, any::<bool>()).prop_map(|(m, kind, in_control_total)| {
            SystemCommand::AdmitMember { name: text(m.as_str()), member: m, kind, in_control_total }
        }),
        2 => (a_member(), prop_oneof![Just(2018u32), Just(2019u32)], an_amount(), an_amount())
            .prop_map(|(member, y, income, expenditure)| SystemCommand::AgreePlan {
                member,
                year: year(y),
                income,
                expenditure,
            }),
        3 => (a_member(), a_period(), an_amount(), an_amount(), prop::collection::vec(balance, 0..3))
            .prop_map(|(member, period, income, expenditure, balances)| {
                SystemCommand::SubmitReturn(MonthlyReturn { member, period, income, expenditure, balances })
            }),
        2 => (a_member(), a_period(), select(Metric::ALL.to_vec()), -10i64..=12_000)
            .prop_map(|(member, period, metric, value)| SystemCommand::ReportMetric {
                member,
                period,
                metric,
                value,
            }),
        1 => a_period().prop_map(|period| SystemCommand::ClosePeriod { period }),
        1 => (prop::option::of(a_member()), a_report_kind(), a_period(), 0u64..400, any::<[u8; 32]>())
            .prop_map(|(member, report, period, as_of_sequence, fingerprint)| {
                SystemCommand::FileReturn(FiledReturn {
                    filer: member.map_or(Filer::System, Filer::Member),
                    report,
                    period,
                    as_of_sequence,
                    fingerprint,
                })
            }),
    ]
    .prop_map(Command::System).boxed()
}

fn a_report_kind() -> BoxedStrategy<ReportKind> {
    use crate::position::{AobOptions, AobScope, AobThresholds, ConsolidationScope};
    prop_oneof![
        Just(ReportKind::Position),
        Just(ReportKind::Consolidation(ConsolidationScope::ControlTotal)),
        Just(ReportKind::Consolidation(ConsolidationScope::WiderIcs)),
        Just(ReportKind::PooledBudgets),
        Just(ReportKind::Contracts),
        Just(ReportKind::Funds),
        Just(ReportKind::Adjustments),
        (-5i64..=1_000_000, 0i64..=1_000_000, any::<bool>()).prop_map(|(rp, ie, all)| {
            ReportKind::AgreementOfBalances(AobOptions {
                thresholds: AobThresholds {
                    receivables_payables: Pence::new(rp),
                    income_expenditure: Pence::new(ie),
                },
                scope: if all {
                    AobScope::AllMembers
                } else {
                    AobScope::NhsBodies
                },
            })
        }),
    ]
    .boxed()
}

fn budget_command() -> BoxedStrategy<Command> {
    let partner = select(vec!["KCC", "KCCG", "KCC", "KCCG", "KHFT", "RXX"]).prop_map(member);
    let command = prop_oneof![
        1 => (select(vec!["KCC", "KCCG"]), some_shares(), some_shares(), prop::collection::vec(a_scheme(), 0..3))
            .prop_map(|(host, overspend_shares, underspend_shares, schemes)| BudgetCommand::Establish {
                name: text("BCF"),
                host: member(host),
                year: fy(),
                partners: vec![member("KCC"), member("KCCG")],
                schemes,
                overspend_shares,
                underspend_shares,
            }),
        4 => (partner.clone(), an_amount(), prop::option::weighted(0.3, a_code(&["CARE", "DFG", "HOME"])))
            .prop_map(|(partner, amount, ring_fenced_scheme)| BudgetCommand::Pledge {
                partner,
                amount,
                ring_fenced_scheme,
            }),
        3 => (partner, a_period(), an_amount()).prop_map(|(partner, period, amount)| {
            BudgetCommand::PayContribution { partner, period, amount }
        }),
        4 => (a_code(&["CARE", "DFG", "CARE", "DFG", "HOME"]), a_period(), an_amount(), maybe_corrects())
            .prop_map(|(scheme, period, amount, corrects)| BudgetCommand::RecordSpend {
                scheme,
                period,
                amount,
                corrects,
            }),
        1 => (prop::option::of(some_shares()), prop::option::of(some_shares()), prop::collection::vec(a_scheme(), 0..2))
            .prop_map(|(overspend_shares, underspend_shares, add_schemes)| BudgetCommand::Vary {
                reason: text("review"),
                overspend_shares,
                underspend_shares,
                add_schemes,
            }),
        1 => a_period().prop_map(|period| BudgetCommand::SettleRiskShare { period }),
        1 => a_period().prop_map(|period| BudgetCommand::Close { period }),
    ];
    (
        prop_oneof![4 => Just(code("B1")), 1 => Just(code("B2"))],
        command,
    )
        .prop_map(|(budget, command)| Command::Budget { budget, command })
        .boxed()
}

fn some_evidence() -> BoxedStrategy<Vec<Evidence>> {
    (
        -10_000_000i64..=10_000_000,
        -10_000_000i64..=10_000_000,
        prop_oneof![8 => 8_000u32..=10_000, 1 => any::<u32>()],
        any::<bool>(),
        0usize..10,
    )
        .prop_map(|(actual, plan, performance, reversed, drop)| {
            let mut evidence = vec![
                Evidence {
                    condition: code("FIN"),
                    figures: Figures::SystemFinance {
                        actual_ytd: Pence::new(actual),
                        control_total_ytd: Pence::new(plan),
                    },
                },
                Evidence {
                    condition: code("AE"),
                    figures: Figures::AeFourHour {
                        performance: bp(performance),
                    },
                },
            ];
            if reversed {
                evidence.reverse();
            }
            if drop == 0 {
                evidence.pop();
            }
            evidence
        })
        .boxed()
}

fn fund_command() -> BoxedStrategy<Command> {
    let recipient =
        (select(vec!["KHFT", "AVT", "KNPCN", "KCCG"]), an_amount()).prop_map(|(m, allocation)| {
            Recipient {
                member: member(m),
                allocation,
            }
        });
    let conditions = prop_oneof![
        4 => Just(vec![
            Condition { condition: code("FIN"), kind: ConditionKind::SystemFinance, weight: bp(7_000) },
            Condition {
                condition: code("AE"),
                kind: ConditionKind::AeFourHour { threshold: bp(9_000) },
                weight: bp(3_000),
            },
        ]),
        1 => (a_share(), a_share()).prop_map(|(w, threshold)| vec![
            Condition { condition: code("FIN"), kind: ConditionKind::SystemFinance, weight: w },
            Condition { condition: code("AE"), kind: ConditionKind::AeFourHour { threshold }, weight: bp(3_000) },
        ]),
    ];
    let evidence = some_evidence();
    let a_quarter = (1u32..=4).prop_map(quarter);
    let command = prop_oneof![
        1 => (prop::collection::vec(recipient, 0..3), conditions).prop_map(|(recipients, conditions)| {
            FundCommand::Allocate { name: text("SSF"), year: fy(), recipients, conditions }
        }),
        4 => (a_quarter.clone(), evidence).prop_map(|(quarter, evidence)| FundCommand::AssessTranche {
            quarter,
            evidence,
        }),
        3 => (a_quarter.clone(), a_period()).prop_map(|(quarter, period)| FundCommand::PayTranche { quarter, period }),
        2 => (a_quarter, select(vec!["KHFT", "AVT", "KCC"]), a_period(), an_amount())
            .prop_map(|(quarter, m, period, amount)| FundCommand::ClawBack {
                quarter,
                member: member(m),
                period,
                amount,
                reason: text("restated"),
            }),
    ];
    (a_code(&["F1", "F2"]), command)
        .prop_map(|(fund, command)| Command::Fund { fund, command })
        .boxed()
}

fn contract_command() -> BoxedStrategy<Command> {
    let invoice = a_code(&["I1", "I2", "I3"]);
    let dispute = a_code(&["D1", "D2"]);
    let units = prop_oneof![
        10 => 0u64..=5_000,
        1 => any::<u64>(),
        1 => Just(crate::limits::UNITS_MAX),
    ];
    let command = prop_oneof![
        1 => (select(vec!["KCCG", "KHFT"]), select(vec!["KHFT", "AVT", "KNPCN", "KCC"]), a_model())
            .prop_map(|(c, p, model)| ContractCommand::Agree {
                commissioner: member(c),
                provider: member(p),
                year: fy(),
                model,
                description: text("services"),
            }),
        1 => (a_period(), a_model()).prop_map(|(period, model)| ContractCommand::Vary {
            period,
            reason: text("GC13"),
            model,
        }),
        5 => (a_period(), units, maybe_corrects()).prop_map(|(period, units, corrects)| {
            ContractCommand::RecordActivity { period, units, corrects }
        }),
        3 => (invoice.clone(), a_period(), an_amount(), maybe_corrects())
            .prop_map(|(invoice, period, amount, corrects)| ContractCommand::RaiseInvoice {
                invoice,
                period,
                amount,
                corrects,
            }),
        3 => (invoice.clone(), a_period(), an_amount()).prop_map(|(invoice, period, amount)| {
            ContractCommand::RecordPayment { invoice, period, amount }
        }),
        2 => (dispute.clone(), prop::option::of(invoice), a_period(), an_amount())
            .prop_map(|(dispute, invoice, period, amount)| ContractCommand::RaiseDispute {
                dispute,
                invoice,
                period,
                amount,
                reason: text("challenge"),
            }),
        2 => (dispute, a_period(), an_amount()).prop_map(|(dispute, period, provider_keeps)| {
            ContractCommand::ResolveDispute { dispute, period, provider_keeps, resolution: text("agreed") }
        }),
        1 => (a_period(), a_share()).prop_map(|(period, achievement)| ContractCommand::ReconcileCquin {
            period,
            achievement,
        }),
        2 => (a_period(), an_amount(), maybe_corrects()).prop_map(|(period, amount, corrects)| {
            ContractCommand::RecordAdjustment { period, amount, reason: text("adjust"), corrects }
        }),
        1 => a_period().prop_map(|period| ContractCommand::Terminate { period, reason: text("ended") }),
    ];
    (
        prop_oneof![4 => Just(code("C1")), 2 => Just(code("C2")), 1 => Just(code("C3"))],
        command,
    )
        .prop_map(|(contract, command)| Command::Contract { contract, command })
        .boxed()
}

fn a_step() -> BoxedStrategy<Step> {
    prop_oneof![
        2 => system_command().prop_map(Step::Run),
        1 => Just(Step::CloseNext),
        1 => (a_code(&["F1", "F2"]), some_evidence()).prop_map(|(f, e)| Step::AssessNext(f, e)),
        1 => (a_code(&["F1", "F2"]), a_period()).prop_map(|(f, p)| Step::PayNext(f, p)),
        4 => budget_command().prop_map(Step::Run),
        4 => fund_command().prop_map(Step::Run),
        6 => contract_command().prop_map(Step::Run),
    ]
    .boxed()
}

/// The demo system with one of each aggregate, so most generated commands have something to
/// act on.
fn prelude() -> Vec<Command> {
    let c = |contract: &str, provider: &str, model| Command::Contract {
        contract: code(contract),
        command: ContractCommand::Agree {
            commissioner: member("KCCG"),
            provider: member(provider),
            year: fy(),
            model,
            description: text("services"),
        },
    };
    let mut commands: Vec<Command> = vec![Command::System(SystemCommand::Establish {
        system: crate::SystemId::new("kav").expect("valid"),
        name: text("Kingsmere & Alder Valley ICS"),
        first_year: fy(),
    })];
    for (m, kind, in_control_total) in [
        ("KCCG", MemberKind::Commissioner, true),
        ("KHFT", MemberKind::AcuteTrust, true),
        ("AVT", MemberKind::AcuteTrust, true),
        ("KCHT", MemberKind::CommunityTrust, true),
        ("KNPCN", MemberKind::PrimaryCareNetwork, false),
        ("KCC", MemberKind::LocalAuthority, false),
    ] {
        commands.push(Command::System(SystemCommand::AdmitMember {
            member: member(m),
            name: text(m),
            kind,
            in_control_total,
        }));
    }
    commands.push(Command::Budget {
        budget: code("B1"),
        command: BudgetCommand::Establish {
            name: text("BCF"),
            host: member("KCC"),
            year: fy(),
            partners: vec![member("KCC"), member("KCCG")],
            schemes: ["CARE", "DFG"]
                .map(|s| Scheme {
                    scheme: code(s),
                    name: text(s),
                    ring_fenced: s == "DFG",
                })
                .to_vec(),
            overspend_shares: shares_of(&[5_000, 5_000]),
            underspend_shares: shares_of(&[3_000, 7_000]),
        },
    });
    commands.push(Command::Fund {
        fund: code("F1"),
        command: FundCommand::Allocate {
            name: text("SSF"),
            year: fy(),
            recipients: vec![
                Recipient {
                    member: member("KHFT"),
                    allocation: pounds(4_800_000),
                },
                Recipient {
                    member: member("AVT"),
                    allocation: pounds(2_400_000),
                },
            ],
            conditions: vec![
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
            ],
        },
    });
    commands.push(c(
        "C1",
        "KHFT",
        PaymentModel::ActivityTariff {
            planned_units: 24_000,
            unit_price: pounds(3_000),
        },
    ));
    commands.push(c(
        "C2",
        "KHFT",
        PaymentModel::Cquin {
            base_value: pounds(312_000_000),
            rate: bp(250),
        },
    ));
    commands
}

/// Runs the steps on a live ledger: accepted commands are applied, refused ones change
/// nothing. Returns the live ledger, the log of events and how many commands were accepted.
fn run_steps(steps: &[Step]) -> Result<(Ledger, Vec<Event>, usize), TestCaseError> {
    let mut live = Ledger::default();
    let mut log = Vec::new();
    let mut accepted = 0;
    let commands = prelude()
        .into_iter()
        .map(Step::Run)
        .chain(steps.iter().cloned());
    for step in commands {
        let command = match step {
            Step::Run(command) => command,
            Step::CloseNext => {
                let next = match live.system.closed_through {
                    Some(closed) => closed.next(),
                    None => Some(period(2018, 1)),
                };
                let Some(period) = next else { continue };
                Command::System(SystemCommand::ClosePeriod { period })
            }
            Step::AssessNext(fund, evidence) => {
                let assessed = live
                    .funds
                    .get(&fund)
                    .map(|f| f.assessed.clone())
                    .unwrap_or_default();
                let quarter = crate::Quarter::all()
                    .find(|q| !assessed.contains_key(q))
                    .unwrap_or(quarter(4));
                Command::Fund {
                    fund,
                    command: FundCommand::AssessTranche { quarter, evidence },
                }
            }
            Step::PayNext(fund, period) => {
                let quarter = live
                    .funds
                    .get(&fund)
                    .and_then(|f| f.assessed.keys().find(|q| !f.paid.contains_key(q)).copied())
                    .unwrap_or(quarter(1));
                Command::Fund {
                    fund,
                    command: FundCommand::PayTranche { quarter, period },
                }
            }
        };
        let before = live.clone();
        match live.execute(&command) {
            Ok(events) => {
                prop_assert!(
                    !events.is_empty(),
                    "{command:?} was accepted with no events"
                );
                accepted += 1;
                log.extend(events);
            }
            Err(error) => {
                let internal =
                    matches!(&error, DomainError::Invalid { field, .. } if field == "command");
                prop_assert!(!internal, "decide produced an event apply refused: {error}");
                prop_assert_eq!(&live, &before, "a refused command changed the state");
            }
        }
    }
    Ok((live, log, accepted))
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn any_history_replays_from_its_events_to_the_same_state(
        steps in prop::collection::vec(a_step(), 0..120),
    ) {
        let (live, log, _) = run_steps(&steps)?;
        let mut replayed = Ledger::default();
        for (i, event) in log.iter().enumerate() {
            if let Err(error) = replayed.apply(event) {
                return Err(TestCaseError::fail(format!("event {i} does not replay: {error}")));
            }
        }
        prop_assert_eq!(replayed, live);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 100, ..ProptestConfig::default() })]

    /// Whatever the ledger accepts, amounts at the ceiling included, the position projection
    /// folds and every report computes (oversightd folds the same projection).
    #[test]
    fn no_accepted_history_makes_a_fold_or_a_report_overflow(
        steps in prop::collection::vec(a_step(), 0..120),
    ) {
        let (_, log, _) = run_steps(&steps)?;
        if let Err(error) = every_report(&log) {
            return Err(TestCaseError::fail(error));
        }
    }
}

/// The generator is realistic enough that a good share of generated commands are accepted,
/// across every family (otherwise the replay property would prove little).
#[test]
fn generated_histories_are_mostly_accepted_in_every_family() {
    use proptest::strategy::ValueTree;
    use proptest::test_runner::{Config, TestRng, TestRunner};
    let mut runner = TestRunner::new_with_rng(
        Config::default(),
        TestRng::deterministic_rng(Config::default().rng_algorithm),
    );
    let mut per_family = std::collections::BTreeMap::<crate::Family, usize>::new();
    let mut total = 0;
    let mut accepted_total = 0;
    for _ in 0..50 {
        let steps = prop::collection::vec(a_step(), 100)
            .new_tree(&mut runner)
            .expect("generates")
            .current();
        let (_, log, accepted) = run_steps(&steps).expect("runs");
        total += steps.len() + prelude().len();
        accepted_total += accepted;
        for event in &log {
            *per_family.entry(event.family()).or_default() += 1;
        }
    }
    for family in crate::Family::ALL {
        let count = per_family.get(&family).copied().unwrap_or(0);
        assert!(
            count > 100,
            "only {count} {family} events in {total} commands"
        );
    }
    assert!(
        accepted_total * 4 > total,
        "only {accepted_total} of {total} commands accepted"
    );
    eprintln!("accepted {accepted_total} of {total}; events by family {per_family:?}");
}
