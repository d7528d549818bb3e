//! Bearer tokens: a JWT signed with the ICS's Ed25519 key (`alg: EdDSA`), naming who the
//! bearer is, the role, the system and — for member finance — the member.
//!
//! The clock is the caller's: [`Verifier::verify`] takes the current time, so tests (and
//! replays) decide what "now" is, and the crate reads no clock.

use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, EncodePublicKey};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};

use crate::{Principal, Role};

/// Every token names this issuer.
pub const ISSUER: &str = "ics-ledger";

/// How long a token may live at most (a year): `--expires` beyond that is refused.
pub const MAX_LIFETIME_S: i64 = 366 * 24 * 3600;

/// The token's body.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Who the bearer is: recorded as the actor on every event it posts.
    pub sub: String,
    /// The ICS the token is for.
    pub sys: String,
    pub role: Role,
    /// The member a member-finance token acts for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// Issued at and expiry, seconds since the Unix epoch.
    pub iat: i64,
    pub exp: i64,
}

/// Why a token was not accepted: each is `UNAUTHENTICATED`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("no bearer token: send `authorization: Bearer <token>`")]
    Missing,
    #[error("the token is not a well-formed EdDSA JWT: {0}")]
    Malformed(String),
    #[error("the token's signature does not verify with this ICS's key")]
    BadSignature,
    #[error("the token expired at {exp} (now {now})")]
    Expired { exp: i64, now: i64 },
    #[error("the token is not valid before {iat} (now {now})")]
    NotYetValid { iat: i64, now: i64 },
    #[error("the token is for system '{token}', this is '{expected}'")]
    WrongSystem { token: String, expected: String },
    #[error("the token was issued by '{0}', not {ISSUER}")]
    WrongIssuer(String),
    #[error("{0}")]
    Invalid(String),
}

/// Why a key or token could not be made.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("not an Ed25519 private key in PKCS#8 PEM: {0}")]
    Private(String),
    #[error("not an Ed25519 public key in SPKI PEM: {0}")]
    Public(String),
    #[error("cannot sign the token: {0}")]
    Sign(String),
    #[error("{0}")]
    Invalid(String),
}

/// A new Ed25519 key pair as PEM: (PKCS#8 private key, SPKI public key).
pub fn generate_key_pair() -> Result<(String, String), KeyError> {
    let key = ed25519_dalek::SigningKey::generate(&mut rand_core::OsRng);
    let private = key
        .to_pkcs8_pem(Default::default())
        .map_err(|e| KeyError::Private(e.to_string()))?;
    let public = key
        .verifying_key()
        .to_public_key_pem(Default::default())
        .map_err(|e| KeyError::Public(e.to_string()))?;
    Ok((private.to_string(), public))
}

/// Signs tokens with the ICS's private key.
pub struct Issuer {
    key: EncodingKey,
}

impl Issuer {
    pub fn from_pem(private_pem: &str) -> Result<Self, KeyError> {
        // Check it is Ed25519 before handing it on: jsonwebtoken only fails at signing time.
        ed25519_dalek::SigningKey::from_pkcs8_pem(private_pem)
            .map_err(|e| KeyError::Private(e.to_string()))?;
        let key = EncodingKey::from_ed_pem(private_pem.as_bytes())
            .map_err(|e| KeyError::Private(e.to_string()))?;
        Ok(Issuer { key })
    }

    /// A token for `principal`, valid from `now` for `lifetime_s` seconds.
    pub fn issue(
        &self,
        principal: &Principal,
        now: i64,
        lifetime_s: i64,
    ) -> Result<String, KeyError> {
        if !(1..=MAX_LIFETIME_S).contains(&lifetime_s) {
            return Err(KeyError::Invalid(format!(
                "a token lives between 1 second and {MAX_LIFETIME_S} seconds, not {lifetime_s}"
            )));
        }
        principal.check().map_err(KeyError::Invalid)?;
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: principal.subject.clone(),
            sys: principal.system.as_str().to_string(),
            role: principal.role,
            member: principal.member.as_ref().map(|m| m.as_str().to_string()),
            iat: now,
            exp: now
                .checked_add(lifetime_s)
                .ok_or_else(|| KeyError::Invalid("expiry out of range".to_string()))?,
        };
        jsonwebtoken::encode(&Header::new(Algorithm::EdDSA), &claims, &self.key)
            .map_err(|e| KeyError::Sign(e.to_string()))
    }
}

