//! Checks of rules and webhooks as callers send them.

use super::NewRule;
use super::error::{BridgeError, invalid};

/// Whether `pattern` (`license.issued`, `license.*`, `*`) covers `event_type`.
pub fn type_matches(pattern: &str, event_type: &str) -> bool {
    pattern == "*"
        || pattern == event_type
        || pattern
            .strip_suffix(".*")
            .is_some_and(|family| event_type.strip_prefix(family).is_some_and(|r| r.starts_with('.')))
}

pub(crate) fn check_type_pattern(field: &'static str, p: &str) -> Result<(), BridgeError> {
    let body = p.strip_suffix(".*").unwrap_or(p);
    let ok = p == "*"
        || (!body.is_empty()
            && body.len() <= 100
            && body
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'.' | b'_')));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            field,
            format!("`{p}`: a type such as license.issued, a family such as license.*, or *"),
        ))
    }
}

/// Checks a rule as created or changed.
pub(crate) fn check_rule(r: &NewRule) -> Result<(), BridgeError> {
    if r.name.trim().is_empty() || r.name.chars().count() > 200 {
        return Err(invalid("name", "1 to 200 characters"));
    }
    check_type_pattern("event_type", &r.event_type)?;
    if r.actions.slack.is_none() && r.actions.email.is_none() {
        return Err(invalid("actions", "give slack, email or both"));
    }
    // Loop guard: an action may not produce the events its rule listens to.
    let family = |f: &str| type_matches(&r.event_type, &format!("{f}.queued")) || r.event_type == "*";
    if r.actions.email.is_some() && family("email") {
        return Err(invalid(
            "event_type",
            "an email action cannot listen to email events (it would loop)",
        ));
    }
    if r.actions.slack.is_some() && family("slack") {
        return Err(invalid(
            "event_type",
            "a Slack action cannot listen to Slack events (it would loop)",
        ));
    }
    let parses = |t: &str| {
        mailer::template::check(&mailer::template::Parts {
            subject: t.to_owned(),
            html: None,
            text: None,
        })
        .map_err(|e| e.to_string())
    };
    if let Some(s) = &r.actions.slack {
        parses(&s.title).map_err(|m| invalid("actions.slack.title", m))?;
        if let Some(t) = &s.text {
            parses(t).map_err(|m| invalid("actions.slack.text", m))?;
        }
    }
    if let Some(e) = &r.actions.email {
        parses(&e.to).map_err(|m| invalid("actions.email.to", m))?;
        if !e.to.contains("{{") {
            mailer::address::Mailbox::parse(&e.to).map_err(|m| invalid("actions.email.to", m))?;
        }
        if e.template.trim().is_empty() {
            return Err(invalid("actions.email.template", "name a stored email template"));
        }
    }
    Ok(())
}

/// Checks a webhook's event types.
pub(crate) fn check_types(types: &[String]) -> Result<(), BridgeError> {
    if types.is_empty() || types.len() > 50 {
        return Err(invalid("event_types", "1 to 50 types or families"));
    }
    types.iter().try_for_each(|t| check_type_pattern("event_types", t))
}
