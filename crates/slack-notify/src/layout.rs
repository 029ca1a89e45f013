//! One Block Kit layout per level: a colour bar, a header with the level's icon and the
//! title, the text as mrkdwn, fields in two columns, link buttons and a context line,
//! plus a plain `text` fallback for notifications. Everything a caller wrote is escaped
//! for mrkdwn and cut to fit Slack's limits.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// Slack's limit for a header's text.
pub const HEADER_MAX: usize = 150;
/// Slack's limit for a section's text.
pub const SECTION_MAX: usize = 3000;
/// Slack's limit for one field of a section.
pub const FIELD_MAX: usize = 2000;
/// Slack's limit for a button's label.
pub const BUTTON_MAX: usize = 75;
/// Slack's limit on fields per section.
pub const FIELDS_PER_SECTION: usize = 10;
/// Most fields a message takes (two sections).
pub const MAX_FIELDS: usize = 20;
/// Most link buttons a message takes.
pub const MAX_LINKS: usize = 5;
/// Slack's limit on blocks per message.
pub const MAX_BLOCKS: usize = 50;

/// How loud a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Diagnostics.
    Debug,
    /// Something happened.
    Info,
    /// Something went well (or recovered).
    Success,
    /// Needs a look.
    Warning,
    /// Something failed.
    Error,
    /// Wake someone up.
    Critical,
}

impl Level {
    /// Every level, quietest first.
    pub const ALL: [Level; 6] = [
        Level::Debug,
        Level::Info,
        Level::Success,
        Level::Warning,
        Level::Error,
        Level::Critical,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Success => "success",
            Level::Warning => "warning",
            Level::Error => "error",
            Level::Critical => "critical",
        }
    }

    /// Parses a stored name.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|l| l.as_str() == s)
    }

    /// The emoji shown before the title.
    pub fn icon(self) -> &'static str {
        match self {
            Level::Debug => ":mag:",
            Level::Info => ":information_source:",
            Level::Success => ":white_check_mark:",
            Level::Warning => ":warning:",
            Level::Error => ":x:",
            Level::Critical => ":rotating_light:",
        }
    }

    /// The colour bar.
    pub fn colour(self) -> &'static str {
        match self {
            Level::Debug => "#9E9E9E",
            Level::Info => "#1D9BD1",
            Level::Success => "#2EB67D",
            Level::Warning => "#ECB22E",
            Level::Error => "#E01E5A",
            Level::Critical => "#8B0000",
        }
    }
}

/// A key/value pair shown in two columns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields, expecting = "an object {title, value}")]
pub struct Field {
    /// The key, shown bold.
    pub title: String,
    /// The value (mrkdwn is escaped).
    pub value: String,
}

/// Reads `fields` saying what it wants in the caller's terms ("a list of {title,
/// value}") when it is given something else, rather than serde's "a sequence".
pub(crate) mod field_list {
    use std::fmt;

    use serde::Deserializer;
    use serde::de::{SeqAccess, Visitor};

    use super::Field;

    struct List;

    impl<'de> Visitor<'de> for List {
        type Value = Vec<Field>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("a list of {title, value}")
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            let mut fields = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(20));
            while let Some(field) = seq.next_element()? {
                fields.push(field);
            }
            Ok(fields)
        }
    }

    /// `fields` as a list of [`Field`].
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Field>, D::Error> {
        d.deserialize_seq(List)
    }

    /// An optional `fields` (absent or `null`: `None`).
    pub mod option {
        use serde::{Deserialize, Deserializer};

        use super::Field;

        struct Wrapped(Vec<Field>);

        impl<'de> Deserialize<'de> for Wrapped {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                super::deserialize(d).map(Wrapped)
            }
        }

        /// `fields` when given.
        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Vec<Field>>, D::Error> {
            Ok(Option::<Wrapped>::deserialize(d)?.map(|w| w.0))
        }
    }
}

/// A link button.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Link {
    /// The button's label.
    pub text: String,
    /// An http(s) URL.
    pub url: String,
}

