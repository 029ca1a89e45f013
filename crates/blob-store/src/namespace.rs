//! Namespaces: each maps to a bucket and prefix, with its own size limit and content
//! types. Reading needs `blobs:read:<name>` and writing `blobs:write:<name>` (which
//! `blobs:read`, `blobs:write` and `*` also grant).

use serde::Deserialize;

/// One GiB.
pub const GIB: u64 = 1024 * 1024 * 1024;

/// A configured namespace.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Namespace {
    /// Its name in URLs (`client`, `web`, `ai`): 1 to 32 of a-z, 0-9 and `-`.
    pub name: String,
    /// The bucket (S3 backend); the configured default when absent.
    #[serde(default)]
    pub bucket: Option<String>,
    /// Prefix of its keys in the bucket; `<name>/` when absent.
    #[serde(default)]
    pub prefix: Option<String>,
    /// Largest object in bytes.
    pub max_size: u64,
    /// Content types accepted (`image/png`, `image/*`); any when empty.
    #[serde(default)]
    pub allowed_types: Vec<String>,
}

impl Namespace {
    /// The prefix its keys get in storage.
    pub fn storage_prefix(&self) -> String {
        self.prefix.clone().unwrap_or_else(|| format!("{}/", self.name))
    }

    /// True when `content_type` (parameters ignored) is accepted.
    pub fn allows(&self, content_type: &str) -> bool {
        if self.allowed_types.is_empty() {
            return true;
        }
        let essence = content_type
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase();
        self.allowed_types.iter().any(|allowed| {
            let allowed = allowed.to_ascii_lowercase();
            match allowed.strip_suffix("/*") {
                Some(top) => essence.split('/').next() == Some(top),
                None => essence == allowed,
            }
        })
    }

    /// The scope that reads it.
    pub fn read_scope(&self) -> String {
        read_scope(&self.name)
    }

    /// The scope that writes it.
    pub fn write_scope(&self) -> String {
        write_scope(&self.name)
    }
}

/// The scope that reads the namespace called `name` (whether or not it exists).
pub fn read_scope(name: &str) -> String {
    format!("blobs:read:{name}")
}

/// The scope that writes the namespace called `name` (whether or not it exists).
pub fn write_scope(name: &str) -> String {
    format!("blobs:write:{name}")
}

/// The defaults: `client` and `web` up to 1 GiB, `ai` up to 50 GiB, any content type.
pub fn defaults() -> Vec<Namespace> {
    [("client", GIB), ("web", GIB), ("ai", 50 * GIB)]
        .into_iter()
        .map(|(name, max_size)| Namespace {
            name: name.into(),
            bucket: None,
            prefix: None,
            max_size,
            allowed_types: Vec::new(),
        })
        .collect()
}

/// Parses `BLOB_NAMESPACES`: a JSON array of namespaces.
pub fn parse(json: &str) -> Result<Vec<Namespace>, String> {
    let list: Vec<Namespace> =
        serde_json::from_str(json).map_err(|e| format!("not a JSON array of namespaces: {e}"))?;
    if list.is_empty() {
        return Err("at least one namespace".into());
    }
    let mut seen = std::collections::HashSet::new();
    for ns in &list {
        let ok = !ns.name.is_empty()
            && ns.name.len() <= 32
            && ns
                .name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
        if !ok {
            return Err(format!("`{}`: a name is 1 to 32 of a-z, 0-9 and -", ns.name));
        }
        if !seen.insert(ns.name.clone()) {
            return Err(format!("`{}` appears twice", ns.name));
        }
        if ns.max_size == 0 {
            return Err(format!("`{}`: max_size must be above 0", ns.name));
        }
        if let Some(p) = &ns.prefix
            && crate::ObjectKey::parse(&format!("{p}x")).is_err()
        {
            return Err(format!(
                "`{}`: the prefix must be a valid key start, such as `client/`",
                ns.name
            ));
        }
    }
    Ok(list)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn defaults_and_parsing() {
        let d = defaults();
        assert_eq!(
            d.iter().map(|n| (n.name.as_str(), n.max_size)).collect::<Vec<_>>(),
            [("client", GIB), ("web", GIB), ("ai", 50 * GIB)]
        );
        let parsed = parse(
            r#"[{"name":"img","max_size":1048576,"allowed_types":["image/*","application/pdf"],"prefix":"pics/"}]"#,
        )
        .unwrap();
        let ns = &parsed[0];
        assert_eq!(ns.storage_prefix(), "pics/");
        assert!(ns.allows("image/png") && ns.allows("Application/PDF; charset=x") && !ns.allows("text/html"));
        assert_eq!(
            (ns.read_scope().as_str(), ns.write_scope().as_str()),
            ("blobs:read:img", "blobs:write:img")
        );
        for bad in [
            "",
            "[]",
            "{}",
            r#"[{"name":"Bad","max_size":1}]"#,
            r#"[{"name":"a","max_size":0}]"#,
            r#"[{"name":"a","max_size":1},{"name":"a","max_size":1}]"#,
            r#"[{"name":"a","max_size":1,"prefix":"/x"}]"#,
            r#"[{"name":"a","max_size":1,"colour":"red"}]"#,
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
