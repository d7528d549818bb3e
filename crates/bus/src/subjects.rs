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

/// The `Nats-Msg-Id` of a checkpoint at `sequence` whose message is `payload`: the same
/// checkpoint published again is a duplicate, and one published first under the id another
/// would take cannot make JetStream drop the genuine one (the id names its content, which a
/// forger cannot know before it is signed).
pub fn checkpoint_msg_id(system: &SystemId, sequence: u64, payload: &[u8]) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(payload);
    format!(
        "checkpoint.{system}.{sequence}.{}",
        hex::encode(&digest[..16])
    )
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
        // SHA-256 of "abc" begins ba7816bf8f01cfea414140de5dae2223.
        assert_eq!(
            checkpoint_msg_id(&kav, 7, b"abc"),
            "checkpoint.kav.7.ba7816bf8f01cfea414140de5dae2223"
        );
        assert_ne!(
            checkpoint_msg_id(&kav, 7, b"abc"),
            checkpoint_msg_id(&kav, 7, b"abd")
        );
        for family in Family::ALL {
            let name = subject(&kav, family, "E");
            assert_eq!(name.split('.').count(), 4, "{name}");
            assert!(name.starts_with("ics."));
        }
    }
}
