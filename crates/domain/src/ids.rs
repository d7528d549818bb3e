//! Names of things: the system, its members, and the codes of contracts, budgets, funds,
//! schemes, invoices and disputes. Each is a newtype that cannot hold an invalid value once
//! constructed, so the rest of the domain never re-checks them.

use std::fmt;

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// The longest free-text field (a name, a reason, a description), in bytes.
pub const TEXT_BYTES_MAX: usize = 512;

/// Why an identifier or text was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("is {len} bytes, longer than the limit of {max}")]
    TooLong { len: usize, max: usize },
    #[error("'{text}' has a character outside {allowed}")]
    BadCharacter { text: String, allowed: &'static str },
    /// Named by code point, not echoed: the character would act on whatever displays the
    /// refusal.
    #[error(
        "has the invisible format character U+{code_point:04X} at byte {at}: Unicode format \
         characters (category Cf: bidirectional overrides and isolates, zero-width characters, \
         soft hyphens, tags) and line or paragraph separators are not accepted"
    )]
    FormatCharacter { code_point: u32, at: usize },
}

fn check(
    text: &str,
    max: usize,
    allowed: &'static str,
    ok: impl Fn(char) -> bool,
) -> Result<(), IdError> {
    if text.is_empty() {
        return Err(IdError::Empty);
    }
    if text.len() > max {
        return Err(IdError::TooLong {
            len: text.len(),
            max,
        });
    }
    if !text.chars().all(ok) {
        return Err(IdError::BadCharacter {
            text: text.to_string(),
            allowed,
        });
    }
    Ok(())
}

