//! How generated messages serialize to JSON (`#[derive(serde::Serialize)]` on every message,
//! set in `build.rs`): byte fields that are digests print as lowercase hex.

/// Bytes as lowercase hex (a fingerprint, a chain hash).
pub fn hex<S: serde::Serializer>(bytes: &[u8], serializer: S) -> Result<S::Ok, S::Error> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut text = String::with_capacity(bytes.len() * 2);
    for byte in bytes {
        text.push(char::from(DIGITS[usize::from(byte >> 4)]));
        text.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
    }
    serializer.serialize_str(&text)
}
