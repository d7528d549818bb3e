//! A request over the message-size limit is `RESOURCE_EXHAUSTED` with the limit in the
//! message, as `ledger.proto` documents. tonic refuses such a message while decoding, before
//! any handler runs, and calls it `OUT_OF_RANGE`; this module renames that one refusal.
//!
//! Unary calls get it as a trailers-only response, which [`crate::LimitsLayer`] rewrites on the
//! way out; a client-streamed call (ledgerd's `SubmitBulk`) gets it from the request stream,
//! where its handler applies [`renamed`].

use http::Response;
use tonic::body::Body;
use tonic::{Code, Status};

/// How tonic 0.14 starts the message of a request over `max_decoding_message_size`.
const DECODED_TOO_LARGE: &str = "Error, decoded message length too large: ";

/// The config key that sets the limit, named in the refusal.
const LIMIT_KEY: &str = "grpc_message_bytes_max";

/// `status` as `RESOURCE_EXHAUSTED` if it is tonic's message-too-large refusal; otherwise
/// unchanged.
pub fn renamed(status: Status) -> Status {
    match status.message().strip_prefix(DECODED_TOO_LARGE) {
        Some(detail) if status.code() == Code::OutOfRange => Status::resource_exhausted(format!(
            "request over the message size limit ({LIMIT_KEY}): {detail}"
        )),
        _ => status,
    }
}

/// `response` with [`renamed`] applied to its status if it is a trailers-only refusal.
pub(crate) fn rename_response(mut response: Response<Body>) -> Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    if status.code() != Code::OutOfRange {
        return response;
    }
    let status = renamed(status);
    if status.code() == Code::ResourceExhausted
        && let Err(error) = status.add_header(response.headers_mut())
    {
        tracing::warn!(%error, "could not rewrite an oversized request's status");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_too_large_refusal_is_renamed() {
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

    #[test]
    fn a_trailers_only_response_is_rewritten() {
        let response: Response<Body> = Status::out_of_range(format!(
            "{DECODED_TOO_LARGE}found 9 bytes, the limit is: 8 bytes"
        ))
        .into_http();
        let rewritten = rename_response(response);
        let status = Status::from_header_map(rewritten.headers()).expect("a status");
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert!(status.message().contains("the limit is: 8 bytes"));
    }
}
