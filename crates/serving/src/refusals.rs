//! tonic's own refusals of a request's body, given the codes `ledger.proto` documents:
//!
//! - a message over the size limit (tonic: `OUT_OF_RANGE`) is `RESOURCE_EXHAUSTED` with the
//!   limit and its key (`grpc_message_bytes_max`) in the message;
//! - a message that does not decode as its protobuf type (tonic-prost: `INTERNAL`, "failed to
//!   decode Protobuf message") is the client's fault, `INVALID_ARGUMENT`, with a
//!   `google.rpc.BadRequest` naming the field prost could not decode by its path in the
//!   request (empty when the bytes are not protobuf at all).
//!
//! Both happen before any handler runs. Unary and server-streamed calls get them as a
//! trailers-only response, which the layer rewrites on the way out ([`rename_response`]); a
//! client-streamed call (ledgerd's `SubmitBulk`) gets them from its request stream, where the
//! handler applies [`renamed`] or, to name the message's place in the stream,
//! [`DecodeRefusal`].

use http::Response;
use tonic::body::Body;
use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// How tonic 0.14 starts the message of a request over `max_decoding_message_size`.
const DECODED_TOO_LARGE: &str = "Error, decoded message length too large: ";

/// How prost 0.14 starts a `DecodeError`, which tonic-prost sends as the message.
const NOT_PROTOBUF: &str = "failed to decode Protobuf message: ";

/// The config key that sets the message size limit of calls with a token, named in the refusal.
const LIMIT_KEY: &str = "grpc_message_bytes_max";

/// …and of health and reflection, which answer without one.
pub(crate) const UNAUTHENTICATED_LIMIT_KEY: &str = "grpc_unauthenticated_message_bytes_max";

/// `status` renamed if it is one of tonic's refusals of a request's body (see the module's
/// documentation); otherwise unchanged.
pub fn renamed(status: Status) -> Status {
    renamed_with(status, LIMIT_KEY)
}

/// [`renamed`], naming `limit_key` as the key of the message size limit.
fn renamed_with(status: Status, limit_key: &str) -> Status {
    if let Some(refusal) = DecodeRefusal::of(&status) {
        return refusal.status(&refusal.path.join("."));
    }
    match status.message().strip_prefix(DECODED_TOO_LARGE) {
        Some(detail) if status.code() == Code::OutOfRange => Status::resource_exhausted(format!(
            "request over the message size limit ({limit_key}): {detail}"
        )),
        _ => status,
    }
}

/// A request message that did not decode as its protobuf type.
#[derive(Debug, PartialEq, Eq)]
pub struct DecodeRefusal {
    /// The field prost was decoding, outermost first (`["meta", "request_id"]`); empty when
    /// it failed outside any field.
    pub path: Vec<String>,
    /// What prost says was wrong.
    pub reason: String,
}

impl DecodeRefusal {
    /// `status` as a decode failure, if it is tonic-prost's.
    pub fn of(status: &Status) -> Option<DecodeRefusal> {
        if status.code() != Code::Internal {
            return None;
        }
        let mut rest = status.message().strip_prefix(NOT_PROTOBUF)?;
        // prost writes the fields innermost first: `Inner.field: Outer.field: reason`.
        let mut path = Vec::new();
        while let Some((entry, after)) = rest.split_once(": ") {
            let Some((message, field)) = entry.split_once('.') else {
                break;
            };
            let identifier = |text: &str, first: fn(char) -> bool| {
                text.chars().next().is_some_and(first)
                    && text.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            };
            if !identifier(message, |c| c.is_ascii_uppercase())
                || !identifier(field, |c| c.is_ascii_lowercase() || c == '_')
            {
                break;
            }
            path.push(field.to_string());
            rest = after;
        }
        path.reverse();
        Some(DecodeRefusal {
            path,
            reason: rest.to_string(),
        })
    }

    /// `INVALID_ARGUMENT` naming `field` (the caller's path for [`DecodeRefusal::path`]).
    pub fn status(&self, field: &str) -> Status {
        let description = format!("does not decode as protobuf: {}", self.reason);
        let message = match field {
            "" => format!("the request {description}"),
            field => format!("{field}: {description}"),
        };
        Status::with_error_details(
            Code::InvalidArgument,
            message,
            ErrorDetails::with_bad_request_violation(field, description),
        )
    }
}

