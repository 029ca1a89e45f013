//! The MIME message, built with `mail-builder`: text and HTML as alternatives, inline
//! images (`cid:`) related to the HTML, attachments around both.

use std::borrow::Cow;

use mail_builder::MessageBuilder;
use mail_builder::headers::address::Address;
use mail_builder::headers::date::Date;
use mail_builder::headers::message_id::MessageId;
use mail_builder::headers::text::Text;
use mail_builder::mime::{BodyPart, MimePart};

use crate::address::Mailbox;

/// A file carried by a message.
#[derive(Debug, Clone)]
pub struct File {
    /// Its name.
    pub filename: String,
    /// Its media type.
    pub content_type: String,
    /// Its bytes.
    pub content: Vec<u8>,
    /// For an inline image: the id the HTML refers to as `cid:<id>`.
    pub content_id: Option<String>,
}

/// Everything a message is built from, checked.
#[derive(Debug, Clone)]
pub struct Compose<'a> {
    /// `From`.
    pub from: &'a Mailbox,
    /// `To`.
    pub to: &'a [Mailbox],
    /// `Cc`.
    pub cc: &'a [Mailbox],
    /// `Reply-To`.
    pub reply_to: &'a [Mailbox],
    /// `Subject`.
    pub subject: &'a str,
    /// The plain-text part.
    pub text: Option<&'a str>,
    /// The HTML part.
    pub html: Option<&'a str>,
    /// Attachments and inline images.
    pub files: &'a [File],
    /// Extra headers (names and values already checked).
    pub headers: &'a [(String, String)],
    /// The `Message-ID` (without angle brackets).
    pub message_id: &'a str,
    /// The `Date`, in seconds since the epoch.
    pub date: i64,
}

fn address_list(list: &[Mailbox]) -> Address<'_> {
    Address::new_list(
        list.iter()
            .map(|m| Address::new_address(m.name.as_deref(), m.email.as_str()))
            .collect(),
    )
}

/// Builds the message's bytes (CRLF line ends, 7-bit safe).
pub fn build(m: &Compose<'_>) -> std::io::Result<Vec<u8>> {
    let mut b = MessageBuilder::new()
        .from(Address::new_address(m.from.name.as_deref(), m.from.email.as_str()))
        .subject(Text::new(m.subject))
        .message_id(MessageId::new(m.message_id))
        .date(Date::new(m.date));
    if !m.to.is_empty() {
        b = b.to(address_list(m.to));
    }
    if !m.cc.is_empty() {
        b = b.cc(address_list(m.cc));
    }
    if !m.reply_to.is_empty() {
        b = b.reply_to(address_list(m.reply_to));
    }
    for (name, value) in m.headers {
        b = b.header(name.as_str(), Text::new(value.as_str()));
    }
    b.body(body(m)).write_to_vec()
}

fn body<'a>(m: &'a Compose<'a>) -> MimePart<'a> {
    let part = |ct: &'a str, f: &'a File| MimePart::new(ct, BodyPart::Binary(Cow::Borrowed(&f.content)));
    let (inline, attached): (Vec<&File>, Vec<&File>) = m.files.iter().partition(|f| f.content_id.is_some());
    let html = m.html.map(|h| {
        let html = MimePart::new("text/html", BodyPart::Text(Cow::Borrowed(h)));
        if inline.is_empty() {
            html
        } else {
            let mut parts = vec![html];
            parts.extend(inline.iter().map(|f| {
                part(&f.content_type, f)
                    .inline()
                    .cid(f.content_id.as_deref().unwrap_or_default())
            }));
            MimePart::new("multipart/related", parts)
        }
    });
    let text = m
        .text
        .map(|t| MimePart::new("text/plain", BodyPart::Text(Cow::Borrowed(t))));
    let main = match (text, html) {
        (Some(t), Some(h)) => MimePart::new("multipart/alternative", vec![t, h]),
        (Some(t), None) => t,
        (None, Some(h)) => h,
        (None, None) => MimePart::new("text/plain", BodyPart::Text(Cow::Borrowed(""))),
    };
    // Inline files with no HTML to show them become ordinary attachments.
    let loose = if m.html.is_none() { inline } else { Vec::new() };
    let files: Vec<&File> = attached.into_iter().chain(loose).collect();
    if files.is_empty() {
        return main;
    }
    let mut parts = vec![main];
    parts.extend(
        files
            .into_iter()
            .map(|f| part(&f.content_type, f).attachment(f.filename.as_str())),
    );
    MimePart::new("multipart/mixed", parts)
}
