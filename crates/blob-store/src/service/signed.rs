//! The gateway's signed URLs, for backends that cannot presign (the local one): an
//! HMAC-SHA256 over every field of the request, under the key ring's current secret,
//! checked under the current secret or an earlier one.

use shared_db::KeyRing;

use crate::ObjectKey;
use crate::model::SignedRequest;

/// The longest a signed URL may live (7 days, as S3).
pub const MAX_PRESIGN_SECS: u64 = 7 * 24 * 3600;

/// Signs and checks the gateway's URLs.
#[derive(Debug, Clone)]
pub struct UrlSigner {
    keys: KeyRing,
}

impl UrlSigner {
    /// A signer over `keys` (URLs signed under its earlier secrets still verify until they
    /// expire).
    pub fn new(keys: KeyRing) -> Self {
        Self { keys }
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
        let signature = self
            .keys
            .digest(Self::string_to_sign(method, ns, key.as_str(), expires, content_type, content_length).as_bytes());
        SignedRequest {
            method: method.to_owned(),
            expires,
            content_type: content_type.to_owned(),
            content_length,
            signature,
        }
    }

    /// What a part URL signs: the upload, the part, its expiry and its exact length.
    fn part_string_to_sign(ns: &str, upload: &str, number: u32, expires: i64, length: u64) -> String {
        serde_json::json!(["eb-upload-part-v1", "PUT", ns, upload, number, expires, length]).to_string()
    }

    /// Signs a `PUT` of part `number` (exactly `length` bytes) of the upload `upload` in
    /// `ns` until `expires` (unix seconds): the hex signature.
    pub fn sign_part(&self, ns: &str, upload: &str, number: u32, length: u64, expires: i64) -> String {
        self.keys
            .digest(Self::part_string_to_sign(ns, upload, number, expires, length).as_bytes())
    }

    /// Checks a signed part request in constant time; `Err` says why it is refused.
    pub fn verify_part(
        &self,
        ns: &str,
        upload: &str,
        number: u32,
        req: &SignedRequest,
        now: i64,
    ) -> Result<(), &'static str> {
        let tag = data_encoding::HEXLOWER
            .decode(req.signature.as_bytes())
            .map_err(|_| "malformed signature")?;
        let (Some(length), "PUT", "") = (req.content_length, req.method.as_str(), req.content_type.as_str()) else {
            return Err("bad signature");
        };
        let signed = Self::part_string_to_sign(ns, upload, number, req.expires, length);
        if !self.signed_by_any(signed.as_bytes(), &tag) {
            return Err("bad signature");
        }
        if req.expires < now {
            return Err("the signed URL has expired");
        }
        Ok(())
    }

    /// True when `tag` is the HMAC of `message` under the secret or an earlier one.
    fn signed_by_any(&self, message: &[u8], tag: &[u8]) -> bool {
        self.keys.verify(message, tag).is_some()
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
