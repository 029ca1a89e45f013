//! Scopes: which exist, which a key's scopes grant, which it may hand on, and the refusal
//! that names the narrowest scope a call needs.

use crate::model::AccessError;

/// Every scope a key can hold. `*` holds all; a family scope such as `data:read` also
/// covers its qualified forms (`data:read:orders`), and `data:read:*` is accepted.
pub const SCOPES: &[&str] = &[
    "api-keys:admin",
    "licenses:admin",
    "licenses:read",
    "emails:send",
    "emails:read",
    "emails:admin",
    "slack:post",
    "slack:read",
    "blobs:read",
    "blobs:write",
    "events:read",
    "rules:admin",
    "webhooks:admin",
    "data:read",
    "data:write",
];

/// Scopes that may carry a qualifier (a namespace or collection name).
pub const QUALIFIED: &[&str] = &["blobs:read", "blobs:write", "data:read", "data:write"];

/// Checks that `scope` is one a key can hold.
pub fn validate_scope(scope: &str) -> Result<(), String> {
    if scope == "*" || SCOPES.contains(&scope) {
        return Ok(());
    }
    for family in QUALIFIED {
        if let Some(q) = scope.strip_prefix(family).and_then(|r| r.strip_prefix(':')) {
            let ok = q == "*"
                || (!q.is_empty()
                    && q.len() <= 64
                    && q.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
            return if ok {
                Ok(())
            } else {
                Err(format!("`{scope}`: a qualifier is 1 to 64 of a-z, 0-9, - and _, or *"))
            };
        }
    }
    Err(format!(
        "unknown scope `{scope}`; known scopes: *, {}",
        SCOPES.join(", ")
    ))
}

/// True when a key holding `held` may use a route that needs `needed`.
pub fn grants(held: &str, needed: &str) -> bool {
    if held == "*" || held == needed {
        return true;
    }
    if let Some(family) = held.strip_suffix(":*") {
        return needed.strip_prefix(family).is_some_and(|r| r.starts_with(':'));
    }
    needed.strip_prefix(held).is_some_and(|r| r.starts_with(':'))
}

/// The scopes that allow a call needing `needed`, narrowest first: `blobs:write:web`,
/// `blobs:write:*`, `blobs:write`, then `*`.
pub fn sufficient(needed: &str) -> Vec<String> {
    let mut all = vec![needed.to_owned()];
    let qualified = QUALIFIED
        .iter()
        .find_map(|family| Some((*family, needed.strip_prefix(family)?.strip_prefix(':')?)));
    if let Some((family, qualifier)) = qualified {
        if qualifier != "*" {
            all.push(format!("{family}:*"));
        }
        all.push(family.to_owned());
    }
    if needed != "*" {
        all.push("*".to_owned());
    }
    all
}

/// The refusal (403) of a call that needs one of `needed` (narrowest first), naming the
/// first and every scope that would do.
pub fn insufficient<S: AsRef<str>>(needed: &[S]) -> AccessError {
    let mut would_do: Vec<String> = Vec::new();
    for scope in needed {
        for s in sufficient(scope.as_ref()) {
            if !would_do.contains(&s) {
                would_do.push(s);
            }
        }
    }
    // `*` last, after every named scope.
    if let Some(i) = would_do.iter().position(|s| s == "*") {
        let star = would_do.remove(i);
        would_do.push(star);
    }
    let first = needed.first().map_or("*", AsRef::as_ref);
    AccessError::InsufficientScope {
        scope: first.to_owned(),
        would_do,
    }
}

/// True when a key holding `held` may hand `wanted` on to a key it creates: `*` only from
/// `*`; a scope from itself or from the family it belongs to (`blobs:read` covers
/// `blobs:read:web` and `blobs:read:*`); a qualified wildcard (`blobs:read:*`) covers the
/// family's qualified forms but not the bare family (which reaches more routes).
pub fn covers(held: &str, wanted: &str) -> bool {
    if held == "*" || held == wanted {
        return true;
    }
    if wanted == "*" {
        return false;
    }
    let family = held.strip_suffix(":*").unwrap_or(held);
    wanted
        .strip_prefix(family)
        .and_then(|r| r.strip_prefix(':'))
        .is_some_and(|q| !q.is_empty())
}

/// Whether held scopes can reach an operation documented with `family` (`data:read`
/// is reached by `data:read:notes` too: the handler checks the qualifier).
pub fn reaches(held: &[String], family: &[String]) -> bool {
    family.iter().any(|f| {
        held.iter()
            .any(|h| grants(h, f) || h.strip_prefix(f.as_str()).is_some_and(|r| r.starts_with(':')))
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    #[test]
    fn scope_grants() {
        assert!(grants("*", "licenses:admin"));
        assert!(grants("emails:send", "emails:send"));
        assert!(!grants("emails:send", "emails:read"));
        assert!(grants("data:read", "data:read:orders"));
        assert!(grants("data:read:*", "data:read:orders"));
        assert!(!grants("data:read:*", "data:read"));
        assert!(!grants("data:read:orders", "data:read:users"));
        assert!(!grants("data:read", "data:reader"));
        assert!(!grants("blobs:read", "blobs:write:client"));
    }

    #[test]
    fn a_key_hands_on_only_what_it_holds() {
        assert!(covers("*", "*") && covers("*", "licenses:admin"));
        assert!(!covers("api-keys:admin", "*"));
        assert!(!covers("api-keys:admin", "licenses:read"));
        assert!(covers("api-keys:admin", "api-keys:admin"));
        assert!(covers("blobs:read", "blobs:read:web"));
        assert!(covers("blobs:read", "blobs:read:*"));
        assert!(covers("blobs:read:*", "blobs:read:web"));
        assert!(!covers("blobs:read:*", "blobs:read"));
        assert!(!covers("blobs:read:web", "blobs:read:ai"));
        assert!(!covers("blobs:read:web", "blobs:read:*"));
        assert!(!covers("blobs:read:web", "blobs:read"));
        assert!(!covers("blobs:read", "blobs:write:web"));
        assert!(!covers("data:read", "data:reader"));
    }

    #[test]
    fn the_scopes_that_would_do_start_with_the_narrowest() {
        assert_eq!(
            sufficient("blobs:write:web"),
            ["blobs:write:web", "blobs:write:*", "blobs:write", "*"]
        );
        assert_eq!(sufficient("emails:send"), ["emails:send", "*"]);
        assert_eq!(sufficient("data:read:*"), ["data:read:*", "data:read", "*"]);
        for needed in ["blobs:write:web", "emails:send", "data:read:*"] {
            for held in sufficient(needed) {
                assert!(grants(&held, needed), "{held} grants {needed}");
            }
        }
        match insufficient(&["licenses:read", "licenses:admin"]) {
            AccessError::InsufficientScope { scope, would_do } => {
                assert_eq!(scope, "licenses:read");
                assert_eq!(would_do, ["licenses:read", "licenses:admin", "*"]);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn scope_validation() {
        for ok in [
            "*",
            "licenses:admin",
            "data:read:orders",
            "blobs:write:*",
            "data:write:a_b-1",
        ] {
            assert!(validate_scope(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "admin",
            "licenses:*",
            "data:read:",
            "data:read:a/b",
            "emails:send:x",
            "LICENSES:ADMIN",
        ] {
            assert!(validate_scope(bad).is_err(), "{bad}");
        }
    }

    proptest::proptest! {
        #[test]
        fn validate_scope_never_panics(s in "\\PC{0,80}") {
            let _ = validate_scope(&s);
        }
    }
}
