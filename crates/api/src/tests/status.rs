use domain::{DomainError, Rule};
use prost::Message as _;
use tonic::Code;
use tonic::metadata::MetadataMap;
use tonic_types::StatusExt;

use crate::{
    ERROR_DOMAIN, FILE_DESCRIPTOR_SET, STATUS_TEXT_BYTES_MAX, rule_code, status_from_domain,
    status_not_found, status_version_conflict,
};

/// The status as a client receives it: through the `grpc-status`, `grpc-message` and
/// `grpc-status-details-bin` trailers.
fn over_the_wire(status: &tonic::Status) -> tonic::Status {
    let mut headers = MetadataMap::new().into_headers();
    status
        .add_header(&mut headers)
        .expect("status fits in headers");
    tonic::Status::from_header_map(&headers).expect("a status is in the headers")
}

#[test]
fn invalid_input_is_invalid_argument_naming_the_field() {
    let error = DomainError::invalid("balances[2].counterparty", "must not be empty");
    let status = over_the_wire(&status_from_domain(&error));
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("balances[2].counterparty"));
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(violations.len(), 1);
    assert_eq!(violations[0].field, "balances[2].counterparty");
    assert_eq!(violations[0].description, "must not be empty");
}

/// A value of any length quoted back: the status still fits the trailers every client
/// accepts (grpcio's 8 KiB), still names the field, and is cut on a character boundary.
#[test]
fn a_long_value_quoted_back_keeps_the_status_small() {
    let long = "é".repeat(40_000);
    for status in [
        status_from_domain(&DomainError::invalid(
            "stream",
            format!("'{long}' is not system, budget/<code>, fund/<code> or contract/<code>"),
        )),
        status_from_domain(&DomainError::Rejected {
            rule: Rule::PeriodClosed,
            detail: long.clone(),
        }),
        status_not_found("stream", &long, format!("stream '{long}' has no events")),
        status_version_conflict(&long, 1, 2),
    ] {
        let mut headers = MetadataMap::new().into_headers();
        status.add_header(&mut headers).expect("fits in headers");
        let size: usize = headers
            .iter()
            .map(|(name, value)| name.as_str().len() + value.len())
            .sum();
        assert!(size < 8 * 1024, "{size} bytes of trailers");
        let status = over_the_wire(&status);
        assert!(status.message().len() < STATUS_TEXT_BYTES_MAX + 64);
        assert!(status.message().contains("bytes not shown"));
        if let Some(bad) = status.get_error_details().bad_request() {
            assert_eq!(bad.field_violations[0].field, "stream");
            assert!(bad.field_violations[0].description.len() < STATUS_TEXT_BYTES_MAX + 64);
        }
    }
    // Short texts are sent whole.
    let status = status_from_domain(&DomainError::invalid("period.month", "13 is not 1..=12"));
    assert_eq!(status.message(), "period.month: 13 is not 1..=12");
}

#[test]
fn overflow_is_invalid_argument_naming_the_field() {
    let status = over_the_wire(&status_from_domain(&DomainError::overflow(
        "model.activity_tariff.unit_price_pence",
    )));
    assert_eq!(status.code(), Code::InvalidArgument);
    let details = status.get_error_details();
    let violations = &details
        .bad_request()
        .expect("a BadRequest")
        .field_violations;
    assert_eq!(
        violations[0].field,
        "model.activity_tariff.unit_price_pence"
    );
}

#[test]
fn a_broken_rule_is_failed_precondition_naming_the_rule() {
    let error = DomainError::rejected(
        Rule::PeriodClosed,
        "period 2018/19-M3 is closed; post a correction in an open period",
    );
    let status = over_the_wire(&status_from_domain(&error));
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().starts_with("period closed: "),
        "{}",
        status.message()
    );

    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "PERIOD_CLOSED");
    assert_eq!(info.domain, ERROR_DOMAIN);
    assert_eq!(
        info.metadata.get("rule").map(String::as_str),
        Some("period closed")
    );
    let failure = details
        .precondition_failure()
        .expect("a PreconditionFailure");
    assert_eq!(failure.violations[0].r#type, "PERIOD_CLOSED");
    assert!(failure.violations[0].description.contains("2018/19-M3"));
}