/// `response` with [`renamed`] applied to its status if it is a trailers-only refusal, the
/// message size limit named by `limit_key`.
pub(crate) fn rename_response(mut response: Response<Body>, limit_key: &str) -> Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if !matches!(status.code(), Code::OutOfRange | Code::Internal) {
        return response;
    }
    let code = status.code();
    let status = renamed_with(status, limit_key);
    if status.code() == code {
        return response;
    }
    let headers = response.headers_mut();
    headers.remove("grpc-status-details-bin");
    if let Err(error) = status.add_header(headers) {
        tracing::warn!(%error, "could not rewrite a refused request's status");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_too_large_refusal_is_renamed_resource_exhausted() {
        let too_large = Status::out_of_range(format!(
            "{DECODED_TOO_LARGE}found 5000000 bytes, the limit is: 4194304 bytes"
        ));
        let renamed_status = renamed(too_large);
        assert_eq!(renamed_status.code(), Code::ResourceExhausted);
        assert!(renamed_status.message().contains("4194304"));
        assert!(renamed_status.message().contains(LIMIT_KEY));

        let other = renamed(Status::out_of_range("month 13"));
        assert_eq!(other.code(), Code::OutOfRange);
        let internal = renamed(Status::internal(format!("{DECODED_TOO_LARGE}x")));
        assert_eq!(internal.code(), Code::Internal);
    }

    /// The messages as prost 0.14 writes them, taken from its `DecodeError`.
    #[test]
    fn a_decode_failure_is_invalid_argument_naming_the_field() {
        let decode = |bytes: &[u8]| {
            let error = <tonic_types::pb::BadRequest as prost::Message>::decode(bytes)
                .expect_err("not a BadRequest");
            Status::internal(error.to_string())
        };
        // field_violations[0].field (tag 1 inside tag 1) as invalid UTF-8.
        let nested = decode(&[0x0a, 0x04, 0x0a, 0x02, 0xff, 0xfe]);
        let refusal = DecodeRefusal::of(&nested).expect("a decode failure");
        assert_eq!(refusal.path, ["field_violations", "field"]);
        let status = renamed(nested);
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(
            status
                .message()
                .starts_with("field_violations.field: does not decode"),
            "{status:?}"
        );
        let violations = status
            .get_error_details()
            .bad_request()
            .map(|b| b.field_violations.clone())
            .expect("a BadRequest");
        assert_eq!(violations.len(), 1);
        assert_eq!(violations[0].field, "field_violations.field");

        let garbage = decode(&[0xff; 16]);
        let refusal = DecodeRefusal::of(&garbage).expect("a decode failure");
        assert!(refusal.path.is_empty(), "{refusal:?}");
        let status = refusal.status("commands[3]");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with("commands[3]: does not decode"));
        assert_eq!(
            status
                .get_error_details()
                .bad_request()
                .expect("BadRequest")
                .field_violations[0]
                .field,
            "commands[3]"
        );

        assert!(DecodeRefusal::of(&Status::internal("the store failed")).is_none());
        assert!(DecodeRefusal::of(&Status::unknown(format!("{NOT_PROTOBUF}x"))).is_none());
    }

    #[test]
    fn a_trailers_only_response_is_rewritten() {
        let response: Response<Body> = Status::out_of_range(format!(
            "{DECODED_TOO_LARGE}found 9 bytes, the limit is: 8 bytes"
        ))
        .into_http();
        let rewritten = rename_response(response, UNAUTHENTICATED_LIMIT_KEY);
        let status = Status::from_header_map(rewritten.headers()).expect("a status");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("the limit is: 8 bytes"));
        assert!(status.message().contains(UNAUTHENTICATED_LIMIT_KEY));

        let response: Response<Body> =
            Status::internal(format!("{NOT_PROTOBUF}invalid varint")).into_http();
        let rewritten = rename_response(response, LIMIT_KEY);
        let status = Status::from_header_map(rewritten.headers()).expect("a status");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.get_error_details().bad_request().is_some());
    }
}
