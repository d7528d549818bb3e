//! Properties over generated histories of valid postings: the system total is the sum of its
//! members; eliminations net to zero; folding a log in two parts, or in any number of parts,
//! with the projection stored and loaded in between, gives the same projection; a snapshot as
//! of any sequence gives the report a projection folded only that far would.

use proptest::prelude::*;
use proptest::sample::select;

use super::{fold, log_of, recorded};
use crate::budget::{BudgetCommand, Scheme, Share};
use crate::contract::{ContractCommand, PaymentModel};
use crate::fund::{Condition, ConditionKind, Evidence, Figures, FundCommand, Recipient};
use crate::position::ReportKind;
use crate::position::{
    AobOptions, AobScope, AsOf, ConsolidationScope, PositionFigures, Projection, Recorded, Report,
};
use crate::system::{CounterpartyBalance, FiledReturn, Filer, MonthlyReturn, SystemCommand};
use crate::testing::{bp, code, member, period, pounds, text, year};
use crate::{Command, Event, Ledger, MemberKind, Month, Pence, Period, Quarter, SystemId};

const MEMBERS: [(&str, MemberKind, bool); 7] = [
    ("KCCG", MemberKind::Commissioner, true),
    ("KHFT", MemberKind::AcuteTrust, true),
    ("AVT", MemberKind::AcuteTrust, true),
    ("KCHT", MemberKind::CommunityTrust, true),
    ("AKMH", MemberKind::MentalHealthTrust, true),
    ("KNPCN", MemberKind::PrimaryCareNetwork, false),
    ("KCC", MemberKind::LocalAuthority, false),
];
const CONTRACTS: [&str; 4] = ["C1", "C2", "C3", "C4"];

/// One generated posting; the ones that depend on the state are resolved when they run.
#[derive(Clone, Debug)]
enum Step {
    Run(Command),
    CloseNext,
    AssessNext(Vec<Evidence>),
    PayNext(Period),
}

fn a_period() -> BoxedStrategy<Period> {
    prop_oneof![
        8 => (1u32..=12).prop_map(|m| period(2018, m)),
        1 => (1u32..=3).prop_map(|m| period(2019, m)),
    ]
    .boxed()
}

fn a_member() -> impl Strategy<Value = crate::MemberCode> {
    select(MEMBERS.map(|(m, _, _)| m).to_vec()).prop_map(member)
}

fn an_amount() -> impl Strategy<Value = Pence> {
    (1i64..=50_000_000_000).prop_map(Pence::new)
}

fn a_signed_amount() -> impl Strategy<Value = Pence> {
    (-5_000_000_000i64..=5_000_000_000)
        .prop_filter("non-zero", |a| *a != 0)
        .prop_map(Pence::new)
}

fn a_model() -> impl Strategy<Value = PaymentModel> {
    prop_oneof![
        an_amount().prop_map(|annual_value| PaymentModel::Block { annual_value }),
        (1u64..=30_000, 1i64..=500_000).prop_map(|(planned_units, price)| {
            PaymentModel::ActivityTariff {
                planned_units,
                unit_price: Pence::new(price),
            }
        }),
        (an_amount(), 1u64..=30_000, 1i64..=500_000, 0u32..=10_000).prop_map(
            |(fixed, planned_units, price, rate)| PaymentModel::AlignedPayment {
                fixed,
                planned_units,
                unit_price: Pence::new(price),
                marginal_rate: bp(rate),
            }
        ),
        (an_amount(), 0u32..=1_000).prop_map(|(base_value, rate)| PaymentModel::Cquin {
            base_value,
            rate: bp(rate),
        }),
    ]
}

fn a_balance() -> impl Strategy<Value = CounterpartyBalance> {
    (
        a_member(),
        0i64..=5_000_000_000,
        0i64..=5_000_000_000,
        0i64..=500_000_000,
        0i64..=500_000_000,
    )
        .prop_map(|(counterparty, i, e, r, p)| CounterpartyBalance {
            counterparty,
            income: Pence::new(i),
            expenditure: Pence::new(e),
            receivables: Pence::new(r),
            payables: Pence::new(p),
        })
}

fn contract(contract: String, command: ContractCommand) -> Step {
    Step::Run(Command::Contract {
        contract: code(&contract),
        command,
    })
}

fn budget(command: BudgetCommand) -> Step {
    Step::Run(Command::Budget {
        budget: code("BCF"),
        command,
    })
}

