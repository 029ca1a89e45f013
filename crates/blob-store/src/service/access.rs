//! Who may use a namespace: reading needs its read scope and writing its write scope
//! (see [`crate::namespace`]), checked before the namespace is looked up, so a caller
//! without the scope gets the same answer whether or not the namespace exists.

use crate::model::BlobError;
use crate::namespace::{self, Namespace};
use crate::service::BlobService;

/// What a request does to a namespace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Reads (`GET`, `HEAD`, listings).
    Read,
    /// Writes (`PUT`, forms, deletes).
    Write,
}

impl Access {
    /// The access a signed URL for `method` (`GET` or `PUT`, any case) gives.
    pub fn for_method(method: &str) -> Result<Self, BlobError> {
        match method.to_ascii_uppercase().as_str() {
            "GET" => Ok(Access::Read),
            "PUT" => Ok(Access::Write),
            _ => Err(BlobError::InvalidField {
                field: "method",
                message: "method must be GET or PUT",
            }),
        }
    }

    /// The method a signed URL for this access is signed for.
    pub fn method(self) -> &'static str {
        match self {
            Access::Read => "GET",
            Access::Write => "PUT",
        }
    }

    /// The scope this access to the namespace called `ns_name` needs.
    pub fn scope(self, ns_name: &str) -> String {
        match self {
            Access::Read => namespace::read_scope(ns_name),
            Access::Write => namespace::write_scope(ns_name),
        }
    }
}

impl BlobService {
    /// The namespace `ns_name`, for a caller that `holds` the scope `access` needs: the
    /// scope is checked first, then the namespace looked up.
    pub fn authorise<E: From<BlobError>>(
        &self,
        ns_name: &str,
        access: Access,
        holds: impl FnOnce(&str) -> Result<(), E>,
    ) -> Result<&Namespace, E> {
        holds(&access.scope(ns_name))?;
        Ok(self.namespace(ns_name)?)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::Access;
    use crate::model::BlobError;

    #[test]
    fn methods_map_to_scopes() {
        assert_eq!(Access::for_method("get").unwrap().scope("web"), "blobs:read:web");
        assert_eq!(Access::for_method("PUT").unwrap().scope("ai"), "blobs:write:ai");
        assert_eq!(Access::Write.method(), "PUT");
        assert!(matches!(
            Access::for_method("DELETE"),
            Err(BlobError::InvalidField { field: "method", .. })
        ));
    }
}
