//! What oversightd keeps of one system: the domain's position projection (the one
//! implementation of the position arithmetic, shared with positiond and the audit replay) and
//! the operational metrics the system reported.

use domain::oversight::MetricBook;
use domain::position::{Projection as Position, Recorded};
use domain::{Event, FinancialYear, SystemEvent, SystemId, Text};
use follow::incoming::Incoming;
use follow::projection::Projection;
use serde::{Deserialize, Serialize};

/// The system as its `Established` event named it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Established {
    pub system: SystemId,
    pub name: Text,
    pub first_year: FinancialYear,
}

/// One system's fold.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemView {
    pub established: Option<Established>,
    /// Members admitted.
    pub members: u32,
    pub position: Position,
    /// This system's metrics (keyed by its own id, so books of many systems merge).
    pub metrics: MetricBook,
}

impl Projection for SystemView {
    fn apply(&mut self, incoming: &Incoming) -> Result<(), String> {
        // Everything that can refuse the event is checked before anything changes.
        let metric_system = match &incoming.event {
            Event::System(SystemEvent::MetricReported { .. }) => Some(
                self.established
                    .as_ref()
                    .map(|e| e.system.clone())
                    .ok_or("a metric reported before the system was established")?,
            ),
            _ => None,
        };
        let members = match &incoming.event {
            Event::System(SystemEvent::MemberAdmitted { .. }) => self
                .members
                .checked_add(1)
                .ok_or("more members than a u32 counts")?,
            _ => self.members,
        };
        let recorded = Recorded {
            sequence: incoming.sequence,
            recorded_at_us: incoming.recorded_at_us,
        };
        self.position
            .apply(&recorded, &incoming.event)
            .map_err(|e| e.to_string())?;
        self.members = members;
        match &incoming.event {
            Event::System(SystemEvent::Established {
                system,
                name,
                first_year,
            }) => {
                self.established = Some(Established {
                    system: system.clone(),
                    name: name.clone(),
                    first_year: *first_year,
                });
            }
            Event::System(SystemEvent::MetricReported {
                member,
                period,
                metric,
                value,
            }) => {
                if let Some(system) = &metric_system {
                    self.metrics
                        .record(system, member, *period, *metric, *value);
                }
            }
            _ => {}
        }
        Ok(())
    }
}
