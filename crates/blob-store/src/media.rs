//! Media types of stored objects: the type an upload is stored with, and the type a
//! download is served with.
//!
//! Clients often send no type or a generic one (`curl --data-binary` sends the form
//! default `application/x-www-form-urlencoded`, `curl -T` and browsers
//! `application/octet-stream`); such a type is replaced by the one the key's extension
//! names (`report.txt` is `text/plain`), and kept as `application/octet-stream` when the
//! extension names none. A namespace's `allowed_types` is checked against that final
//! type, so an extension cannot carry a type past it. Text is served as UTF-8 unless it
//! was stored with a charset of its own.

use crate::ObjectKey;

/// The type of content whose type is not known.
pub const OCTET_STREAM: &str = "application/octet-stream";

/// Types that say nothing of the content: missing, the byte-stream defaults and the form
/// default that `curl --data-binary` sends.
const GENERIC: &[&str] = &[OCTET_STREAM, "binary/octet-stream", "application/x-www-form-urlencoded"];

/// A type's essence: lower-case `type/subtype`, parameters dropped.
fn essence(content_type: &str) -> String {
    content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase()
}

/// True when `declared` says nothing of the content: absent, empty or one of the
/// generic defaults (parameters ignored).
pub fn is_generic(declared: Option<&str>) -> bool {
    match declared {
        None => true,
        Some(t) => {
            let e = essence(t);
            e.is_empty() || GENERIC.contains(&e.as_str())
        }
    }
}

/// The type `key`'s extension names, or `application/octet-stream`.
pub fn guess(key: &ObjectKey) -> String {
    mime_guess::from_path(key.file_name())
        .first()
        .map_or_else(|| OCTET_STREAM.to_owned(), |m| m.essence_str().to_owned())
}

/// The type an upload to `key` is stored with: `declared` unless it is generic
/// ([`is_generic`]), otherwise the type of the key's extension.
pub fn stored_type(declared: Option<&str>, key: &ObjectKey) -> String {
    match declared {
        Some(t) if !is_generic(Some(t)) => t.trim().to_owned(),
        _ => guess(key),
    }
}

/// True for types whose text a browser decodes with a guessed charset when none is
/// named: `text/*`, JSON (`application/json`, `*+json`) and `application/javascript`.
fn is_textual(essence: &str) -> bool {
    essence.starts_with("text/")
        || essence == "application/json"
        || essence.ends_with("+json")
        || essence == "application/javascript"
}

/// The `Content-Type` a stored object is served with: its stored type, with
/// `; charset=utf-8` added to text ([`is_textual`]) that names no charset.
pub fn served_type(stored: &str) -> String {
    let has_charset = stored
        .split(';')
        .skip(1)
        .any(|p| p.trim().to_ascii_lowercase().starts_with("charset="));
    if !has_charset && is_textual(&essence(stored)) {
        format!("{}; charset=utf-8", stored.trim().trim_end_matches(';').trim_end())
    } else {
        stored.to_owned()
    }
}

/// Media types served inline; everything else is sent as an attachment.
const INLINE_TYPES: &[&str] = &[
    "image/png",
    "image/jpeg",
    "image/gif",
    "image/webp",
    "image/avif",
    "application/pdf",
    "text/plain",
    "audio/mpeg",
    "audio/ogg",
    "video/mp4",
    "video/webm",
];

/// The `Content-Disposition` a stored object of type `stored` is served with: `inline`
/// for the types a browser shows safely, `attachment` otherwise, with the key's file
/// name (RFC 8187's `filename*`, percent-encoded UTF-8).
pub fn disposition(stored: &str, key: &ObjectKey) -> String {
    let kind = if INLINE_TYPES.contains(&essence(stored).as_str()) {
        "inline"
    } else {
        "attachment"
    };
    let file_name: String = url::form_urlencoded::byte_serialize(key.file_name().as_bytes())
        .collect::<String>()
        .replace('+', "%20");
    format!("{kind}; filename*=UTF-8''{file_name}")
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn key(k: &str) -> ObjectKey {
        ObjectKey::parse(k).unwrap()
    }

    #[test]
    fn shown_types_are_inline_and_names_percent_encoded() {
        assert_eq!(
            disposition("Image/PNG; x=1", &key("a/my photo.png")),
            "inline; filename*=UTF-8''my%20photo.png"
        );
        assert_eq!(
            disposition("text/html", &key("보고서.html")),
            "attachment; filename*=UTF-8''%EB%B3%B4%EA%B3%A0%EC%84%9C.html"
        );
    }

    #[test]
    fn generic_types_give_way_to_the_extension() {
        for declared in [
            None,
            Some(""),
            Some("application/octet-stream"),
            Some("Application/Octet-Stream; x=1"),
            Some("binary/octet-stream"),
            Some("application/x-www-form-urlencoded"),
        ] {
            assert_eq!(
                stored_type(declared, &key("notes/보고서.txt")),
                "text/plain",
                "{declared:?}"
            );
            assert_eq!(stored_type(declared, &key("a/photo.PNG")), "image/png", "{declared:?}");
            assert_eq!(
                stored_type(declared, &key("model.weights")),
                OCTET_STREAM,
                "{declared:?}"
            );
            assert_eq!(
                stored_type(declared, &key("no-extension")),
                OCTET_STREAM,
                "{declared:?}"
            );
        }
        assert_eq!(stored_type(Some("image/png"), &key("page.html")), "image/png");
        assert_eq!(
            stored_type(Some("text/plain; charset=euc-kr"), &key("a.bin")),
            "text/plain; charset=euc-kr"
        );
        assert_eq!(stored_type(None, &key("page.html")), "text/html");
        assert_eq!(stored_type(None, &key("data.json")), "application/json");
        // The folder's name says nothing: only the last segment's extension counts.
        assert_eq!(stored_type(None, &key("site.html/readme")), OCTET_STREAM);
    }

    #[test]
    fn text_is_served_as_utf8_unless_stored_otherwise() {
        assert_eq!(served_type("text/plain"), "text/plain; charset=utf-8");
        assert_eq!(served_type("text/csv;"), "text/csv; charset=utf-8");
        assert_eq!(served_type("application/json"), "application/json; charset=utf-8");
        assert_eq!(
            served_type("application/geo+json"),
            "application/geo+json; charset=utf-8"
        );
        assert_eq!(served_type("text/plain; charset=euc-kr"), "text/plain; charset=euc-kr");
        assert_eq!(
            served_type("text/plain;Charset=\"UTF-16\""),
            "text/plain;Charset=\"UTF-16\""
        );
        assert_eq!(served_type("text/html; format=x"), "text/html; format=x; charset=utf-8");
        assert_eq!(served_type("image/png"), "image/png");
        assert_eq!(served_type(OCTET_STREAM), OCTET_STREAM);
    }
}
