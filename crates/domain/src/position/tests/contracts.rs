//! The contract statement of a contract invoiced, partly paid and disputed: what is invoiced,
//! paid, outstanding and disputed, month by month, from both sides.

use super::{fold, log_of};
use crate::contract::{ContractCommand, PaymentModel};
use crate::position::{AsOf, ContractSide, ContractStatement, ContractSummary, Projection};
use crate::system::SystemCommand;
use crate::testing::{code, member, period, pounds, text, year};
use crate::{Command, MemberKind, Month, Pence, SystemId};

fn contract(name: &str, command: ContractCommand) -> Command {
    Command::Contract {
        contract: code(name),
        command,
    }
}

fn invoice(name: &str, month: u32, amount: i64) -> Command {
    contract(
        "C1",
        ContractCommand::RaiseInvoice {
            invoice: code(name),
            period: period(2018, month),
            amount: pounds(amount),
            corrects: None,
        },
    )
}

fn payment(name: &str, month: u32, amount: i64) -> Command {
    contract(
        "C1",
        ContractCommand::RecordPayment {
            invoice: code(name),
            period: period(2018, month),
            amount: pounds(amount),
        },
    )
}

fn dispute(name: &str, on: &str, month: u32, amount: i64) -> Command {
    contract(
        "C1",
        ContractCommand::RaiseDispute {
            dispute: code(name),
            invoice: Some(code(on)),
            period: period(2018, month),
            amount: pounds(amount),
            reason: text("coding challenge"),
        },
    )
}

/// KCCG commissions C1 from KHFT, a £12,000,000 block (£1,000,000 a month), and C2 from AVT,
/// which is invoiced and paid in full and must not show in C1's figures.
///
/// - M1: I1 £1,000,000, paid in full.
/// - M2: I2 £1,000,000, £600,000 paid.
/// - M3: I3 £1,000,000; D1 disputes £250,000 of it; the other £750,000 paid.
/// - M4: D2 disputes the £400,000 unpaid on I2, resolved in the month: KHFT keeps £100,000,
///   £300,000 is written off.
/// - M5: D1 resolved: KHFT keeps all £250,000.
fn invoiced_part_paid_and_disputed() -> Projection {
    let block = |annual: i64| PaymentModel::Block {
        annual_value: pounds(annual),
    };
    let agree = |name: &str, provider: &str, annual: i64| {
        contract(
            name,
            ContractCommand::Agree {
                commissioner: member("KCCG"),
                provider: member(provider),
                year: year(2018),
                model: block(annual),
                description: text("acute services"),
            },
        )
    };
    let mut commands = vec![Command::System(SystemCommand::Establish {
        system: SystemId::new("kav").expect("valid"),
        name: text("Kingsmere & Alder Valley ICS"),
        first_year: year(2018),
    })];
    for (m, kind) in [
        ("KCCG", MemberKind::Commissioner),
        ("KHFT", MemberKind::AcuteTrust),
        ("AVT", MemberKind::AcuteTrust),
    ] {
        commands.push(Command::System(SystemCommand::AdmitMember {
            member: member(m),
            name: text(m),
            kind,
            in_control_total: true,
        }));
    }
    commands.extend([
        agree("C1", "KHFT", 12_000_000),
        agree("C2", "AVT", 6_000_000),
        contract(
            "C2",
            ContractCommand::RaiseInvoice {
                invoice: code("I1"),
                period: period(2018, 1),
                amount: pounds(3_000_000),
                corrects: None,
            },
        ),
        contract(
            "C2",
            ContractCommand::RecordPayment {
                invoice: code("I1"),
                period: period(2018, 2),
                amount: pounds(3_000_000),
            },
        ),
        invoice("I1", 1, 1_000_000),
        payment("I1", 1, 1_000_000),
        invoice("I2", 2, 1_000_000),
        payment("I2", 2, 600_000),
        invoice("I3", 3, 1_000_000),
        dispute("D1", "I3", 3, 250_000),
        payment("I3", 3, 750_000),
        dispute("D2", "I2", 4, 400_000),
        contract(
            "C1",
            ContractCommand::ResolveDispute {
                dispute: code("D2"),
                period: period(2018, 4),
                provider_keeps: pounds(100_000),
                resolution: text("partly upheld"),
            },
        ),
        contract(
            "C1",
            ContractCommand::ResolveDispute {
                dispute: code("D1"),
                period: period(2018, 5),
                provider_keeps: pounds(250_000),
                resolution: text("not upheld"),
            },
        ),
    ]);
    fold(&log_of(&commands))
}

