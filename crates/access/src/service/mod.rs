//! The API-key service: one file per use case (`create`, `list` and `show`, `revoke`,
//! `authenticate`), all on [`AccessService`].

mod authenticate;
mod create;
pub mod list;
mod revoke;

use std::sync::Arc;

use shared_db::KeyRing;

use crate::model::AccessError;

/// Makes, lists, revokes and checks API keys; cheap to clone.
#[derive(Clone)]
pub struct AccessService {
    /// The current secret (new digests) and the earlier ones still honoured.
    ring: KeyRing,
    /// The storage namespaces `blobs:*:<namespace>` scopes may name (`None`: unchecked).
    namespaces: Option<Arc<Vec<String>>>,
}

impl AccessService {
    /// Digests keys under `ring`'s current secret and also accepts keys digested under
    /// its earlier ones (each re-digested under the current secret the first time it is
    /// used).
    pub fn new(ring: KeyRing) -> Self {
        Self { ring, namespaces: None }
    }

    /// Refuses keys with a storage scope for a namespace not among `names`
    /// (`blobs:read:nosuch`); `blobs:read:*` stays allowed.
    pub fn with_namespaces(mut self, names: impl IntoIterator<Item = String>) -> Self {
        self.namespaces = Some(Arc::new(names.into_iter().collect()));
        self
    }

    /// Refuses `scope` when it narrows a storage scope to a namespace that is not
    /// configured. Data collections come into being on their first write, so
    /// `data:*:<collection>` scopes are not checked.
    fn check_namespace(&self, scope: &str) -> Result<(), AccessError> {
        let Some(known) = &self.namespaces else { return Ok(()) };
        let named = ["blobs:read:", "blobs:write:"]
            .iter()
            .find_map(|family| scope.strip_prefix(family))
            .filter(|q| *q != "*");
        match named {
            Some(ns) if !known.iter().any(|k| k == ns) => Err(AccessError::UnknownNamespace(format!(
                "`{scope}`: no storage namespace is called `{ns}`; the namespaces are {}",
                known.join(", ")
            ))),
            _ => Ok(()),
        }
    }

    /// The hex digest of `key` under the current secret (as stored).
    fn digest(&self, key: &str) -> String {
        self.ring.digest(key.as_bytes())
    }
}
