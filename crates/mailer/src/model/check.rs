//! Checks of what a caller sends: addresses, subjects, headers, tags, files and names.

use std::collections::{BTreeMap, HashSet};

use crate::address::Mailbox;
use crate::mime::File;
use crate::model::AttachmentIn;
use crate::model::error::{MailError, invalid};

/// SES takes at most this many recipients per message.
pub const MAX_RECIPIENTS_PER_SEND: usize = 50;
/// Recipients (to + cc + bcc) one message may have; more than 50 are split.
pub const MAX_RECIPIENTS: usize = 500;
/// Messages in one batch.
pub const MAX_BATCH: usize = 100;

/// Extensions SES refuses to carry.
const BLOCKED_EXTENSIONS: &[&str] = &[
    "ade", "adp", "app", "asp", "bas", "bat", "cer", "chm", "cmd", "com", "cpl", "crt", "csh", "der", "exe", "fxp",
    "gadget", "hlp", "hta", "inf", "ins", "isp", "its", "js", "jse", "ksh", "lib", "lnk", "mad", "maf", "mag", "mam",
    "maq", "mar", "mas", "mat", "mau", "mav", "maw", "mda", "mdb", "mde", "mdt", "mdw", "mdz", "msc", "msh", "msh1",
    "msh2", "mshxml", "msh1xml", "msh2xml", "msi", "msp", "mst", "ops", "pcd", "pif", "plg", "prf", "prg", "reg",
    "scf", "scr", "sct", "shb", "shs", "sys", "ps1", "ps1xml", "ps2", "ps2xml", "psc1", "psc2", "tmp", "url", "vb",
    "vbe", "vbs", "vps", "vsmacros", "vss", "vst", "vsw", "vxd", "ws", "wsc", "wsf", "wsh", "xnk",
];

/// Headers a caller may not set (the message sets them, or SES does).
const RESERVED_HEADERS: &[&str] = &[
    "from",
    "to",
    "cc",
    "bcc",
    "reply-to",
    "sender",
    "subject",
    "date",
    "message-id",
    "mime-version",
    "return-path",
    "received",
    "dkim-signature",
];

/// Why a message with inline files (`content_id`) but no html part is refused.
pub(crate) const INLINE_NEEDS_HTML: &str = "inline files (content_id) need an html part";

/// `r`'s value, or `None` with its error added to `wrong`.
pub(crate) fn keep<T>(wrong: &mut Vec<MailError>, r: Result<T, MailError>) -> Option<T> {
    r.map_err(|e| wrong.push(e)).ok()
}

/// A subject SES and mail clients accept: 1 to 998 characters, no line breaks.
pub(crate) fn check_subject(subject: &str) -> Result<(), &'static str> {
    let subject = subject.trim();
    if subject.is_empty() || subject.chars().count() > 998 {
        return Err("must be 1 to 998 characters");
    }
    if subject.chars().any(char::is_control) {
        return Err("may not contain line breaks or control characters");
    }
    Ok(())
}

pub(crate) fn suppression_key(address: &str) -> Result<String, MailError> {
    Mailbox::parse(address)
        .map(|m| m.email.to_ascii_lowercase())
        .map_err(|e| invalid("address", e))
}

pub(crate) fn check_template_name(name: &str) -> Result<(), MailError> {
    let ok = !name.is_empty()
        && name.len() <= 100
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(invalid("name", "1 to 100 of a-z, A-Z, 0-9, - _ ."))
    }
}

pub(crate) fn check_headers(headers: &BTreeMap<String, String>) -> Result<Vec<(String, String)>, String> {
    if headers.len() > 30 {
        return Err("at most 30 headers".into());
    }
    headers
        .iter()
        .map(|(name, value)| {
            let lower = name.to_ascii_lowercase();
            let name_ok =
                !name.is_empty() && name.len() <= 76 && name.bytes().all(|b| (33..=126).contains(&b) && b != b':');
            if !name_ok {
                return Err(format!("`{}` is not a header name", name.escape_debug()));
            }
            if RESERVED_HEADERS.contains(&lower.as_str())
                || lower.starts_with("content-")
                || lower.starts_with("x-ses-")
            {
                return Err(format!("`{name}` is set by the message itself; it cannot be given"));
            }
            if value.chars().any(char::is_control) || value.len() > 998 {
                return Err(format!(
                    "`{name}`: the value may not contain line breaks or control characters (at most 998 bytes)"
                ));
            }
            Ok((name.clone(), value.clone()))
        })
        .collect()
}

