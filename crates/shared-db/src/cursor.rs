//! Opaque page cursors: the position key (an id or object key) in base64url.

/// The cursor for a page that ended at `position`.
pub fn encode(position: &str) -> String {
    data_encoding::BASE64URL_NOPAD.encode(position.as_bytes())
}

/// The position a cursor from [`encode`] names; `None` for anything else.
pub fn decode(cursor: &str) -> Option<String> {
    data_encoding::BASE64URL_NOPAD
        .decode(cursor.as_bytes())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trips_and_refuses_foreign_cursors() {
        assert_eq!(
            super::decode(&super::encode("photos/2026/사진.jpg")).as_deref(),
            Some("photos/2026/사진.jpg")
        );
        assert_eq!(super::decode("%%%"), None);
    }
}