/// Checks tokens against the ICS's public key.
#[derive(Clone)]
pub struct Verifier {
    key: DecodingKey,
    system: domain::SystemId,
}

impl std::fmt::Debug for Verifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verifier")
            .field("system", &self.system)
            .finish_non_exhaustive()
    }
}

/// A little leeway for clocks that disagree, in seconds.
const LEEWAY_S: i64 = 30;

impl Verifier {
    /// Verifies tokens for `system` signed by the key whose public half is `public_pem`.
    pub fn from_pem(public_pem: &str, system: domain::SystemId) -> Result<Self, KeyError> {
        use ed25519_dalek::pkcs8::DecodePublicKey;
        ed25519_dalek::VerifyingKey::from_public_key_pem(public_pem)
            .map_err(|e| KeyError::Public(e.to_string()))?;
        let key = DecodingKey::from_ed_pem(public_pem.as_bytes())
            .map_err(|e| KeyError::Public(e.to_string()))?;
        Ok(Verifier { key, system })
    }

    pub fn system(&self) -> &domain::SystemId {
        &self.system
    }

    /// The principal a token names, if its signature, issuer, system and lifetime check out
    /// at `now` (seconds since the Unix epoch).
    pub fn verify(&self, token: &str, now: i64) -> Result<Principal, TokenError> {
        use jsonwebtoken::errors::ErrorKind;
        let mut validation = Validation::new(Algorithm::EdDSA);
        // Time is checked below against the caller's clock, not the library's.
        validation.validate_exp = false;
        validation.validate_nbf = false;
        validation.required_spec_claims.clear();
        let data = jsonwebtoken::decode::<Claims>(token, &self.key, &validation).map_err(|e| {
            match e.kind() {
                ErrorKind::InvalidSignature => TokenError::BadSignature,
                _ => TokenError::Malformed(e.to_string()),
            }
        })?;
        let claims = data.claims;
        if claims.iss != ISSUER {
            return Err(TokenError::WrongIssuer(claims.iss));
        }
        if claims.sys != self.system.as_str() {
            return Err(TokenError::WrongSystem {
                token: claims.sys,
                expected: self.system.as_str().to_string(),
            });
        }
        if now >= claims.exp.saturating_add(LEEWAY_S) {
            return Err(TokenError::Expired {
                exp: claims.exp,
                now,
            });
        }
        if now.saturating_add(LEEWAY_S) < claims.iat {
            return Err(TokenError::NotYetValid {
                iat: claims.iat,
                now,
            });
        }
        let principal = Principal::new(
            claims.sub,
            self.system.clone(),
            claims.role,
            claims.member.as_deref(),
        )
        .map_err(TokenError::Invalid)?;
        Ok(principal)
    }
}

