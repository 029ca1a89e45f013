//! Listing a namespace: a prefix, `/` as the one delimiter, and the paging rule (limit 1
//! to 500, default 100; an opaque cursor holding the last key of the page before).

use shared_db::paging;

use crate::model::{BlobEntry, BlobError, ListOptions, ListRequest, Listing};
use crate::service::BlobService;

impl BlobService {
    /// One page of the namespace `ns_name`, keys in order.
    pub async fn list(&self, ns_name: &str, request: &ListRequest) -> Result<Listing, BlobError> {
        let (ns, store) = self.entry(ns_name)?;
        let limit = usize::try_from(paging::limit(request.limit)?).unwrap_or(paging::DEFAULT_LIMIT as usize);
        let delimiter = match request.delimiter.as_deref() {
            None | Some("") => None,
            Some("/") => Some('/'),
            Some(_) => return Err(BlobError::InvalidQuery("the only delimiter is /")),
        };
        let prefix = request.prefix.clone().unwrap_or_default();
        if prefix.chars().any(char::is_control) || prefix.starts_with('/') {
            return Err(BlobError::InvalidQuery(
                "the prefix cannot start with / or hold control characters",
            ));
        }
        let after = paging::after(request.cursor.as_deref())?;
        let storage_prefix = ns.storage_prefix();
        let page = store
            .list(ListOptions {
                prefix: format!("{storage_prefix}{prefix}"),
                delimiter,
                after: after.map(|a| format!("{storage_prefix}{a}")),
                limit,
            })
            .await?;
        Ok(Listing {
            objects: page
                .objects
                .into_iter()
                .map(|o| BlobEntry {
                    key: self.public_key(ns, &o.key).to_owned(),
                    size: o.size,
                    etag: o.etag,
                    last_modified: o.last_modified,
                })
                .collect(),
            common_prefixes: page
                .common_prefixes
                .iter()
                .map(|p| self.public_key(ns, p).to_owned())
                .collect(),
            next_cursor: page.next_after.map(|a| paging::encode(self.public_key(ns, &a))),
        })
    }
}
