//! Signed URLs: minting one for a `GET` or `PUT` without an API key (by the store itself,
//! S3's SigV4, or by the gateway through [`super::signed::UrlSigner`]) with its
//! `blob.presigned` event, and honouring one the gateway signed.

use std::collections::BTreeMap;

use chrono::Utc;

use super::signed::MAX_PRESIGN_SECS;
use crate::model::{BlobError, Grant, PresignRequest, PresignedLink, SignedRequest};
use crate::namespace::Namespace;
use crate::service::put::{content_type_for, type_allowed};
use crate::service::{BlobService, subject};
use crate::{ObjectKey, media};

/// How long a signed URL lives when the request does not say.
const DEFAULT_EXPIRES_SECS: u64 = 3600;

impl BlobService {
    /// A URL for one `GET` or `PUT` of `request.key` in the namespace `ns_name`, asked for
    /// by `actor`; `public_url` is where the gateway is reached (for the URLs it signs).
    /// A `PUT` declares its length and type, checked against the namespace as an upload
    /// would be, and the URL is bound to them. No URL leaves without its audit event.
    pub async fn presign(
        &self,
        actor: &str,
        ns_name: &str,
        request: PresignRequest,
        public_url: &str,
    ) -> Result<PresignedLink, BlobError> {
        let method = request.method.to_ascii_uppercase();
        if method != "GET" && method != "PUT" {
            return Err(BlobError::InvalidField {
                field: "method",
                message: "method must be GET or PUT",
            });
        }
        let (ns, store) = self.entry(ns_name)?;
        let key = ObjectKey::parse(&request.key)?;
        let expires_in = request.expires_in.unwrap_or(DEFAULT_EXPIRES_SECS);
        if !(1..=MAX_PRESIGN_SECS).contains(&expires_in) {
            return Err(BlobError::InvalidField {
                field: "expires_in",
                message: "expires_in must be 1 to 604800 seconds",
            });
        }
        let (content_type, content_length) = if method == "PUT" {
            super::put::writable_key(&key)?;
            let (content_type, content_length) = declared_upload(ns, &key, &request)?;
            (content_type, Some(content_length))
        } else {
            (String::new(), None)
        };
        let expires_at = Utc::now() + chrono::Duration::seconds(i64::try_from(expires_in).unwrap_or(3600));
        // S3 signs its own URLs (SigV4); the local backend's are signed by the gateway.
        let storage_key = self.storage_key(ns, &key)?;
        let wanted_type = (!content_type.is_empty()).then_some(content_type.as_str());
        let by_store = store
            .presign(
                &storage_key,
                &method,
                std::time::Duration::from_secs(expires_in),
                wanted_type,
                content_length,
            )
            .await?;
        // No URL leaves without its audit event (an S3 upload through it never passes here).
        let event = serde_json::json!({
            "method": method,
            "expires_at": shared_db::time::rfc3339_micros::format(&expires_at),
            "content_type": wanted_type,
            "content_length": content_length,
            "signed_by": if by_store.is_some() { "storage" } else { "gateway" },
        });
        crate::store::record_event(&self.pool, "blob.presigned", actor, &subject(ns, &key), event).await?;
        if let Some(p) = by_store {
            return Ok(PresignedLink {
                url: p.url,
                method,
                headers: p.headers.into_iter().collect(),
                expires_at,
            });
        }
        let signed = self.signer.sign(
            &method,
            &ns.name,
            &key,
            expires_at.timestamp(),
            &content_type,
            content_length,
        );
        let mut url = url::Url::parse(&format!(
            "{}/api/v1/blobs/{}/{}",
            public_url.trim_end_matches('/'),
            ns.name,
            key.url_path()
        ))
        .map_err(|e| BlobError::Internal(e.to_string()))?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("X-EB-Method", &method)
                .append_pair("X-EB-Expires", &signed.expires.to_string());
            if !content_type.is_empty() {
                q.append_pair("X-EB-Content-Type", &content_type);
            }
            if let Some(len) = content_length {
                q.append_pair("X-EB-Content-Length", &len.to_string());
            }
            q.append_pair("X-EB-Signature", &signed.signature);
        }
        let mut headers = BTreeMap::new();
        if !content_type.is_empty() {
            headers.insert("Content-Type".to_owned(), content_type);
        }
        if let Some(len) = content_length {
            headers.insert("Content-Length".to_owned(), len.to_string());
        }
        Ok(PresignedLink {
            url: url.into(),
            method,
            headers,
            expires_at,
        })
    }

    /// What a request carrying `signed` (the query of a URL the gateway signed) may do
    /// with `key` in the namespace `ns_name` by `method`, checked now. Nothing is looked
    /// up first, so a caller without a good signature gets the same answer whether or not
    /// the namespace exists.
    pub fn signed_grant(
        &self,
        ns_name: &str,
        key: &ObjectKey,
        method: &str,
        signed: SignedRequest,
    ) -> Result<Grant, BlobError> {
        if signed.method != method {
            return Err(BlobError::SignatureInvalid(
                "the URL was signed for another method".to_owned(),
            ));
        }
        self.signer
            .verify(ns_name, key, &signed, Utc::now().timestamp())
            .map_err(|why| BlobError::SignatureInvalid(why.to_owned()))?;
        Ok(Grant {
            actor: "signed_url".to_owned(),
            content_length: signed.content_length,
            content_type: (!signed.content_type.is_empty()).then_some(signed.content_type),
        })
    }
}

/// The content type (default: the type of the key's extension, else
/// `application/octet-stream`) and length a presigned `PUT` declares, checked against the
/// namespace as an upload through the gateway would be (the type it would be stored with).
fn declared_upload(ns: &Namespace, key: &ObjectKey, request: &PresignRequest) -> Result<(String, u64), BlobError> {
    let content_length = request.content_length.ok_or(BlobError::InvalidField {
        field: "content_length",
        message: "a PUT declares content_length: the upload's size in bytes",
    })?;
    if content_length > ns.max_size {
        return Err(BlobError::TooLarge { limit: ns.max_size }.on_field("content_length"));
    }
    let content_type = request.content_type.clone().unwrap_or_else(|| media::guess(key));
    let well_formed = content_type.len() <= 255
        && content_type.contains('/')
        && content_type.bytes().all(|b| (0x20..0x7f).contains(&b));
    if !well_formed {
        return Err(BlobError::InvalidField {
            field: "content_type",
            message: "content_type must be a media type such as image/png (printable ASCII, at most 255 bytes)",
        });
    }
    // The type sent is what S3 stores; the gateway stores the type it implies (a generic
    // one gives way to the key's): both must be accepted.
    type_allowed(ns, &content_type)
        .and_then(|()| content_type_for(ns, Some(&content_type), key))
        .map_err(|e| e.on_field("content_type"))?;
    Ok((content_type, content_length))
}