fn statement(projection: &Projection, month: u32) -> ContractStatement {
    projection
        .at(AsOf::Latest)
        .and_then(|s| s.contracts_statement(year(2018), Month::new(month).expect("valid")))
        .expect("report")
}

fn c1(statement: &ContractStatement) -> &ContractSummary {
    statement
        .contracts
        .iter()
        .find(|c| c.contract == code("C1"))
        .expect("C1 is in the statement")
}

/// C1's invoiced, paid, invoices outstanding, disputed, disputes open, written off and value,
/// year to date.
fn figures(c: &ContractSummary) -> [Pence; 7] {
    [
        c.invoiced_ytd,
        c.paid_ytd,
        c.invoices_outstanding,
        c.disputed_ytd,
        c.disputes_open,
        c.written_off_ytd,
        c.value_ytd,
    ]
}

/// The same figures given in whole pounds.
fn in_pounds(figures: [i64; 7]) -> [Pence; 7] {
    figures.map(pounds)
}

#[test]
fn the_statement_shows_what_is_invoiced_paid_outstanding_and_disputed_month_by_month() {
    let projection = invoiced_part_paid_and_disputed();
    let expected = [
        // invoiced, paid, outstanding, disputed, open, written off, value
        (1, [1_000_000, 1_000_000, 0, 0, 0, 0, 1_000_000]),
        (2, [2_000_000, 1_600_000, 400_000, 0, 0, 0, 2_000_000]),
        (
            3,
            [
                3_000_000, 2_350_000, 650_000, 250_000, 250_000, 0, 3_000_000,
            ],
        ),
        // D2 raised and resolved: £300,000 written off the value and off I2, which named it,
        // so I2 has £100,000 outstanding and I3 £250,000 (D1 still open).
        (
            4,
            [
                3_000_000, 2_350_000, 350_000, 650_000, 250_000, -300_000, 3_700_000,
            ],
        ),
        // D1 resolved in KHFT's favour: nothing open, nothing more written off; I3's £250,000
        // is payable again.
        (
            5,
            [
                3_000_000, 2_350_000, 350_000, 650_000, 0, -300_000, 4_700_000,
            ],
        ),
    ];
    for (month, want) in expected {
        let statement = statement(&projection, month);
        assert_eq!(figures(c1(&statement)), in_pounds(want), "M{month}");
    }
}

#[test]
fn both_sides_of_a_part_paid_and_disputed_contract_show_the_same_figures() {
    let projection = invoiced_part_paid_and_disputed();
    // At M3: value 3,000,000, cash 2,350,000; KCCG owes KHFT 650,000.
    // At M5: value 4,700,000 (5 × 1,000,000 less 300,000 written off), cash 2,350,000.
    for (month, value, cash, balance) in [
        (3, 3_000_000, 2_350_000, 650_000),
        (5, 4_700_000, 2_350_000, 2_350_000),
    ] {
        let statement = statement(&projection, month);
        let c = c1(&statement);
        let side = |m: &str| ContractSide {
            member: member(m),
            amount_ytd: pounds(value),
            cash_ytd: pounds(cash),
            balance: pounds(balance),
        };
        assert_eq!(c.commissioner, side("KCCG"), "M{month}");
        assert_eq!(c.provider, side("KHFT"), "M{month}");

        // Each finance team sees C1 with the same figures, and only its own contracts.
        let mut khft = statement.clone();
        khft.limit_to(member("KHFT"));
        assert_eq!(khft.contracts.as_slice(), std::slice::from_ref(c));
        let mut kccg = statement.clone();
        kccg.limit_to(member("KCCG"));
        let kccg_contracts: Vec<&str> =
            kccg.contracts.iter().map(|c| c.contract.as_str()).collect();
        assert_eq!(kccg_contracts, ["C1", "C2"]);
        assert_eq!(
            kccg.contracts.iter().find(|c| c.contract == code("C1")),
            Some(c)
        );
    }
}