/// Who a `critical` message notifies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mention {
    /// `@here`.
    Here,
    /// `@channel`.
    Channel,
    /// A user group by id (`S0123ABCD`).
    UserGroup(String),
    /// A user by id (`U0123ABCD`).
    User(String),
}

impl Mention {
    /// Parses `here`, `channel`, `subteam:S…` or `user:U…`.
    pub fn parse(s: &str) -> Result<Self, String> {
        let id_ok = |id: &str| !id.is_empty() && id.len() <= 20 && id.bytes().all(|b| b.is_ascii_alphanumeric());
        match s.trim() {
            "here" | "@here" => Ok(Mention::Here),
            "channel" | "@channel" => Ok(Mention::Channel),
            other => match other.split_once(':') {
                Some(("subteam", id)) if id_ok(id) => Ok(Mention::UserGroup(id.to_owned())),
                Some(("user", id)) if id_ok(id) => Ok(Mention::User(id.to_owned())),
                _ => Err(format!(
                    "`{other}`: use here, channel, subteam:<group id> or user:<user id>"
                )),
            },
        }
    }

    fn mrkdwn(&self) -> String {
        match self {
            Mention::Here => "<!here>".into(),
            Mention::Channel => "<!channel>".into(),
            Mention::UserGroup(id) => format!("<!subteam^{id}>"),
            Mention::User(id) => format!("<@{id}>"),
        }
    }
}

/// What to show.
#[derive(Debug, Clone)]
pub struct Alert<'a> {
    /// The level.
    pub level: Level,
    /// The title (header).
    pub title: &'a str,
    /// The body, mrkdwn-escaped.
    pub text: Option<&'a str>,
    /// Key/value pairs.
    pub fields: &'a [Field],
    /// Link buttons.
    pub links: &'a [Link],
    /// The service that raised it.
    pub source: Option<&'a str>,
    /// The environment (production, staging, ...).
    pub environment: Option<&'a str>,
    /// Who to notify (critical only).
    pub mention: Option<&'a Mention>,
    /// Our message id, shown in the context line.
    pub event_id: &'a str,
    /// When it happened.
    pub time: DateTime<Utc>,
}

/// A rendered message: Slack's `text` fallback and the attachment carrying the colour bar
/// and the blocks. Serialises to the JSON `chat.postMessage` takes.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Rendered {
    /// Plain fallback for notifications and clients without blocks.
    pub text: String,
    /// One attachment: `color` and `blocks`.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<Object>))]
    pub attachments: Value,
}

/// Escapes `&`, `<` and `>` for mrkdwn and cuts the result to `max` characters (ending
/// in `…` when cut), never inside an escape.
pub fn escape_cut(text: &str, max: usize) -> String {
    let mut out = String::new();
    let mut len = 0;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        let piece = match c {
            '&' => "&amp;".to_owned(),
            '<' => "&lt;".to_owned(),
            '>' => "&gt;".to_owned(),
            other => other.to_string(),
        };
        let n = piece.chars().count();
        let room = if chars.peek().is_some() {
            max.saturating_sub(1)
        } else {
            max
        };
        if len + n > room {
            out.push('…');
            return out;
        }
        out.push_str(&piece);
        len += n;
    }
    out
}

