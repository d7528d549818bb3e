//! The events and commands the benchmarks write: invoices on one block contract, the most
//! common posting of a month-end load, with distinct codes so every one is accepted.

use domain::contract::PaymentModel;
use domain::{
    Code, Command, ContractCommand, ContractEvent, Event, FinancialYear, MemberCode, MemberKind,
    Month, Pence, Period, SystemCommand, SystemId, Text,
};
use store::AppendRequest;

/// The system the benchmarks' ledger serves.
pub const SYSTEM: &str = "kav";

fn year() -> FinancialYear {
    FinancialYear::new(2018).expect("2018/19 is a valid year")
}

fn period(n: u64) -> Period {
    let month = u32::try_from(n % 12).expect("n % 12 fits") + 1;
    Period::new(year(), Month::new(month).expect("1..=12 is a month"))
}

fn code(text: String) -> Code {
    Code::new(text).expect("benchmark codes are valid")
}

fn amount(n: u64) -> Pence {
    Pence::new(100_000 + i64::try_from(n % 1_000_000).expect("fits"))
}

/// Invoice `n` on contract `C1` (at most `n` ≤ 10^15, so codes stay short).
pub fn invoice_event(n: u64) -> Event {
    Event::Contract {
        contract: code("C1".to_string()),
        event: ContractEvent::InvoiceRaised {
            invoice: code(format!("INV-{n}")),
            period: period(n),
            amount: amount(n),
            corrects: None,
        },
    }
}

/// An append of events `first..first + count` to `stream` at `version`, as ledgerd would
/// build it.
pub fn append_request(stream: &str, version: u64, first: u64, count: u64) -> AppendRequest<Event> {
    AppendRequest {
        request_id: *uuid::Uuid::new_v4().as_bytes(),
        command_hash: [7; 32],
        stream: stream.to_string(),
        stream_version: version,
        actor: "bench".to_string(),
        correlation_id: *uuid::Uuid::new_v4().as_bytes(),
        events: (first..first + count)
            .map(|n| ledgerd::ledger::new_event(&invoice_event(n)))
            .collect(),
    }
}

/// Establishes the system, admits a commissioner and a provider, agrees contract `C1`.
pub fn setup_commands() -> Vec<Command> {
    let text = |t: &str| Text::new(t).expect("valid text");
    let member = |c: &str| MemberCode::parse(c).expect("valid member code");
    let admit = |c: &str, kind| {
        Command::System(SystemCommand::AdmitMember {
            member: member(c),
            name: text(c),
            kind,
            in_control_total: true,
        })
    };
    vec![
        Command::System(SystemCommand::Establish {
            system: SystemId::new(SYSTEM).expect("valid system id"),
            name: text("Kingsmere & Alder Valley"),
            first_year: year(),
        }),
        admit("KCCG", MemberKind::Commissioner),
        admit("KHFT", MemberKind::AcuteTrust),
        Command::Contract {
            contract: code("C1".to_string()),
            command: ContractCommand::Agree {
                commissioner: member("KCCG"),
                provider: member("KHFT"),
                year: year(),
                model: PaymentModel::Block {
                    annual_value: Pence::new(30_000_000_000),
                },
                description: text("Acute services block"),
            },
        },
    ]
}

/// The command that raises invoice `n` on `C1`.
pub fn invoice_command(n: u64) -> Command {
    Command::Contract {
        contract: code("C1".to_string()),
        command: ContractCommand::RaiseInvoice {
            invoice: code(format!("INV-{n}")),
            period: period(n),
            amount: amount(n),
            corrects: None,
        },
    }
}
