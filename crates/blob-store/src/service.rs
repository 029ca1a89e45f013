//! Namespaces over one store: key composition, limits, content types, and URLs signed
//! by the gateway for backends that cannot presign.

use std::sync::Arc;

use ring::hmac;

use crate::namespace::Namespace;
use crate::{BlobError, BlobStore, ObjectKey};

/// The longest a signed URL may live (7 days, as S3).
pub const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// A signed request the gateway will honour without an API key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// `GET` or `PUT`.
    pub method: String,
    /// Unix time it expires at.
    pub expires: i64,
    /// The content type a signed PUT must send (empty for any).
    pub content_type: String,
    /// The `Content-Length` a signed PUT must send (`None` for any).
    pub content_length: Option<u64>,
    /// Hex HMAC-SHA256.
    pub signature: String,
}

/// Namespaces and the stores behind them.
pub struct BlobService {
    namespaces: Vec<(Namespace, Arc<dyn BlobStore>)>,
    signing: hmac::Key,
    /// Earlier secrets: URLs they signed still verify until they expire.
    previous: Vec<hmac::Key>,
}

impl BlobService {
    /// Each namespace with its store (namespaces may name their own bucket); `secret`
    /// signs the gateway's URLs.
    pub fn new(namespaces: Vec<(Namespace, Arc<dyn BlobStore>)>, secret: &[u8]) -> Self {
        Self {
            namespaces,
            signing: hmac::Key::new(hmac::HMAC_SHA256, secret),
            previous: Vec::new(),
        }
    }

    /// Also accepts URLs signed under earlier secrets (a `SECRET_KEY` rotation).
    pub fn with_previous_secrets(mut self, previous: &[&[u8]]) -> Self {
        self.previous = previous.iter().map(|s| hmac::Key::new(hmac::HMAC_SHA256, s)).collect();
        self
    }

    /// The namespace called `name` and the store holding it.
    pub fn namespace(&self, name: &str) -> Option<(&Namespace, &dyn BlobStore)> {
        self.namespaces
            .iter()
            .find(|(n, _)| n.name == name)
            .map(|(n, s)| (n, s.as_ref()))
    }

    /// The full storage key of `key` in `ns`.
    pub fn storage_key(&self, ns: &Namespace, key: &ObjectKey) -> Result<ObjectKey, BlobError> {
        ObjectKey::parse(&format!("{}{}", ns.storage_prefix(), key.as_str()))
            .map_err(|e| BlobError::KeyUnsupported(e.to_string()))
    }

