//! Email addresses, parsed once at the edge: `Name <user@example.com>` or
//! `user@example.com`, with internationalised domains turned into their ASCII form.

use std::fmt;

/// A mailbox: an optional display name and an address SES accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mailbox {
    /// The display name, without quotes.
    pub name: Option<String>,
    /// `local@domain`, the domain in ASCII (IDNA) and lower case.
    pub email: String,
}

impl Mailbox {
    /// Parses `Name <user@example.com>`, `"Doe, Jane" <user@example.com>` or
    /// `user@example.com`. Refuses control characters (header injection), a non-ASCII
    /// local part (SES cannot deliver it) and anything RFC 5321 does not allow.
    pub fn parse(input: &str) -> Result<Self, String> {
        let s = input.trim();
        if s.is_empty() {
            return Err("empty address".into());
        }
        if s.chars().any(char::is_control) {
            return Err(format!("`{}` contains a control character", s.escape_debug()));
        }
        if s.len() > 1000 {
            return Err("longer than 1,000 characters".into());
        }
        let (name, addr) = match (s.rfind('<'), s.ends_with('>')) {
            (Some(open), true) => {
                let name = s[..open].trim();
                let name = name
                    .strip_prefix('"')
                    .and_then(|n| n.strip_suffix('"'))
                    .unwrap_or(name)
                    .trim();
                if name.contains(['"', '<', '>']) {
                    return Err(format!("`{s}`: the display name may not contain \", < or >"));
                }
                ((!name.is_empty()).then(|| name.to_owned()), &s[open + 1..s.len() - 1])
            }
            (None, false) => (None, s),
            _ => return Err(format!("`{s}` is not `Name <user@example.com>` or `user@example.com`")),
        };
        let email = normalise(addr.trim()).map_err(|e| format!("`{}`: {e}", addr.trim()))?;
        Ok(Self { name, email })
    }

    /// The address alone.
    pub fn email(&self) -> &str {
        &self.email
    }

    /// The domain part.
    pub fn domain(&self) -> &str {
        self.email.rsplit_once('@').map(|(_, d)| d).unwrap_or_default()
    }
}

impl fmt::Display for Mailbox {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.name {
            Some(n) => write!(f, "\"{n}\" <{}>", self.email),
            None => f.write_str(&self.email),
        }
    }
}

/// `local@domain` checked, the domain in lower-case ASCII.
fn normalise(addr: &str) -> Result<String, String> {
    let (local, domain) = addr.rsplit_once('@').ok_or("no @")?;
    if local.is_empty() || local.len() > 64 {
        return Err("the part before @ must be 1 to 64 characters".into());
    }
    if !local.is_ascii() {
        return Err("the part before @ must be ASCII (SES does not deliver SMTPUTF8 addresses)".into());
    }
    let ascii = idna::domain_to_ascii(domain).map_err(|_| "the domain is not a valid (internationalised) name")?;
    if !ascii.contains('.') || ascii.len() > 253 {
        return Err("the domain must be a full name such as example.com".into());
    }
    let email = format!("{local}@{ascii}");
    if !email_address::EmailAddress::is_valid(&email) {
        return Err("not a valid address".into());
    }
    if ascii
        .split('.')
        .any(|label| label.is_empty() || label.starts_with('-') || label.ends_with('-'))
    {
        return Err("the domain has an empty or badly formed label".into());
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn forms() {
        let m = Mailbox::parse("Jane Doe <Jane@Example.COM>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Jane Doe"));
        assert_eq!(m.email, "Jane@example.com");
        let m = Mailbox::parse("\"Doe, Jane\" <j@example.com>").unwrap();
        assert_eq!(m.name.as_deref(), Some("Doe, Jane"));
        assert_eq!(Mailbox::parse(" j@example.com ").unwrap().name, None);
        assert_eq!(Mailbox::parse("<j@example.com>").unwrap().name, None);
        assert_eq!(
            Mailbox::parse("홍길동 <hong@bücher.example>").unwrap().email,
            "hong@xn--bcher-kva.example"
        );
        assert_eq!(Mailbox::parse("a@b.co").unwrap().domain(), "b.co");
    }

    #[test]
    fn refusals() {
        for bad in [
            "",
            "plain",
            "a@localhost",
            "a@@example.com",
            "Jane <a@example.com",
            "a@example.com\r\nBcc: victim@example.com",
            "Jane\n <a@example.com>",
            "ü@example.com",
            "a b@example.com",
            "a@-example.com",
            "a@example..com",
            "Ja\"ne <a@example.com>",
        ] {
            assert!(Mailbox::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    proptest! {
        #[test]
        fn never_panics_and_never_lets_a_line_break_through(s in "\\PC{0,80}|[a-z\r\n<>\"@. ]{0,40}") {
            if let Ok(m) = Mailbox::parse(&s) {
                prop_assert!(!m.to_string().contains(['\r', '\n']));
                prop_assert!(m.email.is_ascii());
            }
        }
    }
}
