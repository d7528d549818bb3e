//! [`CommandMeta`]: the part of every request that is about the request rather than the
//! command (idempotency key, expected version, correlation), checked and in Rust types.

use domain::DomainError;
use uuid::Uuid;

use crate::pb;
use crate::values::{invalid, path};

/// The checked `meta` of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommandMeta {
    /// The idempotency key: a client-chosen UUID, never nil.
    pub request_id: [u8; 16],
    /// The stream version the client expects to append after (`Some(0)`: the stream must not
    /// exist yet); `None` appends whatever the version is.
    pub expected_version: Option<u64>,
    /// The wider piece of work this command belongs to, if the client named one.
    pub correlation_id: Option<[u8; 16]>,
}

impl CommandMeta {
    /// Meta with the given request id, no expected version and no correlation id.
    pub fn new(request_id: [u8; 16]) -> Self {
        CommandMeta {
            request_id,
            expected_version: None,
            correlation_id: None,
        }
    }

    /// Meta with a fresh random (v4) request id: what a client does for each new command.
    pub fn random() -> Self {
        CommandMeta::new(*Uuid::new_v4().as_bytes())
    }

    /// The id recorded as the events' correlation id: the client's, or else the request id.
    pub fn correlation_or_request_id(&self) -> [u8; 16] {
        self.correlation_id.unwrap_or(self.request_id)
    }

    /// Reads and checks `meta` (`field` is its path, `meta` in a request).
    pub fn from_proto(meta: Option<pb::CommandMeta>, field: &str) -> Result<Self, DomainError> {
        let meta = meta.ok_or_else(|| invalid(field, "is required (it holds the request_id)"))?;
        let request_id = parse_uuid(&meta.request_id, &path(field, "request_id"))?;
        if request_id == [0; 16] {
            return Err(invalid(
                path(field, "request_id"),
                "must not be the nil UUID; generate a random (v4) UUID per command",
            ));
        }
        let correlation_id = if meta.correlation_id.is_empty() {
            None
        } else {
            Some(parse_uuid(
                &meta.correlation_id,
                &path(field, "correlation_id"),
            )?)
        };
        Ok(CommandMeta {
            request_id,
            expected_version: meta.expected_version,
            correlation_id,
        })
    }

    pub fn to_proto(&self) -> pb::CommandMeta {
        pb::CommandMeta {
            request_id: uuid_text(self.request_id),
            expected_version: self.expected_version,
            correlation_id: self.correlation_id.map(uuid_text).unwrap_or_default(),
        }
    }
}

const UUID_TEXT_BYTES_MAX: usize = 45;

/// Parses UUID text (hyphenated, simple, braced or URN form) into its 16 bytes. Empty text is
/// "is required"; anything else that is not a UUID names the field.
pub fn parse_uuid(text: &str, field: &str) -> Result<[u8; 16], DomainError> {
    if text.is_empty() {
        return Err(invalid(field, "is required (a UUID in text form)"));
    }
    // The longest form is the URN: `urn:uuid:` and 36 characters. Refusing longer text first
    // keeps a client's mistake from being echoed back at any length.
    if text.len() > UUID_TEXT_BYTES_MAX {
        return Err(invalid(
            field,
            format!(
                "is {} bytes, longer than any UUID text ({UUID_TEXT_BYTES_MAX})",
                text.len()
            ),
        ));
    }
    Uuid::parse_str(text)
        .map(|id| *id.as_bytes())
        .map_err(|e| invalid(field, format!("'{text}' is not a UUID: {e}")))
}

/// The canonical text of a UUID: lowercase, hyphenated (`67e55044-10b1-426f-9247-bb680e5fe0c8`).
pub fn uuid_text(id: [u8; 16]) -> String {
    Uuid::from_bytes(id).hyphenated().to_string()
}