macro_rules! code_type {
    ($(#[$doc:meta])* $name:ident, max = $max:expr, allowed = $allowed:expr, $ok:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "CompactString")]
        pub struct $name(CompactString);

        impl TryFrom<CompactString> for $name {
            type Error = IdError;

            fn try_from(text: CompactString) -> Result<Self, Self::Error> {
                $name::new(text)
            }
        }

        impl $name {
            pub const BYTES_MAX: usize = $max;

            pub fn new(text: impl Into<CompactString>) -> Result<Self, IdError> {
                let text = text.into();
                check(&text, $max, $allowed, $ok)?;
                Ok($name(text))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

code_type!(
    /// The ICS's id, used in NATS subjects (`ics.<system>.…`): lowercase letters, digits and
    /// `-`, at most 32 bytes, so it is always one valid subject token.
    SystemId,
    max = 32,
    allowed = "a-z 0-9 -",
    |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
);

code_type!(
    /// The code of a contract, pooled budget, fund, scheme, invoice, dispute or condition,
    /// unique within its kind (`C1`, `BCF`, `SSF`, `INV-C1-M1`): letters, digits, `-` and `_`,
    /// at most 48 bytes.
    Code,
    max = 48,
    allowed = "A-Z a-z 0-9 - _",
    |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_'
);

/// A member body's ODS code: 2 to 8 uppercase letters and digits (`RXX`, `15N`, `KHFT`).
///
/// Held as its bytes, zero-padded to 8: it is `Copy`, and it orders as its text does (a
/// shorter code before a longer one it begins) while comparing as one integer — it is in the
/// key of most of the position projection's maps, which compare keys on every event folded.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct MemberCode([u8; MemberCode::BYTES_MAX]);

impl MemberCode {
    pub const BYTES_MAX: usize = 8;

    /// Letters and digits, at most [`Self::BYTES_MAX`] bytes.
    pub fn new(text: impl Into<CompactString>) -> Result<Self, IdError> {
        let text = text.into();
        check(&text, Self::BYTES_MAX, "A-Z 0-9", |c: char| {
            c.is_ascii_uppercase() || c.is_ascii_digit()
        })?;
        let mut bytes = [0; Self::BYTES_MAX];
        bytes[..text.len()].copy_from_slice(text.as_bytes());
        Ok(MemberCode(bytes))
    }

    /// ODS codes have at least two characters.
    pub fn parse(text: impl Into<CompactString>) -> Result<Self, IdError> {
        let code = MemberCode::new(text)?;
        if code.as_str().len() < 2 {
            return Err(IdError::BadCharacter {
                text: code.to_string(),
                allowed: "at least two of A-Z 0-9",
            });
        }
        Ok(code)
    }

    pub fn as_str(&self) -> &str {
        let len = self
            .0
            .iter()
            .position(|&b| b == 0)
            .unwrap_or(Self::BYTES_MAX);
        // ASCII by construction, so this never falls back.
        std::str::from_utf8(&self.0[..len]).unwrap_or_default()
    }

    /// The code's bytes as one big-endian integer: zero padding sorts before every character
    /// a code may hold, so integer order is text order.
    fn key(self) -> u64 {
        u64::from_be_bytes(self.0)
    }
}

impl Ord for MemberCode {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.key().cmp(&other.key())
    }
}

impl PartialOrd for MemberCode {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl fmt::Debug for MemberCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("MemberCode").field(&self.as_str()).finish()
    }
}

impl fmt::Display for MemberCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Encoded as its text, exactly as when it was a `String`.
impl Serialize for MemberCode {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for MemberCode {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = CompactString::deserialize(deserializer)?;
        MemberCode::new(text).map_err(serde::de::Error::custom)
    }
}

/// Free text with a length limit and no control characters.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "CompactString")]
pub struct Text(CompactString);

impl TryFrom<CompactString> for Text {
    type Error = IdError;

    fn try_from(text: CompactString) -> Result<Self, Self::Error> {
        Text::new(text)
    }
}

impl Text {
    /// Non-empty text, at most [`TEXT_BYTES_MAX`] bytes, no control characters: what the log
    /// may hold. Events recorded before [`Text::from_input`] refused format characters still
    /// decode with it.
    pub fn new(text: impl Into<CompactString>) -> Result<Self, IdError> {
        let text = text.into();
        if text.trim().is_empty() {
            return Err(IdError::Empty);
        }
        check(&text, TEXT_BYTES_MAX, "printable characters", |c: char| {
            !c.is_control()
        })?;
        Ok(Text(text))
    }

    /// Text as a command brings it: [`Text::new`]'s rules, and no character that changes how
    /// the rest displays without showing itself ([`is_hidden_format`]) — a name written
    /// `KHFT\u{202E}...` would read backwards in every report for ever.
    pub fn from_input(text: impl Into<CompactString>) -> Result<Self, IdError> {
        let text = Text::new(text)?;
        match text.0.char_indices().find(|(_, c)| is_hidden_format(*c)) {
            Some((at, c)) => Err(IdError::FormatCharacter {
                code_point: u32::from(c),
                at,
            }),
            None => Ok(text),
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Whether `c` is a Unicode format character (general category Cf, Unicode 16: the
/// bidirectional marks, embeddings, overrides and isolates, zero-width space and joiners, word
/// joiner, invisible operators, soft hyphen, byte order mark, interlinear annotation and tag
/// characters, and the script-specific format controls) or a line or paragraph separator
/// (U+2028, U+2029). The standard library has no table of general categories; this one is
/// checked against Python's `unicodedata` in the tests below.
pub fn is_hidden_format(c: char) -> bool {
    matches!(
        u32::from(c),
        0x00AD
            | 0x0600..=0x0605
            | 0x061C
            | 0x06DD
            | 0x070F
            | 0x0890..=0x0891
            | 0x08E2
            | 0x180E
            | 0x200B..=0x200F
            | 0x2028..=0x202E
            | 0x2060..=0x2064
            | 0x2066..=0x206F
            | 0xFEFF
            | 0xFFF9..=0xFFFB
            | 0x110BD
            | 0x110CD
            | 0x13430..=0x1343F
            | 0x1BCA0..=0x1BCA3
            | 0x1D173..=0x1D17A
            | 0xE0001
            | 0xE0020..=0xE007F
    )
}

impl fmt::Display for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// What kind of body a member is. Only NHS bodies can count toward the control total.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum MemberKind {
    Commissioner,
    AcuteTrust,
    CommunityTrust,
    MentalHealthTrust,
    PrimaryCareNetwork,
    LocalAuthority,
}

impl MemberKind {
    pub const ALL: [MemberKind; 6] = [
        MemberKind::Commissioner,
        MemberKind::AcuteTrust,
        MemberKind::CommunityTrust,
        MemberKind::MentalHealthTrust,
        MemberKind::PrimaryCareNetwork,
        MemberKind::LocalAuthority,
    ];

    /// NHS statutory bodies: the commissioner and the trusts.
    pub const fn is_nhs_body(self) -> bool {
        !matches!(
            self,
            MemberKind::PrimaryCareNetwork | MemberKind::LocalAuthority
        )
    }

    /// Bodies that provide care under contract.
    pub const fn is_provider(self) -> bool {
        matches!(
            self,
            MemberKind::AcuteTrust
                | MemberKind::CommunityTrust
                | MemberKind::MentalHealthTrust
                | MemberKind::PrimaryCareNetwork
        )
    }

    /// The kebab-case name used on the command line and in scenario files.
    pub const fn name(self) -> &'static str {
        match self {
            MemberKind::Commissioner => "commissioner",
            MemberKind::AcuteTrust => "acute-trust",
            MemberKind::CommunityTrust => "community-trust",
            MemberKind::MentalHealthTrust => "mental-health-trust",
            MemberKind::PrimaryCareNetwork => "primary-care-network",
            MemberKind::LocalAuthority => "local-authority",
        }
    }

    pub fn from_name(name: &str) -> Option<MemberKind> {
        MemberKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

impl fmt::Display for MemberKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_refuse_what_they_cannot_hold() {
        assert!(MemberCode::parse("KHFT").is_ok());
        assert!(MemberCode::parse("15N").is_ok());
        assert_eq!(MemberCode::parse(""), Err(IdError::Empty));
        assert!(MemberCode::parse("K").is_err());
        assert!(MemberCode::parse("khft").is_err());
        assert!(matches!(
            MemberCode::parse("ABCDEFGHI"),
            Err(IdError::TooLong { len: 9, max: 8 })
        ));
        assert!(SystemId::new("kav").is_ok());
        assert!(SystemId::new("k.v").is_err());
        assert!(SystemId::new("k>").is_err());
        assert!(Code::new("INV-C1-M1").is_ok());
        assert!(Code::new("C 1").is_err());
        assert!(Text::new("  ").is_err());
        assert!(Text::new("a\u{0}b").is_err());
        assert!(Text::new("x".repeat(TEXT_BYTES_MAX + 1)).is_err());
    }

    #[test]
    fn input_text_refuses_format_and_bidi_characters_and_says_which() {
        for (text, code_point, at) in [
            ("KHFT\u{202E}gnp.exe", 0x202E, 4),
            ("Kings\u{200B}mere", 0x200B, 5),
            ("\u{2066}Alder\u{2069}", 0x2066, 0),
            ("soft\u{AD}hyphen", 0xAD, 4),
            ("tag\u{E0041}", 0xE0041, 3),
            ("line\u{2028}two", 0x2028, 4),
            ("bom\u{FEFF}", 0xFEFF, 3),
        ] {
            assert_eq!(
                Text::from_input(text),
                Err(IdError::FormatCharacter { code_point, at }),
                "{text:?}"
            );
            let message = Text::from_input(text).expect_err("refused").to_string();
            assert!(
                message.contains(&format!("U+{code_point:04X}")) && !message.contains(text),
                "named, not echoed: {message}"
            );
            // The log keeps what it recorded before the rule.
            assert!(Text::new(text).is_ok(), "{text:?}");
        }
        for text in [
            "Kingsmere & Alder Valley ICS",
            "Ysbyty Gwynedd – Bangor",
            "Zürich ✓ 😀",
        ] {
            assert_eq!(Text::from_input(text).map(|t| t.0), Ok(text.into()));
        }
        assert_eq!(Text::from_input(" "), Err(IdError::Empty));
    }

    /// The table against Python's `unicodedata` (of the python3 on the machine): every
    /// character it files under Cf is refused, and nothing else is but the two separators and
    /// format characters of a later Unicode than it knows.
    #[test]
    fn the_format_table_matches_unicodedata() {
        let script = "import sys, unicodedata\n\
                      print(unicodedata.unidata_version)\n\
                      for c in range(sys.maxunicode + 1):\n    \
                      k = unicodedata.category(chr(c))\n    \
                      if k in ('Cf', 'Cn'): print(c, k)";
        let output = std::process::Command::new("python3")
            .args(["-c", script])
            .output()
            .expect("python3 runs (CI's machine has it beside the Rust toolchain)");
        assert!(output.status.success(), "{output:?}");
        let text = String::from_utf8(output.stdout).expect("utf-8");
        let mut lines = text.lines();
        let version = lines.next().expect("a version").to_string();
        let mut format = std::collections::BTreeSet::new();
        let mut unassigned = std::collections::BTreeSet::new();
        for line in lines {
            let (number, category) = line.split_once(' ').expect("code point and category");
            let code_point: u32 = number.parse().expect("a number");
            match category {
                "Cf" => format.insert(code_point),
                _ => unassigned.insert(code_point),
            };
        }
        assert!(
            format.len() >= 160,
            "Unicode {version}: {} Cf",
            format.len()
        );
        for code_point in &format {
            let c = char::from_u32(*code_point).expect("a scalar value");
            assert!(
                is_hidden_format(c),
                "U+{code_point:04X} is Cf in Unicode {version}"
            );
        }
        let extra: Vec<String> = (0..=0x10FFFF_u32)
            .filter_map(char::from_u32)
            .map(u32::from)
            .filter(|c| {
                is_hidden_format(char::from_u32(*c).expect("scalar"))
                    && !format.contains(c)
                    && !unassigned.contains(c)
            })
            .map(|c| format!("U+{c:04X}"))
            .collect();
        assert_eq!(extra, ["U+2028", "U+2029"], "Unicode {version}");
    }

    #[test]
    fn member_codes_order_as_their_text() {
        let texts = [
            "15N", "A1", "AB", "ABC", "ABCDEFGH", "B", "KHFT", "Z9", "ZZZZZZZZ",
        ];
        for a in texts {
            for b in texts {
                let (code_a, code_b) = (MemberCode::new(a).unwrap(), MemberCode::new(b).unwrap());
                assert_eq!(code_a.cmp(&code_b), a.cmp(b), "{a} against {b}");
                assert_eq!(code_a == code_b, a == b);
            }
            assert_eq!(MemberCode::new(a).unwrap().as_str(), a);
            assert_eq!(
                format!("{:?}", MemberCode::new(a).unwrap()),
                format!("MemberCode({a:?})")
            );
        }
    }

    #[test]
    fn member_codes_encode_as_their_text() {
        let code = MemberCode::new("KHFT").unwrap();
        let config = bincode::config::standard();
        let bytes = bincode::serde::encode_to_vec(code, config).unwrap();
        assert_eq!(
            bytes,
            bincode::serde::encode_to_vec("KHFT", config).unwrap()
        );
        let (back, _): (MemberCode, usize) =
            bincode::serde::decode_from_slice(&bytes, config).unwrap();
        assert_eq!(back, code);
        let bad = bincode::serde::encode_to_vec("khft", config).unwrap();
        assert!(bincode::serde::decode_from_slice::<MemberCode, _>(&bad, config).is_err());
    }

    #[test]
    fn member_kinds_round_trip_their_names() {
        for kind in MemberKind::ALL {
            assert_eq!(MemberKind::from_name(kind.name()), Some(kind));
        }
        assert!(MemberKind::Commissioner.is_nhs_body());
        assert!(!MemberKind::LocalAuthority.is_nhs_body());
        assert!(!MemberKind::Commissioner.is_provider());
    }
}
