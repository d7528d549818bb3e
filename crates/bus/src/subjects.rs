//! Subject names: `ics.<system>.<family>.<event>` and `ics.<system>.audit.checkpoint`.
//!
//! A [`SystemId`] is always one valid subject token (lowercase letters, digits, `-`), and
//! family and event names are ASCII identifiers, so these never need escaping.

use domain::{Family, SystemId};

/// The one JetStream stream per deployment.
pub const STREAM_NAME: &str = "ICS";

/// The subject the stream captures.
pub const STREAM_SUBJECTS: &str = "ics.>";

/// `ics.<system>.<family>.<event>`, e.g. `ics.kav.contract.activity_recorded` (the event's
/// snake_case name).
///
/// `event_name` must be one subject token (no `.`, `*`, `>` or whitespace); the domain's event
/// names are.
pub fn subject(system: &SystemId, family: Family, event_name: &str) -> String {
    format!("ics.{system}.{}.{event_name}", family.name())
}

/// `ics.<system>.>`: everything one ICS publishes, checkpoints included.
pub fn system_filter(system: &SystemId) -> String {
    format!("ics.{system}.>")
}

/// `ics.<system>.<family>.>`: one family's events of one ICS.
pub fn family_filter(system: &SystemId, family: Family) -> String {
    format!("ics.{system}.{}.>", family.name())
}

/// The third token of checkpoint subjects: not an event family.
pub(crate) const AUDIT_FAMILY: &str = "audit";

/// `ics.<system>.audit.checkpoint`: signed checkpoints of the hash chain.
pub fn checkpoint_subject(system: &SystemId) -> String {
    format!("ics.{system}.{AUDIT_FAMILY}.checkpoint")
}

/// The `Nats-Msg-Id` of the checkpoint at `sequence`, so a republished checkpoint is a
/// duplicate.
pub fn checkpoint_msg_id(system: &SystemId, sequence: u64) -> String {
    format!("checkpoint.{system}.{sequence}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn subjects_have_the_documented_shape() {
        let kav = SystemId::new("kav").unwrap();
        assert_eq!(
            subject(&kav, Family::Contract, "activity_recorded"),
            "ics.kav.contract.activity_recorded"
        );
        assert_eq!(subject(&kav, Family::Funding, "X"), "ics.kav.funding.X");
        assert_eq!(system_filter(&kav), "ics.kav.>");
        assert_eq!(family_filter(&kav, Family::Budget), "ics.kav.budget.>");
        assert_eq!(checkpoint_subject(&kav), "ics.kav.audit.checkpoint");
        assert_eq!(checkpoint_msg_id(&kav, 7), "checkpoint.kav.7");
        for family in Family::ALL {
            let name = subject(&kav, family, "E");
            assert_eq!(name.split('.').count(), 4, "{name}");
            assert!(name.starts_with("ics."));
        }
    }
}
