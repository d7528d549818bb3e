//! Property-driven fuzzing of the request path: bytes off the wire → protobuf → domain
//! command (and event), for arbitrary bytes and for mutations of real requests. Every input
//! gives a value or an error; none may panic. Bounded by proptest's case count, so it runs
//! in CI.

use api::CommandMeta;
use api::pb;
use domain::contract::PaymentModel;
use domain::{
    BasisPoints, Code, Command, ContractCommand, FinancialYear, MemberCode, MemberKind, Month,
    Pence, Period, SystemCommand, SystemId, Text,
};
use proptest::prelude::*;
use prost::Message;

fn real_commands() -> Vec<Vec<u8>> {
    let year = FinancialYear::new(2018).expect("year");
    let text = |t: &str| Text::new(t).expect("text");
    let member = |c: &str| MemberCode::parse(c).expect("member");
    let commands = [
        Command::System(SystemCommand::Establish {
            system: SystemId::new("kav").expect("id"),
            name: text("Kingsmere"),
            first_year: year,
        }),
        Command::System(SystemCommand::AdmitMember {
            member: member("KHFT"),
            name: text("Kingsmere Hospitals"),
            kind: MemberKind::AcuteTrust,
            in_control_total: true,
        }),
        Command::Contract {
            contract: Code::new("C5").expect("code"),
            command: ContractCommand::Agree {
                commissioner: member("KCCG"),
                provider: member("AVT"),
                year,
                model: PaymentModel::AlignedPayment {
                    fixed: Pence::new(20_400_000_000),
                    planned_units: 36_000,
                    unit_price: Pence::new(200_000),
                    marginal_rate: BasisPoints::new(5_000),
                },
                description: text("Aligned incentive"),
            },
        },
        Command::Contract {
            contract: Code::new("C3").expect("code"),
            command: ContractCommand::RaiseInvoice {
                invoice: Code::new("INV-1").expect("code"),
                period: Period::new(year, Month::new(8).expect("month")),
                amount: Pence::new(90_000_000),
                corrects: None,
            },
        },
        Command::System(SystemCommand::FileReturn(domain::system::FiledReturn {
            filer: domain::system::Filer::Member(member("KHFT")),
            report: domain::position::ReportKind::AgreementOfBalances(
                domain::position::AobOptions::default(),
            ),
            period: Period::new(year, Month::new(6).expect("month")),
            as_of_sequence: 212,
            fingerprint: [0x5a; 32],
        })),
    ];
    commands
        .iter()
        .map(|c| api::command_to_proto(&CommandMeta::random(), c).encode_to_vec())
        .collect()
}

/// Decodes and converts; either outcome is fine, a panic fails the test.
fn convert(bytes: &[u8]) {
    if let Ok(command) = pb::Command::decode(bytes) {
        let _ = api::command_from_proto(command);
    }
    if let Ok(event) = pb::Event::decode(bytes) {
        let _ = api::event_from_proto(event);
    }
}

thread_local! {
    static REAL: Vec<Vec<u8>> = real_commands();
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(3_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        convert(&bytes);
    }

    #[test]
    fn mutated_real_requests_never_panic(
        which in any::<prop::sample::Index>(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>(), 0u8..3), 1..6),
    ) {
        let mut bytes = REAL.with(|real| which.get(real).clone());
        for (at, byte, kind) in edits {
            match kind {
                0 if !bytes.is_empty() => { let i = at.index(bytes.len()); bytes[i] = byte; }
                1 => { let i = at.index(bytes.len() + 1); bytes.insert(i, byte); }
                _ if !bytes.is_empty() => { let i = at.index(bytes.len()); bytes.truncate(i); }
                _ => {}
            }
        }
        convert(&bytes);
    }
}

#[test]
fn the_real_requests_convert() {
    for bytes in real_commands() {
        let command = pb::Command::decode(bytes.as_slice()).expect("decodes");
        api::command_from_proto(command).expect("a valid command converts");
    }
}