fn a_step() -> BoxedStrategy<Step> {
    let a_contract = select(CONTRACTS.to_vec()).prop_map(str::to_string);
    let invoice = select(vec!["I1", "I2", "I3", "I4", "I5"]).prop_map(code);
    let partner = select(vec!["KCCG", "KCC", "KHFT"]).prop_map(member);
    let maybe_corrects = prop::option::weighted(0.2, a_period());
    prop_oneof![
        6 => (a_member(), a_period(), 0i64..=90_000_000_000, 0i64..=90_000_000_000,
              prop::collection::vec(a_balance(), 0..3))
            .prop_map(|(member, period, i, e, balances)| {
                Step::Run(Command::System(SystemCommand::SubmitReturn(MonthlyReturn {
                    member,
                    period,
                    income: Pence::new(i),
                    expenditure: Pence::new(e),
                    balances,
                })))
            }),
        2 => Just(Step::CloseNext),
        4 => (a_contract.clone(), a_period(), 0u64..=5_000, maybe_corrects.clone())
            .prop_map(|(c, period, units, corrects)| {
                contract(c, ContractCommand::RecordActivity { period, units, corrects })
            }),
        3 => (a_contract.clone(), invoice.clone(), a_period(), an_amount(), maybe_corrects.clone())
            .prop_map(|(c, invoice, period, amount, corrects)| {
                contract(c, ContractCommand::RaiseInvoice { invoice, period, amount, corrects })
            }),
        3 => (a_contract.clone(), invoice.clone(), a_period(), an_amount())
            .prop_map(|(c, invoice, period, amount)| {
                contract(c, ContractCommand::RecordPayment { invoice, period, amount })
            }),
        1 => (a_contract.clone(), select(vec!["D1", "D2"]), prop::option::of(invoice), a_period(), an_amount())
            .prop_map(|(c, dispute, invoice, period, amount)| {
                contract(c, ContractCommand::RaiseDispute {
                    dispute: code(dispute), invoice, period, amount, reason: text("challenge"),
                })
            }),
        1 => (a_contract.clone(), select(vec!["D1", "D2"]), a_period(), 0i64..=1_000_000_000)
            .prop_map(|(c, dispute, period, keeps)| {
                contract(c, ContractCommand::ResolveDispute {
                    dispute: code(dispute),
                    period,
                    provider_keeps: Pence::new(keeps),
                    resolution: text("agreed"),
                })
            }),
        1 => (a_contract.clone(), a_period(), 0u32..=10_000).prop_map(|(c, period, a)| {
            contract(c, ContractCommand::ReconcileCquin { period, achievement: bp(a) })
        }),
        2 => (a_contract.clone(), a_period(), a_signed_amount(), maybe_corrects.clone())
            .prop_map(|(c, period, amount, corrects)| {
                contract(c, ContractCommand::RecordAdjustment {
                    period, amount, reason: text("adjust"), corrects,
                })
            }),
        1 => (a_contract.clone(), a_period(), a_model()).prop_map(|(c, period, model)| {
            contract(c, ContractCommand::Vary { period, reason: text("GC13"), model })
        }),
        1 => (a_contract, a_period()).prop_map(|(c, period)| {
            contract(c, ContractCommand::Terminate { period, reason: text("ended") })
        }),
        2 => (partner.clone(), an_amount(), any::<bool>()).prop_map(|(partner, amount, rf)| {
            budget(BudgetCommand::Pledge {
                partner,
                amount,
                ring_fenced_scheme: rf.then(|| code("DFG")),
            })
        }),
        2 => (partner, a_period(), an_amount()).prop_map(|(partner, period, amount)| {
            budget(BudgetCommand::PayContribution { partner, period, amount })
        }),
        3 => (select(vec!["CARE", "DFG"]), a_period(), an_amount(), maybe_corrects)
            .prop_map(|(scheme, period, amount, corrects)| {
                budget(BudgetCommand::RecordSpend { scheme: code(scheme), period, amount, corrects })
            }),
        1 => a_period().prop_map(|period| budget(BudgetCommand::SettleRiskShare { period })),
        2 => (-100_000_000i64..=100_000_000, -100_000_000i64..=100_000_000, 8_000u32..=10_000)
            .prop_map(|(actual, plan, ae)| Step::AssessNext(vec![
                Evidence {
                    condition: code("FIN"),
                    figures: Figures::SystemFinance {
                        actual_ytd: Pence::new(actual),
                        control_total_ytd: Pence::new(plan),
                    },
                },
                Evidence { condition: code("AE"), figures: Figures::AeFourHour { performance: bp(ae) } },
            ])),
        1 => a_period().prop_map(Step::PayNext),
        1 => (prop::option::of(a_member()), a_period(), 1u64..=40, any::<[u8; 32]>())
            .prop_map(|(filer, period, as_of_sequence, fingerprint)| {
                Step::Run(Command::System(SystemCommand::FileReturn(FiledReturn {
                    filer: filer.map_or(Filer::System, Filer::Member),
                    report: ReportKind::Position,
                    period,
                    as_of_sequence,
                    fingerprint,
                })))
            }),
        1 => (select(vec!["KHFT", "AVT"]), 1u32..=4, a_period(), an_amount())
            .prop_map(|(m, q, period, amount)| Step::Run(Command::Fund {
                fund: code("F1"),
                command: FundCommand::ClawBack {
                    quarter: Quarter::new(q).expect("valid"),
                    member: member(m),
                    period,
                    amount,
                    reason: text("restated"),
                },
            })),
    ]
    .boxed()
}