    /// `key` as callers see it in `ns` (the storage prefix removed).
    pub fn public_key<'a>(&self, ns: &Namespace, storage_key: &'a str) -> &'a str {
        let prefix = ns.storage_prefix();
        storage_key.strip_prefix(prefix.as_str()).unwrap_or(storage_key)
    }

    /// What is signed: every field, as a JSON array, so no field's text can pass for
    /// another's (a namespace or content type holding a separator).
    fn string_to_sign(
        method: &str,
        ns: &str,
        key: &str,
        expires: i64,
        content_type: &str,
        content_length: Option<u64>,
    ) -> String {
        serde_json::json!(["eb-blob-v2", method, ns, key, expires, content_type, content_length]).to_string()
    }

    /// Signs a `method` request for `key` in `ns` until `expires` (unix seconds); a `PUT`
    /// may be bound to a content type and length.
    pub fn sign(
        &self,
        method: &str,
        ns: &str,
        key: &ObjectKey,
        expires: i64,
        content_type: &str,
        content_length: Option<u64>,
    ) -> SignedRequest {
        let tag = hmac::sign(
            &self.signing,
            Self::string_to_sign(method, ns, key.as_str(), expires, content_type, content_length).as_bytes(),
        );
        SignedRequest {
            method: method.to_owned(),
            expires,
            content_type: content_type.to_owned(),
            content_length,
            signature: data_encoding::HEXLOWER.encode(tag.as_ref()),
        }
    }

    /// True when `tag` is the HMAC of `message` under the secret or an earlier one.
    fn signed_by_any(&self, message: &[u8], tag: &[u8]) -> bool {
        std::iter::once(&self.signing)
            .chain(self.previous.iter())
            .any(|k| hmac::verify(k, message, tag).is_ok())
    }

    /// URLs signed by the version before `eb-blob-v2`, which signed
    /// `method\nnamespace\nkey\nexpires\ncontent_type` (and bound no length): still
    /// honoured for downloads (`GET`, which also serves `HEAD`), so links handed out before
    /// the upgrade keep working until they expire. Its upload URLs are refused, with a
    /// detail saying to sign again: they were never bound to a size, which this version
    /// requires of every signed `PUT`.
    ///
    /// TRANSITIONAL: signed URLs live at most 7 days ([`MAX_PRESIGN_SECS`]), so this
    /// function (and its call in [`Self::verify`]) can be removed 7 days after every
    /// gateway runs `eb-blob-v2`.
    fn verify_pre_v2_url(
        &self,
        ns: &str,
        key: &ObjectKey,
        req: &SignedRequest,
        tag: &[u8],
    ) -> Result<(), &'static str> {
        // That version never sent a length: one present was not signed by it.
        if req.content_length.is_some() {
            return Err("bad signature");
        }
        let signed = format!(
            "{}\n{ns}\n{}\n{}\n{}",
            req.method,
            key.as_str(),
            req.expires,
            req.content_type
        );
        if !self.signed_by_any(signed.as_bytes(), tag) {
            return Err("bad signature");
        }
        match req.method.as_str() {
            "GET" => Ok(()),
            _ => Err(
                "this upload URL was signed before the gateway's upgrade and is no longer accepted: \
                 sign it again (POST /api/v1/blobs/{namespace}/presign with content_length)",
            ),
        }
    }

    /// Checks a signed request in constant time; `Err` says why it is refused.
    pub fn verify(&self, ns: &str, key: &ObjectKey, req: &SignedRequest, now: i64) -> Result<(), &'static str> {
        let tag = data_encoding::HEXLOWER
            .decode(req.signature.as_bytes())
            .map_err(|_| "malformed signature")?;
        let signed = Self::string_to_sign(
            &req.method,
            ns,
            key.as_str(),
            req.expires,
            &req.content_type,
            req.content_length,
        );
        if !self.signed_by_any(signed.as_bytes(), &tag) {
            self.verify_pre_v2_url(ns, key, req, &tag)?;
        }
        if req.expires < now {
            return Err("the signed URL has expired");
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::LocalStore;

    #[test]
    fn signatures_bind_method_key_expiry_and_type() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let namespaces = crate::namespace::defaults()
            .into_iter()
            .map(|n| (n, store.clone()))
            .collect();
        let svc = BlobService::new(namespaces, b"secret-0123456789");
        let key = ObjectKey::parse("a/b.bin").unwrap();
        let signed = svc.sign("PUT", "ai", &key, 2_000, "application/octet-stream", Some(4));
        assert_eq!(svc.verify("ai", &key, &signed, 1_000), Ok(()));
        assert_eq!(
            svc.verify("ai", &key, &signed, 2_001),
            Err("the signed URL has expired")
        );
        assert!(svc.verify("web", &key, &signed, 1_000).is_err());
        assert!(
            svc.verify("ai", &ObjectKey::parse("a/c.bin").unwrap(), &signed, 1_000)
                .is_err()
        );
        for tamper in [
            SignedRequest {
                method: "GET".into(),
                ..signed.clone()
            },
            SignedRequest {
                expires: 9_999,
                ..signed.clone()
            },
            SignedRequest {
                content_type: String::new(),
                ..signed.clone()
            },
            SignedRequest {
                content_length: Some(5),
                ..signed.clone()
            },
            SignedRequest {
                content_length: None,
                ..signed.clone()
            },
            // A field's text cannot pass for the next field.
            SignedRequest {
                content_type: "application/octet-stream\n4".into(),
                content_length: None,
                ..signed.clone()
            },
            SignedRequest {
                signature: "00".repeat(32),
                ..signed.clone()
            },
            SignedRequest {
                signature: "zz".into(),
                ..signed.clone()
            },
        ] {
            assert!(svc.verify("ai", &key, &tamper, 1_000).is_err(), "{tamper:?}");
        }
        let (ns, _) = svc.namespace("ai").unwrap();
        let full = svc.storage_key(ns, &key).unwrap();
        assert_eq!(full.as_str(), "ai/a/b.bin");
        assert_eq!(svc.public_key(ns, full.as_str()), "a/b.bin");
    }

    /// Signs as the version before `eb-blob-v2` did, byte for byte.
    fn pre_v2(secret: &[u8], method: &str, ns: &str, key: &str, expires: i64, content_type: &str) -> SignedRequest {
        let tag = hmac::sign(
            &hmac::Key::new(hmac::HMAC_SHA256, secret),
            format!("{method}\n{ns}\n{key}\n{expires}\n{content_type}").as_bytes(),
        );
        SignedRequest {
            method: method.to_owned(),
            expires,
            content_type: content_type.to_owned(),
            content_length: None,
            signature: data_encoding::HEXLOWER.encode(tag.as_ref()),
        }
    }

    #[test]
    fn pre_v2_signatures_verify_for_get_only() {
        let dir = tempfile::tempdir().unwrap();
        let store: Arc<dyn BlobStore> = Arc::new(LocalStore::new(dir.path()).unwrap());
        let namespaces = crate::namespace::defaults()
            .into_iter()
            .map(|n| (n, store.clone()))
            .collect();
        let svc = BlobService::new(namespaces, b"secret-0123456789").with_previous_secrets(&[b"older-secret-0123"]);
        let key = ObjectKey::parse("a/b.bin").unwrap();
        let get = pre_v2(b"secret-0123456789", "GET", "ai", "a/b.bin", 2_000, "");
        assert_eq!(svc.verify("ai", &key, &get, 1_000), Ok(()));
        let under_previous = pre_v2(b"older-secret-0123", "GET", "ai", "a/b.bin", 2_000, "");
        assert_eq!(svc.verify("ai", &key, &under_previous, 1_000), Ok(()));
        assert_eq!(svc.verify("ai", &key, &get, 2_001), Err("the signed URL has expired"));
        let put = pre_v2(b"secret-0123456789", "PUT", "ai", "a/b.bin", 2_000, "text/csv");
        let refused = svc.verify("ai", &key, &put, 1_000);
        assert!(refused.is_err_and(|why| why.contains("sign it again")), "{refused:?}");
        assert!(svc.verify("web", &key, &get, 1_000).is_err());
        assert!(
            svc.verify("ai", &ObjectKey::parse("a/c.bin").unwrap(), &get, 1_000)
                .is_err()
        );
        for tamper in [
            SignedRequest {
                method: "PUT".into(),
                ..get.clone()
            },
            SignedRequest {
                expires: 9_999,
                ..get.clone()
            },
            SignedRequest {
                content_type: "text/csv".into(),
                ..get.clone()
            },
            SignedRequest {
                content_length: Some(0),
                ..get.clone()
            },
            SignedRequest {
                signature: "00".repeat(32),
                ..get.clone()
            },
            pre_v2(b"another-secret-99", "GET", "ai", "a/b.bin", 2_000, ""),
        ] {
            assert_eq!(
                svc.verify("ai", &key, &tamper, 1_000),
                Err("bad signature"),
                "{tamper:?}"
            );
        }
    }
}
