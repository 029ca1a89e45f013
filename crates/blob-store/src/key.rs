//! Object keys: any UTF-8 (normalised to NFC) up to 1,024 bytes, refused (never
//! rewritten) when they could mean something else to a file system or a proxy.

use std::fmt;

use unicode_normalization::UnicodeNormalization;

/// Longest key, in bytes of its NFC form.
pub const MAX_KEY_BYTES: usize = 1024;

/// Which rule a key breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Empty key.
    #[error("the key is empty")]
    Empty,
    /// Over 1,024 bytes.
    #[error("the key is longer than 1024 bytes")]
    TooLong,
    /// Starts with `/`.
    #[error("the key starts with `/`")]
    LeadingSlash,
    /// Holds `//` (an empty segment), or ends with `/`.
    #[error("the key has an empty segment (`//` or a trailing `/`)")]
    EmptySegment,
    /// A `.` or `..` segment.
    #[error("the key has a `.` or `..` segment")]
    DotSegment,
    /// A backslash.
    #[error("the key holds a backslash")]
    Backslash,
    /// NUL or another control character.
    #[error("the key holds a control character")]
    ControlCharacter,
    /// Bytes that are not UTF-8 (`%ff` in a URL): refused, never decoded to U+FFFD,
    /// which would make different keys one.
    #[error("the key is not UTF-8")]
    NotUtf8,
    /// `uploads/up_<32 hex digits>` or a key below it: written only, never read, as the
    /// upload routes answer those URLs.
    #[error(
        "keys `uploads/up_<32 hex digits>` and below are reserved: their URLs are multipart uploads', so such an object could not be read"
    )]
    ReservedUploadPath,
}

impl KeyError {
    /// A stable name for the rule (used in problem codes).
    pub fn rule(&self) -> &'static str {
        match self {
            KeyError::Empty => "empty",
            KeyError::TooLong => "too_long",
            KeyError::LeadingSlash => "leading_slash",
            KeyError::EmptySegment => "empty_segment",
            KeyError::DotSegment => "dot_segment",
            KeyError::Backslash => "backslash",
            KeyError::ControlCharacter => "control_character",
            KeyError::NotUtf8 => "not_utf8",
            KeyError::ReservedUploadPath => "reserved_upload_path",
        }
    }
}

/// A valid object key in NFC. Authorisation and storage both use this form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectKey(String);

impl ObjectKey {
    /// Checks and normalises `raw`.
    pub fn parse(raw: &str) -> Result<Self, KeyError> {
        let key: String = raw.nfc().collect();
        if key.is_empty() {
            return Err(KeyError::Empty);
        }
        if key.len() > MAX_KEY_BYTES {
            return Err(KeyError::TooLong);
        }
        if key.chars().any(char::is_control) {
            return Err(KeyError::ControlCharacter);
        }
        if key.contains('\\') {
            return Err(KeyError::Backslash);
        }
        if key.starts_with('/') {
            return Err(KeyError::LeadingSlash);
        }
        for segment in key.split('/') {
            match segment {
                "" => return Err(KeyError::EmptySegment),
                "." | ".." => return Err(KeyError::DotSegment),
                _ => {}
            }
        }
        Ok(Self(key))
    }

    /// Checks and normalises a key that arrived as bytes (a percent-decoded URL path, a
    /// form field): bytes that are not UTF-8 are refused.
    pub fn parse_bytes(raw: &[u8]) -> Result<Self, KeyError> {
        std::str::from_utf8(raw)
            .map_err(|_| KeyError::NotUtf8)
            .and_then(Self::parse)
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Its `/`-separated segments.
    pub fn segments(&self) -> impl Iterator<Item = &str> {
        self.0.split('/')
    }

    /// The last segment (the file name).
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The key as a URL path: each segment percent-encoded (spaces, non-ASCII, `?`, `#`,
    /// `%`), the `/` between them kept. Headers such as `Location` carry only ASCII.
    pub fn url_path(&self) -> String {
        self.segments()
            .map(|s| {
                url::form_urlencoded::byte_serialize(s.as_bytes())
                    .collect::<String>()
                    .replace('+', "%20")
            })
            .collect::<Vec<_>>()
            .join("/")
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn accepts_ordinary_and_korean_keys_in_nfc() {
        assert_eq!(
            ObjectKey::parse("models/v1/weights.bin").unwrap().as_str(),
            "models/v1/weights.bin"
        );
        // "한" typed as decomposed jamo becomes the one precomposed syllable.
        let decomposed = "\u{1112}\u{1161}\u{11AB}.txt";
        assert_eq!(ObjectKey::parse(decomposed).unwrap().as_str(), "한.txt");
        assert_eq!(
            ObjectKey::parse("보고서/2026 결산 (최종).xlsx").unwrap().file_name(),
            "2026 결산 (최종).xlsx"
        );
        assert!(
            ObjectKey::parse("a..b/.hidden/x.").is_ok(),
            "dots inside names are fine"
        );
    }

    #[test]
    fn refuses_and_names_the_rule() {
        let cases = [
            ("", KeyError::Empty),
            ("/etc/passwd", KeyError::LeadingSlash),
            ("a//b", KeyError::EmptySegment),
            ("a/", KeyError::EmptySegment),
            ("../secret", KeyError::DotSegment),
            ("a/./b", KeyError::DotSegment),
            ("a/..", KeyError::DotSegment),
            ("a\\b", KeyError::Backslash),
            ("a\0b", KeyError::ControlCharacter),
            ("a\nb", KeyError::ControlCharacter),
            ("a\u{7f}", KeyError::ControlCharacter),
        ];
        for (raw, rule) in cases {
            assert_eq!(ObjectKey::parse(raw).unwrap_err(), rule, "{raw:?}");
        }
        assert_eq!(ObjectKey::parse(&"x".repeat(1025)).unwrap_err(), KeyError::TooLong);
        for raw in [&b"\xff\xfe"[..], b"a/\xc3", b"\xed\xa0\x80"] {
            assert_eq!(ObjectKey::parse_bytes(raw).unwrap_err(), KeyError::NotUtf8, "{raw:?}");
        }
        assert_eq!(
            ObjectKey::parse_bytes("a/\u{FFFD}".as_bytes()).unwrap().as_str(),
            "a/\u{FFFD}"
        );
        assert!(ObjectKey::parse(&"x".repeat(1024)).is_ok());
    }

    proptest::proptest! {
        #[test]
        fn accepted_keys_never_escape_or_hide(raw in "\\PC{0,64}|[a-z./\\\\]{0,16}") {
            if let Ok(key) = ObjectKey::parse(&raw) {
                let k = key.as_str();
                proptest::prop_assert!(!k.starts_with('/') && !k.contains('\\') && !k.contains("//"));
                proptest::prop_assert!(k.split('/').all(|s| !s.is_empty() && s != "." && s != ".."));
                proptest::prop_assert!(!k.chars().any(char::is_control) && k.len() <= MAX_KEY_BYTES);
                proptest::prop_assert_eq!(ObjectKey::parse(k).unwrap(), key.clone(), "normalising twice changes nothing");
            }
        }
    }
}
