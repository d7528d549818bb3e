//! Authentication before the body. tonic reads a unary request's whole message — up to
//! `grpc_message_bytes_max` — before the handler runs, so a token checked in the handler is
//! checked after a stranger's 4 MB have been buffered, 64 calls to a connection. The gate
//! checks the bearer token from the request's headers before any of its body is read, and
//! refuses the call `UNAUTHENTICATED` without reading it; a valid token's [`auth::Principal`]
//! is left in the request's extensions for the handler.
//!
//! gRPC health and reflection answer without a token (load balancers and `grpcurl` ask them);
//! their messages are tiny, and each service builds them with a small limit
//! (`grpc_unauthenticated_message_bytes_max`, see [`crate::health`]).

use http::Request;
use tonic::Status;

use crate::{HEALTH_SERVICE, REFLECTION_SERVICE};

/// The bearer-token check of every call but health and reflection's; none when authentication
/// is off.
#[derive(Clone)]
pub(crate) struct Gate {
    verifier: Option<auth::Verifier>,
}

impl Gate {
    pub(crate) fn new(verifier: Option<auth::Verifier>) -> Self {
        Gate { verifier }
    }

    /// Checks `request`'s token from its headers, and leaves its principal in its extensions.
    #[allow(clippy::result_large_err)] // a refusal is the response
    pub(crate) fn check<B>(&self, request: &mut Request<B>) -> Result<(), Status> {
        let Some(verifier) = &self.verifier else {
            return Ok(());
        };
        if answers_anyone(request.uri().path()) {
            return Ok(());
        }
        let header = request
            .headers()
            .get(http::header::AUTHORIZATION)
            .map(|value| value.as_bytes());
        let principal = auth::grpc::principal_from_header(verifier, header, now())?;
        request.extensions_mut().insert(principal);
        Ok(())
    }
}

/// Whether the call at `path` (`/<package>.<Service>/<Method>`) is to health or reflection.
pub(crate) fn answers_anyone(path: &str) -> bool {
    [HEALTH_SERVICE, REFLECTION_SERVICE].iter().any(|service| {
        path.strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(service))
            .is_some_and(|rest| rest.starts_with('/'))
    })
}

/// Seconds since the Unix epoch, as tokens count time.
fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |since| {
            i64::try_from(since.as_secs()).unwrap_or(i64::MAX)
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_health_and_reflection_answer_anyone() {
        assert!(answers_anyone("/grpc.health.v1.Health/Check"));
        assert!(answers_anyone("/grpc.health.v1.Health/Watch"));
        assert!(answers_anyone(
            "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo"
        ));
        for path in [
            "/ics.ledger.v1.LedgerService/AdmitMember",
            "/grpc.health.v1.HealthX/Check",
            "/grpc.health.v1.Health",
            "grpc.health.v1.Health/Check",
            "/x/grpc.health.v1.Health/Check",
            "/",
            "",
        ] {
            assert!(!answers_anyone(path), "{path}");
        }
    }

    #[test]
    fn a_call_without_a_valid_token_is_refused_from_its_headers() {
        let (private, public) = auth::generate_key_pair().expect("keys");
        let system = domain::SystemId::new("kav").expect("id");
        let gate = Gate::new(Some(
            auth::Verifier::from_pem(&public, system.clone()).expect("verifier"),
        ));
        let principal =
            auth::Principal::new("x", system, auth::Role::Auditor, None).expect("principal");
        let token = auth::Issuer::from_pem(&private)
            .expect("issuer")
            .issue(&principal, now() - 10, 600)
            .expect("token");
        let request = |authorization: Option<&str>| {
            let mut builder = Request::builder().uri("/ics.ledger.v1.LedgerService/Head");
            if let Some(value) = authorization {
                builder = builder.header("authorization", value);
            }
            builder.body(()).expect("request")
        };

        let mut missing = request(None);
        let refused = gate.check(&mut missing).expect_err("no token");
        assert_eq!(refused.code(), tonic::Code::Unauthenticated);
        assert!(refused.message().contains("no bearer token"), "{refused:?}");
        let mut wrong = request(Some("Bearer x.y.z"));
        assert_eq!(
            gate.check(&mut wrong).map_err(|s| s.code()),
            Err(tonic::Code::Unauthenticated)
        );

        let mut good = request(Some(&format!("Bearer {token}")));
        gate.check(&mut good).expect("a valid token");
        assert_eq!(good.extensions().get::<auth::Principal>(), Some(&principal));

        let mut health = Request::builder()
            .uri("/grpc.health.v1.Health/Check")
            .body(())
            .expect("request");
        gate.check(&mut health).expect("health answers anyone");
        let mut off = request(None);
        Gate::new(None).check(&mut off).expect("authentication off");
    }
}
