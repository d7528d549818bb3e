//! The demo ICS as a log: `deploy/demo/kingsmere-2018-19.ics` parsed as `icsctl load` parses
//! it, each line's protobuf command checked and converted as ledgerd does
//! (`api::command_from_proto`), and decided by `domain::Ledger::execute`. Events are numbered
//! from 1, recorded a second apart.

use anyhow::anyhow;
use domain::position::Recorded;
use domain::{Event, Ledger};

use crate::synthetic::EPOCH_US;

/// The scenario file, as shipped.
pub const KINGSMERE: &str = include_str!("../../../deploy/demo/kingsmere-2018-19.ics");
pub const KINGSMERE_NAME: &str = "kingsmere-2018-19.ics";

/// Every event the demo scenario records, in order; an error if any line is refused.
pub fn log() -> anyhow::Result<Vec<(Recorded, Event)>> {
    let commands = icsctl::load::parse_scenario(KINGSMERE_NAME, KINGSMERE)?;
    let mut ledger = Ledger::default();
    let mut log = Vec::new();
    for (line, command) in commands {
        let (_, command) = api::command_from_proto(command)
            .map_err(|e| anyhow!("{KINGSMERE_NAME}:{line}: {e}"))?;
        let events = ledger
            .execute(&command)
            .map_err(|e| anyhow!("{KINGSMERE_NAME}:{line}: refused: {e}"))?;
        for event in events {
            let sequence = log.len() as u64 + 1;
            let recorded_at_us = EPOCH_US + i64::try_from(sequence)? * 1_000_000;
            log.push((
                Recorded {
                    sequence,
                    recorded_at_us,
                },
                event,
            ));
        }
    }
    Ok(log)
}
