//! The same rules at a gRPC server: the caller's token from the `authorization` metadata, and
//! refusals as statuses (`UNAUTHENTICATED`, `PERMISSION_DENIED`).
//!
//! A server checks the token twice over: from the request's headers before its body is read
//! ([`principal_from_header`], in `serving`'s layer, which leaves the [`Principal`] in the
//! request's extensions), and in each handler ([`authenticate`], which takes the principal the
//! layer left rather than verify the same token again).

use tonic::{Request, Status};

use crate::{Denied, Principal, Read, Verifier, policy::Scope};

/// The principal a request's bearer token names, checked at `now` (seconds since the Unix
/// epoch); `UNAUTHENTICATED` saying why not. One checked before the body was read (see the
/// module's documentation) is taken as it is.
#[allow(clippy::result_large_err)] // tonic::Status is what every handler returns
pub fn authenticate<R>(
    verifier: &Verifier,
    request: &Request<R>,
    now: i64,
) -> Result<Principal, Status> {
    if let Some(principal) = request.extensions().get::<Principal>() {
        return Ok(principal.clone());
    }
    let header = request
        .metadata()
        .get("authorization")
        .map(|v| v.as_bytes());
    principal_from_header(verifier, header, now)
}

/// The principal an `authorization` header's bearer token names (`None`: no header), checked
/// at `now`; `UNAUTHENTICATED` saying why not.
#[allow(clippy::result_large_err)]
pub fn principal_from_header(
    verifier: &Verifier,
    header: Option<&[u8]>,
    now: i64,
) -> Result<Principal, Status> {
    let header = header
        .map(|v| {
            std::str::from_utf8(v)
                .ok()
                .filter(|text| text.chars().all(|c| c == '\t' || (' '..='~').contains(&c)))
                .ok_or_else(|| Status::unauthenticated("the authorization header is not text"))
        })
        .transpose()?;
    crate::bearer(header)
        .and_then(|token| verifier.verify(token, now))
        .map_err(|e| Status::unauthenticated(e.to_string()))
}

/// `PERMISSION_DENIED` saying what was refused.
pub fn denied(denied: &Denied) -> Status {
    Status::permission_denied(denied.to_string())
}

/// With a verifier: authenticates the request and checks its principal may make `read`,
/// returning how much it may see. Without one (authentication off): everything.
#[allow(clippy::result_large_err)]
pub fn may_read<R>(
    verifier: Option<&Verifier>,
    request: &Request<R>,
    read: Read,
    now: i64,
) -> Result<Scope, Status> {
    let Some(verifier) = verifier else {
        return Ok(Scope::Everything);
    };
    let principal = authenticate(verifier, request, now)?;
    crate::may_read(&principal, read).map_err(|d| denied(&d))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Role;

    fn verifier_and_token(role: Role, member: Option<&str>) -> (Verifier, String) {
        let (private, public) = crate::generate_key_pair().expect("keys");
        let system = domain::SystemId::new("kav").expect("valid");
        let principal = Principal::new("x", system.clone(), role, member).expect("valid");
        let token = crate::Issuer::from_pem(&private)
            .expect("issuer")
            .issue(&principal, 1_000, 60)
            .expect("token");
        (
            Verifier::from_pem(&public, system).expect("verifier"),
            token,
        )
    }

    fn request(token: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(token) = token {
            request.metadata_mut().insert(
                "authorization",
                format!("Bearer {token}").parse().expect("ascii"),
            );
        }
        request
    }

    #[test]
    fn statuses_say_who_and_why() {
        let (verifier, token) = verifier_and_token(Role::MemberFinance, Some("KHFT"));
        let missing =
            may_read(Some(&verifier), &request(None), Read::Position, 1_000).expect_err("no token");
        assert_eq!(missing.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            may_read(
                Some(&verifier),
                &request(Some(&token)),
                Read::Position,
                1_010
            )
            .ok(),
            Some(Scope::Member(
                domain::MemberCode::parse("KHFT").expect("valid")
            ))
        );
        let denied = may_read(Some(&verifier), &request(Some(&token)), Read::Log, 1_010)
            .expect_err("a member's team does not read the log");
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        let expired = may_read(
            Some(&verifier),
            &request(Some(&token)),
            Read::Position,
            5_000,
        )
        .expect_err("expired");
        assert_eq!(expired.code(), tonic::Code::Unauthenticated);
        assert_eq!(
            may_read(None, &request(None), Read::Log, 0).ok(),
            Some(Scope::Everything),
            "authentication off"
        );
    }
}
