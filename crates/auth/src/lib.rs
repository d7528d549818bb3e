//! Who may do what.
//!
//! - [`token`]: bearer tokens — JWTs signed with the ICS's Ed25519 key (EdDSA) — issued by
//!   `icsctl token issue` and checked by every service ([`Verifier`]). A bad, expired,
//!   wrongly signed or wrong-system token is `UNAUTHENTICATED`.
//! - [`policy`]: what each [`Role`] may post and read. A valid token asking for what its role
//!   may not do is `PERMISSION_DENIED`. Posting rules need the ledger's state (who the
//!   provider of a contract is, who hosts a pooled budget), so [`policy::may_post`] takes the
//!   domain's [`domain::Ledger`].
//!
//! - [`files`]: the PEM files a service is configured with (TLS identity, token public key),
//!   read the same way by ledgerd, positiond and oversightd.
//!
//! Pure apart from [`files`]: no clock (callers pass the time), no I/O except the randomness
//! of key generation.

#![forbid(unsafe_code)]

pub mod files;
pub mod grpc;
pub mod policy;
pub mod token;

use serde::{Deserialize, Serialize};

pub use policy::{Denied, Read, Scope, may_post, may_read};
pub use token::{Issuer, TokenError, Verifier, bearer, generate_key_pair};

/// What a bearer is allowed to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Role {
    /// A member's finance team, bound to one member: posts what that member is the acting
    /// party to; reads its own position and the system totals.
    MemberFinance,
    /// The ICB's finance team: sets the system up, assesses, closes; reads everything in its
    /// system.
    SystemFinance,
    /// Reads oversight for every system and the position of any; writes nothing.
    Regulator,
    /// Reads the log, proofs, checkpoints and replays; writes nothing.
    Auditor,
    /// Key and member administration.
    Admin,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Role::MemberFinance,
        Role::SystemFinance,
        Role::Regulator,
        Role::Auditor,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::MemberFinance => "member-finance",
            Role::SystemFinance => "system-finance",
            Role::Regulator => "regulator",
            Role::Auditor => "auditor",
            Role::Admin => "admin",
        }
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str() == text)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("'{text}' is not a role: one of {}", names.join(", "))
            })
    }
}

/// An authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    /// Who: recorded as the actor of what it posts.
    pub subject: String,
    pub system: domain::SystemId,
    pub role: Role,
    /// Set exactly when the role is member finance.
    pub member: Option<domain::MemberCode>,
}

impl Principal {
    pub fn new(
        subject: impl Into<String>,
        system: domain::SystemId,
        role: Role,
        member: Option<&str>,
    ) -> Result<Self, String> {
        let member = member
            .map(|m| domain::MemberCode::parse(m).map_err(|e| format!("member: {e}")))
            .transpose()?;
        let principal = Principal {
            subject: subject.into(),
            system,
            role,
            member,
        };
        principal.check()?;
        Ok(principal)
    }

    /// A member-finance principal names its member; no other role does; the subject is a
    /// short printable name (it becomes the actor on events).
    pub fn check(&self) -> Result<(), String> {
        match (self.role, &self.member) {
            (Role::MemberFinance, None) => {
                return Err("a member-finance token must name its member".to_string());
            }
            (role, Some(_)) if role != Role::MemberFinance => {
                return Err(format!("a {role} token names no member"));
            }
            _ => {}
        }
        let printable = self
            .subject
            .chars()
            .all(|c| c.is_ascii_graphic() || c == ' ');
        if self.subject.is_empty() || self.subject.len() > 128 || !printable {
            return Err("the subject must be 1..=128 printable ASCII characters".to_string());
        }
        Ok(())
    }
}
