//! Tests of the position arithmetic: every figure of BRIEF §8 from the demo's own scenario
//! files (`demo`), the contract statement of a contract part paid and disputed
//! (`contracts`), and properties over generated histories (`props`).

mod contracts;
mod demo;
mod props;
mod scenario;

use crate::position::{Projection, Recorded};
use crate::{Command, Event, Ledger};

/// When the first event is recorded (2018-04-01T00:00:00Z, in µs); each next one a second
/// later.
const EPOCH_US: i64 = 1_522_540_800_000_000;

pub fn recorded(sequence: u64) -> Recorded {
    Recorded {
        sequence,
        recorded_at_us: EPOCH_US + i64::try_from(sequence).expect("small") * 1_000_000,
    }
}

/// A log: the events the commands recorded, numbered from 1.
pub fn log_of(commands: &[Command]) -> Vec<(Recorded, Event)> {
    let mut ledger = Ledger::default();
    let mut log = Vec::new();
    for (i, command) in commands.iter().enumerate() {
        let events = ledger
            .execute(command)
            .unwrap_or_else(|e| panic!("command {i} refused: {e}\n{command:?}"));
        for event in events {
            let sequence = u64::try_from(log.len()).expect("small") + 1;
            log.push((recorded(sequence), event));
        }
    }
    log
}

/// The projection of a log.
pub fn fold(log: &[(Recorded, Event)]) -> Projection {
    let mut projection = Projection::new();
    for (at, event) in log {
        projection
            .apply(at, event)
            .unwrap_or_else(|e| panic!("event {} does not fold: {e}", at.sequence));
    }
    projection
}