pub(crate) fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), String> {
    if tags.len() > 20 {
        return Err("at most 20 tags".into());
    }
    for (k, v) in tags {
        let ok = !k.is_empty()
            && k.len() <= 64
            && k.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
            && v.chars().count() <= 256
            && !v.chars().any(char::is_control);
        if !ok {
            return Err(format!(
                "`{}`: names are 1 to 64 of A-Z a-z 0-9 _ -, values at most 256 characters",
                k.escape_debug()
            ));
        }
    }
    Ok(())
}

fn guess_type(filename: &str) -> &'static str {
    let ext = filename.rsplit_once('.').map(|(_, e)| e.to_ascii_lowercase());
    match ext.as_deref() {
        Some("pdf") => "application/pdf",
        Some("png") => "image/png",
        Some("jpg" | "jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("svg") => "image/svg+xml",
        Some("txt" | "log") => "text/plain",
        Some("csv") => "text/csv",
        Some("html" | "htm") => "text/html",
        Some("json") => "application/json",
        Some("zip") => "application/zip",
        Some("ics") => "text/calendar",
        Some("xlsx") => "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        Some("docx") => "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        _ => "application/octet-stream",
    }
}

pub(crate) fn decode_files(attachments: &[AttachmentIn], at: &str) -> Result<Vec<File>, MailError> {
    if attachments.len() > 50 {
        return Err(invalid(format!("{at}attachments"), "at most 50 files"));
    }
    let mut ids = HashSet::new();
    attachments
        .iter()
        .enumerate()
        .map(|(i, a)| {
            let field = format!("{at}{}attachments[{i}]", if at.is_empty() { "" } else { "." });
            let name = a.filename.trim();
            if name.is_empty()
                || name.len() > 255
                || name
                    .chars()
                    .any(|c| c.is_control() || c == '/' || c == '\\' || c == '"')
            {
                return Err(invalid(
                    format!("{field}.filename"),
                    "1 to 255 characters, no path separators, quotes or control characters",
                ));
            }
            if let Some((_, ext)) = name.rsplit_once('.')
                && BLOCKED_EXTENSIONS.contains(&ext.to_ascii_lowercase().as_str())
            {
                return Err(invalid(
                    format!("{field}.filename"),
                    format!("SES does not carry .{ext} files"),
                ));
            }
            let content_type = match &a.content_type {
                Some(ct) => {
                    let ct = ct.trim();
                    let ok = ct.split_once('/').is_some_and(|(t, s)| {
                        let token = |x: &str| {
                            !x.is_empty()
                                && x.bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b"!#$&^_.+-".contains(&b))
                        };
                        token(t) && token(s)
                    });
                    if !ok {
                        return Err(invalid(
                            format!("{field}.content_type"),
                            "a media type such as application/pdf",
                        ));
                    }
                    ct.to_ascii_lowercase()
                }
                None => guess_type(name).to_owned(),
            };
            let compact: String = a.content_base64.chars().filter(|c| !c.is_ascii_whitespace()).collect();
            let content = data_encoding::BASE64
                .decode(compact.as_bytes())
                .map_err(|_| invalid(format!("{field}.content_base64"), "not standard base64"))?;
            if let Some(cid) = &a.content_id {
                let ok = !cid.is_empty()
                    && cid.len() <= 100
                    && cid
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'@'));
                if !ok || !ids.insert(cid.clone()) {
                    return Err(invalid(
                        format!("{field}.content_id"),
                        "1 to 100 of A-Z a-z 0-9 . _ - @, unique in the message",
                    ));
                }
            }
            Ok(File {
                filename: name.to_owned(),
                content_type,
                content,
                content_id: a.content_id.clone(),
            })
        })
        .collect()
}