/// Cuts plain text (no escaping) to `max` characters, ending in `…` when cut.
pub fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Renders `alert` in its level's layout.
pub fn render(alert: &Alert<'_>) -> Rendered {
    let level = alert.level;
    let mut blocks = vec![json!({
        "type": "header",
        "text": { "type": "plain_text", "text": cut(&format!("{} {}", level.icon(), alert.title.trim()), HEADER_MAX), "emoji": true },
    })];
    if let Some(m) = alert.mention {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": m.mrkdwn() } }));
    }
    if let Some(text) = alert.text.filter(|t| !t.trim().is_empty()) {
        blocks.push(json!({ "type": "section", "text": { "type": "mrkdwn", "text": escape_cut(text, SECTION_MAX) } }));
    }
    for chunk in alert
        .fields
        .chunks(FIELDS_PER_SECTION)
        .take(MAX_FIELDS / FIELDS_PER_SECTION)
    {
        let fields: Vec<Value> = chunk
            .iter()
            .map(|f| {
                let title = escape_cut(&f.title, 200);
                let value = escape_cut(&f.value, FIELD_MAX.saturating_sub(title.chars().count() + 5));
                json!({ "type": "mrkdwn", "text": format!("*{title}*\n{value}") })
            })
            .collect();
        blocks.push(json!({ "type": "section", "fields": fields }));
    }
    if !alert.links.is_empty() {
        let buttons: Vec<Value> = alert
            .links
            .iter()
            .take(MAX_LINKS)
            .enumerate()
            .map(|(i, l)| {
                json!({
                    "type": "button",
                    "action_id": format!("link_{i}"),
                    "text": { "type": "plain_text", "text": cut(&l.text, BUTTON_MAX), "emoji": true },
                    "url": l.url,
                })
            })
            .collect();
        blocks.push(json!({ "type": "actions", "elements": buttons }));
    }
    let mut context = vec![format!("*{}*", level.as_str().to_uppercase())];
    if let Some(s) = alert.source.filter(|s| !s.trim().is_empty()) {
        context.push(format!("source: {}", escape_cut(s, 100)));
    }
    if let Some(e) = alert.environment.filter(|s| !s.trim().is_empty()) {
        context.push(format!("env: {}", escape_cut(e, 50)));
    }
    context.push(format!(
        "<!date^{}^{{date_short_pretty}} {{time_secs}}|{}>",
        alert.time.timestamp(),
        alert.time.format("%Y-%m-%d %H:%M:%S UTC")
    ));
    context.push(format!("id: `{}`", escape_cut(alert.event_id, 64)));
    blocks.push(json!({
        "type": "context",
        "elements": [{ "type": "mrkdwn", "text": context.join("  ·  ") }],
    }));
    blocks.truncate(MAX_BLOCKS);

    let mut text = format!(
        "{} [{}] {}",
        level.icon(),
        level.as_str().to_uppercase(),
        escape_cut(alert.title.trim(), HEADER_MAX)
    );
    if let Some(m) = alert.mention {
        text = format!("{} {text}", m.mrkdwn());
    }
    Rendered {
        text,
        attachments: json!([{ "color": level.colour(), "blocks": blocks }]),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn escaping_and_cutting_stay_within_limits() {
        assert_eq!(escape_cut("a < b && c > d", 100), "a &lt; b &amp;&amp; c &gt; d");
        assert_eq!(escape_cut("abcdef", 4), "abc…");
        assert_eq!(escape_cut("abcd", 4), "abcd");
        assert_eq!(escape_cut("ab&cd", 4), "ab…", "an escape is never split");
        assert_eq!(escape_cut("한국어 텍스트", 4), "한국어…");
        assert_eq!(cut("title", 3), "ti…");
    }

    proptest::proptest! {
        #[test]
        fn escaped_text_never_exceeds_the_limit_or_leaks_markup(s in "\\PC{0,400}", max in 1usize..300) {
            let out = escape_cut(&s, max);
            proptest::prop_assert!(out.chars().count() <= max);
            proptest::prop_assert!(!out.contains('<') && !out.contains('>'));
        }
    }

    #[test]
    fn mentions_parse() {
        assert_eq!(Mention::parse("here").unwrap(), Mention::Here);
        assert_eq!(
            Mention::parse("subteam:S0123ABC").unwrap(),
            Mention::UserGroup("S0123ABC".into())
        );
        assert_eq!(Mention::parse("user:U42").unwrap(), Mention::User("U42".into()));
        for bad in ["", "everyone", "subteam:", "user:<script>", "subteam:S1 S2"] {
            assert!(Mention::parse(bad).is_err(), "{bad}");
        }
    }
}
