//! The one mapping from domain errors to gRPC statuses, with the standard `google.rpc` error
//! details a client in any language can read (see the status-code convention in
//! `proto/ics/ledger/v1/ledger.proto`).
//!
//! | domain error | code | details |
//! |---|---|---|
//! | `Invalid { field, reason }` | `INVALID_ARGUMENT` | `BadRequest` (field, reason) |
//! | `Overflow { field }` | `INVALID_ARGUMENT` | `BadRequest` (field, "amounts overflow…") |
//! | `Rejected { rule, detail }` | `FAILED_PRECONDITION` | `ErrorInfo` (reason = rule code), `PreconditionFailure` (type = rule code) |
//! | `NotFound { what, id }` | `NOT_FOUND` | `ResourceInfo` (what, id) |
//! | `AlreadyExists { what, id }` | `ALREADY_EXISTS` | `ResourceInfo` (what, id) |
//!
//! Messages and detail texts quote what the client sent, so each is cut to
//! [`STATUS_TEXT_BYTES_MAX`]: a status travels in HTTP/2 trailers, which clients cap (h2's
//! default 16 KiB, grpcio's 8 KiB), and a longer one reaches the client as a protocol error
//! instead of the status.

use std::collections::HashMap;

use domain::{DomainError, Rule};
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The `domain` of every `google.rpc.ErrorInfo` the ledger sends.
pub const ERROR_DOMAIN: &str = "ics.ledger.v1";

/// `ErrorInfo.reason` of an ABORTED status from [`status_version_conflict`].
pub const REASON_VERSION_CONFLICT: &str = "VERSION_CONFLICT";

/// The most bytes of a status message, or of any text in its details, that are sent; the
/// rest is replaced by a note of how much was cut.
pub const STATUS_TEXT_BYTES_MAX: usize = 512;

/// `text` cut to [`STATUS_TEXT_BYTES_MAX`] bytes on a character boundary.
pub fn bounded(text: &str) -> String {
    if text.len() <= STATUS_TEXT_BYTES_MAX {
        return text.to_string();
    }
    let mut end = STATUS_TEXT_BYTES_MAX;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}… ({} bytes not shown)", &text[..end], text.len() - end)
}

/// The gRPC status for a refused command.
pub fn status_from_domain(error: &DomainError) -> Status {
    let message = bounded(&error.to_string());
    match error {
        DomainError::Invalid { field, reason } => Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request_violation(bounded(field), bounded(reason)),
        ),
        DomainError::Overflow { field } => Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request_violation(
                bounded(field),
                "amounts overflow the range of pence",
            ),
        ),
        DomainError::Rejected { rule, detail } => {
            let code = rule_code(*rule);
            let metadata = HashMap::from([("rule".to_string(), rule.name().to_string())]);
            let mut details = ErrorDetails::with_error_info(code.as_str(), ERROR_DOMAIN, metadata);
            details.add_precondition_failure_violation(code.as_str(), "", bounded(detail));
            Status::with_error_details(Code::FailedPrecondition, message, details)
        }
        DomainError::NotFound { what, id } => Status::with_error_details(
            Code::NotFound,
            message,
            ErrorDetails::with_resource_info(*what, bounded(id), "", ""),
        ),
        DomainError::AlreadyExists { what, id } => Status::with_error_details(
            Code::AlreadyExists,
            message,
            ErrorDetails::with_resource_info(*what, bounded(id), "", ""),
        ),
    }
}

/// `NOT_FOUND` for a resource of type `what` (`ResourceInfo`: what, id) that is not recorded,
/// as a domain `NotFound` is sent, for the ids the domain has no `Code` for (a stream).
pub fn status_not_found(what: &str, id: &str, message: impl Into<String>) -> Status {
    Status::with_error_details(
        Code::NotFound,
        bounded(&message.into()),
        ErrorDetails::with_resource_info(what, bounded(id), "", ""),
    )
}

/// `INVALID_ARGUMENT` naming `field` (in the message and as a `BadRequest` field violation).
pub fn status_invalid_field(field: &str, reason: &str) -> Status {
    Status::with_error_details(
        Code::InvalidArgument,
        bounded(&format!("{field}: {reason}")),
        ErrorDetails::with_bad_request_violation(bounded(field), bounded(reason)),
    )
}

/// `ABORTED` for an append whose `expected_version` is not the stream's version: the client
/// re-reads the stream, decides again and retries with a new request id.
pub fn status_version_conflict(stream: &str, expected: u64, actual: u64) -> Status {
    let metadata = HashMap::from([
        ("stream".to_string(), bounded(stream)),
        ("expected_version".to_string(), expected.to_string()),
        ("actual_version".to_string(), actual.to_string()),
    ]);
    Status::with_error_details(
        Code::Aborted,
        bounded(&format!(
            "{stream} is at version {actual}, not the expected {expected}; re-read and retry"
        )),
        ErrorDetails::with_error_info(REASON_VERSION_CONFLICT, ERROR_DOMAIN, metadata),
    )
}

/// The machine-readable name of a business rule, as clients branch on it: the variant's name
/// in UPPER_SNAKE_CASE (`Rule::PeriodClosed` → `PERIOD_CLOSED`). Derived from the variant so
/// a rule added to the domain gets a code without touching this crate.
pub fn rule_code(rule: Rule) -> String {
    let camel = format!("{rule:?}");
    let mut code = String::with_capacity(camel.len() + 8);
    for (i, c) in camel.chars().enumerate() {
        if c.is_ascii_uppercase() && i > 0 {
            code.push('_');
        }
        code.push(c.to_ascii_uppercase());
    }
    code
}