/// The token in an `authorization` header value: `Bearer <token>`.
pub fn bearer(header: Option<&str>) -> Result<&str, TokenError> {
    let value = header.ok_or(TokenError::Missing)?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| TokenError::Malformed("expected `Bearer <token>`".to_string()))?;
    if !scheme.eq_ignore_ascii_case("bearer") || token.trim().is_empty() {
        return Err(TokenError::Malformed(
            "expected `Bearer <token>`".to_string(),
        ));
    }
    Ok(token.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_700_000_000;

    fn system(s: &str) -> domain::SystemId {
        domain::SystemId::new(s).expect("valid")
    }

    fn keys() -> (Issuer, String) {
        let (private, public) = generate_key_pair().expect("keys");
        (Issuer::from_pem(&private).expect("issuer"), public)
    }

    fn finance(member: &str) -> Principal {
        Principal::new(
            "khft-finance",
            system("kav"),
            Role::MemberFinance,
            Some(member),
        )
        .expect("valid")
    }

    #[test]
    fn a_token_round_trips_to_its_principal() {
        let (issuer, public) = keys();
        let token = issuer.issue(&finance("KHFT"), NOW, 3600).expect("token");
        let verifier = Verifier::from_pem(&public, system("kav")).expect("verifier");
        assert_eq!(verifier.verify(&token, NOW + 10), Ok(finance("KHFT")));
    }

    #[test]
    fn expired_wrong_key_wrong_system_and_garbage_are_refused() {
        let (issuer, public) = keys();
        let token = issuer.issue(&finance("KHFT"), NOW, 3600).expect("token");
        let verifier = Verifier::from_pem(&public, system("kav")).expect("verifier");
        assert!(matches!(
            verifier.verify(&token, NOW + 3600 + LEEWAY_S),
            Err(TokenError::Expired { .. })
        ));
        assert!(matches!(
            verifier.verify(&token, NOW - 3600),
            Err(TokenError::NotYetValid { .. })
        ));

        let (_, other_public) = keys();
        let other = Verifier::from_pem(&other_public, system("kav")).expect("verifier");
        assert_eq!(other.verify(&token, NOW), Err(TokenError::BadSignature));

        let elsewhere = Verifier::from_pem(&public, system("nwl")).expect("verifier");
        assert!(matches!(
            elsewhere.verify(&token, NOW),
            Err(TokenError::WrongSystem { .. })
        ));

        assert!(matches!(
            verifier.verify("not.a.token", NOW),
            Err(TokenError::Malformed(_))
        ));
        // KHFT's token with the body of a system-finance token: the signature no longer fits.
        let other_token = issuer
            .issue(
                &Principal::new("x", system("kav"), Role::SystemFinance, None).expect("valid"),
                NOW,
                3600,
            )
            .expect("token");
        let mut parts: Vec<&str> = token.split('.').collect();
        parts[1] = other_token.split('.').nth(1).expect("a body");
        let forged = parts.join(".");
        assert_eq!(verifier.verify(&forged, NOW), Err(TokenError::BadSignature));
    }

    #[test]
    fn an_hmac_token_is_not_accepted_in_place_of_eddsa() {
        let (_, public) = keys();
        let verifier = Verifier::from_pem(&public, system("kav")).expect("verifier");
        let claims = Claims {
            iss: ISSUER.to_string(),
            sub: "mallory".to_string(),
            sys: "kav".to_string(),
            role: Role::SystemFinance,
            member: None,
            iat: NOW,
            exp: NOW + 60,
        };
        // The classic algorithm confusion: sign with HS256 using the public key as the secret.
        let token = jsonwebtoken::encode(
            &Header::new(Algorithm::HS256),
            &claims,
            &EncodingKey::from_secret(public.as_bytes()),
        )
        .expect("token");
        assert!(verifier.verify(&token, NOW).is_err());
    }

    #[test]
    fn lifetimes_and_principals_are_checked_when_issuing() {
        let (issuer, _) = keys();
        assert!(issuer.issue(&finance("KHFT"), NOW, 0).is_err());
        assert!(
            issuer
                .issue(&finance("KHFT"), NOW, MAX_LIFETIME_S + 1)
                .is_err()
        );
        let unbound = Principal {
            subject: "x".to_string(),
            system: system("kav"),
            role: Role::MemberFinance,
            member: None,
        };
        assert!(issuer.issue(&unbound, NOW, 60).is_err());
    }

    #[test]
    fn the_bearer_header_is_parsed_strictly() {
        assert_eq!(bearer(Some("Bearer abc")), Ok("abc"));
        assert_eq!(bearer(Some("bearer abc")), Ok("abc"));
        assert_eq!(bearer(None), Err(TokenError::Missing));
        assert!(bearer(Some("Basic abc")).is_err());
        assert!(bearer(Some("Bearer ")).is_err());
        assert!(bearer(Some("abc")).is_err());
    }

    #[test]
    fn keys_that_are_not_ed25519_pem_are_refused() {
        assert!(
            Issuer::from_pem("-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n")
                .is_err()
        );
        assert!(Verifier::from_pem("hello", system("kav")).is_err());
        let (private, _) = generate_key_pair().expect("keys");
        // A private key where a public one belongs.
        assert!(Verifier::from_pem(&private, system("kav")).is_err());
    }
}
