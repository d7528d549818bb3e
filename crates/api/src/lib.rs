//! The ledger's public gRPC contract, in Rust.
//!
//! `proto/ics/ledger/v1/*.proto` is the contract clients in any language build against; this
//! crate holds the code generated from it ([`pb`]: prost messages, the tonic
//! `LedgerService` client and server) and the conversions between those messages and the
//! domain's types, so that no service converts by hand and every service names fields and
//! maps errors the same way.
//!
//! # Layout
//!
//! - [`pb`]: generated code, and [`FILE_DESCRIPTOR_SET`] for tonic-reflection.
//! - [`command`]: request → [`domain::Command`] through [`IntoCommand`] (one impl per request
//!   message and one for the bulk `pb::Command`), and [`command_to_proto`] back, for clients
//!   that build commands from domain types.
//! - [`event`]: [`domain::Event`] ↔ `pb::Event` ([`event_to_proto`], [`event_from_proto`]) and
//!   the `<family>.<name>` [`event_type`].
//! - [`meta`]: [`CommandMeta`], the checked idempotency key, expected version and correlation.
//! - [`period_to_proto`] / [`period_from_proto`]: periods on their own (reads, positions).
//! - [`status`]: [`status_from_domain`], the one mapping from [`domain::DomainError`] to a
//!   gRPC status with `google.rpc` error details.
//! - [`report`]: the position reports — report requests checked into a
//!   [`report::Question`], domain reports → `position_pb` messages with their fingerprints
//!   ([`report::ReportToProto`]), and the statuses for reports that cannot be given yet.
//!
//! **API boundary:** malformed input never reaches the domain. Converting a request checks
//! everything that needs no ledger state and reports it as
//! [`DomainError::Invalid`](domain::DomainError::Invalid) naming the proto field path
//! (`balances[2].counterparty`, `model.aligned_payment.marginal_rate_bp`,
//! `meta.request_id`); the server turns that into `INVALID_ARGUMENT` with the path in a
//! `BadRequest` detail. Rules that depend on the ledger's state are the domain's.
//!
//! **Architecture invariant:** conversions are pure and total: domain → proto never fails,
//! proto → domain fails only with a `DomainError`, and neither panics.

#![forbid(unsafe_code)]

pub mod command;
pub mod event;
pub mod json;
pub mod meta;
pub mod report;
pub mod status;
mod values;

pub use command::{IntoCommand, command_from_proto, command_to_proto, with_field_prefix};
pub use event::{event_from_proto, event_to_proto, event_type};
pub use meta::{CommandMeta, parse_uuid, uuid_text};
pub use status::{
    ERROR_DOMAIN, STATUS_TEXT_BYTES_MAX, rule_code, status_from_domain, status_not_found,
    status_version_conflict,
};

/// Code generated from `proto/ics/ledger/v1` (package `ics.ledger.v1`): messages, enums, and
/// `ledger_service_client::LedgerServiceClient` / `ledger_service_server::LedgerServiceServer`.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    missing_docs
)]
pub mod pb {
    tonic::include_proto!("ics.ledger.v1");
}

/// Code generated from `proto/ics/position/v1` (package `ics.position.v1`): positiond's
/// `PositionService` and its reports.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    missing_docs
)]
pub mod position_pb {
    include!(concat!(env!("OUT_DIR"), "/position/ics.position.v1.rs"));
}

/// Code generated from `proto/ics/oversight/v1` (package `ics.oversight.v1`): oversightd's
/// `OversightService` and its reports.
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    missing_docs
)]
pub mod oversight_pb {
    include!(concat!(env!("OUT_DIR"), "/oversight/ics.oversight.v1.rs"));
}

/// Code generated from `proto/ics/audit/v1` (package `ics.audit.v1`): ledgerd's
/// `AuditService` (Merkle proofs, signed checkpoints).
#[allow(
    clippy::all,
    clippy::pedantic,
    clippy::nursery,
    clippy::unwrap_used,
    missing_docs
)]
pub mod audit_pb {
    include!(concat!(env!("OUT_DIR"), "/audit/ics.audit.v1.rs"));
}

/// The proto form of a tranche assessment's condition outcomes (as in `TrancheAssessed`), for
/// reports that show them.
pub fn condition_outcomes_to_proto(
    outcomes: &[domain::fund::ConditionOutcome],
) -> Vec<pb::ConditionOutcome> {
    values::outcomes_to_pb(outcomes)
}

/// The encoded `FileDescriptorSet` of the proto files (with imports and comments), for
/// `tonic_reflection::server::Builder::register_encoded_file_descriptor_set`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("ics_ledger_v1_descriptor");

/// The proto form of a period, e.g. for `RecordedEvent.effective_period`.
pub fn period_to_proto(period: domain::Period) -> pb::Period {
    values::period_to_pb(period)
}

/// A required period from its proto form; errors name `field`, `field.year` or `field.month`.
pub fn period_from_proto(
    period: Option<pb::Period>,
    field: &str,
) -> Result<domain::Period, domain::DomainError> {
    values::period(period, field)
}

#[cfg(test)]
mod tests;
