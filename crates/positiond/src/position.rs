//! The projection positiond keeps: the domain's position projection
//! ([`domain::position::Projection`]) folded by the [`follow`] machinery.
//!
//! The domain folds an event given its global sequence and recorded-at time; [`Incoming`]
//! carries both beside the decoded event, so the adapter only passes them on. A
//! [`ProjectionError`](domain::position::ProjectionError) (an event out of order, time going
//! backwards, an event that does not fit, amounts that overflow) leaves the projection
//! unchanged and comes back as an error, which `follow` turns into a refusal to go past the
//! event: the checkpoint never moves beyond it.

use domain::position::{Projection, Recorded};
use follow::incoming::Incoming;
use serde::{Deserialize, Serialize};

/// The collective position of one ICS, as positiond checkpoints it (the domain projection,
/// serialized as itself).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Position(pub Projection);

impl Position {
    pub fn projection(&self) -> &Projection {
        &self.0
    }
}

impl follow::projection::Projection for Position {
    fn apply(&mut self, event: &Incoming) -> Result<(), String> {
        let at = Recorded {
            sequence: event.sequence,
            recorded_at_us: event.recorded_at_us,
        };
        self.0
            .apply(&at, &event.event)
            .map_err(|error| error.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use domain::position::AsOf;
    use domain::{FinancialYear, Month, SystemCommand, SystemId, Text};
    use follow::checkpoint::CheckpointStore;
    use follow::projection::{Checkpointed, FoldError, Offer};

    fn incoming(sequence: u64, recorded_at_us: i64, event: domain::Event) -> Incoming {
        Incoming {
            sequence,
            stream: event.stream().to_string(),
            version: sequence,
            recorded_at_us,
            prev_hash: [u8::try_from(sequence - 1).expect("small"); 32],
            hash: [u8::try_from(sequence).expect("small"); 32],
            event,
        }
    }

    /// The events a small ledger records: a system and one member.
    fn events() -> Vec<domain::Event> {
        let mut ledger = domain::Ledger::default();
        let text = |t: &str| Text::new(t).expect("text");
        let commands = [
            domain::Command::System(SystemCommand::Establish {
                system: SystemId::new("kav").expect("id"),
                name: text("Kingsmere"),
                first_year: FinancialYear::new(2018).expect("year"),
            }),
            domain::Command::System(SystemCommand::AdmitMember {
                member: domain::MemberCode::parse("KCCG").expect("code"),
                name: text("Kingsmere CCG"),
                kind: domain::MemberKind::Commissioner,
                in_control_total: true,
            }),
        ];
        commands
            .iter()
            .flat_map(|c| ledger.execute(c).expect("accepted"))
            .collect()
    }

    #[test]
    fn folds_what_the_domain_folds_and_refuses_what_it_refuses() {
        let events = events();
        let mut checkpointed = Checkpointed::<Position>::default();
        let first = incoming(1, 1_000, events[0].clone());
        assert_eq!(checkpointed.offer(&first), Ok(Offer::Applied));
        let mut expected = Projection::new();
        expected
            .apply(
                &Recorded {
                    sequence: 1,
                    recorded_at_us: 1_000,
                },
                &events[0],
            )
            .expect("folds");
        assert_eq!(checkpointed.projection.0, expected);

        // Recorded before the event it follows: the domain refuses it, and so does follow —
        // the checkpoint does not move past it.
        let backwards = incoming(2, 999, events[1].clone());
        let before = checkpointed.clone();
        match checkpointed.offer(&backwards) {
            Err(FoldError::Apply { sequence, reason }) => {
                assert_eq!(sequence, 2);
                assert!(reason.contains("before event 1"), "{reason}");
            }
            other => panic!("expected a refusal, got {other:?}"),
        }
        assert_eq!(checkpointed, before, "nothing changed");

        // The same event recorded after it folds.
        let second = incoming(2, 2_000, events[1].clone());
        assert_eq!(checkpointed.offer(&second), Ok(Offer::Applied));
        assert_eq!(checkpointed.sequence, 2);
        assert_eq!(
            checkpointed.projection.0.last(),
            Some(Recorded {
                sequence: 2,
                recorded_at_us: 2_000
            })
        );
        let report = checkpointed
            .projection
            .0
            .at(AsOf::Latest)
            .and_then(|s| {
                s.position(
                    FinancialYear::new(2018).expect("year"),
                    Month::new(1).expect("month"),
                )
            })
            .expect("report");
        assert_eq!(report.members.len(), 1);
    }

    /// How the checkpoint grows with the log: a system, one contract and `n` invoices, folded
    /// and checkpointed. Prints the figures; no timed assertion. Run with
    /// `cargo test --release -p positiond --lib -- --ignored --nocapture checkpoint_growth`.
    #[test]
    #[ignore = "a measurement, not a test"]
    fn checkpoint_growth() {
        use domain::contract::PaymentModel;
        use domain::{Code, ContractCommand, MemberCode, Pence, Period};
        let year = FinancialYear::new(2018).expect("year");
        let member = |c: &str| MemberCode::parse(c).expect("member");
        let mut ledger = domain::Ledger::default();
        let mut events = events();
        for event in &events {
            ledger.apply(event).expect("applies");
        }
        let setup = [
            domain::Command::System(SystemCommand::AdmitMember {
                member: member("KHFT"),
                name: Text::new("Kingsmere Hospitals").expect("text"),
                kind: domain::MemberKind::AcuteTrust,
                in_control_total: true,
            }),
            domain::Command::Contract {
                contract: Code::new("C1").expect("code"),
                command: ContractCommand::Agree {
                    commissioner: member("KCCG"),
                    provider: member("KHFT"),
                    year,
                    model: PaymentModel::Block {
                        annual_value: Pence::new(1_000_000_000),
                    },
                    description: Text::new("Block").expect("text"),
                },
            },
        ];
        for command in &setup {
            events.extend(ledger.execute(command).expect("accepted"));
        }
        let mut checkpointed = Checkpointed::<Position>::default();
        let dir = tempfile::tempdir().expect("tempdir");
        let store = CheckpointStore::open(dir.path()).expect("open");
        let mut next = 0u64;
        let mut offer = |checkpointed: &mut Checkpointed<Position>, event: domain::Event| {
            next += 1;
            let recorded_at_us = 1_522_540_800_000_000 + i64::try_from(next).expect("small");
            let incoming = Incoming {
                sequence: next,
                stream: event.stream().to_string(),
                version: next,
                recorded_at_us,
                prev_hash: checkpointed.hash,
                hash: {
                    let mut hash = [0; 32];
                    hash[..8].copy_from_slice(&next.to_be_bytes());
                    hash
                },
                event,
            };
            assert_eq!(checkpointed.offer(&incoming), Ok(Offer::Applied));
        };
        for event in events {
            offer(&mut checkpointed, event);
        }
        let mut invoices = 0u64;
        for target in [1_000u64, 10_000, 100_000] {
            while invoices < target {
                let month =
                    Month::new(u32::try_from(invoices % 12).expect("small") + 1).expect("month");
                let command = domain::Command::Contract {
                    contract: Code::new("C1").expect("code"),
                    command: ContractCommand::RaiseInvoice {
                        invoice: Code::new(format!("INV-{invoices}")).expect("code"),
                        period: Period::new(year, month),
                        amount: Pence::new(100),
                        corrects: None,
                    },
                };
                for event in ledger.execute(&command).expect("accepted") {
                    offer(&mut checkpointed, event);
                }
                invoices += 1;
            }
            let bytes = bincode::serde::encode_to_vec(&checkpointed, bincode::config::standard())
                .expect("encodes");
            let started = std::time::Instant::now();
            store.save(&checkpointed).expect("save");
            let save = started.elapsed();
            eprintln!(
                "{} events: checkpoint {} bytes ({} per event), save {save:?}",
                checkpointed.sequence,
                bytes.len() + 1,
                (bytes.len() + 1) as u64 / checkpointed.sequence,
            );
        }
    }

    #[test]
    fn the_projection_survives_its_checkpoint() {
        let events = events();
        let mut checkpointed = Checkpointed::<Position>::default();
        for (i, event) in events.into_iter().enumerate() {
            let sequence = i as u64 + 1;
            let offered = checkpointed.offer(&incoming(sequence, 1_000 * sequence as i64, event));
            assert_eq!(offered, Ok(Offer::Applied));
        }
        let dir = tempfile::tempdir().expect("tempdir");
        {
            let store = CheckpointStore::open(dir.path()).expect("open");
            store.save(&checkpointed).expect("save");
        }
        let store = CheckpointStore::open(dir.path()).expect("reopen");
        let loaded: Checkpointed<Position> = store.load().expect("load");
        assert_eq!(loaded, checkpointed);
    }
}