#[test]
fn missing_and_existing_aggregates_have_their_own_codes() {
    let status = over_the_wire(&status_from_domain(&DomainError::NotFound {
        what: "contract",
        id: "C9".to_string(),
    }));
    assert_eq!(status.code(), Code::NotFound);
    let details = status.get_error_details();
    let resource = details.resource_info().expect("a ResourceInfo");
    assert_eq!(
        (
            resource.resource_type.as_str(),
            resource.resource_name.as_str()
        ),
        ("contract", "C9")
    );

    let status = over_the_wire(&status_from_domain(&DomainError::AlreadyExists {
        what: "member",
        id: "KHFT".to_string(),
    }));
    assert_eq!(status.code(), Code::AlreadyExists);
    let details = status.get_error_details();
    let resource = details.resource_info().expect("a ResourceInfo");
    assert_eq!(resource.resource_name, "KHFT");
}

#[test]
fn a_version_conflict_is_aborted() {
    let status = over_the_wire(&status_version_conflict("contract/C1", 3, 5));
    assert_eq!(status.code(), Code::Aborted);
    let details = status.get_error_details();
    let info = details.error_info().expect("an ErrorInfo");
    assert_eq!(info.reason, "VERSION_CONFLICT");
    assert_eq!(
        info.metadata.get("actual_version").map(String::as_str),
        Some("5")
    );
}

#[test]
fn rule_codes_are_upper_snake_case() {
    assert_eq!(rule_code(Rule::PeriodClosed), "PERIOD_CLOSED");
    assert_eq!(
        rule_code(Rule::SharesMustSumToWhole),
        "SHARES_MUST_SUM_TO_WHOLE"
    );
    assert_eq!(rule_code(Rule::OverPaid), "OVER_PAID");
    assert_eq!(
        rule_code(Rule::SystemNotEstablished),
        "SYSTEM_NOT_ESTABLISHED"
    );
}

#[test]
fn the_descriptor_set_describes_the_service_for_reflection() {
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("decodes");
    let ledger = set
        .file
        .iter()
        .find(|f| f.name() == "ics/ledger/v1/ledger.proto")
        .expect("ledger.proto is in the set");
    assert_eq!(ledger.package(), "ics.ledger.v1");
    let service = &ledger.service[0];
    assert_eq!(service.name(), "LedgerService");
    // 28 commands + SubmitBulk, ReadStream, ReadAll, ReadStored, Head.
    assert_eq!(service.method.len(), 33);
    assert!(
        ledger.source_code_info.is_some(),
        "comments are kept, so reflection clients see the documentation"
    );
}

#[test]
fn each_command_rpc_has_its_bulk_oneof_field_with_the_same_request() {
    let set = prost_types::FileDescriptorSet::decode(FILE_DESCRIPTOR_SET).expect("decodes");
    let file = |name: &str| {
        set.file
            .iter()
            .find(|f| f.name() == name)
            .expect("file is in the set")
    };
    let service = &file("ics/ledger/v1/ledger.proto").service[0];
    let command = file("ics/ledger/v1/commands.proto")
        .message_type
        .iter()
        .find(|m| m.name() == "Command")
        .expect("Command message");
    let mut unary = 0;
    for method in &service.method {
        if method.output_type() != ".ics.ledger.v1.CommandReply" {
            continue;
        }
        unary += 1;
        let snake: String = method
            .name()
            .chars()
            .enumerate()
            .flat_map(|(i, c)| {
                let sep = (i > 0 && c.is_ascii_uppercase()).then_some('_');
                sep.into_iter()
                    .chain(std::iter::once(c.to_ascii_lowercase()))
            })
            .collect();
        let field = command
            .field
            .iter()
            .find(|f| f.name() == snake)
            .unwrap_or_else(|| panic!("Command has no field {snake}"));
        assert_eq!(field.type_name(), method.input_type(), "{snake}");
        assert_eq!(
            method.input_type(),
            format!(".ics.ledger.v1.{}Request", method.name())
        );
    }
    assert_eq!(unary, 28);
    assert_eq!(command.field.len(), 28);
}