/// The system, its members, plans, contracts, a pooled budget and a fund.
fn a_prelude() -> impl Strategy<Value = Vec<Command>> {
    (
        prop::collection::vec((0i64..=900_000_000_000, 0i64..=900_000_000_000), 7),
        prop::collection::vec(a_model(), 4),
    )
        .prop_map(|(plans, models)| {
            let mut commands = vec![Command::System(SystemCommand::Establish {
                system: SystemId::new("kav").expect("valid"),
                name: text("Kingsmere & Alder Valley ICS"),
                first_year: year(2018),
            })];
            for (m, kind, in_control_total) in MEMBERS {
                commands.push(Command::System(SystemCommand::AdmitMember {
                    member: member(m),
                    name: text(m),
                    kind,
                    in_control_total,
                }));
            }
            for ((m, _, _), (income, expenditure)) in MEMBERS.iter().zip(plans) {
                commands.push(Command::System(SystemCommand::AgreePlan {
                    member: member(m),
                    year: year(2018),
                    income: Pence::new(income),
                    expenditure: Pence::new(expenditure),
                }));
            }
            let providers = ["KHFT", "AVT", "KNPCN", "KCHT"];
            for ((c, provider), model) in CONTRACTS.iter().zip(providers).zip(models) {
                commands.push(Command::Contract {
                    contract: code(c),
                    command: ContractCommand::Agree {
                        commissioner: member("KCCG"),
                        provider: member(provider),
                        year: year(2018),
                        model,
                        description: text("services"),
                    },
                });
            }
            let share = |m: &str, p| Share {
                member: member(m),
                share: bp(p),
            };
            commands.push(Command::Budget {
                budget: code("BCF"),
                command: BudgetCommand::Establish {
                    name: text("Better Care Fund"),
                    host: member("KCC"),
                    year: year(2018),
                    partners: vec![member("KCCG"), member("KCC"), member("KHFT")],
                    schemes: vec![
                        Scheme {
                            scheme: code("CARE"),
                            name: text("Care"),
                            ring_fenced: false,
                        },
                        Scheme {
                            scheme: code("DFG"),
                            name: text("DFG"),
                            ring_fenced: true,
                        },
                    ],
                    overspend_shares: vec![
                        share("KCCG", 5_000),
                        share("KCC", 3_333),
                        share("KHFT", 1_667),
                    ],
                    underspend_shares: vec![share("KCCG", 7_000), share("KCC", 3_000)],
                },
            });
            commands.push(Command::Fund {
                fund: code("F1"),
                command: FundCommand::Allocate {
                    name: text("SSF"),
                    year: year(2018),
                    recipients: vec![
                        Recipient {
                            member: member("KHFT"),
                            allocation: pounds(4_800_001),
                        },
                        Recipient {
                            member: member("AVT"),
                            allocation: pounds(2_400_000),
                        },
                        Recipient {
                            member: member("KCHT"),
                            allocation: Pence::new(333),
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
            commands
        })
}

fn a_history() -> impl Strategy<Value = Vec<(Recorded, Event)>> {
    (a_prelude(), prop::collection::vec(a_step(), 0..90))
        .prop_map(|(prelude, steps)| run(&prelude, &steps))
}

/// Runs the prelude, then every step the ledger accepts; returns the log.
fn run(prelude: &[Command], steps: &[Step]) -> Vec<(Recorded, Event)> {
    let mut ledger = Ledger::default();
    let mut events = log_of(prelude)
        .into_iter()
        .map(|(_, e)| e)
        .collect::<Vec<_>>();
    for event in &events {
        ledger.apply(event).expect("the prelude applies");
    }
    for step in steps {
        let command = match step {
            Step::Run(command) => command.clone(),
            Step::CloseNext => {
                let next = ledger
                    .system
                    .closed_through
                    .map_or(Some(period(2018, 1)), Period::next);
                let Some(period) = next else { continue };
                Command::System(SystemCommand::ClosePeriod { period })
            }
            Step::AssessNext(evidence) => {
                let fund = ledger.funds.get(&code("F1"));
                let Some(quarter) =
                    Quarter::all().find(|q| fund.is_some_and(|f| !f.assessed.contains_key(q)))
                else {
                    continue;
                };
                Command::Fund {
                    fund: code("F1"),
                    command: FundCommand::AssessTranche {
                        quarter,
                        evidence: evidence.clone(),
                    },
                }
            }
            Step::PayNext(period) => {
                let fund = ledger.funds.get(&code("F1"));
                let Some(quarter) = fund
                    .and_then(|f| f.assessed.keys().find(|q| !f.paid.contains_key(q)))
                    .copied()
                else {
                    continue;
                };
                Command::Fund {
                    fund: code("F1"),
                    command: FundCommand::PayTranche {
                        quarter,
                        period: *period,
                    },
                }
            }
        };
        if let Ok(new) = ledger.execute(&command) {
            events.extend(new);
        }
    }
    events
        .into_iter()
        .enumerate()
        .map(|(i, e)| (recorded(u64::try_from(i).expect("small") + 1), e))
        .collect()
}

fn encode(projection: &Projection) -> Vec<u8> {
    bincode::serde::encode_to_vec(projection, bincode::config::standard()).expect("encodes")
}

fn decode(bytes: &[u8]) -> Projection {
    bincode::serde::decode_from_slice(bytes, bincode::config::standard())
        .expect("decodes")
        .0
}

fn sum<'a>(rows: impl Iterator<Item = &'a PositionFigures>) -> PositionFigures {
    rows.fold(PositionFigures::default(), |total, row| {
        total.checked_add(row).expect("in range")
    })
}

/// Fingerprints of every report for `year` and `month`, as of `as_of`.
fn fingerprints(projection: &Projection, as_of: AsOf, y: u32, month: u32) -> Vec<[u8; 32]> {
    let s = projection.at(as_of).expect("snapshot");
    let (fy, m) = (year(y), Month::new(month).expect("valid"));
    let all = AobOptions {
        scope: AobScope::AllMembers,
        ..AobOptions::default()
    };
    vec![
        s.position(fy, m).expect("position").fingerprint(),
        s.consolidation(fy, m, ConsolidationScope::WiderIcs)
            .expect("consolidation")
            .fingerprint(),
        s.pooled_budgets(fy, m).expect("budgets").fingerprint(),
        s.contracts_statement(fy, m)
            .expect("contracts")
            .fingerprint(),
        s.funds_statement(fy, m).expect("funds").fingerprint(),
        s.agreement_of_balances(fy, m, all)
            .expect("aob")
            .fingerprint(),
        s.adjustments(fy, m).expect("adjustments").fingerprint(),
    ]
    .into_iter()
    .map(|f| f.expect("encodes"))
    .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn the_system_is_the_sum_of_its_members_and_eliminations_net_to_zero(
        log in a_history(),
        month in 1u32..=12,
    ) {
        let projection = fold(&log);
        let snapshot = projection.at(AsOf::Latest).expect("snapshot");
        for (y, month) in [(2018, month), (2018, 12), (2019, 3)] {
            let (fy, m) = (year(y), Month::new(month).expect("valid"));
            let report = snapshot.position(fy, m).expect("position");
            let in_ct = sum(report.members.iter().filter(|r| r.in_control_total).map(|r| &r.figures));
            prop_assert_eq!(&report.control_total, &in_ct);
            prop_assert_eq!(&report.wider_ics, &sum(report.members.iter().map(|r| &r.figures)));

            for scope in [ConsolidationScope::ControlTotal, ConsolidationScope::WiderIcs] {
                let c = snapshot.consolidation(fy, m, scope).expect("consolidation");
                let income_side: i128 = c.eliminations.iter().map(|e| i128::from(e.a_income_from_b.get()) + i128::from(e.b_income_from_a.get())).sum();
                let amounts: i128 = c.eliminations.iter().map(|e| i128::from(e.amount.get())).sum();
                prop_assert_eq!(income_side, amounts);
                prop_assert_eq!(amounts, i128::from(c.eliminated.get()));
                prop_assert_eq!(c.gross_net, c.consolidated_net);
                prop_assert_eq!(
                    c.gross_income.get() - c.consolidated_income.get(),
                    c.gross_expenditure.get() - c.consolidated_expenditure.get()
                );
            }
            // Every ledger flow is between two members, so across the wider ICS in-system
            // income and expenditure are equal, and all of it is eliminated.
            let wider = snapshot.consolidation(fy, m, ConsolidationScope::WiderIcs).expect("consolidation");
            prop_assert_eq!(report.wider_ics.ledger_income_ytd, report.wider_ics.ledger_expenditure_ytd);
            prop_assert_eq!(report.wider_ics.ledger_income_ytd, wider.eliminated);

            let contracts = snapshot.contracts_statement(fy, m).expect("contracts");
            for c in &contracts.contracts {
                prop_assert_eq!(c.commissioner.amount_ytd, c.provider.amount_ytd);
                prop_assert_eq!(c.commissioner.balance, c.provider.balance);
            }
        }
    }

    #[test]
    fn folding_in_two_parts_with_a_stored_projection_between_gives_the_same_projection(
        (log, split) in a_history().prop_flat_map(|log| {
            let len = log.len();
            (Just(log), 0..=len)
        }),
    ) {
        let whole = fold(&log);
        let (head, tail) = log.split_at(split);
        let mut resumed = decode(&encode(&fold(head)));
        for (at, event) in tail {
            resumed.apply(at, event).expect("folds");
        }
        prop_assert_eq!(encode(&resumed), encode(&whole));
        prop_assert_eq!(resumed, whole);
    }

    #[test]
    fn folding_in_many_parts_with_a_stored_projection_between_each_gives_the_same_projection(
        (log, cuts) in a_history().prop_flat_map(|log| {
            let len = log.len();
            (Just(log), prop::collection::btree_set(0..=len, 0..=8))
        }),
    ) {
        let whole = fold(&log);
        let mut resumed = Projection::new();
        let mut from = 0;
        for to in cuts.iter().copied().chain([log.len()]) {
            resumed = decode(&encode(&resumed));
            for (at, event) in &log[from..to] {
                resumed.apply(at, event).expect("folds");
            }
            from = to;
        }
        prop_assert_eq!(resumed.events(), log.len());
        prop_assert_eq!(encode(&resumed), encode(&whole));
        prop_assert_eq!(resumed, whole);
    }

    #[test]
    fn a_snapshot_as_of_a_sequence_is_the_projection_folded_that_far(
        (log, upto) in a_history().prop_flat_map(|log| {
            let len = log.len();
            (Just(log), 1..=len)
        }),
        month in 1u32..=12,
    ) {
        let whole = fold(&log);
        let prefix = fold(&log[..upto]);
        let sequence = log[upto - 1].0.sequence;
        for (y, month) in [(2018, month), (2019, 3)] {
            prop_assert_eq!(
                fingerprints(&whole, AsOf::Sequence(sequence), y, month),
                fingerprints(&prefix, AsOf::Latest, y, month)
            );
        }
    }
}

#[test]
fn a_refused_event_changes_nothing() {
    let log = run(
        &[Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("valid"),
            name: text("ICS"),
            first_year: year(2018),
        })],
        &[],
    );
    let mut projection = fold(&log);
    let before = projection.clone();
    let (at, event) = &log[0];
    assert!(
        projection.apply(at, event).is_err(),
        "the same sequence again"
    );
    let later = recorded(at.sequence + 1);
    assert!(
        projection.apply(&later, event).is_err(),
        "established twice"
    );
    let earlier = Recorded {
        sequence: at.sequence + 1,
        recorded_at_us: at.recorded_at_us - 1,
    };
    assert!(
        projection.apply(&earlier, event).is_err(),
        "time went backwards"
    );
    let no_contract = Event::Contract {
        contract: code("NONE"),
        event: crate::ContractEvent::PaymentRecorded {
            invoice: code("I1"),
            period: period(2018, 1),
            amount: Pence::new(1),
        },
    };
    assert!(projection.apply(&later, &no_contract).is_err());
    assert_eq!(projection, before);
}
